//! Rows of a database table (PostgreSQL, MySQL) into Arrow. The readers cast every column in
//! SQL to one of a few [`Kind`]s, so the wire carries only integers, floats, booleans and text;
//! a [`Batcher`] builds the chunks, numbering rows from 1.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::RawChunk;
use crate::error::Result;

const CHUNK_ROWS: usize = 65_536;

/// What a column is read as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    Float,
    Bool,
    /// Days since the epoch.
    Date,
    /// Microseconds since the epoch.
    Timestamp,
    Text,
}

impl Kind {
    pub fn data_type(self) -> DataType {
        match self {
            Kind::Int => DataType::Int64,
            Kind::Float => DataType::Float64,
            Kind::Bool => DataType::Boolean,
            Kind::Date => DataType::Date32,
            Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Kind::Text => DataType::Utf8,
        }
    }
}

/// The schema of columns `(name, kind)`.
pub fn schema(columns: &[(String, Kind)]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, kind)| Field::new(name, kind.data_type(), true))
            .collect::<Vec<_>>(),
    ))
}

/// One row as a driver hands it over; a value that does not convert is `None` (NULL).
pub trait Row {
    fn int(&mut self, i: usize) -> Option<i64>;
    fn date(&mut self, i: usize) -> Option<i32>;
    fn float(&mut self, i: usize) -> Option<f64>;
    fn boolean(&mut self, i: usize) -> Option<bool>;
    fn text(&mut self, i: usize) -> Option<String>;
}

enum Builder {
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Text(StringBuilder),
}

/// Builds a table's rows into chunks of 65,536 and hands each to `emit`.
pub struct Batcher {
    file: Arc<str>,
    schema: SchemaRef,
    builders: Vec<Builder>,
    rows: Vec<u64>,
    next_row: u64,
    emitted: bool,
}

impl Batcher {
    /// Rows of `schema` (made by [`schema`]), shown as coming from `file`.
    pub fn new(file: Arc<str>, schema: SchemaRef, kinds: &[Kind]) -> Self {
        let builders = kinds
            .iter()
            .map(|k| match k {
                Kind::Int => Builder::Int(Int64Builder::new()),
                Kind::Float => Builder::Float(Float64Builder::new()),
                Kind::Bool => Builder::Bool(BooleanBuilder::new()),
                Kind::Date => Builder::Date(Date32Builder::new()),
                Kind::Timestamp => Builder::Timestamp(TimestampMicrosecondBuilder::new()),
                Kind::Text => Builder::Text(StringBuilder::new()),
            })
            .collect();
        Batcher {
            file,
            schema,
            builders,
            rows: Vec::new(),
            next_row: 1,
            emitted: false,
        }
    }

    pub fn push(
        &mut self,
        row: &mut dyn Row,
        emit: &mut dyn FnMut(RawChunk) -> Result<()>,
    ) -> Result<()> {
        for (i, b) in self.builders.iter_mut().enumerate() {
            match b {
                Builder::Int(b) => b.append_option(row.int(i)),
                Builder::Float(b) => b.append_option(row.float(i)),
                Builder::Bool(b) => b.append_option(row.boolean(i)),
                Builder::Date(b) => b.append_option(row.date(i)),
                Builder::Timestamp(b) => b.append_option(row.int(i)),
                Builder::Text(b) => b.append_option(row.text(i)),
            }
        }
        self.rows.push(self.next_row);
        self.next_row += 1;
        if self.rows.len() == CHUNK_ROWS {
            self.flush(emit)?;
        }
        Ok(())
    }

    /// The last chunk; a table without rows still emits one empty chunk (its schema).
    pub fn finish(mut self, emit: &mut dyn FnMut(RawChunk) -> Result<()>) -> Result<()> {
        if !self.rows.is_empty() || !self.emitted {
            self.flush(emit)?;
        }
        Ok(())
    }

    fn flush(&mut self, emit: &mut dyn FnMut(RawChunk) -> Result<()>) -> Result<()> {
        let cols: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .map(|b| -> ArrayRef {
                match b {
                    Builder::Int(b) => Arc::new(b.finish()),
                    Builder::Float(b) => Arc::new(b.finish()),
                    Builder::Bool(b) => Arc::new(b.finish()),
                    Builder::Date(b) => Arc::new(b.finish()),
                    Builder::Timestamp(b) => Arc::new(b.finish()),
                    Builder::Text(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        let batch = RecordBatch::try_new(self.schema.clone(), cols)?;
        self.emitted = true;
        emit(RawChunk {
            file: self.file.clone(),
            rows: std::mem::take(&mut self.rows),
            batch,
        })
    }
}
