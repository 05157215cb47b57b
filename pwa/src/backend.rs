//! The seam between the worker and the spoke core: opens the replica and dispatches RPC methods.

use rusqlite::Connection;
use serde_json::{Value, json};

use crate::env::BrowserEnv;
use crate::error::PwaError;

/// The replica as the worker sees it.
#[derive(Debug)]
pub(crate) struct Backend {
    conn: Connection,
    env: BrowserEnv,
}

impl Backend {
    /// Opens the replica file `name` on the default VFS (the OPFS pool once installed).
    pub(crate) fn open(name: &str, env: BrowserEnv) -> Result<Backend, PwaError> {
        let conn =
            Connection::open(name).map_err(|e| PwaError::from_sqlite_text(&e.to_string()))?;
        // Reading the schema forces SQLite to look at the file header: a damaged file fails here.
        conn.query_row("PRAGMA schema_version", [], |r| r.get::<_, i64>(0))
            .map_err(|e| PwaError::from_sqlite_text(&e.to_string()))?;
        Ok(Backend { conn, env })
    }

    /// Dispatches one method.
    pub(crate) fn call(&mut self, method: &str, _params: Value) -> Result<Value, PwaError> {
        match method {
            "pwa.ping" => {
                let version: String = self
                    .conn
                    .query_row("select sqlite_version()", [], |r| r.get(0))
                    .map_err(|e| PwaError::from_sqlite_text(&e.to_string()))?;
                let wal: String = self
                    .conn
                    .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).or_else(|_| Ok::<String, rusqlite::Error>(String::new()))
                    .map_err(|e| PwaError::from_sqlite_text(&e.to_string()))?;
                Ok(json!({ "sqlite": version, "now_ms": self.env.now_ms(), "wal": wal }))
            }
            other => Err(PwaError::BadRequest {
                detail: format!("unknown method {other:?}"),
            }),
        }
    }
}
