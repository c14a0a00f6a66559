//! A run's stages, in one list ([`Stage::ALL`]): the sources, their data quality and
//! unification, which only a run makes, then the stages after unification, one executor for
//! both a run (after it unified the freshly loaded sources) and a refresh (after it linked the
//! current run's sources and unification): both call [`after_unify`], so the chain is written
//! once and both compute in the same context — local, or on the Ballista cluster of
//! `workspace.ballista`.
//!
//! Each stage names the tables it reads and makes; a stage with nothing to do in a project
//! says why ([`Stage::idle`]), and what each did is kept in the run's manifest
//! (`stages`) and reported to a [`StageProgress`].

use std::path::Path;
use std::time::Instant;

use datafusion::prelude::SessionContext;

use crate::config::ProjectConfig;
use crate::error::{Error, Result};
use crate::table_catalog::names;
use crate::workspace::reports::{SourceReport, StageOutcome, StageStatus};
use crate::workspace::Manifest;

use super::reuse;

/// A stage of a run, in the order a run makes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Every source read, shaped and written to `<run>/sources/` (rejects kept), then checked
    /// for schema drift, with committed real-time records folded in and erased people's
    /// records dropped.
    Sources,
    /// Column profiles of every source and `[[expectations]]`: an error-level failure ends the
    /// run here, before anything is built from the data.
    Quality,
    /// Map, match, merge: one profile per person.
    Unification,
    /// Corrections from privacy requests applied to the merged profiles.
    Rectification,
    Activities,
    Attribution,
    Predictions,
    /// Measures, segments and business measures.
    Analytics,
    /// The lookup index `panorama serve` answers from.
    LookupIndex,
}

impl Stage {
    /// Every stage a run makes, in order; a refresh makes the [`Self::AFTER_UNIFY`] ones over
    /// the current run's sources and unification.
    pub const ALL: [Stage; 9] = [
        Stage::Sources,
        Stage::Quality,
        Stage::Unification,
        Stage::Rectification,
        Stage::Activities,
        Stage::Attribution,
        Stage::Predictions,
        Stage::Analytics,
        Stage::LookupIndex,
    ];

    /// Every stage after unification, in order: what a refresh makes again.
    pub const AFTER_UNIFY: &'static [Stage] = Stage::ALL.split_at(3).1;

    pub fn name(self) -> &'static str {
        match self {
            Stage::Sources => "sources",
            Stage::Quality => "data quality",
            Stage::Unification => "unification",
            Stage::Rectification => "rectification",
            Stage::Activities => "activities",
            Stage::Attribution => "attribution",
            Stage::Predictions => "predictions",
            Stage::Analytics => "measures and segments",
            Stage::LookupIndex => "lookup index",
        }
    }

    /// The tables the stage reads (besides the sources).
    pub fn reads(self) -> &'static [&'static str] {
        match self {
            Stage::Sources | Stage::Quality | Stage::Unification => &[],
            Stage::Rectification => &[
                names::UNIFIED_CUSTOMERS,
                names::CUSTOMER_LINKS,
                names::RECTIFICATIONS,
            ],
            Stage::Activities => &[names::CUSTOMER_LINKS, names::IDENTITY_GRAPH],
            Stage::Attribution => &[names::ACTIVITIES],
            Stage::Predictions => &[
                names::ACTIVITIES,
                names::UNIFIED_CUSTOMERS,
                names::CUSTOMER_LINKS,
            ],
            Stage::Analytics => &[
                names::UNIFIED_CUSTOMERS,
                names::CUSTOMER_LINKS,
                names::ACTIVITIES,
                names::PREDICTIONS_CLV,
                names::PREDICTIONS_CHURN,
            ],
            Stage::LookupIndex => &[
                names::UNIFIED_CUSTOMERS,
                names::CUSTOMER_PROFILES,
                names::CUSTOMER_LINKS,
                names::IDENTITY_GRAPH,
                names::ACTIVITIES,
            ],
        }
    }

    /// The tables the stage makes afresh. Rectification corrects `unified_customers` in
    /// place (it reads what unification made), so a refresh links that table and lets
    /// rectification correct it again; the index is files of its own (`index/`).
    pub fn makes(self) -> &'static [&'static str] {
        match self {
            // The loaded sources are tables of their own names (`<run>/sources/`); rejects
            // and source stats come from the manifest; profiles and expectation results are
            // appended to the workspace's state.
            Stage::Sources | Stage::Quality => &[],
            Stage::Unification => crate::unify::OUTPUT_TABLES,
            Stage::Rectification | Stage::LookupIndex => &[],
            Stage::Activities => &[names::ACTIVITIES, names::ACTIVITY_STATS],
            Stage::Attribution => &[names::ATTRIBUTION_PATHS, names::ATTRIBUTION_RESULTS],
            Stage::Predictions => &[
                names::PREDICTIONS_CLV,
                names::PREDICTIONS_CHURN,
                names::RECOMMENDATIONS,
                names::PREDICTION_GRADES,
            ],
            Stage::Analytics => crate::config::analytics::OUTPUT_TABLES,
        }
    }

    /// Why the stage has nothing to do in this project; `None` when it runs.
    pub fn idle(self, cfg: &ProjectConfig) -> Option<&'static str> {
        match self {
            Stage::Unification if cfg.unify.is_none() => Some("no [unify] in the config"),
            Stage::Sources | Stage::Quality | Stage::Unification => None,
            Stage::Rectification | Stage::LookupIndex => None,
            Stage::Activities if cfg.activities.is_empty() => Some("no [activities] in the config"),
            Stage::Attribution if cfg.attribution.is_empty() => {
                Some("no [attribution] in the config")
            }
            Stage::Predictions if cfg.predictions.as_ref().is_none_or(|p| p.is_empty()) => {
                Some("no [predictions] in the config")
            }
            Stage::Analytics if cfg.analytics.is_empty() => {
                Some("no measures, segments or business measures in the config")
            }
            _ => None,
        }
    }

    /// Whether a refresh makes this stage's tables again rather than link the current run's.
    pub fn made_by_refresh(table: &str) -> bool {
        Stage::AFTER_UNIFY
            .iter()
            .any(|s| s.makes().contains(&table))
    }
}

/// Where a run reports its stages (the CLI draws a spinner; servers and tests log).
pub trait StageProgress: Send + Sync {
    fn started(&self, stage: Stage);
    fn finished(&self, outcome: &StageOutcome);
}

/// Reports stages to the log only.
pub struct LogProgress;

impl StageProgress for LogProgress {
    fn started(&self, stage: Stage) {
        tracing::info!(stage = stage.name(), "stage started");
    }
    fn finished(&self, o: &StageOutcome) {
        tracing::info!(stage = %o.stage, status = ?o.status, detail = %o.detail, seconds = o.seconds, "stage finished");
    }
}

/// What the stages after unification need from the run that calls them.
pub struct AfterUnify<'a> {
    pub cfg: &'a ProjectConfig,
    pub run_dir: &'a Path,
    pub run_id: &'a str,
    /// The run's loaded sources (registered as tables).
    pub sources: &'a [SourceReport],
    /// The previous run's tables (segment history and measure history continue from them).
    pub previous_tables: Option<&'a Path>,
    /// The previous run's manifest: a step whose key ([`super::reuse`]) is the one that run
    /// kept links that run's tables instead of making them again.
    pub previous_run: Option<&'a Manifest>,
    pub keys: &'a super::reuse::StageKeys,
    pub as_of: chrono::NaiveDateTime,
    pub progress: &'a dyn StageProgress,
}

/// Run every stage after unification into `manifest`: one context (the project's, local or
/// on Ballista) over the run's sources and the tables already in `<run>/tables`, shared by
/// rectification, activities, attribution and predictions; measures and segments in a
/// context of their own once that one is released (their window functions over all customers
/// want the memory); then the lookup index.
pub async fn after_unify(a: &AfterUnify<'_>, manifest: &mut Manifest) -> Result<()> {
    let tables = a.run_dir.join("tables");
    std::fs::create_dir_all(&tables).map_err(|e| Error::io("cannot create", &tables, e))?;
    let scratch = a.run_dir.join("scratch");
    let mut ctx = Some(tables_context(a, &scratch, &tables).await?);
    manifest.lineage.extend(a.keys.0.clone());
    for &stage in Stage::AFTER_UNIFY {
        let started = Instant::now();
        if let Some(why) = stage.idle(a.cfg) {
            record(manifest, a.progress, stage, StageStatus::Idle, why, started);
            continue;
        }
        a.progress.started(stage);
        if stage == Stage::Analytics {
            // Release the shared context (and its cluster scratch) first.
            drop(ctx.take());
            let _ = std::fs::remove_dir_all(&scratch);
        }
        if let Some(from) = reused(a, stage, &tables, ctx.as_ref(), manifest).await? {
            let detail = format!("inputs as in run {from}: its tables linked");
            record(
                manifest,
                a.progress,
                stage,
                StageStatus::Reused,
                &detail,
                started,
            );
            continue;
        }
        match (stage, ctx.as_ref()) {
            (Stage::Rectification, Some(ctx)) => {
                if tables.join("unified_customers.parquet").exists() {
                    crate::privacy::rectification::apply(ctx, &a.cfg.workspace_dir(), &tables)
                        .await?;
                }
            }
            (Stage::Activities, Some(ctx)) => {
                let (n, unresolved) =
                    crate::activities::build(&a.cfg.activities, ctx, &tables).await?;
                if let Some(u) = manifest.unify.as_mut() {
                    u.activities = n;
                    u.unresolved_activities = unresolved;
                }
            }
            (Stage::Attribution, Some(ctx)) => {
                let n = crate::analytics::attribution::build(a.cfg, ctx, &tables).await?;
                if let Some(u) = manifest.unify.as_mut() {
                    u.attributed_conversions = n;
                }
            }
            (Stage::Predictions, Some(ctx)) => {
                let reuse = crate::predictions::Reuse {
                    recommendations: a
                        .previous_tables
                        .filter(|_| a.keys.same_as(a.previous_run, reuse::RECOMMENDATIONS)),
                };
                manifest.predictions =
                    crate::predictions::build(a.cfg, ctx, &tables, a.as_of, &reuse).await?;
            }
            (Stage::Analytics, _) => manifest.analytics = Some(analytics(a, &scratch).await?),
            (Stage::LookupIndex, _) => {
                let previous = a.previous_tables.and_then(Path::parent);
                let reuse = crate::lookup_index::Reuse {
                    index: previous.map(|p| p.join(crate::lookup_index::DIR)),
                    identifiers: a.keys.same_as(a.previous_run, reuse::INDEX_IDENTIFIERS),
                    timeline: a.keys.same_as(a.previous_run, reuse::INDEX_TIMELINE),
                };
                crate::lookup_index::build(a.run_dir, &reuse).await?
            }
            (Stage::Sources | Stage::Quality | Stage::Unification, _) => {
                unreachable!("a run makes these before unification (Stage::AFTER_UNIFY only)")
            }
            (_, None) => unreachable!("only measures and segments release the shared context"),
        }
        record(manifest, a.progress, stage, StageStatus::Ran, "", started);
    }
    drop(ctx);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

/// When the previous run made `stage` from the inputs this run has (its key in
/// [`AfterUnify::keys`]): its tables linked into `tables` (and registered in `ctx`), its
/// figures copied into `manifest`, and that run's id returned.
async fn reused(
    a: &AfterUnify<'_>,
    stage: Stage,
    tables: &Path,
    ctx: Option<&SessionContext>,
    manifest: &mut Manifest,
) -> Result<Option<String>> {
    let step = match stage {
        Stage::Activities => reuse::ACTIVITIES,
        Stage::Attribution => reuse::ATTRIBUTION,
        Stage::Predictions => reuse::PREDICTIONS,
        _ => return Ok(None),
    };
    let (Some(previous), Some(from)) = (a.previous_run, a.previous_tables) else {
        return Ok(None);
    };
    if !a.keys.same_as(Some(previous), step) {
        return Ok(None);
    }
    for table in reuse::link_tables(from, tables, stage.makes())? {
        if let Some(ctx) = ctx {
            crate::table_io::register_written(ctx, tables, &table).await?;
        }
    }
    if stage == Stage::Predictions {
        manifest.predictions = previous.predictions.clone();
    }
    if let (Some(u), Some(p)) = (manifest.unify.as_mut(), previous.unify.as_ref()) {
        match stage {
            Stage::Activities => {
                u.activities = p.activities;
                u.unresolved_activities = p.unresolved_activities;
            }
            Stage::Attribution => u.attributed_conversions = p.attributed_conversions,
            _ => {}
        }
    }
    Ok(Some(previous.run_id.clone()))
}

/// What a stage did, since `started`: into the run's manifest and to `progress`.
pub(crate) fn record(
    manifest: &mut Manifest,
    progress: &dyn StageProgress,
    stage: Stage,
    status: StageStatus,
    detail: &str,
    started: Instant,
) {
    let outcome = StageOutcome {
        stage: stage.name().to_string(),
        status,
        detail: detail.to_string(),
        seconds: started.elapsed().as_secs_f64(),
    };
    progress.finished(&outcome);
    manifest.stages.push(outcome);
}

/// The project's stage context (local, or on its cluster keeping would-be in-memory tables in
/// `scratch`) with every stage's table function.
pub(crate) async fn project_context(cfg: &ProjectConfig, scratch: &Path) -> Result<SessionContext> {
    let ctx = crate::run_context::stage_context(cfg, scratch).await?;
    crate::session::register_functions(&ctx);
    Ok(ctx)
}

/// [`project_context`] where `as_of()` is the run's day, not the clock's: activities',
/// attribution's and measures' SQL may say it (the demo's attribution over the last year
/// counted a month too few orders while only measures had it).
async fn dated_context(a: &AfterUnify<'_>, scratch: &Path) -> Result<SessionContext> {
    let ctx = project_context(a.cfg, scratch).await?;
    crate::engine::register_as_of(&ctx, a.as_of);
    Ok(ctx)
}

/// [`dated_context`] with the run's sources and every table already written into `tables`.
async fn tables_context(
    a: &AfterUnify<'_>,
    scratch: &Path,
    tables: &Path,
) -> Result<SessionContext> {
    let ctx = dated_context(a, scratch).await?;
    crate::run_context::register_sources(&ctx, a.run_dir, a.sources).await?;
    for name in crate::workspace::parquet_tables(tables)? {
        crate::table_io::register_written(&ctx, tables, &name).await?;
    }
    Ok(ctx)
}

/// Measures and segments over the run's sources and tables, in a context of their own.
async fn analytics(
    a: &AfterUnify<'_>,
    scratch: &Path,
) -> Result<crate::workspace::reports::AnalyticsReport> {
    let ctx = dated_context(a, scratch).await?;
    let report = crate::analytics::build(
        a.cfg,
        &a.cfg.analytics,
        &ctx,
        a.run_dir,
        a.sources,
        a.run_id,
        &crate::run_context::format_as_of(a.as_of),
        a.previous_tables,
    )
    .await;
    drop(ctx);
    let _ = std::fs::remove_dir_all(scratch);
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table a stage reads is made by a stage before it (or kept in the workspace's
    /// state): the order of [`Stage::ALL`] is the order of the data.
    #[test]
    fn stages_read_only_what_comes_before_them() {
        let before_stages = [names::RECTIFICATIONS];
        assert_eq!(Stage::AFTER_UNIFY[0], Stage::Rectification);
        for (i, stage) in Stage::ALL.iter().enumerate() {
            for table in stage.reads() {
                let earlier = Stage::ALL[..i].iter().any(|s| s.makes().contains(table));
                assert!(
                    earlier || before_stages.contains(table),
                    "{} reads {table}, which no earlier stage makes",
                    stage.name()
                );
            }
        }
    }
}
