//! TLS termination for the hub (`--tls-cert`, `--tls-key`): PEM loading into a rustls server config
//! (ring provider, TLS 1.2/1.3, ALPN http/1.1) and [`TlsListener`], which accepts TCP connections and
//! performs handshakes off the accept loop (bounded by a timeout) so a slow client cannot stall others.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;

/// Why the TLS configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Only one of `--tls-cert` / `--tls-key` was given.
    #[error("--tls-cert and --tls-key must be given together")]
    Incomplete,
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The certificate file holds no PEM certificate.
    #[error("{path}: no PEM certificate found (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificates {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no PEM private key.
    #[error("{path}: no PEM private key found (PKCS#8, PKCS#1 or SEC1)")]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the certificate/key pair.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Load a rustls server config from a PEM certificate chain and a PEM private key.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::Read {
            path: cert.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificates {
            path: cert.to_path_buf(),
        });
    }
    let key_pem = read(key)?;
    let key_der = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|source| TlsError::Read {
            path: key.to_path_buf(),
            source,
        })?
        .ok_or_else(|| TlsError::NoKey {
            path: key.to_path_buf(),
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| {
            TlsError::Config(format!(
                "certificate and key do not form a usable pair: {e}"
            ))
        })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Accepts TLS connections: a background task accepts TCP and runs each handshake in its own task
/// (at most `handshake_timeout`); finished streams are handed out by [`TlsListener::accept`].
#[derive(Debug)]
pub struct TlsListener {
    rx: tokio::sync::Mutex<tokio::sync::mpsc::Receiver<TlsStream<TcpStream>>>,
    task: tokio::task::JoinHandle<()>,
    local_addr: Option<SocketAddr>,
}

impl TlsListener {
    /// Start accepting on `tcp` with `config`.
    pub fn new(
        tcp: TcpListener,
        config: Arc<rustls::ServerConfig>,
        handshake_timeout: Duration,
    ) -> TlsListener {
        let local_addr = tcp.local_addr().ok();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let task = tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send(tls).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        TlsListener {
            rx: tokio::sync::Mutex::new(rx),
            task,
            local_addr,
        }
    }

    /// The next connection whose handshake completed.
    pub async fn accept(&self) -> std::io::Result<TlsStream<TcpStream>> {
        self.rx
            .lock()
            .await
            .recv()
            .await
            .ok_or_else(|| std::io::Error::other("TLS acceptor stopped"))
    }

    /// The listening address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}
