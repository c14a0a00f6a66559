//! Predictions: customer lifetime value (BG/NBD + Gamma-Gamma), churn risk (logistic
//! regression), and product recommendations (item-to-item co-purchases), each graded on a
//! holdout against a simple baseline. The engagement score is a measure template
//! (`sql/templates/engagement.toml`).
//!
//! The stage runs after activities and before measures, so measures (`from =
//! "predictions_clv"`), segments and exports can use what it writes:
//!
//! | table | what |
//! |---|---|
//! | `predictions_clv` | `customer_id, frequency, recency, tenure, p_alive, expected_purchases, expected_spend, clv, clv_decile, high_value` |
//! | `predictions_churn` | `customer_id, churn_probability, churn_risk, top_features` |
//! | `recommendations` | `customer_id, rank, <item>, score, reason` |
//! | `prediction_grades` | `model, metric, value, baseline, grade`: fitted parameters and holdout metrics |

pub mod bgnbd;
mod churn;
mod clv;
pub use crate::config::predictions as config;
mod item_to_item;
mod recommendations;
pub mod table_functions;

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, StringArray};
use datafusion::prelude::SessionContext;

use crate::config::ProjectConfig;
use crate::error::Result;
use crate::table_catalog::names;

/// Tables the stage writes.
pub const TABLES: &[&str] = &[
    names::PREDICTIONS_CLV,
    names::PREDICTIONS_CHURN,
    names::RECOMMENDATIONS,
    names::PREDICTION_GRADES,
];

/// One row of `prediction_grades`: a fitted parameter (no baseline, no grade) or a holdout
/// metric with the baseline's value and the model's grade.
#[derive(Debug, Clone)]
pub struct Grade {
    pub model: String,
    pub metric: String,
    pub value: f64,
    pub baseline: Option<f64>,
    pub grade: Option<String>,
}

impl Grade {
    fn param(model: &str, metric: &str, value: f64) -> Grade {
        Grade {
            model: model.into(),
            metric: metric.into(),
            value,
            baseline: None,
            grade: None,
        }
    }
    fn metric(model: &str, metric: &str, value: f64, baseline: Option<f64>, grade: &str) -> Grade {
        Grade {
            model: model.into(),
            metric: metric.into(),
            value,
            baseline,
            grade: Some(grade.into()),
        }
    }
}

pub use crate::workspace::reports::PredictionsReport;

/// What a run may take from the previous run's predictions instead of making it again.
#[derive(Debug, Default)]
pub struct Reuse<'a> {
    /// The previous run's tables, when its recommendations were made from the same
    /// purchases, customers and config (they do not depend on the as-of time): its
    /// `recommendations` is linked and its grades of them kept.
    pub recommendations: Option<&'a Path>,
}

/// Fit the configured models on the run's activities; `ctx` has the run's sources,
/// `customer_links`, `unified_customers` and `activities`.
pub async fn build(
    cfg: &ProjectConfig,
    ctx: &SessionContext,
    tables_dir: &Path,
    as_of: chrono::NaiveDateTime,
    reuse: &Reuse<'_>,
) -> Result<Option<PredictionsReport>> {
    let Some(p) = &cfg.predictions else {
        return Ok(None);
    };
    if p.is_empty() {
        return Ok(None);
    }
    let started = std::time::Instant::now();
    for t in [names::UNIFIED_CUSTOMERS, names::CUSTOMER_LINKS] {
        if !ctx.table_exist(t)? {
            crate::table_io::register_written(ctx, tables_dir, t).await?;
        }
    }
    let mut report = PredictionsReport::default();
    let mut grades = Vec::new();
    let fitted = clv::Fitted::default();
    if let Some(c) = &p.clv {
        let (batch, g) = clv::build(ctx, c.get_ref(), as_of, &fitted).await?;
        report.clv_customers = batch.num_rows() as u64;
        write(ctx, tables_dir, names::PREDICTIONS_CLV, batch).await?;
        grades.extend(g);
    }
    if let Some(c) = &p.churn {
        let (batch, g) = churn::build(ctx, c.get_ref(), as_of, &fitted).await?;
        report.churn_customers = batch.num_rows() as u64;
        write(ctx, tables_dir, names::PREDICTIONS_CHURN, batch).await?;
        grades.extend(g);
    }
    if let Some(r) = &p.recommendations {
        let (n, g) = match reuse.recommendations {
            Some(previous) => previous_recommendations(previous, tables_dir)?,
            None => recommendations::build(cfg, ctx, r.get_ref(), tables_dir).await?,
        };
        report.recommendations = n;
        crate::table_io::register_written(ctx, tables_dir, names::RECOMMENDATIONS).await?;
        grades.extend(g);
    }
    for g in &grades {
        if let Some(grade) = &g.grade {
            if !report.grades.iter().any(|(m, _)| *m == g.model) {
                report.grades.push((g.model.clone(), grade.clone()));
            }
        }
    }
    let batch = crate::state::batch(vec![
        (
            "model",
            Arc::new(StringArray::from_iter_values(
                grades.iter().map(|g| g.model.clone()),
            )) as ArrayRef,
        ),
        (
            "metric",
            Arc::new(StringArray::from_iter_values(
                grades.iter().map(|g| g.metric.clone()),
            )),
        ),
        (
            "value",
            Arc::new(Float64Array::from_iter_values(
                grades.iter().map(|g| g.value),
            )),
        ),
        (
            "baseline",
            Arc::new(Float64Array::from(
                grades.iter().map(|g| g.baseline).collect::<Vec<_>>(),
            )),
        ),
        (
            "grade",
            Arc::new(StringArray::from(
                grades.iter().map(|g| g.grade.clone()).collect::<Vec<_>>(),
            )),
        ),
    ])?;
    write(ctx, tables_dir, names::PREDICTION_GRADES, batch).await?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(Some(report))
}

/// The previous run's recommendations (in `previous`, its tables) linked into `tables_dir`:
/// their rows and the grades that run gave them.
fn previous_recommendations(previous: &Path, tables_dir: &Path) -> Result<(u64, Vec<Grade>)> {
    let file = |dir: &Path, t: &str| dir.join(format!("{t}.parquet"));
    let table = names::RECOMMENDATIONS;
    crate::workspace::link_file(&file(previous, table), &file(tables_dir, table))?;
    let rows = crate::workspace::parquet_rows(&file(tables_dir, table))?;
    let mut grades = Vec::new();
    for b in crate::workspace::read_parquet_file(&file(previous, names::PREDICTION_GRADES))? {
        let col = |n: &str| crate::output::string_column(&b, n);
        let (model, metric, grade) = (col("model")?, col("metric")?, col("grade")?);
        let number = |n: &str| -> Result<Float64Array> {
            let c = b.column(b.schema().index_of(n)?);
            Ok(arrow::array::AsArray::as_primitive(c.as_ref()).clone())
        };
        let (value, baseline) = (number("value")?, number("baseline")?);
        for i in (0..b.num_rows()).filter(|&i| model.value(i) == "recommendations") {
            grades.push(Grade {
                model: model.value(i).to_string(),
                metric: metric.value(i).to_string(),
                value: value.value(i),
                baseline: baseline.is_valid(i).then(|| baseline.value(i)),
                grade: grade.is_valid(i).then(|| grade.value(i).to_string()),
            });
        }
    }
    Ok((rows, grades))
}

async fn write(
    ctx: &SessionContext,
    dir: &Path,
    name: &str,
    batch: arrow::array::RecordBatch,
) -> Result<()> {
    let path = dir.join(format!("{name}.parquet"));
    crate::workspace::write_parquet(&path, batch.schema(), std::slice::from_ref(&batch))?;
    crate::table_io::register_written(ctx, dir, name).await
}
