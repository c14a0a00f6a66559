//! Journeys triggered by behaviour: `trigger = { event = "add_to_cart", where = "...",
//! unless = { event = "checkout", within = "1h" } }`.
//!
//! A person's event that matches `event` (and `where`, SQL over the event's columns) arms the
//! journey for that person; it fires `within` later unless the same person's event matching
//! `unless` comes first (the abandoned cart), or `wait` later when there is no `unless` (the
//! welcome after sign-up). A new trigger event while armed re-arms it from then, so a shopper
//! who keeps adding to the cart gets one reminder an hour after the last addition.
//!
//! The engine only decides *when*; `panorama serve` feeds it each acknowledged event, asks it
//! what is due, and renders and delivers (see `serve/triggered.rs`). It holds no state of its
//! own worth saving: on start the server replays the collected events of the last window.

use std::collections::HashMap;
use std::time::Duration;

use datafusion::prelude::SessionContext;

use crate::event_log::filter::EventFilter;
use crate::event_log::Event;

pub use crate::config::journeys::{EventTrigger, FrequencyCap, Unless};

struct Compiled {
    name: String,
    trigger: EventFilter,
    unless: Option<EventFilter>,
    /// From the trigger event to firing, microseconds.
    delay: i64,
}

/// An armed journey: who, since which event, firing when.
#[derive(Debug, Clone, PartialEq)]
pub struct Armed {
    pub journey: String,
    /// The person's anonymous id (else `user:` and the user id).
    pub person: String,
    pub anonymous_id: Option<String>,
    pub user_id: Option<String>,
    /// The trigger event (its id makes the message's id, so a trigger sends once).
    pub trigger_message_id: String,
    pub trigger_at: i64,
    pub fire_at: i64,
}

/// The event-triggered journeys of a project and who is armed.
pub struct Engine {
    journeys: Vec<Compiled>,
    armed: HashMap<(usize, String), Armed>,
}

/// The person an event belongs to for triggers: its anonymous id (the tracker sends one on
/// every call, also after sign-in), else its user id.
pub fn person(e: &Event) -> Option<String> {
    e.anonymous_id
        .clone()
        .or_else(|| e.user_id.as_ref().map(|u| format!("user:{u}")))
}

impl Engine {
    /// Compile `(journey name, trigger, wait)` for matching events of the collected table's
    /// shape; `ctx` supplies the functions a `where` may call.
    pub fn new(
        ctx: &SessionContext,
        journeys: &[(String, EventTrigger, Option<String>)],
    ) -> crate::error::Result<Engine> {
        let mut out = Vec::new();
        for (name, t, wait) in journeys {
            let (trigger, unless, delay) = t.compile(ctx, name, wait.as_deref())?;
            out.push(Compiled {
                name: name.clone(),
                trigger,
                unless,
                delay: delay.as_micros() as i64,
            });
        }
        Ok(Engine {
            journeys: out,
            armed: HashMap::new(),
        })
    }

    /// The longest time from a trigger to its firing: how far back a restart replays.
    pub fn horizon(&self) -> Duration {
        let max = self.journeys.iter().map(|j| j.delay).max().unwrap_or(0);
        Duration::from_micros(max.max(0) as u64)
    }

    pub fn is_empty(&self) -> bool {
        self.journeys.is_empty()
    }

    /// Take acknowledged events, in the order received.
    pub fn observe(&mut self, events: &[Event]) {
        if self.journeys.is_empty() || events.is_empty() {
            return;
        }
        match crate::event_log::read::batch(events) {
            Ok(batch) => self.observe_rows(events, &batch),
            Err(e) => tracing::warn!("triggers: {e}"),
        }
    }

    /// [`Self::observe`] with the events' rows already made ([`crate::event_log::read::batch`]).
    pub fn observe_rows(&mut self, events: &[Event], batch: &arrow::array::RecordBatch) {
        if self.journeys.is_empty() {
            return;
        }
        for (row, e) in events.iter().enumerate() {
            let Some(who) = person(e) else { continue };
            for (j, journey) in self.journeys.iter().enumerate() {
                let key = (j, who.clone());
                if let Some(u) = &journey.unless {
                    let cancels = self.armed.get(&key).is_some_and(|a| {
                        e.received_at >= a.trigger_at && e.received_at <= a.fire_at
                    });
                    if cancels && u.matches(e, batch, row) {
                        self.armed.remove(&key);
                        continue;
                    }
                }
                if journey.trigger.matches(e, batch, row) {
                    self.armed.insert(
                        key,
                        Armed {
                            journey: journey.name.clone(),
                            person: who.clone(),
                            anonymous_id: e.anonymous_id.clone(),
                            user_id: e.user_id.clone(),
                            trigger_message_id: e.message_id.clone(),
                            trigger_at: e.received_at,
                            fire_at: e.received_at + journey.delay,
                        },
                    );
                }
            }
        }
    }

    /// Journeys whose time has come at `now` (µs), removed from the armed set.
    pub fn due(&mut self, now: i64) -> Vec<Armed> {
        let keys: Vec<(usize, String)> = self
            .armed
            .iter()
            .filter(|(_, a)| a.fire_at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out: Vec<Armed> = keys
            .into_iter()
            .filter_map(|k| self.armed.remove(&k))
            .collect();
        out.sort_by(|a, b| a.fire_at.cmp(&b.fire_at).then(a.person.cmp(&b.person)));
        out
    }

    /// People armed now.
    pub fn armed(&self) -> usize {
        self.armed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(
        kind: &str,
        name: &str,
        anon: &str,
        id: &str,
        at: i64,
        props: serde_json::Value,
    ) -> Event {
        crate::event_log::spec::received(
            json!({"type": kind, "event": name, "anonymousId": anon, "messageId": id, "properties": props}),
            at,
        )
    }

    #[test]
    fn an_abandoned_cart_fires_once_after_the_last_addition_unless_checked_out() {
        let ctx = crate::session::base_context();
        let trigger = EventTrigger {
            event: "add_to_cart".into(),
            condition: Some("detail(properties, 'price') IS NOT NULL".into()),
            unless: Some(Unless {
                event: "checkout".into(),
                condition: None,
                within: "1h".into(),
            }),
        };
        let mut engine = Engine::new(&ctx, &[("cart".into(), trigger, None)]).unwrap();
        let hour = 3_600_000_000;
        engine.observe(&[
            ev("track", "add_to_cart", "a", "1", 0, json!({"price": 5})),
            ev("track", "add_to_cart", "b", "2", 0, json!({"price": 5})),
            ev("track", "add_to_cart", "c", "3", 0, json!({})), // no price: not a trigger
            ev("track", "add_to_cart", "a", "4", 10, json!({"price": 7})), // re-arms a
            ev("track", "checkout", "b", "5", hour - 1, json!({})), // b bought in time
        ]);
        assert_eq!(engine.armed(), 1);
        assert!(engine.due(hour).is_empty(), "a's window restarted at 10");
        let due = engine.due(hour + 10);
        assert_eq!(due.len(), 1);
        assert_eq!(
            (due[0].person.as_str(), due[0].trigger_message_id.as_str()),
            ("a", "4")
        );
        assert!(engine.due(10 * hour).is_empty(), "fired once");
        assert_eq!(engine.horizon(), Duration::from_secs(3600));
        let bad = EventTrigger {
            event: "x".into(),
            condition: Some("no_such_column = 1".into()),
            unless: None,
        };
        let err = Engine::new(&ctx, &[("j".into(), bad, None)])
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("journeys.j.trigger") && err.contains("no_such_column"),
            "{err}"
        );
    }
}
