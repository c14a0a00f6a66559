//! Given-name variants learned from the data: "Henry" and "Harry", "Margaretha" and "Greet",
//! "Concepción" and "Concha" are one person's names far more often than chance allows. No
//! spelling measure sees them as alike (Jaro-Winkler below 0.8: the comparison's "different"
//! level), and a learned first-name veto then keeps such records apart even when e-mail,
//! phone and address agree — on the demo (5k) that was a fifth of the missed pairs.
//!
//! Two records that agree exactly on the surname and on a personal field (a field of kind
//! `date` such as the birth date, or `identifier`: a household shares its address, phone and
//! mailbox, not these) yet whose given names differ are the same person under another name,
//! twins, or a typo. Each such surname and personal value is one person (or one pair of
//! twins), counted once however many records they have. A pair of names seen this way for
//! `n` persons, where the names' frequencies make `e` expected (`e = K · 2 · p(a) · p(b)`, `K`
//! such persons in all), is a variant when a Poisson count of mean `e` reaches `n` with
//! probability under 0.05 divided by the name pairs tested (Bonferroni), and `n ≥ 2`. Twins
//! and typos are one-off pairs and fall out (counting record pairs instead, a pair of twins
//! with two records each looked like four people: 10 of 15 "variants" on the independent
//! generator at 5k were twins); the threshold follows from the counts alone.

use std::collections::HashMap;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int64Type};
use datafusion::prelude::SessionContext;

use super::super::fields::{kind_of, CustomFields, FieldKind};
use super::super::staging::literal;
use super::collect;
use crate::error::Result;

/// The field whose variants are learned.
pub const FIELD: &str = "first_name";

/// Significance of a learned variant before the correction for the number of name pairs
/// tested: the conventional 5%.
const ALPHA: f64 = 0.05;

/// One learned variant: two given names (in order), how often records vouched for by a
/// personal field showed them together, and how often chance would.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub a: String,
    pub b: String,
    pub pairs: u64,
    pub expected: f64,
}

impl Variant {
    /// `a|b`, as stored in `match_weights` (names never hold `|`: they are normalized).
    pub fn label(&self) -> String {
        format!("{}|{}", self.a, self.b)
    }
}

/// The SQL condition of the "learned variant" level over `{l}` and `{r}`.
pub fn condition(variants: &[(String, String)]) -> String {
    if variants.is_empty() {
        return "false".into();
    }
    let list: Vec<String> = variants
        .iter()
        .map(|(a, b)| literal(&format!("{a}|{b}")))
        .collect();
    format!(
        "concat(least({{l}}, {{r}}), '|', greatest({{l}}, {{r}})) IN ({})",
        list.join(", ")
    )
}

/// A `match_weights` label back into its two names.
pub fn parse_label(label: &str) -> Option<(String, String)> {
    let (a, b) = label.split_once('|')?;
    Some((a.to_string(), b.to_string()))
}

/// Fields that belong to one person, not to a household: dates (the birth date) and
/// identifiers.
fn personal_fields(comparisons: &[String], custom: &CustomFields) -> Vec<String> {
    comparisons
        .iter()
        .filter(|f| {
            matches!(
                kind_of(f, custom),
                Some(FieldKind::Date | FieldKind::Identifier)
            )
        })
        .cloned()
        .collect()
}

/// P(X ≥ n) for X Poisson with mean `e`.
fn poisson_tail(n: u64, e: f64) -> f64 {
    let mut term = (-e).exp();
    let mut below = 0.0;
    for k in 0..n {
        below += term;
        term *= e / (k + 1) as f64;
    }
    (1.0 - below).max(term)
}

/// Learn the variants of `first_name` (see the module's documentation). `different`: the SQL
/// of the first-name comparison's level over `l` and `r` without variants; only pairs at its
/// level 0 count. `unify_records` must be registered.
pub async fn learn(
    ctx: &SessionContext,
    comparisons: &[String],
    custom: &CustomFields,
    level_sql: &str,
    max_block_size: usize,
) -> Result<Vec<Variant>> {
    if !comparisons.iter().any(|f| f == FIELD) || !comparisons.iter().any(|f| f == "last_name") {
        return Ok(Vec::new());
    }
    let personal = personal_fields(comparisons, custom);
    if personal.is_empty() {
        return Ok(Vec::new());
    }
    let per_field: Vec<String> = personal
        .iter()
        .map(|p| {
            let field = literal(p);
            format!(
                "SELECT {field} AS field, CAST(l.last_name AS VARCHAR) AS surname, CAST(l.{p} AS VARCHAR) AS personal, least(l.{FIELD}, r.{FIELD}) AS a, greatest(l.{FIELD}, r.{FIELD}) AS b \
                 FROM (SELECT *, count(*) OVER (PARTITION BY last_name, {p}) AS unify_block_n FROM unify_records \
                       WHERE {FIELD} IS NOT NULL AND last_name IS NOT NULL AND {p} IS NOT NULL) l \
                 JOIN unify_records r ON l.last_name = r.last_name AND l.{p} = r.{p} \
                 WHERE l.uid < r.uid AND l.unify_block_n <= {max_block_size} AND r.{FIELD} IS NOT NULL \
                   AND length(l.{FIELD}) > 1 AND length(r.{FIELD}) > 1 AND {level_sql} = 0"
            )
        })
        .collect();
    let sql = format!(
        "SELECT a, b, field, count(*) AS n FROM (SELECT DISTINCT field, surname, personal, a, b FROM ({})) GROUP BY a, b, field",
        per_field.join(" UNION ALL ")
    );
    let batches = collect(ctx, &sql, "name variants").await?;
    // Persons per name pair and in all, by the personal field that shows the most of them (a
    // person with a birth date and a national id would count twice in a sum).
    let mut per_pair: HashMap<(String, String), u64> = HashMap::new();
    let mut per_field: HashMap<String, u64> = HashMap::new();
    for b in &batches {
        let a = arrow::compute::cast(b.column(0), &DataType::Utf8)?;
        let bb = arrow::compute::cast(b.column(1), &DataType::Utf8)?;
        let field = arrow::compute::cast(b.column(2), &DataType::Utf8)?;
        let (a, bb, field) = (
            a.as_string::<i32>(),
            bb.as_string::<i32>(),
            field.as_string::<i32>(),
        );
        let n = b.column(3).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            if a.is_valid(i) && bb.is_valid(i) {
                let n = n.value(i) as u64;
                *per_field.entry(field.value(i).to_string()).or_default() += n;
                let e = per_pair
                    .entry((a.value(i).to_string(), bb.value(i).to_string()))
                    .or_default();
                *e = (*e).max(n);
            }
        }
    }
    let seen: Vec<(String, String, u64)> =
        per_pair.into_iter().map(|((a, b), n)| (a, b, n)).collect();
    let tested = seen.len();
    let k: u64 = per_field.values().copied().max().unwrap_or(0);
    let mut candidates: Vec<&(String, String, u64)> = seen.iter().filter(|s| s.2 >= 2).collect();
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    // Name frequencies among records with a given name.
    let freq_batches = collect(
        ctx,
        &format!(
            "SELECT CAST({FIELD} AS VARCHAR), count(*) FROM unify_records WHERE {FIELD} IS NOT NULL GROUP BY {FIELD}"
        ),
        "given-name frequencies",
    )
    .await?;
    let mut freq: HashMap<String, f64> = HashMap::new();
    let mut total = 0.0;
    for b in &freq_batches {
        let name = b.column(0).as_string::<i32>();
        let n = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            freq.insert(name.value(i).to_string(), n.value(i) as f64);
            total += n.value(i) as f64;
        }
    }
    let p = |name: &str| freq.get(name).copied().unwrap_or(1.0) / total.max(1.0);
    let cutoff = ALPHA / tested.max(1) as f64;
    candidates.sort_by(|x, y| (&x.0, &x.1).cmp(&(&y.0, &y.1)));
    Ok(candidates
        .into_iter()
        .filter_map(|(a, b, n)| {
            let expected = k as f64 * 2.0 * p(a) * p(b);
            (poisson_tail(*n, expected) < cutoff).then(|| Variant {
                a: a.clone(),
                b: b.clone(),
                pairs: *n,
                expected,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_tail_matches_the_closed_forms() {
        // P(X >= 1) = 1 - e^-e; P(X >= 0) = 1.
        assert!((poisson_tail(1, 0.5) - (1.0 - (-0.5f64).exp())).abs() < 1e-12);
        assert_eq!(poisson_tail(0, 3.0), 1.0);
        // P(X >= 2) for a tiny mean is about e²/2.
        let e = 1e-3;
        assert!((poisson_tail(2, e) / (e * e / 2.0) - 1.0).abs() < 1e-2);
    }

    #[test]
    fn condition_lists_pairs_in_order() {
        assert_eq!(condition(&[]), "false");
        let c = condition(&[
            ("harry".into(), "henry".into()),
            ("o'neil".into(), "x".into()),
        ]);
        assert!(c.starts_with("concat(least({l}, {r}), '|', greatest({l}, {r})) IN ("));
        assert!(c.contains("'harry|henry'"));
        assert!(c.contains("'o''neil|x'"));
        assert_eq!(
            parse_label("harry|henry"),
            Some(("harry".into(), "henry".into()))
        );
    }
}
