//! Events collected since the served run: shown on the customer's card and found by cookie
//! at once, before a run reads them. An event goes to a customer when it names one — a
//! `userId` that is a record id of `user_source`, an e-mail or phone of a unified record —
//! or when its anonymous id is tied to one (by the served run's identity graph, or by an
//! earlier live event that named the customer). Otherwise it waits under its anonymous id
//! and moves to the customer as soon as the id is tied (the visitor's history joins them,
//! as in a run).
//!
//! When a newer run is served, events it has read (received before it started) are dropped
//! here: the run's timeline holds them.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde_json::{json, Value};

use super::index::LookupIndex;
use crate::event_log::Event;

/// Live events kept per customer or anonymous id at most (the newest).
const PER_ID: usize = 200;
/// Memory the live events may take. Past it the events of visitors not tied to anyone are
/// dropped first, then all (runs read every event from the log, so nothing is lost, only not
/// shown early). Full events with their maps took ~3 KB each: 1.8 million collected in a
/// minute took the server to 6.1 GB; kept as below they take ~150 bytes.
const MAX_BYTES: usize = 256 << 20;

/// What the card shows of a live event.
struct LiveEvent {
    ts: i64,
    received_at: i64,
    event: Box<str>,
    /// JSON text.
    properties: Option<Box<str>>,
}

impl LiveEvent {
    fn of(e: &Event) -> LiveEvent {
        LiveEvent {
            ts: e.ts,
            received_at: e.received_at,
            event: e.event.as_str().into(),
            properties: e
                .properties
                .as_ref()
                .and_then(|p| serde_json::to_string(p).ok())
                .map(String::into_boxed_str),
        }
    }

    fn bytes(&self) -> usize {
        std::mem::size_of::<Self>() + 16 + self.event.len() + self.properties.as_ref().map_or(0, |p| p.len())
    }
}

/// How live events find their customer: the source the events are collected into, and the
/// identity mapping of it (`[unify.identities.<source>]`), if any.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    /// The activity that reads the collected source (its name labels timeline entries).
    pub activity: Option<String>,
    pub source: String,
    /// The unified source whose record ids `userId` holds.
    pub user_source: Option<String>,
}

#[derive(Default)]
struct Inner {
    by_customer: HashMap<String, VecDeque<LiveEvent>>,
    by_anonymous: HashMap<String, VecDeque<LiveEvent>>,
    /// Anonymous ids tied by live events.
    ties: HashMap<String, String>,
    count: usize,
    bytes: usize,
    /// Lists were joined: counts are recomputed after the batch.
    recount_needed: bool,
}

impl Inner {
    /// Add to `list`, dropping its oldest past [`PER_ID`].
    fn push(count: &mut usize, bytes: &mut usize, list: &mut VecDeque<LiveEvent>, e: LiveEvent) {
        *count += 1;
        *bytes += e.bytes();
        list.push_back(e);
        if list.len() > PER_ID {
            if let Some(old) = list.pop_front() {
                *count -= 1;
                *bytes -= old.bytes();
            }
        }
    }

    fn recount(&mut self) {
        let (mut count, mut bytes) = (0, 0);
        for list in self.by_customer.values().chain(self.by_anonymous.values()) {
            count += list.len();
            bytes += list.iter().map(LiveEvent::bytes).sum::<usize>();
        }
        self.count = count;
        self.bytes = bytes;
    }
}

/// What [`Live::add`] found.
pub struct Added {
    /// The customer of each event, when known.
    pub customers: Vec<Option<String>>,
    /// (anonymous id, customer) tied by these events.
    pub tied: Vec<(String, String)>,
}

#[derive(Default)]
pub struct Live {
    inner: Mutex<Inner>,
}

impl Live {
    /// The customer an event names by itself (userId, e-mail, phone), in the served index.
    fn named_customer(ix: &LookupIndex, r: &Resolution, e: &Event) -> Option<String> {
        let mut row = None;
        if let (Some(u), Some(src)) = (&e.user_id, &r.user_source) {
            row = ix
                .by_identifier("record", &format!("{src}:{u}"))
                .first()
                .copied();
        }
        if row.is_none() {
            if let Some(m) = &e.email {
                let mut out = String::new();
                if panorama_udfs::normalize::canonical_email(m, true, &mut out) {
                    row = ix.by_identifier("email", &out).first().copied();
                }
            }
        }
        if row.is_none() {
            if let Some(p) = e
                .phone
                .as_deref()
                .and_then(|p| panorama_udfs::normalize::e164(p, None))
            {
                row = ix.by_identifier("phone", &p).first().copied();
            }
        }
        row.and_then(|r| ix.customer_id(r))
    }

    /// The customer of an event as it stands: named by it, or its anonymous id tied (live or
    /// by the served identity graph).
    pub fn resolve_event(&self, ix: &LookupIndex, r: &Resolution, e: &Event) -> Option<String> {
        Self::named_customer(ix, r, e)
            .or_else(|| self.resolve(ix, r, e.anonymous_id.as_deref(), None))
    }

    /// Add events just acknowledged; returns the customer each was resolved to, and the
    /// anonymous ids these events tied to a customer.
    pub fn add(&self, ix: &LookupIndex, r: &Resolution, events: &[Event]) -> Added {
        let mut resolved = Vec::with_capacity(events.len());
        let mut tied = Vec::new();
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let g = &mut *guard;
        if g.bytes > MAX_BYTES {
            g.by_anonymous.clear();
            g.recount();
            if g.bytes > MAX_BYTES / 2 {
                *g = Inner::default();
            }
        }
        for e in events {
            let named = Self::named_customer(ix, r, e);
            let anon = e.anonymous_id.clone();
            let customer = named.clone().or_else(|| {
                let a = anon.as_deref()?;
                g.ties.get(a).cloned().or_else(|| {
                    ix.by_identifier("cookie", a)
                        .first()
                        .and_then(|row| ix.customer_id(*row))
                })
            });
            let live = LiveEvent::of(e);
            resolved.push(customer.clone());
            match (&customer, &anon) {
                (Some(c), a) => {
                    if let (Some(a), Some(_)) = (a, &named) {
                        // Tied now: the visitor's waiting events join the customer.
                        if g.ties.insert(a.clone(), c.clone()).as_ref() != Some(c) {
                            tied.push((a.clone(), c.clone()));
                        }
                        if let Some(waiting) = g.by_anonymous.remove(a) {
                            let list = g.by_customer.entry(c.clone()).or_default();
                            for w in waiting {
                                list.push_back(w);
                            }
                            while list.len() > PER_ID {
                                list.pop_front();
                            }
                            g.recount_needed = true;
                        }
                    }
                    let list = g.by_customer.entry(c.clone()).or_default();
                    Inner::push(&mut g.count, &mut g.bytes, list, live);
                }
                (None, Some(a)) => {
                    let list = g.by_anonymous.entry(a.clone()).or_default();
                    Inner::push(&mut g.count, &mut g.bytes, list, live);
                }
                (None, None) => {}
            }
        }
        if std::mem::take(&mut g.recount_needed) {
            g.recount();
        }
        Added {
            customers: resolved,
            tied,
        }
    }

    /// The customer of a person: tied by a live event, by the served identity graph, or
    /// named by its user id.
    pub fn resolve(
        &self,
        ix: &LookupIndex,
        r: &Resolution,
        anonymous_id: Option<&str>,
        user_id: Option<&str>,
    ) -> Option<String> {
        if let Some(a) = anonymous_id {
            if let Some(c) = self.tied(a) {
                return Some(c);
            }
            if let Some(row) = ix.by_identifier("cookie", a).first() {
                return ix.customer_id(*row);
            }
        }
        let (u, src) = (user_id?, r.user_source.as_ref()?);
        let row = ix.by_identifier("record", &format!("{src}:{u}")).first()?;
        ix.customer_id(*row)
    }

    /// The customer an anonymous id is tied to by a live event.
    pub fn tied(&self, anonymous_id: &str) -> Option<String> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.ties.get(anonymous_id).cloned()
    }

    /// A customer's live events, newest first, as timeline entries.
    pub fn timeline(&self, r: &Resolution, customer_id: &str) -> Vec<Value> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(list) = g.by_customer.get(customer_id) else {
            return Vec::new();
        };
        let mut out: Vec<&LiveEvent> = list.iter().collect();
        out.sort_by(|a, b| b.ts.cmp(&a.ts));
        out.into_iter().map(|e| entry(r, e)).collect()
    }

    /// Events received before `micros` (read by the run now served) are dropped.
    pub fn forget_before(&self, micros: i64) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let g = &mut *guard;
        for map in [&mut g.by_customer, &mut g.by_anonymous] {
            map.retain(|_, list| {
                list.retain(|e| e.received_at >= micros);
                !list.is_empty()
            });
        }
        g.recount();
    }

    /// Events held.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).count
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A live event as a timeline entry, shaped as the run's (`ts`, `type`, `activity_source`,
/// `source`, `amount`, `details`), marked `live`.
fn entry(r: &Resolution, e: &LiveEvent) -> Value {
    let ts = chrono::DateTime::from_timestamp_micros(e.ts)
        .map(|t| t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.f").to_string());
    let properties: Option<serde_json::Map<String, Value>> = e
        .properties
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok());
    let amount = properties
        .as_ref()
        .and_then(|p| p.get("revenue").or_else(|| p.get("value")).or_else(|| p.get("total")))
        .and_then(|v| v.as_f64().or_else(|| v.as_str()?.parse().ok()));
    json!({
        "ts": ts,
        "type": &*e.event,
        "activity_source": r.activity.clone().unwrap_or_else(|| r.source.clone()),
        "source": r.source,
        "amount": amount,
        "details": properties.map(Value::Object).unwrap_or(Value::Null),
        "live": true,
    })
}
