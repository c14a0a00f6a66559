//! `panorama serve`: the current run over PostgreSQL wire, Arrow Flight SQL and HTTP, from
//! one process, with no files exported.
//!
//! - [`snapshot`]: the run being served, swapped when a newer run completes.
//! - [`index`]: the lookup index each run leaves (identifier → customer → profile row).
//! - [`pgwire`], [`flight`], [`http`] and [`card`]: the protocols and the customer card page.
//! - [`auth`], [`limits`]: who may connect, and what one query may take (read-only, memory,
//!   time, rows).
//! - [`events`], [`live`], [`live_measures`], [`triggered`]: collecting events into the
//!   project's `format = "events"` source, showing them on the card at once, measures over
//!   sliding windows, and journeys triggered by behaviour.

pub mod auth;
pub mod card;
pub use crate::config::serve as config;
pub mod console;
pub mod events;
pub mod flight;
pub mod http;
pub use crate::lookup_index as index;
pub mod limits;
pub mod live;
pub mod live_measures;
pub mod metrics;
pub mod pg_catalog;
pub mod pg_session;
pub mod pgwire;
pub mod scram;
pub mod snapshot;
pub mod triggered;

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::ProjectConfig;
use crate::error::{Error, Result};
use config::ServeSettings;

/// Command-line settings that win over `[serve]`.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub bind: Option<String>,
    pub pg_port: Option<u16>,
    pub flight_port: Option<u16>,
    pub http_port: Option<u16>,
    pub tls_cert: Option<std::path::PathBuf>,
    pub tls_key: Option<std::path::PathBuf>,
}

/// Where each protocol listens, once bound (ports may have been 0).
#[derive(Debug, Clone)]
pub struct Bound {
    pub pg: SocketAddr,
    pub flight: SocketAddr,
    pub http: SocketAddr,
}

/// Settings from `[serve]` and the command line, checked: TLS files readable, and no
/// listening beyond loopback without credentials.
pub fn settings(cfg: &ProjectConfig, o: &Overrides) -> Result<(ServeSettings, auth::Credentials)> {
    let mut s = ServeSettings::from_section(cfg.serve.as_ref(), &cfg.root)?;
    if let Some(b) = &o.bind {
        s.bind = b.clone();
    }
    s.pg_port = o.pg_port.unwrap_or(s.pg_port);
    s.flight_port = o.flight_port.unwrap_or(s.flight_port);
    s.http_port = o.http_port.unwrap_or(s.http_port);
    match (&o.tls_cert, &o.tls_key) {
        (Some(cert), Some(key)) => {
            s.tls = Some(config::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            })
        }
        (None, None) => {}
        _ => {
            return Err(Error::InvalidRequest(
                "give both --tls-cert and --tls-key, or neither".into(),
            ))
        }
    }
    let file = auth::AuthFile::load(&cfg.workspace_dir())?;
    if !s.is_loopback() && !file.is_configured() {
        return Err(Error::InvalidRequest(format!(
            "refusing to listen on {} without authentication: anyone on the network could read \
             every customer. Add a user (`panorama users add NAME`) or a token \
             (`panorama tokens create NAME`), or listen on 127.0.0.1",
            s.bind
        )));
    }
    tls_config(&s)?;
    Ok((s, auth::Credentials::new(&file)))
}

/// The rustls server config of `[serve] tls`, for all three protocols.
pub(crate) fn tls_config(s: &ServeSettings) -> Result<Option<Arc<rustls::ServerConfig>>> {
    let Some(files) = &s.tls else {
        return Ok(None);
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect())
        .map_err(|e| Error::Tls {
            what: format!("TLS certificate {}", files.cert.display()),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(Error::Tls {
            what: format!("TLS certificate {}", files.cert.display()),
            message: "no certificate in the file".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| Error::Tls {
        what: format!("TLS key {}", files.key.display()),
        message: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| Error::Tls {
            what: format!("TLS {}", files.cert.display()),
            message: e.to_string(),
        })?;
    Ok(Some(Arc::new(config)))
}

/// Serve until Ctrl-C or SIGTERM. `ready` is called once every listener is bound.
pub async fn serve(
    cfg: ProjectConfig,
    overrides: &Overrides,
    ready: impl FnOnce(&Bound, &snapshot::Serving),
) -> Result<()> {
    // Two TLS back ends are linked (ring through pgwire, aws-lc through reqwest): name one.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let (settings, credentials) = settings(&cfg, overrides)?;
    let tls = tls_config(&settings)?;
    let serving = snapshot::Serving::open(cfg, settings.clone(), credentials).await?;
    let addr = |port: u16| format!("{}:{port}", settings.bind);
    let bind = |port: u16| async move {
        tokio::net::TcpListener::bind(addr(port))
            .await
            .map_err(|e| Error::Network {
                what: format!("cannot listen on {}", addr(port)),
                source: Box::new(e),
            })
    };
    let local = |e: std::io::Error| Error::Network {
        what: "listener address".into(),
        source: Box::new(e),
    };
    let pg = bind(settings.pg_port).await?;
    let flight = bind(settings.flight_port).await?;
    let http = bind(settings.http_port).await?;
    let bound = Bound {
        pg: pg.local_addr().map_err(local)?,
        flight: flight.local_addr().map_err(local)?,
        http: http.local_addr().map_err(local)?,
    };
    let http = http.into_std().map_err(|e| Error::Network {
        what: "HTTP listener".into(),
        source: Box::new(e),
    })?;
    ready(&bound, &serving);
    let _watch = serving.watch();
    let _journeys = serving.triggered.clone().map(|t| t.spawn(serving.clone()));
    if let Some(c) = &serving.events {
        crate::event_log::compact::spawn(c.log.clone(), c.settings.compact_every);
    }
    let pg_tls = tls
        .clone()
        .map(datafusion_postgres::pgwire::tokio::TlsAcceptor::from);
    let http_tls = tls.map(|c| {
        let mut c = (*c).clone();
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(c)
    });
    tokio::select! {
        r = serve_pg(serving.clone(), pg, pg_tls) => r,
        r = flight::serve(serving.clone(), flight) => r,
        r = http::serve(serving.clone(), http, http_tls) => r,
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async {
                match term.as_mut() {
                    Some(t) => { t.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Accept PostgreSQL connections; each runs on its own task, so a broken client only ends
/// its own connection.
async fn serve_pg(
    serving: Arc<snapshot::Serving>,
    listener: tokio::net::TcpListener,
    tls: Option<datafusion_postgres::pgwire::tokio::TlsAcceptor>,
) -> Result<()> {
    let handlers = Arc::new(pgwire::PgHandlers::new(serving.clone()));
    let slots = Arc::new(tokio::sync::Semaphore::new(
        serving.settings.max_connections,
    ));
    let mut backoff = std::time::Duration::ZERO;
    let mut refused = LogLimiter::default();
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(c) => {
                backoff = std::time::Duration::ZERO;
                c
            }
            Err(e) => {
                // Out of file descriptors: accepting again at once spun a core and logged 27
                // million lines a minute. Wait (doubling to 1 s) and log once a second.
                backoff = (backoff * 2).clamp(
                    std::time::Duration::from_millis(10),
                    std::time::Duration::from_secs(1),
                );
                if let Some(more) = refused.allow() {
                    tracing::warn!("PostgreSQL accept: {e} ({more} more since the last report)");
                }
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            if let Some(more) = refused.allow() {
                tracing::warn!(%peer, "PostgreSQL connection refused: max_connections reached ({more} more since the last report)");
            }
            continue;
        };
        let handlers = handlers.clone();
        let tls = tls.clone();
        let logins = serving.logins.clone();
        let login_timeout = serving.settings.login_timeout;
        // The connection (login, parsing, planning: 2.7 ms of CPU for a `psql -c 'SELECT 1'`)
        // runs on the query threads, so logins and floods of connections take CPU from the
        // queries, not from the lookups. Its socket moves to that runtime in `watch_handle`.
        limits::query_runtime().spawn(async move {
            let _permit = permit;
            let (tx, mut logged_in) = tokio::sync::oneshot::channel();
            logins.expect(peer, tx);
            // pgwire reads the socket only between messages, so a client that goes away
            // mid-query was not noticed until the query ended (1.5 cores busy up to
            // `query_timeout`). A second handle on the socket watches for the hang-up; ending
            // the connection's task drops the query, which stops its work.
            let (socket, watch) = match watch_handle(socket) {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(%peer, "PostgreSQL connection: {e}");
                    logins.forget(peer);
                    return;
                }
            };
            let hung_up = client_gone(watch);
            tokio::pin!(hung_up);
            let work = datafusion_postgres::pgwire::tokio::process_socket(socket, tls, handlers);
            tokio::pin!(work);
            let deadline = tokio::time::sleep(login_timeout);
            tokio::pin!(deadline);
            let mut authenticated = false;
            // A connection must log in within `login_timeout`, or it gives its slot back
            // (300 idle sockets once locked real logins out for a minute).
            loop {
                tokio::select! {
                    result = &mut work => {
                        if let Err(e) = result {
                            tracing::debug!(%peer, "PostgreSQL connection ended: {e}");
                        }
                        break;
                    }
                    _ = &mut hung_up => {
                        tracing::debug!(%peer, "PostgreSQL client went away: its query, if any, is cancelled");
                        break;
                    }
                    _ = &mut logged_in, if !authenticated => authenticated = true,
                    _ = &mut deadline, if !authenticated => {
                        tracing::debug!(%peer, "PostgreSQL connection closed: no login within {login_timeout:?}");
                        break;
                    }
                }
            }
            logins.forget(peer);
        });
    }
}

/// The socket and a second handle on it (a duplicated descriptor) for [`client_gone`], both
/// registered with the runtime this is called on.
fn watch_handle(
    socket: tokio::net::TcpStream,
) -> std::io::Result<(tokio::net::TcpStream, tokio::net::TcpStream)> {
    let std = socket.into_std()?;
    let watch = std.try_clone()?;
    Ok((
        tokio::net::TcpStream::from_std(std)?,
        tokio::net::TcpStream::from_std(watch)?,
    ))
}

/// Resolves once the peer has closed the connection (end of stream with nothing left to
/// read), without taking any bytes from it: data waiting for pgwire (the next message) is
/// peeked at and left, and looked at again a fifth of a second later.
async fn client_gone(watch: tokio::net::TcpStream) {
    let mut byte = [0u8; 1];
    loop {
        match watch.peek(&mut byte).await {
            Ok(0) | Err(_) => return,
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    }
}

/// Connections waiting to log in, by peer address: the login handler tells the connection's
/// task it may stay past `login_timeout`.
#[derive(Debug, Default)]
pub struct PendingLogins {
    map: std::sync::Mutex<std::collections::HashMap<SocketAddr, tokio::sync::oneshot::Sender<()>>>,
}

impl PendingLogins {
    fn expect(&self, peer: SocketAddr, tx: tokio::sync::oneshot::Sender<()>) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(peer, tx);
    }

    /// The connection from `peer` has logged in.
    pub fn logged_in(&self, peer: SocketAddr) {
        if let Some(tx) = self
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&peer)
        {
            let _ = tx.send(());
        }
    }

    fn forget(&self, peer: SocketAddr) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&peer);
    }
}

/// At most one log line a second for a repeating event; says how many were left out.
#[derive(Debug, Default)]
struct LogLimiter {
    last: Option<std::time::Instant>,
    skipped: u64,
}

impl LogLimiter {
    fn allow(&mut self) -> Option<u64> {
        match self.last {
            Some(t) if t.elapsed() < std::time::Duration::from_secs(1) => {
                self.skipped += 1;
                None
            }
            _ => {
                self.last = Some(std::time::Instant::now());
                Some(std::mem::take(&mut self.skipped))
            }
        }
    }
}
