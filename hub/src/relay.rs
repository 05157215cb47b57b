//! Login relay for the PWA: `POST /auth/device` and `POST /auth/token` forward a form body to the
//! configured OIDC issuer's device-authorization and token endpoints (found by discovery) and return the
//! IdP's answer unchanged, so a browser can run the device-code flow against the hub's own origin without
//! the IdP allowing CORS. The relay holds no secrets and stores nothing; it forwards only those two
//! endpoints, only as `application/x-www-form-urlencoded`, with a small bounded body.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::StatusCode;
use hyper::body::Body;
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// Largest form body the relay forwards.
pub const MAX_RELAY_BODY: usize = 16 * 1024;
/// Largest IdP answer the relay returns.
const MAX_IDP_ANSWER: usize = 256 * 1024;

/// Which IdP endpoint a relay route forwards to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayRoute {
    /// `POST /auth/device` → `device_authorization_endpoint` (RFC 8628 §3.1).
    Device,
    /// `POST /auth/token` → `token_endpoint` (device-code and refresh-token grants).
    Token,
}

impl RelayRoute {
    /// The route for a request path, if it is one of the relay's.
    pub fn from_path(path: &str) -> Option<RelayRoute> {
        match path {
            "/auth/device" => Some(RelayRoute::Device),
            "/auth/token" => Some(RelayRoute::Token),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Endpoints {
    device: String,
    token: String,
}

/// The relay's state: the issuer and the endpoints discovered from it (looked up on first use and
/// again after a failure).
#[derive(Debug)]
pub struct Relay {
    issuer: Option<String>,
    http: Option<reqwest::Client>,
    endpoints: Mutex<Option<Endpoints>>,
}

/// A relay answer: status, JSON body.
pub type RelayAnswer = (StatusCode, Value);

fn err(status: StatusCode, code: &str, message: impl Into<String>) -> RelayAnswer {
    (status, json!({"error": code, "message": message.into()}))
}

impl Relay {
    /// A relay for `issuer` (`None`: dev mode, the routes answer 404).
    pub fn new(issuer: Option<String>) -> Relay {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("hephd/", env!("CARGO_PKG_VERSION"), " login-relay"))
            .build()
            .ok();
        Relay {
            issuer,
            http,
            endpoints: Mutex::new(None),
        }
    }

    async fn endpoints(
        &self,
        issuer: &str,
        http: &reqwest::Client,
    ) -> Result<Endpoints, RelayAnswer> {
        let mut guard = self.endpoints.lock().await;
        if let Some(e) = guard.as_ref() {
            return Ok(e.clone());
        }
        // OIDC Discovery §4: the issuer without a trailing `/`, then the well-known path.
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let unavailable = |m: String| {
            err(
                StatusCode::SERVICE_UNAVAILABLE,
                "idp_unavailable",
                format!(
                    "the identity provider's discovery document at {url} could not be used: {m}"
                ),
            )
        };
        let resp = http
            .get(&url)
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(unavailable(format!("HTTP {}", resp.status())));
        }
        let doc: Value = resp.json().await.map_err(|e| unavailable(e.to_string()))?;
        let get = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_owned);
        let (Some(device), Some(token)) =
            (get("device_authorization_endpoint"), get("token_endpoint"))
        else {
            return Err(err(
                StatusCode::NOT_IMPLEMENTED,
                "device_flow_unsupported",
                "the identity provider does not offer the device authorization grant (no device_authorization_endpoint)",
            ));
        };
        let e = Endpoints { device, token };
        *guard = Some(e.clone());
        Ok(e)
    }

    /// Forwards a form `body` to the IdP endpoint behind `route`.
    pub async fn forward(
        &self,
        route: RelayRoute,
        content_type: Option<&str>,
        body: Bytes,
    ) -> RelayAnswer {
        let Some(issuer) = self.issuer.as_deref() else {
            return err(
                StatusCode::NOT_FOUND,
                "not_found",
                "this hub has no OIDC issuer (dev mode): no login is needed",
            );
        };
        let Some(http) = self.http.as_ref() else {
            return err(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the relay's HTTP client could not be built",
            );
        };
        if !content_type.is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")) {
            return err(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "bad_request",
                "the login relay accepts only application/x-www-form-urlencoded bodies",
            );
        }
        let endpoints = match self.endpoints(issuer, http).await {
            Ok(e) => e,
            Err(answer) => return answer,
        };
        let url = match route {
            RelayRoute::Device => endpoints.device,
            RelayRoute::Token => endpoints.token,
        };
        let sent = http
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                // Forget the endpoints: the IdP may have moved; discovery runs again next time.
                *self.endpoints.lock().await = None;
                return err(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "idp_unavailable",
                    format!("the identity provider at {url} could not be reached: {e}"),
                );
            }
        };
        let status =
            StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let bytes = match resp.bytes().await {
            Ok(b) if b.len() <= MAX_IDP_ANSWER => b,
            Ok(_) => {
                return err(
                    StatusCode::BAD_GATEWAY,
                    "idp_garbage",
                    "the identity provider's answer is too large",
                );
            }
            Err(e) => {
                return err(
                    StatusCode::BAD_GATEWAY,
                    "idp_garbage",
                    format!("reading the identity provider's answer failed: {e}"),
                );
            }
        };
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) if v.is_object() => (status, v),
            _ => err(
                StatusCode::BAD_GATEWAY,
                "idp_garbage",
                format!(
                    "the identity provider answered {status} with a body that is not a JSON object"
                ),
            ),
        }
    }
}

/// Reads a relay request body (at most [`MAX_RELAY_BODY`] bytes, within `timeout`).
pub async fn read_body<B>(body: B, timeout: Duration) -> Result<Bytes, RelayAnswer>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match tokio::time::timeout(timeout, Limited::new(body, MAX_RELAY_BODY).collect()).await {
        Err(_) => Err(err(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "the request body did not arrive in time",
        )),
        Ok(Err(_)) => Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"error": "too_large", "message": format!("login relay bodies are limited to {MAX_RELAY_BODY} bytes"), "limit": MAX_RELAY_BODY}),
        )),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}
