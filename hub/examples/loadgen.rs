//! Load generator for the hub benchmarks (`docs/benchmarks.md`, "Hub"): push rate, long-poll
//! memory, bulk-stream throughput, and seeding a blob for `wrk`.
//!
//! ```text
//! cargo run --release -p heph-hub --example loadgen -- seed   --addr 127.0.0.1:8787
//! cargo run --release -p heph-hub --example loadgen -- push   --addr 127.0.0.1:8787 --segments 20000
//! cargo run --release -p heph-hub --example loadgen -- polls  --addr 127.0.0.1:8787 --count 1000 --pid PID
//! cargo run --release -p heph-hub --example loadgen -- stream --addr 127.0.0.1:8787 --ops 1000000
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use heph_format::EncodedSegment;
use heph_hub::testkit::{origin, owner, segment};
use http_body_util::{BodyExt, Empty, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Sender {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let _ = stream.set_nodelay(true);
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    send
}

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_owned())
}

/// `n` chains of segments, about `seg_bytes` each, `ops` ops per segment, for `origins` origins,
/// starting at origin number `base` (so repeated runs do not collide).
fn make(
    origins: u16,
    per_origin: usize,
    ops: usize,
    payload: usize,
    base: u16,
) -> Vec<Vec<EncodedSegment>> {
    let w = owner(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..origins)
            .map(|i| {
                s.spawn(move || {
                    let o = origin(base + i);
                    let mut out: Vec<EncodedSegment> = Vec::with_capacity(per_origin);
                    let mut first = 1;
                    for k in 0..per_origin {
                        let prev = out.last().map(|x| x.id);
                        let seg = segment(
                            w,
                            o,
                            first,
                            prev,
                            ops,
                            payload,
                            (u64::from(base + i) << 32) | k as u64,
                        );
                        first = seg.header.last_seq() + 1;
                        out.push(seg);
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("gen"))
            .collect()
    })
}

async fn put(send: &mut Sender, s: &EncodedSegment) -> u16 {
    let req = Request::put(format!(
        "/sync/v1/segments/{}/{}",
        s.header.origin, s.header.first_seq
    ))
    .header("host", "hub")
    .header("heph-segment-id", s.id.to_string())
    .body(Full::new(Bytes::from(s.bytes.clone())))
    .expect("request");
    send.ready().await.expect("ready");
    let resp = send.send_request(req).await.expect("send");
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    status
}

async fn push_all(
    addr: SocketAddr,
    chains: Vec<Vec<EncodedSegment>>,
    concurrency: usize,
) -> (usize, Duration) {
    // Each worker owns whole origins (a chain must be pushed in order).
    let chains = Arc::new(chains);
    let next = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (chains, next) = (Arc::clone(&chains), Arc::clone(&next));
            tokio::spawn(async move {
                let mut send = connect(addr).await;
                let mut n = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(c) = chains.get(i) else { break };
                    for s in c {
                        let st = put(&mut send, s).await;
                        assert!(st == 201 || st == 200, "push status {st}");
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for w in workers {
        total += w.await.expect("worker");
    }
    (total, t.elapsed())
}

async fn get_text(addr: SocketAddr, path: &str) -> String {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", "hub")
        .body(Empty::new())
        .expect("req");
    let resp = send.send_request(req).await.expect("send");
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

fn rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = args.first().cloned().unwrap_or_default();
    let addr: SocketAddr = arg(&args, "--addr", "127.0.0.1:8787")
        .parse()
        .expect("--addr");
    let base: u16 = arg(&args, "--base", "0").parse().expect("--base");
    match cmd.as_str() {
        "seed" => {
            // One 8 KiB segment; prints its blob path for wrk.
            let chains = make(1, 1, 8, 1750, 60000 + base);
            let (_, _) = push_all(addr, chains.clone(), 1).await;
            let s = &chains[0][0];
            println!("/sync/v1/blobs/{} {} bytes", s.id, s.bytes.len());
        }
        "push" => {
            let segments: usize = arg(&args, "--segments", "20000")
                .parse()
                .expect("--segments");
            let origins: u16 = arg(&args, "--origins", "256").parse().expect("--origins");
            let conc: usize = arg(&args, "--concurrency", "64")
                .parse()
                .expect("--concurrency");
            let per = segments.div_ceil(usize::from(origins));
            eprintln!(
                "generating {} segments of ~8 KiB...",
                per * usize::from(origins)
            );
            let chains = make(origins, per, 8, 1750, base);
            let bytes: usize = chains.iter().flatten().map(|s| s.bytes.len()).sum();
            let (n, dt) = push_all(addr, chains, conc).await;
            println!(
                "push: {n} segments ({:.1} KiB avg) in {:.2} s = {:.0} segments/s, concurrency {conc}",
                bytes as f64 / n as f64 / 1024.0,
                dt.as_secs_f64(),
                n as f64 / dt.as_secs_f64()
            );
        }
        "polls" => {
            let count: usize = arg(&args, "--count", "1000").parse().expect("--count");
            let pid = arg(&args, "--pid", "");
            let heads = get_text(addr, "/sync/v1/heads").await;
            let v: serde_json::Value = serde_json::from_str(&heads).expect("heads json");
            let tag = v["tag"].as_str().expect("tag").to_owned();
            let before = rss_kib(&pid);
            let mut tasks = Vec::with_capacity(count);
            for _ in 0..count {
                let path = format!("/sync/v1/wait?tag={tag}&timeout_secs=60");
                tasks.push(tokio::spawn(async move { get_text(addr, &path).await }));
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
            let metrics = get_text(addr, "/metrics").await;
            let open = metrics
                .lines()
                .find(|l| l.starts_with("heph_long_polls_open "))
                .unwrap_or("?")
                .to_owned();
            let during = rss_kib(&pid);
            println!(
                "polls: {open}; hub RSS before {:.1} MiB, with {count} open long-polls {:.1} MiB",
                before as f64 / 1024.0,
                during as f64 / 1024.0
            );
            for t in tasks {
                t.abort();
            }
        }
        "stream" => {
            let ops: usize = arg(&args, "--ops", "1000000").parse().expect("--ops");
            let per_seg: usize = arg(&args, "--ops-per-segment", "1000")
                .parse()
                .expect("ops");
            let payload: usize = arg(&args, "--payload", "64").parse().expect("payload");
            let origins: u16 = 10;
            let per_origin = ops / per_seg / usize::from(origins);
            if arg(&args, "--no-seed", "") != "yes" {
                eprintln!(
                    "generating and pushing {ops} ops in {} segments...",
                    per_origin * 10
                );
                let chains = make(origins, per_origin, per_seg, payload, 30000 + base);
                push_all(addr, chains, 10).await;
            }
            let mut times = Vec::new();
            let mut size = 0;
            for _ in 0..5 {
                let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
                let (mut send, conn) =
                    hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                        .await
                        .expect("handshake");
                tokio::spawn(conn);
                let t = Instant::now();
                let req = Request::get("/sync/v1/stream")
                    .header("host", "hub")
                    .body(Empty::new())
                    .expect("req");
                let mut body = send.send_request(req).await.expect("send").into_body();
                let mut n = 0usize;
                while let Some(f) = body.frame().await {
                    if let Ok(d) = f.expect("frame").into_data() {
                        n += d.len();
                    }
                }
                times.push(t.elapsed().as_secs_f64());
                size = n;
            }
            times.sort_by(f64::total_cmp);
            let median = times[times.len() / 2];
            println!(
                "stream: {:.1} MB in {:.3} s (median of 5) = {:.0} MB/s",
                size as f64 / 1e6,
                median,
                size as f64 / 1e6 / median
            );
        }
        _ => {
            eprintln!("usage: loadgen seed|push|polls|stream --addr HOST:PORT [options]");
            std::process::exit(2);
        }
    }
}
