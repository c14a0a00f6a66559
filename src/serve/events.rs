//! Collecting events over HTTP: `POST /api/events` (one event, or `{"batch": [...]}`), the
//! paths Segment's and RudderStack's SDKs post to (`/v1/batch`, `/v1/track`, `/v1/t`, ...),
//! and the browser tracker `GET /panorama.js`.
//!
//! - A request is answered once its events are on disk ([`crate::event_log::log`]); bad
//!   events of a batch are listed with their index and reason and the good ones kept.
//! - Who may send: a write key (`panorama write-keys create`) as `Authorization: Basic`
//!   (the key as user name, as Segment's SDKs send it), `Bearer`, or `writeKey` in the body
//!   (what `sendBeacon` can carry); an admin token also may. With no credentials of any
//!   kind configured (a server on loopback only), anyone on this machine may.
//! - Pages on other origins may post (CORS) when `[serve.events] allowed_origins` lets them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::json;

use super::auth::Role;
use super::config::EventSettings;
use super::live::{Live, Resolution};
use super::snapshot::Serving;
use crate::config::ProjectConfig;
use crate::error::Result;
use crate::event_log::log::{AppendError, EventLog, Outcome, Pending};
use crate::event_log::spec;

/// The tracker served at `/panorama.js`.
const TRACKER: &str = include_str!("assets/panorama.js");

/// Collecting into the project's events source.
pub struct Collector {
    pub source: String,
    pub log: Arc<EventLog>,
    pub live: Live,
    pub resolution: Resolution,
    pub settings: EventSettings,
    pub rejected: AtomicU64,
    /// `[serve.events.measures]`, kept live per customer.
    pub measures: super::live_measures::LiveMeasures,
}

impl Collector {
    /// The collector of `cfg`'s events source (none without one): opens its log.
    pub fn open(cfg: &ProjectConfig, settings: &EventSettings) -> Result<Option<Collector>> {
        let Some((source, dir)) = cfg.events_source() else {
            return Ok(None);
        };
        let measures = super::live_measures::LiveMeasures::new(
            &crate::session::base_context(),
            &settings.measures,
        )?;
        let log = Arc::new(EventLog::open(&dir, settings.log.clone())?);
        let activity = cfg
            .activities
            .iter()
            .find(|(_, a)| a.get_ref().source == source)
            .map(|(n, _)| n.clone());
        let user_source = cfg
            .unify
            .as_ref()
            .and_then(|u| u.identities.get(source))
            .and_then(|m| m.get_ref().user_source.clone());
        Ok(Some(Collector {
            source: source.to_string(),
            log,
            live: Live::default(),
            resolution: Resolution {
                activity,
                source: source.to_string(),
                user_source,
            },
            settings: settings.clone(),
            rejected: AtomicU64::new(0),
            measures,
        }))
    }

    /// After a (re)start: the events the served run has not read go back on the card, the
    /// live measures' windows and the triggered journeys' armed set are rebuilt.
    pub fn replay(
        &self,
        index: &super::index::LookupIndex,
        run_started: i64,
        triggered: Option<&super::triggered::Triggered>,
    ) -> Result<()> {
        let now = chrono::Utc::now().timestamp_micros();
        let back = |d: std::time::Duration| now - d.as_micros() as i64;
        let measures_since = back(self.measures.horizon());
        let triggers_since = triggered.map_or(now, |t| back(t.horizon()));
        let since = run_started.min(measures_since).min(triggers_since);
        let started = std::time::Instant::now();
        let events = crate::event_log::read::recent(&self.log.dir, since)?;
        let unread: Vec<_> = events
            .iter()
            .filter(|e| e.received_at >= run_started)
            .cloned()
            .collect();
        self.live.add(index, &self.resolution, &unread);
        if !self.measures.is_empty() {
            let window: Vec<_> = events
                .iter()
                .filter(|e| e.received_at >= measures_since)
                .cloned()
                .collect();
            // Resolved as they stand now: ties made by later events count.
            let customers: Vec<_> = window
                .iter()
                .map(|e| self.live.resolve_event(index, &self.resolution, e))
                .collect();
            self.measures.observe(&window, &customers);
        }
        if let Some(t) = triggered {
            let window: Vec<_> = events
                .iter()
                .filter(|e| e.received_at >= triggers_since)
                .cloned()
                .collect();
            t.observe(&window);
        }
        tracing::info!(
            events = events.len(),
            live = unread.len(),
            seconds = started.elapsed().as_secs_f64(),
            "collected events replayed"
        );
        Ok(())
    }

    /// Prometheus lines of the collector.
    pub fn metrics(&self) -> String {
        let s = &self.log.stats;
        let mut out = String::new();
        for (name, help, v) in [
            (
                "events_written_total",
                "Events written to the event log (acknowledged).",
                s.written.load(Ordering::Relaxed),
            ),
            (
                "events_duplicates_total",
                "Events acknowledged without being written: their messageId was seen before.",
                s.duplicates.load(Ordering::Relaxed),
            ),
            (
                "events_rejected_total",
                "Events refused as malformed.",
                self.rejected.load(Ordering::Relaxed),
            ),
            (
                "events_flushes_total",
                "fsyncs of the event log (one per group of requests).",
                s.flushes.load(Ordering::Relaxed),
            ),
        ] {
            out.push_str(&format!(
                "# HELP panorama_{name} {help}\n# TYPE panorama_{name} counter\npanorama_{name} {v}\n"
            ));
        }
        out.push_str(&format!(
            "# HELP panorama_events_live Events shown live (received since the served run).\n# TYPE panorama_events_live gauge\npanorama_events_live {}\n",
            self.live.len()
        ));
        out
    }
}

pub fn routes() -> Router<Arc<Serving>> {
    let limit = DefaultBodyLimit::max(spec::MAX_BATCH_BYTES);
    Router::new()
        .route(
            "/api/events",
            post(collect_any).options(preflight).layer(limit),
        )
        .route(
            "/v1/{call}",
            post(collect_call).options(preflight).layer(limit),
        )
        .route("/panorama.js", get(tracker))
}

async fn tracker() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        TRACKER,
    )
        .into_response()
}

/// CORS: the origin allowed to read the answer, if it is.
fn allowed_origin(settings: &EventSettings, headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    let text = origin.to_str().ok()?;
    settings
        .allowed_origins
        .iter()
        .any(|o| o == "*" || o.trim_end_matches('/') == text)
        .then(|| origin.clone())
}

/// Let the page's origin read the answer, when it may post; true when it may.
fn allow_origin(serving: &Serving, headers: &HeaderMap, res: &mut Response) -> bool {
    let Some(origin) = serving
        .events
        .as_ref()
        .and_then(|c| allowed_origin(&c.settings, headers))
    else {
        return false;
    };
    let h = res.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    true
}

fn with_cors(serving: &Serving, headers: &HeaderMap, mut res: Response) -> Response {
    allow_origin(serving, headers, &mut res);
    res
}

async fn preflight(State(s): State<Arc<Serving>>, headers: HeaderMap) -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    if allow_origin(&s, &headers, &mut res) {
        let h = res.headers_mut();
        for (name, value) in [
            (header::ACCESS_CONTROL_ALLOW_METHODS, "POST"),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "Content-Type, Authorization",
            ),
            (header::ACCESS_CONTROL_MAX_AGE, "86400"),
        ] {
            h.insert(name, HeaderValue::from_static(value));
        }
    }
    res
}

async fn collect_any(State(s): State<Arc<Serving>>, headers: HeaderMap, body: Bytes) -> Response {
    let res = collect(&s, &headers, None, &body).await;
    with_cors(&s, &headers, res)
}

async fn collect_call(
    State(s): State<Arc<Serving>>,
    headers: HeaderMap,
    Path(call): Path<String>,
    body: Bytes,
) -> Response {
    let kind = match call.as_str() {
        "batch" | "b" | "import" => None,
        "track" | "t" => Some("track"),
        "page" | "p" => Some("page"),
        "screen" | "s" => Some("screen"),
        "identify" | "i" => Some("identify"),
        "alias" | "a" => Some("alias"),
        other => {
            let res = error(
                StatusCode::NOT_FOUND,
                format!("no call /v1/{other} (batch, track, page, screen, identify, alias)"),
            );
            return with_cors(&s, &headers, res);
        }
    };
    let res = collect(&s, &headers, Some(kind), &body).await;
    with_cors(&s, &headers, res)
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// The key a request carries: Basic (user name), Bearer, or `writeKey` in the body.
fn sent_key(headers: &HeaderMap, body_key: Option<&str>) -> Option<String> {
    if let Some(h) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(b) = h
            .strip_prefix("Basic ")
            .or_else(|| h.strip_prefix("basic "))
        {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())?;
            return Some(decoded.split(':').next().unwrap_or("").to_string());
        }
        if let Some(t) = h
            .strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
        {
            return Some(t.trim().to_string());
        }
    }
    body_key.map(str::to_string)
}

/// May this request send events?
fn allowed(s: &Serving, headers: &HeaderMap, body_key: Option<&str>) -> Result<(), Box<Response>> {
    let creds = &s.credentials;
    if !creds.events_need_key() {
        return Ok(());
    }
    let Some(key) = sent_key(headers, body_key) else {
        return Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "a write key is needed: `Authorization: Basic <base64 of key:>`, `Bearer <key>`, or \"writeKey\" in the body".into(),
        )));
    };
    if creds.write_key(&key).is_some() || creds.token(&key).is_some_and(|p| p.role == Role::Admin) {
        return Ok(());
    }
    super::metrics::Metrics::count(&s.metrics.auth_failures);
    Err(Box::new(error(
        StatusCode::UNAUTHORIZED,
        "invalid write key".into(),
    )))
}

/// An id for an event sent without `messageId` (a retry of it cannot be recognised).
fn server_id(received_at: i64) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "srv-{received_at:x}-{:x}-{:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Collect one request's events (`call`: `Some` for the Segment paths, with the call's kind
/// when it names one): check them, write the good ones to the log, show them live.
async fn collect(
    s: &Serving,
    headers: &HeaderMap,
    call: Option<Option<&str>>,
    body: &[u8],
) -> Response {
    let Some(c) = &s.events else {
        return error(
            StatusCode::NOT_FOUND,
            "this project collects no events: add a source with format = \"events\" (see docs/serving.md)".into(),
        );
    };
    let received_at = chrono::Utc::now().timestamp_micros();
    let parsed = match spec::body(body) {
        Ok(b) => b,
        Err(m) => {
            c.rejected.fetch_add(1, Ordering::Relaxed);
            return error(StatusCode::BAD_REQUEST, m.0);
        }
    };
    if let Err(res) = allowed(s, headers, parsed.write_key.as_deref()) {
        return *res;
    }
    if parsed.events.is_empty() {
        return error(StatusCode::BAD_REQUEST, "the batch holds no events".into());
    }
    let Checked {
        pending,
        kept,
        rejected,
    } = check(&parsed, call.flatten(), received_at);
    c.rejected
        .fetch_add(rejected.len() as u64, Ordering::Relaxed);
    if kept.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({
                "error": "no event of the request was accepted",
                "accepted": 0,
                "rejected": rejected,
            })),
        )
            .into_response();
    }
    let outcomes = match append(c, pending).await {
        Ok(o) => o,
        Err(res) => return *res,
    };
    let duplicates = outcomes
        .iter()
        .filter(|o| **o == Outcome::Duplicate)
        .count();
    let written: Vec<_> = kept
        .into_iter()
        .zip(&outcomes)
        .filter(|(_, o)| **o == Outcome::Written)
        .map(|(e, _)| e)
        .collect();
    let accepted = written.len() + duplicates;
    show_written(s, c, &written);
    let status = if rejected.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    (
        status,
        Json(json!({
            "accepted": accepted,
            "duplicates": duplicates,
            "rejected": rejected,
        })),
    )
        .into_response()
}

/// A request's events once checked.
struct Checked {
    /// The good events' lines, to append to the log.
    pending: Vec<Pending>,
    /// The good events, in the same order.
    kept: Vec<spec::Event>,
    /// Each bad event's index, `messageId` and reason, as the answer lists them.
    rejected: Vec<serde_json::Value>,
}

/// Check each event of `parsed` (`kind`: the call's, for events that name none) and make the
/// good ones' log lines.
fn check(parsed: &spec::Body<'_>, kind: Option<&str>, received_at: i64) -> Checked {
    let mut pending = Vec::with_capacity(parsed.events.len());
    let mut kept = Vec::with_capacity(parsed.events.len());
    let mut rejected = Vec::new();
    let mut make_id = || server_id(received_at);
    for (i, raw) in parsed.events.iter().enumerate() {
        let checked = spec::event(
            raw,
            kind,
            parsed.context,
            parsed.sent_at,
            received_at,
            &mut make_id,
        )
        .and_then(|e| spec::line(&e).map(|l| (e, l)));
        match checked {
            Ok((e, line)) => {
                pending.push(Pending {
                    id_hash: crate::event_log::log::id_hash(&e.message_id),
                    line,
                    received_at,
                });
                kept.push(e);
            }
            Err(m) => rejected.push(json!({
                "index": i,
                "messageId": spec::message_id_of(raw),
                "status": 400,
                "error": m.0,
            })),
        }
    }
    Checked {
        pending,
        kept,
        rejected,
    }
}

/// Append checked events to the log: what became of each, or the answer when the log could
/// not take them.
async fn append(c: &Collector, pending: Vec<Pending>) -> Result<Vec<Outcome>, Box<Response>> {
    match c.log.append(pending).await {
        Ok(o) => Ok(o),
        Err(AppendError::Busy) => {
            let mut res = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the event log is busy: retry the request (its messageIds make it safe)".into(),
            );
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Err(Box::new(res))
        }
        Err(AppendError::Failed(why)) => Err(Box::new(
            super::http::ApiError(StatusCode::INTERNAL_SERVER_ERROR, why).into_response(),
        )),
    }
}

/// Show events just written: live on the card, to the triggered journeys and live measures.
fn show_written(s: &Serving, c: &Collector, written: &[spec::Event]) {
    let added = c.live.add(&s.snapshot().index, &c.resolution, written);
    // The rows `where` and `value` expressions read, made once for triggers and measures.
    if s.triggered.is_some() || !c.measures.is_empty() {
        match crate::event_log::read::batch(written) {
            Ok(rows) => {
                if let Some(t) = &s.triggered {
                    t.observe_rows(written, &rows);
                }
                c.measures.observe_rows(written, &rows, &added.customers);
            }
            Err(e) => tracing::warn!("collected events for triggers and measures: {e}"),
        }
    }
    c.measures.tie(&added.tied);
}
