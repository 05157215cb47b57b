//! The seam between the worker and the spoke core: opens the replica, dispatches RPC methods through
//! `heph_spoke::rpc::dispatch` (the same method table the daemon serves to the CLI), and runs the shared
//! sync client (`heph_spoke::sync::sync_once`) over `fetch`.

use std::cell::RefCell;
use std::rc::Rc;

use heph_spoke::Replica;
use heph_spoke::error::SpokeError;
#[cfg(feature = "sync")]
use heph_spoke::sync::{self, HttpHub, StaticToken, SyncError, SyncOptions};
use serde_json::{Value, json};

use crate::env::BrowserEnv;
use crate::error::PwaError;

/// The replica as the worker sees it. Borrows of the replica are short (never held across an await), so
/// UI calls are served while a sync waits for the network.
#[derive(Debug)]
pub(crate) struct Backend {
    replica: Rc<RefCell<Replica>>,
    env: BrowserEnv,
}

fn open_error(e: SpokeError) -> PwaError {
    match e {
        SpokeError::NotADatabase { .. } => PwaError::Corrupt {
            detail: e.to_string(),
        },
        other => PwaError::from_sqlite_text(&other.to_string()),
    }
}

fn rpc_error(e: heph_spoke::rpc::RpcError) -> PwaError {
    match e.code.as_str() {
        "unknown_method" | "bad_params" => PwaError::BadRequest { detail: e.message },
        "not_a_database" => PwaError::Corrupt { detail: e.message },
        "internal" => PwaError::from_sqlite_text(&e.message),
        _ => PwaError::Rpc {
            code: e.code,
            message: e.message,
        },
    }
}

#[cfg(feature = "sync")]
fn store_error(e: SpokeError) -> PwaError {
    PwaError::from_sqlite_text(&e.to_string())
}

#[cfg(feature = "sync")]
/// Maps a sync failure to the UI's codes: `auth`, `offline`, `hub_down`, `refused`, `protocol`.
fn sync_error(e: &SyncError) -> PwaError {
    let code = match e.code() {
        "unauthorized" | "forbidden" => "auth",
        "unreachable" => "offline",
        "unavailable" | "truncated" => "hub_down",
        "protocol" | "bad_segment" => "protocol",
        "store" => "store",
        _ => "refused",
    };
    // The fetch layer's errors carry a JavaScript stack trace after the first line: keep one line.
    let text = e.to_string();
    let mut message: String = text
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(240)
        .collect();
    if code == "offline" {
        message = format!("the hub cannot be reached (offline, or the hub is down): {message}");
    }
    PwaError::Sync {
        code: code.to_owned(),
        message,
    }
}

impl Backend {
    /// Opens (or creates) the replica file `name` on the default VFS (the OPFS pool once installed).
    pub(crate) fn open(name: &str, env: BrowserEnv) -> Result<Backend, PwaError> {
        // The replica's own settings (WAL, synchronous = NORMAL, its page cache) hold here as natively;
        // `pwa/www/write-batch.js` batches the OPFS writes underneath.
        let replica = Replica::open(name, &env).map_err(open_error)?;
        Ok(Backend {
            replica: Rc::new(RefCell::new(replica)),
            env,
        })
    }

    /// Dispatches one method.
    pub(crate) fn call(&self, method: &str, params: Value) -> Result<Value, PwaError> {
        let mut replica = self
            .replica
            .try_borrow_mut()
            .map_err(|_| PwaError::Storage {
                detail: "the replica is busy; try again".into(),
            })?;
        match method {
            "pwa.ping" => {
                let conn = replica.connection();
                let q = |sql: &str| -> Result<String, PwaError> {
                    conn.query_row(sql, [], |r| r.get(0))
                        .map_err(|e| PwaError::from_sqlite_text(&e.to_string()))
                };
                Ok(json!({
                    "sqlite": q("select sqlite_version()")?,
                    "journal_mode": q("PRAGMA journal_mode")?,
                    "now_ms": heph_spoke::Env::now_ms(&self.env),
                }))
            }
            #[cfg(feature = "sync")]
            "sync.status" => {
                let st = sync::status(&replica).map_err(store_error)?;
                serde_json::to_value(st).map_err(|e| PwaError::Storage {
                    detail: e.to_string(),
                })
            }
            _ => heph_spoke::rpc::dispatch(&mut replica, &self.env, method, params)
                .map_err(rpc_error),
        }
    }

    #[cfg(feature = "sync")]
    /// One full sync with the hub at `hub_url` (the page's own origin), with `token` as the bearer
    /// (`None` for a dev-mode hub). Records the outcome in the replica's sync status either way.
    pub(crate) async fn sync(
        &self,
        hub_url: &str,
        token: Option<String>,
    ) -> Result<Value, PwaError> {
        let hub =
            HttpHub::new(hub_url, Rc::new(StaticToken(token))).map_err(|e| PwaError::Sync {
                code: "refused".into(),
                message: e.to_string(),
            })?;
        let env = self.env;
        let result = sync::sync_once(
            &self.replica,
            &hub,
            &env,
            &SyncOptions::default(),
            &mut sync::NoProgress,
        )
        .await;
        let now = heph_spoke::Env::now_ms(&env);
        let replica = self.replica.borrow();
        match result {
            Ok(report) => {
                sync::status::set_hub_url(&replica, hub_url).map_err(store_error)?;
                sync::status::record_success(&replica, now, &report).map_err(store_error)?;
                Ok(json!({
                    "pushed_ops": report.pushed_ops,
                    "pulled_ops": report.pulled_ops,
                    "tag": report.tag,
                    "status": sync::status(&replica).map_err(store_error)?,
                }))
            }
            Err(e) => {
                sync::status::record_failure(&replica, now, &e).map_err(store_error)?;
                Err(sync_error(&e))
            }
        }
    }
}
