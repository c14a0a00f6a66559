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
/// shown early). Full events with their maps took ~3 KB each: 2.6 million collected in two
/// minutes took the server to 6.1 GB; kept as below they take ~150 bytes.
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
            properties: e.properties.as_deref().map(|p| p.get().into()),
        }
    }

    fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + 16
            + self.event.len()
            + self.properties.as_ref().map_or(0, |p| p.len())
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
    /// Events and bytes held in all, and of them under anonymous ids: kept up to date event by
    /// event, so that no request walks the whole store.
    count: usize,
    bytes: usize,
    anonymous_count: usize,
    anonymous_bytes: usize,
}

impl Inner {
    /// Add to a list, dropping its oldest past [`PER_ID`]; `anonymous` says which map.
    fn push(&mut self, key: &str, anonymous: bool, e: LiveEvent) {
        let (mut count, mut bytes) = (1isize, e.bytes() as isize);
        let map = if anonymous {
            &mut self.by_anonymous
        } else {
            &mut self.by_customer
        };
        let list = match map.get_mut(key) {
            Some(l) => l,
            None => map.entry(key.to_string()).or_default(),
        };
        list.push_back(e);
        while list.len() > PER_ID {
            if let Some(old) = list.pop_front() {
                count -= 1;
                bytes -= old.bytes() as isize;
            }
        }
        self.count = self.count.saturating_add_signed(count);
        self.bytes = self.bytes.saturating_add_signed(bytes);
        if anonymous {
            self.anonymous_count = self.anonymous_count.saturating_add_signed(count);
            self.anonymous_bytes = self.anonymous_bytes.saturating_add_signed(bytes);
        }
    }

    /// Move an anonymous id's events to its customer.
    fn join(&mut self, anonymous_id: &str, customer: &str) {
        let Some(waiting) = self.by_anonymous.remove(anonymous_id) else {
            return;
        };
        for w in waiting {
            self.anonymous_count = self.anonymous_count.saturating_sub(1);
            self.anonymous_bytes = self.anonymous_bytes.saturating_sub(w.bytes());
            self.count = self.count.saturating_sub(1);
            self.bytes = self.bytes.saturating_sub(w.bytes());
            self.push(customer, false, w);
        }
    }

    fn recount(&mut self) {
        let sum = |m: &HashMap<String, VecDeque<LiveEvent>>| {
            m.values().fold((0, 0), |(c, b), l| {
                (
                    c + l.len(),
                    b + l.iter().map(LiveEvent::bytes).sum::<usize>(),
                )
            })
        };
        let (ac, ab) = sum(&self.by_anonymous);
        let (cc, cb) = sum(&self.by_customer);
        self.anonymous_count = ac;
        self.anonymous_bytes = ab;
        self.count = ac + cc;
        self.bytes = ab + cb;
    }

    /// Past [`MAX_BYTES`]: visitors tied to nobody are dropped (whole, in the map's order)
    /// until the store is back under it, then customers if that is not enough — so each
    /// request over the cap drops about what it adds, and the lists are freed outside the
    /// lock. Freeing more at once stalled every request: dropping the store whole gave
    /// acknowledgements a p99 of 288–577 ms; dropping a tenth of it (~170,000 small
    /// allocations) every few seconds made glibc's next large allocation consolidate them
    /// all while holding its arena's lock (`malloc_consolidate` in perf): 270 ms stalls every
    /// 5 s at 50,000 events/s, p99 205 ms against 5 ms before the cap was reached.
    fn make_room(&mut self, cap: usize) -> Option<Vec<VecDeque<LiveEvent>>> {
        if self.bytes <= cap {
            return None;
        }
        let mut dropped = Vec::new();
        for anonymous in [true, false] {
            let map = if anonymous {
                &mut self.by_anonymous
            } else {
                &mut self.by_customer
            };
            // Lazily: only the lists dropped are visited; the rest stay.
            for (_, list) in map.extract_if(|_, _| true) {
                let (n, b) = (list.len(), list.iter().map(LiveEvent::bytes).sum::<usize>());
                self.count -= n;
                self.bytes -= b;
                if anonymous {
                    self.anonymous_count -= n;
                    self.anonymous_bytes -= b;
                }
                dropped.push(list);
                if self.bytes <= cap {
                    return Some(dropped);
                }
            }
        }
        Some(dropped)
    }
}

/// The customer of an anonymous id: tied by a live event, else by the served identity graph.
fn anonymous_customer(
    ties: &HashMap<String, String>,
    ix: &LookupIndex,
    anonymous_id: &str,
) -> Option<String> {
    ties.get(anonymous_id).cloned().or_else(|| {
        ix.by_identifier("cookie", anonymous_id)
            .first()
            .and_then(|row| ix.customer_id(*row))
    })
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
        let dropped = g.make_room(MAX_BYTES);
        for e in events {
            let named = Self::named_customer(ix, r, e);
            let anon = e.anonymous_id.as_deref();
            let customer = named
                .clone()
                .or_else(|| anonymous_customer(&g.ties, ix, anon?));
            let live = LiveEvent::of(e);
            match (&customer, anon) {
                (Some(c), a) => {
                    if let (Some(a), Some(_)) = (a, &named) {
                        // Tied now: the visitor's waiting events join the customer.
                        if g.ties.get(a) != Some(c) {
                            g.ties.insert(a.to_string(), c.clone());
                            tied.push((a.to_string(), c.clone()));
                        }
                        g.join(a, c);
                    }
                    g.push(c, false, live);
                }
                (None, Some(a)) => g.push(a, true, live),
                (None, None) => {}
            }
            resolved.push(customer);
        }
        drop(guard);
        drop(dropped);
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
            let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = anonymous_customer(&g.ties, ix, a) {
                return Some(c);
            }
        }
        let (u, src) = (user_id?, r.user_source.as_ref()?);
        let row = ix
            .by_identifier("record", &format!("{src}:{u}"))
            .first()
            .copied()?;
        ix.customer_id(row)
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
        out.sort_by_key(|e| std::cmp::Reverse(e.ts));
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
        .and_then(|p| {
            p.get("revenue")
                .or_else(|| p.get("value"))
                .or_else(|| p.get("total"))
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: i64) -> LiveEvent {
        LiveEvent {
            ts: n,
            received_at: n,
            event: "product_view".into(),
            properties: Some(r#"{"product_id":"P17"}"#.into()),
        }
    }

    /// Over the cap, a request drops about what it adds — visitors first, whole — never a
    /// tenth of the store at once (the stall that caused), and the running totals stay
    /// equal to a recount.
    #[test]
    fn the_cap_drops_little_at_a_time_visitors_first() {
        let mut inner = Inner::default();
        for n in 0..2_000 {
            inner.push(&format!("v{}", n % 100), true, event(n));
            inner.push(&format!("c{}", n % 10), false, event(n));
        }
        let per_event = event(0).bytes();
        let (count, bytes) = (inner.count, inner.bytes);
        assert_eq!(count, 4_000);
        assert!(inner.make_room(bytes).is_none());
        // Ten events over a cap: one visitor's list (20 events) goes, nothing more.
        let dropped = inner.make_room(bytes - 10 * per_event).unwrap();
        assert_eq!(dropped.len(), 1);
        assert_eq!(inner.count, count - 20);
        assert_eq!(inner.by_anonymous.len(), 99);
        // A cap below every visitor's events: all visitors go, then customers until under.
        let dropped = inner.make_room(500 * per_event).unwrap();
        assert!(inner.by_anonymous.is_empty());
        assert_eq!(
            inner.by_customer.len(),
            2,
            "{} lists dropped",
            dropped.len()
        );
        assert!(inner.bytes <= 500 * per_event);
        let (c, b, ac, ab) = (
            inner.count,
            inner.bytes,
            inner.anonymous_count,
            inner.anonymous_bytes,
        );
        inner.recount();
        assert_eq!(
            (c, b, ac, ab),
            (
                inner.count,
                inner.bytes,
                inner.anonymous_count,
                inner.anonymous_bytes
            )
        );
    }
}
