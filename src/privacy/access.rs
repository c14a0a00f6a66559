//! Right of access: everything Panorama holds on a person, as one JSON document.

use serde_json::{json, Map, Value};

use super::{in_list, json_rows, Selector};
use crate::config::ProjectConfig;
use crate::error::Result;
use crate::sql_text::{fill, ident, literal, Param};
use crate::table_catalog::names;

/// The sections read from one table of the run each: (section, table, the person's rows, with
/// `{ids}` their customer ids). A table the run does not have is left out.
const SECTIONS: &[(&str, &str, &str)] = &[
    (
        "profile",
        names::UNIFIED_CUSTOMERS,
        "SELECT * FROM unified_customers WHERE customer_id IN ({ids})",
    ),
    (
        "measures",
        names::CUSTOMER_MEASURES,
        "SELECT * FROM customer_measures WHERE customer_id IN ({ids})",
    ),
    (
        "links",
        names::CUSTOMER_LINKS,
        "SELECT source, record_id, customer_id, matched_by FROM customer_links \
         WHERE customer_id IN ({ids}) ORDER BY source, record_id",
    ),
    (
        "anonymous_ids",
        names::IDENTITY_GRAPH,
        "SELECT * FROM identity_graph WHERE customer_id IN ({ids})",
    ),
    (
        "activities",
        names::ACTIVITIES,
        "SELECT * FROM activities WHERE customer_id IN ({ids}) ORDER BY ts",
    ),
    (
        "segments",
        names::SEGMENT_MEMBERS,
        "SELECT segment FROM segment_members WHERE customer_id IN ({ids}) ORDER BY segment",
    ),
    (
        "segment_history",
        names::SEGMENT_HISTORY,
        "SELECT * FROM segment_history WHERE customer_id IN ({ids}) ORDER BY run_id, segment",
    ),
    (
        "consent",
        names::CUSTOMER_CONSENT,
        "SELECT * FROM customer_consent WHERE customer_id IN ({ids}) ORDER BY purpose, channel",
    ),
    (
        "messages",
        names::OUTBOX,
        "SELECT * FROM outbox WHERE customer_id IN ({ids})",
    ),
    (
        "journeys",
        names::JOURNEY_STATE,
        "SELECT * FROM journey_state WHERE customer_id IN ({ids})",
    ),
    (
        "rectifications",
        names::RECTIFICATIONS,
        "SELECT * FROM rectifications WHERE customer_id IN ({ids})",
    ),
];

/// Collect the profile, every linked source record, activities, measures, segment
/// memberships, consent, messages, and the exports the person was sent in.
pub async fn access(cfg: &ProjectConfig, selector: &Selector, actor: &str) -> Result<Value> {
    let (ctx, opened) = crate::session::open_project(cfg, None).await?;
    let customers = selector.customers(&ctx, &opened.tables).await?;
    let has = |t: &str| opened.tables.iter().any(|x| x == t);
    let ids = in_list(&customers);
    let mut doc = Map::new();
    doc.insert(
        "request".into(),
        json!({
            "at": super::now_text(),
            "project": cfg.project.name.clone().unwrap_or_default(),
            "run_id": opened.run_id,
            "customers": customers,
        }),
    );
    for (section, table, sql) in SECTIONS {
        if has(table) {
            let sql = fill(sql, &[("ids", Param::Sql(&ids))]);
            doc.insert(
                section.to_string(),
                Value::Array(json_rows(&ctx, &sql).await?),
            );
        }
    }
    doc.insert(
        "source_records".into(),
        Value::Object(source_records(cfg, &ctx, &has, &ids).await?),
    );
    let workspace = cfg.workspace_dir();
    doc.insert(
        "exports".into(),
        Value::Array(export_rows(cfg, &workspace, &ids).await?),
    );
    super::audit(
        &workspace,
        actor,
        "access",
        selector,
        &customers,
        "right of access: document produced",
    )?;
    Ok(Value::Object(doc))
}

/// Every record of every source that belongs to the person, whole: the unified sources' and
/// the activity sources'.
async fn source_records(
    cfg: &ProjectConfig,
    ctx: &datafusion::prelude::SessionContext,
    has: &dyn Fn(&str) -> bool,
    ids: &str,
) -> Result<Map<String, Value>> {
    let mut records = Map::new();
    if let Some(u) = &cfg.unify {
        for (source, map) in &u.sources {
            let Some(src) = cfg.sources.get(source) else {
                continue;
            };
            if !has(source) {
                continue;
            }
            let rid = crate::unify::record_id_column(
                cfg,
                src,
                source,
                &map.get_ref().record_id,
                "unify.sources",
            )?;
            let rows = json_rows(
                ctx,
                &format!(
                    "SELECT * FROM {t} WHERE CAST({rid} AS VARCHAR) IN \
                     (SELECT record_id FROM customer_links WHERE source = {s} AND customer_id IN ({ids}))",
                    t = ident(source),
                    rid = ident(&rid),
                    s = literal(source)
                ),
            )
            .await?;
            records.insert(source.clone(), Value::Array(rows));
        }
    }
    for a in cfg.activities.values() {
        let a = a.get_ref();
        if records.contains_key(&a.source) || !has(&a.source) {
            continue;
        }
        let (join, customer) = crate::activities::customer_resolution(a);
        if customer.starts_with("g.") && !has(names::IDENTITY_GRAPH) {
            continue;
        }
        let rows = json_rows(
            ctx,
            &format!(
                "SELECT a.* FROM {t} a {join} WHERE {customer} IN ({ids})",
                t = ident(&a.source)
            ),
        )
        .await?;
        records.insert(a.source.clone(), Value::Array(rows));
    }
    Ok(records)
}

/// The rows each export's destination holds for the person (the export's confirmed state).
async fn export_rows(
    cfg: &ProjectConfig,
    workspace: &std::path::Path,
    ids: &str,
) -> Result<Vec<Value>> {
    let mut exports = Vec::new();
    for name in cfg.exports.keys() {
        let Some(ectx) = crate::exports::confirmed_context(workspace, name).await? else {
            continue;
        };
        for mut row in json_rows(
            &ectx,
            &format!(
                "SELECT key, run_id, confirmed_at FROM confirmed WHERE customer_id IN ({ids})"
            ),
        )
        .await?
        {
            if let Value::Object(m) = &mut row {
                m.insert("export".into(), Value::String(name.clone()));
                m.insert(
                    "destination".into(),
                    Value::String(
                        cfg.exports[name]
                            .get_ref()
                            .destination()
                            .map(|d| d.describe())
                            .unwrap_or_default(),
                    ),
                );
            }
            exports.push(row);
        }
    }
    Ok(exports)
}
