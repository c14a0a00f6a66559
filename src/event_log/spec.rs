//! The event spec of Segment and RudderStack (and what their SDKs and Apache Unomi's tracker
//! send): one JSON object per call, `type` one of `page`, `screen`, `track`, `identify` and
//! `alias`, with `anonymousId` and/or `userId`, `properties` or `traits`, `context`,
//! `timestamp` and `messageId`. Checked here and flattened into [`Event`], the row every
//! later step reads.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

crate::error::message_error!(
    /// Why a request body or an event does not follow the spec; the collector answers 400 with
    /// it (per event, or for the whole body).
    SpecError
);

/// Largest event, serialized: Segment's limit for one call (32 KB), so an SDK's payload that
/// Segment accepts is accepted here.
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
/// Largest request body: Segment's batch limit (500 KB).
pub const MAX_BATCH_BYTES: usize = 500 * 1024;
/// Longest id or event name kept.
const MAX_ID_CHARS: usize = 512;

/// The calls collected.
pub const TYPES: &[&str] = &["page", "screen", "track", "identify", "alias"];

/// One event as stored: a line of a segment, a row of the events table. The objects
/// (`properties`, `traits`, `context`) are kept as the JSON text that was sent: building
/// `serde_json::Value` trees for them and dropping them again took ~40% of the server's CPU
/// while collecting (perf, glibc malloc and free).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub message_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// `track`: the event's name; otherwise the call (`page`, `screen`, `identify`, `alias`),
    /// so that one column says what happened.
    pub event: String,
    /// `page`/`screen`: the page's or screen's name, if given.
    pub name: Option<String>,
    pub anonymous_id: Option<String>,
    pub user_id: Option<String>,
    /// `alias`: the id the user had before (`previousId`).
    pub previous_id: Option<String>,
    /// From `traits.email`, `context.traits.email` or `properties.email`, as sent.
    pub email: Option<String>,
    pub phone: Option<String>,
    /// `context.page.url` or `properties.url`.
    pub url: Option<String>,
    /// When it happened, microseconds since 1970 (UTC), the sender's clock corrected by
    /// `sentAt` as Segment does.
    pub ts: i64,
    /// When the server received it.
    pub received_at: i64,
    pub properties: Option<Box<RawValue>>,
    pub traits: Option<Box<RawValue>>,
    pub context: Option<Box<RawValue>>,
}

/// What a request body holds: one event, or `{"batch": [...]}` with shared `context` and
/// `sentAt`; each event still as its JSON text.
#[derive(Debug)]
pub struct Body<'a> {
    pub events: Vec<&'a RawValue>,
    /// Batch-level `context`, merged under each event's own.
    pub context: Option<&'a RawValue>,
    pub sent_at: Option<i64>,
    pub write_key: Option<String>,
}

#[derive(Deserialize)]
struct Top<'a> {
    #[serde(borrow, default)]
    batch: Option<&'a RawValue>,
    #[serde(borrow, default)]
    context: Option<&'a RawValue>,
    #[serde(rename = "sentAt", default)]
    sent_at: Option<Value>,
    #[serde(rename = "writeKey", default)]
    write_key: Option<Value>,
}

/// Split a request body into its events. Errors are about the body as a whole.
pub fn body(bytes: &[u8]) -> Result<Body<'_>, SpecError> {
    let top: Top = serde_json::from_slice(bytes).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            format!("the body is not JSON: {e}")
        } else {
            "the body must be one event object or {\"batch\": [events]}".to_string()
        }
    })?;
    let write_key = match top.write_key {
        Some(Value::String(k)) => Some(k),
        _ => None,
    };
    match top.batch {
        Some(batch) => {
            let events: Vec<&RawValue> = serde_json::from_str(batch.get())
                .map_err(|_| "`batch` must be an array of events".to_string())?;
            let sent_at = match &top.sent_at {
                None | Some(Value::Null) => None,
                Some(v) => Some(parse_time(v, "sentAt")?),
            };
            let context = top
                .context
                .filter(|c| c.get().trim_start().starts_with('{'));
            Ok(Body {
                events,
                context,
                sent_at,
                write_key,
            })
        }
        None => {
            let whole: &RawValue =
                serde_json::from_slice(bytes).map_err(|e| format!("the body is not JSON: {e}"))?;
            Ok(Body {
                events: vec![whole],
                context: None,
                sent_at: None,
                write_key,
            })
        }
    }
}

/// An id: a string, or a number (SDKs send numeric user ids), trimmed; empty is missing.
fn id(v: Option<&Value>, field: &str) -> Result<Option<String>, SpecError> {
    let s = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(SpecError(format!("`{field}` must be a string or a number"))),
    };
    if s.chars().count() > MAX_ID_CHARS {
        return Err(SpecError(format!(
            "`{field}` is longer than {MAX_ID_CHARS} characters"
        )));
    }
    Ok((!s.is_empty()).then_some(s))
}

/// An object kept as its text; `null` is missing, anything else but an object an error.
fn object(v: Option<&RawValue>, field: &str) -> Result<Option<Box<RawValue>>, SpecError> {
    let Some(raw) = v else { return Ok(None) };
    let text = raw.get().trim_start();
    if text.starts_with("null") {
        return Ok(None);
    }
    if !text.starts_with('{') {
        return Err(SpecError(format!("`{field}` must be an object")));
    }
    Ok(Some(raw.to_owned()))
}

/// An ISO 8601 time with an offset (`2026-12-01T10:00:00Z`, `...+01:00`), as microseconds.
pub fn parse_time(v: &Value, field: &str) -> Result<i64, SpecError> {
    let Value::String(s) = v else {
        return Err(SpecError(format!(
            "`{field}` must be an ISO 8601 time string"
        )));
    };
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.timestamp_micros())
        .map_err(|e| {
            SpecError(format!(
                "`{field}` {s:?} is not an ISO 8601 time with a zone ({e})"
            ))
        })
}

/// The fields of an event read here; the rest is skipped (unknown keys are the sender's).
#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(rename = "type", default)]
    kind: Option<Value>,
    #[serde(rename = "messageId", default)]
    message_id: Option<Value>,
    #[serde(rename = "anonymousId", default)]
    anonymous_id: Option<Value>,
    #[serde(rename = "userId", default)]
    user_id: Option<Value>,
    #[serde(rename = "previousId", default)]
    previous_id: Option<Value>,
    #[serde(default)]
    event: Option<Value>,
    #[serde(default)]
    name: Option<Value>,
    #[serde(default)]
    timestamp: Option<Value>,
    #[serde(rename = "originalTimestamp", default)]
    original_timestamp: Option<Value>,
    #[serde(rename = "sentAt", default)]
    sent_at: Option<Value>,
    #[serde(borrow, default)]
    properties: Option<&'a RawValue>,
    #[serde(borrow, default)]
    traits: Option<&'a RawValue>,
    #[serde(borrow, default)]
    context: Option<&'a RawValue>,
}

/// The keys read out of `traits`, `properties`, `context.traits` and `context.page`.
#[derive(Deserialize, Default)]
struct Contact {
    #[serde(default)]
    email: Option<Value>,
    #[serde(default)]
    phone: Option<Value>,
    #[serde(default)]
    url: Option<Value>,
}

#[derive(Deserialize, Default)]
struct ContextParts<'a> {
    #[serde(borrow, default)]
    traits: Option<&'a RawValue>,
    #[serde(borrow, default)]
    page: Option<&'a RawValue>,
}

fn contact(raw: Option<&RawValue>) -> Contact {
    raw.and_then(|r| serde_json::from_str(r.get()).ok())
        .unwrap_or_default()
}

fn text(v: &Option<Value>) -> Option<String> {
    match v.as_ref()? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The `messageId` of an event's text, if it has one (for naming a rejected event).
pub fn message_id_of(raw: &RawValue) -> Option<Value> {
    #[derive(Deserialize)]
    struct Id {
        #[serde(rename = "messageId", default)]
        message_id: Option<Value>,
    }
    serde_json::from_str::<Id>(raw.get()).ok()?.message_id
}

/// `context` with the batch's keys under the event's own.
fn merged_context(own: Option<&RawValue>, shared: &RawValue) -> Result<Box<RawValue>, SpecError> {
    let mut out: Map<String, Value> = match own {
        Some(c) => serde_json::from_str(c.get()).map_err(|_| "`context` must be an object")?,
        None => Map::new(),
    };
    let shared: Map<String, Value> = serde_json::from_str(shared.get()).unwrap_or_default();
    for (k, v) in shared {
        out.entry(k).or_insert(v);
    }
    serde_json::value::to_raw_value(&out).map_err(|e| SpecError(e.to_string()))
}

/// Check one event of a request and flatten it. `default_kind` is the call a path names
/// (`/v1/track`) for an event without `type`; `received_at` is the server's clock; `make_id`
/// gives an id to an event sent without `messageId` (it cannot be retried safely).
pub fn event(
    raw: &RawValue,
    default_kind: Option<&str>,
    batch_context: Option<&RawValue>,
    batch_sent_at: Option<i64>,
    received_at: i64,
    make_id: &mut dyn FnMut() -> String,
) -> Result<Event, SpecError> {
    if !raw.get().trim_start().starts_with('{') {
        return Err("an event must be a JSON object".into());
    }
    let m: RawEvent =
        serde_json::from_str(raw.get()).map_err(|e| format!("malformed event: {e}"))?;
    let kind = match (&m.kind, default_kind) {
        (Some(Value::String(t)), _) => t.trim().to_ascii_lowercase(),
        (Some(Value::Null) | None, Some(k)) => k.to_string(),
        (Some(Value::Null) | None, None) => {
            return Err(SpecError(format!(
                "`type` is missing (one of {})",
                TYPES.join(", ")
            )))
        }
        (Some(_), _) => return Err("`type` must be a string".into()),
    };
    if !TYPES.contains(&kind.as_str()) {
        return Err(SpecError(format!(
            "type {kind:?} is not collected (one of {})",
            TYPES.join(", ")
        )));
    }
    let message_id = match id(m.message_id.as_ref(), "messageId")? {
        Some(i) => i,
        None => make_id(),
    };
    let anonymous_id = id(m.anonymous_id.as_ref(), "anonymousId")?;
    let user_id = id(m.user_id.as_ref(), "userId")?;
    let previous_id = id(m.previous_id.as_ref(), "previousId")?;
    if anonymous_id.is_none() && user_id.is_none() {
        return Err("an event needs `anonymousId` or `userId`".into());
    }
    if kind == "alias" && (previous_id.is_none() || user_id.is_none()) {
        return Err("`alias` needs `previousId` and `userId`".into());
    }
    let properties = object(m.properties, "properties")?;
    let traits = object(m.traits, "traits")?;
    let own_context = object(m.context, "context")?;
    let context = match batch_context {
        Some(shared) => Some(merged_context(own_context.as_deref(), shared)?),
        None => own_context,
    };
    let event = match kind.as_str() {
        "track" => {
            id(m.event.as_ref(), "event")?.ok_or("`track` needs `event` (the event's name)")?
        }
        _ => kind.clone(),
    };
    let name = match kind.as_str() {
        "page" | "screen" => id(m.name.as_ref(), "name")?,
        _ => None,
    };
    // An alias joins the id the visitor had before to the user: stored as the anonymous id
    // when none is given, so the identity graph ties it like any other.
    let anonymous_id = match (&anonymous_id, kind.as_str()) {
        (None, "alias") => previous_id.clone(),
        _ => anonymous_id,
    };
    // The sender's clock, corrected by how far its `sentAt` is from our receipt (Segment's
    // rule): a phone whose clock is an hour off still files its events at the right time.
    let original = match m.timestamp.as_ref().or(m.original_timestamp.as_ref()) {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_time(v, "timestamp")?),
    };
    let sent_at = match &m.sent_at {
        None | Some(Value::Null) => batch_sent_at,
        Some(v) => Some(parse_time(v, "sentAt")?),
    };
    let ts = match (original, sent_at) {
        (Some(t), Some(s)) => received_at - (s - t),
        (Some(t), None) => t,
        (None, _) => received_at,
    };
    let ctx: ContextParts = context
        .as_deref()
        .and_then(|c| serde_json::from_str(c.get()).ok())
        .unwrap_or_default();
    let (tr, ctx_tr, props, page) = (
        contact(traits.as_deref()),
        contact(ctx.traits),
        contact(properties.as_deref()),
        contact(ctx.page),
    );
    let email = text(&tr.email)
        .or_else(|| text(&ctx_tr.email))
        .or_else(|| text(&props.email));
    let phone = text(&tr.phone)
        .or_else(|| text(&ctx_tr.phone))
        .or_else(|| text(&props.phone));
    let url = text(&page.url).or_else(|| text(&props.url));
    Ok(Event {
        message_id,
        kind,
        event,
        name,
        anonymous_id,
        user_id,
        previous_id,
        email,
        phone,
        url,
        ts,
        received_at,
        properties,
        traits,
        context,
    })
}

/// The stored line of an event (with its newline), refused when larger than
/// [`MAX_EVENT_BYTES`].
pub fn line(e: &Event) -> Result<Vec<u8>, SpecError> {
    let mut out = serde_json::to_vec(e).map_err(|err| err.to_string())?;
    if out.len() > MAX_EVENT_BYTES {
        return Err(SpecError(format!(
            "the event is {} bytes; at most {MAX_EVENT_BYTES} are taken",
            out.len()
        )));
    }
    out.push(b'\n');
    Ok(out)
}

/// An event as if received at `at` (µs), for tests of what reads events.
#[cfg(test)]
pub fn received(raw: Value, at: i64) -> Event {
    let text = serde_json::value::to_raw_value(&raw).expect("JSON");
    event(&text, None, None, None, at, &mut String::new).expect("a valid event")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(v: Value) -> Result<Event, SpecError> {
        let text = serde_json::value::to_raw_value(&v).unwrap();
        event(&text, None, None, None, 1_000_000_000, &mut || {
            "generated".into()
        })
    }

    #[test]
    fn events_are_checked_and_flattened() {
        let e = one(json!({
            "type": "identify", "userId": 42, "anonymousId": "a1", "messageId": "m1",
            "traits": {"email": " Ana@Example.com ", "phone": "+44 20 7946 0000"},
            "timestamp": "1970-01-01T00:16:39Z", "sentAt": "1970-01-01T00:16:40Z",
            "context": {"page": {"url": "https://shop.example/"}}, "integrations": {"All": true}
        }))
        .unwrap();
        assert_eq!(e.user_id.as_deref(), Some("42"));
        assert_eq!(e.email.as_deref(), Some("Ana@Example.com"));
        assert_eq!(e.url.as_deref(), Some("https://shop.example/"));
        // One second before it was sent, by the server's clock.
        assert_eq!(e.ts, 999_000_000);
        // The stored line keeps the objects as sent, and reads back.
        let line = line(&e).unwrap();
        let back: Event = serde_json::from_slice(&line).unwrap();
        assert_eq!(back.traits.unwrap().get(), e.traits.unwrap().get());
        let t = one(json!({"type": "track", "anonymousId": "a", "event": "add_to_cart"})).unwrap();
        assert_eq!((t.event.as_str(), t.ts), ("add_to_cart", 1_000_000_000));
        assert_eq!(t.message_id, "generated");
        for (bad, why) in [
            (
                json!({"type": "track", "anonymousId": "a"}),
                "needs `event`",
            ),
            (json!({"type": "page"}), "needs `anonymousId` or `userId`"),
            (json!({"type": "group", "userId": "u"}), "is not collected"),
            (
                json!({"type": "alias", "userId": "u"}),
                "needs `previousId`",
            ),
            (
                json!({"type": "page", "userId": "u", "properties": [1]}),
                "must be an object",
            ),
            (
                json!({"type": "page", "userId": "u", "timestamp": "yesterday"}),
                "not an ISO 8601",
            ),
            (json!({"type": 3, "userId": "u"}), "`type` must be a string"),
            (json!([1]), "must be a JSON object"),
        ] {
            let err = one(bad).unwrap_err().0;
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn a_batch_shares_its_context_and_sent_at() {
        let b = body(br#"{"batch":[{"type":"page","userId":"u","context":{"ip":"1"}}],"context":{"ip":"2","locale":"nl"},"writeKey":"k"}"#).unwrap();
        assert_eq!(b.write_key.as_deref(), Some("k"));
        let e = event(b.events[0], None, b.context, None, 0, &mut String::new).unwrap();
        let c: Map<String, Value> = serde_json::from_str(e.context.unwrap().get()).unwrap();
        assert_eq!(
            (c["ip"].as_str(), c["locale"].as_str()),
            (Some("1"), Some("nl"))
        );
        assert!(body(b"[1]").is_err() && body(b"{\"batch\": 3}").is_err());
        assert!(body(b"{not json").unwrap_err().0.contains("not JSON"));
        // A path's call stands in for a missing type.
        let one = body(br#"{"userId":"u","event":"e"}"#).unwrap();
        let e = event(
            one.events[0],
            Some("track"),
            None,
            None,
            0,
            &mut String::new,
        )
        .unwrap();
        assert_eq!((e.kind.as_str(), e.event.as_str()), ("track", "e"));
    }
}
