//! Writing query results as a table, CSV, JSON or Parquet.

use std::io::Write;
use std::path::Path;

use arrow::array::{Array, RecordBatch};
use arrow::util::pretty::pretty_format_batches;
use clap::ValueEnum;
use datafusion::prelude::SessionContext;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    /// Aligned text table, for people (fractions rounded to four decimals).
    #[default]
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON object per line.
    Json,
    /// Parquet (needs --output).
    Parquet,
}

/// Write batches to `out` in `format`. Parquet needs a file: use [`write_to_file`].
pub fn write_batches(
    batches: &[RecordBatch],
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<()> {
    match format {
        OutputFormat::Table => {
            let rounded = batches
                .iter()
                .map(rounded_for_people)
                .collect::<Result<Vec<_>>>()?;
            let text = pretty_format_batches(&rounded)?;
            writeln!(out, "{text}").map_err(|e| Error::io("cannot write", "<output>", e))?;
        }
        OutputFormat::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            for b in batches {
                w.write(b)?;
            }
        }
        OutputFormat::Json => {
            let mut w = arrow::json::LineDelimitedWriter::new(out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
        OutputFormat::Parquet => {
            return Err(Error::InvalidRequest(
                "--format parquet needs --output FILE (Parquet is binary)".into(),
            ))
        }
    }
    Ok(())
}

/// Write batches to a file; the file is replaced only when writing succeeded.
pub fn write_to_file(batches: &[RecordBatch], format: OutputFormat, path: &Path) -> Result<()> {
    let tmp = path.with_extension("panorama-tmp");
    let result = (|| -> Result<()> {
        if format == OutputFormat::Parquet {
            let schema = batches
                .first()
                .map(|b| b.schema())
                .ok_or_else(|| Error::Internal("query returned no schema".into()))?;
            return crate::workspace::write_parquet(&tmp, schema, batches);
        }
        let file = std::fs::File::create(&tmp).map_err(|e| Error::io("cannot create", &tmp, e))?;
        let mut buf = std::io::BufWriter::new(file);
        write_batches(batches, format, &mut buf)?;
        buf.flush().map_err(|e| Error::io("cannot write", &tmp, e))
    })();
    match result {
        Ok(()) => std::fs::rename(&tmp, path).map_err(|e| Error::io("cannot write", path, e)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

// Values of batches as JSON and text, for the HTTP API, the report, exports and real-time
// matching alike.

/// Row `row` of a batch as a JSON object, nulls kept.
pub fn row_object(
    batch: &arrow::record_batch::RecordBatch,
    row: usize,
) -> serde_json::Map<String, serde_json::Value> {
    batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| (f.name().clone(), json_value_at(c, row)))
        .collect()
}

/// Every row of a batch as JSON objects, nulls kept; values as `arrow::json` writes them.
///
/// Strings, integers, doubles and booleans are converted directly; other types (dates,
/// timestamps, decimals, lists) go through `arrow::json` a column at a time.
pub fn batch_objects(
    batch: &arrow::record_batch::RecordBatch,
) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let mut rows: Vec<serde_json::Map<String, serde_json::Value>> = (0..batch.num_rows())
        .map(|_| serde_json::Map::new())
        .collect();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let values = match direct_converter(column.data_type()) {
            Some(convert) => (0..column.len())
                .map(|i| match column.is_null(i) {
                    true => serde_json::Value::Null,
                    false => convert(column.as_ref(), i),
                })
                .collect(),
            None => json_values_written(column),
        };
        for (row, value) in rows.iter_mut().zip(values) {
            row.insert(field.name().clone(), value);
        }
    }
    rows
}

/// A non-null value of an array of this type, as JSON.
type Converter = fn(&dyn Array, usize) -> serde_json::Value;

/// How values of a type are converted without `arrow::json`: strings, integers, doubles
/// (not finite: null, as `arrow::json` writes them) and booleans; None for other types.
fn direct_converter(t: &arrow::datatypes::DataType) -> Option<Converter> {
    use arrow::array::AsArray;
    use arrow::datatypes::{self as p, DataType};
    Some(match t {
        DataType::Null => |_, _| serde_json::Value::Null,
        DataType::Boolean => |a, i| a.as_boolean().value(i).into(),
        DataType::Utf8 => |a, i| a.as_string::<i32>().value(i).into(),
        DataType::LargeUtf8 => |a, i| a.as_string::<i64>().value(i).into(),
        DataType::Utf8View => |a, i| a.as_string_view().value(i).into(),
        DataType::Int8 => |a, i| a.as_primitive::<p::Int8Type>().value(i).into(),
        DataType::Int16 => |a, i| a.as_primitive::<p::Int16Type>().value(i).into(),
        DataType::Int32 => |a, i| a.as_primitive::<p::Int32Type>().value(i).into(),
        DataType::Int64 => |a, i| a.as_primitive::<p::Int64Type>().value(i).into(),
        DataType::UInt8 => |a, i| a.as_primitive::<p::UInt8Type>().value(i).into(),
        DataType::UInt16 => |a, i| a.as_primitive::<p::UInt16Type>().value(i).into(),
        DataType::UInt32 => |a, i| a.as_primitive::<p::UInt32Type>().value(i).into(),
        DataType::UInt64 => |a, i| a.as_primitive::<p::UInt64Type>().value(i).into(),
        DataType::Float64 => |a, i| a.as_primitive::<p::Float64Type>().value(i).into(),
        _ => return None,
    })
}

/// Value `i` of a column as JSON, as `arrow::json` writes it (without slicing the column for
/// the types [`direct_converter`] converts: a lookup's card reads one row of ~80 columns).
pub fn json_value_at(column: &arrow::array::ArrayRef, i: usize) -> serde_json::Value {
    if i >= column.len() || column.is_null(i) {
        return serde_json::Value::Null;
    }
    match direct_converter(column.data_type()) {
        Some(convert) => convert(column.as_ref(), i),
        None => json_values_written(&column.slice(i, 1))
            .pop()
            .unwrap_or_default(),
    }
}

/// A column's values through `arrow::json` (the types [`direct_converter`] does not convert).
fn json_values_written(column: &arrow::array::ArrayRef) -> Vec<serde_json::Value> {
    let nulls = || vec![serde_json::Value::Null; column.len()];
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("v", column.data_type().clone(), true),
    ]));
    let Ok(batch) = RecordBatch::try_new(schema, vec![column.clone()]) else {
        return nulls();
    };
    let mut buf = Vec::new();
    {
        let mut w = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::JsonArray>(&mut buf);
        if w.write(&batch).is_err() || w.finish().is_err() {
            return nulls();
        }
    }
    match serde_json::from_slice::<serde_json::Value>(&buf) {
        Ok(serde_json::Value::Array(rows)) if rows.len() == column.len() => rows
            .into_iter()
            .map(|mut r| {
                r.get_mut("v")
                    .map(serde_json::Value::take)
                    .unwrap_or_default()
            })
            .collect(),
        _ => nulls(),
    }
}

/// A column of a batch cast to strings.
pub fn string_column(
    b: &arrow::array::RecordBatch,
    name: &str,
) -> Result<arrow::array::StringArray> {
    as_strings(b.column(b.schema().index_of(name)?))
}

/// Any column cast to strings (whichever string type the engine chose, or another type as its
/// text).
pub fn as_strings(col: &arrow::array::ArrayRef) -> Result<arrow::array::StringArray> {
    let s = arrow::compute::cast(col, &arrow::datatypes::DataType::Utf8)?;
    Ok(s.as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .expect("cast to Utf8")
        .clone())
}

/// Bytes as lowercase hexadecimal (digests in keys and file names).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first column of a query's rows, as text.
pub async fn strings(ctx: &SessionContext, sql: &str) -> Result<Vec<String>> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let mut out = Vec::new();
    for b in &batches {
        let name = b.schema().field(0).name().clone();
        let col = crate::output::string_column(b, &name)?;
        out.extend(
            (0..b.num_rows())
                .filter(|&i| !col.is_null(i))
                .map(|i| col.value(i).to_string()),
        );
    }
    Ok(out)
}

/// Naive UTC now, the timestamp text state tables keep.
pub fn now_text() -> String {
    chrono::Utc::now()
        .naive_utc()
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string()
}

/// Rows of a query as JSON objects.
pub async fn json_rows(ctx: &SessionContext, sql: &str) -> Result<Vec<serde_json::Value>> {
    let batches: Vec<RecordBatch> = ctx.sql(sql).await?.collect().await?;
    let mut buf = Vec::new();
    {
        let mut w = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::JsonArray>(&mut buf);
        for b in &batches {
            w.write(b)?;
        }
        w.finish()?;
    }
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&buf)
        .map_err(|e| Error::Internal(format!("cannot read rows as JSON: {e}")))
}

/// A batch with its floating-point columns as text people read: `0.9823`, not
/// `0.9822684642438453` (CSV, JSON and Parquet keep every digit).
fn rounded_for_people(batch: &RecordBatch) -> Result<RecordBatch> {
    use arrow::array::{ArrayRef, AsArray, StringArray};
    use arrow::datatypes::{DataType, Field, Float64Type, Schema};
    let floats =
        |t: &DataType| matches!(t, DataType::Float16 | DataType::Float32 | DataType::Float64);
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| floats(f.data_type()))
    {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if !floats(field.data_type()) {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
            continue;
        }
        let values = arrow::compute::cast(column, &DataType::Float64)?;
        let text: StringArray = values
            .as_primitive::<Float64Type>()
            .iter()
            .map(|v| v.map(number_for_people))
            .collect();
        fields.push(Field::new(
            field.name(),
            DataType::Utf8,
            field.is_nullable(),
        ));
        columns.push(std::sync::Arc::new(text));
    }
    Ok(RecordBatch::try_new(
        std::sync::Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// At most four decimals, trailing zeros dropped (one kept: `1.0`, as Arrow prints floats);
/// magnitudes under 0.0001 in scientific notation (`1.235e-6`: an m or u probability would
/// otherwise read as 0).
fn number_for_people(v: f64) -> String {
    if !v.is_finite() || v == 0.0 {
        return format!("{v:?}");
    }
    if v.abs() < 1e-4 {
        return format!("{v:.3e}");
    }
    let text = format!("{v:.4}");
    let trimmed = text.trim_end_matches('0');
    if trimmed.ends_with('.') {
        format!("{trimmed}0")
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod rounding_tests {
    use super::*;

    #[test]
    fn tables_round_fractions_and_other_formats_keep_them() {
        assert_eq!(number_for_people(0.9822684642438453), "0.9823");
        assert_eq!(number_for_people(2.0), "2.0");
        assert_eq!(number_for_people(-12.5), "-12.5");
        assert_eq!(number_for_people(0.0), "0.0");
        assert_eq!(number_for_people(0.00000123456), "1.235e-6");
        assert_eq!(number_for_people(f64::NAN), "NaN");
        let batch = RecordBatch::try_from_iter([
            (
                "p",
                std::sync::Arc::new(arrow::array::Float64Array::from(vec![
                    Some(0.9822684642438453),
                    None,
                ])) as arrow::array::ArrayRef,
            ),
            (
                "n",
                std::sync::Arc::new(arrow::array::Int64Array::from(vec![1, 2])) as _,
            ),
        ])
        .unwrap();
        let mut table = Vec::new();
        write_batches(
            std::slice::from_ref(&batch),
            OutputFormat::Table,
            &mut table,
        )
        .unwrap();
        let table = String::from_utf8(table).unwrap();
        assert!(table.contains("| 0.9823 | 1 |"), "{table}");
        let mut csv = Vec::new();
        write_batches(&[batch], OutputFormat::Csv, &mut csv).unwrap();
        assert!(String::from_utf8(csv)
            .unwrap()
            .contains("0.9822684642438453,1"));
    }
}

#[cfg(test)]
mod json_tests {
    use std::sync::Arc;

    use arrow::array::*;

    use super::*;

    /// The rows as `arrow::json` writes them, parsed back (what `batch_objects` did before
    /// it converted values itself).
    fn written(batch: &RecordBatch) -> serde_json::Value {
        let mut buf = Vec::new();
        let mut w = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::JsonArray>(&mut buf);
        w.write(batch).unwrap();
        w.finish().unwrap();
        serde_json::from_slice(&buf).unwrap()
    }

    #[test]
    fn rows_as_json_are_what_arrow_json_writes() {
        let batch = RecordBatch::try_from_iter([
            (
                "s",
                Arc::new(StringArray::from(vec![Some("Ana \"Z\""), None, Some("")])) as ArrayRef,
            ),
            (
                "ls",
                Arc::new(LargeStringArray::from(vec![None, Some("ü"), Some("x")])) as _,
            ),
            (
                "vs",
                Arc::new(StringViewArray::from(vec![
                    Some("a string longer than twelve bytes"),
                    None,
                    Some("b"),
                ])) as _,
            ),
            (
                "i",
                Arc::new(Int64Array::from(vec![Some(i64::MAX), None, Some(-3)])) as _,
            ),
            (
                "i32",
                Arc::new(Int32Array::from(vec![Some(7), Some(i32::MIN), None])) as _,
            ),
            (
                "u",
                Arc::new(UInt64Array::from(vec![Some(u64::MAX), None, Some(0)])) as _,
            ),
            (
                "f",
                Arc::new(Float64Array::from(vec![
                    Some(0.1),
                    Some(f64::NAN),
                    Some(-1.5e300),
                ])) as _,
            ),
            (
                "f32",
                Arc::new(Float32Array::from(vec![Some(0.1f32), None, Some(2.5)])) as _,
            ),
            (
                "b",
                Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])) as _,
            ),
            (
                "d",
                Arc::new(Date32Array::from(vec![Some(19_000), None, Some(-1)])) as _,
            ),
            (
                "ts",
                Arc::new(
                    TimestampMicrosecondArray::from(vec![
                        Some(1_700_000_000_123_456),
                        None,
                        Some(0),
                    ])
                    .with_timezone("UTC"),
                ) as _,
            ),
            (
                "ts_naive",
                Arc::new(TimestampMicrosecondArray::from(vec![
                    None,
                    Some(1),
                    Some(-1),
                ])) as _,
            ),
            (
                "ts_ns",
                Arc::new(TimestampNanosecondArray::from(vec![
                    Some(1_700_000_000_123_456_789),
                    None,
                    Some(-1),
                ])) as _,
            ),
            (
                "dec",
                Arc::new(
                    Decimal128Array::from(vec![Some(12345), None, Some(-5)])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ) as _,
            ),
            ("n", Arc::new(NullArray::new(3)) as _),
        ])
        .unwrap();
        let ours = serde_json::Value::Array(
            batch_objects(&batch)
                .into_iter()
                .map(serde_json::Value::Object)
                .collect(),
        );
        assert_eq!(ours, written(&batch));
        assert_eq!(
            serde_json::to_string(&ours).unwrap(),
            serde_json::to_string(&written(&batch)).unwrap()
        );
        // One row of a batch, as the card reads it.
        for (i, row) in batch_objects(&batch).into_iter().enumerate() {
            assert_eq!(row_object(&batch, i), row, "row {i}");
        }
        let one = row_object(&batch, 2);
        assert_eq!(one["s"], "");
        assert_eq!(one["i"], -3);
        assert_eq!(one["d"], written(&batch)[2]["d"]);
        assert!(one["n"].is_null());
        assert_eq!(batch_objects(&batch.slice(0, 0)).len(), 0);
    }
}
