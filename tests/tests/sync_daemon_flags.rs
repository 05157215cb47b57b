//! `hephd --mode local` flags against real processes on loopback: `--token-file` and
//! `--token-load-cmd`/`--token-save-cmd` with an OIDC-protected `hephd --mode server` and the real test IdP
//! (sync, refresh written back, missing/garbage/loose/failing sources as `auth_failure` status), `--ca-file`
//! with an HTTPS hub, `--oidc-issuer`/`--oidc-client-id` (startup refusal naming both, fill-ins for a
//! hand-provisioned token set), and the bring-up progress bar (drawn on a terminal, silent on a pipe).

mod sync_support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use heph_e2e::idp::{Idp, IdpOptions};
use heph_spoke::auth::{LoginOptions, TokenSet, TokenStore, device};
use serde_json::Value;
use sync_support::{Hub, Spoke, free_port, heph_bin, hephd_bin, wait_until};

/// Prints a step with the seconds since the test began (shown for failing or slow tests).
fn step(t0: Instant, what: &str) {
    eprintln!("[{:6.2} s] {what}", t0.elapsed().as_secs_f64());
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A real `hephd --mode server` (OIDC and/or TLS by its flags), SIGKILLed on drop.
struct ServerHub {
    child: Child,
    url: String,
    _store: tempfile::TempDir,
}

impl Drop for ServerHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerHub {
    /// Starts the hub and waits until `/healthz` answers through `client` (so TLS hubs are checked with
    /// the CA) and, with OIDC, until a token is accepted on `/sync/v1/heads`.
    fn start(args: &[&str], tls_ca: Option<&Path>, probe_token: Option<&str>) -> ServerHub {
        let store = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let child = Command::new(hephd_bin())
            .args(["--mode", "server", "--http-addr"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--store")
            .arg(format!("file://{}", store.path().display()))
            .args(args)
            .env("HEPH_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn hephd --mode server");
        let scheme = if tls_ca.is_some() { "https" } else { "http" };
        let hub = ServerHub {
            child,
            url: format!("{scheme}://127.0.0.1:{port}"),
            _store: store,
        };
        let client = heph_spoke::auth::http::client_builder(tls_ca)
            .expect("client builder")
            .build()
            .expect("client");
        let rt = rt();
        let ok = wait_until(Duration::from_secs(30), || {
            rt.block_on(async {
                let Ok(r) = client.get(format!("{}/healthz", hub.url)).send().await else {
                    return false;
                };
                if !r.status().is_success() {
                    return false;
                }
                let Some(t) = probe_token else { return true };
                client
                    .get(format!("{}/sync/v1/heads", hub.url))
                    .bearer_auth(t)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().as_u16() == 200)
            })
        });
        assert!(ok, "the hub at {} did not become ready", hub.url);
        hub
    }

    /// An OIDC-protected hub trusting `idp` (audience and client id `heph`, group `admins`).
    fn oidc(idp: &Idp) -> ServerHub {
        let probe = idp.mint(serde_json::json!({}), serde_json::json!({}), false);
        ServerHub::start(
            &[
                "--oidc-issuer",
                &idp.issuer,
                "--oidc-audience",
                "heph",
                "--oidc-client-id",
                "heph",
                "--required-group",
                "admins",
            ],
            None,
            Some(&probe),
        )
    }

    /// `GET /sync/v1/heads` with `token` (`None`: no header) → (status, JSON or Null).
    fn heads(&self, token: Option<&str>, ca: Option<&Path>) -> (u16, Value) {
        let client = heph_spoke::auth::http::client_builder(ca)
            .expect("builder")
            .build()
            .expect("client");
        rt().block_on(async {
            let mut r = client.get(format!("{}/sync/v1/heads", self.url));
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            let resp = r.send().await.expect("heads");
            let status = resp.status().as_u16();
            (status, resp.json().await.unwrap_or(Value::Null))
        })
    }
}

/// A real device login (alice, through the IdP's verification pages) for `hub_url`.
fn login(idp: &Idp, hub_url: &str) -> TokenSet {
    let rt = rt();
    let l = rt
        .block_on(device::start(&LoginOptions::new(hub_url.to_owned())))
        .expect("device login start");
    idp.approve(&l.verification_uri, &l.user_code, "alice", false);
    let sleep = device::tokio_sleep();
    rt.block_on(l.finish(&|_| {}, sleep.as_ref()))
        .expect("device login finish")
}

/// Writes `t` as a private token file.
fn write_tokens(path: &Path, t: &TokenSet) {
    TokenStore::File(path.to_path_buf())
        .save(t)
        .expect("save tokens");
}

fn read_tokens(path: &Path) -> TokenSet {
    serde_json::from_slice(&std::fs::read(path).expect("read tokens")).expect("token set JSON")
}

/// Writes an executable `#!/bin/sh` script.
fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod script");
}

/// `heph sync` (through the daemon when one runs) expected to fail: returns stderr.
fn sync_fails(s: &Spoke) -> String {
    s.fails(&["sync"])
}

/// Waits until `heph sync --status --json` satisfies `f`; panics with the last status otherwise.
fn wait_status(s: &Spoke, what: &str, mut f: impl FnMut(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let ok = wait_until(Duration::from_secs(30), || {
        last = s.status();
        f(&last)
    });
    assert!(ok, "status never showed {what}: {last:#}");
    last
}

fn synced(v: &Value) -> bool {
    v["last_success"].is_string()
        && v["last_error"].is_null()
        && v["auth_failure"] == false
        && v["pending_local_ops"] == 0
}

/// Runs `hephd --mode local ARGS` expecting a startup refusal (exit 2, one `error:` line) within 30 s.
fn hephd_refuses(args: &[&str]) -> String {
    let mut child = Command::new(hephd_bin())
        .args(["--mode", "local"])
        .args(args)
        .env("HEPH_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hephd --mode local");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(_status) = child.try_wait().expect("try_wait") {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hephd --mode local {args:?} kept running instead of refusing to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out: Output = child.wait_with_output().expect("output");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "exit status; stderr: {err}");
    assert!(
        err.starts_with("error: ") && !err.contains("panicked"),
        "{err}"
    );
    err
}

fn data_dir_arg(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn token_file_daemon_syncs_and_writes_the_refreshed_tokens_back() {
    let Some(idp) = Idp::start() else { return };
    let hub = ServerHub::oidc(&idp);
    let mut tokens = login(&idp, &hub.url);
    assert!(tokens.refresh_token.is_some(), "offline_access granted");
    // Within the 60 s refresh skew: the daemon must refresh before its first request.
    tokens.expires_at = Some(now_secs() + 20);
    let keys = tempfile::tempdir().expect("tempdir");
    let file = keys.path().join("device-tokens.json");
    write_tokens(&file, &tokens);

    let mut a = Spoke::new();
    a.start_daemon_with(&hub.url, &["--token-file", &data_dir_arg(&file)]);
    a.add("written on A through its daemon");
    a.ok(&["sync"]);
    let st = wait_status(&a, "a clean sync", synced);
    assert_eq!(st["daemon"], true);

    let saved = read_tokens(&file);
    assert_ne!(
        saved.access_token, tokens.access_token,
        "the refreshed access token was not written to --token-file"
    );
    assert_ne!(
        saved.refresh_token, tokens.refresh_token,
        "the rotated refresh token was not written to --token-file"
    );
    assert!(
        saved.expires_at.is_some_and(|e| e > now_secs() + 60),
        "{saved:?}"
    );
    let mode = std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "token file mode");
    // Nothing was written to the default token directory.
    assert!(!a.dir.join("tokens").exists());

    // The hub holds A's write (checked with the refreshed token) and refuses anonymous reads.
    let (s, heads) = hub.heads(Some(&saved.access_token), None);
    assert_eq!(s, 200);
    let origins = heads["origins"].as_object().expect("origins");
    assert_eq!(origins.len(), 1, "{heads}");
    assert_eq!(hub.heads(None, None).0, 401);

    // Another device (direct mode, its own copy of the tokens) brings itself up from the hub.
    let b = Spoke::new();
    let copy = keys.path().join("b-tokens.json");
    write_tokens(&copy, &saved);
    b.ok(&[
        "sync",
        "--hub-url",
        &hub.url,
        "--token-file",
        &data_dir_arg(&copy),
    ]);
    assert_eq!(
        sync_support::titles(&b.list()),
        vec!["written on A through its daemon".to_string()]
    );
    a.stop_daemon();

    // An access token the hub refuses (expired, though the file claims another hour): the 401 makes the
    // daemon refresh, write the new set to the file, and the next sync succeeds.
    let mut refused = read_tokens(&file);
    refused.access_token = idp.mint(
        serde_json::json!({"exp": 1000, "iat": 900}),
        serde_json::json!({}),
        false,
    );
    refused.expires_at = Some(now_secs() + 3600);
    let c_file = keys.path().join("c-tokens.json");
    write_tokens(&c_file, &refused);
    let mut c = Spoke::new();
    c.start_daemon_with(&hub.url, &["--token-file", &data_dir_arg(&c_file)]);
    wait_status(&c, "a clean sync after the 401 refresh", synced);
    let after = read_tokens(&c_file);
    assert_ne!(after.access_token, refused.access_token);
    assert_ne!(after.refresh_token, refused.refresh_token);
    assert_eq!(
        sync_support::titles(&c.list()),
        vec!["written on A through its daemon".to_string()]
    );
    c.stop_daemon();
}

#[test]
fn missing_garbage_or_loose_token_file_is_an_auth_failure_status_then_recovers() {
    let t0 = Instant::now();
    let Some(idp) = Idp::start() else { return };
    let hub = ServerHub::oidc(&idp);
    step(t0, "hub up");
    let keys = tempfile::tempdir().expect("tempdir");
    let file = keys.path().join("t.json");

    let mut a = Spoke::new();
    a.start_daemon_with(&hub.url, &["--token-file", &data_dir_arg(&file)]);
    a.add("kept locally while logged out");

    // Missing file: the daemon runs, sends no token, and says where it looked.
    let err = sync_fails(&a);
    assert!(
        err.contains("401") && err.contains("heph auth login"),
        "{err}"
    );
    let st = wait_status(&a, "auth_failure (missing file)", |v| {
        v["auth_failure"] == true
    });
    let msg = st["last_error"].as_str().unwrap_or("");
    assert!(
        msg.contains("no token was sent") && msg.contains(&data_dir_arg(&file)),
        "{msg}"
    );
    assert_eq!(st["last_error_code"], "unauthorized");
    assert_ne!(st["pending_local_ops"], 0, "nothing may have been pushed");
    assert!(!file.exists(), "the daemon created the token file");

    step(t0, "missing file done");
    // Garbage (private) file: a clear message that never quotes the content; the file is left alone.
    std::fs::write(&file, "SECRET-garbage, not a token set").expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let err = sync_fails(&a);
    assert!(err.contains("not a heph token file"), "{err}");
    let st = wait_status(&a, "auth_failure (garbage)", |v| {
        v["auth_failure"] == true
            && v["last_error"]
                .as_str()
                .is_some_and(|m| m.contains("not a heph token file"))
    });
    assert!(!st.to_string().contains("SECRET"), "{st}");
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        "SECRET-garbage, not a token set"
    );

    step(t0, "garbage done");
    // A real token set in a file others can read: refused with the chmod fix.
    let tokens = login(&idp, &hub.url);
    write_tokens(&file, &tokens);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = sync_fails(&a);
    assert!(err.contains("chmod 600"), "{err}");
    assert_eq!(a.status()["auth_failure"], true);
    assert_ne!(a.status()["pending_local_ops"], 0);

    step(t0, "loose done");
    // A directory where the file should be.
    let dir_path = keys.path().join("t-dir.json");
    std::fs::create_dir(&dir_path).expect("mkdir");
    std::fs::set_permissions(&dir_path, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let mut b = Spoke::new();
    b.start_daemon_with(&hub.url, &["--token-file", &data_dir_arg(&dir_path)]);
    let err = sync_fails(&b);
    assert!(err.contains("not a regular file"), "{err}");
    assert_eq!(b.status()["auth_failure"], true);
    b.stop_daemon();

    step(t0, "dir done");
    // Fixed (chmod 600): the running daemon picks the file up again and pushes what it kept.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    a.ok(&["sync"]);
    wait_status(&a, "a clean sync after the fix", synced);
    let (s, heads) = hub.heads(Some(&tokens.access_token), None);
    assert_eq!(s, 200);
    assert_eq!(heads["origins"].as_object().map(|o| o.len()), Some(1));
    a.stop_daemon();
}

#[test]
fn token_commands_load_and_save_and_failing_commands_are_auth_failures() {
    let Some(idp) = Idp::start() else { return };
    let hub = ServerHub::oidc(&idp);
    let mut tokens = login(&idp, &hub.url);
    tokens.expires_at = Some(now_secs() + 20);
    let vault = tempfile::tempdir().expect("tempdir");
    let v = vault.path();
    write_tokens(&v.join("vault.json"), &tokens);
    script(
        &v.join("load.sh"),
        &format!("exec cat '{}'", v.join("vault.json").display()),
    );
    script(
        &v.join("save.sh"),
        &format!(
            "cat > '{}' && echo saved >> '{}'",
            v.join("saved.json").display(),
            v.join("save.log").display()
        ),
    );

    let mut a = Spoke::new();
    a.start_daemon_with(
        &hub.url,
        &[
            "--token-load-cmd",
            &v.join("load.sh").display().to_string(),
            "--token-save-cmd",
            &v.join("save.sh").display().to_string(),
        ],
    );
    a.add("via token commands");
    a.ok(&["sync"]);
    wait_status(&a, "a clean sync", synced);
    let saved = read_tokens(&v.join("saved.json"));
    assert_ne!(
        saved.access_token, tokens.access_token,
        "the refreshed token set was not handed to --token-save-cmd"
    );
    assert_ne!(saved.refresh_token, tokens.refresh_token);
    assert!(
        std::fs::read_to_string(v.join("save.log"))
            .expect("save.log")
            .lines()
            .count()
            >= 1
    );
    assert!(
        !a.dir.join("tokens").exists(),
        "a token file was written although --token-save-cmd was given"
    );
    // The vault itself is only read.
    assert_eq!(read_tokens(&v.join("vault.json")), tokens);
    a.stop_daemon();

    // A load command that fails, then one that prints garbage, then non-UTF-8, then a bare JWT.
    let cmd = v.join("flaky.sh");
    script(&cmd, "echo 'vault is locked' >&2; exit 1");
    // B joins the hub's owner up front, so its write waits as a pending op until a token works.
    let (_, heads) = hub.heads(Some(&saved.access_token), None);
    let owner = heads["owner"].as_str().expect("hub owner").to_owned();
    let mut b = Spoke::new();
    b.start_daemon_with(
        &hub.url,
        &[
            "--token-load-cmd",
            &cmd.display().to_string(),
            "--owner-id",
            &owner,
        ],
    );
    b.add("waits for a token");
    let err = sync_fails(&b);
    assert!(
        err.contains("--token-load-cmd failed") && err.contains("vault is locked"),
        "{err}"
    );
    let st = b.status();
    assert_eq!(st["auth_failure"], true, "{st}");
    assert_ne!(st["pending_local_ops"], 0);

    script(&cmd, "echo SECRET-garbage-output");
    let err = sync_fails(&b);
    assert!(
        err.contains("neither a heph token set") && !err.contains("SECRET"),
        "{err}"
    );
    assert_eq!(b.status()["auth_failure"], true);

    script(&cmd, "printf '\\377\\376 not utf-8'");
    let err = sync_fails(&b);
    assert!(err.contains("not UTF-8"), "{err}");

    let jwt = idp.mint(serde_json::json!({}), serde_json::json!({}), false);
    script(&cmd, &format!("echo {jwt}"));
    b.ok(&["sync"]);
    wait_status(&b, "a clean sync with a bare JWT", synced);

    b.stop_daemon();

    // Command lines that cannot be split are refused at startup, before the data dir exists.
    let fresh = vault.path().join("never-created");
    for flag in ["--token-load-cmd", "--token-save-cmd"] {
        let err = hephd_refuses(&[
            "--data-dir",
            &data_dir_arg(&fresh),
            "--hub-url",
            &hub.url,
            flag,
            "'unterminated",
        ]);
        assert!(err.contains(&flag[2..]), "{err}");
        assert!(!fresh.exists(), "{flag}: the data dir was created");
    }
}

#[test]
fn ca_file_lets_the_daemon_sync_over_https_and_its_absence_is_a_clear_tls_status() {
    let c = heph_e2e::tls::self_signed();
    let hub = ServerHub::start(
        &[
            "--tls-cert",
            &c.cert.display().to_string(),
            "--tls-key",
            &c.key.display().to_string(),
        ],
        Some(&c.cert),
        None,
    );
    assert!(hub.url.starts_with("https://"));
    let ca = c.cert.display().to_string();

    let mut a = Spoke::new();
    a.start_daemon_with(&hub.url, &["--ca-file", &ca]);
    a.add("over https");
    a.ok(&["sync"]);
    wait_status(&a, "a clean sync over https", synced);
    let (s, heads) = hub.heads(None, Some(&c.cert));
    assert_eq!(s, 200);
    assert_eq!(heads["origins"].as_object().map(|o| o.len()), Some(1));

    // Without the CA: the daemon runs, the sync fails with a certificate error that names the fix.
    let mut b = Spoke::new();
    b.start_daemon(&hub.url);
    b.add("not trusted");
    let err = sync_fails(&b);
    assert!(
        err.contains("certificate") && err.contains("--ca-file"),
        "{err}"
    );
    let st = b.status();
    let msg = st["last_error"].as_str().unwrap_or("");
    assert!(
        msg.contains("TLS certificate not trusted") && msg.contains("--ca-file"),
        "{st}"
    );
    assert_eq!(st["auth_failure"], false);
    assert_ne!(st["pending_local_ops"], 0);
    b.stop_daemon();

    // Direct mode with --ca-file brings a third device up.
    let d = Spoke::new();
    d.ok(&["sync", "--hub-url", &hub.url, "--ca-file", &ca]);
    assert_eq!(
        sync_support::titles(&d.list()),
        vec!["over https".to_string()]
    );

    // Bad --ca-file values: startup errors naming the flag; nothing is created or changed.
    let junk = c.key.parent().expect("dir").join("junk.pem");
    std::fs::write(&junk, "not a certificate").expect("write");
    let fresh = tempfile::tempdir().expect("tempdir");
    let never = fresh.path().join("never-created");
    for (bad, needle) in [
        (fresh.path().join("missing.pem"), "No such file".to_string()),
        (junk.clone(), "certificates".to_string()),
        (c.key.clone(), "certificates".to_string()),
        (fresh.path().to_path_buf(), "--ca-file".to_string()),
    ] {
        let err = hephd_refuses(&[
            "--data-dir",
            &data_dir_arg(&never),
            "--hub-url",
            &hub.url,
            "--ca-file",
            &bad.display().to_string(),
        ]);
        assert!(err.contains("--ca-file") && err.contains(&needle), "{err}");
        assert!(!never.exists(), "the data dir was created for {bad:?}");
    }
    // An existing store keeps its remembered hub when a restart is refused.
    a.stop_daemon();
    let err = hephd_refuses(&[
        "--data-dir",
        &data_dir_arg(&a.dir),
        "--hub-url",
        "https://127.0.0.1:9",
        "--ca-file",
        &junk.display().to_string(),
    ]);
    assert!(err.contains("--ca-file"), "{err}");
    assert_eq!(a.status()["hub_url"], hub.url.as_str());
}

#[test]
fn oidc_issuer_and_client_id_name_the_idp_the_tokens_must_come_from() {
    let Some(idp) = Idp::start_with(IdpOptions::default()) else {
        return;
    };
    let hub = ServerHub::oidc(&idp);
    let tokens = login(&idp, &hub.url);
    let keys = tempfile::tempdir().expect("tempdir");
    let file = keys.path().join("t.json");
    write_tokens(&file, &tokens);
    let f = data_dir_arg(&file);
    let never = keys.path().join("never-created");
    let other_issuer = "http://127.0.0.1:9/other-idp";

    // Tokens of another issuer or client: a startup error naming both values; nothing is created.
    let never_arg = data_dir_arg(&never);
    let refused_with = |idp_flags: &[&str]| {
        let mut args = vec![
            "--data-dir",
            never_arg.as_str(),
            "--hub-url",
            hub.url.as_str(),
            "--token-file",
            f.as_str(),
        ];
        args.extend_from_slice(idp_flags);
        hephd_refuses(&args)
    };
    let err = refused_with(&["--oidc-issuer", other_issuer]);
    assert!(
        err.contains("--oidc-issuer") && err.contains(&idp.issuer) && err.contains(other_issuer),
        "{err}"
    );
    let err = refused_with(&[
        "--oidc-issuer",
        &idp.issuer,
        "--oidc-client-id",
        "another-client",
    ]);
    assert!(
        err.contains("--oidc-client-id")
            && err.contains("\"heph\"")
            && err.contains("another-client"),
        "{err}"
    );
    assert!(!never.exists(), "the data dir was created");
    assert_eq!(read_tokens(&file), tokens, "the token file was changed");

    // Matching flags: the daemon syncs.
    let mut a = Spoke::new();
    a.start_daemon_with(
        &hub.url,
        &[
            "--token-file",
            &f,
            "--oidc-issuer",
            &idp.issuer,
            "--oidc-client-id",
            "heph",
        ],
    );
    a.add("matching idp");
    a.ok(&["sync"]);
    wait_status(&a, "a clean sync", synced);
    a.stop_daemon();

    // A hand-provisioned token set (refresh token only, no issuer, client or endpoint): without the
    // flags the refresh cannot happen (auth_failure naming the flag); with them the daemon discovers the
    // token endpoint at the issuer, refreshes, syncs, and stores the completed set.
    let fresh = login(&idp, &hub.url);
    let mut bare = fresh.clone();
    bare.issuer = String::new();
    bare.client_id = String::new();
    bare.token_endpoint = String::new();
    bare.expires_at = Some(now_secs() + 10);
    let provisioned = keys.path().join("provisioned.json");
    write_tokens(&provisioned, &bare);
    let p = data_dir_arg(&provisioned);
    let (_, heads) = hub.heads(Some(&fresh.access_token), None);
    let owner = heads["owner"].as_str().expect("hub owner").to_owned();
    let mut b = Spoke::new();
    b.start_daemon_with(&hub.url, &["--token-file", &p, "--owner-id", &owner]);
    b.add("provisioned device");
    let err = sync_fails(&b);
    assert!(err.contains("--oidc-issuer"), "{err}");
    assert_eq!(b.status()["auth_failure"], true);
    assert_eq!(
        read_tokens(&provisioned),
        bare,
        "a failed refresh changed the file"
    );
    b.stop_daemon();
    b.start_daemon_with(
        &hub.url,
        &[
            "--token-file",
            &p,
            "--oidc-issuer",
            &idp.issuer,
            "--oidc-client-id",
            "heph",
        ],
    );
    b.ok(&["sync"]);
    wait_status(&b, "a clean sync after the fill-in", synced);
    let completed = read_tokens(&provisioned);
    assert_eq!(completed.issuer, idp.issuer);
    assert_eq!(completed.client_id, "heph");
    assert!(
        completed.token_endpoint.starts_with(&idp.issuer),
        "{completed:?}"
    );
    assert_ne!(completed.access_token, bare.access_token);
    b.stop_daemon();
}

#[test]
fn oidc_flag_values_that_cannot_be_right_are_startup_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let never = tmp.path().join("never-created");
    let d = data_dir_arg(&never);
    for (flags, needle) in [
        (vec!["--oidc-issuer", "idp.example"], "is not an issuer URL"),
        (vec!["--oidc-issuer", "https://"], "is not an issuer URL"),
        (
            vec!["--oidc-issuer", "ftp://idp.example"],
            "is not an issuer URL",
        ),
        (
            vec!["--oidc-client-id", " "],
            "--oidc-client-id must not be empty",
        ),
    ] {
        let mut args = vec!["--data-dir", d.as_str(), "--hub-url", "http://127.0.0.1:9"];
        args.extend(flags.iter().copied());
        let err = hephd_refuses(&args);
        assert!(err.contains(needle), "{flags:?}: {err}");
        assert!(!never.exists(), "{flags:?}: the data dir was created");
    }
}

#[test]
fn bring_up_draws_a_progress_bar_on_a_terminal_and_nothing_on_a_pipe() {
    let store = tempfile::tempdir().expect("tempdir");
    let hub = Hub::start(store.path(), None);
    seed(&hub, 3, 1_500);

    // Piped: the report on stdout, no bar and no escape sequences on stderr.
    let piped = Spoke::new();
    let out = piped.heph(&["sync", "--hub-url", &hub.url()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(stdout.contains("pulled 4500 ops"), "{stdout}");
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains("pulling") && !stderr.contains('\r'),
        "progress output on a pipe: {stderr:?}"
    );
    assert!(
        !stdout.contains('\u{1b}') && !stdout.contains("pulling"),
        "{stdout:?}"
    );

    // Under a pseudo-terminal (`script`): the bar is drawn on stderr, then the same report.
    let tty = Spoke::new();
    std::fs::create_dir_all(&tty.dir).expect("mkdir");
    let text = sync_under_a_terminal(&tty, &hub.url());
    assert!(
        text.contains("pulling") && text.contains("/4500 ops"),
        "no progress bar on a terminal: {text:?}"
    );
    assert!(
        text.contains('\u{1b}') || text.contains('\r'),
        "no terminal redraw: {text:?}"
    );
    assert!(text.contains("pulled 4500 ops"), "{text:?}");
    assert_eq!(
        tty.list(),
        piped.list(),
        "both bring-ups hold the same data"
    );
}

/// A `hephd --mode local` started by the test itself (without `--hub-url`), killed on drop.
struct BareDaemon(Child);

impl Drop for BareDaemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn heph_sync_through_the_daemon_draws_the_daemons_bring_up_on_a_terminal() {
    let store = tempfile::tempdir().expect("tempdir");
    let hub = Hub::start(store.path(), None);
    seed(&hub, 3, 10_000);

    // A daemon with no hub yet: `heph sync --hub-url` sets it, the daemon's loop starts the bring-up, and
    // the CLI (waiting for its own sync.now) draws the daemon's progress.
    let tty = Spoke::new();
    std::fs::create_dir_all(&tty.dir).expect("mkdir");
    let _daemon = BareDaemon(
        Command::new(hephd_bin())
            .args(["--mode", "local", "--data-dir"])
            .arg(&tty.dir)
            .env("HEPH_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn hephd --mode local"),
    );
    assert!(
        wait_until(Duration::from_secs(20), || {
            std::os::unix::net::UnixStream::connect(tty.socket()).is_ok()
        }),
        "the daemon did not open its socket"
    );
    let text = sync_under_a_terminal(&tty, &hub.url());
    assert!(
        text.contains("hub set to"),
        "not through the daemon: {text:?}"
    );
    assert!(
        text.contains("pulling") && text.contains("/30000 ops"),
        "no progress bar for the daemon's bring-up: {text:?}"
    );
    let st = tty.status();
    assert_eq!(st["daemon"], true);
    assert!(synced(&st), "{st:#}");

    // The same through a pipe: the report only.
    let out = tty.heph(&["sync"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains("pulling"),
        "{stderr:?}"
    );
}

/// Pushes `per_origin` ops for each of `origins` chains straight to a dev-mode hub.
fn seed(hub: &Hub, origins: u8, per_origin: u64) {
    let owner = heph_format::OwnerId::from_parts(1_767_225_600_000, [0x5c; 10]);
    sync_support::seed_chains(hub, owner, 0x9e0, origins, per_origin, 500);
}

/// Runs `heph sync --hub-url URL` for `spoke` under a pseudo-terminal (util-linux `script`), asserts it
/// succeeded, and returns what the terminal showed.
fn sync_under_a_terminal(spoke: &Spoke, hub_url: &str) -> String {
    let cmd = format!(
        "'{}' --data-dir '{}' sync --hub-url '{}'",
        heph_bin().display(),
        spoke.dir.display(),
        hub_url
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("HEPH_NO_AUTO_RELOGIN", "1")
        .env("TERM", "xterm")
        .env_remove("HEPH_SOCKET")
        .stdin(Stdio::null())
        .output()
        .expect("run script (util-linux)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    text
}
