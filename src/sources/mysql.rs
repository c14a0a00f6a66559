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

use arrow::datatypes::SchemaRef;
use mysql_async::prelude::Queryable;

use super::database_rows::{Batcher, Kind, Row};
use super::location::redact;
use super::RawChunk;
use crate::error::{Error, Result};

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

/// The driver's options from the URL. Besides mysql_async's own parameters (`socket`,
/// `require_ssl`, `verify_ca`, `verify_identity`, `built_in_roots`, ...), `ssl_ca=<PEM file>`
/// trusts that certificate authority, as MySQL's `--ssl-ca` does — what a server with its own
/// CA needs, and the driver's URL has no key for — and implies `require_ssl=true`. A relative
/// path is the project's.
pub(crate) fn connection_opts(
    url: &str,
    root: &std::path::Path,
) -> std::result::Result<mysql_async::Opts, super::ReadError> {
    let url = driver_url(url);
    let (base, query) = url.split_once('?').unwrap_or((&url, ""));
    let mut ssl_ca = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| match pair.split_once('=') {
            Some(("ssl_ca", value)) => {
                ssl_ca = Some(
                    url::form_urlencoded::parse(format!("v={value}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default(),
                );
                false
            }
            _ => true,
        })
        .collect();
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let opts = mysql_async::Opts::from_url(&url).map_err(|e| format!("bad connection URL: {e}"))?;
    if ssl_ca.is_some() || opts.ssl_opts().is_some() {
        // Two rustls back ends are linked (ring through pgwire, aws-lc here), so rustls cannot
        // pick one itself and the driver's TLS handshake panics: name one, as `serve` does.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
    let Some(ca) = ssl_ca else {
        return Ok(opts);
    };
    let path = root.join(&ca);
    if !path.is_file() {
        return Err(super::ReadError(format!(
            "ssl_ca: no such file {}",
            path.display()
        )));
    }
    let ssl = opts
        .ssl_opts()
        .cloned()
        .unwrap_or_default()
        .with_root_certs(vec![path.into()]);
    Ok(mysql_async::OptsBuilder::from_opts(opts)
        .ssl_opts(ssl)
        .into())
}

/// A connection with `opts`, given 10 s to answer.
pub(crate) async fn connect(
    opts: mysql_async::Opts,
) -> std::result::Result<mysql_async::Conn, super::ReadError> {
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        mysql_async::Conn::new(opts),
    )
    .await
    .map_err(|_| "cannot connect: no answer within 10 s".to_string())?
    .map_err(|e| super::ReadError(format!("cannot connect: {e}")))
}

/// Read `table` (`database.table`, or `table` in the URL's database); with
/// `updated_at = (column, Some(micros))`, only rows whose `column` is after that instant
/// (`None`: all rows, the column still checked).
pub async fn read_mysql(
    source: &str,
    url: &str,
    table: &str,
    updated_at: Option<(&str, Option<i64>)>,
    root: &std::path::Path,
    emit: &mut dyn FnMut(RawChunk) -> Result<()>,
) -> Result<SchemaRef> {
    let shown = redact(url);
    let err = |m: String| Error::source(source, &shown, m);
    let opts = connection_opts(url, root).map_err(|e| err(e.0))?;
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
    let mut conn = connect(opts).await.map_err(|e| err(e.0))?;
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
    let mut columns = Vec::new();
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
        columns.push((name.clone(), kind));
    }
    let schema: SchemaRef = super::database_rows::schema(&columns);
    let kinds: Vec<Kind> = columns.iter().map(|(_, k)| *k).collect();
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
    let mut batcher = Batcher::new(display, schema.clone(), &kinds);
    while let Some(row) = result
        .next()
        .await
        .map_err(|e| err(format!("lost the connection while reading: {e}")))?
    {
        batcher.push(&mut MyRow(row), emit)?;
    }
    drop(result);
    batcher.finish(emit)?;
    let _ = conn.disconnect().await;
    Ok(schema)
}

/// Values as the casts in the query produce them, over the text protocol; a value that does
/// not convert (invalid UTF-8 in a binary column) is NULL.
struct MyRow(mysql_async::Row);

impl MyRow {
    fn take<T: mysql_async::prelude::FromValue>(&mut self, i: usize) -> Option<T> {
        self.0
            .take_opt::<Option<T>, usize>(i)
            .and_then(|v| v.ok())
            .flatten()
    }
}

impl Row for MyRow {
    fn int(&mut self, i: usize) -> Option<i64> {
        self.take(i)
    }
    fn date(&mut self, i: usize) -> Option<i32> {
        self.take::<i64>(i).map(|d| d as i32)
    }
    fn float(&mut self, i: usize) -> Option<f64> {
        self.take(i)
    }
    fn boolean(&mut self, i: usize) -> Option<bool> {
        self.take::<i64>(i).map(|v| v != 0)
    }
    fn text(&mut self, i: usize) -> Option<String> {
        self.take(i)
    }
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
