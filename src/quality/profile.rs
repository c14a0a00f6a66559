//! The profile of every column of a loaded source: rows, NULLs, distinct values, minimum and
//! maximum, text lengths, the most common values, and for the columns mapped to a parsed match
//! field (e-mail, phone, dates, custom fields) how many values parse. One aggregate query per
//! source for the counts, one per column for the top values.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::prelude::SessionContext;

use crate::config::ProjectConfig;
use crate::error::Result;
use crate::sql_text::ident;

/// Up to this many rows distinct values are counted exactly; above it they are estimated with
/// HyperLogLog (`approx_distinct`, 16,384 registers: ~0.8% standard error), whose memory does
/// not grow with the column — an exact count of a unique column holds every value at once.
pub const EXACT_DISTINCT_ROWS: u64 = 100_000;

/// How many of the most common values are kept per column.
const TOP_VALUES: usize = 5;

/// Top values are not listed for a column whose distinct values are at least this share of
/// its non-NULL values: ids, e-mails and timestamps, whose "most common" values each occur
/// about once and say nothing — and whose grouping is the profile's most expensive query.
const NEAR_UNIQUE: f64 = 0.9;

/// One profiled column.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColumnProfile {
    pub source: String,
    /// The column; for a match field mapped to an SQL expression, the expression.
    pub column: String,
    pub data_type: String,
    pub rows: u64,
    pub nulls: Option<u64>,
    pub distinct: Option<u64>,
    pub distinct_exact: Option<bool>,
    pub min: Option<String>,
    pub max: Option<String>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub avg_length: Option<f64>,
    /// `[{"value": "NL", "count": 412}, ...]`, most common first.
    pub top_values: Option<String>,
    /// The match field mapped to this column, when staging parses it.
    pub mapped_field: Option<String>,
    /// Non-empty values of the mapped field that did not parse.
    pub parse_failures: Option<u64>,
    /// Share of the non-empty values of the mapped field that parse.
    pub parse_rate: Option<f64>,
}

fn is_nested(t: &DataType) -> bool {
    matches!(
        t,
        DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(..)
            | DataType::ListView(_)
            | DataType::LargeListView(_)
            | DataType::Struct(_)
            | DataType::Map(..)
            | DataType::Union(..)
    )
}

fn is_text(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_text(v),
        _ => false,
    }
}

/// Types `approx_distinct` accepts as they are.
fn hll_native(t: &DataType) -> bool {
    t.is_integer() || is_text(t) || matches!(t, DataType::Binary | DataType::LargeBinary)
}

/// The value of column `name` in the first row of `batch`.
fn scalar(batch: &RecordBatch, name: &str) -> Result<ScalarValue> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| crate::error::Error::Internal(format!("profile: no column {name}")))?;
    Ok(ScalarValue::try_from_array(col, 0)?)
}

/// `v` as `to`, unless NULL or not convertible.
fn cast(v: &ScalarValue, to: &DataType) -> Option<ScalarValue> {
    (!v.is_null()).then(|| v.cast_to(to).ok()).flatten()
}

fn as_u64(v: &ScalarValue) -> Option<u64> {
    match cast(v, &DataType::UInt64)? {
        ScalarValue::UInt64(n) => n,
        _ => None,
    }
}

fn as_f64(v: &ScalarValue) -> Option<f64> {
    match cast(v, &DataType::Float64)? {
        ScalarValue::Float64(n) => n,
        _ => None,
    }
}

fn as_string(v: &ScalarValue) -> Option<String> {
    if v.is_null() {
        return None;
    }
    match v {
        ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => s.clone(),
        other => Some(other.to_string()),
    }
}

/// One row of a query expected to give one.
async fn one_row(ctx: &SessionContext, sql: &str) -> Result<RecordBatch> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let schema = batches
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(|| Arc::new(arrow::datatypes::Schema::empty()));
    Ok(arrow::compute::concat_batches(&schema, &batches)?)
}

/// Up to `limit` most common non-NULL values of `expr` over rows where `filter` holds, as
/// `(value, count)`, most common first (ties by value).
pub async fn most_common(
    ctx: &SessionContext,
    table: &str,
    expr: &str,
    filter: &str,
    limit: usize,
) -> Result<Vec<(String, u64)>> {
    let sql = format!(
        "SELECT CAST({expr} AS VARCHAR) AS v, count(*) AS n FROM {table} \
         WHERE {expr} IS NOT NULL AND ({filter}) GROUP BY {expr} ORDER BY n DESC, v LIMIT {limit}"
    );
    let mut out = Vec::new();
    for b in ctx.sql(&sql).await?.collect().await? {
        for r in 0..b.num_rows() {
            let v = ScalarValue::try_from_array(b.column(0), r)?;
            let n = ScalarValue::try_from_array(b.column(1), r)?;
            out.push((as_string(&v).unwrap_or_default(), as_u64(&n).unwrap_or(0)));
        }
    }
    Ok(out)
}

/// Profile every column of the source table `source` registered in `ctx`.
pub async fn profile_source(
    ctx: &SessionContext,
    cfg: &ProjectConfig,
    source: &str,
) -> Result<Vec<ColumnProfile>> {
    let table = ident(source);
    let schema = ctx.table(table.as_str()).await?.schema().as_arrow().clone();
    let rows = as_u64(&scalar(
        &one_row(ctx, &format!("SELECT count(*) AS n FROM {table}")).await?,
        "n",
    )?)
    .unwrap_or(0);
    let exact = rows <= EXACT_DISTINCT_ROWS;
    let mut select = vec!["count(*) AS n".to_string()];
    for (i, f) in schema.fields().iter().enumerate() {
        let c = ident(f.name());
        let t = f.data_type();
        select.push(format!("count({c}) AS nn_{i}"));
        if is_nested(t) || *t == DataType::Null {
            continue;
        }
        select.push(match (exact, hll_native(t)) {
            (true, _) => format!("count(DISTINCT {c}) AS d_{i}"),
            (false, true) => format!("approx_distinct({c}) AS d_{i}"),
            // DataFusion's HyperLogLog takes integers and text only (floats, dates and
            // booleans fail at 1M rows, found by the benchmark): estimate over their text.
            (false, false) => format!("approx_distinct(CAST({c} AS VARCHAR)) AS d_{i}"),
        });
        if !matches!(
            t,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView
        ) {
            select.push(format!("CAST(min({c}) AS VARCHAR) AS min_{i}"));
            select.push(format!("CAST(max({c}) AS VARCHAR) AS max_{i}"));
        }
        if is_text(t) {
            select.push(format!("min(character_length({c})) AS lmin_{i}"));
            select.push(format!("max(character_length({c})) AS lmax_{i}"));
            select.push(format!("avg(character_length({c})) AS lavg_{i}"));
        }
    }
    let stats = one_row(ctx, &format!("SELECT {} FROM {table}", select.join(", "))).await?;
    let get = |name: String| -> Result<Option<ScalarValue>> {
        Ok(match stats.column_by_name(&name) {
            Some(_) => Some(scalar(&stats, &name)?),
            None => None,
        })
    };
    let mut out = Vec::new();
    for (i, f) in schema.fields().iter().enumerate() {
        let non_null = get(format!("nn_{i}"))?
            .as_ref()
            .and_then(as_u64)
            .unwrap_or(0);
        let distinct = get(format!("d_{i}"))?.as_ref().and_then(as_u64);
        let mut p = ColumnProfile {
            source: source.to_string(),
            column: f.name().clone(),
            data_type: f.data_type().to_string(),
            rows,
            nulls: Some(rows - non_null.min(rows)),
            distinct,
            distinct_exact: distinct.map(|_| exact),
            min: get(format!("min_{i}"))?.as_ref().and_then(as_string),
            max: get(format!("max_{i}"))?.as_ref().and_then(as_string),
            min_length: get(format!("lmin_{i}"))?.as_ref().and_then(as_u64),
            max_length: get(format!("lmax_{i}"))?.as_ref().and_then(as_u64),
            avg_length: get(format!("lavg_{i}"))?.as_ref().and_then(as_f64),
            ..Default::default()
        };
        let listable =
            distinct.is_some_and(|d| non_null > 0 && (d as f64) < NEAR_UNIQUE * non_null as f64);
        if listable {
            let top = most_common(ctx, &table, &ident(f.name()), "true", TOP_VALUES).await?;
            let items: Vec<String> = top
                .into_iter()
                .map(|(v, n)| {
                    format!(
                        "{{\"value\":{},\"count\":{n}}}",
                        serde_json::Value::String(v)
                    )
                })
                .collect();
            p.top_values = Some(format!("[{}]", items.join(",")));
        }
        out.push(p);
    }
    parse_rates(ctx, cfg, source, &table, rows, &mut out).await?;
    Ok(out)
}

/// For each match field of the source that staging parses: how many non-empty values parse,
/// on its column's profile (a row of its own when it maps an expression, or a column already
/// holding another field's rate).
async fn parse_rates(
    ctx: &SessionContext,
    cfg: &ProjectConfig,
    source: &str,
    table: &str,
    rows: u64,
    out: &mut Vec<ColumnProfile>,
) -> Result<()> {
    let Some(unify) = &cfg.unify else {
        return Ok(());
    };
    let Some(map) = unify.sources.get(source) else {
        return Ok(());
    };
    let parsed = crate::unify::staging::parsed_values(map.get_ref(), &unify.custom_fields())?;
    if parsed.is_empty() {
        return Ok(());
    }
    let mut select = Vec::new();
    for (i, p) in parsed.iter().enumerate() {
        let present = present(&p.raw);
        select.push(format!("count({present}) AS present_{i}"));
        select.push(format!(
            "count(CASE WHEN {present} IS NOT NULL THEN {} END) AS parsed_{i}",
            p.parsed
        ));
    }
    let counts = one_row(ctx, &format!("SELECT {} FROM {table}", select.join(", "))).await?;
    for (i, p) in parsed.iter().enumerate() {
        let present = as_u64(&scalar(&counts, &format!("present_{i}"))?).unwrap_or(0);
        let ok = as_u64(&scalar(&counts, &format!("parsed_{i}"))?).unwrap_or(0);
        let rate = (present > 0).then(|| ok as f64 / present as f64);
        let name = p.column.clone().unwrap_or_else(|| p.raw.clone());
        let row = match out
            .iter_mut()
            .find(|c| c.column == name && c.mapped_field.is_none())
        {
            Some(row) => row,
            None => {
                out.push(ColumnProfile {
                    source: source.to_string(),
                    column: name,
                    data_type: "expression".into(),
                    rows,
                    ..Default::default()
                });
                out.last_mut().expect("just pushed")
            }
        };
        row.mapped_field = Some(p.field.clone());
        row.parse_failures = Some(present - ok.min(present));
        row.parse_rate = rate;
    }
    Ok(())
}

/// A mapped value as non-empty text, NULL when absent or blank: what a parse is judged on.
pub fn present(raw: &str) -> String {
    format!("nullif(trim(CAST({raw} AS VARCHAR)), '')")
}

/// Profiles as the rows of `source_profiles`.
pub fn profiles_batch(
    run_id: &str,
    at: chrono::NaiveDateTime,
    profiles: &[ColumnProfile],
) -> Result<RecordBatch> {
    let c = crate::state::Columns(profiles);
    crate::state::batch(vec![
        ("run_id", c.constant(run_id)),
        ("profiled_at", c.stamp(at)),
        ("source", c.text(|p| Some(p.source.clone()))),
        ("column", c.text(|p| Some(p.column.clone()))),
        ("data_type", c.text(|p| Some(p.data_type.clone()))),
        ("rows", c.count(|p| Some(p.rows))),
        ("nulls", c.count(|p| p.nulls)),
        (
            "null_share",
            c.share(|p| {
                p.nulls
                    .filter(|_| p.rows > 0)
                    .map(|n| n as f64 / p.rows as f64)
            }),
        ),
        ("distinct_values", c.count(|p| p.distinct)),
        ("distinct_exact", c.flag(|p| p.distinct_exact)),
        ("min_value", c.text(|p| p.min.clone())),
        ("max_value", c.text(|p| p.max.clone())),
        ("min_length", c.count(|p| p.min_length)),
        ("max_length", c.count(|p| p.max_length)),
        ("avg_length", c.share(|p| p.avg_length)),
        ("top_values", c.text(|p| p.top_values.clone())),
        ("mapped_field", c.text(|p| p.mapped_field.clone())),
        ("parse_rate", c.share(|p| p.parse_rate)),
        ("parse_failures", c.count(|p| p.parse_failures)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_small_table_is_profiled_exactly() {
        let ctx = crate::run_context::new_context();
        ctx.sql(
            "CREATE TABLE t AS SELECT column1, column2, column3, NULL AS nothing FROM (VALUES ('NL', 1, 'a@x.com'), ('NL', 2, NULL), ('DE', NULL, 'bad'), ('NL', 4, 'c@y.org'))",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
        let cfg = crate::config::parse_for_tests(
            "[sources.t]\nlocation = \"t.csv\"\nprimary_key = \"column2\"\n[unify.sources.t]\nemail = \"column3\"\n",
        )
        .unwrap();
        let p = profile_source(&ctx, &cfg, "t").await.unwrap();
        assert_eq!(p.len(), 4);
        // A column with no type (all NULL): counted, nothing more.
        assert_eq!(
            (p[3].column.as_str(), p[3].nulls, p[3].distinct),
            ("nothing", Some(4), None)
        );
        assert_eq!(
            (p[0].rows, p[0].nulls, p[0].distinct),
            (4, Some(0), Some(2))
        );
        assert_eq!(
            p[0].top_values.as_deref(),
            Some(r#"[{"value":"NL","count":3},{"value":"DE","count":1}]"#)
        );
        assert_eq!((p[0].min_length, p[0].max_length), (Some(2), Some(2)));
        assert_eq!(
            (p[1].min.as_deref(), p[1].max.as_deref()),
            (Some("1"), Some("4"))
        );
        assert_eq!(p[1].nulls, Some(1));
        // Three distinct of three non-NULL values: near-unique, no top values.
        assert_eq!(p[1].top_values, None);
        assert_eq!(p[2].mapped_field.as_deref(), Some("email"));
        assert_eq!(p[2].parse_failures, Some(1));
        assert!((p[2].parse_rate.unwrap() - 2.0 / 3.0).abs() < 1e-12);
    }

    #[tokio::test]
    async fn a_large_table_is_estimated_for_every_type() {
        let ctx = crate::run_context::new_context();
        let n = EXACT_DISTINCT_ROWS + 1;
        ctx.sql(&format!(
            "CREATE TABLE t AS SELECT value AS i, CAST(value % 1000 AS DOUBLE) / 4 AS f, value % 2 = 0 AS b, \
               CAST(arrow_cast(value % 3650, 'Date32') AS DATE) AS d, CAST(value % 500 AS VARCHAR) AS s, \
               arrow_cast(value * 1000000, 'Timestamp(Microsecond, None)') AS ts \
             FROM generate_series(1, {n})"
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
        let cfg = crate::config::parse_for_tests(
            "[sources.t]\nlocation = \"t.csv\"\nprimary_key = \"i\"\n",
        )
        .unwrap();
        let p = profile_source(&ctx, &cfg, "t").await.unwrap();
        let distinct: Vec<(&str, u64, Option<bool>)> = p
            .iter()
            .map(|c| (c.column.as_str(), c.distinct.unwrap(), c.distinct_exact))
            .collect();
        // HyperLogLog: within 3% of the truth.
        let truth = [
            ("i", n),
            ("f", 1000),
            ("b", 2),
            ("d", 3650),
            ("s", 500),
            ("ts", n),
        ];
        for ((name, got, exact), (tname, want)) in distinct.iter().zip(truth) {
            assert_eq!(*name, tname);
            assert_eq!(*exact, Some(false));
            let err = (*got as f64 - want as f64).abs() / want as f64;
            assert!(err < 0.03, "{name}: {got} estimated, {want} true");
        }
        assert_eq!(
            p[2].top_values
                .as_deref()
                .map(|t| t.starts_with(r#"[{"value":"false""#)),
            Some(true)
        );
    }
}
