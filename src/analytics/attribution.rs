//! Attribution: which channels earn the conversions, for each `[attribution.<name>]`, by eight
//! models side by side — first touch, last touch, last non-direct, linear, time decay,
//! position based, and two data-driven ones: a Markov chain model (order 1, removal effects)
//! and Shapley values over channel sets.
//!
//! A person's activities in time order (resolved through unification and the identity
//! graph, so an anonymous visitor's touchpoints count once they are known): touchpoints
//! accumulate; a conversion takes those within the lookback window before it as its path and
//! starts a new one (a touchpoint earns credit for one conversion only; older ones are
//! dropped). Touchpoints after a person's last conversion are a non-converting path: the
//! Markov model needs them, the rule models do not. A conversion without touchpoints is
//! credited to `(no touchpoint)` by every model, so each model's conversions add up to all of
//! them.
//!
//! The Markov model: states start, each channel, conversion and null; transitions counted
//! over all paths (repeats of a channel in a row counted once: a self-loop does not change
//! where a path ends). A channel's removal effect is the share of the conversion probability
//! lost when paths reaching it end there instead; conversions (and value) are shared in
//! proportion to the removal effects.
//!
//! The Shapley model: a path's channel set is its distinct channels; the worth of a set is the
//! conversion rate of the paths with exactly that set (converting paths over all paths, the
//! non-converting ones included), nothing for the empty set. A set no path had is worth the
//! most any of its observed subsets is worth (adding a channel is taken not to lower the rate:
//! a monotone envelope, so an unseen combination does not count as zero). Each converting
//! path's conversion is shared by the Shapley values of its channels in the game of its own
//! set's subsets; a channel whose value comes out negative (noise: worth estimated from few
//! paths) gets nothing and the rest are scaled to one conversion. Unlike Shapley over
//! conversion *counts* (which reduces to a linear split by set), rates see what a channel adds:
//! on a generator where each channel adds a planted conversion probability, the credits recover
//! the planted Shapley values (`tests/cli.rs`). Paths with more than 16 distinct channels are
//! shared equally among them (2^16 subsets per set is the cost bound).
//!
//! Writes `attribution_paths` (one row per converting and non-converting path) and
//! `attribution_results` (attribution, model, channel, campaign, conversions, value, share),
//! and appends the results with the run id to `attribution_history` (kept across runs);
//! `attribution('name', 'model')` reads the results in SQL.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::plan_err;
use datafusion::prelude::SessionContext;

use crate::config::attribution::{AttributionDef, MODELS};
use crate::config::ProjectConfig;
use crate::error::Result;
use crate::table_catalog::names;
use crate::unify::table_functions::{string_args, ComputedTable};

/// The channel of conversions that had no touchpoint in their lookback window.
pub const NO_TOUCHPOINT: &str = "(no touchpoint)";

/// A touchpoint: when (ns), its channel and campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct Touch {
    pub ts: i64,
    pub channel: String,
    pub campaign: Option<String>,
}

/// A person's path: touchpoints in time order, and the conversion (time in ns, value) it
/// led to, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Journey {
    pub customer: String,
    pub touches: Vec<Touch>,
    pub conversion: Option<(i64, f64)>,
}

/// One activity of a person, as the paths are cut from them.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub ts: i64,
    pub conversion: bool,
    pub value: f64,
    /// Set on touchpoints.
    pub touch: Option<(String, Option<String>)>,
}

/// Cut one person's events (time order) into paths.
pub fn journeys_of(customer: &str, events: &[Event], lookback_ns: i64) -> Vec<Journey> {
    let mut out = Vec::new();
    let mut pending: Vec<Touch> = Vec::new();
    for e in events {
        if e.conversion {
            let touches = pending
                .drain(..)
                .filter(|t| e.ts - t.ts <= lookback_ns)
                .collect();
            out.push(Journey {
                customer: customer.to_string(),
                touches,
                conversion: Some((e.ts, e.value)),
            });
        } else if let Some((channel, campaign)) = &e.touch {
            pending.push(Touch {
                ts: e.ts,
                channel: channel.clone(),
                campaign: campaign.clone(),
            });
        }
    }
    if !pending.is_empty() {
        out.push(Journey {
            customer: customer.to_string(),
            touches: pending,
            conversion: None,
        });
    }
    out
}

/// The share of one conversion each touchpoint of its path earns under a rule model (they
/// add up to 1).
pub fn rule_credits(model: &str, j: &Journey, def: &AttributionDef) -> Vec<f64> {
    let n = j.touches.len();
    let mut w = vec![0.0; n];
    if n == 0 {
        return w;
    }
    match model {
        "first_touch" => w[0] = 1.0,
        "last_touch" => w[n - 1] = 1.0,
        "last_non_direct" => {
            let direct = def.direct.as_deref().unwrap_or("direct");
            let i = j
                .touches
                .iter()
                .rposition(|t| !t.channel.eq_ignore_ascii_case(direct))
                .unwrap_or(n - 1);
            w[i] = 1.0;
        }
        "linear" => w.iter_mut().for_each(|x| *x = 1.0 / n as f64),
        "time_decay" => {
            let at = j.conversion.map_or(j.touches[n - 1].ts, |(t, _)| t);
            let half = def.half_life_seconds() * 1e9;
            for (x, t) in w.iter_mut().zip(&j.touches) {
                *x = 0.5f64.powf((at - t.ts) as f64 / half);
            }
            let sum: f64 = w.iter().sum();
            w.iter_mut().for_each(|x| *x /= sum);
        }
        "position_based" => {
            let [first, middle, last] = def.position_weights();
            match n {
                1 => w[0] = 1.0,
                2 => {
                    let ends = first + last;
                    w[0] = if ends > 0.0 { first / ends } else { 0.5 };
                    w[1] = 1.0 - w[0];
                }
                _ => {
                    w[0] = first;
                    w[n - 1] = last;
                    for x in &mut w[1..n - 1] {
                        *x = middle / (n - 2) as f64;
                    }
                }
            }
        }
        other => unreachable!("not a rule model: {other}"),
    }
    w
}

/// What the first-order Markov chain of a set of paths says of each channel.
#[derive(Debug, Clone, PartialEq)]
pub struct RemovalEffects {
    /// Share of the conversion probability lost without the channel.
    pub conversions: BTreeMap<String, f64>,
    /// Share of the expected conversion value lost without the channel: as above, with each
    /// conversion worth the mean value of the conversions reached from the same last channel
    /// (as `channelattribution` values them).
    pub value: BTreeMap<String, f64>,
    /// Probability of converting from the start.
    pub conversion_probability: f64,
}

/// Removal effects of each channel in the first-order Markov chain of `journeys` (each path
/// counted once per occurrence).
pub fn removal_effects(journeys: &[Journey]) -> RemovalEffects {
    // States: 0 start, 1.. channels; transitions to CONV / NULL absorb.
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for j in journeys {
        for t in &j.touches {
            let next = index.len() + 1;
            index.entry(t.channel.as_str()).or_insert(next);
        }
    }
    let n = index.len() + 1;
    // counts[from]: to -> count, with to = n for conversion and n + 1 for null; the value of
    // the conversions reached from each state.
    let mut counts: Vec<HashMap<usize, f64>> = vec![HashMap::new(); n];
    let mut value_from = vec![0.0; n];
    for j in journeys.iter().filter(|j| !j.touches.is_empty()) {
        let mut prev = 0usize;
        for t in &j.touches {
            let s = index[t.channel.as_str()];
            if s != prev {
                *counts[prev].entry(s).or_default() += 1.0;
                prev = s;
            }
        }
        let end = match j.conversion {
            Some((_, v)) => {
                value_from[prev] += v;
                n
            }
            None => n + 1,
        };
        *counts[prev].entry(end).or_default() += 1.0;
    }
    let probs: Vec<Vec<(usize, f64)>> = counts
        .iter()
        .map(|c| {
            let total: f64 = c.values().sum();
            let mut v: Vec<(usize, f64)> = c.iter().map(|(to, k)| (*to, k / total)).collect();
            v.sort_by_key(|(to, _)| *to);
            v
        })
        .collect();
    // What a conversion from each state is worth: 1 (counting), or the mean value.
    let ones = vec![1.0; n];
    let mean_value: Vec<f64> = (0..n)
        .map(|s| match counts[s].get(&n) {
            Some(k) if *k > 0.0 => value_from[s] / k,
            _ => 0.0,
        })
        .collect();
    let expected = |removed: Option<usize>, worth: &[f64]| -> f64 {
        // x[s]: expected worth of the conversions reached from s; value iteration from 0
        // (monotone, converges to the least fixed point: the absorption value).
        let mut x = vec![0.0; n];
        for _ in 0..100_000 {
            let mut delta = 0.0f64;
            for s in (0..n).rev() {
                if Some(s) == removed {
                    continue;
                }
                let v: f64 = probs[s]
                    .iter()
                    .map(|(to, q)| match *to {
                        t if t == n => q * worth[s],
                        t if t > n => 0.0,
                        t if Some(t) == removed => 0.0,
                        t => q * x[t],
                    })
                    .sum();
                delta = delta.max((v - x[s]).abs());
                x[s] = v;
            }
            if delta < 1e-13 * (1.0 + x[0].abs()) {
                break;
            }
        }
        x[0]
    };
    let effects = |worth: &[f64]| -> BTreeMap<String, f64> {
        let base = expected(None, worth);
        index
            .iter()
            .map(|(ch, s)| {
                let without = expected(Some(*s), worth);
                let effect = if base > 0.0 {
                    1.0 - without / base
                } else {
                    0.0
                };
                (ch.to_string(), effect)
            })
            .collect()
    };
    RemovalEffects {
        conversions: effects(&ones),
        value: effects(&mean_value),
        conversion_probability: expected(None, &ones),
    }
}

/// Each channel's Shapley credit over the converting `journeys`: (conversions, value) — see the
/// module docs.
pub fn shapley_credits(journeys: &[Journey]) -> BTreeMap<String, (f64, f64)> {
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for j in journeys {
        for t in &j.touches {
            let next = index.len();
            index.entry(t.channel.as_str()).or_insert(next);
        }
    }
    let names: Vec<&str> = {
        let mut v = vec![""; index.len()];
        for (ch, i) in &index {
            v[*i] = ch;
        }
        v
    };
    let set_of = |j: &Journey| {
        let mut s: Vec<usize> = j
            .touches
            .iter()
            .map(|t| index[t.channel.as_str()])
            .collect();
        s.sort_unstable();
        s.dedup();
        s
    };
    let touched: Vec<(&Journey, Vec<usize>)> = journeys
        .iter()
        .filter(|j| !j.touches.is_empty())
        .map(|j| (j, set_of(j)))
        .collect();
    // Per channel set: (conversions, paths).
    let mut observed: HashMap<&[usize], (f64, f64)> = HashMap::new();
    for (j, set) in &touched {
        let e = observed.entry(set).or_default();
        e.0 += j.conversion.is_some() as u8 as f64;
        e.1 += 1.0;
    }
    let mut shares_of: HashMap<&[usize], Vec<f64>> = HashMap::new();
    let mut out: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (j, set) in &touched {
        let Some((_, value)) = j.conversion else {
            continue;
        };
        let shares = shares_of
            .entry(set)
            .or_insert_with(|| shapley_shares(set, &observed));
        for (ch, w) in set.iter().zip(shares.iter()) {
            let e = out.entry(names[*ch].to_string()).or_default();
            e.0 += w;
            e.1 += w * value;
        }
    }
    out
}

/// The shares of one conversion the channels of `set` earn: their Shapley values in the game
/// of `set`'s subsets worth their observed conversion rates, negatives cut to 0, scaled to 1.
fn shapley_shares(set: &[usize], observed: &HashMap<&[usize], (f64, f64)>) -> Vec<f64> {
    let n = set.len();
    if n > 16 {
        return vec![1.0 / n as f64; n];
    }
    // worth[mask]: the rate of the subset of `set` with those members, or the most any of its
    // observed subsets is worth (masks grow, so sub-masks are done first).
    let mut worth = vec![0.0f64; 1 << n];
    for mask in 1usize..(1 << n) {
        let members: Vec<usize> = (0..n)
            .filter(|b| mask & (1 << b) != 0)
            .map(|b| set[b])
            .collect();
        worth[mask] = match observed.get(members.as_slice()) {
            Some((conv, paths)) if *paths > 0.0 => conv / paths,
            _ => (0..n)
                .filter(|b| mask & (1 << b) != 0)
                .map(|b| worth[mask & !(1 << b)])
                .fold(0.0, f64::max),
        };
    }
    // Shapley weights |S|! (n - |S| - 1)! / n! by the size of S.
    let factorial = |k: usize| (1..=k).map(|x| x as f64).product::<f64>();
    let weight: Vec<f64> = (0..n)
        .map(|s| factorial(s) * factorial(n - s - 1) / factorial(n))
        .collect();
    let mut phi = vec![0.0f64; n];
    for (b, p) in phi.iter_mut().enumerate() {
        for mask in 0usize..(1 << n) {
            if mask & (1 << b) == 0 {
                let size = mask.count_ones() as usize;
                *p += weight[size] * (worth[mask | (1 << b)] - worth[mask]);
            }
        }
    }
    phi.iter_mut().for_each(|p| *p = p.max(0.0));
    let total: f64 = phi.iter().sum();
    if total > 0.0 {
        phi.iter_mut().for_each(|p| *p /= total);
    } else {
        phi.iter_mut().for_each(|p| *p = 1.0 / n as f64);
    }
    phi
}

/// `(model, channel, campaign)` → (conversions, value).
type Credits = BTreeMap<(String, String, Option<String>), (f64, f64)>;

/// Every model's credits for the journeys of one attribution.
pub fn attribute(journeys: &[Journey], def: &AttributionDef) -> Credits {
    let mut out = Credits::new();
    let mut add = |model: &str, channel: &str, campaign: Option<String>, conv: f64, value: f64| {
        let e = out
            .entry((model.to_string(), channel.to_string(), campaign))
            .or_default();
        e.0 += conv;
        e.1 += value;
    };
    let converting: Vec<&Journey> = journeys.iter().filter(|j| j.conversion.is_some()).collect();
    for model in MODELS {
        for j in &converting {
            let value = j.conversion.map_or(0.0, |(_, v)| v);
            if j.touches.is_empty() {
                add(model, NO_TOUCHPOINT, None, 1.0, value);
                continue;
            }
            if matches!(*model, "markov" | "shapley") {
                continue;
            }
            for (w, t) in rule_credits(model, j, def).iter().zip(&j.touches) {
                if *w > 0.0 {
                    add(model, &t.channel, t.campaign.clone(), *w, w * value);
                }
            }
        }
    }
    let effects = removal_effects(journeys);
    let touched: Vec<&&Journey> = converting
        .iter()
        .filter(|j| !j.touches.is_empty())
        .collect();
    let conversions = touched.len() as f64;
    let value: f64 = touched
        .iter()
        .map(|j| j.conversion.map_or(0.0, |(_, v)| v))
        .sum();
    let share = |of: &BTreeMap<String, f64>, ch: &str| {
        let total: f64 = of.values().sum();
        if total > 0.0 {
            of[ch] / total
        } else {
            0.0
        }
    };
    if effects.conversions.values().sum::<f64>() > 0.0 {
        for ch in effects.conversions.keys() {
            add(
                "markov",
                ch,
                None,
                share(&effects.conversions, ch) * conversions,
                share(&effects.value, ch) * value,
            );
        }
    }
    for (ch, (c, v)) in shapley_credits(journeys) {
        add("shapley", &ch, None, c, v);
    }
    out
}

/// Build every `[attribution.<name>]` of the config over the `activities` registered in
/// `ctx`; write `attribution_paths` and `attribution_results` to `tables`. Returns how many
/// conversions were attributed.
pub async fn build(cfg: &ProjectConfig, ctx: &SessionContext, tables: &Path) -> Result<u64> {
    if cfg.attribution.is_empty() {
        return Ok(0);
    }
    let mut path_rows = PathRows::default();
    let mut results: Vec<(String, Credits, f64)> = Vec::new();
    let mut attributed = 0u64;
    for (name, def) in &cfg.attribution {
        let started = std::time::Instant::now();
        let def = def.get_ref();
        let journeys = journeys(ctx, def).await?;
        for j in &journeys {
            path_rows.push(name, j);
        }
        let conversions = journeys.iter().filter(|j| j.conversion.is_some()).count();
        attributed += conversions as u64;
        results.push((name.clone(), attribute(&journeys, def), conversions as f64));
        tracing::info!(
            attribution = %name,
            paths = journeys.len(),
            conversions,
            seconds = started.elapsed().as_secs_f64(),
            "attributed"
        );
    }
    crate::workspace::write_parquet(
        &tables.join("attribution_paths.parquet"),
        path_rows.schema(),
        &[path_rows.batch()?],
    )?;
    let batch = results_batch(&results)?;
    crate::workspace::write_parquet(
        &tables.join("attribution_results.parquet"),
        batch.schema(),
        std::slice::from_ref(&batch),
    )?;
    // The run's results, kept across runs for trends: one append per run.
    let run_id = tables
        .parent()
        .and_then(|r| r.file_name())
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut columns: Vec<(&str, arrow::array::ArrayRef)> = vec![(
        "run_id",
        Arc::new(StringArray::from(vec![run_id; batch.num_rows()])),
    )];
    let schema = batch.schema();
    for (f, c) in schema.fields().iter().zip(batch.columns()) {
        columns.push((f.name().as_str(), c.clone()));
    }
    crate::state::append(
        &cfg.workspace_dir(),
        names::ATTRIBUTION_HISTORY,
        &crate::state::batch(columns)?,
    )?;
    for t in [names::ATTRIBUTION_PATHS, names::ATTRIBUTION_RESULTS] {
        crate::table_io::register_written(ctx, tables, t).await?;
    }
    Ok(attributed)
}

/// The paths of one attribution, read from `activities`.
async fn journeys(ctx: &SessionContext, def: &AttributionDef) -> Result<Vec<Journey>> {
    let conv = format!("coalesce(({}), false)", def.conversions);
    let channel = format!("CAST(({}) AS VARCHAR)", def.channel);
    let campaign = def
        .campaign
        .as_ref()
        .map_or("CAST(NULL AS VARCHAR)".to_string(), |c| {
            format!("CAST(({c}) AS VARCHAR)")
        });
    let only = def
        .touchpoints
        .as_ref()
        .map_or("true".to_string(), |t| format!("coalesce(({t}), false)"));
    let value = def.value.as_deref().unwrap_or("amount");
    let sql = format!(
        "SELECT CAST(customer_id AS VARCHAR) AS customer_id, CAST(ts AS TIMESTAMP) AS ts, {conv} AS conversion, \
           CAST(coalesce(({value}), 0) AS DOUBLE) AS value, \
           CASE WHEN NOT {conv} AND {only} THEN {channel} END AS channel, {campaign} AS campaign \
         FROM activities WHERE customer_id IS NOT NULL AND ({conv} OR ({channel} IS NOT NULL AND {only})) \
         ORDER BY customer_id, ts, conversion"
    );
    let lookback = (def.lookback_seconds() * 1e9) as i64;
    let mut out = Vec::new();
    let read = |b: &RecordBatch, ts: &[i64]| {
        let conv = b.column(2).as_boolean();
        let value = b.column(3).as_primitive::<arrow::datatypes::Float64Type>();
        let channel = b.column(4).as_string::<i32>();
        let campaign = b.column(5).as_string::<i32>();
        Ok((0..b.num_rows())
            .map(|r| Event {
                ts: ts[r],
                conversion: conv.value(r),
                value: if value.is_null(r) {
                    0.0
                } else {
                    value.value(r)
                },
                touch: (!channel.is_null(r)).then(|| {
                    (
                        channel.value(r).to_string(),
                        (!campaign.is_null(r)).then(|| campaign.value(r).to_string()),
                    )
                }),
            })
            .collect())
    };
    super::journey_analytics::per_person(ctx, &sql, read, |person, events| {
        out.extend(journeys_of(person, events, lookback))
    })
    .await?;
    Ok(out)
}

/// Rows of `attribution_paths`.
#[derive(Default)]
struct PathRows {
    attribution: Vec<String>,
    customer: Vec<String>,
    path: Vec<String>,
    touchpoints: Vec<i64>,
    converted: Vec<bool>,
    converted_at: Vec<Option<i64>>,
    value: Vec<Option<f64>>,
}

impl PathRows {
    fn push(&mut self, name: &str, j: &Journey) {
        self.attribution.push(name.to_string());
        self.customer.push(j.customer.clone());
        let channels: Vec<&str> = j.touches.iter().map(|t| t.channel.as_str()).collect();
        self.path.push(if channels.is_empty() {
            NO_TOUCHPOINT.to_string()
        } else {
            channels.join(" > ")
        });
        self.touchpoints.push(j.touches.len() as i64);
        self.converted.push(j.conversion.is_some());
        self.converted_at.push(j.conversion.map(|(t, _)| t));
        self.value.push(j.conversion.map(|(_, v)| v));
    }

    fn schema(&self) -> arrow::datatypes::SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("attribution", DataType::Utf8, false),
            Field::new("customer_id", DataType::Utf8, false),
            Field::new("path", DataType::Utf8, false),
            Field::new("touchpoints", DataType::Int64, false),
            Field::new("converted", DataType::Boolean, false),
            Field::new(
                "converted_at",
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                true,
            ),
            Field::new("value", DataType::Float64, true),
        ]))
    }

    fn batch(&self) -> Result<RecordBatch> {
        Ok(RecordBatch::try_new(
            self.schema(),
            vec![
                Arc::new(StringArray::from(self.attribution.clone())),
                Arc::new(StringArray::from(self.customer.clone())),
                Arc::new(StringArray::from(self.path.clone())),
                Arc::new(Int64Array::from(self.touchpoints.clone())),
                Arc::new(BooleanArray::from(self.converted.clone())),
                Arc::new(TimestampNanosecondArray::from(self.converted_at.clone())),
                Arc::new(Float64Array::from(self.value.clone())),
            ],
        )?)
    }
}

/// Rows of `attribution_results`: per attribution, model order, then most conversions first.
fn results_batch(results: &[(String, Credits, f64)]) -> Result<RecordBatch> {
    let (mut name, mut model, mut channel, mut campaign) = (vec![], vec![], vec![], vec![]);
    let (mut conv, mut value, mut share) = (vec![], vec![], vec![]);
    for (attribution, credits, total) in results {
        for m in MODELS {
            let mut rows: Vec<_> = credits.iter().filter(|((mm, ..), _)| mm == m).collect();
            rows.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0).then_with(|| a.0.cmp(b.0)));
            for ((_, ch, camp), (c, v)) in rows {
                name.push(attribution.clone());
                model.push(m.to_string());
                channel.push(ch.clone());
                campaign.push(camp.clone());
                conv.push(*c);
                value.push(*v);
                share.push(if *total > 0.0 { c / total } else { 0.0 });
            }
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("attribution", DataType::Utf8, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("channel", DataType::Utf8, false),
        Field::new("campaign", DataType::Utf8, true),
        Field::new("conversions", DataType::Float64, false),
        Field::new("value", DataType::Float64, false),
        Field::new("share", DataType::Float64, false),
    ]));
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(name)),
            Arc::new(StringArray::from(model)),
            Arc::new(StringArray::from(channel)),
            Arc::new(StringArray::from(campaign)),
            Arc::new(Float64Array::from(conv)),
            Arc::new(Float64Array::from(value)),
            Arc::new(Float64Array::from(share)),
        ],
    )?)
}

/// `attribution('name', 'model')`: one model's credits per channel (and campaign), most
/// conversions first, from `attribution_results`.
#[derive(Debug)]
pub struct AttributionFunction;

impl TableFunctionImpl for AttributionFunction {
    fn call_with_args(
        &self,
        args: TableFunctionArgs,
    ) -> datafusion::common::Result<Arc<dyn TableProvider>> {
        let a = string_args("attribution", args.exprs(), 2, "'orders', 'markov'")?;
        let (name, model) = (a[0].clone(), a[1].clone());
        if !MODELS.contains(&model.as_str()) {
            return plan_err!(
                "attribution: no model `{model}`; models: {}",
                MODELS.join(", ")
            );
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("channel", DataType::Utf8, true),
            Field::new("campaign", DataType::Utf8, true),
            Field::new("conversions", DataType::Float64, true),
            Field::new("value", DataType::Float64, true),
            Field::new("share", DataType::Float64, true),
        ]));
        let out = schema.clone();
        Ok(Arc::new(ComputedTable {
            schema,
            compute: Box::new(move |ctx| {
                let sql = format!(
                    "SELECT channel, campaign, conversions, value, share FROM attribution_results \
                     WHERE attribution = {} AND model = {} ORDER BY conversions DESC, channel, campaign",
                    crate::sql_text::literal(&name),
                    crate::sql_text::literal(&model)
                );
                let (out, name) = (out.clone(), name.clone());
                Box::pin(async move {
                    if !ctx.table_exist(names::ATTRIBUTION_RESULTS).unwrap_or(false) {
                        return Err(crate::error::Error::NotFound(format!(
                            "attribution('{name}', ...): this run has no attribution_results; add [attribution.{name}] and run"
                        )));
                    }
                    let batches = ctx.sql(&sql).await?.collect().await?;
                    let batches: Vec<RecordBatch> = batches
                        .into_iter()
                        .map(|b| RecordBatch::try_new(out.clone(), b.columns().to_vec()))
                        .collect::<std::result::Result<_, _>>()?;
                    Ok(arrow::compute::concat_batches(&out, &batches)?)
                })
            }),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> AttributionDef {
        toml::from_str("conversions = \"type = 'order'\"\nchannel = \"c\"").unwrap()
    }

    fn j(channels: &[&str], converted: bool) -> Journey {
        Journey {
            customer: "x".into(),
            touches: channels
                .iter()
                .enumerate()
                .map(|(i, c)| Touch {
                    ts: i as i64 * 86_400_000_000_000,
                    channel: c.to_string(),
                    campaign: None,
                })
                .collect(),
            conversion: converted.then_some((channels.len() as i64 * 86_400_000_000_000, 10.0)),
        }
    }

    #[test]
    fn rule_models_share_one_conversion() {
        let d = def();
        let path = j(&["search", "email", "direct", "social"], true);
        assert_eq!(rule_credits("first_touch", &path, &d), [1.0, 0.0, 0.0, 0.0]);
        assert_eq!(rule_credits("last_touch", &path, &d), [0.0, 0.0, 0.0, 1.0]);
        assert_eq!(rule_credits("linear", &path, &d), [0.25; 4]);
        assert_eq!(
            rule_credits("position_based", &path, &d),
            [0.4, 0.1, 0.1, 0.4]
        );
        let direct_last = j(&["search", "email", "direct"], true);
        assert_eq!(
            rule_credits("last_non_direct", &direct_last, &d),
            [0.0, 1.0, 0.0]
        );
        // Touchpoints 4, 3, 2, 1 days before the conversion, half-life 7 days.
        let w = rule_credits("time_decay", &path, &d);
        let raw: Vec<f64> = [4.0f64, 3.0, 2.0, 1.0]
            .iter()
            .map(|d| 0.5f64.powf(d / 7.0))
            .collect();
        let sum: f64 = raw.iter().sum();
        for (a, b) in w.iter().zip(raw) {
            assert!((a - b / sum).abs() < 1e-12);
        }
        assert_eq!(
            rule_credits("position_based", &j(&["a", "b"], true), &d),
            [0.5, 0.5]
        );
    }

    #[test]
    fn markov_removal_effects_by_hand() {
        // start→A→conv, start→A→B→conv, start→B→null:
        // from start: A 2/3, B 1/3; A: conv 1/2, B 1/2; B: conv 1/2, null 1/2.
        // P(conv) = 2/3 (1/2 + 1/2 · 1/2) + 1/3 · 1/2 = 2/3.
        // Without A: 1/3 · 1/2 = 1/6 → effect 3/4. Without B: 2/3 · 1/2 = 1/3 → effect 1/2.
        let paths = [j(&["A"], true), j(&["A", "B"], true), j(&["B"], false)];
        let effects = removal_effects(&paths);
        assert!((effects.conversion_probability - 2.0 / 3.0).abs() < 1e-12);
        assert!((effects.conversions["A"] - 0.75).abs() < 1e-12);
        assert!((effects.conversions["B"] - 0.5).abs() < 1e-12);
        // Two conversions shared 3/5 : 2/5; both worth 10, so the value is shared alike.
        let credits = attribute(&paths, &def());
        let a = credits[&("markov".into(), "A".into(), None)];
        assert!((a.0 - 1.2).abs() < 1e-12 && (a.1 - 12.0).abs() < 1e-12);
        // A repeat in a row changes nothing.
        let again = removal_effects(&[
            j(&["A", "A"], true),
            j(&["A", "B", "B"], true),
            j(&["B"], false),
        ]);
        assert_eq!(again, effects);
    }

    #[test]
    fn paths_are_cut_at_conversions_within_the_lookback() {
        let day = 86_400_000_000_000i64;
        let t = |ts: i64, ch: &str| Event {
            ts: ts * day,
            conversion: false,
            value: 0.0,
            touch: Some((ch.into(), None)),
        };
        let c = |ts: i64, v: f64| Event {
            ts: ts * day,
            conversion: true,
            value: v,
            touch: None,
        };
        let events = [
            t(0, "old"),
            t(40, "search"),
            t(41, "email"),
            c(42, 5.0),
            c(43, 7.0),
            t(50, "social"),
        ];
        let js = journeys_of("p", &events, 30 * day);
        let channels = |j: &Journey| {
            j.touches
                .iter()
                .map(|t| t.channel.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(js.len(), 3);
        assert_eq!(channels(&js[0]), ["search", "email"]);
        assert_eq!(js[0].conversion, Some((42 * day, 5.0)));
        assert!(js[1].touches.is_empty());
        assert_eq!(channels(&js[2]), ["social"]);
        assert_eq!(js[2].conversion, None);
    }
}
