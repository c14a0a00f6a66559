//! Looking into unification: `unify plan`, `eval`, `explain`.

use std::path::PathBuf;

use panorama::error::{Error, Result};

use super::Globals;
use panorama::table_catalog::names;

/// Writing the output to the terminal (or a closed pipe) failed.
fn output_failed(e: std::io::Error) -> Error {
    Error::Terminal {
        what: "cannot write the output",
        message: e.to_string(),
    }
}
use panorama::output::{write_batches, OutputFormat};
use panorama::session::open_project;

/// `panorama unify plan`: blocking, coverage and evidence, without a run.
pub async fn plan(g: &Globals) -> Result<()> {
    let cfg = g.config()?;
    let plan = panorama::unify::plan::plan(&cfg).await?;
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for line in &plan.summary {
        writeln!(out, "{line}").map_err(output_failed)?;
    }
    for (title, table) in &plan.tables {
        writeln!(out, "\n{title}").map_err(output_failed)?;
        write_batches(std::slice::from_ref(table), OutputFormat::Table, &mut out)?;
    }
    Ok(())
}

/// `panorama unify report`: estimated quality of the current run's unification.
pub async fn report(
    g: &Globals,
    sample_pairs: usize,
    examples: usize,
    format: OutputFormat,
) -> Result<()> {
    let cfg = g.config()?;
    let (ctx, opened) = open_project(&cfg, None).await?;
    opened.require_unified(names::CUSTOMER_LINKS)?;
    let options = panorama::unify::report::ReportOptions {
        sample_pairs,
        examples,
    };
    let report = panorama::unify::report::report(&ctx, &cfg, &options).await?;
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let io = output_failed;
    if format == OutputFormat::Json {
        let mut tables = serde_json::Map::new();
        for (title, table) in &report.tables {
            tables.insert(
                title.clone(),
                serde_json::Value::Array(
                    panorama::output::batch_objects(table)
                        .into_iter()
                        .map(serde_json::Value::Object)
                        .collect(),
                ),
            );
        }
        let doc = serde_json::json!({
            "run": opened.run_id,
            "estimates": report.estimates,
            "summary": report.summary,
            "tables": tables,
        });
        return writeln!(out, "{}", serde_json::to_string_pretty(&doc)?).map_err(io);
    }
    writeln!(out, "Run {}", opened.run_id).map_err(io)?;
    for line in &report.summary {
        writeln!(out, "{line}").map_err(io)?;
    }
    for (title, table) in &report.tables {
        writeln!(out, "\n{title}").map_err(io)?;
        write_batches(std::slice::from_ref(table), OutputFormat::Table, &mut out)?;
    }
    Ok(())
}

/// `panorama eval`: pairwise precision, recall and F1 against a truth file; with
/// `breakdown = Some(top)` also the `top` patterns of missed and falsely linked pairs.
pub async fn eval(
    g: &Globals,
    truth: PathBuf,
    breakdown: Option<usize>,
    format: OutputFormat,
) -> Result<()> {
    let cfg = g.config()?;
    let (ctx, opened) = open_project(&cfg, None).await?;
    opened.require_unified(names::CUSTOMER_LINKS)?;
    panorama::unify::register_truth(&ctx, &truth).await?;
    let batches = ctx.sql(panorama::unify::EVAL_SQL).await?.collect().await?;
    write_batches(&batches, format, &mut std::io::stdout().lock())?;
    let Some(top) = breakdown else {
        return Ok(());
    };
    let patterns = panorama::unify::evaluation::breakdown(&ctx, &cfg, top).await?;
    if format == OutputFormat::Table {
        println!("\nWrong pairs by the fields they share ('=' equal, 'x' different, '.' missing on a side):");
    }
    write_batches(&patterns, format, &mut std::io::stdout().lock())
}

/// `panorama explain LEFT RIGHT`: why two records match or not, and their customers.
pub async fn explain(g: &Globals, left: String, right: String) -> Result<()> {
    let cfg = g.config()?;
    let (ctx, opened) = open_project(&cfg, None).await?;
    opened.require_unified(names::UNIFY_RECORDS)?;
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
