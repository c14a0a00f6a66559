//! `panorama consent` and `panorama privacy`: consent statements, access, erasure, rectification.

use panorama::error::{Error, Result};

use super::flags::*;
use super::Globals;
use panorama::config::ProjectConfig;
use panorama::run::RunOptions;

/// `panorama consent`: record a consent statement for a person.
pub async fn consent(
    g: &Globals,
    person: PersonArg,
    purpose: String,
    channel: Option<String>,
    grant: bool,
    note: Option<String>,
) -> Result<()> {
    let quiet = g.quiet;
    let cfg = g.config()?;
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

/// `panorama privacy access|erase|rectify`.
pub async fn privacy(g: &Globals, command: PrivacyCommand) -> Result<()> {
    let quiet = g.quiet;
    let locking = &g.locking;
    let cfg = g.config()?;
    privacy_command(&cfg, command, quiet, locking).await
}

/// `panorama privacy …`: access, erasure, rectification.
async fn privacy_command(
    cfg: &ProjectConfig,
    command: PrivacyCommand,
    quiet: bool,
    locking: &panorama::workspace::lock::Locking,
) -> Result<()> {
    match command {
        PrivacyCommand::Access { person, output } => {
            let actor = panorama::privacy::actor(person.actor.as_deref());
            let doc = panorama::privacy::access::access(cfg, &person.selector(), &actor).await?;
            let text = serde_json::to_string_pretty(&doc)?;
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
                return Err(Error::InvalidRequest(
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
