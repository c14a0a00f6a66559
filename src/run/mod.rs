//! `panorama run`: materialize every source of a project into a new run directory, check and
//! unify them, run the stages after unification ([`stages`]), then switch the current
//! pointer. `panorama refresh` reuses the current run's sources and unification and runs the
//! same stages.

pub mod reuse;
pub mod stages;

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::ArrowWriter;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::ProjectConfig;
use crate::error::{Error, Result};
use crate::sources::rejects::{rejects_batch, Reject};
use crate::sources::{load_source, BatchSink, SourceReport};
use crate::table_catalog::names;
use crate::workspace::lock::Locking;
use crate::workspace::reports::StageStatus;
use crate::workspace::{
    parquet_tables, write_parquet, writer_properties, Manifest, RunStatus, Workspace,
};
use stages::{LogProgress, Stage, StageProgress};

/// Options of one run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Hide progress bars (for scripts and tests).
    pub quiet: bool,
    /// Reference time of measures and segments; default `project.as_of`, else now.
    pub as_of: Option<chrono::NaiveDateTime>,
    /// Load and unify even when sources and config are as in the current run.
    pub full: bool,
    /// Whether to wait for another writer of the workspace, or fail at once.
    pub locking: Locking,
}

impl RunOptions {
    /// The run's reference time.
    pub fn as_of(&self, cfg: &ProjectConfig) -> chrono::NaiveDateTime {
        self.as_of
            .or_else(|| {
                cfg.project
                    .as_of
                    .as_ref()
                    .and_then(|a| crate::config::parse_as_of(a.get_ref()).ok())
            })
            .unwrap_or_else(|| chrono::Utc::now().naive_utc())
    }
}

/// What a successful run produced.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub manifest: Manifest,
    pub run_dir: PathBuf,
    pub pruned: Vec<String>,
    pub seconds: f64,
    /// Nothing changed since the current run (sources, config, state, as-of time): no run
    /// was made, `manifest` is the current run's.
    pub unchanged: bool,
}

/// Writes one source's shaped batches to `<run>/sources/<name>/part-0.parquet`.
struct ParquetSink {
    path: PathBuf,
    writer: Option<ArrowWriter<File>>,
}

impl BatchSink for ParquetSink {
    fn start(&mut self, schema: SchemaRef) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
        }
        let file =
            File::create(&self.path).map_err(|e| Error::io("cannot create", &self.path, e))?;
        self.writer = Some(ArrowWriter::try_new(
            file,
            schema,
            Some(writer_properties()),
        )?);
        Ok(())
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer
            .as_mut()
            .expect("start() is called before write()")
            .write(batch)?;
        Ok(())
    }
}

impl ParquetSink {
    fn finish(self) -> Result<()> {
        if let Some(w) = self.writer {
            w.close()?;
        }
        Ok(())
    }
}

fn progress_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner:.green} {prefix:<24} {human_pos:>12} rows  {per_sec:>14}  {elapsed}",
    )
    .expect("valid template")
}

/// The manifest of a run that has just started.
fn started_manifest(cfg: &ProjectConfig, run_id: &str, as_of: chrono::NaiveDateTime) -> Manifest {
    Manifest {
        run_id: run_id.to_string(),
        status: RunStatus::Running,
        started_at: chrono::Utc::now().to_rfc3339(),
        ended_at: None,
        config_hash: cfg.hash(),
        panorama_version: env!("CARGO_PKG_VERSION").to_string(),
        sources: Vec::new(),
        rejects: 0,
        error: None,
        unify: None,
        as_of: Some(crate::session::format_as_of(as_of)),
        analytics: None,
        predictions: None,
        refreshed_from: None,
        inputs: None,
        writer: Some(crate::workspace::Writer::this_process()),
        quality: None,
        stages: Vec::new(),
        lineage: Default::default(),
    }
}

/// What a run's sources and unification depend on, as one hash: every local file the
/// sources name (path, size, modification time), the overrides file, and the config without
/// the sections that only measures and segments read. `None` when a source cannot be
/// fingerprinted cheaply (PostgreSQL, object stores, Delta): then every run loads.
pub async fn inputs_fingerprint(cfg: &ProjectConfig) -> Option<String> {
    use reuse::stamp_file as stamp;
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for (name, src) in &cfg.sources {
        let format = cfg.source_format(name, src).ok()?;
        // Tables with their own versions (and databases) are read every run.
        if format.is_database()
            || matches!(
                format,
                crate::config::SourceFormat::Delta | crate::config::SourceFormat::Iceberg
            )
        {
            return None;
        }
        let location = crate::sources::location::expand_env(src.location.get_ref()).ok()?;
        if crate::sources::location::is_url(&location) {
            return None;
        }
        h.update(format!("source {name}\n"));
        if *src.refresh.get_ref() == crate::config::Refresh::Incremental {
            // Snapshot and increments: every file under the folder, new increments included.
            let mut files = Vec::new();
            let mut dirs = vec![cfg.root.join(&location)];
            while let Some(d) = dirs.pop() {
                for e in std::fs::read_dir(&d).ok()?.filter_map(|e| e.ok()) {
                    let p = e.path();
                    if p.is_dir() {
                        dirs.push(p);
                    } else {
                        files.push(p);
                    }
                }
            }
            files.sort();
            for f in files {
                stamp(&mut h, &f)?;
            }
            continue;
        }
        for f in crate::sources::location::resolve_files(&location, &cfg.root)
            .await
            .ok()?
        {
            if let crate::sources::location::FileKind::Local(p) = &f.kind {
                stamp(&mut h, p)?;
            }
        }
    }
    if let Some(o) = cfg.unify.as_ref().and_then(|u| u.overrides.as_ref()) {
        stamp(&mut h, &cfg.root.join(o.get_ref()))?;
    }
    // An erasure changes what the sources yield; so does a record committed by real-time
    // match.
    let mut state_tables = vec![names::SUPPRESSION_LIST.to_string()];
    state_tables.extend(
        cfg.sources
            .keys()
            .map(|s| crate::table_catalog::committed_table(s)),
    );
    for table in state_tables {
        reuse::stamp_dir(&mut h, &crate::state::dir(&cfg.workspace_dir()).join(table))?;
    }
    h.update(reuse::config_without(cfg, reuse::LATER_SECTIONS)?);
    Some(crate::output::hex(&h.finalize()[..16]))
}

/// Run the project: load all sources into a new run, then make it current. When the sources
/// and the config they are read and unified by are as in the current run, the run reuses that
/// run's sources and unification (as `panorama refresh`) unless `opts.full`.
pub async fn run_project(cfg: &ProjectConfig, opts: &RunOptions) -> Result<RunOutcome> {
    let started = Instant::now();
    let ws = Workspace::new(cfg.workspace_dir());
    let operation = if opts.full { "run --full" } else { "run" };
    let lock = crate::workspace::lock::acquire(ws.dir(), operation, &opts.locking).await?;
    let opts = &RunOptions {
        locking: Locking::Held(lock),
        ..opts.clone()
    };
    let inputs = inputs_fingerprint(cfg).await;
    if let (false, Some(fp), Some(current)) = (opts.full, &inputs, ws.current_run()?) {
        let m = ws.read_manifest(&current)?;
        if m.unify.is_some() && m.inputs.as_deref() == Some(fp.as_str()) {
            if unchanged(cfg, &m, opts) {
                tracing::info!(run = %current, "nothing changed: the current run stays current");
                // A writer still settles runs whose process died and prunes old ones.
                let pruned = ws.prune(*cfg.workspace.keep_runs.get_ref())?;
                return Ok(RunOutcome {
                    run_dir: ws.run_dir(&current),
                    manifest: m,
                    pruned,
                    seconds: started.elapsed().as_secs_f64(),
                    unchanged: true,
                });
            }
            tracing::info!(run = %current, "sources and config unchanged: reusing the current run's unification");
            return refresh_project(cfg, opts).await;
        }
    }
    let run_id = Workspace::new_run_id();
    let mut manifest = started_manifest(cfg, &run_id, opts.as_of(cfg));
    manifest.inputs = inputs;
    let run_dir = ws.create_run(&manifest)?;
    tracing::info!(run_id, dir = %run_dir.display(), "run started");

    let result = load_check_unify(cfg, &ws, &run_dir, &run_id, opts, &mut manifest).await;
    manifest.ended_at = Some(chrono::Utc::now().to_rfc3339());
    match result {
        Ok((reports, rejects)) => {
            manifest.sources = reports;
            manifest.rejects = rejects;
            manifest.status = RunStatus::Succeeded;
            ws.write_manifest(&manifest)?;
            ws.set_current(&run_id)?;
            let pruned = ws.prune(*cfg.workspace.keep_runs.get_ref())?;
            tracing::info!(run_id, pruned = pruned.len(), "run succeeded");
            Ok(RunOutcome {
                manifest,
                run_dir,
                pruned,
                seconds: started.elapsed().as_secs_f64(),
                unchanged: false,
            })
        }
        Err((reports, e)) => {
            manifest.sources = reports;
            manifest.status = RunStatus::Failed;
            manifest.error = Some(e.to_string());
            ws.write_manifest(&manifest)?;
            tracing::warn!(run_id, error = %e, "run failed; the current run is unchanged");
            Err(e)
        }
    }
}

/// Whether a run now would make what the current run `m` made: its sources' fingerprint is
/// already known to be the same; the whole config, the as-of time, the version and the
/// rectification log must be too, and no step may call a clock.
fn unchanged(cfg: &ProjectConfig, m: &Manifest, opts: &RunOptions) -> bool {
    let as_of = crate::session::format_as_of(opts.as_of(cfg));
    let Some(sources) = m.lineage.get(reuse::SOURCES) else {
        return false;
    };
    m.config_hash == cfg.hash()
        && m.as_of.as_deref() == Some(as_of.as_str())
        && m.panorama_version == env!("CARGO_PKG_VERSION")
        && !reuse::calls_a_clock(&cfg.text)
        && reuse::StageKeys::new(cfg, sources, &Workspace::new_run_id(), &as_of)
            .same_as(Some(m), reuse::RECTIFICATION)
}

/// A run's sources so far: loaded (reports and rejected rows), or the reports so far and why
/// the run failed (kept in the failed run's manifest).
type Loaded = std::result::Result<(Vec<SourceReport>, u64), (Vec<SourceReport>, Error)>;

/// Everything a run does before its outputs switch: load the sources (Ctrl-C ends the run as
/// failed), check them against the previous run, fold in committed records and drop erased
/// people's, profile and check expectations, unify, and the stages after unification.
async fn load_check_unify(
    cfg: &ProjectConfig,
    ws: &Workspace,
    run_dir: &std::path::Path,
    run_id: &str,
    opts: &RunOptions,
    manifest: &mut Manifest,
) -> Loaded {
    let started = begin(Stage::Sources);
    let loaded = tokio::select! {
        r = materialize_sources(cfg, run_dir, run_id, opts) => r,
        _ = tokio::signal::ctrl_c() => Err((Vec::new(), Error::Interrupted("run interrupted (Ctrl-C); the previous run is still current".into()))),
    };
    let (reports, rejects) = loaded?;
    // The previous run's sources: what drift and row count changes compare with.
    let previous = ws.current_run().map_err(|e| (reports.clone(), e))?;
    let before = previous
        .as_ref()
        .and_then(|p| ws.read_manifest(p).ok())
        .map(|m| m.sources)
        .unwrap_or_default();
    let reports = settle_sources(cfg, run_dir, previous.as_deref(), &before, reports).await?;
    ran(manifest, Stage::Sources, started);
    let started = begin(Stage::Quality);
    let reports = quality_stage(cfg, run_dir, run_id, &before, opts, manifest, reports).await?;
    ran(manifest, Stage::Quality, started);
    if let Some(why) = Stage::Unification.idle(cfg) {
        stages::record(
            manifest,
            &LogProgress,
            Stage::Unification,
            StageStatus::Idle,
            why,
            Instant::now(),
        );
        return Ok((reports, rejects));
    }
    manifest.sources = reports.clone();
    let previous_tables = previous.as_ref().map(|id| ws.run_dir(id).join("tables"));
    let started = begin(Stage::Unification);
    let unified = unify_stage(cfg, run_dir, &reports, previous_tables.as_deref(), opts).await;
    manifest.unify = Some(unified.map_err(|e| (reports.clone(), e))?);
    ran(manifest, Stage::Unification, started);
    manifest
        .lineage
        .insert(reuse::SOURCES.to_string(), run_id.to_string());
    let previous_run = previous.as_ref().and_then(|id| ws.read_manifest(id).ok());
    let previous = previous_tables.as_deref().zip(previous_run.as_ref());
    match after_unify(cfg, run_dir, &reports, previous, opts, manifest).await {
        Ok(()) => Ok((reports, rejects)),
        Err(e) => Err((reports, e)),
    }
}

/// A stage before the stages after unification starts (they report themselves).
fn begin(stage: Stage) -> Instant {
    LogProgress.started(stage);
    Instant::now()
}

/// A stage of [`Stage::ALL`] that ran, into the manifest and the log.
fn ran(manifest: &mut Manifest, stage: Stage, started: Instant) {
    stages::record(manifest, &LogProgress, stage, StageStatus::Ran, "", started);
}

/// Loaded sources made ready to read: schema drift against the previous run (new columns
/// listed, used columns retyped fail), records committed by real-time match folded into
/// their sources, then erased people's records dropped before anything reads them.
async fn settle_sources(
    cfg: &ProjectConfig,
    run_dir: &std::path::Path,
    previous: Option<&str>,
    before: &[SourceReport],
    mut reports: Vec<SourceReport>,
) -> std::result::Result<Vec<SourceReport>, (Vec<SourceReport>, Error)> {
    if let Some(previous) = previous {
        if let Err(e) = crate::sources::drift::compare(cfg, previous, before, &mut reports) {
            return Err((reports, e));
        }
    }
    if let Err(e) = crate::sources::committed::fold(cfg, run_dir, &mut reports).await {
        return Err((reports, e));
    }
    match crate::privacy::erasure::suppress_sources(cfg, run_dir, &mut reports).await {
        Ok(_) => Ok(reports),
        Err(e) => Err((reports, e)),
    }
}

/// Profiles and expectations, before anything is built from the data: an error-level
/// failure fails the run here.
async fn quality_stage(
    cfg: &ProjectConfig,
    run_dir: &std::path::Path,
    run_id: &str,
    before: &[SourceReport],
    opts: &RunOptions,
    manifest: &mut Manifest,
    reports: Vec<SourceReport>,
) -> std::result::Result<Vec<SourceReport>, (Vec<SourceReport>, Error)> {
    let bar = stage_spinner(opts, "data quality: profiles and expectations");
    let checked = crate::quality::check_sources(&crate::quality::QualityRun {
        cfg,
        run_dir,
        run_id,
        sources: &reports,
        previous: before,
        as_of: opts.as_of(cfg),
        profile: true,
    })
    .await;
    bar.finish_and_clear();
    let q = match checked {
        Ok(q) => q,
        Err(e) => return Err((reports, e)),
    };
    let failed = q.errors.clone();
    manifest.quality = Some(q);
    if failed.is_empty() {
        Ok(reports)
    } else {
        Err((
            reports,
            Error::DataQuality {
                run_id: run_id.to_string(),
                failed,
            },
        ))
    }
}

/// `panorama profile`: load sources as a run does (all of them, or those named), into a
/// temporary directory under the workspace, and profile every column as a run would
/// (`source_profiles`). Nothing is kept: no run, no state.
pub async fn profile_sources(
    cfg: &ProjectConfig,
    names: &[String],
    quiet: bool,
) -> Result<(Vec<SourceReport>, RecordBatch)> {
    let mut only = cfg.clone();
    for n in names {
        if !cfg.sources.contains_key(n) {
            return Err(Error::NotFound(format!(
                "no source named `{n}` (sources: {})",
                cfg.sources.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    if !names.is_empty() {
        only.sources.retain(|k, _| names.contains(k));
    }
    let base = cfg.workspace_dir();
    std::fs::create_dir_all(&base).map_err(|e| Error::io("cannot create", &base, e))?;
    let dir = tempfile::Builder::new()
        .prefix(".profile-")
        .tempdir_in(&base)
        .map_err(|e| Error::io("cannot create a temporary directory in", &base, e))?;
    let opts = RunOptions {
        quiet,
        full: true,
        ..Default::default()
    };
    let (reports, _) = materialize_sources(&only, dir.path(), "profile", &opts)
        .await
        .map_err(|(_, e)| e)?;
    let ctx = crate::session::new_context();
    crate::session::register_sources(&ctx, dir.path(), &reports).await?;
    let mut profiles = Vec::new();
    for r in &reports {
        profiles.extend(crate::quality::profile::profile_source(&ctx, cfg, &r.name).await?);
    }
    let batch =
        crate::quality::profile::profiles_batch("", chrono::Utc::now().naive_utc(), &profiles)?;
    Ok((reports, batch))
}

type SourceResult = Result<(SourceReport, Vec<Reject>)>;

fn stage_spinner(opts: &RunOptions, message: &str) -> ProgressBar {
    let bar = if opts.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner:.green} {msg}  {elapsed}").expect("valid template"),
    );
    bar.set_message(message.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// Unify the freshly loaded sources of a run in the project's stage context, with a spinner.
async fn unify_stage(
    cfg: &ProjectConfig,
    run_dir: &std::path::Path,
    reports: &[SourceReport],
    previous_tables: Option<&std::path::Path>,
    opts: &RunOptions,
) -> Result<crate::unify::UnifyReport> {
    let bar = stage_spinner(opts, "unifying: map, match, merge");
    let scratch = run_dir.join("scratch");
    let ctx = stages::project_context(cfg, &scratch).await?;
    crate::run_context::register_sources(&ctx, run_dir, reports).await?;
    let tables = run_dir.join("tables");
    std::fs::create_dir_all(&tables).map_err(|e| Error::io("cannot create", &tables, e))?;
    let report = crate::unify::unify(cfg, &ctx, &tables, previous_tables, !opts.full).await;
    drop(ctx);
    let _ = std::fs::remove_dir_all(&scratch);
    bar.finish_and_clear();
    report
}

/// The stages after unification ([`stages::after_unify`]) for a run or a refresh, reported
/// on a spinner (or only to the log with `quiet`).
async fn after_unify(
    cfg: &ProjectConfig,
    run_dir: &std::path::Path,
    sources: &[SourceReport],
    previous: Option<(&std::path::Path, &Manifest)>,
    opts: &RunOptions,
    manifest: &mut Manifest,
) -> Result<()> {
    // Hidden with `quiet`; every outcome is logged either way.
    let spinner = SpinnerProgress(stage_spinner(opts, "after unification"));
    let run_id = manifest.run_id.clone();
    let as_of = opts.as_of(cfg);
    let keys = reuse::StageKeys::new(
        cfg,
        manifest.lineage.get(reuse::SOURCES).unwrap_or(&run_id),
        &run_id,
        &crate::session::format_as_of(as_of),
    );
    let result = stages::after_unify(
        &stages::AfterUnify {
            cfg,
            run_dir,
            run_id: &run_id,
            sources,
            previous_tables: previous.map(|p| p.0),
            previous_run: previous.map(|p| p.1),
            keys: &keys,
            as_of,
            progress: &spinner,
        },
        manifest,
    )
    .await;
    spinner.0.finish_and_clear();
    result
}

/// Stages on the terminal: the running one's name on the spinner; every outcome logged.
struct SpinnerProgress(ProgressBar);

impl stages::StageProgress for SpinnerProgress {
    fn started(&self, stage: stages::Stage) {
        stages::LogProgress.started(stage);
        self.0.set_message(stage.name());
    }
    fn finished(&self, outcome: &crate::workspace::reports::StageOutcome) {
        stages::LogProgress.finished(outcome);
    }
}

/// `panorama refresh`: a new run that reuses the current run's sources and unification and
/// rebuilds activities, measures and segments (for new measure or segment definitions, or a
/// new day). Sources are not read and nothing is re-matched.
pub async fn refresh_project(cfg: &ProjectConfig, opts: &RunOptions) -> Result<RunOutcome> {
    let started = Instant::now();
    let ws = Workspace::new(cfg.workspace_dir());
    let _lock = crate::workspace::lock::acquire(ws.dir(), "refresh", &opts.locking).await?;
    let current = ws
        .current_run()?
        .ok_or_else(|| Error::NoRun(cfg.root.clone()))?;
    let prev = ws.read_manifest(&current)?;
    let Some(unify) = prev.unify.clone() else {
        return Err(Error::NotFound(format!(
            "run {current} has no unified customers to refresh; add [unify] to the config and use `panorama run`"
        )));
    };
    let prev_dir = ws.run_dir(&current);
    let run_id = Workspace::new_run_id();
    let as_of = opts.as_of(cfg);
    let mut manifest = Manifest {
        sources: prev.sources.clone(),
        rejects: prev.rejects,
        unify: Some(unify),
        inputs: prev.inputs.clone(),
        refreshed_from: Some(current.clone()),
        ..started_manifest(cfg, &run_id, as_of)
    };
    // Keyed by the run that loaded the sources (an older run kept no key: its own id).
    let loaded_by = prev.lineage.get(reuse::SOURCES).unwrap_or(&current);
    manifest
        .lineage
        .insert(reuse::SOURCES.to_string(), loaded_by.clone());
    let run_dir = ws.create_run(&manifest)?;
    let result = async {
        crate::workspace::link_tree(&prev_dir.join("sources"), &run_dir.join("sources"))?;
        let rejects = prev_dir.join("rejects.parquet");
        if rejects.exists() {
            crate::workspace::link_file(&rejects, &run_dir.join("rejects.parquet"))?;
        }
        // Expectations again (freshness moves with the as-of time); the profile is the
        // previous run's, of the same data.
        let q = crate::quality::check_sources(&crate::quality::QualityRun {
            cfg,
            run_dir: &run_dir,
            run_id: &run_id,
            sources: &prev.sources,
            previous: &prev.sources,
            as_of,
            profile: false,
        })
        .await?;
        let failed = q.errors.clone();
        manifest.quality = match q.checks {
            0 => prev.quality.clone(),
            _ => Some(q),
        };
        if !failed.is_empty() {
            return Err(Error::DataQuality {
                run_id: run_id.clone(),
                failed,
            });
        }
        // Unification's tables are the current run's (hard links); the stages after it make
        // theirs again.
        let tables = run_dir.join("tables");
        std::fs::create_dir_all(&tables).map_err(|e| Error::io("cannot create", &tables, e))?;
        let unified: Vec<String> = parquet_tables(&prev_dir.join("tables"))?
            .into_iter()
            .filter(|name| !stages::Stage::made_by_refresh(name))
            .collect();
        reuse::link_tables(&prev_dir.join("tables"), &tables, &unified)?;
        after_unify(
            cfg,
            &run_dir,
            &prev.sources,
            Some((&prev_dir.join("tables"), &prev)),
            opts,
            &mut manifest,
        )
        .await
    }
    .await;
    manifest.ended_at = Some(chrono::Utc::now().to_rfc3339());
    match result {
        Ok(()) => {
            manifest.status = RunStatus::Succeeded;
            ws.write_manifest(&manifest)?;
            ws.set_current(&run_id)?;
            let pruned = ws.prune(*cfg.workspace.keep_runs.get_ref())?;
            Ok(RunOutcome {
                manifest,
                run_dir,
                pruned,
                seconds: started.elapsed().as_secs_f64(),
                unchanged: false,
            })
        }
        Err(e) => {
            manifest.status = RunStatus::Failed;
            manifest.error = Some(e.to_string());
            ws.write_manifest(&manifest)?;
            Err(e)
        }
    }
}

/// Load every source of the project into `<run>/sources/` in parallel, with a progress bar
/// each, and write the rejected rows to `<run>/rejects.parquet`.
async fn materialize_sources(
    cfg: &ProjectConfig,
    run_dir: &std::path::Path,
    run_id: &str,
    opts: &RunOptions,
) -> Loaded {
    let multi = if opts.quiet {
        MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
    } else {
        MultiProgress::new()
    };
    let cfg = Arc::new(cfg.clone());
    let previous = previous_sources(&cfg, opts);
    let tasks = spawn_source_loads(&cfg, run_dir, previous.as_deref(), &multi);
    let (mut reports, mut all_rejects, errors) = gather_source_loads(tasks).await;
    let _ = multi.clear();
    all_rejects.sort_by(|a, b| (&a.source, &a.file, a.row).cmp(&(&b.source, &b.file, b.row)));
    // Rejects are written even when the run fails: they are what the user needs to look at.
    let rejects_path = run_dir.join("rejects.parquet");
    let rejects = rejects_batch(&all_rejects);
    if let Err(e) = write_parquet(&rejects_path, rejects.schema(), &[rejects]) {
        return Err((reports, e));
    }
    if let Some(e) = sources_failed(errors) {
        return Err((reports, e));
    }
    if let Err(e) = check_reject_ratios(&cfg, &reports, run_id) {
        return Err((reports, e));
    }
    // Incremental PostgreSQL reads brought only changed rows: keep the previous run's others.
    if let Some(previous) = &previous {
        if let Err(e) = keep_unchanged_rows(&cfg, previous, run_dir, &mut reports).await {
            return Err((reports, e));
        }
    }
    Ok((reports, all_rejects.len() as u64))
}

/// The current run's sources, which incremental PostgreSQL sources read what changed since
/// (`--full`: none, everything is read).
fn previous_sources(cfg: &ProjectConfig, opts: &RunOptions) -> Option<PathBuf> {
    match opts.full {
        true => None,
        false => Workspace::new(cfg.workspace_dir())
            .current_run()
            .ok()
            .flatten()
            .map(|id| {
                Workspace::new(cfg.workspace_dir())
                    .run_dir(&id)
                    .join("sources")
            }),
    }
}

/// One task per source loading it into `<run>/sources/<name>/part-0.parquet` with a
/// progress bar on `multi`, as many at once as there are cores.
fn spawn_source_loads(
    cfg: &Arc<ProjectConfig>,
    run_dir: &std::path::Path,
    previous: Option<&std::path::Path>,
    multi: &MultiProgress,
) -> Vec<tokio::task::JoinHandle<SourceResult>> {
    let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
    let permits = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut tasks = Vec::new();
    for name in cfg.sources.keys() {
        let bar = multi.add(ProgressBar::new_spinner());
        bar.set_style(progress_style());
        bar.set_prefix(name.clone());
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        let cfg = cfg.clone();
        let name = name.clone();
        let path = run_dir.join("sources").join(&name).join("part-0.parquet");
        let permits = permits.clone();
        let handle = tokio::runtime::Handle::current();
        let previous = previous.map(std::path::Path::to_path_buf);
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await.expect("semaphore open");
            let bar2 = bar.clone();
            let out: SourceResult = tokio::task::spawn_blocking(move || {
                let mut sink = ParquetSink { path, writer: None };
                let on_rows = |n: u64| bar2.inc(n);
                let res = load_source(
                    &cfg,
                    &name,
                    &handle,
                    &mut sink,
                    &on_rows,
                    previous.as_deref(),
                );
                sink.finish()?;
                res
            })
            .await
            .unwrap_or_else(|e| Err(Error::Internal(format!("source task panicked: {e}"))));
            match &out {
                Ok((r, _)) => bar.finish_with_message(format!("{} rows", r.rows_loaded)),
                Err(_) => bar.abandon(),
            }
            out
        }));
    }
    tasks
}

/// The sources' reports and rejected rows, and the errors of those that failed.
async fn gather_source_loads(
    tasks: Vec<tokio::task::JoinHandle<SourceResult>>,
) -> (Vec<SourceReport>, Vec<Reject>, Vec<Error>) {
    let mut reports = Vec::new();
    let mut all_rejects = Vec::new();
    let mut errors = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok((report, rejects))) => {
                reports.push(report);
                all_rejects.extend(rejects);
            }
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(Error::Internal(format!("source task failed: {e}"))),
        }
    }
    (reports, all_rejects, errors)
}

/// The run's error when sources failed: the one error, or a list of them all.
fn sources_failed(mut errors: Vec<Error>) -> Option<Error> {
    match errors.len() {
        0 => None,
        1 => Some(errors.remove(0)),
        n => {
            let list: Vec<String> = errors.iter().map(|e| format!("  - {e}")).collect();
            Some(Error::Partial(format!(
                "{n} sources failed:\n{}",
                list.join("\n")
            )))
        }
    }
}

/// Fail on the first source that rejected more of its rows than its `max_reject_ratio`.
fn check_reject_ratios(cfg: &ProjectConfig, reports: &[SourceReport], run_id: &str) -> Result<()> {
    for r in reports {
        let max = *cfg.sources[&r.name].max_reject_ratio.get_ref();
        let ratio = if r.rows_read == 0 {
            0.0
        } else {
            r.rows_rejected as f64 / r.rows_read as f64
        };
        if ratio > max {
            return Err(Error::RejectRatio {
                source_name: r.name.clone(),
                rejected: r.rows_rejected,
                total: r.rows_read,
                ratio: ratio * 100.0,
                max: max * 100.0,
                run_id: run_id.to_string(),
            });
        }
    }
    Ok(())
}

/// Add the previous run's unchanged rows to the sources read incrementally (counted in
/// their reports' `rows_loaded`).
async fn keep_unchanged_rows(
    cfg: &ProjectConfig,
    previous: &std::path::Path,
    run_dir: &std::path::Path,
    reports: &mut [SourceReport],
) -> Result<()> {
    for r in reports.iter_mut().filter(|r| r.changed_since.is_some()) {
        r.rows_loaded += crate::sources::incremental::keep_unchanged_rows(
            &cfg.sources[&r.name],
            &r.name,
            previous,
            run_dir,
        )
        .await?;
    }
    Ok(())
}
