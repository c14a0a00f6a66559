//! `[journeys.<name>]`: what starts a journey (a segment's new members, or a person's event),
//! when its message goes out, and how often. The journeys stage renders and delivers; the
//! trigger engine of `panorama serve` decides when (`crate::journeys::triggers`).

use std::time::Duration;

use datafusion::prelude::SessionContext;
use serde::Deserialize;

use super::{parse_duration, ProjectConfig};
use crate::event_log::filter::EventFilter;

/// What starts a journey.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// A segment's newly entered members (`trigger = "segment"`), at `panorama journeys`.
    Segment(String),
    /// A person's event (`trigger = { event = "...", unless = {...} }`), in `panorama serve`.
    Event(EventTrigger),
}

impl<'de> Deserialize<'de> for Trigger {
    /// A string or a table, with the table's own error (an unknown key, a missing `event`)
    /// rather than serde's "did not match any variant".
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match toml::Value::deserialize(d)? {
            toml::Value::String(s) => Ok(Trigger::Segment(s)),
            t @ toml::Value::Table(_) => t
                .try_into()
                .map(Trigger::Event)
                .map_err(|e| serde::de::Error::custom(e.message().trim().to_string())),
            other => Err(serde::de::Error::custom(format!(
                "trigger must be a segment's name or {{ event = \"...\" }}, not {}",
                other.type_str()
            ))),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JourneyDef {
    /// A segment whose newly entered members start the journey, or an event.
    pub trigger: Trigger,
    /// Days to wait after entering before the message goes out (segment triggers).
    #[serde(default)]
    pub wait_days: u32,
    /// How long after the trigger event the message goes out (event triggers without
    /// `unless`; with it, added to `within`).
    #[serde(default)]
    pub wait: Option<String>,
    /// At most this many messages of event-triggered journeys to one customer per period.
    #[serde(default)]
    pub frequency_cap: Option<FrequencyCap>,
    /// Extra SQL condition over `customer_profiles`, checked when the message goes out.
    #[serde(default)]
    pub condition: Option<String>,
    /// `[messages.<name>]` to send.
    pub message: String,
    /// Export that delivers the outbox after rendering (optional).
    #[serde(default)]
    pub export: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// Check journeys and messages against the config; errors are (span, message).
pub fn check(cfg: &ProjectConfig) -> std::result::Result<(), (std::ops::Range<usize>, String)> {
    for (name, m) in &cfg.messages {
        m.get_ref().compile(name).map_err(|e| (m.span(), e.0))?;
    }
    for (name, j) in &cfg.journeys {
        let def = j.get_ref();
        if !cfg.messages.contains_key(&def.message) {
            return Err((
                j.span(),
                format!(
                    "journeys.{name}.message: no message named `{}` (messages: {})",
                    def.message,
                    cfg.messages.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        if let Some(e) = &def.export {
            if !cfg.exports.contains_key(e) {
                return Err((
                    j.span(),
                    format!("journeys.{name}.export: no export named `{e}`"),
                ));
            }
        }
        match &def.trigger {
            Trigger::Segment(segment) => {
                if !cfg.analytics.has_segment(segment) {
                    return Err((
                        j.span(),
                        format!("journeys.{name}.trigger: no segment named `{segment}`"),
                    ));
                }
                if def.wait.is_some() || def.frequency_cap.is_some() {
                    return Err((
                        j.span(),
                        format!("journeys.{name}: `wait` and `frequency_cap` are for event triggers; a segment trigger waits `wait_days`"),
                    ));
                }
            }
            Trigger::Event(t) => {
                let webhook = def
                    .export
                    .as_ref()
                    .and_then(|e| cfg.exports.get(e))
                    .is_some_and(|e| e.get_ref().webhook.is_some());
                if !webhook {
                    return Err((
                        j.span(),
                        format!("journeys.{name}.export: an event-triggered journey is delivered at once by `panorama serve`, through a webhook export: name one"),
                    ));
                }
                if cfg.events_source().is_none() {
                    return Err((
                        j.span(),
                        format!("journeys.{name}.trigger: event triggers read collected events: add a source with format = \"events\""),
                    ));
                }
                t.compile(&crate::engine::base_context(), name, def.wait.as_deref())
                    .map_err(|m| (j.span(), m.to_string()))?;
                if let Some(c) = &def.frequency_cap {
                    if parse_duration(&c.per).is_none() || c.messages == 0 {
                        return Err((
                            j.span(),
                            format!("journeys.{name}.frequency_cap: `messages` is at least 1 and `per` a duration such as \"1d\""),
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// `trigger = { event, where, unless }` of an event-triggered journey.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventTrigger {
    /// The `event` column's value: a track call's name, or `page`, `identify`, ...
    pub event: String,
    /// SQL over the event's columns (`detail(properties, 'product_id') = 'P1'`).
    #[serde(rename = "where", default)]
    pub condition: Option<String>,
    pub unless: Option<Unless>,
}

/// `unless = { event, where, within }`: what cancels the journey when it comes in time.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unless {
    pub event: String,
    #[serde(rename = "where", default)]
    pub condition: Option<String>,
    /// How long after the trigger the cancelling event may come ("1h", "30m").
    pub within: String,
}

/// `frequency_cap = { messages = 1, per = "1d" }`: at most `messages` messages of any
/// event-triggered journey to one customer per `per`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrequencyCap {
    pub messages: u32,
    pub per: String,
}

impl EventTrigger {
    /// The trigger's and its `unless`'s filters, compiled for the collected events' shape
    /// (`ctx` supplies the functions a `where` may call), and the time from a trigger event
    /// to firing (`unless.within` plus the journey's `wait`). Errors name `journeys.<journey>`.
    pub fn compile(
        &self,
        ctx: &SessionContext,
        journey: &str,
        wait: Option<&str>,
    ) -> crate::error::Result<(EventFilter, Option<EventFilter>, Duration)> {
        let at = |m: String| crate::error::Error::invalid(format!("journeys.{journey}.trigger"), m);
        let trigger = EventFilter::new(ctx, &self.event, self.condition.as_deref())
            .map_err(|e| at(e.to_string()))?;
        let (unless, within) = match &self.unless {
            Some(u) => {
                let within = parse_duration(&u.within).ok_or_else(|| {
                    at(format!(
                        "unless.within = {:?}: expected a duration such as \"1h\" or \"30m\"",
                        u.within
                    ))
                })?;
                let m = EventFilter::new(ctx, &u.event, u.condition.as_deref())
                    .map_err(|e| at(e.to_string()))?;
                (Some(m), within)
            }
            None => (None, Duration::ZERO),
        };
        let wait = match wait {
            Some(w) => parse_duration(w).ok_or_else(|| {
                crate::error::Error::invalid(
                    format!("journeys.{journey}.wait = {w:?}"),
                    "expected a duration such as \"10m\"",
                )
            })?,
            None => Duration::ZERO,
        };
        Ok((trigger, unless, within + wait))
    }
}
