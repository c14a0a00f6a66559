//! The command line: the global flags and every subcommand with its arguments. Each
//! subcommand's doc comment is its `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use panorama::output::OutputFormat;

/// Panorama: one trustworthy profile per customer, from scattered data, queryable with SQL.
///
/// A project is a directory with a panorama.toml declaring sources. `panorama run` loads them
/// into a new run (Parquet files under the project's workspace); `query`, `sql`, `tables` and
/// `describe` read the latest completed run.
#[derive(Parser, Debug)]
#[command(
    name = "panorama",
    version,
    about,
    long_about,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// More logging: -v for progress details, -vv for debug output.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// No progress bars or summaries; errors still go to stderr. For scripts.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Project directory (holding panorama.toml); accepted anywhere on the command line.
    #[arg(
        short,
        long,
        global = true,
        env = "PANORAMA_PROJECT",
        default_value = "."
    )]
    pub project: PathBuf,

    /// When another panorama process is writing the project (a run, an erasure, an export, a
    /// schedule's job), wait for it to finish instead of failing at once. Reading commands
    /// (query, sql, serve, tables) never wait.
    #[arg(long, global = true, env = "PANORAMA_WAIT")]
    pub wait: bool,

    /// Memory budget for queries (e.g. 8G, 512M); beyond it sorts and aggregates spill to
    /// temporary files. Default: 70% of the machine's memory.
    #[arg(long, global = true, env = "PANORAMA_MEMORY_LIMIT", value_parser = parse_memory)]
    pub memory_limit: Option<String>,
}

/// A flag's value that does not parse; clap shows it after the flag's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FlagError(pub String);

pub fn parse_memory(s: &str) -> std::result::Result<String, FlagError> {
    panorama::session::parse_size(s)
        .map(|_| s.to_string())
        .ok_or_else(|| {
            FlagError(format!(
                "`{s}` is not a size: use e.g. 8G, 512M or a number of bytes"
            ))
        })
}

/// Who a privacy request is about: one identifier, as the person gave it.
#[derive(Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("person").required(true).multiple(false)))]
pub struct PersonArg {
    /// A customer id of the current run (cus_...).
    #[arg(long, group = "person")]
    pub customer: Option<String>,
    /// An e-mail address (compared normalized: case, spaces, dots in Gmail names).
    #[arg(long, group = "person")]
    pub email: Option<String>,
    /// A phone number in any format (compared by its last nine digits).
    #[arg(long, group = "person")]
    pub phone: Option<String>,
    /// A source record, SOURCE:RECORD_ID (e.g. crm_contacts:C0000042).
    #[arg(long, group = "person")]
    pub record: Option<String>,
    /// An anonymous id (cookie, device) stitched to a customer.
    #[arg(long, group = "person")]
    pub cookie: Option<String>,
    /// Who makes the request, for the audit log (default: the login name).
    #[arg(long)]
    pub actor: Option<String>,
}

impl PersonArg {
    pub fn selector(&self) -> panorama::privacy::Selector {
        panorama::privacy::Selector {
            customer: self.customer.clone(),
            email: self.email.clone(),
            phone: self.phone.clone(),
            record: self.record.clone(),
            cookie: self.cookie.clone(),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum UsersCommand {
    /// Add a user or change their password and role; the password is read from stdin.
    Add {
        name: String,
        /// reader: read-only queries; admin: also runs, refreshes and exports over HTTP.
        #[arg(long, value_enum, default_value = "reader")]
        role: panorama::serve::auth::Role,
    },
    /// Remove a user.
    Remove { name: String },
    /// List users and roles.
    List,
}

#[derive(Subcommand, Debug)]
pub enum TokensCommand {
    /// Create a token and print it (once).
    Create {
        name: String,
        #[arg(long, value_enum, default_value = "reader")]
        role: panorama::serve::auth::Role,
    },
    /// Revoke a token.
    Revoke { name: String },
    /// List token names, roles and creation times.
    List,
}

#[derive(Subcommand, Debug)]
pub enum WriteKeysCommand {
    /// Create a write key and print it (once).
    Create { name: String },
    /// Revoke a write key: events sent with it are refused from the next server start.
    Revoke { name: String },
    /// List write key names and creation times.
    List,
}

#[derive(Subcommand, Debug)]
pub enum PrivacyCommand {
    /// Right of access: write everything held on a person as JSON (profile, every linked
    /// source record, activities, measures, segments, consent, messages, exports sent in).
    Access {
        #[command(flatten)]
        person: PersonArg,
        /// Write the JSON here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Right to erasure: suppress every identifier of the person (hashed), remove them from
    /// Panorama's logs, make a new run without them (their records are dropped as sources are
    /// read, now and later), delete older runs. Each export sends a delete on its next run.
    Erase {
        #[command(flatten)]
        person: PersonArg,
        /// Confirm: erasure cannot be undone.
        #[arg(long)]
        yes: bool,
    },
    /// Rectification: correct profile fields; the correction wins over every source in
    /// merge precedence, in this and every later run.
    Rectify {
        #[command(flatten)]
        person: PersonArg,
        /// FIELD=VALUE, a column of unified_customers (repeatable); FIELD= clears it.
        #[arg(long = "set", required = true, value_parser = parse_assignment)]
        set: Vec<(String, String)>,
    },
}

/// Where `panorama serve` listens; each flag wins over `[serve]`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on (default [serve] bind, else 127.0.0.1).
    #[arg(long)]
    bind: Option<String>,
    /// PostgreSQL wire port (default 5433; 0 picks a free one).
    #[arg(long)]
    pg_port: Option<u16>,
    /// Arrow Flight SQL port (default 50051; 0 picks a free one).
    #[arg(long)]
    flight_port: Option<u16>,
    /// HTTP port (default 8080; 0 picks a free one).
    #[arg(long)]
    http_port: Option<u16>,
    /// TLS certificate chain (PEM) for all three protocols; needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl From<ServeArgs> for panorama::serve::Overrides {
    fn from(a: ServeArgs) -> Self {
        panorama::serve::Overrides {
            bind: a.bind,
            pg_port: a.pg_port,
            flight_port: a.flight_port,
            http_port: a.http_port,
            tls_cert: a.tls_cert,
            tls_key: a.tls_key,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum UnifyCommand {
    /// What unifying with the config as it is now would do, without a run: per source, how
    /// filled and varied each field is; the blocking rules (chosen from the data unless
    /// `[unify.probabilistic] blocking` gives them) with estimated and counted pairs, the
    /// estimated recall after each, and why the others were left out; which rules can compare
    /// each pair of sources; the vetoes (learned or given); the evidence each field carries.
    /// Stages the current run's sources again (their data as loaded, the config as now).
    Plan,
    /// How good the current run's unification is, without a truth file: precision and recall
    /// estimated by the learned model (the links' match probabilities, the matches expected
    /// below the threshold, and the share of matches no blocking rule compares, from random
    /// record pairs scored by the model), probable matches blocking never compared, customers
    /// that look over-merged (two birth dates or identifiers that their comparison calls
    /// different), and the fields that drive the decisions. Reads the run; writes nothing.
    Report {
        /// Random record pairs to score (two hashed samples of √N records, crossed). More
        /// pairs hold more true matches to estimate blocking recall from.
        #[arg(long, default_value_t = 1_000_000)]
        sample_pairs: usize,
        /// Example rows per list.
        #[arg(long, default_value_t = 10)]
        examples: usize,
        /// `table` (default) or `json` (the estimates and every table).
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
}

pub fn parse_assignment(s: &str) -> std::result::Result<(String, String), FlagError> {
    s.split_once('=')
        .map(|(f, v)| (f.trim().to_string(), v.to_string()))
        .ok_or_else(|| FlagError(format!("expected FIELD=VALUE, got {s:?}")))
}

#[derive(Args, Debug, Clone)]
pub struct AsOfArg {
    /// Reference time of measures and segments ("days since the last order" counts to it),
    /// e.g. 2026-11-01 or 2026-11-01T12:00:00. Default: project.as_of, else now.
    #[arg(long, value_parser = parse_as_of)]
    pub as_of: Option<chrono::NaiveDateTime>,
}

pub fn parse_as_of(s: &str) -> std::result::Result<chrono::NaiveDateTime, FlagError> {
    panorama::config::parse_as_of(s).map_err(|p| FlagError(p.0))
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate a demo project, run it, and show what to try next. Start here.
    Quickstart {
        /// Where to write the demo project (default: a new directory under the system temp dir).
        dir: Option<PathBuf>,
        /// Number of people behind the demo data.
        #[arg(long, default_value_t = 10_000)]
        persons: usize,
        /// Random seed; the same seed gives the same data.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Create a new project: from your own data with --from, else a starter config and CSV.
    ///
    /// With --from, every file, folder, glob, object-store URL, postgres://…/db#schema.table or
    /// mysql://…/db#table given becomes a source; each column's meaning is guessed from its name (in English,
    /// Dutch, German, French, Spanish, Italian) and checked against its values, and a complete,
    /// commented panorama.toml is written: sources with their keys and types, the unify map with
    /// the evidence beside each mapping, identities for event data with cookie ids, activities
    /// for orders keyed by another source's id, and measure templates when there are orders.
    /// Then: `panorama doctor`, `panorama run`.
    Init {
        /// Directory to create the project in.
        dir: PathBuf,
        /// Your data: files, folders, globs, s3://… URLs, postgres://…/db#schema.table,
        /// mysql://…/db#table.
        #[arg(long, num_args = 1..)]
        from: Vec<String>,
        /// Print the config (and the summary) instead of writing it.
        #[arg(long, requires = "from")]
        dry_run: bool,
        /// Replace an existing panorama.toml.
        #[arg(long, requires = "from")]
        force: bool,
        /// Rows read from each source to guess from.
        #[arg(long, default_value_t = 50_000, requires = "from")]
        sample_rows: usize,
    },
    /// Check a project without running it: what is wrong, where in the config, what to do.
    ///
    /// Reads the first rows of every source with the run's loader (locations, credentials,
    /// broken rows, empty or repeated keys), looks up every column the config names (with the
    /// closest name when missing), plans every SQL expression of the unify map against the
    /// data, parses mapped e-mails, phones, dates and times as a run would (with the worst
    /// examples), checks that activities' customer ids are records of their customer source,
    /// makes the blocking plan from the sampled rows, and checks names in measures and
    /// segments. Each problem is printed as file:line: key: message, with a fix. Exits 1 when
    /// there is an error (a run would fail or a mapping would do nothing).
    Doctor {
        /// Rows read from each source.
        #[arg(long, default_value_t = 100_000)]
        sample_rows: usize,
    },
    /// Write a demo retail project (CRM, webshop, loyalty, web events) with ground truth.
    Demo {
        /// Number of people behind the data (each appears in one or more sources).
        #[arg(long, default_value_t = 10_000)]
        persons: usize,
        /// Output directory; created if missing.
        #[arg(long)]
        out: PathBuf,
        /// Random seed; the same seed gives the same files.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Also load loyalty members into this PostgreSQL database (table loyalty.members) and
        /// read them from there instead of the CSV. Example: postgres://user:pass@localhost/db
        #[arg(long)]
        postgres: Option<String>,
    },
    /// Load every source into a new run; the previous run stays current if this one fails.
    ///
    /// Stages: sources → unify (map, match, merge) → activities → measures → segments →
    /// business measures, as far as the config declares them.
    Run {
        #[command(flatten)]
        as_of: AsOfArg,
        /// Load and unify even if the sources' files and their config are unchanged since the
        /// current run (by default such a run reuses them, as `panorama refresh`).
        #[arg(long)]
        full: bool,
        /// Also write the run report (report.html in the run's directory; see `panorama report`).
        #[arg(long)]
        report: bool,
    },
    /// Write a run's report: one self-contained HTML file (no external assets, opens offline)
    /// with the run summary and the charts of the web console: unification, segments,
    /// measures and predictions.
    Report {
        /// The run (default: the current one).
        #[arg(long)]
        run: Option<String>,
        /// Where to write it.
        #[arg(long, short, default_value = "report.html")]
        out: PathBuf,
    },
    /// Rebuild activities, measures and segments on the current run's sources and unified
    /// customers, without reading sources or re-matching: after changing [measures],
    /// [segments] or [business_measures], or to re-evaluate them on a new day.
    ///
    /// Makes a new run (the reused files are hard links); history tables continue. After
    /// changing sources or [unify], use `panorama run`.
    Refresh {
        #[command(flatten)]
        as_of: AsOfArg,
    },
    /// List the segments of the current run: size, who entered and left since the previous
    /// run, and definition.
    Segments {
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Show one segment: its size over runs and sample members.
    ///
    /// With --preview the segment is evaluated now, from panorama.toml as it is, on the
    /// current run's data (measures recomputed in memory, nothing written): for trying a
    /// condition before a run.
    Segment {
        /// Segment name (see `panorama segments`).
        name: String,
        /// Evaluate the current definition instead of showing the run's stored members.
        #[arg(long)]
        preview: bool,
        /// How many sample members to show.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        #[command(flatten)]
        as_of: AsOfArg,
    },
    /// Send an export declared in [exports.NAME] (a segment, a table or a query) to its file,
    /// PostgreSQL table or webhook, from the current run.
    ///
    /// Consent is checked per customer when the export names a purpose; a segment export
    /// sends at most `limit` rows (default 100,000). Incremental exports send only rows that
    /// entered, changed or left since the last confirmed export. Every export appends a row
    /// to the export_log table.
    Export {
        /// Export name (see [exports] in panorama.toml).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        /// Run every export, in name order; one failing does not stop the others.
        #[arg(long)]
        all: bool,
        /// Count what would be sent; send nothing and change no state.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run journeys: members who entered a journey's trigger segment (and waited, and meet
    /// its condition) get its message rendered into the outbox table, once per customer;
    /// the journey's export then delivers the outbox.
    Journeys {
        /// Only this journey.
        name: Option<String>,
    },
    /// Fire [schedules] on their cron expressions until stopped (SIGTERM, Ctrl-C).
    ///
    /// One job at a time; ticks missed while a job runs are skipped; a failed job is logged
    /// in schedule_log and the schedule fires again at its next tick.
    Schedule,
    /// Record a consent statement for a person (kept by Panorama, next to the statements
    /// sources carry); the latest statement per purpose and channel wins. See the
    /// customer_consent table.
    Consent {
        #[command(flatten)]
        person: PersonArg,
        /// Purpose, e.g. marketing.
        #[arg(long)]
        purpose: String,
        /// Channel, e.g. email; default every channel of the purpose.
        #[arg(long)]
        channel: Option<String>,
        /// The person grants consent.
        #[arg(
            long,
            conflicts_with = "withdraw",
            required_unless_present = "withdraw"
        )]
        grant: bool,
        /// The person withdraws consent.
        #[arg(long)]
        withdraw: bool,
        /// Free text kept with the statement (e.g. where it was given).
        #[arg(long)]
        note: Option<String>,
    },
    /// Privacy requests (GDPR, CCPA): access, erase, rectify. Every request is recorded in
    /// the append-only audit_log table, identifiers hashed.
    Privacy {
        #[command(subcommand)]
        command: PrivacyCommand,
    },
    /// Unification tools.
    Unify {
        #[command(subcommand)]
        command: UnifyCommand,
    },
    /// Serve the current run over PostgreSQL wire, Arrow Flight SQL and HTTP until stopped.
    ///
    /// psql, DBeaver, BI tools and psycopg connect to the PostgreSQL port (database
    /// `panorama`); ADBC/JDBC Flight SQL drivers and pyarrow to the Flight port; apps use the
    /// HTTP JSON API (/api/customers?email=..., /api/customers/ID, /api/segments, /api/sql,
    /// /api/health, /metrics), and people the customer card at http://HOST:PORT/.
    ///
    /// Listens on 127.0.0.1 unless told otherwise; any other address needs users or tokens
    /// (see `panorama users` and `panorama tokens`). Every query is read-only and limited in
    /// time and memory ([serve] in panorama.toml). When a newer run completes, new queries
    /// see it; queries already running finish on the run they started on.
    Serve {
        #[command(flatten)]
        listen: ServeArgs,
    },
    /// Users who log in over PostgreSQL wire with a password (kept as an Argon2 hash in
    /// the workspace's auth.toml, not in panorama.toml).
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Bearer tokens for Flight SQL and HTTP (the token is shown once; only its hash is kept).
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Write keys for `POST /api/events` and the tracker (`/panorama.js`): a key may only
    /// send events, so it can sit in a web page. Shown once; only its hash is kept.
    #[command(name = "write-keys")]
    WriteKeys {
        #[command(subcommand)]
        command: WriteKeysCommand,
    },
    /// Run one SQL query against the current run and print or save the result.
    Query {
        /// The SQL statement.
        sql: String,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
        /// Write to this file instead of standard output (replaced only on success).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Query this run instead of the current one (see `SELECT * FROM runs`).
        #[arg(long)]
        run: Option<String>,
        /// Run the query on this Apache Ballista scheduler (`df://host:port`), whose executors
        /// are `panorama-cluster executor`s that can read the project's files. Needs a
        /// panorama built with `--features ballista`.
        #[arg(long, env = "PANORAMA_BALLISTA")]
        ballista: Option<String>,
    },
    /// Interactive SQL shell over the current run (history, multi-line statements).
    Sql {
        /// Open this run instead of the current one.
        #[arg(long)]
        run: Option<String>,
    },
    /// List the tables of the current run with their row counts.
    Tables,
    /// Score unification against ground truth: pairwise precision, recall and F1.
    ///
    /// The truth file is CSV with columns source, record_id, person_id (the demo writes
    /// truth.csv). Only records present in both the truth and customer_links count.
    ///
    /// With --breakdown, also the pairs it got wrong — missed (one person, two customers)
    /// and false links (one customer, two persons) — grouped by which fields the two records
    /// share: '=' equal normalized values, 'x' different, '.' missing on a side; per pattern
    /// the pairs, their share, how many shared a blocking key of the run (a missed pair that
    /// shares none was never compared), how many were linked directly rather than through
    /// other records, their mean match weight and an example to pass to `panorama explain`.
    Eval {
        /// Ground-truth CSV (source, record_id, person_id).
        #[arg(long)]
        truth: PathBuf,
        /// Also list the wrong pairs by agreement pattern (enumerates every pair within a
        /// customer and within a true person).
        #[arg(long)]
        breakdown: bool,
        /// Patterns listed per kind with --breakdown.
        #[arg(long, default_value_t = 15, requires = "breakdown")]
        top: usize,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Explain why two records were or were not matched.
    ///
    /// Probabilistic matching (the default): each compared field's values, level, m, u and
    /// weight, the blocking rule that compared the pair (or that none did), the total and the
    /// decision. Rules mode: every condition of every rule, and a verdict per rule. The same
    /// table is the SQL function explain_pair('SOURCE:ID', 'SOURCE:ID').
    ///
    /// Records are named SOURCE:RECORD_ID, e.g. crm_contacts:C0000042.
    Explain {
        /// First record (SOURCE:RECORD_ID).
        left: String,
        /// Second record (SOURCE:RECORD_ID).
        right: String,
    },
    /// Profile sources without a run: rows, NULLs, distinct values, minimum and maximum,
    /// lengths, the most common values, and the parse rate of mapped e-mails, phones and dates.
    ///
    /// Each source is read as `panorama run` reads it (types, renames, rejects), into a
    /// temporary directory that is deleted afterwards; nothing is written to the workspace.
    /// Every run keeps the same profile in the `source_profiles` table.
    Profile {
        /// Sources to profile (default: all).
        sources: Vec<String>,
        /// Output format (json and csv hold every figure; the table leaves some out).
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Show a table's columns and types.
    Describe {
        /// Table name (see `panorama tables`).
        table: String,
    },
}
