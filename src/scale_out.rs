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
/// ([`crate::session::register_batches`]).
pub async fn remote_context(
    url: &str,
    scratch: Option<std::path::PathBuf>,
) -> Result<SessionContext> {
    let mut config = SessionConfig::new_with_ballista()
        .set_bool("datafusion.execution.parquet.schema_force_view_types", false)
        .set_bool("datafusion.sql_parser.map_string_types_to_utf8view", false);
    if let Some(dir) = scratch {
        config = config.with_extension(Arc::new(crate::session::ScratchDir(dir)));
    }
    let state = datafusion::execution::SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .build();
    let ctx = SessionContext::remote_with_state(url, state)
        .await
        .map_err(|e| Error::Other(format!("cannot reach the Ballista scheduler at {url}: {e}")))?;
    panorama_udfs::register_all(&ctx);
    Ok(ctx)
}
