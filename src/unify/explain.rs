//! Why two records were (not) matched: every condition of every rule, evaluated on the two
//! staged records with the same semantics as the SQL the matcher runs.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, BooleanBuilder, Float64Builder, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::SessionContext;
use panorama_udfs::similarity::Measure;

use super::config::{MatchRule, Precision};
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
        Error::Other(format!(
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

/// The checks as a table, for printing.
pub fn checks_batch(checks: &[Check]) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("rule", DataType::Utf8, false),
        Field::new("field", DataType::Utf8, false),
        Field::new("precision", DataType::Utf8, false),
        Field::new("left", DataType::Utf8, true),
        Field::new("right", DataType::Utf8, true),
        Field::new("similarity", DataType::Float64, true),
        Field::new("holds", DataType::Boolean, false),
        Field::new("blocking_key", DataType::Boolean, false),
    ]));
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
