//! Shared helpers of the sync end-to-end tests: real `hephd --mode server` hubs, real
//! `hephd --mode local` daemons and the real `heph` CLI in temp dirs, a cutting TCP proxy.

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The directory holding this profile's binaries (`target/<profile>/`), from the test executable's path.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let deps = exe.parent().expect("deps dir");
    let dir = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().expect("profile dir")
    } else {
        deps
    };
    dir.to_path_buf()
}

/// Builds heph and hephd once per test process (a no-op when up to date) and returns the profile dir.
pub fn bins() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = bin_dir();
        if std::env::var("HEPH_E2E_PREBUILT").as_deref() == Ok("1") {
            // The caller built heph and hephd already (e.g. `cargo build --release -p heph-spoke --bins`).
            for b in ["heph", "hephd"] {
                assert!(
                    dir.join(b).is_file(),
                    "HEPH_E2E_PREBUILT=1 but {b} is not in {}",
                    dir.display()
                );
            }
            return dir;
        }
        let profile = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("debug")
            .to_owned();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", "heph-spoke", "--bins"])
            .current_dir(&root);
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        let status = cmd.status().expect("run cargo build for heph/hephd");
        assert!(status.success(), "building heph and hephd failed");
        for b in ["heph", "hephd"] {
            assert!(dir.join(b).is_file(), "{b} not found in {}", dir.display());
        }
        dir
    })
}

pub fn heph_bin() -> PathBuf {
    bins().join("heph")
}

pub fn hephd_bin() -> PathBuf {
    bins().join("hephd")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// Polls `f` every 20 ms until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A real hub process on loopback (SIGKILLed on drop).
pub struct Hub {
    child: Option<Child>,
    pub port: u16,
    pub store: PathBuf,
    owner: Option<String>,
}

impl Hub {
    pub fn start(store: &Path, owner: Option<&str>) -> Hub {
        let mut h = Hub {
            child: None,
            port: free_port(),
            store: store.to_path_buf(),
            owner: owner.map(str::to_owned),
        };
        h.restart();
        h
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// (Re)starts the hub on the same port and store.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "hub already running");
        let mut cmd = Command::new(hephd_bin());
        cmd.args([
            "--mode",
            "server",
            "--http-addr",
            &format!("127.0.0.1:{}", self.port),
        ])
        .arg("--store")
        .arg(format!("file://{}", self.store.display()))
        .env("HEPH_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        if let Some(o) = &self.owner {
            cmd.args(["--owner-id", o]);
        }
        self.child = Some(cmd.spawn().expect("spawn hub"));
        let ok = wait_until(Duration::from_secs(20), || {
            http_get(self.addr(), "/healthz").is_some_and(|(s, _)| s == 200)
        });
        assert!(ok, "the hub did not become healthy on {}", self.url());
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `GET /sync/v1/heads` as JSON.
    pub fn heads(&self) -> Value {
        let (s, body) = http_get(self.addr(), "/sync/v1/heads").expect("heads answers");
        assert_eq!(s, 200, "heads status");
        serde_json::from_slice(&body).expect("heads JSON")
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A minimal blocking HTTP/1.1 GET (the tests' own view of the hub, independent of the client under test).
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let mut body = buf[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body)?;
    }
    Some((status, body))
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n")?;
        let n = usize::from_str_radix(std::str::from_utf8(&b[..line_end]).ok()?.trim(), 16).ok()?;
        b = &b[line_end + 2..];
        if n == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..n)?);
        b = b.get(n + 2..)?;
    }
}

/// One device: a data dir, the CLI, optionally its daemon.
pub struct Spoke {
    pub dir: PathBuf,
    daemon: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
}

impl Spoke {
    pub fn new() -> Spoke {
        let tmp = tempfile::tempdir().expect("tmp");
        Spoke {
            dir: tmp.path().join("data"),
            daemon: None,
            _tmp: Some(tmp),
        }
    }

    pub fn at(dir: PathBuf) -> Spoke {
        Spoke {
            dir,
            daemon: None,
            _tmp: None,
        }
    }

    pub fn db(&self) -> PathBuf {
        self.dir.join("heph.db")
    }

    pub fn heph(&self, args: &[&str]) -> Output {
        Command::new(heph_bin())
            .arg("--data-dir")
            .arg(&self.dir)
            .args(args)
            .env("HEPH_NO_AUTO_RELOGIN", "1")
            .env("NO_COLOR", "1")
            .env_remove("HEPH_SOCKET")
            .stdin(Stdio::null())
            .output()
            .expect("run heph")
    }

    /// Runs heph and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.heph(args);
        assert!(
            o.status.success(),
            "heph {args:?} failed ({}): {}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs heph, asserts exit code 2 and a one-line `error:` message; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.heph(args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(
            o.status.code(),
            Some(2),
            "heph {args:?} should fail with exit 2; stderr: {err}"
        );
        assert!(
            err.starts_with("error: "),
            "one-line error expected, got {err:?}"
        );
        assert!(!err.contains("panicked"), "{err}");
        err
    }

    pub fn add(&self, title: &str) -> String {
        let v: Value =
            serde_json::from_str(&self.ok(&["task", title, "--json"])).expect("task JSON");
        v["id"].as_str().expect("id").to_owned()
    }

    /// `heph list --state all --json`, parsed.
    pub fn list(&self) -> Value {
        serde_json::from_str(&self.ok(&["list", "--state", "all", "--json"])).expect("list JSON")
    }

    pub fn info(&self) -> Value {
        serde_json::from_str(&self.ok(&["info", "--json"])).expect("info JSON")
    }

    pub fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["sync", "--status", "--json"])).expect("status JSON")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("hephd.sock")
    }

    pub fn start_daemon(&mut self, hub_url: &str) {
        self.start_daemon_with(hub_url, &[]);
    }

    pub fn start_daemon_with(&mut self, hub_url: &str, extra: &[&str]) {
        assert!(self.daemon.is_none(), "daemon already running");
        std::fs::create_dir_all(&self.dir).expect("mkdir");
        let child = Command::new(hephd_bin())
            .args(["--mode", "local", "--hub-url", hub_url])
            .arg("--data-dir")
            .arg(&self.dir)
            .args(extra)
            .env("HEPH_LOG", "warn,heph_spoke::daemon::syncloop=error")
            .env("HEPH_NO_AUTO_RELOGIN", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn daemon");
        self.daemon = Some(child);
        let sock = self.socket();
        let ok = wait_until(Duration::from_secs(20), || {
            std::os::unix::net::UnixStream::connect(&sock).is_ok()
        });
        assert!(ok, "the daemon did not open its socket {}", sock.display());
    }

    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Child::id)
    }

    /// SIGKILL the daemon.
    pub fn kill_daemon(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM the daemon and wait for it.
    pub fn stop_daemon(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `PRAGMA integrity_check` on the store file.
    pub fn integrity(&self) -> String {
        let c = rusqlite::Connection::open(self.db()).expect("open db");
        c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
            .expect("integrity_check")
    }

    /// The number of ops in the op log (`op_chunks`), read directly.
    pub fn op_rows(&self) -> u64 {
        let c = rusqlite::Connection::open(self.db()).expect("open db");
        c.query_row("SELECT coalesce(sum(n), 0) FROM op_chunks", [], |r| {
            r.get::<_, i64>(0)
        })
        .expect("count") as u64
    }
}

impl Drop for Spoke {
    fn drop(&mut self) {
        self.kill_daemon();
    }
}

/// Titles of a `heph list --json` answer, sorted.
pub fn titles(list: &Value) -> Vec<String> {
    let mut t: Vec<String> = list
        .as_array()
        .expect("list array")
        .iter()
        .map(|n| n["title"].as_str().unwrap_or("").to_owned())
        .collect();
    t.sort();
    t
}

/// A TCP proxy in front of `upstream` that can cut every connection after a number of bytes
/// sent towards the client (0 = pass everything). Stops on drop.
pub struct CuttingProxy {
    pub port: u16,
    pub cut_after: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    pub cuts: Arc<AtomicU64>,
}

impl CuttingProxy {
    pub fn start(upstream: SocketAddr) -> CuttingProxy {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = l.local_addr().expect("addr").port();
        l.set_nonblocking(true).expect("nonblocking");
        let cut_after = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let cuts = Arc::new(AtomicU64::new(0));
        let (c2, s2, k2) = (cut_after.clone(), stop.clone(), cuts.clone());
        std::thread::spawn(move || {
            while !s2.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((client, _)) => {
                        let Ok(server) = TcpStream::connect(upstream) else {
                            continue;
                        };
                        let limit = c2.load(Ordering::SeqCst);
                        let k = k2.clone();
                        client.set_nonblocking(false).ok();
                        let (c_r, s_w) = (
                            client.try_clone().expect("clone"),
                            server.try_clone().expect("clone"),
                        );
                        std::thread::spawn(move || pump(c_r, s_w, 0, None));
                        std::thread::spawn(move || pump(server, client, limit, Some(k)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        CuttingProxy {
            port,
            cut_after,
            stop,
            cuts,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, limit: u64, cuts: Option<Arc<AtomicU64>>) {
    let mut buf = [0u8; 16 * 1024];
    let mut sent = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut n = n as u64;
        if limit > 0 && sent + n > limit {
            n = limit - sent;
            let _ = to.write_all(&buf[..n as usize]);
            if let Some(k) = &cuts {
                k.fetch_add(1, Ordering::SeqCst);
            }
            break;
        }
        if to.write_all(&buf[..n as usize]).is_err() {
            break;
        }
        sent += n;
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Seeds a hub straight over HTTP (no spoke involved): `origins` chains (origin ids derived from `salt`) of
/// `per_origin` typical ops each, in segments of `per_segment` ops, all of `owner`. Returns the ops pushed.
pub fn seed_chains(
    hub: &Hub,
    owner: heph_format::OwnerId,
    salt: u64,
    origins: u8,
    per_origin: u64,
    per_segment: usize,
) -> u64 {
    use heph_format::{SegmentId, encode_segment, sample::typical_ops};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = reqwest::Client::new();
    let mut total = 0;
    for o in 0..origins {
        let origin = heph_spoke::sync::conformance::origin(salt, o + 1);
        let mut prev: Option<SegmentId> = None;
        let (mut first, mut k) = (1u64, 0u64);
        while first <= per_origin {
            let n = per_segment.min((per_origin - first + 1) as usize);
            let ops = typical_ops(
                origin,
                1_767_225_600_000 + k * 1_000_000_000,
                n,
                u64::from(o) << 32 | k,
            );
            let seg = encode_segment(owner, origin, first, prev, &ops).expect("encode");
            let url = format!("{}/sync/v1/segments/{origin}/{first}", hub.url());
            let status = rt.block_on(async {
                client
                    .put(url)
                    .header("Heph-Segment-Id", seg.id.to_string())
                    .body(seg.bytes.clone())
                    .send()
                    .await
                    .expect("push")
                    .status()
            });
            assert!(status.is_success(), "seed push: {status}");
            prev = Some(seg.id);
            first += n as u64;
            k += 1;
            total += n as u64;
        }
    }
    total
}
