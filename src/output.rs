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
    /// Aligned text table, for people.
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
            let text = pretty_format_batches(batches)?;
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
    let col = b.column(b.schema().index_of(name)?);
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
