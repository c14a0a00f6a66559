//! Customer lifetime value: BG/NBD for how many purchases, Gamma-Gamma for their value,
//! discounted over a horizon; graded on a holdout against "the last period again".

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, UInt32Array};
use datafusion::prelude::SessionContext;

use super::bgnbd::{BgNbd, GammaGamma, Summary};
use super::config::ClvConfig;
use super::Grade;
use crate::error::{Error, Result};
use crate::sql_text::{fill, literal, Param};

/// A customer's purchase history up to a cutoff.
#[derive(Debug, Clone)]
pub struct Customer {
    pub id: String,
    pub summary: Summary,
    /// Mean value of the repeat purchases (0 without any).
    pub m: f64,
}

/// A timestamp literal for SQL.
pub(super) fn at(ts: chrono::NaiveDateTime) -> String {
    format!("CAST({} AS TIMESTAMP)", literal(&stamp(ts)))
}

/// A timestamp as SQL text reads it (`2026-12-01 00:00:00`), for a template's literal.
pub(super) fn stamp(ts: chrono::NaiveDateTime) -> String {
    ts.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Purchase days per customer before a cutoff: x, t_x, T and the mean repeat value.
const SUMMARIES_SQL: &str = include_str!("../../sql/predictions/clv_summaries.sql");

/// Purchase days per customer before `cutoff`, summarized (x, t_x, T in `unit` days, mean
/// repeat value). Several purchases on one day count as one, as in the papers.
pub async fn summaries(
    ctx: &SessionContext,
    purchases: &str,
    cutoff: chrono::NaiveDateTime,
    unit: f64,
) -> Result<Vec<Customer>> {
    let unit = unit.to_string();
    let sql = fill(
        SUMMARIES_SQL,
        &[
            ("purchases", Param::Sql(purchases)),
            ("cutoff", Param::Literal(&stamp(cutoff))),
            ("unit", Param::Sql(&unit)),
        ],
    );
    let batches = ctx
        .sql(&sql)
        .await
        .map_err(|e| Error::invalid("predictions.clv.purchases", e))?
        .collect()
        .await?;
    let mut out = Vec::new();
    for b in &batches {
        let ids = crate::output::string_column(b, "customer_id")?;
        let col = |n: &str| -> Result<Float64Array> {
            let c = arrow::compute::cast(
                b.column(b.schema().index_of(n)?),
                &arrow::datatypes::DataType::Float64,
            )?;
            Ok(c.as_any()
                .downcast_ref::<Float64Array>()
                .expect("f64")
                .clone())
        };
        let (x, t_x, t, m) = (col("x")?, col("t_x")?, col("t")?, col("m")?);
        for i in 0..b.num_rows() {
            out.push(Customer {
                id: ids.value(i).to_string(),
                summary: Summary {
                    x: x.value(i),
                    t_x: t_x.value(i),
                    t: t.value(i),
                },
                m: if m.is_null(i) {
                    0.0
                } else {
                    m.value(i).max(0.0)
                },
            });
        }
    }
    Ok(out)
}

use arrow::array::Array;

/// Purchase days and spend per customer in `[from, to)`.
pub(super) async fn purchase_days(
    ctx: &SessionContext,
    purchases: &str,
    from: chrono::NaiveDateTime,
    to: chrono::NaiveDateTime,
) -> Result<std::collections::HashMap<String, (f64, f64)>> {
    let sql = format!(
        "SELECT customer_id, CAST(count(DISTINCT date_trunc('day', ts)) AS DOUBLE) AS n, \
                CAST(coalesce(sum(amount), 0) AS DOUBLE) AS spend FROM activities \
         WHERE ({purchases}) AND customer_id IS NOT NULL AND ts >= {} AND ts < {} GROUP BY customer_id",
        at(from),
        at(to)
    );
    let mut out = std::collections::HashMap::new();
    for b in ctx.sql(&sql).await?.collect().await? {
        let ids = crate::output::string_column(&b, "customer_id")?;
        let n = b
            .column(1)
            .as_any()
            .downcast_ref::<Float64Array>()
            .expect("f64");
        let spend = b
            .column(2)
            .as_any()
            .downcast_ref::<Float64Array>()
            .expect("f64");
        for i in 0..b.num_rows() {
            out.insert(ids.value(i).to_string(), (n.value(i), spend.value(i)));
        }
    }
    Ok(out)
}

/// The fitted models at a cutoff.
pub struct Models {
    pub bgnbd: super::bgnbd::Fit<BgNbd>,
    pub gamma_gamma: Option<super::bgnbd::Fit<GammaGamma>>,
}

/// Customers a model is fitted on at most: beyond this, a deterministic sample (by a hash of
/// the customer id). At 500,000 buyers every likelihood evaluation took 30 ms and a fit some
/// 600 of them; the parameters of a 50,000 sample differ in the third digit at most.
pub const FIT_SAMPLE: usize = 50_000;

fn sample(customers: &[Customer]) -> Vec<&Customer> {
    if customers.len() <= FIT_SAMPLE {
        return customers.iter().collect();
    }
    use sha2::Digest;
    let mut keyed: Vec<(u64, &Customer)> = customers
        .iter()
        .map(|c| {
            let h = sha2::Sha256::digest(c.id.as_bytes());
            (u64::from_le_bytes(h[..8].try_into().expect("8 bytes")), c)
        })
        .collect();
    keyed.sort_by_key(|(k, _)| *k);
    keyed.into_iter().take(FIT_SAMPLE).map(|(_, c)| c).collect()
}

/// BG/NBD parameters fitted in this run, by purchases filter, cutoff and time unit: churn's
/// p_alive as of the run is the lifetime-value fit (the same purchases, and weeks unless
/// `time_unit_days` says otherwise), so it is fitted once (a fit took 2.6–3.5 s at 1M).
#[derive(Debug, Default)]
pub struct Fitted(std::sync::Mutex<HashMap<(String, chrono::NaiveDateTime, u64), BgNbd>>);

impl Fitted {
    fn key(
        purchases: &str,
        cutoff: chrono::NaiveDateTime,
        unit: f64,
    ) -> (String, chrono::NaiveDateTime, u64) {
        (purchases.to_string(), cutoff, unit.to_bits())
    }

    fn remember(&self, purchases: &str, cutoff: chrono::NaiveDateTime, unit: f64, params: BgNbd) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(Self::key(purchases, cutoff, unit), params);
        }
    }

    /// The parameters fitted on `customers` (the summaries of `purchases` before `cutoff` in
    /// `unit`), fitted now unless this run already did.
    pub fn params(
        &self,
        purchases: &str,
        cutoff: chrono::NaiveDateTime,
        unit: f64,
        customers: &[Customer],
    ) -> Result<BgNbd> {
        let known = self
            .0
            .lock()
            .ok()
            .and_then(|m| m.get(&Self::key(purchases, cutoff, unit)).copied());
        match known {
            Some(p) => Ok(p),
            None => {
                let p = fit(customers)?.bgnbd.params;
                self.remember(purchases, cutoff, unit, p);
                Ok(p)
            }
        }
    }
}

pub fn fit(customers: &[Customer]) -> Result<Models> {
    let started = std::time::Instant::now();
    let customers = sample(customers);
    let data: Vec<Summary> = customers.iter().map(|c| c.summary).collect();
    let bgnbd = BgNbd::fit(&data).map_err(|e| Error::Model {
        model: "predictions.clv".into(),
        message: e.to_string(),
    })?;
    let spend: Vec<(f64, f64)> = customers.iter().map(|c| (c.summary.x, c.m)).collect();
    let gamma_gamma = GammaGamma::fit(&spend).ok();
    tracing::info!(
        customers = data.len(),
        iterations = bgnbd.iterations,
        seconds = started.elapsed().as_secs_f64(),
        "BG/NBD and Gamma-Gamma fitted"
    );
    Ok(Models { bgnbd, gamma_gamma })
}

/// Discounted value of the purchases expected over `horizon_days`, quarter by quarter (each
/// step costs a hypergeometric series per customer; monthly steps tripled the scoring time
/// and moved values by well under 1%).
fn clv(model: &BgNbd, s: &Summary, spend: f64, cfg: &ClvConfig) -> (f64, f64) {
    let mut value = 0.0;
    let mut previous = 0.0;
    let mut day = 0.0;
    let horizon = cfg.horizon_days as f64;
    while day < horizon {
        day = (day + 91.25).min(horizon);
        let expected = model.expected_purchases(s, day / cfg.time_unit_days);
        value += (expected - previous) * spend / (1.0 + cfg.discount_rate).powf(day / 365.0);
        previous = expected;
    }
    (previous, value)
}

/// Fit on the whole history and write `predictions_clv`; grade on a holdout.
pub async fn build(
    ctx: &SessionContext,
    cfg: &ClvConfig,
    as_of: chrono::NaiveDateTime,
    fitted: &Fitted,
) -> Result<(RecordBatch, Vec<Grade>)> {
    // Enough history?
    let first = crate::output::strings(
        ctx,
        &format!(
            "SELECT CAST(min(ts) AS VARCHAR) FROM activities WHERE ({}) AND customer_id IS NOT NULL AND ts < {}",
            cfg.purchases,
            at(as_of)
        ),
    )
    .await
    .map_err(|e| Error::invalid("predictions.clv.purchases", e))?;
    let Some(first) = first
        .first()
        .and_then(|f| crate::config::parse_as_of(f.split('.').next().unwrap_or(f)).ok())
    else {
        return Err(Error::Model {
            model: "predictions.clv".into(),
            message: "no purchases in activities (check predictions.clv.purchases)".into(),
        });
    };
    let history = (as_of - first).num_days();
    if history < cfg.min_history_days as i64 {
        return Err(Error::Model {
            model: "predictions.clv".into(),
            message: format!(
            "lifetime value needs at least {} days of purchase history, the activities have {history} (from {} to as_of {}); \
             set predictions.clv.min_history_days to fit on less, knowing the model will be less reliable",
            cfg.min_history_days,
            first.date(),
            as_of.date()
        ),
        });
    }
    let customers = summaries(ctx, &cfg.purchases, as_of, cfg.time_unit_days).await?;
    let models = fit(&customers)?;
    fitted.remember(
        &cfg.purchases,
        as_of,
        cfg.time_unit_days,
        models.bgnbd.params,
    );
    let grades = grade(ctx, cfg, as_of, &models).await?;
    let started = std::time::Instant::now();
    let rows = score(&customers, &models, cfg);
    tracing::info!(
        customers = rows.len(),
        seconds = started.elapsed().as_secs_f64(),
        "lifetime values computed"
    );
    // Deciles by CLV, 1 = the most valuable tenth.
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| {
        rows[b]
            .3
            .total_cmp(&rows[a].3)
            .then(customers[a].id.cmp(&customers[b].id))
    });
    let n = rows.len().max(1);
    let mut decile = vec![0u32; rows.len()];
    for (rank, &i) in order.iter().enumerate() {
        decile[i] = (rank * 10 / n) as u32 + 1;
    }
    let batch = crate::state::batch(vec![
        (
            "customer_id",
            Arc::new(StringArray::from_iter_values(
                customers.iter().map(|c| c.id.clone()),
            )) as ArrayRef,
        ),
        (
            "frequency",
            Arc::new(Float64Array::from_iter_values(
                customers.iter().map(|c| c.summary.x),
            )),
        ),
        (
            "recency",
            Arc::new(Float64Array::from_iter_values(
                customers.iter().map(|c| c.summary.t_x),
            )),
        ),
        (
            "tenure",
            Arc::new(Float64Array::from_iter_values(
                customers.iter().map(|c| c.summary.t),
            )),
        ),
        (
            "p_alive",
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.0))),
        ),
        (
            "expected_purchases",
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.1))),
        ),
        (
            "expected_spend",
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2))),
        ),
        (
            "clv",
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.3))),
        ),
        ("clv_decile", Arc::new(UInt32Array::from(decile.clone()))),
        (
            "high_value",
            Arc::new(BooleanArray::from(
                decile.iter().map(|d| Some(*d <= 2)).collect::<Vec<_>>(),
            )),
        ),
    ])?;
    Ok((batch, grades))
}

/// (p_alive, expected purchases over the horizon, expected spend, CLV) per customer, in
/// parallel over the machine's cores.
fn score(customers: &[Customer], models: &Models, cfg: &ClvConfig) -> Vec<(f64, f64, f64, f64)> {
    let m = models.bgnbd.params;
    let one = |c: &Customer| {
        let spend = match &models.gamma_gamma {
            Some(g) => g.params.expected_spend(c.summary.x, c.m),
            None => c.m,
        };
        let (purchases, value) = clv(&m, &c.summary, spend, cfg);
        (m.p_alive(&c.summary), purchases, spend, value)
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = customers.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = customers
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(one).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("scoring thread"))
            .collect()
    })
}

/// Hold out the last `holdout_days`, fit before them, and compare predicted purchases in the
/// holdout with the actual ones, and with the baseline "as many as in the period before".
async fn grade(
    ctx: &SessionContext,
    cfg: &ClvConfig,
    as_of: chrono::NaiveDateTime,
    full: &Models,
) -> Result<Vec<Grade>> {
    let holdout = chrono::Duration::days(cfg.holdout_days as i64);
    let cutoff = as_of - holdout;
    let calibration = summaries(ctx, &cfg.purchases, cutoff, cfg.time_unit_days).await?;
    let mut grades = vec![
        Grade::param("clv", "bgnbd_r", full.bgnbd.params.r),
        Grade::param("clv", "bgnbd_alpha", full.bgnbd.params.alpha),
        Grade::param("clv", "bgnbd_a", full.bgnbd.params.a),
        Grade::param("clv", "bgnbd_b", full.bgnbd.params.b),
        Grade::param("clv", "bgnbd_log_likelihood", full.bgnbd.log_likelihood),
    ];
    if let Some(g) = &full.gamma_gamma {
        grades.push(Grade::param("clv", "gamma_gamma_p", g.params.p));
        grades.push(Grade::param("clv", "gamma_gamma_q", g.params.q));
        grades.push(Grade::param("clv", "gamma_gamma_v", g.params.v));
    }
    if calibration.len() < 10 {
        grades.push(Grade::metric(
            "clv",
            "holdout_customers",
            calibration.len() as f64,
            None,
            "C",
        ));
        return Ok(grades);
    }
    let models = fit(&calibration)?;
    let actual = purchase_days(ctx, &cfg.purchases, cutoff, as_of).await?;
    let before = purchase_days(ctx, &cfg.purchases, cutoff - holdout, cutoff).await?;
    let t = cfg.holdout_days as f64 / cfg.time_unit_days;
    let (mut err_model, mut err_base, mut sum_pred, mut sum_actual) = (0.0, 0.0, 0.0, 0.0);
    let (mut spend_err, mut spend_err_base) = (0.0, 0.0);
    for c in &calibration {
        let predicted = models.bgnbd.params.expected_purchases(&c.summary, t);
        let spend = match &models.gamma_gamma {
            Some(g) => g.params.expected_spend(c.summary.x, c.m),
            None => c.m,
        };
        let (a, a_spend) = actual.get(&c.id).copied().unwrap_or((0.0, 0.0));
        let (b, b_spend) = before.get(&c.id).copied().unwrap_or((0.0, 0.0));
        err_model += (predicted - a).abs();
        err_base += (b - a).abs();
        spend_err += (predicted * spend - a_spend).abs();
        spend_err_base += (b_spend - a_spend).abs();
        sum_pred += predicted;
        sum_actual += a;
    }
    let n = calibration.len() as f64;
    let (mae, mae_base) = (err_model / n, err_base / n);
    let (spend_mae, spend_mae_base) = (spend_err / n, spend_err_base / n);
    let aggregate = if sum_actual > 0.0 {
        (sum_pred - sum_actual) / sum_actual
    } else {
        0.0
    };
    let grade = clv_grade(spend_mae, spend_mae_base, aggregate);
    grades.push(Grade::metric("clv", "holdout_customers", n, None, grade));
    grades.push(Grade::metric(
        "clv",
        "holdout_spend_mae",
        spend_mae,
        Some(spend_mae_base),
        grade,
    ));
    grades.push(Grade::metric(
        "clv",
        "holdout_purchases_mae",
        mae,
        Some(mae_base),
        grade,
    ));
    grades.push(Grade::metric(
        "clv",
        "holdout_total_purchases",
        sum_pred,
        Some(sum_actual),
        grade,
    ));
    grades.push(Grade::metric(
        "clv",
        "holdout_total_error",
        aggregate,
        None,
        grade,
    ));
    Ok(grades)
}

/// Graded on the spend of the held-out period, per customer, against the baseline "each
/// customer spends what they spent in the period before": A when the model's mean absolute
/// error is at most 90% of the baseline's and its total purchases are within 15% of the
/// actual; B when it is below the baseline's; C otherwise.
pub fn clv_grade(mae: f64, mae_baseline: f64, total_error: f64) -> &'static str {
    if mae <= 0.9 * mae_baseline && total_error.abs() <= 0.15 {
        "A"
    } else if mae < mae_baseline {
        "B"
    } else {
        "C"
    }
}
