//! What the server answers from: one run's tables and lookup index. A newer run is loaded
//! beside it and swapped in; queries already planned keep the old snapshot's tables.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;

use super::auth::Credentials;
use super::config::ServeSettings;
use super::index::LookupIndex;
use super::limits;
use super::metrics::Metrics;
use crate::config::ProjectConfig;
use crate::error::{Error, Result};
use crate::table_catalog::names;
use crate::workspace::Workspace;

/// One run, ready to serve.
pub struct Snapshot {
    pub run_id: String,
    /// The run's tables and views, `pg_catalog`, and no access to files by path.
    pub ctx: SessionContext,
    pub index: LookupIndex,
    /// Columns of `customer_profiles` that are measures (the rest are unified attributes).
    pub measures: HashSet<String>,
    /// What the console's charts can show for this run.
    pub facts: crate::charts::RunFacts,
    pub loaded_at: String,
    /// The run's real-time matcher (`POST /api/match`, `match_record(...)`).
    pub matcher: Arc<crate::unify::realtime::MatcherCell>,
}

impl Snapshot {
    pub async fn load(cfg: &ProjectConfig, run_id: &str) -> Result<Self> {
        let ws = Workspace::new(cfg.workspace_dir());
        let (ctx, opened) =
            crate::session::open_project_in(crate::session::base_context(), cfg, Some(run_id))
                .await?;
        datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog(
            &ctx,
            "panorama",
            // Not in an Arc: datafusion-pg-catalog 0.19's provider impl for Arc<T> calls
            // itself, and any query reading pg_roles overflowed the stack and aborted the
            // whole server.
            datafusion_postgres::auth::AuthManager::default(),
        )
        .map_err(|e| Error::query("pg_catalog", *e))?;
        let docs = cfg.table_docs(&opened.tables);
        super::pg_catalog::install(&ctx, &docs).await?;
        let measures = if opened.tables.iter().any(|t| t == names::CUSTOMER_MEASURES) {
            ctx.table(names::CUSTOMER_MEASURES)
                .await?
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .filter(|n| n != "customer_id")
                .collect()
        } else {
            HashSet::new()
        };
        // Without [unify] there is nobody to look up, but every table still answers SQL.
        let index = if opened.tables.iter().any(|t| t == names::UNIFIED_CUSTOMERS) {
            LookupIndex::load(&ws.run_dir(run_id)).await?
        } else {
            LookupIndex::empty()
        };
        let facts = crate::charts::RunFacts::gather(&ctx, &opened.tables, cfg).await?;
        Ok(Snapshot {
            facts,
            run_id: run_id.to_string(),
            ctx,
            index,
            measures,
            loaded_at: chrono::Utc::now().to_rfc3339(),
            matcher: opened.matcher,
        })
    }
}

/// Everything the three protocols share.
pub struct Serving {
    pub cfg: ProjectConfig,
    pub settings: ServeSettings,
    pub credentials: Credentials,
    pub metrics: Metrics,
    current: ArcSwap<Snapshot>,
    /// A run that failed to load is not retried until another run becomes current.
    failed: Mutex<Option<String>>,
    /// One admin operation (run, refresh, export) at a time.
    pub admin: tokio::sync::Mutex<()>,
    /// PostgreSQL connections still to log in.
    pub logins: Arc<super::PendingLogins>,
    /// The console's match-quality page of the current run (run id, page data): scoring the
    /// random pairs takes seconds, so it is computed once per run.
    pub quality: tokio::sync::Mutex<Option<(String, Arc<serde_json::Value>)>>,
    /// Collecting events (`POST /api/events`), when a source has `format = "events"`.
    pub events: Option<super::events::Collector>,
    /// Event-triggered journeys, when the project has any.
    pub triggered: Option<Arc<super::triggered::Triggered>>,
}

impl Serving {
    pub async fn open(
        cfg: ProjectConfig,
        settings: ServeSettings,
        credentials: Credentials,
    ) -> Result<Arc<Self>> {
        let ws = Workspace::new(cfg.workspace_dir());
        let run_id = ws
            .current_run()?
            .ok_or_else(|| Error::NoRun(cfg.root.clone()))?;
        let snapshot = Snapshot::load(&cfg, &run_id).await?;
        let events = super::events::Collector::open(&cfg, &settings.events)?;
        let triggered = super::triggered::Triggered::open(&cfg, events.as_ref())
            .await?
            .map(Arc::new);
        if let Some(c) = &events {
            c.replay(
                &snapshot.index,
                run_started(&ws, &run_id),
                triggered.as_deref(),
            )?;
        }
        Ok(Arc::new(Serving {
            cfg,
            settings,
            credentials,
            metrics: Metrics::default(),
            current: ArcSwap::from_pointee(snapshot),
            failed: Mutex::new(None),
            admin: tokio::sync::Mutex::new(()),
            logins: Arc::default(),
            quality: tokio::sync::Mutex::new(None),
            events,
            triggered,
        }))
    }

    /// The snapshot new queries see.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// A context for one query: the current snapshot, the server's limits.
    pub fn query_context(&self) -> datafusion::error::Result<SessionContext> {
        limits::limited_context(&self.snapshot().ctx, &self.settings.limits)
    }

    /// Load the project's current run if it is not the one served; true when swapped.
    pub async fn reload(&self) -> Result<bool> {
        let ws = Workspace::new(self.cfg.workspace_dir());
        let Some(run_id) = ws.current_run()? else {
            return Ok(false);
        };
        if run_id == self.snapshot().run_id
            || self.failed.lock().expect("lock").as_deref() == Some(run_id.as_str())
        {
            return Ok(false);
        }
        match Snapshot::load(&self.cfg, &run_id).await {
            Ok(s) => {
                self.current.store(Arc::new(s));
                if let Some(c) = &self.events {
                    // The run read every event received before it started.
                    c.live.forget_before(run_started(&ws, &run_id));
                }
                Metrics::count(&self.metrics.reloads);
                tracing::info!(run_id, "serving a newer run");
                Ok(true)
            }
            Err(e) => {
                Metrics::count(&self.metrics.reload_failures);
                *self.failed.lock().expect("lock") = Some(run_id.clone());
                Err(Error::Partial(format!(
                    "run {run_id} could not be loaded, still serving {}: {e}",
                    self.snapshot().run_id
                )))
            }
        }
    }

    /// Look for a newer run every `reload_interval`, for as long as the server runs.
    pub fn watch(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(me.settings.reload_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = me.reload().await {
                    tracing::warn!("{e}");
                }
            }
        })
    }

    /// Run one read-only SQL statement with the server's limits; at most `row_limit` rows,
    /// and whether more were cut.
    pub async fn sql(
        &self,
        sql: &str,
        row_limit: usize,
    ) -> Result<(arrow::datatypes::SchemaRef, Vec<RecordBatch>, bool)> {
        crate::query_limits::check(sql).inspect_err(|_| Metrics::count(&self.metrics.refused))?;
        let statements = datafusion::sql::parser::DFParser::parse_sql(sql)
            .map_err(|e| Error::InvalidRequest(format!("SQL: {e}")))?;
        if statements.len() != 1 {
            return Err(Error::InvalidRequest(format!(
                "send one statement per request ({} given)",
                statements.len()
            )));
        }
        if let Some(why) = limits::refuse_parsed(&statements[0]) {
            Metrics::count(&self.metrics.refused);
            return Err(Error::ReadOnly(why));
        }
        let ctx = self.query_context()?;
        let df = ctx
            .sql_with_options(sql, limits::read_only_options())
            .await
            .inspect_err(|_| Metrics::count(&self.metrics.sql_errors))?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        // EXPLAIN [ANALYZE] must stay the root of its plan; its few rows are cut below.
        let explains = matches!(
            df.logical_plan(),
            datafusion::logical_expr::LogicalPlan::Analyze(_)
                | datafusion::logical_expr::LogicalPlan::Explain(_)
        );
        let df = if explains {
            df
        } else {
            df.limit(0, Some(row_limit + 1))?
        };
        let batches = df
            .collect()
            .await
            .inspect_err(|_| Metrics::count(&self.metrics.sql_errors))?;
        let mut kept = Vec::new();
        let mut rows = 0usize;
        let mut truncated = false;
        for b in batches {
            if rows + b.num_rows() > row_limit {
                kept.push(b.slice(0, row_limit - rows));
                truncated = true;
                break;
            }
            rows += b.num_rows();
            kept.push(b);
        }
        Ok((schema, kept, truncated))
    }
}

/// When a run started (µs since 1970); 0 when unknown (then nothing is taken as read).
fn run_started(ws: &Workspace, run_id: &str) -> i64 {
    ws.read_manifest(run_id)
        .ok()
        .and_then(|m| chrono::DateTime::parse_from_rfc3339(&m.started_at).ok())
        .map_or(0, |t| t.timestamp_micros())
}
