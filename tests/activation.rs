//! Activation and privacy through the CLI: exports (files, webhooks), consent, limits,
//! incremental sends after a failure, journeys, schedules, access, erasure, rectification.
//! PostgreSQL exports are in `tests/services.rs`, next to the other real-service tests.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::*;

/// The shop with loyalty members' e-mail consent (Anna and Cara yes, Finn no).
fn shop_with_consent() -> tempfile::TempDir {
    let tmp = shop_project();
    let dir = tmp.path();
    let loyalty = dir.join("data/loyalty.csv");
    let text = std::fs::read_to_string(&loyalty).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[0] += ",email_ok";
    lines[1] += ",true"; // Anna
    lines[2] += ",true"; // Cara
    lines[3] += ",false"; // Finn
    std::fs::write(&loyalty, lines.join("\n") + "\n").unwrap();
    append(
        &dir.join("panorama.toml"),
        r#"
[consent]
default = "deny"

[[consent.sources]]
source = "loyalty"
purpose = "marketing"
channel = "email"
column = "email_ok"
timestamp = "updated_at"
"#,
    );
    tmp
}

fn csv_rows(path: &Path) -> Vec<BTreeMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let headers = r.headers().unwrap().clone();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            headers
                .iter()
                .zip(rec.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn files_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn file_exports_check_consent_and_limits_and_send_only_changes() {
    let tmp = shop_with_consent();
    let dir = tmp.path();
    append(
        &dir.join("panorama.toml"),
        r#"
[exports.mail]
segment = "members_with_points"
columns = ["email", "first_name", "loyalty_points"]
purpose = "marketing"
channel = "email"
limit = 1
file = { path = "out/mail.csv" }

[exports.changes]
table = "unified_customers"
columns = ["email", "last_name"]
mode = "incremental"
file = { path = "out/changes/" }
"#,
    );
    ok(&["run", "-q", "-p", p(dir)]);

    // Finn's consent says no; of Anna and Cara the limit keeps the first by customer id.
    let out = panorama(&["export", "-p", p(dir), "mail"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 of 3 customers left out"), "{stderr}");
    assert!(stderr.contains("sending the first 1"), "{stderr}");
    let rows = csv_rows(&dir.join("out/mail.csv"));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["customer_id"], "cus_000000001");
    assert_eq!(rows[0]["email"], "anna@example.com");
    assert_eq!(rows[0]["loyalty_points"], "1500");
    assert_eq!(
        query(
            dir,
            "SELECT selected, excluded_no_consent, cut_by_limit, confirmed, outcome FROM export_log"
        ),
        "selected,excluded_no_consent,cut_by_limit,confirmed,outcome\n3,1,1,1,succeeded\n"
    );

    // Anna withdraws (a statement Panorama keeps, newer than the loyalty source's): Cara goes.
    let said = ok(&[
        "consent",
        "-p",
        p(dir),
        "--email",
        " ANNA@example.com",
        "--purpose",
        "marketing",
        "--channel",
        "email",
        "--withdraw",
        "--actor",
        "service-desk",
    ]);
    assert!(
        said.contains("withdrawn") && said.contains("cus_000000001"),
        "{said}"
    );
    assert_eq!(
        query(dir, "SELECT customer_id, granted, source FROM customer_consent ORDER BY 1"),
        "customer_id,granted,source\ncus_000000001,false,panorama\ncus_000000003,true,loyalty\ncus_000000006,false,loyalty\n"
    );
    ok(&["export", "-q", "-p", p(dir), "mail"]);
    let rows = csv_rows(&dir.join("out/mail.csv"));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["customer_id"], "cus_000000003");
    // A statement for every channel of the purpose counts for e-mail too, latest wins.
    ok(&[
        "consent",
        "-q",
        "-p",
        p(dir),
        "--customer",
        "cus_000000001",
        "--purpose",
        "marketing",
        "--grant",
    ]);
    ok(&["export", "-q", "-p", p(dir), "mail"]);
    assert_eq!(
        csv_rows(&dir.join("out/mail.csv"))[0]["customer_id"],
        "cus_000000001"
    );

    // Incremental: everything once, then nothing, then only what changed or left.
    ok(&["export", "-q", "-p", p(dir), "changes"]);
    let folder = dir.join("out/changes");
    let first = files_in(&folder);
    assert_eq!(first.len(), 1);
    let rows = csv_rows(&first[0]);
    assert_eq!(rows.len(), 6);
    assert!(rows.iter().all(|r| r["_change"] == "entered"));
    ok(&["export", "-q", "-p", p(dir), "changes"]);
    assert_eq!(
        files_in(&folder).len(),
        1,
        "nothing changed, nothing written"
    );

    edit(
        &dir.join("data/customers.csv"),
        "K2,Ben,Cole,ben@example.com",
        "K2,Ben,Cole,ben@example.org",
    );
    edit(
        &dir.join("data/customers.csv"),
        "K4,Dirk,Eck,dirk@example.com,NL\n",
        "",
    );
    ok(&["run", "-q", "-p", p(dir)]);
    ok(&["export", "-q", "-p", p(dir), "changes"]);
    let files = files_in(&folder);
    assert_eq!(files.len(), 3, "{files:?}");
    let changed: Vec<_> = files
        .iter()
        .filter(|f| !first.contains(f) && !f.to_string_lossy().ends_with(".deletes.csv"))
        .collect();
    let rows = csv_rows(changed[0]);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["customer_id"], "cus_000000002");
    assert_eq!(rows[0]["email"], "ben@example.org");
    assert_eq!(rows[0]["_change"], "changed");
    let deletes = files
        .iter()
        .find(|f| f.to_string_lossy().ends_with(".deletes.csv"))
        .unwrap();
    let rows = csv_rows(deletes);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["customer_id"], "cus_000000004");
    assert_eq!(rows[0]["_change"], "left");
    assert_eq!(
        query(
            dir,
            "SELECT upserts, deletes, confirmed FROM export_log WHERE export = 'changes' ORDER BY started_at"
        ),
        "upserts,deletes,confirmed\n6,0,6\n0,0,0\n1,1,2\n"
    );
}

#[test]
fn export_config_errors_name_the_line() {
    let tmp = shop_project();
    let dir = tmp.path();
    let cases = [
        (
            "[exports.x]\nsegment = \"members_with_points\"\ntable = \"unified_customers\"\nfile = { path = \"a.csv\" }\n",
            "exactly one of `segment`, `table` or `query`",
        ),
        (
            "[exports.x]\nsegment = \"no_such_segment\"\nfile = { path = \"a.csv\" }\n",
            "no segment named `no_such_segment`",
        ),
        (
            "[exports.x]\ntable = \"unified_customers\"\n",
            "names no destination",
        ),
        (
            "[exports.x]\ntable = \"unified_customers\"\nfile = { path = \"a.txt\" }\n",
            "set format",
        ),
        (
            "[exports.x]\ntable = \"unified_customers\"\nchannel = \"email\"\nfile = { path = \"a.csv\" }\n",
            "channel needs a `purpose`",
        ),
        (
            "[messages.m]\nchannel = \"email\"\nto = \"email\"\nbody = \"Hi {{First Name}} {{Points}}\"\n",
            "unknown placeholders {{First Name}}, {{Points}}",
        ),
        (
            "[schedules.s]\ncron = \"every day\"\nsteps = [\"refresh\"]\n",
            "expected 5",
        ),
        (
            "[schedules.s]\ncron = \"0 2 * * *\"\nsteps = [\"export nowhere\"]\n",
            "no export named `nowhere`",
        ),
        (
            "[consent]\n[[consent.sources]]\nsource = \"orders\"\npurpose = \"p\"\ncolumn = \"c\"\n",
            "not a source in [unify.sources]",
        ),
    ];
    let config = dir.join("panorama.toml");
    let base = std::fs::read_to_string(&config).unwrap();
    let base_lines = base.lines().count();
    for (section, expected) in cases {
        std::fs::write(&config, format!("{base}\n{section}")).unwrap();
        let err = fails(&["run", "-q", "-p", p(dir)]);
        assert!(err.contains(expected), "expected {expected:?} in: {err}");
        // The error points into the appended section, not at line 1.
        let line: usize = err
            .split("panorama.toml:")
            .nth(1)
            .and_then(|l| l.split(':').next())
            .and_then(|l| l.parse().ok())
            .unwrap_or_else(|| panic!("no line in {err}"));
        assert!(line > base_lines, "line {line} for {expected:?}: {err}");
    }
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    idempotency_key: String,
    body: serde_json::Value,
    status: u16,
}

/// A local HTTP receiver: answers 500 to requests numbered in `fail` (0-based), 200 otherwise.
struct Receiver {
    url: String,
    log: Arc<Mutex<Vec<Received>>>,
    count: Arc<AtomicUsize>,
    fail: Arc<Mutex<BTreeSet<usize>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let fail = Arc::new(Mutex::new(BTreeSet::new()));
        let (log2, count2, fail2) = (log.clone(), count.clone(), fail.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut headers = BTreeMap::new();
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                loop {
                    line.clear();
                    reader.read_line(&mut line).unwrap();
                    if line.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                    }
                }
                let len: usize = headers
                    .get("content-length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                let n = count2.fetch_add(1, Ordering::SeqCst);
                let status = if fail2.lock().unwrap().contains(&n) {
                    500
                } else {
                    200
                };
                log2.lock().unwrap().push(Received {
                    idempotency_key: headers.get("idempotency-key").cloned().unwrap_or_default(),
                    body: serde_json::from_slice(&body).unwrap(),
                    status,
                });
                let reason = if status == 200 {
                    "OK"
                } else {
                    "Internal Server Error"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Receiver {
            url,
            log,
            count,
            fail,
        }
    }

    fn accepted(&self) -> Vec<Received> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.status == 200)
            .cloned()
            .collect()
    }
}

#[test]
fn webhook_exports_resend_exactly_what_was_not_confirmed() {
    let tmp = shop_project();
    let dir = tmp.path();
    let hook = Receiver::start();
    append(
        &dir.join("panorama.toml"),
        &format!(
            r#"
[exports.crm_hook]
table = "unified_customers"
columns = ["first_name", "email"]
mode = "incremental"
webhook = {{ url = "{}", batch_size = 2, max_attempts = 2, backoff_ms = 10 }}
"#,
            hook.url
        ),
    );
    ok(&["run", "-q", "-p", p(dir)]);
    // The first batch gets through, then the receiver fails (both attempts of batch two).
    hook.fail.lock().unwrap().extend([1, 2]);
    let err = fails(&["export", "-p", p(dir), "crm_hook"]);
    assert!(
        err.contains("HTTP 500") && err.contains("after 2 attempts"),
        "{err}"
    );
    assert_eq!(
        hook.count.load(Ordering::SeqCst),
        3,
        "batch 1, then 2 attempts of batch 2"
    );
    let dead =
        std::fs::read_to_string(dir.join(".panorama/state/exports/crm_hook/dead_letter.jsonl"))
            .unwrap();
    assert_eq!(dead.lines().count(), 1, "{dead}");
    assert_eq!(
        query(
            dir,
            "SELECT upserts, confirmed, dead_lettered, outcome FROM export_log"
        ),
        "upserts,confirmed,dead_lettered,outcome\n6,2,2,failed\n"
    );

    // The receiver is back: the next export sends the four rows it never confirmed.
    ok(&["export", "-q", "-p", p(dir), "crm_hook"]);
    let accepted = hook.accepted();
    let mut keys = Vec::new();
    for r in &accepted {
        assert_eq!(r.body["batch"].as_str().unwrap(), r.idempotency_key);
        assert_eq!(r.body["export"], "crm_hook");
        for e in r.body["events"].as_array().unwrap() {
            assert_eq!(e["op"], "upsert");
            assert_eq!(e["change"], "entered");
            keys.push(e["key"].as_str().unwrap().to_string());
        }
    }
    let expected: Vec<String> = (1..=6).map(|i| format!("cus_00000000{i}")).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "every customer exactly once: {keys:?}");
    let anna = accepted[0].body["events"][0]["data"].clone();
    assert_eq!(anna["email"], "anna@example.com");
    assert_eq!(anna["first_name"], "Anna");

    // Nothing changed: nothing sent. Ben changes and Dirk leaves: one upsert, one delete.
    let before = hook.count.load(Ordering::SeqCst);
    ok(&["export", "-q", "-p", p(dir), "crm_hook"]);
    assert_eq!(hook.count.load(Ordering::SeqCst), before);
    edit(&dir.join("data/customers.csv"), "K2,Ben,", "K2,Benjamin,");
    edit(
        &dir.join("data/customers.csv"),
        "K4,Dirk,Eck,dirk@example.com,NL\n",
        "",
    );
    ok(&["run", "-q", "-p", p(dir)]);
    ok(&["export", "-q", "-p", p(dir), "crm_hook"]);
    let last = hook.accepted().last().unwrap().body.clone();
    let events = last["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{last}");
    assert_eq!(events[0]["key"], "cus_000000002");
    assert_eq!(events[0]["change"], "changed");
    assert_eq!(events[0]["data"]["first_name"], "Benjamin");
    assert_eq!(events[1]["key"], "cus_000000004");
    assert_eq!(events[1]["op"], "delete");
    assert_eq!(events[1]["change"], "left");
}

#[test]
fn journeys_render_each_message_once_with_defaults_and_escaping() {
    let tmp = shop_with_consent();
    let dir = tmp.path();
    edit(
        &dir.join("data/customers.csv"),
        "K2,Ben,",
        "K2,Ben & <Bob>,",
    );
    append(
        &dir.join("panorama.toml"),
        r#"
[messages.points]
channel = "email"
to = "email"
subject = "{{First Name}}, your points"
body = "<p>Hi {{First Name}}, you have {{Loyalty Points}} points ({{Tier}})</p>"
[messages.points.fields]
"First Name" = "first_name"
"Loyalty Points" = { column = "loyalty_points", default = "0" }
"Tier" = { column = "loyalty_tier", default = "no tier yet" }

[journeys.welcome]
trigger = "not_lost_buyers"
message = "points"
export = "mailer"

[journeys.later]
trigger = "not_lost_buyers"
message = "points"
wait_days = 30
condition = "lifetime_spend >= 300"

[exports.mailer]
table = "outbox"
key = "message_id"
mode = "incremental"
purpose = "marketing"
channel = "email"
file = { path = "out/outbox/", format = "json" }
"#,
    );
    ok(&["run", "-q", "-p", p(dir)]);
    // Before any journey ran the outbox is empty: nothing to send, not an error.
    let out = ok(&["export", "-p", p(dir), "mailer"]);
    assert!(
        out.contains("selected 0") && out.contains("succeeded"),
        "{out}"
    );
    let out = ok(&["journeys", "-p", p(dir)]);
    assert!(out.contains("journey welcome: 3 due, 3 messages"), "{out}");
    // Entered on as_of (2026-07-01): 30 days have not passed.
    assert!(out.contains("journey later: 0 due"), "{out}");
    assert_eq!(
        query(dir, "SELECT customer_id, address, subject, body FROM outbox ORDER BY customer_id"),
        "customer_id,address,subject,body\n\
         cus_000000001,anna@example.com,\"Anna, your points\",\"<p>Hi Anna, you have 1500 points (Gold)</p>\"\n\
         cus_000000002,ben@example.com,\"Ben & <Bob>, your points\",\"<p>Hi Ben &amp; &lt;Bob&gt;, you have 0 points (no tier yet)</p>\"\n\
         cus_000000003,cara@example.com,\"Cara, your points\",\"<p>Hi Cara, you have 700 points (Silver)</p>\"\n"
    );
    // Delivered with consent checked: Ben has no e-mail consent.
    let files = files_in(&dir.join("out/outbox"));
    assert_eq!(files.len(), 1);
    let sent = std::fs::read_to_string(&files[0]).unwrap();
    assert_eq!(sent.lines().count(), 2, "{sent}");
    assert!(!sent.contains("ben@example.com"));

    // Again, and after a refresh: nobody gets the same step twice.
    ok(&["refresh", "-q", "-p", p(dir)]);
    let out = ok(&["journeys", "-p", p(dir), "welcome"]);
    assert!(out.contains("journey welcome: 0 due, 0 messages"), "{out}");
    assert_eq!(
        query(dir, "SELECT count(*) AS n FROM journey_state"),
        "n\n3\n"
    );
    // A month later the second journey is due.
    ok(&["refresh", "-q", "-p", p(dir), "--as-of", "2026-08-15"]);
    let out = ok(&["journeys", "-p", p(dir), "later"]);
    assert!(out.contains("journey later: 2 due, 2 messages"), "{out}");
    // Erasing Ben rewrites the one outbox file that holds his message; the logs stay readable
    // and keep everyone else's rows.
    ok(&[
        "privacy",
        "-q",
        "-p",
        p(dir),
        "erase",
        "--email",
        "ben@example.com",
        "--yes",
    ]);
    assert_eq!(
        query(dir, "SELECT (SELECT count(*) FROM outbox) AS outbox, (SELECT count(*) FROM journey_state) AS state"),
        "outbox,state\n4,4\n"
    );
    assert_eq!(
        query(
            dir,
            "SELECT customer_id FROM journey_state WHERE journey = 'later' ORDER BY 1"
        ),
        "customer_id\ncus_000000001\ncus_000000003\n"
    );
}

#[test]
fn schedules_fire_survive_failures_and_stop_on_sigterm() {
    let tmp = shop_project();
    let dir = tmp.path();
    // A closed port: the webhook export fails on every tick.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    append(
        &dir.join("panorama.toml"),
        &format!(
            r#"
[exports.snapshot]
table = "unified_customers"
file = {{ path = "out/customers.csv" }}

[exports.broken]
table = "unified_customers"
webhook = {{ url = "{dead_url}", max_attempts = 1 }}

[schedules.every_second]
cron = "* * * * * *"
steps = ["export snapshot"]

[schedules.failing]
cron = "*/2 * * * * *"
steps = ["export broken"]
"#
        ),
    );
    ok(&["run", "-q", "-p", p(dir)]);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_panorama"))
        .args(["schedule", "-p", p(dir)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (polling the log, a liveness guard, not a timing assertion) for both to have fired.
    let mut counts = String::new();
    for _ in 0..240 {
        std::thread::sleep(std::time::Duration::from_millis(250));
        let out = panorama(&[
            "query", "-p", p(dir), "--format", "csv",
            "SELECT count(*) FILTER (WHERE schedule = 'every_second' AND outcome = 'succeeded') AS ok, \
                    count(*) FILTER (WHERE schedule = 'failing' AND outcome = 'failed') AS failed FROM schedule_log",
        ]);
        counts = String::from_utf8_lossy(&out.stdout).to_string();
        let nums: Vec<u64> = counts
            .lines()
            .nth(1)
            .map(|l| l.split(',').filter_map(|n| n.parse().ok()).collect())
            .unwrap_or_default();
        if nums.len() == 2 && nums[0] >= 3 && nums[1] >= 2 {
            break;
        }
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(
        status.success(),
        "scheduler exit {status:?}; stdout:\n{stdout}"
    );
    let nums: Vec<u64> = counts
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(
        nums[0] >= 3 && nums[1] >= 2,
        "schedule_log counts {counts}\n{stdout}"
    );
    assert!(stdout.contains("stop signal"), "{stdout}");
    assert!(dir.join("out/customers.csv").exists());
    // Jobs never overlapped: each started after the previous one ended.
    let log = query(
        dir,
        "SELECT started_at, ended_at FROM schedule_log ORDER BY started_at",
    );
    let spans: Vec<(String, String)> = log
        .lines()
        .skip(1)
        .map(|l| {
            let (a, b) = l.split_once(',').unwrap();
            (a.to_string(), b.to_string())
        })
        .collect();
    for w in spans.windows(2) {
        assert!(w[1].0 >= w[0].1, "overlap: {w:?}");
    }
}

#[test]
fn privacy_access_erasure_and_rectification() {
    let tmp = shop_with_consent();
    let dir = tmp.path();
    append(
        &dir.join("panorama.toml"),
        r#"
[exports.changes]
table = "unified_customers"
mode = "incremental"
file = { path = "out/changes/" }

[exports.snapshot]
table = "unified_customers"
columns = ["first_name"]
file = { path = "out/snapshot.parquet" }
"#,
    );
    let hook = Receiver::start();
    append(
        &dir.join("panorama.toml"),
        &format!(
            "\n[exports.hook]\ntable = \"unified_customers\"\nmode = \"incremental\"\nwebhook = {{ url = \"{}\" }}\n",
            hook.url
        ),
    );
    ok(&["run", "-q", "-p", p(dir)]);
    ok(&["export", "-q", "-p", p(dir), "--all"]);

    // Access: everything on Anna, from every source.
    let doc: serde_json::Value = serde_json::from_str(&ok(&[
        "privacy",
        "-p",
        p(dir),
        "access",
        "--email",
        "Anna@Example.com",
    ]))
    .unwrap();
    assert_eq!(
        doc["request"]["customers"],
        serde_json::json!(["cus_000000001"])
    );
    assert_eq!(doc["profile"][0]["first_name"], "Anna");
    assert_eq!(doc["source_records"]["customers"][0]["customer_no"], "K1");
    assert_eq!(doc["source_records"]["loyalty"][0]["member_id"], "L1");
    let orders: Vec<&str> = doc["source_records"]["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(orders, vec!["O1", "O2", "O3"]);
    assert_eq!(doc["activities"].as_array().unwrap().len(), 3);
    assert_eq!(doc["measures"][0]["lifetime_spend"], 300.0);
    let segments: Vec<&str> = doc["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["segment"].as_str().unwrap())
        .collect();
    assert!(segments.contains(&"members_with_points"), "{segments:?}");
    assert_eq!(doc["consent"][0]["granted"], true);
    assert_eq!(doc["exports"][0]["export"], "changes");

    // Rectification wins over every source, in this and later runs.
    let err = fails(&[
        "privacy",
        "-p",
        p(dir),
        "rectify",
        "--customer",
        "cus_000000002",
        "--set",
        "nickname=B",
    ]);
    assert!(err.contains("no column `nickname`"), "{err}");
    let err = fails(&[
        "privacy",
        "-p",
        p(dir),
        "rectify",
        "--customer",
        "cus_000000002",
        "--set",
        "birth_date=yesterday",
    ]);
    assert!(err.contains("not a valid"), "{err}");
    ok(&[
        "privacy",
        "-q",
        "-p",
        p(dir),
        "rectify",
        "--customer",
        "cus_000000002",
        "--set",
        "last_name=Coleman",
        "--set",
        "birth_date=1990-02-03",
    ]);
    let ben =
        "SELECT last_name, birth_date FROM unified_customers WHERE customer_id = 'cus_000000002'";
    assert_eq!(
        query(dir, ben),
        "last_name,birth_date\nColeman,1990-02-03\n"
    );
    ok(&["run", "-q", "--full", "-p", p(dir)]);
    assert_eq!(
        query(dir, ben),
        "last_name,birth_date\nColeman,1990-02-03\n"
    );

    // Erasure: gone from every output, and stays gone when the sources are read again.
    for who in ["anna@example.com", "ben@example.com"] {
        ok(&[
            "consent",
            "-q",
            "-p",
            p(dir),
            "--email",
            who,
            "--purpose",
            "profiling",
            "--grant",
        ]);
    }
    let err = fails(&[
        "privacy",
        "-p",
        p(dir),
        "erase",
        "--email",
        "anna@example.com",
    ]);
    assert!(err.contains("--yes"), "{err}");
    let out = ok(&[
        "privacy",
        "-p",
        p(dir),
        "erase",
        "--email",
        "anna@example.com",
        "--yes",
        "--actor",
        "dpo",
    ]);
    assert!(out.contains("erased cus_000000001"), "{out}");
    assert!(out.contains("changes"), "the export to notify: {out}");
    let gone = "SELECT (SELECT count(*) FROM unified_customers WHERE first_name = 'Anna') \
                + (SELECT count(*) FROM customers WHERE customer_no = 'K1') \
                + (SELECT count(*) FROM loyalty WHERE member_id = 'L1') \
                + (SELECT count(*) FROM orders WHERE customer_no = 'K1') \
                + (SELECT count(*) FROM customer_links WHERE customer_id = 'cus_000000001') \
                + (SELECT count(*) FROM segment_history WHERE customer_id = 'cus_000000001') AS n";
    assert_eq!(query(dir, gone), "n\n0\n");
    assert_eq!(query(dir, "SELECT count(*) AS runs FROM runs"), "runs\n1\n");
    assert_eq!(
        query(dir, "SELECT customer_id FROM consent_statements"),
        "customer_id\ncus_000000002\n",
        "only Ben's statement is left"
    );
    ok(&["run", "-q", "--full", "-p", p(dir)]);
    assert_eq!(query(dir, gone), "n\n0\n");
    assert_eq!(
        query(
            dir,
            "SELECT source, rows_suppressed FROM source_stats ORDER BY source"
        ),
        "source,rows_suppressed\ncustomers,1\nloyalty,1\norders,3\n"
    );
    // A new record with her e-mail in another source is suppressed too.
    append(
        &dir.join("data/loyalty.csv"),
        "L9,Anna,Berg,anna@example.com,Gold,10,2026-06-30 00:00:00,true\n",
    );
    ok(&["run", "-q", "-p", p(dir)]);
    assert_eq!(query(dir, gone), "n\n0\n");
    let err = fails(&[
        "privacy",
        "-p",
        p(dir),
        "access",
        "--email",
        "anna@example.com",
    ]);
    assert!(err.contains("no customer has email"), "{err}");

    // The export's next run tells the destination to delete her.
    ok(&["export", "-q", "-p", p(dir), "changes"]);
    let deletes = files_in(&dir.join("out/changes"))
        .into_iter()
        .find(|f| f.to_string_lossy().ends_with(".deletes.csv"))
        .unwrap();
    let rows = csv_rows(&deletes);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["customer_id"], "cus_000000001");
    assert_eq!(rows[0]["_change"], "erased");

    // The webhook gets Ben's rectified profile as a change, and a delete saying why for her.
    ok(&["export", "-q", "-p", p(dir), "hook"]);
    let last = hook.accepted().last().unwrap().body.clone();
    let events = last["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{last}");
    assert_eq!(events[0]["change"], "changed");
    assert_eq!(events[0]["data"]["last_name"], "Coleman");
    assert_eq!(
        events[1],
        serde_json::json!({"op": "delete", "change": "erased", "key": "cus_000000001"})
    );
    // A full file export is rewritten without her, with a tombstone list next to it.
    ok(&["export", "-q", "-p", p(dir), "snapshot"]);
    let tombstones = files_in(&dir.join("out"))
        .into_iter()
        .find(|f| f.to_string_lossy().contains("snapshot.tombstones-"))
        .expect("tombstones written");
    let rows = csv_rows(&tombstones);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["customer_id"], "cus_000000001");
    assert_eq!(
        query(
            dir,
            "SELECT export, run_id IS NOT NULL AS has_run FROM export_watermarks ORDER BY 1"
        ),
        "export,has_run\nchanges,true\nhook,true\nsnapshot,true\n"
    );

    // The audit log has every request, and no identifier in clear.
    let audit = query(
        dir,
        "SELECT actor, action, identifier FROM audit_log ORDER BY at",
    );
    let actions: Vec<&str> = audit
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(
        actions,
        vec![
            "access",
            "rectify",
            "consent_grant",
            "consent_grant",
            "erase",
            "erase_completed"
        ],
        "{audit}"
    );
    assert!(audit.contains("dpo"));
    assert!(
        !audit.contains("anna@example.com") && !audit.contains("cus_0"),
        "{audit}"
    );
}
