//! The `hephd --mode server` flags ([`HubArgs`]) and [`serve`], which turns them into a running hub.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use heph_format::OwnerId;
use tokio::net::TcpListener;

use crate::authn::{Authenticator, DevAuthenticator};
use crate::oidc::{OidcAuthenticator, OidcConfig, OidcError, OidcVerifier, TokenTypePolicy};
use crate::server::{Hub, HubConfig, ServerError};
use crate::store::{S3Options, StoreError, open_store};

/// Flags of `hephd --mode server` (the existing deployment's flags plus the store's).
#[derive(Debug, Clone, clap::Args)]
pub struct HubArgs {
    /// Address to serve HTTP on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8787")]
    pub http_addr: SocketAddr,
    /// Database path; the embedded store lives beside it in `<dir of PATH>/hub-store/`
    /// (default ~/.local/share/heph/heph.db). Ignored when --store is given.
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Store URL: `file:///dir` or `s3://bucket/prefix` (overrides --db).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// S3 endpoint URL (else AWS_ENDPOINT_URL), e.g. http://127.0.0.1:8333.
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// S3 region (else AWS_REGION, else us-east-1).
    #[arg(long, value_name = "REGION")]
    pub s3_region: Option<String>,
    /// S3 access key id (else AWS_ACCESS_KEY_ID).
    #[arg(long, value_name = "ID")]
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key (else AWS_SECRET_ACCESS_KEY).
    #[arg(long, value_name = "KEY")]
    pub s3_secret_access_key: Option<String>,
    /// Also serve the HTTP API on this Unix socket.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Directory of the PWA's static files.
    #[arg(long, value_name = "DIR")]
    pub web_root: Option<PathBuf>,
    /// OIDC issuer URL; without it the hub runs in loopback-only dev mode. In --mode local: the IdP the
    /// device's tokens must come from (a token set of another issuer is a startup error).
    #[arg(long, value_name = "URL")]
    pub oidc_issuer: Option<String>,
    /// Audience access tokens must carry.
    #[arg(long, value_name = "AUD")]
    pub oidc_audience: Option<String>,
    /// OIDC client id reported in /config for spokes and the PWA. In --mode local: the client the device's
    /// tokens must belong to.
    #[arg(long, value_name = "ID")]
    pub oidc_client_id: Option<String>,
    /// Subject allowed to use the hub (repeatable).
    #[arg(long, value_name = "SUB")]
    pub authorized_sub: Vec<String>,
    /// Group claim a caller must have.
    #[arg(long, value_name = "GROUP")]
    pub required_group: Option<String>,
    /// Clock leeway for the token's exp/nbf/iat (seconds).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub oidc_leeway_secs: u64,
    /// Claim holding the caller's groups.
    #[arg(long, value_name = "CLAIM", default_value = "groups")]
    pub oidc_groups_claim: String,
    /// Accept untyped JWT access tokens (Authentik); ID tokens are then told apart by their
    /// nonce/at_hash claims instead of the RFC 9068 `typ: at+jwt` header. See docs/security.md.
    #[arg(long)]
    pub oidc_accept_untyped_tokens: bool,
    /// The owner this hub serves (else the store's, or the first pusher's).
    #[arg(long, value_name = "ULID")]
    pub owner_id: Option<OwnerId>,
    /// Poll for and install new releases.
    #[arg(long)]
    pub self_update: bool,
    /// Self-update poll interval.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub self_update_interval_secs: u64,
    /// TLS certificate (PEM).
    #[arg(long, value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "PATH")]
    pub tls_key: Option<PathBuf>,
    /// How long cached heads are trusted before the store is asked again (ms).
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub revalidate_ms: u64,
    /// How long shutdown waits for in-flight requests (s).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,
}

/// Why `hephd --mode server` could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The store could not be opened.
    #[error("opening the store: {0}")]
    Store(#[from] StoreError),
    /// The hub refused its configuration or failed.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The OIDC flags are unusable.
    #[error(transparent)]
    Oidc(#[from] OidcError),
    /// No --db, no --store and no HOME to default from.
    #[error("no store location: pass --db PATH or --store URL (HOME is not set)")]
    NoStoreLocation,
    /// Binding a socket failed.
    #[error("binding {what}: {source}")]
    Bind {
        /// What was bound.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl HubArgs {
    /// The store URL these flags name.
    pub fn store_url(&self) -> Result<String, ServeError> {
        if let Some(url) = &self.store {
            return Ok(url.clone());
        }
        let db = match &self.db {
            Some(p) => p.clone(),
            None => {
                let home = std::env::var_os("HOME").ok_or(ServeError::NoStoreLocation)?;
                Path::new(&home).join(".local/share/heph/heph.db")
            }
        };
        let db = std::path::absolute(&db).unwrap_or(db);
        let dir = db
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        Ok(format!("file://{}", dir.join("hub-store").display()))
    }

    /// The S3 settings from these flags.
    pub fn s3_options(&self) -> S3Options {
        S3Options {
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            access_key_id: self.s3_access_key_id.clone(),
            secret_access_key: self.s3_secret_access_key.clone(),
        }
    }

    /// The authenticator these flags call for: dev mode without an issuer, else the OIDC verifier
    /// (its background discovery task is spawned here, so call this inside the tokio runtime).
    pub fn authenticator(&self) -> Result<Arc<dyn Authenticator>, ServeError> {
        let Some(issuer) = &self.oidc_issuer else {
            return Ok(Arc::new(DevAuthenticator));
        };
        let audience = self
            .oidc_audience
            .clone()
            .or_else(|| self.oidc_client_id.clone())
            .ok_or_else(|| {
                OidcError::Config("--oidc-issuer needs --oidc-audience (e.g. heph)".into())
            })?;
        let mut cfg = OidcConfig::new(issuer.clone(), audience);
        cfg.authorized_subs = self.authorized_sub.clone();
        cfg.required_group = self.required_group.clone();
        cfg.leeway = Duration::from_secs(self.oidc_leeway_secs);
        cfg.groups_claim = self.oidc_groups_claim.clone();
        if self.oidc_accept_untyped_tokens {
            cfg.token_type = TokenTypePolicy::Untyped;
        }
        let verifier = OidcVerifier::new(cfg)?;
        verifier.spawn_refresh();
        Ok(Arc::new(OidcAuthenticator::new(verifier)))
    }

    /// Builds the hub config (opening the store).
    pub async fn config(&self) -> Result<HubConfig, ServeError> {
        let url = self.store_url()?;
        let store = open_store(&url, &self.s3_options()).await?;
        let mut c = HubConfig::new(store, self.authenticator()?);
        c.dev_mode = self.oidc_issuer.is_none();
        c.owner = self.owner_id;
        c.web_root = self.web_root.clone();
        c.oidc_issuer = self.oidc_issuer.clone();
        c.oidc_audience = self.oidc_audience.clone();
        c.oidc_client_id = self.oidc_client_id.clone();
        c.authorized_subs = self.authorized_sub.clone();
        c.required_group = self.required_group.clone();
        c.self_update = self.self_update;
        c.self_update_interval_secs = self.self_update_interval_secs;
        c.tls_cert = self.tls_cert.clone();
        c.tls_key = self.tls_key.clone();
        c.revalidate = Duration::from_millis(self.revalidate_ms);
        c.shutdown_grace = Duration::from_secs(self.shutdown_grace_secs);
        Ok(c)
    }
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs `hephd --mode server` with `args` until SIGTERM/SIGINT.
pub async fn serve(args: HubArgs) -> Result<(), ServeError> {
    serve_with(args, None).await
}

/// [`serve`], with extra `/healthz` fields and `/metrics` lines from the caller (the self-updater).
pub async fn serve_with(
    args: HubArgs,
    extension: Option<Arc<dyn crate::server::StatusExtension>>,
) -> Result<(), ServeError> {
    let dev_mode = args.oidc_issuer.is_none();
    if dev_mode && !args.http_addr.ip().is_loopback() {
        return Err(ServerError::DevModeNonLoopback {
            addr: args.http_addr,
        }
        .into());
    }
    let mut config = args.config().await?;
    config.status_extension = extension;
    if config.dev_mode {
        tracing::warn!(
            "DEV MODE: no --oidc-issuer configured; every request is accepted without a token, and only loopback addresses may be bound"
        );
    }
    let store_desc = config.store.describe();
    let hub = Hub::new(config).await?;
    let listener = TcpListener::bind(args.http_addr)
        .await
        .map_err(|source| ServeError::Bind {
            what: args.http_addr.to_string(),
            source,
        })?;
    let addr = listener.local_addr().unwrap_or(args.http_addr);
    tracing::info!(
        version = crate::VERSION, commit = crate::BUILD_COMMIT, %addr, store = %store_desc,
        "hub listening on {}://{addr}", if hub.is_tls() { "https" } else { "http" }
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let wait_stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let hub = Arc::new(hub);
    #[cfg(unix)]
    let unix_task = match &args.socket {
        Some(path) => {
            // A stale socket from an earlier run blocks bind; remove only a socket file.
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                use std::os::unix::fs::FileTypeExt;
                if meta.file_type().is_socket() {
                    let _ = std::fs::remove_file(path);
                }
            }
            let ul = tokio::net::UnixListener::bind(path).map_err(|source| ServeError::Bind {
                what: path.display().to_string(),
                source,
            })?;
            tracing::info!(socket = %path.display(), "also serving on the Unix socket");
            let hub = Arc::clone(&hub);
            let rx = stop_rx.clone();
            Some(tokio::spawn(async move {
                hub.serve_unix(ul, wait_stop(rx)).await
            }))
        }
        None => None,
    };
    let result = hub
        .serve_tcp(listener, async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        })
        .await;
    #[cfg(unix)]
    if let Some(t) = unix_task {
        let _ = t.await;
        if let Some(p) = &args.socket {
            let _ = std::fs::remove_file(p);
        }
    }
    drop(stop_rx);
    tracing::info!("hub stopped");
    result.map_err(ServeError::from)
}
