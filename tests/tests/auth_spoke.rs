//! Spoke login against the real test IdP (npm `oidc-provider`) and a real hub server on loopback: the
//! `heph auth login` binary end to end (issuer and client id from the hub's /config), the token accepted on
//! `GET /sync/v1/heads`, refresh after expiry, expired refresh → auth_failure, access_denied, expired codes,
//! and slow_down / interval handling against a scripted token endpoint.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use heph_e2e::idp::{Idp, IdpOptions};
use heph_hub::oidc::{OidcAuthenticator, OidcConfig, OidcVerifier};
use heph_hub::store::MemoryStore;
use heph_hub::{Authenticator, HubConfig};
use heph_spoke::auth::device::{self, Sleeper};
use heph_spoke::auth::{AuthError, AuthSession, AuthState, LoginOptions, TokenSet, TokenStore};

struct Hub {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

async fn start_hub(idp: &Idp) -> Hub {
    let mut c = OidcConfig::new(idp.issuer.clone(), "heph");
    c.required_group = Some("admins".into());
    let verifier = OidcVerifier::new(c).expect("verifier");
    verifier.spawn_refresh();
    let auth: Arc<dyn Authenticator> = Arc::new(OidcAuthenticator::new(verifier.clone()));
    let mut hub = HubConfig::new(Arc::new(MemoryStore::new()), auth);
    hub.dev_mode = false;
    hub.oidc_issuer = Some(idp.issuer.clone());
    hub.oidc_audience = Some("heph".into());
    hub.oidc_client_id = Some("heph".into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = heph_hub::run(listener, hub, async move {
            let _ = rx.await;
        })
        .await;
    });
    for _ in 0..200 {
        if verifier.is_ready() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Hub {
        url: format!("http://{addr}"),
        stop: Some(tx),
    }
}

async fn heads_status(hub: &Hub, token: Option<&str>) -> u16 {
    let mut r = reqwest::Client::new().get(format!("{}/sync/v1/heads", hub.url));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.expect("heads").status().as_u16()
}

/// Start a device login with the library API and approve it as `user` (or abort).
async fn library_login(
    idp: &Idp,
    hub: &Hub,
    user: &str,
    abort: bool,
) -> Result<TokenSet, AuthError> {
    let login = device::start(&LoginOptions::new(hub.url.clone())).await?;
    assert_eq!(
        login.issuer, idp.issuer,
        "issuer must come from the hub's /config"
    );
    let (uri, code, user) = (
        login.verification_uri.clone(),
        login.user_code.clone(),
        user.to_string(),
    );
    tokio::task::block_in_place(|| idp.approve(&uri, &code, &user, abort));
    let sleep = device::tokio_sleep();
    login.finish(&|_| {}, sleep.as_ref()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heph_auth_login_binary_end_to_end_then_hub_accepts_the_token() {
    let Some(idp) = Idp::start() else { return };
    let hub = start_hub(&idp).await;
    let data = tempfile::tempdir().expect("tempdir");
    let heph = heph_e2e::idp::heph_binary();

    // Only --hub-url (spelled with upper case and a trailing slash): issuer and client id from /config.
    let spelled = format!("{}/", hub.url.replace("http://", "HTTP://"));
    let mut child = Command::new(&heph)
        .arg("--data-dir")
        .arg(data.path())
        .args(["auth", "login", "--hub-url", &spelled, "--no-browser"])
        .env("HEPH_NO_AUTO_RELOGIN", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn heph");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let (mut uri, mut code, mut saw_qr) = (String::new(), String::new(), false);
    let mut prev = String::new();
    let mut line = String::new();
    while stderr.read_line(&mut line).expect("read") > 0 {
        let t = line.trim().to_string();
        if prev.ends_with(", open")
            || (uri.is_empty() && t.starts_with("http://127.0.0.1") && t.ends_with("/device"))
        {
            uri = t.clone();
        }
        if prev.starts_with("and enter the code") && !t.is_empty() {
            code = t.clone();
        }
        if t.contains('█') || t.contains('▀') || t.contains('▄') {
            saw_qr = true;
        }
        if t.starts_with("Waiting for approval") {
            break;
        }
        if !t.is_empty() {
            prev = t;
        }
        line.clear();
    }
    assert!(
        !uri.is_empty() && !code.is_empty(),
        "no URL/code printed (uri {uri:?}, code {code:?})"
    );
    assert!(saw_qr, "no QR code printed");
    tokio::task::block_in_place(|| idp.approve(&uri, &code, "alice", false));
    let out = tokio::task::block_in_place(|| child.wait_with_output()).expect("wait heph");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "heph auth login failed: {stdout}");
    assert!(
        stdout.contains("logged in to") && stdout.contains("alice-sub-0001"),
        "{stdout}"
    );

    // whoami with another spelling of the same hub shows who approved.
    let who = Command::new(&heph)
        .arg("--data-dir")
        .arg(data.path())
        .args([
            "auth",
            "whoami",
            "--json",
            "--hub-url",
            &format!("{}:80", hub.url.rsplit_once(':').expect("port").0),
        ])
        .output()
        .expect("whoami");
    // (that URL has a different port: not logged in there)
    assert!(!who.status.success());
    assert!(
        String::from_utf8_lossy(&who.stderr).contains("not logged in"),
        "{}",
        String::from_utf8_lossy(&who.stderr)
    );
    let who = Command::new(&heph)
        .arg("--data-dir")
        .arg(data.path())
        .args(["auth", "whoami", "--json", "--hub-url", &hub.url])
        .output()
        .expect("whoami");
    assert!(
        who.status.success(),
        "{}",
        String::from_utf8_lossy(&who.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&who.stdout).expect("whoami json");
    assert_eq!(v["sub"], "alice-sub-0001");
    assert_eq!(v["email"], "alice@example.test");
    assert_eq!(v["groups"], serde_json::json!(["admins"]));
    assert_eq!(v["refresh_token"], true);

    // The stored token works against the hub through the sync client's token API.
    let store = TokenStore::from_flags(data.path(), &hub.url, None, None, None).expect("store");
    let session = AuthSession::new(store.clone(), None);
    let token = session
        .bearer_async()
        .await
        .expect("bearer")
        .expect("a token");
    assert_eq!(heads_status(&hub, Some(&token)).await, 200);
    assert_eq!(heads_status(&hub, None).await, 401);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let TokenStore::File(p) = &store else {
            panic!("file store")
        };
        assert_eq!(
            std::fs::metadata(p).expect("meta").permissions().mode() & 0o777,
            0o600
        );
    }

    // The new device now syncs with nothing but the login: a task written here reaches the hub.
    let out = Command::new(&heph)
        .arg("--data-dir")
        .arg(data.path())
        .args(["task", "Written after login"])
        .output()
        .expect("task");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tokio::task::block_in_place(|| {
        Command::new(&heph)
            .arg("--data-dir")
            .arg(data.path())
            .args(["sync", "--hub-url", &hub.url])
            .env("HEPH_NO_AUTO_RELOGIN", "1")
            .output()
    })
    .expect("sync");
    assert!(
        out.status.success(),
        "heph sync after login failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let heads: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/sync/v1/heads", hub.url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("heads")
        .json()
        .await
        .expect("heads json");
    let origins = heads["origins"].as_object().expect("origins");
    assert_eq!(origins.len(), 1, "{heads}");
    assert!(
        origins.values().all(|h| h["last_seq"].as_u64() >= Some(1)),
        "{heads}"
    );

    let out = Command::new(&heph)
        .arg("--data-dir")
        .arg(data.path())
        .args(["auth", "logout", "--hub-url", &hub.url])
        .output()
        .expect("logout");
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("logged out"));
    assert_eq!(store.load().expect("load"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_after_expiry_and_expired_refresh_is_auth_failure() {
    // Access tokens live 5 s (< the 60 s refresh skew, so every use refreshes); refresh tokens 8 s.
    let Some(idp) = Idp::start_with(IdpOptions {
        access_ttl: 5,
        refresh_ttl: 8,
        ..IdpOptions::default()
    }) else {
        return;
    };
    let hub = start_hub(&idp).await;
    let tokens = library_login(&idp, &hub, "alice", false)
        .await
        .expect("login");
    assert!(
        tokens.refresh_token.is_some(),
        "offline_access must yield a refresh token"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let store = TokenStore::File(dir.path().join("t.json"));
    store.save(&tokens).expect("save");

    let session = AuthSession::new(store.clone(), None);
    let fresh = tokio::task::block_in_place(|| session.bearer_blocking())
        .expect("refresh")
        .expect("token");
    assert_ne!(fresh, tokens.access_token, "the token was not refreshed");
    assert_eq!(heads_status(&hub, Some(&fresh)).await, 200);
    assert!(matches!(session.state(), AuthState::Ok { .. }));
    let saved = store.load().expect("load").expect("saved");
    assert_eq!(
        saved.access_token, fresh,
        "the refreshed token set was not saved"
    );
    assert_ne!(
        saved.refresh_token, tokens.refresh_token,
        "the rotated refresh token was not saved"
    );

    // Wait out the refresh token: refresh fails, the state says auth_failure.
    tokio::time::sleep(Duration::from_secs(9)).await;
    let err = session
        .bearer_async()
        .await
        .expect_err("expired refresh token");
    assert!(err.to_string().contains("auth_failure"), "{err}");
    let AuthState::AuthFailure { reason } = session.state() else {
        panic!("state {:?}", session.state())
    };
    assert!(reason.contains("refused the refresh token"), "{reason}");
    assert!(
        !reason.contains(saved.refresh_token.as_deref().unwrap_or("-")),
        "secret in the reason"
    );

    // No refresh token at all (offline_access not granted) once the access token expired: auth_failure too.
    let mut no_rt = saved.clone();
    no_rt.refresh_token = None;
    no_rt.expires_at = Some(1);
    store.save(&no_rt).expect("save");
    let s2 = AuthSession::new(store, None);
    let err = s2.bearer_async().await.expect_err("no refresh token");
    assert!(err.to_string().contains("offline_access"), "{err}");
    assert!(matches!(s2.state(), AuthState::AuthFailure { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_and_expired_codes_are_clear_errors() {
    let Some(idp) = Idp::start_with(IdpOptions {
        device_ttl: 3,
        ..IdpOptions::default()
    }) else {
        return;
    };
    let hub = start_hub(&idp).await;
    let err = library_login(&idp, &hub, "alice", true)
        .await
        .expect_err("aborted");
    assert!(matches!(err, AuthError::AccessDenied), "{err:?}");
    assert!(err.to_string().contains("denied"), "{err}");

    // Never approved: the 3 s code expires (the IdP answers expired_token, or the client's own deadline hits).
    let login = device::start(&LoginOptions::new(hub.url.clone()))
        .await
        .expect("start");
    let sleep = device::tokio_sleep();
    let err = login
        .finish(&|_| {}, sleep.as_ref())
        .await
        .expect_err("expired");
    assert!(matches!(err, AuthError::ExpiredCode), "{err:?}");
}

/// A scripted IdP for the polling rules oidc-provider never exercises (it sends no `slow_down`).
async fn scripted_idp(interval: Option<u64>, script: Vec<&'static str>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", l.local_addr().expect("addr"));
    let script = Arc::new(Mutex::new(script.into_iter()));
    let b = base.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let (b, script) = (b.clone(), script.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, body) = match path.as_str() {
                    "/.well-known/openid-configuration" => ("200 OK", serde_json::json!({
                        "issuer": b, "authorization_endpoint": format!("{b}/auth"), "token_endpoint": format!("{b}/token"),
                        "jwks_uri": format!("{b}/jwks"), "device_authorization_endpoint": format!("{b}/device/auth"),
                        "response_types_supported": ["code"], "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["RS256"]}).to_string()),
                    "/jwks" => ("200 OK", r#"{"keys":[]}"#.to_string()),
                    "/device/auth" => {
                        let mut v = serde_json::json!({"device_code": "dc", "user_code": "ABCD-EFGH",
                            "verification_uri": format!("{b}/device"), "expires_in": 600});
                        if let Some(i) = interval {
                            v["interval"] = i.into();
                        }
                        ("200 OK", v.to_string())
                    }
                    "/token" => match script.lock().expect("script").next() {
                        Some("ok") | None => ("200 OK", r#"{"access_token":"a.b.c","token_type":"Bearer","expires_in":300}"#.to_string()),
                        Some(err) => ("400 Bad Request", format!(r#"{{"error":"{err}"}}"#)),
                    },
                    _ => ("404 Not Found", "{}".to_string()),
                };
                let _ = s
                    .write_all(format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes())
                    .await;
            });
        }
    });
    base
}

async fn poll_with(
    interval: Option<u64>,
    script: Vec<&'static str>,
) -> (Result<TokenSet, AuthError>, Vec<u64>, Vec<String>) {
    let base = scripted_idp(interval, script).await;
    let mut opts = LoginOptions::new("http://127.0.0.1:9");
    opts.issuer = Some(base);
    opts.client_id = Some("heph".into());
    let login = device::start(&opts).await.expect("start");
    let slept = Arc::new(Mutex::new(Vec::new()));
    let s2 = slept.clone();
    let sleeper: Box<Sleeper> = Box::new(move |d| {
        s2.lock().expect("lock").push(d.as_secs());
        Box::pin(async {})
    });
    let notices = Arc::new(Mutex::new(Vec::new()));
    let n2 = notices.clone();
    let notice = move |m: &str| n2.lock().expect("lock").push(m.to_string());
    let r = login.finish(&notice, sleeper.as_ref()).await;
    let slept = slept.lock().expect("lock").clone();
    let notices = notices.lock().expect("lock").clone();
    (r, slept, notices)
}

#[tokio::test]
async fn polling_honours_interval_default_and_slow_down() {
    // No interval in the response: 5 s; authorization_pending keeps it; slow_down adds 5 s.
    let (r, slept, notices) = poll_with(
        None,
        vec![
            "authorization_pending",
            "slow_down",
            "authorization_pending",
            "ok",
        ],
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(slept, vec![5, 10, 10]);
    assert!(
        notices
            .iter()
            .any(|n| n.contains("slow down") && n.contains("10 s")),
        "{notices:?}"
    );
    // An explicit interval is used as given.
    let (r, slept, _) = poll_with(Some(7), vec!["authorization_pending", "ok"]).await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(slept, vec![7]);
    // Terminal errors stop polling with a clear message.
    let (r, _, _) = poll_with(None, vec!["authorization_pending", "access_denied"]).await;
    assert!(matches!(r, Err(AuthError::AccessDenied)), "{r:?}");
    let (r, _, _) = poll_with(None, vec!["expired_token"]).await;
    assert!(matches!(r, Err(AuthError::ExpiredCode)), "{r:?}");
    let (r, _, _) = poll_with(None, vec!["invalid_client"]).await;
    assert!(
        matches!(&r, Err(AuthError::Token(m)) if m.contains("invalid_client")),
        "{r:?}"
    );
}
