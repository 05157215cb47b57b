//! The device authorization grant (RFC 8628) with the `openidconnect` crate: hub `/config` lookup,
//! discovery, the device code request, showing the URL / code / QR code, polling (interval, `slow_down`,
//! `authorization_pending`, `expired_token`, `access_denied`), ID-token verification, and refresh.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod,
    CoreDeviceAuthorizationResponse, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreResponseMode,
    CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthType, ClientId, DeviceAuthorizationUrl,
    DeviceCodeErrorResponseType, IssuerUrl, JsonWebKeySet, Nonce, OAuth2TokenResponse,
    ProviderMetadata, RefreshToken, RequestTokenError, Scope, TokenUrl,
};
use serde::{Deserialize, Serialize};

use super::{AuthError, SCOPES, TokenSet, now_secs, store::normalise_hub_url};

#[derive(Clone, Debug, Deserialize, Serialize)]
struct DeviceEndpoint {
    device_authorization_endpoint: Option<DeviceAuthorizationUrl>,
}
impl AdditionalProviderMetadata for DeviceEndpoint {}

type DeviceProviderMetadata = ProviderMetadata<
    DeviceEndpoint,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// What `heph auth login` was asked to do.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct LoginOptions {
    /// The hub (its `/config` supplies issuer and client id when they are not given).
    pub hub_url: String,
    /// `--issuer`.
    pub issuer: Option<String>,
    /// `--client-id`.
    pub client_id: Option<String>,
    /// `--no-browser`.
    pub no_browser: bool,
    /// `--ca-file`.
    pub ca_file: Option<PathBuf>,
}

impl LoginOptions {
    /// Options for `hub_url` with everything else defaulted.
    pub fn new(hub_url: impl Into<String>) -> LoginOptions {
        LoginOptions {
            hub_url: hub_url.into(),
            ..LoginOptions::default()
        }
    }
}

/// The hub's public `GET /config` (see docs/protocol.md).
#[derive(Debug, Clone, Deserialize)]
pub struct HubPublicConfig {
    /// OIDC issuer (null in dev mode).
    pub issuer: Option<String>,
    /// OAuth client id for spokes.
    pub client_id: Option<String>,
    /// Audience the hub requires.
    pub audience: Option<String>,
    /// Hub version.
    pub hub_version: Option<String>,
}

/// Read the hub's `/config`.
pub async fn hub_config(
    http: &reqwest::Client,
    hub_url: &str,
) -> Result<HubPublicConfig, AuthError> {
    let url = format!("{}/config", normalise_hub_url(hub_url)?);
    let err = |message: String| AuthError::HubConfig {
        url: url.clone(),
        message,
    };
    let resp = http.get(&url).send().await.map_err(|e| err(chain(&e)))?;
    if !resp.status().is_success() {
        return Err(err(format!("HTTP {}", resp.status())));
    }
    resp.json::<HubPublicConfig>()
        .await
        .map_err(|e| err(format!("not the hub's JSON config: {e}")))
}

/// A sleep function for polling (tests pass one that records the intervals instead of waiting).
pub type Sleeper = dyn Fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync;

/// The real sleep.
pub fn tokio_sleep() -> Box<Sleeper> {
    Box::new(|d| Box::pin(tokio::time::sleep(d)))
}

/// A running login: the instructions to show, then [`DeviceLogin::finish`] to poll for the tokens.
#[derive(Debug)]
pub struct DeviceLogin {
    /// Normalised hub URL.
    pub hub_url: String,
    /// Issuer in use.
    pub issuer: String,
    /// Client id in use.
    pub client_id: String,
    /// Where to go (RFC 8628 `verification_uri`).
    pub verification_uri: String,
    /// The URI with the code filled in, when the IdP gives one.
    pub verification_uri_complete: Option<String>,
    /// The code to type.
    pub user_code: String,
    /// Seconds until the code expires.
    pub expires_in: u64,
    /// Poll interval the IdP asked for (5 s when it said nothing).
    pub interval: Duration,
    metadata: DeviceProviderMetadata,
    details: CoreDeviceAuthorizationResponse,
    http: reqwest::Client,
}

/// Resolve issuer and client id (flags, else the hub's `/config`), run discovery and request a device
/// code.
pub async fn start(opts: &LoginOptions) -> Result<DeviceLogin, AuthError> {
    let hub_url = normalise_hub_url(&opts.hub_url)?;
    let http = super::http::idp_client(opts.ca_file.as_deref())?;
    let (issuer, client_id) = match (&opts.issuer, &opts.client_id) {
        (Some(i), Some(c)) => (i.clone(), c.clone()),
        _ => {
            let cfg = hub_config(&http, &hub_url).await?;
            let issuer = opts.issuer.clone().or(cfg.issuer).ok_or_else(|| {
                AuthError::MissingSetting(format!(
                    "the hub at {hub_url} has no OIDC issuer (dev mode needs no login); pass --issuer to override"
                ))
            })?;
            let client_id = opts
                .client_id
                .clone()
                .or(cfg.client_id)
                .or(cfg.audience)
                .ok_or_else(|| {
                    AuthError::MissingSetting(format!(
                        "the hub at {hub_url} names no client id; pass --client-id"
                    ))
                })?;
            (issuer, client_id)
        }
    };
    let disc_err = |message: String| AuthError::Discovery {
        issuer: issuer.clone(),
        message,
    };
    let issuer_url = IssuerUrl::new(issuer.clone()).map_err(|e| disc_err(e.to_string()))?;
    let metadata = DeviceProviderMetadata::discover_async(issuer_url, &http)
        .await
        .map_err(|e| disc_err(chain(&e)))?;
    let device_url = metadata
        .additional_metadata()
        .device_authorization_endpoint
        .clone()
        .ok_or_else(|| {
            disc_err(
                "the IdP has no device_authorization_endpoint (device flow not enabled)".into(),
            )
        })?;
    let client = CoreClient::from_provider_metadata(
        metadata.clone(),
        ClientId::new(client_id.clone()),
        None,
    )
    .set_device_authorization_url(device_url)
    .set_auth_type(AuthType::RequestBody);
    let mut req = client.exchange_device_code();
    for s in SCOPES.iter().filter(|s| **s != "openid") {
        req = req.add_scope(Scope::new((*s).to_string()));
    }
    let details: CoreDeviceAuthorizationResponse = req
        .request_async(&http)
        .await
        .map_err(|e| AuthError::DeviceAuthorization(request_error(&e)))?;
    Ok(DeviceLogin {
        hub_url,
        issuer,
        client_id,
        verification_uri: details.verification_uri().url().to_string(),
        verification_uri_complete: details
            .verification_uri_complete()
            .map(|u| u.secret().to_string()),
        user_code: details.user_code().secret().to_string(),
        expires_in: details.expires_in().as_secs(),
        interval: details.interval(),
        metadata,
        details,
        http,
    })
}

impl DeviceLogin {
    /// The instructions for the person logging in: URL, code and a terminal QR code of the complete URL.
    pub fn instructions(&self) -> String {
        let target = self
            .verification_uri_complete
            .as_deref()
            .unwrap_or(&self.verification_uri);
        let mut s = String::new();
        s.push_str(&format!(
            "To log in to {}, open\n\n    {}\n\n",
            self.hub_url, self.verification_uri
        ));
        s.push_str(&format!("and enter the code\n\n    {}\n\n", self.user_code));
        if let Some(c) = &self.verification_uri_complete {
            s.push_str(&format!("(or open {c})\n"));
        }
        if let Some(qr) = qr_code(target) {
            s.push_str("or scan:\n");
            s.push_str(&qr);
            s.push('\n');
        }
        s.push_str(&format!(
            "The code expires in {} min. Whoever approves it in the browser is who this device will act as.\n",
            self.expires_in / 60
        ));
        s
    }

    /// Try to open the browser at the verification page (no shell: `xdg-open`/`open` with one argument).
    pub fn open_browser(&self) -> bool {
        let target = self
            .verification_uri_complete
            .as_deref()
            .unwrap_or(&self.verification_uri);
        let program = if cfg!(target_os = "macos") {
            "open"
        } else {
            "xdg-open"
        };
        std::process::Command::new(program)
            .arg(target)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .is_ok()
    }

    /// Poll the token endpoint until the login is approved, denied or expired; verify the ID token.
    /// `notice` receives progress messages (interval changes); `sleep` waits between polls.
    pub async fn finish(
        self,
        notice: &(dyn Fn(&str) + Send + Sync),
        sleep: &Sleeper,
    ) -> Result<TokenSet, AuthError> {
        let device_url = self
            .metadata
            .additional_metadata()
            .device_authorization_endpoint
            .clone();
        let token_endpoint = self
            .metadata
            .token_endpoint()
            .map(|t| t.url().to_string())
            .ok_or_else(|| AuthError::Discovery {
                issuer: self.issuer.clone(),
                message: "no token_endpoint".into(),
            })?;
        let device_url = device_url.ok_or_else(|| AuthError::Discovery {
            issuer: self.issuer.clone(),
            message: "no device_authorization_endpoint".into(),
        })?;
        let client = CoreClient::from_provider_metadata(
            self.metadata.clone(),
            ClientId::new(self.client_id.clone()),
            None,
        )
        .set_device_authorization_url(device_url)
        .set_auth_type(AuthType::RequestBody);
        let last = std::sync::Mutex::new(self.interval);
        let sleep_fn = |d: Duration| {
            if let Ok(mut l) = last.lock()
                && d > *l
            {
                notice(&format!(
                    "the IdP asked to slow down: polling every {} s",
                    d.as_secs()
                ));
                *l = d;
            }
            sleep(d)
        };
        let request = client
            .exchange_device_access_token(&self.details)
            .map_err(|e| AuthError::Token(e.to_string()))?;
        let token = request
            .request_async(&self.http, sleep_fn, None)
            .await
            .map_err(|e| match &e {
                RequestTokenError::ServerResponse(r) => match r.error() {
                    DeviceCodeErrorResponseType::AccessDenied => AuthError::AccessDenied,
                    DeviceCodeErrorResponseType::ExpiredToken => AuthError::ExpiredCode,
                    other => AuthError::Token(format!(
                        "{}{}",
                        other.as_ref(),
                        r.error_description()
                            .map(|d| format!(": {d}"))
                            .unwrap_or_default()
                    )),
                },
                _ => AuthError::Token(request_error(&e)),
            })?;
        if let Some(id) = token.extra_fields().id_token() {
            id.claims(&client.id_token_verifier(), |_: Option<&Nonce>| Ok(()))
                .map_err(|e| AuthError::IdToken(e.to_string()))?;
        }
        let access_token = token.access_token().secret().to_string();
        Ok(TokenSet {
            version: 1,
            hub_url: self.hub_url,
            issuer: self.issuer,
            client_id: self.client_id,
            token_endpoint,
            expires_at: expiry(&access_token, token.expires_in()),
            access_token,
            refresh_token: token.refresh_token().map(|r| r.secret().to_string()),
            id_token: token.extra_fields().id_token().map(|t| t.to_string()),
            scope: token
                .scopes()
                .map(|s| {
                    s.iter()
                        .map(|x| x.as_str())
                        .filter(|x| !x.is_empty())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .filter(|s| !s.is_empty()),
        })
    }
}

fn expiry(access_token: &str, expires_in: Option<Duration>) -> Option<u64> {
    expires_in
        .map(|d| now_secs() + d.as_secs())
        .or_else(|| super::unverified_claims(access_token)?.get("exp")?.as_u64())
}

/// Use the refresh token for a new access token (the refresh token may rotate; the old one is kept when
/// the IdP sends none).
pub async fn refresh(http: &reqwest::Client, tokens: &TokenSet) -> Result<TokenSet, AuthError> {
    let Some(rt) = &tokens.refresh_token else {
        return Err(AuthError::RefreshFailed(
            "the access token expired and there is no refresh token (was offline_access granted?)"
                .into(),
        ));
    };
    let fail = |m: String| AuthError::RefreshFailed(m);
    if tokens.issuer.is_empty() {
        return Err(fail(
            "the token set names no issuer to refresh at (pass --oidc-issuer)".into(),
        ));
    }
    if tokens.client_id.is_empty() {
        return Err(fail(
            "the token set names no client id to refresh for (pass --oidc-client-id)".into(),
        ));
    }
    let issuer =
        IssuerUrl::new(tokens.issuer.clone()).map_err(|e| fail(format!("bad issuer: {e}")))?;
    // A hand-provisioned token set may leave the endpoint empty: find it by discovery at the issuer.
    let endpoint = if tokens.token_endpoint.is_empty() {
        let metadata = DeviceProviderMetadata::discover_async(issuer.clone(), http)
            .await
            .map_err(|e| {
                fail(format!(
                    "OpenID discovery at {} (for the token endpoint) failed: {}",
                    tokens.issuer,
                    chain(&e)
                ))
            })?;
        metadata
            .token_endpoint()
            .map(|u| u.to_string())
            .ok_or_else(|| fail(format!("the IdP {} has no token endpoint", tokens.issuer)))?
    } else {
        tokens.token_endpoint.clone()
    };
    let token_url =
        TokenUrl::new(endpoint.clone()).map_err(|e| fail(format!("bad token endpoint: {e}")))?;
    let client = CoreClient::new(
        ClientId::new(tokens.client_id.clone()),
        issuer,
        JsonWebKeySet::default(),
    )
    .set_token_uri(token_url)
    .set_auth_type(AuthType::RequestBody);
    let refresh_token = RefreshToken::new(rt.clone());
    let token = client
        .exchange_refresh_token(&refresh_token)
        .request_async(http)
        .await
        .map_err(|e| match &e {
            RequestTokenError::ServerResponse(r) => fail(format!(
                "the IdP refused the refresh token ({}{})",
                r.error().as_ref(),
                r.error_description()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            )),
            _ => fail(request_error(&e)),
        })?;
    let access_token = token.access_token().secret().to_string();
    Ok(TokenSet {
        expires_at: expiry(&access_token, token.expires_in()),
        access_token,
        refresh_token: token
            .refresh_token()
            .map(|r| r.secret().to_string())
            .or(tokens.refresh_token.clone()),
        id_token: token
            .extra_fields()
            .id_token()
            .map(|t| t.to_string())
            .or(tokens.id_token.clone()),
        token_endpoint: endpoint,
        ..tokens.clone()
    })
}

/// A terminal QR code (unicode half blocks), `None` if the data does not fit.
pub fn qr_code(data: &str) -> Option<String> {
    let code = qrcode::QrCode::new(data.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

fn request_error<E: std::error::Error + 'static>(
    e: &RequestTokenError<E, impl openidconnect::ErrorResponse + 'static>,
) -> String {
    match e {
        RequestTokenError::ServerResponse(r) => r.to_string(),
        RequestTokenError::Request(inner) => chain(inner),
        RequestTokenError::Parse(err, _body) => format!("unparseable response: {err}"),
        RequestTokenError::Other(s) => s.clone(),
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}
