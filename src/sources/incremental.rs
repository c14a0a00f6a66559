//! `refresh = "incremental"`: a file source kept as a full snapshot plus increments of upserts
//! and deletes, as change-data-capture tools and lake exports write them:
//!
//! ```text
//! <location>/full/<files>
//! <location>/incremental/YYYY/MM/DD/HH/upserts/<files>   rows, as in full/
//! <location>/incremental/YYYY/MM/DD/HH/deletes/<files>   at least the primary key columns
//! ```
//!
//! A run loads the state they add up to: for each primary key the row of the latest
//! increment; a key deleted in an increment is gone unless a later increment upserts it again
//! (a delete and an upsert in the same increment: the delete wins). Each increment is shaped
//! and checked like a full source (a key twice in one increment is a reject).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow::datatypes::SchemaRef;
use arrow::util::display::{ArrayFormatter, FormatOptions};

use super::{BatchSink, RawChunk, Reject, SourceReport};
use crate::config::{ProjectConfig, SourceConfig, SourceFormat};
use crate::error::{Error, Result};

/// One increment folder.
#[derive(Debug, Clone)]
pub struct Increment {
    /// `YYYY-MM-DDTHH`, from the folder names.
    pub stamp: String,
    pub upserts: Option<PathBuf>,
    pub deletes: Option<PathBuf>,
}

/// The snapshot folder and the increments under `base`, oldest first.
pub fn layout(base: &Path) -> std::result::Result<(PathBuf, Vec<Increment>), super::ReadError> {
    let full = base.join("full");
    if !full.is_dir() {
        return Err(super::ReadError(format!(
            "an incremental source needs {}/ holding the full snapshot (and incremental/YYYY/MM/DD/HH/{{upserts,deletes}}/ for changes)",
            full.display()
        )));
    }
    let mut increments = Vec::new();
    let root = base.join("incremental");
    if root.is_dir() {
        // Four levels of zero-padded numbers; anything else is a mistake worth naming.
        let mut stack = vec![(root.clone(), Vec::<String>::new())];
        while let Some((dir, parts)) = stack.pop() {
            if parts.len() == 4 {
                let sub = |n: &str| Some(dir.join(n)).filter(|p| p.is_dir());
                let (upserts, deletes) = (sub("upserts"), sub("deletes"));
                if upserts.is_none() && deletes.is_none() {
                    return Err(super::ReadError(format!(
                        "{} has neither upserts/ nor deletes/",
                        dir.display()
                    )));
                }
                increments.push(Increment {
                    stamp: format!("{}-{}-{}T{}", parts[0], parts[1], parts[2], parts[3]),
                    upserts,
                    deletes,
                });
                continue;
            }
            let width = if parts.is_empty() { 4 } else { 2 };
            let rd = std::fs::read_dir(&dir)
                .map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
            for entry in rd {
                let entry = entry.map_err(|e| e.to_string())?;
                let name = entry.file_name().to_string_lossy().to_string();
                if name.starts_with('.') {
                    continue;
                }
                if !entry.path().is_dir()
                    || name.len() != width
                    || !name.chars().all(|c| c.is_ascii_digit())
                {
                    return Err(super::ReadError(format!(
                        "{}: increments are folders incremental/YYYY/MM/DD/HH/ (found {name})",
                        dir.display()
                    )));
                }
                let mut p = parts.clone();
                p.push(name);
                stack.push((entry.path(), p));
            }
        }
    }
    increments.sort_by(|a, b| a.stamp.cmp(&b.stamp));
    Ok((full, increments))
}

/// Collects one generation's shaped batches.
#[derive(Default)]
struct Collect {
    schema: Option<SchemaRef>,
    batches: Vec<RecordBatch>,
}

impl BatchSink for Collect {
    fn start(&mut self, schema: SchemaRef) -> Result<()> {
        self.schema = Some(schema);
        Ok(())
    }
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.batches.push(batch.clone());
        Ok(())
    }
}

fn key_of(
    formatters: &[ArrayFormatter],
    columns: &[&ArrayRef],
    row: usize,
    key: &mut String,
) -> bool {
    use std::fmt::Write;
    key.clear();
    for (j, f) in formatters.iter().enumerate() {
        if columns[j].is_null(row) {
            return false;
        }
        if j > 0 {
            key.push('\u{1f}');
        }
        let _ = write!(key, "{}", f.value(row));
    }
    true
}

/// Load an incremental source into `sink`: the state its snapshot and increments add up to.
pub fn load(
    cfg: &ProjectConfig,
    name: &str,
    source: &SourceConfig,
    runtime: &tokio::runtime::Handle,
    sink: &mut dyn BatchSink,
    on_rows: &dyn Fn(u64),
) -> Result<(SourceReport, Vec<Reject>)> {
    let started = std::time::Instant::now();
    let (location, base) = local_base(cfg, name, source)?;
    let (full, increments) = layout(&base).map_err(|m| Error::source(name, &location, m))?;

    // Generation 0 is the snapshot, then each increment's upserts.
    let mut generations: Vec<(String, PathBuf)> = vec![("full".into(), full)];
    for inc in &increments {
        if let Some(u) = &inc.upserts {
            generations.push((inc.stamp.clone(), u.clone()));
        }
    }
    let Generations {
        loaded,
        rejects,
        rows_read,
        mut files,
        values_nulled,
        encodings,
        missing_columns,
    } = load_generations(cfg, name, source, runtime, &generations, on_rows)?;
    let schema = loaded[0]
        .schema
        .clone()
        .ok_or_else(|| Error::source(name, &location, "full/ produced no schema"))?;
    let pk: Vec<usize> = source
        .primary_key
        .get_ref()
        .columns()
        .iter()
        .map(|n| schema.index_of(n))
        .collect::<std::result::Result<_, _>>()?;

    let latest = latest_generations(&loaded, &pk)?;
    let deleted = deleted_keys(
        cfg,
        name,
        source,
        runtime,
        &schema,
        &increments,
        &generations,
    )?;
    files += increments.iter().filter(|i| i.deletes.is_some()).count();

    sink.start(schema.clone())?;
    let (rows_loaded, replaced, removed) =
        write_current_rows(&loaded, &pk, &latest, &deleted, sink)?;
    tracing::info!(
        source = name,
        increments = increments.len(),
        replaced,
        removed,
        rows_loaded,
        "incremental source consolidated"
    );
    let mut rejected: std::collections::HashSet<(&str, u64)> = std::collections::HashSet::new();
    for r in &rejects {
        rejected.insert((r.file.as_str(), r.row));
    }
    let report = SourceReport {
        name: name.to_string(),
        format: format!(
            "{} (incremental)",
            cfg.source_format(name, source)?.as_str()
        ),
        location: location.clone(),
        files,
        rows_read,
        rows_loaded,
        rows_rejected: rejected.len() as u64,
        rows_suppressed: 0,
        changed_since: None,
        values_nulled,
        columns: super::SourceColumn::list(&schema),
        new_columns: Vec::new(),
        missing_columns,
        encodings: encodings.into_iter().collect(),
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((report, rejects))
}

/// The source's location (variables expanded) and the local folder it names.
fn local_base(cfg: &ProjectConfig, name: &str, source: &SourceConfig) -> Result<(String, PathBuf)> {
    let raw = source.location.get_ref();
    let location = super::location::expand_env(raw).map_err(|m| Error::source(name, raw, m))?;
    if super::location::is_url(&location) {
        return Err(Error::source(
            name,
            &location,
            "refresh = \"incremental\" reads local folders only for now; sync the bucket to a local path",
        ));
    }
    let base = if Path::new(&location).is_absolute() {
        PathBuf::from(&location)
    } else {
        cfg.root.join(&location)
    };
    Ok((location, base))
}

/// Every generation shaped, with what their reports add up to.
struct Generations {
    loaded: Vec<Collect>,
    rejects: Vec<Reject>,
    rows_read: u64,
    files: usize,
    values_nulled: BTreeMap<String, super::NulledValues>,
    encodings: std::collections::BTreeSet<String>,
    missing_columns: Vec<String>,
}

/// Load and shape each generation (label, folder) like a full source; all must have the
/// snapshot's columns and types.
fn load_generations(
    cfg: &ProjectConfig,
    name: &str,
    source: &SourceConfig,
    runtime: &tokio::runtime::Handle,
    generations: &[(String, PathBuf)],
    on_rows: &dyn Fn(u64),
) -> Result<Generations> {
    let mut out = Generations {
        loaded: Vec::new(),
        rejects: Vec::new(),
        rows_read: 0,
        files: 0,
        values_nulled: BTreeMap::new(),
        encodings: std::collections::BTreeSet::new(),
        missing_columns: Vec::new(),
    };
    for (label, dir) in generations {
        let mut collect = Collect::default();
        let (report, r) = super::load_from(
            cfg,
            name,
            source,
            &dir.to_string_lossy(),
            runtime,
            &mut collect,
            on_rows,
        )?;
        if let (Some(first), Some(this)) = (
            out.loaded.first().and_then(|c| c.schema.clone()),
            collect.schema.as_ref(),
        ) {
            if first.fields() != this.fields() {
                return Err(Error::source(
                    name,
                    dir.display().to_string(),
                    format!(
                        "increment {label} has other columns or types than full/ ({} vs {})",
                        describe(this),
                        describe(&first)
                    ),
                ));
            }
        }
        out.rows_read += report.rows_read;
        out.files += report.files;
        super::NulledValues::merge_into(&mut out.values_nulled, report.values_nulled);
        for m in report.missing_columns {
            if !out.missing_columns.contains(&m) {
                out.missing_columns.push(m);
            }
        }
        out.encodings.extend(report.encodings);
        out.rejects.extend(r);
        out.loaded.push(collect);
    }
    Ok(out)
}

/// The latest generation of every key (the columns at `pk`).
fn latest_generations(loaded: &[Collect], pk: &[usize]) -> Result<HashMap<String, usize>> {
    let mut latest: HashMap<String, usize> = HashMap::new();
    let mut key = String::new();
    for (g, c) in loaded.iter().enumerate() {
        for b in &c.batches {
            let cols: Vec<&ArrayRef> = pk.iter().map(|&i| b.column(i)).collect();
            let fmts = formatters(&cols)?;
            for row in 0..b.num_rows() {
                if key_of(&fmts, &cols, row, &mut key) {
                    latest.insert(key.clone(), g);
                }
            }
        }
    }
    Ok(latest)
}

/// Deletes: the generation (index among upsert generations) at or after which a key is gone.
fn deleted_keys(
    cfg: &ProjectConfig,
    name: &str,
    source: &SourceConfig,
    runtime: &tokio::runtime::Handle,
    schema: &SchemaRef,
    increments: &[Increment],
    generations: &[(String, PathBuf)],
) -> Result<HashMap<String, usize>> {
    let pk_names = source.primary_key.get_ref().columns();
    let mut deleted: HashMap<String, usize> = HashMap::new();
    for inc in increments {
        let Some(dir) = &inc.deletes else { continue };
        // A delete counts against upserts of its own increment and earlier.
        let generation = generations
            .iter()
            .rposition(|(label, _)| *label <= inc.stamp || label == "full")
            .unwrap_or(0);
        read_deletes(
            cfg,
            name,
            source,
            schema,
            &pk_names,
            dir,
            runtime,
            &mut |k| {
                let e = deleted.entry(k).or_insert(generation);
                *e = (*e).max(generation);
            },
        )?;
    }
    Ok(deleted)
}

/// Write to `sink` the rows that are their key's latest and not deleted since. Returns (rows
/// written, rows replaced by a later generation, rows removed by a delete).
fn write_current_rows(
    loaded: &[Collect],
    pk: &[usize],
    latest: &HashMap<String, usize>,
    deleted: &HashMap<String, usize>,
    sink: &mut dyn BatchSink,
) -> Result<(u64, u64, u64)> {
    let mut key = String::new();
    let mut rows_loaded = 0u64;
    let (mut replaced, mut removed) = (0u64, 0u64);
    for (g, c) in loaded.iter().enumerate() {
        for b in &c.batches {
            let cols: Vec<&ArrayRef> = pk.iter().map(|&i| b.column(i)).collect();
            let fmts = formatters(&cols)?;
            let keep: BooleanArray = (0..b.num_rows())
                .map(|row| {
                    if !key_of(&fmts, &cols, row, &mut key) {
                        return Some(false);
                    }
                    let newest = latest.get(&key) == Some(&g);
                    let gone = deleted.get(&key).is_some_and(|d| *d >= g);
                    if !newest {
                        replaced += 1;
                    } else if gone {
                        removed += 1;
                    }
                    Some(newest && !gone)
                })
                .collect();
            let kept = arrow::compute::filter_record_batch(b, &keep)?;
            if kept.num_rows() > 0 {
                rows_loaded += kept.num_rows() as u64;
                sink.write(&kept)?;
            }
        }
    }
    Ok((rows_loaded, replaced, removed))
}

fn describe(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn formatters<'a>(cols: &'a [&'a ArrayRef]) -> Result<Vec<ArrayFormatter<'a>>> {
    Ok(cols
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default()))
        .collect::<std::result::Result<Vec<_>, _>>()?)
}

/// Keys of the delete files in `dir`: primary key columns under their names in the files
/// (before `rename`), cast to the loaded key types so `42` and `"42"` agree.
#[allow(clippy::too_many_arguments)]
fn read_deletes(
    cfg: &ProjectConfig,
    name: &str,
    source: &SourceConfig,
    schema: &SchemaRef,
    pk_names: &[String],
    dir: &Path,
    runtime: &tokio::runtime::Handle,
    on_key: &mut dyn FnMut(String),
) -> Result<()> {
    // Output name → name in the files.
    let file_name = |out: &str| -> String {
        source
            .rename
            .iter()
            .find(|(_, to)| to.get_ref() == out)
            .map(|(from, _)| from.clone())
            .unwrap_or_else(|| out.to_string())
    };
    let display = dir.display().to_string();
    let list = runtime
        .block_on(super::location::resolve_files(&display, &cfg.root))
        .map_err(|m| Error::source(name, &display, m))?;
    let mut ignored = Vec::new();
    let mut handle = |chunk: RawChunk| -> Result<()> {
        let mut cols: Vec<ArrayRef> = Vec::new();
        for out in pk_names {
            let col_name = file_name(out);
            let col = chunk.batch.column_by_name(&col_name).ok_or_else(|| {
                Error::source(
                    name,
                    chunk.file.as_ref(),
                    format!("delete file has no primary key column {col_name}"),
                )
            })?;
            let target = schema.field_with_name(out)?.data_type().clone();
            cols.push(arrow::compute::cast(col, &target).map_err(|e| {
                Error::source(
                    name,
                    chunk.file.as_ref(),
                    format!("key column {col_name}: {e}"),
                )
            })?);
        }
        let refs: Vec<&ArrayRef> = cols.iter().collect();
        let fmts = formatters(&refs)?;
        let mut key = String::new();
        for row in 0..chunk.batch.num_rows() {
            if key_of(&fmts, &refs, row, &mut key) {
                on_key(key.clone());
            }
        }
        Ok(())
    };
    let declared = source.declared_encoding();
    for file in &list {
        let data = runtime
            .block_on(file.read())
            .map_err(|m| Error::source(name, &file.display, m))?;
        let format = cfg.source_format(name, source)?;
        let text = match format {
            SourceFormat::Csv | SourceFormat::Json => crate::text_encoding::decode(data, declared),
            _ => crate::text_encoding::Decoded::utf8(data),
        };
        let data = text.data;
        match format {
            SourceFormat::Csv => {
                super::csv::read_csv(
                    name,
                    &file.display,
                    data,
                    text.encoding,
                    &source.csv,
                    None,
                    &mut ignored,
                    &mut handle,
                )?;
            }
            SourceFormat::Parquet => {
                super::parquet::read_parquet(name, &file.display, data, None, &mut handle)?;
            }
            SourceFormat::Json => {
                let parsed = super::json::parse_json(name, &file.display, &data, &mut ignored)?;
                let s = super::json::infer_schema(name, std::slice::from_ref(&parsed))?;
                super::json::decode(name, &s, parsed, &mut ignored, &mut handle)?;
            }
            other => {
                return Err(Error::source(
                    name,
                    &display,
                    format!(
                        "refresh = \"incremental\" is for CSV, Parquet and JSON files, not {}",
                        other.as_str()
                    ),
                ))
            }
        }
    }
    if !ignored.is_empty() {
        return Err(Error::source(
            name,
            &display,
            format!(
                "{} malformed rows in delete files (first: {})",
                ignored.len(),
                ignored[0].reason
            ),
        ));
    }
    Ok(())
}

/// The latest `updated_at_column` value of an incremental PostgreSQL source in a previous
/// run's copy (`dir`), in microseconds since the epoch; `None` when there is no copy.
pub async fn watermark(source: &SourceConfig, dir: &Path) -> Result<Option<i64>> {
    let Some(column) = source.updated_at_column.as_ref() else {
        return Ok(None);
    };
    if !dir.is_dir() {
        return Ok(None);
    }
    let column = source
        .rename
        .get(column.get_ref())
        .map(|r| r.get_ref().clone())
        .unwrap_or_else(|| column.get_ref().clone());
    let ctx = crate::engine::base_context();
    ctx.register_parquet(
        "previous",
        dir.to_string_lossy().as_ref(),
        datafusion::prelude::ParquetReadOptions::default(),
    )
    .await?;
    let schema = ctx.table("previous").await?.schema().as_arrow().clone();
    match schema
        .field_with_name(&column)
        .map(|f| f.data_type().clone())
    {
        Ok(arrow::datatypes::DataType::Timestamp(..)) => {}
        // Not a timestamp (any more): read in full; the read itself says what is wrong.
        _ => return Ok(None),
    }
    let b = ctx
        .sql(&format!(
            "SELECT CAST(arrow_cast(max({}), 'Timestamp(Microsecond, None)') AS BIGINT) FROM previous",
            crate::sql_text::ident(&column)
        ))
        .await?
        .collect()
        .await?;
    Ok(b.first().and_then(|b| {
        use arrow::array::AsArray;
        let c = b.column(0).as_primitive::<arrow::datatypes::Int64Type>();
        c.is_valid(0).then(|| c.value(0))
    }))
}

/// After an incremental PostgreSQL read into `run_dir`: keep the previous run's rows whose
/// primary key the read did not bring again. Returns how many.
pub async fn keep_unchanged_rows(
    source: &SourceConfig,
    name: &str,
    previous: &Path,
    run_dir: &Path,
) -> Result<u64> {
    let before = previous.join(name);
    let dir = run_dir.join("sources").join(name);
    if !before.is_dir() {
        return Ok(0);
    }
    let ctx = crate::engine::base_context();
    for (t, d) in [("previous", &before), ("changed", &dir)] {
        ctx.register_parquet(
            t,
            d.to_string_lossy().as_ref(),
            datafusion::prelude::ParquetReadOptions::default(),
        )
        .await?;
    }
    let on: Vec<String> = source
        .primary_key
        .get_ref()
        .columns()
        .iter()
        .map(|k| format!("p.{k} = c.{k}", k = crate::sql_text::ident(k)))
        .collect();
    crate::table_io::write_query(
        &ctx,
        &format!(
            "SELECT p.* FROM previous p LEFT ANTI JOIN changed c ON {}",
            on.join(" AND ")
        ),
        &dir,
        "part-previous",
    )
    .await
}
