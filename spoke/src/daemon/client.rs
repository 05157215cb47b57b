//! The CLI side of the daemon socket: a blocking `POST /rpc` client that implements the CLI's `Backend`.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::cli::backend::Backend;
use crate::rpc::RpcError;

/// Talks to a running `hephd --mode local` over its socket.
#[derive(Debug, Clone)]
pub struct DaemonBackend {
    socket: PathBuf,
}

/// The socket the CLI looks for: `$HEPH_SOCKET`, else `<data dir>/hephd.sock`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    match std::env::var_os("HEPH_SOCKET") {
        Some(s) if !s.is_empty() => PathBuf::from(s),
        _ => data_dir.join(super::SOCKET_FILE),
    }
}

impl DaemonBackend {
    /// The daemon of `data_dir` when one answers on its socket.
    pub fn connect(data_dir: &Path) -> Option<DaemonBackend> {
        let socket = socket_path(data_dir);
        UnixStream::connect(&socket).ok()?;
        Some(DaemonBackend { socket })
    }

    /// A client for an explicit socket path (not checked).
    pub fn at(socket: PathBuf) -> DaemonBackend {
        DaemonBackend { socket }
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn unavailable(&self, what: &str, e: impl std::fmt::Display) -> RpcError {
        RpcError::new(
            "daemon_unavailable",
            format!("the daemon on {} {what}: {e}", self.socket.display()),
        )
    }

    /// One call; waits at most `timeout` for the answer.
    pub fn call_timeout(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, RpcError> {
        let mut s = UnixStream::connect(&self.socket)
            .map_err(|e| self.unavailable("does not answer", e))?;
        s.set_read_timeout(Some(timeout)).ok();
        s.set_write_timeout(Some(Duration::from_secs(30))).ok();
        let body = json!({ "method": method, "params": params }).to_string();
        let req = format!(
            "POST /rpc HTTP/1.1\r\nHost: hephd\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes())
            .map_err(|e| self.unavailable("refused the request", e))?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)
            .map_err(|e| self.unavailable("did not answer", e))?;
        let split = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| self.unavailable("answered garbage", "no HTTP header end"))?;
        let head = String::from_utf8_lossy(&buf[..split]);
        if !head.starts_with("HTTP/1.1 ") {
            return Err(self.unavailable("answered garbage", "not HTTP/1.1"));
        }
        let body = &buf[split + 4..];
        let v: Value =
            serde_json::from_slice(body).map_err(|e| self.unavailable("answered garbage", e))?;
        if let Some(e) = v.get("error") {
            return Err(serde_json::from_value(e.clone())
                .unwrap_or_else(|_| RpcError::new("internal", e.to_string())));
        }
        Ok(v.get("result").cloned().unwrap_or(Value::Null))
    }
}

impl Backend for DaemonBackend {
    fn call(&mut self, method: &str, params: Value) -> Result<Value, RpcError> {
        self.call_timeout(method, params, Duration::from_secs(600))
    }
}
