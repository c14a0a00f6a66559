//! The DataFusion `SessionContext` every Panorama command queries a run through: our UDFs and
//! the stages' table functions registered, and the tables of one run (the current one by
//! default) registered by name.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder, UInt64Builder};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::config::ProjectConfig;
use crate::error::{Error, Result};
use crate::table_catalog::names;
use crate::workspace::{Manifest, Workspace};

/// A context with Panorama's UDFs and table functions and no tables, reading only registered
/// tables.
pub fn base_context() -> SessionContext {
    let ctx = crate::engine::base_context();
    register_functions(&ctx);
    ctx
}

/// A context with Panorama's functions and no tables; `SELECT * FROM 'file.parquet'` works too.
pub fn new_context() -> SessionContext {
    // Handy for looking at exports and inputs from the CLI; never on a server.
    base_context().enable_url_table()
}

/// Register the stages' table functions (`connected_components`, `timeline`, `bgnbd_fit`,
/// `funnel`, `attribution`, ...) in `ctx`.
pub fn register_functions(ctx: &SessionContext) {
    ctx.register_udtf(
        "connected_components",
        Arc::new(crate::unify::table_functions::ConnectedComponents),
    );
    ctx.register_udtf(
        "timeline",
        Arc::new(crate::unify::table_functions::Timeline),
    );
    ctx.register_udtf(
        "segment_overlap",
        Arc::new(crate::unify::table_functions::SegmentOverlap),
    );
    ctx.register_udtf(
        "bgnbd_fit",
        Arc::new(crate::predictions::table_functions::BgNbdFit),
    );
    ctx.register_udtf(
        "gamma_gamma_fit",
        Arc::new(crate::predictions::table_functions::GammaGammaFit),
    );
    crate::analytics::journey_analytics::register(ctx);
    ctx.register_udtf(
        "attribution",
        Arc::new(crate::analytics::attribution::AttributionFunction),
    );
}

pub use crate::engine::register_as_of;
pub use crate::query_limits::{memory_limit, parse_size, set_memory_limit};
pub use crate::run_context::{cluster_context, format_as_of, register_sources, stage_context};
pub use crate::table_io::{register_batches, scratch_dir, ScratchDir};

/// Which run a context shows.
#[derive(Debug, Clone)]
pub struct OpenedRun {
    pub run_id: String,
    pub tables: Vec<String>,
    /// The run's real-time matcher, behind `match_record(...)`, built on first use.
    pub matcher: Arc<crate::unify::realtime::MatcherCell>,
}

impl OpenedRun {
    /// An error unless the run has `table`, which only the unify stage writes.
    pub fn require_unified(&self, table: &str) -> Result<()> {
        self.require_table(table, "[unify]")
    }

    /// An error unless the run has `table`, which a run writes when the config has `section`.
    pub fn require_table(&self, table: &str, section: &str) -> Result<()> {
        if self.tables.iter().any(|t| t == table) {
            return Ok(());
        }
        Err(Error::NotFound(format!(
            "run {} has no {table}: add a {section} section to the config and run again",
            self.run_id
        )))
    }
}

/// One SQL statement from a user (CLI, shell, Python) against `ctx`: the query limits first,
/// then its result with its schema (kept for an empty result, which has no batches).
pub async fn user_query(
    ctx: &SessionContext,
    sql: &str,
) -> Result<(arrow::datatypes::SchemaRef, Vec<RecordBatch>)> {
    crate::query_limits::check(sql)?;
    let df = ctx.sql(sql).await?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    Ok((schema, df.collect().await?))
}

/// A context over a project's current run (or `run_id`), with every source, `rejects` and `runs`.
pub async fn open_project(
    cfg: &ProjectConfig,
    run_id: Option<&str>,
) -> Result<(SessionContext, OpenedRun)> {
    open_project_in(new_context(), cfg, run_id).await
}

/// [`open_project`] into a given context (the server's reads only registered tables).
pub async fn open_project_in(
    ctx: SessionContext,
    cfg: &ProjectConfig,
    run_id: Option<&str>,
) -> Result<(SessionContext, OpenedRun)> {
    let ws = Workspace::new(cfg.workspace_dir());
    let run_id = match run_id {
        Some(id) => id.to_string(),
        None => ws
            .current_run()?
            .ok_or_else(|| Error::NoRun(cfg.root.clone()))?,
    };
    let manifest = ws.read_manifest(&run_id)?;
    let run_dir = ws.run_dir(&run_id);
    ctx.register_udtf(
        "explain_pair",
        Arc::new(crate::unify::table_functions::ExplainPair {
            cfg: Arc::new(cfg.clone()),
        }),
    );
    let matcher = Arc::new(crate::unify::realtime::MatcherCell::new(
        Arc::new(cfg.clone()),
        run_dir.clone(),
    ));
    ctx.register_udtf(
        "match_record",
        Arc::new(crate::unify::table_functions::MatchRecord {
            matcher: matcher.clone(),
        }),
    );
    if let Some(at) = manifest
        .as_of
        .as_deref()
        .and_then(|a| crate::config::parse_as_of(a).ok())
    {
        register_as_of(&ctx, at);
    }
    let mut tables = register_sources(&ctx, &run_dir, &manifest.sources).await?;
    // Stage outputs (unified customers, match pairs, ...): every Parquet file in `tables/`.
    let outputs = run_dir.join("tables");
    if let Ok(rd) = std::fs::read_dir(&outputs) {
        let mut files: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        files.sort();
        for f in files {
            if f.extension().is_some_and(|e| e == "parquet") {
                let name = f
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_string();
                ctx.register_parquet(
                    &name,
                    f.to_string_lossy().as_ref(),
                    ParquetReadOptions::default(),
                )
                .await?;
                tables.push(name);
            }
        }
    }
    let rejects = run_dir.join("rejects.parquet");
    if rejects.exists() {
        ctx.register_parquet(
            names::REJECTS,
            rejects.to_string_lossy().as_ref(),
            ParquetReadOptions::default(),
        )
        .await?;
        tables.push(names::REJECTS.into());
    }
    if tables.iter().any(|t| t == names::CUSTOMER_MEASURES) {
        // The run's measures, whatever the config says now.
        let measures = ctx.table(names::CUSTOMER_MEASURES).await?.schema().clone();
        let sql = crate::analytics::measures::customer_profiles_sql(
            measures
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .filter(|n| *n != "customer_id"),
        );
        ctx.sql(&format!("CREATE VIEW customer_profiles AS {sql}"))
            .await?;
        tables.push(names::CUSTOMER_PROFILES.into());
    }
    tables.extend(crate::state::register_all(&ctx, ws.dir()).await?);
    if tables.iter().any(|t| t == names::EXPORT_LOG) {
        // Each export's watermark: the run and time of its last successful send.
        ctx.sql(
            "CREATE VIEW export_watermarks AS SELECT export, run_id, ended_at FROM (\
               SELECT *, row_number() OVER (PARTITION BY export ORDER BY ended_at DESC) AS n \
               FROM export_log WHERE outcome = 'succeeded') WHERE n = 1",
        )
        .await?;
        tables.push("export_watermarks".into());
    }
    if let Some(sql) = crate::privacy_state::customer_consent_sql(cfg, &tables) {
        ctx.sql(&format!("CREATE VIEW customer_consent AS {sql}"))
            .await?;
        tables.push(names::CUSTOMER_CONSENT.into());
    }
    ctx.register_table(names::RUNS, Arc::new(runs_table(&ws.manifests()?)?))?;
    tables.push(names::RUNS.into());
    ctx.register_table(
        names::SOURCE_STATS,
        Arc::new(source_stats_table(&manifest)?),
    )?;
    tables.push(names::SOURCE_STATS.into());
    Ok((
        ctx,
        OpenedRun {
            run_id,
            tables,
            matcher,
        },
    ))
}

/// History of runs, one row each, from their manifests.
fn runs_table(manifests: &[Manifest]) -> Result<MemTable> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("started_at", DataType::Utf8, false),
        Field::new("ended_at", DataType::Utf8, true),
        Field::new("config_hash", DataType::Utf8, false),
        Field::new("rows_loaded", DataType::UInt64, false),
        Field::new("rows_rejected", DataType::UInt64, false),
        Field::new("error", DataType::Utf8, true),
    ]));
    let mut id = StringBuilder::new();
    let mut status = StringBuilder::new();
    let mut started = StringBuilder::new();
    let mut ended = StringBuilder::new();
    let mut hash = StringBuilder::new();
    let mut loaded = UInt64Builder::new();
    let mut rejected = UInt64Builder::new();
    let mut error = StringBuilder::new();
    for m in manifests {
        id.append_value(&m.run_id);
        status.append_value(m.status.as_str());
        started.append_value(&m.started_at);
        ended.append_option(m.ended_at.as_deref());
        hash.append_value(&m.config_hash);
        loaded.append_value(m.sources.iter().map(|s| s.rows_loaded).sum());
        rejected.append_value(m.sources.iter().map(|s| s.rows_rejected).sum());
        error.append_option(m.error.as_deref());
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(status.finish()),
        Arc::new(started.finish()),
        Arc::new(ended.finish()),
        Arc::new(hash.finish()),
        Arc::new(loaded.finish()),
        Arc::new(rejected.finish()),
        Arc::new(error.finish()),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols)?;
    Ok(MemTable::try_new(schema, vec![vec![batch]])?)
}

/// Per-source figures of the opened run.
fn source_stats_table(m: &Manifest) -> Result<MemTable> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("format", DataType::Utf8, false),
        Field::new("location", DataType::Utf8, false),
        Field::new("files", DataType::UInt64, false),
        Field::new("rows_read", DataType::UInt64, false),
        Field::new("rows_loaded", DataType::UInt64, false),
        Field::new("rows_rejected", DataType::UInt64, false),
        Field::new("rows_suppressed", DataType::UInt64, false),
        Field::new("seconds", DataType::Float64, false),
        Field::new("encoding", DataType::Utf8, true),
        Field::new("new_columns", DataType::Utf8, true),
        Field::new("missing_columns", DataType::Utf8, true),
    ]));
    let listed = |l: &Vec<String>| (!l.is_empty()).then(|| l.join(", "));
    let s = &m.sources;
    let cols: Vec<ArrayRef> = vec![
        Arc::new(arrow::array::StringArray::from_iter_values(
            s.iter().map(|r| &r.name),
        )),
        Arc::new(arrow::array::StringArray::from_iter_values(
            s.iter().map(|r| &r.format),
        )),
        Arc::new(arrow::array::StringArray::from_iter_values(
            s.iter().map(|r| &r.location),
        )),
        Arc::new(arrow::array::UInt64Array::from_iter_values(
            s.iter().map(|r| r.files as u64),
        )),
        Arc::new(arrow::array::UInt64Array::from_iter_values(
            s.iter().map(|r| r.rows_read),
        )),
        Arc::new(arrow::array::UInt64Array::from_iter_values(
            s.iter().map(|r| r.rows_loaded),
        )),
        Arc::new(arrow::array::UInt64Array::from_iter_values(
            s.iter().map(|r| r.rows_rejected),
        )),
        Arc::new(arrow::array::UInt64Array::from_iter_values(
            s.iter().map(|r| r.rows_suppressed),
        )),
        Arc::new(arrow::array::Float64Array::from_iter_values(
            s.iter().map(|r| r.seconds),
        )),
        Arc::new(arrow::array::StringArray::from_iter(
            s.iter().map(|r| listed(&r.encodings)),
        )),
        Arc::new(arrow::array::StringArray::from_iter(
            s.iter().map(|r| listed(&r.new_columns)),
        )),
        Arc::new(arrow::array::StringArray::from_iter(
            s.iter().map(|r| listed(&r.missing_columns)),
        )),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols)?;
    Ok(MemTable::try_new(schema, vec![vec![batch]])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_parse() {
        assert_eq!(parse_size("8G"), Some(8 << 30));
        assert_eq!(parse_size("512mb"), Some(512 << 20));
        assert_eq!(parse_size("1.5G"), Some(3 << 29));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("0"), None);
    }
}
