//! Test support: start and stop the real test IdP (`tests/node/idp.mjs`, npm `oidc-provider`), mint tokens
//! with its key, and approve device codes through its real verification pages (`tests/node/idp-approve.mjs`).
//!
//! `node` missing: under `CI=true` that is a test failure; otherwise [`Idp::start`] returns `None` after
//! printing why the test is skipped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

/// Options for one IdP process.
#[derive(Debug, Clone)]
pub struct IdpOptions {
    /// Access token lifetime (seconds).
    pub access_ttl: u64,
    /// Refresh token lifetime (seconds).
    pub refresh_ttl: u64,
    /// Device code lifetime (seconds).
    pub device_ttl: u64,
    /// Fixed port (0 = any). A restart for key rotation reuses the first port so the issuer stays the same.
    pub port: u16,
}

impl Default for IdpOptions {
    fn default() -> IdpOptions {
        IdpOptions {
            access_ttl: 300,
            refresh_ttl: 3600,
            device_ttl: 600,
            port: 0,
        }
    }
}

/// A running test IdP. Killed on drop.
#[derive(Debug)]
pub struct Idp {
    child: Option<Child>,
    _stdin: Option<ChildStdin>,
    /// The issuer URL (`http://127.0.0.1:PORT`).
    pub issuer: String,
    /// The port it listens on.
    pub port: u16,
    /// Private JWKS file (restart with a fresh file = key rotation).
    pub keys_file: PathBuf,
    opts: IdpOptions,
    dir: tempfile::TempDir,
}

/// Directory holding `idp.mjs` and its `node_modules`.
pub fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("node")
}

/// `true` under `CI=true`/`CI=1`.
pub fn in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true" | "1"))
}

/// Check that node and the harness's npm packages are there. Panics under CI when not; otherwise prints the
/// reason and returns `false` (the caller skips).
pub fn node_available() -> bool {
    let node_ok = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let why = match node_ok {
        Ok(s) if s.success() => {
            if node_dir().join("node_modules/oidc-provider").is_dir() {
                return true;
            }
            format!(
                "npm packages missing: run `npm install` in {}",
                node_dir().display()
            )
        }
        _ => "node is not installed".to_string(),
    };
    if in_ci() {
        panic!("CI=true but the test IdP cannot run: {why}");
    }
    eprintln!("SKIPPED: {why} (tests needing the real IdP fail instead of skipping when CI=true)");
    false
}

impl Idp {
    /// Start an IdP with default options. `None` (test skipped) only when node is missing outside CI.
    pub fn start() -> Option<Idp> {
        Idp::start_with(IdpOptions::default())
    }

    /// Start an IdP with `opts`.
    pub fn start_with(opts: IdpOptions) -> Option<Idp> {
        if !node_available() {
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let keys_file = dir.path().join("keys-1.json");
        let mut idp = Idp {
            child: None,
            _stdin: None,
            issuer: String::new(),
            port: 0,
            keys_file,
            opts,
            dir,
        };
        idp.spawn();
        Some(idp)
    }

    fn spawn(&mut self) {
        let mut child = Command::new("node")
            .current_dir(node_dir())
            .arg("idp.mjs")
            .args(["--port", &self.opts.port.to_string()])
            .args(["--keys", &self.keys_file.display().to_string()])
            .args(["--access-ttl", &self.opts.access_ttl.to_string()])
            .args(["--refresh-ttl", &self.opts.refresh_ttl.to_string()])
            .args(["--device-ttl", &self.opts.device_ttl.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn node idp.mjs");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).expect("read issuer line");
        // Keep draining stdout (oidc-provider prints notices there): a closed pipe would kill the IdP.
        std::thread::spawn(move || {
            let mut rest = String::new();
            while reader.read_line(&mut rest).map(|n| n > 0).unwrap_or(false) {
                eprint!("idp: {rest}");
                rest.clear();
            }
        });
        let issuer = line.trim().to_string();
        assert!(
            issuer.starts_with("http://127.0.0.1:"),
            "idp.mjs printed {issuer:?} instead of its issuer"
        );
        self.port = issuer
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        self.opts.port = self.port;
        self.issuer = issuer;
        self._stdin = child.stdin.take();
        self.child = Some(child);
    }

    fn kill(&mut self) {
        self._stdin = None;
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stop the IdP (it is then unreachable until [`Idp::restart`]).
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Restart on the same port with the same key.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn_retrying();
    }

    /// Restart on the same port with a NEW signing key (key rotation at the IdP).
    pub fn restart_with_new_key(&mut self) {
        self.kill();
        let n = std::fs::read_dir(self.dir.path())
            .map(|d| d.count())
            .unwrap_or(0)
            + 1;
        self.keys_file = self.dir.path().join(format!("keys-{n}.json"));
        self.spawn_retrying();
    }

    fn spawn_retrying(&mut self) {
        // The old socket may linger for a moment.
        std::thread::sleep(Duration::from_millis(100));
        self.spawn();
    }

    /// Mint a JWT signed with the IdP's current key (or a foreign key when `foreign_key`), starting from a
    /// valid access token for alice; `claims`/`header` entries override (JSON null deletes).
    pub fn mint(
        &self,
        claims: serde_json::Value,
        header: serde_json::Value,
        foreign_key: bool,
    ) -> String {
        let body =
            serde_json::json!({"claims": claims, "header": header, "foreign_key": foreign_key});
        let resp: serde_json::Value =
            blocking_post_json(&format!("{}/__test/mint", self.issuer), &body);
        resp["token"].as_str().expect("token").to_string()
    }

    /// Approve (or abort) a device code as `user` through the real verification pages.
    pub fn approve(&self, verification_uri: &str, user_code: &str, user: &str, abort: bool) {
        let mut cmd = Command::new("node");
        cmd.current_dir(node_dir()).arg("idp-approve.mjs").args([
            verification_uri,
            user_code,
            user,
        ]);
        if abort {
            cmd.arg("--abort");
        }
        let out = cmd.output().expect("run idp-approve.mjs");
        assert!(
            out.status.success(),
            "device approval failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The test users of idp.mjs: (name, sub, groups).
pub const USERS: [(&str, &str, &[&str]); 3] = [
    ("alice", "alice-sub-0001", &["admins"]),
    ("bob", "bob-sub-0002", &["users"]),
    ("agent", "agent-sub-0003", &["heph-agents"]),
];

fn blocking_post_json(url: &str, body: &serde_json::Value) -> serde_json::Value {
    // A tiny HTTP/1.1 client over std, so this module needs no async runtime.
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http url");
    let (hostport, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut s = std::net::TcpStream::connect(hostport).expect("connect idp");
    let b = body.to_string();
    write!(
        s,
        "POST {path} HTTP/1.0\r\nHost: {hostport}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
        b.len()
    )
    .expect("write");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    let (_, body) = resp.split_once("\r\n\r\n").expect("http response");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("idp answered {resp:?}: {e}"))
}

/// The `heph` binary of this workspace, built on first use (`cargo build -p heph-spoke --bin heph`), so the
/// CLI is tested as a user runs it.
pub fn heph_binary() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| spoke_binary("heph")).clone()
}

/// The `hephd` binary: `HEPH_HEPHD_BIN` when set, else built on first use.
pub fn hephd_binary() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var_os("HEPH_HEPHD_BIN").map_or_else(|| spoke_binary("hephd"), PathBuf::from)
    })
    .clone()
}

fn spoke_binary(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf();
    let status = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args(["build", "--quiet", "-p", "heph-spoke", "--bin", name])
        .status()
        .expect("run cargo build");
    assert!(
        status.success(),
        "cargo build -p heph-spoke --bin {name} failed"
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("debug").join(name);
    assert!(bin.is_file(), "{} missing after the build", bin.display());
    bin
}
