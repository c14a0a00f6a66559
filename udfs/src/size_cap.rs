//! Caps on what one call of a built-in function may build. `repeat('x', 1500000000)` or
//! `array_repeat(1, 1000000000)` allocate their result in one go, outside any memory pool: a
//! query limited to 1 GB peaked at 6 GB and 16 GB (issue 22). The functions whose output size
//! is set by an argument's *value* rather than by their inputs' size are wrapped: before a
//! batch is evaluated, the size of its result is computed from the arguments (exactly for
//! `repeat`, as an upper bound for the others) and a batch over the limit is an error naming
//! the function, the size and the limit. Everything else is delegated unchanged.
//!
//! ```
//! use datafusion::prelude::SessionContext;
//! let ctx = SessionContext::new();
//! panorama_udfs::size_cap::cap_result_sizes(&ctx, 1 << 20, "the example's limit");
//! ```

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature,
};
use datafusion::prelude::SessionContext;

/// The functions whose result size follows from an argument's value, and how to bound it.
const CAPPED: &[(&str, Estimate)] = &[
    ("repeat", repeat),
    ("lpad", pad),
    ("rpad", pad),
    ("replace", replace),
    ("regexp_replace", regexp_replace),
    ("array_repeat", array_repeat),
    ("array_resize", array_resize),
    ("range", range),
    ("generate_series", range),
];

/// Bytes a batch of calls would build, from its arguments; `None` when unknown.
type Estimate = fn(&[ColumnarValue], usize) -> Option<u128>;

/// Replace the functions of [`CAPPED`] registered on `ctx` with capped ones: a batch whose
/// result would exceed `limit` bytes fails, its message naming `limit_name` (the setting that
/// gives the limit).
pub fn cap_result_sizes(ctx: &SessionContext, limit: usize, limit_name: &str) {
    let state = ctx.state();
    let functions = state.scalar_functions();
    for (name, estimate) in CAPPED {
        if let Some(inner) = functions.get(*name) {
            ctx.register_udf(ScalarUDF::new_from_impl(SizeCapped {
                inner: inner.clone(),
                limit,
                limit_name: limit_name.to_string(),
                estimate: *estimate,
            }));
        }
    }
}

#[derive(Debug)]
struct SizeCapped {
    inner: Arc<ScalarUDF>,
    limit: usize,
    limit_name: String,
    estimate: Estimate,
}

impl PartialEq for SizeCapped {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner && self.limit == other.limit
    }
}
impl Eq for SizeCapped {}
impl Hash for SizeCapped {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
        self.limit.hash(state);
    }
}

/// "1.5 GB" for people.
fn size(bytes: u128) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{bytes} bytes")
    }
}

impl ScalarUDFImpl for SizeCapped {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }
    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.inner().schema_name(args)
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }
    fn is_strict(&self) -> bool {
        self.inner.inner().is_strict()
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if let Some(bytes) = (self.estimate)(&args.args, args.number_rows) {
            if bytes > self.limit as u128 {
                return exec_err!(
                    "{}(...) would build {} in one batch of {} row(s), over the limit of {} ({}); \
                     a query may not build a value larger than its memory",
                    self.name(),
                    size(bytes),
                    args.number_rows,
                    size(self.limit as u128),
                    self.limit_name
                );
            }
        }
        self.inner.invoke_with_args(args)
    }
    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        self.inner.simplify(args, info)
    }
    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }
    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.output_ordering(inputs)
    }
    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.preserves_lex_ordering(inputs)
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

/// An argument as an array of `rows` values (a scalar repeated).
fn array(v: &ColumnarValue, rows: usize) -> Option<ArrayRef> {
    match v {
        ColumnarValue::Array(a) => Some(a.clone()),
        // One value stands for every row: expand only its length, not its bytes.
        ColumnarValue::Scalar(s) => s.to_array_of_size(rows.max(1)).ok(),
    }
}

/// Integer argument values (NULL and non-integers as 0).
fn ints(v: &ColumnarValue, rows: usize) -> Option<Vec<i64>> {
    if let ColumnarValue::Scalar(s) = v {
        let n = match s.cast_to(&DataType::Int64).ok()? {
            ScalarValue::Int64(n) => n.unwrap_or(0),
            _ => 0,
        };
        return Some(vec![n; rows.max(1)]);
    }
    let a = datafusion::arrow::compute::cast(&array(v, rows)?, &DataType::Int64).ok()?;
    let a = a.as_primitive::<Int64Type>();
    Some(
        (0..a.len())
            .map(|i| if a.is_null(i) { 0 } else { a.value(i) })
            .collect(),
    )
}

/// Byte lengths of string argument values (NULL as 0).
fn lens(v: &ColumnarValue, rows: usize) -> Option<Vec<u128>> {
    if let ColumnarValue::Scalar(s) = v {
        let n = match s {
            ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => {
                s.as_ref().map_or(0, |s| s.len())
            }
            ScalarValue::Binary(b) | ScalarValue::LargeBinary(b) | ScalarValue::BinaryView(b) => {
                b.as_ref().map_or(0, |b| b.len())
            }
            other => other.size(),
        };
        return Some(vec![n as u128; rows.max(1)]);
    }
    let a = datafusion::arrow::compute::cast(&array(v, rows)?, &DataType::LargeUtf8).ok()?;
    let a = a.as_string::<i64>();
    Some(
        (0..a.len())
            .map(|i| {
                if a.is_null(i) {
                    0
                } else {
                    a.value(i).len() as u128
                }
            })
            .collect(),
    )
}

/// `repeat(s, n)`: exactly len(s) × n per row.
fn repeat(args: &[ColumnarValue], rows: usize) -> Option<u128> {
    let s = lens(args.first()?, rows)?;
    let n = ints(args.get(1)?, rows)?;
    Some(s.iter().zip(&n).map(|(l, n)| l * (*n).max(0) as u128).sum())
}

/// `lpad(s, n[, fill])`, `rpad`: n characters, up to 4 bytes each.
fn pad(args: &[ColumnarValue], rows: usize) -> Option<u128> {
    let n = ints(args.get(1)?, rows)?;
    Some(n.iter().map(|n| (*n).max(0) as u128 * 4).sum())
}

/// `replace(s, from, to)`: at most one `to` per `from` in `s` (per character, and one more,
/// when `from` is empty) besides `s` itself.
fn replace(args: &[ColumnarValue], rows: usize) -> Option<u128> {
    let s = lens(args.first()?, rows)?;
    let from = lens(args.get(1)?, rows)?;
    let to = lens(args.get(2)?, rows)?;
    Some(
        s.iter()
            .zip(&from)
            .zip(&to)
            .map(|((s, f), t)| s + (s / (*f).max(1) + 1) * t)
            .sum(),
    )
}

/// `regexp_replace(s, pattern, replacement[, flags])`: a match may be empty, so at most one
/// replacement per character and one more, besides `s` itself.
fn regexp_replace(args: &[ColumnarValue], rows: usize) -> Option<u128> {
    let s = lens(args.first()?, rows)?;
    let r = lens(args.get(2)?, rows)?;
    Some(s.iter().zip(&r).map(|(s, r)| s + (s + 1) * r).sum())
}

/// Bytes of one value of `v` in a list (8 for fixed-width types, their size otherwise).
fn element_bytes(v: &ColumnarValue) -> u128 {
    match v {
        ColumnarValue::Scalar(s) => s.size().max(8) as u128,
        ColumnarValue::Array(a) => (a.get_array_memory_size() / a.len().max(1)).max(8) as u128,
    }
}

/// `array_repeat(element, n)`: n elements per row.
fn array_repeat(args: &[ColumnarValue], rows: usize) -> Option<u128> {
    let n = ints(args.get(1)?, rows)?;
    let e = element_bytes(args.first()?);
    Some(n.iter().map(|n| (*n).max(0) as u128 * e).sum())
}

/// `array_resize(list, n[, fill])`: n elements per row.
fn array_resize(args: &[ColumnarValue], rows: usize) -> Option<u128> {
    let n = ints(args.get(1)?, rows)?;
    Some(n.iter().map(|n| (*n).max(0) as u128 * 8).sum())
}

/// `range(stop)`, `range(start, stop[, step])` and `generate_series` as list functions on
/// integers: |stop − start| / |step| elements of 8 bytes per row. Dates and timestamps with
/// interval steps are not bounded here.
fn range(args: &[ColumnarValue], rows: usize) -> Option<u128> {
    let is_int = |v: &ColumnarValue| v.data_type().is_integer();
    if !args.iter().all(is_int) {
        return None;
    }
    let (start, stop) = match args.len() {
        1 => (vec![0; rows.max(1)], ints(&args[0], rows)?),
        _ => (ints(&args[0], rows)?, ints(&args[1], rows)?),
    };
    let step = match args.get(2) {
        Some(s) => ints(s, rows)?,
        None => vec![1; rows.max(1)],
    };
    Some(
        start
            .iter()
            .zip(&stop)
            .zip(&step)
            .map(|((a, b), s)| {
                (*b as i128 - *a as i128).unsigned_abs() / (*s as i128).unsigned_abs().max(1) * 8
            })
            .sum(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(ctx: &SessionContext, sql: &str) -> Result<String> {
        let batches = ctx.sql(sql).await?.collect().await?;
        Ok(datafusion::arrow::util::pretty::pretty_format_batches(&batches)?.to_string())
    }

    #[tokio::test]
    async fn oversized_results_fail_and_small_ones_run() {
        let ctx = SessionContext::new();
        cap_result_sizes(&ctx, 10_000_000, "the test's limit");
        for sql in [
            "SELECT length(repeat('x', 1500000000))",
            "SELECT length(lpad('x', 1000000000))",
            "SELECT cardinality(array_repeat(1, 1000000000))",
            "SELECT cardinality(range(0, 1000000000))",
            "SELECT cardinality(generate_series(1, 1000000000))",
            "SELECT cardinality(array_resize([1], 1000000000))",
            "SELECT length(replace(repeat('ab', 1000000), '', repeat('x', 100)))",
            "SELECT length(regexp_replace(repeat('ab', 1000000), '', repeat('x', 100), 'g'))",
        ] {
            let err = run(&ctx, sql).await.expect_err(sql).to_string();
            assert!(
                err.contains("over the limit of 10.0 MB (the test's limit)"),
                "{sql}: {err}"
            );
        }
        // Over a table: the batch's rows add up (1,000 rows of 20 kB = 20 MB).
        let err = run(
            &ctx,
            "SELECT max(length(repeat('x', 20000 + CAST(v AS INT) % 2))) FROM generate_series(1, 1000) AS t(v)",
        )
        .await
        .expect_err("20 MB in one batch");
        assert!(
            err.to_string().contains("repeat(...) would build 20.0 MB"),
            "{err}"
        );
        // Under the limit: the functions answer as before.
        let out = run(
            &ctx,
            "SELECT length(repeat('ab', 1000)) AS r, lpad('7', 3, '0') AS l, cardinality(array_repeat(1, 5)) AS a, \
             cardinality(range(0, 10, 2)) AS g, replace('a-b', '-', '+') AS p, regexp_replace('a1b2', '[0-9]', '', 'g') AS x",
        )
        .await
        .unwrap();
        assert!(out.contains("| 2000 | 007 | 5 | 5 | a+b | ab |"), "{out}");
    }
}
