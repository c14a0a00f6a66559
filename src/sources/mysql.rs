//! MySQL and MariaDB tables (a shop's database), read as the PostgreSQL source reads: types
//! are mapped in SQL so the wire carries a handful of primitive forms, anything unusual
//! arrives as text, and `refresh = "incremental"` reads only rows whose `updated_at_column` is
//! after the previous run's latest value.
//!
//! Type mapping: `tinyint`…`bigint` and `year` → `Int64` (`bigint unsigned` → text, which keeps
//! values past `i64`), `tinyint(1)`/`bool`/`bit(1)` → `Boolean`, `float`/`double`/`decimal` →
//! `Float64`, `date` → `Date32`, `datetime`/`timestamp` → `Timestamp(µs)` (`timestamp` in UTC;
//! `datetime` has no zone and is taken as it is), everything else as UTF-8 text (`json`, `enum`,
//! `set`, `time`, strings in any character set). A zero date (`0000-00-00`) is NULL.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use mysql_async::prelude::Queryable;

use super::location::redact;
use super::RawChunk;
use crate::error::{Error, Result};

const CHUNK_ROWS: usize = 65_536;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Int,
    Float,
    Bool,
    Date,
    Timestamp,
    Text,
}

/// The kind of a column from `information_schema.columns` (`DATA_TYPE`, `COLUMN_TYPE`).
fn kind_of(data_type: &str, column_type: &str) -> Kind {
    let column_type = column_type.to_ascii_lowercase();
    match data_type.to_ascii_lowercase().as_str() {
        "tinyint" if column_type.starts_with("tinyint(1)") => Kind::Bool,
        "bit" if column_type == "bit(1)" => Kind::Bool,
        "bigint" if column_type.contains("unsigned") => Kind::Text,
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "year" => Kind::Int,
        "float" | "double" | "real" | "decimal" | "numeric" => Kind::Float,
        "date" => Kind::Date,
        "datetime" | "timestamp" => Kind::Timestamp,
        _ => Kind::Text,
    }
}

/// MySQL's quoting of an identifier: backticks, a backtick doubled.
fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `mariadb://` is accepted as a name for `mysql://`.
fn driver_url(url: &str) -> String {
    match url.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => url.to_string(),
    }
}

/// Read `table` (`database.table`, or `table` in the URL's database); with
/// `updated_at = (column, Some(micros))`, only rows whose `column` is after that instant
/// (`None`: all rows, the column still checked).
pub async fn read_mysql(
    source: &str,
    url: &str,
    table: &str,
    updated_at: Option<(&str, Option<i64>)>,
    emit: &mut dyn FnMut(RawChunk) -> Result<()>,
) -> Result<SchemaRef> {
    let shown = redact(url);
    let err = |m: String| Error::source(source, &shown, m);
    let opts = mysql_async::Opts::from_url(&driver_url(url))
        .map_err(|e| err(format!("bad connection URL: {e}")))?;
    let url_database = opts.db_name().map(str::to_string);
    let (database, table_name) = match table.split_once('.') {
        Some((d, t)) => (d.to_string(), t.to_string()),
        None => match url_database {
            Some(d) => (d, table.to_string()),
            None => {
                return Err(err(format!(
                    "table `{table}` names no database and the URL has none: write `database.{table}` or end the URL with /database"
                )))
            }
        },
    };
    let mut conn = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        mysql_async::Conn::new(opts),
    )
    .await
    .map_err(|_| err("cannot connect: no answer within 10 s".into()))?
    .map_err(|e| err(format!("cannot connect: {e}")))?;
    // TIMESTAMP columns in UTC; text in UTF-8 whatever the tables' character sets.
    conn.query_drop("SET time_zone = '+00:00', NAMES utf8mb4")
        .await
        .map_err(|e| err(format!("cannot set up the session: {e}")))?;
    let cols: Vec<(String, String, String)> = conn
        .exec(
            "SELECT CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR), CAST(COLUMN_TYPE AS CHAR) \
             FROM information_schema.columns \
             WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            (&database, &table_name),
        )
        .await
        .map_err(|e| err(format!("cannot read the table's columns: {e}")))?;
    if cols.is_empty() {
        return Err(err(format!(
            "table {database}.{table_name} does not exist (or has no columns we may read)"
        )));
    }
    let mut select = Vec::new();
    let mut kinds = Vec::new();
    let mut fields = Vec::new();
    for (name, data_type, column_type) in &cols {
        let kind = kind_of(data_type, column_type);
        let q = quote_ident(name);
        select.push(match kind {
            Kind::Int => format!("CAST({q} AS SIGNED)"),
            Kind::Float => format!("CAST({q} AS DOUBLE)"),
            Kind::Bool => format!("CAST({q} AS UNSIGNED) <> 0"),
            // Days and microseconds since the epoch: exactly Arrow's encodings.
            Kind::Date => format!("DATEDIFF({q}, '1970-01-01')"),
            Kind::Timestamp => {
                format!("TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {q})")
            }
            Kind::Text => format!("CONVERT({q} USING utf8mb4)"),
        });
        kinds.push(kind);
        fields.push(Field::new(
            name,
            match kind {
                Kind::Int => DataType::Int64,
                Kind::Float => DataType::Float64,
                Kind::Bool => DataType::Boolean,
                Kind::Date => DataType::Date32,
                Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
                Kind::Text => DataType::Utf8,
            },
            true,
        ));
    }
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    let mut sql = format!(
        "SELECT {} FROM {}.{}",
        select.join(", "),
        quote_ident(&database),
        quote_ident(&table_name)
    );
    if let Some((column, since)) = updated_at {
        let data_type = cols
            .iter()
            .find(|(n, _, _)| n == column)
            .map(|(_, t, _)| t.to_ascii_lowercase())
            .ok_or_else(|| {
                err(format!(
                    "updated_at_column `{column}` is not a column of {database}.{table_name}"
                ))
            })?;
        if !matches!(data_type.as_str(), "datetime" | "timestamp") {
            return Err(err(format!(
                "updated_at_column `{column}` must be a datetime or timestamp column, it is {data_type}"
            )));
        }
        // The same instant the previous run stored (microseconds since the epoch, UTC).
        if let Some(micros) = since {
            sql.push_str(&format!(
                " WHERE {} > TIMESTAMPADD(MICROSECOND, {micros}, '1970-01-01 00:00:00')",
                quote_ident(column)
            ));
        }
    }
    let display: Arc<str> = Arc::from(format!("{shown} table {database}.{table_name}"));
    let mut result = conn
        .query_iter(sql)
        .await
        .map_err(|e| err(format!("cannot read the table: {e}")))?;
    let mut builders = Builders::new(&kinds);
    let mut rows = Vec::new();
    let mut next_row = 1u64;
    let mut emitted = false;
    while let Some(row) = result
        .next()
        .await
        .map_err(|e| err(format!("lost the connection while reading: {e}")))?
    {
        builders.push(row);
        rows.push(next_row);
        next_row += 1;
        if rows.len() == CHUNK_ROWS {
            emit(RawChunk {
                file: display.clone(),
                rows: std::mem::take(&mut rows),
                batch: builders.finish(&schema)?,
            })?;
            emitted = true;
        }
    }
    drop(result);
    if !rows.is_empty() || !emitted {
        emit(RawChunk {
            file: display,
            rows,
            batch: builders.finish(&schema)?,
        })?;
    }
    let _ = conn.disconnect().await;
    Ok(schema)
}

enum Builder {
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Text(StringBuilder),
}

struct Builders(Vec<Builder>);

impl Builders {
    fn new(kinds: &[Kind]) -> Self {
        Builders(
            kinds
                .iter()
                .map(|k| match k {
                    Kind::Int => Builder::Int(Int64Builder::new()),
                    Kind::Float => Builder::Float(Float64Builder::new()),
                    Kind::Bool => Builder::Bool(BooleanBuilder::new()),
                    Kind::Date => Builder::Date(Date32Builder::new()),
                    Kind::Timestamp => Builder::Timestamp(TimestampMicrosecondBuilder::new()),
                    Kind::Text => Builder::Text(StringBuilder::new()),
                })
                .collect(),
        )
    }

    /// One row; a value the SQL casts did not make convertible (cannot happen with the casts
    /// above, short of invalid UTF-8 in a binary column) is NULL.
    fn push(&mut self, mut row: mysql_async::Row) {
        for (i, b) in self.0.iter_mut().enumerate() {
            match b {
                Builder::Int(b) => b.append_option(take::<i64>(&mut row, i)),
                Builder::Float(b) => b.append_option(take::<f64>(&mut row, i)),
                Builder::Bool(b) => b.append_option(take::<i64>(&mut row, i).map(|v| v != 0)),
                Builder::Date(b) => b.append_option(take::<i64>(&mut row, i).map(|v| v as i32)),
                Builder::Timestamp(b) => b.append_option(take::<i64>(&mut row, i)),
                Builder::Text(b) => b.append_option(take::<String>(&mut row, i)),
            }
        }
    }

    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let cols: Vec<ArrayRef> = self
            .0
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
        Ok(RecordBatch::try_new(schema.clone(), cols)?)
    }
}

fn take<T: mysql_async::prelude::FromValue>(row: &mut mysql_async::Row, i: usize) -> Option<T> {
    row.take_opt::<Option<T>, usize>(i)
        .and_then(|v| v.ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_map_as_documented() {
        assert_eq!(kind_of("tinyint", "tinyint(1)"), Kind::Bool);
        assert_eq!(kind_of("tinyint", "tinyint(4)"), Kind::Int);
        assert_eq!(kind_of("bigint", "bigint(20) unsigned"), Kind::Text);
        assert_eq!(kind_of("int", "int(11)"), Kind::Int);
        assert_eq!(kind_of("decimal", "decimal(10,2)"), Kind::Float);
        assert_eq!(kind_of("datetime", "datetime(6)"), Kind::Timestamp);
        assert_eq!(kind_of("enum", "enum('a','b')"), Kind::Text);
        assert_eq!(quote_ident("we`ird"), "`we``ird`");
        assert_eq!(driver_url("mariadb://u:p@h/db"), "mysql://u:p@h/db");
    }
}
