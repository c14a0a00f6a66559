//! Data sources: reading CSV, Parquet, JSON, Delta and PostgreSQL into Arrow, and shaping them
//! into the tables declared in `panorama.toml`.
//!
//! Readers produce [`RawChunk`]s (a batch plus the file and row number of every row); the
//! [`shape::Shaper`] applies selection, renames, types and primary-key checks; whatever fails
//! becomes a [`Reject`].

pub mod committed;
pub mod csv;
pub mod database_rows;
pub mod delta;
pub mod drift;
pub mod iceberg;
pub mod iceberg_catalog;
pub mod incremental;
pub mod json;
pub mod location;
pub mod mysql;
pub mod parquet;
pub mod postgres;
pub mod rejects;
pub mod shape;
pub mod spreadsheet;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

pub use rejects::Reject;

use crate::config::{ProjectConfig, SourceFormat};
use crate::error::{Error, Result};
use crate::text_encoding as encoding;
use shape::Shaper;

crate::error::message_error!(
    /// Why a source's location, files, catalog or database cannot be read: a message naming
    /// what (the file, pattern, variable, table). The caller adds the source ([`Error::Source`]).
    ReadError
);

/// A batch as read, with where each row came from.
#[derive(Debug, Clone)]
pub struct RawChunk {
    pub file: Arc<str>,
    /// File line (text formats) or row ordinal (binary formats), one per batch row.
    pub rows: Vec<u64>,
    pub batch: RecordBatch,
}

/// Emit batches of a binary format with rows numbered from 1; a source without rows still
/// emits one empty chunk, so its schema is known.
pub fn emit_numbered(
    file: Arc<str>,
    schema: &SchemaRef,
    batches: impl Iterator<Item = Result<RecordBatch>>,
    emit: &mut dyn FnMut(RawChunk) -> Result<()>,
) -> Result<()> {
    let mut next_row = 1u64;
    for batch in batches {
        let batch = batch?;
        let n = batch.num_rows() as u64;
        emit(RawChunk {
            file: file.clone(),
            rows: (next_row..next_row + n).collect(),
            batch,
        })?;
        next_row += n;
    }
    if next_row == 1 {
        emit(RawChunk {
            file,
            rows: Vec::new(),
            batch: RecordBatch::new_empty(schema.clone()),
        })?;
    }
    Ok(())
}

pub use crate::workspace::reports::{NulledValues, SourceColumn, SourceReport};

/// Receives shaped batches of one source.
pub trait BatchSink {
    /// Called once, before any batch, with the shaped schema.
    fn start(&mut self, schema: SchemaRef) -> Result<()>;
    fn write(&mut self, batch: &RecordBatch) -> Result<()>;
}

/// Load one source into `sink`. Returns the report and every reject.
/// Blocking (CPU-bound parsing and, for Delta, a blocking engine): call from a blocking task.
/// `previous` is the previous run's `sources` directory (none for a full load): incremental
/// PostgreSQL sources read only what changed since it.
pub fn load_source(
    cfg: &ProjectConfig,
    name: &str,
    runtime: &tokio::runtime::Handle,
    sink: &mut dyn BatchSink,
    on_rows: &dyn Fn(u64),
    previous: Option<&std::path::Path>,
) -> Result<(SourceReport, Vec<Reject>)> {
    let source = cfg
        .sources
        .get(name)
        .ok_or_else(|| Error::NotFound(format!("no source named `{name}` in the config")))?;
    let incremental = *source.refresh.get_ref() == crate::config::Refresh::Incremental;
    if incremental && !cfg.source_format(name, source)?.is_database() {
        return incremental::load(cfg, name, source, runtime, sink, on_rows);
    }
    let since = match previous {
        Some(dir) if incremental => {
            runtime.block_on(incremental::watermark(source, &dir.join(name)))?
        }
        _ => None,
    };
    let (mut report, rejects) = load_from_since(
        cfg,
        name,
        source,
        source.location.get_ref(),
        runtime,
        sink,
        on_rows,
        since,
    )?;
    report.changed_since = since;
    Ok((report, rejects))
}

/// [`load_source`] from `raw_location` instead of the configured location (an incremental
/// source's snapshot or one increment).
pub(crate) fn load_from(
    cfg: &ProjectConfig,
    name: &str,
    source: &crate::config::SourceConfig,
    raw_location: &str,
    runtime: &tokio::runtime::Handle,
    sink: &mut dyn BatchSink,
    on_rows: &dyn Fn(u64),
) -> Result<(SourceReport, Vec<Reject>)> {
    load_from_since(
        cfg,
        name,
        source,
        raw_location,
        runtime,
        sink,
        on_rows,
        None,
    )
}

/// [`load_from`]; a PostgreSQL table only from `since` on (see `changed_since`).
#[allow(clippy::too_many_arguments)]
fn load_from_since(
    cfg: &ProjectConfig,
    name: &str,
    source: &crate::config::SourceConfig,
    raw_location: &str,
    runtime: &tokio::runtime::Handle,
    sink: &mut dyn BatchSink,
    on_rows: &dyn Fn(u64),
    since: Option<i64>,
) -> Result<(SourceReport, Vec<Reject>)> {
    let started = std::time::Instant::now();
    let format = cfg.source_format(name, source)?;
    let location =
        location::expand_env(raw_location).map_err(|m| Error::source(name, raw_location, m))?;
    let shown_location = location::redact(&location);

    let mut log = ReadLog::default();
    let mut shaper: Option<Shaper> = None;
    let mut rows_read = 0u64;
    let mut files = 0usize;

    // Every reader emits through this: build the shaper on the first chunk, then shape and
    // hand the result to the sink.
    let mut handle_chunk =
        |chunk: RawChunk,
         inferred: &dyn Fn(&RecordBatch) -> BTreeMap<String, crate::config::ColumnType>|
         -> Result<()> {
            if shaper.is_none() {
                let types = inferred(&chunk.batch);
                let s = Shaper::new(
                    cfg,
                    name,
                    source,
                    &chunk.file,
                    &chunk.batch.schema(),
                    &types,
                )?;
                sink.start(s.schema())?;
                shaper = Some(s);
            }
            let s = shaper.as_mut().expect("shaper was just built");
            let batch = s.shape(&chunk)?;
            if batch.num_rows() > 0 {
                sink.write(&batch)?;
            }
            on_rows(chunk.batch.num_rows() as u64);
            Ok(())
        };
    // A sink that has seen enough (`panorama doctor`'s sample) stops the reader: what was
    // read so far is the report.
    let mut emitted = 0u64;
    let mut counted = |chunk: RawChunk, infer: InferTypes| {
        emitted += chunk.batch.num_rows() as u64;
        handle_chunk(chunk, infer)
    };
    match read_raw(
        cfg,
        name,
        source,
        &location,
        runtime,
        since,
        &mut log,
        &mut counted,
    ) {
        Ok((read, file_count)) => {
            rows_read += read;
            files += file_count;
        }
        Err(Error::StopReading) => {
            rows_read += emitted;
            files += 1;
        }
        Err(e) => return Err(e),
    }

    let mut shaper =
        shaper.ok_or_else(|| Error::source(name, &shown_location, "source produced no schema"))?;
    let rows_loaded = shaper.rows_out;
    let columns = SourceColumn::list(&shaper.schema());
    let missing_columns = std::mem::take(&mut shaper.missing_columns);
    let values_nulled = shaper.values_nulled;
    let mut rejects = log.rejects;
    rejects.extend(shaper.rejects);
    let mut rejected_rows: std::collections::HashSet<(&str, u64)> =
        std::collections::HashSet::new();
    for r in &rejects {
        rejected_rows.insert((r.file.as_str(), r.row));
    }
    let report = SourceReport {
        name: name.to_string(),
        format: format.as_str().to_string(),
        location: shown_location,
        files,
        rows_read,
        rows_loaded,
        rows_rejected: rejected_rows.len() as u64,
        rows_suppressed: 0,
        changed_since: None,
        values_nulled,
        columns,
        new_columns: Vec::new(),
        missing_columns,
        encodings: log.encodings.into_iter().collect(),
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((report, rejects))
}

/// What reading a source noted besides its rows: rejected rows (broken CSV lines, invalid
/// JSON, bytes invalid in the encoding) and the encodings its text files were read as.
#[derive(Debug, Default)]
pub struct ReadLog {
    pub rejects: Vec<Reject>,
    /// [`encoding::Decoded::describe`] of each text file, distinct.
    pub encodings: std::collections::BTreeSet<String>,
}

/// A text file (CSV, JSON) read and transcoded to UTF-8 as the source's `encoding` says.
fn read_text(
    runtime: &tokio::runtime::Handle,
    name: &str,
    source: &crate::config::SourceConfig,
    file: &location::FileRef,
    log: &mut ReadLog,
) -> Result<encoding::Decoded> {
    let data = runtime
        .block_on(file.read())
        .map_err(|m| Error::source(name, &file.display, m))?;
    let decoded = encoding::decode(data, source.declared_encoding());
    log.encodings.insert(decoded.describe());
    Ok(decoded)
}

/// A text column's inferred types, given the first chunk (CSV only; other formats are typed).
pub type InferTypes<'a> = &'a dyn Fn(&RecordBatch) -> BTreeMap<String, crate::config::ColumnType>;

/// Read a source's rows as they are in the files or table, before shaping: every chunk goes to
/// `emit` with the type inference that applies to it. Rows rejected while reading (broken CSV
/// lines, invalid JSON) go to `log`, with the encodings text files were read as. Returns (rows
/// read, files read). `panorama run` shapes what this emits; `panorama init --from` and
/// `doctor` profile it.
#[allow(clippy::too_many_arguments)]
pub fn read_raw(
    cfg: &ProjectConfig,
    name: &str,
    source: &crate::config::SourceConfig,
    location: &str,
    runtime: &tokio::runtime::Handle,
    since: Option<i64>,
    log: &mut ReadLog,
    emit: &mut dyn FnMut(RawChunk, InferTypes) -> Result<()>,
) -> Result<(u64, usize)> {
    let format = cfg.source_format(name, source)?;
    let read = RawRead {
        cfg,
        name,
        source,
        location,
        shown_location: location::redact(location),
        runtime,
    };
    match format {
        SourceFormat::Csv => read.csv_files(log, emit),
        SourceFormat::Parquet => read.parquet_files(emit),
        SourceFormat::Json => read.json_files(log, emit),
        SourceFormat::Excel => read.spreadsheet_files(log, emit),
        SourceFormat::Iceberg => read.iceberg_table(emit),
        SourceFormat::Delta => read.delta_table(emit),
        SourceFormat::Events => read.event_log(log, emit),
        SourceFormat::Postgres | SourceFormat::Mysql => read.database_table(format, since, emit),
    }
}

/// Formats whose rows come typed: no inference applies.
fn no_inference(_: &RecordBatch) -> BTreeMap<String, crate::config::ColumnType> {
    BTreeMap::new()
}

/// One source being read by [`read_raw`]: where it is and how to name it in errors. Each
/// format's reader returns (rows read, files read).
struct RawRead<'a> {
    cfg: &'a ProjectConfig,
    name: &'a str,
    source: &'a crate::config::SourceConfig,
    location: &'a str,
    /// The location with credentials removed, as errors and row files show it.
    shown_location: String,
    runtime: &'a tokio::runtime::Handle,
}

impl RawRead<'_> {
    /// The files the location names (a path, a glob or a URL).
    fn resolve_files(&self) -> Result<Vec<location::FileRef>> {
        self.runtime
            .block_on(location::resolve_files(self.location, &self.cfg.root))
            .map_err(|m| Error::source(self.name, &self.shown_location, m))
    }

    /// A binary file's bytes (Parquet, spreadsheets).
    fn read_file(&self, file: &location::FileRef) -> Result<bytes::Bytes> {
        self.runtime
            .block_on(file.read())
            .map_err(|m| Error::source(self.name, &file.display, m))
    }

    fn csv_files(
        &self,
        log: &mut ReadLog,
        emit: &mut dyn FnMut(RawChunk, InferTypes) -> Result<()>,
    ) -> Result<(u64, usize)> {
        let (name, source) = (self.name, self.source);
        let mut rows_read = 0u64;
        let mut files = 0usize;
        let list = self.resolve_files()?;
        let sample_rows = source.csv.infer_rows;
        let infer = move |b: &RecordBatch| shape::infer_text_types(b, sample_rows);
        let mut header: Option<Vec<String>> = None;
        for file in &list {
            let text = read_text(self.runtime, name, source, file, log)?;
            let rejects = &mut log.rejects;
            let before = rejects.len();
            let h = csv::read_csv(
                name,
                &file.display,
                text.data,
                text.encoding,
                &source.csv,
                header.as_deref(),
                rejects,
                &mut |chunk| {
                    rows_read += chunk.batch.num_rows() as u64;
                    emit(chunk, &infer)
                },
            )?;
            // Structurally broken rows never reach the shaper; count them as read too.
            rows_read += (rejects.len() - before) as u64;
            header.get_or_insert(h);
            files += 1;
        }
        Ok((rows_read, files))
    }

    fn parquet_files(
        &self,
        emit: &mut dyn FnMut(RawChunk, InferTypes) -> Result<()>,
    ) -> Result<(u64, usize)> {
        let mut rows_read = 0u64;
        let mut files = 0usize;
        let list = self.resolve_files()?;
        let mut schema: Option<SchemaRef> = None;
        for file in &list {
            let data = self.read_file(file)?;
            let s = parquet::read_parquet(
                self.name,
                &file.display,
                data,
                schema.as_ref(),
                &mut |chunk| {
                    rows_read += chunk.batch.num_rows() as u64;
                    emit(chunk, &no_inference)
                },
            )?;
            schema.get_or_insert(s);
            files += 1;
        }
        Ok((rows_read, files))
    }

    fn json_files(
        &self,
        log: &mut ReadLog,
        emit: &mut dyn FnMut(RawChunk, InferTypes) -> Result<()>,
    ) -> Result<(u64, usize)> {
        let name = self.name;
        let mut rows_read = 0u64;
        let mut files = 0usize;
        let list = self.resolve_files()?;
        let mut parsed = Vec::new();
        for file in &list {
            let text = read_text(self.runtime, name, self.source, file, log)?;
            let rejects = &mut log.rejects;
            let before = rejects.len();
            let f = json::parse_json(name, &file.display, &text.data, rejects)?;
            rows_read += (rejects.len() - before) as u64;
            parsed.push(f);
            files += 1;
        }
        let schema = json::infer_schema(name, &parsed)?;
        let mut emitted = false;
        for f in parsed {
            rows_read += f.values.len() as u64;
            let mut chunks = Vec::new();
            json::decode(name, &schema, f, &mut log.rejects, &mut |c| {
                chunks.push(c);
                Ok(())
            })?;
            // Rows that failed to decode were already counted as read above.
            for c in chunks {
                emit(c, &no_inference)?;
                emitted = true;
            }
        }
        if !emitted {
            emit(
                RawChunk {
                    file: Arc::from(self.shown_location.as_str()),
                    rows: Vec::new(),
                    batch: RecordBatch::new_empty(schema.clone()),
                },
                &no_inference,
            )?;
        }
        Ok((rows_read, files))
    }

    fn spreadsheet_files(
        &self,
        log: &mut ReadLog,
        emit: &mut dyn FnMut(RawChunk, InferTypes) -> Result<()>,
    ) -> Result<(u64, usize)> {
        let source = self.source;
        let mut rows_read = 0u64;
        let mut files = 0usize;
        let list = self.resolve_files()?;
        let opts = spreadsheet::SheetOptions {
            sheet: source.sheet.as_ref().map(|s| s.get_ref().as_str()),
            header_row: source.header_row.as_ref().map(|h| *h.get_ref()),
        };
        // Columns declared `string` keep the text a cell shows (a postcode typed as a
        // number stays `1234`, not `1234.0`).
        let text_columns = |column: &str| {
            let out = source.rename.get(column).map_or(column, |r| r.get_ref());
            source
                .types
                .get(out)
                .is_some_and(|t| *t.get_ref() == crate::config::ColumnType::String)
        };
        let mut header: Option<Vec<String>> = None;
        for file in &list {
            let data = self.read_file(file)?;
            let before = log.rejects.len();
            let h = spreadsheet::read_spreadsheet(
                self.name,
                &file.display,
                data,
                &opts,
                &text_columns,
                header.as_deref(),
                &mut log.rejects,
                &mut |chunk| {
                    rows_read += chunk.batch.num_rows() as u64;
                    emit(chunk, &no_inference)
                },
            )?;
            // Rows with an error cell never reach the shaper; count them as read too.
            rows_read += (log.rejects.len() - before) as u64;
            header.get_or_insert(h);
            files += 1;
        }
        Ok((rows_read, files))
    }

    fn iceberg_table(
        &self,
        emit: &mut dyn FnMut(RawChunk, InferTypes) -> Result<()>,
    ) -> Result<(u64, usize)> {
        let mut rows_read = 0u64;
        let table = self.source.table.as_ref().map(|t| t.get_ref().as_str());
        iceberg::read_iceberg(
            self.name,
            self.location,
            table,
            &self.cfg.root,
            self.runtime,
            &mut |chunk| {
                rows_read += chunk.batch.num_rows() as u64;
                emit(chunk, &no_inference)
            },
        )?;
        Ok((rows_read, 1))
    }

    fn delta_table(
        &self,
        emit: &mut dyn FnMut(RawChunk, InferTypes) -> Result<()>,
    ) -> Result<(u64, usize)> {
        let mut rows_read = 0u64;
        delta::read_delta(self.name, self.location, &self.cfg.root, &mut |chunk| {
            rows_read += chunk.batch.num_rows() as u64;
            emit(chunk, &no_inference)
        })?;
        Ok((rows_read, 1))
    }

    fn event_log(
        &self,
        log: &mut ReadLog,
        emit: &mut dyn FnMut(RawChunk, InferTypes) -> Result<()>,
    ) -> Result<(u64, usize)> {
        let mut rows_read = 0u64;
        let dir = self.cfg.root.join(self.location);
        let collected = crate::event_log::read::read(&dir)
            .map_err(|e| Error::source(self.name, &self.shown_location, e))?;
        for b in collected.bad {
            rows_read += 1;
            log.rejects.push(Reject {
                source: self.name.to_string(),
                file: b.file,
                row: b.line,
                column: None,
                raw_value: None,
                reason: b.reason,
            });
        }
        emit_numbered(
            Arc::from(self.shown_location.as_str()),
            &crate::event_log::read::schema(),
            collected.batches.into_iter().map(Ok),
            &mut |chunk| {
                rows_read += chunk.batch.num_rows() as u64;
                emit(chunk, &no_inference)
            },
        )?;
        Ok((rows_read, collected.files))
    }

    /// A PostgreSQL or MySQL table; an incremental source reads only rows updated after
    /// `since`.
    fn database_table(
        &self,
        format: SourceFormat,
        since: Option<i64>,
        emit: &mut dyn FnMut(RawChunk, InferTypes) -> Result<()>,
    ) -> Result<(u64, usize)> {
        let (name, location, source) = (self.name, self.location, self.source);
        let mut rows_read = 0u64;
        let table = source
            .table
            .as_ref()
            .map(|t| t.get_ref().clone())
            .unwrap_or_default();
        let updated_at = match source.refresh.get_ref() {
            crate::config::Refresh::Incremental => source
                .updated_at_column
                .as_ref()
                .map(|c| (c.get_ref().as_str(), since)),
            _ => None,
        };
        let mut counted = |chunk: RawChunk| {
            rows_read += chunk.batch.num_rows() as u64;
            emit(chunk, &no_inference)
        };
        match format {
            SourceFormat::Mysql => self.runtime.block_on(mysql::read_mysql(
                name,
                location,
                &table,
                updated_at,
                &self.cfg.root,
                &mut counted,
            ))?,
            _ => self.runtime.block_on(postgres::read_postgres(
                name,
                location,
                &table,
                updated_at,
                &mut counted,
            ))?,
        };
        Ok((rows_read, 1))
    }
}
