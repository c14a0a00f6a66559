//! Rectification: corrected values that win over every source in merge precedence.
//!
//! A correction is kept with the person's linked records (so it follows them through later
//! merges and new customer ids) in the `rectifications` log, and applied to
//! `unified_customers` by every run and refresh, after merging.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;

use super::Selector;
use crate::config::ProjectConfig;
use crate::error::{Error, Result};
use crate::sql_text::{ident, literal};
use crate::table_catalog::names;

/// Columns of `unified_customers` that are not the person's data but bookkeeping.
const NOT_RECTIFIABLE: &[&str] = &[
    "customer_id",
    "source_count",
    "record_count",
    "first_seen",
    "last_seen",
];

/// Record corrections (`field`, `value`; an empty value clears the field); returns the
/// customers they apply to. The caller refreshes the project so they show.
pub async fn rectify(
    cfg: &ProjectConfig,
    selector: &Selector,
    fields: &[(String, String)],
    actor: &str,
) -> Result<Vec<String>> {
    let (ctx, opened) = crate::session::open_project(cfg, None).await?;
    let customers = selector.customers(&ctx, &opened.tables).await?;
    let schema = ctx
        .table(names::UNIFIED_CUSTOMERS)
        .await?
        .schema()
        .as_arrow()
        .clone();
    for (field, value) in fields {
        let Ok(f) = schema.field_with_name(field) else {
            return Err(Error::InvalidRequest(format!(
                "--set {field}=...: unified_customers has no column `{field}` (columns: {})",
                schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .filter(|n| !NOT_RECTIFIABLE.contains(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        if NOT_RECTIFIABLE.contains(&field.as_str()) {
            return Err(Error::InvalidRequest(format!(
                "--set {field}: `{field}` is computed by Panorama, not the person's data"
            )));
        }
        if !value.is_empty() {
            // Reject a value the column cannot hold now, not at the next run.
            ctx.sql(&format!("SELECT {}", typed(&literal(value), f.data_type())))
                .await?
                .collect()
                .await
                .map_err(|e| {
                    Error::InvalidRequest(format!(
                        "--set {field}={value}: not a valid {}: {e}",
                        f.data_type()
                    ))
                })?;
        }
    }
    let records = super::records_of(&ctx, &customers).await?;
    let n = fields.len();
    let at = super::now_text();
    let batch = crate::state::batch(vec![
        (
            "customer_id",
            Arc::new(StringArray::from(vec![customers.join(","); n])) as ArrayRef,
        ),
        ("records", Arc::new(StringArray::from(vec![records; n]))),
        (
            "field",
            Arc::new(StringArray::from_iter_values(
                fields.iter().map(|(f, _)| f.clone()).collect::<Vec<_>>(),
            )),
        ),
        (
            "value",
            Arc::new(StringArray::from(
                fields
                    .iter()
                    .map(|(_, v)| (!v.is_empty()).then(|| v.clone()))
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "rectified_at",
            Arc::new(StringArray::from(vec![at.as_str(); n])),
        ),
        ("actor", Arc::new(StringArray::from(vec![actor; n]))),
    ])?;
    let workspace = cfg.workspace_dir();
    crate::state::append(&workspace, names::RECTIFICATIONS, &batch)?;
    super::audit(
        &workspace,
        actor,
        "rectify",
        selector,
        &customers,
        &format!(
            "fields: {}",
            fields
                .iter()
                .map(|(f, _)| f.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )?;
    Ok(customers)
}

fn typed(value_sql: &str, t: &DataType) -> String {
    let sql_type = match t {
        DataType::Date32 | DataType::Date64 => "DATE",
        DataType::Timestamp(..) => "TIMESTAMP",
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => "BIGINT",
        DataType::Float32 | DataType::Float64 => "DOUBLE",
        DataType::Boolean => "BOOLEAN",
        _ => "VARCHAR",
    };
    format!("arrow_cast(CAST({value_sql} AS {sql_type}), '{t}')")
}

/// Rewrite `<tables_dir>/unified_customers.parquet` with the latest correction of each field
/// applied. `ctx` has `unified_customers` and `customer_links` registered. Returns the
/// number of corrected customers.
pub async fn apply(ctx: &SessionContext, workspace: &Path, tables_dir: &Path) -> Result<u64> {
    if !crate::state::register(ctx, workspace, names::RECTIFICATIONS).await? {
        return Ok(0);
    }
    crate::table_io::register_written(ctx, tables_dir, names::UNIFIED_CUSTOMERS).await?;
    if !ctx.table_exist(names::CUSTOMER_LINKS)? {
        crate::table_io::register_written(ctx, tables_dir, names::CUSTOMER_LINKS).await?;
    }
    let latest = include_str!("../../sql/privacy/rectified.sql");
    ctx.sql(&format!("CREATE OR REPLACE VIEW rectified AS {latest}"))
        .await?
        .collect()
        .await?;
    let schema = ctx
        .table(names::UNIFIED_CUSTOMERS)
        .await?
        .schema()
        .as_arrow()
        .clone();
    let fields = super::strings(ctx, "SELECT DISTINCT field FROM rectified").await?;
    let mut select = Vec::new();
    let mut joins = Vec::new();
    for (i, f) in schema.fields().iter().enumerate() {
        let name = f.name();
        if fields.contains(name) && !NOT_RECTIFIABLE.contains(&name.as_str()) {
            joins.push(format!(
                "LEFT JOIN (SELECT customer_id, value FROM rectified WHERE field = {}) r{i} ON r{i}.customer_id = u.customer_id",
                literal(name)
            ));
            select.push(format!(
                "CASE WHEN r{i}.customer_id IS NOT NULL THEN {} ELSE u.{c} END AS {c}",
                typed(&format!("r{i}.value"), f.data_type()),
                c = ident(name)
            ));
        } else {
            select.push(format!("u.{}", ident(name)));
        }
    }
    let corrected =
        super::strings(ctx, "SELECT count(DISTINCT customer_id) FROM rectified").await?;
    let sql = format!(
        "SELECT {} FROM unified_customers u {} ORDER BY u.customer_id",
        select.join(", "),
        joins.join(" ")
    );
    crate::table_io::write_query(ctx, &sql, tables_dir, "unified_customers.rectified").await?;
    let target = tables_dir.join("unified_customers.parquet");
    // Replace the file (a refresh's copy may be a hard link to the previous run's: rename
    // replaces the link, never the previous run's data).
    std::fs::rename(
        tables_dir.join("unified_customers.rectified.parquet"),
        &target,
    )
    .map_err(|e| Error::io("cannot replace", &target, e))?;
    crate::table_io::register_written(ctx, tables_dir, names::UNIFIED_CUSTOMERS).await?;
    provenance(ctx, tables_dir, &fields).await?;
    Ok(corrected.first().and_then(|c| c.parse().ok()).unwrap_or(0))
}

/// Mark corrected fields in `unified_customers_provenance`: their value came from a
/// rectification, not from a source record.
async fn provenance(ctx: &SessionContext, tables_dir: &Path, fields: &[String]) -> Result<()> {
    const TABLE: &str = names::UNIFIED_CUSTOMERS_PROVENANCE;
    if !tables_dir.join(format!("{TABLE}.parquet")).is_file() {
        return Ok(());
    }
    crate::table_io::register_written(ctx, tables_dir, TABLE).await?;
    // The profile's street, postcode and city come from one record: the address field.
    let merged_field = |f: &str| match f {
        "street" | "postcode" | "city" => "address".to_string(),
        "email_normalized" => "email".to_string(),
        "phone_e164" => "phone".to_string(),
        other => other.to_string(),
    };
    let schema = ctx.table(TABLE).await?.schema().as_arrow().clone();
    let mut select = Vec::new();
    let mut joins = Vec::new();
    for (i, f) in schema.fields().iter().enumerate() {
        let name = f.name();
        let field = name
            .strip_suffix("_source")
            .or_else(|| name.strip_suffix("_record_id"));
        let corrected: Vec<String> = fields
            .iter()
            .filter(|c| Some(merged_field(c).as_str()) == field)
            .map(|c| literal(c))
            .collect();
        if corrected.is_empty() {
            select.push(format!("u.{}", ident(name)));
            continue;
        }
        joins.push(format!(
            "LEFT JOIN (SELECT DISTINCT customer_id FROM rectified WHERE field IN ({})) r{i} \
             ON r{i}.customer_id = u.customer_id",
            corrected.join(", ")
        ));
        let value = if name.ends_with("_source") {
            "'rectification'"
        } else {
            "CAST(NULL AS VARCHAR)"
        };
        select.push(format!(
            "CASE WHEN r{i}.customer_id IS NOT NULL THEN {value} ELSE u.{c} END AS {c}",
            c = ident(name)
        ));
    }
    let sql = format!(
        "SELECT {} FROM {TABLE} u {} ORDER BY u.customer_id",
        select.join(", "),
        joins.join(" ")
    );
    let staged = format!("{TABLE}.rectified");
    crate::table_io::write_query(ctx, &sql, tables_dir, &staged).await?;
    let target = tables_dir.join(format!("{TABLE}.parquet"));
    std::fs::rename(tables_dir.join(format!("{staged}.parquet")), &target)
        .map_err(|e| Error::io("cannot replace", &target, e))?;
    crate::table_io::register_written(ctx, tables_dir, TABLE).await?;
    Ok(())
}
