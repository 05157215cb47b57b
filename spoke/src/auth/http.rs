//! The spoke's HTTPS client setup: rustls with the bundled web PKI roots, the system's roots, and an
//! optional `--ca-file` (PEM, one or more certificates) for a hub or IdP with a private CA.
//!
//! The sync client builds its hub client with [`client_builder`] and passes it to
//! `HttpHub::with_client`.

use std::path::Path;
use std::time::Duration;

use super::AuthError;

/// A `reqwest` client builder trusting the web PKI roots, the system's roots and, when given, the
/// certificates in `ca_file`. Connect timeout 10 s; no other settings are made.
pub fn client_builder(ca_file: Option<&Path>) -> Result<reqwest::ClientBuilder, AuthError> {
    let mut b = reqwest::Client::builder().connect_timeout(Duration::from_secs(10));
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        if let Ok(c) = reqwest::Certificate::from_der(&cert) {
            b = b.add_root_certificate(c);
        }
    }
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| AuthError::Tls(format!("--ca-file {}: {e}", path.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            AuthError::Tls(format!(
                "--ca-file {}: not PEM certificates: {e}",
                path.display()
            ))
        })?;
        if certs.is_empty() {
            return Err(AuthError::Tls(format!(
                "--ca-file {}: no certificates in the file",
                path.display()
            )));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    Ok(b)
}

/// The client used for the IdP and the hub's `/config`: [`client_builder`] plus a 30 s request timeout
/// and no redirects (a redirect from an IdP endpoint is refused rather than followed).
pub fn idp_client(ca_file: Option<&Path>) -> Result<reqwest::Client, AuthError> {
    client_builder(ca_file)?
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| AuthError::Tls(format!("cannot build the HTTP client: {e}")))
}
