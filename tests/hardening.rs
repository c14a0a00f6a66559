//! Hardening (issue 22): what an attacker or a careless user sends must give an error, never
//! take the server or a run down. Each test reproduces a failure through the real interface
//! (a served project and real protocol clients, the CLI).

mod common;

use std::path::Path;

use common::{fails, ok, p, people_project, pg_client, write, Server};
use serde_json::Value;

/// [`people_project`] with `serve` (TOML) appended, served.
fn served(dir: &Path, serve: &str) -> Server {
    people_project(dir);
    common::append(&dir.join("panorama.toml"), serve);
    Server::start(dir, &[])
}

/// `SELECT 1 <op> 1 <op> …` with `n` terms.
fn chain(op: &str, n: usize) -> String {
    format!("SELECT {} AS x", vec!["1"; n].join(op))
}

async fn post_sql(base: &str, sql: &str) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{base}/api/sql"))
        .header("content-type", "application/json")
        .body(serde_json::json!({ "sql": sql }).to_string())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A Flight SQL client of `server`.
async fn flight_client(
    server: &Server,
) -> arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.flight))
        .unwrap()
        .connect()
        .await
        .unwrap();
    arrow_flight::sql::client::FlightSqlServiceClient::new(channel)
}

/// 2,000 chained `+` overflowed a server thread's stack and aborted the process (all three
/// protocols). Now every entry point refuses chains past the limit and the server lives on;
/// a chain just under the limit still runs, on every protocol.
#[tokio::test(flavor = "multi_thread")]
async fn long_expression_chains_are_refused_and_the_server_lives() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    people_project(dir);
    let mut server = Server::start(dir, &[]);
    let base = format!("http://{}", server.http);
    let pg = pg_client(&server).await;
    let mut flight = flight_client(&server).await;

    for op in ["+", " OR ", " AND ", " || ", " * "] {
        for n in [2_000, 10_000, 100_000] {
            let sql = chain(op, n);
            let what = format!("{n} terms of {op:?}");
            // PostgreSQL wire, simple and extended protocol: 54001 statement_too_complex.
            let err = format!("{:?}", pg.simple_query(&sql).await.unwrap_err());
            assert!(err.contains("54001"), "{what}: {err}");
            assert!(err.contains("query too complex"), "{what}: {err}");
            let err = format!("{:?}", pg.query(&sql, &[]).await.unwrap_err());
            assert!(err.contains("query too complex"), "{what}: {err}");
            // HTTP: 400 with the reason.
            let (status, body) = post_sql(&base, &sql).await;
            assert_eq!(status, 400, "{what}: {body}");
            assert!(body.to_string().contains("query too complex"), "{what}");
            // Flight SQL.
            let err = flight.execute(sql.clone(), None).await.unwrap_err();
            assert!(
                err.to_string().contains("query too complex"),
                "{what}: {err}"
            );
        }
        // Just under the limit: planned, evaluated and dropped on the server's threads.
        let n = 900;
        let term = match op {
            " OR " | " AND " => "true",
            " || " => "'1'",
            _ => "1",
        };
        let sql = format!("SELECT {} AS x", vec![term; n].join(op));
        let value = first_value(&pg, &sql).await.unwrap();
        let expected = match op {
            "+" => "900".to_string(),
            " OR " | " AND " => "t".to_string(),
            " || " => "1".repeat(n),
            _ => "1".to_string(),
        };
        assert_eq!(value, expected, "{op}");
        let (status, body) = post_sql(&base, &sql).await;
        assert_eq!(status, 200, "{op}: {body}");
        assert!(flight.execute(sql, None).await.is_ok(), "{op}");
    }
    // Still serving, on every protocol.
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server died"
    );
    assert_eq!(
        first_value(&pg, "SELECT count(*) FROM people")
            .await
            .as_deref(),
        Some("2")
    );
    let (status, _) = post_sql(&base, "SELECT 1").await;
    assert_eq!(status, 200);

    // The CLI: an error, not an abort.
    let err = fails(&["query", "-p", p(dir), &chain("+", 20_000)]);
    assert!(err.contains("query too complex"), "{err}");
    assert!(ok(&["query", "-p", p(dir), "--format", "csv", &chain("+", 900)]).contains("900"));
}

/// The error a Flight SQL query ends with, planning (`execute`) or fetching (`do_get`).
async fn flight_error(
    flight: &mut arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>,
    sql: &str,
) -> String {
    flight_text(flight, sql)
        .await
        .err()
        .unwrap_or_else(|| "no error".into())
}

/// CPU seconds `pid` uses in the 2 s after `settle_ms` milliseconds from now.
async fn cpu_after_settling(pid: u32, settle_ms: u64) -> f64 {
    tokio::time::sleep(std::time::Duration::from_millis(settle_ms)).await;
    let after = cpu_seconds(pid);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    cpu_seconds(pid) - after
}

/// The first column of the first row `sql` returns over the simple query protocol.
async fn first_value(pg: &tokio_postgres::Client, sql: &str) -> Option<String> {
    pg.simple_query(sql)
        .await
        .unwrap()
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
}

/// Peak resident memory of a process (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap()
        * 1024
}

/// Everything a Flight SQL query returns, as text (batches' debug form), or its error.
async fn flight_text(
    flight: &mut arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>,
    sql: &str,
) -> Result<String, String> {
    use futures::StreamExt;
    let info = flight
        .execute(sql.to_string(), None)
        .await
        .map_err(|e| e.to_string())?;
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let mut stream = flight.do_get(ticket).await.map_err(|e| e.to_string())?;
    let mut text = String::new();
    while let Some(batch) = stream.next().await {
        text += &format!("{:?}", batch.map_err(|e| e.to_string())?);
    }
    Ok(text)
}

/// `EXPLAIN ANALYZE` was one thing on PostgreSQL (run, with metrics) and another on HTTP and
/// Flight SQL (refused, as was every EXPLAIN). Now every protocol runs it as the query it is —
/// under the same limits — and refuses it around a write alike.
async fn explain_analyze_is_one_policy(
    pg: &tokio_postgres::Client,
    base: &str,
    flight: &mut arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>,
) {
    let sql = "EXPLAIN ANALYZE SELECT count(*) AS n FROM people WHERE name <> 'Zed'";
    let simple = format!("{:?}", pg.simple_query(sql).await.unwrap());
    let extended: String = pg
        .query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| format!("{} {}\n", r.get::<_, String>(0), r.get::<_, String>(1)))
        .collect();
    let (status, http) = post_sql(base, sql).await;
    assert_eq!(status, 200, "{http}");
    let flight_plan = flight_text(flight, sql).await.unwrap();
    for (protocol, text) in [
        ("pg simple", simple),
        ("pg extended", extended),
        ("http", http.to_string()),
        ("flight", flight_plan),
    ] {
        // Run, not only planned: the filter saw both rows and kept both.
        assert!(text.contains("Plan with Metrics"), "{protocol}: {text}");
        assert!(text.contains("output_rows=2"), "{protocol}: {text}");
    }
    // Around a write: refused everywhere, with the same words.
    let write = "EXPLAIN ANALYZE INSERT INTO people VALUES ('3', 'Cy')";
    let err = pg.simple_query(write).await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION)
    );
    let (status, body) = post_sql(base, write).await;
    assert_eq!(status, 403, "{body}");
    let flight_err = flight_text(flight, write).await.unwrap_err();
    for (protocol, text) in [
        ("pg", format!("{err:?}")),
        ("http", body.to_string()),
        ("flight", flight_err),
    ] {
        assert!(
            text.contains("read-only: INSERT INTO is not allowed"),
            "{protocol}: {text}"
        );
    }
    // Run under the query's limits: a value past its memory is refused, not built.
    let big = "EXPLAIN ANALYZE SELECT length(repeat('x', 1500000000))";
    let err = format!("{:?}", pg.simple_query(big).await.unwrap_err());
    assert!(err.contains("[serve] query_memory"), "{err}");
    let (status, body) = post_sql(base, big).await;
    assert_eq!(status, 400, "{body}");
    assert!(flight_error(flight, big)
        .await
        .contains("[serve] query_memory"));
}

/// `SELECT length(repeat('x', 1500000000))` peaked at 6 GB and `array_repeat(1, 1000000000)`
/// at 16 GB on a server with `query_memory = "1G"`: functions built their result outside any
/// pool. Now a result larger than the query's memory is refused before it is built, on every
/// protocol, and the server's peak memory stays far below it.
#[tokio::test(flavor = "multi_thread")]
async fn functions_cannot_build_values_past_the_querys_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut server = served(dir, "\n[serve]\nquery_memory = \"256M\"\n");
    let base = format!("http://{}", server.http);
    let pg = pg_client(&server).await;
    let mut flight = flight_client(&server).await;
    for sql in [
        "SELECT length(repeat('x', 1500000000))",
        "SELECT cardinality(array_repeat(1, 1000000000))",
        "SELECT length(lpad('x', 2000000000))",
        "SELECT cardinality(range(0, 5000000000))",
        // Per row, from the table: 2 rows × 200 MB.
        "SELECT max(length(repeat(name, 70000000))) FROM people",
    ] {
        let err = format!("{:?}", pg.simple_query(sql).await.unwrap_err());
        assert!(
            err.contains("over the limit of 268.4 MB ([serve] query_memory)"),
            "{sql}: {err}"
        );
        let (status, body) = post_sql(&base, sql).await;
        assert_eq!(status, 400, "{sql}: {body}");
        assert!(
            body.to_string().contains("[serve] query_memory"),
            "{sql}: {body}"
        );
        let err = flight_error(&mut flight, sql).await;
        assert!(err.contains("[serve] query_memory"), "{sql}: {err}");
    }
    explain_analyze_is_one_policy(&pg, &base, &mut flight).await;
    // Within the limit the same functions answer.
    let (status, body) = post_sql(&base, "SELECT length(repeat('ab', 1000000)) AS n").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains("2000000"), "{body}");
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server died"
    );
    let peak = peak_rss(server.child.id());
    assert!(peak < 256 << 20, "peak RSS {} MB", peak >> 20);
    // The CLI caps by its own memory limit.
    let err = fails(&[
        "query",
        "-p",
        p(dir),
        "--memory-limit",
        "100M",
        "SELECT length(repeat('x', 1500000000))",
    ]);
    assert!(
        err.contains("over the limit of 104.9 MB (--memory-limit"),
        "{err}"
    );
}

/// CPU seconds a process has used (user + system).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// After 1.5 s for `what` to start, `pid` uses over 0.2 s of CPU in half a second.
async fn assert_running(pid: u32, what: &str) {
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let busy = cpu_seconds(pid);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(cpu_seconds(pid) - busy > 0.2, "{what} is not running");
}

/// Per thread of `pid`: its name, nice value and CPU seconds so far.
fn thread_cpu(pid: u32) -> std::collections::BTreeMap<u32, (String, i64, f64)> {
    let mut threads = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return threads;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue; // the thread ended meanwhile
        };
        let name = stat[stat.find('(').unwrap() + 1..stat.rfind(')').unwrap()].to_string();
        let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
            .split_whitespace()
            .collect();
        let cpu = (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0;
        let tid = task.file_name().to_string_lossy().parse().unwrap();
        threads.insert(tid, (name, f[16].parse().unwrap(), cpu));
    }
    threads
}

/// Two heavy queries on 2 cores made `/api/health` take 13 s, and a query past its
/// `query_timeout` kept a core busy for ~95 s. Now heavy queries (reading more than 100,000
/// rows, or an unknown number) take turns — one more waits up to `query_queue_timeout`, then
/// fails saying the server is busy — while light queries and health answer; and a query
/// cancelled by its deadline stops using the CPU.
#[tokio::test(flavor = "multi_thread")]
async fn heavy_queries_take_turns_and_a_cancelled_query_stops_working() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut server = served(dir, "\n[serve]\nmax_concurrent_queries = 1\nquery_queue_timeout = \"1s\"\nquery_timeout = \"6s\"\n");
    let base = format!("http://{}", server.http);
    let pid = server.child.id();
    // Every query, light ones too, and every PostgreSQL connection run on the query threads
    // at nice 10, made on first use.
    let query_threads = |pid| {
        thread_cpu(pid)
            .values()
            .filter(|(name, nice, _)| name == "panorama-query" && *nice == 10)
            .count()
    };
    assert_eq!(query_threads(pid), 0, "query threads before any query");
    let (status, light) = post_sql(&base, "SELECT count(*) AS n FROM people").await;
    assert_eq!(
        (status, &light["rows"][0]["n"]),
        (200, &Value::from(2)),
        "{light}"
    );
    assert!(
        query_threads(pid) > 0,
        "a light query made no query threads"
    );
    let pg = pg_client(&server).await;
    let heavy = "SELECT count(*) FROM generate_series(1, 100000000000) AS t(v) WHERE v % 7 = 3";
    let first = tokio::spawn({
        let base = base.clone();
        async move { post_sql(&base, heavy).await }
    });
    // A second heavy query waits its turn, then fails saying why (sent once the first has had
    // time to take the only turn).
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let busy = match pg.simple_query(heavy).await {
        Err(e) => format!("{e:?}"),
        Ok(_) => panic!("a second heavy query ran beside the first"),
    };
    assert!(busy.contains("server busy"), "{busy}");
    assert!(busy.contains("[serve] max_concurrent_queries"), "{busy}");
    // Light queries and health answer meanwhile, and the first query is using the CPU.
    let before = cpu_seconds(pid);
    assert_eq!(
        first_value(&pg, "SELECT count(*) FROM people")
            .await
            .as_deref(),
        Some("2")
    );
    let health = reqwest::get(format!("{base}/api/health")).await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert!(
        !first.is_finished(),
        "the first heavy query ended early (its deadline is 6 s)"
    );
    let busy_cpu = cpu_seconds(pid) - before;
    assert!(
        busy_cpu > 0.5,
        "the heavy query used only {busy_cpu} s of CPU in a second"
    );
    // It runs on the query threads, at a lower priority than the threads that answer
    // lookups: nearly all of the server's CPU in the next half second is theirs (how much
    // they get depends on what else runs at their priority: ~0.9 s on an idle machine, 0.2 s
    // beside a nice'd cargo build).
    let threads = thread_cpu(pid);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (mut heavy_cpu, mut other_cpu) = (0.0, 0.0);
    for (tid, (name, nice, cpu)) in thread_cpu(pid) {
        let used = cpu - threads.get(&tid).map_or(0.0, |t| t.2);
        if name == "panorama-query" {
            assert_eq!(nice, 10, "query thread {tid} runs at nice {nice}");
            heavy_cpu += used;
        } else {
            other_cpu += used;
        }
    }
    assert!(
        heavy_cpu > 0.1 && other_cpu < heavy_cpu / 2.0,
        "query threads used {heavy_cpu} s, the others {other_cpu} s in half a second"
    );
    // The first ends at its deadline; its work stops with it.
    let (status, body) = first.await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("query_timeout"), "{body}");
    let idle_cpu = cpu_after_settling(pid, 500).await;
    assert!(
        idle_cpu < 0.3,
        "{idle_cpu} s of CPU in the 2 s after the query was cancelled"
    );
    // An HTTP client that gives up cancels its query: the server's CPU goes quiet at once,
    // long before the query's 6 s deadline.
    let gave_up = reqwest::Client::new()
        .post(format!("{base}/api/sql"))
        .timeout(std::time::Duration::from_millis(1500))
        .header("content-type", "application/json")
        .body(serde_json::json!({ "sql": heavy }).to_string())
        .send()
        .await;
    assert!(gave_up.is_err(), "the heavy query answered within 1.5 s");
    let idle_cpu = cpu_after_settling(pid, 500).await;
    assert!(
        idle_cpu < 0.3,
        "{idle_cpu} s of CPU in the 2 s after the HTTP client disconnected"
    );
    // So does a Flight SQL client that drops its stream mid-query.
    let mut flight = flight_client(&server).await;
    let info = flight.execute(heavy.to_string(), None).await.unwrap();
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let fetch = tokio::spawn(async move {
        use futures::StreamExt;
        let mut stream = flight.do_get(ticket).await.unwrap();
        stream.next().await.map(|b| b.is_ok())
    });
    assert_running(pid, "the Flight SQL client's heavy query").await;
    fetch.abort();
    let _ = fetch.await;
    let idle_cpu = cpu_after_settling(pid, 700).await;
    assert!(
        idle_cpu < 0.3,
        "{idle_cpu} s of CPU in the 2 s after the Flight SQL client went away"
    );
    // A PostgreSQL client killed mid-query (psql, SIGKILL) cancels its query too.
    if common::have("psql", "psql", &["--version"]) {
        let (host, port) = server.pg.rsplit_once(':').unwrap();
        let mut psql = std::process::Command::new("psql")
            .args([
                "-X", "-h", host, "-p", port, "-U", "panorama", "-d", "panorama", "-c", heavy,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        assert_running(pid, "psql's heavy query").await;
        signal(psql.id(), "-KILL");
        let _ = psql.wait();
        let idle_cpu = cpu_after_settling(pid, 700).await;
        assert!(
            idle_cpu < 0.3,
            "{idle_cpu} s of CPU in the 2 s after psql was killed"
        );
    }
    // Its turn was given back: the next heavy query runs.
    assert_eq!(
        first_value(&pg, "SELECT count(*) FROM generate_series(1, 200000)")
            .await
            .as_deref(),
        Some("200000")
    );
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server died"
    );
}

/// `POST /login` with `next=/\evil.example` redirected off-site (browsers read `\` as `/`).
/// Only paths on this server are followed; anything else goes to `/`.
#[tokio::test(flavor = "multi_thread")]
async fn login_redirects_only_to_this_server() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    people_project(dir);
    let token = ok(&["tokens", "-p", p(dir), "create", "browser", "-q"])
        .trim()
        .to_string();
    let server = Server::start(dir, &[]);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = |next: &str| {
        let body = format!(
            "token={}&next={}",
            token,
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        );
        client
            .post(format!("http://{}/login", server.http))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    for (next, expected) in [
        (
            "/customers/cus_000000001?tab=timeline",
            "/customers/cus_000000001?tab=timeline",
        ),
        ("/console", "/console"),
        ("/\\evil.example", "/"),
        ("/\\/evil.example", "/"),
        ("//evil.example", "/"),
        ("/\t/evil.example", "/"),
        ("/\n/evil.example", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("/%2F%2Fevil.example", "/%2F%2Fevil.example"),
    ] {
        let res = login(next).await.unwrap();
        assert_eq!(res.status().as_u16(), 303, "{next:?}");
        let location = res.headers()["location"].to_str().unwrap().to_string();
        assert_eq!(location, expected, "{next:?}");
    }
}

/// Client errors are 4xx JSON saying what is wrong; an offset past SQL's range was a 500
/// carrying optimizer text, a malformed query string a plain-text 400.
#[tokio::test(flavor = "multi_thread")]
async fn api_errors_are_json_and_leak_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(
        &dir.join("panorama.toml"),
        "[sources.people]\nlocation = \"people.csv\"\nprimary_key = \"id\"\n\n\
         [unify.sources.people]\nfirst_name = \"first\"\nemail = \"email\"\n\n\
         [[unify.rules]]\nname = \"email\"\nconditions = [{ field = \"email\" }]\n\n\
         [segments.everyone]\nwhere = \"record_count >= 1\"\n",
    );
    write(
        &dir.join("people.csv"),
        "id,first,email\n1,Ann,ann@example.com\n2,Bob,bob@example.com\n",
    );
    ok(&["run", "-p", p(dir), "-q"]);
    let server = Server::start(dir, &[]);
    let base = format!("http://{}", server.http);
    let get = |path: String| {
        let url = format!("{base}{path}");
        async move {
            let res = reqwest::get(url).await.unwrap();
            let status = res.status().as_u16();
            let text = res.text().await.unwrap();
            let body: Value = serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
            (status, body)
        }
    };
    let (status, body) = get("/api/segments/everyone/members?limit=5".into()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["members"].as_array().unwrap().len(), 2);
    let customer = body["members"][0].as_str().unwrap().to_string();
    for path in [
        "/api/segments/everyone/members?offset=9223372036854775808".to_string(),
        format!("/api/customers/{customer}/timeline?offset=18446744073709551615"),
    ] {
        let (status, body) = get(path.clone()).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("offset must be at most"),
            "{path}: {body}"
        );
    }
    for path in [
        "/api/segments/everyone/members?offset=abc".to_string(),
        "/api/segments/everyone/members?limit=-1".to_string(),
        format!("/api/customers/{customer}/timeline?limit=1e9"),
    ] {
        let (status, body) = get(path.clone()).await;
        assert_eq!(status, 400, "{path}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains("query string"), "{path}: {error}");
    }
    let (status, body) = get("/api/segments/nobody/members".into()).await;
    assert_eq!(status, 404);
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("no segment nobody"));
    let (status, body) = get("/api/nothing/here".into()).await;
    assert_eq!(status, 404, "{body}");
    // Pages and API answers say how browsers must treat them.
    for path in ["/api/health", "/login"] {
        let res = reqwest::get(format!("{base}{path}")).await.unwrap();
        let h = res.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    }
}

/// An unclosed quote on line 301 of a 723-line CSV swallowed the rest of the file: the run
/// succeeded with 299 rows and one reject. Now line 301 is the one reject, every other line is
/// a row, and the reject ratio sees it.
#[test]
fn a_stray_quote_in_a_csv_loses_no_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut csv = String::from("member_id;first_name;last_name;city\n");
    for i in 2..=723 {
        if i == 301 {
            csv += &format!("L{i};\"Anna;de Vries;Utrecht\n");
        } else if i == 500 {
            // A legitimate quoted value with a line break stays one row.
            csv += &format!("L{i};Bob;\"van\nDijk\";Delft\n");
        } else {
            csv += &format!("L{i};First{i};Last{i};City{i}\n");
        }
    }
    write(&dir.join("members.csv"), &csv);
    write(
        &dir.join("panorama.toml"),
        "[sources.members]\nlocation = \"members.csv\"\nprimary_key = \"member_id\"\n\
         csv = { delimiter = \";\" }\n",
    );
    ok(&["run", "-p", p(dir), "-q"]);
    let q = |sql: &str| ok(&["query", "-p", p(dir), "--format", "csv", sql]);
    // 723 physical lines + 1 for the break inside "van\nDijk": a header, 721 rows, 1 reject.
    assert_eq!(q("SELECT count(*) AS n FROM members"), "n\n721\n");
    assert_eq!(
        q("SELECT row, raw_value FROM rejects"),
        "row,raw_value\n301,\"L301;\"\"Anna;de Vries;Utrecht\"\n"
    );
    assert!(q("SELECT reason FROM rejects").contains("unclosed quote"));
    assert_eq!(
        q("SELECT last_name FROM members WHERE member_id IN ('L302', 'L500', 'L723') ORDER BY member_id"),
        "last_name\nLast302\n\"van\nDijk\"\nLast723\n"
    );
    // With a stricter ratio the run fails and the previous one stays current.
    write(
        &dir.join("panorama.toml"),
        "[sources.members]\nlocation = \"members.csv\"\nprimary_key = \"member_id\"\n\
         csv = { delimiter = \";\" }\nmax_reject_ratio = 0.001\n",
    );
    let err = fails(&["run", "-p", p(dir), "--full"]);
    assert!(err.contains("members") && err.contains("reject"), "{err}");
    assert_eq!(q("SELECT count(*) AS n FROM members"), "n\n721\n");
}

/// A run killed with `kill -9` stayed `running` forever and its directory was never pruned.
/// The next run marks it failed (its process is gone) and prunes it like any failed run.
#[test]
fn a_killed_run_is_marked_failed_and_pruned() {
    let tmp = common::demo("1500", "3");
    let dir = tmp.path();
    let config = dir.join("panorama.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("keep_runs = 3", "keep_runs = 1")).unwrap();
    let runs = dir.join(".panorama/runs");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_panorama"))
        .args(["run", "-p", p(dir), "-q"])
        .spawn()
        .unwrap();
    // Wait until the run has started writing (its manifest says running), then kill it.
    let started = std::time::Instant::now();
    let killed = loop {
        let running = std::fs::read_dir(&runs).ok().and_then(|rd| {
            rd.filter_map(|e| e.ok()).find_map(|e| {
                let m = std::fs::read_to_string(e.path().join("manifest.json")).ok()?;
                (m.contains("\"running\"")
                    && e.path().join("sources").read_dir().ok()?.next().is_some())
                .then(|| e.file_name().to_string_lossy().to_string())
            })
        });
        if let Some(id) = running {
            break id;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        assert!(started.elapsed().as_secs() < 120, "the run never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let manifest = runs.join(&killed).join("manifest.json");
    assert!(std::fs::read_to_string(&manifest)
        .unwrap()
        .contains("\"running\""));

    // The next run: the killed one is failed, then pruned (keep_runs = 1).
    ok(&["run", "-p", p(dir), "-q"]);
    assert!(!runs.join(&killed).exists(), "{killed} was not pruned");
    let left: Vec<String> = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    let statuses = ok(&[
        "query",
        "-p",
        p(dir),
        "--format",
        "csv",
        "SELECT status FROM runs",
    ]);
    assert_eq!(statuses, "status\nsucceeded\n");
}

async fn pg_login(addr: &str, user: &str, password: &str) -> Result<(), String> {
    let conn = format!(
        "host={} port={} user={user} password={password} dbname=panorama",
        addr.split(':').next().unwrap(),
        addr.split(':').nth(1).unwrap()
    );
    match tokio_postgres::connect(&conn, tokio_postgres::NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(connection);
            client
                .simple_query("SELECT 1")
                .await
                .map_err(|e| format!("{e:?}"))?;
            Ok(())
        }
        Err(e) => Err(format!("{e:?}")),
    }
}

/// 50 wrong passwords went through in 0.8 s and 500 wrong tokens in 0.1 s; the card's cookie
/// held the raw token. Now failures are limited per user and per address on every protocol,
/// and the cookie holds a session id.
#[tokio::test(flavor = "multi_thread")]
async fn failed_logins_are_limited_and_the_cookie_holds_no_token() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    people_project(dir);
    common::add_user(dir, "ana", "s3cret-pass", "reader");
    let token = ok(&["tokens", "-p", p(dir), "create", "browser", "-q"])
        .trim()
        .to_string();

    // HTTP: a session cookie, not the token; it works for the API.
    let server = Server::start(dir, &[]);
    let base = format!("http://{}", server.http);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = client
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}&next=/"))
        .send()
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(!cookie.contains(&token), "{cookie}");
    let session = cookie
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("panorama_session=")
        .unwrap_or_else(|| panic!("{cookie}"));
    assert_eq!(session.len(), 64, "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let segments = |cookie: Option<String>, bearer: Option<String>| {
        let mut req = client.get(format!("{base}/api/segments"));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        async move { req.send().await.unwrap() }
    };
    let res = segments(Some(format!("panorama_session={session}")), None).await;
    assert_eq!(res.status().as_u16(), 200);
    let res = segments(Some(format!("panorama_session={}", "0".repeat(64))), None).await;
    assert_eq!(res.status().as_u16(), 401);
    // The old cookie form no longer authenticates.
    let res = segments(Some(format!("panorama_token={token}")), None).await;
    assert_eq!(res.status().as_u16(), 401);

    // Wrong tokens: up to the limit they are 401; then even the right token waits (429,
    // Retry-After), while health stays open.
    for _ in 0..8 {
        let res = segments(None, Some("pan_wrong".into())).await;
        assert_eq!(res.status().as_u16(), 401);
    }
    let res = segments(None, Some(token.clone())).await;
    assert_eq!(res.status().as_u16(), 429);
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("too many failed logins"));
    let res = client
        .get(format!("{base}/api/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    drop(server);

    // PostgreSQL: ten wrong passwords for ana, then her right one is refused for a while.
    let server = Server::start(dir, &[]);
    assert!(pg_login(&server.pg, "ana", "s3cret-pass").await.is_ok());
    for i in 0..10 {
        let err = pg_login(&server.pg, "ana", &format!("guess{i}"))
            .await
            .unwrap_err();
        assert!(err.contains("28P01"), "{err}");
    }
    let err = pg_login(&server.pg, "ana", "s3cret-pass")
        .await
        .unwrap_err();
    assert!(err.contains("too many failed logins"), "{err}");
    // Unknown users fail the same way (and take an Argon2 check's time, not less).
    let err = pg_login(&server.pg, "nobody", "x").await.unwrap_err();
    assert!(
        err.contains("too many failed logins") || err.contains("28P01"),
        "{err}"
    );
}

/// Consent statements and rectifications written under a customer id that later merged into
/// another survived the person's erasure (they were purged by today's id only).
#[test]
fn erasure_reaches_statements_under_ids_merged_away() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = "[sources.people]\nlocation = \"people.csv\"\nprimary_key = \"id\"\n\n\
         [unify.sources.people]\nfirst_name = \"first\"\nemail = \"email\"\n\n\
         [[unify.rules]]\nname = \"email\"\nconditions = [{ field = \"email\" }]\n";
    write(&dir.join("panorama.toml"), config);
    write(
        &dir.join("people.csv"),
        "id,first,email\n1,Ann,ann@example.com\n2,Ann,ann.b@example.com\n3,Anne,ann.b@example.com\n4,Bob,bob@example.com\n",
    );
    ok(&["run", "-p", p(dir), "-q"]);
    let q = |sql: &str| ok(&["query", "-p", p(dir), "--format", "csv", sql]);
    let id_of = |record: &str| {
        q(&format!(
            "SELECT customer_id FROM customer_links WHERE record_id = '{record}'"
        ))
        .lines()
        .nth(1)
        .unwrap()
        .to_string()
    };
    let first = id_of("1");
    let person = id_of("2");
    assert_ne!(first, person);
    // Statements about the customer of record 1, under its id of today.
    for args in [
        vec![
            "consent",
            "-q",
            "-p",
            p(dir),
            "--record",
            "people:1",
            "--purpose",
            "marketing",
            "--grant",
        ],
        vec![
            "privacy",
            "-q",
            "-p",
            p(dir),
            "rectify",
            "--record",
            "people:1",
            "--set",
            "first_name=Annie",
        ],
        vec![
            "consent",
            "-q",
            "-p",
            p(dir),
            "--record",
            "people:4",
            "--purpose",
            "marketing",
            "--grant",
        ],
    ] {
        ok(&args);
    }
    // Record 1 turns out to be the same person as 2 and 3: its id merges away.
    write(
        &dir.join("people.csv"),
        "id,first,email\n1,Ann,ann.b@example.com\n2,Ann,ann.b@example.com\n3,Anne,ann.b@example.com\n4,Bob,bob@example.com\n",
    );
    ok(&["run", "-p", p(dir), "-q"]);
    assert_eq!(id_of("1"), person);
    assert_eq!(
        q(&format!(
            "SELECT count(*) AS n FROM unified_customers WHERE customer_id = '{first}'"
        )),
        "n\n0\n"
    );
    assert_eq!(
        q(&format!(
            "SELECT count(*) AS n FROM consent_statements WHERE customer_id = '{first}'"
        )),
        "n\n1\n"
    );
    assert_eq!(q("SELECT count(*) AS n FROM rectifications"), "n\n1\n");
    ok(&[
        "privacy",
        "-q",
        "-p",
        p(dir),
        "erase",
        "--email",
        "ann.b@example.com",
        "--yes",
    ]);
    // Nothing about the person is left, under either id; Bob's statement stays.
    assert_eq!(q("SELECT count(*) AS n FROM consent_statements"), "n\n1\n");
    assert_eq!(
        q(&format!("SELECT count(*) AS n FROM consent_statements WHERE customer_id IN ('{first}', '{person}')")),
        "n\n0\n"
    );
    // The log's only file held only the person: it is gone, so is the table.
    let left = common::panorama(&[
        "query",
        "-p",
        p(dir),
        "--format",
        "csv",
        "SELECT count(*) AS n FROM rectifications",
    ]);
    let out =
        String::from_utf8_lossy(&left.stdout).to_string() + &String::from_utf8_lossy(&left.stderr);
    assert!(
        out.contains("n\n0\n") || out.contains("rectifications' not found"),
        "{out}"
    );
}

/// 300 idle sockets on the PostgreSQL port locked real logins out for a minute, and idle
/// HTTP sockets were kept 30 s. Now a connection that has not logged in (PostgreSQL) or sent
/// its request (HTTP) within `login_timeout` is closed and its slot given back.
#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_give_their_slots_back() {
    use std::io::Read;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    people_project(dir);
    let config = dir.join("panorama.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text + "\n[serve]\nmax_connections = 20\nmax_http_connections = 100\nlogin_timeout = \"2s\"\n",
    )
    .unwrap();
    let server = Server::start(dir, &[]);
    let idle: Vec<std::net::TcpStream> = (0..50)
        .map(|_| std::net::TcpStream::connect(&server.pg).unwrap())
        .collect();
    let http_idle: Vec<std::net::TcpStream> = (0..200)
        .map(|_| std::net::TcpStream::connect(&server.http).unwrap())
        .collect();
    // Every slot is held by a socket that says nothing: the server closes the 30 it has no
    // slot for at once, and a real client is turned away.
    let closed = |socks: &[std::net::TcpStream]| {
        socks
            .iter()
            .filter(|s| {
                s.set_nonblocking(true).unwrap();
                let mut buf = [0u8; 1];
                let eof = matches!((&mut &**s).read(&mut buf), Ok(0));
                s.set_nonblocking(false).unwrap();
                eof
            })
            .count()
    };
    let started = std::time::Instant::now();
    while closed(&idle) < 30 {
        assert!(
            started.elapsed().as_secs() < 30,
            "the server never refused the extra sockets"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let refused = pg_login(&server.pg, "panorama", "").await;
    assert!(refused.is_err(), "{refused:?}");
    // HTTP keeps at most `max_http_connections` (100) open: the other 100 idle sockets are
    // closed at once (a flood of them used to take every file descriptor), and a real
    // request is turned away until the idle ones go.
    while closed(&http_idle) < 100 {
        assert!(
            started.elapsed().as_secs() < 30,
            "the server never closed the HTTP sockets past max_http_connections"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let turned_away = reqwest::get(format!("http://{}/api/health", server.http)).await;
    assert!(turned_away.is_err(), "{turned_away:?}");
    // Once the login deadline passes, the idle sockets are closed and logins work again.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    pg_login(&server.pg, "panorama", "").await.unwrap();
    for mut s in idle.into_iter().chain(http_idle) {
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "an idle connection got data instead of being closed");
    }
    let res = reqwest::get(format!("http://{}/api/health", server.http))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

/// Holds `<project>/.panorama/lock` from a separate process (Python's `fcntl.flock`, the same
/// `flock(2)` Panorama uses) until killed; returns once the lock is held.
fn hold_lock_elsewhere(project: &Path) -> std::process::Child {
    use std::io::BufRead;
    let lock = project.join(".panorama/lock");
    let mut child = std::process::Command::new("python3")
        .args([
            "-c",
            "import fcntl, sys, time\n\
             f = open(sys.argv[1], 'a')\n\
             fcntl.flock(f, fcntl.LOCK_EX)\n\
             print('held', flush=True)\n\
             time.sleep(600)\n",
            p(&lock),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "held");
    child
}

/// The pid the workspace's lock file names as its holder, if any.
fn lock_holder_pid(project: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(project.join(".panorama/lock")).ok()?;
    serde_json::from_str::<Value>(&text).ok()?["pid"]
        .as_u64()
        .map(|p| p as u32)
}

fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

/// Every run directory left has a manifest that says succeeded, and the current run is one
/// of them.
fn runs_all_succeeded(project: &Path) -> Vec<String> {
    let runs = project.join(".panorama/runs");
    let mut ids = Vec::new();
    for e in std::fs::read_dir(&runs).unwrap() {
        let e = e.unwrap();
        let m: Value =
            serde_json::from_str(&std::fs::read_to_string(e.path().join("manifest.json")).unwrap())
                .unwrap();
        assert_eq!(m["status"], "succeeded", "{}: {m}", e.path().display());
        ids.push(e.file_name().to_string_lossy().to_string());
    }
    let current: Value = serde_json::from_str(
        &std::fs::read_to_string(project.join(".panorama/current.json")).unwrap(),
    )
    .unwrap();
    assert!(
        ids.iter().any(|i| current["run_id"] == i.as_str()),
        "current {current} not among {ids:?}"
    );
    ids
}

fn spawn_panorama(args: &[&str]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_panorama"))
        .args(args)
        .env_remove("PANORAMA_PROJECT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn succeeds(mut child: std::process::Child, what: &str) {
    use std::io::Read;
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{what} failed: {err}");
}

/// Two writers of one workspace used to prune each other's run directories. Now a second
/// writer fails at once naming the holder, or with --wait runs after it; readers are never
/// blocked; a holder killed with SIGKILL lets go (the OS releases the lock).
#[test]
fn one_writer_at_a_time() {
    let tmp = common::shop_project();
    let dir = tmp.path();
    ok(&["run", "-q", "-p", p(dir)]);
    let customers = |dir: &Path| {
        common::query(
            dir,
            "SELECT first_name, last_name, email FROM unified_customers ORDER BY 1, 2",
        )
    };
    let before = customers(dir);
    assert!(before.contains("ben@example.com"), "{before}");

    // Another process holds the lock: writers fail at once, readers read.
    let mut holder = hold_lock_elsewhere(dir);
    for args in [
        vec!["run", "-q", "-p", p(dir)],
        vec!["refresh", "-q", "-p", p(dir)],
        vec![
            "privacy",
            "-p",
            p(dir),
            "erase",
            "--email",
            "ben@example.com",
            "--yes",
        ],
    ] {
        let err = fails(&args);
        assert!(
            err.contains("is being written by another process") && err.contains("--wait"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(customers(dir), before);

    // Three writers wait for it: two runs and an erasure.
    let waiting = [
        spawn_panorama(&["run", "--full", "--wait", "-q", "-p", p(dir)]),
        spawn_panorama(&[
            "privacy",
            "-p",
            p(dir),
            "--wait",
            "-q",
            "erase",
            "--email",
            "ben@example.com",
            "--yes",
        ]),
        spawn_panorama(&["run", "--wait", "-q", "-p", p(dir)]),
    ];
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let mut waiting: Vec<_> = waiting.into_iter().collect();
    for c in waiting.iter_mut() {
        assert!(c.try_wait().unwrap().is_none(), "a writer did not wait");
    }
    holder.kill().unwrap(); // SIGKILL: the OS releases the lock
    holder.wait().unwrap();
    for (i, c) in waiting.into_iter().enumerate() {
        succeeds(c, &format!("waiting writer {i}"));
    }
    // No run directory lost or half-written; Ben is gone whatever the order was, and the
    // outputs are those of running them one after the other.
    runs_all_succeeded(dir);
    let after = customers(dir);
    assert!(!after.contains("ben@example.com"), "{after}");
    assert_eq!(after.lines().count(), before.lines().count() - 1);
    ok(&["run", "--full", "-q", "-p", p(dir)]);
    assert_eq!(customers(dir), after);

    // A panorama holder is named; stopped, it keeps the lock; killed, it lets go.
    let mut run = spawn_panorama(&["run", "--full", "-q", "-p", p(dir)]);
    let pid = run.id();
    let mut polls = 0;
    while lock_holder_pid(dir) != Some(pid) {
        assert!(run.try_wait().unwrap().is_none(), "the run ended first");
        polls += 1;
        assert!(polls < 20_000, "the run never took the lock");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    signal(pid, "-STOP");
    let err = fails(&["run", "-q", "-p", p(dir)]);
    assert!(err.contains(&format!("run --full (pid {pid} on ")), "{err}");
    assert!(
        err.contains("run --full -q -p"),
        "the holder's command: {err}"
    );
    run.kill().unwrap(); // SIGKILL, while stopped
    run.wait().unwrap();
    ok(&["run", "-q", "-p", p(dir)]);
    assert_eq!(customers(dir), after);
    // The killed run is marked failed (interrupted); every other run succeeded.
    let mut failed = 0;
    for e in std::fs::read_dir(dir.join(".panorama/runs")).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path().join("manifest.json")).unwrap();
        let m: Value = serde_json::from_str(&text).unwrap();
        if m["writer"]["pid"] == pid {
            assert_eq!(m["status"], "failed", "{m}");
            assert!(m["error"].as_str().unwrap().contains("interrupted"), "{m}");
            failed += 1;
        } else {
            assert_eq!(m["status"], "succeeded", "{m}");
        }
    }
    assert!(failed <= 1);
}

/// A schedule's job and an admin run over HTTP: one waits for the other or is refused with
/// 409 naming the holder; nothing is lost.
#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_and_admin_runs_take_turns() {
    let tmp = common::shop_project();
    let dir = tmp.path().to_path_buf();
    common::append(
        &dir.join("panorama.toml"),
        "\n[schedules.often]\ncron = \"* * * * * *\"\nsteps = [\"refresh\"]\n",
    );
    ok(&["run", "-q", "-p", p(&dir)]);
    let server = Server::start(&dir, &[]);
    let base = format!("http://{}", server.http);
    let post = |path: &'static str| {
        let url = format!("{base}{path}");
        async move {
            let res = reqwest::Client::new().post(url).send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.text().await.unwrap())
        }
    };
    // Held by another process: 409, naming no one it cannot know.
    let mut holder = hold_lock_elsewhere(&dir);
    let (status, body) = post("/api/admin/refresh").await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("being written by another process"), "{body}");

    // The scheduler waits for the lock, then holds it while its job runs; stopped there, an
    // admin run is refused naming the schedule.
    let mut schedule = std::process::Command::new(env!("CARGO_BIN_EXE_panorama"))
        .args(["schedule", "-p", p(&dir)])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = schedule.id();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_ne!(lock_holder_pid(&dir), Some(pid));
    holder.kill().unwrap();
    holder.wait().unwrap();
    let mut polls = 0;
    while lock_holder_pid(&dir) != Some(pid) {
        assert!(
            schedule.try_wait().unwrap().is_none(),
            "the scheduler ended"
        );
        polls += 1;
        assert!(polls < 60_000, "the scheduler never took the lock");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    signal(pid, "-STOP");
    let (status, body) = post("/api/admin/run?full=true").await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body.contains(&format!("schedule often (pid {pid} on ")),
        "{body}"
    );
    signal(pid, "-CONT");
    // Admin runs get their turn between the schedule's jobs.
    let mut done = 0;
    for _ in 0..400 {
        let (status, body) = post("/api/admin/run?full=true").await;
        match status {
            200 => done += 1,
            409 => assert!(body.contains("schedule often"), "{body}"),
            _ => panic!("{status}: {body}"),
        }
        if done == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(done, 2, "admin runs never got a turn");
    signal(pid, "-TERM");
    assert!(schedule.wait().unwrap().success());
    runs_all_succeeded(&dir);
    let log = common::query(
        &dir,
        "SELECT count(*) AS n, count(*) FILTER (WHERE outcome = 'succeeded') AS ok FROM schedule_log",
    );
    let nums: Vec<u64> = log
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(nums[0] >= 1 && nums[0] == nums[1], "{log}");
    drop(server);
}
