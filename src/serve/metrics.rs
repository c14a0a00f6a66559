//! Counters for `/metrics`, in Prometheus' text format.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the HTTP latency histogram.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10.0,
];

#[derive(Default)]
pub struct Metrics {
    pub pg_connections: AtomicU64,
    pub pg_queries: AtomicU64,
    pub flight_queries: AtomicU64,
    pub sql_errors: AtomicU64,
    pub refused: AtomicU64,
    pub auth_failures: AtomicU64,
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
    http: Mutex<Vec<(String, u16, Histogram)>>,
}

#[derive(Default, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Metrics {
    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// One HTTP request on `route` (the matched pattern, not the path) with `status`.
    pub fn http(&self, route: &str, status: u16, took: Duration) {
        let secs = took.as_secs_f64();
        let mut all = self.http.lock().expect("metrics lock");
        let h = match all.iter().position(|(r, s, _)| r == route && *s == status) {
            Some(i) => &mut all[i].2,
            None => {
                all.push((
                    route.to_string(),
                    status,
                    Histogram {
                        counts: vec![0; BUCKETS.len()],
                        ..Default::default()
                    },
                ));
                &mut all.last_mut().expect("pushed").2
            }
        };
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// The Prometheus exposition of every counter, with the snapshot's run and size.
    pub fn render(&self, run_id: &str, customers: usize) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, v: &AtomicU64| {
            out.push_str(&format!(
                "# HELP panorama_{name} {help}\n# TYPE panorama_{name} counter\npanorama_{name} {}\n",
                v.load(Ordering::Relaxed)
            ));
        };
        counter(
            "pg_connections_total",
            "PostgreSQL wire connections accepted.",
            &self.pg_connections,
        );
        counter(
            "pg_queries_total",
            "Statements run over PostgreSQL wire.",
            &self.pg_queries,
        );
        counter(
            "flight_queries_total",
            "Flight SQL requests.",
            &self.flight_queries,
        );
        counter(
            "sql_errors_total",
            "Statements that failed (any protocol).",
            &self.sql_errors,
        );
        counter(
            "refused_total",
            "Statements refused because the server is read-only.",
            &self.refused,
        );
        counter(
            "auth_failures_total",
            "Requests or logins without valid credentials.",
            &self.auth_failures,
        );
        counter(
            "reloads_total",
            "Newer runs loaded while serving.",
            &self.reloads,
        );
        counter(
            "reload_failures_total",
            "Newer runs that could not be loaded.",
            &self.reload_failures,
        );
        out.push_str(&format!(
            "# HELP panorama_snapshot_info The run being served.\n# TYPE panorama_snapshot_info gauge\npanorama_snapshot_info{{run_id=\"{run_id}\"}} 1\n\
             # HELP panorama_customers Customers in the served run.\n# TYPE panorama_customers gauge\npanorama_customers {customers}\n"
        ));
        out.push_str("# HELP panorama_http_request_duration_seconds HTTP requests by route and status.\n# TYPE panorama_http_request_duration_seconds histogram\n");
        let all = self.http.lock().expect("metrics lock").clone();
        for (route, status, h) in all {
            let labels = format!("route=\"{route}\",status=\"{status}\"");
            for (i, b) in BUCKETS.iter().enumerate() {
                out.push_str(&format!(
                    "panorama_http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}\n",
                    h.counts[i]
                ));
            }
            out.push_str(&format!(
                "panorama_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {c}\n\
                 panorama_http_request_duration_seconds_sum{{{labels}}} {s}\n\
                 panorama_http_request_duration_seconds_count{{{labels}}} {c}\n",
                c = h.count,
                s = h.sum
            ));
        }
        out
    }
}

/// Data quality gauges: the served run's expectations by result, and whether the newest run
/// failed its expectations (then the served data is older than the sources: alert on it).
pub fn data_quality(
    served: Option<&crate::workspace::QualitySummary>,
    newest: Option<&crate::workspace::Manifest>,
) -> String {
    let mut out = String::from(
        "# HELP panorama_data_quality_checks Expectations checked by the served run, by result.\n\
         # TYPE panorama_data_quality_checks gauge\n",
    );
    let q = served.cloned().unwrap_or_default();
    for (result, n) in [
        ("passed", q.passed),
        ("warn", q.warnings.len()),
        ("error", q.errors.len()),
    ] {
        out.push_str(&format!(
            "panorama_data_quality_checks{{result=\"{result}\"}} {n}\n"
        ));
    }
    let (run, failed) = newest
        .map(|m| {
            let errors = m.quality.as_ref().map_or(0, |q| q.errors.len());
            (m.run_id.as_str(), errors)
        })
        .unwrap_or(("", 0));
    out.push_str(&format!(
        "# HELP panorama_data_quality_newest_run_errors Error-level expectations the newest run failed (it stopped before unification; the previous run is still served).\n\
         # TYPE panorama_data_quality_newest_run_errors gauge\n\
         panorama_data_quality_newest_run_errors{{run_id=\"{run}\"}} {failed}\n"
    ));
    out
}
