//! Scoring unification against ground truth (`panorama eval`): pairwise precision, recall
//! and F1, and with `--breakdown` the pairs it got wrong grouped by which fields the two
//! records share — the first thing to look at when tuning a map, blocking or vetoes on a
//! labelled sample of one's own data.

use std::path::Path;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionContext;

use super::probabilistic::{adopt_plan, agree_sql};
use crate::config::ProjectConfig;
use crate::error::{Error, Result};
use crate::sql_text::{fill, ident, Param};
use crate::table_catalog::names;

/// Pairwise precision/recall/F1 against a `truth` table.
pub const EVAL_SQL: &str = include_str!("../../sql/unify/eval.sql");
const BREAKDOWN_SQL: &str = include_str!("../../sql/unify/eval_breakdown.sql");

/// Register a ground-truth CSV (`source, record_id, person_id`) as the table `truth`.
pub async fn register_truth(ctx: &SessionContext, path: &Path) -> Result<()> {
    if !path.is_file() {
        return Err(Error::NotFound(format!(
            "truth file not found: {}",
            path.display()
        )));
    }
    // Every column as text: record ids are numbers in one source and codes in another, and a
    // type inferred from the first rows fails on the others.
    let header = std::fs::read_to_string(path)
        .map_err(|e| Error::io("cannot read", path, e))?
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let schema = Schema::new(
        header
            .split(',')
            .map(|c| Field::new(c.trim(), DataType::Utf8, true))
            .collect::<Vec<_>>(),
    );
    for need in ["source", "record_id", "person_id"] {
        if schema.field_with_name(need).is_err() {
            return Err(Error::Invalid {
                key: "--truth".into(),
                message: format!(
                    "{}: the header has no `{need}` column (expected source, record_id, person_id; found {header})",
                    path.display()
                ),
            });
        }
    }
    ctx.register_csv(
        "truth",
        path.to_string_lossy().as_ref(),
        datafusion::prelude::CsvReadOptions::new()
            .has_header(true)
            .schema(&schema),
    )
    .await?;
    Ok(())
}

/// The missed and falsely linked pairs of the run against the registered `truth`, grouped
/// by agreement pattern: the `top` most frequent patterns of each kind, one column per
/// compared field ('=' equal, 'x' different, '.' missing on a side), with how many of the
/// pattern's pairs shared a blocking key of the run, how many were linked directly (not
/// through other records) and their mean match weight, and one example pair.
pub async fn breakdown(
    ctx: &SessionContext,
    cfg: &ProjectConfig,
    top: usize,
) -> Result<Vec<RecordBatch>> {
    let records = ctx.table(names::UNIFY_RECORDS).await?;
    let staged = records.schema().clone();
    let custom = cfg
        .unify
        .as_ref()
        .map(|u| u.custom_fields())
        .unwrap_or_default();
    let staged_fields: Vec<String> = super::fields::comparable_fields(&custom)
        .into_iter()
        .filter(|f| staged.field_with_unqualified_name(f).is_ok())
        .collect();
    let fields = filled(ctx, staged_fields).await?;
    if fields.is_empty() {
        return Err(Error::Internal(
            "internal: unify_records has no compared field".into(),
        ));
    }
    let agreement = fields
        .iter()
        .map(|f| {
            let c = ident(f);
            format!(
                "CASE WHEN l.{c} IS NULL OR r.{c} IS NULL THEN '.' WHEN l.{c} = r.{c} THEN '=' ELSE 'x' END AS {c}"
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let columns = fields
        .iter()
        .map(|f| ident(f))
        .collect::<Vec<_>>()
        .join(", ");
    let shares = match blocking_keys(ctx, cfg).await? {
        None => "CAST(NULL AS BOOLEAN)".to_string(),
        Some(keys) if keys.is_empty() => "false".to_string(),
        Some(keys) => keys
            .iter()
            .map(|key| format!("coalesce({}, false)", agree_sql(key)))
            .collect::<Vec<_>>()
            .join(" OR "),
    };
    let weights = ctx
        .table(names::MATCH_PAIRS)
        .await?
        .schema()
        .field_with_unqualified_name("match_weight")
        .is_ok();
    let top = top.to_string();
    let sql = fill(
        BREAKDOWN_SQL,
        &[
            ("agreement", Param::Sql(&agreement)),
            ("agreement_columns", Param::Sql(&columns)),
            ("shares_blocking_key", Param::Sql(&format!("({shares})"))),
            (
                "match_weight",
                Param::Sql(if weights {
                    "m.match_weight"
                } else {
                    "CAST(NULL AS DOUBLE)"
                }),
            ),
            ("top", Param::Sql(&top)),
        ],
    );
    Ok(ctx.sql(&sql).await?.collect().await?)
}

/// The fields some record of the run has a value of (a field no source maps would be a
/// column of '.').
async fn filled(ctx: &SessionContext, fields: Vec<String>) -> Result<Vec<String>> {
    if fields.is_empty() {
        return Ok(fields);
    }
    let counts = fields
        .iter()
        .map(|f| format!("count({})", ident(f)))
        .collect::<Vec<_>>()
        .join(", ");
    let b = crate::table_io::one_batch(
        ctx,
        &format!("SELECT {counts} FROM unify_records"),
        "filled fields",
    )
    .await?;
    let mut kept = Vec::new();
    for (i, f) in fields.into_iter().enumerate() {
        let n = arrow::compute::cast(b.column(i), &DataType::Int64)?;
        if n.as_primitive::<arrow::datatypes::Int64Type>().value(0) > 0 {
            kept.push(f);
        }
    }
    Ok(kept)
}

/// The blocking keys of the run's probabilistic model, as later runs and `explain` adopt
/// them from its `match_weights` (the configured keys, or those chosen from the data); None
/// in rules mode (no model).
async fn blocking_keys(
    ctx: &SessionContext,
    cfg: &ProjectConfig,
) -> Result<Option<Vec<Vec<String>>>> {
    if !ctx.table_exist(names::MATCH_WEIGHTS).unwrap_or(false) {
        return Ok(None);
    }
    let weights = ctx
        .sql("SELECT comparison, level, label, m, u, weight FROM match_weights")
        .await?
        .collect()
        .await?;
    let mut section = cfg
        .unify
        .clone()
        .unwrap_or_default()
        .probabilistic_section();
    adopt_plan(&mut section, &weights)?;
    Ok(Some(section.blocking))
}
