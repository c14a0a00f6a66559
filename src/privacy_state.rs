//! What privacy requests leave behind that every stage honours: the people erased (the
//! suppression list, kept as hashes) and the consent statements. Sources drop erased people's
//! rows at ingest, analytics keeps them out of carried history, exports skip them and ask
//! consent; the requests themselves (`panorama privacy ...`) are `crate::privacy`'s.

use std::collections::HashSet;
use std::path::Path;

use arrow::array::Array;
use sha2::Digest;

use crate::config::consent::ConsentDefault;
use crate::config::ProjectConfig;
use crate::error::Result;
use crate::sql_text::{ident, in_list, literal};
use crate::table_catalog::names;

/// SHA-256 (hex) of an identifier, the form kept in the suppression list and audit log.
pub fn hash_identifier(value: &str) -> String {
    crate::output::hex(&sha2::Sha256::digest(value.as_bytes()))
}

/// Hashes of every customer id erased so far (`suppression_list` rows of kind `customer_id`).
pub async fn erased_customer_hashes(workspace: &Path) -> Result<HashSet<String>> {
    let mut out = HashSet::new();
    let Some(batches) = crate::state::read(workspace, names::SUPPRESSION_LIST).await? else {
        return Ok(out);
    };
    for b in &batches {
        let kinds = crate::output::string_column(b, "kind")?;
        let hashes = crate::output::string_column(b, "identifier_hash")?;
        for i in 0..b.num_rows() {
            if !kinds.is_null(i) && kinds.value(i) == "customer_id" {
                out.insert(hashes.value(i).to_string());
            }
        }
    }
    Ok(out)
}

/// Keep erased customers out of history carried from the previous run.
pub async fn erased_filter(workspace: &Path) -> Result<Option<String>> {
    let erased = erased_customer_hashes(workspace).await?;
    if erased.is_empty() {
        return Ok(None);
    }
    let list: Vec<String> = erased.into_iter().collect();
    Ok(Some(format!(
        "encode(sha256(customer_id), 'hex') NOT IN ({})",
        in_list(&list)
    )))
}

/// A condition true for rows of `source` (aliased `s`) that belong to a suppressed person.
pub fn suppressed_condition(cfg: &ProjectConfig, source: &str) -> Option<String> {
    let hashed = |expr: String, kind: &str| {
        format!(
            "coalesce(encode(sha256({expr}), 'hex') IN (SELECT identifier_hash FROM suppression_list WHERE kind = {}), false)",
            literal(kind)
        )
    };
    // A mapped column of `s`; a mapped SQL expression reads the source's columns unqualified.
    let mapped = |m: &crate::config::unify::Mapped| match m.column() {
        Some(c) => format!("s.{}", ident(c)),
        None => m.sql(),
    };
    let mut terms = Vec::new();
    if let Some(u) = &cfg.unify {
        if let Some(map) = u.sources.get(source) {
            let map = map.get_ref();
            if let Some(src) = cfg.sources.get(source) {
                if let Ok(rid) = crate::config::unify::record_id_column(
                    cfg,
                    src,
                    source,
                    &map.record_id,
                    "unify.sources",
                ) {
                    terms.push(hashed(
                        format!(
                            "{} || ':' || CAST(s.{} AS VARCHAR)",
                            literal(source),
                            ident(&rid)
                        ),
                        "record",
                    ));
                }
            }
            if let Some(e) = &map.email {
                terms.push(hashed(
                    format!("normalize_email(CAST({} AS VARCHAR), true)", mapped(e)),
                    "email",
                ));
            }
            if let Some(p) = &map.phone {
                terms.push(hashed(
                    format!("phone_digits(CAST({} AS VARCHAR))", mapped(p)),
                    "phone",
                ));
            }
        }
        if let Some(map) = u.identities.get(source) {
            let map = map.get_ref();
            terms.push(hashed(
                format!("CAST(s.{} AS VARCHAR)", ident(&map.anonymous_id)),
                "anonymous_id",
            ));
            if let Some(e) = &map.email {
                terms.push(hashed(
                    format!("normalize_email(CAST(s.{} AS VARCHAR), true)", ident(e)),
                    "email",
                ));
            }
        }
    }
    for a in cfg.activities.values() {
        let a = a.get_ref();
        if a.source != source {
            continue;
        }
        if let (Some(c), Some(cs)) = (&a.customer, &a.customer_source) {
            terms.push(hashed(
                format!("{} || ':' || CAST(s.{} AS VARCHAR)", literal(cs), ident(c)),
                "record",
            ));
        }
        if let Some(anon) = &a.anonymous_id {
            terms.push(hashed(
                format!("CAST(s.{} AS VARCHAR)", ident(anon)),
                "anonymous_id",
            ));
        }
    }
    (!terms.is_empty()).then(|| terms.join(" OR "))
}

/// SQL of `customer_consent`: the latest statement per customer, purpose and channel.
/// `None` when nothing states consent.
pub fn customer_consent_sql(cfg: &ProjectConfig, tables: &[String]) -> Option<String> {
    let has = |t: &str| tables.iter().any(|x| x == t);
    if !has(names::CUSTOMER_LINKS) {
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
            crate::config::unify::record_id_column(cfg, src, &s.source, &m.get_ref().record_id, "")
                .ok()
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
    if has(names::CONSENT_STATEMENTS) {
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
    if !tables.iter().any(|t| t == names::CUSTOMER_CONSENT) {
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
