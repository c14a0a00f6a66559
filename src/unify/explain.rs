//! Why two records were (not) matched: every condition of every rule, evaluated on the two
//! staged records with the same semantics as the SQL the matcher runs.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanBuilder, Float64Builder, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::SessionContext;
use panorama_udfs::similarity::Measure;

use super::config::{MatchMode, MatchRule, Precision};
use super::probabilistic::comparisons::Comparison;
use super::probabilistic::em::{cell, is_cell_label, size_bin, CELLS, SIZE_BINS};
use super::probabilistic::ProbabilisticSection;
use super::staging::literal;
use crate::config::ProjectConfig;
use crate::error::{Error, Result};

/// A staged record as field name → display value (None for NULL).
pub type Fields = HashMap<String, Option<String>>;

/// Fetch staged records by uid (`source:record_id`).
pub async fn staged_record(ctx: &SessionContext, uid: &str) -> Result<Fields> {
    let sql = format!(
        "SELECT * FROM unify_records WHERE uid = '{}'",
        uid.replace('\'', "''")
    );
    let batches = ctx.sql(&sql).await?.collect().await?;
    let batch = batches.iter().find(|b| b.num_rows() > 0).ok_or_else(|| {
        Error::NotFound(format!(
            "no record `{uid}` in unify_records (expected SOURCE:RECORD_ID)"
        ))
    })?;
    let mut out = HashMap::new();
    for (i, field) in batch.schema().fields().iter().enumerate() {
        let col = batch.column(i);
        let value = if col.is_null(0) {
            None
        } else {
            let fmt = ArrayFormatter::try_new(col.as_ref(), &FormatOptions::default())?;
            Some(fmt.value(0).to_string())
        };
        out.insert(field.name().clone(), value);
    }
    Ok(out)
}

/// One evaluated condition.
pub struct Check {
    pub rule: String,
    pub field: String,
    pub precision: String,
    pub left: Option<String>,
    pub right: Option<String>,
    pub similarity: Option<f64>,
    pub holds: bool,
    pub blocking: bool,
}

fn precision_name(p: Precision) -> String {
    match p {
        Precision::Exact => "exact".into(),
        Precision::Fuzzy(x) => format!(">= {x}"),
        Precision::Compatible => "compatible".into(),
        Precision::Initial => "initial".into(),
    }
}

/// Evaluate every rule's conditions on two records.
pub fn explain(rules: &[MatchRule], left: &Fields, right: &Fields) -> Vec<Check> {
    let mut out = Vec::new();
    for rule in rules {
        for c in &rule.conditions {
            let l = left.get(&c.field).cloned().flatten();
            let r = right.get(&c.field).cloned().flatten();
            let (similarity, holds) = match (c.precision, &l, &r) {
                (Precision::Exact, Some(a), Some(b)) => (None, a == b),
                (Precision::Exact, _, _) => (None, false),
                (Precision::Fuzzy(p), Some(a), Some(b)) => {
                    let s = Measure::LevenshteinSim.eval(a, b, 2);
                    (Some(s), s >= p)
                }
                (Precision::Fuzzy(_), _, _) => (None, false),
                (Precision::Compatible, Some(a), Some(b)) => (None, a == b),
                (Precision::Compatible, _, _) => (None, true),
                (Precision::Initial, Some(a), Some(b)) => {
                    let initial_of = |x: &str, y: &str| x.chars().count() == 1 && y.starts_with(x);
                    (None, initial_of(a, b) || initial_of(b, a))
                }
                (Precision::Initial, _, _) => (None, false),
            };
            out.push(Check {
                rule: rule.name.clone(),
                field: c.field.clone(),
                precision: precision_name(c.precision),
                left: l,
                right: r,
                similarity,
                holds,
                blocking: c.precision == Precision::Exact,
            });
        }
    }
    out
}

/// Schema of a rules explanation.
pub fn rules_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("rule", DataType::Utf8, false),
        Field::new("field", DataType::Utf8, false),
        Field::new("precision", DataType::Utf8, false),
        Field::new("left", DataType::Utf8, true),
        Field::new("right", DataType::Utf8, true),
        Field::new("similarity", DataType::Float64, true),
        Field::new("holds", DataType::Boolean, false),
        Field::new("blocking_key", DataType::Boolean, false),
    ]))
}

/// The checks as a table, for printing.
pub fn checks_batch(checks: &[Check]) -> Result<RecordBatch> {
    let schema = rules_schema();
    let (mut rule, mut field, mut prec, mut l, mut r) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let mut sim = Float64Builder::new();
    let (mut holds, mut blocking) = (BooleanBuilder::new(), BooleanBuilder::new());
    for c in checks {
        rule.append_value(&c.rule);
        field.append_value(&c.field);
        prec.append_value(&c.precision);
        l.append_option(c.left.as_deref());
        r.append_option(c.right.as_deref());
        sim.append_option(c.similarity.map(|s| (s * 1000.0).round() / 1000.0));
        holds.append_value(c.holds);
        blocking.append_value(c.blocking);
    }
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(rule.finish()),
            Arc::new(field.finish()),
            Arc::new(prec.finish()),
            Arc::new(l.finish()),
            Arc::new(r.finish()),
            Arc::new(sim.finish()),
            Arc::new(holds.finish()),
            Arc::new(blocking.finish()),
        ],
    )?)
}

/// One line per rule: matched, failed on which condition, or never compared (no shared key).
pub fn verdicts(rules: &[MatchRule], checks: &[Check]) -> Vec<String> {
    rules
        .iter()
        .map(|rule| {
            let mine: Vec<&Check> = checks.iter().filter(|c| c.rule == rule.name).collect();
            let key_missing: Vec<&str> = mine
                .iter()
                .filter(|c| c.blocking && !c.holds)
                .map(|c| c.field.as_str())
                .collect();
            let failed: Vec<&str> = mine
                .iter()
                .filter(|c| !c.blocking && !c.holds)
                .map(|c| c.field.as_str())
                .collect();
            if !key_missing.is_empty() {
                format!(
                    "{}: not compared: no shared blocking key ({} differ or are missing)",
                    rule.name,
                    key_missing.join(", ")
                )
            } else if !failed.is_empty() {
                format!(
                    "{}: compared, no match: {} fail",
                    rule.name,
                    failed.join(", ")
                )
            } else {
                format!("{}: MATCH", rule.name)
            }
        })
        .collect()
}

/// The run's `match_weights` rows by (comparison, level): label, m, u and weight.
fn level_weights(weights: &[RecordBatch]) -> Result<HashMap<(String, i64), LevelWeight>> {
    let mut model: HashMap<(String, i64), LevelWeight> = HashMap::new();
    for b in weights {
        let comp = arrow::compute::cast(b.column(0), &DataType::Utf8)?;
        let label = arrow::compute::cast(b.column(2), &DataType::Utf8)?;
        let (comp, label) = (comp.as_string::<i32>(), label.as_string::<i32>());
        let level = b.column(1).as_primitive::<Int64Type>();
        let (m, u, w) = (
            b.column(3).as_primitive::<Float64Type>(),
            b.column(4).as_primitive::<Float64Type>(),
            b.column(5).as_primitive::<Float64Type>(),
        );
        for i in 0..b.num_rows() {
            model.insert(
                (comp.value(i).to_string(), level.value(i)),
                (
                    label.value(i).to_string(),
                    m.is_valid(i).then(|| m.value(i)),
                    u.is_valid(i).then(|| u.value(i)),
                    if w.is_valid(i) {
                        w.value(i)
                    } else {
                        f64::NEG_INFINITY
                    },
                ),
            );
        }
    }
    Ok(model)
}

/// The explanation's last rows: the blocking rule that compared the pair (its prior for the
/// pair's key size, `block` = (rule, size bin)) or that none did, and the decision (vetoed,
/// or the probability against the threshold).
fn decision_rows(
    out: &mut ExplainRows,
    section: &ProbabilisticSection,
    model: &HashMap<(String, i64), LevelWeight>,
    block: Option<(usize, usize, bool)>,
    vetoed: &[String],
    mut total: f64,
) -> Result<()> {
    match block {
        None => {
            let keys: Vec<String> = section.blocking.iter().map(|k| k.join("+")).collect();
            out.push(
                "blocking",
                &format!("not compared: no blocking rule holds ({})", keys.join("; ")),
                None,
                None,
                None,
                None,
                0.0,
            );
            out.push(
                "decision",
                "no match: never compared",
                None,
                None,
                None,
                None,
                total,
            );
        }
        Some((b, bin, one_source)) => {
            // A run before priors per kind of pair has one per rule and size bin (`level` =
            // rule × 4 + bin, labels no cell's: [`is_cell_label`]); one before priors per key
            // size only the rule's.
            let prior_size = |level: usize, current: bool| {
                model
                    .get(&("prior_size".to_string(), level as i64))
                    .filter(|w| is_cell_label(&w.0) == current)
            };
            let (label, m, _, prior) = prior_size(b * CELLS + cell(bin, one_source), true)
                .or_else(|| prior_size(b * SIZE_BINS + bin, false))
                .or_else(|| model.get(&("prior".to_string(), b as i64)))
                .cloned()
                .ok_or_else(|| {
                    Error::Internal(format!("match_weights has no prior for blocking rule {b}"))
                })?;
            out.push(
                "blocking",
                &format!("compared by {label}"),
                None,
                None,
                m,
                None,
                prior,
            );
            total += prior;
            let p = super::probabilistic::probability(total);
            let decision = if !vetoed.is_empty() {
                format!(
                    "no match: {} clearly differ(s) (unify.probabilistic.contradictions)",
                    vetoed.join(", ")
                )
            } else if p >= section.threshold {
                format!(
                    "MATCH: probability {p:.4} >= threshold {}",
                    section.threshold
                )
            } else {
                format!(
                    "no match: probability {p:.4} < threshold {}",
                    section.threshold
                )
            };
            out.push("decision", &decision, None, None, None, None, total);
        }
    }
    Ok(())
}

/// Explanation of a pair under the probabilistic model: one row per comparison (its level,
/// m, u and the weight it adds), then the blocking rule that compares the pair (its prior),
/// and the total with the decision. Reads the run's `match_weights` table.
pub async fn explain_probabilistic(
    ctx: &SessionContext,
    section: &ProbabilisticSection,
    left: &str,
    right: &str,
) -> Result<RecordBatch> {
    staged_record(ctx, left).await?;
    staged_record(ctx, right).await?;
    // The learned model, and the blocking and vetoes of the run that learned it.
    let weights = ctx
        .sql("SELECT comparison, level, label, m, u, weight FROM match_weights")
        .await
        .map_err(|_| Error::NotFound("this run has no match_weights table: run the project again with probabilistic matching".into()))?
        .collect()
        .await?;
    let mut section = section.clone();
    super::probabilistic::adopt_plan(&mut section, &weights)?;
    let section = &section;
    let comps: Vec<Comparison> = section.comparisons();
    // Levels, values and term frequencies of the pair, in one query.
    let mut cols = Vec::new();
    for c in &comps {
        let f = &c.field;
        cols.push(format!("{} AS g_{f}", c.level_sql("l", "r")));
        cols.push(format!("CAST(l.{f} AS VARCHAR) AS l_{f}"));
        cols.push(format!("CAST(r.{f} AS VARCHAR) AS r_{f}"));
    }
    for (b, key) in section.blocking.iter().enumerate() {
        let same: Vec<String> = key.iter().map(|k| format!("l.{k} = r.{k}")).collect();
        cols.push(format!(
            "coalesce({}, false) AS block_{b}",
            same.join(" AND ")
        ));
    }
    let sql = format!(
        "SELECT {} FROM unify_records l, unify_records r WHERE l.uid = {} AND r.uid = {}",
        cols.join(", "),
        literal(left),
        literal(right)
    );
    let batches = ctx.sql(&sql).await?.collect().await?;
    let row = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| Error::NotFound("explain: pair not found".into()))?;
    let get = |name: &str| -> Option<String> {
        let col = row.column_by_name(name)?;
        if col.is_null(0) {
            return None;
        }
        let fmt = ArrayFormatter::try_new(col.as_ref(), &FormatOptions::default()).ok()?;
        Some(fmt.value(0).to_string())
    };

    let model = level_weights(&weights)?;
    let block =
        (0..section.blocking.len()).find(|b| get(&format!("block_{b}")).as_deref() == Some("true"));
    let mut out = ExplainRows::default();
    let mut total = 0.0;
    for c in &comps {
        let f = c.field.as_str();
        let level = get(&format!("g_{f}")).and_then(|g| g.parse::<usize>().ok());
        let (l, r) = (get(&format!("l_{f}")), get(&format!("r_{f}")));
        let Some(g) = level else {
            let why = match (&c.unless, &l, &r) {
                (Some(unless), Some(_), Some(_)) => unless.reason.as_str(),
                _ => "missing on a side",
            };
            out.push(f, why, l, r, None, None, 0.0);
            continue;
        };
        let (label, m, u, mut w) = model
            .get(&(f.to_string(), g as i64))
            .cloned()
            .ok_or_else(|| Error::Internal(format!("match_weights has no level {g} for {f}")))?;
        let top = g == c.level_count() - 1;
        let mut label = label;
        if top && section.term_frequency.iter().any(|t| t == f) {
            let tf = match &l {
                Some(v) => term_frequency(ctx, f, v).await?,
                None => None,
            };
            if let (Some(m), Some(tf)) = (m, tf) {
                if tf > 0.0 {
                    w = (m / tf).log2();
                    label = format!("{label} (value frequency {tf:.5})");
                }
            }
        }
        if let Some(b) = block {
            if section.stands_in(&section.blocking[b], f) {
                label = format!("{label} (part of the blocking rule: in its prior)");
                w = 0.0;
            }
        }
        total += w;
        out.push(f, &label, l, r, m, u, w);
    }
    let level_of = |f: &str| get(&format!("g_{f}")).and_then(|g| g.parse::<usize>().ok());
    let vetoed: Vec<String> = section
        .vetoes()
        .iter()
        .filter(|c| c.holds(level_of))
        .map(|c| c.fields().join(" and "))
        .collect();
    let block = match block {
        Some(b) => Some((
            b,
            key_size_bin(ctx, &section.blocking[b], left).await?,
            one_source(ctx, left, right).await?,
        )),
        None => None,
    };
    decision_rows(&mut out, section, &model, block, &vetoed, total)?;
    out.finish()
}

/// The size bin of the key of blocking rule `key` that record `uid` holds: how many records
/// hold it, as the run counted them for the rule's prior.
async fn key_size_bin(ctx: &SessionContext, key: &[String], uid: &str) -> Result<usize> {
    let on: Vec<String> = key.iter().map(|k| format!("r.{k} = l.{k}")).collect();
    let sql = format!(
        "SELECT count(*) FROM unify_records r JOIN (SELECT * FROM unify_records WHERE uid = {}) l ON {}",
        literal(uid),
        on.join(" AND ")
    );
    let b = ctx.sql(&sql).await?.collect().await?;
    let n = b
        .first()
        .filter(|b| b.num_rows() > 0)
        .map_or(0, |b| b.column(0).as_primitive::<Int64Type>().value(0));
    Ok(size_bin(n as u64))
}

/// Whether records `left` and `right` are of one source (a prior cell of its own, [`cell`]).
async fn one_source(ctx: &SessionContext, left: &str, right: &str) -> Result<bool> {
    let sql = format!(
        "SELECT count(DISTINCT source) FROM unify_records WHERE uid IN ({}, {})",
        literal(left),
        literal(right)
    );
    let b = ctx.sql(&sql).await?.collect().await?;
    Ok(b.first()
        .filter(|b| b.num_rows() > 0)
        .is_some_and(|b| b.column(0).as_primitive::<Int64Type>().value(0) == 1))
}

/// The share of records whose `field` is `value` (as staged).
async fn term_frequency(ctx: &SessionContext, field: &str, value: &str) -> Result<Option<f64>> {
    let sql = format!(
        "SELECT CAST(sum(CASE WHEN CAST({field} AS VARCHAR) = {v} THEN 1 ELSE 0 END) AS DOUBLE) / count({field}) FROM unify_records",
        v = literal(value)
    );
    let b = ctx.sql(&sql).await?.collect().await?;
    Ok(b.first()
        .filter(|b| b.num_rows() > 0 && b.column(0).is_valid(0))
        .map(|b| b.column(0).as_primitive::<Float64Type>().value(0)))
}

/// A row of `match_weights`: label, m, u, weight.
type LevelWeight = (String, Option<f64>, Option<f64>, f64);

/// Rows of a probabilistic explanation.
#[derive(Default)]
struct ExplainRows {
    comparison: StringBuilder,
    label: StringBuilder,
    left: StringBuilder,
    right: StringBuilder,
    m: Float64Builder,
    u: Float64Builder,
    weight: Float64Builder,
}

impl ExplainRows {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        comparison: &str,
        label: &str,
        left: Option<String>,
        right: Option<String>,
        m: Option<f64>,
        u: Option<f64>,
        weight: f64,
    ) {
        let round = |x: f64| (x * 1e6).round() / 1e6;
        self.comparison.append_value(comparison);
        self.label.append_value(label);
        self.left.append_option(left);
        self.right.append_option(right);
        self.m.append_option(m.map(round));
        self.u.append_option(u.map(round));
        self.weight.append_value((weight * 100.0).round() / 100.0);
    }

    fn finish(mut self) -> Result<RecordBatch> {
        Ok(RecordBatch::try_new(
            probabilistic_schema(),
            vec![
                Arc::new(self.comparison.finish()),
                Arc::new(self.label.finish()),
                Arc::new(self.left.finish()),
                Arc::new(self.right.finish()),
                Arc::new(self.m.finish()),
                Arc::new(self.u.finish()),
                Arc::new(self.weight.finish()),
            ],
        )?)
    }
}

/// Schema of a probabilistic explanation.
pub fn probabilistic_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("comparison", DataType::Utf8, false),
        Field::new("level", DataType::Utf8, false),
        Field::new("left", DataType::Utf8, true),
        Field::new("right", DataType::Utf8, true),
        Field::new("m", DataType::Float64, true),
        Field::new("u", DataType::Float64, true),
        Field::new("weight_bits", DataType::Float64, false),
    ]))
}

/// Explain a pair under the project's matching mode, as a table.
pub async fn explain_pair(
    ctx: &SessionContext,
    cfg: &ProjectConfig,
    left: &str,
    right: &str,
) -> Result<RecordBatch> {
    let unify = cfg.unify.clone().unwrap_or_default();
    match unify.match_mode() {
        MatchMode::Probabilistic => {
            let section = unify.probabilistic_section();
            explain_probabilistic(ctx, &section, left, right).await
        }
        MatchMode::Rules => {
            let l = staged_record(ctx, left).await?;
            let r = staged_record(ctx, right).await?;
            let rules = super::rules(cfg);
            checks_batch(&explain(&rules, &l, &r))
        }
    }
}

/// Schema of [`explain_pair`]'s table for the project's mode.
pub fn explain_schema(cfg: &ProjectConfig) -> SchemaRef {
    match cfg.unify.clone().unwrap_or_default().match_mode() {
        MatchMode::Probabilistic => probabilistic_schema(),
        MatchMode::Rules => rules_schema(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unify::config::default_rules;

    fn rec(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect()
    }

    #[test]
    fn explains_match_and_non_match() {
        let a = rec(&[
            ("email", "jon@x.com"),
            ("first_name", "jonathan"),
            ("last_name", "smith"),
        ]);
        let b = rec(&[
            ("email", "jon@x.com"),
            ("first_name", "jonathon"),
            ("last_name", "smyth"),
        ]);
        let rules = default_rules();
        let checks = explain(&rules, &a, &b);
        let v = verdicts(&rules, &checks);
        assert_eq!(v[0], "email+first_name: MATCH");
        assert!(v[2].starts_with("phone+name: not compared"), "{}", v[2]);
        let fuzzy = checks
            .iter()
            .find(|c| c.rule == "email+first_name" && c.field == "first_name")
            .unwrap();
        assert_eq!(fuzzy.similarity, Some(0.875));
    }
}
