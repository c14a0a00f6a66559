//! `[funnels.<name>]`: funnels the console and the run report draw, each a sequence of
//! activity conditions (SQL over `activities`) within an optional time from the first step.
//! The same funnel is `SELECT * FROM funnel(...)` in SQL, and its paths `paths(first step,
//! last step, 6)`.
//!
//! ```toml
//! [funnels.browse_to_buy]
//! steps = ["type = 'product_view'", "type = 'add_to_cart'", "type = 'order'"]
//! within = "7d"
//! ```

use crate::config::Problem;
use serde::Deserialize;

/// One `[funnels.<name>]` table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FunnelDef {
    /// Two or more conditions, in order.
    pub steps: Vec<String>,
    /// Longest time from the first step to the last: `30m`, `36h`, `7d`. Default: no limit.
    #[serde(default)]
    pub within: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

impl FunnelDef {
    /// Why this funnel cannot be drawn.
    pub fn check(&self, name: &str) -> Result<(), super::Problem> {
        if self.steps.len() < 2 {
            return Err(Problem(format!(
                "funnels.{name}.steps: two or more conditions, e.g. [\"type = 'product_view'\", \"type = 'order'\"]"
            )));
        }
        for (i, s) in self.steps.iter().enumerate() {
            crate::sql_text::check_expression(s)
                .map_err(|m| format!("funnels.{name}.steps[{i}]: `{s}` does not parse: {m}"))?;
        }
        if let Some(w) = &self.within {
            if super::parse_duration(w).is_none() {
                return Err(Problem(format!(
                    "funnels.{name}.within: `{w}` is not a duration (`30m`, `36h`, `7d`)"
                )));
            }
        }
        Ok(())
    }

    /// The arguments of `funnel(...)` for this funnel, as SQL.
    pub fn funnel_args(&self) -> String {
        let mut args: Vec<String> = self
            .steps
            .iter()
            .map(|s| crate::sql_text::literal(s))
            .collect();
        if let Some(d) = self.within.as_deref().and_then(super::parse_duration) {
            args.push(format!("INTERVAL '{} seconds'", d.as_secs()));
        }
        args.join(", ")
    }
}
