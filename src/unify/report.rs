//! `panorama unify report`: how good the current run's unification is, judged without a truth
//! file — from the learned model, the run's tables and a sample of random record pairs.
//!
//! - **Precision** of the links: the mean match probability of the matched pairs (the model's
//!   own estimate of the share that are true).
//! - **Recall**: the matches the model expects among every scored candidate pair (matched or
//!   not, from `match_score_histogram`), and the share of matches blocking never compared. That
//!   share comes from random record pairs scored by the model's field weights: among the pairs
//!   that look like matches, how many would no blocking rule have found? The prior of a random
//!   pair is not known in advance; it is the fixed point of "expected matches found ÷ blocking
//!   recall ÷ all pairs".
//! - **Clusters that look over-merged**: customers whose records hold two values of a strong
//!   field (birth date, identifiers) that the field's own comparison calls *different* — not a
//!   typo of each other.
//! - **What drives the decisions**: per field, the evidence in the matched pairs and how many
//!   links would fall below the threshold without it.
//!
//! Nothing is written; it reads the run's tables.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Float64Builder, Int64Builder, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Float64Type, Int8Type, Schema};
use datafusion::prelude::SessionContext;

use super::config::MatchMode;
use super::fields::{kind_of, FieldKind};
use super::probabilistic::{self, comparisons::Comparison, Scoring};
use super::staging::literal;
use crate::config::ProjectConfig;
use crate::error::{Error, Result};
use crate::table_catalog::names;

/// What `unify report` looks at.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Random record pairs scored to estimate what blocking leaves out.
    pub sample_pairs: usize,
    /// Example rows per list (over-merged customers, probable matches never compared).
    pub examples: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            sample_pairs: 1_000_000,
            examples: 10,
        }
    }
}

/// The report: headline lines and titled tables.
pub struct QualityReport {
    pub summary: Vec<String>,
    pub tables: Vec<(String, RecordBatch)>,
    /// The estimates, for programs (`--format json`) and tests.
    pub estimates: Estimates,
}

/// The model's estimates; `None` where the run's mode or data gives none.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Estimates {
    pub records: u64,
    pub customers: u64,
    pub links: u64,
    pub precision: Option<f64>,
    /// Expected true matches among the links.
    pub expected_true_links: Option<f64>,
    /// Expected matches among scored candidate pairs below the threshold.
    pub expected_missed_below_threshold: Option<f64>,
    /// Share of all matches that blocking compares (from random pairs).
    pub blocking_recall: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    /// Random pairs scored, and the matches the model expects among them.
    pub random_pairs: u64,
    pub random_pairs_expected_matches: Option<f64>,
    /// Customers with two strong-field values the field's comparison calls different.
    pub over_merged_customers: u64,
}

async fn batches(ctx: &SessionContext, sql: &str, what: &str) -> Result<Vec<RecordBatch>> {
    super::collect(ctx, sql, what).await
}

/// A single number from a one-row query (NULL → 0).
async fn number(ctx: &SessionContext, sql: &str, what: &str) -> Result<f64> {
    let b = batches(ctx, sql, what).await?;
    let Some(b) = b.iter().find(|b| b.num_rows() > 0) else {
        return Ok(0.0);
    };
    let c = arrow::compute::cast(b.column(0), &DataType::Float64)?;
    let c = c.as_primitive::<Float64Type>();
    Ok(if c.is_null(0) { 0.0 } else { c.value(0) })
}

fn table_exists(ctx: &SessionContext, name: &str) -> bool {
    ctx.table_exist(name).unwrap_or(false)
}

/// Estimates from the run's model: precision from the links' probabilities, matches left
/// below the threshold, blocking recall from random pairs, and what drives the decisions.
async fn model_estimates(
    ctx: &SessionContext,
    section: &mut probabilistic::ProbabilisticSection,
    options: &ReportOptions,
    est: &mut Estimates,
    summary: &mut Vec<String>,
    tables: &mut Vec<(String, RecordBatch)>,
) -> Result<()> {
    let weights = batches(
        ctx,
        "SELECT comparison, level, label, m, u, weight FROM match_weights",
        "match weights",
    )
    .await?;
    probabilistic::adopt_plan(section, &weights)?;
    let scoring = Scoring::from_weights(section, &weights)?;
    let threshold = probabilistic::threshold_weight(section);

    // Precision: the model's probability of each link.
    let true_links = number(ctx, "SELECT sum(score) FROM match_pairs", "precision").await?;
    est.expected_true_links = Some(true_links);
    if est.links > 0 {
        est.precision = Some(true_links / est.links as f64);
    }
    // Matches among candidates left below the threshold, bin by bin (the bin's middle,
    // or the middle of its part below the threshold).
    let below = expected_below_threshold(ctx, threshold).await?;
    est.expected_missed_below_threshold = below;

    // Blocking: random pairs scored by the fields' weights.
    let random = random_pairs(ctx, section, &scoring, options).await?;
    est.random_pairs = random.pairs;
    let found = true_links + below.unwrap_or(0.0);
    let total_pairs = (est.records as f64) * (est.records as f64 - 1.0) / 2.0;
    if total_pairs > 0.0 && found > 0.0 {
        let (recall, expected) = random.blocking_recall(found, total_pairs);
        est.random_pairs_expected_matches = Some(expected);
        // Fewer than 3 expected matches among the random pairs says nothing either way.
        if expected >= 3.0 {
            est.blocking_recall = Some(recall);
        }
    }
    let all_matches = found / est.blocking_recall.unwrap_or(1.0);
    if all_matches > 0.0 {
        est.recall = Some(true_links / all_matches);
    }
    if let (Some(p), Some(r)) = (est.precision, est.recall) {
        if p + r > 0.0 {
            est.f1 = Some(2.0 * p * r / (p + r));
        }
    }
    summary.push(format!(
        "estimated precision {} ({:.1} of the {} links are expected to be wrong)",
        fmt4(est.precision),
        est.links as f64 - true_links,
        est.links
    ));
    summary.push(format!(
        "estimated recall {}: {:.1} matches expected among candidates below the threshold, blocking compares {} of all matches",
        fmt4(est.recall),
        below.unwrap_or(0.0),
        match (est.blocking_recall, est.random_pairs_expected_matches) {
            (Some(r), Some(e)) => format!(
                "{r:.4} (from {} random pairs, {e:.1} expected matches among them)",
                random.pairs
            ),
            (None, Some(e)) => format!(
                "an unknown share ({} random pairs hold only {e:.1} expected matches: raise --sample-pairs)",
                random.pairs
            ),
            _ => "an unknown share".to_string(),
        }
    ));
    if let Some(f1) = est.f1 {
        summary.push(format!("estimated F1 {f1:.4}"));
    }
    if let Some(plan_recall) = blocking_plan_recall(ctx).await? {
        summary.push(format!(
            "the blocking plan's own estimate (fields err independently): recall {plan_recall:.4}"
        ));
    }
    tables.push((
        "Probable matches no blocking rule compares (random pairs, highest weight first)"
            .to_string(),
        random.examples,
    ));
    tables.push((
        "What drives the decisions: evidence per field in the links (bits), links that would fall below the threshold without it".to_string(),
        drivers(ctx, &scoring, threshold).await?,
    ));
    Ok(())
}

/// Matches expected among candidates left below the threshold, bin by bin (the bin's middle,
/// or the middle of its part below the threshold); None without a histogram.
async fn expected_below_threshold(ctx: &SessionContext, threshold: f64) -> Result<Option<f64>> {
    Ok(if table_exists(ctx, names::MATCH_SCORE_HISTOGRAM) {
        let h = batches(
            ctx,
            "SELECT CAST(weight_bin AS DOUBLE), CAST(pairs - matched AS DOUBLE) FROM match_score_histogram",
            "weight histogram",
        )
        .await?;
        let mut e = 0.0;
        for b in &h {
            let (bin, n) = (
                b.column(0).as_primitive::<Float64Type>(),
                b.column(1).as_primitive::<Float64Type>(),
            );
            for i in 0..b.num_rows() {
                let top = (bin.value(i) + 1.0).min(threshold);
                if top > bin.value(i) {
                    e += n.value(i) * probabilistic::probability((bin.value(i) + top) / 2.0);
                }
            }
        }
        Some(e)
    } else {
        None
    })
}

/// Report on the unification of the run whose tables `ctx` has.
pub async fn report(
    ctx: &SessionContext,
    cfg: &ProjectConfig,
    options: &ReportOptions,
) -> Result<QualityReport> {
    let unify_cfg = cfg
        .unify
        .clone()
        .ok_or_else(|| Error::NotFound("the config has no [unify] section".into()))?;
    for t in [
        names::UNIFY_RECORDS,
        names::CUSTOMER_LINKS,
        names::MATCH_PAIRS,
    ] {
        if !table_exists(ctx, t) {
            return Err(Error::NotFound(format!(
                "the current run has no `{t}` table: run `panorama run` with a [unify] section first"
            )));
        }
    }
    let mut est = Estimates {
        records: super::count(ctx, "SELECT count(*) FROM unify_records", "records").await?,
        customers: super::count(
            ctx,
            "SELECT count(DISTINCT customer_id) FROM customer_links",
            "customers",
        )
        .await?,
        links: super::count(ctx, "SELECT count(*) FROM match_pairs", "links").await?,
        ..Default::default()
    };
    let mut summary = vec![format!(
        "{} records, {} customers, {} matched pairs (links)",
        est.records, est.customers, est.links
    )];
    let mut tables = Vec::new();
    let mode = unify_cfg.match_mode();
    let mut section = unify_cfg.probabilistic_section();

    if mode == MatchMode::Probabilistic && table_exists(ctx, names::MATCH_WEIGHTS) {
        model_estimates(
            ctx,
            &mut section,
            options,
            &mut est,
            &mut summary,
            &mut tables,
        )
        .await?;
    } else {
        summary.push(
            "rules mode: no model, so no estimated precision or recall; links per rule below"
                .into(),
        );
        tables.push((
            "Links per rule".to_string(),
            super::one_batch(
                ctx,
                "SELECT rule, count(*) AS links FROM match_pairs GROUP BY rule ORDER BY links DESC, rule",
                "links per rule",
            )
            .await?,
        ));
    }

    let (per_field, examples, flagged) = over_merged(ctx, &section, options.examples).await?;
    est.over_merged_customers = flagged;
    summary.push(format!(
        "{flagged} customer(s) hold two values of a strong field that its comparison calls different (possibly two people)"
    ));
    tables.push((
        "Strong fields: customers with several values, and with values the comparison calls different".to_string(),
        per_field,
    ));
    tables.push((
        "Customers that look over-merged (most records on the second value first)".to_string(),
        examples,
    ));
    Ok(QualityReport {
        summary,
        tables,
        estimates: est,
    })
}

fn fmt4(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.4}"))
        .unwrap_or_else(|| "unknown".into())
}

/// The estimated recall of the last chosen rule in `blocking_plan`, when the run chose one.
async fn blocking_plan_recall(ctx: &SessionContext) -> Result<Option<f64>> {
    if !table_exists(ctx, names::BLOCKING_PLAN) {
        return Ok(None);
    }
    let b = batches(
        ctx,
        "SELECT max(estimated_recall_after) FROM blocking_plan WHERE chosen",
        "blocking plan",
    )
    .await?;
    Ok(b.iter().find(|b| b.num_rows() > 0).and_then(|b| {
        let c = b.column(0).as_primitive::<Float64Type>();
        (!c.is_null(0)).then(|| c.value(0))
    }))
}

/// Random pairs by field weight (quarter-bit bins), found by blocking or not.
struct RandomPairs {
    pairs: u64,
    /// (weight bin, found by a blocking rule, pairs); vetoed pairs left out.
    bins: Vec<(f64, bool, f64)>,
    examples: RecordBatch,
}

impl RandomPairs {
    /// Blocking recall and the expected matches among the random pairs, with the prior of a
    /// random pair at its fixed point: the matches found (`found`, expected among the scored
    /// candidates) over the recall, spread over `total_pairs`.
    fn blocking_recall(&self, found: f64, total_pairs: f64) -> (f64, f64) {
        let mut recall = 1.0;
        let mut expected = 0.0;
        for _ in 0..100 {
            let lambda = (found / recall / total_pairs).clamp(1e-15, 0.5);
            let prior = (lambda / (1.0 - lambda)).log2();
            let (mut inside, mut outside) = (0.0, 0.0);
            for (w, blocked, n) in &self.bins {
                let p = n * probabilistic::probability(w + prior);
                if *blocked {
                    inside += p;
                } else {
                    outside += p;
                }
            }
            expected = inside + outside;
            let next = if expected > 0.0 {
                inside / expected
            } else {
                1.0
            }
            .max(1e-6);
            if (next - recall).abs() < 1e-9 {
                recall = next;
                break;
            }
            recall = next;
        }
        (recall, expected)
    }
}

/// Score `sample_pairs` random pairs (two samples of records by a hash of their id, crossed)
/// by the sum of their field weights; whether any blocking rule would have compared them.
async fn random_pairs(
    ctx: &SessionContext,
    section: &probabilistic::ProbabilisticSection,
    scoring: &Scoring,
    options: &ReportOptions,
) -> Result<RandomPairs> {
    let comps = &scoring.comparisons;
    let side = (options.sample_pairs as f64).sqrt().ceil().max(1.0) as usize;
    let mut weight_terms = Vec::new();
    for (c, comp) in comps.iter().enumerate() {
        let mut t = format!("CASE WHEN {} IS NULL THEN 0.0", comp.column());
        for g in 0..comp.level_count() {
            t.push_str(&format!(
                " WHEN {} = {g} THEN {:.9}",
                comp.column(),
                scoring.model.weight(c, g)
            ));
        }
        t.push_str(" ELSE 0.0 END");
        weight_terms.push(t);
    }
    let blocked: Vec<String> = section
        .blocking
        .iter()
        .map(|key| {
            let same: Vec<String> = key.iter().map(|k| format!("l.{k} = r.{k}")).collect();
            format!("coalesce({}, false)", same.join(" AND "))
        })
        .collect();
    let levels: Vec<String> = comps
        .iter()
        .map(|c| format!("{} AS {}", c.level_sql("l", "r"), c.column()))
        .collect();
    let agree: Vec<String> = comps
        .iter()
        .map(|c| {
            format!(
                "CASE WHEN {g} = {top} THEN {f} END",
                g = c.column(),
                top = c.level_count() - 1,
                f = literal(&c.field)
            )
        })
        .collect();
    let pairs_sql = format!(
        "SELECT left_uid, right_uid, found, {w} AS weight, concat_ws(', ', {agree}) AS agree_exactly
         FROM (SELECT l.uid AS left_uid, r.uid AS right_uid, {blocked} AS found, {levels}
               FROM (SELECT * FROM unify_records ORDER BY md5(uid || ':report-left') LIMIT {side}) l
               CROSS JOIN (SELECT * FROM unify_records ORDER BY md5(uid || ':report-right') LIMIT {side}) r
               WHERE l.uid <> r.uid)
         WHERE NOT ({veto})",
        w = weight_terms.join(" + "),
        agree = agree.join(", "),
        blocked = if blocked.is_empty() {
            "false".to_string()
        } else {
            blocked.join(" OR ")
        },
        levels = levels.join(", "),
        veto = Scoring::veto_sql(section.vetoes()),
    );
    // Scored once, kept in memory (about 60 bytes a pair), then binned and searched in a
    // context of its own: the run's context may be a server's, shared with every client.
    let scored = ctx
        .sql(&pairs_sql)
        .await
        .map_err(|e| Error::query("unify report: random pairs", e))?
        .cache()
        .await
        .map_err(|e| Error::query("unify report: random pairs", e))?;
    let local = SessionContext::new();
    local.register_table("unify_report_pairs", scored.into_view())?;
    let total = super::count(
        ctx,
        &format!(
            "SELECT count(*) FROM (SELECT l.uid FROM (SELECT uid FROM unify_records ORDER BY md5(uid || ':report-left') LIMIT {side}) l \
             CROSS JOIN (SELECT uid FROM unify_records ORDER BY md5(uid || ':report-right') LIMIT {side}) r WHERE l.uid <> r.uid)"
        ),
        "random pairs",
    ).await?;
    let binned = batches(
        &local,
        "SELECT CAST(round(weight * 4) / 4 AS DOUBLE) AS w, found, CAST(count(*) AS DOUBLE) AS n \
         FROM unify_report_pairs GROUP BY 1, 2",
        "random pairs by weight",
    )
    .await?;
    let mut bins = Vec::new();
    for b in &binned {
        let (w, f, n) = (
            b.column(0).as_primitive::<Float64Type>(),
            b.column(1).as_boolean(),
            b.column(2).as_primitive::<Float64Type>(),
        );
        for i in 0..b.num_rows() {
            bins.push((w.value(i), f.value(i), n.value(i)));
        }
    }
    // A pair drawn both ways round (both records in both samples) is listed once.
    let sql = format!(
        "SELECT DISTINCT least(left_uid, right_uid) AS left_uid, greatest(left_uid, right_uid) AS right_uid, \
           round(weight, 2) AS field_weight, agree_exactly \
         FROM unify_report_pairs WHERE NOT found AND weight > 0 \
         ORDER BY field_weight DESC, left_uid, right_uid LIMIT {}",
        options.examples
    );
    let examples = super::one_batch(&local, &sql, "probable matches outside blocking").await?;
    Ok(RandomPairs {
        pairs: total,
        bins,
        examples,
    })
}

/// Per compared field over the links: how often compared, how often exactly equal, the mean
/// evidence (bits), its share of the positive evidence, and the links whose other fields alone
/// would stay below the threshold.
async fn drivers(ctx: &SessionContext, scoring: &Scoring, threshold: f64) -> Result<RecordBatch> {
    let comps: &[Comparison] = &scoring.comparisons;
    let cols: Vec<String> = comps.iter().map(|c| c.column()).collect();
    let b = batches(
        ctx,
        &format!("SELECT {} FROM match_pairs", cols.join(", ")),
        "levels of the links",
    )
    .await?;
    let n = comps.len();
    let (mut compared, mut exact, mut decisive) = (vec![0i64; n], vec![0i64; n], vec![0i64; n]);
    let mut bits = vec![0.0f64; n];
    let mut positive = vec![0.0f64; n];
    for batch in &b {
        let levels: Vec<_> = (0..n)
            .map(|c| arrow::compute::cast(batch.column(c), &DataType::Int8))
            .collect::<std::result::Result<_, _>>()?;
        let levels: Vec<&arrow::array::PrimitiveArray<Int8Type>> = levels
            .iter()
            .map(|a| a.as_primitive::<Int8Type>())
            .collect();
        let mut w = vec![0.0; n];
        for row in 0..batch.num_rows() {
            let mut total = 0.0;
            for c in 0..n {
                w[c] = if levels[c].is_null(row) {
                    0.0
                } else {
                    scoring.model.weight(c, levels[c].value(row) as usize)
                };
                total += w[c];
            }
            for c in 0..n {
                if levels[c].is_null(row) {
                    continue;
                }
                compared[c] += 1;
                if levels[c].value(row) as usize == comps[c].level_count() - 1 {
                    exact[c] += 1;
                }
                bits[c] += w[c];
                positive[c] += w[c].max(0.0);
                if w[c] > 0.0 && total >= threshold && total - w[c] < threshold {
                    decisive[c] += 1;
                }
            }
        }
    }
    let all_positive: f64 = positive.iter().sum::<f64>().max(1e-12);
    let (mut field, mut comp_b, mut exact_b, mut mean_b, mut share_b, mut dec_b) = (
        StringBuilder::new(),
        Int64Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
        Int64Builder::new(),
    );
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|a, b| positive[*b].total_cmp(&positive[*a]));
    for c in order {
        field.append_value(&comps[c].field);
        comp_b.append_value(compared[c]);
        if compared[c] > 0 {
            exact_b.append_value(round(exact[c] as f64 / compared[c] as f64, 4));
            mean_b.append_value(round(bits[c] / compared[c] as f64, 2));
        } else {
            exact_b.append_null();
            mean_b.append_null();
        }
        share_b.append_value(round(positive[c] / all_positive, 4));
        dec_b.append_value(decisive[c]);
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("field", DataType::Utf8, false),
        Field::new("links_compared", DataType::Int64, false),
        Field::new("share_exact", DataType::Float64, true),
        Field::new("mean_bits", DataType::Float64, true),
        Field::new("share_of_evidence", DataType::Float64, false),
        Field::new("links_decided", DataType::Int64, false),
    ]));
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(field.finish()),
            Arc::new(comp_b.finish()),
            Arc::new(exact_b.finish()),
            Arc::new(mean_b.finish()),
            Arc::new(share_b.finish()),
            Arc::new(dec_b.finish()),
        ],
    )?)
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

/// Strong fields: the birth date and every identifier field that is staged. A person has one
/// value of each; two values that their comparison calls different are two people, or a
/// wrong value.
fn strong_fields(section: &probabilistic::ProbabilisticSection) -> Vec<Comparison> {
    let mut names: Vec<String> = vec!["birth_date".into()];
    names.extend(
        section
            .custom
            .keys()
            .filter(|f| kind_of(f, &section.custom) == Some(FieldKind::Identifier))
            .cloned(),
    );
    names
        .iter()
        .filter_map(|f| probabilistic::comparisons::comparison(f, &section.custom))
        // A level that looks at other columns (a name swapped with the surname) cannot be
        // evaluated on one field's values.
        .filter(|c| c.columns() == [c.field.as_str()])
        .collect()
}

/// Per strong field: customers with it on two or more records, with several values, with a
/// value the comparison calls different from the most common one; and example customers.
async fn over_merged(
    ctx: &SessionContext,
    section: &probabilistic::ProbabilisticSection,
    examples: usize,
) -> Result<(RecordBatch, RecordBatch, u64)> {
    let mut per_field = Vec::new();
    let mut example_sql = Vec::new();
    for comp in strong_fields(section) {
        let f = &comp.field;
        // Values per customer with their record counts; the most common value (ties to the
        // smallest) is the customer's; every other value is compared with it.
        let values = format!(
            "WITH v AS (SELECT k.customer_id, r.{f} AS {f}, count(*) AS n \
                 FROM customer_links k JOIN unify_records r ON k.uid = r.uid \
                 WHERE r.{f} IS NOT NULL GROUP BY k.customer_id, r.{f}), \
             ranked AS (SELECT *, row_number() OVER (PARTITION BY customer_id ORDER BY n DESC, CAST({f} AS VARCHAR)) AS rk, \
                 count(*) OVER (PARTITION BY customer_id) AS distinct_values, \
                 sum(n) OVER (PARTITION BY customer_id) AS records FROM v), \
             cmp AS (SELECT o.customer_id, o.records, o.distinct_values, o.n AS other_records, \
                 CAST(t.{f} AS VARCHAR) AS main_value, CAST(o.{f} AS VARCHAR) AS other_value, \
                 {level} AS level \
                 FROM ranked t JOIN ranked o ON t.customer_id = o.customer_id AND t.rk = 1 AND o.rk > 1)",
            level = comp.level_sql("t", "o"),
        );
        per_field.push(format!(
            "SELECT * FROM ({values} SELECT {name} AS field, \
               (SELECT count(*) FROM (SELECT customer_id FROM ranked GROUP BY customer_id HAVING max(records) >= 2)) AS customers_with_2_records, \
               (SELECT count(DISTINCT customer_id) FROM cmp) AS with_several_values, \
               (SELECT count(DISTINCT customer_id) FROM cmp WHERE level = 0) AS with_different_values)",
            name = literal(f)
        ));
        example_sql.push(format!(
            "SELECT * FROM ({values} SELECT customer_id, {name} AS field, max(records) AS records, \
               max(main_value) AS main_value, \
               string_agg(other_value || ' (' || CAST(other_records AS VARCHAR) || ')', '; ' ORDER BY other_records DESC, other_value) AS different_values, \
               max(other_records) AS most_records_on_another \
             FROM cmp WHERE level = 0 GROUP BY customer_id)",
            name = literal(f)
        ));
    }
    if per_field.is_empty() {
        let empty = RecordBatch::new_empty(Arc::new(Schema::empty()));
        return Ok((empty.clone(), empty, 0));
    }
    let per_field_b = super::one_batch(
        ctx,
        &per_field.join(" UNION ALL "),
        "strong fields per customer",
    )
    .await?;
    // Every flagged (customer, field), most suspicious first: counted, then cut to `examples`.
    let flagged_b = super::one_batch(
        ctx,
        &format!(
            "SELECT customer_id, field, records, main_value, different_values FROM ({}) \
             ORDER BY most_records_on_another DESC, records DESC, customer_id, field",
            example_sql.join(" UNION ALL ")
        ),
        "over-merged customers",
    )
    .await?;
    let customers = arrow::compute::cast(flagged_b.column(0), &DataType::Utf8)?;
    let customers = customers.as_string::<i32>();
    let flagged = (0..customers.len())
        .map(|i| customers.value(i))
        .collect::<std::collections::HashSet<_>>()
        .len() as u64;
    let examples_b = flagged_b.slice(0, examples.min(flagged_b.num_rows()));
    Ok((per_field_b, examples_b, flagged))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_recall_is_the_share_of_expected_matches_found() {
        // 1,000 random pairs: 990 clear non-matches, 5 clear matches found by blocking, 5
        // not found. Whatever the prior, clear matches stay matches: recall 0.5.
        let r = RandomPairs {
            pairs: 1000,
            bins: vec![(-30.0, false, 990.0), (60.0, true, 5.0), (60.0, false, 5.0)],
            examples: RecordBatch::new_empty(Arc::new(Schema::empty())),
        };
        let (recall, expected) = r.blocking_recall(100.0, 1e6);
        assert!((recall - 0.5).abs() < 1e-6, "{recall}");
        assert!((expected - 10.0).abs() < 1e-3, "{expected}");
        // Weak evidence only: at a prior of 1e-4 a 10-bit pair is a 9% match.
        let r = RandomPairs {
            pairs: 1000,
            bins: vec![(10.0, true, 10.0), (10.0, false, 30.0)],
            examples: RecordBatch::new_empty(Arc::new(Schema::empty())),
        };
        let (recall, _) = r.blocking_recall(100.0, 1e6);
        assert!((recall - 0.25).abs() < 1e-6, "{recall}");
    }
}
