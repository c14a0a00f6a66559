//! Event-triggered journeys, run by the server as events arrive (see
//! [`crate::journeys::triggers`] for when a journey fires).
//!
//! When one fires: the person is resolved to a customer (as live events are), the customer's
//! consent for the export's `purpose`/`channel` and the journey's `frequency_cap` are checked,
//! the message is rendered from the served profile with the journey's `[messages]` template,
//! appended to the `outbox` state table, and posted at once to the journey's webhook export
//! with `Idempotency-Key` = the message id. A delivered message gets its `journey_state` row.
//!
//! Exactly once per trigger: the message id is a hash of the journey and the trigger event's
//! `messageId`, so a trigger replayed after a restart makes the same id, which the outbox
//! already holds: it is not rendered again. A message in the outbox without its
//! `journey_state` row (the server stopped between the two) is posted again with the same
//! key, which a receiver uses to drop the repeat.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::AsArray;
use serde_json::{json, Value};
use sha2::Digest;

use super::events::Collector;
use super::snapshot::Serving;
use crate::config::ProjectConfig;
use crate::error::{Error, Result};
use crate::event_log::Event;
use crate::exports::config::WebhookDestination;
use crate::journeys::messages::{Compiled as Template, MessageDef};
use crate::journeys::triggers::{Armed, Engine};
use crate::journeys::OutboxMessage;
use crate::table_catalog::names;

/// One event-triggered journey, ready to send.
struct Setup {
    message_name: String,
    message: MessageDef,
    template: Template,
    export: String,
    webhook: WebhookDestination,
    purpose: Option<String>,
    channel: Option<String>,
    cap: Option<(u32, i64)>,
}

/// What was sent: message ids in the outbox, those delivered, and when each customer got one.
#[derive(Default)]
struct Sent {
    outbox: HashSet<String>,
    delivered: HashSet<String>,
    /// Rendered, not yet confirmed by the receiver: retried.
    undelivered: HashMap<String, (OutboxMessage, i64)>,
    times: HashMap<String, Vec<i64>>,
}

/// Counters for `/metrics`, by outcome.
#[derive(Default)]
pub struct Counts {
    pub fired: AtomicU64,
    pub delivered: AtomicU64,
    pub no_customer: AtomicU64,
    pub no_address: AtomicU64,
    pub no_consent: AtomicU64,
    pub capped: AtomicU64,
    pub failed: AtomicU64,
}

pub struct Triggered {
    engine: Mutex<Engine>,
    setups: HashMap<String, Setup>,
    sent: tokio::sync::Mutex<Sent>,
    pub counts: Counts,
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn micros_text(t: i64) -> String {
    chrono::DateTime::from_timestamp_micros(t)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default()
}

/// The message id of a journey fired by a trigger event.
pub fn message_id(journey: &str, trigger_message_id: &str) -> String {
    crate::output::hex(
        &sha2::Sha256::digest(format!("{journey}\n{trigger_message_id}").as_bytes())[..16],
    )
}

impl Triggered {
    /// The project's event-triggered journeys (none: `None`), with what was already sent read
    /// back. The server then replays the collected events of the last [`Self::horizon`].
    pub async fn open(
        cfg: &ProjectConfig,
        collector: Option<&Collector>,
    ) -> Result<Option<Triggered>> {
        let defs = crate::journeys::event_triggered(cfg);
        if defs.is_empty() {
            return Ok(None);
        }
        if collector.is_none() {
            return Err(Error::invalid(
                format!("journeys.{}", defs[0].0),
                "an event trigger needs collected events: add a source with format = \"events\"",
            ));
        };
        let ctx = crate::session::base_context();
        let engine = Engine::new(&ctx, &defs)?;
        let mut setups = HashMap::new();
        for (name, _, _) in &defs {
            let def = cfg.journeys[name].get_ref();
            let message = cfg.messages[&def.message].get_ref().clone();
            let template = message
                .compile(&def.message)
                .map_err(|e| Error::invalid(format!("journeys.{name}"), e))?;
            let export_name = def.export.clone().unwrap_or_default();
            let export = cfg.exports[&export_name].get_ref();
            let webhook = export
                .webhook
                .as_ref()
                .map(|w| w.get_ref().clone())
                .ok_or_else(|| {
                    Error::invalid(
                        format!("journeys.{name}.export"),
                        format!("`{export_name}` is not a webhook export"),
                    )
                })?;
            let cap = match &def.frequency_cap {
                Some(c) => Some((
                    c.messages,
                    crate::config::parse_duration(&c.per)
                        .ok_or_else(|| {
                            Error::invalid(
                                format!("journeys.{name}.frequency_cap.per = {:?}", c.per),
                                "expected a duration such as \"1d\"",
                            )
                        })?
                        .as_micros() as i64,
                )),
                None => None,
            };
            setups.insert(
                name.clone(),
                Setup {
                    message_name: def.message.clone(),
                    message,
                    template,
                    export: export_name,
                    webhook,
                    purpose: export.purpose.as_ref().map(|p| p.get_ref().clone()),
                    channel: export.channel.as_ref().map(|c| c.get_ref().clone()),
                    cap,
                },
            );
        }
        let me = Triggered {
            engine: Mutex::new(engine),
            setups,
            sent: tokio::sync::Mutex::new(Sent::default()),
            counts: Counts::default(),
        };
        me.load_sent(cfg).await?;
        Ok(Some(me))
    }

    /// Message ids already in the outbox and `journey_state` for these journeys.
    async fn load_sent(&self, cfg: &ProjectConfig) -> Result<()> {
        let ws = cfg.workspace_dir();
        let mut sent = self.sent.lock().await;
        let ours = |j: &str| self.setups.contains_key(j);
        if let Some(batches) = crate::state::read(&ws, names::JOURNEY_STATE).await? {
            for b in batches {
                let (Some(j), Some(id)) =
                    (b.column_by_name("journey"), b.column_by_name("message_id"))
                else {
                    continue;
                };
                let (j, id) = (j.as_string::<i32>(), id.as_string::<i32>());
                for i in 0..b.num_rows() {
                    if ours(j.value(i)) {
                        sent.delivered.insert(id.value(i).to_string());
                    }
                }
            }
        }
        if let Some(batches) = crate::state::read(&ws, names::OUTBOX).await? {
            for b in batches {
                for m in OutboxMessage::from_batch(&b)? {
                    if !ours(&m.journey) {
                        continue;
                    }
                    let at = chrono::DateTime::parse_from_rfc3339(&m.created_at)
                        .map(|t| t.timestamp_micros())
                        .unwrap_or(0);
                    sent.times
                        .entry(m.customer_id.clone())
                        .or_default()
                        .push(at);
                    sent.outbox.insert(m.message_id.clone());
                    if !sent.delivered.contains(&m.message_id) {
                        sent.undelivered.insert(m.message_id.clone(), (m, 0));
                    }
                }
            }
        }
        Ok(())
    }

    /// Acknowledged events, in order.
    pub fn observe(&self, events: &[Event]) {
        self.engine.lock().expect("engine").observe(events);
    }

    /// [`Self::observe`] with the events' rows already made.
    pub fn observe_rows(&self, events: &[Event], batch: &arrow::array::RecordBatch) {
        self.engine
            .lock()
            .expect("engine")
            .observe_rows(events, batch);
    }

    /// How far back a restart replays collected events: the longest window, plus a minute.
    pub fn horizon(&self) -> Duration {
        self.engine.lock().expect("engine").horizon() + Duration::from_secs(60)
    }

    pub fn armed(&self) -> usize {
        self.engine.lock().expect("engine").armed()
    }

    /// Fire what is due every quarter second, and retry undelivered messages.
    pub fn spawn(self: Arc<Self>, serving: Arc<Serving>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let due = self.engine.lock().expect("engine").due(now_micros());
                for a in due {
                    if let Err(e) = self.fire(&serving, &a).await {
                        tracing::error!(journey = %a.journey, "{e}");
                    }
                }
                self.retry(&serving).await;
            }
        })
    }

    async fn fire(&self, s: &Serving, a: &Armed) -> Result<()> {
        let Some(setup) = self.setups.get(&a.journey) else {
            return Ok(());
        };
        self.counts.fired.fetch_add(1, Ordering::Relaxed);
        let id = message_id(&a.journey, &a.trigger_message_id);
        if self.sent.lock().await.outbox.contains(&id) {
            return Ok(()); // rendered before a restart; `retry` delivers it if it must
        }
        let snap = s.snapshot();
        let collector = s.events.as_ref();
        let customer = collector.and_then(|c| {
            c.live.resolve(
                &snap.index,
                &c.resolution,
                a.anonymous_id.as_deref(),
                a.user_id.as_deref(),
            )
        });
        let Some(customer) = customer else {
            self.counts.no_customer.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(journey = %a.journey, person = %a.person, "fired for nobody known: no message");
            return Ok(());
        };
        if let Some(purpose) = &setup.purpose {
            if !consents(s, &customer, purpose, setup.channel.as_deref()).await? {
                self.counts.no_consent.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        }
        let now = now_micros();
        if let Some((n, per)) = setup.cap {
            let sent = self.sent.lock().await;
            let recent = sent
                .times
                .get(&customer)
                .map_or(0, |t| t.iter().filter(|at| **at > now - per).count());
            if recent >= n as usize {
                self.counts.capped.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        }
        let Some(row) = snap.index.row(&customer) else {
            self.counts.no_customer.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        };
        let profile = snap
            .index
            .profile(row)?
            .map(|(b, i)| crate::output::row_object(&b, i))
            .unwrap_or_default();
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Null) | None => None,
            Some(other) => Some(other.to_string()),
        };
        let Some(address) = text(profile.get(&setup.message.to)).filter(|a| !a.trim().is_empty())
        else {
            self.counts.no_address.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        };
        let mut values = std::collections::BTreeMap::new();
        for (_, placeholder) in &setup.template.variables {
            let field = &setup.message.fields[placeholder];
            let v = text(profile.get(field.column()))
                .or_else(|| field.default().map(str::to_string))
                .unwrap_or_default();
            values.insert(placeholder.clone(), v);
        }
        let (subject, body) = setup.template.render(&values).map_err(|e| {
            Error::invalid(
                format!("journeys.{}", a.journey),
                format!("rendering for {customer}: {e}"),
            )
        })?;
        let m = OutboxMessage {
            message_id: id.clone(),
            journey: a.journey.clone(),
            message: setup.message_name.clone(),
            customer_id: customer.clone(),
            channel: setup.message.channel.clone(),
            address,
            subject: subject.unwrap_or_default(),
            body,
            created_at: micros_text(now),
            run_id: "live".into(),
        };
        let ws = s.cfg.workspace_dir();
        crate::journeys::append_outbox(&ws, std::slice::from_ref(&m))?;
        {
            let mut sent = self.sent.lock().await;
            sent.outbox.insert(id.clone());
            sent.times.entry(customer).or_default().push(now);
            sent.undelivered.insert(id, (m.clone(), a.trigger_at));
        }
        self.deliver(s, &m, a.trigger_at).await;
        Ok(())
    }

    /// Post one message to its journey's webhook; on success record its `journey_state`.
    async fn deliver(&self, s: &Serving, m: &OutboxMessage, trigger_at: i64) {
        let Some(setup) = self.setups.get(&m.journey) else {
            return;
        };
        let body = json!({
            "export": setup.export,
            "batch": m.message_id,
            "sequence": 0,
            "events": [{
                "op": "upsert",
                "change": "triggered",
                "key": m.message_id,
                "data": m.to_json(),
            }],
        })
        .to_string();
        match crate::exports::webhook::post_one(&setup.webhook, &m.message_id, &body).await {
            Ok(()) => {
                let ws = s.cfg.workspace_dir();
                let state = crate::journeys::append_state(
                    &ws,
                    &[(
                        m,
                        micros_text(trigger_at).as_str(),
                        micros_text(now_micros()).as_str(),
                    )],
                );
                if let Err(e) = state {
                    tracing::error!("journey_state: {e} (message {} delivered)", m.message_id);
                }
                let mut sent = self.sent.lock().await;
                sent.undelivered.remove(&m.message_id);
                sent.delivered.insert(m.message_id.clone());
                self.counts.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.counts.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(journey = %m.journey, message = %m.message_id, "delivery failed, retried later: {e}");
            }
        }
    }

    /// Messages rendered but not confirmed (a failed post, or a restart in between): posted
    /// again, at most every 10 s each.
    async fn retry(&self, s: &Serving) {
        let now = now_micros();
        let todo: Vec<(OutboxMessage, i64)> = {
            let mut sent = self.sent.lock().await;
            let mut out = Vec::new();
            for (m, at) in sent.undelivered.values_mut() {
                if *at == 0 || now - *at >= 10_000_000 {
                    *at = now;
                    out.push((m.clone(), now));
                }
            }
            out
        };
        for (m, at) in todo {
            self.deliver(s, &m, at).await;
        }
    }

    /// Prometheus lines.
    pub fn metrics(&self) -> String {
        let c = &self.counts;
        let mut out = String::from(
            "# HELP panorama_triggered_journeys_total Event-triggered journeys fired, by outcome.\n# TYPE panorama_triggered_journeys_total counter\n",
        );
        for (outcome, v) in [
            ("fired", &c.fired),
            ("delivered", &c.delivered),
            ("no_customer", &c.no_customer),
            ("no_address", &c.no_address),
            ("no_consent", &c.no_consent),
            ("capped", &c.capped),
            ("failed", &c.failed),
        ] {
            out.push_str(&format!(
                "panorama_triggered_journeys_total{{outcome=\"{outcome}\"}} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
        out.push_str(&format!(
            "# HELP panorama_triggered_journeys_armed People with a journey armed now.\n# TYPE panorama_triggered_journeys_armed gauge\npanorama_triggered_journeys_armed {}\n",
            self.armed()
        ));
        out
    }
}

/// Does `customer` allow `purpose` (and `channel`), by the served run's consent?
async fn consents(
    s: &Serving,
    customer: &str,
    purpose: &str,
    channel: Option<&str>,
) -> Result<bool> {
    let snap = s.snapshot();
    let tables: Vec<String> = [names::CUSTOMER_CONSENT]
        .into_iter()
        .filter(|t| snap.ctx.table_exist(*t).unwrap_or(false))
        .map(str::to_string)
        .collect();
    let cond = crate::privacy::consent::allowed_condition(
        &s.cfg,
        "c.customer_id",
        purpose,
        channel,
        &tables,
    );
    let sql = format!(
        "SELECT count(*) AS n FROM (SELECT {} AS customer_id) c WHERE {cond}",
        crate::sql_text::literal(customer)
    );
    let batches = snap.ctx.sql(&sql).await?.collect().await?;
    let n = batches
        .first()
        .and_then(|b| {
            b.column(0)
                .as_primitive_opt::<arrow::datatypes::Int64Type>()
                .map(|a| a.value(0))
        })
        .unwrap_or(0);
    Ok(n > 0)
}
