//! The identity graph: anonymous ids (cookies, devices) joined to known customers when any of
//! their events carries an identifier of that customer (an e-mail at login or sign-up, a
//! phone). Visitors never identified keep a profile id of their own (`anon_<id>`), so their
//! history is kept and joins the customer once they identify.

use super::config::IdentityMap;
use super::staging::{ident, literal, phone_digits};
use crate::sql_text::Param;

/// SQL of the identity graph: one row per anonymous id over every event source that carries it
/// (a cookie seen in both web events and sessions is one visitor: a login in either ties all
/// of its events to the customer). `source` lists the sources it was seen in.
pub fn identity_graph_sql(sources: &[(&str, &IdentityMap)]) -> String {
    let events: Vec<String> = sources
        .iter()
        .map(|(source, map)| {
            let email = map
                .email
                .as_ref()
                .map(|c| format!("normalize_email(CAST({} AS VARCHAR), true)", ident(c)))
                .unwrap_or_else(|| "CAST(NULL AS VARCHAR)".into());
            let phone = map
                .phone
                .as_ref()
                .map(|c| phone_digits(&format!("CAST({} AS VARCHAR)", ident(c))))
                .unwrap_or_else(|| "CAST(NULL AS VARCHAR)".into());
            let ts = map
                .timestamp
                .as_ref()
                .map(|c| format!("CAST({} AS TIMESTAMP)", ident(c)))
                .unwrap_or_else(|| "CAST(NULL AS TIMESTAMP)".into());
            let (user, user_source) = match (&map.user_id, &map.user_source) {
                (Some(c), Some(src)) => (format!("CAST({} AS VARCHAR)", ident(c)), literal(src)),
                _ => (
                    "CAST(NULL AS VARCHAR)".to_string(),
                    "CAST(NULL AS VARCHAR)".to_string(),
                ),
            };
            format!(
                "  SELECT CAST({anon} AS VARCHAR) AS anonymous_id, {id_type} AS id_type, {src} AS source, \
                 {email} AS email, {phone} AS phone_digits, {user} AS user_id, {user_source} AS user_source, {ts} AS ts\n  \
                 FROM {table} WHERE {anon} IS NOT NULL",
                anon = ident(&map.anonymous_id),
                table = ident(source),
                id_type = literal(&map.id_type),
                src = literal(source),
            )
        })
        .collect();
    let mut names: Vec<&str> = sources.iter().map(|(s, _)| *s).collect();
    names.sort_unstable();
    names.dedup();
    let seen_in: Vec<String> = names
        .iter()
        .map(|s| format!("CASE WHEN bool_or(source = {0}) THEN {0} END", literal(s)))
        .collect();
    crate::sql_text::fill(
        IDENTITY_GRAPH_SQL,
        &[
            ("events", Param::Sql(&events.join("\n  UNION ALL\n"))),
            (
                "sources",
                Param::Sql(&format!("concat_ws(', ', {})", seen_in.join(", "))),
            ),
        ],
    )
}

/// Ties, best tie and candidate count per anonymous id, over the events filled in as `events`.
const IDENTITY_GRAPH_SQL: &str = include_str!("../../sql/unify/identity_graph.sql");
