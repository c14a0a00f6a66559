//! `panorama` for Python: a project's tables in a notebook, without a server — the same library
//! the CLI runs. Query results cross to pyarrow through the Arrow C stream interface (the
//! `__arrow_c_stream__` PyCapsule protocol), so columns are handed over, not copied.
//!
//! ```python
//! import panorama
//! p = panorama.open("my-cdp")              # the project's current run
//! p.sql("SELECT * FROM unified_customers LIMIT 5").to_pandas()
//! p.tables(); p.explain("crm:C1", "shop:17"); p.run(); p.refresh()
//! ```

use std::ffi::CString;
use std::path::PathBuf;
use std::sync::Mutex;

use datafusion::arrow::array::{RecordBatch, RecordBatchIterator, RecordBatchReader};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ffi_stream::FFI_ArrowArrayStream;
use datafusion::prelude::SessionContext;
use panorama::config::ProjectConfig;
use panorama::session::{open_project, OpenedRun};
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyDict};

pyo3::create_exception!(
    _panorama,
    PanoramaError,
    PyException,
    "An error from Panorama: a bad config, a failed run, SQL that does not plan."
);

fn py_err(e: impl std::fmt::Display) -> PyErr {
    PanoramaError::new_err(e.to_string())
}

/// One query result, handed to pyarrow once through `__arrow_c_stream__`.
#[pyclass(module = "panorama._panorama")]
struct ArrowStream {
    schema: SchemaRef,
    batches: Mutex<Option<Vec<RecordBatch>>>,
}

#[pymethods]
impl ArrowStream {
    /// The Arrow PyCapsule stream protocol: pyarrow (`pyarrow.table(obj)`), polars and
    /// DuckDB take the result without copying it.
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        let batches = self
            .batches
            .lock()
            .map_err(py_err)?
            .take()
            .ok_or_else(|| py_err("this result was already consumed"))?;
        let reader: Box<dyn RecordBatchReader + Send> = Box::new(RecordBatchIterator::new(
            batches.into_iter().map(Ok),
            self.schema.clone(),
        ));
        let stream = FFI_ArrowArrayStream::new(reader);
        let name = CString::new("arrow_array_stream").expect("no NUL");
        PyCapsule::new(py, stream, Some(name))
    }
}

/// `pyarrow.table(stream)`: pyarrow takes the batches through the C stream interface.
fn to_pyarrow<'py>(py: Python<'py>, stream: ArrowStream) -> PyResult<Bound<'py, PyAny>> {
    let stream = Bound::new(py, stream)?;
    py.import("pyarrow")?.call_method1("table", (stream,))
}

/// A project opened at its current run (or a given one). Tables are read from the run's
/// Parquet files as queries need them.
#[pyclass(module = "panorama._panorama")]
struct Project {
    root: PathBuf,
    run: Option<String>,
    runtime: tokio::runtime::Runtime,
    opened: Option<(SessionContext, OpenedRun)>,
}

impl Project {
    fn config(&self) -> PyResult<ProjectConfig> {
        ProjectConfig::load(&self.root).map_err(py_err)
    }

    fn context(&mut self) -> PyResult<&(SessionContext, OpenedRun)> {
        if self.opened.is_none() {
            let cfg = self.config()?;
            let opened = self
                .runtime
                .block_on(open_project(&cfg, self.run.as_deref()))
                .map_err(py_err)?;
            self.opened = Some(opened);
        }
        Ok(self.opened.as_ref().expect("set above"))
    }

    fn collect(&mut self, py: Python<'_>, sql: &str) -> PyResult<ArrowStream> {
        let ctx = self.context()?.0.clone();
        let runtime = &self.runtime;
        let (schema, batches) = py
            .detach(|| runtime.block_on(panorama::session::user_query(&ctx, sql)))
            .map_err(py_err)?;
        Ok(ArrowStream {
            schema,
            batches: Mutex::new(Some(batches)),
        })
    }
}

#[pymethods]
impl Project {
    /// The project directory.
    #[getter]
    fn path(&self) -> String {
        self.root.display().to_string()
    }

    /// The run the tables come from.
    #[getter]
    fn run_id(&mut self) -> PyResult<String> {
        Ok(self.context()?.1.run_id.clone())
    }

    /// The run's table names.
    fn tables(&mut self) -> PyResult<Vec<String>> {
        Ok(self.context()?.1.tables.clone())
    }

    /// One SQL statement against the run, as a `pyarrow.Table`.
    fn sql<'py>(&mut self, py: Python<'py>, query: &str) -> PyResult<Bound<'py, PyAny>> {
        let stream = self.collect(py, query)?;
        to_pyarrow(py, stream)
    }

    /// Why two records (`source:id`) match or not: every comparison with its level and
    /// weight (probabilistic) or every rule's condition (rules), as a `pyarrow.Table`.
    fn explain<'py>(
        &mut self,
        py: Python<'py>,
        left: &str,
        right: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let cfg = self.config()?;
        let (ctx, opened) = self.context()?;
        opened.require_unified("unify_records").map_err(py_err)?;
        let ctx = ctx.clone();
        let runtime = &self.runtime;
        let batch = py
            .detach(|| {
                runtime.block_on(panorama::unify::explain::explain_pair(
                    &ctx, &cfg, left, right,
                ))
            })
            .map_err(py_err)?;
        let stream = ArrowStream {
            schema: batch.schema(),
            batches: Mutex::new(Some(vec![batch])),
        };
        to_pyarrow(py, stream)
    }

    /// Run the project (load, unify, measures, segments, ...) as `panorama run` does, then
    /// show the new run. `full`: even when nothing changed; `progress`: bars on stderr.
    /// Returns the run's summary.
    #[pyo3(signature = (full=false, progress=true))]
    fn run<'py>(
        &mut self,
        py: Python<'py>,
        full: bool,
        progress: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let cfg = self.config()?;
        let opts = panorama::run::RunOptions {
            quiet: !progress,
            full,
            ..Default::default()
        };
        let runtime = &self.runtime;
        let outcome = py
            .detach(|| runtime.block_on(panorama::run::run_project(&cfg, &opts)))
            .map_err(py_err)?;
        self.run = None;
        self.opened = None;
        let summary = PyDict::new(py);
        let m = &outcome.manifest;
        summary.set_item("run_id", &m.run_id)?;
        summary.set_item("seconds", outcome.seconds)?;
        let sources = PyDict::new(py);
        for s in &m.sources {
            sources.set_item(&s.name, s.rows_loaded)?;
        }
        summary.set_item("rows_loaded", sources)?;
        if let Some(u) = &m.unify {
            summary.set_item("records", u.records)?;
            summary.set_item("customers", u.customers)?;
        }
        Ok(summary)
    }

    /// Show the project's current run again (after a run made elsewhere, e.g. by the CLI).
    fn refresh(&mut self) -> PyResult<()> {
        self.opened = None;
        self.context()?;
        Ok(())
    }

    fn __repr__(&mut self) -> String {
        let root = self.root.display().to_string();
        match self.context() {
            Ok((_, opened)) => format!(
                "<panorama.Project {root} run {} ({} tables)>",
                opened.run_id,
                opened.tables.len()
            ),
            Err(_) => format!("<panorama.Project {root} (no run yet)>"),
        }
    }
}

/// Open the project in `path` at its current run, or at `run` (a run id).
#[pyfunction]
#[pyo3(signature = (path, run=None))]
fn open(path: PathBuf, run: Option<String>) -> PyResult<Project> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(py_err)?;
    let project = Project {
        root: path,
        run,
        runtime,
        opened: None,
    };
    // Fail now on a directory without a config, not at the first query.
    project.config()?;
    Ok(project)
}

#[pymodule]
fn _panorama(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(open, m)?)?;
    m.add_class::<Project>()?;
    m.add_class::<ArrowStream>()?;
    m.add("PanoramaError", m.py().get_type::<PanoramaError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
