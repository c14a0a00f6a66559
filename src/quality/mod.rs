//! Data quality: every run that loads its sources profiles every source column
//! (`source_profiles`) and evaluates the config's `[[expectations]]` (`data_quality`), after
//! loading and before unification. A failed expectation of severity `error` stops the run
//! there, so nothing downstream — customers, segments, exports — is built from data known to
//! be bad, and the previous run stays current. Both tables are kept in the workspace's state
//! (`.panorama/state/`), one append per run, so trends outlive pruned runs.
//!
//! A run that reuses the current run's sources (inputs unchanged) and `panorama refresh`
//! evaluate the expectations again — freshness depends on the as-of time — but do not
//! profile again: the data is the profiled data.

pub mod checks;
pub mod profile;

use std::path::Path;
use std::time::Instant;

use crate::config::expectations::Severity;
use crate::config::ProjectConfig;
use crate::error::Result;
use crate::sources::SourceReport;
use crate::table_catalog::names;
use crate::workspace::QualitySummary;

/// What [`check_sources`] does.
pub struct QualityRun<'a> {
    pub cfg: &'a ProjectConfig,
    /// The run's directory, whose `sources/` are checked.
    pub run_dir: &'a Path,
    pub run_id: &'a str,
    pub sources: &'a [SourceReport],
    /// The sources of the previous successful run (row count changes).
    pub previous: &'a [SourceReport],
    pub as_of: chrono::NaiveDateTime,
    /// Profile the columns too (the sources were loaded by this run).
    pub profile: bool,
}

/// Profile the run's sources and evaluate the expectations; rows are appended to
/// `source_profiles` and `data_quality`. Failed checks are in the summary (`errors` stop the
/// run: the caller's decision, see [`crate::error::Error::DataQuality`]).
pub async fn check_sources(q: &QualityRun<'_>) -> Result<QualitySummary> {
    let started = Instant::now();
    let expectations = q.cfg.expectations();
    if !q.profile && expectations.is_empty() {
        return Ok(QualitySummary::default());
    }
    let workspace = q.cfg.workspace_dir();
    let ctx = crate::run_context::new_context();
    crate::run_context::register_sources(&ctx, q.run_dir, q.sources).await?;
    let now = chrono::Utc::now().naive_utc();
    let mut summary = QualitySummary::default();
    if q.profile {
        let mut profiles = Vec::new();
        for s in q.sources {
            let t = Instant::now();
            // A profile is information: one that cannot be made is a warning, never a failed
            // run (the expectations below decide that).
            match profile::profile_source(&ctx, q.cfg, &s.name).await {
                Ok(p) => profiles.extend(p),
                Err(e) => {
                    tracing::warn!(source = %s.name, error = %e, "source not profiled");
                    summary
                        .warnings
                        .push(format!("source `{}` could not be profiled: {e}", s.name));
                }
            }
            tracing::info!(source = %s.name, seconds = t.elapsed().as_secs_f64(), "source profiled");
        }
        summary.columns_profiled = profiles.len();
        if !profiles.is_empty() {
            let batch = profile::profiles_batch(q.run_id, now, &profiles)?;
            crate::state::append(&workspace, names::SOURCE_PROFILES, &batch)?;
        }
    }
    let previous_rows = |source: &str| {
        q.previous
            .iter()
            .find(|s| s.name == source)
            .map(|s| s.rows_loaded)
    };
    let cx = checks::CheckContext {
        cfg: q.cfg,
        ctx: &ctx,
        previous_rows: &previous_rows,
        as_of: q.as_of,
    };
    let mut outcomes = Vec::new();
    for e in &expectations {
        let o = checks::evaluate(&cx, e).await.map_err(|err| {
            crate::error::Error::invalid(format!("expectation `{}` ({})", e.name, e.at), err)
        })?;
        outcomes.push(o);
    }
    if !outcomes.is_empty() {
        let batch = checks::outcomes_batch(q.run_id, now, &outcomes)?;
        crate::state::append(&workspace, names::DATA_QUALITY, &batch)?;
    }
    summary.checks = outcomes.len();
    for o in &outcomes {
        match (o.passed, o.expectation.severity) {
            (true, _) => summary.passed += 1,
            (false, Severity::Warn) => summary.warnings.push(o.line()),
            (false, Severity::Error) => summary.errors.push(o.line()),
        }
    }
    summary.seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        columns = summary.columns_profiled,
        checks = summary.checks,
        failed = summary.checks - summary.passed,
        seconds = summary.seconds,
        "data quality checked"
    );
    Ok(summary)
}
