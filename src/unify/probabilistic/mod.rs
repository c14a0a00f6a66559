//! Probabilistic matching (Fellegi–Sunter), the default when no match rules are given.
//!
//! Candidate pairs come from blocking rules (equi-joins on staged fields; a pair is produced
//! by the first rule it satisfies only, so no de-duplication pass is needed). Every pair gets
//! a comparison level per field (SQL, with our similarity UDFs). u is measured on random
//! record pairs, m is learned by EM on the candidates' level patterns, exact name agreement is
//! weighed by how common the name is (term frequency), and a pair matches when its match
//! probability reaches the threshold. Clear disagreement on a field listed in
//! `contradictions` (first name, birth date) vetoes a match whatever else agrees: household
//! members share surname, address, phone and sometimes a mailbox, evidence the independence
//! assumption would otherwise add up.

pub mod blocking;
pub mod comparisons;
pub mod em;
pub mod variants;
pub mod vetoes;

use std::sync::Arc;

use arrow::array::{Array, AsArray, Float64Builder, Int64Builder, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Int8Type, Schema};
use datafusion::prelude::SessionContext;

use super::config::FIELDS;
pub(crate) use super::matching::agree_sql;
use super::matching::{register_near, Sides};
use super::staging::literal;
use super::{collect, register, UnifyReport};
use crate::config::unify::fields::FieldKind;
pub use crate::config::unify::probabilistic::{Contradiction, ProbabilisticSection};
use crate::error::{Error, Result};
use crate::table_catalog::names;
use comparisons::Comparison;
use em::{Model, Pattern};

impl ProbabilisticSection {
    pub(crate) fn comparisons(&self) -> Vec<Comparison> {
        let mut comps: Vec<Comparison> = self
            .comparisons
            .iter()
            .filter_map(|f| comparisons::comparison(f, &self.custom))
            .map(|mut c| {
                // Last, so that it only holds names no spelling level matched.
                if c.field == variants::FIELD {
                    c.levels.push(comparisons::Level {
                        label: "learned variant".into(),
                        condition: variants::condition(&self.name_variants),
                    });
                }
                c
            })
            .collect();
        // Where two postcodes are different (not near: not one edit apart, not the same
        // area) neither the street nor the city is compared: "another address in another
        // town" is what the postcodes just said, and counting it again took 8.5 + 8 more
        // bits from every true pair that had moved (demo: a customer who moved from Boston to
        // Chicago, same name, e-mail and phone, fell to p = 0.93, so an increment and a full
        // run, whose models differ by a hair, split on it). Equal or near postcodes still
        // leave both to say which house, or to corroborate a typo. Measured (100k, default
        // settings; city alone, then street too): demo F1 0.9809 -> 0.9816 -> 0.9822, the
        // independent generator 0.9669 -> 0.9650 -> 0.9654 (its pairs without a first name
        // moved below the threshold as EM refitted, none with a city), FEBRL4 0.9993 ->
        // 0.9992 -> 0.9993, FEBRL3 0.9989 -> 0.9985 -> 0.9985.
        if let Some(postcode) = comps.iter().find(|c| c.field == "postcode") {
            let moved = format!("({}) = 0", postcode.level_sql("{L}", "{R}"));
            for c in comps
                .iter_mut()
                .filter(|c| c.field == "city" || c.field == "street")
            {
                c.unless = Some(comparisons::Unless {
                    condition: moved.clone(),
                    reason: "not compared: the postcodes are different".into(),
                });
            }
        }
        comps
    }

    /// `skip[b][c]`: comparison c is one of blocking rule b's fields, or goes with one (a
    /// surname with its phonetic code, an address part with another where the data says so):
    /// pairs a rule finds agree on those whether they match or not, so they say nothing
    /// about those pairs.
    fn skip(&self, comps: &[Comparison]) -> Vec<Vec<bool>> {
        self.blocking
            .iter()
            .map(|key| {
                comps
                    .iter()
                    .map(|c| self.stands_in(key, &c.field))
                    .collect()
            })
            .collect()
    }

    /// Whether blocking rule `key` stands in for the comparison of `field`: one of its
    /// fields, a field derived from one (a phonetic code, an initial, the phone's digits), or
    /// another part of the address — unless the rule's non-matching pairs seldom agree on
    /// that part ([`rule_dependence`]).
    pub(crate) fn stands_in(&self, key: &[String], field: &str) -> bool {
        key.iter().any(|k| {
            k == field
                || related(k).contains(&field)
                || (self.locates(k) && self.address_part(field))
        }) && {
            let rule = block_name(key);
            !self.compared.iter().any(|(r, f)| *r == rule && f == field)
        }
    }

    /// Whether `field` is a part of the address: the built-in postcode, street and city, and
    /// every custom field of kind `postcode` or `address` (a second address, or one source's
    /// address in one string: which of them go together the data says, [`rule_dependence`]).
    pub(crate) fn address_part(&self, field: &str) -> bool {
        ADDRESS.contains(&field)
            || matches!(
                self.custom.get(field).map(|d| d.kind),
                Some(FieldKind::Postcode | FieldKind::Address)
            )
    }

    /// Whether a key on `field` places a record finely enough to first stand in for the other
    /// address parts: any address part but the city (a city holds many streets).
    fn locates(&self, field: &str) -> bool {
        field != "city" && self.address_part(field)
    }

    /// Set [`Self::compared`] from the measured shares.
    fn adopt_dependence(&mut self, dependence: &[(String, String, f64)]) {
        self.compared = dependence
            .iter()
            .filter(|(_, _, share)| *share < 0.5)
            .map(|(r, f, _)| (r.clone(), f.clone()))
            .collect();
    }
}

/// The address parts whose dependence on a rule is measured rather than assumed.
const ADDRESS: [&str; 3] = ["postcode", "street", "city"];

/// For each blocking rule whose key holds an address part, how often its non-matching pairs
/// agree on each other address part: the share, weighted by each pair's probability of not
/// matching under `model` (trained with the key standing in for every address part), of the
/// pairs with the part filled on both sides that agree on it exactly — the rule's own u for
/// the part. Below a half, agreeing on the part says something the key did not (more than one
/// bit), so the part is compared for that rule's pairs instead of being left to its prior.
/// Rules with less than one non-matching pair expected keep the assumption. Returns (rule,
/// part, share).
///
/// The data decides because addresses differ. The 1M demo's streets ("170 church ln") recur
/// across towns: few of the non-matching pairs `first_name+street` finds share the postcode,
/// and leaving postcode and city to that rule's prior (12% of its pairs match) kept 3,965 true
/// pairs with one name and one address below the threshold. The independent generator's
/// `last_name+postcode` pairs that do not match are households at one street address:
/// comparing the street there counted one address twice and merged households.
pub(crate) fn rule_dependence(
    section: &ProbabilisticSection,
    comps: &[Comparison],
    pats: &[Pattern],
    model: &Model,
    skip: &[Vec<bool>],
) -> Vec<(String, String, f64)> {
    let mut out = Vec::new();
    for (b, key) in section.blocking.iter().enumerate() {
        if !key.iter().any(|k| section.address_part(k)) {
            continue;
        }
        let parts: Vec<usize> = (0..comps.len())
            .filter(|&c| {
                let field = comps[c].field.as_str();
                section.address_part(field) && !key.iter().any(|k| k == field)
            })
            .collect();
        // Per part: the non-matching pairs with it filled, and those agreeing on it.
        let mut filled = vec![0.0; parts.len()];
        let mut agree = vec![0.0; parts.len()];
        for p in pats.iter().filter(|p| p.block == b) {
            let non_match = p.count as f64 * (1.0 - probability(model.match_weight(p, skip)));
            for (i, &c) in parts.iter().enumerate() {
                if let Some(g) = p.levels[c] {
                    filled[i] += non_match;
                    if usize::from(g) == comps[c].level_count() - 1 {
                        agree[i] += non_match;
                    }
                }
            }
        }
        for (i, &c) in parts.iter().enumerate() {
            if filled[i] >= 1.0 {
                out.push((
                    block_name(key),
                    comps[c].field.clone(),
                    agree[i] / filled[i],
                ));
            }
        }
    }
    out
}

/// The compared fields that describe the same thing as `field` (one address, one surname, one
/// phone): blocking keys and vetoes never pair them.
pub(crate) fn related(field: &str) -> &'static [&'static str] {
    match field {
        "postcode" | "street" => &["postcode", "street", "city"],
        "city" => &["city"],
        "last_name" | "last_name_phonetic" => &["last_name"],
        "first_name" | "first_initial" => &["first_name"],
        "phone" | "phone_digits" => &["phone", "phone_digits"],
        other => FIELDS
            .iter()
            .position(|f| *f == other)
            .map(|i| &FIELDS[i..i + 1])
            .unwrap_or(&[]),
        // A custom field: itself only (custom address parts: `ProbabilisticSection::stands_in`).
    }
}

/// Name of a blocking rule, e.g. `block:last_name_phonetic+birth_date`.
pub fn block_name(key: &[String]) -> String {
    format!("block:{}", key.join("+"))
}

/// The probability of a match weight (bits).
pub fn probability(weight: f64) -> f64 {
    1.0 / (1.0 + (-weight).exp2())
}

/// The learned model as SQL scoring expressions and as the `match_weights` table.
pub struct Scoring {
    pub comparisons: Vec<Comparison>,
    pub model: Model,
    pub skip: Vec<Vec<bool>>,
    pub term_frequency: Vec<String>,
}

impl Scoring {
    /// SQL of a pair's match weight over a table with `block`, `g_<field>` and `tf_<field>`
    /// (and `key_bin`, the prior cell, when the model has a prior per cell: [`em::cell`]).
    pub fn weight_sql(&self) -> String {
        let prior = if self.model.lambda_size.is_empty() {
            let priors: Vec<String> = (0..self.skip.len())
                .map(|b| format!("WHEN {b} THEN {:.9}", self.model.prior(b)))
                .collect();
            format!("CASE block {} END", priors.join(" "))
        } else {
            let priors: Vec<String> = (0..self.skip.len())
                .flat_map(|b| {
                    (0..em::CELLS).map(move |cell| {
                        format!(
                            "WHEN {} THEN {:.9}",
                            b * em::CELLS + cell,
                            self.model.prior_at(b, cell)
                        )
                    })
                })
                .collect();
            format!(
                "CASE block * {} + key_bin {} END",
                em::CELLS,
                priors.join(" ")
            )
        };
        let mut terms = vec![prior];
        for (c, comp) in self.comparisons.iter().enumerate() {
            let g = comp.column();
            let own_blocks: Vec<String> = (0..self.skip.len())
                .filter(|b| self.skip[*b][c])
                .map(|b| b.to_string())
                .collect();
            let mut t = format!("CASE WHEN {g} IS NULL THEN 0.0");
            if !own_blocks.is_empty() {
                t.push_str(&format!(
                    " WHEN block IN ({}) THEN 0.0",
                    own_blocks.join(", ")
                ));
            }
            let top = comp.level_count() - 1;
            if self.term_frequency.contains(&comp.field) {
                t.push_str(&format!(
                    " WHEN {g} = {top} AND tf_{f} > 0 THEN log2({m:.12} / tf_{f})",
                    f = comp.field,
                    m = self.model.m[c][top]
                ));
            }
            for level in 0..comp.level_count() {
                t.push_str(&format!(
                    " WHEN {g} = {level} THEN {:.9}",
                    self.model.weight(c, level)
                ));
            }
            t.push_str(" ELSE 0.0 END");
            terms.push(t);
        }
        terms.join("\n + ")
    }

    /// SQL condition that is true when a contradiction vetoes the pair.
    pub fn veto_sql(contradictions: &[Contradiction]) -> String {
        if contradictions.is_empty() {
            return "false".into();
        }
        contradictions
            .iter()
            .map(|c| {
                let all: Vec<String> = c
                    .fields()
                    .iter()
                    .map(|f| format!("coalesce(g_{f} = 0, false)"))
                    .collect();
                format!("({})", all.join(" AND "))
            })
            .collect::<Vec<_>>()
            .join(" OR ")
    }

    /// The model as rows: one per comparison level, one prior per blocking rule (label
    /// `block:<fields>`, m its share of matches over all its pairs), one prior per rule and
    /// cell (comparison `prior_size`, level rule × [`em::CELLS`] + cell, label
    /// `block:<fields>, ` and [`em::cell_label`]: the prior that scores), one row per veto
    /// (comparison `veto`, label the fields joined by `+`, m and u of the disagreement when
    /// the veto was learned), and one per learned
    /// given-name variant (comparison `variant`, label `name|name`, weight the bits by which
    /// the names went together more often than chance), and one per address part compared
    /// for a rule on another part (comparison `rule_compares`, label `block:<fields>>part`, m
    /// the share of the rule's non-matching pairs that agree on the part).
    pub fn weights_batch(
        &self,
        blocking: &[Vec<String>],
        learned: &[vetoes::Learned],
        vetoes: &[Contradiction],
        variants: &[variants::Variant],
        dependence: &[(String, String, f64)],
    ) -> Result<RecordBatch> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("comparison", DataType::Utf8, false),
            Field::new("level", DataType::Int64, false),
            Field::new("label", DataType::Utf8, false),
            Field::new("m", DataType::Float64, true),
            Field::new("u", DataType::Float64, true),
            Field::new("weight", DataType::Float64, true),
            Field::new("term_frequency", DataType::Boolean, false),
        ]));
        let (mut comp, mut level, mut label) = (
            StringBuilder::new(),
            Int64Builder::new(),
            StringBuilder::new(),
        );
        let (mut m, mut u, mut w) = (
            Float64Builder::new(),
            Float64Builder::new(),
            Float64Builder::new(),
        );
        let mut tf = arrow::array::BooleanBuilder::new();
        for (b, key) in blocking.iter().enumerate() {
            comp.append_value("prior");
            level.append_value(b as i64);
            label.append_value(block_name(key));
            m.append_value(self.model.lambda[b]);
            u.append_null();
            w.append_value(self.model.prior(b));
            tf.append_value(false);
        }
        for (b, key) in blocking.iter().enumerate() {
            let Some(shares) = self.model.lambda_size.get(b) else {
                continue;
            };
            for (cell, share) in shares.iter().enumerate() {
                comp.append_value("prior_size");
                level.append_value((b * em::CELLS + cell) as i64);
                label.append_value(format!("{}, {}", block_name(key), em::cell_label(cell)));
                m.append_value(*share);
                u.append_null();
                w.append_value(self.model.prior_at(b, cell));
                tf.append_value(false);
            }
        }
        for (i, v) in vetoes.iter().enumerate() {
            comp.append_value("veto");
            level.append_value(i as i64);
            label.append_value(v.fields().join("+"));
            match learned.iter().find(|l| &l.veto == v) {
                Some(l) => {
                    m.append_value(l.m);
                    u.append_value(l.u);
                    w.append_value((l.m / l.u).log2());
                }
                None => {
                    m.append_null();
                    u.append_null();
                    w.append_null();
                }
            }
            tf.append_value(false);
        }
        for (i, v) in variants.iter().enumerate() {
            comp.append_value("variant");
            level.append_value(i as i64);
            label.append_value(v.label());
            m.append_null();
            u.append_null();
            // How many times more often than chance the names went together, in bits.
            w.append_value((v.pairs as f64 / v.expected.max(1e-12)).log2());
            tf.append_value(false);
        }
        for (i, (rule, field, share)) in dependence.iter().enumerate() {
            // Only the parts compared: `adopt_plan` reads them back.
            if *share >= 0.5 {
                continue;
            }
            comp.append_value("rule_compares");
            level.append_value(i as i64);
            label.append_value(format!("{rule}>{field}"));
            m.append_value(*share);
            u.append_null();
            w.append_null();
            tf.append_value(false);
        }
        for (c, cmp) in self.comparisons.iter().enumerate() {
            for g in (0..cmp.level_count()).rev() {
                comp.append_value(&cmp.field);
                level.append_value(g as i64);
                label.append_value(cmp.label(g));
                m.append_value(self.model.m[c][g]);
                u.append_value(self.model.u[c][g]);
                w.append_value(self.model.weight(c, g));
                tf.append_value(
                    g == cmp.level_count() - 1 && self.term_frequency.contains(&cmp.field),
                );
            }
        }
        Ok(RecordBatch::try_new(
            schema,
            vec![
                Arc::new(comp.finish()),
                Arc::new(level.finish()),
                Arc::new(label.finish()),
                Arc::new(m.finish()),
                Arc::new(u.finish()),
                Arc::new(w.finish()),
                Arc::new(tf.finish()),
            ],
        )?)
    }
}

/// What the probabilistic matcher produced.
pub struct Matched {
    /// `match_pairs` rows: left_uid, right_uid, rule, score, match_weight, g_<field>...
    pub pairs: Vec<RecordBatch>,
    pub weights: RecordBatch,
    /// `match_score_histogram` rows: every scored candidate pair by whole bits of weight.
    pub histogram: Vec<RecordBatch>,
    /// `match_term_frequencies` rows (field, value, tf): what exact name agreement weighed,
    /// kept so that incremental runs and single-record matches weigh it the same.
    pub term_frequencies: Vec<RecordBatch>,
    /// `blocking_plan` rows when the blocking was chosen from the data.
    pub blocking_plan: Option<RecordBatch>,
}

/// Term-frequency tables `unify_tf_<field>` (value, tf); returns Σ tf², the chance that two
/// random records agree exactly on the field.
async fn term_frequencies(ctx: &SessionContext, field: &str) -> Result<f64> {
    let sql = format!(
        "SELECT {field} AS value, CAST(count(*) AS DOUBLE) / (SELECT count({field}) FROM unify_records) AS tf \
         FROM unify_records WHERE {field} IS NOT NULL GROUP BY {field}"
    );
    let batches = collect(ctx, &sql, &format!("term frequencies of {field}")).await?;
    let mut sum_sq = 0.0;
    for b in &batches {
        let tf = b.column(1).as_primitive::<arrow::datatypes::Float64Type>();
        sum_sq += tf.values().iter().map(|t| t * t).sum::<f64>();
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("value", b_type(&batches), true),
        Field::new("tf", DataType::Float64, true),
    ]));
    let batches = batches
        .iter()
        .map(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    register(ctx, &format!("unify_tf_{field}"), batches, schema)?;
    Ok(sum_sq)
}

fn b_type(batches: &[RecordBatch]) -> DataType {
    batches
        .first()
        .map(|b| b.schema().field(0).data_type().clone())
        .unwrap_or(DataType::Utf8)
}

/// Level counts per comparison over random record pairs (a cross join of two random samples).
/// The samples are drawn by a hash of the record id, not `random()`: the same records give the
/// same model, so re-running unchanged sources does not move borderline pairs (and ids).
async fn random_pair_counts(
    ctx: &SessionContext,
    comps: &[Comparison],
    sample_pairs: usize,
) -> Result<Vec<Vec<u64>>> {
    let side = (sample_pairs as f64).sqrt().ceil() as usize;
    let levels: Vec<String> = comps
        .iter()
        .map(|c| format!("{} AS {}", c.level_sql("l", "r"), c.column()))
        .collect();
    let sql = format!(
        "SELECT {levels} FROM (SELECT * FROM unify_records ORDER BY md5(uid || ':left') LIMIT {side}) l \
         CROSS JOIN (SELECT * FROM unify_records ORDER BY md5(uid || ':right') LIMIT {side}) r \
         WHERE l.uid <> r.uid",
        levels = levels.join(", ")
    );
    let batches = collect(ctx, &sql, "random pairs").await?;
    let mut counts: Vec<Vec<u64>> = comps.iter().map(|c| vec![0; c.level_count()]).collect();
    for b in &batches {
        for (c, col) in b.columns().iter().enumerate() {
            let g = col.as_primitive::<Int8Type>();
            for v in g.iter().flatten() {
                counts[c][v as usize] += 1;
            }
        }
    }
    Ok(counts)
}

/// Candidate pairs of blocking rule `b`, with comparison levels and term frequencies. A pair
/// found by several rules appears once per rule (EM learns from each, as in Splink's
/// per-rule training sessions); `first_block` names the rule that scores it, `key_bin` its
/// prior cell ([`em::cell`]): the size bin of the pair's key under rule `b` (from
/// `unify_key_size_<b>`, [`key_sizes`]) and whether both records are of one source.
fn candidates_sql(
    section: &ProbabilisticSection,
    comps: &[Comparison],
    b: usize,
    skip_table: Option<&str>,
    sides: Sides,
) -> String {
    let key = &section.blocking[b];
    let (from, side_filter) = sides.from_clause(key);
    let mut filters = vec!["l.uid < r.uid".to_string()];
    filters.extend(side_filter.map(String::from));
    // The first rule that finds the pair scores it; the others still train on it.
    let mut first = String::from("CASE");
    for (e, earlier) in section.blocking[..b].iter().enumerate() {
        first.push_str(&format!(
            " WHEN coalesce({}, false) THEN {e}",
            agree_sql(earlier)
        ));
    }
    first.push_str(&format!(" ELSE {b} END"));
    if b == 0 {
        first = "0".into();
    }
    // The pair's levels first; the frequencies and the key's size are then looked up for
    // these narrow rows (see [`term_frequency_sql`]: 3.45 s -> ~1.2 s for the 1M demo's 2 M
    // pairs of first name + street), not joined to both whole records.
    let mut inner = vec![
        "l.uid AS left_uid".to_string(),
        "r.uid AS right_uid".to_string(),
        format!("CAST({b} AS INT) AS block"),
        format!("CAST({first} AS INT) AS first_block"),
    ];
    let mut outer: Vec<String> = ["left_uid", "right_uid", "block", "first_block"]
        .iter()
        .map(|c| format!("p.{c}"))
        .collect();
    for c in comps {
        inner.push(format!("{} AS {}", c.level_sql("l", "r"), c.column()));
        outer.push(format!("p.{}", c.column()));
    }
    let tf = term_frequency_sql(&section.term_frequency);
    inner.extend(tf.inner);
    outer.extend(tf.outer);
    inner.push("l.source AS l_source".into());
    inner.push("r.source AS r_source".into());
    inner.extend(key.iter().map(|k| format!("l.{k} AS key_{k}")));
    outer.push(format!(
        "{} AS key_bin",
        em::cell_sql("ks.n", "p.l_source", "p.r_source")
    ));
    let on: Vec<String> = key.iter().map(|k| format!("ks.{k} = p.key_{k}")).collect();
    let joins = format!(
        "{} LEFT JOIN {} ks ON {}",
        tf.joins,
        key_size_table(b),
        on.join(" AND ")
    );
    let mut skip = String::new();
    if let Some(t) = skip_table {
        let on: Vec<String> = key.iter().map(|k| format!("s.{k} = l.{k}")).collect();
        skip = format!(" LEFT JOIN {t} s ON {}", on.join(" AND "));
        filters.push(format!("s.{} IS NULL", key[0]));
    }
    format!(
        "SELECT {outer} FROM (SELECT {inner} FROM {from}{skip} WHERE {filters}) p{joins}",
        outer = outer.join(", "),
        inner = inner.join(", "),
        filters = filters.join(" AND "),
    )
}

/// Name of the table [`key_sizes`] registers for blocking rule `b`.
fn key_size_table(b: usize) -> String {
    format!("unify_key_size_{b}")
}

/// Register `unify_key_size_<b>`: the values of rule `b`'s key held by 2 to
/// [`em::SIZE_COUNTED`] records of `unify_records`, with how many hold each (`n`); a key
/// the table lacks is held by more (or makes no pair). With `sides` other than
/// [`Sides::All`] (an incremental run), only the keys the touched records (`unify_delta`)
/// hold, counted over `unify_near` ([`register_near`], registered
/// for `key` first): every pair compared has one of them.
async fn key_sizes(ctx: &SessionContext, key: &[String], b: usize, sides: Sides) -> Result<()> {
    let cols: Vec<String> = key.iter().map(|k| format!("r.{k}")).collect();
    let cols = cols.join(", ");
    let not_null: Vec<String> = key.iter().map(|k| format!("r.{k} IS NOT NULL")).collect();
    let from = match sides {
        Sides::All => "unify_records r".to_string(),
        // The records holding a key a touched record holds (registered for this key).
        Sides::DeltaLeft | Sides::DeltaRight => "unify_near r".to_string(),
    };
    let sql = format!(
        "SELECT {cols}, count(*) AS n FROM {from} WHERE {nn} GROUP BY {cols} \
         HAVING count(*) BETWEEN 2 AND {max}",
        nn = not_null.join(" AND "),
        max = em::SIZE_COUNTED,
    );
    let sizes = super::one_batch(ctx, &sql, &format!("key sizes of {}", block_name(key))).await?;
    register(ctx, &key_size_table(b), vec![sizes.clone()], sizes.schema())
}

/// The `tf_<field>` columns of a pair of records `l` and `r` (the frequency of the value they
/// share, NULL when they differ), looked up after the pair's levels are computed: `inner`
/// are columns of the pair query carrying each shared value (`tf_value_<field>`), `outer`
/// the columns over that query (aliased `p`) and `joins` the joins to `unify_tf_<field>`
/// that give them. Joined to the pairs' few narrow columns instead of both whole records:
/// on the 1M demo's largest rule (2 M pairs) the lookups took 1.3 s joined to whole
/// records.
pub(crate) struct TermFrequencySql {
    pub inner: Vec<String>,
    pub outer: Vec<String>,
    pub joins: String,
}

pub(crate) fn term_frequency_sql(fields: &[String]) -> TermFrequencySql {
    let mut tf = TermFrequencySql {
        inner: Vec::new(),
        outer: Vec::new(),
        joins: String::new(),
    };
    for f in fields {
        tf.inner.push(format!(
            "CASE WHEN l.{f} = r.{f} THEN l.{f} END AS tf_value_{f}"
        ));
        tf.outer.push(format!("tf_{f}.tf AS tf_{f}"));
        tf.joins.push_str(&format!(
            " LEFT JOIN unify_tf_{f} tf_{f} ON tf_{f}.value = p.tf_value_{f}"
        ));
    }
    tf
}

/// Write the candidate pairs of blocking rules `rules` (indexes into `section.blocking`) to
/// `dir` as Parquet, skipping oversized blocks.
async fn write_candidates(
    ctx: &SessionContext,
    section: &ProbabilisticSection,
    comps: &[Comparison],
    rules: std::ops::Range<usize>,
    dir: &std::path::Path,
    max_block_size: usize,
    report: &mut UnifyReport,
) -> Result<()> {
    for b in rules {
        let key = &section.blocking[b];
        key_sizes(ctx, key, b, Sides::All).await?;
        let keys: Vec<&str> = key.iter().map(|s| s.as_str()).collect();
        let skip_table = super::skip_oversized_blocks(
            ctx,
            &keys,
            &block_name(key),
            &format!("unify_skip_{b}"),
            max_block_size,
            report,
        )
        .await?;
        super::write_query(
            ctx,
            &candidates_sql(section, comps, b, skip_table.as_deref(), Sides::All),
            dir,
            &format!("block_{b}"),
        )
        .await?;
    }
    let _ = ctx.deregister_table("unify_comparisons");
    ctx.register_parquet(
        "unify_comparisons",
        dir.to_string_lossy().as_ref(),
        datafusion::prelude::ParquetReadOptions::default(),
    )
    .await?;
    Ok(())
}

/// Distinct comparison patterns of the candidate pairs, per blocking rule: every pair each
/// rule finds, or with `scored_only` each pair once, under the rule that scores it.
async fn patterns(
    ctx: &SessionContext,
    comps: &[Comparison],
    scored_only: bool,
) -> Result<Vec<Pattern>> {
    let g_cols: Vec<String> = comps.iter().map(|c| c.column()).collect();
    let batches =
        collect(
            ctx,
            &format!(
            "SELECT block, key_bin, {g}, count(*) AS n FROM unify_comparisons WHERE {w} GROUP BY block, key_bin, {g}",
            g = g_cols.join(", "),
            w = if scored_only { "block = first_block" } else { "true" },
        ),
            "comparison patterns",
        )
        .await?;
    let comps = comps.len();
    Ok(batches
        .iter()
        .flat_map(|batch| {
            let block = batch.column(0).as_primitive::<Int32Type>();
            let cell = batch.column(1).as_primitive::<Int8Type>();
            let n = batch.column(comps + 2).as_primitive::<Int64Type>();
            (0..batch.num_rows()).map(move |i| Pattern {
                block: block.value(i) as usize,
                cell: cell.value(i) as u8,
                levels: (0..comps)
                    .map(|c| {
                        let g = batch.column(c + 2).as_primitive::<Int8Type>();
                        g.is_valid(i).then(|| g.value(i) as u8)
                    })
                    .collect(),
                count: n.value(i) as u64,
            })
        })
        .collect())
}

/// Whether a veto rules the pattern out.
fn vetoed(p: &Pattern, comps: &[Comparison], vetoes: &[Contradiction]) -> bool {
    vetoes.iter().any(|v| {
        v.holds(|f| {
            comps
                .iter()
                .position(|c| c.field == f)
                .and_then(|c| p.levels[c].map(|g| g as usize))
        })
    })
}

/// Train on the patterns no veto rules out: vetoed pairs (households, mostly) are not
/// evidence about matches.
fn train(
    patterns: &[Pattern],
    comps: &[Comparison],
    u: &[Vec<f64>],
    skip: &[Vec<bool>],
    vetoes: &[Contradiction],
    max_iterations: usize,
) -> Model {
    let model = em::train(patterns, u.to_vec(), skip, max_iterations, |p| {
        vetoed(p, comps, vetoes)
    });
    tracing::info!(
        iterations = model.iterations,
        converged = model.converged,
        patterns = patterns.len(),
        "EM trained"
    );
    model
}

/// The plan of a probabilistic unification before scoring: the blocking (given, or chosen
/// from the data with its `blocking_plan`), the vetoes (given, or learned) and the trained
/// model. The candidate pairs are in `unify_comparisons` (under `work_dir`).
pub struct Planned {
    /// The section with its blocking and contradictions resolved.
    pub section: ProbabilisticSection,
    pub comparisons: Vec<Comparison>,
    pub model: Model,
    /// Vetoes learned from the data (empty when `contradictions` was given).
    pub learned: Vec<vetoes::Learned>,
    /// How the blocking was chosen, when it was.
    pub blocking: Option<blocking::Plan>,
    /// Given-name variants learned from the data.
    pub variants: Vec<variants::Variant>,
    /// Address parts measured on each rule's pairs: (rule, part, share of the rule's
    /// non-matching pairs with the part filled that agree on it).
    pub dependence: Vec<(String, String, f64)>,
}

/// Learn given-name variants from the data into `section.name_variants` (a level of the
/// first-name comparison, so before anything is compared).
async fn learn_name_variants(
    ctx: &SessionContext,
    section: &mut ProbabilisticSection,
    max_block_size: usize,
) -> Result<Vec<variants::Variant>> {
    let spelling = section
        .comparisons()
        .into_iter()
        .find(|c| c.field == variants::FIELD)
        .map(|c| c.level_sql("l", "r"));
    let learned = match spelling {
        Some(level) => {
            variants::learn(
                ctx,
                &section.comparisons,
                &section.custom,
                &level,
                max_block_size,
            )
            .await?
        }
        None => Vec::new(),
    };
    section.name_variants = learned.iter().map(|v| (v.a.clone(), v.b.clone())).collect();
    if !learned.is_empty() {
        tracing::info!(
            variants = learned.len(),
            "given-name variants learned from the data"
        );
    }
    Ok(learned)
}

/// u from random pairs; exact agreement on term-frequency fields from the value counts.
async fn random_pair_u(
    ctx: &SessionContext,
    section: &ProbabilisticSection,
    comps: &[Comparison],
) -> Result<Vec<Vec<f64>>> {
    let counts = random_pair_counts(ctx, comps, section.sample_pairs).await?;
    let mut u: Vec<Vec<f64>> = counts.iter().map(|c| em::u_from_counts(c)).collect();
    for f in &section.term_frequency {
        let sum_sq = term_frequencies(ctx, f).await?;
        let c = comps.iter().position(|c| &c.field == f).expect("checked");
        let top = comps[c].level_count() - 1;
        // Rescale the other levels so the row still sums to one.
        let rest: f64 = (0..top).map(|g| u[c][g]).sum();
        let exact = sum_sq.clamp(1e-9, 0.5);
        for v in u[c].iter_mut().take(top) {
            *v = *v / rest.max(1e-12) * (1.0 - exact);
        }
        u[c][top] = exact;
    }
    Ok(u)
}

/// Without configured blocking: the seed rules chosen from the key counts, into
/// `section.blocking`, and the plan that chose them (more rules are added once a model
/// exists).
async fn seed_blocking(
    ctx: &SessionContext,
    section: &mut ProbabilisticSection,
    comps: &[Comparison],
    max_block_size: usize,
    report: &mut UnifyReport,
) -> Result<blocking::Plan> {
    let mut p = blocking::estimate(ctx, section, comps, max_block_size).await?;
    section.blocking = p.choose_seed();
    if !section.blocking.is_empty() {
        return Ok(p);
    }
    if p.candidates.iter().any(|c| c.pairs >= 1.0) {
        return Err(Error::invalid(
            "unify.probabilistic",
            format!(
                "every blocking key the data allows makes more candidate pairs than the budget ({:.0}); give unify.probabilistic.blocking, or raise unify.probabilistic.pairs_per_record",
                p.budget
            ),
        ));
    }
    // No two records share a value of any key (a table already free of duplicates):
    // nothing can match. The run goes on with one key and no pairs, so every record
    // is its own customer — not an error for a clean table.
    let Some(first) = p.candidates.first_mut() else {
        return Err(Error::invalid(
            "unify.probabilistic",
            "no field is mapped that a blocking rule could use; map more fields or give unify.probabilistic.blocking",
        ));
    };
    let w = "no two records share a value of any blocking key: no candidate pairs, so every record is its own customer".to_string();
    tracing::warn!("{w}");
    report.warnings.push(w);
    first.chosen = Some(0);
    first.seed = true;
    first.reason = "no key finds a pair; kept so the run has a rule".into();
    section.blocking = vec![first.key.clone()];
    Ok(p)
}

/// Vetoes learned from the data into `section.contradictions`, retraining `model` without
/// the pairs each round rules out.
fn learn_vetoes_from(
    pats: &[Pattern],
    comps: &[Comparison],
    section: &mut ProbabilisticSection,
    model: &mut Model,
    fit: impl Fn(&[Pattern], &ProbabilisticSection, &[Contradiction]) -> Model,
) -> Vec<vetoes::Learned> {
    let mut learned = Vec::new();
    // Pairs of fields that the match class gets wrong together (households), then single
    // fields whose disagreement true matches almost never show, judged on a model trained
    // without the first. Groups are found in rounds, each on a model trained without the
    // groups found so far: once the most blatant household pairs are out, the next are
    // visible (at most as many rounds as fields).
    let skip = section.skip(comps);
    let mut groups: Vec<Contradiction> = Vec::new();
    let mut kept: Vec<Pattern> = pats.to_vec();
    for _ in 0..comps.len() {
        let stats = vetoes::MatchStats::new(&kept, model, &skip, comps.len());
        let found: Vec<vetoes::Learned> = vetoes::dependent(comps, model, &section.custom, &stats)
            .into_iter()
            .filter(|l| !groups.contains(&l.veto))
            .collect();
        if found.is_empty() {
            break;
        }
        groups.extend(found.iter().map(|l| l.veto.clone()));
        learned.extend(found);
        *model = fit(pats, section, &groups);
        kept.retain(|p| !vetoed(p, comps, &groups));
    }
    let stats = vetoes::MatchStats::new(&kept, model, &skip, comps.len());
    learned.extend(vetoes::learn(
        comps,
        model,
        &section.custom,
        section.veto_max_loss,
        &stats,
        &groups,
    ));
    section.contradictions = Some(learned.iter().map(|l| l.veto.clone()).collect());
    if learned.len() > groups.len() {
        *model = fit(pats, section, section.vetoes());
    }
    learned
}

/// Block, train and learn vetoes: everything a run does before scoring (`panorama unify
/// plan` stops here). `unify_records` must be registered.
pub async fn plan(
    ctx: &SessionContext,
    work_dir: &std::path::Path,
    section: &ProbabilisticSection,
    max_block_size: usize,
    report: &mut UnifyReport,
) -> Result<Planned> {
    // Checked when the config loaded.
    section.check().map_err(|m| Error::Internal(m.0))?;
    let mut section = section.clone();
    // Given-name variants first: they are a level of the first-name comparison.
    let learned_variants = learn_name_variants(ctx, &mut section, max_block_size).await?;
    let comps = section.comparisons();
    let u = random_pair_u(ctx, &section, &comps).await?;

    // Candidate pairs per blocking rule: the configured rules, or a seed chosen from the
    // key counts (see `blocking`). Each rule's pairs go to Parquet as they come (millions
    // of rows at 1M people), then are read back as one table.
    let dir = work_dir.join("unify_comparisons");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
    let mut plan = None;
    if section.blocking.is_empty() {
        plan = Some(seed_blocking(ctx, &mut section, &comps, max_block_size, report).await?);
    }
    let seeded = section.blocking.len();
    write_candidates(
        ctx,
        &section,
        &comps,
        0..seeded,
        &dir,
        max_block_size,
        report,
    )
    .await?;
    let mut pats = patterns(ctx, &comps, false).await?;
    let learn_vetoes = section.contradictions.is_none();
    let max_iterations = section.max_iterations;
    // The model of the candidates so far, under the rules' skips and the given vetoes.
    let fit = |pats: &[Pattern], section: &ProbabilisticSection, vetoes: &[Contradiction]| {
        train(
            pats,
            &comps,
            &u,
            &section.skip(&comps),
            vetoes,
            max_iterations,
        )
    };
    // A rule on one address part first stands in for the others; then the parts its
    // non-matching pairs seldom agree on are compared, and the model is trained again.
    let measure = |pats: &[Pattern], section: &mut ProbabilisticSection| {
        section.compared.clear();
        let first = fit(pats, section, section.vetoes());
        let dependence = rule_dependence(section, &comps, pats, &first, &section.skip(&comps));
        section.adopt_dependence(&dependence);
        let model = if section.compared.is_empty() {
            first
        } else {
            fit(pats, section, section.vetoes())
        };
        (model, dependence)
    };
    let (mut model, mut dependence) = measure(&pats, &mut section);
    if let Some(p) = plan.as_mut() {
        // More rules until the model says the blocking finds enough of the matches.
        // Expected matches among the seed's pairs.
        let skip = section.skip(&comps);
        let found: f64 = patterns(ctx, &comps, true)
            .await?
            .iter()
            .map(|p| p.count as f64 * probability(model.match_weight(p, &skip)))
            .sum();
        section.blocking = p
            .choose(ctx, &section, &comps, &model, max_block_size, found)
            .await?;
        if section.blocking.len() > seeded {
            write_candidates(
                ctx,
                &section,
                &comps,
                seeded..section.blocking.len(),
                &dir,
                max_block_size,
                report,
            )
            .await?;
            pats = patterns(ctx, &comps, false).await?;
            (model, dependence) = measure(&pats, &mut section);
        }
        let summary = p.summary(&section.blocking);
        tracing::info!("{summary}");
    }
    let learned = if learn_vetoes {
        learn_vetoes_from(&pats, &comps, &mut section, &mut model, fit)
    } else {
        Vec::new()
    };
    count_candidates(ctx, &section, report).await?;
    Ok(Planned {
        section,
        comparisons: comps,
        model,
        learned,
        blocking: plan,
        variants: learned_variants,
        dependence,
    })
}

/// Run blocking, training and scoring; returns the matched pairs and the model.
pub async fn match_pairs(
    ctx: &SessionContext,
    work_dir: &std::path::Path,
    section: &ProbabilisticSection,
    max_block_size: usize,
    report: &mut UnifyReport,
) -> Result<Matched> {
    let Planned {
        section,
        comparisons: comps,
        model,
        learned,
        blocking: plan,
        variants: name_variants,
        dependence,
    } = plan(ctx, work_dir, section, max_block_size, report).await?;
    let dir = work_dir.join("unify_comparisons");
    if !model.converged {
        let w = format!(
            "probabilistic matching: EM did not converge in {} iterations (unify.probabilistic.max_iterations); weights may be rough",
            model.iterations
        );
        tracing::warn!("{w}");
        report.warnings.push(w);
    }
    let skip = section.skip(&comps);
    let scoring = Scoring {
        comparisons: comps,
        model,
        skip,
        term_frequency: section.term_frequency.clone(),
    };

    // Scoring.
    let pairs = collect(ctx, &scored_sql(&section, &scoring), "scoring").await?;
    // All candidates, matched or not, for the console's weight distribution.
    let histogram = collect(
        ctx,
        &histogram_sql(&section, &scoring),
        "match weight histogram",
    )
    .await?;
    let term_frequencies = if section.term_frequency.is_empty() {
        Vec::new()
    } else {
        let sql = section
            .term_frequency
            .iter()
            .map(|f| {
                format!(
                    "SELECT {} AS field, CAST(value AS VARCHAR) AS value, tf FROM unify_tf_{f}",
                    literal(f)
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        collect(ctx, &sql, "term frequencies").await?
    };
    let weights = scoring.weights_batch(
        &section.blocking,
        &learned,
        section.vetoes(),
        &name_variants,
        &dependence,
    )?;
    let _ = ctx.deregister_table("unify_comparisons");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Matched {
        pairs,
        weights,
        histogram,
        term_frequencies,
        blocking_plan: plan.map(|p| p.batch()).transpose()?,
    })
}

/// The match weight threshold (bits) of a match probability.
pub(crate) fn threshold_weight(section: &ProbabilisticSection) -> f64 {
    (section.threshold / (1.0 - section.threshold)).log2()
}

/// SQL of the matched pairs among `unify_comparisons`: each scored by the first rule that
/// finds it, vetoes applied, at or above the threshold.
fn scored_sql(section: &ProbabilisticSection, scoring: &Scoring) -> String {
    let g: Vec<String> = scoring.comparisons.iter().map(|c| c.column()).collect();
    format!(
        "SELECT left_uid, right_uid, {rule} AS rule, 1.0 / (1.0 + power(2.0, -match_weight)) AS score, match_weight, {g}
         FROM (SELECT *, {w} AS match_weight FROM unify_comparisons WHERE block = first_block AND NOT ({veto}))
         WHERE match_weight >= {t:.9}",
        rule = literal("probabilistic"),
        g = g.join(", "),
        w = scoring.weight_sql(),
        veto = Scoring::veto_sql(section.vetoes()),
        t = threshold_weight(section),
    )
}

/// SQL of the histogram of all scored candidates' weights, matched or not.
fn histogram_sql(section: &ProbabilisticSection, scoring: &Scoring) -> String {
    format!(
        "SELECT CAST(floor(match_weight) AS DOUBLE) AS weight_bin, count(*) AS pairs, \
           count(*) FILTER (WHERE match_weight >= {t:.9}) AS matched, \
           CAST({t:.9} AS DOUBLE) AS threshold_weight \
         FROM (SELECT {w} AS match_weight FROM unify_comparisons WHERE block = first_block AND NOT ({veto})) \
         GROUP BY 1 ORDER BY 1",
        w = scoring.weight_sql(),
        veto = Scoring::veto_sql(section.vetoes()),
        t = threshold_weight(section),
    )
}

/// Count the candidate pairs each blocking rule adds (those no earlier rule found) into the
/// report.
async fn count_candidates(
    ctx: &SessionContext,
    section: &ProbabilisticSection,
    report: &mut UnifyReport,
) -> Result<()> {
    let per_rule = collect(
        ctx,
        "SELECT block, count(*) FROM unify_comparisons WHERE block = first_block GROUP BY block",
        "pairs per blocking rule",
    )
    .await?;
    let mut added = vec![0u64; section.blocking.len()];
    for batch in &per_rule {
        let block = batch.column(0).as_primitive::<Int32Type>();
        let n = batch.column(1).as_primitive::<Int64Type>();
        for i in 0..batch.num_rows() {
            added[block.value(i) as usize] = n.value(i) as u64;
        }
    }
    for (key, n) in section.blocking.iter().zip(added) {
        report.pairs_per_rule.push((block_name(key), n));
        report.candidate_pairs += n;
    }
    Ok(())
}

impl Scoring {
    /// The model a previous run learned, from its `match_weights` table (`section` as
    /// resolved by [`adopt_plan`]).
    pub fn from_weights(
        section: &ProbabilisticSection,
        weights: &[RecordBatch],
    ) -> Result<Scoring> {
        let comparisons = section.comparisons();
        let skip = section.skip(&comparisons);
        let mut m: Vec<Vec<f64>> = comparisons
            .iter()
            .map(|c| vec![f64::NAN; c.level_count()])
            .collect();
        let mut u = m.clone();
        let mut lambda = vec![f64::NAN; section.blocking.len()];
        let mut lambda_size = vec![[f64::NAN; em::CELLS]; section.blocking.len()];
        for b in weights {
            let comp = arrow::compute::cast(b.column(0), &DataType::Utf8)?;
            let comp = comp.as_string::<i32>();
            let level = b.column(1).as_primitive::<Int64Type>();
            let label = arrow::compute::cast(b.column(2), &DataType::Utf8)?;
            let label = label.as_string::<i32>();
            let (mm, uu) = (
                b.column(3).as_primitive::<arrow::datatypes::Float64Type>(),
                b.column(4).as_primitive::<arrow::datatypes::Float64Type>(),
            );
            for i in 0..b.num_rows() {
                let g = level.value(i) as usize;
                if comp.value(i) == "prior" {
                    if let Some(l) = lambda.get_mut(g) {
                        *l = mm.value(i);
                    }
                } else if comp.value(i) == "prior_size" {
                    if !em::is_cell_label(label.value(i)) {
                        // Written before priors per kind of pair (`level` = rule × 4 + size
                        // bin): the bin's share stands for both kinds.
                        if let Some(l) = lambda_size.get_mut(g / em::SIZE_BINS) {
                            let bin = g % em::SIZE_BINS;
                            l[em::cell(bin, false)] = mm.value(i);
                            l[em::cell(bin, true)] = mm.value(i);
                        }
                    } else if let Some(l) = lambda_size.get_mut(g / em::CELLS) {
                        l[g % em::CELLS] = mm.value(i);
                    }
                } else if let Some(c) = comparisons.iter().position(|c| c.field == comp.value(i)) {
                    if g < m[c].len() {
                        m[c][g] = mm.value(i);
                        u[c][g] = uu.value(i);
                    }
                }
            }
        }
        // A run before priors per key size wrote none: its rule priors stand for every size.
        if lambda_size.iter().flatten().all(|v| v.is_nan()) {
            lambda_size.clear();
        }
        if lambda
            .iter()
            .chain(lambda_size.iter().flatten())
            .chain(m.iter().flatten())
            .chain(u.iter().flatten())
            .any(|v| v.is_nan())
        {
            return Err(Error::Conflict(
                "match_weights of the previous run does not fit [unify.probabilistic]; run with --full".into(),
            ));
        }
        Ok(Scoring {
            comparisons,
            model: Model {
                m,
                u,
                lambda,
                lambda_size,
                iterations: 0,
                converged: true,
            },
            skip,
            term_frequency: section.term_frequency.clone(),
        })
    }
}

/// Blocking rules and vetoes a section leaves to the data, as the run that wrote `weights`
/// (its `match_weights`) chose them: later runs, explanations and real-time matches must
/// block and veto exactly as it did.
pub fn adopt_plan(section: &mut ProbabilisticSection, weights: &[RecordBatch]) -> Result<()> {
    let auto_blocking = section.blocking.is_empty();
    let auto_vetoes = section.contradictions.is_none();
    let mut vetoes = Vec::new();
    for b in weights {
        let comp = arrow::compute::cast(b.column(0), &DataType::Utf8)?;
        let comp = comp.as_string::<i32>();
        let label = arrow::compute::cast(b.column(2), &DataType::Utf8)?;
        let label = label.as_string::<i32>();
        for i in 0..b.num_rows() {
            let label = label.value(i);
            match comp.value(i) {
                "prior" if auto_blocking => section.blocking.push(
                    label
                        .strip_prefix("block:")
                        .unwrap_or(label)
                        .split('+')
                        .map(String::from)
                        .collect(),
                ),
                "variant" => section.name_variants.extend(variants::parse_label(label)),
                "rule_compares" => {
                    if let Some((rule, f)) = label.split_once('>') {
                        section.compared.push((rule.to_string(), f.to_string()));
                    }
                }
                "veto" if auto_vetoes => {
                    let f: Vec<String> = label.split('+').map(String::from).collect();
                    vetoes.push(if f.len() == 1 {
                        Contradiction::Field(f[0].clone())
                    } else {
                        Contradiction::All(f)
                    });
                }
                _ => {}
            }
        }
    }
    if auto_vetoes {
        section.contradictions = Some(vetoes);
    }
    if section.blocking.is_empty() {
        return Err(Error::Conflict(
            "match_weights of the previous run names no blocking rule; run with --full".into(),
        ));
    }
    Ok(())
}

/// Incremental matching: compare the touched records (`unify_delta`) with every record by the
/// blocking rules, and score the pairs with the baseline's model (`weights`, its
/// `match_weights`, and `match_term_frequencies` in `baseline_tables`; `section` as resolved
/// by [`adopt_plan`] from the same weights). `skips[b]` lists rule b's oversized
/// blocks. Returns the matched pairs that involve a touched record.
pub async fn delta_match_pairs(
    ctx: &SessionContext,
    section: &ProbabilisticSection,
    weights: &[RecordBatch],
    baseline_tables: &std::path::Path,
    skips: &[Option<String>],
    report: &mut UnifyReport,
) -> Result<Vec<RecordBatch>> {
    let read = |name: &str| baseline_tables.join(format!("{name}.parquet"));
    let scoring = Scoring::from_weights(section, weights)?;
    let _ = ctx.deregister_table(names::MATCH_TERM_FREQUENCIES);
    ctx.register_parquet(
        names::MATCH_TERM_FREQUENCIES,
        read(names::MATCH_TERM_FREQUENCIES)
            .to_string_lossy()
            .as_ref(),
        datafusion::prelude::ParquetReadOptions::default(),
    )
    .await?;
    let records = ctx.table(names::UNIFY_RECORDS).await?;
    for f in &section.term_frequency {
        let t = records
            .schema()
            .field_with_unqualified_name(f)?
            .data_type()
            .clone();
        let view = ctx
            .sql(&format!(
                "SELECT arrow_cast(value, '{t}') AS value, tf FROM match_term_frequencies WHERE field = {}",
                literal(f)
            ))
            .await?
            .into_view();
        let _ = ctx.deregister_table(format!("unify_tf_{f}").as_str());
        ctx.register_table(format!("unify_tf_{f}").as_str(), view)?;
    }
    let comps = section.comparisons();
    let mut candidates = Vec::new();
    for (b, (key, skip)) in section.blocking.iter().zip(skips).enumerate() {
        register_near(ctx, key).await?;
        key_sizes(ctx, key, b, Sides::DeltaLeft).await?;
        for sides in [Sides::DeltaLeft, Sides::DeltaRight] {
            let sql = candidates_sql(section, &comps, b, skip.as_deref(), sides);
            candidates.extend(collect(ctx, &sql, &block_name(key)).await?);
        }
    }
    let Some(schema) = candidates.first().map(|b| b.schema()) else {
        for key in &section.blocking {
            report.pairs_per_rule.push((block_name(key), 0));
        }
        return Ok(Vec::new());
    };
    register(ctx, "unify_comparisons", candidates, schema)?;
    count_candidates(ctx, section, report).await?;
    let pairs = collect(ctx, &scored_sql(section, &scoring), "scoring").await?;
    let _ = ctx.deregister_table("unify_comparisons");
    Ok(pairs)
}
