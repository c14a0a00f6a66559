//! The `panorama` command: a thin layer over the `panorama` library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use panorama::config::ProjectConfig;
use panorama::demo::{self, DemoOptions};
use panorama::error::{Error, Result};
use panorama::output::{write_batches, write_to_file, OutputFormat};
use panorama::run::{run_project, RunOptions, RunOutcome};
use panorama::session::open_project;

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
struct Cli {
    #[command(subcommand)]
    command: Command,

    /// More logging: -v for progress details, -vv for debug output.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    /// No progress bars or summaries; errors still go to stderr. For scripts.
    #[arg(short, long, global = true)]
    quiet: bool,

    /// Project directory (holding panorama.toml); accepted anywhere on the command line.
    #[arg(
        short,
        long,
        global = true,
        env = "PANORAMA_PROJECT",
        default_value = "."
    )]
    project: PathBuf,

    /// When another panorama process is writing the project (a run, an erasure, an export, a
    /// schedule's job), wait for it to finish instead of failing at once. Reading commands
    /// (query, sql, serve, tables) never wait.
    #[arg(long, global = true, env = "PANORAMA_WAIT")]
    wait: bool,

    /// Memory budget for queries (e.g. 8G, 512M); beyond it sorts and aggregates spill to
    /// temporary files. Default: 70% of the machine's memory.
    #[arg(long, global = true, env = "PANORAMA_MEMORY_LIMIT", value_parser = parse_memory)]
    memory_limit: Option<String>,
}

fn parse_memory(s: &str) -> std::result::Result<String, String> {
    panorama::session::parse_size(s)
        .map(|_| s.to_string())
        .ok_or_else(|| format!("`{s}` is not a size: use e.g. 8G, 512M or a number of bytes"))
}

/// Who a privacy request is about: one identifier, as the person gave it.
#[derive(Args, Debug, Clone)]
#[command(group(clap::ArgGroup::new("person").required(true).multiple(false)))]
struct PersonArg {
    /// A customer id of the current run (cus_...).
    #[arg(long, group = "person")]
    customer: Option<String>,
    /// An e-mail address (compared normalized: case, spaces, dots in Gmail names).
    #[arg(long, group = "person")]
    email: Option<String>,
    /// A phone number in any format (compared by its last nine digits).
    #[arg(long, group = "person")]
    phone: Option<String>,
    /// A source record, SOURCE:RECORD_ID (e.g. crm_contacts:C0000042).
    #[arg(long, group = "person")]
    record: Option<String>,
    /// An anonymous id (cookie, device) stitched to a customer.
    #[arg(long, group = "person")]
    cookie: Option<String>,
    /// Who makes the request, for the audit log (default: the login name).
    #[arg(long)]
    actor: Option<String>,
}

impl PersonArg {
    fn selector(&self) -> panorama::privacy::Selector {
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
enum UsersCommand {
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
enum TokensCommand {
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
enum PrivacyCommand {
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

#[derive(Subcommand, Debug)]
enum UnifyCommand {
    /// What unifying with the config as it is now would do, without a run: per source, how
    /// filled and varied each field is; the blocking rules (chosen from the data unless
    /// `[unify.probabilistic] blocking` gives them) with estimated and counted pairs, the
    /// estimated recall after each, and why the others were left out; which rules can compare
    /// each pair of sources; the vetoes (learned or given); the evidence each field carries.
    /// Stages the current run's sources again (their data as loaded, the config as now).
    Plan,
}

fn parse_assignment(s: &str) -> std::result::Result<(String, String), String> {
    s.split_once('=')
        .map(|(f, v)| (f.trim().to_string(), v.to_string()))
        .ok_or_else(|| format!("expected FIELD=VALUE, got {s:?}"))
}

#[derive(Args, Debug, Clone)]
struct AsOfArg {
    /// Reference time of measures and segments ("days since the last order" counts to it),
    /// e.g. 2026-11-01 or 2026-11-01T12:00:00. Default: project.as_of, else now.
    #[arg(long, value_parser = parse_as_of)]
    as_of: Option<chrono::NaiveDateTime>,
}

fn parse_as_of(s: &str) -> std::result::Result<chrono::NaiveDateTime, String> {
    panorama::config::parse_as_of(s)
}

#[derive(Subcommand, Debug)]
enum Command {
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
    /// With --from, every file, folder, glob, object-store URL or postgres://…/db#schema.table
    /// given becomes a source; each column's meaning is guessed from its name (in English,
    /// Dutch, German, French, Spanish, Italian) and checked against its values, and a complete,
    /// commented panorama.toml is written: sources with their keys and types, the unify map with
    /// the evidence beside each mapping, identities for event data with cookie ids, activities
    /// for orders keyed by another source's id, and measure templates when there are orders.
    /// Then: `panorama doctor`, `panorama run`.
    Init {
        /// Directory to create the project in.
        dir: PathBuf,
        /// Your data: files, folders, globs, s3://… URLs, postgres://…/db#schema.table.
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
    Eval {
        /// Ground-truth CSV (source, record_id, person_id).
        #[arg(long)]
        truth: PathBuf,
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
    /// Show a table's columns and types.
    Describe {
        /// Table name (see `panorama tables`).
        table: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose, cli.quiet);
    if let Some(bytes) = cli
        .memory_limit
        .as_deref()
        .and_then(panorama::session::parse_size)
    {
        panorama::session::set_memory_limit(bytes);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Planning and evaluating a query recurse over its expression tree: 16 MiB (address
        // space, touched only as used) instead of tokio's 2 MiB leaves a wide margin under
        // `query_limits::MAX_DEPTH`.
        .thread_stack_size(16 << 20)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The command itself runs on a thread with the same stack as the runtime's (the main
    // thread's is whatever `ulimit -s` says, 8 MiB by default).
    let command = std::thread::Builder::new()
        .name("panorama".into())
        .stack_size(16 << 20)
        .spawn(move || runtime.block_on(dispatch(cli)));
    match command.map(|t| t.join()) {
        Ok(Ok(Ok(()))) => ExitCode::SUCCESS,
        Ok(Ok(Err(e))) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
        Ok(Err(_)) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: cannot start a thread: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The project's tables in a context that runs queries on a Ballista cluster.
async fn remote_project(
    cfg: &ProjectConfig,
    url: &str,
    run: Option<&str>,
) -> panorama::Result<(
    datafusion::prelude::SessionContext,
    panorama::session::OpenedRun,
)> {
    let ctx = panorama::session::cluster_context(url, None).await?;
    panorama::session::open_project_in(ctx, cfg, run).await
}

fn init_tracing(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PANORAMA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("panorama={level}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn dispatch(cli: Cli) -> Result<()> {
    let quiet = cli.quiet;
    let locking = panorama::workspace::lock::Locking::wait(cli.wait);
    let project = cli.project;
    match cli.command {
        Command::Quickstart { dir, persons, seed } => quickstart(dir, persons, seed, quiet).await,
        Command::Init {
            dir,
            from,
            dry_run,
            force,
            sample_rows,
        } if !from.is_empty() => {
            let opts = panorama::init_from::InitFromOptions {
                dir: dir.clone(),
                from,
                sample_rows: sample_rows.max(1),
            };
            let done = panorama::init_from::init(opts, dry_run, force).await?;
            if dry_run {
                print!("{}", done.config);
            }
            if !quiet {
                eprint!("{}", done.summary);
                if !dry_run {
                    eprintln!(
                        "Wrote {}. Next: panorama doctor -p {1} && panorama run -p {1}",
                        dir.join(panorama::config::CONFIG_FILE).display(),
                        dir.display()
                    );
                }
            }
            Ok(())
        }
        Command::Init { dir, .. } => {
            panorama::project::init(&dir)?;
            if !quiet {
                println!(
                    "Created {}. Next: panorama run --project {0} && panorama tables --project {0}",
                    dir.display()
                );
            }
            Ok(())
        }
        Command::Doctor { sample_rows } => {
            let cfg = ProjectConfig::load(&project)?;
            let diagnosis = panorama::doctor::diagnose(&cfg, sample_rows).await?;
            print!("{}", diagnosis.report(&cfg));
            if diagnosis.errors() > 0 {
                return Err(Error::Other(format!(
                    "{} error(s) in {}",
                    diagnosis.errors(),
                    cfg.path.display()
                )));
            }
            Ok(())
        }
        Command::Demo {
            persons,
            out,
            seed,
            postgres,
        } => {
            let report = demo::generate(&DemoOptions {
                persons,
                out: out.clone(),
                seed,
                postgres,
                quiet,
            })
            .await?;
            if !quiet {
                println!("{}", report.summary());
                println!("Next: panorama run --project {}", out.display());
            }
            Ok(())
        }
        Command::Run {
            as_of,
            full,
            report,
        } => {
            let cfg = ProjectConfig::load(&project)?;
            let opts = RunOptions {
                quiet,
                as_of: as_of.as_of,
                full,
                locking: locking.clone(),
            };
            let outcome = run_project(&cfg, &opts).await?;
            if !quiet {
                print!("{}", run_summary(&cfg, &outcome));
            }
            if report {
                let out = outcome.run_dir.join("report.html");
                let r = panorama::charts::report::write(&cfg, Some(&outcome.manifest.run_id), &out)
                    .await?;
                if !quiet {
                    println!("report: {} ({} charts)", out.display(), r.charts);
                }
            }
            Ok(())
        }
        Command::Report { run, out } => {
            let cfg = ProjectConfig::load(&project)?;
            let r = panorama::charts::report::write(&cfg, run.as_deref(), &out).await?;
            if !quiet {
                println!(
                    "wrote {} (run {}, {} charts, {} KiB)",
                    out.display(),
                    r.run_id,
                    r.charts,
                    r.bytes / 1024
                );
            }
            Ok(())
        }
        Command::Export { name, all, dry_run } => {
            let cfg = ProjectConfig::load(&project)?;
            let names: Vec<String> = match name {
                Some(n) => vec![n],
                None if all => cfg.exports.keys().cloned().collect(),
                None => Vec::new(),
            };
            if names.is_empty() {
                return Err(Error::Other(format!(
                    "{} declares no [exports]",
                    cfg.path.display()
                )));
            }
            let opts = panorama::exports::ExportOptions {
                quiet,
                dry_run,
                locking: locking.clone(),
            };
            let mut failed = Vec::new();
            for n in &names {
                match panorama::exports::run_export(&cfg, n, &opts).await {
                    Ok(r) => {
                        if !quiet {
                            println!("{}", r.summary());
                        }
                        if r.outcome == "failed" {
                            failed.push(format!("{n}: {}", r.error.unwrap_or_default()));
                        }
                    }
                    Err(e) => failed.push(format!("{n}: {e}")),
                }
            }
            if failed.is_empty() {
                Ok(())
            } else {
                Err(Error::Other(format!(
                    "{} of {} exports failed:\n  {}",
                    failed.len(),
                    names.len(),
                    failed.join("\n  ")
                )))
            }
        }
        Command::Serve {
            bind,
            pg_port,
            flight_port,
            http_port,
            tls_cert,
            tls_key,
        } => {
            let cfg = ProjectConfig::load(&project)?;
            let overrides = panorama::serve::Overrides {
                bind,
                pg_port,
                flight_port,
                http_port,
                tls_cert,
                tls_key,
            };
            let tls =
                overrides.tls_cert.is_some() || cfg.serve.as_ref().is_some_and(|s| s.tls.is_some());
            panorama::serve::serve(cfg, &overrides, |b, serving| {
                let snap = serving.snapshot();
                let (http, pg_ssl) = if tls {
                    ("https", "?sslmode=require")
                } else {
                    ("http", "")
                };
                // Tests and scripts read these lines to find the ports.
                println!(
                    "serving run {} ({} customers)",
                    snap.run_id,
                    snap.index.customers()
                );
                println!("postgres  postgres://{}/panorama{pg_ssl}", b.pg);
                println!(
                    "flight    grpc{}://{}",
                    if tls { "+tls" } else { "" },
                    b.flight
                );
                println!("http      {http}://{}/", b.http);
                println!("ready");
                use std::io::Write;
                let _ = std::io::stdout().flush();
            })
            .await
        }
        Command::Users { command } => {
            let cfg = ProjectConfig::load(&project)?;
            let dir = cfg.workspace_dir();
            let mut file = panorama::serve::auth::AuthFile::load(&dir)?;
            match command {
                UsersCommand::Add { name, role } => {
                    let password = read_secret(&format!("Password for {name}: "))?;
                    file.set_user(&name, &password, role)?;
                    file.save(&dir)?;
                    if !quiet {
                        println!("user {name} ({}) saved", role.as_str());
                    }
                }
                UsersCommand::Remove { name } => {
                    if file.users.remove(&name).is_none() {
                        return Err(Error::Other(format!("no user {name}")));
                    }
                    file.save(&dir)?;
                }
                UsersCommand::List => {
                    for (n, u) in &file.users {
                        println!("{n}\t{}", u.role.as_str());
                    }
                }
            }
            Ok(())
        }
        Command::Tokens { command } => {
            let cfg = ProjectConfig::load(&project)?;
            let dir = cfg.workspace_dir();
            let mut file = panorama::serve::auth::AuthFile::load(&dir)?;
            match command {
                TokensCommand::Create { name, role } => {
                    let token = file.create_token(&name, role)?;
                    file.save(&dir)?;
                    println!("{token}");
                    if !quiet {
                        eprintln!(
                            "token {name} ({}) created; it is not shown again",
                            role.as_str()
                        );
                    }
                }
                TokensCommand::Revoke { name } => {
                    if file.tokens.remove(&name).is_none() {
                        return Err(Error::Other(format!("no token {name}")));
                    }
                    file.save(&dir)?;
                }
                TokensCommand::List => {
                    for (n, t) in &file.tokens {
                        println!("{n}\t{}\t{}", t.role.as_str(), t.created_at);
                    }
                }
            }
            Ok(())
        }
        Command::Consent {
            person,
            purpose,
            channel,
            grant,
            withdraw: _,
            note,
        } => {
            let cfg = ProjectConfig::load(&project)?;
            let actor = panorama::privacy::actor(person.actor.as_deref());
            let customers = panorama::privacy::set_consent(
                &cfg,
                &person.selector(),
                &purpose,
                channel.as_deref(),
                grant,
                &actor,
                note.as_deref(),
            )
            .await?;
            if !quiet {
                println!(
                    "consent {} for {purpose} on {}: {}",
                    if grant { "granted" } else { "withdrawn" },
                    channel.as_deref().unwrap_or("every channel"),
                    customers.join(", ")
                );
            }
            Ok(())
        }
        Command::Journeys { name } => {
            let cfg = ProjectConfig::load(&project)?;
            if cfg.journeys.is_empty() {
                return Err(Error::Other(format!(
                    "{} declares no [journeys]",
                    cfg.path.display()
                )));
            }
            let reports =
                panorama::journeys::run_journeys(&cfg, name.as_deref(), quiet, &locking).await?;
            let mut failed = Vec::new();
            for r in &reports {
                if !quiet {
                    println!("{}", r.summary());
                }
                if let Some(d) = r.delivery.as_ref().filter(|d| d.outcome == "failed") {
                    failed.push(format!(
                        "{}: {}",
                        d.export,
                        d.error.clone().unwrap_or_default()
                    ));
                }
            }
            if failed.is_empty() {
                Ok(())
            } else {
                Err(Error::Other(format!(
                    "delivery failed (the messages stay in the outbox and go with the next export): {}",
                    failed.join("; ")
                )))
            }
        }
        Command::Schedule => {
            let cfg = ProjectConfig::load(&project)?;
            panorama::schedule::serve(&cfg, &panorama::schedule::SchedulerOptions { quiet }).await
        }
        Command::Unify {
            command: UnifyCommand::Plan,
        } => {
            let cfg = ProjectConfig::load(&project)?;
            let plan = panorama::unify::plan::plan(&cfg).await?;
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for line in &plan.summary {
                writeln!(out, "{line}").map_err(|e| Error::Other(e.to_string()))?;
            }
            for (title, table) in &plan.tables {
                writeln!(out, "\n{title}").map_err(|e| Error::Other(e.to_string()))?;
                write_batches(std::slice::from_ref(table), OutputFormat::Table, &mut out)?;
            }
            Ok(())
        }
        Command::Privacy { command } => {
            let cfg = ProjectConfig::load(&project)?;
            privacy(&cfg, command, quiet, &locking).await
        }
        Command::Refresh { as_of } => {
            let cfg = ProjectConfig::load(&project)?;
            let opts = RunOptions {
                quiet,
                as_of: as_of.as_of,
                locking: locking.clone(),
                ..Default::default()
            };
            let outcome = panorama::run::refresh_project(&cfg, &opts).await?;
            if !quiet {
                print!("{}", run_summary(&cfg, &outcome));
            }
            Ok(())
        }
        Command::Segments { format } => {
            let cfg = ProjectConfig::load(&project)?;
            let (ctx, opened) = open_project(&cfg, None).await?;
            opened.require_table("segment_sizes", "[segments]")?;
            let batches = ctx
                .sql(panorama::analytics::SEGMENTS_SQL)
                .await?
                .collect()
                .await?;
            write_batches(&batches, format, &mut std::io::stdout().lock())
        }
        Command::Segment {
            name,
            preview,
            limit,
            as_of,
        } => {
            let cfg = ProjectConfig::load(&project)?;
            let (ctx, opened) = open_project(&cfg, None).await?;
            let out = &mut std::io::stdout().lock();
            if preview {
                opened.require_unified("unified_customers")?;
                if let Some(at) = as_of.as_of {
                    panorama::session::register_as_of(&ctx, at);
                }
                let (size, sample) =
                    panorama::analytics::preview(&ctx, &cfg, &cfg.analytics, &name, limit).await?;
                println!("Segment {name} (preview, not saved): {size} members");
                return write_batches(&sample, OutputFormat::Table, out);
            }
            opened.require_table("segment_sizes", "[segments]")?;
            let lit = format!("'{}'", name.replace('\'', "''"));
            let sizes = ctx
                .sql(&format!(
                    "SELECT run_id, as_of, members, entered, exited FROM segment_sizes WHERE segment = {lit} ORDER BY run_id"
                ))
                .await?
                .collect()
                .await?;
            if sizes.iter().all(|b| b.num_rows() == 0) {
                return Err(Error::Other(format!(
                    "no segment `{name}` in run {} (see `panorama segments`; --preview evaluates a new one)",
                    opened.run_id
                )));
            }
            println!("Segment {name}: size by run");
            write_batches(&sizes, OutputFormat::Table, out)?;
            let sample = ctx
                .sql(&format!(
                    "SELECT p.customer_id, p.first_name, p.last_name, p.email, p.city FROM segment_members s \
                     JOIN unified_customers p ON p.customer_id = s.customer_id WHERE s.segment = {lit} \
                     ORDER BY p.customer_id LIMIT {limit}"
                ))
                .await?
                .collect()
                .await?;
            println!("Members (first {limit}):");
            write_batches(&sample, OutputFormat::Table, out)
        }
        Command::Query {
            sql,
            format,
            output,
            run,
            ballista,
        } => {
            let cfg = ProjectConfig::load(&project)?;
            let (ctx, _) = match ballista {
                None => open_project(&cfg, run.as_deref()).await?,
                Some(url) => remote_project(&cfg, &url, run.as_deref()).await?,
            };
            panorama::query_limits::check(&sql).map_err(panorama::Error::Other)?;
            let df = ctx.sql(&sql).await?;
            let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
            let mut batches = df.collect().await?;
            if batches.is_empty() {
                // Keep the header (CSV) and schema (Parquet) of an empty result.
                batches.push(arrow::array::RecordBatch::new_empty(schema));
            }
            match output {
                Some(path) => write_to_file(&batches, format, &path),
                None => write_batches(&batches, format, &mut std::io::stdout().lock()),
            }
        }
        Command::Sql { run } => {
            let cfg = ProjectConfig::load(&project)?;
            let (ctx, opened) = open_project(&cfg, run.as_deref()).await?;
            let history = cfg.workspace_dir().join("sql_history");
            let banner = format!(
                "Panorama SQL shell: run {} with tables {}",
                opened.run_id,
                opened.tables.join(", ")
            );
            panorama::shell::run_shell(&ctx, history, &banner).await
        }
        Command::Tables => {
            let cfg = ProjectConfig::load(&project)?;
            let (ctx, opened) = open_project(&cfg, None).await?;
            let mut rows = Vec::new();
            for t in &opened.tables {
                let n = ctx.table(t.as_str()).await?.count().await?;
                rows.push(format!("SELECT '{t}' AS table_name, {n} AS row_count"));
            }
            let batches = ctx.sql(&rows.join(" UNION ALL ")).await?.collect().await?;
            println!("Run {}", opened.run_id);
            let sorted = sort_batches(&ctx, batches).await?;
            write_batches(&sorted, OutputFormat::Table, &mut std::io::stdout().lock())
        }
        Command::Eval { truth, format } => {
            let cfg = ProjectConfig::load(&project)?;
            let (ctx, opened) = open_project(&cfg, None).await?;
            opened.require_unified("customer_links")?;
            panorama::unify::register_truth(&ctx, &truth).await?;
            let batches = ctx.sql(panorama::unify::EVAL_SQL).await?.collect().await?;
            write_batches(&batches, format, &mut std::io::stdout().lock())
        }
        Command::Explain { left, right } => {
            let cfg = ProjectConfig::load(&project)?;
            let (ctx, opened) = open_project(&cfg, None).await?;
            opened.require_unified("unify_records")?;
            use panorama::unify::{config::MatchMode, explain};
            let table = explain::explain_pair(&ctx, &cfg, &left, &right).await?;
            write_batches(&[table], OutputFormat::Table, &mut std::io::stdout().lock())?;
            let mode = cfg.unify.clone().unwrap_or_default().match_mode();
            if mode == MatchMode::Rules {
                let l = explain::staged_record(&ctx, &left).await?;
                let r = explain::staged_record(&ctx, &right).await?;
                let rules = panorama::unify::rules(&cfg);
                for v in explain::verdicts(&rules, &explain::explain(&rules, &l, &r)) {
                    println!("{v}");
                }
            }
            let links = ctx
                .sql(&format!(
                    "SELECT uid, customer_id FROM customer_links WHERE uid IN ('{}', '{}') ORDER BY uid",
                    left.replace('\'', "''"),
                    right.replace('\'', "''")
                ))
                .await?
                .collect()
                .await?;
            println!("Customers:");
            write_batches(&links, OutputFormat::Table, &mut std::io::stdout().lock())
        }
        Command::Describe { table } => {
            let cfg = ProjectConfig::load(&project)?;
            let (ctx, opened) = open_project(&cfg, None).await?;
            if !opened.tables.contains(&table) {
                return Err(Error::Other(format!(
                    "no table `{table}` in run {}; tables: {}",
                    opened.run_id,
                    opened.tables.join(", ")
                )));
            }
            let batches = ctx
                .sql(&panorama::shell::describe_sql(&table))
                .await?
                .collect()
                .await?;
            write_batches(&batches, OutputFormat::Table, &mut std::io::stdout().lock())
        }
    }
}

async fn sort_batches(
    ctx: &datafusion::prelude::SessionContext,
    batches: Vec<arrow::array::RecordBatch>,
) -> Result<Vec<arrow::array::RecordBatch>> {
    let df = ctx.read_batches(batches)?;
    Ok(df
        .sort(vec![
            datafusion::prelude::col("table_name").sort(true, false)
        ])?
        .collect()
        .await?)
}

/// The one-screen summary printed after a run.
async fn privacy(
    cfg: &ProjectConfig,
    command: PrivacyCommand,
    quiet: bool,
    locking: &panorama::workspace::lock::Locking,
) -> Result<()> {
    match command {
        PrivacyCommand::Access { person, output } => {
            let actor = panorama::privacy::actor(person.actor.as_deref());
            let doc = panorama::privacy::access::access(cfg, &person.selector(), &actor).await?;
            let text =
                serde_json::to_string_pretty(&doc).map_err(|e| Error::Other(e.to_string()))?;
            match output {
                Some(path) => {
                    panorama::workspace::write_atomic(&path, text.as_bytes())?;
                    if !quiet {
                        println!("wrote {}", path.display());
                    }
                }
                None => println!("{text}"),
            }
            Ok(())
        }
        PrivacyCommand::Erase { person, yes } => {
            if !yes {
                return Err(Error::Other(
                    "erasure cannot be undone: add --yes to confirm".into(),
                ));
            }
            let actor = panorama::privacy::actor(person.actor.as_deref());
            let r =
                panorama::privacy::erasure::erase(cfg, &person.selector(), &actor, quiet, locking)
                    .await?;
            if !quiet {
                println!(
                    "erased {} ({}); new run {} without them; {} older runs deleted; {} log rows removed",
                    r.customers.join(", "),
                    r.identifiers
                        .iter()
                        .map(|(k, n)| format!("{n} {k}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    r.run_id,
                    r.runs_deleted.len(),
                    r.state_rows_removed
                );
                if !r.runs_in_progress.is_empty() {
                    println!(
                        "warning: runs in progress in another process may still hold them: {}; \
                         run `panorama privacy erase` again (or `panorama run --full`) when they finish",
                        r.runs_in_progress.join(", ")
                    );
                }
                if !r.exports_to_notify.is_empty() {
                    println!(
                        "the next run of these exports tells their destination to delete: {}",
                        r.exports_to_notify.join(", ")
                    );
                }
            }
            Ok(())
        }
        PrivacyCommand::Rectify { person, set } => {
            let actor = panorama::privacy::actor(person.actor.as_deref());
            let customers =
                panorama::privacy::rectification::rectify(cfg, &person.selector(), &set, &actor)
                    .await?;
            let outcome = panorama::run::refresh_project(
                cfg,
                &RunOptions {
                    quiet,
                    locking: locking.clone(),
                    ..Default::default()
                },
            )
            .await?;
            if !quiet {
                println!(
                    "rectified {} of {}; run {} shows it",
                    set.iter()
                        .map(|(f, _)| f.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    customers.join(", "),
                    outcome.manifest.run_id
                );
            }
            Ok(())
        }
    }
}

fn run_summary(cfg: &ProjectConfig, outcome: &RunOutcome) -> String {
    use std::fmt::Write;
    let m = &outcome.manifest;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nRun {} of {} succeeded in {:.1}s",
        m.run_id,
        cfg.project.name.as_deref().unwrap_or("project"),
        outcome.seconds
    );
    let _ = writeln!(
        s,
        "  {:<24} {:<9} {:>6} {:>12} {:>10} {:>8}",
        "source", "format", "files", "rows", "rejected", "seconds"
    );
    let (mut rows, mut rejected) = (0u64, 0u64);
    for r in &m.sources {
        let _ = writeln!(
            s,
            "  {:<24} {:<9} {:>6} {:>12} {:>10} {:>8.2}",
            r.name, r.format, r.files, r.rows_loaded, r.rows_rejected, r.seconds
        );
        rows += r.rows_loaded;
        rejected += r.rows_rejected;
    }
    let _ = writeln!(
        s,
        "  {:<24} {:<9} {:>6} {:>12} {:>10}",
        "total", "", "", rows, rejected
    );
    if let Some(u) = &m.unify {
        match &m.refreshed_from {
            Some(from) => {
                let _ = writeln!(
                    s,
                    "Reused sources and {} unified customers of run {from} (`panorama run --full` reloads and re-matches)",
                    u.customers
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "Unified {} records into {} customers in {:.1}s ({} matched pairs, largest cluster {}, {} singletons, {} id changes)",
                    u.records, u.customers, u.seconds, u.matched_pairs, u.largest_cluster, u.singletons, u.id_changes
                );
                if u.incremental {
                    let _ = writeln!(
                        s,
                        "Incremental: {} records new, changed or deleted since the previous run were compared ({} pairs); {} customers merged again",
                        u.touched_records, u.candidate_pairs, u.remerged_customers
                    );
                }
            }
        }
        for w in &u.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
    }
    if let Some(a) = &m.analytics {
        let _ = writeln!(
            s,
            "Measured {} measures, {} segments ({} memberships) and {} business measures as of {} in {:.1}s",
            a.measures, a.segments, a.segment_members, a.business_measures, a.as_of, a.seconds
        );
    }
    if let Some(p) = &m.predictions {
        let _ = writeln!(
            s,
            "Predicted lifetime value for {} buyers, churn risk for {}, {} recommendations in {:.1}s; grades: {} (SELECT * FROM prediction_grades)",
            p.clv_customers,
            p.churn_customers,
            p.recommendations,
            p.seconds,
            p.grades
                .iter()
                .map(|(m, g)| format!("{m} {g}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let _ = writeln!(s, "Outputs: {}", outcome.run_dir.display());
    if rejected > 0 {
        let _ = writeln!(
            s,
            "Rejected rows are kept: panorama query --project {} \"SELECT * FROM rejects LIMIT 20\"",
            cfg.root.display()
        );
    }
    if !outcome.pruned.is_empty() {
        let _ = writeln!(
            s,
            "Removed {} old run(s) (workspace.keep_runs = {}).",
            outcome.pruned.len(),
            cfg.workspace.keep_runs.get_ref()
        );
    }
    s
}

async fn quickstart(dir: Option<PathBuf>, persons: usize, seed: u64, quiet: bool) -> Result<()> {
    let dir = match dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("panorama-quickstart-{}", std::process::id())),
    };
    if dir.join("panorama.toml").exists() {
        return Err(Error::Other(format!(
            "{} already holds a project; pick another directory",
            dir.display()
        )));
    }
    if !quiet {
        println!(
            "Generating a demo retail project for {persons} people in {} ...",
            dir.display()
        );
    }
    let report = demo::generate(&DemoOptions {
        persons,
        out: dir.clone(),
        seed,
        postgres: None,
        quiet,
    })
    .await?;
    if !quiet {
        println!("{}", report.summary());
    }
    let cfg = ProjectConfig::load(&dir)?;
    let outcome = run_project(
        &cfg,
        &RunOptions {
            quiet,
            ..Default::default()
        },
    )
    .await?;
    if quiet {
        return Ok(());
    }
    print!("{}", run_summary(&cfg, &outcome));
    let (ctx, _) = open_project(&cfg, None).await?;
    let example = "SELECT country, count(*) AS contacts, count(DISTINCT normalize_email(email)) AS distinct_emails \
                   FROM crm_contacts GROUP BY country ORDER BY contacts DESC";
    println!("\nContacts per country in the CRM:\n  {example}");
    let batches = ctx.sql(example).await?.collect().await?;
    write_batches(&batches, OutputFormat::Table, &mut std::io::stdout().lock())?;
    let unified = "SELECT customer_id, first_name, last_name, email, city, source_count, record_count \
                   FROM unified_customers ORDER BY source_count DESC, record_count DESC, customer_id LIMIT 5";
    println!("\nOne profile per person, merged from several sources:\n  {unified}");
    let batches = ctx.sql(unified).await?.collect().await?;
    write_batches(&batches, OutputFormat::Table, &mut std::io::stdout().lock())?;
    panorama::unify::register_truth(&ctx, &dir.join("truth.csv")).await?;
    println!("\nAccuracy against the generator's ground truth (panorama eval):");
    let batches = ctx.sql(panorama::unify::EVAL_SQL).await?.collect().await?;
    write_batches(&batches, OutputFormat::Table, &mut std::io::stdout().lock())?;
    if ctx.table_exist("segment_sizes")? {
        println!("\nSegments (panorama segments), from measures such as RFM and lifetime spend:");
        let batches = ctx
            .sql(panorama::analytics::SEGMENTS_SQL)
            .await?
            .collect()
            .await?;
        write_batches(&batches, OutputFormat::Table, &mut std::io::stdout().lock())?;
    }
    print!("{}", next_steps(&dir));
    Ok(())
}

fn next_steps(dir: &Path) -> String {
    let p = dir.display();
    format!(
        "\nWhat to try next (the binary is target/release/panorama; put it on your PATH):
  panorama tables   --project {p}
  panorama query    --project {p} \"SELECT * FROM customer_links WHERE customer_id = 'cus_000000001'\"
  panorama explain  --project {p} crm_contacts:C0000001 webshop_customers:W0000001
  panorama query    --project {p} \"SELECT * FROM match_weights\"     (the learned match model)
  panorama eval     --project {p} --truth {p}/truth.csv
  panorama query    --project {p} \"SELECT * FROM customer_profiles WHERE rfm_group = 'champions' LIMIT 5\"
  panorama query    --project {p} \"SELECT * FROM business_measures\"
  panorama query    --project {p} \"SELECT model, metric, value, baseline, grade FROM prediction_grades WHERE grade IS NOT NULL\"
  panorama segment  --project {p} win_back --preview
  panorama refresh  --project {p} --as-of 2027-01-01      (measures and segments, no re-matching)
  panorama export   --project {p} --all                   (files under {p}/exports; see export_log)
  panorama journeys --project {p}                         (messages into the outbox, delivered once)
  panorama privacy  --project {p} access --email <an e-mail from unified_customers>
  panorama describe --project {p} webshop_customers
  panorama query    --project {p} \"SELECT * FROM rejects LIMIT 5\"
  panorama query    --project {p} \"SELECT tier, count(*), avg(points) FROM loyalty_members GROUP BY tier\" --format csv
  panorama sql      --project {p}        (interactive shell)
  panorama serve    --project {p}        (psql -h 127.0.0.1 -p 5433 -d panorama; http://127.0.0.1:8080/ and /console)
  panorama report   --project {p} --out report.html   (the run's charts in one offline file)
  Config: {p}/panorama.toml (keys explained in docs/config.md)
"
    )
}

/// A password from stdin: prompted on a terminal, one line when piped.
fn read_secret(prompt: &str) -> Result<String> {
    use std::io::{BufRead, IsTerminal, Write};
    if std::io::stdin().is_terminal() {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::Other(format!("cannot read the password: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}
