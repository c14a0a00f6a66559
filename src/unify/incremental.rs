//! Incremental unification: when a run follows a good one that unified the same config, only
//! the records that are new, changed or deleted since then are staged and compared.
//!
//! The previous run is the *baseline*. Each mapped source's rows are compared with the
//! baseline's copy of that source by record id and a hash of the columns staging reads, so
//! an untouched record keeps its staged row and the pairs it had. Touched records are staged
//! on their own (`unify_delta`) and compared, by the same blocking keys, with every current
//! record; pairs between two untouched records are carried over from the baseline's
//! `match_pairs`. Components and stable ids are then computed over all records as in a full
//! run (union-find over a million records takes well under a second), and only customers
//! whose records changed are merged again: the others keep their baseline profile row.
//!
//! In probabilistic mode the baseline's model (`match_weights`, `match_term_frequencies`)
//! scores the new pairs: a model is learned by a full unification only, so weights do not
//! drift with each increment (`panorama run --full` learns it again).
//!
//! Whatever cannot be done incrementally falls back to a full unification, with the reason
//! logged: a changed `[unify]` config or Panorama version, overrides, a source new to the
//! baseline or with other columns, more than `unify.incremental_max_change` of the records
//! touched, or a blocking key whose block crossed `unify.max_block_size` either way.
//!
//! In probabilistic mode a pair's prior depends on how many records hold its key, so the
//! unchanged records of a block whose size bin a touched record moved are compared again too
//! ([`touch_resized_blocks`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::hash_utils::{create_hashes, RandomState};
use datafusion::datasource::MemTable;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use super::config::{SourceMap, UnifySection};
use super::staging::ident;
use super::{collect, conform, register, register_like, rows, UnifyReport};
use crate::config::ProjectConfig;
use crate::error::{Error, Result};
use crate::table_catalog::names;
use crate::unify::probabilistic::em::size_bin_sql;

/// The previous run's unification, which an incremental one builds on.
pub struct Baseline {
    pub tables: PathBuf,
    pub sources: PathBuf,
    pub report: UnifyReport,
}

/// What the sources changed since the baseline.
pub struct Changes {
    /// uids of records that are new, changed or deleted.
    pub touched: HashSet<String>,
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    /// Records in the current sources.
    pub records: u64,
    /// New and changed rows per source (the columns staging reads).
    pub rows: BTreeMap<String, (SchemaRef, Vec<RecordBatch>)>,
}

/// Hash of what a unification depends on besides the records: the `[unify]` section and the
/// Panorama version (normalizers and comparisons may change between versions).
pub fn unify_hash(cfg: &ProjectConfig) -> Option<String> {
    use sha2::Digest;
    let table: toml::Table = toml::from_str(&cfg.text).ok()?;
    let unify = toml::to_string(table.get("unify")?).ok()?;
    let mut h = sha2::Sha256::new();
    h.update(env!("CARGO_PKG_VERSION"));
    h.update("\n");
    h.update(unify);
    Some(crate::output::hex(&h.finalize()[..16]))
}

/// Why a run unifies in full rather than on the changed records only (not a failure: the
/// reason is logged and the full unification runs).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FullRun {
    #[error("a full run was asked for (--full)")]
    Asked,
    #[error("unify.incremental_max_change is 0")]
    Disabled,
    #[error("no previous run")]
    NoPreviousRun,
    #[error("no previous run directory")]
    NoPreviousRunDirectory,
    #[error("previous manifest: {0}")]
    PreviousManifest(String),
    #[error("the previous run did not unify")]
    NotUnifiedBefore,
    #[error("the config has no [unify] section")]
    NoUnifySection,
    #[error("the [unify] config or Panorama's version changed since the previous run")]
    ConfigChanged,
    #[error("unify.overrides are applied by full runs only")]
    Overrides,
    #[error("the previous run has no {0} table")]
    MissingTable(&'static str),
    #[error("source `{0}` is new since the previous run")]
    NewSource(String),
    #[error("source `{source_name}` had other columns in the previous run ({error})")]
    ColumnsChanged { source_name: String, error: String },
    #[error("source `{source_name}`'s columns changed type since the previous run ({error})")]
    TypesChanged { source_name: String, error: String },
    #[error("{touched} of {records} records changed ({:.1}%, more than unify.incremental_max_change)", share * 100.0)]
    TooManyChanges {
        touched: usize,
        records: u64,
        share: f64,
    },
    #[error("a block of {key} crossed unify.max_block_size ({cap} records)")]
    BlockCrossedCap { key: String, cap: usize },
}

/// The baseline an incremental unification can build on, or why there is none.
pub fn baseline(
    cfg: &ProjectConfig,
    unify_cfg: &UnifySection,
    previous_tables: Option<&Path>,
) -> std::result::Result<Baseline, FullRun> {
    let tables = previous_tables.ok_or(FullRun::NoPreviousRun)?;
    let run_dir = tables.parent().ok_or(FullRun::NoPreviousRunDirectory)?;
    let text = std::fs::read_to_string(run_dir.join("manifest.json"))
        .map_err(|e| FullRun::PreviousManifest(e.to_string()))?;
    let manifest: crate::workspace::Manifest =
        serde_json::from_str(&text).map_err(|e| FullRun::PreviousManifest(e.to_string()))?;
    let report = manifest.unify.ok_or(FullRun::NotUnifiedBefore)?;
    let hash = unify_hash(cfg).ok_or(FullRun::NoUnifySection)?;
    if report.unify_hash.as_deref() != Some(hash.as_str()) {
        return Err(FullRun::ConfigChanged);
    }
    if unify_cfg.overrides.is_some() {
        return Err(FullRun::Overrides);
    }
    let mut needed = vec![
        names::UNIFY_RECORDS,
        names::MATCH_PAIRS,
        names::CUSTOMER_LINKS,
        names::UNIFIED_CUSTOMERS,
        names::UNIFIED_CUSTOMERS_PROVENANCE,
    ];
    if unify_cfg.match_mode() == super::config::MatchMode::Probabilistic {
        needed.extend([names::MATCH_WEIGHTS, names::MATCH_TERM_FREQUENCIES]);
    }
    if let Some(missing) = needed
        .iter()
        .find(|t| !tables.join(format!("{t}.parquet")).is_file())
    {
        return Err(FullRun::MissingTable(missing));
    }
    Ok(Baseline {
        tables: tables.to_path_buf(),
        sources: run_dir.join("sources"),
        report,
    })
}

/// The source columns staging reads for a mapping, record id first; None when a mapped SQL
/// expression may read any column (then every column is compared).
fn mapped_columns(map: &SourceMap, record_id: &str) -> Option<Vec<String>> {
    let mut cols = vec![record_id.to_string()];
    let custom = map.custom.values().map(|v| {
        v.as_str()
            .map(|c| super::config::Mapped::Column(c.to_string()))
    });
    let builtin = map.builtin().into_iter().map(|(_, m)| Some(m.clone()));
    for m in builtin.chain(custom) {
        let c = m.as_ref().and_then(|m| m.column())?.to_string();
        if !cols.contains(&c) {
            cols.push(c);
        }
    }
    Some(cols)
}

/// Record ids (as text) and row hashes of one source's mapped columns.
fn keyed_hashes(batches: &[RecordBatch]) -> Result<(Vec<StringArray>, Vec<Vec<u64>>)> {
    let state = RandomState::with_seed(0);
    let mut keys = Vec::with_capacity(batches.len());
    let mut hashes = Vec::with_capacity(batches.len());
    for b in batches {
        let mut h = vec![0u64; b.num_rows()];
        create_hashes(b.columns(), &state, &mut h)?;
        // A NULL hashes like "no value", so hash where the NULLs are too.
        for c in b.columns() {
            if let Some(nulls) = c.nulls() {
                for (i, v) in h.iter_mut().enumerate() {
                    if nulls.is_null(i) {
                        *v = v.rotate_left(7) ^ 0x9e37_79b9_7f4a_7c15;
                    }
                }
            }
        }
        keys.push(
            arrow::compute::cast(b.column(0), &DataType::Utf8)?
                .as_string::<i32>()
                .clone(),
        );
        hashes.push(h);
    }
    Ok((keys, hashes))
}

/// Compare every mapped source with the baseline's copy. `Ok(Err(reason))`: the sources
/// cannot be compared, unify in full.
pub async fn changes(
    cfg: &ProjectConfig,
    ctx: &SessionContext,
    unify_cfg: &UnifySection,
    baseline: &Baseline,
) -> Result<std::result::Result<Changes, FullRun>> {
    let mut out = Changes {
        touched: HashSet::new(),
        inserted: 0,
        updated: 0,
        deleted: 0,
        records: 0,
        rows: BTreeMap::new(),
    };
    for (source, map) in &unify_cfg.sources {
        let src = cfg
            .sources
            .get(source)
            .ok_or_else(|| Error::invalid(format!("unify.sources.{source}"), "no such source"))?;
        let map = map.get_ref();
        let record_id = super::record_id_column(cfg, src, source, &map.record_id, "unify.sources")?;
        let select = match mapped_columns(map, &record_id) {
            Some(cols) => format!(
                "SELECT {} FROM {}",
                cols.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", "),
                ident(source)
            ),
            None => format!(
                "SELECT {} AS \"__panorama_record_id\", * FROM {}",
                ident(&record_id),
                ident(source)
            ),
        };
        let dir = baseline.sources.join(source);
        if !dir.is_dir() {
            return Ok(Err(FullRun::NewSource(source.clone())));
        }
        let pctx = crate::engine::base_context();
        pctx.register_parquet(
            source,
            dir.to_string_lossy().as_ref(),
            ParquetReadOptions::default(),
        )
        .await?;
        let before = match pctx.sql(&select).await {
            Ok(df) => df.collect().await?,
            Err(e) => {
                return Ok(Err(FullRun::ColumnsChanged {
                    source_name: source.clone(),
                    error: e.to_string(),
                }))
            }
        };
        let df = ctx.sql(&select).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let now = df.collect().await?;
        // Same types as now, so equal values hash equally (a changed type changes every hash,
        // and the share of changed records then calls for a full run).
        let before = match before
            .iter()
            .map(|b| conform(b, &schema))
            .collect::<Result<Vec<_>>>()
        {
            Ok(b) => b,
            Err(e) => {
                return Ok(Err(FullRun::TypesChanged {
                    source_name: source.clone(),
                    error: e.to_string(),
                }))
            }
        };
        let (before_keys, before_hashes) = keyed_hashes(&before)?;
        let mut previous: HashMap<&str, u64> = HashMap::with_capacity(rows(&before) as usize);
        for (k, h) in before_keys.iter().zip(&before_hashes) {
            for (i, h) in h.iter().enumerate() {
                if k.is_valid(i) {
                    previous.insert(k.value(i), *h);
                }
            }
        }
        let (now_keys, now_hashes) = keyed_hashes(&now)?;
        let mut changed_rows = Vec::new();
        for ((b, k), h) in now.iter().zip(&now_keys).zip(&now_hashes) {
            out.records += b.num_rows() as u64;
            let mut keep = Vec::with_capacity(b.num_rows());
            for (i, h) in h.iter().enumerate() {
                let key = k.is_valid(i).then(|| k.value(i));
                let touched = match key.and_then(|key| previous.remove(key)) {
                    Some(old) if old == *h => false,
                    Some(_) => {
                        out.updated += 1;
                        true
                    }
                    None => {
                        out.inserted += 1;
                        true
                    }
                };
                if touched {
                    if let Some(key) = key {
                        out.touched.insert(format!("{source}:{key}"));
                    }
                }
                keep.push(touched);
            }
            let changed =
                arrow::compute::filter_record_batch(b, &arrow::array::BooleanArray::from(keep))?;
            if changed.num_rows() > 0 {
                changed_rows.push(changed);
            }
        }
        out.deleted += previous.len() as u64;
        out.touched
            .extend(previous.keys().map(|k| format!("{source}:{k}")));
        out.rows.insert(source.clone(), (schema, changed_rows));
    }
    Ok(Ok(out))
}

/// Stage the new and changed records as `unify_delta` (in the baseline's `unify_records`
/// shape), register the baseline's records as `unify_previous_records`, the touched uids
/// as `unify_touched` and those records as the baseline had them as `unify_touched_before`,
/// and write the current `unify_records`: the untouched baseline rows
/// plus the delta. Returns the number of records.
pub async fn stage(
    cfg: &ProjectConfig,
    ctx: &SessionContext,
    baseline: &Baseline,
    changes: &Changes,
    tables_dir: &Path,
) -> Result<u64> {
    let sctx = crate::run_context::new_context();
    for (source, (schema, batches)) in &changes.rows {
        sctx.register_table(
            source.as_str(),
            Arc::new(MemTable::try_new(schema.clone(), vec![batches.clone()])?),
        )?;
    }
    let delta = collect(&sctx, &super::staging_sql(cfg)?, "staging changed records").await?;
    let _ = ctx.deregister_table("unify_previous_records");
    ctx.register_parquet(
        "unify_previous_records",
        baseline
            .tables
            .join("unify_records.parquet")
            .to_string_lossy()
            .as_ref(),
        ParquetReadOptions::default(),
    )
    .await?;
    register_like(ctx, "unify_delta", &delta, "unify_previous_records").await?;
    register_uids(ctx, "unify_touched", changes.touched.iter())?;
    // The touched records as the baseline had them, read once: every block a touched record
    // left is among their keys.
    let gone = super::one_batch(
        ctx,
        "SELECT p.* FROM unify_previous_records p JOIN unify_touched t ON p.uid = t.uid",
        "touched records as they were",
    )
    .await?;
    register(
        ctx,
        "unify_touched_before",
        vec![gone.clone()],
        gone.schema(),
    )?;
    let n = super::write_queries(
        ctx,
        &[
            "SELECT p.* FROM unify_previous_records p LEFT ANTI JOIN unify_touched t ON p.uid = t.uid"
                .to_string(),
            "SELECT * FROM unify_delta".to_string(),
        ],
        tables_dir,
        names::UNIFY_RECORDS,
    )
    .await?;
    super::register_written(ctx, tables_dir, names::UNIFY_RECORDS).await?;
    // Each blocking rule compares the delta with every record, twice: read the matching
    // fields once into memory.
    let cols = cfg
        .unify
        .as_ref()
        .map_or_else(|| vec!["uid".to_string()], super::fields::matching_columns);
    let compare = ctx
        .sql(&format!("SELECT {} FROM unify_records", cols.join(", ")))
        .await?;
    // (A cluster cannot be sent an in-memory table: it reads the Parquet file.)
    let compare = match crate::table_io::scratch_dir(ctx) {
        None => compare.cache().await?.into_view(),
        Some(_) => compare.into_view(),
    };
    let _ = ctx.deregister_table("unify_compare");
    ctx.register_table("unify_compare", compare)?;
    Ok(n)
}

/// For each blocking key, the table of its oversized blocks among those the touched records
/// fall in (to skip, as the full run skips them), or `Err(reason)` when such a block crossed
/// `cap` either way since the baseline: the pairs the baseline kept or skipped there would
/// be wrong, so the run unifies in full.
pub async fn touched_oversized_blocks(
    ctx: &SessionContext,
    keys: &[Vec<String>],
    cap: usize,
) -> Result<std::result::Result<Vec<Option<String>>, FullRun>> {
    let mut out = Vec::new();
    for (b, key) in keys.iter().enumerate() {
        let cols = key.join(", ");
        let not_null = super::matching::filled_sql(key);
        // (Records compared again for a resized block are in the delta too, unchanged.)
        let blocks = format!(
            "SELECT DISTINCT {cols} FROM unify_delta WHERE {not_null} \
             UNION SELECT DISTINCT {cols} FROM unify_touched_before WHERE {not_null}",
        );
        let on: Vec<String> = key.iter().map(|k| format!("r.{k} = k.{k}")).collect();
        let sizes = |table: &str| {
            format!(
                "SELECT {rc}, count(*) AS records FROM {table} r JOIN ({blocks}) k ON {on} \
                 GROUP BY {rc} HAVING count(*) > {cap} ORDER BY {rc}",
                rc = key
                    .iter()
                    .map(|k| format!("r.{k}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                on = on.join(" AND "),
            )
        };
        let now = collect(ctx, &sizes("unify_compare"), "touched block sizes").await?;
        let before = collect(
            ctx,
            &sizes("unify_previous_records"),
            "previous block sizes",
        )
        .await?;
        let listed = |batches: &[RecordBatch]| -> Result<Vec<String>> {
            let mut v = Vec::new();
            for b in batches {
                let cols = (0..key.len())
                    .map(|i| arrow::compute::cast(b.column(i), &DataType::Utf8))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                for i in 0..b.num_rows() {
                    v.push(
                        cols.iter()
                            .map(|c| c.as_string::<i32>().value(i).to_string())
                            .collect::<Vec<_>>()
                            .join("\u{1f}"),
                    );
                }
            }
            Ok(v)
        };
        let (now_keys, before_keys) = (listed(&now)?, listed(&before)?);
        if now_keys != before_keys {
            return Ok(Err(FullRun::BlockCrossedCap {
                key: key.join("+"),
                cap,
            }));
        }
        if now_keys.is_empty() {
            out.push(None);
        } else {
            let table = format!("unify_skip_{b}");
            let schema = now[0].schema();
            register(ctx, &table, now, schema)?;
            out.push(Some(table));
        }
    }
    Ok(Ok(out))
}

/// Records to compare again although unchanged: those holding a blocking key whose size
/// bin (the key's holders, [`size_bin`]) the touched records moved since the baseline. A
/// pair's prior depends on its key's size, so the baseline's pairs in such a block, matched
/// or not, are no longer what a full run would score: their records join the touched ones
/// (`changes.touched`, `unify_touched` and `unify_delta`), whose pairs are all scored anew.
/// Returns how many were added.
pub async fn touch_resized_blocks(
    ctx: &SessionContext,
    keys: &[Vec<String>],
    changes: &mut Changes,
) -> Result<u64> {
    // With the delta, the touched records as they were (`unify_touched_before`) give each key's
    // size before (now − delta + those) without counting the previous records again.
    let mut resized: HashSet<String> = HashSet::new();
    for key in keys {
        let cols = key.join(", ");
        let nn = super::matching::filled_sql(key);
        let on = |a: &str, b: &str| {
            key.iter()
                .map(|k| format!("{a}.{k} = {b}.{k}"))
                .collect::<Vec<_>>()
                .join(" AND ")
        };
        let counted = |table: &str| {
            format!(
                "SELECT {rc}, count(*) AS n FROM {table} r JOIN k ON {on_r} GROUP BY {rc}",
                rc = key
                    .iter()
                    .map(|k| format!("r.{k}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                on_r = on("r", "k"),
            )
        };
        // Sizes now from the matching fields held in memory (`unify_compare`).
        let sql = format!(
            "WITH k AS (SELECT DISTINCT {cols} FROM unify_delta WHERE {nn} \
               UNION SELECT DISTINCT {cols} FROM unify_touched_before WHERE {nn}), \
             now AS ({now}), came AS ({came}), went AS ({went}), \
             moved AS (SELECT {kc} FROM k LEFT JOIN now ON {on_now} LEFT JOIN came ON {on_came} \
                       LEFT JOIN went ON {on_went} \
                       WHERE {bin_now} <> {bin_before}) \
             SELECT CAST(r.uid AS VARCHAR) AS uid FROM unify_compare r JOIN moved m ON {on_m}",
            now = counted("unify_compare"),
            came = counted("unify_delta"),
            went = counted("unify_touched_before"),
            kc = key
                .iter()
                .map(|k| format!("k.{k}"))
                .collect::<Vec<_>>()
                .join(", "),
            on_now = on("now", "k"),
            on_came = on("came", "k"),
            on_went = on("went", "k"),
            bin_now = size_bin_sql("coalesce(now.n, 0)"),
            bin_before =
                size_bin_sql("coalesce(now.n, 0) - coalesce(came.n, 0) + coalesce(went.n, 0)"),
            on_m = on("r", "m"),
        );
        for b in collect(ctx, &sql, "blocks whose size changed").await? {
            let uids = b.column(0).as_string::<i32>();
            resized.extend(uids.iter().flatten().map(String::from));
        }
    }
    resized.retain(|u| !changes.touched.contains(u));
    if resized.is_empty() {
        return Ok(0);
    }
    register_uids(ctx, "unify_resized", resized.iter())?;
    // Their staged rows are unchanged: read them from the current records.
    let rows = collect(
        ctx,
        "SELECT r.* FROM unify_records r JOIN unify_resized x ON CAST(r.uid AS VARCHAR) = x.uid \
         UNION ALL SELECT * FROM unify_delta",
        "records of resized blocks",
    )
    .await?;
    let delta_schema: SchemaRef =
        Arc::new(ctx.table("unify_delta").await?.schema().as_arrow().clone());
    let rows = rows
        .iter()
        .map(|b| conform(b, &delta_schema))
        .collect::<Result<Vec<_>>>()?;
    let _ = ctx.deregister_table("unify_delta");
    register(ctx, "unify_delta", rows, delta_schema)?;
    let added = resized.len() as u64;
    tracing::info!(
        records = added,
        "unchanged records compared again: their blocking keys changed size"
    );
    changes.touched.extend(resized);
    register_uids(ctx, "unify_touched", changes.touched.iter())?;
    Ok(added)
}

/// Register `uids` as a one-column table (`uid`) named `name`, replacing any before.
fn register_uids<'a>(
    ctx: &SessionContext,
    name: &str,
    uids: impl Iterator<Item = &'a String>,
) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![Field::new("uid", DataType::Utf8, false)]));
    let list = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(StringArray::from_iter_values(uids))],
    )?;
    register(ctx, name, vec![list], schema)
}

/// The baseline's matched pairs between two untouched records, as `unify_kept_pairs`.
pub async fn register_kept_pairs(ctx: &SessionContext, baseline: &Baseline) -> Result<()> {
    let _ = ctx.deregister_table("unify_previous_pairs");
    ctx.register_parquet(
        "unify_previous_pairs",
        baseline
            .tables
            .join("match_pairs.parquet")
            .to_string_lossy()
            .as_ref(),
        ParquetReadOptions::default(),
    )
    .await?;
    let view = ctx
        .sql(
            "SELECT p.* FROM unify_previous_pairs p \
             LEFT ANTI JOIN unify_touched a ON p.left_uid = a.uid \
             LEFT ANTI JOIN unify_touched b ON p.right_uid = b.uid",
        )
        .await?
        .into_view();
    let _ = ctx.deregister_table("unify_kept_pairs");
    ctx.register_table("unify_kept_pairs", view)?;
    Ok(())
}

/// Hard-link (or copy) a baseline table into this run's tables.
pub fn carry_over(baseline: &Baseline, tables_dir: &Path, name: &str) -> Result<()> {
    let from = baseline.tables.join(format!("{name}.parquet"));
    let to = tables_dir.join(format!("{name}.parquet"));
    if !from.is_file() {
        return Ok(());
    }
    let _ = std::fs::remove_file(&to);
    std::fs::hard_link(&from, &to)
        .or_else(|_| std::fs::copy(&from, &to).map(|_| ()))
        .map_err(|e| Error::io("cannot copy", &from, e))
}
