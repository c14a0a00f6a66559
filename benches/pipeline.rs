//! End-to-end pipeline benchmark: generate a demo project of N people, then run it.
//! Prints wall time and peak resident memory of each phase.
//!
//! ```sh
//! cargo bench --bench pipeline -- 1000000        # N people (default 100000)
//! ```
//! Figures go into `benches/README.md`.

use std::time::Instant;

use panorama::config::ProjectConfig;
use panorama::demo::{generate, DemoOptions};
use panorama::run::{run_project, RunOptions};

/// Peak resident set size of this process, in MiB (Linux `VmHWM`).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|k| k.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// Reset the peak so the next phase is measured on its own (Linux: `5` to `clear_refs`).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn dir_size(path: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(path) {
        for e in rd.flatten() {
            let p = e.path();
            total += if p.is_dir() {
                dir_size(&p)
            } else {
                e.metadata().map_or(0, |m| m.len())
            };
        }
    }
    total
}

fn main() {
    let persons: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("demo");
    let rt = tokio::runtime::Runtime::new().expect("runtime");

    reset_peak();
    let t = Instant::now();
    let report = rt
        .block_on(generate(&DemoOptions {
            persons,
            out: out.clone(),
            seed: 42,
            postgres: None,
            quiet: true,
        }))
        .expect("demo generates");
    let demo_s = t.elapsed().as_secs_f64();
    let demo_peak = peak_rss_mib();
    let rows: u64 = report
        .files
        .iter()
        .filter(|(f, _)| f != "truth.csv")
        .map(|(_, n)| n)
        .sum();
    let data_mib = dir_size(&out.join("data")) as f64 / (1 << 20) as f64;

    reset_peak();
    let cfg = ProjectConfig::load(&out).expect("config");
    let t = Instant::now();
    let outcome = rt
        .block_on(run_project(
            &cfg,
            &RunOptions {
                quiet: true,
                ..Default::default()
            },
        ))
        .expect("run");
    let run_s = t.elapsed().as_secs_f64();
    let run_peak = peak_rss_mib();
    let loaded: u64 = outcome.manifest.sources.iter().map(|s| s.rows_loaded).sum();

    println!("persons: {persons}");
    println!("demo:    {demo_s:.2} s, {rows} source rows, {data_mib:.0} MiB on disk, peak RSS {demo_peak:.0} MiB");
    println!(
        "run:     {run_s:.2} s, {loaded} rows loaded ({:.0} rows/s), peak RSS {run_peak:.0} MiB",
        loaded as f64 / run_s
    );
    for s in &outcome.manifest.sources {
        println!(
            "  {:<20} {:>10} rows {:>8.2} s  rejected {}",
            s.name, s.rows_loaded, s.seconds, s.rows_rejected
        );
    }
}
