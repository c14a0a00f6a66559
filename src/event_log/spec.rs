//! The event spec of Segment and RudderStack (and what their SDKs and Apache Unomi's tracker
//! send): one JSON object per call, `type` one of `page`, `screen`, `track`, `identify` and
//! `alias`, with `anonymousId` and/or `userId`, `properties` or `traits`, `context`,
//! `timestamp` and `messageId`. Checked here and flattened into [`Event`], the row every
//! later step reads.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Largest event, serialized: Segment's limit for one call (32 KB), so an SDK's payload that
/// Segment accepts is accepted here.
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
/// Largest request body: Segment's batch limit (500 KB).
pub const MAX_BATCH_BYTES: usize = 500 * 1024;
/// Longest id or event name kept.
const MAX_ID_CHARS: usize = 512;

/// The calls collected.
pub const TYPES: &[&str] = &["page", "screen", "track", "identify", "alias"];

/// One event as stored: a line of a segment, a row of the events table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub properties: Option<Map<String, Value>>,
    pub traits: Option<Map<String, Value>>,
    pub context: Option<Map<String, Value>>,
}

/// What a request body holds: one event, or `{"batch": [...]}` with shared `context` and
/// `sentAt`.
pub struct Body {
    pub events: Vec<Value>,
    /// Batch-level `context`, merged under each event's own.
    pub context: Option<Map<String, Value>>,
    pub sent_at: Option<Value>,
    pub write_key: Option<String>,
}

/// Split a request body into its events. Errors are about the body as a whole.
pub fn body(bytes: &[u8]) -> Result<Body, String> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("the body is not JSON: {e}"))?;
    let Value::Object(mut top) = v else {
        return Err("the body must be one event object or {\"batch\": [events]}".into());
    };
    let write_key = match top.remove("writeKey") {
        Some(Value::String(k)) => Some(k),
        _ => None,
    };
    match top.remove("batch") {
        Some(Value::Array(events)) => Ok(Body {
            events,
            context: match top.remove("context") {
                Some(Value::Object(c)) => Some(c),
                _ => None,
            },
            sent_at: top.remove("sentAt"),
            write_key,
        }),
        Some(_) => Err("`batch` must be an array of events".into()),
        None => Ok(Body {
            events: vec![Value::Object(top)],
            context: None,
            sent_at: None,
            write_key,
        }),
    }
}

/// An id: a string, or a number (SDKs send numeric user ids), trimmed; empty is missing.
fn id(v: Option<&Value>, field: &str) -> Result<Option<String>, String> {
    let s = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(format!("`{field}` must be a string or a number")),
    };
    if s.chars().count() > MAX_ID_CHARS {
        return Err(format!(
            "`{field}` is longer than {MAX_ID_CHARS} characters"
        ));
    }
    Ok((!s.is_empty()).then_some(s))
}

fn object(v: Option<Value>, field: &str) -> Result<Option<Map<String, Value>>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(format!("`{field}` must be an object")),
    }
}

/// An ISO 8601 time with an offset (`2026-12-01T10:00:00Z`, `...+01:00`), as microseconds.
pub fn parse_time(v: &Value, field: &str) -> Result<i64, String> {
    let Value::String(s) = v else {
        return Err(format!("`{field}` must be an ISO 8601 time string"));
    };
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.timestamp_micros())
        .map_err(|e| format!("`{field}` {s:?} is not an ISO 8601 time with a zone ({e})"))
}

fn text(m: Option<&Map<String, Value>>, key: &str) -> Option<String> {
    match m?.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Check one event of a request and flatten it. `received_at` is the server's clock;
/// `make_id` gives an id to an event sent without `messageId` (it cannot be retried safely).
pub fn event(
    raw: Value,
    batch_context: Option<&Map<String, Value>>,
    batch_sent_at: Option<&Value>,
    received_at: i64,
    make_id: &mut dyn FnMut() -> String,
) -> Result<Event, String> {
    let Value::Object(mut m) = raw else {
        return Err("an event must be a JSON object".into());
    };
    let kind = match m.remove("type") {
        Some(Value::String(t)) => t.trim().to_ascii_lowercase(),
        Some(_) => return Err("`type` must be a string".into()),
        None => return Err(format!("`type` is missing (one of {})", TYPES.join(", "))),
    };
    if !TYPES.contains(&kind.as_str()) {
        return Err(format!(
            "type {kind:?} is not collected (one of {})",
            TYPES.join(", ")
        ));
    }
    let message_id = match id(m.get("messageId"), "messageId")? {
        Some(i) => i,
        None => make_id(),
    };
    let anonymous_id = id(m.get("anonymousId"), "anonymousId")?;
    let user_id = id(m.get("userId"), "userId")?;
    let previous_id = id(m.get("previousId"), "previousId")?;
    if anonymous_id.is_none() && user_id.is_none() {
        return Err("an event needs `anonymousId` or `userId`".into());
    }
    if kind == "alias" && (previous_id.is_none() || user_id.is_none()) {
        return Err("`alias` needs `previousId` and `userId`".into());
    }
    let properties = object(m.remove("properties"), "properties")?;
    let traits = object(m.remove("traits"), "traits")?;
    let mut context = object(m.remove("context"), "context")?;
    if let Some(shared) = batch_context {
        let own = context.get_or_insert_with(Map::new);
        for (k, v) in shared {
            own.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    let event = match kind.as_str() {
        "track" => {
            id(m.get("event"), "event")?.ok_or("`track` needs `event` (the event's name)")?
        }
        _ => kind.clone(),
    };
    let name = match kind.as_str() {
        "page" | "screen" => id(m.get("name"), "name")?,
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
    let original = match m.get("timestamp").or_else(|| m.get("originalTimestamp")) {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_time(v, "timestamp")?),
    };
    let sent_at = match m.get("sentAt").or(batch_sent_at) {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_time(v, "sentAt")?),
    };
    let ts = match (original, sent_at) {
        (Some(t), Some(s)) => received_at - (s - t),
        (Some(t), None) => t,
        (None, _) => received_at,
    };
    let context_traits = context
        .as_ref()
        .and_then(|c| c.get("traits"))
        .and_then(Value::as_object);
    let email = text(traits.as_ref(), "email")
        .or_else(|| text(context_traits, "email"))
        .or_else(|| text(properties.as_ref(), "email"));
    let phone = text(traits.as_ref(), "phone")
        .or_else(|| text(context_traits, "phone"))
        .or_else(|| text(properties.as_ref(), "phone"));
    let page = context
        .as_ref()
        .and_then(|c| c.get("page"))
        .and_then(Value::as_object);
    let url = text(page, "url").or_else(|| text(properties.as_ref(), "url"));
    let e = Event {
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
    };
    Ok(e)
}

/// The stored line of an event (with its newline), refused when larger than
/// [`MAX_EVENT_BYTES`].
pub fn line(e: &Event) -> Result<Vec<u8>, String> {
    let mut out = serde_json::to_vec(e).map_err(|err| err.to_string())?;
    if out.len() > MAX_EVENT_BYTES {
        return Err(format!(
            "the event is {} bytes; at most {MAX_EVENT_BYTES} are taken",
            out.len()
        ));
    }
    out.push(b'\n');
    Ok(out)
}

/// An event as if received at `at` (µs), for tests of what reads events.
#[cfg(test)]
pub fn received(raw: Value, at: i64) -> Event {
    event(raw, None, None, at, &mut String::new).expect("a valid event")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(v: Value) -> Result<Event, String> {
        event(v, None, None, 1_000_000_000, &mut || "generated".into())
    }

    #[test]
    fn events_are_checked_and_flattened() {
        let e = one(json!({
            "type": "identify", "userId": 42, "anonymousId": "a1", "messageId": "m1",
            "traits": {"email": " Ana@Example.com ", "phone": "+44 20 7946 0000"},
            "timestamp": "1970-01-01T00:16:39Z", "sentAt": "1970-01-01T00:16:40Z",
            "context": {"page": {"url": "https://shop.example/"}}
        }))
        .unwrap();
        assert_eq!(e.user_id.as_deref(), Some("42"));
        assert_eq!(e.email.as_deref(), Some("Ana@Example.com"));
        assert_eq!(e.url.as_deref(), Some("https://shop.example/"));
        // One second before it was sent, by the server's clock.
        assert_eq!(e.ts, 999_000_000);
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
        ] {
            let err = one(bad).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn a_batch_shares_its_context_and_sent_at() {
        let b = body(br#"{"batch":[{"type":"page","userId":"u","context":{"ip":"1"}}],"context":{"ip":"2","locale":"nl"},"writeKey":"k"}"#).unwrap();
        assert_eq!(b.write_key.as_deref(), Some("k"));
        let e = event(
            b.events[0].clone(),
            b.context.as_ref(),
            None,
            0,
            &mut String::new,
        )
        .unwrap();
        let c = e.context.unwrap();
        assert_eq!(
            (c["ip"].as_str(), c["locale"].as_str()),
            (Some("1"), Some("nl"))
        );
        assert!(body(b"[1]").is_err() && body(b"{\"batch\": 3}").is_err());
    }
}
