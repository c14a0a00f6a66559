//! BI, notebook and app clients no one here wrote, unmodified, against `panorama serve` on
//! the demo: SQLAlchemy with psycopg2 and psycopg 3 (and pandas over it), psqlODBC through
//! pyodbc, pgjdbc, node-postgres and asyncpg. Each connects, introspects tables, columns,
//! keys and descriptions as its tools do, runs bound parameters and transactions, and is
//! refused writes without losing its connection. `.ci/run` installs every client
//! (`PANORAMA_REQUIRE_SERVICES=1` turns a missing one into a failure).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

fn clients() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients"))
}

fn count(project: &Path, sql: &str) -> i64 {
    let out = ok(&["query", "-p", p(project), "--format", "csv", sql]);
    out.lines().nth(1).unwrap().trim().parse().unwrap()
}

/// `value` is an error object mentioning `code`'s refusal (PostgreSQL's 25006).
fn refused(value: &Value) -> bool {
    value
        .get("error")
        .and_then(Value::as_str)
        .is_some_and(|e| e.contains("read-only"))
}

#[test]
fn bi_and_app_clients_connect_unmodified() {
    let project = demo("400", "11");
    ok(&["run", "-p", p(project.path()), "-q"]);
    let champions = count(
        project.path(),
        "SELECT count(*) FROM segment_members WHERE segment = 'champions'",
    );
    let customers = count(project.path(), "SELECT count(*) FROM unified_customers");
    let members = count(project.path(), "SELECT count(*) FROM segment_members");
    assert!(champions > 0 && customers > champions);
    let server = Server::start(project.path(), &[]);
    let (host, port) = server.pg.rsplit_once(':').unwrap();

    browse_as_bi_tools(host, port);
    python_clients(host, port, champions, customers, members);
    jdbc(host, port, champions, customers, None);
    node(host, port, champions, customers);
    drop(server);

    // With users and TLS, as beyond loopback: certificates checked, passwords asked.
    add_user(project.path(), "ana", "s3cret-pass", "reader");
    // A user set before SCRAM existed: no verifier in auth.toml, only the Argon2 hash.
    let auth = project.path().join(".panorama/auth.toml");
    let with_ana = std::fs::read_to_string(&auth).unwrap();
    add_user(project.path(), "old", "older-pass", "reader");
    let legacy: String = std::fs::read_to_string(&auth)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("scram") || with_ana.contains(l))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&auth, legacy).unwrap();
    if !make_certificates(project.path()) {
        return;
    }
    let (cert, key, ca) = (
        project.path().join("cert.pem"),
        project.path().join("key.pem"),
        project.path().join("ca.pem"),
    );
    let server = Server::start(
        project.path(),
        &["--tls-cert", p(&cert), "--tls-key", p(&key)],
    );
    let port = server.pg_port();
    let login = ("ana", "s3cret-pass", p(&ca));
    if have(
        "SQLAlchemy with psycopg2",
        "python3",
        &["-c", "import sqlalchemy, psycopg2, pandas"],
    ) {
        let out = Command::new("python3")
            .arg(clients().join("bi_python.py"))
            .args(["tls", "localhost", port, login.0, login.1, login.2])
            .args(["old", "older-pass"])
            .output()
            .expect("python3 runs");
        let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "bi_python.py tls: {e}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert_eq!(r["ssl"], true, "{r}");
        // SCRAM-SHA-256 for users with a verifier; the cleartext message for older ones.
        assert_eq!(r["scram_only"], customers, "{r}");
        assert_eq!(r["legacy_cleartext"], 1, "{r}");
        assert_eq!(
            r["pk"],
            serde_json::json!(["segment", "customer_id"]),
            "{r}"
        );
        assert_eq!(r["read_sql"], serde_json::json!([champions]), "{r}");
        let wrong = r["wrong_password"]["error"].as_str().unwrap_or_default();
        assert!(wrong.contains("password authentication failed"), "{r}");
    }
    jdbc("localhost", port, champions, customers, Some(login));
}

/// The schema-browsing queries of Metabase, Grafana, Superset and DBeaver
/// (`tests/clients/bi_browse.sql`, in their shape) through psql: each runs and shows what it
/// must.
fn browse_as_bi_tools(host: &str, port: &str) {
    if !have("psql", "psql", &["--version"]) {
        return;
    }
    let text = std::fs::read_to_string(clients().join("bi_browse.sql")).unwrap();
    let mut queries: Vec<(String, String, String)> = Vec::new();
    for line in text.lines() {
        let header = line
            .strip_prefix("-- ")
            .and_then(|h| h.split_once(": "))
            .filter(|(name, _)| name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        match (header, queries.last_mut()) {
            (Some((name, expect)), _) => {
                queries.push((name.to_string(), expect.to_string(), String::new()))
            }
            (None, Some((_, _, sql))) if !line.starts_with("--") => {
                sql.push_str(line);
                sql.push('\n');
            }
            _ => {}
        }
    }
    assert!(queries.len() >= 10, "{} queries", queries.len());
    for (name, expect, sql) in &queries {
        let out = Command::new("psql")
            .args([
                "-X", "-A", "-t", "-h", host, "-p", port, "-U", "panorama", "-d", "panorama",
            ])
            .args(["-v", "ON_ERROR_STOP=1", "-c", sql.trim()])
            .output()
            .expect("psql runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(expect.as_str()),
            "{name}: expected {expect:?} in\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn python_clients(host: &str, port: &str, champions: i64, customers: i64, members: i64) {
    if !have(
        "SQLAlchemy, psycopg2, psycopg, pyodbc with psqlODBC, asyncpg, pandas",
        "python3",
        &[
            "-c",
            "import sqlalchemy, psycopg2, psycopg, pyodbc, asyncpg, pandas; \
             import sys; sys.exit(0 if any('PostgreSQL' in d for d in pyodbc.drivers()) else 1)",
        ],
    ) {
        return;
    }
    let out = Command::new("python3")
        .arg(clients().join("bi_python.py"))
        .args([host, port])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "bi_python.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();

    for dialect in ["sqlalchemy_psycopg2", "sqlalchemy_psycopg"] {
        let s = &r[dialect];
        let at = |k: &str| &s[k];
        // The dialect reads "PostgreSQL 16.6" in version().
        assert_eq!(
            at("server_version_info"),
            &serde_json::json!([16, 6]),
            "{dialect}: {s}"
        );
        assert_eq!(at("schemas"), &serde_json::json!(["public"]), "{dialect}");
        let tables = at("tables").as_array().unwrap();
        for t in ["unified_customers", "segment_members", "customer_links"] {
            assert!(
                tables.iter().any(|x| x == t),
                "{dialect}: {t} in {tables:?}"
            );
        }
        assert!(at("views")
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "customer_profiles"));
        assert_eq!(at("columns")[0], "customer_id", "{dialect}: {s}");
        assert!(at("column_comment")
            .as_str()
            .unwrap()
            .starts_with("The customer's id"));
        assert_eq!(
            at("pk"),
            &serde_json::json!(["segment", "customer_id"]),
            "{dialect}"
        );
        assert_eq!(
            at("fks"),
            &serde_json::json!([[["customer_id"], "unified_customers", ["customer_id"]]]),
            "{dialect}"
        );
        assert!(at("table_comment")
            .as_str()
            .unwrap()
            .starts_with("One row per customer"));
        assert_eq!(at("has_table"), true);
        assert!(at("roles_join").is_i64(), "{dialect}: {}", at("roles_join"));
        assert_eq!(
            at("read_sql"),
            &serde_json::json!([champions]),
            "{dialect}: {s}"
        );
        assert_eq!(
            at("read_sql_table")[1],
            9,
            "{dialect}: segment_sizes columns"
        );
        assert!(refused(at("write")), "{dialect}: {}", at("write"));
        assert_eq!(at("after_write"), customers, "{dialect}");
        assert_eq!(at("transaction"), members, "{dialect}: {s}");
        assert_eq!(at("savepoint"), customers, "{dialect}: {s}");
    }

    let o = &r["odbc"];
    assert_eq!(o["param"], champions, "psqlODBC: {o}");
    assert!(o["error"]["error"]
        .as_str()
        .unwrap()
        .contains("no_such_column"));
    // psqlODBC wraps each statement in a savepoint: after a failure the transaction goes on.
    assert_eq!(o["after_error"], customers, "psqlODBC: {o}");
    assert!(o["tables"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == "unified_customers"));
    assert_eq!(o["columns"][0], "customer_id");
    assert_eq!(
        o["pk"],
        serde_json::json!(["segment", "customer_id"]),
        "{o}"
    );
    assert_eq!(
        o["fks"],
        serde_json::json!([["unified_customers", "customer_id", "customer_id"]]),
        "{o}"
    );
    // The key's index, one row per column in key order (it used to come with `UNKNOWN`
    // columns read from the bytes of "1 2", or crash the driver).
    assert_eq!(
        o["statistics"],
        serde_json::json!([
            ["segment_members_pkey", "segment", 1, 0],
            ["segment_members_pkey", "customer_id", 2, 0]
        ]),
        "{o}"
    );
    assert!(refused(&o["write"]), "psqlODBC: {}", o["write"]);
    assert_eq!(o["after_write"], 1);

    let a = &r["asyncpg"];
    assert_eq!(a["fetchval"], champions, "asyncpg: {a}");
    assert!(a["version"]
        .as_str()
        .unwrap()
        .starts_with("PostgreSQL 16.6 (Panorama"));
    assert_eq!(a["transaction"], customers, "asyncpg: {a}");
}

fn jdbc(host: &str, port: &str, champions: i64, customers: i64, login: Option<(&str, &str, &str)>) {
    let jar = "/usr/share/java/postgresql.jar";
    if !have(
        "a JDK with pgjdbc (libpostgresql-jdbc-java)",
        "javac",
        &["-version"],
    ) || !have("pgjdbc", "test", &["-f", jar])
    {
        return;
    }
    let mut java = Command::new("java");
    java.args(["-cp", jar])
        .arg(clients().join("JdbcMetadata.java"))
        .args([host, port]);
    if let Some((user, password, ca)) = login {
        java.args([user, password, ca]);
    }
    let out = java.output().expect("java runs");
    assert!(
        out.status.success(),
        "JdbcMetadata failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let got = |name: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}\t")))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .to_string()
    };
    if login.is_some() {
        assert!(
            got("wrong_password").contains("password authentication failed"),
            "{text}"
        );
    }
    // DatabaseMetaData and version() tell the same story.
    assert!(
        got("product").starts_with("PostgreSQL 16.6 (Panorama"),
        "{text}"
    );
    assert!(
        got("version").starts_with("PostgreSQL 16.6 (Panorama"),
        "{text}"
    );
    assert_eq!(got("schemas"), "[pg_catalog, public]");
    assert_eq!(got("tables"), "true");
    assert!(got("views").contains("customer_profiles"));
    assert!(got("columns").parse::<i64>().unwrap() > 10);
    assert!(got("remarks").starts_with("The customer's id"), "{text}");
    assert!(
        got("table_remarks").starts_with("Who is in each segment"),
        "{text}"
    );
    assert_eq!(got("primary_keys"), "[segment, customer_id]", "{text}");
    assert_eq!(got("imported_keys"), "[unified_customers]", "{text}");
    assert_eq!(got("exported_keys"), "true", "{text}");
    assert_eq!(got("index_info"), "[unified_customers_pkey]", "{text}");
    assert_eq!(got("best_row"), "[customer_id]", "{text}");
    assert_eq!(got("functions"), "0", "{text}");
    assert_eq!(got("procedures"), "0", "{text}");
    assert_eq!(got("type_info"), "true", "{text}");
    assert_eq!(got("udts"), "0", "{text}");
    assert_eq!(got("table_privileges"), "true", "{text}");
    assert_eq!(got("prepared"), champions.to_string(), "{text}");
    assert_eq!(got("autocommit_off"), customers.to_string(), "{text}");
    assert_eq!(got("savepoint"), customers.to_string(), "{text}");
    assert!(got("write").contains("read-only"), "{text}");
    assert_eq!(got("after_write"), "1", "{text}");
}

fn node(host: &str, port: &str, champions: i64, customers: i64) {
    let modules = std::env::var("PANORAMA_TEST_NODE_MODULES").unwrap_or_default();
    let present = !modules.is_empty() && Path::new(&modules).join("pg").exists();
    if !have("node", "node", &["--version"]) || !present {
        assert!(
            !required(),
            "node-postgres is missing (PANORAMA_TEST_NODE_MODULES) but PANORAMA_REQUIRE_SERVICES=1"
        );
        eprintln!("SKIPPED part: node-postgres is not installed (.ci/run installs it)");
        return;
    }
    let out = Command::new("node")
        .arg(clients().join("node_pg.js"))
        .args([host, port])
        .env("NODE_PATH", &modules)
        .output()
        .expect("node runs");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "node_pg.js: {e}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    // int8 arrives as a string in node-postgres, as from PostgreSQL.
    assert_eq!(r["param"], champions.to_string(), "{r}");
    assert_eq!(r["cursor"], serde_json::json!([3, 3, true]), "{r}");
    assert_eq!(r["transaction"], customers.to_string(), "{r}");
}

/// `ROLLBACK TO SAVEPOINT` after a failed statement, over the extended protocol (Parse, Bind,
/// Execute: what pgjdbc and psqlODBC send): the transaction goes on, as in PostgreSQL. It
/// used to end there — pgwire takes the status from one response per Execute, and no kind of
/// response goes from "failed" back to "in transaction".
#[tokio::test(flavor = "multi_thread")]
async fn rollback_to_savepoint_resumes_over_the_extended_protocol() {
    use tokio_postgres::error::SqlState;
    let tmp = tempfile::tempdir().unwrap();
    people_project(tmp.path());
    let server = Server::start(tmp.path(), &[]);
    let pg = pg_client(&server).await;
    // `execute` and `query` go through Parse/Bind/Execute, never the simple protocol.
    let code = |e: tokio_postgres::Error| e.code().cloned();
    pg.execute("BEGIN READ ONLY", &[]).await.unwrap();
    pg.execute("SAVEPOINT a", &[]).await.unwrap();
    assert!(pg.query("SELECT * FROM no_such_table", &[]).await.is_err());
    let aborted = pg.query("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(code(aborted), Some(SqlState::IN_FAILED_SQL_TRANSACTION));
    pg.execute("ROLLBACK TO SAVEPOINT a", &[]).await.unwrap();
    // Open again, with bound parameters.
    let rows = pg
        .query("SELECT count(*) FROM people WHERE name = $1", &[&"Ann"])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 1);
    // Still inside the block: the savepoint is kept and can be rolled back to again, a new
    // one can be made (both refused outside a block), and COMMIT ends it.
    pg.execute("ROLLBACK TO SAVEPOINT a", &[]).await.unwrap();
    pg.execute("SAVEPOINT b", &[]).await.unwrap();
    pg.execute("COMMIT", &[]).await.unwrap();
    let outside = pg
        .execute("ROLLBACK TO SAVEPOINT a", &[])
        .await
        .unwrap_err();
    assert_eq!(code(outside), Some(SqlState::NO_ACTIVE_SQL_TRANSACTION));
    // A failure with no savepoint to go back to: only ROLLBACK ends the block.
    pg.execute("BEGIN", &[]).await.unwrap();
    assert!(pg.query("SELECT * FROM no_such_table", &[]).await.is_err());
    let unknown = pg
        .execute("ROLLBACK TO SAVEPOINT a", &[])
        .await
        .unwrap_err();
    assert_eq!(code(unknown), Some(SqlState::S_E_INVALID_SPECIFICATION));
    let still = pg.query("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(code(still), Some(SqlState::IN_FAILED_SQL_TRANSACTION));
    pg.execute("ROLLBACK", &[]).await.unwrap();
    assert_eq!(
        pg.query("SELECT count(*) FROM people", &[]).await.unwrap()[0].get::<_, i64>(0),
        2
    );
}
