//! Apache Iceberg tables: the current snapshot, read from the table's own metadata. The Rust
//! `iceberg` crate pins an older arrow than ours, so this reads the metadata itself — the
//! table metadata JSON, the manifest list and manifests (Avro, with `apache-avro`) — and the
//! Parquet data files with the same reader as Parquet sources.
//!
//! Columns are matched by Iceberg field id, not by name: a renamed column keeps its values, a
//! column added later is NULL in older files, a dropped one is gone. Deletes written as new data
//! files (copy-on-write, what pyiceberg writes) need nothing more: the current snapshot lists
//! only live files. Position and equality delete files (merge-on-read) stop the run with a
//! clear error instead of loading rows that were deleted.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::types::Value as Avro;
use arrow::array::{new_null_array, ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value as Json;

use super::location::{is_url, resolve_files};
use super::RawChunk;
use crate::error::{Error, Result};

/// A live file of the current snapshot.
struct DataFile {
    path: String,
    content: i64,
    format: String,
}

/// Read the current snapshot of the table at `location`: a table root (holding `metadata/`)
/// or one `*.metadata.json` file (what a catalog points at). Blocking: call from a blocking
/// task. Returns the table's schema and the snapshot id.
pub fn read_iceberg(
    source: &str,
    location: &str,
    root: &std::path::Path,
    runtime: &tokio::runtime::Handle,
    emit: &mut dyn FnMut(RawChunk) -> Result<()>,
) -> Result<(SchemaRef, i64)> {
    let err = |m: String| Error::source(source, location, m);
    let read = |uri: &str| -> Result<Bytes> {
        runtime
            .block_on(read_uri(uri, root))
            .map_err(|m| err(format!("{uri}: {m}")))
    };
    let metadata_file = runtime
        .block_on(current_metadata(location, root))
        .map_err(err)?;
    let metadata: Json = serde_json::from_slice(&read(&metadata_file)?)
        .map_err(|e| err(format!("{metadata_file}: not table metadata JSON: {e}")))?;
    let schema_id = metadata["current-schema-id"].as_i64().unwrap_or(0);
    let table_schema = metadata["schemas"]
        .as_array()
        .and_then(|s| {
            s.iter()
                .find(|s| s["schema-id"].as_i64() == Some(schema_id))
        })
        .or_else(|| metadata.get("schema"))
        .ok_or_else(|| err(format!("{metadata_file}: no current schema")))?;
    let columns: Vec<(i64, Field)> = table_schema["fields"]
        .as_array()
        .map(|fields| {
            fields
                .iter()
                .map(|f| {
                    let name = f["name"].as_str().unwrap_or_default();
                    let data_type = arrow_type(&f["type"]);
                    (
                        f["id"].as_i64().unwrap_or(-1),
                        Field::new(name, data_type, true),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let schema: SchemaRef = Arc::new(Schema::new(
        columns.iter().map(|(_, f)| f.clone()).collect::<Vec<_>>(),
    ));
    let snapshot_id = metadata["current-snapshot-id"].as_i64().unwrap_or(-1);
    let snapshot = metadata["snapshots"].as_array().and_then(|s| {
        s.iter()
            .find(|s| s["snapshot-id"].as_i64() == Some(snapshot_id))
    });
    let Some(snapshot) = snapshot else {
        // A table created and never written: no rows.
        super::emit_numbered(Arc::from(location), &schema, std::iter::empty(), emit)?;
        return Ok((schema, snapshot_id));
    };
    let manifest_list = snapshot["manifest-list"]
        .as_str()
        .ok_or_else(|| err(format!("snapshot {snapshot_id} has no manifest list (a v1 table with inline manifests is not read)")))?;
    let mut files = Vec::new();
    for manifest in
        avro_records(&read(manifest_list)?).map_err(|m| err(format!("{manifest_list}: {m}")))?
    {
        let path = string_field(&manifest, "manifest_path")
            .ok_or_else(|| err(format!("{manifest_list}: a manifest without manifest_path")))?;
        for entry in avro_records(&read(&path)?).map_err(|m| err(format!("{path}: {m}")))? {
            // 2 = DELETED: the file left the table in this snapshot.
            if int_field(&entry, "status") == Some(2) {
                continue;
            }
            let Some(Avro::Record(file)) = field(&entry, "data_file").map(unwrap_union) else {
                return Err(err(format!("{path}: a manifest entry without data_file")));
            };
            let file = Avro::Record(file.clone());
            files.push(DataFile {
                path: string_field(&file, "file_path").unwrap_or_default(),
                content: int_field(&file, "content").unwrap_or(0),
                format: string_field(&file, "file_format").unwrap_or_default(),
            });
        }
    }
    if let Some(d) = files.iter().find(|f| f.content != 0) {
        let kind = if d.content == 1 {
            "position"
        } else {
            "equality"
        };
        return Err(err(format!(
            "snapshot {snapshot_id} has {kind} delete files ({}); merge-on-read deletes are not read yet — compact the table (rewrite_data_files / rewrite_position_delete_files) so the snapshot holds only data files",
            d.path
        )));
    }
    let mut any = false;
    for f in &files {
        if !f.format.eq_ignore_ascii_case("parquet") {
            return Err(err(format!(
                "{}: {} data files are not read, only Parquet",
                f.path, f.format
            )));
        }
        let data = read(&f.path)?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(data)
            .map_err(|e| err(format!("{}: not a readable Parquet file: {e}", f.path)))?;
        // Parquet columns by the Iceberg field id they carry.
        let by_id: HashMap<i64, usize> = builder
            .schema()
            .fields()
            .iter()
            .enumerate()
            .filter_map(|(i, fl)| {
                fl.metadata()
                    .get("PARQUET:field_id")
                    .and_then(|v| v.parse().ok())
                    .map(|id| (id, i))
            })
            .collect();
        let reader = builder
            .with_batch_size(65_536)
            .build()
            .map_err(|e| err(format!("{}: {e}", f.path)))?;
        let shown: Arc<str> = Arc::from(f.path.as_str());
        let mut next_row = 1u64;
        for batch in reader {
            let batch = batch.map_err(|e| err(format!("{}: {e}", f.path)))?;
            let n = batch.num_rows();
            let arrays = columns
                .iter()
                .map(|(id, field)| match by_id.get(id) {
                    Some(&i) => conform(batch.column(i), field.data_type()),
                    None => Ok(new_null_array(field.data_type(), n)),
                })
                .collect::<Result<Vec<ArrayRef>>>()
                .map_err(|e| err(format!("{}: {e}", f.path)))?;
            let out = RecordBatch::try_new_with_options(
                schema.clone(),
                arrays,
                &arrow::array::RecordBatchOptions::new().with_row_count(Some(n)),
            )?;
            emit(RawChunk {
                file: shown.clone(),
                rows: (next_row..next_row + n as u64).collect(),
                batch: out,
            })?;
            next_row += n as u64;
            any = true;
        }
    }
    if !any {
        super::emit_numbered(Arc::from(location), &schema, std::iter::empty(), emit)?;
    }
    Ok((schema, snapshot_id))
}

/// A file column as the table's current type: a promoted type (`int` → `long`, `float` →
/// `double`), a timestamp with zone, a nested value as text.
fn conform(array: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    if array.data_type() == to {
        return Ok(array.clone());
    }
    Ok(arrow::compute::cast(array, to)?)
}

/// The Arrow type of an Iceberg type: timestamps with zone as UTC without one (as PostgreSQL
/// `timestamptz` is read); nested types (struct, list, map) as their text.
fn arrow_type(t: &Json) -> DataType {
    let Some(name) = t.as_str() else {
        return DataType::Utf8;
    };
    match name {
        "boolean" => DataType::Boolean,
        "int" => DataType::Int32,
        "long" => DataType::Int64,
        "float" => DataType::Float32,
        "double" => DataType::Float64,
        "date" => DataType::Date32,
        "time" => DataType::Time64(TimeUnit::Microsecond),
        "timestamp" | "timestamptz" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "timestamp_ns" | "timestamptz_ns" => DataType::Timestamp(TimeUnit::Nanosecond, None),
        "string" | "uuid" => DataType::Utf8,
        "binary" => DataType::Binary,
        d if d.starts_with("decimal(") => {
            let inner = d.trim_start_matches("decimal(").trim_end_matches(')');
            let mut parts = inner
                .split(',')
                .map(|p| p.trim().parse::<i64>().unwrap_or(0));
            let (p, s) = (parts.next().unwrap_or(38), parts.next().unwrap_or(0));
            DataType::Decimal128(p as u8, s as i8)
        }
        _ => DataType::Utf8,
    }
}

/// The metadata file of the table's current version: `location` itself when it names a
/// `.metadata.json`, else the one `metadata/version-hint.text` names, else the highest version
/// in `metadata/`.
async fn current_metadata(
    location: &str,
    root: &std::path::Path,
) -> std::result::Result<String, String> {
    let trimmed = location.trim_end_matches('/');
    if trimmed.ends_with(".metadata.json") {
        return Ok(trimmed.to_string());
    }
    let dir = format!("{trimmed}/metadata");
    if let Ok(hint) = read_uri(&format!("{dir}/version-hint.text"), root).await {
        let v = String::from_utf8_lossy(&hint).trim().to_string();
        return Ok(format!("{dir}/v{v}.metadata.json"));
    }
    let files = resolve_files(&format!("{dir}/*.metadata.json"), root)
        .await
        .map_err(|m| format!("not an Iceberg table (no metadata/*.metadata.json): {m}"))?;
    let version = |display: &str| -> i64 {
        let name = display.rsplit('/').next().unwrap_or(display);
        let digits: String = name
            .trim_start_matches('v')
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        digits.parse().unwrap_or(-1)
    };
    let newest = files
        .iter()
        .max_by_key(|f| version(&f.display))
        .ok_or_else(|| "not an Iceberg table: no metadata/*.metadata.json".to_string())?;
    Ok(
        if is_url(location) || std::path::Path::new(location).is_absolute() {
            format!(
                "{dir}/{}",
                newest.display.rsplit('/').next().unwrap_or_default()
            )
        } else {
            newest.display.clone()
        },
    )
}

/// A file named by the table's metadata: `file:` URIs and paths are local (relative ones to
/// the project), other URLs go through the object stores.
async fn read_uri(uri: &str, root: &std::path::Path) -> std::result::Result<Bytes, String> {
    let local = uri
        .strip_prefix("file://")
        .or_else(|| uri.strip_prefix("file:"))
        .unwrap_or(uri);
    let files = resolve_files(local, root).await?;
    match files.first() {
        Some(f) => f.read().await,
        None => Err("file not found".into()),
    }
}

fn avro_records(data: &[u8]) -> std::result::Result<Vec<Avro>, String> {
    let reader = apache_avro::Reader::new(data).map_err(|e| format!("not an Avro file: {e}"))?;
    reader
        .map(|r| r.map_err(|e| format!("bad Avro record: {e}")))
        .collect()
}

fn unwrap_union(v: &Avro) -> &Avro {
    match v {
        Avro::Union(_, inner) => inner,
        other => other,
    }
}

fn field<'a>(record: &'a Avro, name: &str) -> Option<&'a Avro> {
    match record {
        Avro::Record(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
        _ => None,
    }
}

fn int_field(record: &Avro, name: &str) -> Option<i64> {
    match field(record, name).map(unwrap_union)? {
        Avro::Int(i) => Some(i64::from(*i)),
        Avro::Long(l) => Some(*l),
        _ => None,
    }
}

fn string_field(record: &Avro, name: &str) -> Option<String> {
    match field(record, name).map(unwrap_union)? {
        Avro::String(s) => Some(s.clone()),
        Avro::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}
