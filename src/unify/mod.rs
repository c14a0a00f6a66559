//! Unification: map, match, merge source records into one profile per person, with customer
//! ids that stay stable across runs.
//!
//! The stage is SQL run by DataFusion (`sql/unify/*.sql` and SQL generated from the config):
//! staging (`unify_records`) → candidate pairs per rule, blocked on the rule's exact fields →
//! `match_pairs` → connected components → stable ids (`customer_links`, `id_changes`) →
//! `unified_customers` via the merge aggregates → `unify_stats`.

pub mod accounts;
pub mod clusters;
pub mod evaluation;
pub use crate::config::unify as config;
pub mod explain;
pub mod fields;
pub mod identity;
pub mod incremental;
pub mod matching;
pub mod merge;
pub mod plan;
pub mod probabilistic;
pub mod realtime;
pub mod report;
pub mod staging;
pub mod table_functions;
pub mod veto_split;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray, StringBuilder, UInt64Builder};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::config::ProjectConfig;
use crate::error::{Error, Result};
use crate::table_catalog::names;
use config::{default_rules, DedupPolicy, IdentityMap, MatchMode, MatchRule, UnifySection};

const MATCH_PAIRS_SQL: &str = include_str!("../../sql/unify/match_pairs.sql");
pub use evaluation::{register_truth, EVAL_SQL};

/// The tables unification makes in `<run>/tables` (those of probabilistic matching only in
/// that mode, `identity_graph` only with `[unify.identities]`).
pub const OUTPUT_TABLES: &[&str] = &[
    names::UNIFY_RECORDS,
    names::MATCH_PAIRS,
    names::VETOED_PAIRS,
    names::MATCH_WEIGHTS,
    names::MATCH_SCORE_HISTOGRAM,
    names::MATCH_TERM_FREQUENCIES,
    names::BLOCKING_PLAN,
    names::CUSTOMER_LINKS,
    names::ID_CHANGES,
    names::UNIFIED_CUSTOMERS,
    names::UNIFIED_CUSTOMERS_PROVENANCE,
    names::IDENTITY_GRAPH,
    names::UNIFY_STATS,
];

pub use crate::workspace::reports::UnifyReport;

/// The rules in force: the config's, or the defaults.
pub fn rules(cfg: &ProjectConfig) -> Vec<MatchRule> {
    match &cfg.unify {
        Some(u) if !u.rules.is_empty() => u.rules.iter().map(|r| r.get_ref().clone()).collect(),
        _ => default_rules(),
    }
}

pub(crate) use crate::config::unify::record_id_column;

/// A previous run's ids, from its links table.
pub(crate) struct PreviousIds {
    /// Each record's id then (a position in `names`), by the record's position in the index.
    pub ids: Vec<Option<u32>>,
    /// The distinct ids of that run.
    pub names: Vec<String>,
    /// Records per id then (by position in `names`).
    pub sizes: Vec<u64>,
    /// The largest id number that run gave (ids are never reused, even when that id's
    /// records are gone).
    pub max: u64,
}

/// Each record's id in a previous run's links table (`uid` plus `id_column`), by the record's
/// position in `index` (of `records`). No file: no previous ids.
pub(crate) async fn previous_ids(
    path: Option<std::path::PathBuf>,
    id_column: &str,
    prefix: &str,
    index: &HashMap<&str, u32>,
    records: usize,
) -> Result<PreviousIds> {
    let mut out = PreviousIds {
        ids: vec![None; records],
        names: Vec::new(),
        sizes: Vec::new(),
        max: 0,
    };
    let Some(path) = path.filter(|p| p.exists()) else {
        return Ok(out);
    };
    let pctx = SessionContext::new();
    pctx.register_parquet(
        "prev",
        path.to_string_lossy().as_ref(),
        ParquetReadOptions::default(),
    )
    .await?;
    let prev = pctx
        .sql(&format!("SELECT uid, {id_column} FROM prev"))
        .await?
        .collect()
        .await?;
    let columns = prev
        .iter()
        .map(|b| {
            Ok((
                arrow::compute::cast(b.column(0), &DataType::Utf8)?,
                arrow::compute::cast(b.column(1), &DataType::Utf8)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut number: HashMap<&str, u32> = HashMap::new();
    for (u, c) in &columns {
        let (u, c) = (u.as_string::<i32>(), c.as_string::<i32>());
        for i in 0..u.len() {
            let id = c.value(i);
            let n = match number.get(id) {
                Some(n) => *n,
                None => {
                    out.max = out
                        .max
                        .max(clusters::parse_prefixed(prefix, id).unwrap_or(0));
                    out.names.push(id.to_string());
                    out.sizes.push(0);
                    number.insert(id, out.names.len() as u32 - 1);
                    out.names.len() as u32 - 1
                }
            };
            out.sizes[n as usize] += 1;
            if let Some(&idx) = index.get(u.value(i)) {
                out.ids[idx as usize] = Some(n);
            }
        }
    }
    Ok(out)
}

/// Count, per source and typed field, the mapped values that staging could not convert (see
/// [`staging::typed_values`]) into the report, with a warning for each.
async fn count_unconverted(
    cfg: &ProjectConfig,
    ctx: &SessionContext,
    report: &mut UnifyReport,
) -> Result<()> {
    let Some(unify) = &cfg.unify else {
        return Ok(());
    };
    let custom = unify.custom_fields();
    for (source, map) in &unify.sources {
        let typed = staging::typed_values(map.get_ref(), &custom)?;
        if typed.is_empty() {
            continue;
        }
        let counts: Vec<String> = typed
            .iter()
            .map(|(_, raw, staged)| {
                format!(
                    "count(*) FILTER (WHERE {raw} IS NOT NULL AND trim(CAST({raw} AS VARCHAR)) <> '' AND {staged} IS NULL)"
                )
            })
            .collect();
        let sql = format!(
            "SELECT {} FROM {}",
            counts.join(", "),
            staging::ident(source)
        );
        let batches = collect(ctx, &sql, "unconverted values").await?;
        let Some(b) = batches.iter().find(|b| b.num_rows() > 0) else {
            continue;
        };
        for (i, (field, _, _)) in typed.iter().enumerate() {
            let n = b
                .column(i)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(0) as u64;
            if n > 0 {
                report.warnings.push(format!(
                    "unify.sources.{source}.{field}: {n} value(s) do not convert to the field's type and are NULL for matching (SELECT * FROM unify_stats WHERE metric LIKE 'unconverted:%')"
                ));
            }
            report.unconverted.push((source.clone(), field.clone(), n));
        }
    }
    Ok(())
}

/// SQL of the `unify_records` view over the sources mapped in `[unify.sources]`.
pub fn staging_sql(cfg: &ProjectConfig) -> Result<String> {
    let unify = cfg
        .unify
        .as_ref()
        .ok_or_else(|| Error::NotFound("no [unify] section in the config".into()))?;
    let mut selects = Vec::new();
    for (i, (source, map)) in unify.sources.iter().enumerate() {
        let src = cfg.sources.get(source).ok_or_else(|| {
            cfg.error_at(
                map.span(),
                format!("unify.sources.{source}: no source named `{source}`"),
            )
        })?;
        let map = map.get_ref();
        let record_id = record_id_column(cfg, src, source, &map.record_id, "unify.sources")?;
        let priority = map.priority.unwrap_or(i as i64 + 1);
        selects.push(staging::source_select(
            source,
            map,
            &record_id,
            priority,
            &unify.custom_fields(),
        )?);
    }
    if selects.is_empty() {
        return Err(Error::NotFound(
            "[unify] maps no source: add [unify.sources.<name>]".into(),
        ));
    }
    Ok(selects.join("\nUNION ALL\n"))
}

/// A query's rows, errors naming the unify step `what` ([`crate::table_io::collect`]).
async fn collect(ctx: &SessionContext, sql: &str, what: &str) -> Result<Vec<RecordBatch>> {
    crate::table_io::collect(ctx, sql, &format!("unify: {what}")).await
}

/// A query's rows as one batch ([`crate::table_io::one_batch`]), errors naming the unify step.
pub(crate) async fn one_batch(ctx: &SessionContext, sql: &str, what: &str) -> Result<RecordBatch> {
    crate::table_io::one_batch(ctx, sql, &format!("unify: {what}")).await
}

/// The single integer of a count query ([`crate::table_io::count`]), errors naming the unify
/// step.
pub(crate) async fn count(ctx: &SessionContext, sql: &str, what: &str) -> Result<u64> {
    crate::table_io::count(ctx, sql, &format!("unify: {what}")).await
}

pub(crate) use crate::table_io::{
    conform, register, register_like, register_written, rows, write_queries, write_queries_into,
    write_query, write_table,
};

/// Find the values of `key` shared by more than `cap` records; if there are any, warn (naming
/// the largest), count them and register them as the table `table`, which the candidate SQL
/// anti-joins. Returns the table's name when there is one.
pub(crate) async fn skip_oversized_blocks(
    ctx: &SessionContext,
    key: &[&str],
    what: &str,
    table: &str,
    cap: usize,
    report: &mut UnifyReport,
) -> Result<Option<String>> {
    let big = collect(
        ctx,
        &matching::oversized_key_blocks_sql(key, cap),
        "block sizes",
    )
    .await?;
    if rows(&big) == 0 {
        return Ok(None);
    }
    report.skipped_blocks += rows(&big);
    let example =
        arrow::util::pretty::pretty_format_batches(&[big[0].slice(0, big[0].num_rows().min(3))])?;
    let w = format!(
        "{what}: {} blocking key(s) shared by more than {cap} records were skipped (unify.max_block_size); largest:\n{example}",
        rows(&big)
    );
    tracing::warn!("{w}");
    report.warnings.push(w);
    let schema = big[0].schema();
    register(ctx, table, big, schema)?;
    Ok(Some(table.to_string()))
}

/// Candidate pairs after manual decisions: never-match pairs removed, always-match pairs added
/// as rule `override` (which wins over every rule).
const OVERRIDDEN_CANDIDATES_SQL: &str = include_str!("../../sql/unify/overridden_candidates.sql");

/// Read the overrides CSV as `unify_overrides`; a bad decision is an error naming its line.
async fn load_overrides(ctx: &SessionContext, path: &Path) -> Result<()> {
    if !path.is_file() {
        return Err(Error::NotFound(format!(
            "unify.overrides: file not found: {}",
            path.display()
        )));
    }
    let schema = Schema::new(vec![
        Field::new("left_uid", DataType::Utf8, true),
        Field::new("right_uid", DataType::Utf8, true),
        Field::new("decision", DataType::Utf8, true),
    ]);
    let _ = ctx.deregister_table("unify_overrides");
    ctx.register_csv(
        "unify_overrides",
        path.to_string_lossy().as_ref(),
        datafusion::prelude::CsvReadOptions::new()
            .has_header(true)
            .schema(&schema),
    )
    .await?;
    let rows = ctx
        .sql("SELECT left_uid, right_uid, decision FROM unify_overrides")
        .await?
        .collect()
        .await
        .map_err(|e| Error::query(format!("unify.overrides {}", path.display()), e))?;
    let mut line = 1;
    for b in &rows {
        let d = b.column(2).as_string::<i32>();
        let l = b.column(0).as_string::<i32>();
        let r = b.column(1).as_string::<i32>();
        for i in 0..b.num_rows() {
            line += 1;
            let ok = !l.is_null(i)
                && !r.is_null(i)
                && matches!(
                    d.is_valid(i).then(|| d.value(i)),
                    Some("match" | "no_match")
                );
            if !ok {
                return Err(Error::invalid(
                    "unify.overrides",
                    format!(
                        "{}:{line}: each line needs left_uid,right_uid,decision with decision `match` or `no_match`",
                        path.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Budget per record under which the merge runs in one pass: 1.46 M records (1M people) merge
/// in one pass within a 16.5 GB budget (1.5 GB RSS for the query).
const MERGE_BYTES_PER_RECORD: usize = 10_000;
/// Budget per record of one chunk when merging in chunks: at 10M people (14.6 M records) the
/// final aggregation failed to spill within a 16.5 GB pool with chunks of 1.6 M and 2.4 M
/// records, and completed with chunks of 0.49 M (30 chunks).
const CHUNK_BYTES_PER_RECORD: usize = 33_000;

/// Run the unify stage over the sources registered in `ctx`, writing its tables into
/// `tables_dir`. `previous_tables` is the previous run's tables directory (for stable ids);
/// with `incremental`, only what changed since that run is staged and compared when it can
/// be (see [`incremental`]).
pub async fn unify(
    cfg: &ProjectConfig,
    ctx: &SessionContext,
    tables_dir: &Path,
    previous_tables: Option<&Path>,
    incremental: bool,
) -> Result<UnifyReport> {
    let started = std::time::Instant::now();
    let unify_cfg = cfg.unify.clone().unwrap_or_default();
    let mut report = UnifyReport::default();

    // Plain strings, not string views, for the tables this stage reads back: aggregates that
    // keep chosen rows per customer otherwise pin every batch's view buffers (measured: 12 GB
    // instead of 1.5 GB at 1M people).
    ctx.sql("SET datafusion.execution.parquet.schema_force_view_types = false")
        .await?
        .collect()
        .await?;

    let rules = rules(cfg);
    let planned = match incremental {
        true => {
            incremental_pairs(
                cfg,
                ctx,
                tables_dir,
                &unify_cfg,
                &rules,
                previous_tables,
                &mut report,
            )
            .await?
        }
        false => Err(incremental::FullRun::Asked),
    };
    let delta = match planned {
        Ok((pairs, changes, baseline)) => Some((pairs, changes, baseline)),
        Err(reason) => {
            tracing::info!(%reason, "unifying in full");
            report = UnifyReport::default();
            None
        }
    };
    let (pairs, delta) = match delta {
        Some((pairs, changes, baseline)) => (pairs, Some((changes, baseline))),
        None => (
            full_pairs(cfg, ctx, tables_dir, &unify_cfg, &rules, &mut report).await?,
            None,
        ),
    };
    report.unify_hash = incremental::unify_hash(cfg);
    resolve(
        cfg,
        ctx,
        tables_dir,
        &unify_cfg,
        &rules,
        pairs,
        previous_tables,
        delta.as_ref(),
        report,
        started,
    )
    .await
}

/// Stage every record and match every pair: a full unification.
async fn full_pairs(
    cfg: &ProjectConfig,
    ctx: &SessionContext,
    tables_dir: &Path,
    unify_cfg: &UnifySection,
    rules: &[MatchRule],
    report: &mut UnifyReport,
) -> Result<Vec<RecordBatch>> {
    // Staging.
    report.records = write_query(ctx, &staging_sql(cfg)?, tables_dir, names::UNIFY_RECORDS).await?;
    register_written(ctx, tables_dir, names::UNIFY_RECORDS).await?;
    count_unconverted(cfg, ctx, report).await?;
    // Matching scans the staged records once or twice per blocking rule, key check and
    // sample (~60 scans at 1M demo people): held in memory while it fits an eighth of the
    // memory budget (450 MB of Arrow at 1M demo people), no scan decodes Parquet. 1M demo,
    // the steps up to components: 44.8-47.5 s -> 35.3-38.0 s. Held through the merge too,
    // the merge was no faster (6.8-9.4 s either way) and the peak 0.3 GB higher: let go here.
    let held = crate::table_io::hold_in_memory(ctx, tables_dir, names::UNIFY_RECORDS, 8).await?;

    let pairs = match unify_cfg.match_mode() {
        MatchMode::Rules => rule_pairs(cfg, ctx, unify_cfg, rules, report, None).await?,
        MatchMode::Probabilistic => {
            let section = unify_cfg.probabilistic_section();
            let matched = probabilistic::match_pairs(
                ctx,
                tables_dir,
                &section,
                unify_cfg.max_block_size,
                report,
            )
            .await?;
            let weights = matched.weights;
            write_table(
                tables_dir,
                names::MATCH_WEIGHTS,
                &weights.schema(),
                &[weights],
            )?;
            if let Some(plan) = matched.blocking_plan {
                write_table(tables_dir, names::BLOCKING_PLAN, &plan.schema(), &[plan])?;
            }
            if let Some(first) = matched.histogram.first() {
                write_table(
                    tables_dir,
                    names::MATCH_SCORE_HISTOGRAM,
                    &first.schema(),
                    &matched.histogram,
                )?;
            }
            let tf_schema = matched
                .term_frequencies
                .first()
                .map(|b| b.schema())
                .unwrap_or_else(|| {
                    Arc::new(Schema::new(vec![
                        Field::new("field", DataType::Utf8, true),
                        Field::new("value", DataType::Utf8, true),
                        Field::new("tf", DataType::Float64, true),
                    ]))
                });
            write_table(
                tables_dir,
                names::MATCH_TERM_FREQUENCIES,
                &tf_schema,
                &matched.term_frequencies,
            )?;
            match &unify_cfg.overrides {
                None => matched.pairs,
                Some(file) => {
                    load_overrides(ctx, &cfg.root.join(file.get_ref())).await?;
                    apply_overrides(ctx, matched.pairs).await?
                }
            }
        }
    };
    if held {
        register_written(ctx, tables_dir, names::UNIFY_RECORDS).await?;
    }
    Ok(pairs)
}

/// Stage and compare only what changed since the previous run (see [`incremental`]).
/// `Ok(Err(reason))`: this run must unify in full.
#[allow(clippy::type_complexity)]
async fn incremental_pairs(
    cfg: &ProjectConfig,
    ctx: &SessionContext,
    tables_dir: &Path,
    unify_cfg: &UnifySection,
    rules: &[MatchRule],
    previous_tables: Option<&Path>,
    report: &mut UnifyReport,
) -> Result<
    std::result::Result<
        (
            Vec<RecordBatch>,
            incremental::Changes,
            incremental::Baseline,
        ),
        incremental::FullRun,
    >,
> {
    if unify_cfg.incremental_max_change <= 0.0 {
        return Ok(Err(incremental::FullRun::Disabled));
    }
    let baseline = match incremental::baseline(cfg, unify_cfg, previous_tables) {
        Ok(b) => b,
        Err(reason) => return Ok(Err(reason)),
    };
    let mut changes = match incremental::changes(cfg, ctx, unify_cfg, &baseline).await? {
        Ok(c) => c,
        Err(reason) => return Ok(Err(reason)),
    };
    let share = changes.touched.len() as f64 / (changes.records.max(1) as f64);
    if share > unify_cfg.incremental_max_change {
        return Ok(Err(incremental::FullRun::TooManyChanges {
            touched: changes.touched.len(),
            records: changes.records,
            share,
        }));
    }
    tracing::info!(
        inserted = changes.inserted,
        updated = changes.updated,
        deleted = changes.deleted,
        "unifying incrementally"
    );
    report.records = incremental::stage(cfg, ctx, &baseline, &changes, tables_dir).await?;
    count_unconverted(cfg, ctx, report).await?;
    let mode = unify_cfg.match_mode();
    let mut section = unify_cfg.probabilistic_section();
    let weights = match mode {
        MatchMode::Probabilistic => {
            let w = crate::workspace::read_parquet_file(
                &baseline.tables.join("match_weights.parquet"),
            )?;
            probabilistic::adopt_plan(&mut section, &w)?;
            w
        }
        MatchMode::Rules => Vec::new(),
    };
    let staged = fields::staged_fields(&section.custom);
    let keys: Vec<Vec<String>> = match mode {
        MatchMode::Rules => rules
            .iter()
            .map(|r| {
                matching::check_rule(r, &staged).map_err(|m| Error::invalid("unify", m))?;
                Ok(matching::blocking_key(r)
                    .iter()
                    .map(|k| k.to_string())
                    .collect())
            })
            .collect::<Result<_>>()?,
        MatchMode::Probabilistic => section.blocking.clone(),
    };
    report.touched_records = changes.touched.len() as u64;
    if mode == MatchMode::Probabilistic {
        report.resized_records =
            incremental::touch_resized_blocks(ctx, &keys, &mut changes).await?;
    }
    let skips =
        match incremental::touched_oversized_blocks(ctx, &keys, unify_cfg.max_block_size).await? {
            Ok(s) => s,
            Err(reason) => return Ok(Err(reason)),
        };
    let delta = match mode {
        MatchMode::Rules => rule_pairs(cfg, ctx, unify_cfg, rules, report, Some(&skips)).await?,
        MatchMode::Probabilistic => {
            let pairs = probabilistic::delta_match_pairs(
                ctx,
                &section,
                &weights,
                &baseline.tables,
                &skips,
                report,
            )
            .await?;
            for t in [
                names::MATCH_WEIGHTS,
                names::MATCH_SCORE_HISTOGRAM,
                names::MATCH_TERM_FREQUENCIES,
                names::BLOCKING_PLAN,
            ] {
                incremental::carry_over(&baseline, tables_dir, t)?;
            }
            pairs
        }
    };
    incremental::register_kept_pairs(ctx, &baseline).await?;
    let mut pairs = collect(ctx, "SELECT * FROM unify_kept_pairs", "kept pairs").await?;
    let schema = ctx
        .table("unify_kept_pairs")
        .await?
        .schema()
        .as_arrow()
        .clone();
    let schema = Arc::new(schema);
    for b in &delta {
        pairs.push(conform(b, &schema)?);
    }
    report.skipped_blocks = baseline.report.skipped_blocks;
    report.incremental = true;
    Ok(Ok((pairs, changes, baseline)))
}

/// Components, stable ids, links and profiles from the matched pairs; with `delta`, only the
/// customers whose records changed are merged again.
#[allow(clippy::too_many_arguments)]
async fn resolve(
    cfg: &ProjectConfig,
    ctx: &SessionContext,
    tables_dir: &Path,
    unify_cfg: &UnifySection,
    rules: &[MatchRule],
    pairs: Vec<RecordBatch>,
    previous_tables: Option<&Path>,
    delta: Option<&(incremental::Changes, incremental::Baseline)>,
    mut report: UnifyReport,
    started: std::time::Instant,
) -> Result<UnifyReport> {
    report.matched_pairs = rows(&pairs);
    write_match_pairs(tables_dir, &pairs)?;

    // Components over all records.
    let records = RecordIds::load(ctx).await?;
    let index: HashMap<&str, u32> = (0..records.uids.len())
        .map(|i| (records.uids.value(i), i as u32))
        .collect();
    let mut edges = PairEdges::new(&pairs, &index, rules, records.uids.len())?;
    drop(pairs);
    let cluster_of = clusters::components(records.uids.len(), edges.edges.iter().copied());
    let links = veto_split::Links {
        uids: &records.uids,
        edges: &edges.edges,
        weights: &edges.weights,
        reuse: veto_split::Reuse::of(delta),
    };
    let cluster_of =
        veto_split::split_vetoed(ctx, unify_cfg, tables_dir, &links, cluster_of, &mut report)
            .await?;
    edges.edges = Vec::new();
    edges.weights = Vec::new();
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        "unify: components done"
    );
    if unify_cfg.overrides.is_some() {
        check_never_match(ctx, &index, &cluster_of, &mut report).await?;
    }

    // Stable ids from the previous run's links.
    let before = previous_ids(
        previous_tables.map(|d| d.join("customer_links.parquet")),
        "customer_id",
        clusters::CUSTOMER,
        &index,
        records.uids.len(),
    )
    .await?;
    let (ids, changes) = clusters::assign_interned_ids(
        clusters::CUSTOMER,
        &cluster_of,
        &before.ids,
        &before.names,
        before.max,
    );
    report.id_changes = changes.len() as u64;
    if let Some((changes, _)) = delta {
        register_remerge(
            ctx,
            changes,
            &index,
            &cluster_of,
            &ids,
            &before,
            &mut report,
        )?;
    }

    // customer_links.
    let winners = dedup_winners(ctx, unify_cfg, &index, &cluster_of).await?;
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        "unify: stable ids done"
    );
    cluster_sizes(&cluster_of, ids.len(), unify_cfg, &mut report);
    let links = links_batch(&cluster_of, &ids, &records, &edges, winners)?;
    write_table(
        tables_dir,
        names::CUSTOMER_LINKS,
        &links.schema(),
        std::slice::from_ref(&links),
    )?;
    drop(links);
    drop(edges.best_rule);
    drop(index);
    drop((records, before.ids));
    register_written(ctx, tables_dir, names::CUSTOMER_LINKS).await?;
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        "unify: customer_links done"
    );

    write_id_changes(tables_dir, &changes)?;
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        "unify: id_changes done"
    );

    write_unified_customers(ctx, tables_dir, unify_cfg, delta, report.records as usize).await?;
    tracing::info!("unified_customers written");

    if !unify_cfg.identities.is_empty() {
        write_identity_graph(ctx, tables_dir, unify_cfg, &mut report).await?;
    }
    if let Some(section) = &unify_cfg.accounts {
        report.accounts =
            accounts::unify_accounts(cfg, section, ctx, tables_dir, previous_tables).await?;
    }
    report.seconds = started.elapsed().as_secs_f64();
    write_stats(tables_dir, &report)?;
    tracing::info!("unify stats written");
    Ok(report)
}

/// `match_pairs`: every matched pair with its rule and score (the empty table when none).
fn write_match_pairs(tables_dir: &Path, pairs: &[RecordBatch]) -> Result<()> {
    let schema = pairs.first().map(|b| b.schema()).unwrap_or_else(|| {
        Arc::new(Schema::new(vec![
            Field::new("left_uid", DataType::Utf8, true),
            Field::new("right_uid", DataType::Utf8, true),
            Field::new("rule", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
        ]))
    });
    write_table(tables_dir, names::MATCH_PAIRS, &schema, pairs)
}

/// Every record's uid, source and record id, ordered by uid: a record's position here is
/// its node in the components.
struct RecordIds {
    uids: StringArray,
    sources: StringArray,
    record_ids: StringArray,
}

impl RecordIds {
    async fn load(ctx: &SessionContext) -> Result<Self> {
        let batches = collect(
            ctx,
            "SELECT uid, source, record_id FROM unify_records ORDER BY uid",
            "record ids",
        )
        .await?;
        // One string array per column (no per-record String).
        let column = |i: usize| -> Result<StringArray> {
            let parts = batches
                .iter()
                .map(|b| arrow::compute::cast(b.column(i), &DataType::Utf8))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            if parts.is_empty() {
                return Ok(StringArray::from(Vec::<&str>::new()));
            }
            let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
            Ok(arrow::compute::concat(&refs)?.as_string::<i32>().clone())
        };
        Ok(RecordIds {
            uids: column(0)?,
            sources: column(1)?,
            record_ids: column(2)?,
        })
    }
}

/// The matched pairs as edges between record positions, and per record the first rule (in
/// the configured order) that matched it: its `matched_by`.
struct PairEdges {
    edges: Vec<(u32, u32)>,
    /// Per edge: its match weight (probabilistic) or score (rules), strongest highest.
    weights: Vec<f64>,
    /// Per record: (rule order, position in `rule_names`); `u32::MAX` when unmatched.
    best_rule: Vec<(i64, u32)>,
    rule_names: Vec<String>,
}

impl PairEdges {
    fn new(
        pairs: &[RecordBatch],
        index: &HashMap<&str, u32>,
        rules: &[MatchRule],
        records: usize,
    ) -> Result<Self> {
        let mut out = PairEdges {
            edges: Vec::with_capacity(rows(pairs) as usize),
            weights: Vec::with_capacity(rows(pairs) as usize),
            best_rule: vec![(i64::MAX, u32::MAX); records],
            rule_names: Vec::new(),
        };
        let mut name_ids: HashMap<String, u32> = HashMap::new();
        let rule_order: HashMap<&str, i64> = rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.as_str(), i as i64))
            .collect();
        for b in pairs {
            let l = arrow::compute::cast(b.column(0), &DataType::Utf8)?;
            let r = arrow::compute::cast(b.column(1), &DataType::Utf8)?;
            let rule = arrow::compute::cast(b.column(2), &DataType::Utf8)?;
            let (l, r, rule) = (
                l.as_string::<i32>(),
                r.as_string::<i32>(),
                rule.as_string::<i32>(),
            );
            let weight = arrow::compute::cast(
                b.column_by_name("match_weight").unwrap_or(b.column(3)),
                &DataType::Float64,
            )?;
            let weight = weight.as_primitive::<arrow::datatypes::Float64Type>();
            for i in 0..b.num_rows() {
                let (Some(&a), Some(&c)) = (index.get(l.value(i)), index.get(r.value(i))) else {
                    continue;
                };
                out.edges.push((a, c));
                out.weights.push(if weight.is_valid(i) {
                    weight.value(i)
                } else {
                    0.0
                });
                let name = rule.value(i);
                let ord = rule_order.get(name).copied().unwrap_or(i64::MAX - 1);
                for node in [a, c] {
                    if ord < out.best_rule[node as usize].0 {
                        let id = match name_ids.get(name) {
                            Some(id) => *id,
                            None => {
                                out.rule_names.push(name.to_string());
                                let id = out.rule_names.len() as u32 - 1;
                                name_ids.insert(name.to_string(), id);
                                id
                            }
                        };
                        out.best_rule[node as usize] = (ord, id);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// A never-match decision cannot hold when other links join the two records anyway: each
/// such pair is a warning.
async fn check_never_match(
    ctx: &SessionContext,
    index: &HashMap<&str, u32>,
    cluster_of: &[u32],
    report: &mut UnifyReport,
) -> Result<()> {
    let never = collect(
        ctx,
        "SELECT left_uid, right_uid FROM unify_overrides WHERE decision = 'no_match'",
        "never-match pairs",
    )
    .await?;
    for b in &never {
        let l = arrow::compute::cast(b.column(0), &DataType::Utf8)?;
        let r = arrow::compute::cast(b.column(1), &DataType::Utf8)?;
        let (l, r) = (l.as_string::<i32>(), r.as_string::<i32>());
        for i in 0..b.num_rows() {
            if let (Some(&a), Some(&c)) = (index.get(l.value(i)), index.get(r.value(i))) {
                if cluster_of[a as usize] == cluster_of[c as usize] {
                    report.override_conflicts += 1;
                    let w = format!(
                        "never-match pair {} / {} is still one customer through other matches; add more no_match pairs or review the rules (panorama explain)",
                        l.value(i),
                        r.value(i)
                    );
                    tracing::warn!("{w}");
                    report.warnings.push(w);
                }
            }
        }
    }
    Ok(())
}

/// An incremental run merges again only the customers that are not exactly as before:
/// registers `unify_remerge` (customers to merge again) and `unify_dropped` (previous
/// customers whose profile row goes).
fn register_remerge(
    ctx: &SessionContext,
    changes: &incremental::Changes,
    index: &HashMap<&str, u32>,
    cluster_of: &[u32],
    ids: &[String],
    before: &PreviousIds,
    report: &mut UnifyReport,
) -> Result<()> {
    let mut touched = vec![false; cluster_of.len()];
    for uid in &changes.touched {
        if let Some(&i) = index.get(uid.as_str()) {
            touched[i as usize] = true;
        }
    }
    let unchanged = clusters::unchanged(
        cluster_of,
        ids,
        &before.ids,
        &before.names,
        &touched,
        &before.sizes,
    );
    let kept: std::collections::HashSet<&str> = ids
        .iter()
        .zip(&unchanged)
        .filter(|(_, u)| **u)
        .map(|(id, _)| id.as_str())
        .collect();
    let remerge = ids
        .iter()
        .zip(&unchanged)
        .filter(|(_, u)| !**u)
        .map(|(id, _)| id.as_str());
    let dropped = before
        .names
        .iter()
        .map(|k| k.as_str())
        .filter(|k| !kept.contains(k));
    for (table, list) in [
        ("unify_remerge", remerge.collect::<Vec<_>>()),
        ("unify_dropped", dropped.collect::<Vec<_>>()),
    ] {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "customer_id",
            DataType::Utf8,
            false,
        )]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(list))])?;
        register(ctx, table, vec![batch], schema)?;
    }
    report.remerged_customers = ids.len() as u64 - kept.len() as u64;
    Ok(())
}

/// Customers, singletons and the largest cluster into the report; a warning when customers
/// merge more than `unify.large_cluster` records.
fn cluster_sizes(
    cluster_of: &[u32],
    customers: usize,
    unify_cfg: &UnifySection,
    report: &mut UnifyReport,
) {
    let mut sizes = vec![0u64; customers];
    for c in cluster_of {
        sizes[*c as usize] += 1;
    }
    report.customers = customers as u64;
    report.largest_cluster = sizes.iter().copied().max().unwrap_or(0);
    report.singletons = sizes.iter().filter(|s| **s == 1).count() as u64;
    report.large_clusters = sizes
        .iter()
        .filter(|s| **s as usize > unify_cfg.large_cluster)
        .count() as u64;
    if report.large_clusters > 0 {
        let w = format!(
            "{} customer(s) merge more than {} records (unify.large_cluster), the largest {}: check for over-merging with panorama explain",
            report.large_clusters, unify_cfg.large_cluster, report.largest_cluster
        );
        tracing::warn!("{w}");
        report.warnings.push(w);
    }
}

/// `customer_links`: each record's customer, source, record id, uid, the first rule that
/// matched it (`singleton` when none) and whether it wins its source's dedup.
fn links_batch(
    cluster_of: &[u32],
    ids: &[String],
    records: &RecordIds,
    edges: &PairEdges,
    winners: Vec<bool>,
) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        links_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                cluster_of.iter().map(|c| ids[*c as usize].as_str()),
            )),
            Arc::new(records.sources.clone()),
            Arc::new(records.record_ids.clone()),
            Arc::new(records.uids.clone()),
            Arc::new(StringArray::from_iter_values(edges.best_rule.iter().map(
                |(_, r)| {
                    edges
                        .rule_names
                        .get(*r as usize)
                        .map_or("singleton", |n| n.as_str())
                },
            ))),
            Arc::new(arrow::array::BooleanArray::from(winners)),
        ],
    )?)
}

fn links_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("record_id", DataType::Utf8, false),
        Field::new("uid", DataType::Utf8, false),
        Field::new("matched_by", DataType::Utf8, false),
        Field::new("source_winner", DataType::Boolean, false),
    ]))
}

/// `id_changes`: customers whose id is new, split, merged or kept from another.
fn write_id_changes(tables_dir: &Path, changes: &[clusters::IdChange]) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("previous_customer_id", DataType::Utf8, false),
        Field::new("change", DataType::Utf8, false),
        Field::new("records", DataType::UInt64, false),
    ]));
    let mut c1 = StringBuilder::new();
    let mut c2 = StringBuilder::new();
    let mut c3 = StringBuilder::new();
    let mut c4 = UInt64Builder::new();
    for c in changes {
        c1.append_value(&c.customer_id);
        c2.append_value(&c.previous_customer_id);
        c3.append_value(c.change);
        c4.append_value(c.records);
    }
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(c1.finish()),
            Arc::new(c2.finish()),
            Arc::new(c3.finish()),
            Arc::new(c4.finish()),
        ],
    )?;
    write_table(tables_dir, names::ID_CHANGES, &schema, &[batch])
}

/// `unified_customers` and `unified_customers_provenance`: one profile per customer by the
/// merge policies. An incremental run (`delta`) keeps unchanged customers' previous rows.
async fn write_unified_customers(
    ctx: &SessionContext,
    tables_dir: &Path,
    unify_cfg: &UnifySection,
    delta: Option<&(incremental::Changes, incremental::Baseline)>,
    records: usize,
) -> Result<()> {
    // One aggregation over all customers needs memory in proportion to the records (the
    // merge aggregates keep row references, which DataFusion cannot spill): beyond the budget,
    // customers are merged in chunks by id.
    let budget = crate::query_limits::memory_limit().unwrap_or(usize::MAX);
    let chunks = unify_cfg.merge_chunks.unwrap_or_else(|| {
        if records.saturating_mul(MERGE_BYTES_PER_RECORD) <= budget {
            1
        } else {
            records.div_ceil((budget / CHUNK_BYTES_PER_RECORD).max(1))
        }
    });
    let chunks = chunks.max(1);
    let dedup = unify_cfg
        .sources
        .values()
        .any(|m| m.get_ref().dedup.is_some());
    let chunks = if delta.is_some() { 1 } else { chunks };
    let sqls: Vec<String> = match delta {
        // Unchanged customers keep their previous profile row; the others are merged again.
        Some((_, baseline)) => {
            for (name, table) in [
                ("unify_previous_customers", names::UNIFIED_CUSTOMERS),
                (
                    "unify_previous_provenance",
                    names::UNIFIED_CUSTOMERS_PROVENANCE,
                ),
            ] {
                let _ = ctx.deregister_table(name);
                ctx.register_parquet(
                    name,
                    baseline
                        .tables
                        .join(format!("{table}.parquet"))
                        .to_string_lossy()
                        .as_ref(),
                    ParquetReadOptions::default(),
                )
                .await?;
            }
            let provenance = merge::provenance_columns()
                .iter()
                .map(|c| format!("v.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                format!(
                    "SELECT p.*, {provenance} FROM unify_previous_customers p \
                     JOIN unify_previous_provenance v ON v.customer_id = p.customer_id \
                     LEFT ANTI JOIN unify_dropped d ON p.customer_id = d.customer_id"
                ),
                merge::unified_customers_sql(unify_cfg.merge.as_ref(), dedup, merge::Part::Listed),
            ]
        }
        None => (0..chunks)
            .map(|k| {
                merge::unified_customers_sql(
                    unify_cfg.merge.as_ref(),
                    dedup,
                    match chunks {
                        1 => merge::Part::All,
                        _ => merge::Part::Chunk(k, chunks),
                    },
                )
            })
            .collect(),
    };
    if chunks > 1 {
        tracing::info!(chunks, "unified customers merged in chunks");
        // In chunks, each record with its customer is joined once and streamed to disk, so
        // the chunks need no join (at 10M people a join inside each held the records table
        // in memory).
        write_query(
            ctx,
            "SELECT r.*, l.customer_id, l.source_winner FROM customer_links l JOIN unify_records r ON r.uid = l.uid",
            tables_dir,
            "unify_linked",
        )
        .await?;
        register_written(ctx, tables_dir, "unify_linked").await?;
    }
    let provenance = merge::provenance_columns();
    let is_provenance = |c: &str| provenance.iter().any(|p| p == c);
    write_queries_into(
        ctx,
        &sqls,
        tables_dir,
        &[
            (names::UNIFIED_CUSTOMERS, &|c: &str| !is_provenance(c)),
            (names::UNIFIED_CUSTOMERS_PROVENANCE, &|c: &str| {
                c == "customer_id" || is_provenance(c)
            }),
        ],
    )
    .await?;
    let _ = ctx.deregister_table("unify_linked");
    let _ = std::fs::remove_file(tables_dir.join("unify_linked.parquet"));
    Ok(())
}

/// `identity_graph`: anonymous ids stitched to customers.
async fn write_identity_graph(
    ctx: &SessionContext,
    tables_dir: &Path,
    unify_cfg: &UnifySection,
    report: &mut UnifyReport,
) -> Result<()> {
    let sources: Vec<(&str, &IdentityMap)> = unify_cfg
        .identities
        .iter()
        .map(|(source, map)| (source.as_str(), map.get_ref()))
        .collect();
    let sql = identity::identity_graph_sql(&sources);
    report.anonymous_ids = write_query(ctx, &sql, tables_dir, names::IDENTITY_GRAPH).await?;
    register_written(ctx, tables_dir, names::IDENTITY_GRAPH).await?;
    report.stitched_ids = count(
        ctx,
        "SELECT count(customer_id) FROM identity_graph",
        "stitched ids",
    )
    .await?;
    Ok(())
}

/// Candidate and matched pairs by ordered match rules (`mode = "rules"`). With `delta_skips`
/// (an incremental run: each rule's oversized touched blocks), only pairs with a touched
/// record are compared.
async fn rule_pairs(
    cfg: &ProjectConfig,
    ctx: &SessionContext,
    unify_cfg: &UnifySection,
    rules: &[MatchRule],
    report: &mut UnifyReport,
    delta_skips: Option<&[Option<String>]>,
) -> Result<Vec<RecordBatch>> {
    let mut candidates = Vec::new();
    let staged = fields::staged_fields(&unify_cfg.custom_fields());
    for (order, rule) in rules.iter().enumerate() {
        matching::check_rule(rule, &staged).map_err(|m| Error::invalid("unify", m))?;
        let (skip, sides) = match delta_skips {
            Some(skips) => (
                skips[order].clone(),
                &[matching::Sides::DeltaLeft, matching::Sides::DeltaRight][..],
            ),
            None => (
                skip_oversized_blocks(
                    ctx,
                    &matching::blocking_key(rule),
                    &format!("rule `{}`", rule.name),
                    &format!("unify_skip_{order}"),
                    unify_cfg.max_block_size,
                    report,
                )
                .await?,
                &[matching::Sides::All][..],
            ),
        };
        if delta_skips.is_some() {
            matching::register_near(ctx, &matching::blocking_key(rule)).await?;
        }
        let mut found = 0;
        for sides in sides {
            let pairs = collect(
                ctx,
                &matching::candidate_pairs_sql(rule, order, skip.as_deref(), *sides),
                &format!("rule `{}`", rule.name),
            )
            .await?;
            found += rows(&pairs);
            candidates.extend(pairs);
        }
        report.pairs_per_rule.push((rule.name.clone(), found));
        report.candidate_pairs += found;
    }
    let cand_schema = Arc::new(Schema::new(vec![
        Field::new("left_uid", DataType::Utf8, true),
        Field::new("right_uid", DataType::Utf8, true),
        Field::new("rule", DataType::Utf8, true),
        Field::new("rule_order", DataType::Int64, true),
        Field::new("score", DataType::Float64, true),
    ]));
    let candidates = candidates
        .iter()
        .map(|b| conform(b, &cand_schema))
        .collect::<Result<Vec<_>>>()?;
    match &unify_cfg.overrides {
        None => register(ctx, "unify_candidates", candidates, cand_schema)?,
        Some(file) => {
            register(ctx, "unify_candidates_by_rules", candidates, cand_schema)?;
            let path = cfg.root.join(file.get_ref());
            load_overrides(ctx, &path).await?;
            let _ = ctx.deregister_table("unify_candidates");
            let view = ctx.sql(OVERRIDDEN_CANDIDATES_SQL).await?.into_view();
            ctx.register_table("unify_candidates", view)?;
        }
    }
    collect(ctx, MATCH_PAIRS_SQL, "match pairs").await
}

/// Matched pairs after manual decisions: pairs named in the overrides are replaced by the
/// always-match ones (rule `override`); never-match pairs are dropped.
async fn apply_overrides(
    ctx: &SessionContext,
    pairs: Vec<RecordBatch>,
) -> Result<Vec<RecordBatch>> {
    let Some(schema) = pairs.first().map(|b| b.schema()) else {
        return Ok(pairs);
    };
    register(ctx, "unify_matched", pairs, schema.clone())?;
    let extra: Vec<String> = schema
        .fields()
        .iter()
        .skip(4)
        .map(|f| format!("CAST(NULL AS {}) AS {}", sql_type(f.data_type()), f.name()))
        .collect();
    let sql = format!(
        "SELECT p.* FROM unify_matched p
         LEFT JOIN (SELECT DISTINCT least(left_uid, right_uid) AS a, greatest(left_uid, right_uid) AS b FROM unify_overrides) o
           ON o.a = p.left_uid AND o.b = p.right_uid
         WHERE o.a IS NULL
         UNION ALL
         SELECT DISTINCT least(left_uid, right_uid), greatest(left_uid, right_uid), 'override', CAST(1.0 AS DOUBLE){comma}{extra}
         FROM unify_overrides WHERE decision = 'match'",
        comma = if extra.is_empty() { "" } else { ", " },
        extra = extra.join(", ")
    );
    let out = collect(ctx, &sql, "overrides").await?;
    let _ = ctx.deregister_table("unify_matched");
    out.iter().map(|b| conform(b, &schema)).collect()
}

/// The SQL name of the column types match pairs carry.
fn sql_type(t: &DataType) -> &'static str {
    match t {
        DataType::Float64 => "DOUBLE",
        DataType::Int8 => "TINYINT",
        DataType::Int32 => "INT",
        DataType::Int64 => "BIGINT",
        _ => "VARCHAR",
    }
}

/// Per record, whether it is its customer's winner among the records of its source (always
/// true for sources without a `dedup` policy).
async fn dedup_winners(
    ctx: &SessionContext,
    unify_cfg: &UnifySection,
    index: &HashMap<&str, u32>,
    cluster_of: &[u32],
) -> Result<Vec<bool>> {
    let mut winners = vec![true; cluster_of.len()];
    let policies: HashMap<&str, DedupPolicy> = unify_cfg
        .sources
        .iter()
        .filter_map(|(s, m)| m.get_ref().dedup.map(|p| (s.as_str(), p)))
        .collect();
    if policies.is_empty() {
        return Ok(winners);
    }
    let filled = [
        "first_name",
        "last_name",
        "email",
        "phone",
        "street",
        "postcode",
        "city",
        "birth_date",
        "gender",
        "company",
    ]
    .iter()
    .map(|f| format!("CASE WHEN {f} IS NULL THEN 0 ELSE 1 END"))
    .collect::<Vec<_>>()
    .join(" + ");
    let sources: Vec<String> = policies.keys().map(|s| staging::literal(s)).collect();
    let batches = collect(
        ctx,
        &format!(
            "SELECT uid, source, CAST(updated_at AS TIMESTAMP) AS ts, {filled} AS filled FROM unify_records WHERE source IN ({})",
            sources.join(", ")
        ),
        "dedup candidates",
    )
    .await?;
    // Best record per (customer cluster, source): (rank key, uid index).
    let mut best: HashMap<(u32, String), ((i64, i64), u32)> = HashMap::new();
    for b in &batches {
        let uid = arrow::compute::cast(b.column(0), &DataType::Utf8)?;
        let source = arrow::compute::cast(b.column(1), &DataType::Utf8)?;
        let ts = arrow::compute::cast(b.column(2), &DataType::Int64)?;
        let filled = arrow::compute::cast(b.column(3), &DataType::Int64)?;
        let (uid, source) = (uid.as_string::<i32>(), source.as_string::<i32>());
        let (ts, filled) = (
            ts.as_primitive::<arrow::datatypes::Int64Type>(),
            filled.as_primitive::<arrow::datatypes::Int64Type>(),
        );
        for i in 0..b.num_rows() {
            let Some(&idx) = index.get(uid.value(i)) else {
                continue;
            };
            let src = source.value(i);
            // Larger key wins; records without a time lose to those with one.
            let recent = if ts.is_valid(i) {
                ts.value(i)
            } else {
                i64::MIN
            };
            let key = match policies[src] {
                DedupPolicy::MostRecent => (recent, 0),
                DedupPolicy::LeastRecent => (
                    if ts.is_valid(i) {
                        -ts.value(i)
                    } else {
                        i64::MIN
                    },
                    0,
                ),
                DedupPolicy::MostFilled => (filled.value(i), recent),
            };
            winners[idx as usize] = false;
            let e = best
                .entry((cluster_of[idx as usize], src.to_string()))
                .or_insert((key, idx));
            // Ties go to the smaller uid, so the choice is stable across runs.
            if key > e.0 || (key == e.0 && idx < e.1) {
                *e = (key, idx);
            }
        }
    }
    for (_, idx) in best.into_values() {
        winners[idx as usize] = true;
    }
    Ok(winners)
}

fn write_stats(dir: &Path, r: &UnifyReport) -> Result<()> {
    let mut metrics: Vec<(String, u64)> = vec![
        ("records".into(), r.records),
        ("candidate_pairs".into(), r.candidate_pairs),
        ("matched_pairs".into(), r.matched_pairs),
        ("customers".into(), r.customers),
        ("largest_cluster".into(), r.largest_cluster),
        ("singletons".into(), r.singletons),
        ("large_clusters".into(), r.large_clusters),
        ("id_changes".into(), r.id_changes),
        ("skipped_blocks".into(), r.skipped_blocks),
        ("anonymous_ids".into(), r.anonymous_ids),
        ("stitched_ids".into(), r.stitched_ids),
        ("override_conflicts".into(), r.override_conflicts),
        ("accounts".into(), r.accounts),
        ("incremental".into(), r.incremental as u64),
        ("vetoed_splits".into(), r.vetoed_splits),
        ("vetoed_links".into(), r.vetoed_links),
        ("veto_checked_customers".into(), r.veto_checked_customers),
        ("touched_records".into(), r.touched_records),
        ("resized_records".into(), r.resized_records),
        ("remerged_customers".into(), r.remerged_customers),
    ];
    metrics.extend(
        r.pairs_per_rule
            .iter()
            .map(|(rule, n)| (format!("pairs_rule:{rule}"), *n)),
    );
    metrics.extend(
        r.unconverted
            .iter()
            .map(|(source, field, n)| (format!("unconverted:{source}.{field}"), *n)),
    );
    let schema = Arc::new(Schema::new(vec![
        Field::new("metric", DataType::Utf8, false),
        Field::new("value", DataType::UInt64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                metrics.iter().map(|(m, _)| m.as_str()),
            )),
            Arc::new(arrow::array::UInt64Array::from_iter_values(
                metrics.iter().map(|(_, v)| *v),
            )),
        ],
    )?;
    write_table(dir, names::UNIFY_STATS, &schema, &[batch])
}
