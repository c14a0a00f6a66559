//! Journeys: a segment triggers a templated message.
//!
//! `[journeys.<name>]`: customers who *entered* the `trigger` segment (its `segment_history`),
//! are still members, waited `wait_days` since entering and meet the optional `condition`
//! (SQL over `customer_profiles`) get the `message`, rendered into the `outbox` table. The
//! `journey_state` table remembers who got which step, so no customer gets the same step
//! twice, whatever happens to the segment later. When the journey names an `export`, it runs
//! after rendering to deliver the new messages (e.g. an incremental webhook export of
//! `table = "outbox"` keyed by `message_id`).

pub mod messages;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use serde::Deserialize;
use sha2::Digest;

use crate::config::ProjectConfig;
use crate::error::{Error, Result};
use crate::unify::staging::{ident, literal};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JourneyDef {
    /// Segment whose newly entered members start the journey.
    pub trigger: String,
    /// Days to wait after entering before the message goes out.
    #[serde(default)]
    pub wait_days: u32,
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
        m.get_ref().compile(name).map_err(|e| (m.span(), e))?;
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
        if !cfg.analytics.has_segment(&def.trigger) {
            return Err((
                j.span(),
                format!(
                    "journeys.{name}.trigger: no segment named `{}`",
                    def.trigger
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
    }
    Ok(())
}

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
            return Err(Error::Other(format!("no journey named `{o}`")));
        }
    }
    let lock = crate::workspace::lock::acquire(&cfg.workspace_dir(), "journeys", locking).await?;
    let mut reports = Vec::new();
    for (name, j) in &cfg.journeys {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let mut r = render(cfg, name, j.get_ref()).await?;
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

async fn render(cfg: &ProjectConfig, name: &str, def: &JourneyDef) -> Result<JourneyReport> {
    let err = |m: String| Error::Other(format!("journeys.{name}: {m}"));
    let (ctx, opened) = crate::session::open_project(cfg, None).await?;
    for t in ["segment_history", "segment_members", "customer_profiles"] {
        opened.require_table(t, "[segments]")?;
    }
    let message = cfg.messages[&def.message].get_ref();
    let compiled = message.compile(&def.message).map_err(err)?;
    // Already sent: in journey_state, or in the outbox (rendered by a run that stopped before
    // it recorded the state: sending again would repeat the message id).
    let sent: String = ["journey_state", "outbox"]
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
    let sql = format!(
        "WITH entered AS (\
           SELECT customer_id, max(as_of) AS entered_at FROM segment_history \
           WHERE segment = {trigger} AND change = 'entered' GROUP BY customer_id) \
         SELECT p.customer_id, CAST(e.entered_at AS VARCHAR) AS entered_at, \
                CAST(p.{to} AS VARCHAR) AS address{cols} \
         FROM customer_profiles p \
         JOIN segment_members m ON m.customer_id = p.customer_id AND m.segment = {trigger} \
         JOIN entered e ON e.customer_id = p.customer_id \
         WHERE e.entered_at + INTERVAL '{wait} days' <= as_of() AND ({cond}) {sent} \
         ORDER BY p.customer_id",
        trigger = literal(&def.trigger),
        to = ident(&message.to),
        cols = columns.iter().map(|c| format!(", {c}")).collect::<String>(),
        wait = def.wait_days,
        cond = def.condition.as_deref().unwrap_or("TRUE"),
    );
    let rows = crate::privacy::json_rows(&ctx, &sql)
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
    let mut out: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut state: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let now = crate::privacy::now_text();
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
        let entered = text(row.get("entered_at")).unwrap_or_default();
        for (k, v) in [
            ("message_id", id.clone()),
            ("journey", name.to_string()),
            ("message", def.message.clone()),
            ("customer_id", customer.clone()),
            ("channel", message.channel.clone()),
            ("address", address),
            ("subject", subject.unwrap_or_default()),
            ("body", body),
            ("created_at", now.clone()),
            ("run_id", opened.run_id.clone()),
        ] {
            out.entry(k).or_default().push(v);
        }
        for (k, v) in [
            ("journey", name.to_string()),
            ("step", def.message.clone()),
            ("customer_id", customer),
            ("entered_at", entered),
            ("sent_at", now.clone()),
            ("message_id", id),
        ] {
            state.entry(k).or_default().push(v);
        }
        report.rendered += 1;
    }
    if report.rendered > 0 {
        let workspace = cfg.workspace_dir();
        let order = [
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
        let batch = crate::state::batch(
            order
                .iter()
                .map(|k| (*k, Arc::new(StringArray::from(out[k].clone())) as ArrayRef))
                .collect(),
        )?;
        // Outbox first: a crash before the state is written re-renders the same message ids,
        // which an export keyed by message_id sends once.
        crate::state::append(&workspace, "outbox", &batch)?;
        let order = [
            "journey",
            "step",
            "customer_id",
            "entered_at",
            "sent_at",
            "message_id",
        ];
        let batch = crate::state::batch(
            order
                .iter()
                .map(|k| {
                    (
                        *k,
                        Arc::new(StringArray::from(state[k].clone())) as ArrayRef,
                    )
                })
                .collect(),
        )?;
        crate::state::append(&workspace, "journey_state", &batch)?;
    }
    Ok(report)
}
