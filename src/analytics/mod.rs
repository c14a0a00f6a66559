//! Measures and segments: what marketers and analysts act on, computed from unified customers
//! and their activities after unification (or on their own with `panorama refresh`).
//!
//! The stage compiles the config into a list of SQL [`Step`]s (written to the run as
//! `analytics.sql`, so what ran can be read and re-run elsewhere) and executes them:
//!
//! 1. `customer_measures`: one row per customer, one column per measure;
//! 2. `customer_profiles`: profile fields and measures side by side (a view for queries);
//! 3. each segment's members, then `segment_members`, `segment_history`, `segment_sizes`;
//! 4. `business_measures` and `measure_history`.
//!
//! History tables carry the previous run's rows forward, so the current run holds them all.

pub mod attribution;
pub use crate::config::analytics as definitions;
pub mod journey_analytics;
pub mod measures;
pub mod segments;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::config::ProjectConfig;
use crate::error::{Error, Result};
use crate::sql_text::literal;
use crate::table_catalog::names;
pub use definitions::Analytics;
use definitions::SegmentRule;

/// `panorama segments`: this run's segments with size and change since the previous run.
pub const SEGMENTS_SQL: &str = "SELECT segment, kind, members, entered, exited, description \
     FROM segment_sizes WHERE run_id = (SELECT max(run_id) FROM segment_sizes) ORDER BY segment";

/// One statement of the stage.
#[derive(Debug, Clone)]
pub struct Step {
    /// The table it makes.
    pub name: String,
    pub sql: String,
    /// Written to the run as Parquet (else kept in memory for later steps).
    pub output: bool,
    /// What to blame when it fails (`segment `vip` (panorama.toml:40)`).
    pub what: String,
}

impl Step {
    fn new(name: &str, sql: String, output: bool, what: String) -> Self {
        Step {
            name: name.to_string(),
            sql,
            output,
            what,
        }
    }
}

/// Tables of the previous run this run builds on.
#[derive(Debug, Clone, Default)]
pub struct Previous {
    /// Which of `segment_members`, `segment_history`, `segment_sizes`, `measure_history`
    /// exist (registered as `previous_<name>`).
    pub tables: BTreeSet<String>,
    /// Static segments whose members are kept (same definition as when frozen).
    pub frozen: BTreeSet<String>,
}

impl Previous {
    fn has(&self, table: &str) -> bool {
        self.tables.contains(table)
    }
}

pub use crate::workspace::reports::AnalyticsReport;

/// The steps of a run with id `run`.
pub fn plan(
    cfg: &ProjectConfig,
    an: &Analytics,
    run: &str,
    previous: &Previous,
    facts: &measures::SessionFacts,
) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    let all: Vec<&definitions::Measure> = an.measures.iter().collect();
    steps.push(Step::new(
        names::CUSTOMER_MEASURES,
        measures::customer_measures_sql(cfg, &all, facts)?,
        true,
        names::CUSTOMER_MEASURES.into(),
    ));
    steps.push(customer_profiles_step(an, facts));
    steps.extend(segment_steps(an, run, previous));
    steps.push(Step::new(
        names::BUSINESS_MEASURES,
        measures::business_measures_sql(cfg, an, facts)?,
        true,
        names::BUSINESS_MEASURES.into(),
    ));
    steps.push(Step::new(
        names::MEASURE_HISTORY,
        measure_history_sql(run, previous),
        true,
        names::MEASURE_HISTORY.into(),
    ));
    Ok(steps)
}

/// The profile fields and measures that segments and business measures name, and the
/// fields previews show.
fn profile_names(an: &Analytics) -> BTreeSet<String> {
    let mut named: BTreeSet<String> = ["first_name", "last_name", "email"]
        .into_iter()
        .map(String::from)
        .collect();
    for s in &an.segments {
        match &s.rule {
            SegmentRule::Condition { condition, .. } => named.extend(
                condition
                    .as_deref()
                    .map(definitions::words)
                    .unwrap_or_default(),
            ),
            SegmentRule::PerValue { column } => {
                named.insert(column.clone());
            }
        }
    }
    for b in &an.business {
        for text in [Some(&b.aggregate), b.filter.as_ref()]
            .into_iter()
            .flatten()
        {
            named.extend(definitions::words(text));
        }
        if let Some(definitions::By::Expression(by)) = &b.by {
            named.extend(definitions::words(by));
        }
    }
    named
}

/// `customer_profiles`: segments and business measures read it many times, so it holds only
/// the fields and measures they name (and what previews show).
fn customer_profiles_step(an: &Analytics, facts: &measures::SessionFacts) -> Step {
    let named = profile_names(an);
    let fields: Vec<&str> = facts
        .profile_columns
        .iter()
        .filter(|c| named.contains(*c))
        .map(String::as_str)
        .collect();
    Step::new(
        names::CUSTOMER_PROFILES,
        measures::profiles_sql(
            Some(&fields),
            an.measures
                .iter()
                .filter(|m| named.contains(&m.name))
                .map(|m| m.name.as_str()),
        ),
        false,
        names::CUSTOMER_PROFILES.into(),
    )
}

/// Each segment's members, then `segment_members`, the catalog and changes they feed, and
/// `segment_history` and `segment_sizes` carried on from the previous run.
fn segment_steps(an: &Analytics, run: &str, previous: &Previous) -> Vec<Step> {
    let mut steps = Vec::new();
    for s in &an.segments {
        let carry = s.frozen && previous.frozen.contains(&s.name);
        steps.push(Step::new(
            &segments::members_table(&s.name),
            segments::members_sql(s, carry),
            false,
            format!("segment `{}` ({})", s.name, s.origin.describe()),
        ));
    }
    let has_members = previous.has(names::SEGMENT_MEMBERS);
    steps.push(Step::new(
        names::SEGMENT_MEMBERS,
        segments::segment_members_sql(&an.segments),
        true,
        names::SEGMENT_MEMBERS.into(),
    ));
    steps.push(Step::new(
        "panorama_segment_catalog",
        segments::catalog_sql(&an.segments),
        false,
        "the segment catalog".into(),
    ));
    steps.push(Step::new(
        "panorama_segment_changes",
        segments::changes_sql(has_members),
        false,
        "segment changes".into(),
    ));
    steps.push(Step::new(
        names::SEGMENT_HISTORY,
        segments::history_sql(previous.has(names::SEGMENT_HISTORY), run),
        true,
        names::SEGMENT_HISTORY.into(),
    ));
    steps.push(Step::new(
        names::SEGMENT_SIZES,
        segments::sizes_sql(previous.has(names::SEGMENT_SIZES), run),
        true,
        names::SEGMENT_SIZES.into(),
    ));
    steps
}

/// `measure_history`: this run's business measures after the previous run's history.
fn measure_history_sql(run: &str, previous: &Previous) -> String {
    let now = format!(
        "SELECT {} AS run_id, as_of() AS as_of, measure, by_value, value FROM business_measures",
        literal(run)
    );
    if previous.has(names::MEASURE_HISTORY) {
        format!(
            "SELECT CAST(run_id AS VARCHAR) AS run_id, CAST(as_of AS TIMESTAMP) AS as_of, CAST(measure AS VARCHAR) AS measure, \
             CAST(by_value AS VARCHAR) AS by_value, CAST(value AS DOUBLE) AS value FROM previous_measure_history UNION ALL {now}"
        )
    } else {
        now
    }
}

/// The steps as one SQL script, for reading and for running on another engine.
pub fn script(steps: &[Step], as_of: &str, inputs: &[(String, String)]) -> String {
    let mut out = String::from(
        "-- Measures and segments of one Panorama run, in order. `as_of()` is the run's reference time.\n",
    );
    out.push_str(&format!("-- as_of: {as_of}\n"));
    for (name, path) in inputs {
        out.push_str(&format!("-- input: {name} {path}\n"));
    }
    for s in steps {
        out.push_str(&format!(
            "\n-- {}: {}\n{};\n",
            if s.output { "output" } else { "temp" },
            s.name,
            s.sql
        ));
    }
    out
}

/// Register the previous run's history tables as `previous_<name>`, and find the static
/// segments to keep.
pub async fn previous_state(
    ctx: &SessionContext,
    an: &Analytics,
    previous_tables: Option<&Path>,
    workspace: &Path,
) -> Result<Previous> {
    let mut prev = Previous::default();
    let Some(dir) = previous_tables else {
        return Ok(prev);
    };
    let erased = crate::privacy_state::erased_filter(workspace).await?;
    for t in [
        names::SEGMENT_MEMBERS,
        names::SEGMENT_HISTORY,
        names::SEGMENT_SIZES,
        names::MEASURE_HISTORY,
    ] {
        let path = dir.join(format!("{t}.parquet"));
        if path.exists() {
            match (
                &erased,
                t.starts_with("segment_m") || t.starts_with("segment_h"),
            ) {
                // History of erased customers is not carried forward.
                (Some(keep), true) => {
                    ctx.register_parquet(
                        format!("previous_{t}_all"),
                        path.to_string_lossy().as_ref(),
                        ParquetReadOptions::default(),
                    )
                    .await?;
                    ctx.sql(&format!(
                        "CREATE VIEW previous_{t} AS SELECT * FROM previous_{t}_all WHERE {keep}"
                    ))
                    .await?;
                }
                _ => {
                    ctx.register_parquet(
                        format!("previous_{t}"),
                        path.to_string_lossy().as_ref(),
                        ParquetReadOptions::default(),
                    )
                    .await?;
                }
            }
            prev.tables.insert(t.to_string());
        }
    }
    let statics: Vec<&definitions::Segment> = an.segments.iter().filter(|s| s.frozen).collect();
    if statics.is_empty() || !prev.has(names::SEGMENT_SIZES) || !prev.has(names::SEGMENT_MEMBERS) {
        return Ok(prev);
    }
    // The latest size row of each segment says how it was defined then.
    let batches = ctx
        .sql(
            "SELECT CAST(segment AS VARCHAR), CAST(kind AS VARCHAR), CAST(definition AS VARCHAR) FROM (\
               SELECT *, row_number() OVER (PARTITION BY segment ORDER BY run_id DESC) AS n FROM previous_segment_sizes) \
             WHERE n = 1",
        )
        .await?
        .collect()
        .await?;
    for b in &batches {
        let text = |i: usize| arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Utf8);
        let (seg, kind, def) = (text(0)?, text(1)?, text(2)?);
        let (seg, kind, def) = (
            seg.as_string::<i32>(),
            kind.as_string::<i32>(),
            def.as_string::<i32>(),
        );
        for i in 0..b.num_rows() {
            if let Some(s) = statics.iter().find(|s| s.name == seg.value(i)) {
                if kind.value(i) == "static" && def.value(i) == s.definition() {
                    prev.frozen.insert(s.name.clone());
                }
            }
        }
    }
    Ok(prev)
}

/// Run the steps; outputs go to `tables_dir` (or stay in memory when it is `None`, for
/// previews). Returns the rows of each output.
pub async fn execute(
    ctx: &SessionContext,
    cfg: &ProjectConfig,
    an: &Analytics,
    steps: &[Step],
    tables_dir: Option<&Path>,
) -> Result<BTreeMap<String, u64>> {
    let mut rows = BTreeMap::new();
    for step in steps {
        let started = std::time::Instant::now();
        let n = match (step.output, tables_dir) {
            (true, Some(dir)) => {
                match crate::table_io::write_query(ctx, &step.sql, dir, &step.name).await {
                    Ok(n) => {
                        crate::table_io::register_written(ctx, dir, &step.name).await?;
                        n
                    }
                    Err(e) => return Err(blame(ctx, cfg, an, step, e).await),
                }
            }
            _ => match collect_into(ctx, &step.name, &step.sql).await {
                Ok(n) => n,
                Err(e) => return Err(blame(ctx, cfg, an, step, e).await),
            },
        };
        tracing::info!(step = %step.name, rows = n, seconds = started.elapsed().as_secs_f64(), "analytics step");
        rows.insert(step.name.clone(), n);
    }
    Ok(rows)
}

/// Run `sql` and register its result in memory as `name`.
async fn collect_into(ctx: &SessionContext, name: &str, sql: &str) -> Result<u64> {
    let df = ctx.sql(sql).await?;
    // Branches of a UNION may disagree on nullability: hold everything as nullable.
    let schema = Arc::new(arrow::datatypes::Schema::new(
        df.schema()
            .as_arrow()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    let batches = df
        .collect()
        .await?
        .into_iter()
        .map(|b| {
            let cols = b
                .columns()
                .iter()
                .zip(schema.fields())
                .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            RecordBatch::try_new(schema.clone(), cols)
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let n = batches.iter().map(|b| b.num_rows() as u64).sum();
    crate::table_io::register_batches(ctx, name, schema, batches)?;
    Ok(n)
}

/// A failed step's error, naming the measure or segment at fault with its line.
async fn blame(
    ctx: &SessionContext,
    cfg: &ProjectConfig,
    an: &Analytics,
    step: &Step,
    e: Error,
) -> Error {
    let found = match step.name.as_str() {
        names::CUSTOMER_MEASURES => {
            let mut found = None;
            for i in 0..an.measures.len() {
                let prefix: Vec<&definitions::Measure> = an.measures[..=i].iter().collect();
                let Ok(sql) = measures::customer_measures_sql(
                    cfg,
                    &prefix,
                    &session_facts(ctx).await.unwrap_or_default(),
                ) else {
                    continue;
                };
                if let Err(err) = ctx.sql(&sql).await {
                    let m = &an.measures[i];
                    found = Some(Error::query(
                        format!("measure `{}` ({})", m.name, m.origin.describe()),
                        err,
                    ));
                    break;
                }
            }
            found
        }
        names::BUSINESS_MEASURES => {
            let mut found = None;
            for b in &an.business {
                let Ok(sql) = measures::business_measure_sql(cfg, b) else {
                    continue;
                };
                if let Err(err) = ctx.sql(&sql).await {
                    found = Some(Error::query(
                        format!("business measure `{}` ({})", b.name, b.origin.describe()),
                        err,
                    ));
                    break;
                }
            }
            found
        }
        _ => None,
    };
    if let Some(found) = found {
        return found;
    }
    // Outputs' errors already start with their table's name.
    if e.to_string().starts_with(&format!("{}: ", step.what)) {
        return e;
    }
    match e {
        Error::DataFusion(df) => Error::query(step.what.to_string(), df),
        other => Error::invalid(step.what.to_string(), other),
    }
}

/// The fields of `unified_customers` and the aggregate functions of the session.
async fn session_facts(ctx: &SessionContext) -> Result<measures::SessionFacts> {
    let schema = ctx.table(names::UNIFIED_CUSTOMERS).await?.schema().clone();
    Ok(measures::SessionFacts {
        profile_columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
        aggregate_functions: ctx
            .state()
            .aggregate_functions()
            .values()
            .flat_map(|f| std::iter::once(f.name().to_string()).chain(f.aliases().iter().cloned()))
            .map(|n| n.to_lowercase())
            .collect(),
    })
}

/// Measure names must not hide profile fields in `customer_profiles`; returns what the
/// compiler needs to know of the session.
async fn check_names(ctx: &SessionContext, an: &Analytics) -> Result<measures::SessionFacts> {
    let facts = session_facts(ctx).await?;
    for m in &an.measures {
        if facts.profile_columns.contains(&m.name) {
            return Err(Error::Conflict(format!(
                "measure `{}` ({}) has the name of a profile field of unified_customers; choose another name",
                m.name,
                m.origin.describe()
            )));
        }
    }
    Ok(facts)
}

/// Build measures and segments of a run into its `tables/`. Registers the run's sources and
/// the tables earlier stages wrote in `ctx` (which must have `as_of()`), and names each of
/// them as an input of the run's `analytics.sql`.
#[allow(clippy::too_many_arguments)]
pub async fn build(
    cfg: &ProjectConfig,
    an: &Analytics,
    ctx: &SessionContext,
    run_dir: &Path,
    sources: &[crate::sources::SourceReport],
    run_id: &str,
    as_of: &str,
    previous_tables: Option<&Path>,
) -> Result<AnalyticsReport> {
    let started = std::time::Instant::now();
    // Absolute paths, so the script runs from anywhere.
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let run_abs = abs(run_dir);
    let tables = run_abs.join("tables");
    let mut inputs: Vec<(String, String)> = Vec::new();
    for name in crate::run_context::register_sources(ctx, &run_abs, sources).await? {
        let files = run_abs.join("sources").join(&name).join("*.parquet");
        inputs.push((name, files.display().to_string()));
    }
    for name in crate::workspace::parquet_tables(&tables)? {
        if !definitions::OUTPUT_TABLES.contains(&name.as_str()) {
            crate::table_io::register_written(ctx, &tables, &name).await?;
            let file = tables.join(format!("{name}.parquet"));
            inputs.push((name, file.display().to_string()));
        }
    }
    let facts = check_names(ctx, an).await?;
    let previous = previous_state(ctx, an, previous_tables, &cfg.workspace_dir()).await?;
    let steps = plan(cfg, an, run_id, &previous, &facts)?;
    if let Some(dir) = previous_tables.map(abs) {
        for t in &previous.tables {
            inputs.push((
                format!("previous_{t}"),
                dir.join(format!("{t}.parquet")).display().to_string(),
            ));
        }
    }
    let script_path = run_dir.join("analytics.sql");
    std::fs::write(&script_path, script(&steps, as_of, &inputs))
        .map_err(|e| Error::io("cannot write", &script_path, e))?;
    let rows = execute(ctx, cfg, an, &steps, Some(&tables)).await?;
    let segments = crate::table_io::count(
        ctx,
        "SELECT count(*) FROM panorama_segment_catalog",
        "segments",
    )
    .await?;
    Ok(AnalyticsReport {
        as_of: as_of.to_string(),
        measures: an.measures.len(),
        business_measures: an.business.len(),
        segments,
        segment_members: rows.get(names::SEGMENT_MEMBERS).copied().unwrap_or(0),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A segment evaluated on the current run with the current config, without writing anything:
/// its size and sample members (profile basics and the measures its condition uses).
pub async fn preview(
    ctx: &SessionContext,
    cfg: &ProjectConfig,
    an: &Analytics,
    segment: &str,
    limit: usize,
) -> Result<(u64, Vec<RecordBatch>)> {
    let Some(seg) = an.segment(segment) else {
        let names: Vec<&str> = an.segments.iter().map(|s| s.name.as_str()).collect();
        return Err(Error::NotFound(format!(
            "no segment named `{segment}` in panorama.toml (segments: {})",
            if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            }
        )));
    };
    let facts = check_names(ctx, an).await?;
    let steps = plan(cfg, an, "preview", &Previous::default(), &facts)?;
    let needed: Vec<Step> = steps
        .into_iter()
        .take_while(|s| s.name != names::SEGMENT_MEMBERS)
        .map(|mut s| {
            s.output = false;
            s
        })
        .collect();
    // customer_measures must replace the run's table for this session only.
    let _ = ctx.deregister_table(names::CUSTOMER_MEASURES);
    execute(ctx, cfg, an, &needed, None).await?;
    let table = segments::members_table(&seg.name);
    let size = crate::table_io::count(
        ctx,
        &format!("SELECT count(*) FROM {table}"),
        "segment size",
    )
    .await?;
    let sql = match &seg.rule {
        SegmentRule::PerValue { .. } => format!(
            "SELECT segment, count(*) AS members, min(value) AS value FROM {table} GROUP BY segment ORDER BY members DESC, segment LIMIT {limit}"
        ),
        SegmentRule::Condition { condition, .. } => {
            let used = condition
                .as_deref()
                .map(definitions::words)
                .unwrap_or_default();
            let mut cols = vec!["p.customer_id", "p.first_name", "p.last_name", "p.email"]
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>();
            cols.extend(
                an.measures
                    .iter()
                    .filter(|m| used.contains(&m.name))
                    .map(|m| format!("p.{}", crate::sql_text::ident(&m.name))),
            );
            format!(
                "SELECT {} FROM customer_profiles p JOIN {table} s ON s.customer_id = p.customer_id ORDER BY p.customer_id LIMIT {limit}",
                cols.join(", ")
            )
        }
    };
    let sample = ctx.sql(&sql).await?.collect().await?;
    Ok((size, sample))
}
