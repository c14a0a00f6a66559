//! Journeys: a segment triggers a templated message.
//!
//! `[journeys.<name>]`: customers who *entered* the `trigger` segment (its `segment_history`),
//! are still members, waited `wait_days` since entering and meet the optional `condition`
//! (SQL over `customer_profiles`) get the `message`, rendered into the `outbox` table. The
//! `journey_state` table remembers who got which step, so no customer gets the same step
//! twice, whatever happens to the segment later. When the journey names an `export`, it runs
//! after rendering to deliver the new messages (e.g. an incremental webhook export of
//! `table = "outbox"` keyed by `message_id`).

pub use crate::config::messages;
pub mod triggers;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use sha2::Digest;

use crate::config::ProjectConfig;
use crate::error::{Error, Result};
use crate::sql_text::{fill, ident, literal, Param};

pub use crate::config::journeys::{check, JourneyDef, Trigger};
use crate::table_catalog::names;

/// What one journey did.
#[derive(Debug, Clone, Default)]
pub struct JourneyReport {
    pub journey: String,
    /// Members who entered, waited, and meet the condition.
    pub due: u64,
    pub rendered: u64,
    /// Due, but the address column is empty.
    pub no_address: u64,
    pub delivery: Option<crate::exports::ExportReport>,
}

impl JourneyReport {
    pub fn summary(&self) -> String {
        let mut s = format!(
            "journey {}: {} due, {} messages rendered to the outbox",
            self.journey, self.due, self.rendered
        );
        if self.no_address > 0 {
            s += &format!(", {} without an address", self.no_address);
        }
        if let Some(d) = &self.delivery {
            s += &format!("\n  {}", d.summary().replace('\n', "\n  "));
        }
        s
    }
}

/// Run every journey (or one) on the current run.
pub async fn run_journeys(
    cfg: &ProjectConfig,
    only: Option<&str>,
    quiet: bool,
    locking: &crate::workspace::lock::Locking,
) -> Result<Vec<JourneyReport>> {
    if let Some(o) = only {
        if !cfg.journeys.contains_key(o) {
            return Err(Error::NotFound(format!("no journey named `{o}`")));
        }
    }
    let lock = crate::workspace::lock::acquire(&cfg.workspace_dir(), "journeys", locking).await?;
    let mut reports = Vec::new();
    for (name, j) in &cfg.journeys {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let Trigger::Segment(segment) = &j.get_ref().trigger else {
            // Event-triggered journeys run in `panorama serve` as events arrive.
            if only.is_some() {
                return Err(Error::InvalidRequest(format!(
                    "journey {name} is triggered by events: `panorama serve` sends it as they arrive"
                )));
            }
            continue;
        };
        let mut r = render(cfg, name, segment, j.get_ref()).await?;
        if let Some(e) = &j.get_ref().export {
            r.delivery = Some(
                crate::exports::run_export(
                    cfg,
                    e,
                    &crate::exports::ExportOptions {
                        quiet,
                        dry_run: false,
                        locking: crate::workspace::lock::Locking::Held(lock.clone()),
                    },
                )
                .await?,
            );
        }
        reports.push(r);
    }
    Ok(reports)
}

/// Event-triggered journeys: (name, trigger, wait).
pub fn event_triggered(
    cfg: &ProjectConfig,
) -> Vec<(String, triggers::EventTrigger, Option<String>)> {
    cfg.journeys
        .iter()
        .filter_map(|(n, j)| match &j.get_ref().trigger {
            Trigger::Event(t) => Some((n.clone(), t.clone(), j.get_ref().wait.clone())),
            Trigger::Segment(_) => None,
        })
        .collect()
}

/// One row of the `outbox` state table.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OutboxMessage {
    pub message_id: String,
    pub journey: String,
    pub message: String,
    pub customer_id: String,
    pub channel: String,
    pub address: String,
    pub subject: String,
    pub body: String,
    pub created_at: String,
    /// The run whose profile rendered it; `live` for an event-triggered journey.
    pub run_id: String,
}

const OUTBOX_COLUMNS: [&str; 10] = [
    "message_id",
    "journey",
    "message",
    "customer_id",
    "channel",
    "address",
    "subject",
    "body",
    "created_at",
    "run_id",
];

impl OutboxMessage {
    fn values(&self) -> [&str; 10] {
        [
            &self.message_id,
            &self.journey,
            &self.message,
            &self.customer_id,
            &self.channel,
            &self.address,
            &self.subject,
            &self.body,
            &self.created_at,
            &self.run_id,
        ]
    }

    /// The rows of an `outbox` batch.
    pub fn from_batch(b: &arrow::array::RecordBatch) -> Result<Vec<OutboxMessage>> {
        use arrow::array::{Array, AsArray};
        let cols: Vec<&StringArray> = OUTBOX_COLUMNS
            .iter()
            .map(|c| {
                b.column_by_name(c)
                    .and_then(|a| a.as_string_opt::<i32>())
                    .ok_or_else(|| Error::Internal(format!("outbox: no text column {c}")))
            })
            .collect::<Result<_>>()?;
        let v = |c: usize, i: usize| {
            if cols[c].is_null(i) {
                String::new()
            } else {
                cols[c].value(i).to_string()
            }
        };
        Ok((0..b.num_rows())
            .map(|i| OutboxMessage {
                message_id: v(0, i),
                journey: v(1, i),
                message: v(2, i),
                customer_id: v(3, i),
                channel: v(4, i),
                address: v(5, i),
                subject: v(6, i),
                body: v(7, i),
                created_at: v(8, i),
                run_id: v(9, i),
            })
            .collect())
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// Append messages to the `outbox` state table (one file, all or nothing).
pub fn append_outbox(workspace: &std::path::Path, messages: &[OutboxMessage]) -> Result<()> {
    let batch = crate::state::batch(
        OUTBOX_COLUMNS
            .iter()
            .enumerate()
            .map(|(c, k)| {
                let values: Vec<&str> = messages.iter().map(|m| m.values()[c]).collect();
                (*k, Arc::new(StringArray::from(values)) as ArrayRef)
            })
            .collect(),
    )?;
    crate::state::append(workspace, names::OUTBOX, &batch)?;
    Ok(())
}

/// Record in `journey_state` that each message's customer got its step: (message, when the
/// trigger happened, when it was sent).
pub fn append_state(
    workspace: &std::path::Path,
    sent: &[(&OutboxMessage, &str, &str)],
) -> Result<()> {
    let col = |f: &dyn Fn(&(&OutboxMessage, &str, &str)) -> String| -> ArrayRef {
        Arc::new(StringArray::from(sent.iter().map(f).collect::<Vec<_>>()))
    };
    let batch = crate::state::batch(vec![
        ("journey", col(&|s| s.0.journey.clone())),
        ("step", col(&|s| s.0.message.clone())),
        ("customer_id", col(&|s| s.0.customer_id.clone())),
        ("entered_at", col(&|s| s.1.to_string())),
        ("sent_at", col(&|s| s.2.to_string())),
        ("message_id", col(&|s| s.0.message_id.clone())),
    ])?;
    crate::state::append(workspace, names::JOURNEY_STATE, &batch)?;
    Ok(())
}

/// Members of a trigger segment who are due this journey's message.
const SEGMENT_ENTERED_SQL: &str = include_str!("../../sql/journeys/segment_entered.sql");

async fn render(
    cfg: &ProjectConfig,
    name: &str,
    trigger: &str,
    def: &JourneyDef,
) -> Result<JourneyReport> {
    let err = |m: String| Error::invalid(format!("journeys.{name}"), m);
    let (ctx, opened) = crate::session::open_project(cfg, None).await?;
    for t in [
        names::SEGMENT_HISTORY,
        names::SEGMENT_MEMBERS,
        names::CUSTOMER_PROFILES,
    ] {
        opened.require_table(t, "[segments]")?;
    }
    let message = cfg.messages[&def.message].get_ref();
    let compiled = message.compile(&def.message).map_err(|e| err(e.0))?;
    // Already sent: in journey_state, or in the outbox (rendered by a run that stopped before
    // it recorded the state: sending again would repeat the message id).
    let sent: String = [names::JOURNEY_STATE, names::OUTBOX]
        .iter()
        .filter(|t| opened.tables.iter().any(|x| x == *t))
        .map(|t| {
            format!(
                " AND p.customer_id NOT IN (SELECT customer_id FROM {t} WHERE journey = {})",
                literal(name)
            )
        })
        .collect();
    let columns: Vec<String> = compiled
        .variables
        .iter()
        .map(|(var, placeholder)| {
            format!(
                "CAST(p.{} AS VARCHAR) AS {var}",
                ident(message.fields[placeholder].column())
            )
        })
        .collect();
    let columns: String = columns.iter().map(|c| format!(", {c}")).collect();
    let sql = fill(
        SEGMENT_ENTERED_SQL,
        &[
            ("trigger", Param::Literal(trigger)),
            ("address_to", Param::Ident(&message.to)),
            ("columns", Param::Sql(&columns)),
            ("wait", Param::Sql(&def.wait_days.to_string())),
            (
                "condition",
                Param::Sql(def.condition.as_deref().unwrap_or("TRUE")),
            ),
            ("sent", Param::Sql(&sent)),
        ],
    );
    let rows = crate::output::json_rows(&ctx, &sql)
        .await
        .map_err(|e| err(format!("{e}")))?;
    let mut report = JourneyReport {
        journey: name.to_string(),
        due: rows.len() as u64,
        ..Default::default()
    };
    let text = |v: Option<&serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    let mut messages = Vec::new();
    let mut entered_at = Vec::new();
    let now = crate::output::now_text();
    for row in &rows {
        let customer = text(row.get("customer_id")).unwrap_or_default();
        let Some(address) = text(row.get("address")).filter(|a| !a.trim().is_empty()) else {
            report.no_address += 1;
            continue;
        };
        let mut values = BTreeMap::new();
        for (var, placeholder) in &compiled.variables {
            let v = text(row.get(var))
                .or_else(|| message.fields[placeholder].default().map(str::to_string))
                .unwrap_or_default();
            values.insert(placeholder.clone(), v);
        }
        let (subject, body) = compiled
            .render(&values)
            .map_err(|e| err(format!("rendering for {customer}: {e}")))?;
        let id = crate::output::hex(
            &sha2::Sha256::digest(format!("{name}\n{}\n{customer}", def.message).as_bytes())[..16],
        );
        entered_at.push(text(row.get("entered_at")).unwrap_or_default());
        messages.push(OutboxMessage {
            message_id: id,
            journey: name.to_string(),
            message: def.message.clone(),
            customer_id: customer,
            channel: message.channel.clone(),
            address,
            subject: subject.unwrap_or_default(),
            body,
            created_at: now.clone(),
            run_id: opened.run_id.clone(),
        });
        report.rendered += 1;
    }
    if report.rendered > 0 {
        let workspace = cfg.workspace_dir();
        // Outbox first: a crash before the state is written re-renders the same message ids,
        // which an export keyed by message_id sends once.
        append_outbox(&workspace, &messages)?;
        let sent: Vec<(&OutboxMessage, &str, &str)> = messages
            .iter()
            .zip(&entered_at)
            .map(|(m, e)| (m, e.as_str(), now.as_str()))
            .collect();
        append_state(&workspace, &sent)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    const BASE: &str = "[sources.tracked]\nlocation = \"collected\"\nformat = \"events\"\nprimary_key = \"message_id\"\n\n[messages.m]\nchannel = \"email\"\nto = \"email\"\nbody = \"Hi\"\n\n[exports.hook]\ntable = \"outbox\"\nkey = \"message_id\"\nwebhook = { url = \"http://127.0.0.1:9/hook\" }\n\n[journeys.cart]\nmessage = \"m\"\nexport = \"hook\"\n";

    fn error(trigger: &str) -> String {
        crate::config::parse_for_tests(&format!("{BASE}{trigger}\n"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn event_triggers_are_checked_when_the_config_loads() {
        let ok = "trigger = { event = \"add_to_cart\", unless = { event = \"checkout\", within = \"1h\" } }";
        assert_eq!(error(ok), "");
        for (trigger, why) in [
            (
                "trigger = { event = \"a\", unles = { event = \"b\", within = \"1h\" } }",
                "unknown field `unles`",
            ),
            (
                "trigger = { event = \"a\", unless = { event = \"b\", within = \"soon\" } }",
                "unless.within = \"soon\"",
            ),
            ("trigger = { event = \"a\", where = \"nope = 1\" }", "nope"),
            ("trigger = 3", "a segment's name or"),
            (
                "trigger = \"no_such_segment\"",
                "no segment named `no_such_segment`",
            ),
        ] {
            let e = error(trigger);
            assert!(e.contains(why), "{trigger}: {e}");
        }
    }
}
