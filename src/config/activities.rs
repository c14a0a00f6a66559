//! `[activities.<name>]`: which source rows are activities and how each finds its customer.

use crate::config::Problem;
use serde::Deserialize;

use super::ProjectConfig;

/// `[activities.<name>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivitySource {
    /// The source table the activities come from.
    pub source: String,
    /// Column holding the record id of `customer_source` (e.g. an order's customer number).
    pub customer: Option<String>,
    /// The unified source whose record ids `customer` holds.
    pub customer_source: Option<String>,
    /// Column holding an anonymous id (cookie, device) resolved through `identity_graph`.
    pub anonymous_id: Option<String>,
    /// Event time column.
    pub timestamp: String,
    /// The activity type: a fixed name ...
    #[serde(rename = "type")]
    pub activity_type: Option<String>,
    /// ... or a column holding it.
    pub type_column: Option<String>,
    /// Money amount column (orders, transactions).
    pub amount: Option<String>,
    /// Extra columns kept as a JSON object in `details`.
    #[serde(default)]
    pub details: Vec<String>,
}

impl ActivitySource {
    /// Why this declaration cannot be used (`name` is its key).
    pub fn check(
        &self,
        name: &str,
        cfg: &ProjectConfig,
    ) -> std::result::Result<(), super::Problem> {
        if !cfg.sources.contains_key(&self.source) {
            return Err(Problem(format!(
                "activities.{name}: no source named `{}`",
                self.source
            )));
        }
        match (&self.customer, &self.customer_source, &self.anonymous_id) {
            (Some(_), Some(cs), None) => {
                let mapped = cfg
                    .unify
                    .as_ref()
                    .is_some_and(|u| u.sources.contains_key(cs));
                if !mapped {
                    return Err(Problem(format!(
                        "activities.{name}: customer_source `{cs}` is not mapped in [unify.sources]"
                    )));
                }
            }
            (None, None, Some(_)) => {
                if cfg.unify.is_none() {
                    return Err(Problem(format!("activities.{name}: anonymous ids resolve through the identity graph, which needs [unify]")));
                }
            }
            _ => {
                return Err(Problem(format!(
                    "activities.{name}: set either `customer` and `customer_source` (a record id of a unified source) or `anonymous_id` (resolved through the identity graph)"
                )))
            }
        }
        if self.activity_type.is_some() == self.type_column.is_some() {
            return Err(Problem(format!(
                "activities.{name}: set exactly one of `type` (a fixed name) and `type_column`"
            )));
        }
        Ok(())
    }
}
