//! `[schedules.<name>]`: a cron expression and the steps it runs (`panorama schedule` runs
//! them).

use crate::config::Problem;
use std::str::FromStr;

use serde::Deserialize;

use super::ProjectConfig;

/// `[schedules.<name>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDef {
    /// `min hour day month weekday` (five fields), or with seconds first (six fields). UTC.
    pub cron: String,
    /// What to do, in order: "run", "run --full", "refresh", "journeys", "exports" (all), or
    /// "export NAME". A failing step ends the job.
    pub steps: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// One step of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Run { full: bool },
    Refresh,
    Journeys,
    Exports,
    Export(String),
}

impl ScheduleDef {
    pub fn schedule(&self) -> std::result::Result<cron::Schedule, super::Problem> {
        let fields = self.cron.split_whitespace().count();
        let expr = match fields {
            5 => format!("0 {}", self.cron),
            6 | 7 => self.cron.clone(),
            _ => {
                return Err(Problem(format!(
                    "cron {:?} has {fields} fields: expected 5 (min hour day month weekday) or 6 (with seconds first)",
                    self.cron
                )))
            }
        };
        cron::Schedule::from_str(&expr).map_err(|e| Problem(format!("cron {:?}: {e}", self.cron)))
    }

    pub fn parsed_steps(&self) -> std::result::Result<Vec<Step>, super::Problem> {
        self.steps
            .iter()
            .map(|s| {
                let words: Vec<&str> = s.split_whitespace().collect();
                match words.as_slice() {
                    ["run"] => Ok(Step::Run { full: false }),
                    ["run", "--full"] => Ok(Step::Run { full: true }),
                    ["refresh"] => Ok(Step::Refresh),
                    ["journeys"] => Ok(Step::Journeys),
                    ["exports"] => Ok(Step::Exports),
                    ["export", name] => Ok(Step::Export(name.to_string())),
                    _ => Err(Problem(format!(
                        "step {s:?}: expected \"run\", \"run --full\", \"refresh\", \"journeys\", \"exports\" or \"export NAME\""
                    ))),
                }
            })
            .collect()
    }

    pub fn check(
        &self,
        name: &str,
        cfg: &ProjectConfig,
    ) -> std::result::Result<(), super::Problem> {
        self.schedule()
            .map_err(|m| format!("schedules.{name}: {m}"))?;
        if self.steps.is_empty() {
            return Err(Problem(format!("schedules.{name}.steps is empty")));
        }
        for step in self
            .parsed_steps()
            .map_err(|m| format!("schedules.{name}: {m}"))?
        {
            if let Step::Export(e) = &step {
                if !cfg.exports.contains_key(e) {
                    return Err(Problem(format!("schedules.{name}: no export named `{e}`")));
                }
            }
        }
        Ok(())
    }
}
