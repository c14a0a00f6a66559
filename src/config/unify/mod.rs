//! The `[unify]` section of `panorama.toml`: which source columns carry which semantic type
//! (map), which records are the same person (match rules), and which value wins (merge).

pub mod accounts;
pub mod fields;
pub mod merge;
pub mod probabilistic;

use crate::config::Problem;
use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// `[unify]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UnifySection {
    /// Column mapping per source: `[unify.sources.<source>]`.
    #[serde(default)]
    pub sources: BTreeMap<String, Spanned<SourceMap>>,
    /// Match fields of the project's own (national id, customer number, ...), each of a
    /// kind: `[unify.fields.<name>]`.
    #[serde(default)]
    pub fields: BTreeMap<String, Spanned<fields::FieldDef>>,
    /// Sources of anonymous ids (cookies, devices) to stitch to known customers:
    /// `[unify.identities.<source>]`.
    #[serde(default)]
    pub identities: BTreeMap<String, Spanned<IdentityMap>>,
    /// B2B accounts (companies) and their contacts: `[unify.accounts]`.
    #[serde(default)]
    pub accounts: Option<accounts::AccountsSection>,
    /// Merge policies per unified field.
    #[serde(default)]
    pub merge: Option<merge::MergeSection>,
    /// `rules` or `probabilistic`; default: `rules` when rules are given, else probabilistic.
    #[serde(default)]
    pub mode: Option<MatchMode>,
    /// Fellegi–Sunter settings: `[unify.probabilistic]`.
    #[serde(default)]
    pub probabilistic: Option<probabilistic::ProbabilisticSection>,
    /// Ordered match rules; a pair matches when any rule holds. With `mode = "rules"` and no
    /// rules: [`default_rules`].
    #[serde(default)]
    pub rules: Vec<Spanned<MatchRule>>,
    /// CSV of manual decisions, relative to the project: `left_uid,right_uid,decision` with
    /// uids as `source:record_id` and decision `match` (always) or `no_match` (never).
    #[serde(default)]
    pub overrides: Option<Spanned<String>>,
    /// Blocks (records sharing a rule's exact key) larger than this are skipped with a warning.
    #[serde(default = "default_max_block_size")]
    pub max_block_size: usize,
    /// Customers with more records than this are counted in `unify_stats.large_clusters` and
    /// warned about (likely over-merging).
    #[serde(default = "default_large_cluster")]
    pub large_cluster: usize,
    /// Merge customers in this many chunks (by id) to bound memory; default: as many as the
    /// memory budget needs (1 up to a few million records).
    #[serde(default)]
    pub merge_chunks: Option<usize>,
    /// A run after a good one unifies incrementally (stages and compares only new, changed
    /// and deleted records) unless more than this share of the records changed; 0 turns
    /// incremental unification off.
    #[serde(default = "default_incremental_max_change")]
    pub incremental_max_change: f64,
}

/// How pairs are decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchMode {
    /// Ordered deterministic rules (`[[unify.rules]]`, or the built-in ones).
    Rules,
    /// Fellegi–Sunter with m learned by EM (`[unify.probabilistic]`).
    Probabilistic,
}

impl UnifySection {
    /// `[unify.fields]` without their spans.
    pub fn custom_fields(&self) -> fields::CustomFields {
        self.fields
            .iter()
            .map(|(k, v)| (k.clone(), v.get_ref().clone()))
            .collect()
    }

    /// `[unify.probabilistic]` (or its defaults) knowing the project's custom fields: they are
    /// compared by default, and those of kind `name` weighed by term frequency.
    pub fn probabilistic_section(&self) -> probabilistic::ProbabilisticSection {
        let mut p = self.probabilistic.clone().unwrap_or_default();
        p.custom = self.custom_fields();
        use probabilistic::{default_comparisons, default_term_frequency};
        if p.comparisons == default_comparisons() {
            p.comparisons.extend(p.custom.keys().cloned());
        }
        if p.term_frequency == default_term_frequency() {
            p.term_frequency.extend(
                p.custom
                    .iter()
                    .filter(|(_, d)| d.kind.term_frequency())
                    .map(|(k, _)| k.clone()),
            );
        }
        p
    }

    /// The mode in force.
    pub fn match_mode(&self) -> MatchMode {
        match self.mode {
            Some(m) => m,
            None if !self.rules.is_empty() => MatchMode::Rules,
            None => MatchMode::Probabilistic,
        }
    }
}

fn default_incremental_max_change() -> f64 {
    0.2
}
fn default_max_block_size() -> usize {
    1_000
}
fn default_large_cluster() -> usize {
    50
}

/// Which column (or SQL expression over the columns) of a source holds each field.
/// Unmapped fields are NULL.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct SourceMap {
    /// Record identifier; default: the source's primary key (a single column).
    pub record_id: Option<String>,
    pub first_name: Option<Mapped>,
    pub last_name: Option<Mapped>,
    /// A whole name ("Smith, Jon", "Jon Smith"); split when first/last are not mapped.
    pub full_name: Option<Mapped>,
    pub email: Option<Mapped>,
    pub phone: Option<Mapped>,
    pub street: Option<Mapped>,
    pub postcode: Option<Mapped>,
    pub city: Option<Mapped>,
    /// ISO country code; also the region national phone numbers are read in.
    pub country: Option<Mapped>,
    pub birth_date: Option<Mapped>,
    pub gender: Option<Mapped>,
    pub company: Option<Mapped>,
    /// When the record last changed; used by `most_recent` merge and dedup policies.
    pub updated_at: Option<Mapped>,
    /// Merge precedence: 1 is the most trusted source. Default: order of appearance.
    pub priority: Option<i64>,
    /// Default phone region for sources without a country column (e.g. "NL").
    pub default_region: Option<String>,
    /// Deduplication within this source: of a customer's records from this source, only the
    /// winner feeds the merged profile (all stay linked). Default: every record feeds it.
    pub dedup: Option<DedupPolicy>,
    /// Every other key: a `[unify.fields.<name>]` field mapped to a column or expression
    /// (checked by [`SourceMap::check`], which names unknown keys).
    #[serde(flatten)]
    pub custom: BTreeMap<String, toml::Value>,
}

/// A mapped value: a column name (`email = "e_mail"`) or a SQL expression over the source's
/// columns (`street = { sql = "split_part(address, ', ', 1)" }`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Mapped {
    Column(String),
    Expr { sql: String },
}

impl Mapped {
    /// The value as SQL over the source table.
    pub fn sql(&self) -> String {
        match self {
            Mapped::Column(c) => crate::sql_text::ident(c),
            Mapped::Expr { sql } => format!("({sql})"),
        }
    }

    /// The column, when the value is one column.
    pub fn column(&self) -> Option<&str> {
        match self {
            Mapped::Column(c) => Some(c),
            Mapped::Expr { .. } => None,
        }
    }

    /// The SQL, when the value is an expression.
    pub fn expression(&self) -> Option<&str> {
        match self {
            Mapped::Column(_) => None,
            Mapped::Expr { sql } => Some(sql),
        }
    }

    fn from_value(key: &str, v: &toml::Value) -> Result<Mapped, crate::config::Problem> {
        Mapped::deserialize(v.clone()).map_err(|_| {
            Problem(format!(
                "`{key}` must be a column name or {{ sql = \"...\" }}, got {v}"
            ))
        })
    }
}

/// The keys of `[unify.sources.<source>]` besides the custom fields.
const SOURCE_MAP_KEYS: &[&str] = &[
    "record_id",
    "first_name",
    "last_name",
    "full_name",
    "email",
    "phone",
    "street",
    "postcode",
    "city",
    "country",
    "birth_date",
    "gender",
    "company",
    "updated_at",
    "priority",
    "default_region",
    "dedup",
];

impl SourceMap {
    /// The built-in mapped values by field name (as in the config).
    pub fn builtin(&self) -> Vec<(&'static str, &Mapped)> {
        [
            ("first_name", &self.first_name),
            ("last_name", &self.last_name),
            ("full_name", &self.full_name),
            ("email", &self.email),
            ("phone", &self.phone),
            ("street", &self.street),
            ("postcode", &self.postcode),
            ("city", &self.city),
            ("country", &self.country),
            ("birth_date", &self.birth_date),
            ("gender", &self.gender),
            ("company", &self.company),
            ("updated_at", &self.updated_at),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
        .collect()
    }

    /// The custom fields this source maps, checked against `[unify.fields]`.
    pub fn custom_fields(
        &self,
        fields: &fields::CustomFields,
    ) -> Result<BTreeMap<String, Mapped>, crate::config::Problem> {
        let mut out = BTreeMap::new();
        for (key, v) in &self.custom {
            if !fields.contains_key(key) {
                let mut known: Vec<&str> = SOURCE_MAP_KEYS.to_vec();
                known.extend(fields.keys().map(|k| k.as_str()));
                return Err(Problem(format!(
                    "unknown field `{key}`: declare it as [unify.fields.{key}] with a kind, or use one of {}",
                    known.join(", ")
                )));
            }
            out.insert(key.clone(), Mapped::from_value(key, v)?);
        }
        Ok(out)
    }

    /// Whether this source maps `field` (built-in or custom).
    pub fn maps(&self, field: &str) -> bool {
        self.builtin().iter().any(|(k, _)| *k == field) || self.custom.contains_key(field)
    }

    /// Every SQL expression this mapping holds, with its key (for checking at config load).
    pub fn expressions(&self) -> Vec<(String, String)> {
        let builtin = self.builtin().into_iter().filter_map(|(k, m)| match m {
            Mapped::Expr { sql } => Some((k.to_string(), sql.clone())),
            Mapped::Column(_) => None,
        });
        let custom = self
            .custom
            .iter()
            .filter_map(|(k, v)| match Mapped::from_value(k, v) {
                Ok(Mapped::Expr { sql }) => Some((k.clone(), sql)),
                _ => None,
            });
        builtin.chain(custom).collect()
    }
}

/// Which of a customer's records from one source wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DedupPolicy {
    /// The most recently updated (`updated_at`); records without a time lose.
    MostRecent,
    /// The least recently updated.
    LeastRecent,
    /// The record with the most mapped fields filled; ties go to the most recent.
    MostFilled,
}

/// Columns of an event source that carries anonymous ids.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityMap {
    /// The anonymous identifier (cookie or device id).
    pub anonymous_id: String,
    /// What kind of id it is, e.g. "cookie" or "device".
    #[serde(default = "default_id_type")]
    pub id_type: String,
    /// E-mail seen on some events (login, sign-up): ties the anonymous id to a customer.
    pub email: Option<String>,
    /// Phone seen on some events.
    pub phone: Option<String>,
    /// Event time.
    pub timestamp: Option<String>,
    /// A customer's id in another system (the `userId` of `identify`): ties the anonymous
    /// id to the customer whose `user_source` record has this id.
    pub user_id: Option<String>,
    /// The unified source whose record ids `user_id` holds.
    pub user_source: Option<String>,
}

fn default_id_type() -> String {
    "anonymous".into()
}

/// Semantic fields a rule can compare.
pub const FIELDS: &[&str] = &[
    "first_name",
    "first_initial",
    "last_name",
    "last_name_phonetic",
    "email",
    "phone",
    "phone_digits",
    "street",
    "postcode",
    "city",
    "country",
    "birth_date",
    "gender",
    "company",
];

/// One rule: all conditions must hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchRule {
    pub name: String,
    pub conditions: Vec<Condition>,
}

/// A field comparison.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub field: String,
    /// `exact` (1.0), `high` (0.8), `medium` (0.6), `low`/`basic` (0.3), a number, or
    /// `compatible` (equal, or missing on either side).
    #[serde(default = "exact")]
    pub precision: Precision,
}

fn exact() -> Precision {
    Precision::Exact
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Precision {
    Exact,
    /// Normalized similarity threshold, `(len - edits) / len`.
    Fuzzy(f64),
    /// Equal when both present; a missing value does not contradict.
    Compatible,
    /// One side is a single letter, the other's initial ("J" and "jurgen").
    Initial,
}

impl<'de> Deserialize<'de> for Precision {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            Number(f64),
        }
        match Raw::deserialize(d)? {
            Raw::Number(x) if (0.0..=1.0).contains(&x) => Ok(if x == 1.0 { Precision::Exact } else { Precision::Fuzzy(x) }),
            Raw::Number(x) => Err(serde::de::Error::custom(format!("precision must be between 0 and 1, got {x}"))),
            Raw::Name(n) => match n.as_str() {
                "exact" => Ok(Precision::Exact),
                "high" => Ok(Precision::Fuzzy(0.8)),
                "medium" => Ok(Precision::Fuzzy(0.6)),
                "low" | "basic" => Ok(Precision::Fuzzy(0.3)),
                "compatible" => Ok(Precision::Compatible),
                "initial" => Ok(Precision::Initial),
                other => Err(serde::de::Error::custom(format!(
                    "unknown precision `{other}`: use exact, high, medium, low, basic, compatible, initial or a number"
                ))),
            },
        }
    }
}

/// Why a rule cannot be compiled; `fields` are the staged fields (built-in and custom).
pub fn check_rule(rule: &MatchRule, fields: &[String]) -> Result<(), crate::config::Problem> {
    if rule.conditions.is_empty() {
        return Err(Problem(format!("rule `{}` has no conditions", rule.name)));
    }
    for c in &rule.conditions {
        if !fields.contains(&c.field) {
            return Err(Problem(format!(
                "rule `{}`: unknown field `{}` (fields: {})",
                rule.name,
                c.field,
                fields.join(", ")
            )));
        }
    }
    if !rule
        .conditions
        .iter()
        .any(|c| c.precision == Precision::Exact)
    {
        return Err(Problem(format!(
            "rule `{}` has no exact condition, so it cannot be blocked (every record would be compared with every other); add an exact condition",
            rule.name
        )));
    }
    Ok(())
}

/// The column that identifies a mapped source's records: the mapping's `record_id`, else the
/// source's single-column primary key. `what` names the config table in errors.
pub(crate) fn record_id_column(
    cfg: &super::ProjectConfig,
    src: &super::SourceConfig,
    source: &str,
    record_id: &Option<String>,
    what: &str,
) -> crate::error::Result<String> {
    if let Some(r) = record_id {
        return Ok(r.clone());
    }
    let pk = src.primary_key.get_ref().columns();
    if pk.len() != 1 {
        return Err(cfg.error_at(
            src.primary_key.span(),
            format!("{what}.{source}: the primary key has several columns; set record_id"),
        ));
    }
    Ok(pk[0].clone())
}

/// Rules used when the config gives none: strong identifiers confirmed by a name, and
/// name + birth date or address for records without shared identifiers. Household members
/// (same surname, address and landline) differ in first name and birth date.
pub fn default_rules() -> Vec<MatchRule> {
    let c = |field: &str, precision: Precision| Condition {
        field: field.into(),
        precision,
    };
    use Precision::*;
    // Conditions that only rule records out when both sides have a value.
    let no_conflict = |mut v: Vec<Condition>| {
        for f in ["birth_date", "email", "phone_digits"] {
            if !v.iter().any(|x| x.field == f) {
                v.push(c(f, Compatible));
            }
        }
        v
    };
    vec![
        MatchRule {
            name: "email+first_name".into(),
            conditions: vec![
                c("email", Exact),
                c("first_name", Fuzzy(0.6)),
                c("birth_date", Compatible),
            ],
        },
        MatchRule {
            name: "email+last_name+initial".into(),
            conditions: vec![
                c("email", Exact),
                c("first_name", Initial),
                c("last_name", Fuzzy(0.8)),
                c("birth_date", Compatible),
            ],
        },
        // The last nine digits identify a number whatever its format or country prefix.
        MatchRule {
            name: "phone+name".into(),
            conditions: vec![
                c("phone_digits", Exact),
                c("first_name", Fuzzy(0.6)),
                c("last_name", Fuzzy(0.6)),
                c("birth_date", Compatible),
            ],
        },
        MatchRule {
            name: "phone+last_name+initial".into(),
            conditions: vec![
                c("phone_digits", Exact),
                c("first_name", Initial),
                c("last_name", Fuzzy(0.8)),
                c("birth_date", Compatible),
            ],
        },
        // Same mailbox and same phone: typos and nicknames in the first name do not matter,
        // but households share both, so the initial must agree.
        MatchRule {
            name: "email+phone+last_name".into(),
            conditions: vec![
                c("email", Exact),
                c("phone_digits", Exact),
                c("first_initial", Exact),
                c("last_name", Fuzzy(0.8)),
                c("birth_date", Compatible),
            ],
        },
        // Records without a shared identifier: name and birth date, or name and exact address,
        // as long as no identifier contradicts.
        MatchRule {
            name: "name+birth_date".into(),
            conditions: no_conflict(vec![
                c("last_name_phonetic", Exact),
                c("birth_date", Exact),
                c("first_name", Fuzzy(0.8)),
                c("last_name", Fuzzy(0.8)),
            ]),
        },
        MatchRule {
            name: "initial+last_name+birth_date".into(),
            conditions: no_conflict(vec![
                c("last_name_phonetic", Exact),
                c("birth_date", Exact),
                c("first_initial", Exact),
                c("first_name", Initial),
                c("last_name", Fuzzy(0.8)),
            ]),
        },
        MatchRule {
            name: "name+address".into(),
            conditions: no_conflict(vec![
                c("postcode", Exact),
                c("street", Exact),
                c("last_name_phonetic", Exact),
                c("first_name", Fuzzy(0.8)),
                c("last_name", Fuzzy(0.8)),
            ]),
        },
        MatchRule {
            name: "initial+address".into(),
            conditions: no_conflict(vec![
                c("postcode", Exact),
                c("street", Exact),
                c("last_name_phonetic", Exact),
                c("first_name", Initial),
                c("last_name", Fuzzy(0.8)),
            ]),
        },
    ]
}
