//! The DataFusion engine as Panorama sets it up: one string type, a shared memory budget, and
//! Panorama's scalar and aggregate functions (the `udfs` crate). Every context starts here;
//! `crate::session` adds the stages' table functions and a run's tables.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::query_limits::memory_limit;

/// A context with Panorama's functions and no tables, reading only registered tables.
pub fn base_context() -> SessionContext {
    // Strings as plain Utf8, from Parquet and from `CAST(... AS VARCHAR)`, not Utf8View: after
    // a join every view batch refers to all of the build side's buffers, and sorts (window
    // functions, ORDER BY) counted them once per batch, asking for 18 GB to rank 1M customers.
    // One string type also spares joins a cast of every key.
    let config = SessionConfig::new()
        .set_bool(
            "datafusion.execution.parquet.schema_force_view_types",
            false,
        )
        .set_bool("datafusion.sql_parser.map_string_types_to_utf8view", false)
        .with_information_schema(true)
        .with_default_catalog_and_schema("panorama", "public");
    // Queries share one memory budget; sorts, joins' spillable parts and aggregates spill to
    // temporary files beyond it instead of exhausting the machine.
    let runtime = match memory_limit() {
        Some(bytes) => RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(bytes)))
            .build_arc(),
        None => RuntimeEnvBuilder::new().build_arc(),
    }
    .expect("a default runtime environment builds");
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    panorama_udfs::register_all(&ctx);
    if let Some(limit) = memory_limit() {
        // No single value larger than every query's memory together (`repeat('x', 1e10)`).
        panorama_udfs::size_cap::cap_result_sizes(
            &ctx,
            limit,
            "--memory-limit or PANORAMA_MEMORY_LIMIT, default 70% of the machine's memory",
        );
    }
    register_as_of(&ctx, chrono::Utc::now().naive_utc());
    ctx
}

/// `as_of()`: the reference time of a run's measures and segments ("days since the last
/// order" counts to it), a constant for the whole run so results are reproducible.
#[derive(Debug, PartialEq, Eq, Hash)]
struct AsOf {
    signature: datafusion::logical_expr::Signature,
    nanos: i64,
}

impl datafusion::logical_expr::ScalarUDFImpl for AsOf {
    fn name(&self) -> &str {
        "as_of"
    }
    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Timestamp(
            arrow::datatypes::TimeUnit::Nanosecond,
            None,
        ))
    }
    fn invoke_with_args(
        &self,
        _args: datafusion::logical_expr::ScalarFunctionArgs,
    ) -> datafusion::error::Result<datafusion::logical_expr::ColumnarValue> {
        Ok(datafusion::logical_expr::ColumnarValue::Scalar(
            datafusion::common::ScalarValue::TimestampNanosecond(Some(self.nanos), None),
        ))
    }
}

/// Make `as_of()` return `at` in this context.
pub fn register_as_of(ctx: &SessionContext, at: chrono::NaiveDateTime) {
    let nanos = at.and_utc().timestamp_nanos_opt().unwrap_or(0);
    ctx.register_udf(datafusion::logical_expr::ScalarUDF::from(AsOf {
        signature: datafusion::logical_expr::Signature::nullary(
            datafusion::logical_expr::Volatility::Immutable,
        ),
        nanos,
    }));
}
