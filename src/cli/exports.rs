//! `panorama export` and `panorama journeys`: send segments and messages to their destinations.

use panorama::error::{Error, Result};

use super::Globals;

/// `panorama export`: send one export, or all with `--all`; fails listing every export that failed.
pub async fn export(g: &Globals, name: Option<String>, all: bool, dry_run: bool) -> Result<()> {
    let quiet = g.quiet;
    let locking = &g.locking;
    let cfg = g.config()?;
    let names: Vec<String> = match name {
        Some(n) => vec![n],
        None if all => cfg.exports.keys().cloned().collect(),
        None => Vec::new(),
    };
    if names.is_empty() {
        return Err(Error::NotFound(format!(
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
                if r.outcome == panorama::exports::ExportOutcome::Failed {
                    failed.push(format!("{n}: {}", r.error.unwrap_or_default()));
                }
            }
            Err(e) => failed.push(format!("{n}: {e}")),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Partial(format!(
            "{} of {} exports failed:\n  {}",
            failed.len(),
            names.len(),
            failed.join("\n  ")
        )))
    }
}

/// `panorama journeys`: render messages for customers who entered a journey's segment and deliver them.
pub async fn journeys(g: &Globals, name: Option<String>) -> Result<()> {
    let quiet = g.quiet;
    let locking = &g.locking;
    let cfg = g.config()?;
    if cfg.journeys.is_empty() {
        return Err(Error::NotFound(format!(
            "{} declares no [journeys]",
            cfg.path.display()
        )));
    }
    let reports = panorama::journeys::run_journeys(&cfg, name.as_deref(), quiet, locking).await?;
    let mut failed = Vec::new();
    for r in &reports {
        if !quiet {
            println!("{}", r.summary());
        }
        if let Some(d) = r
            .delivery
            .as_ref()
            .filter(|d| d.outcome == panorama::exports::ExportOutcome::Failed)
        {
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
        Err(Error::Partial(format!(
            "delivery failed (the messages stay in the outbox and go with the next export): {}",
            failed.join("; ")
        )))
    }
}
