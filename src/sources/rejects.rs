//! Rows a source could not load. They are never dropped silently: each one lands in the run's
//! `rejects` table with enough context to find and fix it in the original file.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder, UInt64Builder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// One problem with one row. A row with two bad values yields two rejects.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    pub source: String,
    /// File (or table) the row came from.
    pub file: String,
    /// 1-based line for text formats, 1-based row ordinal otherwise.
    pub row: u64,
    pub column: Option<String>,
    pub raw_value: Option<String>,
    pub reason: String,
}

/// Schema of the `rejects` table.
pub fn rejects_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, false),
        Field::new("row", DataType::UInt64, false),
        Field::new("column", DataType::Utf8, true),
        Field::new("raw_value", DataType::Utf8, true),
        Field::new("reason", DataType::Utf8, false),
    ]))
}

/// Longest raw value kept; a broken multi-megabyte line should not bloat the table.
const MAX_RAW_LEN: usize = 2_000;

fn clip(s: &str) -> String {
    if s.len() <= MAX_RAW_LEN {
        return s.to_string();
    }
    let mut end = MAX_RAW_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Build the `rejects` table.
pub fn rejects_batch(rejects: &[Reject]) -> RecordBatch {
    let mut source = StringBuilder::new();
    let mut file = StringBuilder::new();
    let mut row = UInt64Builder::new();
    let mut column = StringBuilder::new();
    let mut raw = StringBuilder::new();
    let mut reason = StringBuilder::new();
    for r in rejects {
        source.append_value(&r.source);
        file.append_value(&r.file);
        row.append_value(r.row);
        column.append_option(r.column.as_deref());
        raw.append_option(r.raw_value.as_deref().map(clip));
        reason.append_value(&r.reason);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(source.finish()),
        Arc::new(file.finish()),
        Arc::new(row.finish()),
        Arc::new(column.finish()),
        Arc::new(raw.finish()),
        Arc::new(reason.finish()),
    ];
    RecordBatch::try_new(rejects_schema(), cols).expect("rejects schema matches its columns")
}
