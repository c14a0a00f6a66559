//! The customer card: a search page and one page per customer (profile, key figures,
//! segments, timeline), rendered on the server; a few lines of script load more timeline.

use std::sync::{Arc, OnceLock};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use minijinja::{context, Environment};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::http::{card, principal, Lookup};
use super::snapshot::Serving;
use crate::table_catalog::names;

pub fn routes() -> Router<Arc<Serving>> {
    Router::new()
        .route("/", get(search))
        .route("/customers/{id}", get(customer_page))
        .route("/login", get(login_form).post(login))
}

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, text) in [
            ("layout.html", include_str!("templates/layout.html")),
            ("search.html", include_str!("templates/search.html")),
            ("card.html", include_str!("templates/card.html")),
            ("login.html", include_str!("templates/login.html")),
            ("console.html", include_str!("templates/console.html")),
            (
                "console_head.html",
                include_str!("templates/console_head.html"),
            ),
            (
                "chart_panel.html",
                include_str!("templates/chart_panel.html"),
            ),
            ("explain.html", include_str!("templates/explain.html")),
            ("quality.html", include_str!("templates/quality.html")),
            ("cluster.html", include_str!("templates/cluster.html")),
        ] {
            env.add_template(name, text).expect("templates parse");
        }
        env
    })
}

pub(crate) fn render(name: &str, ctx: minijinja::Value) -> Response {
    match templates().get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => Html(html).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("template {name}: {e}"),
        )
            .into_response(),
    }
}

/// Pages need credentials like the API; a browser without them is sent to sign in.
pub(crate) fn signed_in(
    serving: &Serving,
    headers: &HeaderMap,
    here: &str,
) -> Result<(), Box<Response>> {
    match principal(serving, headers) {
        Ok(_) => Ok(()),
        Err(_) => Err(Box::new(
            Redirect::to(&format!("/login?next={}", url_escape(here))).into_response(),
        )),
    }
}

fn url_escape(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[derive(Debug, Deserialize)]
struct SearchParams {
    q: Option<String>,
}

async fn search(
    State(s): State<Arc<Serving>>,
    headers: HeaderMap,
    Query(p): Query<SearchParams>,
) -> Response {
    let here = match &p.q {
        Some(q) => format!("/?q={}", url_escape(q)),
        None => "/".into(),
    };
    if let Err(r) = signed_in(&s, &headers, &here) {
        return *r;
    }
    let snap = s.snapshot();
    let segments: Vec<Value> = snap
        .index
        .segments
        .iter()
        .zip(&snap.index.segment_sizes)
        .map(|(n, size)| serde_json::json!({ "name": n, "size": size }))
        .collect();
    let q = p.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let Some(q) = q else {
        return render(
            "search.html",
            context! { run_id => snap.run_id.clone(), customers => snap.index.customers(), segments => mj(&segments) },
        );
    };
    let lookup = Lookup {
        q: Some(q.to_string()),
        ..Default::default()
    };
    match super::http::find(&s, &snap, &lookup) {
        // One match: straight to the card.
        Ok(rows) if rows.len() == 1 => {
            let c = card(&snap, rows[0], false);
            let id = c["customer_id"].as_str().unwrap_or_default().to_string();
            Redirect::to(&format!("/customers/{}", url_escape(&id))).into_response()
        }
        Ok(rows) => {
            let results: Vec<Value> = rows
                .iter()
                .map(|r| {
                    let c = card(&snap, *r, false);
                    serde_json::json!({
                        "customer_id": c["customer_id"],
                        "name": display_name(&c["profile"]),
                        "email": c["profile"]["email"],
                        "phone": c["profile"]["phone"],
                        "city": c["profile"]["city"],
                    })
                })
                .collect();
            render(
                "search.html",
                context! { run_id => snap.run_id.clone(), q, results => mj(&results), segments => mj(&segments) },
            )
        }
        Err(e) => {
            let error = e.to_string();
            render(
                "search.html",
                context! { run_id => snap.run_id.clone(), q, results => Vec::<String>::new(), error, segments => mj(&segments) },
            )
        }
    }
}

/// A JSON value for a template.
pub(crate) fn mj(v: &impl serde::Serialize) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(v))
}

fn display_name(profile: &Value) -> String {
    let part = |k: &str| profile[k].as_str().unwrap_or("").trim().to_string();
    let name = format!("{} {}", part("first_name"), part("last_name"));
    let name = name.trim();
    if name.is_empty() {
        part("company")
    } else {
        name.to_string()
    }
}

/// `lifetime_spend` → `Lifetime spend`.
fn label(key: &str) -> String {
    let s = key.replace('_', " ");
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => s,
    }
}

fn show(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) => format!("{f:.2}"),
            _ => n.to_string(),
        }),
        Value::Bool(b) => Some(if *b { "yes" } else { "no" }.into()),
        other => Some(other.to_string()),
    }
}

fn details_text(d: &Value) -> String {
    match d {
        Value::Object(o) => o
            .iter()
            .filter_map(|(k, v)| show(v).map(|v| format!("{k}: {v}")))
            .collect::<Vec<_>>()
            .join(", "),
        other => show(other).unwrap_or_default(),
    }
}

async fn customer_page(
    State(s): State<Arc<Serving>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = signed_in(&s, &headers, &format!("/customers/{}", url_escape(&id))) {
        return *r;
    }
    let snap = s.snapshot();
    let Some(row) = snap.index.row(&id) else {
        let mut r = render(
            "search.html",
            context! {
                run_id => snap.run_id.clone(), q => id.clone(), results => Vec::<String>::new(),
                error => format!("No customer {id} in run {}.", snap.run_id),
                segments => Vec::<String>::new(),
            },
        );
        *r.status_mut() = StatusCode::NOT_FOUND;
        return r;
    };
    let mut c = card(&snap, row, true);
    c["live"] = Value::Array(super::http::live_entries(&s, &id));
    let live_measures = super::http::live_measures(&s, &id);
    let empty = Map::new();
    let profile = c["profile"].as_object().unwrap_or(&empty);
    // Where each value came from: "crm · C0000006", or "rectification".
    let from = |key: &str| {
        let field = match key {
            "street" | "postcode" | "city" => "address",
            "email_normalized" => "email",
            "phone_e164" => "phone",
            other => other,
        };
        let p = &c["provenance"][field];
        show(&p["source"]).map(|s| match show(&p["record_id"]) {
            Some(r) => format!("{s} · {r}"),
            None => s,
        })
    };
    let attributes: Vec<Value> = profile
        .iter()
        .filter_map(|(k, v)| {
            show(v).map(
                |v| serde_json::json!({ "key": k, "label": label(k), "value": v, "from": from(k) }),
            )
        })
        .collect();
    let kpis: Vec<Value> = c["measures"]
        .as_object()
        .unwrap_or(&empty)
        .iter()
        .filter_map(|(k, v)| {
            show(v).map(|v| serde_json::json!({ "key": k, "label": label(k), "value": v }))
        })
        .chain(live_measures.iter().filter_map(|(k, v)| {
            show(v).map(|v| {
                serde_json::json!({ "key": k, "label": format!("{} (live)", label(k)), "value": v })
            })
        }))
        .collect();
    let rows = |key: &str| -> Vec<Value> {
        c[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|t| {
                        serde_json::json!({
                            "ts": show(&t["ts"]).unwrap_or_default(),
                            "type": show(&t["type"]).unwrap_or_default(),
                            "source": show(&t["activity_source"]).unwrap_or_default(),
                            "amount": show(&t["amount"]).unwrap_or_default(),
                            "details": details_text(&t["details"]),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let timeline = rows("timeline");
    let live = rows("live");
    render(
        "card.html",
        context! {
            run_id => snap.run_id.clone(),
            customer_id => id,
            name => display_name(&c["profile"]),
            email => show(&c["profile"]["email"]),
            phone => show(&c["profile"]["phone"]),
            kpis => mj(&kpis), attributes => mj(&attributes), timeline => mj(&timeline),
            live => mj(&live),
            segments => mj(&c["segments"]),
            // Empty states that teach: what to configure when the run has no such table.
            no_measures => empty_state(&snap.facts, names::CUSTOMER_MEASURES),
            no_segments => empty_state(&snap.facts, names::SEGMENT_MEMBERS),
            no_activities => empty_state(&snap.facts, names::ACTIVITIES),
            timeline_total => c["timeline_total"].as_u64().unwrap_or(0),
        },
    )
}

/// `{what, url}` when the run has no `table` at all (the stage is not configured), else none.
fn empty_state(facts: &crate::charts::RunFacts, table: &str) -> Option<minijinja::Value> {
    if facts.has(table) {
        return None;
    }
    let (what, section) = crate::charts::how_to_fill(table);
    Some(mj(&serde_json::json!({
        "what": what, "url": crate::charts::docs_url(section)
    })))
}

#[derive(Debug, Deserialize)]
struct LoginParams {
    next: Option<String>,
}

async fn login_form(State(s): State<Arc<Serving>>, Query(p): Query<LoginParams>) -> Response {
    render(
        "login.html",
        context! { run_id => s.snapshot().run_id.clone(), next => p.next.as_deref().and_then(same_origin_path).unwrap_or_else(|| "/".into()) },
    )
}

/// `next` as a path on this server, or None when a browser could read it as another site:
/// `//evil.example`, `/\evil.example` (browsers read `\` as `/`), `/\t/evil.example` (they drop
/// tabs and newlines), `https://evil.example`. The path is resolved against a placeholder
/// origin and must stay on it.
fn same_origin_path(next: &str) -> Option<String> {
    if !next.starts_with('/')
        || next
            .chars()
            .any(|c| c == '\\' || c.is_control() || c.is_whitespace())
    {
        return None;
    }
    let base = url::Url::parse("http://panorama.invalid/").ok()?;
    let resolved = base.join(next).ok()?;
    if resolved.origin() != base.origin() {
        return None;
    }
    let mut path = resolved.path().to_string();
    if path.starts_with("//") {
        return None;
    }
    if let Some(q) = resolved.query() {
        path = format!("{path}?{q}");
    }
    Some(path)
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

async fn login(State(s): State<Arc<Serving>>, Form(f): Form<LoginForm>) -> Response {
    let next = f
        .next
        .as_deref()
        .and_then(same_origin_path)
        .unwrap_or_else(|| "/".into());
    let Some(who) = s.credentials.token(&f.token) else {
        super::metrics::Metrics::count(&s.metrics.auth_failures);
        let mut r = render(
            "login.html",
            context! { run_id => s.snapshot().run_id.clone(), next, error => "That token is not valid." },
        );
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        return r;
    };
    let secure = if s.settings.tls.is_some() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        super::http::SESSION_COOKIE,
        s.credentials.sessions.create(who),
        super::auth::SESSION_LIFETIME.as_secs()
    );
    let mut r = Redirect::to(&next).into_response();
    if let Ok(v) = cookie.parse() {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}
