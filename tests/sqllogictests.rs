//! Runs `tests/slt/*.slt` with the sqllogictest crate against Panorama's own SessionContext.
//!
//! A file's first line may name the project it runs against:
//! - `# project: none`: a bare context with our UDFs (the default);
//! - `# project: demo`: a small generated demo project after `run`, plus its `truth` table;
//! - `# project: fixtures/NAME`: `tests/fixtures/NAME` copied to a temp dir and run.
//!
//! `cargo test --test sqllogictests -- FILTER` runs only files whose name contains FILTER.

mod common;

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::{CsvReadOptions, SessionContext};
use sqllogictest::{DBOutput, DefaultColumnType};

use panorama::config::ProjectConfig;
use panorama::demo::{generate, DemoOptions};
use panorama::run::{run_project, RunOptions};
use panorama::session::{new_context, open_project};

use common::copy_dir;

struct Db {
    ctx: SessionContext,
}

#[derive(Debug)]
struct DbError(String);
impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for DbError {}

fn column_type(dt: &DataType) -> DefaultColumnType {
    match dt {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => DefaultColumnType::Integer,
        DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(_, _) => {
            DefaultColumnType::FloatingPoint
        }
        _ => DefaultColumnType::Text,
    }
}

fn rows_of(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, DbError> {
    let opts = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for b in batches {
        let fmts = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| DbError(e.to_string()))?;
        for r in 0..b.num_rows() {
            rows.push(
                fmts.iter()
                    .map(|f| {
                        let s = f.value(r).to_string();
                        if s.is_empty() {
                            "(empty)".to_string()
                        } else {
                            s
                        }
                    })
                    .collect(),
            );
        }
    }
    Ok(rows)
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for Db {
    type Error = DbError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        let df = self
            .ctx
            .sql(sql)
            .await
            .map_err(|e| DbError(e.to_string()))?;
        let schema = df.schema().as_arrow().clone();
        let batches = df.collect().await.map_err(|e| DbError(e.to_string()))?;
        let is_statement = schema.fields().is_empty()
            || (schema.fields().len() == 1
                && schema.field(0).name() == "count"
                && sql.trim_start().to_lowercase().starts_with("create"));
        if is_statement {
            return Ok(DBOutput::StatementComplete(0));
        }
        Ok(DBOutput::Rows {
            types: schema
                .fields()
                .iter()
                .map(|f| column_type(f.data_type()))
                .collect(),
            rows: rows_of(&batches)?,
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "panorama"
    }
}

/// Run a project and open its new run.
async fn run_and_open(cfg: &ProjectConfig) -> SessionContext {
    let opts = RunOptions {
        quiet: true,
        ..Default::default()
    };
    run_project(cfg, &opts).await.expect("project runs");
    open_project(cfg, None).await.expect("run opens").0
}

async fn context_for(header: &str, tmp: &Path) -> SessionContext {
    let project = header
        .strip_prefix("# project:")
        .map(|s| s.trim())
        .unwrap_or("none");
    match project {
        "none" => new_context(),
        "demo" => {
            let dir = tmp.join("demo");
            generate(&DemoOptions {
                persons: 400,
                out: dir.clone(),
                seed: 7,
                postgres: None,
                quiet: true,
            })
            .await
            .expect("demo generates");
            let cfg = ProjectConfig::load(&dir).expect("demo config loads");
            let ctx = run_and_open(&cfg).await;
            ctx.register_csv(
                "truth",
                dir.join("truth.csv").to_str().unwrap(),
                CsvReadOptions::new().has_header(true),
            )
            .await
            .expect("truth registers");
            ctx
        }
        fixture => {
            let src = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests")
                .join(fixture);
            let dir = tmp.join("project");
            copy_dir(&src, &dir);
            let cfg = ProjectConfig::load(&dir).expect("fixture config loads");
            run_and_open(&cfg).await
        }
    }
}

async fn run_file(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let header = text.lines().next().unwrap_or_default().to_string();
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let ctx = context_for(&header, tmp.path()).await;
    let mut runner = sqllogictest::Runner::new(move || {
        let ctx = ctx.clone();
        async move { Ok(Db { ctx }) }
    });
    runner
        .run_file_async(path)
        .await
        .map_err(|e| format!("{e}"))
}

fn main() {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/slt exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .filter(|p| {
            filter
                .as_ref()
                .is_none_or(|f| p.to_string_lossy().contains(f.as_str()))
        })
        .collect();
    files.sort();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (mut passed, mut failed) = (0, 0);
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        match runtime.block_on(run_file(f)) {
            Ok(()) => {
                println!("slt {name} ... ok");
                passed += 1;
            }
            Err(e) => {
                println!("slt {name} ... FAILED\n{e}");
                failed += 1;
            }
        }
    }
    println!("\ntest result: {}. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out", if failed == 0 { "ok" } else { "FAILED" });
    if failed > 0 || files.is_empty() {
        std::process::exit(1);
    }
}
