//! The HTTP side: a JSON API for apps (lookups from the index, never a scan), read-only SQL
//! with a row limit, admin operations, health, metrics, and the customer card pages.
//!
//! | route | what |
//! |---|---|
//! | `GET /api/health` | run served, customers; no credentials needed |
//! | `GET /metrics` | Prometheus counters |
//! | `GET /api/customers/{id}` | profile, measures, segments, first timeline page |
//! | `GET /api/customers?email=` (`phone`, `cookie`, `source`+`id`, `q`) | matching customers |
//! | `GET /api/customers/{id}/timeline?offset=&limit=` | a page of activities, newest first |
//! | `GET /api/segments`, `GET /api/segments/{name}/members` | sizes, members (paged) |
//! | `POST /api/sql` | one read-only statement, JSON rows |
//! | `POST /api/admin/run`, `/api/admin/refresh`, `/api/admin/export/{name}` | admin role |

use crate::output::{batch_objects, json_value_at};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::auth::{Principal, Role};
use super::metrics::Metrics;
use super::snapshot::{Serving, Snapshot};

/// Profiles a lookup returns at most.
const MAX_MATCHES: usize = 20;
/// Timeline entries in a card unless asked for more.
const TIMELINE_PAGE: usize = 20;

pub fn router(serving: Arc<Serving>) -> Router {
    Router::new()
        .route("/api/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/customers", get(find_customers))
        .route("/api/customers/{id}", get(customer))
        .route("/api/customers/{id}/timeline", get(timeline))
        .route("/api/segments", get(segments))
        .route("/api/segments/{name}/members", get(segment_members))
        .route("/api/sql", post(sql))
        .route("/api/match", post(match_record))
        .route("/match", post(match_record))
        .route("/api/admin/run", post(admin_run))
        .route("/api/admin/refresh", post(admin_refresh))
        .route("/api/admin/export/{name}", post(admin_export))
        .merge(super::events::routes())
        .merge(super::card::routes())
        .merge(super::console::routes())
        .layer(axum::middleware::from_fn_with_state(
            serving.clone(),
            observe,
        ))
        .with_state(serving)
}

/// Count and time every request by its route pattern; give API errors a JSON body.
async fn observe(State(serving): State<Arc<Serving>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let api = req.uri().path().starts_with("/api/");
    let console = req.uri().path().starts_with("/console");
    let started = Instant::now();
    // Failed logins per client address: past the limit, requests that need credentials are
    // refused unchecked for a while (health stays open).
    let key = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| format!("addr:{}", c.0.ip()));
    let open = req.uri().path() == "/api/health";
    if let (Some(key), false) = (&key, open) {
        if let Some(wait) = serving.credentials.failures.blocked(key) {
            let mut res = ApiError(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many failed logins from this address; retry in {} s",
                    wait.as_secs() + 1
                ),
            )
            .into_response();
            if let Ok(v) = (wait.as_secs() + 1).to_string().parse() {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            security_headers(res.headers_mut(), console);
            serving.metrics.http(&route, 429, started.elapsed());
            return res;
        }
    }
    let mut res = next.run(req).await;
    if let (Some(key), StatusCode::UNAUTHORIZED) = (&key, res.status()) {
        serving.credentials.failures.failed(key);
    }
    if api {
        res = json_error(res).await;
    }
    security_headers(res.headers_mut(), console);
    serving
        .metrics
        .http(&route, res.status().as_u16(), started.elapsed());
    res
}

/// An API error that is not JSON yet (axum's rejection of a malformed query string, path or
/// body is plain text) becomes `{"error": ...}` with the same status.
async fn json_error(res: Response) -> Response {
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let bytes = axum::body::to_bytes(res.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    let text = match text.is_empty() {
        true => status.canonical_reason().unwrap_or("error").to_string(),
        false => text,
    };
    ApiError(status, text).into_response()
}

/// Headers every response carries: no MIME sniffing, no framing, no referrer; pages load
/// scripts, styles and data only from this server (the card's and console's own inline
/// script and styles excepted; the console's Vega charts compile their expressions with
/// `Function`, so console pages also allow eval), and forms post only here.
fn security_headers(headers: &mut HeaderMap, console: bool) {
    const CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; \
        style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
        frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
    const CONSOLE_CSP: &str =
        "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; \
        style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
        frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        (
            "content-security-policy",
            if console { CONSOLE_CSP } else { CSP },
        ),
    ] {
        headers.insert(
            axum::http::HeaderName::from_static(name),
            axum::http::HeaderValue::from_static(value),
        );
    }
}

/// A request id for a server error: the client gets it, the log has it with the details.
fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{started:x}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// An error as JSON: `{"error": "..."}`.
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    /// Client errors say what was wrong; server errors say only that something failed and
    /// which request it was: the details (planner text, paths) go to the log, not the client.
    fn into_response(self) -> Response {
        if self.0.is_server_error() {
            let id = request_id();
            tracing::error!(request_id = %id, status = self.0.as_u16(), error = %self.1, "request failed");
            return (
                self.0,
                Json(json!({
                    "error": "internal error: the server log has the details under this request id",
                    "request_id": id,
                })),
            )
                .into_response();
        }
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The caller, from `Authorization: Bearer` or the card's login cookie.
pub fn principal(serving: &Serving, headers: &HeaderMap) -> Result<Principal, &'static str> {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if header.is_none() && serving.credentials.required() {
        if let Some(who) =
            session_cookie(headers).and_then(|id| serving.credentials.sessions.get(&id))
        {
            return Ok(who);
        }
    }
    let result = serving.credentials.authorize(header.as_deref());
    if result.is_err() {
        Metrics::count(&serving.metrics.auth_failures);
    }
    result
}

/// The card's session cookie: a random id the server maps to who signed in (the token
/// itself never goes into a cookie).
pub const SESSION_COOKIE: &str = "panorama_session";

pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(SESSION_COOKIE)
                .and_then(|r| r.strip_prefix('='))
                .map(str::to_string)
        })
}

pub(crate) fn require(serving: &Serving, headers: &HeaderMap, role: Role) -> ApiResult<Principal> {
    let p =
        principal(serving, headers).map_err(|m| ApiError(StatusCode::UNAUTHORIZED, m.into()))?;
    if role == Role::Admin && p.role != Role::Admin {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!("{} is a reader; this needs an admin token", p.name),
        ));
    }
    Ok(p)
}

async fn health(State(s): State<Arc<Serving>>) -> Json<Value> {
    let snap = s.snapshot();
    Json(json!({
        "status": "ok",
        "run_id": snap.run_id,
        "loaded_at": snap.loaded_at,
        "customers": snap.index.customers(),
        "segments": snap.index.segments.len(),
    }))
}

async fn metrics(State(s): State<Arc<Serving>>, headers: HeaderMap) -> ApiResult<Response> {
    require(&s, &headers, Role::Reader)?;
    let snap = s.snapshot();
    let ws = crate::workspace::Workspace::new(s.cfg.workspace_dir());
    let served = ws.read_manifest(&snap.run_id).ok();
    let newest = ws
        .manifests()
        .ok()
        .and_then(|all| all.into_iter().max_by(|a, b| a.run_id.cmp(&b.run_id)));
    let mut body = s.metrics.render(&snap.run_id, snap.index.customers());
    if let Some(c) = &s.events {
        body.push_str(&c.metrics());
    }
    if let Some(t) = &s.triggered {
        body.push_str(&t.metrics());
    }
    body.push_str(&super::metrics::data_quality(
        served.as_ref().and_then(|m| m.quality.as_ref()),
        newest.as_ref(),
    ));
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response())
}

/// The card of one profile row: attributes, measures, segments, optionally a timeline page.
pub fn card(snap: &Snapshot, row: u32, timeline: bool) -> Value {
    let mut profile = Map::new();
    let mut measures = Map::new();
    let mut provenance = Map::new();
    let mut id = Value::Null;
    let read = snap.index.profile(row).unwrap_or_else(|e| {
        tracing::error!("reading profile row {row} of run {}: {e}", snap.run_id);
        None
    });
    // Each column's value goes straight to its part of the card (no map of the whole row
    // first, then a second pass to split it).
    if let Some((batch, i)) = read {
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            let k = field.name();
            if k == "customer_id" {
                id = json_value_at(column, i);
            } else if snap.measures.contains(k) {
                measures.insert(k.clone(), json_value_at(column, i));
            } else if let Some((field, part)) = provenance_part(k) {
                let v = json_value_at(column, i);
                if !v.is_null() {
                    let entry = provenance
                        .entry(field.to_string())
                        .or_insert_with(|| json!({}));
                    entry[part] = v;
                }
            } else {
                profile.insert(k.clone(), json_value_at(column, i));
            }
        }
    }
    let mut out = json!({
        "customer_id": id,
        "profile": profile,
        "provenance": provenance,
        "measures": measures,
        "segments": snap.index.segments_of(row),
        "timeline_total": snap.index.timeline_len(row),
    });
    if timeline {
        let page = timeline_entries(snap, row, 0, TIMELINE_PAGE).unwrap_or_default();
        out["timeline"] = Value::Array(page);
    }
    out
}

/// `first_name_source` → (`first_name`, `source`): a column of `unified_customers_provenance`.
fn provenance_part(column: &str) -> Option<(&str, &'static str)> {
    crate::unify::merge::FIELDS.iter().find_map(|f| {
        let rest = column.strip_prefix(f.name)?;
        match rest {
            "_source" => Some((f.name, "source")),
            "_record_id" => Some((f.name, "record_id")),
            _ => None,
        }
    })
}

/// Timeline entries, `details` parsed back into an object.
pub fn timeline_entries(
    snap: &Snapshot,
    row: u32,
    offset: u64,
    limit: usize,
) -> crate::Result<Vec<Value>> {
    let Some(batch) = snap.index.timeline_page(row, offset, limit)? else {
        return Ok(Vec::new());
    };
    Ok(batch_objects(&batch)
        .into_iter()
        .map(|mut o| {
            o.remove("customer_id");
            if let Some(Value::String(d)) = o.get("details") {
                if let Ok(parsed) = serde_json::from_str::<Value>(d) {
                    o.insert("details".into(), parsed);
                }
            }
            Value::Object(o)
        })
        .collect())
}

async fn customer(
    State(s): State<Arc<Serving>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    require(&s, &headers, Role::Reader)?;
    let snap = s.snapshot();
    let row = snap.index.row(&id).ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("no customer {id} in run {}", snap.run_id),
        )
    })?;
    let mut c = card(&snap, row, true);
    c["run_id"] = json!(snap.run_id);
    c["live"] = Value::Array(live_entries(&s, &id));
    c["live_measures"] = Value::Object(live_measures(&s, &id));
    Ok(Json(c))
}

/// Events collected since the served run, newest first (see [`super::live`]).
pub fn live_entries(s: &Serving, customer_id: &str) -> Vec<Value> {
    s.events
        .as_ref()
        .map(|c| c.live.timeline(&c.resolution, customer_id))
        .unwrap_or_default()
}

/// `[serve.events.measures]` of a customer now.
pub fn live_measures(s: &Serving, customer_id: &str) -> Map<String, Value> {
    s.events
        .as_ref()
        .map(|c| {
            c.measures
                .values(customer_id, chrono::Utc::now().timestamp_micros())
        })
        .unwrap_or_default()
}

/// Lookup parameters: one identifier, or `q` (name, e-mail or phone as typed in a search box).
#[derive(Debug, Deserialize, Default)]
pub struct Lookup {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub cookie: Option<String>,
    pub source: Option<String>,
    pub id: Option<String>,
    pub q: Option<String>,
}

/// Profile rows matching a lookup; the identifier is normalized as unification normalizes it.
pub fn find(s: &Serving, snap: &Snapshot, l: &Lookup) -> crate::error::Result<Vec<u32>> {
    use crate::error::Error;
    let ix = &snap.index;
    let rows: Vec<u32> = if let Some(e) = &l.email {
        let mut out = String::new();
        if !panorama_udfs::normalize::canonical_email(e, true, &mut out) {
            return Err(Error::InvalidRequest(format!(
                "{e:?} is not an e-mail address"
            )));
        }
        ix.by_identifier("email", &out)
    } else if let Some(p) = &l.phone {
        let Some(n) = normalize_phone(s, p) else {
            return Err(Error::InvalidRequest(format!(
                "{p:?} is not a phone number (use +<country code>...)"
            )));
        };
        ix.by_identifier("phone", &n)
    } else if let Some(c) = &l.cookie {
        let found = ix.by_identifier("cookie", c.trim());
        match (found.is_empty(), &s.events) {
            // Tied by an event collected since the run (an identify, a sign-up).
            (true, Some(ev)) => ev
                .live
                .tied(c.trim())
                .and_then(|id| ix.row(&id))
                .into_iter()
                .collect(),
            _ => found,
        }
    } else if let (Some(src), Some(id)) = (&l.source, &l.id) {
        ix.by_identifier("record", &format!("{}:{}", src.trim(), id.trim()))
    } else if let Some(q) = &l.q {
        let q = q.trim();
        if q.contains('@') {
            return find(
                s,
                snap,
                &Lookup {
                    email: Some(q.into()),
                    ..Default::default()
                },
            );
        }
        let digits = q.chars().filter(|c| c.is_ascii_digit()).count();
        if digits >= 6
            && q.chars()
                .all(|c| c.is_ascii_digit() || " +-().".contains(c))
        {
            return find(
                s,
                snap,
                &Lookup {
                    phone: Some(q.into()),
                    ..Default::default()
                },
            );
        }
        if let Some(r) = ix.row(q) {
            return Ok(vec![r]);
        }
        ix.by_name(q, MAX_MATCHES)
    } else {
        return Err(Error::InvalidRequest(
            "give one of email, phone, cookie, source and id, or q".into(),
        ));
    };
    let mut rows = rows;
    // A record committed through real-time match is found at once (by its customer).
    if rows.is_empty() {
        if let Some(m) = snap.matcher.built() {
            let key = if let Some(e) = &l.email {
                let mut out = String::new();
                panorama_udfs::normalize::canonical_email(e, true, &mut out)
                    .then_some(("email", out))
            } else if let Some(p) = &l.phone {
                normalize_phone(s, p).map(|n| ("phone", n))
            } else if let (Some(src), Some(id)) = (&l.source, &l.id) {
                Some(("record", format!("{}:{}", src.trim(), id.trim())))
            } else {
                None
            };
            if let Some(row) = key
                .and_then(|(kind, v)| m.committed_customer(kind, &v))
                .and_then(|c| ix.row(&c))
            {
                rows.push(row);
            }
        }
    }
    rows.sort_unstable();
    rows.dedup();
    rows.truncate(MAX_MATCHES);
    Ok(rows)
}

/// E.164 as unification writes it: as given when it has a country code, else with each
/// default region of `[unify.sources]` in turn.
fn normalize_phone(s: &Serving, raw: &str) -> Option<String> {
    if let Some(n) = panorama_udfs::normalize::e164(raw, None) {
        return Some(n);
    }
    let regions = s
        .cfg
        .unify
        .as_ref()
        .map(|u| {
            u.sources
                .values()
                .filter_map(|m| m.get_ref().default_region.clone())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    regions
        .iter()
        .find_map(|r| panorama_udfs::normalize::e164(raw, Some(r)))
}

async fn find_customers(
    State(s): State<Arc<Serving>>,
    headers: HeaderMap,
    Query(l): Query<Lookup>,
) -> ApiResult<Json<Value>> {
    require(&s, &headers, Role::Reader)?;
    let snap = s.snapshot();
    let rows = find(&s, &snap, &l).map_err(|e| api_error(e, StatusCode::BAD_REQUEST))?;
    let customers: Vec<Value> = rows.iter().map(|r| card(&snap, *r, false)).collect();
    Ok(Json(json!({
        "run_id": snap.run_id,
        "count": customers.len(),
        "customers": customers,
    })))
}

#[derive(Debug, Deserialize)]
struct Page {
    offset: Option<u64>,
    limit: Option<usize>,
}

impl Page {
    /// The offset, refused past what SQL's OFFSET takes (a signed 64-bit integer).
    fn offset(&self) -> ApiResult<u64> {
        match self.offset {
            Some(o) if o > i64::MAX as u64 => Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("offset must be at most {}", i64::MAX),
            )),
            o => Ok(o.unwrap_or(0)),
        }
    }
}

async fn timeline(
    State(s): State<Arc<Serving>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<Page>,
) -> ApiResult<Json<Value>> {
    require(&s, &headers, Role::Reader)?;
    let snap = s.snapshot();
    let row = snap
        .index
        .row(&id)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no customer {id}")))?;
    let offset = p.offset()?;
    let limit = p.limit.unwrap_or(50).min(s.settings.limits.http_row_limit);
    let snap2 = snap.clone();
    let items = tokio::task::spawn_blocking(move || timeline_entries(&snap2, row, offset, limit))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let total = snap.index.timeline_len(row);
    let next = (offset + (items.len() as u64) < total).then(|| {
        format!(
            "/api/customers/{id}/timeline?offset={}&limit={limit}",
            offset + items.len() as u64
        )
    });
    Ok(Json(json!({
        "customer_id": id,
        "total": total,
        "offset": offset,
        "limit": limit,
        "items": items,
        "next": next,
    })))
}

async fn segments(State(s): State<Arc<Serving>>, headers: HeaderMap) -> ApiResult<Json<Value>> {
    require(&s, &headers, Role::Reader)?;
    let snap = s.snapshot();
    let list: Vec<Value> = snap
        .index
        .segments
        .iter()
        .zip(&snap.index.segment_sizes)
        .map(|(n, size)| json!({ "name": n, "size": size }))
        .collect();
    Ok(Json(json!({ "run_id": snap.run_id, "segments": list })))
}

async fn segment_members(
    State(s): State<Arc<Serving>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(p): Query<Page>,
) -> ApiResult<Json<Value>> {
    require(&s, &headers, Role::Reader)?;
    let snap = s.snapshot();
    if !snap.index.segments.contains(&name) {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!(
                "no segment {name} (segments: {})",
                snap.index.segments.join(", ")
            ),
        ));
    }
    let limit = p
        .limit
        .unwrap_or(1000)
        .min(s.settings.limits.http_row_limit);
    let offset = p.offset()?;
    let sql = format!(
        "SELECT customer_id FROM segment_members WHERE segment = '{}' ORDER BY customer_id \
         LIMIT {limit} OFFSET {offset}",
        name.replace('\'', "''")
    );
    let (_, batches, _) = s
        .sql(&sql, limit)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let members: Vec<Value> = batches
        .iter()
        .flat_map(batch_objects)
        .filter_map(|mut o| o.remove("customer_id"))
        .collect();
    Ok(Json(
        json!({ "segment": name, "offset": offset, "limit": limit, "members": members }),
    ))
}

#[derive(Debug, Deserialize)]
struct SqlRequest {
    sql: String,
    limit: Option<usize>,
}

#[derive(serde::Deserialize)]
struct MatchRequest {
    source: String,
    record: Map<String, Value>,
    /// Keep the record, so later matches see it.
    #[serde(default)]
    commit: bool,
}

/// `POST /api/match`: the customer one record belongs to, by the batch run's rules and
/// weights, with score and explanation.
async fn match_record(
    State(s): State<Arc<Serving>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    require(&s, &headers, Role::Reader)?;
    let req: MatchRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("expected {{\"source\": \"…\", \"record\": {{…}}, \"commit\": false}}: {e}"),
        )
    })?;
    if req.commit {
        require(&s, &headers, Role::Admin)?;
    }
    let snap = s.snapshot();
    let matcher = snap
        .matcher
        .get()
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let result = matcher
        .match_record(&req.source, &req.record, req.commit)
        .map_err(|e| api_error(e, StatusCode::BAD_REQUEST))?;
    let mut v = serde_json::to_value(&result)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    v["run_id"] = json!(snap.run_id);
    Ok(Json(v))
}

async fn sql(
    State(s): State<Arc<Serving>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    require(&s, &headers, Role::Reader)?;
    let req: SqlRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(_) => SqlRequest {
            sql: String::from_utf8_lossy(&body).to_string(),
            limit: None,
        },
    };
    let limit = req
        .limit
        .unwrap_or(s.settings.limits.http_row_limit)
        .min(s.settings.limits.http_row_limit);
    let (schema, batches, truncated) = s.sql(&req.sql, limit).await.map_err(|e| {
        // A refused write is forbidden; anything else about the statement is the request's.
        api_error(e, StatusCode::BAD_REQUEST)
    })?;
    let rows: Vec<Value> = batches
        .iter()
        .flat_map(batch_objects)
        .map(Value::Object)
        .collect();
    let columns: Vec<Value> = schema
        .fields()
        .iter()
        .map(|f| json!({ "name": f.name(), "type": f.data_type().to_string() }))
        .collect();
    Ok(Json(json!({
        "columns": columns,
        "rows": rows,
        "row_count": rows.len(),
        "truncated": truncated,
        "row_limit": limit,
    })))
}

#[derive(Debug, Deserialize)]
struct RunParams {
    full: Option<bool>,
}

async fn admin_guard(s: &Serving) -> ApiResult<tokio::sync::MutexGuard<'_, ()>> {
    s.admin.try_lock().map_err(|_| {
        ApiError(
            StatusCode::CONFLICT,
            "another admin operation is running; try again when it ends".into(),
        )
    })
}

async fn admin_run(
    State(s): State<Arc<Serving>>,
    headers: HeaderMap,
    Query(p): Query<RunParams>,
) -> ApiResult<Json<Value>> {
    require(&s, &headers, Role::Admin)?;
    let _guard = admin_guard(&s).await?;
    let opts = crate::run::RunOptions {
        quiet: true,
        full: p.full.unwrap_or(false),
        ..Default::default()
    };
    let outcome = crate::run::run_project(&s.cfg, &opts)
        .await
        .map_err(operation_error)?;
    finish_operation(&s, outcome).await
}

async fn admin_refresh(
    State(s): State<Arc<Serving>>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    require(&s, &headers, Role::Admin)?;
    let _guard = admin_guard(&s).await?;
    let opts = crate::run::RunOptions {
        quiet: true,
        ..Default::default()
    };
    let outcome = crate::run::refresh_project(&s.cfg, &opts)
        .await
        .map_err(operation_error)?;
    finish_operation(&s, outcome).await
}

/// A failed admin operation: 409 when another process writes the workspace (a run from the
/// shell, a schedule's job; the message names it), else by the error, else 422.
fn operation_error(e: crate::Error) -> ApiError {
    api_error(e, StatusCode::UNPROCESSABLE_ENTITY)
}

/// The status of an error: by its kind when the kind says (a refused write 403, a missing
/// thing 404, a bad request or config value 400, a conflict 409, an invariant 500), else
/// `otherwise` (what the endpoint answers for anything else).
fn status_of(e: &crate::Error, otherwise: StatusCode) -> StatusCode {
    use crate::Error as E;
    match e {
        E::ReadOnly(_) => StatusCode::FORBIDDEN,
        E::NotFound(_) => StatusCode::NOT_FOUND,
        E::InvalidRequest(_) | E::ResourceLimit(_) | E::Invalid { .. } => StatusCode::BAD_REQUEST,
        E::Busy { .. } | E::Conflict(_) => StatusCode::CONFLICT,
        E::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => otherwise,
    }
}

/// An error as an API answer: [`status_of`] and its message.
fn api_error(e: crate::Error, otherwise: StatusCode) -> ApiError {
    ApiError(status_of(&e, otherwise), e.to_string())
}

/// After a run: serve it right away rather than at the next poll.
async fn finish_operation(s: &Serving, outcome: crate::run::RunOutcome) -> ApiResult<Json<Value>> {
    s.reload()
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(json!({
        "run_id": outcome.manifest.run_id,
        "status": outcome.manifest.status.as_str(),
        "seconds": outcome.seconds,
        "serving": s.snapshot().run_id,
    })))
}

async fn admin_export(
    State(s): State<Arc<Serving>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    require(&s, &headers, Role::Admin)?;
    let _guard = admin_guard(&s).await?;
    let opts = crate::exports::ExportOptions {
        quiet: true,
        dry_run: false,
        locking: Default::default(),
    };
    let r = crate::exports::run_export(&s.cfg, &name, &opts)
        .await
        .map_err(operation_error)?;
    Ok(Json(json!({
        "export": r.export,
        "run_id": r.run_id,
        "outcome": r.outcome.as_str(),
        "selected": r.selected,
        "upserts": r.upserts,
        "deletes": r.deletes,
        "error": r.error,
    })))
}

/// Serve HTTP (TLS when configured) on `listener` until the process ends.
pub async fn serve(
    serving: Arc<Serving>,
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> crate::Result<()> {
    // A connection that has not sent its request headers within `login_timeout` is closed,
    // so idle sockets give their descriptors back. HTTP/1 only (TLS offers only http/1.1
    // anyway): the protocol-sniffing mode waits for a first byte with no deadline at all.
    let header_timeout = serving.settings.login_timeout;
    let cap = ConnectionCap {
        slots: Arc::new(tokio::sync::Semaphore::new(
            serving.settings.max_http_connections,
        )),
        max: serving.settings.max_http_connections,
    };
    let app = router(serving);
    let err = |e: std::io::Error| crate::Error::Network {
        what: "HTTP server".into(),
        source: Box::new(e),
    };
    match tls {
        Some(tls) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_config(tls);
            let mut server = axum_server::from_tcp(listener)
                .map_err(err)?
                .acceptor(axum_server::tls_rustls::RustlsAcceptor::new(config).acceptor(cap))
                .http1_only();
            server
                .http_builder()
                .http1()
                .header_read_timeout(header_timeout);
            server
                .serve(app.into_make_service_with_connect_info::<std::net::SocketAddr>())
                .await
                .map_err(err)
        }
        None => {
            let mut server = axum_server::from_tcp(listener)
                .map_err(err)?
                .acceptor(cap)
                .http1_only();
            server
                .http_builder()
                .http1()
                .header_read_timeout(header_timeout);
            server
                .serve(app.into_make_service_with_connect_info::<std::net::SocketAddr>())
                .await
                .map_err(err)
        }
    }
}

/// At most `max` HTTP connections open at once (`[serve] max_http_connections`): one more is
/// closed as soon as it is accepted, so a flood of idle sockets cannot take every file
/// descriptor the PostgreSQL and Flight ports need.
#[derive(Clone)]
struct ConnectionCap {
    slots: Arc<tokio::sync::Semaphore>,
    max: usize,
}

/// A connection holding one of the cap's slots until it closes.
struct Slotted<S> {
    inner: S,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl<I, S> axum_server::accept::Accept<I, S> for ConnectionCap
where
    I: Send + 'static,
    S: Send + 'static,
{
    type Stream = Slotted<I>;
    type Service = S;
    type Future = std::future::Ready<std::io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        std::future::ready(match self.slots.clone().try_acquire_owned() {
            Ok(slot) => Ok((
                Slotted {
                    inner: stream,
                    _slot: slot,
                },
                service,
            )),
            Err(_) => {
                tracing::debug!(
                    "HTTP connection closed: max_http_connections ({}) reached",
                    self.max
                );
                Err(std::io::Error::other(format!(
                    "max_http_connections ({}) reached",
                    self.max
                )))
            }
        })
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Slotted<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Slotted<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
