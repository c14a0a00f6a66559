//! Apache Iceberg tables: the current snapshot, read from the table's own metadata. The Rust
//! `iceberg` crate pins an older arrow than ours, so this reads the metadata itself — the
//! table metadata JSON, the manifest list and manifests (Avro, with `apache-avro`) — and the
//! Parquet data files with the same reader as Parquet sources.
//!
//! Columns are matched by Iceberg field id, not by name: a renamed column keeps its values, a
//! column added later is NULL in older files, a dropped one is gone. Deletes written as new data
//! files (copy-on-write, what pyiceberg writes) need nothing more: the current snapshot lists
//! only live files. Position and equality delete files (merge-on-read, what Spark, Flink and
//! Trino write for row-level deletes and upserts) are read and applied; Puffin deletion
//! vectors (format v3) stop the run with a clear error instead of loading deleted rows.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use apache_avro::types::Value as Avro;
use arrow::array::{new_null_array, Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::row::{RowConverter, Rows, SortField};
use bytes::Bytes;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value as Json;

use super::location::{is_url, resolve_files};
use super::RawChunk;
use crate::error::{Error, Result};

/// A live file of the current snapshot, data or deletes, with what decides which deletes
/// apply to which data files: the data sequence number and the partition.
struct LiveFile {
    path: String,
    /// 0 data, 1 position deletes, 2 equality deletes.
    content: i64,
    format: String,
    /// The data sequence number (0 in v1 tables).
    sequence: i64,
    spec_id: i64,
    /// The partition tuple as text, compared for equality only; `None` when the spec is
    /// unpartitioned (an unpartitioned delete applies to every data file).
    partition: Option<String>,
    equality_ids: Vec<i64>,
}

/// Read the current snapshot of the table at `location`: a table root (holding `metadata/`)
/// or one `*.metadata.json` file (what a catalog points at); with `catalog_table`, `location`
/// is a SQL catalog database that names the table's metadata file. Blocking: call from a blocking
/// task. Returns the table's schema and the snapshot id.
///
/// Merge-on-read deletes are applied as the Iceberg spec says: a position delete removes row
/// `pos` of the data file it names when the data file's sequence number is not above the
/// delete file's; an equality delete removes every row whose equality columns equal one of
/// its rows (NULL equal to NULL) in data files of the same partition (any, for an
/// unpartitioned delete) with a sequence number strictly below the delete file's — so a row
/// written again after its delete stays.
pub fn read_iceberg(
    source: &str,
    location: &str,
    catalog_table: Option<&str>,
    root: &std::path::Path,
    runtime: &tokio::runtime::Handle,
    emit: &mut dyn FnMut(RawChunk) -> Result<()>,
) -> Result<(SchemaRef, i64)> {
    let shown = super::location::redact(location);
    let err = |m: String| Error::source(source, &shown, m);
    let read = |uri: &str| -> Result<Bytes> {
        runtime
            .block_on(read_uri(uri, root))
            .map_err(|m| err(format!("{uri}: {m}")))
    };
    let metadata_file = match catalog_table {
        Some(table) => runtime
            .block_on(super::iceberg_catalog::metadata_location(
                location, table, root,
            ))
            .map_err(|e| err(e.0))?,
        None => runtime
            .block_on(current_metadata(location, root))
            .map_err(|e| err(e.0))?,
    };
    let metadata: Json = serde_json::from_slice(&read(&metadata_file)?)
        .map_err(|e| err(format!("{metadata_file}: not table metadata JSON: {e}")))?;
    let columns = current_columns(&metadata, &metadata_file, &err)?;
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
        super::emit_numbered(Arc::from(shown.as_str()), &schema, std::iter::empty(), emit)?;
        return Ok((schema, snapshot_id));
    };
    let manifest_list = snapshot["manifest-list"]
        .as_str()
        .ok_or_else(|| err(format!("snapshot {snapshot_id} has no manifest list (a v1 table with inline manifests is not read)")))?;
    let files = live_files(manifest_list, &unpartitioned_specs(&metadata), &read, &err)?;
    check_parquet_only(&files, &err)?;
    let deletes = Deletes::load(&files, &columns, &read, &err)?;
    let mut scan = DataScan {
        columns: &columns,
        schema: &schema,
        deletes: &deletes,
        any: false,
        by_position: 0,
        by_equality: 0,
    };
    for f in files.iter().filter(|f| f.content == 0) {
        scan.read_data_file(f, &read, &err, emit)?;
    }
    let (by_position, by_equality) = (scan.by_position, scan.by_equality);
    if by_position + by_equality > 0 {
        tracing::info!(
            source,
            snapshot_id,
            by_position,
            by_equality,
            "iceberg: rows removed by merge-on-read delete files"
        );
    }
    if !scan.any {
        super::emit_numbered(Arc::from(shown.as_str()), &schema, std::iter::empty(), emit)?;
    }
    Ok((schema, snapshot_id))
}

/// The columns of the table's current schema, with their Iceberg field ids.
fn current_columns(
    metadata: &Json,
    metadata_file: &str,
    err: &dyn Fn(String) -> Error,
) -> Result<Vec<(i64, Field)>> {
    let schema_id = metadata["current-schema-id"].as_i64().unwrap_or(0);
    let table_schema = metadata["schemas"]
        .as_array()
        .and_then(|s| {
            s.iter()
                .find(|s| s["schema-id"].as_i64() == Some(schema_id))
        })
        .or_else(|| metadata.get("schema"))
        .ok_or_else(|| err(format!("{metadata_file}: no current schema")))?;
    Ok(table_schema["fields"]
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
        .unwrap_or_default())
}

/// The live files (data and deletes) of the snapshot whose manifest list is `manifest_list`.
fn live_files(
    manifest_list: &str,
    unpartitioned_specs: &[i64],
    read: &dyn Fn(&str) -> Result<Bytes>,
    err: &dyn Fn(String) -> Error,
) -> Result<Vec<LiveFile>> {
    let mut files = Vec::new();
    for manifest in
        avro_records(&read(manifest_list)?).map_err(|m| err(format!("{manifest_list}: {m}")))?
    {
        let path = string_field(&manifest, "manifest_path")
            .ok_or_else(|| err(format!("{manifest_list}: a manifest without manifest_path")))?;
        // An ADDED entry without its own sequence number inherits the manifest's.
        let manifest_sequence = int_field(&manifest, "sequence_number").unwrap_or(0);
        let spec_id = int_field(&manifest, "partition_spec_id").unwrap_or(0);
        for entry in avro_records(&read(&path)?).map_err(|m| err(format!("{path}: {m}")))? {
            // 2 = DELETED: the file left the table in this snapshot.
            if int_field(&entry, "status") == Some(2) {
                continue;
            }
            let Some(Avro::Record(file)) = field(&entry, "data_file").map(unwrap_union) else {
                return Err(err(format!("{path}: a manifest entry without data_file")));
            };
            let file = Avro::Record(file.clone());
            let partition = match field(&file, "partition").map(unwrap_union) {
                Some(Avro::Record(values)) if !values.is_empty() => Some(format!("{values:?}")),
                _ => None,
            }
            .filter(|_| !unpartitioned_specs.contains(&spec_id));
            let equality_ids = match field(&file, "equality_ids").map(unwrap_union) {
                Some(Avro::Array(ids)) => ids
                    .iter()
                    .filter_map(|v| match v {
                        Avro::Int(i) => Some(i64::from(*i)),
                        Avro::Long(l) => Some(*l),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            files.push(LiveFile {
                path: string_field(&file, "file_path").unwrap_or_default(),
                content: int_field(&file, "content").unwrap_or(0),
                format: string_field(&file, "file_format").unwrap_or_default(),
                sequence: int_field(&entry, "sequence_number").unwrap_or(manifest_sequence),
                spec_id,
                partition,
                equality_ids,
            });
        }
    }
    Ok(files)
}

/// Only Parquet files are read, data or deletes.
fn check_parquet_only(files: &[LiveFile], err: &dyn Fn(String) -> Error) -> Result<()> {
    for f in files {
        if !f.format.eq_ignore_ascii_case("parquet") {
            let what = match f.content {
                0 => "data files",
                1 => "position delete files (deletion vectors)",
                _ => "equality delete files",
            };
            return Err(err(format!(
                "{}: {} {what} are not read, only Parquet",
                f.path, f.format
            )));
        }
    }
    Ok(())
}

/// Reading the snapshot's data files as the table schema, with the deletes applied: counts
/// the rows the deletes removed and whether any batch was emitted.
struct DataScan<'a> {
    columns: &'a [(i64, Field)],
    schema: &'a SchemaRef,
    deletes: &'a Deletes,
    any: bool,
    by_position: u64,
    by_equality: u64,
}

impl DataScan<'_> {
    fn read_data_file(
        &mut self,
        f: &LiveFile,
        read: &dyn Fn(&str) -> Result<Bytes>,
        err: &dyn Fn(String) -> Error,
        emit: &mut dyn FnMut(RawChunk) -> Result<()>,
    ) -> Result<()> {
        let data = read(&f.path)?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(data)
            .map_err(|e| err(format!("{}: not a readable Parquet file: {e}", f.path)))?;
        let by_id = parquet_field_ids(builder.schema());
        let reader = builder
            .with_batch_size(65_536)
            .build()
            .map_err(|e| err(format!("{}: {e}", f.path)))?;
        let positions = self.deletes.positions_for(f);
        let equalities = self.deletes.equalities_for(f);
        let shown: Arc<str> = Arc::from(f.path.as_str());
        let mut next_row = 1u64;
        for batch in reader {
            let batch = batch.map_err(|e| err(format!("{}: {e}", f.path)))?;
            let n = batch.num_rows();
            let arrays = self
                .columns
                .iter()
                .map(|(id, field)| match by_id.get(id) {
                    Some(&i) => conform(batch.column(i), field.data_type()),
                    None => Ok(new_null_array(field.data_type(), n)),
                })
                .collect::<Result<Vec<ArrayRef>>>()
                .map_err(|e| err(format!("{}: {e}", f.path)))?;
            let mut out = RecordBatch::try_new_with_options(
                self.schema.clone(),
                arrays,
                &arrow::array::RecordBatchOptions::new().with_row_count(Some(n)),
            )?;
            // Row numbers are 1-based ordinals in the data file; positions are 0-based.
            let mut rows: Vec<u64> = (next_row..next_row + n as u64).collect();
            next_row += n as u64;
            let keep = self
                .undeleted_rows(&out, &rows, positions.as_ref(), &equalities)
                .map_err(|e| err(format!("{}: {e}", f.path)))?;
            if keep.iter().any(|k| !k) {
                out = arrow::compute::filter_record_batch(
                    &out,
                    &arrow::array::BooleanArray::from(keep.clone()),
                )?;
                let mut kept = keep.iter();
                rows.retain(|_| *kept.next().unwrap_or(&true));
            }
            emit(RawChunk {
                file: shown.clone(),
                rows,
                batch: out,
            })?;
            self.any = true;
        }
        Ok(())
    }

    /// Which rows of a data file's batch no delete removes (`rows` are their 1-based
    /// ordinals in the file), counting those removed.
    fn undeleted_rows(
        &mut self,
        batch: &RecordBatch,
        rows: &[u64],
        positions: Option<&HashSet<u64>>,
        equalities: &[&EqualityDelete],
    ) -> Result<Vec<bool>> {
        let mut keep = vec![true; rows.len()];
        if let Some(positions) = positions {
            for (k, row) in keep.iter_mut().zip(rows) {
                if positions.contains(&(row - 1)) {
                    *k = false;
                    self.by_position += 1;
                }
            }
        }
        for eq in equalities {
            let keys = eq.key_columns(batch, self.columns)?;
            for (i, k) in keep.iter_mut().enumerate() {
                if *k && eq.keys.contains(keys.row(i).as_ref()) {
                    *k = false;
                    self.by_equality += 1;
                }
            }
        }
        Ok(keep)
    }
}

/// Parquet columns by the Iceberg field id they carry.
fn parquet_field_ids(schema: &Schema) -> HashMap<i64, usize> {
    schema
        .fields()
        .iter()
        .enumerate()
        .filter_map(|(i, fl)| {
            fl.metadata()
                .get("PARQUET:field_id")
                .and_then(|v| v.parse().ok())
                .map(|id| (id, i))
        })
        .collect()
}

/// The ids of the table's partition specs without fields.
fn unpartitioned_specs(metadata: &Json) -> Vec<i64> {
    let mut specs: Vec<i64> = metadata["partition-specs"]
        .as_array()
        .map(|specs| {
            specs
                .iter()
                .filter(|s| s["fields"].as_array().is_none_or(|f| f.is_empty()))
                .filter_map(|s| s["spec-id"].as_i64())
                .collect()
        })
        .unwrap_or_default();
    // v1 metadata may carry only the single `partition-spec`.
    if metadata.get("partition-specs").is_none()
        && metadata["partition-spec"]
            .as_array()
            .is_none_or(|f| f.is_empty())
    {
        specs.push(metadata["default-spec-id"].as_i64().unwrap_or(0));
    }
    specs
}

/// The snapshot's delete files, read once.
struct Deletes {
    /// Data file path → (0-based position, sequence number of the delete file).
    positions: HashMap<String, Vec<(u64, i64)>>,
    equalities: Vec<EqualityDelete>,
}

/// One equality delete file: the rows it deletes, as row-format keys of its columns.
struct EqualityDelete {
    ids: Vec<i64>,
    sequence: i64,
    spec_id: i64,
    partition: Option<String>,
    converter: RowConverter,
    keys: HashSet<Box<[u8]>>,
}

/// Iceberg's reserved field ids of a position delete file's columns.
const DELETE_FILE_PATH: i64 = 2_147_483_546;
const DELETE_POS: i64 = 2_147_483_545;

impl Deletes {
    fn load(
        files: &[LiveFile],
        columns: &[(i64, Field)],
        read: &dyn Fn(&str) -> Result<Bytes>,
        err: &dyn Fn(String) -> Error,
    ) -> Result<Deletes> {
        let mut deletes = Deletes {
            positions: HashMap::new(),
            equalities: Vec::new(),
        };
        let wanted: HashSet<&str> = files
            .iter()
            .filter(|f| f.content == 0)
            .map(|f| f.path.as_str())
            .collect();
        for f in files.iter().filter(|f| f.content == 1) {
            let builder = ParquetRecordBatchReaderBuilder::try_new(read(&f.path)?)
                .map_err(|e| err(format!("{}: not a readable Parquet file: {e}", f.path)))?;
            let ids = parquet_field_ids(builder.schema());
            let by_name = |name: &str| builder.schema().index_of(name).ok();
            let (Some(path_col), Some(pos_col)) = (
                ids.get(&DELETE_FILE_PATH)
                    .copied()
                    .or_else(|| by_name("file_path")),
                ids.get(&DELETE_POS).copied().or_else(|| by_name("pos")),
            ) else {
                return Err(err(format!(
                    "{}: a position delete file without file_path and pos columns",
                    f.path
                )));
            };
            for batch in builder.build().map_err(|e| err(e.to_string()))? {
                let batch = batch.map_err(|e| err(format!("{}: {e}", f.path)))?;
                let paths = arrow::compute::cast(batch.column(path_col), &DataType::Utf8)?;
                let paths = paths.as_string::<i32>();
                let pos = arrow::compute::cast(batch.column(pos_col), &DataType::Int64)?;
                let pos = pos.as_primitive::<arrow::datatypes::Int64Type>();
                for i in 0..batch.num_rows() {
                    if paths.is_null(i) || pos.is_null(i) || !wanted.contains(paths.value(i)) {
                        continue;
                    }
                    deletes
                        .positions
                        .entry(paths.value(i).to_string())
                        .or_default()
                        .push((pos.value(i) as u64, f.sequence));
                }
            }
        }
        for f in files.iter().filter(|f| f.content == 2) {
            let types = f
                .equality_ids
                .iter()
                .map(|id| {
                    columns
                        .iter()
                        .find(|(c, _)| c == id)
                        .map(|(_, field)| field.data_type().clone())
                        .ok_or_else(|| {
                            err(format!(
                                "{}: equality delete on field id {id}, not in the current schema",
                                f.path
                            ))
                        })
                })
                .collect::<Result<Vec<_>>>()?;
            if types.is_empty() {
                return Err(err(format!(
                    "{}: an equality delete file without equality_ids",
                    f.path
                )));
            }
            let converter =
                RowConverter::new(types.iter().map(|t| SortField::new(t.clone())).collect())?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(read(&f.path)?)
                .map_err(|e| err(format!("{}: not a readable Parquet file: {e}", f.path)))?;
            let in_file = parquet_field_ids(builder.schema());
            let at = f
                .equality_ids
                .iter()
                .map(|id| {
                    in_file.get(id).copied().ok_or_else(|| {
                        err(format!(
                            "{}: equality delete file lacks the column of field id {id}",
                            f.path
                        ))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let mut keys = HashSet::new();
            for batch in builder.build().map_err(|e| err(e.to_string()))? {
                let batch = batch.map_err(|e| err(format!("{}: {e}", f.path)))?;
                let cols = at
                    .iter()
                    .zip(&types)
                    .map(|(&i, t)| conform(batch.column(i), t))
                    .collect::<Result<Vec<_>>>()?;
                let rows = converter.convert_columns(&cols)?;
                keys.extend(rows.iter().map(|r| Box::<[u8]>::from(r.as_ref())));
            }
            deletes.equalities.push(EqualityDelete {
                ids: f.equality_ids.clone(),
                sequence: f.sequence,
                spec_id: f.spec_id,
                partition: f.partition.clone(),
                converter,
                keys,
            });
        }
        Ok(deletes)
    }

    /// The 0-based positions deleted from data file `f`: deletes with a sequence number at
    /// or above the data file's.
    fn positions_for(&self, f: &LiveFile) -> Option<HashSet<u64>> {
        let set: HashSet<u64> = self
            .positions
            .get(&f.path)?
            .iter()
            .filter(|(_, seq)| *seq >= f.sequence)
            .map(|(pos, _)| *pos)
            .collect();
        (!set.is_empty()).then_some(set)
    }

    /// The equality deletes that apply to data file `f`: newer, and of its partition or
    /// unpartitioned.
    fn equalities_for(&self, f: &LiveFile) -> Vec<&EqualityDelete> {
        self.equalities
            .iter()
            .filter(|eq| {
                eq.sequence > f.sequence
                    && (eq.partition.is_none()
                        || (eq.spec_id == f.spec_id && eq.partition == f.partition))
            })
            .collect()
    }
}

impl EqualityDelete {
    /// A batch's key columns in this delete's row format (the batch is in the table schema).
    fn key_columns(&self, batch: &RecordBatch, columns: &[(i64, Field)]) -> Result<Rows> {
        let cols = self
            .ids
            .iter()
            .map(|id| {
                let i = columns
                    .iter()
                    .position(|(c, _)| c == id)
                    .expect("checked when loaded");
                batch.column(i).clone()
            })
            .collect::<Vec<_>>();
        Ok(self.converter.convert_columns(&cols)?)
    }
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
) -> std::result::Result<String, super::ReadError> {
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
async fn read_uri(
    uri: &str,
    root: &std::path::Path,
) -> std::result::Result<Bytes, super::ReadError> {
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

fn avro_records(data: &[u8]) -> std::result::Result<Vec<Avro>, super::ReadError> {
    let reader = apache_avro::Reader::new(data).map_err(|e| format!("not an Avro file: {e}"))?;
    reader
        .map(|r| r.map_err(|e| super::ReadError(format!("bad Avro record: {e}"))))
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
