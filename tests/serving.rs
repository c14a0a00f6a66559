//! `panorama serve` with real clients: psql, psycopg, the ADBC Flight SQL driver, HTTP, and
//! Debian's Chromium driven by Playwright. `.ci/run` installs them and sets
//! `PANORAMA_REQUIRE_SERVICES=1`, which turns a missing client into a failure; without it the
//! parts needing a missing client say they are skipped.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A demo project, run.
fn demo_run(persons: &str) -> tempfile::TempDir {
    let tmp = demo(persons, "5");
    ok(&["run", "-p", p(tmp.path()), "-q"]);
    tmp
}

fn psql(conninfo: &str, sql: &str, password: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new("psql");
    cmd.args([
        "-X",
        "-A",
        "-t",
        "-F",
        ",",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        conninfo,
        "-c",
        sql,
    ]);
    cmd.env("PGCONNECT_TIMEOUT", "10");
    match password {
        Some(p) => cmd.env("PGPASSWORD", p),
        None => cmd.env_remove("PGPASSWORD").env("PGPASSWORD", ""),
    };
    let out = cmd.output().expect("psql runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn client(args: &[&str]) -> Vec<Value> {
    let out = Command::new("python3")
        .arg(clients_dir().join("sql_client.py"))
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "sql_client.py {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout).unwrap() {
        Value::Array(a) => a,
        other => panic!("{other}"),
    }
}

async fn get(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn post(url: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// DBeaver's connect-time and schema-browsing queries.
const DBEAVER_STARTUP: &[&str] = &[
    "SET extra_float_digits = 3",
    "SET application_name = 'DBeaver 25.1.5 - Main <postgres>'",
    "SELECT current_schema(),session_user",
    "SELECT n.oid,n.*,d.description FROM pg_catalog.pg_namespace n LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=n.oid AND d.objsubid=0 AND d.classoid='pg_namespace'::regclass ORDER BY nspname",
    "SELECT n.nspname = ANY(current_schemas(true)), n.nspname, t.typname FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON t.typnamespace = n.oid WHERE t.oid = 1034",
    "SHOW search_path",
    "SELECT db.oid,db.* FROM pg_catalog.pg_database db WHERE datname='panorama'",
    "SELECT * FROM pg_catalog.pg_settings where name='standard_conforming_strings'",
    "SELECT version()",
    "SELECT reltype FROM pg_catalog.pg_class WHERE 1<>1 LIMIT 1",
    "SELECT c.oid,c.*,d.description FROM pg_catalog.pg_class c LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_class'::regclass WHERE c.relkind not in ('i','I','c')",
    "SELECT a.attname, a.atttypid FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid WHERE c.relname = 'unified_customers' AND a.attnum > 0",
];

/// The same analytical query everywhere: segment sizes with rounded spend, as text.
const SEGMENT_SQL: &str = "SELECT m.segment, count(*) AS members, \
     CAST(round(sum(p.lifetime_spend), 2) AS VARCHAR) AS spend \
     FROM segment_members m JOIN customer_profiles p ON p.customer_id = m.customer_id \
     GROUP BY m.segment ORDER BY m.segment";

/// A row of SEGMENT_SQL as `segment,members,spend`.
fn segment_line(r: &impl std::ops::Index<&'static str, Output = Value>) -> String {
    format!(
        "{},{},{}",
        as_text(&r["segment"]),
        as_text(&r["members"]),
        as_text(&r["spend"])
    )
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn table_text(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(as_text)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_clients_card_and_snapshots() {
    let tmp = demo_run("300");
    let dir = tmp.path();
    // The busiest customer with an e-mail: a full card with a second timeline page.
    let who = json_rows(
        dir,
        "SELECT p.customer_id, p.email, p.first_name, p.last_name, p.phone_e164, \
           CAST(round(p.lifetime_spend, 2) AS VARCHAR) AS spend, p.order_count, \
           (SELECT count(*) FROM activities a WHERE a.customer_id = p.customer_id) AS acts \
         FROM customer_profiles p WHERE p.email IS NOT NULL AND p.first_name IS NOT NULL \
         ORDER BY acts DESC, p.customer_id LIMIT 1",
    )
    .remove(0);
    let id = as_text(&who["customer_id"]);
    let email = as_text(&who["email"]);
    let acts = who["acts"].as_u64().unwrap();
    let segments: Vec<String> = json_rows(
        dir,
        &format!("SELECT segment FROM segment_members WHERE customer_id = '{id}' ORDER BY segment"),
    )
    .iter()
    .map(|r| as_text(&r["segment"]))
    .collect();
    let mut server = Server::start(dir, &[]);
    let base = format!("http://{}", server.http);

    // --- HTTP: health, lookups by every identifier, timeline pages, segments, SQL ---------
    let (status, health) = get(&format!("{base}/api/health"), None).await;
    assert_eq!(status, 200);
    let run_before = as_text(&health["run_id"]);
    assert_eq!(
        health["customers"].as_u64().unwrap(),
        json_rows(dir, "SELECT count(*) AS n FROM customer_profiles")[0]["n"]
            .as_u64()
            .unwrap()
    );
    // Looked up as a person types it: other case, spaces.
    let typed = format!("  {}  ", email.to_uppercase());
    let url = format!("{base}/api/customers?email={}", urlencode(&typed));
    let (status, found) = get(&url, None).await;
    assert_eq!(status, 200, "{found}");
    let ids: Vec<String> = found["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| as_text(&c["customer_id"]))
        .collect();
    assert!(ids.contains(&id), "{email} → {ids:?}");
    let (status, card) = get(&format!("{base}/api/customers/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(as_text(&card["profile"]["email"]), email);
    assert_eq!(
        format!(
            "{:.2}",
            card["measures"]["lifetime_spend"].as_f64().unwrap()
        ),
        format!("{:.2}", as_text(&who["spend"]).parse::<f64>().unwrap())
    );
    assert_eq!(card["measures"]["order_count"], who["order_count"]);
    // Where the e-mail and first name came from, as unified_customers_provenance says.
    let from = json_rows(
        dir,
        &format!(
            "SELECT email_source, email_record_id, first_name_source, first_name_record_id \
             FROM unified_customers_provenance WHERE customer_id = '{id}'"
        ),
    )
    .remove(0);
    assert_eq!(card["provenance"]["email"]["source"], from["email_source"]);
    assert_eq!(
        card["provenance"]["email"]["record_id"],
        from["email_record_id"]
    );
    assert_eq!(
        card["provenance"]["first_name"]["record_id"],
        from["first_name_record_id"]
    );
    assert!(card["profile"].get("email_source").is_none(), "{card}");
    let got_segments: Vec<String> = card["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(as_text)
        .collect();
    let mut sorted = got_segments.clone();
    sorted.sort();
    assert_eq!(sorted, segments);
    assert_eq!(card["timeline_total"].as_u64().unwrap(), acts);
    // The second page of the timeline is SQL's rows 6..10, newest first.
    let (status, page) = get(
        &format!("{base}/api/customers/{id}/timeline?offset=5&limit=5"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let want: Vec<String> = json_rows(
        dir,
        &format!(
            "SELECT CAST(ts AS VARCHAR) AS ts FROM activities WHERE customer_id = '{id}' \
             ORDER BY ts DESC LIMIT 5 OFFSET 5"
        ),
    )
    .iter()
    .map(|r| as_text(&r["ts"]).replace(' ', "T"))
    .collect();
    let got: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| as_text(&i["ts"]))
        .collect();
    assert_eq!(got.len(), want.len().min(5));
    for (g, w) in got.iter().zip(&want) {
        assert!(g.starts_with(&w[..19]), "timeline {g} vs {w}");
    }
    if let Some(phone) = who["phone_e164"].as_str() {
        let national = phone.to_string();
        let (_, by_phone) = get(
            &format!("{base}/api/customers?phone={}", urlencode(&national)),
            None,
        )
        .await;
        assert!(by_phone["customers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| as_text(&c["customer_id"]) == id));
    }
    let record = json_rows(
        dir,
        &format!("SELECT source, record_id FROM customer_links WHERE customer_id = '{id}' LIMIT 1"),
    )
    .remove(0);
    let (_, by_record) = get(
        &format!(
            "{base}/api/customers?source={}&id={}",
            as_text(&record["source"]),
            as_text(&record["record_id"])
        ),
        None,
    )
    .await;
    assert_eq!(as_text(&by_record["customers"][0]["customer_id"]), id);
    // By name: every customer whose first and last name are the card's, as SQL finds them
    // (the search shows 20 at most), and by customer id.
    let (first, last) = (
        as_text(&card["profile"]["first_name"]),
        as_text(&card["profile"]["last_name"]),
    );
    let namesakes: Vec<String> = json_rows(
        dir,
        &format!(
            "SELECT customer_id FROM unified_customers \
             WHERE lower(first_name) = lower('{}') AND lower(last_name) = lower('{}') \
             ORDER BY customer_id",
            first.replace('\'', "''"),
            last.replace('\'', "''")
        ),
    )
    .iter()
    .map(|r| as_text(&r["customer_id"]))
    .collect();
    let (status, by_name) = get(
        &format!(
            "{base}/api/customers?q={}",
            urlencode(&format!("{first} {last}"))
        ),
        None,
    )
    .await;
    assert_eq!(status, 200, "{by_name}");
    let named: Vec<String> = by_name["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| as_text(&c["customer_id"]))
        .collect();
    assert!(named.contains(&id), "{first} {last} → {named:?}");
    if named.len() < 20 {
        // Whole-word matches may add a namesake with a middle name; none is missed.
        for n in &namesakes {
            assert!(named.contains(n), "{first} {last}: {n} not in {named:?}");
        }
    }
    let (_, by_id) = get(&format!("{base}/api/customers?q={id}"), None).await;
    assert_eq!(as_text(&by_id["customers"][0]["customer_id"]), id);
    let (status, missing) = get(&format!("{base}/api/customers/cus_nobody"), None).await;
    assert_eq!(status, 404, "{missing}");
    let (status, bad) = get(&format!("{base}/api/customers?email=not-an-address"), None).await;
    assert_eq!(status, 400, "{bad}");
    let (_, segs) = get(&format!("{base}/api/segments"), None).await;
    let want_sizes = json_rows(
        dir,
        "SELECT segment, count(*) AS n FROM segment_members GROUP BY segment ORDER BY segment",
    );
    let mut got_sizes: Vec<(String, u64)> = segs["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (as_text(&s["name"]), s["size"].as_u64().unwrap()))
        .collect();
    got_sizes.sort();
    let want_sizes: Vec<(String, u64)> = want_sizes
        .iter()
        .map(|r| (as_text(&r["segment"]), r["n"].as_u64().unwrap()))
        .collect();
    assert_eq!(got_sizes, want_sizes);

    // --- The same analytical query: panorama query, HTTP, psql, psycopg, ADBC -------------
    let reference: Vec<String> = json_rows(dir, SEGMENT_SQL)
        .iter()
        .map(segment_line)
        .collect();
    assert!(!reference.is_empty());
    let (status, http_sql) = post(
        &format!("{base}/api/sql"),
        None,
        serde_json::json!({ "sql": SEGMENT_SQL }),
    )
    .await;
    assert_eq!(status, 200, "{http_sql}");
    let http_rows: Vec<String> = http_sql["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(segment_line)
        .collect();
    assert_eq!(http_rows, reference, "HTTP /api/sql");
    let conninfo = format!(
        "host=127.0.0.1 port={} dbname=panorama user=analyst",
        server.pg_port()
    );
    if have("psql", "psql", &["--version"]) {
        let (ok, out) = psql(&conninfo, SEGMENT_SQL, None);
        assert!(ok, "{out}");
        let lines: Vec<String> = out.lines().map(str::to_string).collect();
        assert_eq!(lines, reference, "psql");
        // psql's own catalog queries: \dt lists tables, \d describes one.
        let (ok, out) = psql(&conninfo, "\\dt", None);
        assert!(ok && out.contains("unified_customers"), "\\dt: {out}");
        let (ok, out) = psql(&conninfo, "\\d customer_profiles", None);
        assert!(ok && out.contains("lifetime_spend"), "\\d: {out}");
        // A table picker's list, as BI tools write it: a table bare when its schema is on the
        // search path, else qualified (an IN-subquery inside CASE in the select list).
        let (ok, out) = psql(
            &conninfo,
            "SELECT CASE WHEN quote_ident(table_schema) IN \
               (SELECT trim(p) FROM unnest(string_to_array(current_setting('search_path'), ',')) AS sp(p)) \
             THEN quote_ident(table_name) ELSE quote_ident(table_schema) || '.' || quote_ident(table_name) END AS t \
             FROM information_schema.tables WHERE table_name IN ('unified_customers', 'pg_class') ORDER BY 1",
            None,
        );
        assert!(ok, "{out}");
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            ["pg_catalog.pg_class", "unified_customers"],
            "{out}"
        );
        // Read-only, with PostgreSQL's own error code for it.
        let (ok, out) = psql(&conninfo, "CREATE TABLE x (a int)", None);
        assert!(!ok && out.contains("read-only"), "{out}");
        let (ok, out) = psql(&conninfo, "COPY unified_customers TO '/tmp/leak.csv'", None);
        assert!(!ok && out.contains("read-only"), "{out}");
        let (ok, out) = psql(&conninfo, "INSERT INTO runs VALUES ('x')", None);
        assert!(!ok && out.contains("read-only"), "{out}");
        // Files are not tables here.
        let (ok, out) = psql(&conninfo, "SELECT * FROM '/etc/passwd'", None);
        assert!(!ok, "{out}");
    }
    let python = have("python3 with psycopg", "python3", &["-c", "import psycopg"]);
    if python {
        let res = client(&[
            "--param",
            "0",
            "psycopg",
            &conninfo,
            "SELECT count(*) AS n FROM customer_profiles WHERE lifetime_spend > CAST(%s AS DOUBLE PRECISION)",
        ]);
        let want = json_rows(
            dir,
            "SELECT count(*) AS n FROM customer_profiles WHERE lifetime_spend > 0",
        )[0]["n"]
            .clone();
        assert_eq!(
            res[0]["rows"][0][0], want,
            "psycopg with a bound parameter: {res:?}"
        );
        // What DBeaver and psycopg ask on connect.
        let res = client(&[
            "psycopg",
            &conninfo,
            SEGMENT_SQL,
            "SELECT version()",
            "SHOW search_path",
            "SELECT current_schema()",
            "SELECT n.nspname FROM pg_catalog.pg_namespace n ORDER BY 1",
            "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relname = 'customer_profiles'",
            "SELECT table_name FROM information_schema.tables WHERE table_name = 'segment_members'",
            "SELECT typname FROM pg_catalog.pg_type WHERE typname = 'int4'",
            "DROP TABLE unified_customers",
        ]);
        assert_eq!(
            table_text(res[0]["rows"].as_array().unwrap()),
            reference,
            "psycopg: {:?}",
            res[0]
        );
        for (i, r) in res.iter().enumerate().skip(1).take(7) {
            assert!(r.get("error").is_none(), "psycopg statement {i}: {r}");
        }
        assert!(!res[4]["rows"].as_array().unwrap().is_empty());
        assert_eq!(res[5]["rows"][0][0], "customer_profiles");
        assert_eq!(res[6]["rows"][0][0], "segment_members");
        assert!(
            as_text(&res[8]["error"]).contains("read-only"),
            "{}",
            res[8]
        );
        // What DBeaver (through the PostgreSQL JDBC driver) sends when it connects and
        // browses a schema, as datafusion-postgres' own tests record them.
        let mut args = vec!["psycopg", conninfo.as_str()];
        args.extend(DBEAVER_STARTUP);
        let res = client(&args);
        for (sql, r) in DBEAVER_STARTUP.iter().zip(&res) {
            assert!(r.get("error").is_none(), "DBeaver's {sql}: {r}");
        }
    }
    if have(
        "python3 with adbc_driver_flightsql",
        "python3",
        &["-c", "import adbc_driver_flightsql.dbapi"],
    ) {
        let uri = format!("grpc://{}", server.flight);
        let res = client(&[
            "adbc",
            &uri,
            SEGMENT_SQL,
            "CREATE TABLE x AS SELECT 1",
            "SELECT customer_id, lifetime_spend FROM customer_profiles LIMIT 3",
        ]);
        assert_eq!(
            table_text(res[0]["rows"].as_array().unwrap()),
            reference,
            "ADBC: {:?}",
            res[0]
        );
        assert!(
            res[1].get("error").is_some(),
            "DDL over Flight SQL must fail: {}",
            res[1]
        );
        // Arrow types arrive as the engine made them, not converted to text.
        assert_eq!(res[2]["arrow_types"][1], "double", "{}", res[2]);
    }

    // --- Malformed protocol input and broken connections do not take the server down -----
    for addr in [&server.pg, &server.flight, &server.http] {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let _ = s.write_all(b"\x00\x00\x00\x08\x04\xd2\x16\x2fGARBAGE\xff\xfe\r\n\r\n");
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf);
    }
    {
        // A client that asks for a big result and disappears mid-stream.
        let mut c = std::net::TcpStream::connect(&server.pg).unwrap();
        drop(c.write_all(b"\x00\x00\x00\x08"));
    }
    if have("psql", "psql", &["--version"]) {
        let mut big = Command::new("psql")
            .args([
                "-X",
                "-d",
                &conninfo,
                "-c",
                "SELECT * FROM activities a CROSS JOIN activities b",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(700));
        big.kill().unwrap();
        let _ = big.wait();
    }
    assert!(server.alive(), "the server died");
    let (status, _) = get(&format!("{base}/api/health"), None).await;
    assert_eq!(status, 200, "the server still answers");

    // --- The customer card in a real Chromium ---------------------------------------------
    if have(
        "Playwright and Chromium",
        "python3",
        &[
            "-c",
            "import playwright, shutil, sys; sys.exit(0 if shutil.which('chromium') else 1)",
        ],
    ) {
        let name = format!(
            "{} {}",
            as_text(&who["first_name"]),
            as_text(&who["last_name"])
        );
        let out = Command::new("python3")
            .arg(clients_dir().join("card_browser.py"))
            .args([&format!("{base}/"), &name, &id])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "card_browser.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(as_text(&seen["customer_id"]), id, "{seen}");
        assert_eq!(
            as_text(&seen["name"]).to_lowercase(),
            name.trim().to_lowercase(),
            "{seen}"
        );
        assert_eq!(
            as_text(&seen["kpis"]["lifetime_spend"]),
            format!("{:.2}", as_text(&who["spend"]).parse::<f64>().unwrap()),
            "{seen}"
        );
        assert_eq!(
            as_text(&seen["kpis"]["order_count"]),
            as_text(&who["order_count"])
        );
        let mut shown: Vec<String> = seen["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(as_text)
            .collect();
        shown.sort();
        assert_eq!(shown, segments, "{seen}");
        assert_eq!(
            as_text(&seen["from"]["first_name"]),
            format!(
                "{} · {}",
                as_text(&from["first_name_source"]),
                as_text(&from["first_name_record_id"])
            ),
            "{seen}"
        );
        assert_eq!(seen["timeline_total"].as_u64().unwrap(), acts);
        assert_eq!(seen["timeline_rows"].as_u64().unwrap(), acts.min(20));
        if acts > 20 {
            assert_eq!(
                seen["timeline_rows_after_more"].as_u64().unwrap(),
                acts.min(40),
                "{seen}"
            );
        }
        assert!(
            seen["script_errors"].as_array().unwrap().is_empty(),
            "{seen}"
        );
        assert!(
            seen["scroll_width"].as_u64().unwrap() <= 1366,
            "fits a laptop screen: {seen}"
        );
    }

    // --- A new run while a query is in flight -----------------------------------------------
    if python {
        // A cursor declared on the old snapshot, read after the swap, sees the old run.
        let script = format!(
            r#"
import json, subprocess, sys, time, urllib.request, psycopg
def health():
    return json.load(urllib.request.urlopen("{base}/api/health"))["run_id"]
with psycopg.connect("{conninfo}", autocommit=True) as conn:
    cur = conn.cursor()
    cur.execute("DECLARE c CURSOR FOR SELECT (SELECT count(*) FROM runs) AS runs, customer_id FROM unified_customers")
    cur.execute("FETCH 5 FROM c")
    first = cur.fetchall()
    before = health()
    subprocess.run([{bin:?}, "refresh", "-p", {dir:?}, "-q"], check=True)
    deadline = time.time() + 60
    while health() == before and time.time() < deadline:
        time.sleep(0.2)
    after = health()
    cur.execute("FETCH 5 FROM c")
    rest = cur.fetchall()
    cur.execute("SELECT count(*) FROM runs")
    now = cur.fetchone()[0]
print(json.dumps({{"first": first[0][0], "rest": rest[0][0], "now": now, "before": before, "after": after}}))
"#,
            bin = env!("CARGO_BIN_EXE_panorama"),
            dir = p(dir),
        );
        let out = Command::new("python3")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(as_text(&r["before"]), run_before);
        assert_ne!(
            r["after"], r["before"],
            "the server swapped to the new run: {r}"
        );
        assert_eq!(
            r["first"], r["rest"],
            "the in-flight cursor kept its snapshot: {r}"
        );
        assert_eq!(
            r["now"].as_u64().unwrap(),
            r["first"].as_u64().unwrap() + 1,
            "a new query sees the new run: {r}"
        );
    }
    let (_, metrics) = get(&format!("{base}/metrics"), None).await;
    let metrics = as_text(&metrics);
    assert!(metrics.contains("panorama_pg_queries_total"), "{metrics}");
    assert!(
        metrics.contains("route=\"/api/customers/{id}\",status=\"200\""),
        "{metrics}"
    );
    // Data quality of the served run, as its data_quality rows say.
    let served = metrics
        .split("panorama_snapshot_info{run_id=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let q = json_rows(
        dir,
        &format!(
            "SELECT count(*) FILTER (WHERE passed) AS passed, count(*) FILTER (WHERE NOT passed AND severity = 'warn') AS warn \
             FROM data_quality WHERE run_id = '{served}'"
        ),
    );
    for result in ["passed", "warn"] {
        let line = format!(
            "panorama_data_quality_checks{{result=\"{result}\"}} {}\n",
            q[0][result]
        );
        assert!(metrics.contains(&line), "{line} not in:\n{metrics}");
    }
    assert!(
        q[0]["passed"].as_u64().unwrap() > 0,
        "the demo's expectations were checked: {q:?}"
    );
    assert!(
        metrics.contains("panorama_data_quality_newest_run_errors{run_id=\""),
        "{metrics}"
    );
    assert!(server.alive());
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_tls_read_only_and_limits() {
    let tmp = demo_run("300");
    let dir = tmp.path();
    // Tight limits, in the demo config's [serve] section.
    let config = dir.join("panorama.toml");
    edit(&config, "query_timeout = \"60s\"", "query_timeout = \"1s\"");
    edit(&config, "query_memory = \"1G\"", "query_memory = \"24M\"");
    edit(&config, "http_row_limit = 10000", "http_row_limit = 7");
    // Credentials: a PostgreSQL user, a reader token, an admin token.
    add_user(dir, "ana", "s3cret-pass", "reader");
    let reader = ok(&["tokens", "-p", p(dir), "create", "dashboards", "-q"])
        .trim()
        .to_string();
    let admin = ok(&[
        "tokens",
        "-p",
        p(dir),
        "create",
        "ops",
        "--role",
        "admin",
        "-q",
    ])
    .trim()
    .to_string();
    assert!(reader.starts_with("pan_") && admin.starts_with("pan_"));
    let listed = ok(&["tokens", "-p", p(dir), "list"]);
    assert!(
        listed.contains("dashboards\treader") && listed.contains("ops\tadmin"),
        "{listed}"
    );
    assert!(!std::fs::read_to_string(dir.join(".panorama/auth.toml"))
        .unwrap()
        .contains(&reader));

    // TLS: a test CA signs a certificate for localhost and 127.0.0.1; clients trust the CA.
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let ca = dir.join("ca.pem");
    let tls = make_certificates(dir);
    let mut extra: Vec<&str> = Vec::new();
    if tls {
        extra.extend(["--tls-cert", p(&cert), "--tls-key", p(&key)]);
    }
    let mut server = Server::start(dir, &extra);
    let scheme = if tls { "https" } else { "http" };
    let base = format!("{scheme}://{}", server.http);
    let http = {
        let mut b = reqwest::Client::builder();
        if tls {
            let pem = std::fs::read(&ca).unwrap();
            b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
        }
        b.build().unwrap()
    };
    let call = |method: reqwest::Method, path: &str, token: Option<&str>, body: Option<Value>| {
        let mut r = http.request(method, format!("{base}{path}"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        async move {
            let res = r.send().await.unwrap();
            let s = res.status().as_u16();
            let t = res.text().await.unwrap();
            (
                s,
                serde_json::from_str::<Value>(&t).unwrap_or(Value::String(t)),
            )
        }
    };
    // Health is open; everything else needs a token.
    assert_eq!(
        call(reqwest::Method::GET, "/api/health", None, None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(reqwest::Method::GET, "/api/segments", None, None)
            .await
            .0,
        401
    );
    assert_eq!(
        call(
            reqwest::Method::GET,
            "/api/segments",
            Some("pan_wrong"),
            None
        )
        .await
        .0,
        401
    );
    assert_eq!(
        call(reqwest::Method::GET, "/api/segments", Some(&reader), None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(reqwest::Method::GET, "/metrics", None, None).await.0,
        401
    );
    // The card sends a browser without a token to sign in.
    let page = http.get(format!("{base}/")).send().await.unwrap();
    assert!(
        page.url().path().starts_with("/login") || page.status().as_u16() == 303,
        "{}",
        page.url()
    );
    // Row limit and read-only over HTTP.
    let (s, r) = call(
        reqwest::Method::POST,
        "/api/sql",
        Some(&reader),
        Some(serde_json::json!({"sql": "SELECT customer_id FROM unified_customers"})),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["row_count"], 7);
    assert_eq!(r["truncated"], true);
    let (s, r) = call(
        reqwest::Method::POST,
        "/api/sql",
        Some(&reader),
        Some(serde_json::json!({"sql": "DELETE FROM unified_customers"})),
    )
    .await;
    assert_eq!(s, 403, "{r}");
    assert!(as_text(&r["error"]).contains("read-only"));
    // A query past the time limit fails; one past the memory limit fails; the server goes on.
    let (s, r) = call(
        reqwest::Method::POST,
        "/api/sql",
        Some(&reader),
        Some(serde_json::json!({"sql": "SELECT count(*) FROM generate_series(1, 5000000000)"})),
    )
    .await;
    assert_eq!(s, 400, "{r}");
    assert!(as_text(&r["error"]).contains("query_timeout"), "{r}");
    let (s, r) = call(reqwest::Method::POST, "/api/sql", Some(&reader), Some(serde_json::json!({"sql": "SELECT v % 3000000 AS k, array_agg(v) AS vs FROM generate_series(1, 3000000) t(v) GROUP BY 1 ORDER BY 1 LIMIT 1"}))).await;
    assert_eq!(s, 400, "{r}");
    assert!(as_text(&r["error"]).contains("Resources exhausted"), "{r}");
    let (s, _) = call(
        reqwest::Method::POST,
        "/api/sql",
        Some(&reader),
        Some(serde_json::json!({"sql": "SELECT 1 AS one"})),
    )
    .await;
    assert_eq!(s, 200);
    // Admin operations need an admin token.
    let (s, r) = call(
        reqwest::Method::POST,
        "/api/admin/refresh",
        Some(&reader),
        None,
    )
    .await;
    assert_eq!(s, 403, "{r}");
    let before = call(reqwest::Method::GET, "/api/health", None, None)
        .await
        .1["run_id"]
        .clone();
    let (s, r) = call(
        reqwest::Method::POST,
        "/api/admin/refresh",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["serving"], r["run_id"]);
    assert_ne!(r["run_id"], before);

    if have("psql", "psql", &["--version"]) {
        let ssl = if tls {
            format!("sslmode=verify-full sslrootcert={} ", p(&ca))
        } else {
            String::new()
        };
        let conn = |user: &str| {
            format!(
                "{ssl}host=localhost port={} dbname=panorama user={user}",
                server.pg_port()
            )
        };
        let (ok, out) = psql(&conn("ana"), "SELECT 1", None);
        assert!(!ok && out.contains("password"), "no password: {out}");
        let (ok, out) = psql(&conn("ana"), "SELECT 1", Some("wrong-pass"));
        assert!(
            !ok && out.contains("password authentication failed"),
            "{out}"
        );
        let (ok, out) = psql(&conn("bob"), "SELECT 1", Some("s3cret-pass"));
        assert!(!ok, "unknown user: {out}");
        let (ok, out) = psql(
            &conn("ana"),
            "SELECT count(*) FROM unified_customers",
            Some("s3cret-pass"),
        );
        assert!(ok, "{out}");
        let n = json_rows(dir, "SELECT count(*) AS n FROM unified_customers")[0]["n"]
            .as_u64()
            .unwrap();
        assert_eq!(out.trim(), n.to_string());
        if tls {
            let (ok, out) = psql(&conn("ana"), "SHOW ssl", Some("s3cret-pass"));
            assert!(ok || out.contains("ssl"), "{out}");
        }
        let (ok, out) = psql(
            &conn("ana"),
            "SELECT count(*) FROM generate_series(1, 5000000000)",
            Some("s3cret-pass"),
        );
        assert!(!ok && out.contains("query_timeout"), "{out}");
        let (ok, out) = psql(
            &conn("ana"),
            "DROP VIEW customer_profiles",
            Some("s3cret-pass"),
        );
        assert!(!ok && out.contains("read-only"), "{out}");
    }
    if have(
        "python3 with adbc_driver_flightsql",
        "python3",
        &["-c", "import adbc_driver_flightsql.dbapi"],
    ) {
        let uri = format!(
            "{}://{}",
            if tls { "grpc+tls" } else { "grpc" },
            server.flight.replace("127.0.0.1", "localhost")
        );
        let mut args = vec!["adbc", &uri, "SELECT count(*) AS n FROM unified_customers"];
        let cafile = p(&ca).to_string();
        let mut with_ca = vec![];
        if tls {
            with_ca = vec!["--cafile", &cafile];
        }
        let mut no_token = with_ca.clone();
        no_token.append(&mut args.clone());
        let res = client(&no_token);
        assert!(
            as_text(&res[0]["error"])
                .to_lowercase()
                .contains("unauthenticated"),
            "{res:?}"
        );
        let mut with_token = vec!["--token", &reader];
        with_token.extend(with_ca.iter().copied());
        with_token.append(&mut args);
        let res = client(&with_token);
        let n = json_rows(dir, "SELECT count(*) AS n FROM unified_customers")[0]["n"].clone();
        assert_eq!(res[0]["rows"][0][0], n, "{res:?}");
    }
    assert!(server.alive());
}

#[test]
fn refuses_a_public_address_without_credentials() {
    let tmp = demo_run("300");
    let err = fails(&[
        "serve",
        "-p",
        p(tmp.path()),
        "--bind",
        "0.0.0.0",
        "--http-port",
        "0",
        "--pg-port",
        "0",
        "--flight-port",
        "0",
    ]);
    assert!(
        err.contains("refusing to listen on 0.0.0.0 without authentication"),
        "{err}"
    );
    let err = fails(&[
        "serve",
        "-p",
        p(tmp.path()),
        "--tls-cert",
        "/nonexistent.pem",
        "--tls-key",
        "/nonexistent.key",
    ]);
    assert!(err.contains("/nonexistent.pem"), "{err}");
}

/// A run's lookup index is read from its files: a damaged one stops the server with the
/// file's name (no crash, no wrong answers); one written before the index was kept in these
/// files (no `customers.arrow`) is built again when served, and answers as the run's tables do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_index_is_named_and_an_older_one_built_again() {
    use std::io::BufRead;
    let tmp = demo_run("300");
    let dir = tmp.path();
    let index = current_run(dir).join("index");
    let who = json_rows(
        dir,
        "SELECT email, customer_id FROM unified_customers WHERE email IS NOT NULL \
         ORDER BY customer_id DESC LIMIT 1",
    )
    .remove(0);
    let (email, id) = (as_text(&who["email"]), as_text(&who["customer_id"]));

    let ids = index.join("identifiers.arrow");
    let whole = std::fs::read(&ids).unwrap();
    std::fs::write(&ids, &whole[..whole.len() / 2]).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_panorama"))
        .args([
            "serve",
            "-p",
            p(dir),
            "--pg-port",
            "0",
            "--flight-port",
            "0",
        ])
        .args(["--http-port", "0"])
        .env_remove("PANORAMA_PROJECT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        if line.unwrap().trim() == "ready" {
            let _ = child.kill();
            panic!("served a run whose identifiers file is cut in half");
        }
    }
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!child.wait().unwrap().success());
    assert!(err.contains("identifiers.arrow"), "{err}");

    std::fs::write(&ids, &whole).unwrap();
    std::fs::remove_file(index.join("customers.arrow")).unwrap();
    let server = Server::start(dir, &[]);
    let base = format!("http://{}", server.http);
    let (status, found) = get(
        &format!("{base}/api/customers?email={}", urlencode(&email)),
        None,
    )
    .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(
        as_text(&found["customers"][0]["customer_id"]),
        id,
        "{found}"
    );
    assert_eq!(as_text(&found["customers"][0]["profile"]["email"]), email);
    assert!(index.join("customers.arrow").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_sql_for_a_project_without_unification() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    people_project(dir);
    let server = Server::start(dir, &[]);
    let base = format!("http://{}", server.http);
    let (status, health) = get(&format!("{base}/api/health"), None).await;
    assert_eq!(status, 200);
    assert_eq!(health["customers"], 0);
    let (status, r) = post(
        &format!("{base}/api/sql"),
        None,
        serde_json::json!({ "sql": "SELECT name FROM people ORDER BY id" }),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["rows"][1]["name"], "Bob");
    let (status, found) = get(&format!("{base}/api/customers?email=ann@example.com"), None).await;
    assert_eq!((status, found["count"].as_u64()), (200, Some(0)));
}

/// Empty states that teach: a project that only unifies shows, on the console pages and the
/// customer card, what to configure for the missing stages, with a link to the section.
#[tokio::test]
async fn console_and_card_say_what_to_configure_when_a_stage_has_no_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(
        &dir.join("panorama.toml"),
        "[sources.people]\nlocation = \"people.csv\"\nprimary_key = \"id\"\n\n\
         [unify.sources.people]\nfirst_name = \"first\"\nlast_name = \"last\"\nemail = \"email\"\n",
    );
    write(
        &dir.join("people.csv"),
        "id,first,last,email\n1,Ann,Smith,ann@example.com\n2,Bob,Jones,bob@example.com\n\
         3,Ann,Smith,ann@example.com\n4,Bob,Jones,bob@example.com\n5,Cy,Lee,cy@example.com\n",
    );
    ok(&["run", "-p", p(dir), "-q"]);
    let server = Server::start(dir, &[]);
    let base = format!("http://{}", server.http);
    let text = |url: String| async move { reqwest::get(url).await.unwrap().text().await.unwrap() };
    let docs = "https://github.com/panorama-cdp/panorama/blob/main/docs/config.md";
    let page = text(format!("{base}/console/predictions")).await;
    assert!(page.contains("Not shown yet"), "{page}");
    assert!(
        page.contains("add `[predictions.clv]` (it needs order activities)"),
        "{page}"
    );
    assert!(
        page.contains(&format!("{docs}#predictionsclv-customer-lifetime-value")),
        "{page}"
    );
    let page = text(format!("{base}/console/segments")).await;
    assert!(page.contains(&format!("{docs}#segmentsname")), "{page}");
    // The unify page has its charts: nothing to configure there.
    let page = text(format!("{base}/console/unify")).await;
    assert!(
        !page.contains("Not shown yet") || !page.contains("unifysourcessource-map"),
        "{page}"
    );
    let customer = json_rows(
        dir,
        "SELECT customer_id FROM unified_customers ORDER BY customer_id LIMIT 1",
    )[0]["customer_id"]
        .as_str()
        .unwrap()
        .to_string();
    let card = text(format!("{base}/customers/{customer}")).await;
    assert!(card.contains("id=\"no-measures\""), "{card}");
    assert!(card.contains(&format!("{docs}#measuresname")), "{card}");
    assert!(card.contains("id=\"no-activities\""), "{card}");
    assert!(card.contains(&format!("{docs}#activitiesname")), "{card}");
    assert!(card.contains("id=\"no-segments\""), "{card}");
}
