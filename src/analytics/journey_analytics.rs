//! How customers move between touchpoints, as SQL table functions over `activities` (every
//! activity resolved to its person through unification and the identity graph; activities of
//! visitors never identified have no customer and are left out):
//!
//! - `funnel('step 1 condition', 'step 2 condition', ... [, INTERVAL '7 days'])`: customers who
//!   did step 1, then step 2 at or after it, and so on, each sequence within the interval from
//!   its first step; per step: customers, conversion from the previous step and from the
//!   first, customers lost, and the median time from the previous step.
//! - `funnel_by('dimension', 'step 1 condition', ...)`: the same per value of a dimension, an
//!   SQL expression over the activity that starts the sequence and the customer's profile
//!   (`country`, `activity_source`, a measure such as `loyalty_tier`). The dimension `segment`
//!   is the customer's segments in this run: a customer in several counts in each of them
//!   (and under NULL when in none), so its rows add up to more customers than `funnel`'s.
//! - `paths('from condition', 'to condition', max_len)`: the most common sequences of activity
//!   types from a customer's first `from` activity to the first `to` activity after it
//!   (repeats in a row counted once, at most `max_len` steps kept, the last ones); customers
//!   who never reached `to` end in `(no conversion)`.
//!
//! Conditions are SQL over the columns of `activities` (`type`, `activity_source`, `amount`,
//! `details`, `ts`), e.g. `'type = ''order'' AND amount > 50'`.
//!
//! Sequences follow ClickHouse's `windowFunnel`: each customer's activities in time order;
//! an activity matching step 1 starts a sequence, one matching step k extends the sequence
//! that reached step k − 1 if it is within the interval of that sequence's start; of the
//! sequences reaching a step the latest-starting is kept (it has the most time left). A
//! customer counts at the furthest step any sequence reached.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{plan_err, ScalarValue};
use datafusion::logical_expr::Expr;
use datafusion::prelude::SessionContext;

use crate::error::Result;
use crate::table_catalog::names;
use crate::unify::table_functions::ComputedTable;

/// Register `funnel`, `funnel_by` and `paths`.
pub fn register(ctx: &SessionContext) {
    ctx.register_udtf("funnel", Arc::new(Funnel { by: false }));
    ctx.register_udtf("funnel_by", Arc::new(Funnel { by: true }));
    ctx.register_udtf("paths", Arc::new(Paths));
}

/// A funnel's arguments.
#[derive(Debug, Clone, PartialEq)]
struct FunnelArgs {
    dimension: Option<String>,
    steps: Vec<String>,
    /// Nanoseconds from the first step to the last.
    within: Option<i64>,
}

/// An interval given in months: refused, months differ in length.
#[derive(Debug, thiserror::Error)]
#[error("give the interval in days or hours (INTERVAL '30 days'): months differ in length")]
struct MonthInterval;

/// Nanoseconds of an interval literal; months are refused (their length varies).
fn interval_nanos(v: &ScalarValue) -> Option<std::result::Result<i64, MonthInterval>> {
    const DAY: i64 = 86_400_000_000_000;
    Some(match v {
        ScalarValue::IntervalMonthDayNano(Some(i)) if i.months == 0 => {
            Ok(i.days as i64 * DAY + i.nanoseconds)
        }
        ScalarValue::IntervalDayTime(Some(i)) => {
            Ok(i.days as i64 * DAY + i.milliseconds as i64 * 1_000_000)
        }
        ScalarValue::IntervalMonthDayNano(Some(_)) | ScalarValue::IntervalYearMonth(Some(_)) => {
            Err(MonthInterval)
        }
        _ => return None,
    })
}

fn literal_text(e: &Expr) -> Option<String> {
    match e {
        Expr::Literal(ScalarValue::Utf8(Some(s)), _)
        | Expr::Literal(ScalarValue::Utf8View(Some(s)), _)
        | Expr::Literal(ScalarValue::LargeUtf8(Some(s)), _) => Some(s.clone()),
        _ => None,
    }
}

fn funnel_args(name: &str, args: &[Expr], by: bool) -> datafusion::common::Result<FunnelArgs> {
    let usage = if by {
        "funnel_by('country', 'type = ''product_view''', 'type = ''order''', INTERVAL '7 days')"
    } else {
        "funnel('type = ''product_view''', 'type = ''add_to_cart''', 'type = ''order''', INTERVAL '7 days')"
    };
    let mut texts = Vec::new();
    let mut within = None;
    for (i, e) in args.iter().enumerate() {
        if let Some(t) = literal_text(e) {
            if within.is_some() {
                return plan_err!("{name}: the interval comes last, e.g. {usage}");
            }
            texts.push(t);
            continue;
        }
        match e {
            Expr::Literal(v, _) => match interval_nanos(v) {
                Some(Ok(n)) if n > 0 && i == args.len() - 1 => within = Some(n),
                Some(Ok(_)) => return plan_err!("{name}: the interval must be positive and come last, e.g. {usage}"),
                Some(Err(m)) => return plan_err!("{name}: {m}"),
                None => return plan_err!("{name}: arguments are text (conditions) and an optional INTERVAL, e.g. {usage}"),
            },
            _ => return plan_err!("{name}: arguments are literals, e.g. {usage}"),
        }
    }
    let dimension = if by {
        if texts.is_empty() {
            return plan_err!("{name}: give the dimension first, e.g. {usage}");
        }
        Some(texts.remove(0))
    } else {
        None
    };
    if texts.len() < 2 {
        return plan_err!("{name}: give at least two steps, e.g. {usage}");
    }
    for t in texts.iter().chain(dimension.iter()) {
        crate::sql_text::check_expression(t).map_err(|m| {
            datafusion::common::DataFusionError::Plan(format!("{name}: `{t}` does not parse: {m}"))
        })?;
    }
    Ok(FunnelArgs {
        dimension,
        steps: texts,
        within,
    })
}

#[derive(Debug)]
struct Funnel {
    by: bool,
}

impl TableFunctionImpl for Funnel {
    fn call_with_args(
        &self,
        args: TableFunctionArgs,
    ) -> datafusion::common::Result<Arc<dyn TableProvider>> {
        let name = if self.by { "funnel_by" } else { "funnel" };
        let a = funnel_args(name, args.exprs(), self.by)?;
        let mut fields = Vec::new();
        if self.by {
            fields.push(Field::new("dimension", DataType::Utf8, true));
        }
        fields.extend([
            Field::new("step", DataType::Int64, false),
            Field::new("condition", DataType::Utf8, false),
            Field::new("customers", DataType::Int64, false),
            Field::new("conversion", DataType::Float64, true),
            Field::new("conversion_from_start", DataType::Float64, true),
            Field::new("dropped", DataType::Int64, false),
            Field::new("median_seconds", DataType::Float64, true),
        ]);
        let schema = Arc::new(Schema::new(fields));
        let out = schema.clone();
        Ok(Arc::new(ComputedTable {
            schema,
            compute: Box::new(move |ctx| {
                let a = a.clone();
                let out = out.clone();
                Box::pin(async move { funnel(&ctx, &a, out).await })
            }),
        }))
    }
}

/// Per step of a funnel: customers who reached it, and the seconds each took from the
/// previous step.
struct StepTally {
    customers: Vec<i64>,
    seconds: Vec<Vec<f64>>,
}

impl StepTally {
    fn new(steps: usize) -> Self {
        StepTally {
            customers: vec![0; steps],
            seconds: vec![Vec::new(); steps],
        }
    }
}

/// The furthest sequence of one customer: the dimension value at its start and the time of
/// each step reached.
#[derive(Debug, Clone, Default, PartialEq)]
struct Sequence {
    dimension: Option<String>,
    times: Vec<i64>,
}

/// One customer's activities (time order, each with which steps it matches) → the furthest
/// sequence, `windowFunnel`-style.
fn furthest(
    events: &[(i64, Option<String>, Vec<bool>)],
    steps: usize,
    within: Option<i64>,
) -> Option<Sequence> {
    let mut reached: Vec<Option<Sequence>> = vec![None; steps];
    for (ts, dim, matches) in events {
        // Last step first: one activity never serves as two steps of the same sequence.
        for k in (0..steps).rev() {
            if !matches[k] {
                continue;
            }
            let candidate = if k == 0 {
                Some(Sequence {
                    dimension: dim.clone(),
                    times: vec![*ts],
                })
            } else {
                reached[k - 1].as_ref().and_then(|prev| {
                    let last = *prev.times.last()?;
                    let in_time = within.is_none_or(|w| ts - prev.times[0] <= w);
                    (*ts >= last && in_time).then(|| {
                        let mut s = prev.clone();
                        s.times.push(*ts);
                        s
                    })
                })
            };
            if let Some(c) = candidate {
                let later = reached[k]
                    .as_ref()
                    .is_none_or(|cur| cur.times[0] <= c.times[0]);
                if later {
                    reached[k] = Some(c);
                }
            }
        }
    }
    reached.into_iter().rev().flatten().next()
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Joins a customer's segments into one dimension value (split again when counted).
const SEGMENT_SEPARATOR: char = '\u{1f}';

/// Whether a funnel's dimension is the customer's segments: `segment`, in a run with segments
/// (`segment_members`) and no activity or profile column of that name.
async fn by_segment(ctx: &SessionContext, dimension: Option<&str>) -> bool {
    if !dimension.is_some_and(|d| d.trim().eq_ignore_ascii_case("segment"))
        || !ctx.table_exist(names::SEGMENT_MEMBERS).unwrap_or(false)
    {
        return false;
    }
    for t in [
        names::ACTIVITIES,
        names::CUSTOMER_PROFILES,
        names::UNIFIED_CUSTOMERS,
    ] {
        if let Ok(df) = ctx.table(t).await {
            if df.schema().has_column_with_unqualified_name("segment") {
                return false;
            }
        }
    }
    true
}

/// The activities the conditions select, per customer in time order, with the profile
/// joined when a dimension may name its columns.
fn events_sql(
    ctx: &SessionContext,
    dimension: Option<&str>,
    segments: bool,
    conditions: &[String],
) -> String {
    let has = |t: &str| ctx.table_exist(t).unwrap_or(false);
    let profile = if has(names::CUSTOMER_PROFILES) {
        Some(names::CUSTOMER_PROFILES)
    } else if has(names::UNIFIED_CUSTOMERS) {
        Some(names::UNIFIED_CUSTOMERS)
    } else {
        None
    };
    let (join, dim) = match (dimension, profile) {
        (Some(_), _) if segments => (
            format!(
                " LEFT JOIN (SELECT customer_id, array_to_string(array_agg(DISTINCT segment), '{SEGMENT_SEPARATOR}') AS segments \
                 FROM segment_members GROUP BY customer_id) m ON m.customer_id = a.customer_id"
            ),
            ", m.segments AS dimension".to_string(),
        ),
        (Some(d), Some(p)) => (
            format!(" LEFT JOIN {p} p ON p.customer_id = a.customer_id"),
            format!(", CAST(({d}) AS VARCHAR) AS dimension"),
        ),
        (Some(d), None) => (String::new(), format!(", CAST(({d}) AS VARCHAR) AS dimension")),
        (None, _) => (String::new(), String::new()),
    };
    let flags: Vec<String> = conditions
        .iter()
        .enumerate()
        .map(|(i, c)| format!(", coalesce(({c}), false) AS s{i}"))
        .collect();
    let any: Vec<String> = conditions
        .iter()
        .map(|c| format!("coalesce(({c}), false)"))
        .collect();
    format!(
        "SELECT CAST(a.customer_id AS VARCHAR) AS customer_id, CAST(a.ts AS TIMESTAMP) AS ts{dim}{} \
         FROM activities a{join} WHERE a.customer_id IS NOT NULL AND ({}) \
         ORDER BY customer_id, ts",
        flags.join(""),
        any.join(" OR ")
    )
}

/// Runs `sql` — its first column a person's id, its second a timestamp, ordered by both —
/// and calls `each` once per person with their rows, in order, as `read` makes them from each
/// batch (given the batch's timestamps in nanoseconds). Funnels, paths and attribution all
/// walk one person's activities at a time this way.
pub(crate) async fn per_person<T>(
    ctx: &SessionContext,
    sql: &str,
    mut read: impl FnMut(&RecordBatch, &[i64]) -> Result<Vec<T>>,
    mut each: impl FnMut(&str, &[T]),
) -> Result<()> {
    let mut stream = ctx.sql(sql).await?.execute_stream().await?;
    let mut current: Option<String> = None;
    let mut rows: Vec<T> = Vec::new();
    use futures::StreamExt;
    while let Some(batch) = stream.next().await {
        let b = batch?;
        let ts = arrow::compute::cast(
            b.column(1),
            &DataType::Timestamp(TimeUnit::Nanosecond, None),
        )?;
        let ts = ts.as_primitive::<arrow::datatypes::TimestampNanosecondType>();
        let items = read(&b, ts.values())?;
        let ids = b.column(0).as_string::<i32>();
        for (r, item) in items.into_iter().enumerate() {
            let id = ids.value(r);
            if current.as_deref() != Some(id) {
                if let Some(c) = &current {
                    each(c, &rows);
                }
                current = Some(id.to_string());
                rows.clear();
            }
            rows.push(item);
        }
    }
    if let Some(c) = &current {
        each(c, &rows);
    }
    Ok(())
}

/// A funnel's rows of one batch: (time in ns, the dimension, which conditions match).
fn funnel_rows(
    b: &RecordBatch,
    ts: &[i64],
    conditions: usize,
    has_dimension: bool,
) -> Vec<(i64, Option<String>, Vec<bool>)> {
    let first_flag = if has_dimension { 3 } else { 2 };
    let dims = has_dimension.then(|| b.column(2).as_string::<i32>());
    let flags: Vec<&BooleanArray> = (0..conditions)
        .map(|i| b.column(first_flag + i).as_boolean())
        .collect();
    (0..b.num_rows())
        .map(|r| {
            let dim = dims.and_then(|d| (!d.is_null(r)).then(|| d.value(r).to_string()));
            (ts[r], dim, flags.iter().map(|f| f.value(r)).collect())
        })
        .collect()
}

async fn funnel(
    ctx: &SessionContext,
    a: &FunnelArgs,
    out: arrow::datatypes::SchemaRef,
) -> Result<RecordBatch> {
    let n = a.steps.len();
    let segments = by_segment(ctx, a.dimension.as_deref()).await;
    let sql = events_sql(ctx, a.dimension.as_deref(), segments, &a.steps);
    // Per dimension value: customers reaching each step, and each step's durations.
    let mut by: BTreeMap<Option<String>, StepTally> = BTreeMap::new();
    let has_dimension = a.dimension.is_some();
    let read = |b: &RecordBatch, ts: &[i64]| Ok(funnel_rows(b, ts, n, has_dimension));
    per_person(ctx, &sql, read, |_, rows| {
        if let Some(s) = furthest(rows, n, a.within) {
            let values: Vec<Option<String>> = match &s.dimension {
                Some(d) if segments => d
                    .split(SEGMENT_SEPARATOR)
                    .map(|v| Some(v.to_string()))
                    .collect(),
                other => vec![other.clone()],
            };
            for value in values {
                let entry = by.entry(value).or_insert_with(|| StepTally::new(n));
                for (k, t) in s.times.iter().enumerate() {
                    entry.customers[k] += 1;
                    if k > 0 {
                        entry.seconds[k].push((t - s.times[k - 1]) as f64 / 1e9);
                    }
                }
            }
        }
    })
    .await?;
    if a.dimension.is_none() && by.is_empty() {
        by.insert(None, StepTally::new(n));
    }
    let mut dims = Vec::new();
    let (mut step, mut cond, mut customers, mut conv, mut conv0, mut dropped, mut med) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for (
        dim,
        StepTally {
            customers: counts,
            seconds: mut durations,
        },
    ) in by
    {
        for k in 0..n {
            dims.push(dim.clone());
            step.push(k as i64 + 1);
            cond.push(a.steps[k].clone());
            customers.push(counts[k]);
            let share = |num: i64, den: i64| (den > 0).then(|| num as f64 / den as f64);
            conv.push(if k == 0 {
                share(counts[0], counts[0])
            } else {
                share(counts[k], counts[k - 1])
            });
            conv0.push(share(counts[k], counts[0]));
            dropped.push(if k == 0 { 0 } else { counts[k - 1] - counts[k] });
            med.push(median(&mut durations[k]));
        }
    }
    let mut cols: Vec<Arc<dyn Array>> = Vec::new();
    if a.dimension.is_some() {
        cols.push(Arc::new(StringArray::from(dims)));
    }
    cols.extend([
        Arc::new(Int64Array::from(step)) as Arc<dyn Array>,
        Arc::new(StringArray::from(cond)),
        Arc::new(Int64Array::from(customers)),
        Arc::new(Float64Array::from(conv)),
        Arc::new(Float64Array::from(conv0)),
        Arc::new(Int64Array::from(dropped)),
        Arc::new(Float64Array::from(med)),
    ]);
    Ok(RecordBatch::try_new(out, cols)?)
}

/// Label of a path that never reached its `to` activity.
pub const NO_CONVERSION: &str = "(no conversion)";

#[derive(Debug)]
struct Paths;

impl TableFunctionImpl for Paths {
    fn call_with_args(
        &self,
        args: TableFunctionArgs,
    ) -> datafusion::common::Result<Arc<dyn TableProvider>> {
        let usage = "paths('type = ''page_view''', 'type = ''order''', 5)";
        let e = args.exprs();
        let (from, to) = match (
            e.first().and_then(literal_text),
            e.get(1).and_then(literal_text),
        ) {
            (Some(f), Some(t)) if e.len() == 3 => (f, t),
            _ => {
                return plan_err!(
                    "paths takes a from condition, a to condition and the most steps, e.g. {usage}"
                )
            }
        };
        let max_len = match &e[2] {
            Expr::Literal(v, _) => match v.cast_to(&DataType::Int64) {
                Ok(ScalarValue::Int64(Some(n))) if (2..=50).contains(&n) => n as usize,
                _ => {
                    return plan_err!(
                        "paths: the most steps is a whole number from 2 to 50, e.g. {usage}"
                    )
                }
            },
            _ => return plan_err!("paths: the most steps is a number, e.g. {usage}"),
        };
        for t in [&from, &to] {
            crate::sql_text::check_expression(t).map_err(|m| {
                datafusion::common::DataFusionError::Plan(format!(
                    "paths: `{t}` does not parse: {m}"
                ))
            })?;
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("path", DataType::Utf8, false),
            Field::new("steps", DataType::Int64, false),
            Field::new("converted", DataType::Boolean, false),
            Field::new("customers", DataType::Int64, false),
            Field::new("share", DataType::Float64, false),
            Field::new("median_seconds", DataType::Float64, true),
        ]));
        let out = schema.clone();
        Ok(Arc::new(ComputedTable {
            schema,
            compute: Box::new(move |ctx| {
                let (from, to, out) = (from.clone(), to.clone(), out.clone());
                Box::pin(async move { paths(&ctx, &from, &to, max_len, out).await })
            }),
        }))
    }
}

/// One customer's path: from the first `from` activity to the first `to` at or after it, as
/// activity types with repeats in a row counted once, the last `max_len` kept.
fn path_of(
    events: &[(i64, String, bool, bool)],
    max_len: usize,
) -> Option<(Vec<String>, bool, i64)> {
    let start = events.iter().position(|e| e.2)?;
    let mut labels: Vec<String> = Vec::new();
    let mut converted = false;
    let mut end = events[start].0;
    for (ts, label, _, is_to) in &events[start..] {
        if labels.last() != Some(label) {
            labels.push(label.clone());
        }
        end = *ts;
        if *is_to {
            converted = true;
            break;
        }
    }
    if !converted {
        labels.push(NO_CONVERSION.to_string());
    }
    if labels.len() > max_len {
        labels.drain(..labels.len() - max_len);
    }
    Some((labels, converted, end - events[start].0))
}

async fn paths(
    ctx: &SessionContext,
    from: &str,
    to: &str,
    max_len: usize,
    out: arrow::datatypes::SchemaRef,
) -> Result<RecordBatch> {
    let sql = format!(
        "SELECT CAST(customer_id AS VARCHAR) AS customer_id, CAST(ts AS TIMESTAMP) AS ts, \
           coalesce(CAST(type AS VARCHAR), '(none)') AS label, coalesce(({from}), false) AS is_from, coalesce(({to}), false) AS is_to \
         FROM activities WHERE customer_id IS NOT NULL ORDER BY customer_id, ts"
    );
    let mut counts: BTreeMap<(Vec<String>, bool), (i64, Vec<f64>)> = BTreeMap::new();
    let mut total = 0i64;
    let read = |b: &RecordBatch, ts: &[i64]| {
        let labels = b.column(2).as_string::<i32>();
        let (f, t) = (b.column(3).as_boolean(), b.column(4).as_boolean());
        Ok((0..b.num_rows())
            .map(|r| (ts[r], labels.value(r).to_string(), f.value(r), t.value(r)))
            .collect())
    };
    per_person(ctx, &sql, read, |_, rows| {
        if let Some((labels, converted, nanos)) = path_of(rows, max_len) {
            total += 1;
            let e = counts.entry((labels, converted)).or_default();
            e.0 += 1;
            e.1.push(nanos as f64 / 1e9);
        }
    })
    .await?;
    let mut all: Vec<_> = counts.into_iter().collect();
    // Most common first; ties by path.
    all.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then_with(|| a.0.cmp(&b.0)));
    let mut path = vec![];
    let (mut steps, mut conv, mut customers, mut share, mut med) =
        (vec![], vec![], vec![], vec![], vec![]);
    for ((labels, converted), (n, mut secs)) in all {
        steps.push(
            labels
                .iter()
                .filter(|l| l.as_str() != NO_CONVERSION)
                .count() as i64,
        );
        path.push(labels.join(" > "));
        conv.push(converted);
        customers.push(n);
        share.push(n as f64 / total as f64);
        med.push(median(&mut secs));
    }
    Ok(RecordBatch::try_new(
        out,
        vec![
            Arc::new(StringArray::from(path)),
            Arc::new(Int64Array::from(steps)),
            Arc::new(BooleanArray::from(conv)),
            Arc::new(Int64Array::from(customers)),
            Arc::new(Float64Array::from(share)),
            Arc::new(Float64Array::from(med)),
        ],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ts: i64, steps: &[bool]) -> (i64, Option<String>, Vec<bool>) {
        (ts, None, steps.to_vec())
    }

    #[test]
    fn the_furthest_sequence_within_the_window_counts() {
        // view at 0, cart at 5, order at 20: all three within 30, two within 10.
        let e = [
            ev(0, &[true, false, false]),
            ev(5, &[false, true, false]),
            ev(20, &[false, false, true]),
        ];
        assert_eq!(furthest(&e, 3, None).unwrap().times, [0, 5, 20]);
        assert_eq!(furthest(&e, 3, Some(10)).unwrap().times, [0, 5]);
        // A later start reaches further: view 0, view 50, cart 55, order 60, window 15.
        let e = [
            ev(0, &[true, false, false]),
            ev(50, &[true, false, false]),
            ev(55, &[false, true, false]),
            ev(60, &[false, false, true]),
        ];
        assert_eq!(furthest(&e, 3, Some(15)).unwrap().times, [50, 55, 60]);
        // Out of order: an order before the cart does not count.
        let e = [
            ev(0, &[true, false, false]),
            ev(1, &[false, false, true]),
            ev(2, &[false, true, false]),
        ];
        assert_eq!(furthest(&e, 3, None).unwrap().times, [0, 2]);
        // One activity matching two steps is one step, not two.
        let e = [ev(0, &[true, true])];
        assert_eq!(furthest(&e, 2, None).unwrap().times, [0]);
        assert_eq!(furthest(&[ev(0, &[false, true])], 2, None), None);
    }

    #[test]
    fn paths_collapse_repeats_and_keep_the_last_steps() {
        let e = |ts, l: &str, f, t| (ts, l.to_string(), f, t);
        let events = [
            e(0, "search", false, false),
            e(1, "view", true, false),
            e(2, "view", true, false),
            e(3, "cart", false, false),
            e(9, "order", false, true),
            e(10, "view", true, false),
        ];
        let (labels, converted, nanos) = path_of(&events, 5).unwrap();
        assert_eq!(labels, ["view", "cart", "order"]);
        assert!(converted);
        assert_eq!(nanos, 8);
        let (labels, ..) = path_of(&events, 2).unwrap();
        assert_eq!(labels, ["cart", "order"]);
        let (labels, converted, _) = path_of(&events[..4], 5).unwrap();
        assert_eq!(labels, ["view", "cart", NO_CONVERSION]);
        assert!(!converted);
        assert_eq!(path_of(&events[..1], 5), None);
    }
}
