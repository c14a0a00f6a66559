//! Activities: what customers did (orders, web and app events, loyalty transactions, e-mail
//! events, support cases), from activity sources declared in `[activities.<name>]`, each row
//! resolved to a customer through `customer_links` (a record id of a unified source) or
//! `identity_graph` (an anonymous id: events of a visitor who identified later count for the
//! customer). Output: `activities` (unresolved rows kept with a NULL customer), and
//! `activity_stats` per activity source.

use std::collections::BTreeMap;
use std::path::Path;

use datafusion::prelude::SessionContext;
use toml::Spanned;

use crate::error::Result;
use crate::sql_text::{ident, literal};

pub use crate::config::activities::ActivitySource;
use crate::table_catalog::names;

/// A details column as JSON text: `{"channel":"web","quantity":"2"}` (values as strings,
/// missing ones as null).
fn details_sql(columns: &[String]) -> String {
    if columns.is_empty() {
        return "CAST(NULL AS VARCHAR)".into();
    }
    let parts: Vec<String> = columns
        .iter()
        .map(|c| {
            let key = c.replace('\\', "\\\\").replace('"', "\\\"");
            format!(
                "'\"{key}\":' || coalesce('\"' || replace(replace(CAST(a.{col} AS VARCHAR), '\\', '\\\\'), '\"', '\\\"') || '\"', 'null')",
                col = ident(c)
            )
        })
        .collect();
    format!("'{{' || {} || '}}'", parts.join(" || ',' || "))
}

/// How an activity source's rows find their customer: a join (on the source aliased `a`) and
/// the expression of the customer id (NULL when unresolved).
pub fn customer_resolution(a: &ActivitySource) -> (String, String) {
    match (&a.customer, &a.customer_source, &a.anonymous_id) {
        (Some(c), Some(cs), _) => (
            format!(
                "LEFT JOIN customer_links l ON l.source = {cs} AND l.record_id = CAST(a.{c} AS VARCHAR)",
                cs = literal(cs),
                c = ident(c)
            ),
            "l.customer_id".to_string(),
        ),
        (_, _, Some(anon)) => (
            format!(
                "LEFT JOIN identity_graph g ON g.anonymous_id = CAST(a.{} AS VARCHAR)",
                ident(anon)
            ),
            "g.profile_id".to_string(),
        ),
        _ => unreachable!("checked when the config loads"),
    }
}

/// SQL of one activity source's rows.
pub fn source_sql(name: &str, a: &ActivitySource) -> String {
    let (join, customer) = customer_resolution(a);
    let kind = match (&a.activity_type, &a.type_column) {
        (Some(t), _) => literal(t),
        (_, Some(c)) => format!("CAST(a.{} AS VARCHAR)", ident(c)),
        _ => unreachable!("checked when the config loads"),
    };
    let amount = a
        .amount
        .as_ref()
        .map(|c| format!("CAST(a.{} AS DOUBLE)", ident(c)))
        .unwrap_or_else(|| "CAST(NULL AS DOUBLE)".into());
    format!(
        "SELECT {customer} AS customer_id, CAST(a.{ts} AS TIMESTAMP) AS ts, {kind} AS type, \
         {activity} AS activity_source, {source} AS source, {amount} AS amount, {details} AS details \
         FROM {table} a {join}",
        ts = ident(&a.timestamp),
        activity = literal(name),
        source = literal(&a.source),
        details = details_sql(&a.details),
        table = ident(&a.source),
    )
}

/// Build `activities` and `activity_stats` in `tables_dir`; returns (activities, unresolved).
pub async fn build(
    activities: &BTreeMap<String, Spanned<ActivitySource>>,
    ctx: &SessionContext,
    tables_dir: &Path,
) -> Result<(u64, u64)> {
    let sql = activities
        .iter()
        .map(|(name, a)| source_sql(name, a.get_ref()))
        .collect::<Vec<_>>()
        .join("\nUNION ALL\n");
    let rows = crate::table_io::write_query(ctx, &sql, tables_dir, names::ACTIVITIES).await?;
    crate::table_io::register_written(ctx, tables_dir, names::ACTIVITIES).await?;
    crate::table_io::write_query(
        ctx,
        include_str!("../../sql/activities/activity_stats.sql"),
        tables_dir,
        names::ACTIVITY_STATS,
    )
    .await?;
    let unresolved = crate::table_io::count(
        ctx,
        "SELECT count(*) - count(customer_id) FROM activities",
        "unresolved activities",
    )
    .await?;
    Ok((rows, unresolved))
}
