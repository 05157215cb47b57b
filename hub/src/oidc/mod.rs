//! OIDC bearer-token verification for the hub: discovery and JWKS cache, JWT access-token checks
//! (algorithm allowlist, exact issuer, audience, time claims, ID-token rejection) and authorisation by
//! subject allowlist or group. See docs/security.md for the threat model and the rules.
//!
//! Use: build an [`OidcConfig`], [`OidcVerifier::new`], then [`OidcVerifier::spawn_refresh`] once inside the
//! tokio runtime (it retries discovery until the issuer answers, then refreshes the JWKS periodically);
//! [`OidcVerifier::verify`] / [`OidcVerifier::verify_header`] per request.

mod authn;
mod error;
mod keys;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::Validation;
use serde::Deserialize;

pub use authn::{OidcAuthenticator, to_auth_error};
pub use error::{OidcError, VerifyError};

/// Longest bearer token the verifier reads (bytes); longer ones are refused without parsing.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// How the verifier tells access tokens from ID tokens (see docs/security.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenTypePolicy {
    /// RFC 9068: the JWT header must say `typ: at+jwt` (or `application/at+jwt`). ID tokens never do.
    /// This is what the test IdP (oidc-provider with resource indicators) issues.
    Rfc9068,
    /// For IdPs whose access tokens are untyped JWTs (Authentik): `typ` may be absent or `JWT`, and a token
    /// carrying ID-token-only claims (`nonce`, `at_hash`, `c_hash`, `s_hash`) is refused.
    Untyped,
}

/// Configuration of the verifier (the `--oidc-*` flags of `hephd --mode server`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OidcConfig {
    /// The issuer, compared byte for byte with the token's `iss` and the discovery document's `issuer`.
    pub issuer: String,
    /// The audience that must appear in the token's `aud`.
    pub audience: String,
    /// Subjects allowed in (`--authorized-sub`, repeatable).
    pub authorized_subs: Vec<String>,
    /// A group whose members are allowed in (`--required-group`).
    pub required_group: Option<String>,
    /// Claim holding the groups (array of strings or a single string). Default `groups`.
    pub groups_claim: String,
    /// Optional claim naming the owner the token is for. Default `heph_owner`.
    pub owner_claim: String,
    /// Clock leeway for `exp`, `nbf`, `iat`. Default 60 s.
    pub leeway: Duration,
    /// How access tokens are told from ID tokens.
    pub token_type: TokenTypePolicy,
    /// Minimum time between two JWKS refetches caused by an unknown `kid`. Default 30 s.
    pub refetch_min_interval: Duration,
    /// Periodic JWKS refresh interval once discovery succeeded. Default 1 h.
    pub refresh_interval: Duration,
    /// Delay before the first discovery retry; doubles up to 30 s. Default 1 s.
    pub retry_initial: Duration,
    /// Timeout of each HTTP request to the IdP. Default 10 s.
    pub http_timeout: Duration,
}

impl OidcConfig {
    /// A configuration with the defaults above and no authorisation rule yet.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> OidcConfig {
        OidcConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            authorized_subs: Vec::new(),
            required_group: None,
            groups_claim: "groups".into(),
            owner_claim: "heph_owner".into(),
            leeway: Duration::from_secs(60),
            token_type: TokenTypePolicy::Rfc9068,
            refetch_min_interval: Duration::from_secs(30),
            refresh_interval: Duration::from_secs(3600),
            retry_initial: Duration::from_secs(1),
            http_timeout: Duration::from_secs(10),
        }
    }

    fn validate(&self) -> Result<(), OidcError> {
        let issuer = self.issuer.as_str();
        if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
            return Err(OidcError::Config(format!(
                "issuer {issuer:?} must be an http(s) URL"
            )));
        }
        if self.audience.is_empty() {
            return Err(OidcError::Config("audience must not be empty".into()));
        }
        if self.authorized_subs.is_empty() && self.required_group.is_none() {
            return Err(OidcError::Config(
                "no authorisation rule: give --authorized-sub SUB (repeatable) and/or --required-group GROUP".into(),
            ));
        }
        Ok(())
    }
}

/// What a verified, authorised token says about its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedToken {
    /// The token's `sub`.
    pub sub: String,
    /// The owner claim, when the token carries one (checked against the hub's owner by the caller).
    pub owner: Option<String>,
    /// Groups from the groups claim.
    pub groups: Vec<String>,
    /// `exp` (seconds since the Unix epoch).
    pub exp: u64,
}

/// Counters exported on `/metrics` (see [`OidcVerifier::render_metrics`]).
#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    unauthorized: AtomicU64,
    forbidden: AtomicU64,
    unavailable: AtomicU64,
    jwks_fetches: AtomicU64,
    jwks_fetch_errors: AtomicU64,
    refetch_rate_limited: AtomicU64,
    cache_hits: AtomicU64,
    by_reason: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

#[derive(Debug)]
enum KeyState {
    /// Discovery has not succeeded yet; the last error says why.
    Pending(String),
    Ready {
        jwks_uri: String,
        keys: Arc<keys::KeySet>,
    },
}

/// The verifier. Cheap to share (`Arc`); all methods take `&self`.
#[derive(Debug)]
pub struct OidcVerifier {
    cfg: OidcConfig,
    http: reqwest::Client,
    state: RwLock<KeyState>,
    /// Time of the last unknown-`kid` refetch; held across the refetch so concurrent callers wait for it.
    last_refetch: tokio::sync::Mutex<Option<Instant>>,
    counters: Counters,
    /// Tokens that passed every check, by blake3 of the token: a hit skips the signature check (only
    /// `exp` is re-checked). Cleared whenever the key set is replaced; emptied when full.
    accepted_cache: std::sync::Mutex<std::collections::HashMap<[u8; 32], VerifiedToken>>,
}

/// Most tokens kept in the accepted-token cache.
const ACCEPTED_CACHE_MAX: usize = 4096;

#[derive(Debug, Deserialize)]
struct RawHeader {
    alg: Option<String>,
    typ: Option<String>,
    kid: Option<String>,
    crit: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: Option<String>,
    exp: Option<u64>,
    iat: Option<u64>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

const ID_TOKEN_ONLY_CLAIMS: [&str; 4] = ["nonce", "at_hash", "c_hash", "s_hash"];

impl OidcVerifier {
    /// Check the configuration and build the verifier. No network traffic yet.
    pub fn new(cfg: OidcConfig) -> Result<Arc<OidcVerifier>, OidcError> {
        cfg.validate()?;
        let http = keys::http_client(cfg.http_timeout)?;
        if cfg.authorized_subs.is_empty() {
            tracing::info!(group = ?cfg.required_group, "oidc: authorising members of the required group");
        }
        Ok(Arc::new(OidcVerifier {
            state: RwLock::new(KeyState::Pending("discovery not attempted yet".into())),
            cfg,
            http,
            last_refetch: tokio::sync::Mutex::new(None),
            counters: Counters::default(),
            accepted_cache: std::sync::Mutex::new(std::collections::HashMap::new()),
        }))
    }

    /// The configuration in use.
    pub fn config(&self) -> &OidcConfig {
        &self.cfg
    }

    /// `true` once discovery and a JWKS fetch have succeeded.
    pub fn is_ready(&self) -> bool {
        matches!(*self.read_state(), KeyState::Ready { .. })
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, KeyState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, KeyState> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Run discovery and fetch the JWKS now. On failure the previous keys (if any) stay in use.
    pub async fn refresh(&self) -> Result<(), OidcError> {
        let known_uri = match &*self.read_state() {
            KeyState::Ready { jwks_uri, .. } => Some(jwks_uri.clone()),
            KeyState::Pending(_) => None,
        };
        let result = async {
            let jwks_uri = match known_uri {
                Some(u) => u,
                None => keys::discover(&self.http, &self.cfg.issuer).await?,
            };
            self.counters.jwks_fetches.fetch_add(1, Ordering::Relaxed);
            let set = keys::fetch_jwks(&self.http, &jwks_uri).await?;
            Ok::<_, OidcError>((jwks_uri, set))
        }
        .await;
        match result {
            Ok((jwks_uri, set)) => {
                tracing::info!(issuer = %self.cfg.issuer, keys = set.by_kid.len(), "oidc: signing keys loaded");
                *self.write_state() = KeyState::Ready {
                    jwks_uri,
                    keys: Arc::new(set),
                };
                self.accepted_cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clear();
                Ok(())
            }
            Err(e) => {
                self.counters
                    .jwks_fetch_errors
                    .fetch_add(1, Ordering::Relaxed);
                let mut st = self.write_state();
                if let KeyState::Pending(msg) = &mut *st {
                    *msg = e.to_string();
                }
                Err(e)
            }
        }
    }

    /// Spawn the background task: retry discovery (1 s doubling to 30 s) until it succeeds, then refresh
    /// the JWKS every `refresh_interval` (keeping the cached keys when the IdP is down). The task ends when
    /// the verifier is dropped.
    pub fn spawn_refresh(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut delay = weak
                .upgrade()
                .map(|v| v.cfg.retry_initial)
                .unwrap_or_default();
            loop {
                let Some(v) = weak.upgrade() else { return };
                let next = match v.refresh().await {
                    Ok(()) => {
                        delay = v.cfg.retry_initial;
                        v.cfg.refresh_interval
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?delay, "oidc: cannot load the issuer's keys");
                        let d = delay;
                        delay = (delay * 2).min(Duration::from_secs(30));
                        if v.is_ready() {
                            v.cfg.refetch_min_interval.max(d)
                        } else {
                            d
                        }
                    }
                };
                drop(v);
                tokio::time::sleep(next).await;
            }
        })
    }

    /// Verify an `Authorization` header value (`None` when the header is absent).
    pub async fn verify_header(
        &self,
        authorization: Option<&str>,
    ) -> Result<VerifiedToken, VerifyError> {
        let result = match authorization {
            None => Err(VerifyError::Missing),
            Some(h) => match bearer_token(h) {
                Some(t) => self.verify_inner(t).await,
                None => Err(VerifyError::BadScheme),
            },
        };
        self.record(&result);
        result
    }

    /// Verify a bare token (no `Bearer ` prefix).
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        let result = self.verify_inner(token).await;
        self.record(&result);
        result
    }

    fn record(&self, result: &Result<VerifiedToken, VerifyError>) {
        match result {
            Ok(t) => {
                self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(sub = %t.sub, "oidc: token accepted");
            }
            Err(e) => {
                let c = match e.status() {
                    403 => &self.counters.forbidden,
                    503 => &self.counters.unavailable,
                    _ => &self.counters.unauthorized,
                };
                c.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut m) = self.counters.by_reason.lock() {
                    *m.entry(e.reason()).or_insert(0) += 1;
                }
                tracing::info!(status = e.status(), reason = e.reason(), detail = %e, "oidc: request refused");
            }
        }
    }

    async fn verify_inner(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(VerifyError::Malformed(format!(
                "longer than {MAX_TOKEN_LEN} bytes"
            )));
        }
        let digest = *blake3::hash(token.as_bytes()).as_bytes();
        {
            let mut cache = self
                .accepted_cache
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(hit) = cache.get(&digest) {
                if hit.exp + self.cfg.leeway.as_secs() >= now_secs() {
                    self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(hit.clone());
                }
                cache.remove(&digest);
                return Err(VerifyError::Expired);
            }
        }
        let verified = self.verify_uncached(token).await?;
        let mut cache = self
            .accepted_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if cache.len() >= ACCEPTED_CACHE_MAX {
            cache.clear();
        }
        cache.insert(digest, verified.clone());
        Ok(verified)
    }

    async fn verify_uncached(&self, token: &str) -> Result<VerifiedToken, VerifyError> {
        let mut parts = token.split('.');
        let (Some(h64), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VerifyError::Malformed(
                "not three dot-separated parts (JWE and opaque tokens are not accepted)".into(),
            ));
        };
        let header_bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(h64)
            .map_err(|_| VerifyError::Malformed("header is not base64url".into()))?;
        let header: RawHeader = serde_json::from_slice(&header_bytes)
            .map_err(|_| VerifyError::Malformed("header is not a JSON object".into()))?;
        let alg_name = header
            .alg
            .ok_or_else(|| VerifyError::Malformed("header has no alg".into()))?;
        let alg = keys::allowed_alg(&alg_name)
            .ok_or(VerifyError::AlgorithmNotAllowed(alg_name.clone()))?;
        if header.crit.is_some() {
            return Err(VerifyError::Malformed(
                "critical header parameters are not supported".into(),
            ));
        }
        let typ = header.typ.as_deref().map(str::to_ascii_lowercase);
        match (self.cfg.token_type, typ.as_deref()) {
            (_, Some("at+jwt" | "application/at+jwt")) => {}
            (TokenTypePolicy::Untyped, None | Some("jwt")) => {}
            (TokenTypePolicy::Rfc9068, None | Some("jwt")) => {
                return Err(VerifyError::NotAccessToken(
                    "header typ is not at+jwt (an ID token, or an IdP without RFC 9068 access tokens)".into(),
                ));
            }
            (_, Some(other)) => {
                return Err(VerifyError::NotAccessToken(format!("header typ {other:?}")));
            }
        }
        let kid = header.kid.unwrap_or_default();
        let key_set = self.key_for(&kid).await?;
        let Some(key) = key_set.by_kid.get(&kid) else {
            return Err(VerifyError::UnknownKey(kid));
        };
        if key.alg != alg {
            return Err(VerifyError::KeyAlgorithmMismatch { kid, alg: alg_name });
        }

        let mut v = Validation::new(alg);
        v.algorithms = vec![alg];
        v.leeway = self.cfg.leeway.as_secs();
        v.validate_exp = true;
        v.validate_nbf = true;
        v.validate_aud = true;
        v.set_audience(&[self.cfg.audience.as_str()]);
        v.set_issuer(&[self.cfg.issuer.as_str()]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &v)
            .map_err(|e| self.map_jwt_error(e))?;
        let claims = data.claims;
        let now = now_secs();
        if let Some(iat) = claims.iat
            && iat > now + self.cfg.leeway.as_secs()
        {
            return Err(VerifyError::IssuedInFuture);
        }
        if let Some(c) = ID_TOKEN_ONLY_CLAIMS
            .iter()
            .find(|c| claims.rest.contains_key(**c))
        {
            return Err(VerifyError::NotAccessToken(format!(
                "carries the ID-token claim {c:?}"
            )));
        }
        let sub = claims
            .sub
            .filter(|s| !s.is_empty())
            .ok_or(VerifyError::MissingClaim("sub".into()))?;
        let groups = match claims.rest.get(&self.cfg.groups_claim) {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|g| g.as_str().map(String::from))
                .collect(),
            Some(_) => return Err(VerifyError::MissingClaim(self.cfg.groups_claim.clone())),
        };
        let owner = match claims.rest.get(&self.cfg.owner_claim) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(VerifyError::MissingClaim(self.cfg.owner_claim.clone())),
        };
        let exp = claims.exp.ok_or(VerifyError::MissingClaim("exp".into()))?;

        let by_sub = self.cfg.authorized_subs.contains(&sub);
        let by_group = self
            .cfg
            .required_group
            .as_ref()
            .is_some_and(|g| groups.iter().any(|x| x == g));
        if !(by_sub || by_group) {
            let reason = match &self.cfg.required_group {
                Some(g) if self.cfg.authorized_subs.is_empty() => format!("not in group {g:?}"),
                Some(g) => format!("not in --authorized-sub and not in group {g:?}"),
                None => "not in --authorized-sub".to_string(),
            };
            return Err(VerifyError::Forbidden { sub, reason });
        }
        Ok(VerifiedToken {
            sub,
            owner,
            groups,
            exp,
        })
    }

    fn map_jwt_error(&self, e: jsonwebtoken::errors::Error) -> VerifyError {
        use jsonwebtoken::errors::ErrorKind as K;
        match e.kind() {
            K::InvalidSignature => VerifyError::BadSignature,
            K::ExpiredSignature => VerifyError::Expired,
            K::ImmatureSignature => VerifyError::NotYetValid,
            K::InvalidIssuer => {
                VerifyError::WrongIssuer("iss differs from the configured issuer".into())
            }
            K::InvalidAudience => VerifyError::WrongAudience(self.cfg.audience.clone()),
            K::MissingRequiredClaim(c) => VerifyError::MissingClaim(c.clone()),
            K::InvalidClaimFormat(c) => VerifyError::MissingClaim(c.clone()),
            K::InvalidAlgorithm => VerifyError::AlgorithmNotAllowed("mismatch".into()),
            K::Base64(_) | K::Json(_) | K::Utf8(_) | K::InvalidToken => {
                VerifyError::Malformed("payload or signature is not valid base64url JSON".into())
            }
            _ => VerifyError::BadSignature,
        }
    }

    /// The key set to use for `kid`, refetching the JWKS (rate-limited) when `kid` is unknown.
    async fn key_for(&self, kid: &str) -> Result<Arc<keys::KeySet>, VerifyError> {
        let current = match &*self.read_state() {
            KeyState::Pending(why) => return Err(VerifyError::Unavailable(why.clone())),
            KeyState::Ready { keys, .. } => keys.clone(),
        };
        if current.by_kid.contains_key(kid) {
            return Ok(current);
        }
        let mut last = self.last_refetch.lock().await;
        // Another request may have refetched while we waited.
        if let KeyState::Ready { keys, .. } = &*self.read_state()
            && keys.by_kid.contains_key(kid)
        {
            return Ok(keys.clone());
        }
        if last.is_some_and(|t| t.elapsed() < self.cfg.refetch_min_interval) {
            self.counters
                .refetch_rate_limited
                .fetch_add(1, Ordering::Relaxed);
            return Err(VerifyError::UnknownKey(kid.to_string()));
        }
        *last = Some(Instant::now());
        tracing::info!(kid, "oidc: unknown kid, refetching the JWKS");
        if let Err(e) = self.refresh().await {
            tracing::warn!(error = %e, "oidc: JWKS refetch failed, keeping the cached keys");
        }
        match &*self.read_state() {
            KeyState::Ready { keys, .. } => Ok(keys.clone()),
            KeyState::Pending(why) => Err(VerifyError::Unavailable(why.clone())),
        }
    }

    /// Prometheus text lines for the hub's `/metrics`.
    pub fn render_metrics(&self) -> String {
        let c = &self.counters;
        let mut out = String::new();
        let mut line = |name: &str, help: &str, v: u64| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
            ));
        };
        line(
            "heph_auth_accepted_total",
            "Bearer tokens accepted.",
            c.accepted.load(Ordering::Relaxed),
        );
        line(
            "heph_auth_unauthorized_total",
            "Requests refused with 401.",
            c.unauthorized.load(Ordering::Relaxed),
        );
        line(
            "heph_auth_forbidden_total",
            "Requests refused with 403.",
            c.forbidden.load(Ordering::Relaxed),
        );
        line(
            "heph_auth_unavailable_total",
            "Requests refused with 503 (IdP unavailable).",
            c.unavailable.load(Ordering::Relaxed),
        );
        line(
            "heph_auth_jwks_fetches_total",
            "JWKS fetch attempts.",
            c.jwks_fetches.load(Ordering::Relaxed),
        );
        line(
            "heph_auth_jwks_fetch_errors_total",
            "Failed discovery/JWKS fetches.",
            c.jwks_fetch_errors.load(Ordering::Relaxed),
        );
        line(
            "heph_auth_cache_hits_total",
            "Tokens accepted from the verified-token cache (no signature check).",
            c.cache_hits.load(Ordering::Relaxed),
        );
        line(
            "heph_auth_jwks_refetch_rate_limited_total",
            "Unknown-kid refetches skipped by the rate limit.",
            c.refetch_rate_limited.load(Ordering::Relaxed),
        );
        out.push_str("# HELP heph_auth_refused_total Refused requests by reason.\n# TYPE heph_auth_refused_total counter\n");
        if let Ok(m) = c.by_reason.lock() {
            for (reason, n) in m.iter() {
                out.push_str(&format!(
                    "heph_auth_refused_total{{reason=\"{reason}\"}} {n}\n"
                ));
            }
        }
        out
    }
}

/// Extract the token from `Bearer <token>` (scheme case-insensitive, RFC 6750 §2.1).
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let t = rest.trim();
    if t.is_empty() || t.contains(' ') {
        None
    } else {
        Some(t)
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer a b"), None);
    }

    #[test]
    fn config_needs_an_authorisation_rule() {
        let c = OidcConfig::new("http://127.0.0.1:1", "heph");
        assert!(matches!(OidcVerifier::new(c), Err(OidcError::Config(_))));
        let mut c = OidcConfig::new("http://127.0.0.1:1", "heph");
        c.required_group = Some("admins".into());
        assert!(OidcVerifier::new(c).is_ok());
    }

    #[test]
    fn www_authenticate_shapes() {
        assert_eq!(
            VerifyError::Missing.www_authenticate().as_deref(),
            Some("Bearer realm=\"heph\"")
        );
        let w = VerifyError::Expired.www_authenticate().unwrap_or_default();
        assert!(
            w.contains("error=\"invalid_token\"")
                && w.contains("error_description=\"token expired\"")
        );
        assert_eq!(
            VerifyError::Forbidden {
                sub: "x".into(),
                reason: "y".into()
            }
            .www_authenticate(),
            None
        );
        assert_eq!(VerifyError::Unavailable("down".into()).status(), 503);
    }

    #[test]
    fn jwks_without_usable_keys_is_an_error() {
        let doc = serde_json::json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]});
        assert!(matches!(
            keys::parse_jwks("u", doc),
            Err(OidcError::NoUsableKeys { skipped: 1, .. })
        ));
        let doc = serde_json::json!({"keys": []});
        assert!(matches!(
            keys::parse_jwks("u", doc),
            Err(OidcError::NoUsableKeys { skipped: 0, .. })
        ));
        assert!(matches!(
            keys::parse_jwks("u", serde_json::json!([1])),
            Err(OidcError::BadDocument { .. })
        ));
    }
}
