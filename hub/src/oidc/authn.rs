//! The hub's [`Authenticator`] backed by the OIDC verifier: maps verified tokens to [`Caller`]s and
//! refusals to [`AuthError`] (401 with `WWW-Authenticate`, 403, 503).

use std::sync::Arc;

use async_trait::async_trait;
use heph_format::OwnerId;

use super::{OidcVerifier, VerifyError};
use crate::authn::{AuthError, Authenticator, Caller};

/// [`Authenticator`] that verifies OIDC JWT access tokens with an [`OidcVerifier`].
#[derive(Debug, Clone)]
pub struct OidcAuthenticator {
    verifier: Arc<OidcVerifier>,
}

impl OidcAuthenticator {
    /// Wrap a verifier (call [`OidcVerifier::spawn_refresh`] on it once inside the runtime).
    pub fn new(verifier: Arc<OidcVerifier>) -> OidcAuthenticator {
        OidcAuthenticator { verifier }
    }

    /// The verifier (for its metrics).
    pub fn verifier(&self) -> &Arc<OidcVerifier> {
        &self.verifier
    }
}

/// Map a verifier refusal to the hub's error type.
pub fn to_auth_error(e: &VerifyError) -> AuthError {
    match e.status() {
        403 => AuthError::Forbidden {
            reason: e.to_string(),
        },
        503 => AuthError::Unavailable {
            reason: e.to_string(),
        },
        _ => AuthError::Unauthorized {
            reason: e.to_string(),
            www_authenticate: e
                .www_authenticate()
                .unwrap_or_else(|| "Bearer realm=\"heph\"".to_string()),
        },
    }
}

#[async_trait]
impl Authenticator for OidcAuthenticator {
    async fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, AuthError> {
        let t = self
            .verifier
            .verify_header(authorization)
            .await
            .map_err(|e| to_auth_error(&e))?;
        let owner = match t.owner.as_deref() {
            None => None,
            Some(s) => Some(s.parse::<OwnerId>().map_err(|_| {
                to_auth_error(&VerifyError::MissingClaim(format!(
                    "{} (not an owner id)",
                    self.verifier.config().owner_claim
                )))
            })?),
        };
        Ok(Caller { sub: t.sub, owner })
    }

    fn metrics_text(&self) -> String {
        self.verifier.render_metrics()
    }
}
