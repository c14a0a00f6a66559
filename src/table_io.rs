//! Tables in and out of a run: a query streamed into `<dir>/<name>.parquet` (never the whole
//! result in memory), a written table registered back for the next step, batches registered
//! in memory (or, on a cluster context, as Parquet in its scratch directory), and a query's
//! rows collected with the step named in its error. Every stage writes its tables this way.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Schema;
use datafusion::datasource::MemTable;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::error::{Error, Result};

/// Where a context whose queries run on a cluster keeps tables it would otherwise hold in
/// memory (a cluster cannot be sent in-memory tables; it reads Parquet files).
#[derive(Debug, Clone)]
pub struct ScratchDir(pub std::path::PathBuf);

/// The scratch directory of a cluster context; `None` for a local one.
pub fn scratch_dir(ctx: &SessionContext) -> Option<std::path::PathBuf> {
    ctx.state()
        .config()
        .get_extension::<ScratchDir>()
        .map(|s| s.0.clone())
}

/// Register `batches` as the table `name`: in memory, or on a cluster context as a Parquet
/// file in its scratch directory.
pub fn register_batches(
    ctx: &SessionContext,
    name: &str,
    schema: arrow::datatypes::SchemaRef,
    batches: Vec<arrow::array::RecordBatch>,
) -> Result<()> {
    let _ = ctx.deregister_table(name);
    let Some(dir) = scratch_dir(ctx) else {
        ctx.register_table(name, Arc::new(MemTable::try_new(schema, vec![batches])?))?;
        return Ok(());
    };
    use datafusion::datasource::listing::{
        ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
    let path = dir.join(format!("{name}.parquet"));
    crate::workspace::write_parquet(&path, schema.clone(), &batches)?;
    let url = ListingTableUrl::parse(path.to_string_lossy().as_ref())?;
    let options = ListingOptions::new(Arc::new(
        datafusion::datasource::file_format::parquet::ParquetFormat::default(),
    ))
    .with_file_extension(".parquet");
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    ctx.register_table(name, Arc::new(ListingTable::try_new(config)?))?;
    Ok(())
}

/// A query's rows; errors name the step `what`.
pub async fn collect(ctx: &SessionContext, sql: &str, what: &str) -> Result<Vec<RecordBatch>> {
    let started = std::time::Instant::now();
    tracing::debug!(what, sql, "query step");
    let out = collect_inner(ctx, sql, what).await;
    if let Ok(b) = &out {
        tracing::info!(
            what,
            rows = rows(b),
            seconds = started.elapsed().as_secs_f64(),
            "query step done"
        );
    }
    out
}

async fn collect_inner(ctx: &SessionContext, sql: &str, what: &str) -> Result<Vec<RecordBatch>> {
    let df = ctx.sql(sql).await.map_err(|e| Error::query(what, e))?;
    df.collect().await.map_err(|e| Error::query(what, e))
}

/// A query's rows as one batch, with the query's schema even when it returns no row.
pub async fn one_batch(ctx: &SessionContext, sql: &str, what: &str) -> Result<RecordBatch> {
    let df = ctx.sql(sql).await.map_err(|e| Error::query(what, e))?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await.map_err(|e| Error::query(what, e))?;
    Ok(arrow::compute::concat_batches(&schema, &batches)?)
}

pub fn register(
    ctx: &SessionContext,
    name: &str,
    batches: Vec<RecordBatch>,
    schema: Arc<Schema>,
) -> Result<()> {
    register_batches(ctx, name, schema, batches)
}

/// Register `batches` as table `name`, conformed to the schema of table `like` (whose rows they
/// are: a query over it may type a column more loosely).
pub async fn register_like(
    ctx: &SessionContext,
    name: &str,
    batches: &[RecordBatch],
    like: &str,
) -> Result<()> {
    let schema: Arc<Schema> = Arc::new(ctx.table(like).await?.schema().as_arrow().clone());
    let batches = batches
        .iter()
        .map(|b| conform(b, &schema))
        .collect::<Result<Vec<_>>>()?;
    register(ctx, name, batches, schema)
}

/// The single integer a query like `SELECT count(*) ...` returns (0 when it returns no row).
pub async fn count(ctx: &SessionContext, sql: &str, what: &str) -> Result<u64> {
    let b = collect(ctx, sql, what).await?;
    Ok(b.first().filter(|b| b.num_rows() > 0).map_or(0, |b| {
        b.column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0) as u64
    }))
}

/// Register a table this stage wrote, reading it back from Parquet: DataFusion then scans it
/// in parallel, in normal-sized batches (one giant in-memory batch made later stages slow
/// and memory-hungry).
pub async fn register_written(ctx: &SessionContext, dir: &Path, name: &str) -> Result<()> {
    let _ = ctx.deregister_table(name);
    let path = dir.join(format!("{name}.parquet"));
    ctx.register_parquet(
        name,
        path.to_string_lossy().as_ref(),
        ParquetReadOptions::default(),
    )
    .await?;
    Ok(())
}

/// Hold table `name`, written by this stage to `dir`, in memory instead of reading its
/// Parquet file on every scan, when its uncompressed size (from the file's metadata) is at
/// most `1/share` of the memory budget; `Ok(false)` (still on disk) otherwise, and on a
/// cluster context, whose executors read files. The memory is outside DataFusion's pool, so
/// the share keeps it a small part of the machine; [`register_written`] lets it go.
pub async fn hold_in_memory(
    ctx: &SessionContext,
    dir: &Path,
    name: &str,
    share: usize,
) -> Result<bool> {
    let path = dir.join(format!("{name}.parquet"));
    let Some(limit) = crate::query_limits::memory_limit() else {
        return Ok(false);
    };
    if scratch_dir(ctx).is_some() {
        return Ok(false);
    }
    let file = std::fs::File::open(&path).map_err(|e| Error::io("cannot open", &path, e))?;
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(file)?;
    let bytes: i64 = reader
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.total_byte_size())
        .sum();
    if bytes.max(0) as usize > limit / share.max(1) {
        return Ok(false);
    }
    let df = ctx.table(name).await?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    // One partition per core, so scans of the held table run in parallel as the file's do.
    let parts = ctx.state().config().target_partitions().max(1);
    let mut partitions: Vec<Vec<RecordBatch>> = vec![Vec::new(); parts];
    for (i, b) in batches.into_iter().enumerate() {
        partitions[i % parts].push(b);
    }
    let _ = ctx.deregister_table(name);
    ctx.register_table(name, Arc::new(MemTable::try_new(schema, partitions)?))?;
    Ok(true)
}

/// Cast a batch's columns, by position, to `schema`'s types.
pub fn conform(b: &RecordBatch, schema: &Arc<Schema>) -> Result<RecordBatch> {
    let cols = b
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), cols)?)
}

pub fn rows(batches: &[RecordBatch]) -> u64 {
    batches.iter().map(|b| b.num_rows() as u64).sum()
}

/// Run `sql` and stream its result into `<dir>/<name>.parquet`, never holding the whole
/// result in memory; returns the rows written.
pub async fn write_query(ctx: &SessionContext, sql: &str, dir: &Path, name: &str) -> Result<u64> {
    write_queries(ctx, &[sql.to_string()], dir, name).await
}

/// Like [`write_query`] for several queries of one schema, appended in order (a big
/// aggregation run chunk by chunk).
pub async fn write_queries(
    ctx: &SessionContext,
    sqls: &[String],
    dir: &Path,
    name: &str,
) -> Result<u64> {
    write_queries_into(ctx, sqls, dir, &[(name, &|_: &str| true)]).await
}

/// Which columns of a query's result a table takes.
pub type ColumnFilter<'a> = &'a (dyn Fn(&str) -> bool + Sync);

/// Like [`write_queries`], splitting the result's columns between tables in one pass: each
/// `(name, takes)` gets the columns `takes` accepts, in order (`unified_customers` and its
/// provenance come from one merge). Returns the rows written.
pub async fn write_queries_into(
    ctx: &SessionContext,
    sqls: &[String],
    dir: &Path,
    tables: &[(&str, ColumnFilter<'_>)],
) -> Result<u64> {
    use futures::StreamExt;
    let started = std::time::Instant::now();
    let name = tables.first().map_or("", |t| t.0);
    let err = |e: datafusion::error::DataFusionError| Error::query(name, e);
    let mut writers: Vec<(
        Vec<usize>,
        datafusion::parquet::arrow::ArrowWriter<std::fs::File>,
    )> = Vec::new();
    let mut schema = None;
    let mut rows = 0u64;
    for sql in sqls {
        tracing::debug!(name, sql, "query step");
        let df = ctx.sql(sql).await.map_err(err)?;
        let mut stream = df.execute_stream().await.map_err(err)?;
        if schema.is_none() {
            let full = stream.schema();
            for (table, takes) in tables {
                let columns: Vec<usize> = full
                    .fields()
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| takes(f.name()))
                    .map(|(i, _)| i)
                    .collect();
                let path = dir.join(format!("{table}.parquet"));
                let file = std::fs::File::create(&path)
                    .map_err(|e| Error::io("cannot create", &path, e))?;
                let writer = datafusion::parquet::arrow::ArrowWriter::try_new(
                    file,
                    Arc::new(full.project(&columns)?),
                    Some(crate::workspace::writer_properties()),
                )?;
                writers.push((columns, writer));
            }
            schema = Some(full);
        }
        let schema = schema.clone().expect("set with the writers");
        while let Some(batch) = stream.next().await {
            let mut batch = batch.map_err(err)?;
            // Later queries may type a column differently (a NULL literal, Parquet read-back).
            if batch.schema().fields() != schema.fields() {
                batch = conform(&batch, &schema)?;
            }
            rows += batch.num_rows() as u64;
            for (columns, w) in writers.iter_mut() {
                w.write(&batch.project(columns)?)?;
            }
        }
    }
    for (_, w) in writers {
        w.close()?;
    }
    tracing::info!(
        what = name,
        rows,
        seconds = started.elapsed().as_secs_f64(),
        "query step done"
    );
    Ok(rows)
}

/// Write batches as `<dir>/<name>.parquet`.
pub fn write_table(
    dir: &Path,
    name: &str,
    schema: &Arc<Schema>,
    batches: &[RecordBatch],
) -> Result<()> {
    crate::workspace::write_parquet(
        &dir.join(format!("{name}.parquet")),
        schema.clone(),
        batches,
    )
}
