//! The daemon's Unix-socket JSON RPC: `POST /rpc` with `{"method": …, "params": …}` answers
//! `{"result": …}` or `{"error": {"code", "message"}}`. Every `rpc::dispatch` method plus the daemon's
//! own `sync.now`, `sync.status`, `sync.progress`, `sync.set_hub` and `daemon.info`.

use std::cell::RefCell;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::UnixListener;

use super::{HubAuthFlags, HubConnection};
use crate::env::SystemEnv;
use crate::replica::Replica;
use crate::rpc::{self, RpcError};
use crate::sync::{HttpHub, SyncOptions, SyncReport, normalise_hub_url, status, sync_once};

/// Largest RPC request body accepted.
pub const MAX_REQUEST_BYTES: usize = 16 << 20;

/// Everything the daemon's tasks share (one thread: `Rc` + `RefCell`, never borrowed across an await).
pub struct Daemon {
    /// The store.
    pub replica: RefCell<Replica>,
    /// Clock and randomness.
    pub env: SystemEnv,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The socket path.
    pub socket: PathBuf,
    /// Token store, CA file and expected IdP.
    pub flags: HubAuthFlags,
    /// The hub client and its token session, when a hub URL is configured.
    pub hub: RefCell<Option<Rc<HubConnection>>>,
    /// Wakes the sync loop (local write, `sync.now`, new hub).
    pub wake: tokio::sync::Notify,
    /// Serialises syncs (the loop's and `sync.now`'s).
    pub sync_guard: tokio::sync::Mutex<()>,
    /// How far the running sync's pull is (`sync.progress`; `heph sync` draws it on a terminal).
    pub progress: RefCell<SyncProgress>,
}

/// The pull progress of the sync that is running now (`sync.progress`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct SyncProgress {
    /// A pull is under way.
    pub active: bool,
    /// Ops the hub announced for this pull.
    pub total_ops: u64,
    /// Ops applied so far.
    pub done_ops: u64,
}

/// Feeds the engine's progress into [`Daemon::progress`].
struct SharedProgress<'a>(&'a RefCell<SyncProgress>);

impl crate::sync::Progress for SharedProgress<'_> {
    fn begin(&mut self, total_ops: u64) {
        *self.0.borrow_mut() = SyncProgress {
            active: true,
            total_ops,
            done_ops: 0,
        };
    }

    fn advance(&mut self, ops: u64) {
        let mut p = self.0.borrow_mut();
        p.done_ops = p.done_ops.saturating_add(ops);
    }

    fn end(&mut self) {
        self.0.borrow_mut().active = false;
    }
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl Daemon {
    /// Points the daemon at `url` (validated, remembered in the store) and wakes the sync loop. Tokens
    /// of another IdP than `--oidc-issuer`/`--oidc-client-id` name are refused.
    pub fn set_hub(&self, url: &str) -> Result<String> {
        let url = normalise_hub_url(url)?;
        let conn = super::connect_hub(&self.data_dir, &url, &self.flags)?;
        super::check_tokens_at_start(&conn)?;
        self.install_hub(&url, conn)?;
        Ok(url)
    }

    /// Uses `conn` for the (normalised) `url` from now on, remembers the URL and wakes the sync loop.
    pub fn install_hub(&self, url: &str, conn: HubConnection) -> Result<()> {
        status::set_hub_url(&self.replica.borrow(), url)?;
        *self.hub.borrow_mut() = Some(Rc::new(conn));
        self.wake.notify_one();
        Ok(())
    }

    /// The current hub client.
    pub fn current_hub(&self) -> Option<Rc<HttpHub>> {
        self.hub.borrow().as_ref().map(|c| c.hub.clone())
    }

    /// One sync now (serialised with the background loop); records the outcome in the store.
    pub async fn sync_now(&self) -> Result<SyncReport, crate::sync::SyncError> {
        let Some(conn) = self.hub.borrow().clone() else {
            return Err(crate::sync::SyncError::Hub(crate::sync::HubError::BadUrl {
                url: String::new(),
                reason: "no hub URL is configured; run `heph sync --hub-url URL`".into(),
            }));
        };
        let _g = self.sync_guard.lock().await;
        let mut progress = SharedProgress(&self.progress);
        let r = sync_once(
            &self.replica,
            conn.hub.as_ref(),
            &self.env,
            &SyncOptions::default(),
            &mut progress,
        )
        .await
        .map_err(|e| super::explain(e, &conn, conn.hub.url()));
        let now = crate::env::Env::now_ms(&self.env);
        let rep = self.replica.borrow();
        let recorded = match &r {
            Ok(report) => status::record_success(&rep, now, report),
            Err(e) => status::record_failure(&rep, now, e),
        };
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "cannot record the sync status");
        }
        r
    }
}

/// Binds the socket (mode 0600), replacing a stale socket file nobody answers on.
pub fn bind(path: &Path) -> Result<UnixListener> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("another daemon already answers on {}", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).ok();
    }
    let l = UnixListener::bind(path)
        .with_context(|| format!("cannot bind the socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict the socket {}", path.display()))?;
    Ok(l)
}

/// Accepts connections forever.
pub async fn serve(listener: UnixListener, daemon: Rc<Daemon>) -> Result<()> {
    loop {
        let (stream, _) = listener.accept().await.context("accepting on the socket")?;
        let d = daemon.clone();
        tokio::task::spawn_local(async move {
            let svc = hyper::service::service_fn(move |req| handle(req, d.clone()));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(error = %e, "rpc connection ended");
            }
        });
    }
}

#[derive(Deserialize)]
struct Call {
    method: String,
    #[serde(default)]
    params: Value,
}

fn reply(status: StatusCode, v: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    reply(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
}

async fn handle(
    req: Request<Incoming>,
    d: Rc<Daemon>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    if req.uri().path() != "/rpc" {
        return Ok(error(
            StatusCode::NOT_FOUND,
            "not_found",
            "the daemon serves only POST /rpc",
        ));
    }
    if req.method() != hyper::Method::POST {
        return Ok(error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "use POST /rpc",
        ));
    }
    let body = match Limited::new(req.into_body(), MAX_REQUEST_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("cannot read the request: {e}"),
            ));
        }
    };
    let call: Call = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return Ok(error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("the request must be JSON {{\"method\": …, \"params\": …}}: {e}"),
            ));
        }
    };
    let out = call_method(&d, &call.method, call.params).await;
    Ok(match out {
        Ok(v) => reply(StatusCode::OK, &json!({ "result": v })),
        Err(e) => reply(StatusCode::OK, &json!({ "error": e })),
    })
}

/// Runs one RPC method against the daemon.
pub async fn call_method(d: &Daemon, method: &str, params: Value) -> Result<Value, RpcError> {
    match method {
        "sync.now" => match d.sync_now().await {
            Ok(r) => Ok(serde_json::to_value(&r).unwrap_or(Value::Null)),
            Err(e) => Err(RpcError::new(&format!("sync_{}", e.code()), e.to_string())),
        },
        "sync.progress" => Ok(serde_json::to_value(*d.progress.borrow()).unwrap_or(Value::Null)),
        "sync.status" => {
            let s = status::status(&d.replica.borrow()).map_err(RpcError::from)?;
            Ok(serde_json::to_value(&s).unwrap_or(Value::Null))
        }
        "sync.set_hub" => {
            let url = params.get("url").and_then(Value::as_str).ok_or_else(|| {
                RpcError::new(
                    "bad_params",
                    "sync.set_hub needs {\"url\": \"http(s)://…\"}",
                )
            })?;
            let url = d
                .set_hub(url)
                .map_err(|e| RpcError::new("bad_url", format!("{e:#}")))?;
            Ok(json!({ "hub_url": url }))
        }
        "daemon.info" => Ok(json!({
            "pid": std::process::id(),
            "version": env!("CARGO_PKG_VERSION"),
            "data_dir": d.data_dir.display().to_string(),
            "socket": d.socket.display().to_string(),
            "hub_url": d.current_hub().map(|h| h.url().to_owned()),
        })),
        _ => {
            let (result, wrote) = {
                let mut r = d.replica.borrow_mut();
                let before = r.next_local_seq();
                let result = rpc::dispatch(&mut r, &d.env, method, params);
                (result, r.next_local_seq() != before)
            };
            if wrote {
                d.wake.notify_one();
            }
            result
        }
    }
}
