//! `[predictions.*]`: which models to fit and how.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PredictionsSection {
    #[serde(default)]
    pub clv: Option<Spanned<ClvConfig>>,
    #[serde(default)]
    pub churn: Option<Spanned<ChurnConfig>>,
    #[serde(default)]
    pub recommendations: Option<Spanned<RecommendationsConfig>>,
}

impl PredictionsSection {
    pub fn is_empty(&self) -> bool {
        self.clv.is_none() && self.churn.is_none() && self.recommendations.is_none()
    }
}

/// Which activities are purchases, shared by CLV and churn.
fn default_purchases() -> String {
    "type = 'order'".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClvConfig {
    /// SQL condition on `activities` selecting purchases (their `amount` is the value).
    #[serde(default = "default_purchases")]
    pub purchases: String,
    /// Days ahead the lifetime value counts.
    #[serde(default = "default_horizon")]
    pub horizon_days: u32,
    /// Yearly discount rate of future value.
    #[serde(default = "default_discount")]
    pub discount_rate: f64,
    /// The model's time unit in days (7: weeks, as in the papers).
    #[serde(default = "default_unit")]
    pub time_unit_days: f64,
    /// Refuse to fit on less history than this (days between the first purchase and as_of).
    #[serde(default = "default_min_history")]
    pub min_history_days: u32,
    /// The last days of history held out to grade the model against a baseline.
    #[serde(default = "default_holdout")]
    pub holdout_days: u32,
}

fn default_horizon() -> u32 {
    365
}
fn default_discount() -> f64 {
    0.10
}
fn default_unit() -> f64 {
    7.0
}
fn default_min_history() -> u32 {
    365
}
fn default_holdout() -> u32 {
    90
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChurnConfig {
    /// SQL condition on `activities` selecting purchases.
    #[serde(default = "default_purchases")]
    pub purchases: String,
    /// A customer has churned when they do not buy for this many days.
    #[serde(default = "default_inactive")]
    pub inactive_days: u32,
}

fn default_inactive() -> u32 {
    90
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommendationsConfig {
    /// `[activities.<name>]` whose rows are purchases of items.
    pub activity: String,
    /// Column of that source naming the item.
    pub item: String,
    /// Recommendations per customer.
    #[serde(default = "default_k")]
    pub k: u32,
    /// Leave out items the customer already bought.
    #[serde(default = "yes")]
    pub exclude_bought: bool,
}

fn default_k() -> u32 {
    10
}
fn yes() -> bool {
    true
}

impl ClvConfig {
    pub fn check(&self) -> Result<(), super::Problem> {
        if self.time_unit_days <= 0.0 {
            return Err("predictions.clv.time_unit_days must be positive".into());
        }
        if !(0.0..1.0).contains(&self.discount_rate) {
            return Err(
                "predictions.clv.discount_rate must be between 0 and 1 (0.10 = 10% a year)".into(),
            );
        }
        if self.holdout_days == 0 || self.horizon_days == 0 {
            return Err("predictions.clv: horizon_days and holdout_days must be at least 1".into());
        }
        Ok(())
    }
}
