//! Spoke-side OIDC: `heph auth login|logout|whoami` (device authorization grant, RFC 8628), the token store
//! (0600 JSON file per normalised hub URL, or `--token-load-cmd`/`--token-save-cmd` run without a shell),
//! and [`AuthSession`], the bearer-token source the sync client uses (refreshes before expiry, reports
//! `auth_failure`). Also [`http::client_builder`], the HTTPS client (system roots + `--ca-file`).

pub mod cli;
pub mod device;
pub mod http;
pub mod session;
pub mod store;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use device::{DeviceLogin, LoginOptions};
pub use session::{AuthSession, AuthState, ExpectedIdp};
pub use store::{TokenStore, normalise_hub_url};

/// Scopes requested at login. `offline_access` is what makes the IdP issue a refresh token.
pub const SCOPES: [&str; 4] = ["openid", "email", "profile", "offline_access"];

/// The stored token set of one hub (the JSON written to the token file / passed to the save command).
///
/// Field order is the on-disk order; `version` is bumped on incompatible changes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSet {
    /// Format version (1).
    pub version: u32,
    /// The normalised hub URL these tokens are for.
    pub hub_url: String,
    /// The OIDC issuer.
    pub issuer: String,
    /// The OAuth client id.
    pub client_id: String,
    /// The issuer's token endpoint (used for refresh without a discovery round trip).
    pub token_endpoint: String,
    /// The bearer access token.
    pub access_token: String,
    /// Seconds since the Unix epoch when the access token expires (from `expires_in`, else its `exp`).
    pub expires_at: Option<u64>,
    /// The refresh token (absent when `offline_access` was not granted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The ID token from the login (who approved it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// Granted scopes, space-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("hub_url", &self.hub_url)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("expires_at", &self.expires_at)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

/// Errors of login, token storage and refresh. Messages never contain a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The hub URL is not an http(s) URL.
    #[error("bad hub URL {url:?}: {reason}")]
    BadHubUrl {
        /// What was given.
        url: String,
        /// Why it is unusable.
        reason: String,
    },
    /// `GET /config` on the hub failed.
    #[error(
        "cannot read {url}: {message} (pass --issuer and --client-id to log in without the hub)"
    )]
    HubConfig {
        /// The config URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// Neither the flags nor the hub name an issuer / client id.
    #[error("{0}")]
    MissingSetting(String),
    /// Discovery at the issuer failed.
    #[error("OpenID discovery at {issuer} failed: {message}")]
    Discovery {
        /// The issuer.
        issuer: String,
        /// What went wrong.
        message: String,
    },
    /// The device authorization request failed.
    #[error("device authorization failed: {0}")]
    DeviceAuthorization(String),
    /// The person approving the login denied it.
    #[error(
        "the login was denied in the browser (access_denied); run `heph auth login` again to retry"
    )]
    AccessDenied,
    /// The user code expired before it was approved.
    #[error("the code expired before it was approved (expired_token); run `heph auth login` again")]
    ExpiredCode,
    /// Polling the token endpoint failed for another reason.
    #[error("token request failed: {0}")]
    Token(String),
    /// The ID token did not verify.
    #[error("the ID token from the login did not verify: {0}")]
    IdToken(String),
    /// A token file could not be read or written.
    #[error("token file {path}: {message}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// What went wrong (never the content).
        message: String,
    },
    /// A token file is readable by others.
    #[error(
        "token file {path} has mode {mode:o}: it holds credentials and must be private (chmod 600 {path})",
        path = path.display()
    )]
    LoosePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// `--token-load-cmd` / `--token-save-cmd` failed or printed something unusable.
    #[error("--{which} failed: {message}")]
    Command {
        /// `token-load-cmd` or `token-save-cmd`.
        which: &'static str,
        /// What went wrong (never the token).
        message: String,
    },
    /// No tokens for this hub.
    #[error("not logged in to {hub}: run `heph auth login --hub-url {hub}`")]
    NotLoggedIn {
        /// The normalised hub URL.
        hub: String,
    },
    /// The access token expired and could not be refreshed.
    #[error("auth_failure: {0}; run `heph auth login`")]
    RefreshFailed(String),
    /// HTTP client setup (CA file) failed.
    #[error("{0}")]
    Tls(String),
    /// The stored tokens come from another IdP (or client) than `--oidc-issuer` / `--oidc-client-id` name.
    #[error(
        "the tokens in {source_desc} were issued {what} {stored:?}, but {flag} says {expected:?}: \
         log in again for that IdP (`heph auth login --hub-url URL --issuer ISSUER --client-id ID`) or correct {flag}"
    )]
    IdpMismatch {
        /// Where the tokens came from (file path or `commands (…)`).
        source_desc: String,
        /// `by the issuer` or `for the client id`.
        what: &'static str,
        /// `--oidc-issuer` or `--oidc-client-id`.
        flag: &'static str,
        /// What the token set says.
        stored: String,
        /// What the flag says.
        expected: String,
    },
}

/// Current time in seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Decode a JWT's payload WITHOUT verifying it (display and expiry bookkeeping only; the hub verifies).
pub fn unverified_claims(jwt: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    use base64::Engine;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        serde_json::Value::Object(m) => Some(m),
        _ => None,
    }
}
