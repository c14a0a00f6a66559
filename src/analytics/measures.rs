//! Measures as SQL: `customer_measures` (one row per unified customer, one column per measure),
//! the `customer_profiles` view (profile fields and measures side by side), and
//! `business_measures` (one row per measure, or per measure and `by` value).
//!
//! Aggregates sharing their rows and filter are computed in one grouped scan; expressions are
//! layered on top, one layer per dependency level, so a measure can use another.

use std::collections::BTreeMap;

use super::definitions::{Analytics, BusinessMeasure, By, Measure, MeasureKind, Rows};
use crate::config::ProjectConfig;
use crate::error::Result;
use crate::unify::staging::{ident, literal};

/// The rows an aggregate runs over, as a subquery with `panorama_customer_id`.
pub fn rows_sql(cfg: &ProjectConfig, rows: &Rows) -> Result<String> {
    Ok(match rows {
        Rows::Activities => {
            "(SELECT customer_id AS panorama_customer_id, * FROM activities)".to_string()
        }
        Rows::Customers => {
            "(SELECT customer_id AS panorama_customer_id, * FROM customer_profiles)".to_string()
        }
        Rows::ActivitySource(name) => {
            let a = cfg.activities[name].get_ref();
            let (join, customer) = crate::activities::customer_resolution(a);
            format!(
                "(SELECT {customer} AS panorama_customer_id, a.* FROM {} a {join})",
                ident(&a.source)
            )
        }
        Rows::UnifiedSource(source) => {
            let map = cfg
                .unify
                .as_ref()
                .and_then(|u| u.sources.get(source))
                .expect("checked when the config loads");
            let rid = crate::unify::record_id_column(
                cfg,
                &cfg.sources[source],
                source,
                &map.get_ref().record_id,
                "unify.sources",
            )?;
            format!(
                "(SELECT l.customer_id AS panorama_customer_id, s.* FROM {src} s \
                 JOIN customer_links l ON l.source = {lit} AND l.record_id = CAST(s.{rid} AS VARCHAR))",
                src = ident(source),
                lit = literal(source),
                rid = ident(&rid)
            )
        }
    })
}

/// SQL of `customer_measures` for `measures` (in dependency order; a subset must include the
/// measures it uses). Of the profile fields (`profile_columns`), only those an expression
/// names are carried through the expression layers: window functions sort every row they
/// carry.
pub fn customer_measures_sql(
    cfg: &ProjectConfig,
    measures: &[&Measure],
    profile_columns: &[String],
) -> Result<String> {
    // Aggregates grouped by (rows, filter): one scan each.
    let mut groups: BTreeMap<(String, Option<String>), Vec<&Measure>> = BTreeMap::new();
    let mut max_level = 0;
    for m in measures {
        match &m.kind {
            MeasureKind::Aggregate { rows, filter, .. } => groups
                .entry((rows_sql(cfg, rows)?, filter.clone()))
                .or_default()
                .push(m),
            MeasureKind::Expression { level, .. } => max_level = max_level.max(*level),
        }
    }
    let mut ctes = Vec::new();
    let mut joins = String::new();
    let used: std::collections::BTreeSet<String> = measures
        .iter()
        .filter_map(|m| match &m.kind {
            MeasureKind::Expression { sql, .. } => Some(super::definitions::words(sql)),
            MeasureKind::Aggregate { .. } => None,
        })
        .flatten()
        .collect();
    let mut level0 = vec!["c.customer_id".to_string()];
    level0.extend(
        profile_columns
            .iter()
            .filter(|c| *c != "customer_id" && used.contains(*c))
            .map(|c| format!("c.{}", ident(c))),
    );
    for (i, ((rows, filter), ms)) in groups.iter().enumerate() {
        let cols: Vec<String> = ms
            .iter()
            .map(|m| match &m.kind {
                MeasureKind::Aggregate { sql, .. } => format!("{sql} AS {}", ident(&m.name)),
                MeasureKind::Expression { .. } => unreachable!("aggregates only"),
            })
            .collect();
        let filter = filter
            .as_ref()
            .map(|f| format!(" AND ({f})"))
            .unwrap_or_default();
        ctes.push(format!(
            "panorama_aggregate_{i} AS (\n  SELECT panorama_customer_id, {cols}\n  FROM {rows} r\n  WHERE panorama_customer_id IS NOT NULL{filter}\n  GROUP BY panorama_customer_id)",
            cols = cols.join(", ")
        ));
        joins.push_str(&format!(
            "\n  LEFT JOIN panorama_aggregate_{i} a{i} ON a{i}.panorama_customer_id = c.customer_id"
        ));
        for m in ms {
            level0.push(with_default(&format!("a{i}.{}", ident(&m.name)), m));
        }
    }
    ctes.push(format!(
        "panorama_level_0 AS (\n  SELECT {}\n  FROM unified_customers c{joins})",
        level0.join(", ")
    ));
    for level in 1..=max_level {
        let cols: Vec<String> = measures
            .iter()
            .filter_map(|m| match &m.kind {
                MeasureKind::Expression { sql, level: l, .. } if *l == level => {
                    Some(with_default(&format!("({sql})"), m))
                }
                _ => None,
            })
            .collect();
        ctes.push(format!(
            "panorama_level_{level} AS (\n  SELECT *, {}\n  FROM panorama_level_{})",
            cols.join(", "),
            level - 1
        ));
    }
    let mut out = vec!["customer_id".to_string()];
    out.extend(measures.iter().map(|m| ident(&m.name)));
    Ok(format!(
        "WITH {}\nSELECT {}\nFROM panorama_level_{max_level}",
        ctes.join(",\n"),
        out.join(", ")
    ))
}

/// `expr AS "name"`, with the measure's default for customers without a value.
fn with_default(expr: &str, m: &Measure) -> String {
    match &m.default {
        Some(d) => format!("coalesce({expr}, {d}) AS {}", ident(&m.name)),
        None => format!("{expr} AS {}", ident(&m.name)),
    }
}

/// SQL of the `customer_profiles` view: every profile field, then the measures named.
pub fn customer_profiles_sql<'a>(measures: impl Iterator<Item = &'a str>) -> String {
    let mut cols = vec!["c.*".to_string()];
    cols.extend(measures.map(|m| format!("m.{}", ident(m))));
    format!(
        "SELECT {} FROM unified_customers c LEFT JOIN customer_measures m ON m.customer_id = c.customer_id",
        cols.join(", ")
    )
}

/// SQL of one business measure's rows `(measure, by_value, value)`.
pub fn business_measure_sql(cfg: &ProjectConfig, b: &BusinessMeasure) -> Result<String> {
    let mut rows = rows_sql(cfg, &b.rows)?;
    let filter = b
        .filter
        .as_ref()
        .map(|f| format!(" WHERE {f}"))
        .unwrap_or_default();
    let name = literal(&b.name);
    let agg = &b.aggregate;
    Ok(match &b.by {
        None => format!(
            "SELECT {name} AS measure, CAST(NULL AS VARCHAR) AS by_value, CAST({agg} AS DOUBLE) AS value FROM {rows} r{filter}"
        ),
        Some(By::Expression(by)) => format!(
            "SELECT {name} AS measure, CAST({by} AS VARCHAR) AS by_value, CAST({agg} AS DOUBLE) AS value FROM {rows} r{filter} GROUP BY {by}"
        ),
        Some(By::Segment) => {
            rows = format!(
                "(SELECT r.*, sm.segment AS panorama_segment FROM {rows} r JOIN segment_members sm ON sm.customer_id = r.panorama_customer_id)"
            );
            format!(
                "SELECT {name} AS measure, CAST(panorama_segment AS VARCHAR) AS by_value, CAST({agg} AS DOUBLE) AS value FROM {rows} r{filter} GROUP BY panorama_segment"
            )
        }
    })
}

/// SQL of `business_measures`.
pub fn business_measures_sql(cfg: &ProjectConfig, an: &Analytics) -> Result<String> {
    if an.business.is_empty() {
        return Ok("SELECT CAST(NULL AS VARCHAR) AS measure, CAST(NULL AS VARCHAR) AS by_value, CAST(NULL AS DOUBLE) AS value WHERE 1 = 0".into());
    }
    let parts = an
        .business
        .iter()
        .map(|b| business_measure_sql(cfg, b))
        .collect::<Result<Vec<_>>>()?;
    Ok(format!(
        "SELECT * FROM (\n{}\n) ORDER BY measure, by_value",
        parts.join("\nUNION ALL\n")
    ))
}
