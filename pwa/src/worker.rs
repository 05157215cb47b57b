//! The object the worker script drives: opens the replica on OPFS, dispatches UI calls to the spoke core
//! and runs syncs.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::{Value, json};
use wasm_bindgen::prelude::*;

use crate::backend::Backend;
use crate::env::BrowserEnv;
use crate::error::PwaError;
use crate::storage;

/// The replica file's name inside the OPFS pool.
const DB_NAME: &str = "heph.db";

/// The browser spoke: one per dedicated worker. Every method takes `&self` (state is behind `RefCell`s
/// borrowed only briefly), so calls keep being served while a sync awaits the network.
#[wasm_bindgen]
#[derive(Debug)]
pub struct WorkerSpoke {
    backend: RefCell<Option<Rc<Backend>>>,
}

fn to_js(e: &PwaError) -> JsValue {
    JsValue::from_str(&serde_json::to_string(&e.body()).unwrap_or_else(|_| e.to_string()))
}

#[wasm_bindgen]
impl WorkerSpoke {
    /// Installs the OPFS pool and opens (or creates) the replica. Rejects with a JSON error body
    /// (`no_opfs`, `quota`, `corrupt`, `storage`).
    pub async fn open() -> Result<WorkerSpoke, JsValue> {
        storage::install_pool().await.map_err(|e| to_js(&e))?;
        let backend = Backend::open(DB_NAME, BrowserEnv).map_err(|e| to_js(&e))?;
        Ok(WorkerSpoke {
            backend: RefCell::new(Some(Rc::new(backend))),
        })
    }

    /// Installs the pool and deletes every file in it (used when `open` failed on a damaged replica).
    #[wasm_bindgen(js_name = resetStorage)]
    pub async fn reset_storage() -> Result<(), JsValue> {
        storage::install_pool().await.map_err(|e| to_js(&e))?;
        storage::clear_pool().map_err(|e| to_js(&e))
    }

    /// Calls one RPC method with JSON parameters; returns the JSON result text, or throws a JSON error body.
    pub fn call(&self, method: &str, params: &str) -> Result<String, JsValue> {
        self.call_inner(method, params)
            .map(|v| v.to_string())
            .map_err(|e| to_js(&e))
    }

    #[cfg(feature = "sync")]
    /// Syncs with the hub at `hub_url` using `token` (empty: none, for a dev-mode hub). Resolves to the
    /// JSON report text, or rejects with a JSON error body (`sync_auth`, `sync_offline`, `sync_hub_down`, ...).
    pub async fn sync(&self, hub_url: String, token: String) -> Result<String, JsValue> {
        let backend = self.backend().map_err(|e| to_js(&e))?;
        let token = (!token.is_empty()).then_some(token);
        backend
            .sync(&hub_url, token)
            .await
            .map(|v| v.to_string())
            .map_err(|e| to_js(&e))
    }

    /// Whether this build contains the sync client.
    #[wasm_bindgen(js_name = hasSync)]
    pub fn has_sync() -> bool {
        cfg!(feature = "sync")
    }

    /// Closes the replica and deletes every file of the OPFS pool: the next `open` starts empty.
    #[wasm_bindgen(js_name = resetReplica)]
    pub fn reset_replica(&self) -> Result<(), JsValue> {
        let taken = self.backend.borrow_mut().take();
        if let Some(b) = taken
            && Rc::strong_count(&b) > 1
        {
            *self.backend.borrow_mut() = Some(b);
            let e = PwaError::Storage {
                detail: "a sync is running; try again in a moment".into(),
            };
            return Err(to_js(&e));
        }
        storage::clear_pool().map_err(|e| to_js(&e))
    }
}

impl WorkerSpoke {
    fn backend(&self) -> Result<Rc<Backend>, PwaError> {
        self.backend
            .borrow()
            .as_ref()
            .cloned()
            .ok_or_else(|| PwaError::Storage {
                detail: "the replica is closed (it was reset); reload the page".into(),
            })
    }

    fn call_inner(&self, method: &str, params: &str) -> Result<Value, PwaError> {
        let params: Value = if params.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(params).map_err(|e| PwaError::BadRequest {
                detail: format!("parameters are not JSON: {e}"),
            })?
        };
        if method == "pwa.storage" {
            let (used, capacity) = storage::pool_usage();
            return Ok(json!({ "files": used, "slots": capacity, "pool": storage::POOL_DIR }));
        }
        self.backend()?.call(method, params)
    }
}
