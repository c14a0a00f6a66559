//! B2B accounts: companies unified from account sources (a CRM's account table) and from the
//! employer on contact records, with contacts linked to their account.
//!
//! Same machinery as customers: staged, normalized records (`normalize_company`, domains
//! without scheme or `www.`, a contact's e-mail domain unless it is a free-mail provider), links
//! from shared keys (company + domain, company + postcode, company + city, or one corporate
//! domain), clusters by the `connected_components` table function, and stable `acc_` ids from
//! the previous run's `account_links`.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use super::clusters;
use super::staging::{ident, literal};
use super::{collect, register_written, write_query};
use crate::config::ProjectConfig;
use crate::error::{Error, Result};
use crate::table_catalog::names;

pub use crate::config::unify::accounts::{AccountMap, AccountsSection};

/// E-mail domains of private mailboxes: they say nothing about an employer.
pub const FREE_MAIL: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "yahoo.co.uk",
    "yahoo.fr",
    "yahoo.es",
    "yahoo.de",
    "hotmail.com",
    "hotmail.co.uk",
    "hotmail.fr",
    "hotmail.es",
    "outlook.com",
    "live.com",
    "msn.com",
    "icloud.com",
    "me.com",
    "aol.com",
    "gmx.de",
    "gmx.net",
    "web.de",
    "t-online.de",
    "freenet.de",
    "free.fr",
    "orange.fr",
    "sfr.fr",
    "laposte.net",
    "wanadoo.fr",
    "kpnmail.nl",
    "ziggo.nl",
    "hetnet.nl",
    "telefonica.net",
    "movistar.es",
    "btinternet.com",
    "proton.me",
    "protonmail.com",
];

/// SQL normalizing a web site or domain column.
fn domain_sql(expr: &str) -> String {
    format!(
        "nullif(lower(regexp_replace(regexp_replace(trim({expr}), '^[a-zA-Z]+://', ''), '^www\\.|[/:?#].*$', '', 'g')), '')"
    )
}

/// SQL of the `account_records` rows: account sources, then contacts with a company.
pub fn records_sql(cfg: &ProjectConfig, section: &AccountsSection) -> Result<String> {
    let col = |c: &Option<String>| match c {
        Some(c) => format!("CAST({} AS VARCHAR)", ident(c)),
        None => "CAST(NULL AS VARCHAR)".into(),
    };
    let mut selects = Vec::new();
    for (i, (source, map)) in section.sources.iter().enumerate() {
        let src = cfg.sources.get(source).ok_or_else(|| {
            cfg.error_at(
                map.span(),
                format!("unify.accounts.sources.{source}: no source named `{source}`"),
            )
        })?;
        let map = map.get_ref();
        let record_id =
            super::record_id_column(cfg, src, source, &map.record_id, "unify.accounts.sources")?;
        let company = format!("CAST({} AS VARCHAR)", ident(&map.company));
        selects.push(format!(
            "SELECT {src} || ':' || CAST({rid} AS VARCHAR) AS uid, {src} AS source, CAST({rid} AS VARCHAR) AS record_id, \
             'account' AS kind, CAST(NULL AS VARCHAR) AS customer_id, CAST({priority} AS BIGINT) AS priority, \
             normalize_company({company}) AS company, trim({company}) AS raw_company, {domain} AS domain, \
             upper(replace({postcode}, ' ', '')) AS postcode, normalize_name({city}) AS city, trim({city}) AS raw_city, \
             upper({country}) AS country FROM {table}",
            src = literal(source),
            rid = ident(&record_id),
            priority = i + 1,
            domain = domain_sql(&col(&map.domain)),
            postcode = col(&map.postcode),
            city = col(&map.city),
            country = col(&map.country),
            table = ident(source),
        ));
    }
    if section.contacts {
        let free: Vec<String> = FREE_MAIL.iter().map(|d| literal(d)).collect();
        selects.push(format!(
            "SELECT r.uid, r.source, r.record_id, 'contact' AS kind, l.customer_id, CAST(1000 AS BIGINT) AS priority, \
             r.company, r.raw_company, \
             CASE WHEN split_part(r.email, '@', 2) NOT IN ({free}) THEN nullif(split_part(r.email, '@', 2), '') END AS domain, \
             r.postcode, r.city, r.raw_city, r.country \
             FROM unify_records r JOIN customer_links l ON l.uid = r.uid WHERE r.company IS NOT NULL",
            free = free.join(", ")
        ));
    }
    if selects.is_empty() {
        return Err(Error::NotFound(
            "[unify.accounts] has no account source and contacts = false: nothing to unify".into(),
        ));
    }
    Ok(selects.join("\nUNION ALL\n"))
}

/// Links between records and the keys they share; every record is also its own node.
const EDGES_SQL: &str = include_str!("../../sql/unify/account_edges.sql");

/// One profile per account: names and places from account sources first (lowest priority
/// number), the number of linked contacts (customers) and records.
const UNIFIED_SQL: &str = include_str!("../../sql/unify/unified_accounts.sql");

/// Unify accounts; writes `account_links` and `unified_accounts`. Returns the account count.
pub async fn unify_accounts(
    cfg: &ProjectConfig,
    section: &AccountsSection,
    ctx: &SessionContext,
    tables_dir: &Path,
    previous_tables: Option<&Path>,
) -> Result<u64> {
    let staged = tables_dir.join("account_records");
    std::fs::create_dir_all(&staged).map_err(|e| Error::io("cannot create", &staged, e))?;
    write_query(ctx, &records_sql(cfg, section)?, &staged, "records").await?;
    let _ = ctx.deregister_table("account_records");
    ctx.register_parquet(
        "account_records",
        staged.to_string_lossy().as_ref(),
        ParquetReadOptions::default(),
    )
    .await?;
    let edges = ctx.sql(EDGES_SQL).await?.into_view();
    let _ = ctx.deregister_table("account_edges");
    ctx.register_table("account_edges", edges)?;
    // The stage's own table function, whatever context the run gave it.
    ctx.register_udtf(
        "connected_components",
        std::sync::Arc::new(super::table_functions::ConnectedComponents),
    );
    let rows = collect(
        ctx,
        "SELECT r.uid, r.source, r.record_id, r.kind, r.customer_id, c.component \
         FROM account_records r JOIN connected_components('account_edges') c ON c.node = r.uid \
         ORDER BY r.uid",
        "account clusters",
    )
    .await?;

    // Dense cluster numbers, then stable ids from the previous run.
    let text = |b: &RecordBatch, i: usize| -> Result<StringArray> {
        Ok(arrow::compute::cast(b.column(i), &DataType::Utf8)?
            .as_string::<i32>()
            .clone())
    };
    let mut cluster_of = Vec::new();
    let mut numbers = std::collections::HashMap::new();
    let mut columns: Vec<Vec<Option<String>>> = vec![Vec::new(); 5];
    for b in &rows {
        let comp = text(b, 5)?;
        let cols = (0..5).map(|i| text(b, i)).collect::<Result<Vec<_>>>()?;
        for i in 0..b.num_rows() {
            let n = numbers.len() as u32;
            cluster_of.push(*numbers.entry(comp.value(i).to_string()).or_insert(n));
            for (c, out) in cols.iter().zip(columns.iter_mut()) {
                out.push(c.is_valid(i).then(|| c.value(i).to_string()));
            }
        }
    }
    let index: std::collections::HashMap<&str, u32> = columns[0]
        .iter()
        .enumerate()
        .filter_map(|(i, u)| u.as_deref().map(|u| (u, i as u32)))
        .collect();
    let before = super::previous_ids(
        previous_tables.map(|d| d.join(format!("{}.parquet", names::ACCOUNT_LINKS))),
        "account_id",
        clusters::ACCOUNT,
        &index,
        cluster_of.len(),
    )
    .await?;
    let (ids, _) = clusters::assign_interned_ids(
        clusters::ACCOUNT,
        &cluster_of,
        &before.ids,
        &before.names,
        before.max,
    );

    let schema = Arc::new(Schema::new(vec![
        Field::new("account_id", DataType::Utf8, false),
        Field::new("uid", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("record_id", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("customer_id", DataType::Utf8, true),
    ]));
    let mut arrays: Vec<Arc<dyn Array>> = vec![Arc::new(StringArray::from_iter_values(
        cluster_of.iter().map(|c| ids[*c as usize].as_str()),
    ))];
    for col in &columns {
        arrays.push(Arc::new(StringArray::from_iter(
            col.iter().map(|v| v.as_deref()),
        )));
    }
    let links = RecordBatch::try_new(schema.clone(), arrays)?;
    crate::workspace::write_parquet(
        &tables_dir.join(format!("{}.parquet", names::ACCOUNT_LINKS)),
        schema,
        std::slice::from_ref(&links),
    )?;
    register_written(ctx, tables_dir, names::ACCOUNT_LINKS).await?;
    write_query(ctx, UNIFIED_SQL, tables_dir, names::UNIFIED_ACCOUNTS).await?;
    let _ = ctx.deregister_table("account_edges");
    let _ = ctx.deregister_table("account_records");
    let _ = std::fs::remove_dir_all(&staged);
    Ok(ids.len() as u64)
}
