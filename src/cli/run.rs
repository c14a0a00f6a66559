//! Making runs: `run`, `refresh`, `report`, `schedule`.

use std::path::PathBuf;

use panorama::error::Result;

use super::flags::*;
use super::Globals;
use panorama::config::ProjectConfig;
use panorama::run::stages::Stage;
use panorama::run::{run_project, RunOptions, RunOutcome};
use panorama::workspace::reports::StageStatus;

/// `panorama run`: a new run (or a refresh when sources and config did not change), then its summary.
pub async fn run(g: &Globals, as_of: AsOfArg, full: bool, report: bool) -> Result<()> {
    let quiet = g.quiet;
    let cfg = g.config()?;
    let opts = RunOptions {
        full,
        ..g.run_options(as_of.as_of)
    };
    let outcome = run_project(&cfg, &opts).await?;
    if !quiet {
        print!("{}", run_summary(&cfg, &outcome));
    }
    if report {
        let out = outcome.run_dir.join("report.html");
        let r = panorama::charts::report::write(&cfg, Some(&outcome.manifest.run_id), &out).await?;
        if !quiet {
            println!("report: {} ({} charts)", out.display(), r.charts);
        }
    }
    Ok(())
}

/// `panorama report`: the run's charts as one offline HTML file.
pub async fn report(g: &Globals, run: Option<String>, out: PathBuf) -> Result<()> {
    let quiet = g.quiet;
    let cfg = g.config()?;
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

/// `panorama schedule`: fire the project's `[schedules]` until stopped.
pub async fn schedule(g: &Globals) -> Result<()> {
    let quiet = g.quiet;
    let cfg = g.config()?;
    panorama::schedule::serve(&cfg, &panorama::schedule::SchedulerOptions { quiet }).await
}

/// `panorama refresh`: re-evaluate everything after unification on the current run.
pub async fn refresh(g: &Globals, as_of: AsOfArg) -> Result<()> {
    let quiet = g.quiet;
    let cfg = g.config()?;
    let opts = g.run_options(as_of.as_of);
    let outcome = panorama::run::refresh_project(&cfg, &opts).await?;
    if !quiet {
        print!("{}", run_summary(&cfg, &outcome));
    }
    Ok(())
}

/// The one-screen summary printed after a run.
pub(crate) fn run_summary(cfg: &ProjectConfig, outcome: &RunOutcome) -> String {
    use std::fmt::Write;
    let m = &outcome.manifest;
    let mut s = String::new();
    if outcome.unchanged {
        let _ = writeln!(
            s,
            "\nNothing changed since run {} (sources, config and the as-of time {} are as they were): it stays current ({:.1}s). \
             `panorama refresh` makes everything after unification again; `panorama run --full` loads and unifies again.",
            m.run_id,
            m.as_of.as_deref().unwrap_or("-"),
            outcome.seconds
        );
        return s;
    }
    let _ = writeln!(
        s,
        "\nRun {} of {} succeeded in {:.1}s",
        m.run_id,
        cfg.project.name.as_deref().unwrap_or("project"),
        outcome.seconds
    );
    let rejected = sources_summary(&mut s, m);
    quality_summary(&mut s, m);
    unify_summary(&mut s, cfg, m);
    stages_summary(&mut s, m);
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

/// The sources table of the summary and what each source needs said; returns the rows rejected.
fn sources_summary(s: &mut String, m: &panorama::workspace::Manifest) -> u64 {
    use std::fmt::Write;
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
    for r in &m.sources {
        if !r.new_columns.is_empty() {
            let _ = writeln!(
                s,
                "  {}: new column(s) since the previous run: {} (queryable now; map them in the config to use them)",
                r.name,
                r.new_columns.join(", ")
            );
        }
        if !r.missing_columns.is_empty() {
            let _ = writeln!(
                s,
                "warning: {}: column(s) {} missing from the data, loaded as NULL (on_missing_column = \"null\")",
                r.name,
                r.missing_columns.join(", ")
            );
        }
        if r.encodings.iter().any(|e| e != "utf-8") {
            let _ = writeln!(s, "  {}: read as {}", r.name, r.encodings.join(", "));
        }
        for (column, n) in &r.values_nulled {
            let _ = writeln!(
                s,
                "  {}.{column}: {} value(s) NULL, the computed column's expression failed on them (first: {})",
                r.name, n.count, n.first
            );
        }
    }
    rejected
}

/// Profiles and expectations.
fn quality_summary(s: &mut String, m: &panorama::workspace::Manifest) {
    use std::fmt::Write;
    if let Some(q) = &m.quality {
        let profiled = match q.columns_profiled {
            0 => String::new(),
            n => format!("{n} source columns profiled, "),
        };
        if q.checks > 0 {
            let _ = writeln!(
                s,
                "Data quality: {profiled}{} of {} expectations passed in {:.1}s (SELECT * FROM data_quality)",
                q.passed, q.checks, q.seconds
            );
        } else if q.columns_profiled > 0 {
            let _ = writeln!(
                s,
                "Data quality: {} source columns profiled in {:.1}s (SELECT * FROM source_profiles); no [[expectations]] to check",
                q.columns_profiled, q.seconds
            );
        }
        for w in &q.warnings {
            let _ = writeln!(s, "warning: data quality: {w}");
        }
    }
}

/// Unification (or what a refresh reused), attribution and unify warnings.
fn unify_summary(s: &mut String, cfg: &ProjectConfig, m: &panorama::workspace::Manifest) {
    use std::fmt::Write;
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
                        "Incremental: {} records new, changed or deleted since the previous run were compared, {} unchanged ones whose blocks changed size with them ({} pairs); {} customers merged again",
                        u.touched_records, u.resized_records, u.candidate_pairs, u.remerged_customers
                    );
                }
            }
        }
        if let Some(name) = cfg.attribution.keys().next() {
            let _ = writeln!(
                s,
                "Attributed {} conversions to channels by {} models (SELECT * FROM attribution('{name}', 'markov'))",
                u.attributed_conversions,
                panorama::config::attribution::MODELS.len()
            );
        }
        for w in &u.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
    }
}

/// Measures, predictions and the stages that had nothing to do.
fn stages_summary(s: &mut String, m: &panorama::workspace::Manifest) {
    use std::fmt::Write;
    if let Some(a) = &m.analytics {
        let _ = writeln!(
            s,
            "Measured {} measures, {} segments ({} memberships) and {} business measures as of {} in {:.1}s",
            a.measures, a.segments, a.segment_members, a.business_measures, a.as_of, a.seconds
        );
    }
    let with = |status| -> Vec<&panorama::workspace::reports::StageOutcome> {
        m.stages.iter().filter(|o| o.status == status).collect()
    };
    let reused = with(StageStatus::Reused);
    if let Some(p) = m
        .predictions
        .as_ref()
        .filter(|_| !reused.iter().any(|o| o.stage == Stage::Predictions.name()))
    {
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
    if let Some(first) = reused.first() {
        let names: Vec<&str> = reused.iter().map(|o| o.stage.as_str()).collect();
        let _ = writeln!(
            s,
            "Not made again, their inputs unchanged: {} ({})",
            names.join(", "),
            first.detail
        );
    }
    let idle: Vec<String> = with(StageStatus::Idle)
        .iter()
        .map(|o| format!("{} ({})", o.stage, o.detail))
        .collect();
    if !idle.is_empty() {
        let _ = writeln!(s, "Nothing to do for: {}", idle.join("; "));
    }
}
