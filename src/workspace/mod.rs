//! The project's workspace: one directory per run, and a `current.json` pointer that is switched
//! only after a run completed. A failed or interrupted run therefore never replaces the previous
//! good outputs, and queries always see one consistent run.
//!
//! ```text
//! .panorama/
//!   current.json                 {"run_id": "..."}   (replaced atomically by rename)
//!   runs/<run_id>/manifest.json  what the run did
//!   runs/<run_id>/sources/<name>/part-0.parquet
//!   runs/<run_id>/rejects.parquet
//!   lock                         held by the one process writing (see [`lock`])
//! ```

pub mod lock;
pub mod reports;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use reports::SourceReport;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
}

impl RunStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }
}

/// What a run did; written as `manifest.json` in the run directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub run_id: String,
    pub status: RunStatus,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub config_hash: String,
    pub panorama_version: String,
    pub sources: Vec<SourceReport>,
    pub rejects: u64,
    pub error: Option<String>,
    /// Figures of the unify stage, when the project has `[unify]`.
    #[serde(default)]
    pub unify: Option<reports::UnifyReport>,
    /// Reference time of measures and segments (`as_of()` in queries of this run).
    #[serde(default)]
    pub as_of: Option<String>,
    /// Figures of the measures and segments stage.
    #[serde(default)]
    pub analytics: Option<reports::AnalyticsReport>,
    /// Figures and grades of the predictions stage.
    #[serde(default)]
    pub predictions: Option<reports::PredictionsReport>,
    /// For `panorama refresh`: the run whose sources and unification this run reuses.
    #[serde(default)]
    pub refreshed_from: Option<String>,
    /// Fingerprint of the sources' files and the config they are unified by (see
    /// `run::inputs_fingerprint`); `None` when a source cannot be fingerprinted.
    #[serde(default)]
    pub inputs: Option<String>,
    /// The process writing the run, so a later writer can tell a run still being written
    /// from one whose process was killed.
    #[serde(default)]
    pub writer: Option<Writer>,
    /// Source profiles and expectations of this run (`source_profiles`, `data_quality`).
    #[serde(default)]
    pub quality: Option<QualitySummary>,
    /// What each stage after unification did: ran (and how long), or why it had nothing to
    /// do.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<reports::StageOutcome>,
    /// What each step after unification was made from, one key per step (`run::reuse`): a
    /// later run with the same key links that step's tables instead of making them again.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub lineage: std::collections::BTreeMap<String, String>,
}

/// What the data quality step of a run found: one line per failed expectation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QualitySummary {
    /// Source columns profiled (0 when the run reused the previous run's sources).
    pub columns_profiled: usize,
    pub checks: usize,
    pub passed: usize,
    /// Failed expectations of severity `warn`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Failed expectations of severity `error` (the run stopped before unification).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    pub seconds: f64,
}

/// A process on a host: its pid and start time (pids are reused; the pair is not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Writer {
    pub pid: u32,
    pub host: String,
    /// Start time in clock ticks since boot (`/proc/<pid>/stat`), where the system tells it.
    pub started: Option<u64>,
}

impl Writer {
    pub fn this_process() -> Writer {
        let pid = std::process::id();
        Writer {
            pid,
            host: host_name(),
            started: process_start(pid),
        }
    }

    /// Whether the process is certainly gone: same host, and no process with this pid and
    /// start time. A run written from another host, or where `/proc` says nothing, is taken
    /// to be alive.
    pub fn is_gone(&self) -> bool {
        if self.host != host_name() || !Path::new("/proc/self/stat").exists() {
            return false;
        }
        match process_start(self.pid) {
            None => true,
            Some(started) => self.started.is_some_and(|s| s != started),
        }
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Field 22 of `/proc/<pid>/stat` (after the parenthesized command name, which may hold
/// spaces): the process's start time since boot.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[derive(Debug, Serialize, Deserialize)]
struct CurrentPointer {
    run_id: String,
}

/// A project's workspace directory.
#[derive(Debug, Clone)]
pub struct Workspace {
    dir: PathBuf,
}

/// Suffix of a run directory being made (hidden, renamed into place when its manifest is in).
const STARTING: &str = ".starting";

/// Write `m` as `manifest.json` in `dir`, atomically.
fn write_manifest_in(dir: &std::path::Path, m: &Manifest) -> Result<()> {
    let text = serde_json::to_string_pretty(m)?;
    write_atomic(&dir.join("manifest.json"), text.as_bytes())
}

impl Workspace {
    pub fn new(dir: PathBuf) -> Self {
        Workspace { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn runs_dir(&self) -> PathBuf {
        self.dir.join("runs")
    }

    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.runs_dir().join(run_id)
    }

    /// A new, sortable run id: UTC time plus a short random suffix.
    pub fn new_run_id() -> String {
        let now = chrono::Utc::now();
        let suffix: u16 = rand::random();
        format!("{}-{suffix:04x}", now.format("%Y%m%dT%H%M%S%3fZ"))
    }

    /// Create the directory of a new run with its first manifest, as one step: the directory
    /// is made under a hidden name and renamed into place once the manifest is in it, so a run
    /// killed at any moment leaves either no run directory or one whose manifest names its
    /// process (which [`Workspace::reap_dead_runs`] then marks failed). A run stopped between
    /// making the directory and writing the manifest once left a directory without one (seen
    /// by the one-writer test, which stops a run as soon as it holds the lock).
    pub fn create_run(&self, manifest: &Manifest) -> Result<PathBuf> {
        let dir = self.run_dir(&manifest.run_id);
        let starting = self
            .runs_dir()
            .join(format!(".{}{STARTING}", manifest.run_id));
        std::fs::create_dir_all(starting.join("sources"))
            .map_err(|e| Error::io("cannot create run directory", &starting, e))?;
        write_manifest_in(&starting, manifest)?;
        std::fs::rename(&starting, &dir)
            .map_err(|e| Error::io("cannot create run directory", &dir, e))?;
        Ok(dir)
    }

    pub fn write_manifest(&self, m: &Manifest) -> Result<()> {
        write_manifest_in(&self.run_dir(&m.run_id), m)
    }

    pub fn read_manifest(&self, run_id: &str) -> Result<Manifest> {
        let path = self.run_dir(run_id).join("manifest.json");
        let text =
            std::fs::read_to_string(&path).map_err(|e| Error::io("cannot read", &path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::File {
            path: path.clone(),
            message: format!("invalid manifest: {e}"),
        })
    }

    /// The run queries should see, if any run has completed.
    pub fn current_run(&self) -> Result<Option<String>> {
        let path = self.dir.join("current.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let p: CurrentPointer = serde_json::from_str(&text).map_err(|e| Error::File {
                    path: path.clone(),
                    message: format!("invalid pointer: {e}"),
                })?;
                Ok(Some(p.run_id))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("cannot read", &path, e)),
        }
    }

    /// Make `run_id` the current run. Atomic: readers see the old or the new pointer.
    pub fn set_current(&self, run_id: &str) -> Result<()> {
        let text = serde_json::to_string(&CurrentPointer {
            run_id: run_id.to_string(),
        })?;
        write_atomic(&self.dir.join("current.json"), text.as_bytes())
    }

    /// All run manifests, oldest first. Unreadable run directories are skipped.
    pub fn manifests(&self) -> Result<Vec<Manifest>> {
        let dir = self.runs_dir();
        let mut ids = match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().to_string())
                // A run being made (see `create_run`) is not a run yet.
                .filter(|name| !name.starts_with('.'))
                .collect::<Vec<_>>(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io("cannot list", &dir, e)),
        };
        ids.sort();
        Ok(ids
            .iter()
            .filter_map(|id| self.read_manifest(id).ok())
            .collect())
    }

    /// Mark runs whose writing process is gone (killed: `kill -9`, a crash, a power cut) as
    /// failed, so that pruning can delete them. Returns their ids.
    pub fn reap_dead_runs(&self) -> Result<Vec<String>> {
        // Run directories a killed writer left half made (see `create_run`): only a writer
        // reaps, and there is one writer at a time, so no other run is starting.
        if let Ok(entries) = std::fs::read_dir(self.runs_dir()) {
            for e in entries.filter_map(|e| e.ok()) {
                let name = e.file_name().to_string_lossy().to_string();
                if name.starts_with('.') && name.ends_with(STARTING) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let mut reaped = Vec::new();
        for mut m in self.manifests()? {
            let gone =
                m.status == RunStatus::Running && m.writer.as_ref().is_some_and(Writer::is_gone);
            if gone {
                let pid = m.writer.as_ref().map_or(0, |w| w.pid);
                m.status = RunStatus::Failed;
                m.ended_at = Some(chrono::Utc::now().to_rfc3339());
                m.error = Some(format!(
                    "interrupted: process {pid} ended before the run finished (killed or crashed)"
                ));
                self.write_manifest(&m)?;
                tracing::warn!(
                    run_id = m.run_id,
                    pid,
                    "a run's process is gone: marked failed"
                );
                reaped.push(m.run_id);
            }
        }
        Ok(reaped)
    }

    /// Delete runs beyond the newest `keep` successful ones. The current run is always kept;
    /// failed runs older than the oldest kept run go too, and so do runs whose process died
    /// (see [`Workspace::reap_dead_runs`]).
    pub fn prune(&self, keep: usize) -> Result<Vec<String>> {
        self.reap_dead_runs()?;
        let current = self.current_run()?;
        let manifests = self.manifests()?;
        let succeeded: Vec<&Manifest> = manifests
            .iter()
            .filter(|m| m.status == RunStatus::Succeeded)
            .collect();
        let oldest_kept = succeeded
            .len()
            .checked_sub(keep)
            .and_then(|i| succeeded.get(i))
            .map(|m| m.run_id.clone());
        let Some(oldest_kept) = oldest_kept else {
            return Ok(Vec::new());
        };
        let mut removed = Vec::new();
        for m in &manifests {
            if m.run_id < oldest_kept
                && Some(&m.run_id) != current.as_ref()
                && m.status != RunStatus::Running
            {
                let dir = self.run_dir(&m.run_id);
                std::fs::remove_dir_all(&dir)
                    .map_err(|e| Error::io("cannot delete old run", &dir, e))?;
                removed.push(m.run_id.clone());
            }
        }
        Ok(removed)
    }
}

/// Write via a temporary file and rename, so a crash never leaves a half-written file.
/// Every row of one Parquet file, as written by a run (small tables: models, indexes).
/// Hard-link a file (copy where links are not possible): a run that reuses another's table
/// costs no disk space for it.
pub fn link_file(from: &Path, to: &Path) -> Result<()> {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).map_err(|e| Error::io("cannot copy", from, e))?;
    }
    Ok(())
}

/// [`link_file`] for every file under `from`, folders kept.
pub fn link_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| Error::io("cannot create", to, e))?;
    let rd = std::fs::read_dir(from).map_err(|e| Error::io("cannot read", from, e))?;
    for entry in rd.filter_map(|e| e.ok()) {
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            link_tree(&path, &target)?;
        } else {
            link_file(&path, &target)?;
        }
    }
    Ok(())
}

/// The rows of a Parquet file, from its footer.
pub fn parquet_rows(path: &Path) -> Result<u64> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
    let reader =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?;
    Ok(reader.metadata().file_metadata().num_rows().max(0) as u64)
}

pub fn read_parquet_file(path: &Path) -> Result<Vec<arrow::array::RecordBatch>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
    let reader =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?
            .with_batch_size(64 * 1024)
            .build()?;
    Ok(reader.collect::<std::result::Result<Vec<_>, _>>()?)
}

pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, data).map_err(|e| Error::io("cannot write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("cannot replace", path, e))
}

/// Parquet writer properties for every table Panorama writes.
pub fn writer_properties() -> datafusion::parquet::file::properties::WriterProperties {
    datafusion::parquet::file::properties::WriterProperties::builder()
        .set_compression(datafusion::parquet::basic::Compression::SNAPPY)
        .set_max_row_group_row_count(Some(256 * 1024))
        .build()
}

/// Write batches of one schema as a Parquet file, batch by batch (concatenating first was
/// measured 30 s slower for a million rows coming out of a join).
pub fn write_parquet(
    path: &std::path::Path,
    schema: arrow::datatypes::SchemaRef,
    batches: &[arrow::array::RecordBatch],
) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| Error::io("cannot create", path, e))?;
    let mut w =
        datafusion::parquet::arrow::ArrowWriter::try_new(file, schema, Some(writer_properties()))?;
    for b in batches {
        w.write(b)?;
    }
    w.close()?;
    Ok(())
}

/// Names of the `<name>.parquet` tables in a directory, sorted.
pub fn parquet_tables(dir: &std::path::Path) -> Result<Vec<String>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io("cannot read", dir, e))?;
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .filter_map(|p| p.file_stem().map(|n| n.to_string_lossy().to_string()))
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(id: &str, status: RunStatus) -> Manifest {
        Manifest {
            run_id: id.into(),
            status,
            started_at: String::new(),
            ended_at: None,
            config_hash: String::new(),
            panorama_version: String::new(),
            sources: vec![],
            rejects: 0,
            error: None,
            unify: None,
            as_of: None,
            analytics: None,
            predictions: None,
            refreshed_from: None,
            inputs: None,
            lineage: Default::default(),
            writer: None,
            quality: None,
            stages: Vec::new(),
        }
    }

    #[test]
    fn prune_keeps_newest_successes_and_current() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = Workspace::new(tmp.path().to_path_buf());
        for (id, st) in [
            ("r1", RunStatus::Succeeded),
            ("r2", RunStatus::Failed),
            ("r3", RunStatus::Succeeded),
            ("r4", RunStatus::Succeeded),
            ("r5", RunStatus::Failed),
        ] {
            ws.create_run(&manifest(id, st)).unwrap();
        }
        ws.set_current("r4").unwrap();
        let removed = ws.prune(2).unwrap();
        assert_eq!(removed, vec!["r1", "r2"]);
        let left: Vec<_> = ws
            .manifests()
            .unwrap()
            .into_iter()
            .map(|m| m.run_id)
            .collect();
        assert_eq!(left, vec!["r3", "r4", "r5"]);
        assert_eq!(ws.current_run().unwrap().as_deref(), Some("r4"));
    }
}
