//! Match rules compiled to SQL. A rule's exact conditions are its blocking key: only records
//! sharing it are compared (an equi-join), and keys shared by more than `max_block_size`
//! records are skipped with a warning naming the key. Fuzzy conditions score with
//! `levenshtein_sim`, D365's `(length - edits) / length`.

use datafusion::prelude::SessionContext;

use super::config::{MatchRule, Precision};
use super::{collect, register_like};
pub use crate::config::unify::check_rule;
use crate::error::Result;

/// The exact fields of a rule: its blocking key.
pub fn blocking_key(rule: &MatchRule) -> Vec<&str> {
    rule.conditions
        .iter()
        .filter(|c| c.precision == Precision::Exact)
        .map(|c| c.field.as_str())
        .collect()
}

/// SQL of "records `l` and `r` agree on every field of `key`".
pub fn agree_sql<K: AsRef<str>>(key: &[K]) -> String {
    key.iter()
        .map(|k| format!("l.{k} = r.{k}", k = k.as_ref()))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// SQL of "the record holds every field of `key`" (unqualified columns).
pub fn filled_sql<K: AsRef<str>>(key: &[K]) -> String {
    key.iter()
        .map(|k| format!("{} IS NOT NULL", k.as_ref()))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// SQL listing values of the fields `key` shared by more than `cap` records.
pub fn oversized_key_blocks_sql(key: &[&str], cap: usize) -> String {
    format!(
        "SELECT {cols}, count(*) AS records FROM unify_records WHERE {nn} GROUP BY {cols} HAVING count(*) > {cap} ORDER BY records DESC",
        cols = key.join(", "),
        nn = filled_sql(key),
    )
}

/// Which records a candidate query pairs (always as `l.uid < r.uid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sides {
    /// Every record with every other (a full run).
    All,
    /// Touched records (`unify_delta`) on the left, any record sharing the key on the right
    /// (read from `unify_near`, the matching fields of the records that share the key with a
    /// touched one: [`register_near`], called first for the key).
    DeltaLeft,
    /// Untouched records on the left, touched ones on the right. With [`Sides::DeltaLeft`]
    /// this finds every pair with a touched record exactly once.
    DeltaRight,
}

impl Sides {
    /// The FROM clause joining `l` and `r` on equal values of every field of `key`, and a
    /// filter it needs.
    pub fn from_clause<K: AsRef<str>>(self, key: &[K]) -> (String, Option<&'static str>) {
        let on = agree_sql(key);
        match self {
            // Only records holding the key join, filtered before the hash table is built
            // (DataFusion does not infer it): 0.8 -> 0.5 s for email + birth date at 1M.
            Sides::All => {
                let filled = filled_sql(key);
                (
                    format!(
                        "(SELECT * FROM unify_records WHERE {filled}) l \
                         JOIN (SELECT * FROM unify_records WHERE {filled}) r ON {on}"
                    ),
                    None,
                )
            }
            Sides::DeltaLeft => (format!("unify_delta l JOIN unify_near r ON {on}"), None),
            Sides::DeltaRight => (
                format!(
                    "unify_near l JOIN unify_delta r ON {on} LEFT JOIN unify_delta x ON x.uid = l.uid"
                ),
                Some("x.uid IS NULL"),
            ),
        }
    }
}

/// Register `unify_near`: the records (of `unify_compare`) that share blocking key `key` with
/// a touched record (`unify_delta`). Every pair an increment compares under the key has one
/// record touched and the other among these, so both sides of the candidate query ([`Sides`])
/// and the key sizes read them instead of every record: one hash join over the 1.46 M records
/// of the 1M demo per rule instead of two (each ~0.13 s; stop 52), and joins of a few thousand
/// rows after it. Here, beside [`Sides`], because both matching modes' increments call it.
pub async fn register_near<K: AsRef<str>>(ctx: &SessionContext, key: &[K]) -> Result<()> {
    let key: Vec<&str> = key.iter().map(|k| k.as_ref()).collect();
    let on: Vec<String> = key.iter().map(|k| format!("c.{k} = d.{k}")).collect();
    let sql = format!(
        "SELECT c.* FROM unify_compare c JOIN (SELECT DISTINCT {k} FROM unify_delta WHERE {filled}) d ON {on}",
        k = key.join(", "),
        filled = filled_sql(&key),
        on = on.join(" AND "),
    );
    let near = collect(ctx, &sql, "records sharing a key with the touched ones").await?;
    register_like(ctx, "unify_near", &near, "unify_compare").await
}

/// A rule's conditions besides its exact fields, over records `l` and `r`, and the SQL of its
/// score (the weakest fuzzy similarity, else 1).
pub fn rule_conditions(rule: &MatchRule) -> (Vec<String>, String) {
    let mut filters = Vec::new();
    let mut sims = Vec::new();
    for c in &rule.conditions {
        let f = &c.field;
        match c.precision {
            Precision::Exact => {}
            Precision::Fuzzy(p) => {
                let sim = format!("levenshtein_sim(l.{f}, r.{f})");
                filters.push(format!("{sim} >= {p}"));
                sims.push(sim);
            }
            Precision::Compatible => {
                filters.push(format!("(l.{f} IS NULL OR r.{f} IS NULL OR l.{f} = r.{f})"));
            }
            Precision::Initial => {
                filters.push(format!(
                    "((length(l.{f}) = 1 AND l.{f} = substr(r.{f}, 1, 1)) \
                     OR (length(r.{f}) = 1 AND r.{f} = substr(l.{f}, 1, 1)))"
                ));
            }
        }
    }
    let score = match sims.len() {
        0 => "1.0".to_string(),
        1 => sims[0].clone(),
        _ => format!("least({})", sims.join(", ")),
    };
    (filters, score)
}

/// SQL producing `(left_uid, right_uid, rule, rule_order, score)` for one rule, skipping the
/// blocks listed in the table `skip_table` (same key columns).
pub fn candidate_pairs_sql(
    rule: &MatchRule,
    order: usize,
    skip_table: Option<&str>,
    sides: Sides,
) -> String {
    let key = blocking_key(rule);
    let (from, side_filter) = sides.from_clause(&key);
    let mut filters = vec!["l.uid < r.uid".to_string()];
    filters.extend(side_filter.map(String::from));
    let (conditions, score) = rule_conditions(rule);
    filters.extend(conditions);
    let (skip_join, skip_filter) = match skip_table {
        Some(t) => {
            let on: Vec<String> = key.iter().map(|k| format!("s.{k} = l.{k}")).collect();
            (
                format!(" LEFT JOIN {t} s ON {}", on.join(" AND ")),
                format!(" AND s.{} IS NULL", key[0]),
            )
        }
        None => (String::new(), String::new()),
    };
    format!(
        "SELECT l.uid AS left_uid, r.uid AS right_uid, '{name}' AS rule, CAST({order} AS BIGINT) AS rule_order, \
         CAST({score} AS DOUBLE) AS score \
         FROM {from}{skip_join} WHERE {filters}{skip_filter}",
        name = rule.name.replace('\'', "''"),
        filters = filters.join(" AND "),
    )
}
