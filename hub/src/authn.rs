//! The authentication seam: every data route asks an [`Authenticator`] who the caller is.
//!
//! The OIDC verifier (JWT access tokens against the issuer's JWKS) plugs in here by implementing
//! [`Authenticator`]; [`DevAuthenticator`] accepts everything and is only used in loopback dev mode.

use async_trait::async_trait;
use heph_format::OwnerId;

/// Who made a request, as established by an [`Authenticator`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's subject (`sub` claim); `dev` in dev mode.
    pub sub: String,
    /// The owner the token is bound to, when the identity provider says so.
    pub owner: Option<OwnerId>,
}

/// Why a request was not authenticated or not authorised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No usable credentials: answered `401` with this `WWW-Authenticate` value.
    #[error("unauthorized: {reason}")]
    Unauthorized {
        /// Human-readable reason (logged, and sent in the JSON body).
        reason: String,
        /// The `WWW-Authenticate` header value, e.g. `Bearer realm="heph", error="invalid_token"`.
        www_authenticate: String,
    },
    /// Valid credentials, but this caller may not use the hub: answered `403`.
    #[error("forbidden: {reason}")]
    Forbidden {
        /// Human-readable reason.
        reason: String,
    },
    /// The identity provider could not be reached to verify the token: answered `503`.
    #[error("identity provider unavailable: {reason}")]
    Unavailable {
        /// Human-readable reason.
        reason: String,
    },
}

impl AuthError {
    /// A `401` for a request that sent no token at all.
    pub fn missing_token() -> AuthError {
        AuthError::Unauthorized {
            reason: "missing bearer token (send Authorization: Bearer <access token>)".to_owned(),
            www_authenticate: r#"Bearer realm="heph""#.to_owned(),
        }
    }

    /// A `401` for a token that was sent but is not valid.
    pub fn invalid_token(reason: impl Into<String>) -> AuthError {
        let reason = reason.into();
        let desc: String = reason
            .chars()
            .filter(|c| c.is_ascii() && *c != '"' && *c != '\\' && !c.is_ascii_control())
            .take(200)
            .collect();
        AuthError::Unauthorized {
            www_authenticate: format!(
                r#"Bearer realm="heph", error="invalid_token", error_description="{desc}""#
            ),
            reason,
        }
    }
}

/// Decides who a request comes from, from its `Authorization` header value (if any).
#[async_trait]
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    /// Authenticates and authorises one request.
    async fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, AuthError>;

    /// Extra Prometheus text lines for `/metrics` (the OIDC verifier's refusal reasons and JWKS
    /// fetches); empty by default.
    fn metrics_text(&self) -> String {
        String::new()
    }
}

/// Dev mode: every request is the caller `dev`. Only for hubs bound to loopback.
#[derive(Debug, Clone, Copy, Default)]
pub struct DevAuthenticator;

#[async_trait]
impl Authenticator for DevAuthenticator {
    async fn authenticate(&self, _authorization: Option<&str>) -> Result<Caller, AuthError> {
        Ok(Caller {
            sub: "dev".to_owned(),
            owner: None,
        })
    }
}

/// Stands in where an OIDC issuer is configured but no verifier is built in: refuses every data
/// request with `503` rather than letting anything through.
#[derive(Debug, Clone, Default)]
pub struct UnavailableAuthenticator {
    /// Why verification is unavailable.
    pub reason: String,
}

#[async_trait]
impl Authenticator for UnavailableAuthenticator {
    async fn authenticate(&self, _authorization: Option<&str>) -> Result<Caller, AuthError> {
        Err(AuthError::Unavailable {
            reason: self.reason.clone(),
        })
    }
}

/// Parses `Bearer <token>` (scheme case-insensitive); `None` for another scheme or an empty token.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}
