//! Shared test support: a raw HTTP/1.1 client over real loopback sockets, an in-process hub bound
//! to port 0, and a real SeaweedFS harness (`weed`).

#![allow(dead_code, unreachable_pub)]

pub mod weed;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use heph_hub::server::{Hub, HubConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Parses a complete response (the connection was closed by the server after it).
pub fn parse_response(raw: &[u8], head_request: bool) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..split]).expect("utf8 head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if head_request || status == 304 {
        Vec::new()
    } else if chunked {
        dechunk(rest)
    } else if let Some(len) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        rest[..len.min(rest.len())].to_vec()
    } else {
        rest.to_vec()
    };
    Resp {
        status,
        headers,
        body,
    }
}

/// Decodes a chunked body (keeps what arrived if it was cut short).
pub fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = std::str::from_utf8(&data[..eol]).unwrap_or("0");
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        data = &data[eol + 2..];
        if size == 0 {
            return out;
        }
        let take = size.min(data.len());
        out.extend_from_slice(&data[..take]);
        if take < size {
            return out;
        }
        data = &data[(size + 2).min(data.len())..];
    }
}

/// Sends one request (with `Connection: close`) and reads the whole response.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !headers.iter().any(|(k, _)| {
        k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
    }) && (!body.is_empty() || method == "PUT" || method == "POST")
    {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body);
    let resp = raw_exchange(addr, &raw).await;
    parse_response(&resp, method == "HEAD")
}

/// Writes raw bytes, then reads until the server closes the connection (10 s cap).
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    // The server may answer (and close) before it has read everything, e.g. for 413.
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    out
}

pub async fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, &[], b"").await
}

/// Pushes an encoded segment to its position.
pub async fn push(addr: SocketAddr, seg: &heph_format::EncodedSegment) -> Resp {
    let path = format!(
        "/sync/v1/segments/{}/{}",
        seg.header.origin, seg.header.first_seq
    );
    let id = seg.id.to_string();
    request(addr, "PUT", &path, &[("Heph-Segment-Id", &id)], &seg.bytes).await
}

/// A hub serving on a real loopback socket (port 0) until dropped.
pub struct TestHub {
    pub addr: SocketAddr,
    pub hub: Arc<Hub>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), heph_hub::ServerError>>>,
}

impl TestHub {
    pub async fn start(config: HubConfig) -> TestHub {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hub = Arc::new(Hub::new(config).await.expect("hub"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let h = Arc::clone(&hub);
        let task = tokio::spawn(async move {
            h.serve_tcp(listener, async move {
                let _ = rx.await;
            })
            .await
        });
        TestHub {
            addr,
            hub,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the hub gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("join").expect("serve");
        }
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// A dev-mode config over a fresh in-memory store with short timeouts for tests.
pub fn memory_config() -> HubConfig {
    let mut c = HubConfig::new(
        Arc::new(heph_hub::store::MemoryStore::new()),
        Arc::new(heph_hub::DevAuthenticator),
    );
    c.dev_mode = true;
    c.revalidate = Duration::ZERO;
    c.header_timeout = Duration::from_secs(1);
    c.http.body_timeout = Duration::from_secs(1);
    c.http.wait_poll = Duration::from_millis(100);
    c.shutdown_grace = Duration::from_secs(5);
    c
}
