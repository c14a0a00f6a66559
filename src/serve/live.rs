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
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::index::LookupIndex;
use crate::event_log::Event;

/// Live events kept per customer or anonymous id at most (the newest).
const PER_ID: usize = 500;
/// Live events kept in all at most; past it the store starts over from the next event
/// (runs read every event from the log, so nothing is lost, only not shown early).
const TOTAL: usize = 2_000_000;

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
    by_customer: HashMap<String, VecDeque<Arc<Event>>>,
    by_anonymous: HashMap<String, VecDeque<Arc<Event>>>,
    /// Anonymous ids tied by live events.
    ties: HashMap<String, String>,
    total: usize,
}

#[derive(Default)]
pub struct Live {
    inner: Mutex<Inner>,
}

fn push(list: &mut VecDeque<Arc<Event>>, e: Arc<Event>) {
    list.push_back(e);
    if list.len() > PER_ID {
        list.pop_front();
    }
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

    /// Add events just acknowledged.
    pub fn add(&self, ix: &LookupIndex, r: &Resolution, events: Vec<Event>) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.total + events.len() > TOTAL {
            *g = Inner::default();
        }
        for e in events {
            let e = Arc::new(e);
            g.total += 1;
            let named = Self::named_customer(ix, r, &e);
            let anon = e.anonymous_id.clone();
            let customer = named.clone().or_else(|| {
                let a = anon.as_deref()?;
                g.ties.get(a).cloned().or_else(|| {
                    ix.by_identifier("cookie", a)
                        .first()
                        .and_then(|row| ix.customer_id(*row))
                })
            });
            match (&customer, &anon) {
                (Some(c), a) => {
                    if let (Some(a), Some(_)) = (a, &named) {
                        // Tied now: the visitor's waiting events join the customer.
                        g.ties.insert(a.clone(), c.clone());
                        if let Some(waiting) = g.by_anonymous.remove(a) {
                            let list = g.by_customer.entry(c.clone()).or_default();
                            for w in waiting {
                                push(list, w);
                            }
                        }
                    }
                    push(g.by_customer.entry(c.clone()).or_default(), e);
                }
                (None, Some(a)) => push(g.by_anonymous.entry(a.clone()).or_default(), e),
                (None, None) => {}
            }
        }
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
        let mut out: Vec<&Arc<Event>> = list.iter().collect();
        out.sort_by(|a, b| b.ts.cmp(&a.ts));
        out.into_iter().map(|e| entry(r, e)).collect()
    }

    /// Events received before `micros` (read by the run now served) are dropped.
    pub fn forget_before(&self, micros: i64) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let g = &mut *guard;
        let mut total = 0;
        for map in [&mut g.by_customer, &mut g.by_anonymous] {
            map.retain(|_, list| {
                list.retain(|e| e.received_at >= micros);
                total += list.len();
                !list.is_empty()
            });
        }
        g.total = total;
    }

    /// Events held.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).total
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A live event as a timeline entry, shaped as the run's (`ts`, `type`, `activity_source`,
/// `source`, `amount`, `details`), marked `live`.
fn entry(r: &Resolution, e: &Event) -> Value {
    let ts = chrono::DateTime::from_timestamp_micros(e.ts)
        .map(|t| t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.f").to_string());
    let amount = e
        .properties
        .as_ref()
        .and_then(|p| p.get("revenue").or_else(|| p.get("value")).or_else(|| p.get("total")))
        .and_then(|v| v.as_f64().or_else(|| v.as_str()?.parse().ok()));
    json!({
        "ts": ts,
        "type": e.event,
        "activity_source": r.activity.clone().unwrap_or_else(|| r.source.clone()),
        "source": r.source,
        "amount": amount,
        "details": e.properties.clone().map(Value::Object).unwrap_or(Value::Null),
        "live": true,
    })
}
