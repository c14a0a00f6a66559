//! Evaluating `[[expectations]]` over a run's loaded sources, each into one row of
//! `data_quality`: what was observed, what was expected, whether it passed, and for row checks
//! how many rows failed with the most common failing values.

use arrow::array::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::prelude::SessionContext;

use super::profile::{most_common, present};
use crate::config::expectations::{Check, Expectation};
use crate::config::ProjectConfig;
use crate::error::{Error, Result};
use crate::sql_text::{ident, literal};

/// The result of one expectation.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub expectation: Expectation,
    pub passed: bool,
    /// What was found, for people: `3 of 10 rows NULL (30.0%)`.
    pub observed: String,
    /// What was expected, for people: `no NULL`, `≥ 95% of non-NULL values match`.
    pub expected: String,
    /// The figure compared, for trends: share of rows passing, row count change, age in
    /// hours, parse rate.
    pub value: Option<f64>,
    /// Rows judged (row checks and parse rates).
    pub rows_checked: Option<u64>,
    /// Rows that failed (row checks and parse rates).
    pub failing_rows: Option<u64>,
}

impl Outcome {
    /// One line for the run summary and errors.
    pub fn line(&self) -> String {
        format!(
            "{} ({}): {}; expected {}",
            self.expectation.name, self.expectation.at, self.observed, self.expected
        )
    }
}

/// Everything a check needs to know about the run besides the data.
pub struct CheckContext<'a> {
    pub cfg: &'a ProjectConfig,
    pub ctx: &'a SessionContext,
    /// Rows of each source in the previous successful run.
    pub previous_rows: &'a (dyn Fn(&str) -> Option<u64> + Sync),
    /// The run's reference time, for freshness.
    pub as_of: chrono::NaiveDateTime,
}

async fn first_row(ctx: &SessionContext, sql: &str) -> Result<Vec<ScalarValue>> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let b = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| Error::Internal(format!("no row from {sql}")))?;
    b.columns()
        .iter()
        .map(|c| Ok(ScalarValue::try_from_array(c, 0)?))
        .collect()
}

fn count(v: &ScalarValue) -> u64 {
    match v.cast_to(&arrow::datatypes::DataType::UInt64) {
        Ok(ScalarValue::UInt64(Some(n))) => n,
        _ => 0,
    }
}

/// `1 value`, `3 values`.
fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0%".into();
    }
    format!("{:.1}%", 100.0 * part as f64 / whole as f64)
}

/// `e.g. 'XX' (3), 'nl' (1)`: the most common failing values, shortened.
fn examples(values: &[(String, u64)]) -> String {
    if values.is_empty() {
        return String::new();
    }
    let shown: Vec<String> = values
        .iter()
        .map(|(v, n)| {
            let short: String = v.chars().take(40).collect();
            let ell = if short.len() < v.len() { "…" } else { "" };
            format!("'{short}{ell}' ({n})")
        })
        .collect();
    format!(", e.g. {}", shown.join(", "))
}

/// The share a row check expects, for people.
fn expected_share(mostly: f64, what: &str) -> String {
    if mostly >= 1.0 {
        format!("every {what}")
    } else {
        format!("≥ {:.1}% of {what}s", 100.0 * mostly)
    }
}

/// Whether `passing` of `total` rows meets `mostly`.
fn meets(passing: u64, total: u64, mostly: f64) -> bool {
    passing as f64 >= mostly * total as f64 - 1e-9 * total as f64
}

/// Evaluate one expectation.
pub async fn evaluate(cx: &CheckContext<'_>, e: &Expectation) -> Result<Outcome> {
    let t = Target {
        cx,
        e,
        table: ident(&e.source),
        column: e.column.as_deref().map(ident).unwrap_or_default(),
    };
    if let Some((cond, what)) = t.failing_condition() {
        return t.row_check(&cond, what).await;
    }
    match &e.check {
        Check::NotNull => t.not_null().await,
        Check::Unique => t.unique().await,
        Check::RowCountChange(max) => t.row_count_change(*max).await,
        Check::Freshness(max_age) => t.freshness(*max_age).await,
        Check::MappedParseRate(min) => t.mapped_parse_rate(*min).await,
        _ => unreachable!("row checks are handled above"),
    }
}

/// One expectation with its source table and column quoted for SQL.
struct Target<'a> {
    cx: &'a CheckContext<'a>,
    e: &'a Expectation,
    table: String,
    column: String,
}

impl Target<'_> {
    fn outcome(
        &self,
        passed: bool,
        observed: String,
        expected: String,
        value: Option<f64>,
        rows_checked: Option<u64>,
        failing_rows: Option<u64>,
    ) -> Outcome {
        Outcome {
            expectation: self.e.clone(),
            passed,
            observed,
            expected,
            value,
            rows_checked,
            failing_rows,
        }
    }

    /// Row checks are judged by a condition on each non-NULL value: (condition, what a
    /// failing value is).
    fn failing_condition(&self) -> Option<(String, &'static str)> {
        let column = &self.column;
        match &self.e.check {
            Check::AcceptedValues(values) => Some((
                format!(
                    "CAST({column} AS VARCHAR) NOT IN ({})",
                    values
                        .iter()
                        .map(|v| literal(v))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "not accepted",
            )),
            Check::Matches(pattern) => Some((
                format!(
                    "NOT regexp_like(CAST({column} AS VARCHAR), {})",
                    literal(pattern)
                ),
                "not matching",
            )),
            Check::Between(lo, hi) => Some((
                format!("({column} < {lo} OR {column} > {hi})"),
                "out of range",
            )),
            _ => None,
        }
    }

    /// `accepted_values`, `matches`, `between`: the share of non-NULL values not failing.
    async fn row_check(&self, cond: &str, what: &str) -> Result<Outcome> {
        let (table, column, e) = (&self.table, &self.column, self.e);
        let row = first_row(
            self.cx.ctx,
            &format!(
                "SELECT count({column}), count(CASE WHEN {column} IS NOT NULL AND ({cond}) THEN 1 END) FROM {table}"
            ),
        )
        .await?;
        let (checked, bad) = (count(&row[0]), count(&row[1]));
        let ex = if bad > 0 {
            most_common(self.cx.ctx, table, column, cond, 3).await?
        } else {
            Vec::new()
        };
        let expected = match &e.check {
            Check::AcceptedValues(v) => format!(
                "{} in [{}]",
                expected_share(e.mostly, "non-NULL value"),
                v.join(", ")
            ),
            Check::Matches(p) => format!(
                "{} to match /{p}/",
                expected_share(e.mostly, "non-NULL value")
            ),
            Check::Between(lo, hi) => {
                format!(
                    "{} within [{lo}, {hi}]",
                    expected_share(e.mostly, "non-NULL value")
                )
            }
            _ => unreachable!("row checks only"),
        };
        Ok(self.outcome(
            meets(checked - bad, checked, e.mostly),
            format!(
                "{bad} of {checked} non-NULL values {what} ({}){}",
                percent(bad, checked),
                examples(&ex)
            ),
            expected,
            Some(if checked == 0 {
                1.0
            } else {
                (checked - bad) as f64 / checked as f64
            }),
            Some(checked),
            Some(bad),
        ))
    }

    async fn not_null(&self) -> Result<Outcome> {
        let (ctx, table, column, e) = (self.cx.ctx, &self.table, &self.column, self.e);
        let row = first_row(
            ctx,
            &format!("SELECT count(*), count({column}) FROM {table}"),
        )
        .await?;
        let (rows, non_null) = (count(&row[0]), count(&row[1]));
        let nulls = rows - non_null;
        Ok(self.outcome(
            meets(non_null, rows, e.mostly),
            format!("{nulls} of {rows} rows NULL ({})", percent(nulls, rows)),
            if e.mostly >= 1.0 {
                "no NULL".into()
            } else {
                format!("≥ {:.1}% of rows not NULL", 100.0 * e.mostly)
            },
            Some(if rows == 0 {
                1.0
            } else {
                non_null as f64 / rows as f64
            }),
            Some(rows),
            Some(nulls),
        ))
    }

    async fn unique(&self) -> Result<Outcome> {
        let (ctx, table, column, e) = (self.cx.ctx, &self.table, &self.column, self.e);
        let row = first_row(ctx, &format!("SELECT count({column}) FROM {table}")).await?;
        let checked = count(&row[0]);
        let dup = first_row(
            ctx,
            &format!(
                "SELECT count(*), coalesce(sum(k), 0) FROM (SELECT count(*) AS k FROM {table} \
                 WHERE {column} IS NOT NULL GROUP BY {column} HAVING count(*) > 1) AS d"
            ),
        )
        .await?;
        let (values, rows) = (count(&dup[0]), count(&dup[1]));
        let ex = if rows > 0 {
            let cond = format!(
                "{column} IN (SELECT {column} FROM {table} GROUP BY {column} HAVING count(*) > 1)"
            );
            most_common(ctx, table, column, &cond, 3).await?
        } else {
            Vec::new()
        };
        Ok(self.outcome(
            meets(checked - rows, checked, e.mostly),
            format!(
                "{rows} of {checked} non-NULL values ({}) share their value with another row ({} repeated){}",
                percent(rows, checked),
                counted(values, "value", "values"),
                examples(&ex)
            ),
            if e.mostly >= 1.0 {
                "every non-NULL value once".into()
            } else {
                format!("≥ {:.1}% of non-NULL values unrepeated", 100.0 * e.mostly)
            },
            Some(if checked == 0 { 1.0 } else { (checked - rows) as f64 / checked as f64 }),
            Some(checked),
            Some(rows),
        ))
    }

    async fn row_count_change(&self, max: f64) -> Result<Outcome> {
        let (ctx, table, e, cx) = (self.cx.ctx, &self.table, self.e, self.cx);
        let row = first_row(ctx, &format!("SELECT count(*) FROM {table}")).await?;
        let rows = count(&row[0]);
        let expected = format!("within ±{:.1}% of the previous run's rows", 100.0 * max);
        Ok(match (cx.previous_rows)(&e.source) {
            None => self.outcome(
                true,
                format!("{rows} rows; no previous run to compare with"),
                expected,
                None,
                None,
                None,
            ),
            Some(prev) => {
                let change = if prev == 0 {
                    if rows == 0 {
                        0.0
                    } else {
                        f64::INFINITY
                    }
                } else {
                    (rows as f64 - prev as f64) / prev as f64
                };
                self.outcome(
                    change.abs() <= max + 1e-12,
                    format!(
                        "{rows} rows, {prev} in the previous run ({:+.1}%)",
                        100.0 * change
                    ),
                    expected,
                    change.is_finite().then_some(change),
                    None,
                    None,
                )
            }
        })
    }

    async fn freshness(&self, max_age: std::time::Duration) -> Result<Outcome> {
        let (ctx, table, column, cx) = (self.cx.ctx, &self.table, &self.column, self.cx);
        let row = first_row(
            ctx,
            // TRY_CAST: a text value that is no time is no newest value, not a failed run.
            &format!("SELECT CAST(max(TRY_CAST({column} AS TIMESTAMP)) AS VARCHAR) FROM {table}"),
        )
        .await?;
        let expected = format!(
            "newest value within {} of the run's as-of time ({})",
            human_age(max_age.as_secs_f64()),
            crate::run_context::format_as_of(cx.as_of)
        );
        let newest = match &row[0] {
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)) => crate::config::parse_as_of(s).ok(),
            _ => None,
        };
        Ok(match newest {
            None => self.outcome(false, "no values".into(), expected, None, None, None),
            Some(t) => {
                let age = (cx.as_of - t).num_milliseconds() as f64 / 1000.0;
                self.outcome(
                    age <= max_age.as_secs_f64(),
                    format!("newest value {t}, {} old", human_age(age)),
                    expected,
                    Some(age / 3600.0),
                    None,
                    None,
                )
            }
        })
    }

    async fn mapped_parse_rate(&self, min: f64) -> Result<Outcome> {
        let (ctx, table, e, cx) = (self.cx.ctx, &self.table, self.e, self.cx);
        let field = e.field.as_deref().unwrap_or_default();
        let unify = cx
            .cfg
            .unify
            .as_ref()
            .ok_or_else(|| Error::invalid(&e.at, "no [unify]"))?;
        let map = unify.sources.get(&e.source).ok_or_else(|| {
            Error::invalid(&e.at, format!("[unify.sources.{}] is missing", e.source))
        })?;
        let parsed = crate::unify::staging::parsed_values(map.get_ref(), &unify.custom_fields())?;
        let p = parsed
            .iter()
            .find(|p| p.field == field)
            .ok_or_else(|| Error::invalid(&e.at, format!("`{field}` is not mapped")))?;
        let raw = present(&p.raw);
        let row = first_row(
            ctx,
            &format!(
                "SELECT count({raw}), count(CASE WHEN {raw} IS NOT NULL THEN {} END) FROM {table}",
                p.parsed
            ),
        )
        .await?;
        let (checked, ok) = (count(&row[0]), count(&row[1]));
        let bad = checked - ok;
        let ex = if bad > 0 {
            most_common(ctx, table, &raw, &format!("({}) IS NULL", p.parsed), 3).await?
        } else {
            Vec::new()
        };
        let rate = if checked == 0 {
            1.0
        } else {
            ok as f64 / checked as f64
        };
        Ok(self.outcome(
            meets(ok, checked, min),
            format!(
                "{ok} of {checked} {field} values parse ({}), {} not{}",
                percent(ok, checked),
                counted(bad, "does", "do"),
                examples(&ex)
            ),
            format!("≥ {:.1}% parse", 100.0 * min),
            Some(rate),
            Some(checked),
            Some(bad),
        ))
    }
}

/// `3d 4h`, `5h 10m`, `42s`.
fn human_age(seconds: f64) -> String {
    let s = seconds.abs().round() as u64;
    let sign = if seconds < 0.0 { "-" } else { "" };
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sign}{s}s"),
        (0, 0, m) => format!("{sign}{m}m"),
        (0, h, 0) => format!("{sign}{h}h"),
        (0, h, m) => format!("{sign}{h}h {m}m"),
        (d, 0, _) => format!("{sign}{d}d"),
        (d, h, _) => format!("{sign}{d}d {h}h"),
    }
}

/// Outcomes as the rows of `data_quality`.
pub fn outcomes_batch(
    run_id: &str,
    at: chrono::NaiveDateTime,
    outcomes: &[Outcome],
) -> Result<RecordBatch> {
    let c = crate::state::Columns(outcomes);
    crate::state::batch(vec![
        ("run_id", c.constant(run_id)),
        ("checked_at", c.stamp(at)),
        ("expectation", c.text(|o| Some(o.expectation.name.clone()))),
        ("source", c.text(|o| Some(o.expectation.source.clone()))),
        ("column", c.text(|o| o.expectation.column.clone())),
        ("field", c.text(|o| o.expectation.field.clone())),
        (
            "check",
            c.text(|o| Some(o.expectation.check.key().to_string())),
        ),
        (
            "severity",
            c.text(|o| Some(o.expectation.severity.as_str().to_string())),
        ),
        ("passed", c.flag(|o| Some(o.passed))),
        ("observed", c.text(|o| Some(o.observed.clone()))),
        ("expected", c.text(|o| Some(o.expected.clone()))),
        ("observed_value", c.share(|o| o.value)),
        ("rows_checked", c.count(|o| o.rows_checked)),
        ("failing_rows", c.count(|o| o.failing_rows)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_people_write_them() {
        assert_eq!(human_age(42.0), "42s");
        assert_eq!(human_age(5.0 * 3600.0 + 600.0), "5h 10m");
        assert_eq!(human_age(3.0 * 86_400.0 + 4.0 * 3600.0), "3d 4h");
        assert_eq!(human_age(2.0 * 86_400.0), "2d");
    }

    #[tokio::test]
    async fn text_that_is_no_time_does_not_fail_freshness() {
        let ctx = crate::run_context::new_context();
        ctx.sql("CREATE TABLE s AS VALUES ('2026-10-30 12:00:00'), ('not a date'), (NULL)")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let cfg = crate::config::parse_for_tests(
            "[sources.s]\nlocation = \"s.csv\"\nprimary_key = \"column1\"\n\n[[expectations]]\nsource = \"s\"\ncolumn = \"column1\"\nfreshness = \"2d\"\n",
        )
        .unwrap();
        let e = &cfg.expectations()[0];
        let none = |_: &str| None;
        let cx = CheckContext {
            cfg: &cfg,
            ctx: &ctx,
            previous_rows: &none,
            as_of: crate::config::parse_as_of("2026-11-02").unwrap(),
        };
        let o = evaluate(&cx, e).await.unwrap();
        assert!(!o.passed);
        assert_eq!(o.observed, "newest value 2026-10-30 12:00:00, 2d 12h old");
        assert_eq!(o.value, Some(60.0));
    }

    #[test]
    fn shares_meet_mostly_exactly() {
        assert!(meets(95, 100, 0.95));
        assert!(!meets(94, 100, 0.95));
        assert!(meets(10, 10, 1.0));
        assert!(!meets(9, 10, 1.0));
        assert!(meets(0, 0, 1.0));
    }
}
