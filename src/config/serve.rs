//! `[serve]`: where `panorama serve` listens and how much one query may take.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

/// `[serve]` as written; every key has a default, so the section itself is optional.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ServeSection {
    /// Address to listen on (default 127.0.0.1). Any other address needs users or tokens.
    pub bind: Option<String>,
    /// PostgreSQL wire port (default 5433, so a local PostgreSQL on 5432 is left alone).
    pub pg_port: Option<u16>,
    /// Arrow Flight SQL port (default 50051).
    pub flight_port: Option<u16>,
    /// HTTP port: JSON API, customer card, health and metrics (default 8080).
    pub http_port: Option<u16>,
    /// TLS for all three protocols: PEM certificate chain and private key.
    pub tls: Option<TlsFiles>,
    /// A query running longer is cancelled (default "60s").
    pub query_timeout: Option<String>,
    /// Memory one query may hold before it fails (default "1G"); queries do not spill.
    pub query_memory: Option<String>,
    /// Memory all queries together may hold (default: `--memory-limit`, else 70% of the
    /// machine's memory): a query that would take the server past it fails.
    pub memory: Option<String>,
    /// Heavy queries (reading more than 100,000 rows, or an unknown number) running at once
    /// (default: the machine's cores but one, at least one); more wait their turn.
    pub max_concurrent_queries: Option<usize>,
    /// How long a heavy query waits for its turn before it fails (default "10s").
    pub query_queue_timeout: Option<String>,
    /// Most rows an HTTP response returns (default 10000).
    pub http_row_limit: Option<usize>,
    /// Most simultaneous PostgreSQL connections (default 256).
    pub max_connections: Option<usize>,
    /// Most simultaneous HTTP connections (default: half the process's open-file limit,
    /// at least 64); more are closed as soon as they are accepted.
    pub max_http_connections: Option<usize>,
    /// A connection that has not logged in (PostgreSQL) or sent its request headers (HTTP)
    /// within this is closed (default "10s"), so idle sockets cannot hold every slot.
    pub login_timeout: Option<String>,
    /// How often to look for a newer run (default "2s").
    pub reload_interval: Option<String>,
    /// `[serve.events]`: collecting events at `POST /api/events` into the source of
    /// `format = "events"`.
    pub events: Option<EventsSection>,
}

/// `[serve.events]` as written.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EventsSection {
    /// Web origins whose pages may post events (CORS), e.g. `["https://shop.example"]`;
    /// default `["*"]`: any page (a write key is public in a page anyway, and may only write).
    pub allowed_origins: Option<Vec<String>>,
    /// A segment of the log is sealed past this size (default "16M") ...
    pub segment_size: Option<String>,
    /// ... or this long after its first event (default "60s").
    pub segment_age: Option<String>,
    /// How often sealed segments are compacted into Parquet (default "10s").
    pub compact_every: Option<String>,
    /// How long a `messageId` is recognised as a retry (default "24h").
    pub dedup_window: Option<String>,
    /// `[serve.events.measures.<name>]`: measures kept live per customer.
    #[serde(default)]
    pub measures: std::collections::BTreeMap<String, LiveMeasureDef>,
}

/// `[serve.events.measures.<name>]` (see `serve::live_measures`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveMeasureDef {
    /// count | sum | min | max | last
    pub aggregate: String,
    /// The `event` column's value the measure counts.
    pub event: String,
    /// SQL over the event's columns.
    #[serde(rename = "where", default)]
    pub condition: Option<String>,
    /// SQL over the event's columns giving the value (`sum`, `min`, `max`, `last`).
    pub value: Option<String>,
    /// Sliding window ("1h", "1d").
    pub window: String,
}

/// `[serve.events]` with defaults applied.
#[derive(Debug, Clone)]
pub struct EventSettings {
    pub allowed_origins: Vec<String>,
    pub log: crate::event_log::log::LogOptions,
    pub compact_every: Duration,
    pub measures: std::collections::BTreeMap<String, LiveMeasureDef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[serve]` with defaults applied and command-line overrides on top.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub bind: String,
    pub pg_port: u16,
    pub flight_port: u16,
    pub http_port: u16,
    pub tls: Option<TlsFiles>,
    pub limits: Limits,
    pub max_connections: usize,
    pub max_http_connections: usize,
    pub login_timeout: Duration,
    pub reload_interval: Duration,
    pub events: EventSettings,
}

/// What one query may use.
#[derive(Debug, Clone)]
pub struct Limits {
    pub query_timeout: Duration,
    pub query_memory: usize,
    pub http_row_limit: usize,
    /// What every query together holds, against `[serve] memory`.
    pub server_memory: std::sync::Arc<datafusion::execution::memory_pool::GreedyMemoryPool>,
    /// Turns of heavy queries (`max_concurrent_queries`), and how long one waits for a turn.
    pub turns: std::sync::Arc<tokio::sync::Semaphore>,
    pub max_concurrent_queries: usize,
    pub queue_timeout: Duration,
}

impl Limits {
    /// Limits with a server-wide budget of `server_memory` bytes and one heavy query at once
    /// per core but one (at least one), waiting up to 10 s for a turn: a core stays free for
    /// lookups, health and light queries.
    pub fn new(
        query_timeout: Duration,
        query_memory: usize,
        http_row_limit: usize,
        server_memory: usize,
    ) -> Self {
        let cores = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .saturating_sub(1)
            .max(1);
        Limits {
            query_timeout,
            query_memory,
            http_row_limit,
            server_memory: std::sync::Arc::new(
                datafusion::execution::memory_pool::GreedyMemoryPool::new(server_memory),
            ),
            turns: std::sync::Arc::new(tokio::sync::Semaphore::new(cores)),
            max_concurrent_queries: cores,
            queue_timeout: Duration::from_secs(10),
        }
    }

    /// At most `n` heavy queries at once, each waiting up to `wait` for its turn.
    pub fn with_turns(mut self, n: usize, wait: Duration) -> Self {
        self.turns = std::sync::Arc::new(tokio::sync::Semaphore::new(n));
        self.max_concurrent_queries = n;
        self.queue_timeout = wait;
        self
    }
}

/// The process's soft limit on open files (`ulimit -n`), 1024 when unknown.
fn open_file_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))?
                .split_whitespace()
                .nth(3)?
                .parse()
                .ok()
        })
        .unwrap_or(1024)
}

impl ServeSettings {
    /// Defaults, then `[serve]`; relative TLS paths resolve against the project root.
    pub fn from_section(section: Option<&ServeSection>, root: &std::path::Path) -> Result<Self> {
        let s = section.cloned().unwrap_or_default();
        let duration = |key: &str, v: &Option<String>, default: &str| {
            let text = v.as_deref().unwrap_or(default);
            parse_duration(text).ok_or_else(|| {
                Error::invalid(
                    format!("[serve] {key} = {text:?}"),
                    "expected a duration such as \"30s\", \"500ms\" or \"2m\"",
                )
            })
        };
        let size = |key: &str, v: &Option<String>, default: &str| {
            let text = v.as_deref().unwrap_or(default);
            crate::query_limits::parse_size(text).ok_or_else(|| {
                Error::invalid(
                    format!("[serve] {key} = {text:?}"),
                    "expected a size such as \"512M\" or \"2G\"",
                )
            })
        };
        let query_memory = size("query_memory", &s.query_memory, "1G")?;
        let server_memory = match &s.memory {
            Some(_) => size("memory", &s.memory, "")?,
            None => crate::query_limits::memory_limit().unwrap_or(usize::MAX),
        };
        Ok(ServeSettings {
            bind: s.bind.unwrap_or_else(|| "127.0.0.1".into()),
            pg_port: s.pg_port.unwrap_or(5433),
            flight_port: s.flight_port.unwrap_or(50051),
            http_port: s.http_port.unwrap_or(8080),
            tls: s.tls.map(|t| TlsFiles {
                cert: root.join(t.cert),
                key: root.join(t.key),
            }),
            limits: {
                let limits = Limits::new(
                    duration("query_timeout", &s.query_timeout, "60s")?,
                    query_memory,
                    s.http_row_limit.unwrap_or(10_000).max(1),
                    server_memory,
                );
                let turns = s
                    .max_concurrent_queries
                    .unwrap_or(limits.max_concurrent_queries)
                    .max(1);
                let wait = duration("query_queue_timeout", &s.query_queue_timeout, "10s")?;
                limits.with_turns(turns, wait)
            },
            max_connections: s.max_connections.unwrap_or(256).max(1),
            max_http_connections: s
                .max_http_connections
                .unwrap_or_else(|| (open_file_limit() / 2).max(64))
                .max(1),
            login_timeout: duration("login_timeout", &s.login_timeout, "10s")?,
            reload_interval: duration("reload_interval", &s.reload_interval, "2s")?,
            events: {
                let e = s.events.clone().unwrap_or_default();
                let defaults = crate::event_log::log::LogOptions::default();
                let key = |k: &str| format!("events.{k}");
                let segment_age = match &e.segment_age {
                    Some(_) => duration(&key("segment_age"), &e.segment_age, "")?,
                    None => defaults.segment_age,
                };
                let dedup_window = match &e.dedup_window {
                    Some(_) => duration(&key("dedup_window"), &e.dedup_window, "")?,
                    None => defaults.dedup_window,
                };
                let segment_bytes = match &e.segment_size {
                    Some(_) => size(&key("segment_size"), &e.segment_size, "")? as u64,
                    None => defaults.segment_bytes,
                };
                EventSettings {
                    allowed_origins: e.allowed_origins.unwrap_or_else(|| vec!["*".into()]),
                    log: crate::event_log::log::LogOptions {
                        segment_bytes: segment_bytes.max(1),
                        segment_age,
                        dedup_window,
                        ..defaults
                    },
                    compact_every: duration(&key("compact_every"), &e.compact_every, "10s")?,
                    measures: e.measures,
                }
            },
        })
    }

    /// True when the bind address only accepts connections from this machine.
    pub fn is_loopback(&self) -> bool {
        match self.bind.parse::<std::net::IpAddr>() {
            Ok(ip) => ip.is_loopback(),
            Err(_) => self.bind == "localhost",
        }
    }
}

pub use crate::config::parse_duration;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("5"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("-1s"), None);
    }

    #[test]
    fn defaults_and_errors() {
        let s = ServeSettings::from_section(None, std::path::Path::new("/p")).unwrap();
        assert_eq!(s.pg_port, 5433);
        assert!(s.is_loopback());
        let bad = ServeSection {
            query_timeout: Some("forever".into()),
            ..Default::default()
        };
        let e = ServeSettings::from_section(Some(&bad), std::path::Path::new("/p")).unwrap_err();
        assert!(e.to_string().contains("query_timeout"), "{e}");
    }
}
