//! The CLI's one switch point between running a request in-process and sending it to the daemon.

use serde_json::Value;

use crate::env::Env;
use crate::replica::Replica;
use crate::rpc::{self, RpcError};

/// Something that answers RPC calls: the in-process replica today, the daemon's socket later.
pub trait Backend {
    /// Calls `method` with JSON `params`.
    fn call(&mut self, method: &str, params: Value) -> Result<Value, RpcError>;

    /// Calls `method` and returns the answer as pretty-printed JSON text.
    fn call_text(&mut self, method: &str, params: Value) -> Result<String, RpcError> {
        let v = self.call(method, params)?;
        serde_json::to_string_pretty(&v).map_err(|e| RpcError::new("internal", e.to_string()))
    }
}

/// Runs every call against a replica opened by this process.
#[derive(Debug)]
pub struct InProcess<E: Env> {
    replica: Replica,
    env: E,
}

impl<E: Env> InProcess<E> {
    /// Wraps an open replica.
    pub fn new(replica: Replica, env: E) -> InProcess<E> {
        InProcess { replica, env }
    }
}

impl<E: Env> Backend for InProcess<E> {
    fn call(&mut self, method: &str, params: Value) -> Result<Value, RpcError> {
        rpc::dispatch(&mut self.replica, &self.env, method, params)
    }

    fn call_text(&mut self, method: &str, params: Value) -> Result<String, RpcError> {
        rpc::dispatch_text(&mut self.replica, &self.env, method, params)
    }
}
