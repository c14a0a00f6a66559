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

    // Fill per source.
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
    // A key's blocks above the cap are skipped by the run: left out of its pairs, counted.
    let cap = (max_block_size as f64 / scale).max(2.0);
    let mut candidates = Vec::new();
    for key in keys {
        let k = key.join(", ");
        let nn: Vec<String> = key.iter().map(|f| format!("{f} IS NOT NULL")).collect();
        let sql = format!(
            "SELECT CAST(coalesce(sum(CASE WHEN n <= {cap} THEN n * (n - 1) / 2 ELSE 0 END), 0) AS BIGINT), \
                    CAST(coalesce(sum(CASE WHEN n > {cap} THEN n ELSE 0 END), 0) AS BIGINT) \
             FROM (SELECT count(*) AS n FROM unify_blocking_sample WHERE {} GROUP BY {k})",
            nn.join(" AND ")
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
        candidates.push(Candidate {
            key,
            // Pairs of a sample of share s are s² of all pairs.
            pairs: pairs * scale * scale,
            oversized_records: over * scale,
            chosen: None,
            seed: false,
            recall_after: None,
            reason: String::new(),
        });
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

impl Plan {
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

    /// Add keys by recall gained per pair (step 2) with the model trained on the seed's pairs.
    /// Returns every chosen key in order (the seed first).
    pub fn choose(&mut self, comps: &[Comparison], model: &Model, target: f64) -> Vec<Vec<String>> {
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
            let mut v: Vec<String> = self.candidates.iter().flat_map(|c| c.key.clone()).collect();
            v.sort();
            v.dedup();
            v.truncate(MAX_FIELDS);
            v
        };
        let bit = |f: &str| fields.iter().position(|x| x == f);
        let mask_of = |key: &[String]| -> Option<usize> {
            key.iter()
                .try_fold(0usize, |m, f| bit(f).map(|b| m | 1 << b))
        };
        // Per pair of sources: weight (the smaller source: at most that many matches) and the
        // probability of each agreement pattern.
        let mut groups: Vec<(f64, Vec<f64>)> = Vec::new();
        for a in 0..self.sources.len() {
            for b in a..self.sources.len() {
                let w = self.sources[a].1.min(self.sources[b].1);
                let p: Vec<f64> = fields
                    .iter()
                    .map(|f| {
                        let fa = self.fill[a].get(f).copied().unwrap_or(0.0);
                        let fb = self.fill[b].get(f).copied().unwrap_or(0.0);
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
        // A key is found when all its fields agree: its bits are a subset of the pattern's.
        let found = |chosen: &[usize], mask: usize| chosen.iter().any(|&k| k & !mask == 0);
        let recall = |chosen: &[usize]| -> f64 {
            groups
                .iter()
                .map(|(w, prob)| {
                    w * prob
                        .iter()
                        .enumerate()
                        .filter(|(m, _)| found(chosen, *m))
                        .map(|(_, p)| p)
                        .sum::<f64>()
                })
                .sum::<f64>()
                / total_w
        };
        let mut order: Vec<usize> = (0..self.candidates.len())
            .filter(|&i| self.candidates[i].chosen.is_some())
            .collect();
        order.sort_by_key(|&i| self.candidates[i].chosen);
        let mut chosen_masks: Vec<usize> = order
            .iter()
            .filter_map(|&i| mask_of(&self.candidates[i].key))
            .collect();
        let mut spent: f64 = order.iter().map(|&i| self.candidates[i].pairs).sum();
        let mut r = recall(&chosen_masks);
        if let Some(&last) = order.last() {
            self.candidates[last].recall_after = Some(r);
        }
        while r < target {
            let mut best: Option<(usize, f64, f64)> = None;
            for (i, c) in self.candidates.iter().enumerate() {
                if c.chosen.is_some() || !Self::usable(c) || spent + c.pairs > self.budget {
                    continue;
                }
                let Some(km) = mask_of(&c.key) else { continue };
                let mut with = chosen_masks.clone();
                with.push(km);
                let gain = recall(&with) - r;
                if gain <= 1e-9 {
                    continue;
                }
                let score = gain / c.pairs.max(1.0);
                if best.is_none_or(|(_, s, _)| score > s) {
                    best = Some((i, score, gain));
                }
            }
            let Some((i, _, gain)) = best else { break };
            let c = &mut self.candidates[i];
            c.chosen = Some(order.len());
            r += gain;
            c.recall_after = Some(r);
            c.reason = "most estimated recall gained per pair".into();
            spent += c.pairs;
            order.push(i);
            chosen_masks.push(mask_of(&c.key).expect("checked"));
        }
        for c in self.candidates.iter_mut().filter(|c| c.chosen.is_none()) {
            c.reason = if !Self::usable(c) {
                "finds no pairs".into()
            } else if spent + c.pairs > self.budget {
                format!(
                    "over the budget of {:.0} pairs (pairs_per_record)",
                    self.budget
                )
            } else {
                "not needed: the chosen keys reach the recall aimed at, or it adds nothing".into()
            };
        }
        self.estimated_recall = Some(r);
        order
            .iter()
            .map(|&i| self.candidates[i].key.clone())
            .collect()
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
                Arc::new(reason.finish()),
            ],
        )?)
    }
}
