//! What each step after unification was made from, as one key per step (the manifest's
//! `lineage`), so a refresh — or a run whose sources did not change — links a step's tables
//! from the previous run when its key is the same instead of making them again, and a run in
//! which nothing at all changed makes no run.
//!
//! A key hashes what the step's result depends on:
//!
//! | step | made from |
//! |---|---|
//! | `sources` | the run that loaded the sources and unified them (a refresh keeps its key) |
//! | `rectification` | `sources` and the rectification log's files |
//! | `activities` | `sources`, the config the sources are read and unified by (all but the sections only later stages read), and `as_of` when `[activities]` says `as_of()` |
//! | `attribution` | `activities`, `[attribution]` and `as_of` |
//! | `predictions` | `activities`, `rectification`, `[predictions]` and `as_of` (lifetime value and churn count time to it) |
//! | `recommendations` | the same without `as_of`: co-purchases do not move with time |
//! | `index identifiers` | `sources` (records, links and identity graph are unification's) |
//! | `index timeline` | `activities` |
//!
//! Measures and segments are made every run: each run adds its rows to the segment and
//! measure history. A step whose config calls a clock or a random function (`now()`,
//! `current_date`, `random()`, ...) is never reused. The keys name inputs, not contents: a
//! `run --full` makes new keys even when its sources are the same files.

use std::collections::BTreeMap;
use std::path::Path;

use sha2::Digest;

use crate::config::ProjectConfig;
use crate::error::Result;
use crate::table_catalog::names;
use crate::workspace::Manifest;

/// The lineage entry of the run that loaded and unified the sources.
pub const SOURCES: &str = "sources";
pub const RECTIFICATION: &str = "rectification";
pub const ACTIVITIES: &str = "activities";
pub const ATTRIBUTION: &str = "attribution";
pub const PREDICTIONS: &str = "predictions";
pub const RECOMMENDATIONS: &str = "recommendations";
pub const INDEX_IDENTIFIERS: &str = "index identifiers";
pub const INDEX_TIMELINE: &str = "index timeline";

/// Config sections that only the stages after activities read (or nothing a run makes): left
/// out of what the sources, unification and activities are made from.
pub const LATER_SECTIONS: &[&str] = &[
    "measures",
    "segments",
    "business_measures",
    "workspace",
    "project",
    "exports",
    "consent",
    "predictions",
    "messages",
    "journeys",
    "schedules",
    "expectations",
    "funnels",
    "attribution",
];

/// SQL functions whose result is not fixed by the data and the as-of time.
const CLOCKS: &[&str] = &[
    "now(",
    "current_date",
    "current_time",
    "localtime",
    "random(",
    "uuid(",
];

/// Hash `path`'s name, size and modification time into `h`; `None` when it cannot be read.
pub fn stamp_file(h: &mut sha2::Sha256, path: &Path) -> Option<()> {
    let meta = std::fs::metadata(path).ok()?;
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    h.update(format!(
        "{}\t{}\t{}\n",
        path.display(),
        meta.len(),
        mtime.as_nanos()
    ));
    Some(())
}

/// [`stamp_file`] for every file directly in `dir`, in name order (nothing when there is no
/// such folder).
pub fn stamp_dir(h: &mut sha2::Sha256, dir: &Path) -> Option<()> {
    if let Ok(rd) = std::fs::read_dir(dir) {
        let mut files: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        files.sort();
        for f in files {
            stamp_file(h, &f)?;
        }
    }
    Some(())
}

/// The project's config as TOML without `sections`; `None` when it does not parse.
pub fn config_without(cfg: &ProjectConfig, sections: &[&str]) -> Option<String> {
    let mut table: toml::Table = toml::from_str(&cfg.text).ok()?;
    for key in sections {
        table.remove(*key);
    }
    toml::to_string(&table).ok()
}

/// One config section as TOML text (empty when absent).
fn section_of(config: Option<&toml::Table>, name: &str) -> String {
    config
        .and_then(|t| t.get(name))
        .map(|v| v.to_string())
        .unwrap_or_default()
}

fn key(parts: &[&str]) -> String {
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    crate::output::hex(&h.finalize()[..16])
}

/// Whether `text` (config) calls a function whose result the data does not fix.
pub fn calls_a_clock(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    CLOCKS.iter().any(|c| lower.contains(c))
}

/// What a step's config `text` adds to its key for time: nothing when it does not mention
/// `as_of`, the as-of time when it does, and `run_id` (never the same twice) when it calls a
/// clock.
fn clock_part(text: &str, as_of: &str, run_id: &str) -> String {
    if calls_a_clock(text) {
        format!("clock {run_id}")
    } else if text.to_ascii_lowercase().contains("as_of") {
        format!("as_of {as_of}")
    } else {
        String::new()
    }
}

/// The keys of one run's steps after unification.
#[derive(Debug, Clone)]
pub struct StageKeys(pub BTreeMap<String, String>);

impl StageKeys {
    /// The keys of a run whose sources were loaded and unified by the run keyed `sources`.
    pub fn new(cfg: &ProjectConfig, sources: &str, run_id: &str, as_of: &str) -> StageKeys {
        let mut h = sha2::Sha256::new();
        let log = crate::state::dir(&cfg.workspace_dir()).join(names::RECTIFICATIONS);
        let rectification = match stamp_dir(&mut h, &log) {
            Some(()) => key(&[sources, &crate::output::hex(&h.finalize()[..16])]),
            None => key(&[sources, run_id]),
        };
        let read_by = config_without(cfg, LATER_SECTIONS).unwrap_or_else(|| run_id.to_string());
        let config: Option<toml::Table> = toml::from_str(&cfg.text).ok();
        let section = |name| section_of(config.as_ref(), name);
        let activities = key(&[
            sources,
            &read_by,
            &clock_part(&section("activities"), as_of, run_id),
        ]);
        let attribution_cfg = section("attribution");
        let attribution = key(&[
            &activities,
            &attribution_cfg,
            as_of,
            &clock_part(&attribution_cfg, as_of, run_id),
        ]);
        let predictions_cfg = section("predictions");
        let clock = clock_part(&predictions_cfg, as_of, run_id);
        let predictions = key(&[&activities, &rectification, &predictions_cfg, as_of, &clock]);
        let recommendations = key(&[&activities, &rectification, &predictions_cfg, &clock]);
        let keys = [
            (SOURCES, sources.to_string()),
            (RECTIFICATION, rectification),
            (ATTRIBUTION, attribution),
            (PREDICTIONS, predictions),
            (RECOMMENDATIONS, recommendations),
            (INDEX_IDENTIFIERS, key(&[sources, "identifiers"])),
            (INDEX_TIMELINE, key(&[&activities, "timeline"])),
            (ACTIVITIES, activities),
        ];
        StageKeys(keys.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    pub fn get(&self, step: &str) -> &str {
        self.0.get(step).map(String::as_str).unwrap_or_default()
    }

    /// Whether `previous` made `step` from the same inputs as this run would.
    pub fn same_as(&self, previous: Option<&Manifest>, step: &str) -> bool {
        previous
            .and_then(|m| m.lineage.get(step))
            .is_some_and(|k| k == self.get(step))
    }
}

/// Link the tables `names` of the previous run's `from` (its `tables/`) into `to`; the
/// names linked (a table the previous run did not make is skipped).
pub fn link_tables<S: AsRef<str>>(from: &Path, to: &Path, names: &[S]) -> Result<Vec<String>> {
    let mut linked = Vec::new();
    for name in names {
        let file = format!("{}.parquet", name.as_ref());
        if from.join(&file).exists() {
            crate::workspace::link_file(&from.join(&file), &to.join(&file))?;
            linked.push(name.as_ref().to_string());
        }
    }
    Ok(linked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_in_the_config_is_never_the_same_twice() {
        assert_eq!(clock_part("where = \"amount > 0\"", "2026-01-01", "r1"), "");
        assert_eq!(
            clock_part(
                "where = \"ts > as_of() - INTERVAL '1 day'\"",
                "2026-01-01",
                "r1"
            ),
            "as_of 2026-01-01"
        );
        assert_eq!(
            clock_part(
                "where = \"ts > NOW() - INTERVAL '1 day'\"",
                "2026-01-01",
                "r1"
            ),
            "clock r1"
        );
        assert_ne!(
            clock_part("x = \"random()\"", "t", "r1"),
            clock_part("x = \"random()\"", "t", "r2")
        );
    }
}
