//! Sources backed by real external systems: PostgreSQL, an S3-compatible server (moto), and a
//! Delta table written by the `deltalake` Python package.
//!
//! `.ci/run` installs and starts them and sets `PANORAMA_REQUIRE_SERVICES=1`, which turns a
//! missing service into a failure. Without it (a laptop with nothing installed) these tests say
//! they were skipped and pass.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output};

fn required() -> bool {
    std::env::var("PANORAMA_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// The value of `var`, or `None` after saying why the test is skipped.
fn service(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if required() => {
            panic!("{var} is not set but PANORAMA_REQUIRE_SERVICES=1: {what} must be available")
        }
        _ => {
            eprintln!("SKIPPED: {var} is not set ({what}); .ci/run sets it up");
            None
        }
    }
}

/// The test database's URL and a client connected to it, or `None` (skipped) without one.
async fn postgres() -> Option<(String, tokio_postgres::Client)> {
    let url = service("PANORAMA_TEST_PG_URL", "a PostgreSQL database")?;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    Some((url, client))
}

fn panorama(args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_panorama"))
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .expect("panorama runs")
}

fn ok(args: &[&str], envs: &[(&str, &str)]) -> String {
    let out = panorama(args, envs);
    assert!(
        out.status.success(),
        "panorama {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn query(dir: &Path, sql: &str, envs: &[(&str, &str)]) -> String {
    ok(
        &["query", "-p", dir.to_str().unwrap(), "--format", "csv", sql],
        envs,
    )
}

#[tokio::test]
async fn postgres_loyalty_members_match_the_csv() {
    let Some(url) = service("PANORAMA_TEST_PG_URL", "a PostgreSQL database") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(
        &[
            "demo",
            "--persons",
            "400",
            "--seed",
            "11",
            "--out",
            dir.to_str().unwrap(),
            "--postgres",
            &url,
            "-q",
        ],
        &[],
    );
    let cfg = std::fs::read_to_string(dir.join("panorama.toml")).unwrap();
    assert!(cfg.contains("format = \"postgres\""), "{cfg}");
    ok(&["run", "-p", dir.to_str().unwrap(), "-q"], &[]);

    // Same rows and values as the CSV the table was loaded from.
    let csv = common::read_text(&dir.join("data/loyalty_members.csv"));
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(';').collect())
        .collect();
    let points: i64 = rows.iter().map(|r| r[9].parse::<i64>().unwrap()).sum();
    let got = query(
        dir,
        "SELECT count(*) AS n, sum(points) AS p FROM loyalty_members",
        &[],
    );
    assert_eq!(got, format!("n,p\n{},{}\n", rows.len(), points));

    let first = &rows[0];
    let got = query(
        dir,
        &format!(
            "SELECT first_name, last_name, CAST(birth_date AS VARCHAR) AS b, consent_email, arrow_typeof(joined_at) AS t \
             FROM loyalty_members WHERE member_id = '{}'",
            first[0]
        ),
        &[],
    );
    let birth = if first[6].is_empty() { "" } else { first[6] };
    assert_eq!(
        got,
        format!(
            "first_name,last_name,b,consent_email,t\n{},{},{birth},{},Timestamp(µs)\n",
            first[2], first[3], first[10]
        )
    );
}

#[tokio::test]
async fn postgres_types_map_to_arrow() {
    let Some((url, client)) = postgres().await else {
        return;
    };
    client
        .batch_execute(
            "DROP TABLE IF EXISTS public.panorama_types;
             CREATE TABLE public.panorama_types (id int2 PRIMARY KEY, n numeric(10,2), ts timestamptz,
               d date, ok boolean, doc jsonb, name varchar(20), big bigint);
             INSERT INTO public.panorama_types VALUES
               (1, 12.50, '2024-05-01 10:00:00+02', '2024-05-01', true, '{\"a\": 1}', 'Jürgen', 9007199254740993),
               (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
        )
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("panorama.toml"),
        format!("[sources.t]\nformat = \"postgres\"\nlocation = \"{url}\"\ntable = \"panorama_types\"\nprimary_key = \"id\"\n"),
    )
    .unwrap();
    ok(&["run", "-p", dir.to_str().unwrap(), "-q"], &[]);
    let got = query(
        dir,
        "SELECT id, n, CAST(ts AS VARCHAR) AS ts, CAST(d AS VARCHAR) AS d, ok, doc, name, big, \
         arrow_typeof(id) AS ti, arrow_typeof(n) AS tn FROM t ORDER BY id",
        &[],
    );
    assert_eq!(
        got,
        "id,n,ts,d,ok,doc,name,big,ti,tn\n\
         1,12.5,2024-05-01T08:00:00,2024-05-01,true,\"{\"\"a\"\": 1}\",Jürgen,9007199254740993,Int64,Float64\n\
         2,,,,,,,,Int64,Float64\n"
    );
}

/// Create a bucket on the S3-compatible server with a plain (unsigned) HTTP request.
fn create_bucket(endpoint: &str, bucket: &str) {
    let url = url::Url::parse(endpoint).unwrap();
    let addr = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(80));
    let mut s = std::net::TcpStream::connect(&addr).expect("S3 endpoint reachable");
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(
        resp.starts_with("HTTP/1.1 200") || resp.contains("BucketAlreadyOwnedByYou"),
        "{resp}"
    );
}

#[tokio::test]
async fn s3_sources_with_globs() {
    let Some(endpoint) = service(
        "PANORAMA_TEST_S3_ENDPOINT",
        "an S3-compatible server (moto)",
    ) else {
        return;
    };
    let bucket = format!("panorama-test-{}", std::process::id());
    create_bucket(&endpoint, &bucket);
    let envs = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ];
    for (k, v) in envs {
        std::env::set_var(k, v);
    }
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("local");
    ok(
        &[
            "demo",
            "--persons",
            "300",
            "--seed",
            "5",
            "--out",
            local.to_str().unwrap(),
            "-q",
        ],
        &[],
    );
    ok(&["run", "-p", local.to_str().unwrap(), "-q"], &[]);

    // Upload the demo's files with object_store, as any lake writer would.
    use object_store::{ObjectStoreExt, PutPayload};
    let store = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(&bucket)
        .build()
        .unwrap();
    for rel in ["data/crm_contacts.csv", "data/webshop/customers.parquet"] {
        let bytes = std::fs::read(local.join(rel)).unwrap();
        store
            .put(
                &object_store::path::Path::from(format!("lake/{rel}")),
                PutPayload::from(bytes),
            )
            .await
            .unwrap();
    }
    for entry in std::fs::read_dir(local.join("data/web_events")).unwrap() {
        let entry = entry.unwrap();
        let bytes = std::fs::read(entry.path()).unwrap();
        let key = format!("lake/events/{}", entry.file_name().to_string_lossy());
        store
            .put(
                &object_store::path::Path::from(key),
                PutPayload::from(bytes),
            )
            .await
            .unwrap();
    }

    let remote = tmp.path().join("remote");
    std::fs::create_dir_all(&remote).unwrap();
    std::fs::write(
        remote.join("panorama.toml"),
        format!(
            "[sources.crm_contacts]\nlocation = \"s3://{bucket}/lake/data/crm_contacts.csv\"\nprimary_key = \"contact_id\"\n\n\
             [sources.webshop_customers]\nlocation = \"s3://{bucket}/lake/data/webshop/customers.parquet\"\nprimary_key = \"customer_id\"\n\n\
             [sources.web_events]\nlocation = \"s3://{bucket}/lake/events/*.parquet\"\nformat = \"parquet\"\nprimary_key = \"event_id\"\n"
        ),
    )
    .unwrap();
    ok(&["run", "-p", remote.to_str().unwrap(), "-q"], &envs);
    for (table, key) in [
        ("crm_contacts", "contact_id"),
        ("webshop_customers", "customer_id"),
        ("web_events", "event_id"),
    ] {
        let sql = format!("SELECT count(*) AS n, min({key}) AS lo, max({key}) AS hi FROM {table}");
        assert_eq!(
            query(&remote, &sql, &envs),
            query(&local, &sql, &[]),
            "{table}"
        );
    }
    let files = query(
        &remote,
        "SELECT files, location FROM source_stats WHERE source = 'web_events'",
        &envs,
    );
    assert!(
        files.contains(&format!("s3://{bucket}/lake/events/*.parquet")),
        "{files}"
    );

    // Exports write to the object store: a Parquet file another project reads back.
    common::append(
        &remote.join("panorama.toml"),
        &format!(
            "\n[exports.to_lake]\ntable = \"crm_contacts\"\nkey = \"contact_id\"\ncolumns = [\"email\"]\n\
             file = {{ path = \"s3://{bucket}/exports/contacts.parquet\" }}\n"
        ),
    );
    ok(
        &["export", "-p", remote.to_str().unwrap(), "-q", "to_lake"],
        &envs,
    );
    let back = tmp.path().join("back");
    std::fs::create_dir_all(&back).unwrap();
    std::fs::write(
        back.join("panorama.toml"),
        format!("[sources.contacts]\nlocation = \"s3://{bucket}/exports/contacts.parquet\"\nprimary_key = \"contact_id\"\n"),
    )
    .unwrap();
    ok(&["run", "-p", back.to_str().unwrap(), "-q"], &envs);
    assert_eq!(
        query(
            &back,
            "SELECT count(*) AS n, count(DISTINCT email) AS e FROM contacts",
            &envs
        ),
        query(
            &local,
            "SELECT count(*) AS n, count(DISTINCT email) AS e FROM crm_contacts",
            &[]
        ),
    );

    // A missing object is an error naming the URL.
    std::fs::write(
        remote.join("panorama.toml"),
        format!(
            "[sources.x]\nlocation = \"s3://{bucket}/nothing/here.csv\"\nprimary_key = \"id\"\n"
        ),
    )
    .unwrap();
    let out = panorama(&["run", "-p", remote.to_str().unwrap(), "-q"], &envs);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("no object found")
            && err.contains("nothing/here.csv"),
        "{err}"
    );
}

#[test]
fn delta_table_written_by_deltalake() {
    let Some(python) = common::python_with_deltalake() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let table = tmp.path().join("lake/members");
    // Three commits: a partitioned write, an append, and a delete.
    let script = format!(
        r#"
import pyarrow as pa
from deltalake import write_deltalake, DeltaTable
path = {path:?}
t = pa.table({{"member_id": ["M1", "M2", "M3", "M4"], "name": ["Jürgen", "Ann", "Bo", "Cé"],
               "points": pa.array([10, 20, 30, 40], pa.int64()), "country": ["DE", "GB", "DE", "FR"]}})
write_deltalake(path, t, partition_by=["country"])
write_deltalake(path, pa.table({{"member_id": ["M5"], "name": ["Eve"], "points": pa.array([50], pa.int64()), "country": ["NL"]}}), mode="append")
DeltaTable(path).delete("member_id = 'M3'")
print(DeltaTable(path).version())
"#,
        path = table.to_str().unwrap()
    );
    assert_eq!(common::python_ok(&python, &script), "2");

    let dir = tmp.path();
    std::fs::write(
        dir.join("panorama.toml"),
        "[sources.members]\nformat = \"delta\"\nlocation = \"lake/members\"\nprimary_key = \"member_id\"\n",
    )
    .unwrap();
    ok(&["run", "-p", dir.to_str().unwrap(), "-q"], &[]);
    let got = query(
        dir,
        "SELECT member_id, name, points, country FROM members ORDER BY member_id",
        &[],
    );
    assert_eq!(
        got,
        "member_id,name,points,country\nM1,Jürgen,10,DE\nM2,Ann,20,GB\nM4,Cé,40,FR\nM5,Eve,50,NL\n"
    );

    // A directory without a Delta log is refused with a clear message.
    std::fs::create_dir_all(dir.join("lake/plain")).unwrap();
    std::fs::write(
        dir.join("panorama.toml"),
        "[sources.members]\nformat = \"delta\"\nlocation = \"lake/plain\"\nprimary_key = \"member_id\"\n",
    )
    .unwrap();
    let out = panorama(&["run", "-p", dir.to_str().unwrap(), "-q"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("not a Delta table"),
        "{err}"
    );
}

#[test]
fn https_style_location_over_http() {
    // Python's standard library serves a directory over HTTP on loopback.
    let tmp = tempfile::tempdir().unwrap();
    let www = tmp.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("export.csv"), "id,name\n1,Ann\n2,Bo\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
            www.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let Ok(mut server) = server else {
        if required() {
            panic!("python3 is needed for the HTTP source test");
        }
        eprintln!("SKIPPED: python3 not found");
        return;
    };
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let dir = tmp.path().join("proj");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("panorama.toml"),
        format!("[sources.remote]\nlocation = \"http://127.0.0.1:{port}/export.csv\"\nprimary_key = \"id\"\n"),
    )
    .unwrap();
    let out = panorama(&["run", "-p", dir.to_str().unwrap(), "-q"], &[]);
    let got = if out.status.success() {
        query(&dir, "SELECT id, name FROM remote ORDER BY id", &[])
    } else {
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    std::fs::write(
        dir.join("panorama.toml"),
        format!("[sources.remote]\nlocation = \"http://127.0.0.1:{port}/missing.csv\"\nprimary_key = \"id\"\n"),
    )
    .unwrap();
    let missing = panorama(&["run", "-p", dir.to_str().unwrap(), "-q"], &[]);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(got, "id,name\n1,Ann\n2,Bo\n");
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        !missing.status.success() && err.contains("missing.csv"),
        "{err}"
    );
}

mod common;

/// Exports upsert by key into PostgreSQL and delete the keys that left.
#[tokio::test]
async fn postgres_exports_upsert_and_delete_by_key() {
    let Some((url, client)) = postgres().await else {
        return;
    };
    client
        .batch_execute("DROP SCHEMA IF EXISTS panorama_export CASCADE")
        .await
        .unwrap();
    let tmp = common::shop_project();
    let dir = tmp.path();
    common::append(
        &dir.join("panorama.toml"),
        r#"
[exports.crm]
query = "SELECT customer_id, first_name, email, lifetime_spend, as_of() AS as_of FROM customer_profiles"
mode = "incremental"
postgres = { url = "${PANORAMA_TEST_PG_URL}", table = "panorama_export.customers" }

[exports.mirror]
table = "unified_customers"
columns = ["first_name"]
postgres = { url = "${PANORAMA_TEST_PG_URL}", table = "panorama_export.mirror" }
"#,
    );
    let env = [("PANORAMA_TEST_PG_URL", url.as_str())];
    let d = dir.to_str().unwrap();
    ok(&["run", "-q", "-p", d], &env);
    ok(&["export", "-q", "-p", d, "--all"], &env);
    let rows = client
        .query(
            "SELECT customer_id, first_name, email, lifetime_spend, as_of::text FROM panorama_export.customers ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 6);
    let anna = &rows[0];
    assert_eq!(anna.get::<_, String>(0), "cus_000000001");
    assert_eq!(anna.get::<_, String>(1), "Anna");
    assert_eq!(anna.get::<_, f64>(3), 300.0);
    assert_eq!(anna.get::<_, String>(4), "2026-07-01 00:00:00");

    // Ben changes, Dirk leaves; a row someone else put in the mirror goes with a full export.
    common::edit(
        &dir.join("data/customers.csv"),
        "ben@example.com",
        "ben@example.org",
    );
    common::edit(
        &dir.join("data/customers.csv"),
        "K4,Dirk,Eck,dirk@example.com,NL\n",
        "",
    );
    client
        .batch_execute("INSERT INTO panorama_export.mirror VALUES ('stray', 'Nobody')")
        .await
        .unwrap();
    ok(&["run", "-q", "-p", d], &env);
    ok(&["export", "-q", "-p", d, "--all"], &env);
    let rows = client
        .query(
            "SELECT customer_id, email FROM panorama_export.customers ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got.len(), 5);
    assert!(got.contains(&("cus_000000002".into(), "ben@example.org".into())));
    assert!(!got.iter().any(|(id, _)| id == "cus_000000004"));
    let mirror: i64 = client
        .query_one("SELECT count(*) FROM panorama_export.mirror", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(mirror, 5);
    assert_eq!(
        query(
            dir,
            "SELECT upserts, deletes, outcome FROM export_log WHERE export = 'crm' ORDER BY started_at",
            &env
        ),
        "upserts,deletes,outcome\n6,0,succeeded\n1,1,succeeded\n"
    );
    // Wrong credentials: a clear error, the password not shown, nothing confirmed.
    let bad = url.replacen("panorama:panorama@", "panorama:wrong@", 1);
    let out = panorama(
        &["export", "-p", d, "crm"],
        &[("PANORAMA_TEST_PG_URL", bad.as_str())],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("panorama_export.customers") && !err.contains("wrong"),
        "{err}"
    );
}

#[tokio::test]
async fn postgres_incremental_source_reads_what_changed() {
    let Some((url, client)) = postgres().await else {
        return;
    };
    client
        .batch_execute(
            "DROP TABLE IF EXISTS public.panorama_changes;
             CREATE TABLE public.panorama_changes (id int PRIMARY KEY, name text, changed_at timestamp);
             INSERT INTO public.panorama_changes VALUES
               (1, 'Ann', '2026-11-01 10:00:00.000001'), (2, 'Bob', '2026-11-01 10:00:00.000002'),
               (3, 'Cid', '2026-11-01 10:00:00.000003');",
        )
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("panorama.toml"),
        format!(
            "[sources.members]\nformat = \"postgres\"\nlocation = \"{url}\"\ntable = \"panorama_changes\"\n\
             primary_key = \"member_id\"\nrename = {{ id = \"member_id\" }}\nrefresh = \"incremental\"\n\
             updated_at_column = \"changed_at\"\n"
        ),
    )
    .unwrap();
    let d = dir.to_str().unwrap();
    let rows = |dir: &Path| {
        query(
            dir,
            "SELECT member_id, name FROM members ORDER BY member_id",
            &[],
        )
    };
    ok(&["run", "-p", d, "-q"], &[]);
    assert_eq!(rows(dir), "member_id,name\n1,Ann\n2,Bob\n3,Cid\n");
    // Bob changes and Dan arrives (both stamped later); Cid changes without a new stamp and
    // Ann is deleted: an incremental read sees neither.
    client
        .batch_execute(
            "UPDATE public.panorama_changes SET name = 'Bobby', changed_at = '2026-11-02 09:00:00' WHERE id = 2;
             INSERT INTO public.panorama_changes VALUES (4, 'Dan', '2026-11-02 09:30:00');
             UPDATE public.panorama_changes SET name = 'Cyd' WHERE id = 3;
             DELETE FROM public.panorama_changes WHERE id = 1;",
        )
        .await
        .unwrap();
    ok(&["run", "-p", d, "-q"], &[]);
    assert_eq!(rows(dir), "member_id,name\n1,Ann\n2,Bobby\n3,Cid\n4,Dan\n");
    assert_eq!(
        query(dir, "SELECT rows_read, rows_loaded FROM source_stats", &[]),
        "rows_read,rows_loaded\n2,4\n",
        "only the two changed rows were read"
    );
    // --full reads the whole table again: Cid's change and Ann's deletion show.
    ok(&["run", "-p", d, "-q", "--full"], &[]);
    assert_eq!(rows(dir), "member_id,name\n2,Bobby\n3,Cyd\n4,Dan\n");
    // A column that is not a timestamp is refused with its type.
    std::fs::write(
        dir.join("panorama.toml"),
        format!(
            "[sources.members]\nformat = \"postgres\"\nlocation = \"{url}\"\ntable = \"panorama_changes\"\n\
             primary_key = \"id\"\nrefresh = \"incremental\"\nupdated_at_column = \"name\"\n"
        ),
    )
    .unwrap();
    let out = panorama(&["run", "-p", d, "-q"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("must be a timestamp column, it is text"),
        "{err}"
    );
}

/// `panorama init --from postgres://…#schema.table`: a table's columns are guessed like a
/// file's, and the password in the URL is written as `${PGPASSWORD}`, never in the config.
#[tokio::test]
async fn init_from_a_postgres_table_keeps_the_password_out_of_the_config() {
    let Some((url, client)) = postgres().await else {
        return;
    };
    client
        .batch_execute(
            "DROP TABLE IF EXISTS public.panorama_leden;
             CREATE TABLE public.panorama_leden (lidnummer text PRIMARY KEY, voornaam text,
               achternaam text, email text, geboortedatum date, punten int);
             INSERT INTO public.panorama_leden SELECT 'L' || g,
               (ARRAY['Anna','Jan','Piet','Kees'])[1 + g % 4], (ARRAY['Jansen','Bakker','Smit'])[1 + g % 3],
               'p' || g || '@example.nl', date '1960-01-01' + g * 97, g FROM generate_series(1, 50) g;",
        )
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    let from = format!("{url}#public.panorama_leden");
    ok(&["init", dir, "--from", &from, "-q"], &[]);
    let config = std::fs::read_to_string(tmp.path().join("panorama.toml")).unwrap();
    assert!(
        config.contains("format = \"postgres\"\ntable = \"public.panorama_leden\""),
        "{config}"
    );
    assert!(config.contains("primary_key = \"lidnummer\""), "{config}");
    assert!(config.contains("first_name = \"voornaam\""), "{config}");
    assert!(
        config.contains("birth_date = \"geboortedatum\""),
        "{config}"
    );
    let password = url::Url::parse(&url)
        .unwrap()
        .password()
        .map(str::to_string)
        .unwrap_or_default();
    if !password.is_empty() {
        assert!(config.contains(":${PGPASSWORD}@"), "{config}");
        assert!(!config.contains(&format!(":{password}@")), "{config}");
    }
    // Doctor tries the credentials: a wrong password is an error at the location's line.
    if !password.is_empty() {
        let out = panorama(&["doctor", "-p", dir], &[("PGPASSWORD", "wrong")]);
        let report = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{report}");
        let line = config
            .lines()
            .position(|l| l.starts_with("location = "))
            .unwrap()
            + 1;
        assert!(
            report.contains(&format!(
                "panorama.toml:{line}: sources.panorama_leden.location:"
            )),
            "{report}"
        );
        assert!(
            !report.contains(":wrong@"),
            "the password is not printed: {report}"
        );
    }
    ok(
        &["run", "-p", dir, "-q"],
        &[("PGPASSWORD", password.as_str())],
    );
    assert_eq!(
        query(
            tmp.path(),
            "SELECT count(*) AS n, count(birth_date) AS b FROM unify_records",
            &[]
        ),
        "n,b\n50,50\n"
    );
    ok(&["doctor", "-p", dir], &[("PGPASSWORD", password.as_str())]);
}
