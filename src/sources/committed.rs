//! Records committed through real-time match (`POST /api/match` with `"commit": true`), folded
//! into their source when a run loads it, so the batch run unifies them like any record.
//!
//! The source stays the authority: a committed record whose primary key the source now has
//! is left out (the source's row wins), so a record committed online and later delivered by
//! the source is one record, not two.

use std::path::Path;

use datafusion::prelude::ParquetReadOptions;

use super::SourceReport;
use crate::config::ProjectConfig;
use crate::error::{Error, Result};
use crate::sql_text::ident;
use crate::table_catalog::names;

/// Append each source's committed records that the source lacks to its loaded data in
/// `run_dir`; returns how many were added.
pub async fn fold(
    cfg: &ProjectConfig,
    run_dir: &Path,
    reports: &mut [SourceReport],
) -> Result<u64> {
    let workspace = cfg.workspace_dir();
    let mut total = 0;
    for report in reports.iter_mut() {
        let table = crate::table_catalog::committed_table(&report.name);
        let ctx = crate::engine::base_context();
        if !crate::state::register(&ctx, &workspace, &table).await? {
            continue;
        }
        let Some(src) = cfg.sources.get(&report.name) else {
            continue;
        };
        let dir = run_dir.join("sources").join(&report.name);
        ctx.register_parquet(
            "loaded",
            dir.to_string_lossy().as_ref(),
            ParquetReadOptions::default(),
        )
        .await?;
        let schema = ctx.table("loaded").await?.schema().as_arrow().clone();
        let pk = src.primary_key.get_ref().columns();
        let on: Vec<String> = pk
            .iter()
            .map(|k| format!("s.{k} = x.{k}", k = ident(k)))
            .collect();
        // In the loaded shape, by column name; the latest commit of a key wins.
        let cols: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| {
                format!(
                    "arrow_cast(s.{n}, '{t}') AS {n}",
                    n = ident(f.name()),
                    t = f.data_type()
                )
            })
            .collect();
        // An erased person's committed record is dropped like their source rows.
        let erased = match crate::privacy_state::suppressed_condition(cfg, &report.name) {
            Some(cond)
                if crate::state::register(&ctx, &workspace, names::SUPPRESSION_LIST).await? =>
            {
                format!(" WHERE NOT ({cond})")
            }
            _ => String::new(),
        };
        let sql = format!(
            "SELECT {cols} FROM {t} s LEFT ANTI JOIN loaded x ON {on}{erased}",
            cols = cols.join(", "),
            t = ident(&table),
            on = on.join(" AND "),
        );
        let rows = match ctx.sql(&sql).await {
            Ok(df) => df.collect().await?,
            Err(e) => {
                return Err(Error::Conflict(format!(
                    "records committed to `{}` by real-time match no longer fit the source ({e}); \
                     move {} aside to go on",
                    report.name,
                    crate::state::dir(&workspace).join(&table).display()
                )))
            }
        };
        let rows = dedup_latest(rows, &schema, &pk)?;
        let n: usize = rows.iter().map(|b| b.num_rows()).sum();
        if n == 0 {
            continue;
        }
        crate::workspace::write_parquet(
            &dir.join("part-committed.parquet"),
            std::sync::Arc::new(schema),
            &rows,
        )?;
        report.rows_loaded += n as u64;
        total += n as u64;
        tracing::info!(source = %report.name, records = n, "committed real-time records folded in");
    }
    Ok(total)
}

/// Keep the last row of each primary key (state files are named by time, and read in order).
fn dedup_latest(
    rows: Vec<arrow::array::RecordBatch>,
    schema: &arrow::datatypes::Schema,
    pk: &[String],
) -> Result<Vec<arrow::array::RecordBatch>> {
    use arrow::array::{Array, AsArray};
    let Some(first) = rows.first() else {
        return Ok(rows);
    };
    let all = arrow::compute::concat_batches(&first.schema(), &rows)?;
    let keys = pk
        .iter()
        .map(|k| {
            let i = schema.index_of(k)?;
            Ok(arrow::compute::cast(
                all.column(i),
                &arrow::datatypes::DataType::Utf8,
            )?)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut last: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for i in 0..all.num_rows() {
        let key = keys
            .iter()
            .map(|k| {
                let k = k.as_string::<i32>();
                if k.is_null(i) {
                    String::new()
                } else {
                    k.value(i).to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\u{1f}");
        last.insert(key, i);
    }
    let mut keep: Vec<u32> = last.into_values().map(|i| i as u32).collect();
    keep.sort_unstable();
    let idx = arrow::array::UInt32Array::from(keep);
    Ok(vec![arrow::compute::take_record_batch(&all, &idx)?])
}
