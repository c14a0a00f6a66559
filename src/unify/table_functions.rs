//! Unification as SQL table functions:
//!
//! - `connected_components('edges')`: the clusters of a table whose first two columns are
//!   linked node ids, as `(node, component, component_size)`; `component` is the smallest
//!   node id of the cluster. What SQL cannot express well (union-find) lives here.
//! - `explain_pair('source:id', 'source:id')`: why two records were (not) matched, the same
//!   table `panorama explain` prints.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{plan_err, DataFusionError, ScalarValue};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::execution::SessionState;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use futures::future::BoxFuture;

use super::clusters::UnionFind;
use crate::config::ProjectConfig;
use crate::table_catalog::names;

pub(crate) type Compute =
    dyn Fn(SessionContext) -> BoxFuture<'static, crate::error::Result<RecordBatch>> + Send + Sync;

/// A table computed when scanned, in the scanning session (so it sees the session's tables).
pub(crate) struct ComputedTable {
    pub(crate) schema: SchemaRef,
    pub(crate) compute: Box<Compute>,
}

impl fmt::Debug for ComputedTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComputedTable")
            .field("schema", &self.schema)
            .finish()
    }
}

#[async_trait]
impl TableProvider for ComputedTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        let state = state
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| DataFusionError::Plan("table function needs a SessionState".into()))?;
        let ctx = SessionContext::new_with_state(state.clone());
        let batch = (self.compute)(ctx)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}

/// The string literal arguments of a table function call.
pub(crate) fn string_args(
    name: &str,
    args: &[Expr],
    n: usize,
    example: &str,
) -> datafusion::common::Result<Vec<String>> {
    let values: Vec<Option<String>> = args
        .iter()
        .map(|e| match e {
            Expr::Literal(ScalarValue::Utf8(Some(s)), _)
            | Expr::Literal(ScalarValue::Utf8View(Some(s)), _)
            | Expr::Literal(ScalarValue::LargeUtf8(Some(s)), _) => Some(s.clone()),
            _ => None,
        })
        .collect();
    if values.len() != n || values.iter().any(|v| v.is_none()) {
        return plan_err!("{name} takes {n} string literal argument(s), e.g. {name}({example})");
    }
    Ok(values.into_iter().flatten().collect())
}

/// `connected_components('table')`.
#[derive(Debug)]
pub struct ConnectedComponents;

impl TableFunctionImpl for ConnectedComponents {
    fn call_with_args(
        &self,
        args: TableFunctionArgs,
    ) -> datafusion::common::Result<Arc<dyn TableProvider>> {
        let table =
            string_args("connected_components", args.exprs(), 1, "'match_pairs'")?.remove(0);
        let schema = Arc::new(Schema::new(vec![
            Field::new("node", DataType::Utf8, false),
            Field::new("component", DataType::Utf8, false),
            Field::new("component_size", DataType::UInt64, false),
        ]));
        let out = schema.clone();
        Ok(Arc::new(ComputedTable {
            schema,
            compute: Box::new(move |ctx| {
                let table = table.clone();
                let out = out.clone();
                Box::pin(async move { components(&ctx, &table, out).await })
            }),
        }))
    }
}

async fn components(
    ctx: &SessionContext,
    table: &str,
    schema: SchemaRef,
) -> crate::error::Result<RecordBatch> {
    let batches = ctx.table(table).await?.collect().await?;
    let mut index: HashMap<String, u32> = HashMap::new();
    let mut names: Vec<String> = Vec::new();
    let mut edges = Vec::new();
    for b in &batches {
        if b.num_columns() < 2 {
            return Err(crate::error::Error::InvalidRequest(format!(
                "connected_components: `{table}` needs two columns of linked node ids"
            )));
        }
        let l = arrow::compute::cast(b.column(0), &DataType::Utf8)?;
        let r = arrow::compute::cast(b.column(1), &DataType::Utf8)?;
        let (l, r) = (l.as_string::<i32>(), r.as_string::<i32>());
        for i in 0..b.num_rows() {
            let mut id = |s: &str| -> u32 {
                if let Some(&x) = index.get(s) {
                    return x;
                }
                let x = names.len() as u32;
                names.push(s.to_string());
                index.insert(s.to_string(), x);
                x
            };
            match (l.is_valid(i), r.is_valid(i)) {
                (true, true) => {
                    let (a, c) = (id(l.value(i)), id(r.value(i)));
                    edges.push((a, c));
                }
                (true, false) => {
                    id(l.value(i));
                }
                (false, true) => {
                    id(r.value(i));
                }
                (false, false) => {}
            }
        }
    }
    let mut uf = UnionFind::new(names.len());
    for (a, c) in edges {
        uf.union(a, c);
    }
    // Name each component by its smallest node id.
    let mut smallest: HashMap<u32, u32> = HashMap::new();
    let mut size: HashMap<u32, u64> = HashMap::new();
    let roots: Vec<u32> = (0..names.len() as u32).map(|n| uf.find(n)).collect();
    for (n, root) in roots.iter().enumerate() {
        let e = smallest.entry(*root).or_insert(n as u32);
        if names[n] < names[*e as usize] {
            *e = n as u32;
        }
        *size.entry(*root).or_default() += 1;
    }
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(names.iter())),
            Arc::new(StringArray::from_iter_values(
                roots.iter().map(|r| names[smallest[r] as usize].as_str()),
            )),
            Arc::new(UInt64Array::from_iter_values(roots.iter().map(|r| size[r]))),
        ],
    )?)
}

/// `explain_pair('source:id', 'source:id')`, for the project it is registered with.
#[derive(Debug)]
pub struct ExplainPair {
    pub cfg: Arc<ProjectConfig>,
}

impl TableFunctionImpl for ExplainPair {
    fn call_with_args(
        &self,
        args: TableFunctionArgs,
    ) -> datafusion::common::Result<Arc<dyn TableProvider>> {
        let mut uids = string_args(
            "explain_pair",
            args.exprs(),
            2,
            "'crm_contacts:C1', 'webshop_customers:W7'",
        )?;
        let right = uids.pop().expect("two args");
        let left = uids.pop().expect("two args");
        let cfg = self.cfg.clone();
        Ok(Arc::new(ComputedTable {
            schema: super::explain::explain_schema(&cfg),
            compute: Box::new(move |ctx| {
                let (cfg, left, right) = (cfg.clone(), left.clone(), right.clone());
                Box::pin(
                    async move { super::explain::explain_pair(&ctx, &cfg, &left, &right).await },
                )
            }),
        }))
    }
}

/// `match_record('source', '{"column": "value", ...}')`: the customer one record in a source's
/// shape belongs to, by the current run's rules and weights (see `unify::realtime`).
#[derive(Debug)]
pub struct MatchRecord {
    pub matcher: Arc<super::realtime::MatcherCell>,
}

impl TableFunctionImpl for MatchRecord {
    fn call_with_args(
        &self,
        args: TableFunctionArgs,
    ) -> datafusion::common::Result<Arc<dyn TableProvider>> {
        let mut a = string_args(
            "match_record",
            args.exprs(),
            2,
            "'crm_contacts', '{\"full_name\": \"Ann Lee\", \"email\": \"ann@example.com\"}'",
        )?;
        let json = a.pop().expect("two args");
        let source = a.pop().expect("two args");
        let record: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&json)
            .map_err(|e| {
                DataFusionError::Plan(format!(
                    "match_record: the second argument must be a JSON object of the source's columns: {e}"
                ))
            })?;
        let matcher = self.matcher.clone();
        Ok(Arc::new(ComputedTable {
            schema: super::realtime::result_schema(),
            compute: Box::new(move |_ctx| {
                let (matcher, source, record) = (matcher.clone(), source.clone(), record.clone());
                Box::pin(async move {
                    let m = matcher.get().await?;
                    let r = m.match_record(&source, &record, false)?;
                    super::realtime::result_batch(&r)
                })
            }),
        }))
    }
}

/// `timeline('cus_…' [, 'from', 'to'])`: a customer's activities, newest first, optionally
/// within `[from, to)` (timestamps as text, e.g. '2026-01-01').
#[derive(Debug)]
pub struct Timeline;

impl TableFunctionImpl for Timeline {
    fn call_with_args(
        &self,
        args: TableFunctionArgs,
    ) -> datafusion::common::Result<Arc<dyn TableProvider>> {
        let n = args.exprs().len();
        let mut a = string_args(
            "timeline",
            args.exprs(),
            if n == 3 { 3 } else { 1 },
            "'cus_000000001' or timeline('cus_000000001', '2026-01-01', '2026-07-01')",
        )?;
        let range = (a.len() == 3).then(|| (a.remove(1), a.remove(1)));
        let customer = a.remove(0);
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "ts",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Nanosecond, None),
                true,
            ),
            Field::new("type", DataType::Utf8, true),
            Field::new("activity_source", DataType::Utf8, true),
            Field::new("amount", DataType::Float64, true),
            Field::new("details", DataType::Utf8, true),
        ]));
        let out = schema.clone();
        Ok(Arc::new(ComputedTable {
            schema,
            compute: Box::new(move |ctx| {
                let lit = |s: &str| format!("'{}'", s.replace('\'', "''"));
                let mut sql = format!(
                    "SELECT CAST(ts AS TIMESTAMP) AS ts, CAST(type AS VARCHAR) AS type, CAST(activity_source AS VARCHAR) AS activity_source, \
                     CAST(amount AS DOUBLE) AS amount, CAST(details AS VARCHAR) AS details \
                     FROM activities WHERE customer_id = {}",
                    lit(&customer)
                );
                if let Some((from, to)) = &range {
                    sql.push_str(&format!(
                        " AND ts >= CAST({} AS TIMESTAMP) AND ts < CAST({} AS TIMESTAMP)",
                        lit(from),
                        lit(to)
                    ));
                }
                sql.push_str(" ORDER BY ts DESC");
                let out = out.clone();
                Box::pin(async move {
                    let batches = ctx.sql(&sql).await?.collect().await?;
                    let mut cast = Vec::with_capacity(batches.len());
                    for b in &batches {
                        let cols = b
                            .columns()
                            .iter()
                            .zip(out.fields())
                            .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
                            .collect::<std::result::Result<Vec<_>, _>>()?;
                        cast.push(RecordBatch::try_new(out.clone(), cols)?);
                    }
                    let batches = cast;
                    Ok(arrow::compute::concat_batches(&out, &batches)?)
                })
            }),
        }))
    }
}

/// `segment_overlap('a', 'b')`: how two segments of the run overlap, as one row
/// `(segment_a, segment_b, a_size, b_size, both, only_a, only_b)`.
#[derive(Debug)]
pub struct SegmentOverlap;

impl TableFunctionImpl for SegmentOverlap {
    fn call_with_args(
        &self,
        args: TableFunctionArgs,
    ) -> datafusion::common::Result<Arc<dyn TableProvider>> {
        let mut a = string_args("segment_overlap", args.exprs(), 2, "'champions', 'lost'")?;
        let (seg_b, seg_a) = (a.remove(1), a.remove(0));
        let schema = Arc::new(Schema::new(vec![
            Field::new("segment_a", DataType::Utf8, false),
            Field::new("segment_b", DataType::Utf8, false),
            Field::new("a_size", DataType::UInt64, false),
            Field::new("b_size", DataType::UInt64, false),
            Field::new("both", DataType::UInt64, false),
            Field::new("only_a", DataType::UInt64, false),
            Field::new("only_b", DataType::UInt64, false),
        ]));
        let out = schema.clone();
        Ok(Arc::new(ComputedTable {
            schema,
            compute: Box::new(move |ctx| {
                let (seg_a, seg_b, out) = (seg_a.clone(), seg_b.clone(), out.clone());
                Box::pin(async move {
                    let lit = |s: &str| format!("'{}'", s.replace('\'', "''"));
                    if !ctx.table_exist(names::SEGMENT_SIZES)? {
                        return Err(crate::error::Error::NotFound(
                            "segment_overlap: this run has no segments; declare [segments] in panorama.toml and run again".into(),
                        ));
                    }
                    let known = ctx
                        .sql("SELECT DISTINCT CAST(segment AS VARCHAR) FROM segment_sizes WHERE run_id = (SELECT max(run_id) FROM segment_sizes)")
                        .await?
                        .collect()
                        .await?;
                    let mut names: Vec<String> = Vec::new();
                    for b in &known {
                        let c = arrow::compute::cast(b.column(0), &DataType::Utf8)?;
                        let c = c.as_string::<i32>();
                        names.extend((0..b.num_rows()).map(|i| c.value(i).to_string()));
                    }
                    for s in [&seg_a, &seg_b] {
                        if !names.contains(s) {
                            let mut names = names.clone();
                            names.sort();
                            return Err(crate::error::Error::NotFound(format!(
                                "segment_overlap: no segment named `{s}` in this run (segments: {})",
                                names.join(", ")
                            )));
                        }
                    }
                    let sql = format!(
                        "SELECT CAST(sum(in_a) AS BIGINT), CAST(sum(in_b) AS BIGINT), CAST(sum(in_a * in_b) AS BIGINT), \
                         CAST(sum(in_a * (1 - in_b)) AS BIGINT), CAST(sum(in_b * (1 - in_a)) AS BIGINT) FROM (\
                           SELECT customer_id, max(CASE WHEN segment = {a} THEN 1 ELSE 0 END) AS in_a, \
                                  max(CASE WHEN segment = {b} THEN 1 ELSE 0 END) AS in_b \
                           FROM segment_members WHERE segment IN ({a}, {b}) GROUP BY customer_id)",
                        a = lit(&seg_a),
                        b = lit(&seg_b)
                    );
                    let b = ctx.sql(&sql).await?.collect().await?;
                    let value = |i: usize| -> u64 {
                        b.first().filter(|b| b.num_rows() > 0).map_or(0, |b| {
                            b.column(i)
                                .as_primitive::<arrow::datatypes::Int64Type>()
                                .value(0)
                                .max(0) as u64
                        })
                    };
                    Ok(RecordBatch::try_new(
                        out,
                        vec![
                            Arc::new(StringArray::from(vec![seg_a.as_str()])),
                            Arc::new(StringArray::from(vec![seg_b.as_str()])),
                            Arc::new(UInt64Array::from(vec![value(0)])),
                            Arc::new(UInt64Array::from(vec![value(1)])),
                            Arc::new(UInt64Array::from(vec![value(2)])),
                            Arc::new(UInt64Array::from(vec![value(3)])),
                            Arc::new(UInt64Array::from(vec![value(4)])),
                        ],
                    )?)
                })
            }),
        }))
    }
}
