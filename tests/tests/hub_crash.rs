//! Crash consistency of the real `hephd --mode server` binary: SIGKILL during many concurrent
//! uploads, restart on the same store, then every segment is fully present with the right hash or
//! absent, heads are consistent, and re-pushing completes every chain.
//!
//! One kill/restart round by default; `HEPH_LONG_TESTS=1` runs five.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use heph_format::{EncodedSegment, SegmentId};
use heph_hub::testkit::{chain, origin, owner};
use serde_json::Value;

use heph_e2e::idp::hephd_binary as hephd_bin;

/// A running hephd, SIGKILLed on drop.
struct Hephd {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Hephd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

async fn start(bin: &Path, db: &Path) -> Hephd {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let child = Command::new(bin)
        .args(["--mode", "server", "--http-addr", &addr.to_string()])
        .arg("--db")
        .arg(db)
        .env("HEPH_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn hephd");
    let hub = Hephd { child, addr };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("http://{addr}/healthz")).send().await
            && r.status() == 200
        {
            return hub;
        }
        assert!(Instant::now() < deadline, "hephd did not become healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn push(
    client: &reqwest::Client,
    addr: SocketAddr,
    s: &EncodedSegment,
) -> Result<u16, reqwest::Error> {
    let r = client
        .put(format!(
            "http://{addr}/sync/v1/segments/{}/{}",
            s.header.origin, s.header.first_seq
        ))
        .header("Heph-Segment-Id", s.id.to_string())
        .body(s.bytes.clone())
        .send()
        .await?;
    Ok(r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_concurrent_uploads_never_leaves_a_partial_segment() {
    let bin = hephd_bin();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("heph.db");
    let store_dir = dir.path().join("hub-store");
    let w = owner(1);
    let origins = 16u16;
    // 16 chains × 40 segments of ~8 KiB (incompressible-ish payload).
    let chains: Arc<Vec<Vec<EncodedSegment>>> = Arc::new(
        (0..origins)
            .map(|i| chain(w, origin(i), 40, 8, 1000, u64::from(i)))
            .collect(),
    );
    let rounds = if std::env::var("HEPH_LONG_TESTS").is_ok_and(|v| v == "1") {
        5
    } else {
        1
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    for round in 0..rounds {
        let hub = start(&bin, &db).await;
        let addr = hub.addr;
        let acked = Arc::new(AtomicUsize::new(0));
        // Every origin uploads its chain from wherever the hub is, concurrently.
        let mut tasks = Vec::new();
        for o in 0..origins as usize {
            let (chains, client, acked) = (Arc::clone(&chains), client.clone(), Arc::clone(&acked));
            tasks.push(tokio::spawn(async move {
                for s in &chains[o] {
                    match push(&client, addr, s).await {
                        Ok(200 | 201) => {
                            acked.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(other) => panic!("unexpected status {other} before the kill"),
                        Err(_) => return, // the hub was killed
                    }
                }
            }));
        }
        // Kill mid-flight: after some uploads were acknowledged, well before all are.
        let total: usize = chains.iter().map(Vec::len).sum();
        let target = total / (rounds + 1) * (round + 1) / 2 + 20;
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.load(Ordering::Relaxed) < target.min(total - 1) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        drop(hub); // SIGKILL
        for t in tasks {
            t.await.expect("uploader");
        }
        let acked_before_kill = acked.load(Ordering::Relaxed);

        // Every blob file on disk is complete: its bytes hash to its name.
        let mut blobs = 0;
        for e in walk(&store_dir.join("blobs")) {
            let name = e
                .file_name()
                .and_then(|n| n.to_str())
                .expect("name")
                .to_owned();
            let bytes = std::fs::read(&e).expect("read blob");
            let id: SegmentId = name.parse().expect("blob name is a hash");
            id.verify(&bytes).expect("blob on disk is complete");
            blobs += 1;
        }

        // Restart on the same store and check what it serves.
        let hub = start(&bin, &db).await;
        let addr = hub.addr;
        assert_eq!(
            walk(&store_dir.join("tmp")).len(),
            0,
            "temp files cleaned on open"
        );
        // The killed hub's journal was replayed and removed; only the new hub's own is left.
        assert_eq!(
            walk(&store_dir.join("journal")).len(),
            1,
            "journals after restart: {:?}",
            walk(&store_dir.join("journal"))
        );
        let heads: Value = client
            .get(format!("http://{addr}/sync/v1/heads"))
            .send()
            .await
            .expect("heads")
            .json()
            .await
            .expect("json");
        let mut stored = 0usize;
        for (i, c) in chains.iter().enumerate() {
            let o = origin(i as u16);
            let list: Value = client
                .get(format!("http://{addr}/sync/v1/segments/{o}?limit=1000"))
                .send()
                .await
                .expect("list")
                .json()
                .await
                .expect("json");
            let listed = list["segments"].as_array().expect("segments");
            // The stored chain is a prefix of what was uploaded, and each listed segment is served
            // whole with the right hash.
            for (k, entry) in listed.iter().enumerate() {
                assert_eq!(entry["hash"], c[k].id.to_string(), "origin {i} segment {k}");
                let bytes = client
                    .get(format!("http://{addr}/sync/v1/blobs/{}", c[k].id))
                    .send()
                    .await
                    .expect("blob")
                    .bytes()
                    .await
                    .expect("bytes");
                assert_eq!(
                    &bytes[..],
                    &c[k].bytes[..],
                    "origin {i} segment {k} served whole"
                );
            }
            let head = &heads["origins"][o.to_string()];
            if listed.is_empty() {
                assert!(head.is_null(), "origin {i}: no segments, no head");
            } else {
                let last = &c[listed.len() - 1];
                assert_eq!(head["hash"], last.id.to_string(), "origin {i} head");
                assert_eq!(head["last_seq"], last.header.last_seq());
                assert_eq!(head["segments"], listed.len());
            }
            stored += listed.len();
        }
        assert!(
            stored >= acked_before_kill.min(total),
            "every acknowledged upload survived: stored {stored}, acknowledged {acked_before_kill}"
        );
        assert!(blobs >= stored, "every stored position has its blob");
        eprintln!(
            "round {round}: {acked_before_kill} acknowledged before SIGKILL, {stored} in chains, {blobs} blobs, {total} total"
        );
        // Re-push everything: completes every chain.
        if round + 1 == rounds {
            for c in chains.iter() {
                for s in c {
                    let st = push(&client, addr, s).await.expect("re-push");
                    assert!(st == 200 || st == 201, "re-push status {st}");
                }
            }
            let heads: Value = client
                .get(format!("http://{addr}/sync/v1/heads"))
                .send()
                .await
                .expect("heads")
                .json()
                .await
                .expect("json");
            for (i, c) in chains.iter().enumerate() {
                let head = &heads["origins"][origin(i as u16).to_string()];
                assert_eq!(head["hash"], c[c.len() - 1].id.to_string());
                assert_eq!(head["segments"], c.len());
            }
        }
        drop(hub);
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
