//! Panorama's SQL on an Apache Ballista cluster started by the test on loopback (a
//! `panorama-cluster scheduler` and two `panorama-cluster executor`s): normalizers,
//! similarities and merge aggregates run on the executors and give what one machine gives,
//! and so do whole runs (`workspace.ballista`), full and incremental.
//! Needs `--features ballista`.
#![cfg(feature = "ballista")]

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A child process killed when the test ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn cluster(args: &[&str]) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_panorama-cluster"))
            .args(args)
            .stdout(Stdio::null())
            .spawn()
            .expect("panorama-cluster starts"),
    )
}

fn wait_for(port: u16) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "nothing listens on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A scheduler and two executors on loopback: the scheduler's `host:port` and the processes
/// (the executors first, so that they stop first).
fn start_cluster() -> (String, Vec<Proc>) {
    let scheduler_port = free_port();
    let scheduler_proc = cluster(&["scheduler", "--port", &scheduler_port.to_string()]);
    wait_for(scheduler_port);
    let scheduler = format!("127.0.0.1:{scheduler_port}");
    let mut procs = Vec::new();
    for _ in 0..2 {
        let (port, grpc) = (free_port(), free_port());
        procs.push(cluster(&[
            "executor",
            "--scheduler",
            &scheduler,
            "--port",
            &port.to_string(),
            "--grpc-port",
            &grpc.to_string(),
            "--concurrency",
            "2",
        ]));
        wait_for(grpc);
    }
    procs.push(scheduler_proc);
    (scheduler, procs)
}

/// The queries, each sorted so that row order cannot differ.
const QUERIES: &[&str] = &[
    // Staging's normalizers over a source (scalar UDFs on the executors).
    "SELECT contact_id, normalize_email(email, true) AS email, normalize_phone(phone, country) AS phone, \
       phone_digits(phone) AS digits, canonical_first_name(split_full_name(full_name)['first']) AS first, \
       double_metaphone(split_full_name(full_name)['last']) AS sound, normalize_address(street) AS street \
     FROM crm_contacts ORDER BY contact_id",
    // Similarities between matched records (a join and scalar UDFs).
    "SELECT p.left_uid, p.right_uid, round(jaro_winkler(l.last_name, r.last_name), 9) AS jw, \
       round(levenshtein_sim(l.first_name, r.first_name), 9) AS lev \
     FROM match_pairs p JOIN unify_records l ON l.uid = p.left_uid JOIN unify_records r ON r.uid = p.right_uid \
     ORDER BY p.left_uid, p.right_uid",
    // Merge precedence (UDAFs over a shuffle by customer), as unified_customers is made.
    "SELECT l.customer_id, by_priority(r.raw_first_name, r.source_priority) AS first_name, \
       most_recent(r.raw_email, r.updated_at) AS email, least_recent(r.raw_phone, r.updated_at) AS phone, \
       count(*) AS records \
     FROM customer_links l JOIN unify_records r ON r.uid = l.uid GROUP BY l.customer_id ORDER BY l.customer_id",
    // A measure-like aggregate with mode() over activities.
    "SELECT customer_id, count(*) AS n, mode(type) AS usual FROM activities \
     GROUP BY customer_id ORDER BY customer_id",
];

#[test]
fn panorama_sql_on_ballista_equals_one_machine() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(&[
        "demo",
        "--persons",
        "800",
        "--seed",
        "4",
        "--out",
        p(dir),
        "-q",
    ]);
    ok(&["run", "-p", p(dir), "-q"]);

    let (scheduler, _cluster) = start_cluster();
    let url = format!("df://{scheduler}");
    for sql in QUERIES {
        let local = query(dir, sql);
        let remote = ok(&[
            "query",
            "-p",
            p(dir),
            "--format",
            "csv",
            "--ballista",
            &url,
            sql,
        ]);
        assert!(local.lines().count() > 50, "{sql}: {local}");
        assert_eq!(remote, local, "{sql}");
    }
    // A function the cluster does not know is named in the error.
    let out = panorama(&[
        "query",
        "-p",
        p(dir),
        "--ballista",
        &url,
        "SELECT no_such_function(email) FROM crm_contacts",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no_such_function"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The whole demo run on the cluster, predictions included (recommendations' nested joins,
    // the churn and lifetime-value fits).
    let remote = tempfile::tempdir().unwrap();
    copy_dir(&dir.join("data"), &remote.path().join("data"));
    let toml = std::fs::read_to_string(dir.join("panorama.toml")).unwrap();
    write(
        &remote.path().join("panorama.toml"),
        &toml.replace(
            "[workspace]\n",
            &format!("[workspace]\nballista = \"{url}\"\n"),
        ),
    );
    ok(&["run", "-p", p(remote.path()), "-q"]);
    assert_same_tables(
        dir,
        remote.path(),
        &[
            "customer_links",
            "unified_customers",
            "identity_graph",
            "customer_measures",
            "segment_members",
            "predictions_churn",
            "predictions_clv",
            "recommendations",
            "prediction_grades",
        ],
    );
}

/// Every table a run writes that the comparison covers.
const TABLES: &[&str] = &[
    "unify_records",
    "customer_links",
    "unified_customers",
    "match_pairs",
    "activities",
    "customer_measures",
    "segment_members",
    "business_measures",
];

/// Runs whose config names the cluster: unification (full, then incremental), activities,
/// measures, segments and business measures run there, on two executors, and give the
/// single-machine tables.
#[test]
fn a_run_on_ballista_equals_one_machine() {
    let local = shop_project();
    let remote = shop_project();
    for project in [&local, &remote] {
        // The increment below touches 2 of the fixture's 9 records.
        let toml = project.path().join("panorama.toml");
        let text = std::fs::read_to_string(&toml).unwrap();
        write(
            &toml,
            &text.replace("[unify]\n", "[unify]\nincremental_max_change = 0.5\n"),
        );
    }
    ok(&["run", "-p", p(local.path()), "-q"]);

    let (scheduler, cluster) = start_cluster();
    append(
        &remote.path().join("panorama.toml"),
        &format!("\n[workspace]\nballista = \"df://{scheduler}\"\n"),
    );
    ok(&["run", "-p", p(remote.path()), "-q"]);
    assert_same_tables(local.path(), remote.path(), TABLES);

    // An increment: a duplicate of Ben under a new key and Cara's new e-mail. Both projects
    // unify it incrementally (the cluster one on the cluster) and still agree.
    for project in [&local, &remote] {
        let customers = project.path().join("data/customers.csv");
        let text = std::fs::read_to_string(&customers)
            .unwrap()
            .replace("cara@example.com", "cara.diaz@example.com");
        write(
            &customers,
            &format!("{text}K6,Ben,Cole,ben@example.com,GB\n"),
        );
        ok(&["run", "-p", p(project.path()), "-q"]);
    }
    let stats = "SELECT metric, value FROM unify_stats \
                 WHERE metric IN ('incremental', 'touched_records') ORDER BY metric";
    assert_eq!(
        query(remote.path(), stats),
        "metric,value\nincremental,1\ntouched_records,2\n"
    );
    assert_eq!(query(local.path(), stats), query(remote.path(), stats));
    assert_same_tables(local.path(), remote.path(), TABLES);

    // A refresh (activities, measures and segments again over the current unification) runs
    // through the same stages, on the cluster for the project that names one.
    for project in [&local, &remote] {
        ok(&["refresh", "-p", p(project.path()), "-q"]);
    }
    assert_same_tables(local.path(), remote.path(), TABLES);

    // Without a cluster to reach, a run and a refresh fail and name it; the previous run
    // stays.
    drop(cluster);
    let err = fails(&["refresh", "-p", p(remote.path()), "-q"]);
    assert!(err.contains(&format!("df://{scheduler}")), "{err}");
    let before = query(remote.path(), "SELECT * FROM segment_members");
    let err = fails(&["run", "-p", p(remote.path()), "-q", "--full"]);
    assert!(err.contains(&format!("df://{scheduler}")), "{err}");
    assert_eq!(
        query(remote.path(), "SELECT * FROM segment_members"),
        before
    );
}

/// Each table's rows equal on both sides, in any order; numbers with a fraction may differ in
/// the last digits (the cluster adds floats in another order), relatively by 1e-9 at most.
fn assert_same_tables(local: &std::path::Path, remote: &std::path::Path, tables: &[&str]) {
    for table in tables {
        let sql = format!("SELECT * FROM {table}");
        let (a, b) = (rows(&query(local, &sql)), rows(&query(remote, &sql)));
        assert!(a.len() > 2, "{table}: {a:?}");
        assert_eq!(a.len(), b.len(), "{table}");
        for (x, y) in a.iter().zip(&b) {
            let close = x.len() == y.len()
                && x.iter().zip(y).all(|(u, v)| {
                    u == v
                        || matches!((fraction(u), fraction(v)), (Some(u), Some(v))
                            if (u - v).abs() <= 1e-9 * u.abs().max(v.abs()))
                });
            assert!(close, "{table}:\n{x:?}\n{y:?}");
        }
    }
}

/// A number with a fraction or an exponent.
fn fraction(field: &str) -> Option<f64> {
    (field.contains('.') || field.contains('e'))
        .then(|| field.parse().ok())
        .flatten()
}

/// CSV rows sorted by their fields other than fractional numbers (keys, names, counts), then
/// by the whole row.
fn rows(csv: &str) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = csv
        .lines()
        .map(|line| line.split(',').map(String::from).collect())
        .collect();
    let key = |r: &Vec<String>| {
        r.iter()
            .filter(|f| fraction(f).is_none())
            .cloned()
            .collect::<Vec<_>>()
    };
    rows.sort_by(|a, b| key(a).cmp(&key(b)).then_with(|| a.cmp(b)));
    rows
}
