//! One query cannot take the server down: each runs in its own context with its own memory
//! pool (no spilling), inside the server's pool for all queries, with a deadline, with
//! functions that cannot build a value larger than its memory, and only reads.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::config::ConfigOptions;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{
    GreedyMemoryPool, MemoryLimit, MemoryPool, MemoryReservation,
};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use futures::{Stream, StreamExt};

use super::config::Limits;

/// A context over `base`'s tables and functions whose queries obey `limits`.
pub fn limited_context(base: &SessionContext, limits: &Limits) -> DfResult<SessionContext> {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(QueryPool {
            query: GreedyMemoryPool::new(limits.query_memory),
            server: limits.server_memory.clone(),
        }))
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        )
        .build_arc()?;
    let state = SessionStateBuilder::new_from_existing(base.state())
        .with_runtime_env(runtime)
        .with_physical_optimizer_rule(Arc::new(Deadline {
            timeout: limits.query_timeout,
            turns: limits.turns.clone(),
            max_concurrent: limits.max_concurrent_queries,
            queue_timeout: limits.queue_timeout,
        }))
        .build();
    let ctx = SessionContext::new_with_state(state);
    panorama_udfs::size_cap::cap_result_sizes(&ctx, limits.query_memory, "[serve] query_memory");
    Ok(ctx)
}

/// One query's memory: its own budget (`query_memory`) and, at the same time, a share of the
/// server's (`[serve] memory`), so that many queries together cannot exhaust the machine.
#[derive(Debug)]
struct QueryPool {
    query: GreedyMemoryPool,
    server: Arc<GreedyMemoryPool>,
}

impl fmt::Display for QueryPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "query pool ({} MB, in a server pool of {} MB)",
            pool_mb(&self.query),
            pool_mb(&self.server)
        )
    }
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "panorama_query_pool"
    }
    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.query.grow(reservation, additional);
        self.server.grow(reservation, additional);
    }
    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.query.shrink(reservation, shrink);
        self.server.shrink(reservation, shrink);
    }
    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> DfResult<()> {
        self.query.try_grow(reservation, additional)?;
        if let Err(e) = self.server.try_grow(reservation, additional) {
            self.query.shrink(reservation, additional);
            return Err(DataFusionError::ResourcesExhausted(format!(
                "the server's memory for all queries together ([serve] memory, {} MB) is in use by other queries: {e}",
                pool_mb(&self.server)
            )));
        }
        Ok(())
    }
    fn reserved(&self) -> usize {
        self.query.reserved()
    }
    fn memory_limit(&self) -> MemoryLimit {
        self.query.memory_limit()
    }
}

/// A pool's limit in MB (0 when unbounded).
fn pool_mb(pool: &GreedyMemoryPool) -> usize {
    match pool.memory_limit() {
        MemoryLimit::Finite(b) => b >> 20,
        _ => 0,
    }
}

/// Why a statement may not run on the server, or `None` when it only reads.
pub fn refuse(statement: &Statement) -> Option<String> {
    use Statement as S;
    let allowed = match statement {
        S::Query(_)
        | S::ExplainTable { .. }
        | S::ShowVariable { .. }
        | S::ShowVariables { .. }
        | S::ShowTables { .. }
        | S::ShowColumns { .. }
        | S::ShowFunctions { .. }
        | S::ShowSchemas { .. }
        | S::ShowDatabases { .. }
        | S::ShowStatus { .. }
        | S::Set(_)
        | S::StartTransaction { .. }
        | S::Commit { .. }
        | S::Rollback { .. }
        | S::Declare { .. }
        | S::Fetch { .. }
        | S::Close { .. }
        | S::Discard { .. }
        | S::Deallocate { .. }
        | S::Savepoint { .. }
        | S::ReleaseSavepoint { .. }
        | S::Reset(_) => true,
        S::Explain { statement, .. } => return refuse(statement),
        S::Prepare { statement, .. } => return refuse(statement),
        _ => false,
    };
    if allowed {
        return None;
    }
    Some(not_allowed(&statement.to_string()))
}

/// [`refuse`] for a statement read by DataFusion's parser (HTTP, Flight SQL), which reads
/// `EXPLAIN` (with or without `ANALYZE`) and a few statements of its own itself: an EXPLAIN is
/// judged by the statement it explains, on every protocol alike. `EXPLAIN ANALYZE` runs that
/// statement, so it is a query like any other — the same deadline, memory and turn.
pub fn refuse_parsed(statement: &datafusion::sql::parser::Statement) -> Option<String> {
    use datafusion::sql::parser::Statement as D;
    match statement {
        D::Statement(s) => refuse(s),
        D::Explain(e) => refuse_parsed(&e.statement),
        D::Reset(_) => None,
        D::CreateExternalTable(_) | D::CopyTo(_) => Some(not_allowed(&statement.to_string())),
    }
}

/// The refusal of a statement that writes, naming its first two words.
fn not_allowed(text: &str) -> String {
    let verb: String = text
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase();
    format!(
        "panorama serve is read-only: {verb} is not allowed (only SELECT, WITH, EXPLAIN, SHOW and SET); \
         change data with `panorama run` and the project's config"
    )
}

/// DataFusion's own check of a planned statement: no DDL, no DML (which covers COPY TO).
pub fn read_only_options() -> datafusion::execution::context::SQLOptions {
    datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(true)
}

/// Wraps the root of every physical plan in a [`DeadlineExec`]; a heavy plan also waits for
/// its turn.
#[derive(Debug)]
struct Deadline {
    timeout: Duration,
    turns: Arc<tokio::sync::Semaphore>,
    max_concurrent: usize,
    queue_timeout: Duration,
}

/// A query that reads at most this many rows is light: it does not wait for a turn. Lookups,
/// catalog queries of BI tools and the console's small tables read a few thousand rows and
/// answer in milliseconds; a heavy query behind them would hold its core for seconds.
pub const LIGHT_ROWS: usize = 100_000;

/// Rows a plan reads from its leaves, when every leaf knows (Parquet statistics, in-memory
/// tables); `None` when one does not (`generate_series`, a file without statistics).
fn rows_read(plan: &Arc<dyn ExecutionPlan>) -> Option<usize> {
    let children = plan.children();
    if children.is_empty() {
        let stats = datafusion::physical_plan::StatisticsContext::new()
            .compute(
                plan.as_ref(),
                &datafusion::physical_plan::StatisticsArgs::new(),
            )
            .ok()?;
        return stats.num_rows.get_value().copied();
    }
    children
        .into_iter()
        .map(rows_read)
        .try_fold(0usize, |a, n| n.map(|n| a.saturating_add(n)))
}

impl PhysicalOptimizerRule for Deadline {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let admission = match rows_read(&plan) {
            Some(n) if n <= LIGHT_ROWS => None,
            _ => Some(Arc::new(Admission {
                turns: self.turns.clone(),
                max_concurrent: self.max_concurrent,
                wait: self.queue_timeout,
                permit: tokio::sync::OnceCell::new(),
            })),
        };
        Ok(Arc::new(DeadlineExec::new(plan, self.timeout, admission)))
    }
    fn name(&self) -> &str {
        "panorama_deadline"
    }
    fn schema_check(&self) -> bool {
        true
    }
}

/// One heavy query's turn: taken by its first partition to run, shared by the others, given
/// back when the plan and its streams are dropped.
#[derive(Debug)]
struct Admission {
    turns: Arc<tokio::sync::Semaphore>,
    max_concurrent: usize,
    wait: Duration,
    permit: tokio::sync::OnceCell<tokio::sync::OwnedSemaphorePermit>,
}

impl Admission {
    async fn enter(&self) -> DfResult<()> {
        self.permit
            .get_or_try_init(|| async {
                match tokio::time::timeout(self.wait, self.turns.clone().acquire_owned()).await {
                    Ok(Ok(permit)) => Ok(permit),
                    Ok(Err(_)) => Err(DataFusionError::Execution("the server is stopping".into())),
                    Err(_) => Err(DataFusionError::ResourcesExhausted(format!(
                        "server busy: {} heavy queries are running ([serve] max_concurrent_queries) and this one waited {:?} for its turn ([serve] query_queue_timeout); try again",
                        self.max_concurrent, self.wait
                    ))),
                }
            })
            .await
            .map(|_| ())
    }
}

/// Ends its input with an error once the query has run for `timeout`; dropping the input
/// stops the work under it. A heavy query first waits for its turn (`admission`).
#[derive(Debug)]
pub struct DeadlineExec {
    input: Arc<dyn ExecutionPlan>,
    timeout: Duration,
    started: Arc<OnceLock<Instant>>,
    admission: Option<Arc<Admission>>,
}

impl DeadlineExec {
    fn new(
        input: Arc<dyn ExecutionPlan>,
        timeout: Duration,
        admission: Option<Arc<Admission>>,
    ) -> Self {
        DeadlineExec {
            input,
            timeout,
            started: Arc::new(OnceLock::new()),
            admission,
        }
    }
}

impl DisplayAs for DeadlineExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "DeadlineExec: timeout={:?}", self.timeout)
    }
}

impl ExecutionPlan for DeadlineExec {
    fn name(&self) -> &str {
        "DeadlineExec"
    }
    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }
    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_plan::PhysicalExpr>,
        ) -> DfResult<datafusion::common::tree_node::TreeNodeRecursion>,
    ) -> DfResult<datafusion::common::tree_node::TreeNodeRecursion> {
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    }
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }
    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(DeadlineExec {
            input: children.swap_remove(0),
            timeout: self.timeout,
            started: self.started.clone(),
            admission: self.admission.clone(),
        }))
    }
    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let started = *self.started.get_or_init(Instant::now);
        let deadline = tokio::time::Instant::from_std(started + self.timeout);
        let (input, admission) = (self.input.clone(), self.admission.clone());
        // Every query runs on the query runtime (its own threads, at a lower priority) and
        // sends its batches back; a heavy one first waits for its turn — some operators begin
        // work when executed. Lookups, health and logins keep their CPU: in the serving soak
        // (100k demo, benches/README.md) the lookup p99 was 63 ms with queries on the same
        // threads, 10.7–12.6 ms with only heavy queries moved (a 92k-row group-by counted as
        // light and ran beside the lookups) and 5.1–5.5 ms with every query moved; a query
        // on an idle server still uses every core.
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let task = query_runtime().spawn(async move {
            let started = match admission {
                Some(a) => match a.enter().await {
                    Ok(()) => input.execute(partition, context),
                    Err(e) => Err(e),
                },
                None => input.execute(partition, context),
            };
            let mut stream = match started {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            while let Some(batch) = stream.next().await {
                // The reader is gone (cancelled, timed out, client left): stop.
                if tx.send(batch).await.is_err() {
                    return;
                }
            }
        });
        let state = Run::Forwarded {
            batches: rx,
            _task: AbortOnDrop(task),
        };
        Ok(Box::pin(DeadlineStream {
            schema: self.input.schema(),
            state,
            _turn: self.admission.clone(),
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            timeout: self.timeout,
        }))
    }
}

/// A query's batches, computed on the query threads.
enum Run {
    Forwarded {
        batches: tokio::sync::mpsc::Receiver<DfResult<RecordBatch>>,
        _task: AbortOnDrop,
    },
    Done,
}

/// Stops a query's task when its stream is dropped, at once rather than at its next
/// batch.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Nice value of the query threads ([`crate::background_priority`]).
pub const QUERY_NICE: i32 = 10;

/// Name of the query runtime's threads (seen in `top -H`, `/proc/PID/task/*/comm`).
pub const QUERY_THREAD: &str = "panorama-query";

/// The runtime SQL queries, and PostgreSQL connections, run on: one thread per core at
/// [`QUERY_NICE`]. Made on first use and kept for the life of the process (a runtime cannot
/// be dropped from inside another).
pub fn query_runtime() -> &'static tokio::runtime::Runtime {
    static QUERIES: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    QUERIES.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(QUERY_THREAD)
            .on_thread_start(|| {
                crate::background_priority::lower_this_thread(QUERY_NICE);
            })
            .enable_all()
            .build()
            .expect("cannot start the query threads")
    })
}

struct DeadlineStream {
    schema: SchemaRef,
    state: Run,
    /// Holds the query's turn for as long as a stream of it lives (the plan may be dropped
    /// once executed).
    _turn: Option<Arc<Admission>>,
    sleep: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
}

impl Stream for DeadlineStream {
    type Item = DfResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if matches!(self.state, Run::Done) {
            return Poll::Ready(None);
        }
        if std::future::Future::poll(self.sleep.as_mut(), cx).is_ready() {
            self.state = Run::Done;
            return Poll::Ready(Some(Err(DataFusionError::ResourcesExhausted(format!(
                "query cancelled: it ran longer than the server's limit of {:?} ([serve] query_timeout)",
                self.timeout
            )))));
        }
        match &mut self.state {
            Run::Forwarded { batches, .. } => batches.poll_recv(cx),
            Run::Done => Poll::Ready(None),
        }
    }
}

impl RecordBatchStream for DeadlineStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn check(sql: &str) -> Option<String> {
        let stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        refuse(&stmts[0])
    }

    #[test]
    fn only_reads_pass() {
        assert!(check("SELECT 1").is_none());
        assert!(check("WITH a AS (SELECT 1) SELECT * FROM a").is_none());
        assert!(check("EXPLAIN SELECT 1").is_none());
        assert!(check("SET extra_float_digits = 3").is_none());
        for bad in [
            "INSERT INTO t VALUES (1)",
            "CREATE TABLE t (a int)",
            "DROP TABLE customers",
            "COPY customers TO '/tmp/x.csv'",
            "DELETE FROM t",
            "EXPLAIN ANALYZE INSERT INTO t VALUES (1)",
        ] {
            let msg = check(bad).unwrap_or_else(|| panic!("{bad} passed"));
            assert!(msg.contains("read-only"), "{msg}");
        }
    }

    /// HTTP and Flight SQL read statements with DataFusion's parser, which reads EXPLAIN
    /// itself: they refused every EXPLAIN while PostgreSQL clients could run them.
    #[test]
    fn explain_is_judged_alike_by_both_parsers() {
        let df = |sql: &str| {
            let parsed = datafusion::sql::parser::DFParser::parse_sql(sql).unwrap();
            refuse_parsed(&parsed[0])
        };
        for sql in [
            "SELECT 1",
            "EXPLAIN SELECT 1",
            "EXPLAIN ANALYZE SELECT 1",
            "EXPLAIN ANALYZE VERBOSE SELECT 1",
        ] {
            assert_eq!(df(sql), None, "{sql}");
            assert_eq!(check(sql), None, "{sql}");
        }
        for sql in [
            "EXPLAIN ANALYZE INSERT INTO t VALUES (1)",
            "EXPLAIN INSERT INTO t VALUES (1)",
        ] {
            let refused = df(sql).unwrap_or_else(|| panic!("{sql} passed"));
            assert_eq!(Some(refused.clone()), check(sql), "{sql}");
            assert!(refused.contains("INSERT INTO is not allowed"), "{refused}");
        }
        for sql in [
            "COPY customers TO '/tmp/x.csv'",
            "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
            "EXPLAIN ANALYZE COPY customers TO '/tmp/x.csv'",
        ] {
            let refused = df(sql).unwrap_or_else(|| panic!("{sql} passed"));
            assert!(refused.contains("read-only"), "{refused}");
        }
    }

    #[test]
    fn queries_share_the_servers_memory() {
        use datafusion::execution::memory_pool::MemoryConsumer;
        let limits = Limits::new(Duration::from_secs(1), 64 << 20, 10, 80 << 20);
        let pool = |l: &Limits| -> Arc<dyn MemoryPool> {
            Arc::new(QueryPool {
                query: GreedyMemoryPool::new(l.query_memory),
                server: l.server_memory.clone(),
            })
        };
        let (a, b) = (pool(&limits), pool(&limits));
        let ra = MemoryConsumer::new("a").register(&a);
        let rb = MemoryConsumer::new("b").register(&b);
        ra.try_grow(50 << 20).unwrap();
        // Within b's own 64 MB, but the server has 30 MB left.
        let err = rb.try_grow(50 << 20).unwrap_err().to_string();
        assert!(err.contains("[serve] memory, 80 MB"), "{err}");
        assert_eq!(b.reserved(), 0, "a refused grow is given back");
        rb.try_grow(30 << 20).unwrap();
        // Over a's own budget whatever the server has.
        ra.shrink(50 << 20);
        assert!(ra.try_grow(65 << 20).is_err());
        ra.try_grow(40 << 20).unwrap();
        drop(rb);
        assert_eq!(limits.server_memory.reserved(), 40 << 20);
    }

    #[tokio::test]
    async fn a_query_past_its_deadline_fails_and_memory_is_capped() {
        let base = crate::session::base_context();
        let limits = Limits::new(Duration::from_millis(200), 64 << 20, 10, 1 << 30);
        let ctx = limited_context(&base, &limits).unwrap();
        let slow = "SELECT count(*) FROM generate_series(1, 2000000000)";
        let err = ctx.sql(slow).await.unwrap().collect().await.unwrap_err();
        assert!(err.to_string().contains("query_timeout"), "{err}");
        let big = "SELECT v % 50000000 AS k, array_agg(v) FROM generate_series(1, 40000000) t(v) GROUP BY 1";
        let limits = Limits {
            query_timeout: Duration::from_secs(600),
            ..limits
        };
        let ctx = limited_context(&base, &limits).unwrap();
        let err = ctx.sql(big).await.unwrap().collect().await.unwrap_err();
        assert!(err.to_string().contains("Resources exhausted"), "{err}");
        let ok = ctx
            .sql("SELECT 40 + 2 AS x")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(ok[0].num_rows(), 1);
    }
}
