//! `hephd --mode server` run as a user runs it: version string, flag errors (exit 2, `error: …`),
//! dev mode's loopback-only rule, `--db`/`--store` placement, `--owner-id`, `--socket`, SIGTERM.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use heph_e2e::idp::hephd_binary as hephd_bin;

fn run(args: &[&str]) -> Output {
    Command::new(hephd_bin())
        .args(args)
        .env("HEPH_LOG", "warn")
        .output()
        .expect("run hephd")
}

fn free_addr() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    format!("127.0.0.1:{port}")
}

/// Plain HTTP GET over a std TCP stream; returns the whole response text.
fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_hub(args: &[&str], addr: &str) -> Running {
    let child = Command::new(hephd_bin())
        .args(["--mode", "server", "--http-addr", addr])
        .args(args)
        .env("HEPH_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(addr, "/healthz").is_none_or(|r| !r.starts_with("HTTP/1.1 200")) {
        assert!(Instant::now() < deadline, "hub did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Running(child)
}

#[test]
fn version_prints_name_version_and_commit() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let rest = text
        .strip_prefix("hephd 0.")
        .unwrap_or_else(|| panic!("{text:?}"));
    let (version, sha) = rest.split_once(" (").unwrap_or_else(|| panic!("{text:?}"));
    assert!(
        version.split('.').all(|p| p.parse::<u32>().is_ok()),
        "{text:?}"
    );
    let sha = sha.strip_suffix(')').unwrap_or_else(|| panic!("{text:?}"));
    assert!(
        sha == "unknown" || (sha.len() >= 7 && sha.chars().all(|c| c.is_ascii_hexdigit())),
        "{text:?}"
    );
}

#[test]
fn errors_exit_2_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("heph.db");
    let db = db.to_str().expect("utf8");
    for (args, needle) in [
        (
            vec![
                "--mode",
                "server",
                "--http-addr",
                "0.0.0.0:8787",
                "--db",
                db,
            ],
            "refusing to listen on 0.0.0.0:8787",
        ),
        (
            vec![
                "--mode",
                "server",
                "--http-addr",
                "127.0.0.1:0",
                "--store",
                "ftp://nope",
            ],
            "invalid store URL",
        ),
        (
            vec![
                "--mode",
                "server",
                "--http-addr",
                "127.0.0.1:0",
                "--store",
                "file://relative",
            ],
            "absolute path",
        ),
        (
            vec!["--mode", "server", "--owner-id", "not-a-ulid"],
            "invalid",
        ),
        (vec!["--mode", "bogus"], "invalid value"),
    ] {
        let out = run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error:"), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert!(
        !dir.path().join("hub-store").exists(),
        "a refused start creates no store"
    );
}

#[test]
fn db_places_the_store_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("data/heph.db");
    std::fs::create_dir_all(db.parent().expect("parent")).expect("mkdir");
    let addr = free_addr();
    let owner = "01J9ZK2AAAAAAAAAAAAAAAAAAA";
    let sock = dir.path().join("hephd.sock");
    let mut hub = spawn_hub(
        &[
            "--db",
            db.to_str().expect("utf8"),
            "--owner-id",
            owner,
            "--socket",
            sock.to_str().expect("utf8"),
            "--oidc-client-id",
            "heph",
            "--self-update",
            "--self-update-interval-secs",
            "60",
        ],
        &addr,
    );
    assert!(
        dir.path().join("data/hub-store/chains").is_dir(),
        "store beside --db"
    );
    let owner_file =
        std::fs::read_to_string(dir.path().join("data/hub-store/owner")).expect("owner");
    assert!(owner_file.contains(owner));
    let config = http_get(&addr, "/config").expect("config");
    assert!(
        config.contains(&format!("\"owner\":\"{owner}\"")),
        "{config}"
    );
    assert!(config.contains("\"dev_mode\":true"), "{config}");
    assert!(config.contains("\"client_id\":\"heph\""), "{config}");
    // The Unix socket serves the same API.
    {
        let mut s = std::os::unix::net::UnixStream::connect(&sock).expect("unix connect");
        s.write_all(b"GET /sync/v1/heads HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("w");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("r");
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(out.contains(owner), "{out}");
    }
    let pid = hub.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = hub.0.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "SIGTERM did not stop the hub");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    let mut log = String::new();
    if let Some(mut e) = hub.0.stderr.take() {
        let _ = e.read_to_string(&mut log);
    }
    assert!(log.contains("DEV MODE"), "dev mode is logged: {log}");
    assert!(!sock.exists(), "socket removed on shutdown");

    // Restarting with another --owner-id is refused.
    let out = run(&[
        "--mode",
        "server",
        "--http-addr",
        &free_addr(),
        "--db",
        db.to_str().expect("utf8"),
        "--owner-id",
        "01J9ZK2BBBBBBBBBBBBBBBBBBB",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already belongs"));
}

#[test]
fn store_url_file_scheme() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("elsewhere");
    let addr = free_addr();
    let _hub = spawn_hub(&["--store", &format!("file://{}", store.display())], &addr);
    assert!(store.join("blobs").is_dir());
    let heads = http_get(&addr, "/sync/v1/heads").expect("heads");
    assert!(heads.starts_with("HTTP/1.1 200"), "{heads}");
}
