//! What Panorama keeps between runs that no run owns: logs of exports and privacy actions,
//! consent statements, the suppression list, journey state, each export's confirmed rows,
//! every run's source profiles and data quality checks.
//!
//! ```text
//! .panorama/state/
//!   export_log/<stamp>.parquet        one file per append: appends never rewrite history
//!   audit_log/<stamp>.parquet
//!   exports/<name>/confirmed.parquet  replaced atomically
//! ```
//!
//! Runs are pruned; state is not, so an export's watermark or an erasure outlives any run.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::error::{Error, Result};

pub use crate::table_catalog::LOG_TABLES;

/// The state directory of a workspace.
pub fn dir(workspace: &Path) -> PathBuf {
    workspace.join("state")
}

/// Append `batch` to the log table `table`: a new Parquet file, written via a temporary name
/// and renamed, so a reader sees all of an append or none of it.
pub fn append(workspace: &Path, table: &str, batch: &RecordBatch) -> Result<PathBuf> {
    let dir = dir(workspace).join(table);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%6fZ");
    let suffix: u32 = rand::random();
    let path = dir.join(format!("{stamp}-{suffix:08x}.parquet"));
    replace(&path, batch)?;
    Ok(path)
}

/// Write `batch` to `path` atomically (temporary file, then rename).
pub fn replace(path: &Path, batch: &RecordBatch) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io("cannot create", parent, e))?;
    let tmp = parent.join(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    crate::workspace::write_parquet(&tmp, batch.schema(), std::slice::from_ref(batch))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("cannot replace", path, e))
}

/// Every row of a log table, or `None` when nothing was ever appended.
pub async fn read(workspace: &Path, table: &str) -> Result<Option<Vec<RecordBatch>>> {
    let ctx = crate::run_context::new_context();
    if !register(&ctx, workspace, table).await? {
        return Ok(None);
    }
    Ok(Some(ctx.table(table).await?.collect().await?))
}

/// Register the log table `table` in `ctx` if anything was appended to it.
pub async fn register(ctx: &SessionContext, workspace: &Path, table: &str) -> Result<bool> {
    let dir = dir(workspace).join(table);
    let has_files = std::fs::read_dir(&dir).is_ok_and(|rd| {
        rd.filter_map(|e| e.ok())
            .any(|e| e.path().extension().is_some_and(|x| x == "parquet"))
    });
    if !has_files {
        return Ok(false);
    }
    let path = format!("{}/", dir.to_string_lossy());
    ctx.register_parquet(table, &path, ParquetReadOptions::default())
        .await?;
    Ok(true)
}

/// Register every log table that has rows; returns their names.
pub async fn register_all(ctx: &SessionContext, workspace: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for t in LOG_TABLES {
        if register(ctx, workspace, t).await? {
            names.push(t.to_string());
        }
    }
    Ok(names)
}

/// The columns of a log table made from rows of `T`, one function per column: how the
/// quality step writes its profiles and expectation results.
pub struct Columns<'a, T>(pub &'a [T]);

impl<T> Columns<'_, T> {
    pub fn text(&self, f: impl Fn(&T) -> Option<String>) -> arrow::array::ArrayRef {
        Arc::new(self.0.iter().map(f).collect::<arrow::array::StringArray>())
    }

    pub fn count(&self, f: impl Fn(&T) -> Option<u64>) -> arrow::array::ArrayRef {
        Arc::new(self.0.iter().map(f).collect::<arrow::array::UInt64Array>())
    }

    pub fn share(&self, f: impl Fn(&T) -> Option<f64>) -> arrow::array::ArrayRef {
        Arc::new(self.0.iter().map(f).collect::<arrow::array::Float64Array>())
    }

    pub fn flag(&self, f: impl Fn(&T) -> Option<bool>) -> arrow::array::ArrayRef {
        Arc::new(self.0.iter().map(f).collect::<arrow::array::BooleanArray>())
    }

    /// The same text in every row (the run id).
    pub fn constant(&self, text: &str) -> arrow::array::ArrayRef {
        self.text(|_| Some(text.to_string()))
    }

    /// The same time in every row, as a UTC timestamp in microseconds.
    pub fn stamp(&self, at: chrono::NaiveDateTime) -> arrow::array::ArrayRef {
        Arc::new(arrow::array::TimestampMicrosecondArray::from(vec![
            at.and_utc().timestamp_micros();
            self.0.len()
        ]))
    }
}

/// A one-batch table from columns, for appends.
pub fn batch(columns: Vec<(&str, arrow::array::ArrayRef)>) -> Result<RecordBatch> {
    let fields: Vec<arrow::datatypes::Field> = columns
        .iter()
        .map(|(n, a)| arrow::datatypes::Field::new(*n, a.data_type().clone(), true))
        .collect();
    let schema = Arc::new(arrow::datatypes::Schema::new(fields));
    Ok(RecordBatch::try_new(
        schema,
        columns.into_iter().map(|(_, a)| a).collect(),
    )?)
}
