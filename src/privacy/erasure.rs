//! Right to erasure.
//!
//! `erase` hashes every identifier the person is known by (customer id, linked records,
//! normalized e-mails, phone digits, anonymous ids) into the suppression list, removes their
//! rows from Panorama's own logs, and makes a new run from the sources: the suppression list
//! is checked at ingest, so the person's records are dropped as sources are read, now and in
//! every later run. Older runs, which still hold the person, are deleted. Each export sends a
//! delete for the person the next time it runs (file: tombstones; PostgreSQL: DELETE;
//! webhook: a delete event), because its confirmed state still lists them.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, StringArray};

use super::{in_list, strings, Selector};
use crate::config::ProjectConfig;
use crate::error::{Error, Result};
pub use crate::privacy_state::{erased_filter, suppressed_condition};
use crate::sources::SourceReport;
use crate::sql_text::ident;
use crate::table_catalog::names;

/// What an erasure did.
#[derive(Debug, Clone, Default)]
pub struct ErasureReport {
    pub customers: Vec<String>,
    /// Identifiers added to the suppression list, by kind.
    pub identifiers: Vec<(String, usize)>,
    /// Rows removed from Panorama's own logs (consent, outbox, journeys, rectifications).
    pub state_rows_removed: u64,
    /// The new run without the person.
    pub run_id: String,
    pub runs_deleted: Vec<String>,
    /// Runs other processes were writing, not deleted: run again once they finish.
    pub runs_in_progress: Vec<String>,
    /// Exports whose next run will tell their destination to delete the person.
    pub exports_to_notify: Vec<String>,
}

/// Log tables with a `customer_id` column that erasure purges.
const PERSONAL_LOGS: &[&str] = &[
    names::CONSENT_STATEMENTS,
    names::RECTIFICATIONS,
    names::OUTBOX,
    names::JOURNEY_STATE,
];

pub async fn erase(
    cfg: &ProjectConfig,
    selector: &Selector,
    actor: &str,
    quiet: bool,
    locking: &crate::workspace::lock::Locking,
) -> Result<ErasureReport> {
    // Held from the suppression to the new run and the deletion of every other run: no run
    // can start in between and read the sources before the suppression.
    let lock = crate::workspace::lock::acquire(&cfg.workspace_dir(), "erase", locking).await?;
    let (ctx, opened) = crate::session::open_project(cfg, None).await?;
    let customers = selector.customers(&ctx, &opened.tables).await?;
    let has = |t: &str| opened.tables.iter().any(|x| x == t);
    let idents = identifiers(&ctx, &has, &customers).await?;
    let workspace = cfg.workspace_dir();
    let request = format!("erase-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ"));
    let n = suppress(&workspace, &idents, &request)?;
    // Recorded now: what follows may fail, but the suppression already took effect.
    super::audit(
        &workspace,
        actor,
        "erase",
        selector,
        &customers,
        &format!("{n} identifiers suppressed (request {request})"),
    )?;
    drop(ctx);
    let mut report = ErasureReport {
        customers: customers.clone(),
        identifiers: idents
            .iter()
            .map(|(k, v)| (k.to_string(), v.len()))
            .collect(),
        ..Default::default()
    };
    // Log rows written under an id the person had before a merge carry that old id: erase by
    // every id their records have had in the kept runs, and by the records themselves where a
    // log keeps them (consent statements, rectifications).
    let records = idents
        .iter()
        .find(|(k, _)| *k == "record")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let history = id_history(&workspace, &customers, &records).await?;
    for t in PERSONAL_LOGS {
        report.state_rows_removed += purge_log(&workspace, t, &history, &records).await?;
    }
    // The next run reads every source again, dropping the person at ingest.
    let outcome = crate::run::run_project(
        cfg,
        &crate::run::RunOptions {
            quiet,
            full: true,
            locking: crate::workspace::lock::Locking::Held(lock.clone()),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| {
        Error::Partial(format!(
            "the person's identifiers are on the suppression list, but the new run failed: {e}; \
             fix it and run `panorama run --full` so the outputs no longer hold them"
        ))
    })?;
    report.run_id = outcome.manifest.run_id.clone();
    delete_other_runs(&workspace, &mut report)?;
    report.exports_to_notify = exports_holding(cfg, &workspace, &history).await?;
    super::audit(
        &workspace,
        actor,
        "erase_completed",
        selector,
        &customers,
        &format!(
            "{n} identifiers suppressed; {} log rows removed; new run {}; {} older runs deleted",
            report.state_rows_removed,
            report.run_id,
            report.runs_deleted.len()
        ),
    )?;
    Ok(report)
}

/// The person's identifiers by kind: customer ids, records (`source:id`), e-mails, phone
/// digits and (with an identity graph) anonymous ids.
async fn identifiers(
    ctx: &datafusion::prelude::SessionContext,
    has: &dyn Fn(&str) -> bool,
    customers: &[String],
) -> Result<Vec<(&'static str, Vec<String>)>> {
    let ids = in_list(customers);
    let mut idents: Vec<(&str, Vec<String>)> = vec![
        ("customer_id", customers.to_vec()),
        (
            "record",
            strings(
                ctx,
                &format!("SELECT DISTINCT source || ':' || record_id FROM customer_links WHERE customer_id IN ({ids})"),
            )
            .await?,
        ),
        (
            "email",
            strings(
                ctx,
                &format!(
                    "SELECT DISTINCT r.email FROM unify_records r JOIN customer_links l ON l.uid = r.uid \
                     WHERE l.customer_id IN ({ids}) AND r.email IS NOT NULL"
                ),
            )
            .await?,
        ),
        (
            "phone",
            strings(
                ctx,
                &format!(
                    "SELECT DISTINCT r.phone_digits FROM unify_records r JOIN customer_links l ON l.uid = r.uid \
                     WHERE l.customer_id IN ({ids}) AND r.phone_digits IS NOT NULL"
                ),
            )
            .await?,
        ),
    ];
    if has(names::IDENTITY_GRAPH) {
        idents.push((
            "anonymous_id",
            strings(
                ctx,
                &format!(
                    "SELECT DISTINCT anonymous_id FROM identity_graph WHERE customer_id IN ({ids})"
                ),
            )
            .await?,
        ));
    }
    Ok(idents)
}

/// Append the identifiers' hashes to the suppression list (every later run drops them at
/// ingest); the number of identifiers.
fn suppress(
    workspace: &Path,
    idents: &[(&'static str, Vec<String>)],
    request: &str,
) -> Result<usize> {
    let (mut hashes, mut kinds) = (Vec::new(), Vec::new());
    for (kind, values) in idents {
        for v in values {
            hashes.push(super::hash_identifier(v));
            kinds.push(kind.to_string());
        }
    }
    let n = hashes.len();
    let at = super::now_text();
    let batch = crate::state::batch(vec![
        (
            "identifier_hash",
            Arc::new(StringArray::from(hashes)) as ArrayRef,
        ),
        ("kind", Arc::new(StringArray::from(kinds))),
        (
            "erased_at",
            Arc::new(StringArray::from(vec![at.as_str(); n])),
        ),
        ("request", Arc::new(StringArray::from(vec![request; n]))),
    ])?;
    crate::state::append(workspace, names::SUPPRESSION_LIST, &batch)?;
    Ok(n)
}

/// Delete every run but the new one (`report.run_id`); runs another process is writing are
/// left to it and listed in the report.
fn delete_other_runs(workspace: &Path, report: &mut ErasureReport) -> Result<()> {
    let ws = crate::workspace::Workspace::new(workspace.to_path_buf());
    ws.reap_dead_runs()?;
    for m in ws.manifests()? {
        // A run another process is writing now is left to it (deleting it would break that
        // process); it read the sources before the suppression list had this person, so the
        // report says to run again after it.
        if m.status == crate::workspace::RunStatus::Running && m.run_id != report.run_id {
            report.runs_in_progress.push(m.run_id);
            continue;
        }
        if m.run_id != report.run_id {
            let dir = ws.run_dir(&m.run_id);
            std::fs::remove_dir_all(&dir)
                .map_err(|e| Error::io("cannot delete old run", &dir, e))?;
            report.runs_deleted.push(m.run_id);
        }
    }
    Ok(())
}

/// The exports whose destinations hold a row of any of the person's ids (`history`): their
/// owners must be told to delete it there.
async fn exports_holding(
    cfg: &ProjectConfig,
    workspace: &Path,
    history: &[String],
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for name in cfg.exports.keys() {
        if let Some(ectx) = crate::exports::confirmed_context(workspace, name).await? {
            let hit = strings(
                &ectx,
                &format!(
                    "SELECT key FROM confirmed WHERE customer_id IN ({}) LIMIT 1",
                    in_list(history)
                ),
            )
            .await?;
            if !hit.is_empty() {
                out.push(name.clone());
            }
        }
    }
    Ok(out)
}

/// Rewrite a log table without the rows of `customers` (its files, one by one, atomically).
/// The person's customer ids: today's, and every id any of their records had in a kept
/// run (a customer merged into theirs had another id before).
async fn id_history(
    workspace: &Path,
    customers: &[String],
    records: &[String],
) -> Result<Vec<String>> {
    let mut ids: std::collections::BTreeSet<String> = customers.iter().cloned().collect();
    if records.is_empty() {
        return Ok(ids.into_iter().collect());
    }
    let ws = crate::workspace::Workspace::new(workspace.to_path_buf());
    let wanted = in_list(records);
    for m in ws.manifests()? {
        let links = ws.run_dir(&m.run_id).join("tables/customer_links.parquet");
        if !links.is_file() {
            continue;
        }
        let ctx = crate::session::new_context();
        ctx.register_parquet(
            "links",
            links.to_string_lossy().as_ref(),
            Default::default(),
        )
        .await?;
        ids.extend(
            strings(
                &ctx,
                &format!(
                    "SELECT DISTINCT customer_id FROM links \
                     WHERE source || ':' || record_id IN ({wanted})"
                ),
            )
            .await?,
        );
    }
    Ok(ids.into_iter().collect())
}

async fn purge_log(
    workspace: &Path,
    table: &str,
    customers: &[String],
    records: &[String],
) -> Result<u64> {
    let dir = crate::state::dir(workspace).join(table);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Ok(0);
    };
    let mut removed = 0;
    for entry in rd.filter_map(|e| e.ok()) {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "parquet") {
            continue;
        }
        // Panorama's own context: plain Utf8 strings, as every other file of the log has.
        let ctx = crate::session::new_context();
        let batches = ctx
            .read_parquet(path.to_string_lossy().as_ref(), Default::default())
            .await?
            .collect()
            .await?;
        let mut kept = Vec::new();
        let mut file_removed = 0;
        for b in &batches {
            let col = crate::output::string_column(b, "customer_id")?;
            // Consent statements and rectifications keep the records they covered.
            let linked = crate::output::string_column(b, "records").ok();
            // consent_statements keep a comma-joined list of the customers they covered.
            let mask: BooleanArray = (0..b.num_rows())
                .map(|i| {
                    let by_id = !col.is_null(i)
                        && col
                            .value(i)
                            .split(',')
                            .any(|c| customers.iter().any(|x| x == c));
                    let by_record = linked.as_ref().is_some_and(|r| {
                        !r.is_null(i)
                            && r.value(i)
                                .split('\u{1f}')
                                .any(|x| records.iter().any(|y| y == x))
                    });
                    Some(!(by_id || by_record))
                })
                .collect();
            let f = arrow::compute::filter_record_batch(b, &mask)?;
            file_removed += (b.num_rows() - f.num_rows()) as u64;
            kept.push(f);
        }
        if file_removed == 0 {
            continue;
        }
        removed += file_removed;
        let schema = batches[0].schema();
        let all = arrow::compute::concat_batches(&schema, &kept)?;
        if all.num_rows() == 0 {
            std::fs::remove_file(&path).map_err(|e| Error::io("cannot delete", &path, e))?;
        } else {
            crate::state::replace(&path, &all)?;
        }
    }
    Ok(removed)
}

/// Drop suppressed people's rows from a run's freshly loaded sources; counts go to the
/// reports. Called before unification, so nothing downstream ever sees them.
pub async fn suppress_sources(
    cfg: &ProjectConfig,
    run_dir: &Path,
    reports: &mut [SourceReport],
) -> Result<u64> {
    let workspace = cfg.workspace_dir();
    let ctx = crate::session::new_context();
    if !crate::state::register(&ctx, &workspace, names::SUPPRESSION_LIST).await? {
        return Ok(0);
    }
    let mut total = 0;
    for r in reports.iter_mut() {
        let Some(cond) = suppressed_condition(cfg, &r.name) else {
            continue;
        };
        let dir = run_dir.join("sources").join(&r.name);
        let file = dir.join("part-0.parquet");
        if !file.exists() {
            continue;
        }
        let table = format!("src_{}", r.name);
        ctx.register_parquet(&table, file.to_string_lossy().as_ref(), Default::default())
            .await?;
        let n = crate::table_io::count(
            &ctx,
            &format!("SELECT count(*) FROM {} s WHERE {cond}", ident(&table)),
            "suppressed rows",
        )
        .await?;
        if n == 0 {
            continue;
        }
        let name = "part-0.suppressed";
        crate::table_io::write_query(
            &ctx,
            &format!("SELECT s.* FROM {} s WHERE NOT ({cond})", ident(&table)),
            &dir,
            name,
        )
        .await?;
        ctx.deregister_table(&table)?;
        let written = dir.join(format!("{name}.parquet"));
        std::fs::rename(&written, &file).map_err(|e| Error::io("cannot replace", &file, e))?;
        r.rows_loaded -= n;
        r.rows_suppressed = n;
        total += n;
        tracing::info!(source = %r.name, rows = n, "suppressed rows of erased people dropped at ingest");
    }
    Ok(total)
}
