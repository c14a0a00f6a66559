//! Column types a user can declare for a source column.

use arrow::datatypes::{DataType, TimeUnit};
use serde::Deserialize;

/// A declared column type. Names follow SQL habits; aliases are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    #[serde(alias = "text", alias = "varchar", alias = "utf8")]
    String,
    #[serde(alias = "integer", alias = "bigint", alias = "int64")]
    Int,
    #[serde(
        alias = "double",
        alias = "float64",
        alias = "decimal",
        alias = "numeric"
    )]
    Float,
    #[serde(alias = "boolean")]
    Bool,
    Date,
    #[serde(alias = "datetime")]
    Timestamp,
}

impl ColumnType {
    /// The Arrow type a column of this kind is stored as.
    pub fn data_type(&self) -> DataType {
        match self {
            ColumnType::String => DataType::Utf8,
            ColumnType::Int => DataType::Int64,
            ColumnType::Float => DataType::Float64,
            ColumnType::Bool => DataType::Boolean,
            ColumnType::Date => DataType::Date32,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Int => "int",
            ColumnType::Float => "float",
            ColumnType::Bool => "bool",
            ColumnType::Date => "date",
            ColumnType::Timestamp => "timestamp",
        }
    }
}
