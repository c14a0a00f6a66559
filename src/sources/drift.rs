//! Schema drift: a source's columns compared with the previous run's. New columns are listed
//! (in the run summary and `source_stats`) and queryable at once; a column the config uses
//! whose type changed stops the run with the keys that use it. Columns that disappeared are
//! caught before this, while loading (see [`super::shape::Shaper::new`]).

use std::collections::BTreeMap;

use super::SourceReport;
use crate::config::ProjectConfig;
use crate::error::{Error, Result};

/// Compare `reports` (this run's) with `previous` (the previous successful run's): fill each
/// report's `new_columns`; fail on a used column whose type changed.
pub fn compare(
    cfg: &ProjectConfig,
    previous_run: &str,
    previous: &[SourceReport],
    reports: &mut [SourceReport],
) -> Result<()> {
    for r in reports.iter_mut() {
        let Some(before) = previous.iter().find(|p| p.name == r.name) else {
            continue;
        };
        // A run written before columns were recorded has nothing to compare.
        if before.columns.is_empty() {
            continue;
        }
        let old: BTreeMap<&str, &str> = before
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.data_type.as_str()))
            .collect();
        r.new_columns = r
            .columns
            .iter()
            .filter(|c| !old.contains_key(c.name.as_str()) && !r.missing_columns.contains(&c.name))
            .map(|c| c.name.clone())
            .collect();
        if !r.new_columns.is_empty() {
            tracing::warn!(
                source = r.name.as_str(),
                columns = r.new_columns.join(", "),
                "new columns since the previous run"
            );
        }
        let uses = cfg.column_uses(&r.name);
        let source = &cfg.sources[&r.name];
        let keys_of = |column: &str| -> Vec<String> {
            let mut keys: Vec<String> = uses
                .iter()
                .filter(|u| u.names(column))
                .map(|u| cfg.key_with_line(u.span.clone(), &u.key))
                .collect();
            if source
                .primary_key
                .get_ref()
                .columns()
                .iter()
                .any(|k| k == column)
            {
                keys.push(cfg.key_with_line(
                    source.primary_key.span(),
                    &format!("sources.{}.primary_key", r.name),
                ));
            }
            keys
        };
        for c in &r.columns {
            let Some(was) = old.get(c.name.as_str()) else {
                continue;
            };
            if *was == c.data_type {
                continue;
            }
            let keys = keys_of(&c.name);
            if keys.is_empty() {
                tracing::warn!(
                    source = r.name.as_str(),
                    column = c.name.as_str(),
                    was,
                    now = c.data_type.as_str(),
                    "column type changed since the previous run"
                );
                continue;
            }
            return Err(Error::source(
                &r.name,
                &r.location,
                format!(
                    "column `{}` was {was} in run {previous_run} and is {} now, and the config \
                     uses it: {}. Declare its type (`types = {{ {} = \"...\" }}` in \
                     [sources.{}]) to convert it — values that do not convert become rejects — \
                     or fix the export",
                    c.name,
                    c.data_type,
                    keys.join(", "),
                    c.name,
                    r.name
                ),
            ));
        }
    }
    Ok(())
}
