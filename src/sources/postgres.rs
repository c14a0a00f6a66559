//! PostgreSQL tables (the running example's loyalty database). Types are mapped in SQL so the
//! wire format is a handful of primitive types; anything unusual arrives as text.

use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use futures::{pin_mut, TryStreamExt};
use tokio_postgres::NoTls;

use super::database_rows::{Batcher, Kind, Row};
use super::location::redact;
use super::RawChunk;
use crate::error::{Error, Result};

fn kind_of(pg_type: &str) -> Kind {
    match pg_type {
        "smallint" | "integer" | "bigint" => Kind::Int,
        "real" | "double precision" | "numeric" => Kind::Float,
        "boolean" => Kind::Bool,
        "date" => Kind::Date,
        "timestamp without time zone" | "timestamp with time zone" => Kind::Timestamp,
        _ => Kind::Text,
    }
}

use crate::sql_text::ident as quote_ident;

/// A client of the database at `url` (10 s to connect), and the task driving its connection.
pub(crate) async fn connect(
    url: &str,
) -> std::result::Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), super::ReadError> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| format!("bad connection URL: {e}"))?;
    config.connect_timeout(Duration::from_secs(10));
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((client, task))
}

/// Read a whole table. `table` may be `schema.table`; default schema is `public`.
/// Read `table`; with `updated_at = (column, Some(micros))`, only rows whose timestamp
/// `column` is after that instant (`None`: all rows, the column still checked).
pub async fn read_postgres(
    source: &str,
    url: &str,
    table: &str,
    updated_at: Option<(&str, Option<i64>)>,
    emit: &mut dyn FnMut(RawChunk) -> Result<()>,
) -> Result<SchemaRef> {
    let shown = redact(url);
    let err = |m: String| Error::source(source, &shown, m);
    let (client, conn_task) = connect(url).await.map_err(|e| err(e.0))?;

    let (schema_name, table_name) = table.split_once('.').unwrap_or(("public", table));
    let cols = client
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
            &[&schema_name, &table_name],
        )
        .await
        .map_err(|e| err(format!("cannot read the table's columns: {e}")))?;
    if cols.is_empty() {
        return Err(err(format!(
            "table {schema_name}.{table_name} does not exist (or has no columns we may read)"
        )));
    }
    let mut select = Vec::new();
    let mut columns = Vec::new();
    for row in &cols {
        let name: String = row.get(0);
        let pg_type: String = row.get(1);
        let kind = kind_of(&pg_type);
        let q = quote_ident(&name);
        select.push(match kind {
            Kind::Int => format!("{q}::int8"),
            Kind::Float => format!("{q}::float8"),
            Kind::Bool => q.clone(),
            // Days since the epoch and microseconds since the epoch: exactly Arrow's encodings.
            Kind::Date => format!("({q} - DATE '1970-01-01')::int4"),
            Kind::Timestamp => format!("(extract(epoch from {q}) * 1000000)::int8"),
            Kind::Text => format!("{q}::text"),
        });
        columns.push((name, kind));
    }
    let schema: SchemaRef = super::database_rows::schema(&columns);
    let kinds: Vec<Kind> = columns.iter().map(|(_, k)| *k).collect();
    let mut sql = format!(
        "SELECT {} FROM {}.{}",
        select.join(", "),
        quote_ident(schema_name),
        quote_ident(table_name)
    );
    if let Some((column, since)) = updated_at {
        let pg_type = cols
            .iter()
            .find(|r| r.get::<_, String>(0) == column)
            .map(|r| r.get::<_, String>(1))
            .ok_or_else(|| {
                err(format!(
                    "updated_at_column `{column}` is not a column of {table}"
                ))
            })?;
        let epoch = match pg_type.as_str() {
            "timestamp with time zone" => "TIMESTAMPTZ 'epoch'",
            "timestamp without time zone" => "TIMESTAMP 'epoch'",
            other => {
                return Err(err(format!(
                    "updated_at_column `{column}` must be a timestamp column, it is {other}"
                )))
            }
        };
        // The same instant the previous run stored (microseconds since the epoch, UTC).
        if let Some(micros) = since {
            sql.push_str(&format!(
                " WHERE {} > {epoch} + {micros} * INTERVAL '1 microsecond'",
                quote_ident(column)
            ));
        }
    }
    let stream = client
        .query_raw(&sql, std::iter::empty::<i32>())
        .await
        .map_err(|e| err(format!("cannot read the table: {e}")))?;
    pin_mut!(stream);

    let display: Arc<str> = Arc::from(format!("{shown} table {schema_name}.{table_name}"));
    let mut batcher = Batcher::new(display, schema.clone(), &kinds);
    while let Some(row) = stream
        .try_next()
        .await
        .map_err(|e| err(format!("lost the connection while reading: {e}")))?
    {
        batcher.push(&mut PgRow(&row), emit)?;
    }
    batcher.finish(emit)?;
    drop(client);
    let _ = conn_task.await;
    Ok(schema)
}

/// Values as the casts in the query produce them: int8, float8, bool, int4, text.
struct PgRow<'a>(&'a tokio_postgres::Row);

impl Row for PgRow<'_> {
    fn int(&mut self, i: usize) -> Option<i64> {
        self.0.try_get(i).ok().flatten()
    }
    fn date(&mut self, i: usize) -> Option<i32> {
        self.0.try_get(i).ok().flatten()
    }
    fn float(&mut self, i: usize) -> Option<f64> {
        self.0.try_get(i).ok().flatten()
    }
    fn boolean(&mut self, i: usize) -> Option<bool> {
        self.0.try_get(i).ok().flatten()
    }
    fn text(&mut self, i: usize) -> Option<String> {
        self.0.try_get(i).ok().flatten()
    }
}
