//! Reading the current run: `query`, `sql`, `tables`, `describe`, `segments`, `segment`.

use std::path::PathBuf;

use panorama::error::{Error, Result};

use super::flags::*;
use super::Globals;
use panorama::config::ProjectConfig;
use panorama::output::{write_batches, write_to_file, OutputFormat};
use panorama::session::open_project;
use panorama::table_catalog::names;

/// `panorama segments`: each segment's size, with who entered and left.
pub async fn segments(g: &Globals, format: OutputFormat) -> Result<()> {
    let cfg = g.config()?;
    let (ctx, opened) = open_project(&cfg, None).await?;
    opened.require_table(names::SEGMENT_SIZES, "[segments]")?;
    let batches = ctx
        .sql(panorama::analytics::SEGMENTS_SQL)
        .await?
        .collect()
        .await?;
    write_batches(&batches, format, &mut std::io::stdout().lock())
}

/// `panorama segment NAME`: its size by run and its first members, or `--preview` of a new one.
pub async fn segment(
    g: &Globals,
    name: String,
    preview: bool,
    limit: usize,
    as_of: AsOfArg,
) -> Result<()> {
    let cfg = g.config()?;
    let (ctx, opened) = open_project(&cfg, None).await?;
    let out = &mut std::io::stdout().lock();
    if preview {
        opened.require_unified(names::UNIFIED_CUSTOMERS)?;
        if let Some(at) = as_of.as_of {
            panorama::session::register_as_of(&ctx, at);
        }
        let (size, sample) =
            panorama::analytics::preview(&ctx, &cfg, &cfg.analytics, &name, limit).await?;
        println!("Segment {name} (preview, not saved): {size} members");
        return write_batches(&sample, OutputFormat::Table, out);
    }
    opened.require_table(names::SEGMENT_SIZES, "[segments]")?;
    let lit = format!("'{}'", name.replace('\'', "''"));
    let sizes = ctx
        .sql(&format!(
            "SELECT run_id, as_of, members, entered, exited FROM segment_sizes WHERE segment = {lit} ORDER BY run_id"
        ))
        .await?
        .collect()
        .await?;
    if sizes.iter().all(|b| b.num_rows() == 0) {
        return Err(Error::NotFound(format!(
            "no segment `{name}` in run {} (see `panorama segments`; --preview evaluates a new one)",
            opened.run_id
        )));
    }
    println!("Segment {name}: size by run");
    write_batches(&sizes, OutputFormat::Table, out)?;
    let sample = ctx
        .sql(&format!(
            "SELECT p.customer_id, p.first_name, p.last_name, p.email, p.city FROM segment_members s \
             JOIN unified_customers p ON p.customer_id = s.customer_id WHERE s.segment = {lit} \
             ORDER BY p.customer_id LIMIT {limit}"
        ))
        .await?
        .collect()
        .await?;
    println!("Members (first {limit}):");
    write_batches(&sample, OutputFormat::Table, out)
}

/// `panorama query`: one SQL statement against a run (or a Ballista cluster), printed or saved.
pub async fn query(
    g: &Globals,
    sql: String,
    format: OutputFormat,
    output: Option<PathBuf>,
    run: Option<String>,
    ballista: Option<String>,
) -> Result<()> {
    let cfg = g.config()?;
    let (ctx, _) = match ballista {
        None => open_project(&cfg, run.as_deref()).await?,
        Some(url) => remote_project(&cfg, &url, run.as_deref()).await?,
    };
    let (schema, mut batches) = panorama::session::user_query(&ctx, &sql).await?;
    if batches.is_empty() {
        // Keep the header (CSV) and schema (Parquet) of an empty result.
        batches.push(arrow::array::RecordBatch::new_empty(schema));
    }
    match output {
        Some(path) => write_to_file(&batches, format, &path),
        None => write_batches(&batches, format, &mut std::io::stdout().lock()),
    }
}

/// `panorama sql`: the interactive SQL shell.
pub async fn sql(g: &Globals, run: Option<String>) -> Result<()> {
    let cfg = g.config()?;
    let (ctx, opened) = open_project(&cfg, run.as_deref()).await?;
    let history = cfg.workspace_dir().join("sql_history");
    let banner = format!(
        "Panorama SQL shell: run {} with tables {}",
        opened.run_id,
        opened.tables.join(", ")
    );
    panorama::shell::run_shell(&ctx, history, &banner).await
}

/// `panorama tables`: the current run's tables with row counts.
pub async fn tables(g: &Globals) -> Result<()> {
    let cfg = g.config()?;
    let (ctx, opened) = open_project(&cfg, None).await?;
    let mut rows = Vec::new();
    for t in &opened.tables {
        let n = ctx.table(t.as_str()).await?.count().await?;
        rows.push(format!("SELECT '{t}' AS table_name, {n} AS row_count"));
    }
    let batches = ctx.sql(&rows.join(" UNION ALL ")).await?.collect().await?;
    println!("Run {}", opened.run_id);
    let sorted = sort_batches(&ctx, batches).await?;
    write_batches(&sorted, OutputFormat::Table, &mut std::io::stdout().lock())
}

/// `panorama describe TABLE`: its columns and types.
pub async fn describe(g: &Globals, table: String) -> Result<()> {
    let cfg = g.config()?;
    let (ctx, opened) = open_project(&cfg, None).await?;
    if !opened.tables.contains(&table) {
        return Err(Error::NotFound(format!(
            "no table `{table}` in run {}; tables: {}",
            opened.run_id,
            opened.tables.join(", ")
        )));
    }
    let batches = ctx
        .sql(&panorama::shell::describe_sql(&table))
        .await?
        .collect()
        .await?;
    write_batches(&batches, OutputFormat::Table, &mut std::io::stdout().lock())
}

/// `panorama profile`: each source's column profile, without a run.
pub async fn profile(g: &Globals, sources: Vec<String>, format: OutputFormat) -> Result<()> {
    let cfg = g.config()?;
    let (reports, batch) = panorama::run::profile_sources(&cfg, &sources, g.quiet).await?;
    let shown = match format {
        // The figures people read first; `--format json` or `csv` has them all.
        OutputFormat::Table => {
            let ctx = panorama::session::new_context();
            ctx.register_batch(names::SOURCE_PROFILES, batch)?;
            ctx.sql(
                "SELECT source, \"column\", data_type AS type, rows, nulls, distinct_values AS \"distinct\", \
                 min_value AS min, max_value AS max, \
                 CASE WHEN min_length IS NULL THEN NULL ELSE concat(min_length, '-', max_length) END AS length, \
                 top_values, mapped_field, round(parse_rate, 4) AS parse_rate FROM source_profiles",
            )
            .await?
            .collect()
            .await?
        }
        _ => vec![batch],
    };
    write_batches(&shown, format, &mut std::io::stdout().lock())?;
    if !g.quiet && format == OutputFormat::Table {
        for r in &reports {
            if r.rows_rejected > 0 {
                eprintln!(
                    "{}: {} of {} rows rejected when loaded (not profiled; `panorama run` keeps them in the rejects table)",
                    r.name, r.rows_rejected, r.rows_read
                );
            }
        }
    }
    Ok(())
}

/// The project's tables in a context that runs queries on a Ballista cluster.
pub(crate) async fn remote_project(
    cfg: &ProjectConfig,
    url: &str,
    run: Option<&str>,
) -> panorama::Result<(
    datafusion::prelude::SessionContext,
    panorama::session::OpenedRun,
)> {
    let ctx = panorama::session::cluster_context(url, None).await?;
    panorama::session::register_functions(&ctx);
    panorama::session::open_project_in(ctx, cfg, run).await
}

pub(crate) async fn sort_batches(
    ctx: &datafusion::prelude::SessionContext,
    batches: Vec<arrow::array::RecordBatch>,
) -> Result<Vec<arrow::array::RecordBatch>> {
    let df = ctx.read_batches(batches)?;
    Ok(df
        .sort(vec![
            datafusion::prelude::col("table_name").sort(true, false)
        ])?
        .collect()
        .await?)
}
