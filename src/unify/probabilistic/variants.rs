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
//!
//! Overall frequencies are not the only chance to beat: given names cluster by language and
//! family, so two names of one country meet under one surname far more often than their
//! overall frequencies say. On the 1M demo (names drawn from short per-country lists) the
//! twins alone made 1,213 "variants" such as `alexandra|amelia`, and household members sharing
//! a mailbox then linked through them: 19,000 of the 23,700 false links, precision 0.944.
//! So a pair must also beat the rate at which its names meet as different records under one
//! surname: `e' = K · Q(a, b) / Q`, `Q(a, b)` the same-surname record pairs named `a` and `b`
//! (Σ over surnames of count(a) · count(b)) and `Q` all same-surname pairs of different given
//! names — the families and countries of this data, counted, not assumed. A variant must be
//! unlikely under the larger of the two means.

use std::collections::HashMap;

use arrow::array::{Array, AsArray, StringArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::prelude::SessionContext;

use super::super::fields::{kind_of, CustomFields, FieldKind};
use super::super::staging::literal;
use super::collect;
use crate::error::Result;
use crate::output::as_strings;

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
            // Blocks over the cap are left out by a grouped count joined back, not a window
            // over whole records (a sort of every column: 3.1 s of the independent
            // generator's 1M unify), and both sides hold only records with the key and a
            // given name (the join would drop the others anyway).
            let filled = format!("{FIELD} IS NOT NULL AND last_name IS NOT NULL AND {p} IS NOT NULL");
            format!(
                "SELECT {field} AS field, CAST(l.last_name AS VARCHAR) AS surname, CAST(l.{p} AS VARCHAR) AS personal, least(l.{FIELD}, r.{FIELD}) AS a, greatest(l.{FIELD}, r.{FIELD}) AS b \
                 FROM (SELECT * FROM unify_records WHERE {filled}) l \
                 JOIN (SELECT last_name AS unify_k_last, {p} AS unify_k_p FROM unify_records WHERE {filled} \
                       GROUP BY last_name, {p} HAVING count(*) <= {max_block_size}) k \
                   ON k.unify_k_last = l.last_name AND k.unify_k_p = l.{p} \
                 JOIN (SELECT * FROM unify_records WHERE {filled}) r ON l.last_name = r.last_name AND l.{p} = r.{p} \
                 WHERE l.uid < r.uid AND length(l.{FIELD}) > 1 AND length(r.{FIELD}) > 1 AND {level_sql} = 0"
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
    let families = same_surname_rates(ctx, &candidates).await?;
    Ok(candidates
        .into_iter()
        .filter_map(|(a, b, n)| {
            let by_frequency = k as f64 * 2.0 * p(a) * p(b);
            let by_family = k as f64
                * families
                    .pairs
                    .get(&(a.clone(), b.clone()))
                    .map_or(0.0, |q| q / families.total.max(1.0));
            let expected = by_frequency.max(by_family);
            (poisson_tail(*n, expected) < cutoff).then(|| Variant {
                a: a.clone(),
                b: b.clone(),
                pairs: *n,
                expected,
            })
        })
        .collect())
}

/// How often given names meet under one surname as different records (see the module's
/// documentation): `pairs` for the candidate name pairs, `total` over all pairs of different
/// given names.
struct FamilyRates {
    pairs: HashMap<(String, String), f64>,
    total: f64,
}

/// Count the same-surname record pairs per candidate name pair and in all, from the names per
/// surname (one row per surname and given name). The total takes every pair of different
/// names, a few of which a spelling level calls alike ("jon"/"john") where the vouched
/// persons count only the "different" level: that makes the mean a little low, so the test a
/// little less strict than the exact one. The exact total evaluated the spelling comparison
/// over every same-surname name pair: 8.8 s of the 1M demo's unify stage; this is a grouping.
async fn same_surname_rates(
    ctx: &SessionContext,
    candidates: &[&(String, String, u64)],
) -> Result<FamilyRates> {
    // Records per surname and given name, read once; the sums are in memory. In SQL every
    // pair of names under a surname was 25 M groups at 10M demo people (37 s) for 288 k
    // candidates, and the candidates joined first 58 s (a common name under every surname).
    let batches = collect(
        ctx,
        &format!(
            "SELECT CAST(last_name AS VARCHAR) AS last_name, CAST({FIELD} AS VARCHAR) AS name, \
                    CAST(count(*) AS DOUBLE) AS c \
             FROM unify_records WHERE {FIELD} IS NOT NULL AND last_name IS NOT NULL AND length({FIELD}) > 1 \
             GROUP BY 1, 2"
        ),
        "given names per surname",
    )
    .await?;
    let wanted: std::collections::HashSet<&str> = candidates
        .iter()
        .flat_map(|(a, b, _)| [a.as_str(), b.as_str()])
        .collect();
    let mut surnames: HashMap<String, usize> = HashMap::new();
    // Per surname: records, and the sum of squares of its names' records.
    let mut per_surname: Vec<(f64, f64)> = Vec::new();
    let mut by_name: HashMap<&str, Vec<(usize, f64)>> = HashMap::new();
    let columns: Vec<(StringArray, StringArray)> = batches
        .iter()
        .map(|b| Ok((as_strings(b.column(0))?, as_strings(b.column(1))?)))
        .collect::<Result<_>>()?;
    for (b, (surname, name)) in batches.iter().zip(&columns) {
        let c = b.column(2).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            let next = surnames.len();
            let s = *surnames.entry(surname.value(i).to_string()).or_insert(next);
            if s == per_surname.len() {
                per_surname.push((0.0, 0.0));
            }
            let c = c.value(i);
            per_surname[s].0 += c;
            per_surname[s].1 += c * c;
            if let Some(&n) = wanted.get(name.value(i)) {
                by_name.entry(n).or_default().push((s, c));
            }
        }
    }
    let total = per_surname.iter().map(|(n, sq)| (n * n - sq) / 2.0).sum();
    for list in by_name.values_mut() {
        list.sort_unstable_by_key(|e| e.0);
    }
    // Per candidate pair: Σ over the surnames both names are under of their records' product.
    let mut pairs = HashMap::new();
    for (a, b, _) in candidates {
        let (Some(la), Some(lb)) = (by_name.get(a.as_str()), by_name.get(b.as_str())) else {
            continue;
        };
        let (mut i, mut j, mut q, mut shared) = (0, 0, 0.0, false);
        while i < la.len() && j < lb.len() {
            match la[i].0.cmp(&lb[j].0) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    q += la[i].1 * lb[j].1;
                    shared = true;
                    i += 1;
                    j += 1;
                }
            }
        }
        if shared {
            pairs.insert((a.clone(), b.clone()), q);
        }
    }
    Ok(FamilyRates { pairs, total })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table_catalog::names;

    #[test]
    fn poisson_tail_matches_the_closed_forms() {
        // P(X >= 1) = 1 - e^-e; P(X >= 0) = 1.
        assert!((poisson_tail(1, 0.5) - (1.0 - (-0.5f64).exp())).abs() < 1e-12);
        assert_eq!(poisson_tail(0, 3.0), 1.0);
        // P(X >= 2) for a tiny mean is about e²/2.
        let e = 1e-3;
        assert!((poisson_tail(2, e) / (e * e / 2.0) - 1.0).abs() < 1e-2);
    }

    /// Records of two "countries", each with three given names and its own surnames: twins
    /// (same surname and birth date, two names of their country) and siblings (same surname,
    /// other birth dates), plus five women who are "margaretha" in one record and "greet" in
    /// another. By overall frequencies the twins' name pairs are far too common (each name is
    /// a sixth of the records, yet each pair of a country's names shows up in a third of its
    /// twins); as names meet under one surname they are ordinary. Only the call name is learned.
    #[tokio::test]
    async fn twins_of_one_country_are_not_variants() {
        use arrow::array::{ArrayRef, Date32Array, StringArray};
        use arrow::record_batch::RecordBatch;
        use std::sync::Arc;

        let countries = [
            (
                ["anna", "berta", "clara"],
                ["huber", "gruber", "bauer", "wagner"],
            ),
            (
                ["xaver", "yannick", "zeno"],
                ["lefevre", "moreau", "girard", "roux"],
            ),
        ];
        let (mut first, mut last, mut born) = (Vec::new(), Vec::new(), Vec::new());
        let mut day = 0;
        let mut push = |f: &str, l: &str, d: i32| {
            first.push(f.to_string());
            last.push(l.to_string());
            born.push(d);
        };
        for (names, surnames) in &countries {
            for i in 0..60 {
                let surname = surnames[i % surnames.len()];
                let (a, b) = (names[i % 3], names[(i / 3 + i + 1) % 3]);
                if a == b {
                    continue;
                }
                day += 1;
                // Twins, then two siblings born other days.
                push(a, surname, day);
                push(b, surname, day);
                push(names[(i + 2) % 3], surname, day + 5_000);
                push(names[(i + 1) % 3], surname, day + 9_000);
            }
        }
        for i in 0..5 {
            push("margaretha", "de vries", 20_000 + i);
            push("greet", "de vries", 20_000 + i);
        }
        let uid: Vec<String> = (0..first.len()).map(|i| format!("r{i}")).collect();
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("uid", Arc::new(StringArray::from(uid))),
            ("first_name", Arc::new(StringArray::from(first))),
            ("last_name", Arc::new(StringArray::from(last))),
            ("birth_date", Arc::new(Date32Array::from(born))),
        ];
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let ctx = crate::run_context::new_context();
        ctx.register_batch(names::UNIFY_RECORDS, batch).unwrap();
        let comparisons: Vec<String> = ["first_name", "last_name", "birth_date"]
            .iter()
            .map(|f| f.to_string())
            .collect();
        let level = "CASE WHEN l.first_name = r.first_name THEN 1 ELSE 0 END";
        let learned = learn(&ctx, &comparisons, &CustomFields::new(), level, 1000)
            .await
            .unwrap();
        let labels: Vec<String> = learned.iter().map(Variant::label).collect();
        // By overall frequencies alone every twin pair would have passed: anna|berta is seen
        // for 14 of the 89 vouched persons where 4.66 are expected, P = 0.00036 < 0.05 / 7.
        // Under one surname those names meet in 786 of the 4,737 record pairs: 14.8 expected.
        assert_eq!(labels, ["greet|margaretha"], "{learned:?}");
        assert_eq!(learned[0].pairs, 5);
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
