//! Segments as SQL: each segment's members (a condition over `customer_profiles`, combined
//! with other segments), `segment_members`, and the run-over-run tables `segment_history`
//! (who entered, who left) and `segment_sizes`.

use super::definitions::{Segment, SegmentRule};
use crate::sql_text::{ident, literal};

/// The in-memory table holding one segment's members while a run builds them.
pub fn members_table(segment: &str) -> String {
    format!("panorama_segment_{segment}")
}

/// SQL of one segment's members: `(customer_id)`, or `(segment, value, customer_id)` for a
/// per-value segment. `carry` keeps a static segment's previous members: a member merged into
/// another customer since (`id_changes`) is carried to that customer; one that is no customer
/// any more drops out.
pub fn members_sql(s: &Segment, carry: bool) -> String {
    if carry {
        return format!(
            "SELECT DISTINCT c.customer_id FROM previous_segment_members p \
             LEFT JOIN id_changes ch ON ch.previous_customer_id = p.customer_id AND ch.change = 'merged' \
             JOIN unified_customers c ON c.customer_id = coalesce(ch.customer_id, p.customer_id) \
             WHERE p.segment = {}",
            literal(&s.name)
        );
    }
    match &s.rule {
        SegmentRule::PerValue { column } => format!(
            "SELECT DISTINCT {prefix} || trim(regexp_replace(lower(CAST({col} AS VARCHAR)), '[^a-z0-9]+', '_', 'g'), '_') AS segment, \
             CAST({col} AS VARCHAR) AS value, customer_id FROM customer_profiles WHERE {col} IS NOT NULL",
            prefix = literal(&format!("{}_", s.name)),
            col = ident(column)
        ),
        SegmentRule::Condition {
            condition,
            include,
            exclude,
            within,
        } => {
            let mut sources: Vec<String> = condition
                .iter()
                .map(|c| format!("SELECT customer_id FROM customer_profiles WHERE {c}"))
                .collect();
            sources.extend(
                include
                    .iter()
                    .map(|i| format!("SELECT customer_id FROM {}", members_table(i))),
            );
            let mut filters: Vec<String> = within
                .iter()
                .map(|w| {
                    format!(
                        "customer_id IN (SELECT customer_id FROM {})",
                        members_table(w)
                    )
                })
                .collect();
            filters.extend(exclude.iter().map(|e| {
                format!(
                    "customer_id NOT IN (SELECT customer_id FROM {})",
                    members_table(e)
                )
            }));
            let filter = if filters.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", filters.join(" AND "))
            };
            format!(
                "SELECT DISTINCT customer_id FROM ({}) m{filter}",
                sources.join(" UNION ALL ")
            )
        }
    }
}

/// SQL of `segment_members` over the segments' member tables.
pub fn segment_members_sql(segments: &[Segment]) -> String {
    let parts: Vec<String> = segments
        .iter()
        .map(|s| match s.rule {
            SegmentRule::PerValue { .. } => format!(
                "SELECT CAST(segment AS VARCHAR) AS segment, customer_id FROM {}",
                members_table(&s.name)
            ),
            SegmentRule::Condition { .. } => format!(
                "SELECT CAST({} AS VARCHAR) AS segment, customer_id FROM {}",
                literal(&s.name),
                members_table(&s.name)
            ),
        })
        .collect();
    if parts.is_empty() {
        return "SELECT CAST(NULL AS VARCHAR) AS segment, CAST(NULL AS VARCHAR) AS customer_id WHERE 1 = 0".into();
    }
    format!(
        "SELECT segment, CAST(customer_id AS VARCHAR) AS customer_id FROM (\n{}\n) ORDER BY segment, customer_id",
        parts.join("\nUNION ALL\n")
    )
}

/// SQL of the catalog of this run's segments: `(segment, kind, definition, description)`.
pub fn catalog_sql(segments: &[Segment]) -> String {
    let mut values = Vec::new();
    let mut parts = Vec::new();
    for s in segments {
        match &s.rule {
            SegmentRule::Condition { .. } => values.push(format!(
                "({}, {}, {}, {})",
                literal(&s.name),
                literal(if s.frozen { "static" } else { "dynamic" }),
                literal(&s.definition()),
                literal(&s.description)
            )),
            SegmentRule::PerValue { column } => parts.push(format!(
                "SELECT segment, 'dynamic' AS kind, {def} AS definition, {col} || ' = ' || min(value) AS description \
                 FROM {t} GROUP BY segment",
                def = literal(&s.definition()),
                col = literal(column),
                t = members_table(&s.name)
            )),
        }
    }
    if !values.is_empty() {
        parts.insert(
            0,
            format!(
                "SELECT * FROM (VALUES {}) AS t(segment, kind, definition, description)",
                values.join(", ")
            ),
        );
    }
    if parts.is_empty() {
        return "SELECT CAST(NULL AS VARCHAR) AS segment, CAST(NULL AS VARCHAR) AS kind, CAST(NULL AS VARCHAR) AS definition, CAST(NULL AS VARCHAR) AS description WHERE 1 = 0".into();
    }
    parts.join("\nUNION ALL\n")
}

/// SQL of this run's membership changes `(segment, customer_id, change)` against the previous
/// run's members (all members entered when there is none).
pub fn changes_sql(has_previous: bool) -> String {
    if !has_previous {
        return "SELECT segment, customer_id, 'entered' AS change FROM segment_members".into();
    }
    include_str!("../../sql/analytics/segment_changes.sql").into()
}

/// SQL of `segment_history`: the previous run's history and this run's changes.
pub fn history_sql(has_previous: bool, run: &str) -> String {
    let now = format!(
        "SELECT {run} AS run_id, as_of() AS as_of, segment, customer_id, change FROM panorama_segment_changes",
        run = literal(run)
    );
    if !has_previous {
        return now;
    }
    format!(
        "SELECT CAST(run_id AS VARCHAR) AS run_id, CAST(as_of AS TIMESTAMP) AS as_of, CAST(segment AS VARCHAR) AS segment, \
         CAST(customer_id AS VARCHAR) AS customer_id, CAST(change AS VARCHAR) AS change FROM previous_segment_history \
         UNION ALL {now}"
    )
}

/// SQL of `segment_sizes`: the previous runs' sizes and this run's.
pub fn sizes_sql(has_previous: bool, run: &str) -> String {
    let now = crate::sql_text::fill(
        include_str!("../../sql/analytics/segment_sizes.sql"),
        &[("run", crate::sql_text::Param::Literal(run))],
    );
    if !has_previous {
        return format!("SELECT * FROM ({now}) ORDER BY segment");
    }
    format!(
        "SELECT CAST(run_id AS VARCHAR) AS run_id, CAST(as_of AS TIMESTAMP) AS as_of, CAST(segment AS VARCHAR) AS segment, \
         CAST(kind AS VARCHAR) AS kind, CAST(members AS BIGINT) AS members, CAST(entered AS BIGINT) AS entered, \
         CAST(exited AS BIGINT) AS exited, CAST(definition AS VARCHAR) AS definition, CAST(description AS VARCHAR) AS description \
         FROM previous_segment_sizes \
         UNION ALL SELECT * FROM ({now})"
    )
}
