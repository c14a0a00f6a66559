//! Delta Lake tables, read through `delta_kernel`: the kernel replays the transaction log,
//! applies deletion vectors and partition values, and hands back Arrow batches of the latest
//! snapshot.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use delta_kernel::engine::arrow_conversion::TryFromKernel;
use delta_kernel::engine::arrow_data::ArrowEngineData;
use delta_kernel::Snapshot;
use delta_kernel_default_engine::DefaultEngine;
use url::Url;

use super::location::{is_url, object_store_for};
use super::RawChunk;
use crate::error::{Error, Result};

/// Read the latest snapshot of the table at `location`. Blocking: call from a blocking task.
pub fn read_delta(
    source: &str,
    location: &str,
    root: &std::path::Path,
    emit: &mut dyn FnMut(RawChunk) -> Result<()>,
) -> Result<(SchemaRef, u64)> {
    let err = |m: String| Error::source(source, location, m);
    let url = if is_url(location) {
        let mut u = Url::parse(location).map_err(|e| err(format!("bad URL: {e}")))?;
        if !u.path().ends_with('/') {
            u.set_path(&format!("{}/", u.path()));
        }
        u
    } else {
        let p = if std::path::Path::new(location).is_absolute() {
            std::path::PathBuf::from(location)
        } else {
            root.join(location)
        };
        if !p.join("_delta_log").is_dir() {
            return Err(err(format!(
                "{} is not a Delta table (no _delta_log directory)",
                p.display()
            )));
        }
        let p = p
            .canonicalize()
            .map_err(|e| err(format!("cannot open {}: {e}", p.display())))?;
        Url::from_directory_path(&p).map_err(|_| err(format!("bad path {}", p.display())))?
    };
    let store = object_store_for(&url).map_err(|e| err(e.0))?;
    let engine = Arc::new(DefaultEngine::builder(store).build());
    let snapshot = Snapshot::builder_for(url.as_str())
        .build(engine.as_ref())
        .map_err(|e| err(format!("cannot read the Delta log: {e}")))?;
    let version = snapshot.version();
    let scan = snapshot
        .scan_builder()
        .build()
        .map_err(|e| err(format!("cannot plan a scan: {e}")))?;
    let schema: SchemaRef = Arc::new(
        Schema::try_from_kernel(scan.logical_schema().as_ref())
            .map_err(|e| err(format!("unsupported schema: {e}")))?,
    );
    let display: Arc<str> = Arc::from(format!("{url} (version {version})"));
    let batches = scan
        .execute(engine.clone())
        .map_err(|e| err(format!("cannot scan: {e}")))?
        .map(|data| {
            let data = data.map_err(|e| err(format!("cannot read data: {e}")))?;
            let batch: RecordBatch = ArrowEngineData::try_from_engine_data(data)
                .map_err(|e| err(e.to_string()))?
                .into();
            // The kernel's batches carry its own field metadata; present the logical schema.
            Ok(match batch.clone().with_schema(schema.clone()) {
                Ok(b) => b,
                Err(_) => batch,
            })
        });
    super::emit_numbered(display, &schema, batches, emit)?;
    Ok((schema, version))
}
