//! The HTTP API (`docs/protocol.md`): routing, the data routes under `/sync/v1/`, `/config`,
//! `/healthz`, `/metrics` and static files. Every data route goes through the [`Authenticator`].

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use heph_format::chain::ChainHead;
use heph_format::{Origin, SegmentId};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited, StreamBody};
use hyper::body::{Body, Frame};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};

use crate::authn::{AuthError, Authenticator};
use crate::log::{Heads, PushError, SegmentLog};
use crate::metrics::Metrics;
use crate::static_files;
use crate::store::{Position, StoreError};

/// The response body type: full bytes or a stream.
pub type HubBody = BoxBody<Bytes, std::io::Error>;

/// The header carrying a pushed segment's claimed id.
pub const SEGMENT_ID_HEADER: &str = "heph-segment-id";
/// Content type of one segment.
pub const SEGMENT_CONTENT_TYPE: &str = "application/vnd.heph.segment";
/// Content type of the bulk stream.
pub const STREAM_CONTENT_TYPE: &str = "application/vnd.heph.segment-stream";
/// The bulk stream's preamble.
pub const STREAM_PREAMBLE: &[u8; 8] = b"HEPHSTR1";

/// Limits the HTTP layer enforces.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Longest request target (path and query) accepted, else `414`.
    pub max_uri_len: usize,
    /// Time allowed to receive a whole push body, else `408`.
    pub body_timeout: Duration,
    /// Upload bytes buffered across all requests at once, else `503 busy`.
    pub max_upload_bytes_in_flight: u64,
    /// Most long-polls open at once, else `503 busy`.
    pub max_long_polls: u64,
    /// How often a waiting long-poll asks the store for other hubs' pushes.
    pub wait_poll: Duration,
    /// Longest long-poll timeout a client may ask for.
    pub max_wait: Duration,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            max_uri_len: 8 * 1024,
            body_timeout: Duration::from_secs(30),
            max_upload_bytes_in_flight: 256 << 20,
            max_long_polls: 10_000,
            wait_poll: Duration::from_millis(500),
            max_wait: Duration::from_secs(120),
        }
    }
}

/// What `/config` reports.
#[derive(Debug, Clone, Default)]
pub struct PublicConfig {
    /// OIDC issuer URL.
    pub issuer: Option<String>,
    /// Expected access-token audience.
    pub audience: Option<String>,
    /// OIDC client id spokes and the PWA use.
    pub client_id: Option<String>,
    /// True when no issuer is configured (loopback-only dev mode).
    pub dev_mode: bool,
}

/// Shared state of one hub: everything a request handler needs.
#[derive(Debug)]
pub struct HubState {
    pub(crate) log: Arc<SegmentLog>,
    pub(crate) auth: Arc<dyn Authenticator>,
    pub(crate) metrics: Metrics,
    pub(crate) public: PublicConfig,
    pub(crate) web_root: Option<PathBuf>,
    pub(crate) limits: HttpLimits,
    upload_budget: Semaphore,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// The PWA's login relay (`POST /auth/device`, `POST /auth/token`), see `relay.rs`.
    pub(crate) relay: crate::relay::Relay,
    /// Extra `/healthz` fields and `/metrics` lines (see [`crate::server::StatusExtension`]).
    pub(crate) extension: Option<Arc<dyn crate::server::StatusExtension>>,
}

const KIB: u64 = 1024;

impl HubState {
    /// Builds the state; `web_root` must already be canonical. `shutdown` turning true ends
    /// waiting long-polls early.
    pub fn new(
        log: Arc<SegmentLog>,
        auth: Arc<dyn Authenticator>,
        public: PublicConfig,
        web_root: Option<PathBuf>,
        limits: HttpLimits,
        shutdown: watch::Receiver<bool>,
    ) -> HubState {
        let permits = (limits.max_upload_bytes_in_flight / KIB).clamp(1, u64::from(u32::MAX >> 3));
        let relay = crate::relay::Relay::new(public.issuer.clone());
        HubState {
            log,
            auth,
            metrics: Metrics::default(),
            public,
            web_root,
            limits,
            upload_budget: Semaphore::new(permits as usize),
            shutdown,
            relay,
            extension: None,
        }
    }

    /// The segment log.
    pub fn log(&self) -> &Arc<SegmentLog> {
        &self.log
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

/// An answer: status, headers, body.
type Resp = Response<HubBody>;

fn full(bytes: impl Into<Bytes>) -> HubBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn empty() -> HubBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

fn json_resp(status: StatusCode, v: &Value) -> Resp {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error_resp(
    status: StatusCode,
    code: &str,
    message: impl std::fmt::Display,
    extra: Value,
) -> Resp {
    let mut v = json!({"error": code, "message": message.to_string()});
    if let (Some(obj), Value::Object(more)) = (v.as_object_mut(), extra) {
        obj.extend(more);
    }
    json_resp(status, &v)
}

fn head_json(h: Option<&ChainHead>) -> Value {
    match h {
        Some(h) => {
            json!({"last_seq": h.last_seq, "hash": h.hash.to_string(), "segments": h.segments})
        }
        None => Value::Null,
    }
}

fn heads_json(h: &Heads) -> Value {
    let origins: serde_json::Map<String, Value> = h
        .origins
        .iter()
        .map(|(o, head)| (o.to_string(), head_json(Some(head))))
        .collect();
    json!({
        "owner": h.owner.map(|o| o.to_string()),
        "tag": h.tag,
        "origins": origins,
    })
}

fn position_json(p: &Position) -> Value {
    json!({"first_seq": p.first_seq, "last_seq": p.last_seq, "hash": p.hash.to_string(), "len": p.len})
}

fn store_error(e: &StoreError) -> Resp {
    tracing::error!(error = %e, "store failure");
    let mut r = error_resp(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        e,
        json!({}),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

fn not_found() -> Resp {
    error_resp(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such resource",
        json!({}),
    )
}

fn method_not_allowed(allow: &'static str) -> Resp {
    let mut r = error_resp(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("method not allowed; allowed: {allow}"),
        json!({}),
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

fn bad_request(message: impl std::fmt::Display) -> Resp {
    error_resp(StatusCode::BAD_REQUEST, "bad_request", message, json!({}))
}

fn busy(message: &str) -> Resp {
    let mut r = error_resp(StatusCode::SERVICE_UNAVAILABLE, "busy", message, json!({}));
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// Parses `a=b&c=d` into pairs (percent-decoding `%XX` and `+`); `None` when malformed.
fn query_pairs(q: Option<&str>) -> Option<Vec<(String, String)>> {
    let Some(q) = q else {
        return Some(Vec::new());
    };
    let decode = |s: &str| -> Option<String> {
        let s = s.replace('+', " ");
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                let h = b.get(i + 1..i + 3)?;
                let v = u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()?;
                out.push(v);
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).ok()
    };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}

fn if_none_match(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|t| t == tag || t == "*")
}

/// The route names used in metrics.
fn route_name(method: &Method, path: &str) -> &'static str {
    match path {
        "/healthz" => "healthz",
        "/config" => "config",
        "/metrics" => "metrics",
        _ => match path.strip_prefix("/sync/v1/") {
            Some(rest) => {
                let segs: Vec<&str> = rest.split('/').collect();
                match segs.as_slice() {
                    ["heads"] => "heads",
                    ["segments", _] => "list",
                    ["segments", _, _] if method == Method::PUT => "push",
                    ["segments", _, _] => "push",
                    ["blobs", _] => "blob",
                    ["stream"] => "stream",
                    ["wait"] => "wait",
                    _ => "unknown",
                }
            }
            None => "static",
        },
    }
}

/// Handles one request (never fails: every problem is an HTTP answer).
pub async fn handle<B>(state: Arc<HubState>, req: Request<B>) -> Result<Resp, Infallible>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let route = route_name(req.method(), req.uri().path());
    let resp = route_request(&state, req).await;
    state.metrics.request(route, resp.status().as_u16());
    Ok(resp)
}

async fn route_request<B>(state: &Arc<HubState>, req: Request<B>) -> Resp
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let target_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target_len > state.limits.max_uri_len {
        return error_resp(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!(
                "request target of {target_len} bytes exceeds the limit of {} bytes",
                state.limits.max_uri_len
            ),
            json!({"limit": state.limits.max_uri_len}),
        );
    }
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let is_get = method == Method::GET || method == Method::HEAD;
    match path.as_str() {
        "/healthz" if is_get => return healthz(state).await,
        "/healthz" => return method_not_allowed("GET, HEAD"),
        "/config" if is_get => return config(state),
        "/config" => return method_not_allowed("GET, HEAD"),
        "/metrics" if is_get => return metrics(state),
        "/metrics" => return method_not_allowed("GET, HEAD"),
        _ => {}
    }
    if let Some(route) = crate::relay::RelayRoute::from_path(&path) {
        if method != Method::POST {
            return method_not_allowed("POST");
        }
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let (status, body) =
            match crate::relay::read_body(req.into_body(), state.limits.body_timeout).await {
                Ok(body) => {
                    state
                        .relay
                        .forward(route, content_type.as_deref(), body)
                        .await
                }
                Err(answer) => answer,
            };
        let mut r = json_resp(status, &body);
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return r;
    }
    let Some(rest) = path.strip_prefix("/sync/v1/") else {
        if path == "/sync/v1" || path.starts_with("/sync/") {
            return not_found();
        }
        if !is_get {
            return method_not_allowed("GET, HEAD");
        }
        return static_file(state, &path).await;
    };
    let segs: Vec<&str> = rest.split('/').collect();
    // Route and method first (404/405), then authentication (401/403/503), then the handler.
    let allowed: &'static str = match segs.as_slice() {
        ["heads"] | ["segments", _] | ["stream"] | ["wait"] => "GET, HEAD",
        ["segments", _, _] => "PUT",
        ["blobs", _] => "GET, HEAD",
        _ => return not_found(),
    };
    let method_ok = if allowed == "PUT" {
        method == Method::PUT
    } else {
        is_get
    };
    if !method_ok {
        return method_not_allowed(allowed);
    }
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match state.auth.authenticate(authorization.as_deref()).await {
        Ok(caller) => {
            state.metrics.auth("ok");
            if let (Some(theirs), Some(ours)) = (caller.owner, state.log.owner())
                && theirs != ours
            {
                return error_resp(
                    StatusCode::FORBIDDEN,
                    "wrong_owner",
                    format!("caller belongs to owner {theirs}, this hub serves owner {ours}"),
                    json!({"hub_owner": ours.to_string()}),
                );
            }
        }
        Err(e) => return auth_error(state, &e),
    }
    let query = req.uri().query().map(str::to_owned);
    let Some(params) = query_pairs(query.as_deref()) else {
        return bad_request("malformed query string");
    };
    match segs.as_slice() {
        ["heads"] => heads(state, req.headers()).await,
        ["segments", origin] => list(state, origin, &params).await,
        ["segments", origin, seq] => {
            let (origin, seq) = (origin.to_string(), seq.to_string());
            push(state, &origin, &seq, req).await
        }
        ["blobs", hash] => blob(state, hash, req.headers()).await,
        ["stream"] => stream(state, &params).await,
        ["wait"] => wait(state, &params).await,
        _ => not_found(),
    }
}

fn auth_error(state: &HubState, e: &AuthError) -> Resp {
    match e {
        AuthError::Unauthorized {
            reason,
            www_authenticate,
        } => {
            state.metrics.auth("unauthorized");
            tracing::info!(%reason, "request unauthorized (401)");
            let mut r = error_resp(StatusCode::UNAUTHORIZED, "unauthorized", reason, json!({}));
            if let Ok(v) = HeaderValue::from_str(www_authenticate) {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            r
        }
        AuthError::Forbidden { reason } => {
            state.metrics.auth("forbidden");
            tracing::info!(%reason, "request forbidden (403)");
            error_resp(StatusCode::FORBIDDEN, "forbidden", reason, json!({}))
        }
        AuthError::Unavailable { reason } => {
            state.metrics.auth("unavailable");
            tracing::warn!(%reason, "identity provider unavailable (503)");
            let mut r = error_resp(
                StatusCode::SERVICE_UNAVAILABLE,
                "idp_unavailable",
                reason,
                json!({}),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            r
        }
        // A future variant: refuse rather than let it through.
        #[allow(unreachable_patterns)]
        _ => error_resp(StatusCode::FORBIDDEN, "forbidden", e, json!({})),
    }
}

async fn healthz(state: &HubState) -> Resp {
    match state.log.store().check().await {
        Ok(()) => {
            let mut body = serde_json::Map::new();
            body.insert("status".into(), json!("ok"));
            if let Some(ext) = &state.extension {
                body.extend(ext.healthz_fields());
            }
            json_resp(StatusCode::OK, &serde_json::Value::Object(body))
        }
        Err(e) => store_error(&e),
    }
}

fn config(state: &HubState) -> Resp {
    let p = &state.public;
    json_resp(
        StatusCode::OK,
        &json!({
            "hub_version": crate::VERSION,
            "hub_commit": crate::BUILD_COMMIT,
            "api": "sync/v1",
            "issuer": p.issuer,
            "audience": p.audience,
            "client_id": p.client_id,
            "dev_mode": p.dev_mode,
            "owner": state.log.owner().map(|o| o.to_string()),
        }),
    )
}

fn metrics(state: &HubState) -> Resp {
    let mut text = state.metrics.render(state.log.totals());
    text.push_str(&state.auth.metrics_text());
    if let Some(ext) = &state.extension {
        text.push_str(&ext.metrics_text());
    }
    let mut r = Response::new(full(text));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

async fn static_file(state: &HubState, path: &str) -> Resp {
    let Some(root) = &state.web_root else {
        return not_found();
    };
    let Some(file) = static_files::resolve(root, path) else {
        return not_found();
    };
    match tokio::fs::read(&file.path).await {
        Ok(bytes) => {
            let mut r = Response::new(full(bytes));
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(file.content_type),
            );
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static(file.cache_control),
            );
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            r
        }
        Err(_) => not_found(),
    }
}

async fn heads(state: &HubState, headers: &HeaderMap) -> Resp {
    let h = match state.log.heads().await {
        Ok(h) => h,
        Err(e) => return store_error(&e),
    };
    let etag = format!("\"{}\"", h.tag);
    let mut r = if if_none_match(headers, &h.tag) {
        let mut r = Response::new(empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        json_resp(StatusCode::OK, &heads_json(&h))
    };
    if let Ok(v) = HeaderValue::from_str(&etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn parse_origin(s: &str) -> Result<Origin, String> {
    s.parse::<Origin>()
        .map_err(|e| format!("invalid origin: {e}"))
}

fn parse_seq(name: &str, s: &str) -> Result<u64, String> {
    s.parse::<u64>().map_err(|_| {
        format!(
            "invalid {name} {:?}: expected a decimal unsigned 64-bit integer",
            s.chars().take(40).collect::<String>()
        )
    })
}

async fn list(state: &HubState, origin: &str, params: &[(String, String)]) -> Resp {
    let origin = match parse_origin(origin) {
        Ok(o) => o,
        Err(m) => return bad_request(m),
    };
    let mut after = 0;
    let mut limit = 1000usize;
    for (k, v) in params {
        match k.as_str() {
            "after" => match parse_seq("after", v) {
                Ok(a) => after = a,
                Err(m) => return bad_request(m),
            },
            "limit" => match v.parse::<usize>() {
                Ok(l) if l >= 1 => limit = l.min(1000),
                _ => return bad_request("invalid limit: expected an integer from 1 to 1000"),
            },
            other => return bad_request(format!("unknown query parameter {other:?}")),
        }
    }
    match state.log.segments(origin, after, limit).await {
        Ok((positions, more, head)) => json_resp(
            StatusCode::OK,
            &json!({
                "origin": origin.to_string(),
                "segments": positions.iter().map(position_json).collect::<Vec<_>>(),
                "more": more,
                "head": head_json(head.as_ref()),
            }),
        ),
        Err(e) => store_error(&e),
    }
}

async fn blob(state: &HubState, hash: &str, headers: &HeaderMap) -> Resp {
    let id: SegmentId = match hash.parse() {
        Ok(id) => id,
        Err(_) => {
            return bad_request(format!(
                "invalid segment id {:?}: expected 64 hex digits",
                hash.chars().take(80).collect::<String>()
            ));
        }
    };
    let tag = id.to_string();
    let etag = HeaderValue::from_str(&format!("\"{tag}\"")).ok();
    let cache = HeaderValue::from_static("private, max-age=31536000, immutable");
    if if_none_match(headers, &tag) {
        // Only answer 304 for a blob we hold.
        match state.log.blob(id).await {
            Ok(Some(_)) => {
                let mut r = Response::new(empty());
                *r.status_mut() = StatusCode::NOT_MODIFIED;
                if let Some(e) = etag {
                    r.headers_mut().insert(header::ETAG, e);
                }
                r.headers_mut().insert(header::CACHE_CONTROL, cache);
                return r;
            }
            Ok(None) => return not_found(),
            Err(e) => return store_error(&e),
        }
    }
    match state.log.blob(id).await {
        Ok(Some(bytes)) => {
            let mut r = Response::new(full(bytes));
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(SEGMENT_CONTENT_TYPE),
            );
            if let Some(e) = etag {
                h.insert(header::ETAG, e);
            }
            h.insert(header::CACHE_CONTROL, cache);
            r
        }
        Ok(None) => error_resp(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no segment {tag}"),
            json!({}),
        ),
        Err(e) => store_error(&e),
    }
}

fn push_error(state: &HubState, origin: Origin, e: &PushError) -> Resp {
    let code = e.code();
    if !matches!(e, PushError::Store(_)) {
        state.metrics.rejection(code);
    }
    let o = origin.to_string();
    match e {
        PushError::Store(se) => store_error(se),
        PushError::TooLarge { max, .. } => error_resp(
            StatusCode::PAYLOAD_TOO_LARGE,
            code,
            e,
            json!({"limit": max}),
        ),
        PushError::HashMismatch { actual, .. } => error_resp(
            StatusCode::BAD_REQUEST,
            code,
            e,
            json!({"actual": actual.to_string()}),
        ),
        PushError::Malformed(fe) => error_resp(
            StatusCode::BAD_REQUEST,
            code,
            e,
            json!({"reason": fe.to_string()}),
        ),
        PushError::UrlMismatch { .. } => error_resp(StatusCode::BAD_REQUEST, code, e, json!({})),
        PushError::WrongOwner { hub_owner, .. } => error_resp(
            StatusCode::FORBIDDEN,
            code,
            e,
            json!({"hub_owner": hub_owner.to_string()}),
        ),
        PushError::Gap { expected, head, .. } => error_resp(
            StatusCode::CONFLICT,
            code,
            e,
            json!({"origin": o, "expected_first_seq": expected, "head": head_json(head.as_ref())}),
        ),
        PushError::Fork { head, .. } | PushError::Occupied { head, .. } => error_resp(
            StatusCode::CONFLICT,
            code,
            e,
            json!({"origin": o, "head": head_json(head.as_ref())}),
        ),
        #[allow(unreachable_patterns)]
        _ => error_resp(StatusCode::BAD_REQUEST, code, e, json!({})),
    }
}

async fn push<B>(state: &HubState, origin: &str, seq: &str, req: Request<B>) -> Resp
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let origin = match parse_origin(origin) {
        Ok(o) => o,
        Err(m) => return bad_request(m),
    };
    let first_seq = match parse_seq("first_seq", seq) {
        Ok(s) => s,
        Err(m) => return bad_request(m),
    };
    let max = state.log.options().limits.max_segment_bytes;
    let claimed: SegmentId = match req
        .headers()
        .get(SEGMENT_ID_HEADER)
        .map(|v| v.to_str().map(str::parse::<SegmentId>))
    {
        Some(Ok(Ok(id))) => id,
        None => {
            return bad_request(
                "missing Heph-Segment-Id header (64 hex digits: the blake3 hash of the body)",
            );
        }
        Some(_) => return bad_request("invalid Heph-Segment-Id header: expected 64 hex digits"),
    };
    let too_large = |len: u64| push_error(state, origin, &PushError::TooLarge { len, max });
    let declared = match req.headers().get(header::CONTENT_LENGTH) {
        Some(v) => match v.to_str().ok().and_then(|s| s.parse::<u64>().ok()) {
            Some(n) => Some(n),
            None => return bad_request("invalid Content-Length"),
        },
        None => None,
    };
    if let Some(n) = declared
        && n > max
    {
        return too_large(n);
    }
    let reserve = declared.unwrap_or(max).div_ceil(KIB).max(1);
    let _budget = match u32::try_from(reserve)
        .ok()
        .and_then(|n| state.upload_budget.try_acquire_many(n).ok())
    {
        Some(p) => p,
        None => return busy("too much upload data in flight; retry shortly"),
    };
    let limited = Limited::new(req.into_body(), max as usize);
    let collected = tokio::time::timeout(state.limits.body_timeout, limited.collect()).await;
    let bytes = match collected {
        Err(_) => {
            return error_resp(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                format!(
                    "the request body did not arrive within {} s",
                    state.limits.body_timeout.as_secs()
                ),
                json!({}),
            );
        }
        Ok(Err(e)) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return too_large(max + 1);
            }
            return bad_request(format!("incomplete request body: {e}"));
        }
        Ok(Ok(c)) => c.to_bytes(),
    };
    let len = bytes.len() as u64;
    match state.log.push(origin, first_seq, claimed, bytes).await {
        Ok(out) => {
            let status = if out.created {
                state.metrics.stored(len);
                tracing::debug!(%origin, first_seq, hash = %claimed, "segment stored");
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            json_resp(
                status,
                &json!({
                    "status": if out.created { "stored" } else { "exists" },
                    "origin": origin.to_string(),
                    "first_seq": out.position.first_seq,
                    "last_seq": out.position.last_seq,
                    "hash": out.position.hash.to_string(),
                    "head": head_json(Some(&out.head)),
                }),
            )
        }
        Err(e) => {
            tracing::info!(%origin, first_seq, code = e.code(), error = %e, "push refused");
            push_error(state, origin, &e)
        }
    }
}

/// Decrements the open long-poll gauge when the request ends (also when the client goes away).
struct PollGuard<'a>(&'a Metrics);

impl Drop for PollGuard<'_> {
    fn drop(&mut self) {
        self.0.long_poll_closed();
    }
}

async fn wait(state: &HubState, params: &[(String, String)]) -> Resp {
    let mut tag: Option<String> = None;
    let mut timeout = Duration::from_secs(25);
    for (k, v) in params {
        match k.as_str() {
            "tag" => tag = Some(v.clone()),
            "timeout_secs" => match v.parse::<u64>() {
                Ok(s) => timeout = Duration::from_secs(s).min(state.limits.max_wait),
                Err(_) => {
                    return bad_request("invalid timeout_secs: expected a whole number of seconds");
                }
            },
            other => return bad_request(format!("unknown query parameter {other:?}")),
        }
    }
    if state.metrics.long_poll_opened() > state.limits.max_long_polls {
        state.metrics.long_poll_closed();
        return busy("too many open long-polls");
    }
    let _guard = PollGuard(&state.metrics);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut changes = state.log.subscribe();
    let mut shutdown = state.shutdown.clone();
    loop {
        changes.borrow_and_update();
        {
            // Scoped: a waiting poll must not keep a snapshot of every head (with many origins
            // and many open polls that adds up to most of the hub's memory).
            let heads = match state.log.heads().await {
                Ok(h) => h,
                Err(e) => return store_error(&e),
            };
            let changed = tag.as_deref() != Some(heads.tag.as_str());
            let timed_out = tokio::time::Instant::now() >= deadline;
            if changed || timed_out || *shutdown.borrow() {
                let mut v = heads_json(&heads);
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("changed".to_owned(), Value::Bool(changed));
                }
                return json_resp(StatusCode::OK, &v);
            }
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep(state.limits.wait_poll) => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.changed() => {}
        }
    }
}

async fn stream(state: &Arc<HubState>, params: &[(String, String)]) -> Resp {
    let mut after: BTreeMap<Origin, u64> = BTreeMap::new();
    let mut only: Vec<Origin> = Vec::new();
    for (k, v) in params {
        match k.as_str() {
            "after" => {
                let Some((o, s)) = v.split_once(':') else {
                    return bad_request("invalid after: expected ORIGIN:SEQ");
                };
                let o = match parse_origin(o) {
                    Ok(o) => o,
                    Err(m) => return bad_request(m),
                };
                let s = match parse_seq("after seq", s) {
                    Ok(s) => s,
                    Err(m) => return bad_request(m),
                };
                after.insert(o, s);
            }
            "origin" => match parse_origin(v) {
                Ok(o) => only.push(o),
                Err(m) => return bad_request(m),
            },
            other => return bad_request(format!("unknown query parameter {other:?}")),
        }
    }
    let heads = match state.log.heads().await {
        Ok(h) => h,
        Err(e) => return store_error(&e),
    };
    let origins: Vec<Origin> = heads
        .origins
        .keys()
        .copied()
        .filter(|o| only.is_empty() || only.contains(o))
        .collect();
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(64);
    let st = Arc::clone(state);
    tokio::spawn(async move {
        if tx
            .send(Ok(Frame::data(Bytes::from_static(STREAM_PREAMBLE))))
            .await
            .is_err()
        {
            return;
        }
        for origin in origins {
            let mut from = after.get(&origin).copied().unwrap_or(0);
            loop {
                let (positions, more) = match st.log.segments(origin, from, 1000).await {
                    Ok((p, more, _)) => (p, more),
                    Err(e) => {
                        tracing::warn!(error = %e, "bulk stream aborted");
                        return;
                    }
                };
                let Some(last) = positions.last() else { break };
                from = last.last_seq;
                let log = Arc::clone(&st.log);
                let mut blobs = futures::stream::iter(positions)
                    .map(move |p| {
                        let log = Arc::clone(&log);
                        async move { (p, log.blob(p.hash).await) }
                    })
                    .buffered(32);
                while let Some((p, got)) = blobs.next().await {
                    let bytes = match got {
                        Ok(Some(b)) => b,
                        Ok(None) => {
                            tracing::error!(hash = %p.hash, "blob of a stored position is missing; bulk stream aborted");
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "bulk stream aborted");
                            return;
                        }
                    };
                    // One frame per segment: length, id, bytes.
                    let mut frame = BytesMut::with_capacity(36 + bytes.len());
                    frame.put_u32_le(bytes.len() as u32);
                    frame.put_slice(&p.hash.0);
                    frame.put_slice(&bytes);
                    if tx.send(Ok(Frame::data(frame.freeze()))).await.is_err() {
                        return;
                    }
                }
                if !more {
                    break;
                }
            }
        }
        let _ = tx.send(Ok(Frame::data(Bytes::from(vec![0u8; 36])))).await;
    });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(rx)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(STREAM_CONTENT_TYPE),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
