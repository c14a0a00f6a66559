//! Automatic blocking: which exact keys to join records on when `[unify.probabilistic]`
//! gives no `blocking`. The choice follows from the data, in two steps:
//!
//! 1. **Counts.** For every candidate key — each compared field alone, and every pair of
//!    them — the candidate pairs it would produce are `Σ n·(n−1)/2` over its key values
//!    (counted on a deterministic sample of up to [`SAMPLE_RECORDS`] records and scaled up),
//!    and how filled each field is in each source. The cheapest keys, until two of them share
//!    no field, are the *seed*: every compared field then has pairs found without it, so EM can
//!    learn its m.
//! 2. **Recall.** With the model trained on the seed's pairs, a true match agrees exactly on
//!    field f with probability `fill_f(A) · fill_f(B) · m_f(exact)` for records of sources
//!    A and B. Assuming fields err independently, the share of true matches a set of keys finds
//!    is exact to compute (every agreement pattern of the fields, 2^k of them). Keys are added
//!    greedily by recall gained per candidate pair until the estimated recall reaches
//!    `blocking_recall` or the pairs reach `pairs_per_record` × records.
//! 3. **Check.** Fields do not always err independently, so each key step 2 proposes is
//!    scored on a sample of the pairs it would add ([`sample_new_pairs`]) and kept only if they
//!    hold likely matches at a price per match the budget can pay.
//!
//! The plan (every candidate, its estimated pairs, whether and why it was chosen, the
//! estimated recall after it) is the `blocking_plan` table.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    AsArray, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use datafusion::prelude::SessionContext;

use super::super::fields::{kind_of, CustomFields, FieldKind};
use super::super::{collect, register};
use super::comparisons::Comparison;
use super::em::Model;
use super::ProbabilisticSection;
use crate::error::Result;

/// Records the key counts are taken on; beyond this a sample (by a hash of the record id, so
/// the same records give the same plan) is scaled up. 200k keeps the counting under a second
/// at 1M records and estimates any key with more than a handful of pairs per thousand records.
pub const SAMPLE_RECORDS: usize = 200_000;

/// Most fields keys are made of: the recall computation enumerates 2^k agreement patterns
/// per pair of sources and candidate (4,096 at 12; the rest are still compared).
const MAX_FIELDS: usize = 12;

/// One candidate key.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub key: Vec<String>,
    /// Estimated candidate pairs over all records (blocks above `max_block_size` left out,
    /// as the run skips them).
    pub pairs: f64,
    /// Estimated records in blocks above `max_block_size`.
    pub oversized_records: f64,
    /// Set once chosen: 0-based order among the chosen rules.
    pub chosen: Option<usize>,
    pub seed: bool,
    /// Estimated share of true matches found once this rule was added.
    pub recall_after: Option<f64>,
    /// What the pairs it would add showed, when it was checked (step 3).
    pub sampled: Option<Sampled>,
    pub reason: String,
}

/// The counts behind a plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub records: u64,
    pub candidates: Vec<Candidate>,
    /// Sources and their record counts (estimated from the sample).
    pub sources: Vec<(String, f64)>,
    /// fill[source][field]: share of the source's records with the field.
    pub fill: Vec<BTreeMap<String, f64>>,
    pub budget: f64,
    pub estimated_recall: Option<f64>,
}

/// The fields a key may use: compared fields, plus the surname's phonetic code when surnames
/// are compared (it finds "Meyer"/"Meier"). Categories (gender, country, state) are left out:
/// a handful of values only halves or splits another key's pairs, at the cost of every pair
/// whose category is missing or wrong on one side.
fn key_fields(comps: &[Comparison], custom: &CustomFields) -> Vec<String> {
    let mut v: Vec<String> = comps
        .iter()
        .filter(|c| kind_of(&c.field, custom) != Some(FieldKind::Category))
        .map(|c| c.field.clone())
        .collect();
    if v.iter().any(|f| f == "last_name") {
        v.push("last_name_phonetic".into());
    }
    v.truncate(MAX_FIELDS);
    v
}

/// Per source in the sample: its records (scaled to all) and each key field's fill rate.
async fn fill_per_source(
    ctx: &SessionContext,
    fields: &[String],
    scale: f64,
) -> Result<(Vec<(String, f64)>, Vec<BTreeMap<String, f64>>)> {
    let counts: Vec<String> = fields.iter().map(|f| format!("count({f})")).collect();
    let per_source = collect(
        ctx,
        &format!(
            "SELECT source, count(*), {} FROM unify_blocking_sample GROUP BY source ORDER BY source",
            counts.join(", ")
        ),
        "blocking fill rates",
    )
    .await?;
    let mut sources = Vec::new();
    let mut fill = Vec::new();
    for b in &per_source {
        let name = arrow::compute::cast(b.column(0), &DataType::Utf8)?;
        let name = name.as_string::<i32>();
        for i in 0..b.num_rows() {
            let n = b.column(1).as_primitive::<Int64Type>().value(i) as f64;
            sources.push((name.value(i).to_string(), n * scale));
            let mut f = BTreeMap::new();
            for (j, field) in fields.iter().enumerate() {
                let c = b.column(2 + j).as_primitive::<Int64Type>().value(i) as f64;
                f.insert(field.clone(), c / n.max(1.0));
            }
            fill.push(f);
        }
    }

    Ok((sources, fill))
}

/// The candidate pairs one key makes in the sample, scaled to all records; a key's blocks
/// above the cap are skipped by the run: left out of its pairs, counted.
async fn count_key(
    ctx: &SessionContext,
    key: Vec<String>,
    max_block_size: usize,
    scale: f64,
) -> Result<Candidate> {
    let cap = (max_block_size as f64 / scale).max(2.0);
    let k = key.join(", ");
    let sql = format!(
        "SELECT CAST(coalesce(sum(CASE WHEN n <= {cap} THEN n * (n - 1) / 2 ELSE 0 END), 0) AS BIGINT), \
                CAST(coalesce(sum(CASE WHEN n > {cap} THEN n ELSE 0 END), 0) AS BIGINT) \
         FROM (SELECT count(*) AS n FROM unify_blocking_sample WHERE {} GROUP BY {k})",
        super::super::matching::filled_sql(&key)
    );
    let b = collect(ctx, &sql, "blocking key counts").await?;
    let (pairs, over) = b
        .first()
        .filter(|b| b.num_rows() > 0)
        .map(|b| {
            (
                b.column(0).as_primitive::<Int64Type>().value(0) as f64,
                b.column(1).as_primitive::<Int64Type>().value(0) as f64,
            )
        })
        .unwrap_or((0.0, 0.0));
    Ok(Candidate {
        key,
        // Pairs of a sample of share s are s² of all pairs.
        pairs: pairs * scale * scale,
        oversized_records: over * scale,
        chosen: None,
        seed: false,
        recall_after: None,
        sampled: None,
        reason: String::new(),
    })
}

/// Count every candidate key (step 1). `unify_records` must be registered.
pub async fn estimate(
    ctx: &SessionContext,
    section: &ProbabilisticSection,
    comps: &[Comparison],
    max_block_size: usize,
) -> Result<Plan> {
    let fields = key_fields(comps, &section.custom);
    let records = super::super::count(ctx, "SELECT count(*) FROM unify_records", "records").await?;
    let sample = (records as usize).clamp(1, SAMPLE_RECORDS);
    let scale = records.max(1) as f64 / sample as f64;
    let order = if sample < records as usize {
        format!(" ORDER BY md5(uid || ':blocking') LIMIT {sample}")
    } else {
        String::new()
    };
    let cols = fields.join(", ");
    let batches = collect(
        ctx,
        &format!("SELECT source, {cols} FROM unify_records{order}"),
        "blocking sample",
    )
    .await?;
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => {
            return Ok(Plan {
                records,
                candidates: Vec::new(),
                sources: Vec::new(),
                fill: Vec::new(),
                budget: 0.0,
                estimated_recall: None,
            })
        }
    };
    register(ctx, "unify_blocking_sample", batches, schema)?;

    let (sources, fill) = fill_per_source(ctx, &fields, scale).await?;

    // Pairs per key: single fields, then pairs of fields that are not the same thing twice.
    let mut keys: Vec<Vec<String>> = fields.iter().map(|f| vec![f.clone()]).collect();
    for (i, a) in fields.iter().enumerate() {
        for b in &fields[i + 1..] {
            if super::related(a).contains(&b.as_str()) || super::related(b).contains(&a.as_str()) {
                continue;
            }
            keys.push(vec![a.clone(), b.clone()]);
        }
    }
    let mut candidates = Vec::new();
    for key in keys {
        candidates.push(count_key(ctx, key, max_block_size, scale).await?);
    }
    let _ = ctx.deregister_table("unify_blocking_sample");
    candidates.sort_by(|a, b| a.pairs.total_cmp(&b.pairs).then(a.key.cmp(&b.key)));
    Ok(Plan {
        records,
        candidates,
        sources,
        fill,
        budget: section.pairs_per_record * records as f64,
        estimated_recall: None,
    })
}

/// Pairs per candidate key checked in step 3: whole blocks are sampled (by a hash of the key
/// value) down to about this many pairs, so the check costs the same at any size. A key near
/// the price the budget pays (40–120 pairs per match on FEBRL3 and the demo) shows hundreds
/// of likely matches in 50,000 pairs, enough to decide; one far above it shows few, and is
/// far above it. At 200,000 the 23 checks of the 100k demo took 9.8 s of its 18 s unify.
pub const SAMPLE_PAIRS: f64 = 50_000.0;

/// The records of the key's sampled blocks while one key is checked (a scratch table).
const KEY_CHECK: &str = "unify_key_check";

/// What a key's new pairs (those no chosen key finds) showed on a sample of its blocks,
/// scaled to all of them.
#[derive(Debug, Clone, Copy)]
pub struct Sampled {
    pub pairs: f64,
    /// Expected matches among them by the model.
    pub matches: f64,
}

/// Step 2's estimate: the share of true matches a set of keys finds, from the fill rates and
/// the model's exact-agreement rates, fields assumed to err independently.
struct RecallModel {
    fields: Vec<String>,
    /// Per pair of sources: weight (the smaller source: at most that many matches) and the
    /// probability of each agreement pattern.
    groups: Vec<(f64, Vec<f64>)>,
    total_w: f64,
}

impl RecallModel {
    fn new(plan: &Plan, comps: &[Comparison], model: &Model) -> RecallModel {
        // P(a true match agrees exactly on the field | both filled).
        let agree = |field: &str| -> f64 {
            let (name, levels) = match field {
                // The phonetic code agrees on exact and near-exact spellings.
                "last_name_phonetic" => ("last_name", 2),
                f => (f, 1),
            };
            comps
                .iter()
                .position(|c| c.field == name)
                .map(|c| {
                    let top = comps[c].level_count() - 1;
                    (0..levels.min(top))
                        .map(|d| model.m[c][top - d])
                        .sum::<f64>()
                })
                .unwrap_or(0.0)
                .clamp(0.0, 1.0)
        };
        let fields: Vec<String> = {
            let mut v: Vec<String> = plan.candidates.iter().flat_map(|c| c.key.clone()).collect();
            v.sort();
            v.dedup();
            v.truncate(MAX_FIELDS);
            v
        };
        let mut groups: Vec<(f64, Vec<f64>)> = Vec::new();
        for a in 0..plan.sources.len() {
            for b in a..plan.sources.len() {
                let w = plan.sources[a].1.min(plan.sources[b].1);
                let p: Vec<f64> = fields
                    .iter()
                    .map(|f| {
                        let fa = plan.fill[a].get(f).copied().unwrap_or(0.0);
                        let fb = plan.fill[b].get(f).copied().unwrap_or(0.0);
                        fa * fb * agree(f)
                    })
                    .collect();
                let mut prob = vec![1.0; 1 << fields.len()];
                for (mask, pr) in prob.iter_mut().enumerate() {
                    for (i, pf) in p.iter().enumerate() {
                        *pr *= if mask >> i & 1 == 1 { *pf } else { 1.0 - pf };
                    }
                }
                groups.push((w, prob));
            }
        }
        let total_w: f64 = groups.iter().map(|g| g.0).sum::<f64>().max(1e-12);
        RecallModel {
            fields,
            groups,
            total_w,
        }
    }

    /// The key's fields as bits of an agreement pattern.
    fn mask(&self, key: &[String]) -> Option<usize> {
        key.iter().try_fold(0usize, |m, f| {
            self.fields.iter().position(|x| x == f).map(|b| m | 1 << b)
        })
    }

    /// Estimated share of true matches the keys find: a key finds a pair when all its fields
    /// agree (its bits are a subset of the pattern's).
    fn recall(&self, chosen: &[usize]) -> f64 {
        let found = |mask: usize| chosen.iter().any(|&k| k & !mask == 0);
        self.groups
            .iter()
            .map(|(w, prob)| {
                w * prob
                    .iter()
                    .enumerate()
                    .filter(|(m, _)| found(*m))
                    .map(|(_, p)| p)
                    .sum::<f64>()
            })
            .sum::<f64>()
            / self.total_w
    }
}

/// Step 3: the pairs `key` would add to those the `chosen` keys find, on a sample of its
/// blocks, scored by the model with the prior of a random pair. Step 2 assumes fields err
/// independently; where they do not (the demo's records that lack e-mail and phone lack them
/// together), it promised a key 3.5% more recall that its 4 M pairs did not hold.
#[allow(clippy::too_many_arguments)]
async fn sample_new_pairs(
    ctx: &SessionContext,
    key: &[String],
    chosen: &[&[String]],
    estimated_pairs: f64,
    max_block_size: usize,
    comps: &[Comparison],
    term_frequency: &[String],
    model: &Model,
    prior: f64,
) -> Result<Sampled> {
    let share = (SAMPLE_PAIRS / estimated_pairs.max(1.0)).min(1.0);
    let k = key.join(", ");
    let mut filters: Vec<String> = key.iter().map(|f| format!("{f} IS NOT NULL")).collect();
    if share < 1.0 {
        // Whole blocks: the key's stable hash below share × 2^32.
        filters.push(format!(
            "block_key_hash({k}) < {}",
            (share * 4_294_967_296.0) as u64
        ));
    }
    let found: Vec<String> = chosen
        .iter()
        .map(|c| format!("coalesce({}, false)", super::agree_sql(c)))
        .collect();
    let mut wher = vec!["l.uid < r.uid".to_string()];
    if !found.is_empty() {
        wher.push(format!("NOT ({})", found.join(" OR ")));
    }
    let mut inner = vec!["CAST(0 AS INT) AS block".to_string()];
    let mut outer = vec!["p.block".to_string()];
    for c in comps {
        inner.push(format!("{} AS {}", c.level_sql("l", "r"), c.column()));
        outer.push(format!("p.{}", c.column()));
    }
    // Exact agreement weighs by the value's frequency, as the run scores it: on the 1M demo,
    // pricing every exact first name or surname at the level's average made namesakes in one
    // postcode look like matches (a key "holding" 23% of all true pairs).
    let tf = super::term_frequency_sql(term_frequency);
    inner.extend(tf.inner);
    outer.extend(tf.outer);
    let scoring = super::Scoring {
        comparisons: comps.to_vec(),
        model: Model {
            m: model.m.clone(),
            u: model.u.clone(),
            lambda: vec![prior],
            lambda_size: Vec::new(),
            iterations: 0,
            converged: true,
        },
        skip: vec![vec![false; comps.len()]],
        term_frequency: term_frequency.to_vec(),
    };
    // Only the columns the levels and keys read (a window over whole records, twice, took
    // 0.4 s a check at 100k; blocks over the cap are found by a grouping instead).
    let read: Vec<String> = comps.iter().flat_map(|c| c.columns()).collect();
    let mut cols: Vec<&str> = vec!["uid"];
    cols.extend(read.iter().map(String::as_str));
    cols.extend(key.iter().map(String::as_str));
    cols.extend(chosen.iter().flat_map(|c| c.iter().map(String::as_str)));
    cols.sort_unstable();
    cols.dedup();
    // The sampled records are read three times below (blocks over the cap, and both sides of
    // the join): collected once, so the key is hashed once per record (as a CTE every
    // reference scanned and hashed all records again: 9 s a check at 10M demo people). Held
    // in memory: the records of blocks holding about SAMPLE_PAIRS pairs, the same number at
    // any size (0.6-227 k rows for the 1M demo's 21 checks).
    let sample = super::super::collect(
        ctx,
        &format!(
            "SELECT {cols} FROM unify_records WHERE {filters}",
            cols = cols.join(", "),
            filters = filters.join(" AND "),
        ),
        "blocking key check sample",
    )
    .await?;
    let schema = match sample.first() {
        Some(b) => b.schema(),
        None => Arc::new(
            ctx.sql(&format!(
                "SELECT {} FROM unify_records LIMIT 0",
                cols.join(", ")
            ))
            .await?
            .schema()
            .as_arrow()
            .clone(),
        ),
    };
    register(ctx, KEY_CHECK, sample, schema)?;
    let big_on: Vec<String> = key.iter().map(|f| format!("s.{f} = b.{f}")).collect();
    let sql = format!(
        "WITH b AS (SELECT {k} FROM {KEY_CHECK} GROUP BY {k} HAVING count(*) > {max_block_size}), \
         kept AS (SELECT s.* FROM {KEY_CHECK} s LEFT JOIN b ON {big_on} WHERE b.{first} IS NULL) \
         SELECT count(*) AS n, CAST(coalesce(sum(1.0 / (1.0 + power(2.0, -({w})))), 0.0) AS DOUBLE) AS matches \
         FROM (SELECT {outer} FROM (SELECT {inner} FROM kept l JOIN kept r ON {on} WHERE {wher}) p{tf_joins})",
        big_on = big_on.join(" AND "),
        first = key[0],
        w = scoring.weight_sql(),
        outer = outer.join(", "),
        inner = inner.join(", "),
        tf_joins = tf.joins,
        on = super::agree_sql(key),
        wher = wher.join(" AND "),
    );
    let batches = collect(ctx, &sql, "blocking key check").await;
    let _ = ctx.deregister_table(KEY_CHECK);
    let batches = batches?;
    let (mut pairs, mut matches) = (0.0, 0.0);
    for b in batches.iter().filter(|b| b.num_rows() > 0) {
        pairs += b.column(0).as_primitive::<Int64Type>().value(0) as f64;
        matches += b
            .column(1)
            .as_primitive::<arrow::datatypes::Float64Type>()
            .value(0);
    }
    Ok(Sampled {
        pairs: pairs / share,
        matches: matches / share,
    })
}

impl Plan {
    /// One line for the log: the chosen rules, the estimated recall and pairs.
    pub fn summary(&self, chosen: &[Vec<String>]) -> String {
        format!(
            "blocking chosen from the data: {} (estimated recall {:.4}, {} estimated pairs)",
            chosen
                .iter()
                .map(|k| k.join("+"))
                .collect::<Vec<_>>()
                .join(", "),
            self.estimated_recall.unwrap_or(0.0),
            self.candidates
                .iter()
                .filter(|c| c.chosen.is_some())
                .map(|c| c.pairs)
                .sum::<f64>()
                .round()
        )
    }

    /// Keys that find nothing (a field no source fills twice) are never chosen.
    fn usable(c: &Candidate) -> bool {
        c.pairs >= 1.0
    }

    /// Choose the seed: the cheapest usable keys until two of them share no field (at most
    /// four), within the budget. Returns the seed's keys in order.
    pub fn choose_seed(&mut self) -> Vec<Vec<String>> {
        let mut spent = 0.0;
        let mut seed: Vec<usize> = Vec::new();
        for i in 0..self.candidates.len() {
            let c = &self.candidates[i];
            if !Self::usable(c) || spent + c.pairs > self.budget {
                continue;
            }
            // Skip a key that only narrows one already in the seed (its pairs are found).
            if seed
                .iter()
                .any(|&s| self.candidates[s].key.iter().all(|f| c.key.contains(f)))
            {
                continue;
            }
            spent += c.pairs;
            seed.push(i);
            let disjoint = seed.iter().enumerate().any(|(x, &a)| {
                seed[x + 1..].iter().any(|&b| {
                    self.candidates[a]
                        .key
                        .iter()
                        .all(|f| !self.candidates[b].key.contains(f))
                })
            });
            if disjoint || seed.len() >= 4 {
                break;
            }
        }
        for (order, &i) in seed.iter().enumerate() {
            let c = &mut self.candidates[i];
            c.chosen = Some(order);
            c.seed = true;
            c.reason = "seed: among the cheapest keys, trains the model".into();
        }
        seed.iter()
            .map(|&i| self.candidates[i].key.clone())
            .collect()
    }

    /// The unchosen, unchecked key within the budget that gains the most estimated recall
    /// per pair it adds: (candidate, recall gain).
    fn best_gain(
        &self,
        recall_of: &RecallModel,
        chosen_masks: &[usize],
        r: f64,
        spent: f64,
    ) -> Option<(usize, f64)> {
        let mut best: Option<(usize, f64, f64)> = None;
        for (i, c) in self.candidates.iter().enumerate() {
            // Checked and not chosen: left out by step 3.
            if c.chosen.is_some()
                || c.sampled.is_some()
                || !Self::usable(c)
                || spent + c.pairs > self.budget
            {
                continue;
            }
            let Some(km) = recall_of.mask(&c.key) else {
                continue;
            };
            let mut with = chosen_masks.to_vec();
            with.push(km);
            let gain = recall_of.recall(&with) - r;
            if gain <= 1e-9 {
                continue;
            }
            let score = gain / c.pairs.max(1.0);
            if best.is_none_or(|(_, s, _)| score > s) {
                best = Some((i, score, gain));
            }
        }
        best.map(|(i, _, gain)| (i, gain))
    }

    /// Why each key neither chosen nor checked was left out.
    fn explain_left_out(&mut self, spent: f64) {
        let budget = self.budget;
        for c in self.candidates.iter_mut().filter(|c| c.chosen.is_none()) {
            if c.sampled.is_some() {
                continue;
            }
            c.reason = if !Self::usable(c) {
                "finds no pairs".into()
            } else if spent + c.pairs > budget {
                format!("over the budget of {:.0} pairs (pairs_per_record)", budget)
            } else {
                "not needed: the chosen keys reach the recall aimed at, or it adds nothing".into()
            };
        }
    }

    /// Add keys by recall gained per pair (step 2) with the model trained on the seed's pairs,
    /// each checked on the pairs it would add (step 3). `found`: the expected matches among
    /// the seed's pairs. Returns every chosen key in order (the seed first).
    #[allow(clippy::too_many_arguments)]
    pub async fn choose(
        &mut self,
        ctx: &SessionContext,
        section: &ProbabilisticSection,
        comps: &[Comparison],
        model: &Model,
        max_block_size: usize,
        found: f64,
    ) -> Result<Vec<Vec<String>>> {
        let (target, term_frequency) = (section.blocking_recall, &section.term_frequency);
        let recall_of = RecallModel::new(self, comps, model);
        let mut order: Vec<usize> = (0..self.candidates.len())
            .filter(|&i| self.candidates[i].chosen.is_some())
            .collect();
        order.sort_by_key(|&i| self.candidates[i].chosen);
        let mut chosen_masks: Vec<usize> = order
            .iter()
            .filter_map(|&i| recall_of.mask(&self.candidates[i].key))
            .collect();
        let mut spent: f64 = order.iter().map(|&i| self.candidates[i].pairs).sum();
        let mut r = recall_of.recall(&chosen_masks);
        if let Some(&last) = order.last() {
            self.candidates[last].recall_after = Some(r);
        }
        // Matches so far, and all there are by the estimated recall: the prior of a random
        // pair, for scoring the pairs a key would add.
        let mut matches = found;
        let all_pairs = (self.records as f64) * (self.records as f64 - 1.0) / 2.0;
        let prior = (found / r.max(0.01) / all_pairs.max(1.0)).clamp(1e-12, 0.5);
        while r < target {
            let best = self.best_gain(&recall_of, &chosen_masks, r, spent);
            let Some((i, gain)) = best else { break };
            let chosen_keys: Vec<&[String]> = order
                .iter()
                .map(|&o| self.candidates[o].key.as_slice())
                .collect();
            let sampled = sample_new_pairs(
                ctx,
                &self.candidates[i].key,
                &chosen_keys,
                self.candidates[i].pairs,
                max_block_size,
                comps,
                term_frequency,
                model,
                prior,
            )
            .await?;
            let c = &mut self.candidates[i];
            c.sampled = Some(sampled);
            // Worth its pairs only if the matches they hold come at no more pairs each than
            // the whole budget, spent evenly on the matches found so far, would pay.
            let per_match = sampled.pairs / sampled.matches.max(1e-9);
            let price = self.budget / matches.max(1.0);
            if sampled.pairs < 1.0 {
                c.reason = format!(
                    "estimated recall gain {gain:.4} by the model, but the chosen keys find every pair it finds (sampled)"
                );
                continue;
            }
            if per_match > price {
                c.reason = format!(
                    "estimated recall gain {gain:.4} by the model, but its new pairs (sampled) cost {per_match:.0} pairs per likely match ({:.0} pairs, {:.1} matches): more than the {price:.0} the budget allows per match found",
                    sampled.pairs, sampled.matches
                );
                continue;
            }
            c.chosen = Some(order.len());
            r += gain;
            c.recall_after = Some(r);
            c.reason = format!(
                "most estimated recall gained per pair; its new pairs (sampled) hold about {:.0} likely matches",
                sampled.matches
            );
            spent += c.pairs;
            matches += sampled.matches;
            order.push(i);
            chosen_masks.push(recall_of.mask(&c.key).expect("checked"));
        }
        self.explain_left_out(spent);
        self.estimated_recall = Some(r);
        Ok(order
            .iter()
            .map(|&i| self.candidates[i].key.clone())
            .collect())
    }

    /// The `blocking_plan` table: every candidate key, chosen ones first in their order.
    pub fn batch(&self) -> Result<RecordBatch> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("rule", DataType::Utf8, false),
            Field::new("fields", DataType::Utf8, false),
            Field::new("chosen", DataType::Boolean, false),
            Field::new("rule_order", DataType::Int64, true),
            Field::new("seed", DataType::Boolean, false),
            Field::new("estimated_pairs", DataType::Float64, false),
            Field::new("oversized_records", DataType::Float64, false),
            Field::new("estimated_recall_after", DataType::Float64, true),
            Field::new("sampled_new_pairs", DataType::Float64, true),
            Field::new("sampled_matches", DataType::Float64, true),
            Field::new("reason", DataType::Utf8, false),
        ]));
        let mut idx: Vec<usize> = (0..self.candidates.len()).collect();
        idx.sort_by_key(|&i| (self.candidates[i].chosen.unwrap_or(usize::MAX), i));
        let (mut rule, mut fields, mut reason) = (
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
        );
        let (mut chosen, mut seed) = (BooleanBuilder::new(), BooleanBuilder::new());
        let mut order = Int64Builder::new();
        let (mut pairs, mut over, mut rec) = (
            Float64Builder::new(),
            Float64Builder::new(),
            Float64Builder::new(),
        );
        let (mut new_pairs, mut new_matches) = (Float64Builder::new(), Float64Builder::new());
        for i in idx {
            let c = &self.candidates[i];
            rule.append_value(super::block_name(&c.key));
            fields.append_value(c.key.join("+"));
            chosen.append_value(c.chosen.is_some());
            order.append_option(c.chosen.map(|o| o as i64));
            seed.append_value(c.seed);
            pairs.append_value(c.pairs.round());
            over.append_value(c.oversized_records.round());
            rec.append_option(c.recall_after);
            new_pairs.append_option(c.sampled.map(|s| s.pairs.round()));
            new_matches.append_option(c.sampled.map(|s| (s.matches * 10.0).round() / 10.0));
            reason.append_value(&c.reason);
        }
        Ok(RecordBatch::try_new(
            schema,
            vec![
                Arc::new(rule.finish()),
                Arc::new(fields.finish()),
                Arc::new(chosen.finish()),
                Arc::new(order.finish()),
                Arc::new(seed.finish()),
                Arc::new(pairs.finish()),
                Arc::new(over.finish()),
                Arc::new(rec.finish()),
                Arc::new(new_pairs.finish()),
                Arc::new(new_matches.finish()),
                Arc::new(reason.finish()),
            ],
        )?)
    }
}
