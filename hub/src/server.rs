//! Serving the hub: [`HubConfig`] and [`run`]`(listener, config, shutdown)`.
//!
//! The caller binds the listener (tests bind port 0) and owns shutdown: when the `shutdown` future
//! completes, the hub stops accepting, wakes waiting long-polls, lets in-flight requests (uploads)
//! finish within the grace period, and returns.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use heph_format::{DecodeLimits, OwnerId};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::authn::Authenticator;
use crate::http::{HttpLimits, HubState, PublicConfig, handle};
use crate::log::{LogOptions, OpenError, SegmentLog};
use crate::store::SegmentStore;

/// The blocking-thread limit of the runtime a hub should run on (`hephd --mode server` sets it).
///
/// The filesystem store runs its short file operations on blocking threads and waits for its
/// journal's syncs without holding one, so a few dozen threads keep two cores busy; tokio's
/// default (512) lets a burst of uploads start hundreds of threads whose stacks and allocator
/// arenas then stay in the hub's memory.
pub const MAX_BLOCKING_THREADS: usize = 32;

/// Everything a hub needs to run. Build with [`HubConfig::new`] and adjust the public fields.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Where segments live.
    pub store: Arc<dyn SegmentStore>,
    /// Who may use the data routes (the OIDC verifier, or [`crate::DevAuthenticator`]).
    pub authenticator: Arc<dyn Authenticator>,
    /// True in dev mode (no OIDC issuer): only loopback listeners are accepted.
    pub dev_mode: bool,
    /// The owner this hub serves (`--owner-id`); `None`: the store's, or the first pusher's.
    pub owner: Option<OwnerId>,
    /// Directory of the PWA's static files.
    pub web_root: Option<PathBuf>,
    /// OIDC issuer (for `/config`).
    pub oidc_issuer: Option<String>,
    /// OIDC audience (for `/config` and the verifier).
    pub oidc_audience: Option<String>,
    /// OIDC client id (for `/config`).
    pub oidc_client_id: Option<String>,
    /// Subjects allowed to use the hub (`--authorized-sub`), for the verifier.
    pub authorized_subs: Vec<String>,
    /// Group claim required of callers (`--required-group`), for the verifier.
    pub required_group: Option<String>,
    /// Self-update enabled (`--self-update`); implemented by the operations layer.
    pub self_update: bool,
    /// Self-update poll interval in seconds.
    pub self_update_interval_secs: u64,
    /// Extra `/healthz` fields and `/metrics` lines from the layer that runs the hub (the self-updater).
    pub status_extension: Option<Arc<dyn StatusExtension>>,
    /// TLS certificate chain (PEM); with `tls_key`, `serve_tcp` serves HTTPS (see `crate::tls`).
    pub tls_cert: Option<PathBuf>,
    /// TLS key path.
    pub tls_key: Option<PathBuf>,
    /// Segment decode limits (size limit → `413`).
    pub limits: DecodeLimits,
    /// Head cache revalidation interval.
    pub revalidate: Duration,
    /// HTTP-layer limits and timeouts.
    pub http: HttpLimits,
    /// Time allowed to receive a request head, then the connection is closed (slow-loris).
    pub header_timeout: Duration,
    /// Most connections served at once; more are closed on accept.
    pub max_connections: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
}

impl HubConfig {
    /// A config with defaults for everything but the store and the authenticator.
    pub fn new(store: Arc<dyn SegmentStore>, authenticator: Arc<dyn Authenticator>) -> HubConfig {
        HubConfig {
            store,
            authenticator,
            dev_mode: false,
            owner: None,
            web_root: None,
            oidc_issuer: None,
            oidc_audience: None,
            oidc_client_id: None,
            authorized_subs: Vec::new(),
            required_group: None,
            self_update: false,
            self_update_interval_secs: 600,
            status_extension: None,
            tls_cert: None,
            tls_key: None,
            limits: DecodeLimits::DEFAULT,
            revalidate: Duration::from_millis(100),
            http: HttpLimits::default(),
            header_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Status that the layer running the hub adds to `/healthz` and `/metrics` (the daemon's self-updater:
/// `heph_spoke::selfupdate::SelfUpdateHandle`). The hub does not interpret it.
pub trait StatusExtension: Send + Sync + std::fmt::Debug {
    /// Fields merged into the `/healthz` JSON object (e.g. `"self_update": {…}`).
    fn healthz_fields(&self) -> serde_json::Map<String, serde_json::Value>;
    /// Prometheus text-format lines (with `# HELP`/`# TYPE`) appended to `/metrics`.
    fn metrics_text(&self) -> String;
}

/// Why the hub could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Dev mode (no OIDC issuer) refuses to listen on a non-loopback address.
    #[error(
        "refusing to listen on {addr}: no --oidc-issuer is configured (dev mode), which only binds loopback addresses; configure --oidc-issuer/--oidc-audience or bind 127.0.0.1"
    )]
    DevModeNonLoopback {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The TLS certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The web root is not a readable directory.
    #[error("web root {path}: {source}")]
    WebRoot {
        /// The path given.
        path: PathBuf,
        /// Why it cannot be used.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be opened as this hub's.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// A socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// A hub ready to serve: state shared by every listener it serves.
#[derive(Debug)]
pub struct Hub {
    state: Arc<HubState>,
    config: HubConfig,
    shutdown_tx: watch::Sender<bool>,
    /// TLS termination (`--tls-cert`/`--tls-key`), applied by [`Hub::serve_tcp`].
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
}

impl Hub {
    /// Opens the store as this hub's and prepares the state.
    pub async fn new(config: HubConfig) -> Result<Hub, ServerError> {
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::server_config(cert, key)?),
            (None, None) => None,
            _ => return Err(crate::tls::TlsError::Incomplete.into()),
        };
        let web_root = match &config.web_root {
            Some(p) => Some(
                p.canonicalize()
                    .and_then(|c| {
                        if c.is_dir() {
                            Ok(c)
                        } else {
                            Err(std::io::Error::other("not a directory"))
                        }
                    })
                    .map_err(|source| ServerError::WebRoot {
                        path: p.clone(),
                        source,
                    })?,
            ),
            None => None,
        };
        let log = SegmentLog::open(
            Arc::clone(&config.store),
            config.owner,
            LogOptions {
                limits: config.limits,
                revalidate: config.revalidate,
            },
        )
        .await?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let public = PublicConfig {
            issuer: config.oidc_issuer.clone(),
            audience: config.oidc_audience.clone(),
            client_id: config.oidc_client_id.clone(),
            dev_mode: config.dev_mode,
        };
        let mut state = HubState::new(
            Arc::new(log),
            Arc::clone(&config.authenticator),
            public,
            web_root,
            config.http,
            shutdown_rx,
        );
        state.extension = config.status_extension.clone();
        let state = Arc::new(state);
        Ok(Hub {
            state,
            config,
            shutdown_tx,
            tls,
        })
    }

    /// `true` when [`Hub::serve_tcp`] serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The shared state (for metrics and tests).
    pub fn state(&self) -> &Arc<HubState> {
        &self.state
    }

    /// Serves HTTP on `listener` until `shutdown` completes, then drains in-flight requests.
    pub async fn serve_tcp(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServerError> {
        let addr = listener.local_addr().map_err(|source| ServerError::Io {
            what: "reading the listener address".into(),
            source,
        })?;
        if self.config.dev_mode && !addr.ip().is_loopback() {
            return Err(ServerError::DevModeNonLoopback { addr });
        }
        if let Some(tls) = &self.tls {
            let tls =
                crate::tls::TlsListener::new(listener, Arc::clone(tls), self.config.header_timeout);
            return self.serve_with(tls, shutdown).await;
        }
        self.serve_with(listener, shutdown).await
    }

    /// Serves HTTP on a Unix socket until `shutdown` completes.
    #[cfg(unix)]
    pub async fn serve_unix(
        &self,
        listener: tokio::net::UnixListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServerError> {
        self.serve_with(listener, shutdown).await
    }

    async fn serve_with<L: Acceptor>(
        &self,
        listener: L,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServerError> {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let conns = Arc::new(Semaphore::new(self.config.max_connections));
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.config.header_timeout)
            .max_buf_size(64 * 1024)
            .keep_alive(true);
        tokio::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept_io() => match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = Arc::clone(&conns).try_acquire_owned() else {
                tracing::warn!("connection limit reached; closing a new connection");
                drop(stream);
                continue;
            };
            let state = Arc::clone(&self.state);
            let svc = service_fn(move |req| handle(Arc::clone(&state), req));
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                drop(permit);
            });
        }
        let _ = self.shutdown_tx.send(true);
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("all connections closed"),
            () = tokio::time::sleep(self.config.shutdown_grace) => {
                tracing::warn!("shutdown grace period over; closing remaining connections");
            }
        }
        Ok(())
    }
}

/// A listener the hub can accept connections from.
trait Acceptor {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept_io(&self) -> impl Future<Output = std::io::Result<Self::Io>> + Send;
}

impl Acceptor for TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept_io(&self) -> std::io::Result<Self::Io> {
        let (s, _) = self.accept().await?;
        // Small request/response exchanges: do not wait to coalesce.
        let _ = s.set_nodelay(true);
        Ok(s)
    }
}

impl Acceptor for crate::tls::TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    async fn accept_io(&self) -> std::io::Result<Self::Io> {
        self.accept().await
    }
}

#[cfg(unix)]
impl Acceptor for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept_io(&self) -> std::io::Result<Self::Io> {
        self.accept().await.map(|(s, _)| s)
    }
}

/// Runs a hub on `listener` with `config` until `shutdown` completes (then drains in-flight
/// requests, up to the grace period). The library entry point; `hephd --mode server` calls it.
pub async fn run(
    listener: TcpListener,
    config: HubConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let hub = Hub::new(config).await?;
    hub.serve_tcp(listener, shutdown).await
}
