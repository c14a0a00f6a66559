//! `[exports.<name>]`: what to send, which rows and columns, and where.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// Rows a segment export sends at most unless its `limit` says otherwise (the cap marketing
/// connectors commonly put on one segment export).
pub const DEFAULT_SEGMENT_LIMIT: u64 = 100_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportDef {
    /// A segment's members, with their profile (`customer_profiles`).
    #[serde(default)]
    pub segment: Option<Spanned<String>>,
    /// Any table or view of the run, e.g. `unified_customers`.
    #[serde(default)]
    pub table: Option<Spanned<String>>,
    /// Any SQL query over the run.
    #[serde(default)]
    pub query: Option<Spanned<String>>,
    /// Columns to send; default every column (for a segment: the unified profile).
    #[serde(default)]
    pub columns: Option<Spanned<Vec<String>>>,
    /// Column identifying a row at the destination (upserts, deletes, incremental state).
    #[serde(default)]
    pub key: Option<Spanned<String>>,
    /// At most this many rows; a cut is reported. Segments default to 100,000.
    #[serde(default)]
    pub limit: Option<Spanned<u64>>,
    /// Which rows a limit keeps, an ORDER BY list (default: the key).
    #[serde(default)]
    pub order_by: Option<Spanned<String>>,
    /// Consent purpose checked for every customer sent (see `[consent]`).
    #[serde(default)]
    pub purpose: Option<Spanned<String>>,
    /// Consent channel checked with the purpose, e.g. "email".
    #[serde(default)]
    pub channel: Option<Spanned<String>>,
    /// `full` (default): send every row. `incremental`: only rows that entered, changed or
    /// left since the last confirmed export.
    #[serde(default)]
    pub mode: ExportMode,
    #[serde(default)]
    pub file: Option<Spanned<FileDestination>>,
    #[serde(default)]
    pub postgres: Option<Spanned<PostgresDestination>>,
    #[serde(default)]
    pub webhook: Option<Spanned<WebhookDestination>>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ExportMode {
    #[default]
    Full,
    Incremental,
}

impl ExportMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            ExportMode::Full => "full",
            ExportMode::Incremental => "incremental",
        }
    }
}

/// A file on a local path or an object-store URL. In incremental mode `path` is a folder that
/// receives one change file per export.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDestination {
    pub path: String,
    /// csv, parquet or json (one object per line); default from the path's extension.
    #[serde(default)]
    pub format: Option<FileFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Csv,
    Parquet,
    Json,
}

impl FileFormat {
    pub fn extension(&self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Parquet => "parquet",
            FileFormat::Json => "json",
        }
    }
}

/// A PostgreSQL table, created when missing, upserted by the export's key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresDestination {
    /// `postgres://` URL; `${VAR}` reads the environment (keep passwords out of git).
    pub url: String,
    /// Table, optionally schema-qualified.
    pub table: String,
}

/// JSON batches POSTed to a URL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookDestination {
    pub url: String,
    /// Rows per request.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Attempts per batch before it goes to the dead-letter file.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First retry delay; doubled on each further attempt.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
    /// Per-request timeout.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// Extra request headers, e.g. `{ Authorization = "Bearer ${TOKEN}" }`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn default_batch_size() -> usize {
    500
}
fn default_attempts() -> u32 {
    5
}
fn default_backoff_ms() -> u64 {
    500
}
fn default_timeout() -> u64 {
    30
}

/// Where an export goes, resolved from the one destination table it names.
#[derive(Debug, Clone)]
pub enum Destination {
    File(FileDestination),
    Postgres(PostgresDestination),
    Webhook(WebhookDestination),
}

impl Destination {
    /// For logs: kind and place, without secrets.
    pub fn describe(&self) -> String {
        match self {
            Destination::File(f) => format!("file {}", f.path),
            Destination::Postgres(p) => format!("postgres {} ({})", p.table, super::redact(&p.url)),
            Destination::Webhook(w) => format!("webhook {}", w.url),
        }
    }
}

/// Why an export does not name exactly one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error("names no destination: add `file`, `postgres` or `webhook`")]
    Missing,
    #[error(
        "names more than one destination (`file`, `postgres`, `webhook`): one export goes to one place"
    )]
    Several,
}

impl ExportDef {
    /// The one destination, or what is wrong.
    pub fn destination(&self) -> Result<Destination, DestinationError> {
        let mut found = Vec::new();
        if let Some(f) = &self.file {
            found.push(Destination::File(f.get_ref().clone()));
        }
        if let Some(p) = &self.postgres {
            found.push(Destination::Postgres(p.get_ref().clone()));
        }
        if let Some(w) = &self.webhook {
            found.push(Destination::Webhook(w.get_ref().clone()));
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(DestinationError::Missing),
            _ => Err(DestinationError::Several),
        }
    }

    /// The key column: given, or `customer_id` for segments and customer tables.
    pub fn key(&self) -> String {
        self.key
            .as_ref()
            .map(|k| k.get_ref().clone())
            .unwrap_or_else(|| "customer_id".into())
    }

    /// Row limit in force: given, or the segment default.
    pub fn limit(&self) -> Option<u64> {
        match (&self.limit, &self.segment) {
            (Some(l), _) => Some(*l.get_ref()),
            (None, Some(_)) => Some(DEFAULT_SEGMENT_LIMIT),
            (None, None) => None,
        }
    }

    /// Check what can be checked without data; errors are messages for `exports.<name>`.
    pub fn check(&self, name: &str) -> Result<(), (std::ops::Range<usize>, String)> {
        let whats: Vec<_> = [
            self.segment.as_ref().map(|s| s.span()),
            self.table.as_ref().map(|s| s.span()),
            self.query.as_ref().map(|s| s.span()),
        ]
        .into_iter()
        .flatten()
        .collect();
        if whats.len() != 1 {
            return Err((
                whats.get(1).cloned().unwrap_or(0..0),
                format!("exports.{name}: give exactly one of `segment`, `table` or `query`"),
            ));
        }
        self.destination()
            .map_err(|m| (0..0, format!("exports.{name} {m}")))?;
        if let Some(l) = &self.limit {
            if *l.get_ref() == 0 {
                return Err((l.span(), format!("exports.{name}.limit must be at least 1")));
            }
        }
        if let (Some(c), None) = (&self.channel, &self.purpose) {
            return Err((
                c.span(),
                format!(
                    "exports.{name}.channel needs a `purpose` (consent is per purpose and channel)"
                ),
            ));
        }
        if let Some(w) = &self.webhook {
            let w = w.get_ref();
            if w.batch_size == 0 || w.max_attempts == 0 {
                return Err((
                    self.webhook.as_ref().map(|s| s.span()).unwrap_or(0..0),
                    format!(
                        "exports.{name}.webhook: batch_size and max_attempts must be at least 1"
                    ),
                ));
            }
        }
        if let Some(f) = &self.file {
            if f.get_ref().format.is_none() && self.mode == ExportMode::Full {
                file_format(f.get_ref())
                    .map_err(|m| (f.span(), format!("exports.{name}.file: {m}")))?;
            }
        }
        Ok(())
    }
}

/// The file's format: given, or from the path's extension.
pub fn file_format(f: &FileDestination) -> Result<FileFormat, super::Problem> {
    if let Some(fmt) = f.format {
        return Ok(fmt);
    }
    let ext = f.path.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "csv" => Ok(FileFormat::Csv),
        "parquet" => Ok(FileFormat::Parquet),
        "json" | "jsonl" | "ndjson" => Ok(FileFormat::Json),
        _ => Err(super::Problem(format!(
            "cannot tell the format of {:?} from its extension: set format = \"csv\", \"parquet\" or \"json\"",
            f.path
        ))),
    }
}
