//! The DataFusion context a run's stages compute in: local, or on the Ballista cluster of
//! `workspace.ballista`; the run's loaded sources registered as tables; the run's reference
//! time. Querying a finished run (every table and table function) is `crate::session`'s.

use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::config::ProjectConfig;
use crate::error::{Error, Result};

/// A context with Panorama's scalar and aggregate functions and no tables; `SELECT * FROM
/// 'file.parquet'` works too. Stages add the table functions they use.
pub fn new_context() -> SessionContext {
    crate::engine::base_context().enable_url_table()
}

/// The context a run stage queries in: local, or on the Ballista cluster of
/// `workspace.ballista`, keeping its would-be in-memory tables in `scratch`.
pub async fn stage_context(
    cfg: &ProjectConfig,
    scratch: &std::path::Path,
) -> Result<SessionContext> {
    match &cfg.workspace.ballista {
        None => Ok(new_context()),
        Some(url) => cluster_context(url.get_ref(), Some(scratch)).await,
    }
}

/// A context whose queries run on the Ballista scheduler at `url` (`df://host:port`), with
/// Panorama's scalar and aggregate functions (the caller adds table functions); with
/// `scratch`, tables a stage would hold in memory go there as Parquet
/// ([`crate::table_io::register_batches`]).
#[cfg(feature = "ballista")]
pub async fn cluster_context(
    url: &str,
    scratch: Option<&std::path::Path>,
) -> Result<SessionContext> {
    // Ballista connects lazily and its transport errors do not say to what: check first.
    let address = url.strip_prefix("df://").unwrap_or(url);
    let reachable = async {
        let addr = tokio::net::lookup_host(address)
            .await?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        .map_err(|_| std::io::Error::other("no answer in 10 s"))??;
        std::io::Result::Ok(())
    };
    if let Err(why) = reachable.await {
        return Err(Error::Network {
            what: format!("cannot reach the Ballista scheduler \"{url}\""),
            source: why.into(),
        });
    }
    let ctx = crate::scale_out::remote_context(url, scratch.map(|s| s.to_path_buf())).await?;
    crate::engine::register_as_of(&ctx, chrono::Utc::now().naive_utc());
    Ok(ctx)
}

/// Without the `ballista` feature: an error saying how to build it.
#[cfg(not(feature = "ballista"))]
pub async fn cluster_context(
    url: &str,
    _scratch: Option<&std::path::Path>,
) -> Result<SessionContext> {
    Err(Error::InvalidRequest(format!(
        "Ballista scheduler \"{url}\": this panorama was built without Ballista support; build it with `cargo build --release --features ballista`"
    )))
}

/// The reference time of a run as stored in its manifest (`2026-11-01T00:00:00`).
pub fn format_as_of(at: chrono::NaiveDateTime) -> String {
    at.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// Register each loaded source of a run as a table; returns their names.
pub async fn register_sources(
    ctx: &SessionContext,
    run_dir: &std::path::Path,
    sources: &[crate::workspace::reports::SourceReport],
) -> Result<Vec<String>> {
    let mut tables = Vec::new();
    for report in sources {
        let dir = run_dir.join("sources").join(&report.name);
        ctx.register_parquet(
            &report.name,
            dir.to_string_lossy().as_ref(),
            ParquetReadOptions::default(),
        )
        .await?;
        tables.push(report.name.clone());
    }
    Ok(tables)
}
