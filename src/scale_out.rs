//! Scale-out on Apache Ballista (`--features ballista`): Panorama's functions on a
//! scheduler, on executors and in a client context that runs SQL on them.
//!
//! Ballista sends plans with functions by name, so every process that decodes a plan must
//! know Panorama's: the scheduler (it decodes the client's logical plans), each executor (it
//! decodes its tasks) and the client. In-memory tables cannot be sent; Parquet tables on paths
//! the executors can read can.

use std::sync::Arc;

use ballista::prelude::{SessionConfigExt, SessionContextExt};
use datafusion::execution::SessionState;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::error::{Error, Result};

/// A session state with DataFusion's and Ballista's functions plus Panorama's, for a
/// scheduler or an executor.
pub fn function_state(config: SessionConfig) -> datafusion::common::Result<SessionState> {
    let ctx =
        SessionContext::new_with_state(ballista_core::utils::default_session_builder(config)?);
    panorama_udfs::register_all(&ctx);
    Ok(ctx.state())
}

/// The function registry an executor decodes its tasks with.
pub fn executor_functions() -> Result<Arc<ballista_core::registry::BallistaFunctionRegistry>> {
    let state = function_state(SessionConfig::new_with_ballista())?;
    Ok(Arc::new((&state).into()))
}

/// A context whose queries run on the Ballista cluster at `url` (`df://host:port`), with
/// Panorama's functions (Ballista replaces the state's own on connecting). With `scratch`,
/// tables a stage would hold in memory are written there as Parquet instead
/// ([`crate::table_io::register_batches`]).
pub async fn remote_context(
    url: &str,
    scratch: Option<std::path::PathBuf>,
) -> Result<SessionContext> {
    // Ballista 55's adaptive planner (its default) re-planned one of unification's queries
    // into new stages without end (60,000 stages in 14 minutes on the shop fixture); the
    // static distributed planner runs it in seconds.
    let mut config = SessionConfig::new_with_ballista()
        .with_ballista_adaptive_query_planner(false)
        .set_bool(
            "datafusion.execution.parquet.schema_force_view_types",
            false,
        )
        .set_bool("datafusion.sql_parser.map_string_types_to_utf8view", false)
        // Ballista turns hash joins off (sort-merge joins spill). DataFusion 55's sort-merge
        // join with a join filter panics ("index out of bounds: the len is 9 but the index is
        // 9" in `get_filter_columns`) on the blocking check's self-join, which filters on
        // `l.uid < r.uid` and the chosen keys; partitioned hash joins, as on one machine,
        // run every query of a run.
        .set_bool("datafusion.optimizer.prefer_hash_join", true);
    if let Some(dir) = scratch {
        config = config.with_extension(Arc::new(crate::table_io::ScratchDir(dir)));
    }
    let state = datafusion::execution::SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .build();
    let ctx = SessionContext::remote_with_state(url, state)
        .await
        .map_err(|e| Error::Network {
            what: format!("cannot reach the Ballista scheduler at {url}"),
            source: Box::new(e),
        })?;
    panorama_udfs::register_all(&ctx);
    Ok(ctx)
}

/// The executors' query-stage engine: Ballista's own, except that tasks report no per-operator
/// metrics. Ballista 55's scheduler rejects a task whose metrics array differs in length from
/// its stage plan's (it does for some stages of unification: the executor's decoded plan has
/// one operator fewer) and then waits for that task forever; metrics are only for display.
pub struct StageEngine(ballista_executor::execution_engine::DefaultExecutionEngine);

impl StageEngine {
    pub fn new() -> Self {
        StageEngine(ballista_executor::execution_engine::DefaultExecutionEngine::new())
    }
}

impl Default for StageEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl ballista_executor::execution_engine::ExecutionEngine for StageEngine {
    fn create_query_stage_exec(
        &self,
        job_id: ballista_core::JobId,
        stage_id: usize,
        task_id: usize,
        global_output_partition_ids: Vec<usize>,
        plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
        work_dir: &str,
        config: &SessionConfig,
    ) -> datafusion::error::Result<Arc<dyn ballista_executor::execution_engine::QueryStageExecutor>>
    {
        let inner = self.0.create_query_stage_exec(
            job_id,
            stage_id,
            task_id,
            global_output_partition_ids,
            plan,
            work_dir,
            config,
        )?;
        Ok(Arc::new(StageWithoutMetrics(inner)))
    }
}

#[derive(Debug)]
struct StageWithoutMetrics(Arc<dyn ballista_executor::execution_engine::QueryStageExecutor>);

impl std::fmt::Display for StageWithoutMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[async_trait::async_trait]
impl ballista_executor::execution_engine::QueryStageExecutor for StageWithoutMetrics {
    async fn execute_query_stage(
        &self,
        task_id: usize,
        context: Arc<datafusion::execution::TaskContext>,
    ) -> datafusion::error::Result<Vec<ballista_core::serde::protobuf::ShuffleWritePartition>> {
        self.0.execute_query_stage(task_id, context).await
    }

    fn collect_plan_metrics(&self) -> Vec<datafusion::physical_plan::metrics::MetricsSet> {
        Vec::new()
    }

    fn collect_runtime_stats_reports(
        &self,
    ) -> Vec<ballista_core::serde::protobuf::RuntimeStatsReport> {
        self.0.collect_runtime_stats_reports()
    }

    fn collect_window_state_reports(
        &self,
    ) -> datafusion::error::Result<Vec<ballista_core::serde::protobuf::WindowStateReport>> {
        self.0.collect_window_state_reports()
    }

    fn collect_column_stats(&self) -> Vec<ballista_core::serde::protobuf::TaskColumnStats> {
        self.0.collect_column_stats()
    }
}
