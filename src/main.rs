//! The `panorama` command: parses the command line and dispatches each subcommand to its
//! function in `cli/`, which calls the library.

mod cli;

use std::process::ExitCode;

use clap::Parser;

use cli::flags::{Cli, Command, UnifyCommand};
use cli::Globals;
use panorama::error::Result;

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
    let g = Globals {
        project: cli.project,
        quiet: cli.quiet,
        locking: panorama::workspace::lock::Locking::wait(cli.wait),
    };
    match cli.command {
        Command::Quickstart { dir, persons, seed } => {
            cli::project::quickstart(dir, persons, seed, g.quiet).await
        }
        Command::Init {
            dir,
            from,
            dry_run,
            force,
            sample_rows,
        } => cli::project::init(&g, dir, from, dry_run, force, sample_rows).await,
        Command::Doctor { sample_rows } => cli::project::doctor(&g, sample_rows).await,
        Command::Demo {
            persons,
            out,
            seed,
            postgres,
        } => cli::project::demo(&g, persons, out, seed, postgres).await,
        Command::Run {
            as_of,
            full,
            report,
        } => cli::run::run(&g, as_of, full, report).await,
        Command::Report { run, out } => cli::run::report(&g, run, out).await,
        Command::Export { name, all, dry_run } => {
            cli::exports::export(&g, name, all, dry_run).await
        }
        Command::Serve { listen } => cli::serve::serve(&g, listen.into()).await,
        Command::Users { command } => cli::serve::users(&g, command),
        Command::Tokens { command } => cli::serve::tokens(&g, command),
        Command::WriteKeys { command } => cli::serve::write_keys(&g, command),
        Command::Consent {
            person,
            purpose,
            channel,
            grant,
            withdraw: _,
            note,
        } => cli::privacy::consent(&g, person, purpose, channel, grant, note).await,
        Command::Journeys { name } => cli::exports::journeys(&g, name).await,
        Command::Schedule => cli::run::schedule(&g).await,
        Command::Unify {
            command: UnifyCommand::Plan,
        } => cli::unify::plan(&g).await,
        Command::Unify {
            command:
                UnifyCommand::Report {
                    sample_pairs,
                    examples,
                    format,
                },
        } => cli::unify::report(&g, sample_pairs, examples, format).await,
        Command::Privacy { command } => cli::privacy::privacy(&g, command).await,
        Command::Refresh { as_of } => cli::run::refresh(&g, as_of).await,
        Command::Segments { format } => cli::query::segments(&g, format).await,
        Command::Segment {
            name,
            preview,
            limit,
            as_of,
        } => cli::query::segment(&g, name, preview, limit, as_of).await,
        Command::Query {
            sql,
            format,
            output,
            run,
            ballista,
        } => cli::query::query(&g, sql, format, output, run, ballista).await,
        Command::Sql { run } => cli::query::sql(&g, run).await,
        Command::Tables => cli::query::tables(&g).await,
        Command::Eval {
            truth,
            format,
            breakdown,
            top,
        } => cli::unify::eval(&g, truth, breakdown.then_some(top), format).await,
        Command::Explain { left, right } => cli::unify::explain(&g, left, right).await,
        Command::Describe { table } => cli::query::describe(&g, table).await,
        Command::Profile { sources, format } => cli::query::profile(&g, sources, format).await,
    }
}
