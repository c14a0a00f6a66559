//! `panorama schedule`: a long-running process that fires `[schedules.<name>]` on their cron
//! expressions.
//!
//! One job runs at a time (a job due while another runs waits, then runs once however many of
//! its ticks passed), a failing job is logged in `schedule_log` and the schedule fires
//! again at its next tick, and SIGTERM or Ctrl-C stop the process cleanly: immediately when
//! idle, after the running job's current step otherwise (runs switch outputs atomically, so
//! nothing is left half-done either way).

use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use chrono::{DateTime, Utc};

use crate::config::ProjectConfig;
use crate::error::{Error, Result};
use crate::workspace::lock::Locking;

pub use crate::config::schedule::{ScheduleDef, Step};
use crate::table_catalog::names;

/// Run one step.
pub async fn run_step(
    cfg: &ProjectConfig,
    step: &Step,
    quiet: bool,
    locking: &Locking,
) -> Result<String> {
    let opts = crate::run::RunOptions {
        quiet,
        locking: locking.clone(),
        ..Default::default()
    };
    match step {
        Step::Run { full } => {
            let o = crate::run::run_project(
                cfg,
                &crate::run::RunOptions {
                    full: *full,
                    ..opts
                },
            )
            .await?;
            Ok(format!("run {}", o.manifest.run_id))
        }
        Step::Refresh => {
            let o = crate::run::refresh_project(cfg, &opts).await?;
            Ok(format!("refresh {}", o.manifest.run_id))
        }
        Step::Journeys => {
            let r = crate::journeys::run_journeys(cfg, None, quiet, locking).await?;
            let failed: Vec<String> = r
                .iter()
                .filter_map(|j| j.delivery.as_ref())
                .filter(|d| d.outcome == crate::exports::ExportOutcome::Failed)
                .map(|d| format!("{}: {}", d.export, d.error.clone().unwrap_or_default()))
                .collect();
            if !failed.is_empty() {
                return Err(Error::Partial(format!(
                    "delivery failed: {}",
                    failed.join("; ")
                )));
            }
            Ok(format!(
                "journeys: {} messages",
                r.iter().map(|j| j.rendered).sum::<u64>()
            ))
        }
        Step::Exports | Step::Export(_) => {
            let names: Vec<String> = match step {
                Step::Export(n) => vec![n.clone()],
                _ => cfg.exports.keys().cloned().collect(),
            };
            let mut done = Vec::new();
            let mut failed = Vec::new();
            for n in &names {
                let r = crate::exports::run_export(
                    cfg,
                    n,
                    &crate::exports::ExportOptions {
                        quiet,
                        dry_run: false,
                        locking: locking.clone(),
                    },
                )
                .await;
                match r {
                    Ok(r) if r.outcome == crate::exports::ExportOutcome::Failed => {
                        failed.push(format!("{n}: {}", r.error.unwrap_or_default()))
                    }
                    Ok(r) => done.push(format!("{n}: {} confirmed", r.confirmed)),
                    Err(e) => failed.push(format!("{n}: {e}")),
                }
            }
            if failed.is_empty() {
                Ok(format!("exports {}", done.join(", ")))
            } else {
                Err(Error::Partial(format!(
                    "export failed: {}",
                    failed.join("; ")
                )))
            }
        }
    }
}

/// Options of the scheduler.
#[derive(Debug, Clone, Default)]
pub struct SchedulerOptions {
    pub quiet: bool,
}

fn log(
    cfg: &ProjectConfig,
    schedule: &str,
    due: DateTime<Utc>,
    started: DateTime<Utc>,
    outcome: &str,
    detail: &str,
) -> Result<()> {
    let s = |v: &str| Arc::new(StringArray::from(vec![v])) as ArrayRef;
    let batch = crate::state::batch(vec![
        ("schedule", s(schedule)),
        ("due_at", s(&due.to_rfc3339())),
        ("started_at", s(&started.to_rfc3339())),
        ("ended_at", s(&Utc::now().to_rfc3339())),
        ("outcome", s(outcome)),
        ("detail", s(detail)),
    ])?;
    crate::state::append(&cfg.workspace_dir(), names::SCHEDULE_LOG, &batch)?;
    Ok(())
}

/// Fire schedules until SIGTERM or Ctrl-C.
pub async fn serve(cfg: &ProjectConfig, opts: &SchedulerOptions) -> Result<()> {
    // A service's own log: one line per event on stdout.
    let say = |msg: String| {
        if !opts.quiet {
            println!("{} {msg}", Utc::now().format("%Y-%m-%dT%H:%M:%SZ"));
        }
    };
    if cfg.schedules.is_empty() {
        return Err(Error::NotFound(format!(
            "{} declares no [schedules]",
            cfg.path.display()
        )));
    }
    let mut jobs = Vec::new();
    for (name, s) in &cfg.schedules {
        let def = s.get_ref();
        let key = format!("schedules.{name}");
        let sched = def.schedule().map_err(|e| Error::invalid(&key, e))?;
        let steps = def.parsed_steps().map_err(|e| Error::invalid(&key, e))?;
        jobs.push((name.clone(), sched, steps));
    }
    let mut term = stop_signal()?;
    let next_after = |sched: &cron::Schedule, t: DateTime<Utc>| sched.after(&t).next();
    let now = Utc::now();
    let mut due: Vec<Option<DateTime<Utc>>> =
        jobs.iter().map(|(_, s, _)| next_after(s, now)).collect();
    for ((name, _, _), d) in jobs.iter().zip(&due) {
        say(format!(
            "schedule {name}: next at {}",
            d.map(|d| d.to_rfc3339()).unwrap_or_else(|| "never".into())
        ));
    }
    loop {
        let Some((i, when)) = due
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.map(|d| (i, d)))
            .min_by_key(|(_, d)| *d)
        else {
            say("no schedule fires again; stopping".into());
            return Ok(());
        };
        let wait = (when - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = term.recv() => {
                say("stop signal: no job running, stopping".into());
                return Ok(());
            }
        }
        let (name, sched, steps) = &jobs[i];
        let started = Utc::now();
        say(format!(
            "schedule {name}: started (due {})",
            when.to_rfc3339()
        ));
        let mut stopping = false;
        let mut outcome = ("succeeded", Vec::new());
        // The job's steps write as one: another writer (a run from the shell, an admin run
        // over HTTP) finishes first, and none starts between two steps.
        let (workspace, operation) = (cfg.workspace_dir(), format!("schedule {name}"));
        let lock = crate::workspace::lock::acquire(&workspace, &operation, &Locking::Wait);
        let lock = tokio::select! {
            l = lock => l?,
            _ = term.recv() => {
                say(format!("stop signal while {name} waited for the workspace; stopping"));
                return Ok(());
            }
        };
        let locking = Locking::Held(lock);
        for step in steps {
            let job = run_step(cfg, step, opts.quiet, &locking);
            tokio::pin!(job);
            let r = tokio::select! {
                r = &mut job => r,
                _ = term.recv() => {
                    say(format!("stop signal: stopping after the current step of {name}"));
                    stopping = true;
                    job.await
                }
            };
            match r {
                Ok(msg) => outcome.1.push(msg),
                Err(e) => {
                    tracing::error!("schedule {name}: {e}");
                    outcome = ("failed", vec![e.to_string()]);
                    break;
                }
            }
            if stopping {
                outcome
                    .1
                    .push("stopped by signal before the remaining steps".into());
                break;
            }
        }
        drop(locking);
        log(cfg, name, when, started, outcome.0, &outcome.1.join("; "))?;
        say(format!(
            "schedule {name}: {} {}",
            outcome.0,
            outcome.1.join("; ")
        ));
        if stopping {
            return Ok(());
        }
        // Another schedule that fell due meanwhile runs next (once, however many of its ticks
        // passed); this one's own ticks that passed while it ran are skipped, not queued.
        let now = Utc::now();
        let skipped = sched.after(&when).take_while(|t| *t <= now).count();
        if skipped > 0 {
            tracing::info!("schedule {name}: {skipped} ticks skipped while it ran");
        }
        due[i] = next_after(sched, now);
    }
}

/// SIGTERM and Ctrl-C as one stream of stop requests.
fn stop_signal() -> Result<tokio::sync::mpsc::Receiver<()>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    #[cfg(unix)]
    {
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| Error::Terminal {
                what: "cannot listen for SIGTERM",
                message: e.to_string(),
            })?;
        let tx2 = tx.clone();
        tokio::spawn(async move {
            while sigterm.recv().await.is_some() {
                if tx2.send(()).await.is_err() {
                    break;
                }
            }
        });
    }
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            if tx.send(()).await.is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(cron: &str, steps: &[&str]) -> ScheduleDef {
        ScheduleDef {
            cron: cron.into(),
            steps: steps.iter().map(|s| s.to_string()).collect(),
            description: None,
        }
    }

    #[test]
    fn five_field_cron_fires_on_the_minute() {
        let s = def("30 2 * * *", &["refresh"]).schedule().unwrap();
        let after = DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let next = s.after(&after).next().unwrap();
        assert_eq!(next.to_rfc3339(), "2026-11-26T02:30:00+00:00");
    }

    #[test]
    fn steps_parse_and_bad_ones_are_named() {
        let d = def(
            "* * * * * *",
            &["run --full", "journeys", "export win_back"],
        );
        assert_eq!(
            d.parsed_steps().unwrap(),
            vec![
                Step::Run { full: true },
                Step::Journeys,
                Step::Export("win_back".into())
            ]
        );
        let err = def("* * * * *", &["deploy"]).parsed_steps().unwrap_err().0;
        assert!(err.contains("step \"deploy\""), "{err}");
        let err = def("* * *", &["run"]).schedule().unwrap_err().0;
        assert!(err.contains("3 fields"), "{err}");
    }
}
