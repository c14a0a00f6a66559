//! Parquet files: typed already, so reading is a matter of checking that every file of the
//! source has the same schema.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::RawChunk;
use crate::error::{Error, Result};

/// Read one Parquet file; `expected` is the schema of the source's first file.
pub fn read_parquet(
    source: &str,
    file: &str,
    data: Bytes,
    expected: Option<&SchemaRef>,
    emit: &mut dyn FnMut(RawChunk) -> Result<()>,
) -> Result<SchemaRef> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(data)
        .map_err(|e| Error::source(source, file, format!("not a readable Parquet file: {e}")))?;
    let schema = builder.schema().clone();
    if let Some(exp) = expected {
        if !same_columns(exp, &schema) {
            return Err(Error::source(
                source,
                file,
                format!(
                    "schema mismatch: [{}] differs from [{}] in the source's first file",
                    describe(&schema),
                    describe(exp)
                ),
            ));
        }
    }
    let reader = builder
        .with_batch_size(65_536)
        .build()
        .map_err(|e| Error::source(source, file, e))?;
    let batches = reader.map(|b| b.map_err(|e| Error::source(source, file, e)));
    super::emit_numbered(Arc::from(file), &schema, batches, emit)?;
    Ok(schema)
}

/// Same names and types in the same order; metadata and nullability may differ.
pub fn same_columns(a: &SchemaRef, b: &SchemaRef) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields()
            .iter()
            .zip(b.fields())
            .all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
}

pub fn describe(schema: &SchemaRef) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ")
}
