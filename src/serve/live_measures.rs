//! Measures kept live per customer from collected events, beside the batch measures: how
//! many times someone added to the cart in the last hour, what they spent today, the last
//! product they viewed. Declared in `[serve.events.measures.<name>]`:
//!
//! ```toml
//! [serve.events.measures.cart_adds_1h]
//! aggregate = "count"            # count | sum | min | max | last
//! event = "add_to_cart"
//! where = "detail(properties, 'price') IS NOT NULL"   # optional, SQL over the event
//! window = "1h"                  # sliding, by the time the server received the event
//! ```
//!
//! `sum`, `min`, `max` and `last` take `value`, SQL over the event
//! (`detail(properties, 'revenue')`). An event counts for the customer it is resolved to
//! when it arrives (as for the card's live list). A restart replays the last window from the
//! event log.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use datafusion::prelude::SessionContext;
use serde_json::{json, Map, Value};

use super::config::LiveMeasureDef;
use crate::event_log::filter::{EventExpr, EventFilter};
use crate::event_log::Event;

/// Values kept per customer and measure at most (the newest).
const PER_CUSTOMER: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Aggregate {
    Count,
    Sum,
    Min,
    Max,
    Last,
}

struct Measure {
    name: String,
    aggregate: Aggregate,
    filter: EventFilter,
    value: Option<EventExpr>,
    window: i64,
}

/// One measure's values of one customer, oldest first: (received_at, value).
type Window = VecDeque<(i64, Value)>;

pub struct LiveMeasures {
    measures: Vec<Measure>,
    /// customer (or `anon:` id) → per measure, (received_at, value) oldest first.
    data: Mutex<HashMap<String, Vec<Window>>>,
}

impl LiveMeasures {
    /// Plan the measures; errors name the measure.
    pub fn new(
        ctx: &SessionContext,
        defs: &std::collections::BTreeMap<String, LiveMeasureDef>,
    ) -> crate::error::Result<LiveMeasures> {
        let mut measures = Vec::new();
        for (name, d) in defs {
            let at = |message: String| crate::error::Error::Invalid {
                key: format!("serve.events.measures.{name}"),
                message,
            };
            let aggregate = match d.aggregate.as_str() {
                "count" => Aggregate::Count,
                "sum" => Aggregate::Sum,
                "min" => Aggregate::Min,
                "max" => Aggregate::Max,
                "last" => Aggregate::Last,
                other => {
                    return Err(at(format!(
                        "aggregate {other:?}: one of count, sum, min, max, last"
                    )))
                }
            };
            let value = match (&d.value, aggregate) {
                (Some(v), _) => Some(EventExpr::new(ctx, v).map_err(|e| at(format!("value {e}")))?),
                (None, Aggregate::Count) => None,
                (None, _) => {
                    return Err(at(format!(
                        "`{}` needs `value` (SQL over the event)",
                        d.aggregate
                    )))
                }
            };
            let window = crate::config::parse_duration(&d.window).ok_or_else(|| {
                at(format!(
                    "window = {:?}: expected a duration such as \"1h\"",
                    d.window
                ))
            })?;
            measures.push(Measure {
                name: name.clone(),
                aggregate,
                filter: EventFilter::new(ctx, &d.event, d.condition.as_deref())
                    .map_err(|e| at(e.to_string()))?,
                value,
                window: window.as_micros() as i64,
            });
        }
        Ok(LiveMeasures {
            measures,
            data: Mutex::new(HashMap::new()),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.measures.is_empty()
    }

    /// The longest window: how far back a restart replays.
    pub fn horizon(&self) -> Duration {
        let max = self.measures.iter().map(|m| m.window).max().unwrap_or(0);
        Duration::from_micros(max.max(0) as u64)
    }

    /// Events, each with the customer it was resolved to (or none: kept under its anonymous
    /// id until [`Self::tie`] joins it to a customer).
    pub fn observe(&self, events: &[Event], customers: &[Option<String>]) {
        if self.measures.is_empty() {
            return;
        }
        if let Ok(batch) = crate::event_log::read::batch(events) {
            self.observe_rows(events, &batch, customers);
        }
    }

    /// [`Self::observe`] with the events' rows already made ([`crate::event_log::read::batch`]).
    pub fn observe_rows(
        &self,
        events: &[Event],
        batch: &arrow::array::RecordBatch,
        customers: &[Option<String>],
    ) {
        if self.measures.is_empty() {
            return;
        }
        let mut data = self.data.lock().unwrap_or_else(|e| e.into_inner());
        for (row, (e, customer)) in events.iter().zip(customers).enumerate() {
            let key = match (customer, &e.anonymous_id) {
                (Some(c), _) => c.clone(),
                (None, Some(a)) => format!("anon:{a}"),
                (None, None) => continue,
            };
            for (i, m) in self.measures.iter().enumerate() {
                if !m.filter.matches(e, batch, row) {
                    continue;
                }
                let value = match (m.aggregate, &m.value) {
                    (Aggregate::Count, _) => Value::Null,
                    (Aggregate::Last, Some(v)) => match v.text(batch, row) {
                        Some(t) => json!(t),
                        None => continue,
                    },
                    (_, Some(v)) => match v.number(batch, row) {
                        Some(n) => json!(n),
                        None => continue,
                    },
                    (_, None) => continue,
                };
                let lists = data
                    .entry(key.clone())
                    .or_insert_with(|| vec![VecDeque::new(); self.measures.len()]);
                let list = &mut lists[i];
                list.push_back((e.received_at, value));
                while list.len() > PER_CUSTOMER
                    || list
                        .front()
                        .is_some_and(|(at, _)| *at < e.received_at - m.window)
                {
                    list.pop_front();
                }
            }
        }
    }

    /// A visitor's values join the customer their anonymous id was tied to.
    pub fn tie(&self, tied: &[(String, String)]) {
        if self.measures.is_empty() || tied.is_empty() {
            return;
        }
        let mut data = self.data.lock().unwrap_or_else(|e| e.into_inner());
        for (anon, customer) in tied {
            let Some(theirs) = data.remove(&format!("anon:{anon}")) else {
                continue;
            };
            let lists = data
                .entry(customer.clone())
                .or_insert_with(|| vec![VecDeque::new(); self.measures.len()]);
            for (list, more) in lists.iter_mut().zip(theirs) {
                let mut all: Vec<(i64, Value)> = list.drain(..).chain(more).collect();
                all.sort_by_key(|(at, _)| *at);
                list.extend(all);
            }
        }
    }

    /// Every measure's value for `customer` at `now` (µs): count and sum 0 without events,
    /// the others null.
    pub fn values(&self, customer: &str, now: i64) -> Map<String, Value> {
        let data = self.data.lock().unwrap_or_else(|e| e.into_inner());
        let lists = data.get(customer);
        let mut out = Map::new();
        for (i, m) in self.measures.iter().enumerate() {
            let inside: Vec<&Value> = lists
                .map(|l| {
                    l[i].iter()
                        .filter(|(at, _)| *at >= now - m.window && *at <= now)
                        .map(|(_, v)| v)
                        .collect()
                })
                .unwrap_or_default();
            let numbers = || inside.iter().filter_map(|v| v.as_f64());
            let v = match m.aggregate {
                Aggregate::Count => json!(inside.len()),
                Aggregate::Sum => json!(numbers().sum::<f64>()),
                Aggregate::Min => numbers().reduce(f64::min).map_or(Value::Null, |n| json!(n)),
                Aggregate::Max => numbers().reduce(f64::max).map_or(Value::Null, |n| json!(n)),
                Aggregate::Last => inside.last().map_or(Value::Null, |v| (*v).clone()),
            };
            out.insert(m.name.clone(), v);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_slide_and_values_aggregate() {
        let ctx = crate::session::base_context();
        let mut defs = std::collections::BTreeMap::new();
        let def = |aggregate: &str, value: Option<&str>| LiveMeasureDef {
            aggregate: aggregate.into(),
            event: "add_to_cart".into(),
            condition: None,
            value: value.map(str::to_string),
            window: "1h".into(),
        };
        defs.insert("adds".to_string(), def("count", None));
        defs.insert(
            "spend".to_string(),
            def("sum", Some("detail(properties, 'price')")),
        );
        defs.insert(
            "last".to_string(),
            def("last", Some("detail(properties, 'sku')")),
        );
        let m = LiveMeasures::new(&ctx, &defs).unwrap();
        let hour = 3_600_000_000i64;
        let ev = |at: i64, price: f64, sku: &str| {
            crate::event_log::spec::received(
                json!({"type": "track", "event": "add_to_cart", "userId": "u",
                       "properties": {"price": price, "sku": sku}}),
                at,
            )
        };
        let events = vec![
            ev(0, 5.0, "A"),
            ev(hour / 2, 7.5, "B"),
            ev(hour + 1, 1.0, "C"),
        ];
        let who = vec![Some("C1".to_string()); 3];
        m.observe(&events, &who);
        let v = m.values("C1", hour + 1);
        assert_eq!(
            (v["adds"].clone(), v["spend"].clone(), v["last"].clone()),
            (json!(2), json!(8.5), json!("C"))
        );
        assert_eq!(m.values("C2", hour)["adds"], json!(0));
        let bad = std::collections::BTreeMap::from([("x".to_string(), def("sum", None))]);
        assert!(LiveMeasures::new(&ctx, &bad)
            .err()
            .unwrap()
            .to_string()
            .contains("needs `value`"));
    }
}
