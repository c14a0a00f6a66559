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

/// One profile row as a JSON object, nulls kept.
pub fn row_object(
    batch: &arrow::record_batch::RecordBatch,
    row: usize,
) -> serde_json::Map<String, serde_json::Value> {
    let mut rows = batch_objects(&batch.slice(row, 1));
    rows.pop().unwrap_or_default()
}

/// Every row of a batch as JSON objects.
pub fn batch_objects(
    batch: &arrow::record_batch::RecordBatch,
) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let mut buf = Vec::new();
    {
        let mut w = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::JsonArray>(&mut buf);
        if w.write(batch).is_err() || w.finish().is_err() {
            return Vec::new();
        }
    }
    match serde_json::from_slice::<serde_json::Value>(&buf) {
        Ok(serde_json::Value::Array(rows)) => rows
            .into_iter()
            .filter_map(|r| match r {
                serde_json::Value::Object(o) => Some(o),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
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
