//! The web console next to the customer card: unification, segments, measures and
//! predictions as charts ([`crate::charts`]), an explain view for a pair of records and a graph
//! of one customer's records. Charts load their rows from `/api/charts/<id>`, so every figure
//! is also available as JSON.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use minijinja::context;
use serde_json::{json, Value};

use super::card::{mj, render, signed_in};
use super::http::{require, ApiError};
use super::snapshot::Serving;
use crate::charts::{self, Page, Params, CHARTS};
use crate::output::batch_objects;
use crate::serve::auth::Role;

pub fn routes() -> Router<Arc<Serving>> {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/unify") }))
        .route("/console/assets/{file}", get(asset))
        .route("/console/explain", get(explain_page))
        .route("/console/quality", get(quality_page))
        .route("/console/cluster/{id}", get(cluster_page))
        .route("/console/{page}", get(page))
        .route("/api/charts", get(list))
        .route("/api/charts/{id}", get(rows))
}

/// Query parameters, with `segments` given once comma-separated or repeated.
fn params(raw: Option<&str>) -> Params {
    let mut p = Params::default();
    let mut segments = Vec::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "segments" => segments.extend(
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty()),
            ),
            "measure" => p.measure = Some(v.to_string()),
            "customer" => p.customer = Some(v.to_string()),
            "left" => p.left = Some(v.trim().to_string()),
            "right" => p.right = Some(v.trim().to_string()),
            _ => {}
        }
    }
    if !segments.is_empty() {
        p.segments = Some(segments.join(","));
    }
    p
}

fn query_string(p: &Params) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("segments", &p.segments),
        ("measure", &p.measure),
        ("customer", &p.customer),
        ("left", &p.left),
        ("right", &p.right),
    ] {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    q.finish()
}

async fn asset(Path(file): Path<String>) -> Response {
    let body = match file.as_str() {
        "vega.min.js" => charts::assets::VEGA,
        "vega-lite.min.js" => charts::assets::VEGA_LITE,
        "vega-embed.min.js" => charts::assets::VEGA_EMBED,
        "draw-charts.js" => charts::report::DRAW_CHARTS_JS,
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

async fn list(State(s): State<Arc<Serving>>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    require(&s, &headers, Role::Reader)?;
    let snap = s.snapshot();
    let list: Vec<Value> = CHARTS
        .iter()
        .map(|c| {
            json!({
                "id": c.id, "page": c.page, "title": c.title, "description": c.description,
                "available": c.available(&snap.facts), "url": format!("/api/charts/{}", c.id),
            })
        })
        .collect();
    Ok(Json(json!({ "run_id": snap.run_id, "charts": list })))
}

/// A chart's rows as JSON (what its spec loads).
async fn rows(
    State(s): State<Arc<Serving>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    require(&s, &headers, Role::Reader)?;
    let snap = s.snapshot();
    let chart = charts::chart(&id)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no chart {id}")))?;
    if !chart.available(&snap.facts) {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!(
                "run {} has no data for chart {id} (it needs {})",
                snap.run_id,
                chart.requires.join(", ")
            ),
        ));
    }
    let p = params(raw.as_deref());
    let sql = chart
        .sql(&snap.facts, &p)
        .map_err(|m| ApiError(StatusCode::BAD_REQUEST, m.to_string()))?;
    let (_, batches, truncated) = s
        .sql(&sql, s.settings.limits.http_row_limit)
        .await
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
    let rows: Vec<Value> = batches
        .iter()
        .flat_map(batch_objects)
        .map(Value::Object)
        .collect();
    Ok(Json(json!({
        "chart": id, "title": chart.title, "run_id": snap.run_id,
        "rows": rows, "truncated": truncated,
    })))
}

/// The console's view of one chart: its spec loading rows from the API.
fn chart_view(c: &charts::Chart, p: &Params) -> Value {
    let url = format!("/api/charts/{}?{}", c.id, query_string(p));
    let spec = c.spec(json!({ "url": url, "format": { "type": "json", "property": "rows" } }));
    json!({
        "id": c.id, "title": c.title, "description": c.description,
        "spec": charts::report::script_json(&spec),
    })
}

fn pages() -> Vec<Value> {
    let mut pages: Vec<Value> = Page::ALL
        .iter()
        .map(|p| json!({ "id": p.as_str(), "title": p.title() }))
        .collect();
    pages.push(json!({ "id": "quality", "title": "Match quality" }));
    pages
}

/// Random pairs the console scores for its quality page (`panorama unify report
/// --sample-pairs` for more).
const QUALITY_SAMPLE_PAIRS: usize = 250_000;

/// `panorama unify report` as a page: the estimates, probable matches blocking never
/// compared (each linked to the explain view), customers that look over-merged (linked to
/// their cluster), and what drives the decisions.
async fn quality_page(State(s): State<Arc<Serving>>, headers: HeaderMap) -> Response {
    if let Err(r) = signed_in(&s, &headers, "/console/quality") {
        return *r;
    }
    let snap = s.snapshot();
    let data = {
        let mut cache = s.quality.lock().await;
        match cache.as_ref() {
            Some((run, data)) if *run == snap.run_id => data.clone(),
            _ => {
                let options = crate::unify::report::ReportOptions {
                    sample_pairs: QUALITY_SAMPLE_PAIRS,
                    examples: 20,
                };
                let data = Arc::new(
                    match crate::unify::report::report(&snap.ctx, &s.cfg, &options).await {
                        Ok(r) => quality_view(&r),
                        Err(e) => json!({ "error": e.to_string() }),
                    },
                );
                *cache = Some((snap.run_id.clone(), data.clone()));
                data
            }
        }
    };
    render(
        "quality.html",
        context! {
            run_id => snap.run_id.clone(), page => "quality", pages => mj(&pages()),
            sample_pairs => QUALITY_SAMPLE_PAIRS,
            summary => mj(&data["summary"]), tables => mj(&data["tables"]),
            error => data["error"].as_str(),
        },
    )
}

/// The report's tables as columns and rows of text, each row with a link where it names a
/// customer (its cluster) or a pair of records (the explain view).
fn quality_view(r: &crate::unify::report::QualityReport) -> Value {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let tables: Vec<Value> = r
        .tables
        .iter()
        .map(|(title, batch)| {
            let schema = batch.schema();
            let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            let options = FormatOptions::default().with_null("");
            let formatters: Vec<_> = batch
                .columns()
                .iter()
                .filter_map(|c| ArrayFormatter::try_new(c.as_ref(), &options).ok())
                .collect();
            let at = |name: &str| columns.iter().position(|c| *c == name);
            let rows: Vec<Value> = (0..batch.num_rows())
                .map(|i| {
                    let cells: Vec<String> =
                        formatters.iter().map(|f| f.value(i).to_string()).collect();
                    let link = match (at("customer_id"), at("left_uid"), at("right_uid")) {
                        (Some(c), _, _) => Some(format!(
                            "/console/cluster/{}",
                            url::form_urlencoded::byte_serialize(cells[c].as_bytes())
                                .collect::<String>()
                        )),
                        (None, Some(l), Some(rt)) => Some(format!(
                            "/console/explain?{}",
                            url::form_urlencoded::Serializer::new(String::new())
                                .append_pair("left", &cells[l])
                                .append_pair("right", &cells[rt])
                                .finish()
                        )),
                        _ => None,
                    };
                    json!({ "cells": cells, "link": link })
                })
                .collect();
            json!({ "title": title, "columns": columns, "rows": rows })
        })
        .collect();
    json!({ "summary": r.summary, "tables": tables })
}

async fn page(
    State(s): State<Arc<Serving>>,
    headers: HeaderMap,
    Path(page): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let here = format!("/console/{page}");
    if let Err(r) = signed_in(&s, &headers, &here) {
        return *r;
    }
    let Some(pg) = Page::parse(&page) else {
        return (StatusCode::NOT_FOUND, format!("no console page {page}")).into_response();
    };
    let snap = s.snapshot();
    let p = params(raw.as_deref());
    let charts: Vec<Value> = CHARTS
        .iter()
        .filter(|c| c.page == pg && c.listed && c.available(&snap.facts))
        .map(|c| chart_view(c, &p))
        .collect();
    // Listed charts this run cannot draw, each with what to configure to get it.
    let missing: Vec<Value> = CHARTS
        .iter()
        .filter(|c| c.page == pg && c.listed && !c.available(&snap.facts))
        .map(|c| {
            let (what, url) = c.missing(&snap.facts);
            json!({ "title": c.title, "what": what, "url": url })
        })
        .collect();
    let overlap = charts::chart("segment_overlap").expect("known chart");
    let chosen = overlap.segments(&snap.facts, &p);
    let measure = charts::chart("measure_distribution")
        .expect("known chart")
        .measure(&snap.facts, &p);
    render(
        "console.html",
        context! {
            run_id => snap.run_id.clone(), page => pg.as_str(), title => pg.title(),
            pages => mj(&pages()), charts => mj(&charts), missing => mj(&missing),
            segments => mj(&snap.facts.segments), chosen => mj(&chosen),
            measures => mj(&snap.facts.numeric_measures), measure,
        },
    )
}

async fn explain_page(
    State(s): State<Arc<Serving>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Err(r) = signed_in(&s, &headers, "/console/explain") {
        return *r;
    }
    let snap = s.snapshot();
    let p = params(raw.as_deref());
    let chart = charts::chart("explain").expect("known chart");
    let (mut rows, mut error) = (Vec::new(), None);
    if let Ok(sql) = chart.sql(&snap.facts, &p) {
        match s.sql(&sql, 1000).await {
            Ok((_, batches, _)) => rows = batches.iter().flat_map(batch_objects).collect(),
            Err(e) => error = Some(e.to_string()),
        }
    }
    let decision = rows
        .iter()
        .find(|r| r.get("comparison").and_then(Value::as_str) == Some("decision"))
        .and_then(|r| r.get("level").and_then(Value::as_str).map(str::to_string));
    let view = (!rows.is_empty()).then(|| chart_view(chart, &p));
    render(
        "explain.html",
        context! {
            run_id => snap.run_id.clone(), page => "unify", pages => mj(&pages()),
            left => p.left.clone(), right => p.right.clone(),
            rows => mj(&rows), chart => mj(&view), decision, error,
        },
    )
}

async fn cluster_page(
    State(s): State<Arc<Serving>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = signed_in(&s, &headers, &format!("/console/cluster/{id}")) {
        return *r;
    }
    let snap = s.snapshot();
    let p = Params {
        customer: Some(id.clone()),
        ..Default::default()
    };
    let records = match s
        .sql(
            &format!(
                "SELECT uid, source, record_id, matched_by FROM customer_links WHERE customer_id = '{}' ORDER BY uid",
                id.replace('\'', "''")
            ),
            1000,
        )
        .await
    {
        Ok((_, b, _)) => b.iter().flat_map(batch_objects).collect::<Vec<_>>(),
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    if records.is_empty() {
        return (
            StatusCode::NOT_FOUND,
            format!("no customer {id} in run {}", snap.run_id),
        )
            .into_response();
    }
    let chart = charts::chart("cluster").expect("known chart");
    render(
        "cluster.html",
        context! {
            run_id => snap.run_id.clone(), page => "unify", pages => mj(&pages()),
            customer_id => id, records => mj(&records), chart => mj(&chart_view(chart, &p)),
        },
    )
}
