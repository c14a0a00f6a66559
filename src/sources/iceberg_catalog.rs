//! Iceberg SQL catalogs: the database pyiceberg's `SqlCatalog` and Iceberg's `JdbcCatalog`
//! keep their tables in (`iceberg_tables`: catalog name, namespace, table name, metadata
//! location). A source with `format = "iceberg"` and `table = "namespace.table"` has the
//! catalog database as its `location` — `postgres://…`, `mysql://…` or `sqlite:path` — and
//! reads the table's current metadata file from it at every run, as a query engine would.

use std::path::Path;

use super::location::redact;

/// The current metadata file of `table` (`namespace.table`; the namespace may itself hold
/// dots) in the SQL catalog at `location`. A location may end in `#<catalog name>` when the
/// database holds several catalogs.
pub async fn metadata_location(
    location: &str,
    table: &str,
    root: &Path,
) -> std::result::Result<String, super::ReadError> {
    let (url, wanted_catalog) = match location.rsplit_once('#') {
        Some((u, c)) => (u, Some(c)),
        None => (location, None),
    };
    let Some((namespace, name)) = table.rsplit_once('.') else {
        return Err(super::ReadError(format!(
            "table `{table}`: name it with its namespace, `namespace.{table}`"
        )));
    };
    let rows: Vec<(String, String)> = if let Some(path) = url.strip_prefix("sqlite:") {
        // `sqlite:///abs/path` (SQLAlchemy's spelling) or `sqlite:relative/path`.
        let path = path.strip_prefix("//").unwrap_or(path);
        sqlite_rows(&root.join(path), namespace, name)?
    } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
        mysql_rows(url, root, namespace, name).await?
    } else {
        postgres_rows(url, namespace, name).await?
    };
    let found: Vec<&(String, String)> = rows
        .iter()
        .filter(|(catalog, _)| wanted_catalog.is_none_or(|w| w == catalog))
        .collect();
    match found.as_slice() {
        [(_, metadata)] => Ok(metadata.clone()),
        [] => Err(super::ReadError(format!(
            "the catalog {} has no table `{table}`{}",
            redact(url),
            wanted_catalog
                .map(|c| format!(" in catalog `{c}`"))
                .unwrap_or_default()
        ))),
        many => Err(super::ReadError(format!(
            "table `{table}` is in several catalogs of {} ({}): end the location with `#<catalog>`",
            redact(url),
            many.iter()
                .map(|(c, _)| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

const QUERY: &str = "SELECT catalog_name, metadata_location FROM iceberg_tables \
                     WHERE table_namespace = ? AND table_name = ?";

fn sqlite_rows(
    path: &Path,
    namespace: &str,
    name: &str,
) -> std::result::Result<Vec<(String, String)>, super::ReadError> {
    if !path.is_file() {
        return Err(super::ReadError(format!(
            "no SQLite catalog at {}",
            path.display()
        )));
    }
    let db =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("{}: cannot open the SQLite catalog: {e}", path.display()))?;
    let mut statement = db
        .prepare(QUERY)
        .map_err(|e| format!("{}: not an Iceberg SQL catalog: {e}", path.display()))?;
    let rows = statement
        .query_map([namespace, name], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(rows)
}

async fn postgres_rows(
    url: &str,
    namespace: &str,
    name: &str,
) -> std::result::Result<Vec<(String, String)>, super::ReadError> {
    let (client, task) = super::postgres::connect(url)
        .await
        .map_err(|e| format!("the catalog: {e}"))?;
    let rows = client
        .query(
            &QUERY.replacen('?', "$1", 1).replacen('?', "$2", 1),
            &[&namespace, &name],
        )
        .await
        .map_err(|e| format!("not an Iceberg SQL catalog: {e}"));
    drop(client);
    let _ = task.await;
    Ok(rows?
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect())
}

async fn mysql_rows(
    url: &str,
    root: &Path,
    namespace: &str,
    name: &str,
) -> std::result::Result<Vec<(String, String)>, super::ReadError> {
    use mysql_async::prelude::Queryable;
    let opts = super::mysql::connection_opts(url, root)?;
    let mut conn = super::mysql::connect(opts)
        .await
        .map_err(|e| format!("the catalog: {e}"))?;
    let rows: Vec<(String, String)> = conn
        .exec(QUERY, (namespace, name))
        .await
        .map_err(|e| format!("not an Iceberg SQL catalog: {e}"))?;
    let _ = conn.disconnect().await;
    Ok(rows)
}
