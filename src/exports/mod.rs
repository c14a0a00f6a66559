//! Exports: send a segment, a table or a query's rows to a file, a PostgreSQL table or a
//! webhook, with consent checked, a row limit, and an incremental mode that sends only what
//! changed since the last *confirmed* export.
//!
//! Each export keeps what its destination has confirmed (`state/exports/<name>/confirmed.parquet`:
//! key and a hash of the row as sent). A run compares the rows it would send with that state:
//! new keys are `entered`, different hashes `changed`, confirmed keys no longer selected `left`
//! (or `erased` after `panorama privacy erase`). Only confirmed operations update the state, so
//! a failure midway re-sends exactly what was not confirmed on the next export.

pub use crate::config::exports as config;
mod file;
mod postgres;
pub mod webhook;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray, UInt64Array};
use datafusion::prelude::SessionContext;
use sha2::Digest;

use crate::config::ProjectConfig;
use crate::table_catalog::names;

crate::error::message_error!(
    /// Why a destination did not take the rows, or the rows to send could not be read back: a
    /// message kept in `export_log` and shown after the export's name.
    SendError
);

impl From<crate::error::Error> for SendError {
    fn from(e: crate::error::Error) -> Self {
        SendError(e.to_string())
    }
}

impl From<crate::config::Problem> for SendError {
    fn from(e: crate::config::Problem) -> Self {
        SendError(e.0)
    }
}

impl From<crate::sources::ReadError> for SendError {
    fn from(e: crate::sources::ReadError) -> Self {
        SendError(e.0)
    }
}
use crate::error::{Error, Result};
use crate::output::{hex, string_column};
use crate::sql_text::{ident, literal};
use config::{Destination, ExportDef, ExportMode};

/// How a row changed at the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Entered,
    Changed,
    Left,
    Erased,
}

impl Change {
    pub fn as_str(&self) -> &'static str {
        match self {
            Change::Entered => "entered",
            Change::Changed => "changed",
            Change::Left => "left",
            Change::Erased => "erased",
        }
    }
    pub fn is_delete(&self) -> bool {
        matches!(self, Change::Left | Change::Erased)
    }
}

/// One row operation to send.
#[derive(Debug, Clone)]
pub struct Op {
    pub key: String,
    pub customer_id: Option<String>,
    pub change: Change,
    /// Where the row's JSON object is in the plan's [`RowJson`] (upserts to JSON
    /// destinations only).
    pub json: Option<JsonAt>,
    pub hash: Option<String>,
}

/// Where one row's JSON sits in a [`RowJson`] file.
#[derive(Debug, Clone, Copy)]
pub struct JsonAt {
    offset: u64,
    len: u32,
}

/// The JSON of the rows a plan upserts, in a temporary file (deleted when dropped) rather than
/// in memory: a first send of a million rows to a webhook or PostgreSQL held 1.3 GiB when
/// every row's JSON was a `String` in its `Op`. Destinations read it back batch by batch.
pub struct RowJson {
    writer: Option<std::io::BufWriter<std::fs::File>>,
    reader: std::sync::Mutex<Option<std::fs::File>>,
    len: u64,
    /// Where the file is (for errors).
    dir: PathBuf,
}

impl RowJson {
    /// A new, empty file in `dir` (the export's state directory, so it is on the same disk as
    /// what the export keeps, not a small `/tmp`).
    fn create(dir: &Path) -> Result<RowJson> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
        let file = tempfile::tempfile_in(dir)
            .map_err(|e| Error::io("cannot create a temporary file in", dir, e))?;
        Ok(RowJson {
            writer: Some(std::io::BufWriter::with_capacity(1 << 20, file)),
            reader: std::sync::Mutex::new(None),
            len: 0,
            dir: dir.to_path_buf(),
        })
    }

    /// No file: for destinations that write Arrow batches (files) or a dry run's count.
    fn none() -> RowJson {
        RowJson {
            writer: None,
            reader: std::sync::Mutex::new(None),
            len: 0,
            dir: PathBuf::new(),
        }
    }

    fn push(&mut self, json: &str) -> Result<Option<JsonAt>> {
        use std::io::Write;
        let Some(w) = self.writer.as_mut() else {
            return Ok(None);
        };
        w.write_all(json.as_bytes())
            .map_err(|e| Error::io("cannot write the rows to send in", &self.dir, e))?;
        let at = JsonAt {
            offset: self.len,
            len: u32::try_from(json.len()).map_err(|_| {
                Error::ResourceLimit(format!("a row's JSON is {} bytes (over 4 GiB)", json.len()))
            })?,
        };
        self.len += json.len() as u64;
        Ok(Some(at))
    }

    /// Done writing: flush, and read from here on.
    fn finish(&mut self) -> Result<()> {
        if let Some(w) = self.writer.take() {
            let file = w.into_inner().map_err(|e| {
                Error::io(
                    "cannot write the rows to send in",
                    &self.dir,
                    e.into_error(),
                )
            })?;
            *self.reader.lock().unwrap_or_else(|p| p.into_inner()) = Some(file);
        }
        Ok(())
    }

    /// The JSON object of one row.
    pub fn read(&self, at: JsonAt) -> std::result::Result<String, SendError> {
        use std::io::{Read, Seek, SeekFrom};
        let mut guard = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let file = guard
            .as_mut()
            .ok_or_else(|| "internal: the rows to send were not written".to_string())?;
        let mut buf = vec![0u8; at.len as usize];
        file.seek(SeekFrom::Start(at.offset))
            .and_then(|_| file.read_exact(&mut buf))
            .map_err(|e| format!("cannot read back the rows to send: {e}"))?;
        String::from_utf8(buf)
            .map_err(|e| SendError(format!("cannot read back the rows to send: {e}")))
    }

    /// Bytes written (for the log).
    pub fn bytes(&self) -> u64 {
        self.len
    }
}

/// What an export would send, before sending.
pub struct Plan {
    pub name: String,
    pub key: String,
    pub mode: ExportMode,
    /// Rows to write (file destinations only; empty for JSON ones, which read [`Plan::json`]):
    /// every selected row in full mode, only the changed ones in incremental mode.
    pub batches: Vec<RecordBatch>,
    pub ops: Vec<Op>,
    /// The JSON of the upserted rows (JSON destinations only).
    pub json: RowJson,
    /// Every key selected this time (a full export mirrors exactly these).
    pub keys: HashSet<String>,
    /// Schema of the rows (also when none are selected).
    pub schema: arrow::datatypes::SchemaRef,
    /// What the destination had confirmed before this export.
    confirmed: HashMap<String, ConfirmedRow>,
}

/// What a destination confirmed.
#[derive(Debug, Default)]
pub struct Sent {
    /// Indices into `Plan::ops` the destination confirmed.
    pub confirmed: Vec<usize>,
    pub bytes: u64,
    /// Why the rest was not confirmed.
    pub error: Option<String>,
    /// Files written (for files) or the dead-letter file (webhooks), for the report.
    pub written: Vec<String>,
    pub dead_lettered: usize,
}

/// Options of one export.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    pub quiet: bool,
    /// Plan and count, send nothing, change no state.
    pub dry_run: bool,
    /// Whether to wait for another writer of the workspace, or fail at once (not taken for a
    /// dry run, which changes nothing).
    pub locking: crate::workspace::lock::Locking,
}

/// How an export ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExportOutcome {
    /// Everything planned was sent and confirmed (or there was nothing to send).
    #[default]
    Succeeded,
    /// The destination refused or failed part of it (`error` says what); the confirmed part
    /// is kept and the rest is sent again next time.
    Failed,
    /// Planned only (`--dry-run`): nothing sent, nothing kept.
    DryRun,
}

impl ExportOutcome {
    /// As written to `export_log` and shown: `succeeded`, `failed`, `dry-run`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportOutcome::Succeeded => "succeeded",
            ExportOutcome::Failed => "failed",
            ExportOutcome::DryRun => "dry-run",
        }
    }
}

impl std::fmt::Display for ExportOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one export did; also its `export_log` row.
#[derive(Debug, Clone, Default)]
pub struct ExportReport {
    pub export: String,
    pub run_id: String,
    pub destination: String,
    pub mode: String,
    pub started_at: String,
    pub ended_at: String,
    /// Rows the definition selected, before consent and limit.
    pub selected: u64,
    /// Customers left out because consent did not allow the purpose/channel.
    pub excluded_no_consent: u64,
    /// Rows beyond the limit.
    pub cut_by_limit: u64,
    pub upserts: u64,
    pub deletes: u64,
    pub confirmed: u64,
    pub bytes: u64,
    pub outcome: ExportOutcome,
    pub error: Option<String>,
    pub written: Vec<String>,
    pub dead_lettered: u64,
}

impl ExportReport {
    /// A few lines for people.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "export {} ({}, {}) -> {}: {}\n  selected {}",
            self.export, self.mode, self.run_id, self.destination, self.outcome, self.selected
        );
        if self.excluded_no_consent > 0 {
            out += &format!(", {} without consent", self.excluded_no_consent);
        }
        if self.cut_by_limit > 0 {
            out += &format!(", {} cut by the limit", self.cut_by_limit);
        }
        out += &format!(
            "; {} upserts, {} deletes; {} confirmed, {} bytes",
            self.upserts, self.deletes, self.confirmed, self.bytes
        );
        for w in &self.written {
            out += &format!("\n  wrote {w}");
        }
        if self.dead_lettered > 0 {
            out += &format!(
                "\n  {} rows in the dead-letter file; the next export sends them again",
                self.dead_lettered
            );
        }
        if let Some(e) = &self.error {
            out += &format!("\n  error: {e}");
        }
        out
    }
}

/// Run the export `name` on the project's current run.
pub async fn run_export(
    cfg: &ProjectConfig,
    name: &str,
    opts: &ExportOptions,
) -> Result<ExportReport> {
    let def = cfg.exports.get(name).ok_or_else(|| {
        Error::NotFound(format!(
            "no export named `{name}` in {} (exports: {})",
            cfg.path.display(),
            if cfg.exports.is_empty() {
                "none".to_string()
            } else {
                cfg.exports.keys().cloned().collect::<Vec<_>>().join(", ")
            }
        ))
    })?;
    let def = def.get_ref();
    // Two sends of one export at once would both read the same watermark and send twice.
    let _lock = match opts.dry_run {
        true => None,
        false => Some(
            crate::workspace::lock::acquire(
                &cfg.workspace_dir(),
                &format!("export {name}"),
                &opts.locking,
            )
            .await?,
        ),
    };
    let destination = def.destination().map_err(|e| Error::Export {
        name: name.to_string(),
        message: e.to_string(),
    })?;
    let workspace = cfg.workspace_dir();
    let (ctx, opened) = crate::session::open_project(cfg, None).await?;
    let started = chrono::Utc::now();
    let mut report = ExportReport {
        export: name.to_string(),
        run_id: opened.run_id.clone(),
        destination: destination.describe(),
        mode: def.mode.as_str().to_string(),
        started_at: started.to_rfc3339(),
        ..Default::default()
    };
    // A log Panorama keeps (e.g. the outbox before any journey ran) has nothing to send yet.
    if let Some(t) = def.table.as_ref().map(|t| t.get_ref().as_str()) {
        if crate::state::LOG_TABLES.contains(&t) && !opened.tables.iter().any(|x| x == t) {
            report.outcome = if opts.dry_run {
                ExportOutcome::DryRun
            } else {
                ExportOutcome::Succeeded
            };
            report.error = None;
            report.ended_at = chrono::Utc::now().to_rfc3339();
            if !opts.dry_run {
                log(&workspace, &report)?;
            }
            return Ok(report);
        }
    }
    // JSON destinations get each row's JSON through a temporary file; file destinations get
    // Arrow batches. A dry run keeps neither.
    let keep = match (&destination, opts.dry_run) {
        (_, true) => Keep::Nothing,
        (Destination::File(_), false) => Keep::Batches,
        (_, false) => Keep::Json(export_state_dir(&workspace, name)),
    };
    let mut plan = plan(cfg, &ctx, &opened, name, def, &mut report, keep).await?;
    report.upserts = plan.ops.iter().filter(|o| !o.change.is_delete()).count() as u64;
    report.deletes = plan.ops.iter().filter(|o| o.change.is_delete()).count() as u64;
    if opts.dry_run {
        report.outcome = ExportOutcome::DryRun;
        report.ended_at = chrono::Utc::now().to_rfc3339();
        return Ok(report);
    }
    let state_dir = export_state_dir(&workspace, name);
    let sent = match &destination {
        Destination::File(f) => file::send(f, &plan, &cfg.root).await,
        Destination::Postgres(p) => postgres::send(p, &plan).await,
        Destination::Webhook(w) => webhook::send(w, &plan, &state_dir, opts.quiet).await,
    };
    report.confirmed = sent.confirmed.len() as u64;
    report.bytes = sent.bytes;
    report.written = sent.written.clone();
    report.dead_lettered = sent.dead_lettered as u64;
    report.error = sent.error.clone();
    // Record what was confirmed even when the rest failed: that is what makes a retry exact.
    if !sent.confirmed.is_empty()
        || !export_state_dir(&workspace, name)
            .join("confirmed.parquet")
            .exists()
    {
        save_confirmed(&workspace, name, &mut plan, &sent.confirmed, &opened.run_id)?;
    }
    report.outcome = if sent.error.is_none() {
        ExportOutcome::Succeeded
    } else {
        ExportOutcome::Failed
    };
    report.ended_at = chrono::Utc::now().to_rfc3339();
    log(&workspace, &report)?;
    Ok(report)
}

fn export_state_dir(workspace: &Path, name: &str) -> PathBuf {
    crate::state::dir(workspace).join("exports").join(name)
}

/// The SQL of the rows an export selects, before consent, limit and columns.
fn base_sql(def: &ExportDef, tables: &[String]) -> Result<String, SendError> {
    if let Some(seg) = &def.segment {
        let seg = seg.get_ref();
        let from = if def.columns.is_some() {
            names::CUSTOMER_PROFILES
        } else {
            names::UNIFIED_CUSTOMERS
        };
        if !tables.iter().any(|t| t == from) || !tables.iter().any(|t| t == names::SEGMENT_MEMBERS)
        {
            return Err("the current run has no segments: add [segments] and run again".into());
        }
        return Ok(format!(
            "SELECT * FROM {from} WHERE customer_id IN \
             (SELECT customer_id FROM segment_members WHERE segment = {})",
            literal(seg)
        ));
    }
    if let Some(t) = &def.table {
        let t = t.get_ref();
        if !tables.iter().any(|x| x == t) {
            return Err(SendError(format!(
                "table `{t}` is not in the current run (tables: {})",
                tables.join(", ")
            )));
        }
        return Ok(format!("SELECT * FROM {}", ident(t)));
    }
    let q = def
        .query
        .as_ref()
        .map(|q| q.get_ref().clone())
        .unwrap_or_default();
    Ok(q.trim().trim_end_matches(';').to_string())
}

async fn count(ctx: &SessionContext, sql: &str) -> Result<u64> {
    crate::table_io::count(ctx, &format!("SELECT count(*) FROM ({sql})"), "export rows").await
}

/// What a plan keeps of the rows to send besides their keys and hashes.
enum Keep {
    /// Nothing (a dry run counts).
    Nothing,
    /// Arrow batches (file destinations).
    Batches,
    /// Each row's JSON, in a temporary file in this directory (webhooks, PostgreSQL).
    Json(PathBuf),
}

/// An [`Error::Export`] of export `name` from a message.
fn export_error(name: &str) -> impl Fn(String) -> Error + '_ {
    move |message| Error::Export {
        name: name.to_string(),
        message,
    }
}

/// Select the rows, apply consent and limit, and compare with the confirmed state.
async fn plan(
    cfg: &ProjectConfig,
    ctx: &SessionContext,
    opened: &crate::session::OpenedRun,
    name: &str,
    def: &ExportDef,
    report: &mut ExportReport,
    keep: Keep,
) -> Result<Plan> {
    let err = export_error(name);
    let (sql, key) = selection(cfg, ctx, opened, name, def, report).await?;
    let df = ctx.sql(&sql).await.map_err(|e| err(format!("{e}")))?;
    let row_schema = Arc::new(df.schema().as_arrow().clone());
    let workspace = cfg.workspace_dir();
    let t0 = std::time::Instant::now();
    let confirmed = load_confirmed(&workspace, name).await?;
    tracing::info!(
        export = name,
        rows = confirmed.len(),
        seconds = t0.elapsed().as_secs_f64(),
        "confirmed state loaded"
    );
    let erased = crate::privacy_state::erased_customer_hashes(&workspace).await?;
    let mut json = match &keep {
        Keep::Json(dir) => RowJson::create(dir)?,
        _ => RowJson::none(),
    };
    let mut ops = Vec::new();
    let mut keys = HashSet::new();
    let mut dupes = 0;
    let mut batches = Vec::new();
    // Batch by batch, keeping only what is sent: at a million rows, holding every row's JSON
    // and batch took 1.6 GB for an export that found nothing to send.
    let mut stream = df.execute_stream().await.map_err(|e| err(format!("{e}")))?;
    use futures::StreamExt;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| err(format!("{e}")))?;
        let mut kept_rows = Vec::with_capacity(batch.num_rows());
        for r in rows_of(std::slice::from_ref(&batch), &key)? {
            if !keys.insert(r.key.clone()) {
                dupes += 1;
                kept_rows.push(false);
                continue;
            }
            let change = match confirmed.get(&r.key) {
                None => Some(Change::Entered),
                Some(c) if c.hash != r.hash => Some(Change::Changed),
                Some(_) if def.mode == ExportMode::Full => Some(Change::Changed),
                Some(_) => None,
            };
            kept_rows.push(change.is_some());
            if let Some(change) = change {
                ops.push(Op {
                    key: r.key,
                    customer_id: r.customer_id,
                    change,
                    json: json.push(&r.json)?,
                    hash: Some(r.hash),
                });
            }
        }
        if !matches!(keep, Keep::Batches) {
            continue;
        }
        if def.mode == ExportMode::Full {
            batches.push(batch);
        } else if kept_rows.iter().any(|k| *k) {
            let mask = arrow::array::BooleanArray::from(kept_rows);
            batches.push(arrow::compute::filter_record_batch(&batch, &mask)?);
        }
    }
    json.finish()?;
    tracing::info!(
        export = name,
        ops = ops.len(),
        json_bytes = json.bytes(),
        seconds = t0.elapsed().as_secs_f64(),
        "rows compared with the confirmed state"
    );
    if dupes > 0 {
        return Err(err(format!(
            "{dupes} rows share a key `{key}` with another row: a destination keyed by `{key}` would keep only one; choose a unique `key`"
        )));
    }
    ops.sort_by(|a, b| a.key.cmp(&b.key));
    ops.extend(departed(&confirmed, &keys, &erased));
    Ok(Plan {
        name: name.to_string(),
        key,
        mode: def.mode,
        batches,
        ops,
        json,
        keys,
        schema: row_schema,
        confirmed,
    })
}

/// The query of the rows to send and their key column: the export's rows, checked for the key
/// and the named columns, less customers whose consent does not allow the purpose, cut to the
/// limit, projected to the columns. Counts go into `report`.
async fn selection(
    cfg: &ProjectConfig,
    ctx: &SessionContext,
    opened: &crate::session::OpenedRun,
    name: &str,
    def: &ExportDef,
    report: &mut ExportReport,
) -> Result<(String, String)> {
    let err = export_error(name);
    let base = base_sql(def, &opened.tables).map_err(|e| err(e.0))?;
    let schema = ctx
        .sql(&base)
        .await
        .map_err(|e| err(format!("{e}")))?
        .schema()
        .as_arrow()
        .clone();
    let has = |c: &str| schema.fields().iter().any(|f| f.name() == c);
    let all_columns = schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let key = def.key();
    if !has(&key) {
        return Err(err(format!(
            "the rows have no key column `{key}` (columns: {all_columns}); set `key`"
        )));
    }
    if let Some(cols) = &def.columns {
        for c in cols.get_ref() {
            if !has(c) {
                return Err(err(format!(
                    "columns: no column `{c}` in the rows (columns: {all_columns})"
                )));
            }
        }
    }
    let t0 = std::time::Instant::now();
    report.selected = count(ctx, &base).await?;
    tracing::info!(
        export = name,
        seconds = t0.elapsed().as_secs_f64(),
        "counted the selection"
    );
    let mut sql = base;
    if let Some(purpose) = &def.purpose {
        if !has("customer_id") {
            return Err(err(
                "`purpose` checks consent per customer, but the rows have no customer_id column"
                    .into(),
            ));
        }
        let cond = crate::privacy_state::allowed_condition(
            cfg,
            "b.customer_id",
            purpose.get_ref(),
            def.channel.as_ref().map(|c| c.get_ref().as_str()),
            &opened.tables,
        );
        sql = format!("SELECT * FROM ({sql}) b WHERE {cond}");
        let kept = count(ctx, &sql).await?;
        report.excluded_no_consent = report.selected.saturating_sub(kept);
        if report.excluded_no_consent > 0 {
            tracing::warn!(
                "export {name}: {} of {} customers left out: their consent does not allow purpose {:?}{}",
                report.excluded_no_consent,
                report.selected,
                purpose.get_ref(),
                def.channel
                    .as_ref()
                    .map(|c| format!(" on channel {:?}", c.get_ref()))
                    .unwrap_or_default()
            );
        }
    }
    let kept = report.selected.saturating_sub(report.excluded_no_consent);
    if let Some(limit) = def.limit() {
        if kept > limit {
            report.cut_by_limit = kept - limit;
            let order = def
                .order_by
                .as_ref()
                .map(|o| o.get_ref().clone())
                .unwrap_or_else(|| ident(&key));
            sql = format!("SELECT * FROM ({sql}) ORDER BY {order} LIMIT {limit}");
            tracing::warn!(
                "export {name}: {kept} rows selected, sending the first {limit} by {order} (limit); {} left out",
                report.cut_by_limit
            );
        }
    }
    let projection = match &def.columns {
        Some(cols) => {
            let mut cols: Vec<String> = cols.get_ref().clone();
            if !cols.contains(&key) {
                cols.insert(0, key.clone());
            }
            cols.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ")
        }
        None => "*".into(),
    };
    // No ORDER BY: sorting a million rows cost more than the rest; operations are sorted by
    // key below, which is what makes webhook batches (and their idempotency keys) repeatable.
    sql = format!("SELECT {projection} FROM ({sql})");
    Ok((sql, key))
}

/// Rows the destination has (confirmed) that the selection no longer holds, in key order:
/// erased customers' rows as `Erased`, the others as `Left`.
fn departed(
    confirmed: &HashMap<String, ConfirmedRow>,
    keys: &HashSet<String>,
    erased: &HashSet<String>,
) -> Vec<Op> {
    let mut left: Vec<(&String, &ConfirmedRow)> = confirmed
        .iter()
        .filter(|(k, _)| !keys.contains(*k))
        .collect();
    left.sort_by(|a, b| a.0.cmp(b.0));
    left.into_iter()
        .map(|(k, c)| {
            let erased_now = c
                .customer_id
                .as_deref()
                .is_some_and(|id| erased.contains(&crate::privacy_state::hash_identifier(id)));
            Op {
                key: k.clone(),
                customer_id: c.customer_id.clone(),
                change: if erased_now {
                    Change::Erased
                } else {
                    Change::Left
                },
                json: None,
                hash: None,
            }
        })
        .collect()
}

struct Row {
    key: String,
    customer_id: Option<String>,
    json: String,
    hash: String,
}

/// Each row as a JSON object (nulls explicit) and a hash of it.
fn rows_of(batches: &[RecordBatch], key: &str) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for b in batches {
        let mut buf = Vec::new();
        {
            let mut w = arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow::json::writer::LineDelimited>(&mut buf);
            w.write(b)?;
            w.finish()?;
        }
        let text = String::from_utf8(buf).map_err(|e| Error::Internal(e.to_string()))?;
        let keys = string_column(b, key)?;
        let ids = b
            .schema()
            .index_of("customer_id")
            .ok()
            .map(|_| string_column(b, "customer_id"))
            .transpose()?;
        for (i, line) in text.lines().enumerate() {
            let hash = hex(&sha2::Sha256::digest(line.as_bytes())[..16]);
            rows.push(Row {
                key: if keys.is_null(i) {
                    String::new()
                } else {
                    keys.value(i).to_string()
                },
                customer_id: ids
                    .as_ref()
                    .filter(|a| !a.is_null(i))
                    .map(|a| a.value(i).to_string()),
                json: line.to_string(),
                hash,
            });
        }
    }
    Ok(rows)
}

struct ConfirmedRow {
    customer_id: Option<String>,
    hash: String,
}

/// A context with the export's confirmed state registered as `confirmed`, if it has one.
pub(crate) async fn confirmed_context(
    workspace: &Path,
    name: &str,
) -> Result<Option<SessionContext>> {
    let path = export_state_dir(workspace, name).join("confirmed.parquet");
    if !path.exists() {
        return Ok(None);
    }
    let ctx = crate::session::new_context();
    ctx.register_parquet(
        "confirmed",
        path.to_string_lossy().as_ref(),
        datafusion::prelude::ParquetReadOptions::default(),
    )
    .await?;
    Ok(Some(ctx))
}

async fn load_confirmed(workspace: &Path, name: &str) -> Result<HashMap<String, ConfirmedRow>> {
    let mut out = HashMap::new();
    let Some(ctx) = confirmed_context(workspace, name).await? else {
        return Ok(out);
    };
    let batches = ctx.table("confirmed").await?.collect().await?;
    for b in &batches {
        let keys = string_column(b, "key")?;
        let ids = string_column(b, "customer_id")?;
        let hashes = string_column(b, "row_hash")?;
        for i in 0..b.num_rows() {
            out.insert(
                keys.value(i).to_string(),
                ConfirmedRow {
                    customer_id: (!ids.is_null(i)).then(|| ids.value(i).to_string()),
                    hash: hashes.value(i).to_string(),
                },
            );
        }
    }
    Ok(out)
}

/// The confirmed state after applying the confirmed operations.
fn save_confirmed(
    workspace: &Path,
    name: &str,
    plan: &mut Plan,
    confirmed_ops: &[usize],
    run_id: &str,
) -> Result<()> {
    let mut state = std::mem::take(&mut plan.confirmed);
    for &i in confirmed_ops {
        let op = &plan.ops[i];
        if op.change.is_delete() {
            state.remove(&op.key);
        } else {
            state.insert(
                op.key.clone(),
                ConfirmedRow {
                    customer_id: op.customer_id.clone(),
                    hash: op.hash.clone().unwrap_or_default(),
                },
            );
        }
    }
    let state: BTreeMap<String, ConfirmedRow> = state.into_iter().collect();
    let now = chrono::Utc::now().to_rfc3339();
    let n = state.len();
    let batch = crate::state::batch(vec![
        (
            "key",
            Arc::new(StringArray::from_iter_values(state.keys())) as ArrayRef,
        ),
        (
            "customer_id",
            Arc::new(StringArray::from(
                state
                    .values()
                    .map(|c| c.customer_id.clone())
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "row_hash",
            Arc::new(StringArray::from_iter_values(
                state.values().map(|c| c.hash.clone()).collect::<Vec<_>>(),
            )),
        ),
        ("run_id", Arc::new(StringArray::from(vec![run_id; n]))),
        (
            "confirmed_at",
            Arc::new(StringArray::from(vec![now.as_str(); n])),
        ),
    ])?;
    crate::state::replace(
        &export_state_dir(workspace, name).join("confirmed.parquet"),
        &batch,
    )
}

/// Append the report to `export_log`.
fn log(workspace: &Path, r: &ExportReport) -> Result<()> {
    let s = |v: &str| Arc::new(StringArray::from(vec![v])) as ArrayRef;
    let n = |v: u64| Arc::new(UInt64Array::from(vec![v])) as ArrayRef;
    let batch = crate::state::batch(vec![
        ("export", s(&r.export)),
        ("run_id", s(&r.run_id)),
        ("started_at", s(&r.started_at)),
        ("ended_at", s(&r.ended_at)),
        ("mode", s(&r.mode)),
        ("destination", s(&r.destination)),
        ("selected", n(r.selected)),
        ("excluded_no_consent", n(r.excluded_no_consent)),
        ("cut_by_limit", n(r.cut_by_limit)),
        ("upserts", n(r.upserts)),
        ("deletes", n(r.deletes)),
        ("confirmed", n(r.confirmed)),
        ("dead_lettered", n(r.dead_lettered)),
        ("bytes", n(r.bytes)),
        ("outcome", s(r.outcome.as_str())),
        (
            "error",
            Arc::new(StringArray::from(vec![r.error.clone()])) as ArrayRef,
        ),
    ])?;
    crate::state::append(workspace, names::EXPORT_LOG, &batch)?;
    Ok(())
}

/// Keys of the plan's operations by index, for destinations that send rows from batches.
pub(crate) fn ops_by_key(plan: &Plan) -> HashMap<&str, usize> {
    plan.ops
        .iter()
        .enumerate()
        .map(|(i, o)| (o.key.as_str(), i))
        .collect()
}

/// `batches` restricted to the rows whose key is in `keep`.
pub(crate) fn filter_rows(
    batches: &[RecordBatch],
    key: &str,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for b in batches {
        let keys = string_column(b, key)?;
        let mask: arrow::array::BooleanArray = (0..b.num_rows())
            .map(|i| Some(!keys.is_null(i) && keep(keys.value(i))))
            .collect();
        let f = arrow::compute::filter_record_batch(b, &mask)?;
        if f.num_rows() > 0 {
            out.push(f);
        }
    }
    Ok(out)
}

/// Check that `ops` is only about rows the state allows; used by tests of the planner.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_hash_their_json_and_key() {
        let batch = crate::state::batch(vec![
            (
                "customer_id",
                Arc::new(StringArray::from(vec!["C1", "C2"])) as ArrayRef,
            ),
            (
                "email",
                Arc::new(StringArray::from(vec![Some("a@x.com"), None])) as ArrayRef,
            ),
        ])
        .unwrap();
        let rows = rows_of(&[batch], "customer_id").unwrap();
        assert_eq!(rows[0].json, r#"{"customer_id":"C1","email":"a@x.com"}"#);
        assert_eq!(rows[1].json, r#"{"customer_id":"C2","email":null}"#);
        assert_eq!(rows[1].customer_id.as_deref(), Some("C2"));
        assert_ne!(rows[0].hash, rows[1].hash);
        assert_eq!(rows[0].hash.len(), 32);
    }
}
