//! The real `hephd --mode server` process with `--oidc-issuer` pointing at the real test IdP: the flags
//! reach the verifier (`/config` names the issuer, rows of the attack matrix are refused), a hub whose flags
//! name no authorisation rule refuses to start, and a hub started while its IdP is down answers 503.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use heph_e2e::idp::{Idp, hephd_binary};
use serde_json::json;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    format!("127.0.0.1:{}", l.local_addr().expect("addr").port())
}

async fn spawn_hephd(args: &[&str]) -> (Running, String) {
    let store = tempfile::tempdir().expect("tempdir").keep();
    let addr = free_addr();
    let child = Command::new(hephd_binary())
        .args(["--mode", "server", "--http-addr", &addr, "--store"])
        .arg(format!("file://{}", store.display()))
        .args(args)
        .env("HEPH_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn hephd");
    let running = Running(child);
    let url = format!("http://{addr}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(format!("{url}/healthz")).await
            && r.status().is_success()
        {
            break;
        }
        assert!(Instant::now() < deadline, "hephd did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (running, url)
}

async fn heads(url: &str, token: Option<&str>) -> (u16, String) {
    let mut r = reqwest::Client::new().get(format!("{url}/sync/v1/heads"));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.expect("heads");
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hephd_process_verifies_tokens_from_its_flags() {
    let Some(idp) = Idp::start() else { return };
    let (_hub, url) = spawn_hephd(&[
        "--oidc-issuer",
        &idp.issuer,
        "--oidc-audience",
        "heph",
        "--oidc-client-id",
        "heph",
        "--required-group",
        "admins",
        "--authorized-sub",
        "agent-sub-0003",
    ])
    .await;
    let cfg: serde_json::Value = reqwest::get(format!("{url}/config"))
        .await
        .expect("config")
        .json()
        .await
        .expect("json");
    assert_eq!(cfg["issuer"], idp.issuer.as_str());
    assert_eq!(cfg["client_id"], "heph");

    // The verifier loads the JWKS in the background: wait for a valid token to pass.
    let good = idp.mint(json!({}), json!({}), false);
    let deadline = Instant::now() + Duration::from_secs(20);
    while heads(&url, Some(&good)).await.0 != 200 {
        assert!(Instant::now() < deadline, "valid token never accepted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(heads(&url, None).await.0, 401);
    let agent = idp.mint(
        json!({"sub": "agent-sub-0003", "groups": ["heph-agents"]}),
        json!({}),
        false,
    );
    assert_eq!(
        heads(&url, Some(&agent)).await.0,
        200,
        "--authorized-sub not applied"
    );
    let bob = idp.mint(
        json!({"sub": "bob-sub-0002", "groups": ["users"]}),
        json!({}),
        false,
    );
    assert_eq!(
        heads(&url, Some(&bob)).await.0,
        403,
        "--required-group not applied"
    );
    let untyped = idp.mint(json!({}), json!({"typ": null}), false);
    let (s, body) = heads(&url, Some(&untyped)).await;
    assert_eq!(
        s, 401,
        "untyped JWT accepted without --oidc-accept-untyped-tokens: {body}"
    );
    let expired = idp.mint(json!({"exp": 1000, "iat": 900}), json!({}), false);
    assert_eq!(heads(&url, Some(&expired)).await.0, 401);
    let m = reqwest::get(format!("{url}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for line in [
        "heph_auth_refused_total{reason=\"expired\"} 1",
        "heph_auth_refused_total{reason=\"forbidden\"} 1",
    ] {
        assert!(m.contains(line), "/metrics lacks {line}:\n{m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hephd_with_untyped_token_mode_accepts_untyped_access_tokens_but_not_id_token_claims() {
    let Some(idp) = Idp::start() else { return };
    let (_hub, url) = spawn_hephd(&[
        "--oidc-issuer",
        &idp.issuer,
        "--oidc-audience",
        "heph",
        "--required-group",
        "admins",
        "--oidc-accept-untyped-tokens",
    ])
    .await;
    let untyped = idp.mint(json!({}), json!({"typ": "JWT"}), false);
    let deadline = Instant::now() + Duration::from_secs(20);
    while heads(&url, Some(&untyped)).await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "untyped access token never accepted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Authentik-style ID token: untyped, same aud, but it carries at_hash (or a nonce).
    for claim in ["at_hash", "nonce"] {
        let id_like = idp.mint(json!({claim: "x"}), json!({"typ": null}), false);
        let (s, body) = heads(&url, Some(&id_like)).await;
        assert_eq!(s, 401, "{claim}: {body}");
        assert!(body.contains("not an access token"), "{body}");
    }
}

#[test]
fn hephd_refuses_oidc_flags_without_an_authorisation_rule() {
    let out = Command::new(hephd_binary())
        .args(["--mode", "server", "--http-addr", &free_addr(), "--store"])
        .arg(format!(
            "file://{}",
            tempfile::tempdir().expect("tempdir").path().display()
        ))
        .args([
            "--oidc-issuer",
            "http://127.0.0.1:9",
            "--oidc-audience",
            "heph",
        ])
        .output()
        .expect("run hephd");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error:") && err.contains("--required-group"),
        "{err}"
    );
    let out = Command::new(hephd_binary())
        .args(["--mode", "server", "--http-addr", &free_addr(), "--store"])
        .arg(format!(
            "file://{}",
            tempfile::tempdir().expect("tempdir").path().display()
        ))
        .args([
            "--oidc-issuer",
            "http://127.0.0.1:9",
            "--required-group",
            "admins",
        ])
        .output()
        .expect("run hephd");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--oidc-audience"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hephd_started_while_the_idp_is_down_answers_503() {
    if !heph_e2e::idp::node_available() {
        return;
    }
    let (_hub, url) = spawn_hephd(&[
        "--oidc-issuer",
        "http://127.0.0.1:9",
        "--oidc-audience",
        "heph",
        "--required-group",
        "admins",
    ])
    .await;
    let r = reqwest::Client::new()
        .get(format!("{url}/sync/v1/heads"))
        .bearer_auth(format!(
            "{}.{}.c2ln",
            b64(&json!({"alg": "RS256", "typ": "at+jwt", "kid": "k"})),
            b64(&json!({"sub": "x"}))
        ))
        .send()
        .await
        .expect("heads");
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers().contains_key("retry-after"));
}

fn b64(v: &serde_json::Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}
