//! Churn: will a buyer go `inactive_days` without buying?
//!
//! The model is a logistic regression (linfa-logistic) on recency, frequency, monetary value,
//! tenure, recent activity of any kind and the BG/NBD probability of being alive. It learns at
//! a cutoff `inactive_days` before `as_of` (features from before the cutoff, label = no
//! purchase after it), is evaluated on customers it did not learn from (AUC, against the
//! BG/NBD `1 - p_alive` alone as the baseline), then scores every buyer as of `as_of`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, RecordBatch, StringArray};
use datafusion::prelude::SessionContext;
use linfa::prelude::*;
use ndarray::{Array1, Array2};
use sha2::Digest;

use super::clv::stamp;
use super::config::ChurnConfig;
use super::Grade;
use crate::error::{Error, Result};
use crate::sql_text::{fill, Param};

/// Feature names, in column order.
pub const FEATURES: &[&str] = &[
    "recency_days",
    "frequency",
    "monetary",
    "tenure_days",
    "activity_90d",
    "days_since_activity",
    "p_alive",
];

/// Recency, frequency, monetary value, tenure and recent activity of each buyer before a cutoff.
const CHURN_FEATURES_SQL: &str = include_str!("../../sql/predictions/churn_features.sql");

/// Buyers before `cutoff` and their raw features (p_alive last).
async fn features(
    ctx: &SessionContext,
    purchases: &str,
    cutoff: chrono::NaiveDateTime,
    fitted: &super::clv::Fitted,
) -> Result<(Vec<String>, Vec<[f64; 7]>)> {
    let sql = fill(
        CHURN_FEATURES_SQL,
        &[
            ("purchases", Param::Sql(purchases)),
            ("cutoff", Param::Literal(&stamp(cutoff))),
        ],
    );
    let batches = ctx
        .sql(&sql)
        .await
        .map_err(|e| Error::invalid("predictions.churn.purchases", e))?
        .collect()
        .await?;
    let mut ids = Vec::new();
    let mut rows = Vec::new();
    for b in &batches {
        let id = crate::output::string_column(b, "customer_id")?;
        let cols: Vec<Float64Array> = (1..7)
            .map(|i| {
                let c = arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Float64)?;
                Ok(c.as_any()
                    .downcast_ref::<Float64Array>()
                    .expect("f64")
                    .clone())
            })
            .collect::<Result<_>>()?;
        for i in 0..b.num_rows() {
            ids.push(id.value(i).to_string());
            let mut r = [0.0; 7];
            for (j, c) in cols.iter().enumerate() {
                r[j] = if c.is_null(i) { 0.0 } else { c.value(i) };
            }
            rows.push(r);
        }
    }
    // p_alive from a BG/NBD fit at the same cutoff.
    let summaries = super::clv::summaries(ctx, purchases, cutoff, 7.0).await?;
    if !summaries.is_empty() {
        let model = fitted.params(purchases, cutoff, 7.0, &summaries)?;
        let p: HashMap<&str, f64> = summaries
            .iter()
            .map(|c| (c.id.as_str(), model.p_alive(&c.summary)))
            .collect();
        for (id, r) in ids.iter().zip(rows.iter_mut()) {
            r[6] = p.get(id.as_str()).copied().unwrap_or(1.0);
        }
    }
    Ok((ids, rows))
}

/// log(1 + x) for counts, days and money; p_alive as it is.
fn transform(r: &[f64; 7]) -> [f64; 7] {
    let mut t = *r;
    for v in t.iter_mut().take(6) {
        *v = v.max(0.0).ln_1p();
    }
    t
}

struct Scaler {
    mean: [f64; 7],
    sd: [f64; 7],
}

impl Scaler {
    fn fit(rows: &[[f64; 7]]) -> Scaler {
        let n = rows.len().max(1) as f64;
        let mut mean = [0.0; 7];
        let mut sd = [0.0; 7];
        for r in rows {
            for j in 0..7 {
                mean[j] += r[j] / n;
            }
        }
        for r in rows {
            for j in 0..7 {
                sd[j] += (r[j] - mean[j]).powi(2) / n;
            }
        }
        for s in sd.iter_mut() {
            *s = if *s > 0.0 { s.sqrt() } else { 1.0 };
        }
        Scaler { mean, sd }
    }

    fn matrix(&self, rows: &[[f64; 7]]) -> Array2<f64> {
        Array2::from_shape_fn((rows.len(), 7), |(i, j)| {
            (rows[i][j] - self.mean[j]) / self.sd[j]
        })
    }
}

/// A fitted churn model: probability of churning from standardized features.
struct Model {
    scaler: Scaler,
    weights: [f64; 7],
    intercept: f64,
}

impl Model {
    fn fit(rows: &[[f64; 7]], churned: &[bool]) -> Result<Model> {
        let scaler = Scaler::fit(rows);
        let x = scaler.matrix(rows);
        let y = Array1::from_vec(churned.to_vec());
        let data = Dataset::new(x, y);
        let fitted = linfa_logistic::LogisticRegression::default()
            .alpha(1.0)
            .max_iterations(300)
            .fit(&data)
            .map_err(|e| Error::Model {
                model: "predictions.churn".into(),
                message: format!("cannot fit: {e}"),
            })?;
        // linfa's positive class is the larger one: orient everything towards "churned".
        let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
        let mut weights = [0.0; 7];
        for (j, w) in fitted.params().iter().enumerate() {
            weights[j] = sign * w;
        }
        Ok(Model {
            scaler,
            weights,
            intercept: sign * fitted.intercept(),
        })
    }

    /// P(churn) and each feature's contribution to the log-odds.
    fn predict(&self, r: &[f64; 7]) -> (f64, [f64; 7]) {
        let mut contrib = [0.0; 7];
        let mut z = self.intercept;
        for j in 0..7 {
            contrib[j] = self.weights[j] * (r[j] - self.scaler.mean[j]) / self.scaler.sd[j];
            z += contrib[j];
        }
        (1.0 / (1.0 + (-z).exp()), contrib)
    }
}

/// Area under the ROC curve (Mann-Whitney, ties averaged).
pub fn auc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let n_pos = positive.iter().filter(|p| **p).count() as f64;
    let n_neg = positive.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if positive[k] {
                rank_sum += avg_rank;
            }
        }
        i = j + 1;
    }
    Some((rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg))
}

/// A: the model's AUC is at least 0.70 and beats the baseline by 0.02; B: it is at least the
/// baseline's (within 0.01); C: worse than the baseline.
pub fn churn_grade(auc: f64, baseline: f64) -> &'static str {
    if auc >= 0.70 && auc >= baseline + 0.02 {
        "A"
    } else if auc >= baseline - 0.01 {
        "B"
    } else {
        "C"
    }
}

fn in_test_split(id: &str) -> bool {
    sha2::Sha256::digest(id.as_bytes())[0] % 10 >= 7
}

pub async fn build(
    ctx: &SessionContext,
    cfg: &ChurnConfig,
    as_of: chrono::NaiveDateTime,
    fitted: &super::clv::Fitted,
) -> Result<(RecordBatch, Vec<Grade>)> {
    let window = chrono::Duration::days(cfg.inactive_days as i64);
    let cutoff = as_of - window;
    let (ids, raw) = features(ctx, &cfg.purchases, cutoff, fitted).await?;
    if ids.len() < 20 {
        return Err(Error::Model {
            model: "predictions.churn".into(),
            message: format!(
                "only {} customers bought before {} ({} days before as_of): too few to learn churn",
                ids.len(),
                cutoff.date(),
                cfg.inactive_days
            ),
        });
    }
    let after = super::clv::purchase_days(ctx, &cfg.purchases, cutoff, as_of).await?;
    let churned: Vec<bool> = ids.iter().map(|id| !after.contains_key(id)).collect();
    let rows: Vec<[f64; 7]> = raw.iter().map(transform).collect();
    let (mut train_x, mut train_y, mut test_x, mut test_y, mut test_base) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((id, r), y) in ids.iter().zip(&rows).zip(&churned) {
        if in_test_split(id) {
            test_x.push(*r);
            test_y.push(*y);
            test_base.push(1.0 - r[6]);
        } else {
            train_x.push(*r);
            train_y.push(*y);
        }
    }
    if churned.iter().all(|c| *c) || churned.iter().all(|c| !*c) {
        return Err(Error::Model {
            model: "predictions.churn".into(),
            message: format!(
                "{} of {} buyers churned in the last {} days: both outcomes are needed to learn",
                churned.iter().filter(|c| **c).count(),
                churned.len(),
                cfg.inactive_days
            ),
        });
    }
    let model = Model::fit(&train_x, &train_y)?;
    let scores: Vec<f64> = test_x.iter().map(|r| model.predict(r).0).collect();
    let model_auc = auc(&scores, &test_y);
    let base_auc = auc(&test_base, &test_y);
    let mut grades = vec![
        Grade::param("churn", "train_customers", train_x.len() as f64),
        Grade::param(
            "churn",
            "churn_rate",
            churned.iter().filter(|c| **c).count() as f64 / churned.len() as f64,
        ),
    ];
    if let (Some(m), Some(b)) = (model_auc, base_auc) {
        grades.push(Grade::metric(
            "churn",
            "holdout_auc",
            m,
            Some(b),
            churn_grade(m, b),
        ));
    }
    for (j, f) in FEATURES.iter().enumerate() {
        grades.push(Grade::param(
            "churn",
            &format!("weight_{f}"),
            model.weights[j],
        ));
    }
    // Learn from everyone, then score every buyer as of today.
    let model = Model::fit(&rows, &churned)?;
    let (now_ids, now_raw) = features(ctx, &cfg.purchases, as_of, fitted).await?;
    let mut prob = Vec::with_capacity(now_ids.len());
    let mut band = Vec::with_capacity(now_ids.len());
    let mut top = Vec::with_capacity(now_ids.len());
    for r in &now_raw {
        let (p, contrib) = model.predict(&transform(r));
        prob.push(p);
        band.push(if p >= 0.6 {
            "high"
        } else if p >= 0.3 {
            "medium"
        } else {
            "low"
        });
        let mut order: Vec<usize> = (0..7).filter(|&j| contrib[j] > 0.0).collect();
        order.sort_by(|&a, &b| contrib[b].total_cmp(&contrib[a]));
        top.push(
            order
                .iter()
                .take(3)
                .map(|&j| FEATURES[j])
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    let batch = crate::state::batch(vec![
        (
            "customer_id",
            Arc::new(StringArray::from(now_ids)) as ArrayRef,
        ),
        ("churn_probability", Arc::new(Float64Array::from(prob))),
        ("churn_risk", Arc::new(StringArray::from(band))),
        ("top_features", Arc::new(StringArray::from(top))),
    ])?;
    Ok((batch, grades))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_by_hand() {
        // Positives scored 0.9 and 0.4, negatives 0.5 and 0.1: 3 of 4 pairs ordered right.
        assert_eq!(
            auc(&[0.9, 0.4, 0.5, 0.1], &[true, true, false, false]),
            Some(0.75)
        );
        // Ties count half.
        assert_eq!(auc(&[0.5, 0.5], &[true, false]), Some(0.5));
        assert_eq!(auc(&[0.5], &[true]), None);
    }

    #[test]
    fn the_model_learns_that_long_silence_means_churn() {
        let mut rows = Vec::new();
        let mut y = Vec::new();
        for i in 0..200 {
            let recency = (i % 100) as f64;
            rows.push(transform(&[recency, 3.0, 50.0, 400.0, 1.0, recency, 0.5]));
            y.push(recency > 50.0);
        }
        let m = Model::fit(&rows, &y).unwrap();
        let (quiet, contrib) = m.predict(&transform(&[95.0, 3.0, 50.0, 400.0, 1.0, 95.0, 0.5]));
        let (busy, _) = m.predict(&transform(&[2.0, 3.0, 50.0, 400.0, 1.0, 2.0, 0.5]));
        assert!(quiet > 0.8 && busy < 0.2, "{quiet} {busy}");
        assert!(contrib[0] > 0.0);
        assert_eq!(churn_grade(0.8, 0.7), "A");
        assert_eq!(churn_grade(0.7, 0.705), "B");
        assert_eq!(churn_grade(0.6, 0.7), "C");
    }
}
