//! Collecting events over HTTP (`POST /api/events`, Segment's `/v1` paths, the `/panorama.js`
//! tracker in a real headless Chromium): checked events, write keys, limits, idempotent
//! retries, live identity on the card and in lookups, runs reading what was collected — the
//! same customers and activities as the same events loaded from a file — and a server killed
//! with SIGKILL under load losing no acknowledged event and doubling none.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// The demo's config plus an events source read as an activity, tied by cookie, e-mail and
/// the webshop's customer number.
const COLLECT: &str = r#"
[sources.tracked]
location = "collected"
format = "events"
primary_key = "message_id"
description = "Events posted to /api/events"

[unify.identities.tracked]
anonymous_id = "anonymous_id"
id_type = "cookie"
email = "email"
timestamp = "ts"
user_id = "user_id"
user_source = "webshop_customers"

[activities.tracked]
source = "tracked"
anonymous_id = "anonymous_id"
timestamp = "ts"
type_column = "event"
details = ["name", "url"]

[serve.events]
compact_every = "200ms"
segment_age = "1s"

[serve.events.measures.cart_adds_1h]
aggregate = "count"
event = "add_to_cart"
window = "1h"

[serve.events.measures.cart_value_1h]
aggregate = "sum"
event = "add_to_cart"
value = "detail(properties, 'revenue')"
window = "1h"
"#;

struct Http {
    base: String,
    client: reqwest::Client,
}

impl Http {
    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value, reqwest::header::HeaderMap) {
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v, headers)
    }

    async fn events(&self, key: Option<&str>, body: &Value) -> (u16, Value) {
        let mut req = self
            .client
            .post(format!("{}/api/events", self.base))
            .body(body.to_string());
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let (s, v, _) = self.send(req).await;
        (s, v)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let (s, v, _) = self
            .send(self.client.get(format!("{}{path}", self.base)))
            .await;
        (s, v)
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Wait until the server serves a run other than `old`.
async fn served_after(http: &Http, old: &str) -> String {
    let started = Instant::now();
    loop {
        let (_, h) = http.get("/api/health").await;
        let now = text(&h["run_id"]);
        if now != old {
            return now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the server never loaded the new run"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collected_events_join_customers_at_once_and_in_the_next_run() {
    let tmp = demo("300", "11");
    let project = tmp.path();
    append(&project.join("panorama.toml"), COLLECT);
    // A run before anything was collected: the source is empty, not an error.
    ok(&["run", "-p", p(project), "-q"]);
    let empty = json_rows(project, "SELECT count(*) AS n FROM tracked");
    assert_eq!(text(&empty[0]["n"]), "0");
    let key = ok(&["write-keys", "create", "site", "-p", p(project), "-q"])
        .trim()
        .to_string();
    assert!(key.starts_with("pwk_"), "{key}");

    // Two customers to recognise: one by the webshop's customer number, one by e-mail.
    let by_number = json_rows(
        project,
        "SELECT l.record_id, l.customer_id FROM customer_links l \
         WHERE l.source = 'webshop_customers' ORDER BY l.record_id LIMIT 1",
    );
    let (number, numbered) = (
        text(&by_number[0]["record_id"]),
        text(&by_number[0]["customer_id"]),
    );
    let by_mail = json_rows(project,
        &format!(
            "SELECT r.email, l.customer_id FROM unify_records r JOIN customer_links l ON l.uid = r.uid \
             WHERE r.email IS NOT NULL AND l.source = 'crm_contacts' AND l.customer_id <> '{numbered}' \
             ORDER BY r.email LIMIT 1"
        ),
    );
    let (email, mailed) = (text(&by_mail[0]["email"]), text(&by_mail[0]["customer_id"]));

    let server = Server::start(project, &[]);
    let http = Http {
        base: format!("http://{}", server.http),
        client: reqwest::Client::new(),
    };
    let (_, health) = http.get("/api/health").await;
    let first_run = text(&health["run_id"]);

    // --- Who may send ------------------------------------------------------------------------
    let page = json!({"type": "page", "anonymousId": "c-1", "messageId": "m-1", "name": "Home",
                      "context": {"page": {"url": "https://shop.example/"}}});
    let (s, v) = http.events(None, &page).await;
    assert_eq!(s, 401, "{v}");
    assert!(text(&v["error"]).contains("write key"), "{v}");
    let (s, _) = http.events(Some("pwk_wrong"), &page).await;
    assert_eq!(s, 401);
    // A write key reads nothing.
    let (s, _, _) = http
        .send(
            http.client
                .get(format!("{}/api/customers/{numbered}", http.base))
                .bearer_auth(&key),
        )
        .await;
    assert_eq!(
        s, 200,
        "no credentials but write keys: reads stay open on loopback"
    );

    // --- A batch: good events kept, bad ones listed with their index and reason ------------
    let batch = json!({"batch": [
        page,
        {"type": "track", "anonymousId": "c-1", "messageId": "m-2"},
        {"type": "track", "anonymousId": "c-1", "messageId": "m-3", "event": "add_to_cart",
         "properties": {"product_id": "P1", "revenue": 19.5}, "timestamp": "2026-11-30T10:00:00Z"},
        {"anonymousId": "c-1", "messageId": "m-4"},
        {"type": "group", "userId": "u", "messageId": "m-5"},
    ], "writeKey": key});
    let (s, v) = http.events(None, &batch).await;
    assert_eq!(s, 207, "{v}");
    assert_eq!(v["accepted"], 2, "{v}");
    let bad: Vec<(u64, String)> = v["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), text(&r["error"])))
        .collect();
    assert_eq!(
        bad.iter().map(|b| b.0).collect::<Vec<_>>(),
        vec![1, 3, 4],
        "{v}"
    );
    assert!(bad[0].1.contains("needs `event`"), "{bad:?}");
    assert!(bad[1].1.contains("`type` is missing"), "{bad:?}");
    assert!(bad[2].1.contains("not collected"), "{bad:?}");
    // A retry of the same batch is acknowledged and written once.
    let (s, v) = http.events(None, &batch).await;
    assert_eq!((s, v["duplicates"].clone()), (207, json!(2)), "{v}");

    // Not tied yet: the cookie finds nobody.
    let (_, found) = http.get("/api/customers?cookie=c-1").await;
    assert_eq!(found["count"], 0, "{found}");

    // --- identify: the visitor's events join the customer at once --------------------------
    let t0 = Instant::now();
    let identify = json!({"type": "identify", "anonymousId": "c-1", "userId": number,
                          "messageId": "m-6", "traits": {"plan": "gold"}});
    let (s, v) = http.events(Some(&key), &identify).await;
    assert_eq!(s, 200, "{v}");
    let (_, found) = http.get("/api/customers?cookie=c-1").await;
    let seen_after = t0.elapsed();
    assert_eq!(found["count"], 1, "{found}");
    assert_eq!(text(&found["customers"][0]["customer_id"]), numbered);
    let (_, card) = http.get(&format!("/api/customers/{numbered}")).await;
    let live = card["live"].as_array().unwrap();
    let kinds: Vec<String> = live.iter().map(|e| text(&e["type"])).collect();
    assert_eq!(kinds.len(), 3, "{card}");
    assert!(
        kinds.contains(&"add_to_cart".to_string())
            && kinds.contains(&"page".to_string())
            && kinds.contains(&"identify".to_string()),
        "{kinds:?}"
    );
    let cart = live.iter().find(|e| e["type"] == "add_to_cart").unwrap();
    assert_eq!(cart["amount"], 19.5, "{cart}");
    assert_eq!(text(&cart["ts"]), "2026-11-30T10:00:00", "{cart}");
    assert_eq!(text(&cart["activity_source"]), "tracked");
    eprintln!("event to visible on the card: {seen_after:?}");
    // Live measures: the visitor's cart addition (anonymous when it came) joined them.
    assert_eq!(card["live_measures"]["cart_adds_1h"], 1, "{card}");
    assert_eq!(card["live_measures"]["cart_value_1h"], 19.5, "{card}");

    // By e-mail (an identify's trait), through Segment's path and Basic auth.
    let basic = base64_user(&key);
    let (s, v, _) = http
        .send(
            http.client
                .post(format!("{}/v1/identify", http.base))
                .header("authorization", format!("Basic {basic}"))
                .body(
                    json!({"anonymousId": "c-2", "messageId": "m-7",
                           "traits": {"email": email.to_uppercase()}})
                    .to_string(),
                ),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, found) = http.get("/api/customers?cookie=c-2").await;
    assert_eq!(
        text(&found["customers"][0]["customer_id"]),
        mailed,
        "{found}"
    );
    // alias: an earlier anonymous id joins the user.
    let (s, _) = http
        .events(
            Some(&key),
            &json!({"type": "alias", "previousId": "c-3", "userId": number, "messageId": "m-8"}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, found) = http.get("/api/customers?cookie=c-3").await;
    assert_eq!(
        text(&found["customers"][0]["customer_id"]),
        numbered,
        "{found}"
    );

    // --- Limits ---------------------------------------------------------------------------
    let big = "x".repeat(33 * 1024);
    let (s, v) = http
        .events(
            Some(&key),
            &json!({"batch": [{"type": "track", "event": "e", "userId": "u", "properties": {"x": big}}]}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        text(&v["rejected"][0]["error"]).contains("at most 32768"),
        "{v}"
    );
    let huge: Vec<Value> = (0..40)
        .map(|i| json!({"type": "track", "event": "e", "userId": "u", "messageId": format!("h{i}"), "properties": {"x": "y".repeat(15_000)}}))
        .collect();
    let (s, _) = http.events(Some(&key), &json!({ "batch": huge })).await;
    assert_eq!(s, 413, "a body over 500 KB is refused whole");
    let (s, v) = http.events(Some(&key), &json!({"batch": []})).await;
    assert_eq!(s, 400, "{v}");
    let (s, v, _) = http
        .send(
            http.client
                .post(format!("{}/api/events", http.base))
                .bearer_auth(&key)
                .body("{not json"),
        )
        .await;
    assert_eq!(s, 400, "{v:?}");

    // --- CORS, the tracker, metrics ---------------------------------------------------------
    let (s, _, h) = http
        .send(
            http.client
                .request(
                    reqwest::Method::OPTIONS,
                    format!("{}/api/events", http.base),
                )
                .header("origin", "https://shop.example")
                .header("access-control-request-method", "POST"),
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(
        h.get("access-control-allow-origin").unwrap(),
        "https://shop.example"
    );
    let (s, js, h) = http
        .send(http.client.get(format!("{}/panorama.js", http.base)))
        .await;
    assert_eq!(s, 200);
    assert!(h["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(text(&js).contains("pan_aid"));
    let (_, metrics, _) = http
        .send(http.client.get(format!("{}/metrics", http.base)))
        .await;
    let metrics = text(&metrics);
    assert!(
        metrics.contains("panorama_events_written_total 5"),
        "{metrics}"
    );
    assert!(metrics.contains("panorama_events_duplicates_total 2"));

    // --- The tracker in a real browser, on a shop page of another origin --------------------
    let mut browser_cookie = None;
    if have(
        "Playwright and Chromium",
        "python3",
        &[
            "-c",
            "import playwright, shutil, sys; sys.exit(0 if shutil.which('chromium') else 1)",
        ],
    ) {
        let shop = tempfile::tempdir().unwrap();
        write(
            &shop.path().join("index.html"),
            &format!(
                r#"<!doctype html><html><head><title>Demo shop</title><link rel="icon" href="data:,">
<script src="{base}/panorama.js" data-write-key="{key}"></script></head>
<body><h1>Demo shop</h1>
<button id="add" onclick="panorama.track('add_to_cart', {{product_id: 'P7', revenue: 42}})">Add to cart</button>
<form id="login" onsubmit="panorama.identify('{number}', {{plan: 'web'}}); return false;">
<button id="sign-in" type="submit">Sign in</button></form>
</body></html>"#,
                base = http.base
            ),
        );
        let out = Command::new("python3")
            .arg(clients_dir().join("tracker_browser.py"))
            .arg(shop.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tracker_browser.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(seen["errors"].as_array().unwrap().is_empty(), "{seen}");
        let cookie = text(&seen["cookie"]);
        assert_eq!(cookie, text(&seen["anonymous_id"]), "{seen}");
        assert!(cookie.len() >= 32, "{seen}");
        let (_, found) = http.get(&format!("/api/customers?cookie={cookie}")).await;
        assert_eq!(
            text(&found["customers"][0]["customer_id"]),
            numbered,
            "{found}"
        );
        let (_, card) = http.get(&format!("/api/customers/{numbered}")).await;
        let from_browser: Vec<&Value> = card["live"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| text(&e["details"]["product_id"]) == "P7" || e["type"] == "page")
            .collect();
        let kinds: BTreeSet<String> = from_browser.iter().map(|e| text(&e["type"])).collect();
        assert_eq!(
            kinds,
            BTreeSet::from(["add_to_cart".to_string(), "page".to_string()]),
            "{card}"
        );
        // The card page shows them too.
        let (_, html, _) = http
            .send(
                http.client
                    .get(format!("{}/customers/{numbered}", http.base)),
            )
            .await;
        let html = text(&html);
        assert!(html.contains("Just now") && html.contains("P7"), "{html}");
        assert!(
            html.contains("(live)"),
            "live measures among the key figures: {html}"
        );
        assert_eq!(card["live_measures"]["cart_adds_1h"], 2, "{card}");
        assert_eq!(card["live_measures"]["cart_value_1h"], 61.5, "{card}");
        browser_cookie = Some(cookie);
    }

    // --- A run reads everything collected (some of it compacted meanwhile) ------------------
    tokio::time::sleep(Duration::from_millis(1500)).await; // a segment sealed and compacted
    assert!(
        std::fs::read_dir(project.join("collected/parquet"))
            .unwrap()
            .count()
            > 0,
        "compaction wrote Parquet"
    );
    ok(&["run", "-p", p(project), "-q"]);
    served_after(&http, &first_run).await;
    let stored = json_rows(
        project,
        "SELECT count(*) AS n, count(DISTINCT message_id) AS ids FROM tracked",
    );
    let (_, metrics, _) = http
        .send(http.client.get(format!("{}/metrics", http.base)))
        .await;
    let written: u64 = text(&metrics)
        .lines()
        .find_map(|l| l.strip_prefix("panorama_events_written_total "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(text(&stored[0]["n"]), written.to_string());
    assert_eq!(text(&stored[0]["ids"]), written.to_string());
    let graph = json_rows(
        project,
        "SELECT anonymous_id, customer_id, linked_by FROM identity_graph \
         WHERE source = 'tracked' ORDER BY anonymous_id",
    );
    let tie = |id: &str| {
        graph
            .iter()
            .find(|r| text(&r["anonymous_id"]) == id)
            .map(|r| (text(&r["customer_id"]), text(&r["linked_by"])))
    };
    assert_eq!(tie("c-1"), Some((numbered.clone(), "user_id".into())));
    assert_eq!(tie("c-2"), Some((mailed.clone(), "email".into())));
    assert_eq!(tie("c-3"), Some((numbered.clone(), "user_id".into())));
    if let Some(c) = &browser_cookie {
        assert_eq!(tie(c).map(|t| t.0), Some(numbered.clone()));
    }
    let acts = json_rows(
        project,
        &format!(
            "SELECT type, count(*) AS n FROM activities WHERE activity_source = 'tracked' \
             AND customer_id = '{numbered}' GROUP BY type ORDER BY type"
        ),
    );
    let types: Vec<String> = acts.iter().map(|r| text(&r["type"])).collect();
    assert!(
        types.contains(&"add_to_cart".into()) && types.contains(&"alias".into()),
        "{acts:?}"
    );
    // The run holds them now: the card's live list is empty, its timeline has them.
    let (_, card) = http.get(&format!("/api/customers/{numbered}")).await;
    assert_eq!(card["live"].as_array().unwrap().len(), 0, "{card}");
    // Live measures slide by time, not by run.
    let adds = if browser_cookie.is_some() { 2 } else { 1 };
    assert_eq!(card["live_measures"]["cart_adds_1h"], adds, "{card}");
    let timeline: Vec<String> = card["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| text(&e["type"]))
        .collect();
    assert!(timeline.contains(&"add_to_cart".into()), "{timeline:?}");
    drop(server);

    // --- The same events loaded from a file give the same customers and activities ----------
    let copy = tempfile::tempdir().unwrap();
    copy_dir(project, copy.path());
    let _ = std::fs::remove_dir_all(copy.path().join(".panorama"));
    let _ = std::fs::remove_dir_all(copy.path().join("collected"));
    ok(&[
        "query",
        "-p",
        p(project),
        "--format",
        "parquet",
        "--output",
        p(&copy.path().join("tracked.parquet")),
        "SELECT * FROM tracked",
    ]);
    edit(
        &copy.path().join("panorama.toml"),
        "location = \"collected\"\nformat = \"events\"",
        "location = \"tracked.parquet\"\nformat = \"parquet\"",
    );
    ok(&["run", "-p", p(copy.path()), "-q"]);
    for sql in [
        "SELECT customer_id, count(*) AS records FROM customer_links GROUP BY customer_id ORDER BY customer_id",
        "SELECT anonymous_id, customer_id, linked_by, events FROM identity_graph ORDER BY anonymous_id, source",
        "SELECT customer_id, type, activity_source, CAST(ts AS VARCHAR) AS ts, details FROM activities \
         ORDER BY customer_id, ts, type, details",
    ] {
        assert_eq!(query(project, sql), query(copy.path(), sql), "{sql}");
    }
}

fn base64_user(key: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
}

/// Send batches from `senders` tasks until `stop`; returns (acknowledged ids, ids sent but
/// not acknowledged).
async fn load(
    base: String,
    key: String,
    senders: usize,
    round: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    retry: Vec<Vec<String>>,
) -> (HashSet<String>, Vec<Vec<String>>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    let retry = std::sync::Arc::new(std::sync::Mutex::new(retry));
    for s in 0..senders {
        let (client, base, key, stop, retry) = (
            client.clone(),
            base.clone(),
            key.clone(),
            stop.clone(),
            retry.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut acked = HashSet::new();
            let mut unacked = Vec::new();
            let mut n = 0;
            loop {
                // First the batches a kill left unanswered (retries, with the same ids).
                let again = retry.lock().unwrap().pop();
                let ids: Vec<String> = match again {
                    Some(ids) => ids,
                    None if stop.load(std::sync::atomic::Ordering::Relaxed) => break,
                    None => {
                        n += 1;
                        (0..20)
                            .map(|i| format!("r{round}-s{s}-b{n}-e{i}"))
                            .collect()
                    }
                };
                let batch: Vec<Value> = ids
                    .iter()
                    .map(|id| {
                        json!({"type": "track", "event": "load", "anonymousId": format!("a{s}"),
                                      "messageId": id, "properties": {"n": n}})
                    })
                    .collect();
                let res = client
                    .post(format!("{base}/api/events"))
                    .bearer_auth(&key)
                    .body(json!({ "batch": batch }).to_string())
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status().as_u16() == 200 => acked.extend(ids),
                    Ok(r) if r.status().as_u16() == 503 => retry.lock().unwrap().push(ids),
                    Ok(r) => panic!("unexpected {}", r.status()),
                    Err(_) => {
                        // The server is gone: these may or may not be on disk.
                        unacked.push(ids);
                        break;
                    }
                }
            }
            (acked, unacked)
        }));
    }
    let mut acked = HashSet::new();
    let mut unacked = Vec::new();
    for t in tasks {
        let (a, u) = t.await.unwrap();
        acked.extend(a);
        unacked.extend(u);
    }
    unacked.extend(std::mem::take(&mut *retry.lock().unwrap()));
    (acked, unacked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_event_is_lost_or_doubled_when_the_server_is_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path();
    // Small segments and a busy compactor, so kills land in writes, rotations and compactions.
    write(
        &project.join("panorama.toml"),
        r#"[project]
name = "crash"

[sources.tracked]
location = "collected"
format = "events"
primary_key = "message_id"

[serve.events]
segment_size = "48K"
compact_every = "30ms"
"#,
    );
    ok(&["run", "-p", p(project), "-q"]);
    let key = ok(&["write-keys", "create", "load", "-p", p(project), "-q"])
        .trim()
        .to_string();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let mut acked = HashSet::new();
    let mut sent_unacked: Vec<Vec<String>> = Vec::new();
    let mut kills = 0;
    for round in 0..4 {
        let mut server = Server::start(project, &[]);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let base = format!("http://{}", server.http);
        let sending = tokio::spawn(load(
            base,
            key.clone(),
            8,
            round,
            stop.clone(),
            std::mem::take(&mut sent_unacked),
        ));
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1500))).await;
        if round < 3 {
            server.child.kill().unwrap(); // SIGKILL
            let _ = server.child.wait();
            kills += 1;
        } else {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let (a, u) = sending.await.unwrap();
        acked.extend(a);
        sent_unacked.extend(u);
        if round == 3 {
            assert!(sent_unacked.is_empty(), "every retry was answered");
        }
    }
    assert!(
        kills == 3 && acked.len() > 1000,
        "{} acknowledged",
        acked.len()
    );
    let compacted = std::fs::read_dir(project.join("collected/parquet"))
        .unwrap()
        .count();
    assert!(compacted > 0, "compactions ran between the kills");
    ok(&["run", "-p", p(project), "-q"]);
    let stored: Vec<String> = query(
        project,
        "SELECT message_id FROM tracked ORDER BY message_id",
    )
    .lines()
    .skip(1)
    .map(str::to_string)
    .collect();
    let unique: HashSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "an event was stored twice");
    // Every batch a kill left unanswered was retried and answered: all sent were acknowledged.
    assert_eq!(
        stored.len(),
        acked.len(),
        "stored events that were never sent"
    );
    let missing: Vec<&String> = acked.iter().filter(|id| !unique.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    eprintln!(
        "{} acknowledged, {} stored, {} compacted files, {kills} kills",
        acked.len(),
        stored.len(),
        compacted
    );
}

/// A webhook receiver: records (Idempotency-Key, body); answers 500 to the first request.
async fn receiver() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(String, Value, Instant)>>>,
) {
    use axum::routing::post;
    let seen: std::sync::Arc<std::sync::Mutex<Vec<(String, Value, Instant)>>> =
        std::sync::Arc::default();
    let failed_once = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: axum::http::HeaderMap, body: String| {
            let (s, failed_once) = (s.clone(), failed_once.clone());
            async move {
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                s.lock().unwrap().push((key, v, Instant::now()));
                if !failed_once.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_cart_reminder_goes_out_once_after_its_window_unless_checked_out() {
    let (hook, received) = receiver().await;
    let tmp = demo("300", "12");
    let project = tmp.path();
    append(&project.join("panorama.toml"), COLLECT);
    append(
        &project.join("panorama.toml"),
        &format!(
            r#"
[messages.cart_reminder]
channel = "email"
to = "email"
subject = "You left something in your cart"
body = "Hi {{{{First Name}}}}, your cart is waiting."
fields = {{ "First Name" = {{ column = "first_name", default = "there" }} }}

[exports.cart_webhook]
table = "outbox"
key = "message_id"
webhook = {{ url = "{hook}", max_attempts = 3, backoff_ms = 100 }}

[journeys.abandoned_cart]
trigger = {{ event = "add_to_cart", where = "detail(properties, 'product_id') IS NOT NULL", unless = {{ event = "checkout", within = "2s" }} }}
message = "cart_reminder"
export = "cart_webhook"
frequency_cap = {{ messages = 1, per = "1d" }}
"#
        ),
    );
    ok(&["run", "-p", p(project), "-q"]);
    // `panorama journeys` leaves it to the server.
    let out = fails(&["journeys", "abandoned_cart", "-p", p(project)]);
    assert!(out.contains("triggered by events"), "{out}");
    let people = json_rows(
        project,
        "SELECT l.record_id, p.customer_id, p.first_name FROM customer_links l \
         JOIN customer_profiles p ON p.customer_id = l.customer_id \
         WHERE l.source = 'webshop_customers' AND p.email IS NOT NULL AND p.first_name IS NOT NULL \
         ORDER BY l.record_id LIMIT 3",
    );
    let person = |i: usize| {
        (
            text(&people[i]["record_id"]),
            text(&people[i]["customer_id"]),
            text(&people[i]["first_name"]),
        )
    };
    let (a_number, a, a_name) = person(0);
    let (b_number, _, _) = person(1);
    let (c_number, c, _) = person(2);
    let mut server = Server::start(project, &[]);
    let http = Http {
        base: format!("http://{}", server.http),
        client: reqwest::Client::new(),
    };
    let track = |anon: &str, user: &str, event: &str, id: &str| {
        json!({"type": "track", "event": event, "anonymousId": anon, "userId": user,
               "messageId": id, "properties": {"product_id": "P1"}})
    };
    // A leaves a cart; B checks out within the window; an unknown visitor leaves one.
    let (s, _) = http
        .events(
            None,
            &json!({"batch": [
                track("va", &a_number, "add_to_cart", "a-1"),
                track("vb", &b_number, "add_to_cart", "b-1"),
                {"type": "track", "event": "add_to_cart", "anonymousId": "vx", "messageId": "x-1",
                 "properties": {"product_id": "P1"}},
                {"type": "track", "event": "add_to_cart", "anonymousId": "vy", "messageId": "y-1"},
            ]}),
        )
        .await;
    assert_eq!(s, 200);
    let armed_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (s, _) = http
        .events(None, &track("vb", &b_number, "checkout", "b-2"))
        .await;
    assert_eq!(s, 200);
    // A's reminder: after the 2 s window, within 5 s of it (the first post fails with 500 and
    // is retried with the same key).
    let started = Instant::now();
    let first = loop {
        let got: Vec<_> = received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.1["events"][0]["data"]["customer_id"] == a.as_str())
            .cloned()
            .collect();
        if got.len() >= 2 {
            break got;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no reminder: {:?}",
            received.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let late = first[1].2.duration_since(armed_at);
    assert!(
        late >= Duration::from_secs(2),
        "sent before the window closed: {late:?}"
    );
    assert!(late <= Duration::from_secs(7), "{late:?} after the trigger");
    eprintln!("abandoned-cart reminder delivered {late:?} after the add_to_cart (window 2 s)");
    assert_eq!(
        first[0].0, first[1].0,
        "a retry carries the same Idempotency-Key"
    );
    let data = &first[1].1["events"][0]["data"];
    assert_eq!(text(&data["journey"]), "abandoned_cart");
    assert_eq!(
        text(&data["body"]),
        format!("Hi {a_name}, your cart is waiting.")
    );

    // A again: the frequency cap (1 a day) holds it back. C's cart, then the server is
    // killed before the window closes: the restarted server still sends it, once.
    let (s, _) = http
        .events(
            None,
            &json!({"batch": [track("va", &a_number, "add_to_cart", "a-2"),
                              track("vc", &c_number, "add_to_cart", "c-1")]}),
        )
        .await;
    assert_eq!(s, 200);
    server.child.kill().unwrap();
    let _ = server.child.wait();
    let server = Server::start(project, &[]);
    let http = Http {
        base: format!("http://{}", server.http),
        client: reqwest::Client::new(),
    };
    let started = Instant::now();
    while !received
        .lock()
        .unwrap()
        .iter()
        .any(|r| r.1["events"][0]["data"]["customer_id"] == c.as_str())
    {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "C's reminder never came"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(3000)).await; // anything else due has fired
    let (_, metrics, _) = http
        .send(http.client.get(format!("{}/metrics", http.base)))
        .await;
    let metrics = text(&metrics);
    assert!(
        metrics.contains("panorama_triggered_journeys_total{outcome=\"capped\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("panorama_triggered_journeys_armed 0"),
        "{metrics}"
    );
    drop(server);
    // Once more, restarted: nothing is sent twice.
    let server = Server::start(project, &[]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(server);
    let keys: BTreeSet<String> = received
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.0.clone())
        .collect();
    assert_eq!(
        keys.len(),
        2,
        "one message for A, one for C: {:?}",
        received.lock().unwrap()
    );
    let outbox = json_rows(
        project,
        "SELECT o.customer_id, o.run_id, s.message_id IS NOT NULL AS delivered FROM outbox o \
         LEFT JOIN journey_state s ON s.message_id = o.message_id \
         WHERE o.journey = 'abandoned_cart' ORDER BY o.customer_id",
    );
    let mut expected = vec![a.clone(), c.clone()];
    expected.sort();
    assert_eq!(
        outbox
            .iter()
            .map(|r| text(&r["customer_id"]))
            .collect::<Vec<_>>(),
        expected
    );
    assert!(
        outbox
            .iter()
            .all(|r| r["delivered"] == true && r["run_id"] == "live"),
        "{outbox:?}"
    );
}
