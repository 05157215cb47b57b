//! Errors of the OIDC verifier: why a bearer token was refused (401 / 403 / 503) and why the issuer's
//! discovery document or key set could not be used.

/// Why a request's bearer token was not accepted. Each variant maps to one HTTP status
/// ([`VerifyError::status`]) and a stable reason code for logs and metrics ([`VerifyError::reason`]).
/// Messages never contain the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// No `Authorization` header at all.
    #[error(
        "no bearer token: send `Authorization: Bearer <access token>` (log in with `heph auth login`)"
    )]
    Missing,
    /// The `Authorization` header is not `Bearer <token>`.
    #[error("the Authorization header is not a Bearer token")]
    BadScheme,
    /// Not a compact JWS (three base64url parts with a JSON header and payload).
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The header's `alg` is not RS256, ES256 or EdDSA (this covers `none` and every HMAC algorithm).
    #[error("token algorithm {0:?} is not allowed (allowed: RS256, ES256, EdDSA)")]
    AlgorithmNotAllowed(String),
    /// The token is an ID token (or another JWT that is not an access token).
    #[error("not an access token: {0}")]
    NotAccessToken(String),
    /// No key in the issuer's JWKS has this `kid` (even after a refetch).
    #[error("token signed with a key the issuer does not publish (kid {0:?})")]
    UnknownKey(String),
    /// The key named by `kid` cannot verify this algorithm.
    #[error("key {kid:?} cannot verify {alg}")]
    KeyAlgorithmMismatch {
        /// The token's `kid`.
        kid: String,
        /// The token's `alg`.
        alg: String,
    },
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not valid yet (nbf in the future)")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("token issued in the future (iat)")]
    IssuedInFuture,
    /// `iss` is not exactly the configured issuer.
    #[error("wrong issuer {0:?}")]
    WrongIssuer(String),
    /// `aud` does not contain the configured audience.
    #[error("wrong audience (expected {0:?})")]
    WrongAudience(String),
    /// A required claim (`exp`, `iss`, `aud`, `sub`) is missing or has the wrong type.
    #[error("missing or invalid claim {0:?}")]
    MissingClaim(String),
    /// The token is valid but its subject is not authorised on this hub.
    #[error("subject {sub:?} is not authorised: {reason}")]
    Forbidden {
        /// The token's `sub`.
        sub: String,
        /// Why (not in the allowlist, missing group).
        reason: String,
    },
    /// The issuer's keys are not available (discovery not completed yet: the IdP is unreachable).
    #[error("identity provider unavailable: {0}")]
    Unavailable(String),
}

impl VerifyError {
    /// HTTP status for this refusal: 401 (token missing/invalid), 403 (valid but not allowed),
    /// 503 (the IdP could not be reached, retry).
    pub fn status(&self) -> u16 {
        match self {
            VerifyError::Forbidden { .. } => 403,
            VerifyError::Unavailable(_) => 503,
            _ => 401,
        }
    }

    /// Stable short code for logs and metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            VerifyError::Missing => "missing",
            VerifyError::BadScheme => "bad_scheme",
            VerifyError::Malformed(_) => "malformed",
            VerifyError::AlgorithmNotAllowed(_) => "alg_not_allowed",
            VerifyError::NotAccessToken(_) => "not_access_token",
            VerifyError::UnknownKey(_) => "unknown_kid",
            VerifyError::KeyAlgorithmMismatch { .. } => "key_alg_mismatch",
            VerifyError::BadSignature => "bad_signature",
            VerifyError::Expired => "expired",
            VerifyError::NotYetValid => "not_yet_valid",
            VerifyError::IssuedInFuture => "iat_in_future",
            VerifyError::WrongIssuer(_) => "wrong_issuer",
            VerifyError::WrongAudience(_) => "wrong_audience",
            VerifyError::MissingClaim(_) => "missing_claim",
            VerifyError::Forbidden { .. } => "forbidden",
            VerifyError::Unavailable(_) => "idp_unavailable",
        }
    }

    /// The `WWW-Authenticate` value for a 401 (RFC 6750 §3): no `error` when no token was sent,
    /// `error="invalid_token"` with a description otherwise. `None` for 403/503.
    pub fn www_authenticate(&self) -> Option<String> {
        match self.status() {
            401 => Some(match self {
                VerifyError::Missing => "Bearer realm=\"heph\"".to_string(),
                other => format!(
                    "Bearer realm=\"heph\", error=\"invalid_token\", error_description=\"{}\"",
                    quote_safe(&other.to_string())
                ),
            }),
            _ => None,
        }
    }
}

/// RFC 6750 restricts error_description to printable ASCII without `"` and `\`.
fn quote_safe(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            c if (' '..='~').contains(&c) => c,
            _ => '?',
        })
        .collect()
}

/// Why the issuer's configuration could not be loaded (discovery, JWKS, configuration).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OidcError {
    /// The verifier configuration is unusable.
    #[error("invalid OIDC configuration: {0}")]
    Config(String),
    /// The discovery document or JWKS could not be fetched (network, HTTP status).
    #[error("cannot fetch {url}: {message}")]
    Fetch {
        /// What was fetched.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The discovery document's `issuer` is not the configured issuer (OIDC Discovery §4.3).
    #[error(
        "discovery document at {url} names issuer {found:?}, expected exactly {expected:?} (check --oidc-issuer, including the trailing slash)"
    )]
    IssuerMismatch {
        /// Discovery URL.
        url: String,
        /// Configured issuer.
        expected: String,
        /// Issuer in the document.
        found: String,
    },
    /// The discovery document or JWKS is not what the specs describe.
    #[error("invalid document at {url}: {message}")]
    BadDocument {
        /// Document URL.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The JWKS holds no key the verifier can use (RSA / P-256 / Ed25519 signature keys).
    #[error("JWKS at {url} has no usable signing keys ({skipped} skipped: {details})")]
    NoUsableKeys {
        /// JWKS URL.
        url: String,
        /// Number of keys skipped.
        skipped: usize,
        /// Why they were skipped.
        details: String,
    },
}
