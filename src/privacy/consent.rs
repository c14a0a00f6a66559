//! Consent per purpose and channel.
//!
//! Statements come from source columns (`[[consent.sources]]`, e.g. the loyalty database's
//! `consent_email` flag with its `updated_at`) and from statements Panorama keeps
//! (`panorama consent set`, the `consent_statements` log). For each customer, purpose and
//! channel the latest statement wins; `customer_consent` shows it with its source and time.
//! A statement for channel `*` covers every channel of its purpose.

pub use crate::config::consent::{check, ConsentColumn, ConsentDefault, ConsentSection};
use crate::config::ProjectConfig;
use crate::sql_text::{ident, literal};

/// SQL of `customer_consent`: the latest statement per customer, purpose and channel.
/// `None` when nothing states consent.
pub fn customer_consent_sql(cfg: &ProjectConfig, tables: &[String]) -> Option<String> {
    let has = |t: &str| tables.iter().any(|x| x == t);
    if !has("customer_links") {
        return None;
    }
    let mut parts = Vec::new();
    for s in cfg.consent.iter().flat_map(|c| &c.sources) {
        let s = s.get_ref();
        let Some(src) = cfg.sources.get(&s.source) else {
            continue;
        };
        if !has(&s.source) {
            continue;
        }
        let map = cfg.unify.as_ref().and_then(|u| u.sources.get(&s.source));
        let Some(rid) = map.and_then(|m| {
            crate::unify::record_id_column(cfg, src, &s.source, &m.get_ref().record_id, "").ok()
        }) else {
            continue;
        };
        let record_id = format!("CAST(s.{} AS VARCHAR)", ident(&rid));
        parts.push(format!(
            "SELECT l.customer_id, {purpose} AS purpose, {channel} AS channel, \
             CAST(s.{col} AS BOOLEAN) AS granted, {source} AS source, {ts} AS stated_at \
             FROM {table} s JOIN customer_links l ON l.source = {source} AND l.record_id = {record_id} \
             WHERE s.{col} IS NOT NULL",
            purpose = literal(&s.purpose),
            channel = literal(s.channel.as_deref().unwrap_or("*")),
            col = ident(&s.column),
            source = literal(&s.source),
            ts = s
                .timestamp
                .as_ref()
                .map(|t| format!("CAST(s.{} AS TIMESTAMP)", ident(t)))
                .unwrap_or_else(|| "CAST(NULL AS TIMESTAMP)".into()),
            table = ident(&s.source),
        ));
    }
    if has("consent_statements") {
        parts.push(format!(
            "SELECT DISTINCT l.customer_id, c.purpose, c.channel, c.granted, c.source, \
             CAST(c.stated_at AS TIMESTAMP) AS stated_at \
             FROM (SELECT *, unnest(string_to_array(records, {sep})) AS record FROM consent_statements) c \
             JOIN customer_links l ON l.source || ':' || l.record_id = c.record",
            sep = "chr(31)"
        ));
    }
    if parts.is_empty() {
        return None;
    }
    Some(format!(
        "SELECT customer_id, purpose, channel, granted, source, stated_at FROM (\
           SELECT *, row_number() OVER (PARTITION BY customer_id, purpose, channel \
                                        ORDER BY stated_at DESC NULLS LAST, source) AS rn \
           FROM ({})) WHERE rn = 1",
        parts.join(" UNION ALL ")
    ))
}

/// A condition true when consent allows `purpose` (and `channel`) for the customer in
/// `customer_col`: the latest statement for the purpose on that channel or on `*`.
pub fn allowed_condition(
    cfg: &ProjectConfig,
    customer_col: &str,
    purpose: &str,
    channel: Option<&str>,
    tables: &[String],
) -> String {
    let default = cfg.consent.as_ref().map(|c| c.default).unwrap_or_default();
    if !tables.iter().any(|t| t == "customer_consent") {
        return match default {
            ConsentDefault::Deny => "FALSE".into(),
            ConsentDefault::Allow => "TRUE".into(),
        };
    }
    let channels = match channel {
        Some(c) => format!("({}, '*')", literal(c)),
        None => "('*')".into(),
    };
    let latest = format!(
        "SELECT customer_id, granted FROM (\
           SELECT customer_id, granted, row_number() OVER (PARTITION BY customer_id \
                  ORDER BY stated_at DESC NULLS LAST, channel DESC) AS rn \
           FROM customer_consent WHERE purpose = {} AND channel IN {channels}) WHERE rn = 1",
        literal(purpose)
    );
    match default {
        ConsentDefault::Deny => {
            format!("{customer_col} IN (SELECT customer_id FROM ({latest}) WHERE granted)")
        }
        ConsentDefault::Allow => {
            format!("{customer_col} NOT IN (SELECT customer_id FROM ({latest}) WHERE NOT granted)")
        }
    }
}
