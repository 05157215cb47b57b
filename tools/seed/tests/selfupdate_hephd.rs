//! Self-update as it runs: a real `hephd --mode server --self-update` polling a local git repository acting as
//! the forge, with a stand-in `rustc` that reports a toolchain older than the workspace's `rust-version`. The
//! failure must surface in the daemon's error log, `/healthz`, `/metrics`, the status file and
//! `heph daemon status` — and the installer must never run.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod support;
use support::spoke_bin;

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}")).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@localhost",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .status()
        .expect("git")
        .success();
    assert!(ok, "git {args:?}");
}

fn get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_too_old_toolchain_surfaces_everywhere_and_installs_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tmp.path();
    let forge = t.join("forge");
    std::fs::create_dir_all(&forge).expect("mkdir");
    git(&forge, &["init", "-q"]);
    std::fs::write(forge.join("README"), "x").expect("write");
    git(&forge, &["add", "README"]);
    git(&forge, &["commit", "-q", "-m", "x"]);
    git(&forge, &["tag", "v9.9.9"]);
    git(&forge, &["tag", "nightly"]);
    let bin = t.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    script(
        &bin.join("rustc"),
        "echo 'rustc 1.80.0 (051478957 2024-07-21)'\n",
    );
    let marker = t.join("installer-ran");
    script(
        &bin.join("installer"),
        &format!("touch {}\n", marker.display()),
    );
    let hub_dir = t.join("hub");
    std::fs::create_dir_all(&hub_dir).expect("mkdir");
    let db = hub_dir.join("heph.db");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let mut child = Command::new(spoke_bin("hephd"))
        .args(["--mode", "server", "--http-addr", "127.0.0.1:0", "--db"])
        .arg(&db)
        .args([
            "--self-update",
            "--self-update-interval-secs",
            "600",
            "--self-update-forge-url",
        ])
        .arg(&forge)
        .arg("--self-update-installer")
        .arg(format!("{} {{tag}}", bin.join("installer").display()))
        .env("PATH", &path)
        .env("HEPH_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hephd");
    let stderr = child.stderr.take().expect("stderr");
    let hub = Killed(child);
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let lines = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("hub listening on http://").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                }
                lines.lock().expect("lock").push(line);
            }
        });
    }
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("hub address");

    // /healthz carries the failure once the first check (run at start) has finished.
    let deadline = Instant::now() + Duration::from_secs(30);
    let health: serde_json::Value = loop {
        let v: serde_json::Value =
            serde_json::from_str(&get(&addr, "/healthz")).expect("healthz json");
        if !v["self_update"]["last_failure"].is_null() {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "no self-update failure reported: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(health["status"], "ok", "serving is still healthy: {health}");
    assert_eq!(health["self_update"]["enabled"], true);
    assert_eq!(health["self_update"]["healthy"], false);
    assert_eq!(health["self_update"]["last_failure"]["stage"], "toolchain");
    let msg = health["self_update"]["last_failure"]["message"]
        .as_str()
        .expect("message");
    assert!(
        msg.contains("1.80.0") && msg.contains("v9.9.9") && msg.contains("rustup update stable"),
        "{msg}"
    );

    let metrics = get(&addr, "/metrics");
    assert!(
        metrics.contains("heph_self_update_failures_total{stage=\"toolchain\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("heph_self_update_healthy 0"), "{metrics}");

    let log = lines.lock().expect("lock").join("\n");
    assert!(
        log.contains("ERROR") && log.contains("self-update failed"),
        "{log}"
    );
    assert!(
        !marker.exists(),
        "the installer must not run with a too-old toolchain"
    );

    let status: serde_json::Value = serde_json::from_slice(
        &std::fs::read(hub_dir.join("self-update.json")).expect("status file"),
    )
    .expect("json");
    assert_eq!(status["last_failure"]["stage"], "toolchain");

    // `heph daemon status` for a config describing this hub shows it too.
    let cfg = t.join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "mode = \"server\"\ndb = \"{}\"\n[service]\nbackend = \"supervisor\"\n",
            db.display()
        ),
    )
    .expect("config");
    let out = Command::new(spoke_bin("heph"))
        .args(["daemon", "status"])
        .env("HOME", t)
        .env("HEPH_CONFIG", &cfg)
        .env("HEPH_DATA_DIR", t.join("spoke"))
        .output()
        .expect("heph daemon status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("self-update:  FAILING at toolchain"),
        "{text}"
    );
    drop(hub);
}
