//! The object the worker script drives: opens the replica on OPFS and dispatches UI calls to the spoke core.

use serde_json::{Value, json};
use wasm_bindgen::prelude::*;

use crate::backend::Backend;
use crate::env::BrowserEnv;
use crate::error::PwaError;
use crate::storage;

/// The replica file's name inside the OPFS pool.
const DB_NAME: &str = "heph.db";

/// The browser spoke: one per dedicated worker.
#[wasm_bindgen]
#[derive(Debug)]
pub struct WorkerSpoke {
    backend: Option<Backend>,
    env: BrowserEnv,
}

fn to_js(e: &PwaError) -> JsValue {
    JsValue::from_str(&serde_json::to_string(&e.body()).unwrap_or_else(|_| e.to_string()))
}

#[wasm_bindgen]
impl WorkerSpoke {
    /// Installs the OPFS pool and opens (or creates) the replica. Rejects with a JSON error body
    /// (`no_opfs`, `quota`, `corrupt`, `storage`).
    pub async fn open() -> Result<WorkerSpoke, JsValue> {
        let env = BrowserEnv;
        storage::install_pool().await.map_err(|e| to_js(&e))?;
        let backend = Backend::open(DB_NAME, env).map_err(|e| to_js(&e))?;
        Ok(WorkerSpoke {
            backend: Some(backend),
            env,
        })
    }

    /// Installs the pool without opening the replica (used after `open` failed, to reset it).
    #[wasm_bindgen(js_name = resetStorage)]
    pub async fn reset_storage() -> Result<(), JsValue> {
        storage::install_pool().await.map_err(|e| to_js(&e))?;
        storage::clear_pool().map_err(|e| to_js(&e))
    }

    /// Calls one RPC method with JSON parameters; resolves to the JSON result text, or rejects with a JSON
    /// error body.
    pub fn call(&mut self, method: &str, params: &str) -> Result<String, JsValue> {
        self.call_inner(method, params)
            .map(|v| v.to_string())
            .map_err(|e| to_js(&e))
    }

    /// Closes the replica and deletes every file of the OPFS pool: the next `open` starts empty.
    #[wasm_bindgen(js_name = resetReplica)]
    pub fn reset_replica(&mut self) -> Result<(), JsValue> {
        self.backend = None;
        storage::clear_pool().map_err(|e| to_js(&e))
    }
}

impl WorkerSpoke {
    fn call_inner(&mut self, method: &str, params: &str) -> Result<Value, PwaError> {
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
        let _ = self.env;
        let backend = self.backend.as_mut().ok_or_else(|| PwaError::Storage {
            detail: "the replica is closed (it was reset); reload the page".into(),
        })?;
        backend.call(method, params)
    }
}
