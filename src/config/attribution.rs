//! `[attribution.<name>]`: which channels earn the conversions. Conversions and touchpoints
//! are activities (resolved to their person, so an anonymous visitor's touchpoints count once
//! the identity graph knows them); each conversion's path is the person's touchpoints in the
//! lookback window before it, since their previous conversion.
//!
//! ```toml
//! [attribution.orders]
//! conversions = "type = 'order'"
//! value = "amount"
//! channel = "activity_source"
//! lookback = "30d"
//! ```

use crate::config::Problem;
use serde::Deserialize;

/// One `[attribution.<name>]` table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AttributionDef {
    /// SQL condition over `activities`: the activities that convert.
    pub conversions: String,
    /// SQL over `activities`: a conversion's value. Default `amount` (NULL counts 0).
    #[serde(default)]
    pub value: Option<String>,
    /// SQL over `activities`: a touchpoint's channel. An activity with a channel that is not a
    /// conversion is a touchpoint.
    pub channel: String,
    /// SQL over `activities`: a touchpoint's campaign (optional).
    #[serde(default)]
    pub campaign: Option<String>,
    /// SQL condition over `activities`: only these are touchpoints (default: every activity
    /// with a channel).
    #[serde(default)]
    pub touchpoints: Option<String>,
    /// How long before a conversion a touchpoint counts: `30d` (the default), `72h`.
    #[serde(default)]
    pub lookback: Option<String>,
    /// Time decay: a touchpoint this long before the conversion counts half. Default `7d`.
    #[serde(default)]
    pub half_life: Option<String>,
    /// Position based: the shares of the first touchpoint, those in between, and the last.
    /// Default `[0.4, 0.2, 0.4]`.
    #[serde(default)]
    pub position_weights: Option<Vec<f64>>,
    /// The channel `last_non_direct` passes over. Default `direct`.
    #[serde(default)]
    pub direct: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// The models every attribution is computed with, in `attribution_results.model`.
pub const MODELS: &[&str] = &[
    "first_touch",
    "last_touch",
    "last_non_direct",
    "linear",
    "time_decay",
    "position_based",
    "markov",
    "shapley",
];

impl AttributionDef {
    /// Why this attribution cannot be computed.
    pub fn check(&self, name: &str) -> Result<(), super::Problem> {
        for (key, sql) in [
            ("conversions", Some(&self.conversions)),
            ("value", self.value.as_ref()),
            ("channel", Some(&self.channel)),
            ("campaign", self.campaign.as_ref()),
            ("touchpoints", self.touchpoints.as_ref()),
        ] {
            if let Some(sql) = sql {
                crate::sql_text::check_expression(sql).map_err(|m| {
                    format!("attribution.{name}.{key}: `{sql}` does not parse: {m}")
                })?;
            }
        }
        for (key, d) in [("lookback", &self.lookback), ("half_life", &self.half_life)] {
            if let Some(d) = d {
                if super::parse_duration(d).is_none() {
                    return Err(Problem(format!(
                        "attribution.{name}.{key}: `{d}` is not a duration (`72h`, `30d`)"
                    )));
                }
            }
        }
        if let Some(w) = &self.position_weights {
            let ok = w.len() == 3
                && w.iter().all(|x| x.is_finite() && *x >= 0.0)
                && (w.iter().sum::<f64>() - 1.0).abs() < 1e-9;
            if !ok {
                return Err(Problem(format!(
                    "attribution.{name}.position_weights: three shares that add up to 1 (first, middle, last), e.g. [0.4, 0.2, 0.4]"
                )));
            }
        }
        Ok(())
    }

    /// Seconds a touchpoint counts before its conversion.
    pub fn lookback_seconds(&self) -> f64 {
        self.lookback
            .as_deref()
            .and_then(super::parse_duration)
            .map_or(30.0 * 86_400.0, |d| d.as_secs_f64())
    }

    /// Seconds after which a touchpoint counts half in `time_decay`.
    pub fn half_life_seconds(&self) -> f64 {
        self.half_life
            .as_deref()
            .and_then(super::parse_duration)
            .map_or(7.0 * 86_400.0, |d| d.as_secs_f64())
    }

    /// (first, middle, last) shares of `position_based`.
    pub fn position_weights(&self) -> [f64; 3] {
        match self.position_weights.as_deref() {
            Some([a, b, c]) => [*a, *b, *c],
            _ => [0.4, 0.2, 0.4],
        }
    }
}
