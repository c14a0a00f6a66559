//! Right of access: everything Panorama holds on a person, as one JSON document.

use serde_json::{json, Map, Value};

use super::{in_list, json_rows, Selector};
use crate::config::ProjectConfig;
use crate::error::Result;
use crate::sql_text::{ident, literal};

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
    let mut section = |name: &str, rows: Vec<Value>| {
        doc.insert(name.to_string(), Value::Array(rows));
    };
    section(
        "profile",
        json_rows(
            &ctx,
            &format!("SELECT * FROM unified_customers WHERE customer_id IN ({ids})"),
        )
        .await?,
    );
    if has("customer_measures") {
        section(
            "measures",
            json_rows(
                &ctx,
                &format!("SELECT * FROM customer_measures WHERE customer_id IN ({ids})"),
            )
            .await?,
        );
    }
    section(
        "links",
        json_rows(
            &ctx,
            &format!("SELECT source, record_id, customer_id, matched_by FROM customer_links WHERE customer_id IN ({ids}) ORDER BY source, record_id"),
        )
        .await?,
    );
    // Every record of every source that belongs to the person, whole.
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
                &ctx,
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
        if customer.starts_with("g.") && !has("identity_graph") {
            continue;
        }
        let rows = json_rows(
            &ctx,
            &format!(
                "SELECT a.* FROM {t} a {join} WHERE {customer} IN ({ids})",
                t = ident(&a.source)
            ),
        )
        .await?;
        records.insert(a.source.clone(), Value::Array(rows));
    }
    doc.insert("source_records".into(), Value::Object(records));
    let mut section = |name: &str, rows: Vec<Value>| {
        doc.insert(name.to_string(), Value::Array(rows));
    };
    if has("identity_graph") {
        section(
            "anonymous_ids",
            json_rows(
                &ctx,
                &format!("SELECT * FROM identity_graph WHERE customer_id IN ({ids})"),
            )
            .await?,
        );
    }
    if has("activities") {
        section(
            "activities",
            json_rows(
                &ctx,
                &format!("SELECT * FROM activities WHERE customer_id IN ({ids}) ORDER BY ts"),
            )
            .await?,
        );
    }
    if has("segment_members") {
        section(
            "segments",
            json_rows(
                &ctx,
                &format!("SELECT segment FROM segment_members WHERE customer_id IN ({ids}) ORDER BY segment"),
            )
            .await?,
        );
    }
    if has("segment_history") {
        section(
            "segment_history",
            json_rows(
                &ctx,
                &format!("SELECT * FROM segment_history WHERE customer_id IN ({ids}) ORDER BY run_id, segment"),
            )
            .await?,
        );
    }
    if has("customer_consent") {
        section(
            "consent",
            json_rows(
                &ctx,
                &format!("SELECT * FROM customer_consent WHERE customer_id IN ({ids}) ORDER BY purpose, channel"),
            )
            .await?,
        );
    }
    for (name, table) in [
        ("messages", "outbox"),
        ("journeys", "journey_state"),
        ("rectifications", "rectifications"),
    ] {
        if has(table) {
            section(
                name,
                json_rows(
                    &ctx,
                    &format!("SELECT * FROM {table} WHERE customer_id IN ({ids})"),
                )
                .await?,
            );
        }
    }
    // Exports: the rows each destination holds for the person (the export's confirmed state).
    let workspace = cfg.workspace_dir();
    let mut exports = Vec::new();
    for name in cfg.exports.keys() {
        let Some(ectx) = crate::exports::confirmed_context(&workspace, name).await? else {
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
    doc.insert("exports".into(), Value::Array(exports));
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
