//! File destinations: CSV, Parquet or JSON lines on a local path or an object store.
//!
//! Full mode replaces one file (atomically on local disks, one PUT on object stores).
//! Incremental mode writes into a folder one file of changed rows (with a `_change` column)
//! and one `.deletes.csv` of keys that left or were erased, per export. Erasures in full mode
//! leave a `.tombstones.csv` next to the file, so whoever copied the old file knows what to drop.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{Field, Schema};

use super::config::{file_format, ExportMode, FileDestination, FileFormat};
use super::{filter_rows, ops_by_key, Change, Plan, Sent};
use crate::error::{Error, Result};

pub async fn send(dest: &FileDestination, plan: &Plan, root: &Path) -> Sent {
    match send_inner(dest, plan, root).await {
        Ok(sent) => sent,
        Err(e) => Sent {
            error: Some(e.to_string()),
            ..Default::default()
        },
    }
}

async fn send_inner(
    dest: &FileDestination,
    plan: &Plan,
    root: &Path,
) -> std::result::Result<Sent, super::SendError> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ").to_string();
    let location = crate::sources::location::expand_env(&dest.path)?;
    let mut sent = Sent::default();
    match plan.mode {
        ExportMode::Full => {
            let format = file_format(dest)?;
            let bytes = encode(&plan.batches, format, Some(plan.schema.clone()))?;
            sent.bytes += bytes.len() as u64;
            put(&location, root, bytes).await?;
            sent.written.push(location.clone());
            let erased: Vec<&super::Op> = plan
                .ops
                .iter()
                .filter(|o| o.change == Change::Erased)
                .collect();
            if !erased.is_empty() {
                let target = format!("{}.tombstones-{stamp}.csv", strip_ext(&location));
                let bytes = deletes_csv(&plan.key, &erased)?;
                sent.bytes += bytes.len() as u64;
                put(&target, root, bytes).await?;
                sent.written.push(target);
            }
            sent.confirmed = (0..plan.ops.len()).collect();
        }
        ExportMode::Incremental => {
            let format = dest.format.unwrap_or(FileFormat::Csv);
            let folder = location.trim_end_matches('/');
            let index = ops_by_key(plan);
            let upserts = filter_rows(&plan.batches, &plan.key, &|k| {
                index
                    .get(k)
                    .is_some_and(|&i| !plan.ops[i].change.is_delete())
            })?;
            if !upserts.is_empty() {
                let with_change = add_change_column(&upserts, &plan.key, plan)?;
                let bytes = encode(
                    &with_change,
                    format,
                    with_change.first().map(|b| b.schema()),
                )?;
                let target = format!("{folder}/{}-{stamp}.{}", plan.name, format.extension());
                sent.bytes += bytes.len() as u64;
                put(&target, root, bytes).await?;
                sent.written.push(target);
            }
            let deletes: Vec<&super::Op> =
                plan.ops.iter().filter(|o| o.change.is_delete()).collect();
            if !deletes.is_empty() {
                let target = format!("{folder}/{}-{stamp}.deletes.csv", plan.name);
                let bytes = deletes_csv(&plan.key, &deletes)?;
                sent.bytes += bytes.len() as u64;
                put(&target, root, bytes).await?;
                sent.written.push(target);
            }
            sent.confirmed = (0..plan.ops.len()).collect();
        }
    }
    Ok(sent)
}

fn strip_ext(location: &str) -> &str {
    match location.rsplit_once('.') {
        Some((stem, ext)) if !ext.contains('/') => stem,
        _ => location,
    }
}

fn add_change_column(batches: &[RecordBatch], key: &str, plan: &Plan) -> Result<Vec<RecordBatch>> {
    let index = ops_by_key(plan);
    let mut out = Vec::new();
    for b in batches {
        let keys = crate::output::string_column(b, key)?;
        let changes: StringArray = (0..b.num_rows())
            .map(|i| {
                index
                    .get(keys.value(i))
                    .map(|&j| plan.ops[j].change.as_str())
            })
            .collect();
        let mut fields: Vec<Field> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(
            "_change",
            arrow::datatypes::DataType::Utf8,
            true,
        ));
        let mut cols: Vec<ArrayRef> = b.columns().to_vec();
        cols.push(Arc::new(changes));
        out.push(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?);
    }
    Ok(out)
}

fn deletes_csv(key: &str, ops: &[&super::Op]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let now = chrono::Utc::now().to_rfc3339();
    let io = |e: csv::Error| Error::Internal(format!("cannot write CSV: {e}"));
    w.write_record([key, "_change", "_at"]).map_err(io)?;
    for o in ops {
        w.write_record([o.key.as_str(), o.change.as_str(), now.as_str()])
            .map_err(io)?;
    }
    w.into_inner()
        .map_err(|e| Error::Internal(format!("cannot write CSV: {e}")))
}

/// Encode batches; an empty selection still gets a header (CSV) or schema (Parquet).
fn encode(
    batches: &[RecordBatch],
    format: FileFormat,
    schema: Option<arrow::datatypes::SchemaRef>,
) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    match format {
        FileFormat::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut buf);
            for b in batches {
                w.write(b)?;
            }
        }
        FileFormat::Json => {
            let mut w = arrow::json::LineDelimitedWriter::new(&mut buf);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
        FileFormat::Parquet => {
            let schema = schema.unwrap_or_else(|| Arc::new(Schema::empty()));
            let mut w = datafusion::parquet::arrow::ArrowWriter::try_new(
                &mut buf,
                schema,
                Some(crate::workspace::writer_properties()),
            )?;
            for b in batches {
                w.write(b)?;
            }
            w.close()?;
        }
    }
    Ok(buf)
}

/// Write `bytes` to a local path (relative to the project) or an object-store URL.
async fn put(location: &str, root: &Path, bytes: Vec<u8>) -> Result<()> {
    if crate::sources::location::is_url(location) && !location.starts_with("file://") {
        let url = url::Url::parse(location).map_err(|e| Error::Network {
            what: format!("bad URL {location}"),
            source: Box::new(e),
        })?;
        let at = |e: Box<dyn std::error::Error + Send + Sync>| Error::Network {
            what: location.to_string(),
            source: e,
        };
        let store =
            crate::sources::location::object_store_for(&url).map_err(|e| at(Box::new(e)))?;
        let path =
            object_store::path::Path::from_url_path(url.path()).map_err(|e| at(Box::new(e)))?;
        store
            .put_opts(&path, bytes::Bytes::from(bytes).into(), Default::default())
            .await
            .map_err(|e| Error::Network {
                what: format!("cannot write {location}"),
                source: Box::new(e),
            })?;
        return Ok(());
    }
    let path = root.join(location.trim_start_matches("file://"));
    crate::workspace::write_atomic(&path, &bytes)
}
