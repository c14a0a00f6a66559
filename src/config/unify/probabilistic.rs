//! `[unify.probabilistic]`: the Fellegi–Sunter settings as written, their defaults and their
//! checks. The matching itself is the unify stage's (`crate::unify::probabilistic`).

use crate::config::Problem;
use serde::Deserialize;

/// Fields compared by default.
pub const DEFAULT_COMPARISONS: &[&str] = &[
    "first_name",
    "last_name",
    "email",
    "phone_digits",
    "birth_date",
    "postcode",
    "street",
    "city",
    "gender",
];

/// `[unify.probabilistic]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbabilisticSection {
    /// Match probability at or above which a pair is the same person.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Blocking rules: each a list of staged fields that must be equal for a pair to be
    /// compared at all. Empty (the default): chosen from the data by [`crate::unify::probabilistic::blocking::plan`].
    #[serde(default)]
    pub blocking: Vec<Vec<String>>,
    /// Fields compared (each has built-in comparison levels).
    #[serde(default = "default_comparisons")]
    pub comparisons: Vec<String>,
    /// Fields whose exact agreement is weighed by how rare the value is.
    #[serde(default = "default_term_frequency")]
    pub term_frequency: Vec<String>,
    /// What rules a match out whatever else agrees: a field, or a group of fields that all
    /// clearly disagree (both sides present, not even similar). None (the default): learned
    /// from the trained model by [`crate::unify::probabilistic::vetoes::learn`].
    #[serde(default)]
    pub contradictions: Option<Vec<Contradiction>>,
    /// Random record pairs used to measure u.
    #[serde(default = "default_sample_pairs")]
    pub sample_pairs: usize,
    #[serde(default = "default_max_iterations")]
    pub max_iterations: usize,
    /// Automatic blocking: the most candidate pairs, per record, the chosen rules may add up
    /// to.
    #[serde(default = "default_pairs_per_record")]
    pub pairs_per_record: f64,
    /// Automatic blocking stops adding rules once, by the model, the rules find this share of
    /// the true matches.
    #[serde(default = "default_blocking_recall")]
    pub blocking_recall: f64,
    /// Learned vetoes (no `contradictions` given): the share of true matches (with the
    /// field present) each may rule out, by the model's estimate.
    #[serde(default = "default_veto_max_loss")]
    pub veto_max_loss: f64,
    /// `[unify.fields]`, set by [`super::UnifySection::probabilistic_section`].
    #[serde(skip)]
    pub custom: super::fields::CustomFields,
    /// Given-name variants learned from the data (`crate::unify::probabilistic::variants`):
    /// the first name's "learned variant" level. Set by the unify stage's `plan`, or by its
    /// `adopt_plan` from a run's `match_weights`.
    #[serde(skip)]
    pub name_variants: Vec<(String, String)>,
    /// Address parts compared for a blocking rule whose key holds another address part,
    /// because its non-matching pairs seldom agree on them (the unify stage's
    /// `rule_dependence`): `(rule name, part)`. Set by `plan` or `adopt_plan` as above.
    #[serde(skip)]
    pub compared: Vec<(String, String)>,
}

impl Default for ProbabilisticSection {
    fn default() -> Self {
        ProbabilisticSection {
            threshold: default_threshold(),
            blocking: Vec::new(),
            comparisons: default_comparisons(),
            term_frequency: default_term_frequency(),
            contradictions: None,
            sample_pairs: default_sample_pairs(),
            max_iterations: default_max_iterations(),
            pairs_per_record: default_pairs_per_record(),
            blocking_recall: default_blocking_recall(),
            veto_max_loss: default_veto_max_loss(),
            custom: super::fields::CustomFields::new(),
            name_variants: Vec::new(),
            compared: Vec::new(),
        }
    }
}

fn default_threshold() -> f64 {
    0.95
}
/// Comparisons per record are what a run pays for; 50 keeps a 1M-record run's candidate pairs
/// (50M at most) within what the comparison step handles in memory on a small machine.
fn default_pairs_per_record() -> f64 {
    50.0
}
fn default_blocking_recall() -> f64 {
    0.999
}
/// One true match in a hundred, among those another lifetime attribute vouches for: a veto
/// that costs more is not a rule but a typo rate.
fn default_veto_max_loss() -> f64 {
    0.01
}
pub(crate) fn default_comparisons() -> Vec<String> {
    DEFAULT_COMPARISONS.iter().map(|f| f.to_string()).collect()
}
pub(crate) fn default_term_frequency() -> Vec<String> {
    vec!["first_name".into(), "last_name".into()]
}
/// One entry of `contradictions`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Contradiction {
    Field(String),
    /// All these fields clearly disagree.
    All(Vec<String>),
}

impl Contradiction {
    pub fn fields(&self) -> &[String] {
        match self {
            Contradiction::Field(f) => std::slice::from_ref(f),
            Contradiction::All(v) => v,
        }
    }

    /// True when the contradiction holds for these levels (field → level, None if missing).
    pub fn holds(&self, level: impl Fn(&str) -> Option<usize>) -> bool {
        !self.fields().is_empty() && self.fields().iter().all(|f| level(f) == Some(0))
    }
}
fn default_sample_pairs() -> usize {
    1_000_000
}
fn default_max_iterations() -> usize {
    100
}

impl ProbabilisticSection {
    /// Why this section cannot be used (`custom` must be set: see
    /// [`super::UnifySection::probabilistic_section`]).
    pub fn check(&self) -> std::result::Result<(), crate::config::Problem> {
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            return Err(Problem(format!(
                "unify.probabilistic.threshold must be between 0 and 1 (exclusive), got {}",
                self.threshold
            )));
        }
        if self.blocking.iter().any(|k| k.is_empty()) {
            return Err("unify.probabilistic.blocking: each rule is a non-empty list of fields (leave blocking out to have it chosen from the data)".into());
        }
        let staged = super::fields::staged_fields(&self.custom);
        for f in self.blocking.iter().flatten() {
            if !staged.contains(f) {
                return Err(Problem(format!(
                    "unify.probabilistic.blocking: unknown field `{f}` (fields: {})",
                    staged.join(", ")
                )));
            }
        }
        if self.comparisons.is_empty() {
            return Err("unify.probabilistic.comparisons is empty".into());
        }
        for f in &self.comparisons {
            if !super::fields::has_comparison(f, &self.custom) {
                return Err(Problem(format!(
                    "unify.probabilistic.comparisons: no comparison for `{f}` (comparable: {})",
                    super::fields::comparable_fields(&self.custom).join(", ")
                )));
            }
        }
        let contradicted: Vec<String> = self
            .vetoes()
            .iter()
            .flat_map(|c| c.fields().to_vec())
            .collect();
        for (key, list) in [
            ("term_frequency", &self.term_frequency),
            ("contradictions", &contradicted),
        ] {
            if let Some(f) = list.iter().find(|f| !self.comparisons.contains(f)) {
                return Err(Problem(format!(
                    "unify.probabilistic.{key}: `{f}` is not in unify.probabilistic.comparisons"
                )));
            }
        }
        if self.vetoes().iter().any(|c| c.fields().is_empty()) {
            return Err("unify.probabilistic.contradictions: an empty group".into());
        }
        if self.sample_pairs < 1_000 {
            return Err("unify.probabilistic.sample_pairs must be at least 1000".into());
        }
        if !(self.pairs_per_record.is_finite() && self.pairs_per_record >= 1.0) {
            return Err("unify.probabilistic.pairs_per_record must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.veto_max_loss) {
            return Err("unify.probabilistic.veto_max_loss must be at least 0 and below 1".into());
        }
        if !(self.blocking_recall > 0.0 && self.blocking_recall < 1.0) {
            return Err(
                "unify.probabilistic.blocking_recall must be between 0 and 1 (exclusive)".into(),
            );
        }
        Ok(())
    }

    /// The contradictions in force: configured, learned (once a model is trained), or none.
    pub fn vetoes(&self) -> &[Contradiction] {
        self.contradictions.as_deref().unwrap_or(&[])
    }
}
