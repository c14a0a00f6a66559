//! `panorama-cluster`: a Ballista scheduler or executor that knows Panorama's functions
//! (normalizers, similarities, merge precedence), so Panorama's SQL runs on the cluster.
//!
//! ```sh
//! panorama-cluster scheduler --port 50050
//! panorama-cluster executor --scheduler 127.0.0.1:50050 --port 50051 --grpc-port 50052
//! panorama query --ballista df://127.0.0.1:50050 "SELECT normalize_email(email, true) FROM crm_contacts"
//! ```

use std::sync::Arc;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "A Ballista scheduler or executor with Panorama's functions"
)]
struct Cli {
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    /// Accept queries and plan them into stages for the executors.
    Scheduler {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
        #[arg(long, default_value_t = 50050)]
        port: u16,
    },
    /// Run the tasks the scheduler hands out.
    Executor {
        /// The scheduler, `host:port`.
        #[arg(long, default_value = "127.0.0.1:50050")]
        scheduler: String,
        /// Address to listen on and to advertise.
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
        /// Arrow Flight port (shuffle data).
        #[arg(long, default_value_t = 50051)]
        port: u16,
        /// gRPC port (tasks).
        #[arg(long, default_value_t = 50052)]
        grpc_port: u16,
        /// Tasks run at once; default: the cores.
        #[arg(long)]
        concurrency: Option<usize>,
        /// Where shuffle files go; default: a temporary directory.
        #[arg(long)]
        work_dir: Option<String>,
    },
}

fn main() -> std::process::ExitCode {
    // Decoding and planning deep plans (recommendations' nested joins) recurses deeply: the
    // default 2 MB worker stacks overflowed.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(64 << 20)
        .build()
        .expect("a tokio runtime starts");
    runtime.block_on(serve())
}

async fn serve() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PANORAMA_LOG").unwrap_or_else(|_| {
                // Executors report no per-operator metrics (see `StageEngine`): the
                // scheduler's warning about each stage without them is noise.
                tracing_subscriber::EnvFilter::new(
                    "warn,ballista_scheduler::state::execution_stage=error",
                )
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match Cli::parse().role {
        Role::Scheduler { bind, port } => scheduler(bind, port).await,
        Role::Executor {
            scheduler,
            bind,
            port,
            grpc_port,
            concurrency,
            work_dir,
        } => executor(scheduler, bind, port, grpc_port, concurrency, work_dir).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Why a cluster process did not start or stopped.
#[derive(Debug, thiserror::Error)]
enum ClusterError {
    /// A flag's value is unusable; the message names it.
    #[error("{0}")]
    Usage(String),
    /// Ballista (or Panorama's functions for it) failed.
    #[error("{0}")]
    Ballista(String),
}

async fn scheduler(bind: String, port: u16) -> Result<(), ClusterError> {
    let mut config = ballista_scheduler::config::SchedulerConfig {
        bind_host: bind.clone(),
        bind_port: port,
        ..Default::default()
    };
    config.external_host = bind.clone();
    // The scheduler decodes the client's logical plans: it must know the functions too.
    config.override_session_builder = Some(Arc::new(panorama::scale_out::function_state));
    let config = Arc::new(config);
    let cluster = ballista_scheduler::cluster::BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| ClusterError::Ballista(e.to_string()))?;
    let address = format!("{bind}:{port}")
        .parse()
        .map_err(|e| ClusterError::Usage(format!("bad address {bind}:{port}: {e}")))?;
    println!("scheduler listening on {bind}:{port}");
    ballista_scheduler::scheduler_process::start_server(cluster, address, config)
        .await
        .map_err(|e| ClusterError::Ballista(e.to_string()))
}

async fn executor(
    scheduler: String,
    bind: String,
    port: u16,
    grpc_port: u16,
    concurrency: Option<usize>,
    work_dir: Option<String>,
) -> Result<(), ClusterError> {
    let (scheduler_host, scheduler_port) = scheduler
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .ok_or_else(|| {
            ClusterError::Usage(format!("--scheduler must be host:port, got {scheduler}"))
        })?;
    let functions = panorama::scale_out::executor_functions()
        .map_err(|e| ClusterError::Ballista(e.to_string()))?;
    let config = ballista_executor::executor_process::ExecutorProcessConfig {
        bind_host: bind.clone(),
        external_host: Some(bind.clone()),
        port,
        grpc_port,
        scheduler_host,
        scheduler_port,
        vcores: concurrency
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        work_dir,
        override_function_registry: Some(functions),
        override_execution_engine: Some(Arc::new(panorama::scale_out::StageEngine::new())),
        ..Default::default()
    };
    println!("executor on {bind}:{port} (gRPC {grpc_port}) for scheduler {scheduler}");
    ballista_executor::executor_process::start_executor_process(Arc::new(config))
        .await
        .map_err(|e| ClusterError::Ballista(e.to_string()))
}
