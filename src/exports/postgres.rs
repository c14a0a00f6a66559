//! PostgreSQL destinations: the table is created when missing (columns typed from the rows,
//! primary key = the export's key), rows are upserted by key and keys that left are deleted,
//! all in one transaction: the destination confirms everything or nothing.
//!
//! Rows travel as one JSON array per chunk through `jsonb_populate_recordset`, so PostgreSQL
//! parses every value with its own input functions (dates, timestamps, numerics).

use arrow::datatypes::{DataType, SchemaRef};

use super::config::{ExportMode, PostgresDestination};
use super::{Plan, Sent};

const CHUNK_ROWS: usize = 2_000;

pub async fn send(dest: &PostgresDestination, plan: &Plan) -> Sent {
    match send_inner(dest, plan).await {
        Ok(sent) => sent,
        Err(e) => Sent {
            error: Some(format!(
                "postgres {} ({}): {e}",
                dest.table,
                crate::sources::location::redact(&dest.url)
            )),
            ..Default::default()
        },
    }
}

pub(crate) use crate::sql_text::{ident as quote_ident, table_name as quote_table};

fn pg_type(t: &DataType) -> &'static str {
    match t {
        DataType::Boolean => "boolean",
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => "bigint",
        DataType::Float16 | DataType::Float32 | DataType::Float64 => "double precision",
        DataType::Decimal128(..) | DataType::Decimal256(..) => "numeric",
        DataType::Date32 | DataType::Date64 => "date",
        DataType::Timestamp(_, None) => "timestamp",
        DataType::Timestamp(_, Some(_)) => "timestamptz",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text",
        _ => "jsonb",
    }
}

/// A client of the destination database (`${VAR}` in the URL read from the environment),
/// connected as sources connect; the connection's task runs until the client is dropped.
pub(crate) async fn connect(url: &str) -> Result<tokio_postgres::Client, super::SendError> {
    let url = crate::sources::location::expand_env(url)?;
    let (client, _connection) = crate::sources::postgres::connect(&url).await?;
    Ok(client)
}

async fn send_inner(dest: &PostgresDestination, plan: &Plan) -> Result<Sent, super::SendError> {
    let mut client = connect(&dest.url).await?;
    let table = quote_table(&dest.table);
    let key = quote_ident(&plan.key);
    let tx = client.transaction().await.map_err(|e| e.to_string())?;
    if let Some((schema, _)) = dest.table.split_once('.') {
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            quote_ident(schema)
        ))
        .await
        .map_err(|e| e.to_string())?;
    }
    tx.batch_execute(&create_table(&table, &plan.key, &plan.schema))
        .await
        .map_err(|e| format!("cannot create the table: {e}"))?;
    let columns: Vec<String> = plan
        .schema
        .fields()
        .iter()
        .map(|f| quote_ident(f.name()))
        .collect();
    let updates: Vec<String> = columns
        .iter()
        .filter(|c| **c != key)
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect();
    let upsert = format!(
        "INSERT INTO {table} ({cols}) SELECT {cols} FROM jsonb_populate_recordset(NULL::{table}, $1::text::jsonb) \
         ON CONFLICT ({key}) DO {action}",
        cols = columns.join(", "),
        action = if updates.is_empty() {
            "NOTHING".to_string()
        } else {
            format!("UPDATE SET {}", updates.join(", "))
        }
    );
    let mut bytes = 0u64;
    let upserts: Vec<super::JsonAt> = plan
        .ops
        .iter()
        .filter(|o| !o.change.is_delete())
        .filter_map(|o| o.json)
        .collect();
    for chunk in upserts.chunks(CHUNK_ROWS) {
        let rows = chunk
            .iter()
            .map(|at| plan.json.read(*at))
            .collect::<std::result::Result<Vec<String>, super::SendError>>()?;
        let json = format!("[{}]", rows.join(","));
        bytes += json.len() as u64;
        tx.execute(&upsert, &[&json])
            .await
            .map_err(|e| format!("upsert failed: {e}"))?;
    }
    let delete_sql = format!("DELETE FROM {table} WHERE {key}::text = ANY($1)");
    let deletes: Vec<String> = plan
        .ops
        .iter()
        .filter(|o| o.change.is_delete())
        .map(|o| o.key.clone())
        .collect();
    for chunk in deletes.chunks(CHUNK_ROWS) {
        bytes += chunk.iter().map(|k| k.len() as u64).sum::<u64>();
        tx.execute(&delete_sql, &[&chunk])
            .await
            .map_err(|e| format!("delete failed: {e}"))?;
    }
    if plan.mode == ExportMode::Full {
        // A full export mirrors the selection: rows put there by anyone else go too.
        let keep: Vec<&str> = plan.keys.iter().map(|k| k.as_str()).collect();
        tx.execute(
            &format!("DELETE FROM {table} WHERE NOT ({key}::text = ANY($1))"),
            &[&keep],
        )
        .await
        .map_err(|e| format!("delete failed: {e}"))?;
    }
    tx.commit()
        .await
        .map_err(|e| format!("commit failed: {e}"))?;
    Ok(Sent {
        confirmed: (0..plan.ops.len()).collect(),
        bytes,
        written: vec![dest.table.clone()],
        ..Default::default()
    })
}

fn create_table(table: &str, key: &str, schema: &SchemaRef) -> String {
    let cols: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", quote_ident(f.name()), pg_type(f.data_type())))
        .collect();
    format!(
        "CREATE TABLE IF NOT EXISTS {table} ({}, PRIMARY KEY ({}))",
        cols.join(", "),
        quote_ident(key)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    #[test]
    fn tables_are_created_with_the_key_as_primary_key() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("customer_id", DataType::Utf8, false),
            Field::new("points", DataType::Int64, true),
            Field::new("birth_date", DataType::Date32, true),
        ]));
        assert_eq!(
            create_table(&quote_table("mkt.gold"), "customer_id", &schema),
            "CREATE TABLE IF NOT EXISTS \"mkt\".\"gold\" (\"customer_id\" text, \"points\" bigint, \"birth_date\" date, PRIMARY KEY (\"customer_id\"))"
        );
    }
}
