//! Typed errors. Every variant names the thing that went wrong (file, key, line, source) so a
//! user can fix it without reading our code.

use std::path::PathBuf;

/// A module's error that is a message alone, for functions whose callers add where it
/// happened (the file and line, the config key, the source): `Problem` in config checks,
/// `ReadError` in source readers, `SendError` in export destinations, `SpecError` in the event
/// spec. Each converts from `String` and `&str`, so `?` and `.into()` build one.
macro_rules! message_error {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        #[error("{0}")]
        pub struct $name(pub String);

        impl From<String> for $name {
            fn from(message: String) -> Self {
                $name(message)
            }
        }

        impl From<&str> for $name {
            fn from(message: &str) -> Self {
                $name(message.to_string())
            }
        }
    };
}
pub(crate) use message_error;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `panorama.toml` could not be parsed or failed validation.
    #[error("{path}:{line}:{column}: {message}")]
    Config {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    /// A project directory has no `panorama.toml`.
    #[error("no panorama.toml in {0} (create one with `panorama init {0}`)")]
    NoProject(PathBuf),

    /// A source failed to load.
    #[error("source `{source_name}` ({location}): {message}")]
    Source {
        source_name: String,
        location: String,
        message: String,
    },

    /// Columns the config uses are missing from a source's data: the export dropped or
    /// renamed them (schema drift). Each with the config keys that use it, as `key (file:line)`.
    #[error(
        "source `{source_name}` ({file}): {}",
        missing_columns_message(source_name, missing, available)
    )]
    MissingColumns {
        source_name: String,
        file: String,
        /// (column, the keys that use it).
        missing: Vec<(String, Vec<String>)>,
        /// The columns the source has.
        available: Vec<String>,
    },

    /// Too many rows of a source were rejected.
    #[error(
        "source `{source_name}`: {rejected} of {total} rows rejected ({ratio:.2}%), more than max_reject_ratio {max:.2}% \
         (see the `rejects` table of run {run_id})"
    )]
    RejectRatio {
        source_name: String,
        rejected: u64,
        total: u64,
        ratio: f64,
        max: f64,
        run_id: String,
    },

    /// Expectations of severity `error` failed: the run stopped before unification.
    #[error(
        "data quality: {} expectation(s) of severity error failed, so the run stopped before unification; \
         the previous run is still current (SELECT * FROM data_quality WHERE run_id = '{run_id}'):\n  {}",
        failed.len(),
        failed.join("\n  ")
    )]
    DataQuality { run_id: String, failed: Vec<String> },

    /// A file-system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// No completed run exists yet.
    #[error("project {0} has no completed run yet: run `panorama run --project {0}` first")]
    NoRun(PathBuf),

    /// A query or plan failed inside DataFusion.
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),

    /// Arrow-level failure (casts, writers).
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),

    /// Parquet writer/reader failure.
    #[error(transparent)]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),

    /// Another process is writing the workspace (see [`crate::workspace::lock`]).
    #[error(
        "{operation}: the workspace {} is being written by {}; wait for it to finish, or pass --wait to start when it does",
        workspace.display(),
        holder.as_ref().map_or("another process".to_string(), |h| h.to_string())
    )]
    Busy {
        workspace: PathBuf,
        operation: String,
        /// Boxed: the error type stays small (clippy's `result_large_err`).
        holder: Option<Box<crate::workspace::lock::Holder>>,
    },

    /// A statement that would change data, sent to a read-only interface (`panorama serve`).
    /// HTTP answers 403, Flight SQL `permission_denied`.
    #[error("{0}")]
    ReadOnly(String),

    /// A request that cannot be carried out as sent: SQL that does not parse, several
    /// statements where one is expected, command-line flags that do not go together or name
    /// nothing usable. HTTP answers 400, Flight SQL `invalid_argument`.
    #[error("{0}")]
    InvalidRequest(String),

    /// A request beyond a configured or built-in limit (query text too long or too deep).
    /// HTTP answers 400 with the limit named.
    #[error("{0}")]
    ResourceLimit(String),

    /// Something a command or request names does not exist: a journey, source, export,
    /// segment, table, customer record, user, token or write key, or the config section or
    /// run table an operation needs. HTTP answers 404, Flight SQL `not_found`.
    #[error("{0}")]
    NotFound(String),

    /// What a command would create exists already (a project, a config file, a user, a token,
    /// a write key, another collector of the same events directory), a name is taken (a
    /// measure named like a profile field), or what a run kept no longer fits the config or
    /// the source (run with --full, or move it aside). HTTP answers 409.
    #[error("{0}")]
    Conflict(String),

    /// A config value that parsed, and is unusable when a stage or command uses it, named by
    /// its key (`exports.{name}`, `journeys.{name}`, `unify.probabilistic`, `[serve] key`).
    /// Problems found while loading carry the line instead ([`Error::Config`]). HTTP answers 400.
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },

    /// An export could not select or send its rows. HTTP admin operations answer 422, as for
    /// any failed operation.
    #[error("exports.{name}: {message}")]
    Export { name: String, message: String },

    /// A prediction model could not be fitted or evaluated on this data (`model` is its config
    /// key, e.g. `predictions.clv`). HTTP admin operations answer 422.
    #[error("{model}: {message}")]
    Model { model: String, message: String },

    /// A TLS certificate or key cannot be used (`what` names the file). The server does not
    /// start, so no interface maps it.
    #[error("{what}: {message}")]
    Tls { what: String, message: String },

    /// A network endpoint failed: a listener that cannot bind, a server that stops, a remote
    /// service (Ballista scheduler, database, object store of a file export) that cannot be
    /// reached or written. Interfaces answer as for any failure (HTTP 500, 422 for admin runs).
    #[error("{what}: {source}")]
    Network {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The terminal or the process's signals failed: the shell's line editor, a password
    /// prompt, writing the output, listening for SIGTERM.
    #[error("{what}: {message}")]
    Terminal { what: &'static str, message: String },

    /// A query Panorama runs itself failed (a chart, a report, a table's rows); `what` says
    /// which. Boxed: the error type stays small.
    #[error("{what}: {source}")]
    Query {
        what: String,
        #[source]
        source: Box<datafusion::error::DataFusionError>,
    },

    /// JSON that Panorama writes or reads back could not be encoded or decoded.
    #[error(transparent)]
    Json(#[from] serde_json::Error),

    /// A file Panorama keeps (manifest, run pointer, event segment, auth file, overrides)
    /// holds something it cannot use; `message` says what.
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },

    /// The user stopped the operation (Ctrl-C); the message says what was kept.
    #[error("{0}")]
    Interrupted(String),

    /// Part of one operation failed, the rest was done or kept: sources of a run, exports,
    /// journey deliveries, the run after an erasure. The message lists what failed.
    #[error("{0}")]
    Partial(String),

    /// An invariant of Panorama's own code does not hold (a query returned no schema, a
    /// task panicked): a bug to report, never a user's mistake. HTTP answers 500.
    #[error("{0}")]
    Internal(String),

    /// Not a failure: a consumer of [`crate::sources::read_raw`] has what it needs (a sample)
    /// and stops the reader; the caller that returned it treats it as success.
    #[error("reading stopped after a sample")]
    StopReading,
}

fn missing_columns_message(
    source: &str,
    missing: &[(String, Vec<String>)],
    available: &[String],
) -> String {
    let mut out = String::new();
    for (column, keys) in missing {
        out.push_str(&format!(
            "column `{column}` is not in the data, but the config uses it: {}; ",
            keys.join(", ")
        ));
    }
    out.push_str(&format!(
        "the source has: {}. Restore the column in the export, change those keys, or set \
         `on_missing_column = \"null\"` in [sources.{source}] to load it as NULL",
        available.join(", ")
    ));
    out
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// A query of Panorama's own failed: [`Error::Query`].
    pub(crate) fn query(
        what: impl Into<String>,
        source: datafusion::error::DataFusionError,
    ) -> Self {
        Error::Query {
            what: what.into(),
            source: Box::new(source),
        }
    }

    /// A config value unusable where it is used: [`Error::Invalid`].
    pub(crate) fn invalid(key: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Error::Invalid {
            key: key.into(),
            message: message.to_string(),
        }
    }

    pub(crate) fn source(
        source_name: impl Into<String>,
        location: impl Into<String>,
        message: impl std::fmt::Display,
    ) -> Self {
        Error::Source {
            source_name: source_name.into(),
            location: location.into(),
            message: message.to_string(),
        }
    }
}
