//! Measures as SQL: `customer_measures` (one row per unified customer, one column per measure),
//! the `customer_profiles` view (profile fields and measures side by side), and
//! `business_measures` (one row per measure, or per measure and `by` value).
//!
//! Aggregates sharing their rows and filter are computed in one grouped scan; expressions are
//! layered on top, one layer per dependency level, so a measure can use another.

use std::collections::{BTreeMap, BTreeSet};

use super::definitions::{Analytics, BusinessMeasure, By, Measure, MeasureKind, Rows};
use crate::config::ProjectConfig;
use crate::error::Result;
use crate::sql_text::{ident, literal};

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
        Rows::Prediction(table) => format!(
            "(SELECT customer_id AS panorama_customer_id, * FROM {})",
            ident(table)
        ),
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

/// What the compiler needs to know of the session: the profile fields of
/// `unified_customers` and the names of aggregate functions.
#[derive(Debug, Clone, Default)]
pub struct SessionFacts {
    pub profile_columns: Vec<String>,
    pub aggregate_functions: BTreeSet<String>,
}

/// `sql` with `FILTER (WHERE filter)` on each of its aggregate calls; `None` when the text is
/// beyond the generic SQL parser (then the measure keeps a scan of its own).
fn with_filter(sql: &str, filter: &str, aggregates: &BTreeSet<String>) -> Option<String> {
    use datafusion::sql::sqlparser::ast::{visit_expressions_mut, BinaryOperator, Expr};
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    let parse = |text: &str| {
        Parser::new(&GenericDialect {})
            .try_with_sql(text)
            .ok()?
            .parse_expr()
            .ok()
    };
    let (mut expr, condition) = (parse(sql)?, parse(filter)?);
    let mut found = false;
    let _ = visit_expressions_mut(&mut expr, |e| {
        if let Expr::Function(f) = e {
            if f.over.is_none() && aggregates.contains(&f.name.to_string().to_lowercase()) {
                found = true;
                let extra = Expr::Nested(Box::new(condition.clone()));
                f.filter = Some(Box::new(match f.filter.take() {
                    Some(old) => Expr::BinaryOp {
                        left: Box::new(Expr::Nested(old)),
                        op: BinaryOperator::And,
                        right: Box::new(extra),
                    },
                    None => extra,
                }));
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    found.then(|| expr.to_string())
}

/// One grouped scan: the aggregates over the same rows.
struct Scan<'a> {
    rows: String,
    /// The scan's WHERE (when all its measures share one filter, or OR of all filters).
    filter: Option<String>,
    /// (measure, its SQL as computed in the scan, the guard column saying the customer had
    /// rows passing the measure's own filter).
    measures: Vec<(&'a Measure, String, Option<String>)>,
    /// Guard columns: `count(*) FILTER (WHERE f) AS name`.
    guards: Vec<(String, String)>,
}

/// Aggregates over the same rows share one scan: when their filters differ, each aggregate
/// call gets its filter as `FILTER (WHERE ...)`, and a customer without rows passing a
/// measure's filter gets NULL (then the default), as with a scan of its own.
fn scans<'a>(
    cfg: &ProjectConfig,
    measures: &[&'a Measure],
    aggregates: &BTreeSet<String>,
) -> Result<Vec<Scan<'a>>> {
    /// (measure, aggregate SQL, filter).
    type Aggregate<'a> = (&'a Measure, &'a str, Option<&'a String>);
    let mut by_rows: BTreeMap<String, Vec<Aggregate<'a>>> = BTreeMap::new();
    for m in measures {
        if let MeasureKind::Aggregate { rows, filter, sql } = &m.kind {
            by_rows.entry(rows_sql(cfg, rows)?).or_default().push((
                m,
                sql.as_str(),
                filter.as_ref(),
            ));
        }
    }
    let mut out = Vec::new();
    for (rows, ms) in by_rows {
        let filters: BTreeSet<Option<&String>> = ms.iter().map(|(_, _, f)| *f).collect();
        if filters.len() == 1 {
            out.push(Scan {
                rows,
                filter: filters.into_iter().next().flatten().cloned(),
                measures: ms
                    .iter()
                    .map(|(m, sql, _)| (*m, sql.to_string(), None))
                    .collect(),
                guards: Vec::new(),
            });
            continue;
        }
        let mut shared = Scan {
            rows: rows.clone(),
            filter: None,
            measures: Vec::new(),
            guards: Vec::new(),
        };
        let mut alone = Vec::new();
        for (m, sql, f) in &ms {
            let Some(f) = f else {
                shared.measures.push((*m, sql.to_string(), None));
                continue;
            };
            match with_filter(sql, f, aggregates) {
                Some(filtered) => {
                    let guard = match shared.guards.iter().find(|(_, g)| g == *f) {
                        Some((name, _)) => name.clone(),
                        None => {
                            let name = format!("panorama_rows_{}", shared.guards.len());
                            shared.guards.push((name.clone(), f.to_string()));
                            name
                        }
                    };
                    shared.measures.push((*m, filtered, Some(guard)));
                }
                None => alone.push(Scan {
                    rows: rows.clone(),
                    filter: Some(f.to_string()),
                    measures: vec![(*m, sql.to_string(), None)],
                    guards: Vec::new(),
                }),
            }
        }
        // Only filtered measures: the scan reads just the rows some filter wants.
        if shared.measures.iter().all(|(_, _, g)| g.is_some()) && !shared.guards.is_empty() {
            let any: Vec<String> = shared
                .guards
                .iter()
                .map(|(_, f)| format!("({f})"))
                .collect();
            shared.filter = Some(any.join(" OR "));
        }
        if !shared.measures.is_empty() {
            out.push(shared);
        }
        out.extend(alone);
    }
    Ok(out)
}

/// SQL of `customer_measures` for `measures` (in dependency order; a subset must include the
/// measures it uses). Of the profile fields, only those an expression names are carried
/// through the expression layers: window functions sort every row they carry.
pub fn customer_measures_sql(
    cfg: &ProjectConfig,
    measures: &[&Measure],
    facts: &SessionFacts,
) -> Result<String> {
    let max_level = measures
        .iter()
        .map(|m| match &m.kind {
            MeasureKind::Expression { level, .. } => *level,
            MeasureKind::Aggregate { .. } => 0,
        })
        .max()
        .unwrap_or(0);
    let mut ctes = Vec::new();
    let mut joins = String::new();
    let used: BTreeSet<String> = measures
        .iter()
        .filter_map(|m| match &m.kind {
            MeasureKind::Expression { sql, .. } => Some(super::definitions::words(sql)),
            MeasureKind::Aggregate { .. } => None,
        })
        .flatten()
        .collect();
    let mut level0 = vec!["c.customer_id".to_string()];
    level0.extend(
        facts
            .profile_columns
            .iter()
            .filter(|c| *c != "customer_id" && used.contains(*c))
            .map(|c| format!("c.{}", ident(c))),
    );
    for (i, scan) in scans(cfg, measures, &facts.aggregate_functions)?
        .iter()
        .enumerate()
    {
        let mut cols: Vec<String> = scan
            .measures
            .iter()
            .map(|(m, sql, _)| format!("{sql} AS {}", ident(&m.name)))
            .collect();
        cols.extend(
            scan.guards
                .iter()
                .map(|(name, f)| format!("count(*) FILTER (WHERE {f}) AS {name}")),
        );
        let filter = scan
            .filter
            .as_ref()
            .map(|f| format!(" AND ({f})"))
            .unwrap_or_default();
        let rows = &scan.rows;
        ctes.push(format!(
            "panorama_aggregate_{i} AS (\n  SELECT panorama_customer_id, {cols}\n  FROM {rows} r\n  WHERE panorama_customer_id IS NOT NULL{filter}\n  GROUP BY panorama_customer_id)",
            cols = cols.join(", ")
        ));
        joins.push_str(&format!(
            "\n  LEFT JOIN panorama_aggregate_{i} a{i} ON a{i}.panorama_customer_id = c.customer_id"
        ));
        for (m, _, guard) in &scan.measures {
            let value = match guard {
                Some(g) => format!("CASE WHEN a{i}.{g} > 0 THEN a{i}.{} END", ident(&m.name)),
                None => format!("a{i}.{}", ident(&m.name)),
            };
            level0.push(with_default(&value, m));
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
    profiles_sql(None, measures)
}

/// `customer_profiles` with only some profile fields (`None`: all of them).
pub fn profiles_sql<'a>(
    fields: Option<&[&str]>,
    measures: impl Iterator<Item = &'a str>,
) -> String {
    let mut cols = match fields {
        None => vec!["c.*".to_string()],
        Some(fields) => std::iter::once("c.customer_id".to_string())
            .chain(
                fields
                    .iter()
                    .filter(|f| **f != "customer_id")
                    .map(|f| format!("c.{}", ident(f))),
            )
            .collect(),
    };
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

/// SQL of `business_measures`. Single-valued measures over the same rows are computed in one
/// scan (each aggregate call with its own filter; without GROUP BY that gives what a scan of
/// its own would) and unpivoted to one row each.
pub fn business_measures_sql(
    cfg: &ProjectConfig,
    an: &Analytics,
    facts: &SessionFacts,
) -> Result<String> {
    if an.business.is_empty() {
        return Ok("SELECT CAST(NULL AS VARCHAR) AS measure, CAST(NULL AS VARCHAR) AS by_value, CAST(NULL AS DOUBLE) AS value WHERE 1 = 0".into());
    }
    let mut parts = Vec::new();
    let mut shared: BTreeMap<String, Vec<(&BusinessMeasure, String)>> = BTreeMap::new();
    for b in &an.business {
        let combined = match (&b.by, &b.filter) {
            (Some(_), _) => None,
            (None, None) => Some(b.aggregate.clone()),
            (None, Some(f)) => with_filter(&b.aggregate, f, &facts.aggregate_functions),
        };
        match combined {
            Some(sql) => shared
                .entry(rows_sql(cfg, &b.rows)?)
                .or_default()
                .push((b, sql)),
            None => parts.push(business_measure_sql(cfg, b)?),
        }
    }
    for (rows, ms) in shared {
        if let [(b, _)] = ms.as_slice() {
            parts.push(business_measure_sql(cfg, b)?);
            continue;
        }
        let cols: Vec<String> = ms
            .iter()
            .enumerate()
            .map(|(i, (_, sql))| format!("CAST({sql} AS DOUBLE) AS m{i}"))
            .collect();
        let names: Vec<String> = ms
            .iter()
            .map(|(b, _)| format!("({})", literal(&b.name)))
            .collect();
        let pick: Vec<String> = ms
            .iter()
            .enumerate()
            .map(|(i, (b, _))| format!("WHEN {} THEN t.m{i}", literal(&b.name)))
            .collect();
        parts.push(format!(
            "SELECT k.measure, CAST(NULL AS VARCHAR) AS by_value, CASE k.measure {} END AS value \
             FROM (SELECT {} FROM {rows} r) t CROSS JOIN (VALUES {}) AS k(measure)",
            pick.join(" "),
            cols.join(", "),
            names.join(", ")
        ));
    }
    Ok(format!(
        "SELECT * FROM (\n{}\n) ORDER BY measure, by_value",
        parts.join("\nUNION ALL\n")
    ))
}
