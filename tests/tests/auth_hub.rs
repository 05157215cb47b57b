//! The hub's OIDC verification against the real test IdP (npm `oidc-provider`, tests/node/idp.mjs) and a
//! real hub server on loopback: the attack matrix of issue 6, key rotation, IdP downtime, an unreachable
//! issuer at startup, and bad discovery/JWKS documents. Needs `node` (fails under CI=true without it).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use heph_e2e::idp::{Idp, IdpOptions};
use heph_format::OwnerId;
use heph_hub::oidc::{OidcAuthenticator, OidcConfig, OidcError, OidcVerifier};
use heph_hub::store::MemoryStore;
use heph_hub::{Authenticator, HubConfig};
use serde_json::{Value, json};

const OWNER: &str = "01J9ZK2AAAAAAAAAAAAAAAAAAA";
const OTHER_OWNER: &str = "01J9ZK2BBBBBBBBBBBBBBBBBBB";

struct Hub {
    url: String,
    verifier: Arc<OidcVerifier>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Hub {
    async fn start(cfg: OidcConfig) -> Hub {
        let verifier = OidcVerifier::new(cfg).expect("verifier config");
        verifier.spawn_refresh();
        let auth: Arc<dyn Authenticator> = Arc::new(OidcAuthenticator::new(verifier.clone()));
        let mut hub = HubConfig::new(Arc::new(MemoryStore::new()), auth);
        hub.dev_mode = false;
        hub.owner = Some(OWNER.parse::<OwnerId>().expect("owner"));
        hub.oidc_issuer = Some(verifier.config().issuer.clone());
        hub.oidc_audience = Some(verifier.config().audience.clone());
        hub.oidc_client_id = Some("heph".into());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            if let Err(e) = heph_hub::run(listener, hub, async move {
                let _ = rx.await;
            })
            .await
            {
                panic!("hub failed: {e}");
            }
        });
        Hub {
            url: format!("http://{addr}"),
            verifier,
            stop: Some(tx),
            task: Some(task),
        }
    }

    async fn wait_ready(&self) {
        for _ in 0..200 {
            if self.verifier.is_ready() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("verifier never loaded the IdP's keys");
    }

    async fn heads(&self, token: Option<&str>) -> (u16, Option<String>, String) {
        let mut req = reqwest::Client::new().get(format!("{}/sync/v1/heads", self.url));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = req.send().await.expect("GET heads");
        let status = resp.status().as_u16();
        let www = resp
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap_or("").to_string());
        (status, www, resp.text().await.unwrap_or_default())
    }

    async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

fn cfg(idp: &Idp) -> OidcConfig {
    let mut c = OidcConfig::new(idp.issuer.clone(), "heph");
    c.required_group = Some("admins".into());
    c.authorized_subs = vec!["agent-sub-0003".into()];
    c.retry_initial = Duration::from_millis(100);
    c
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Run the device flow against the IdP over HTTP and return the token response (access, id, refresh).
async fn device_tokens(idp: &Idp, user: &str) -> Value {
    let http = reqwest::Client::new();
    let auth: Value = http
        .post(format!("{}/device/auth", idp.issuer))
        .form(&[
            ("client_id", "heph"),
            ("scope", "openid email profile offline_access"),
        ])
        .send()
        .await
        .expect("device auth")
        .json()
        .await
        .expect("device auth json");
    let (uri, code) = (
        auth["verification_uri"].as_str().expect("uri"),
        auth["user_code"].as_str().expect("code"),
    );
    let (uri, code, user) = (uri.to_string(), code.to_string(), user.to_string());
    tokio::task::block_in_place(|| idp.approve(&uri, &code, &user, false));
    let tokens: Value = http
        .post(format!("{}/token", idp.issuer))
        .form(&[
            ("client_id", "heph"),
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            (
                "device_code",
                auth["device_code"].as_str().expect("device_code"),
            ),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token json");
    assert!(
        tokens["access_token"].is_string(),
        "no access token: {tokens}"
    );
    tokens
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

fn valid_claims(idp: &Idp) -> Value {
    json!({"iss": idp.issuer, "aud": "heph", "sub": "alice-sub-0001", "exp": now() + 300, "iat": now(),
           "groups": ["admins"], "client_id": "heph"})
}

fn assert_refused(case: &str, got: (u16, Option<String>, String), status: u16, needle: &str) {
    let (s, www, body) = got;
    assert_eq!(s, status, "{case}: expected {status}, got {s}: {body}");
    assert!(
        !body.contains("\"origins\""),
        "{case}: data was served: {body}"
    );
    assert!(
        body.to_lowercase().contains(&needle.to_lowercase()),
        "{case}: body {body:?} lacks {needle:?}"
    );
    if status == 401 {
        let www = www.unwrap_or_else(|| panic!("{case}: 401 without WWW-Authenticate"));
        assert!(www.starts_with("Bearer"), "{case}: {www}");
        if case != "no token" {
            assert!(www.contains("error=\"invalid_token\""), "{case}: {www}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_matrix_each_row_refused_precisely() {
    let Some(idp) = Idp::start() else { return };
    let hub = Hub::start(cfg(&idp)).await;
    hub.wait_ready().await;

    // The real thing works: alice (admins) via the device flow.
    let alice = device_tokens(&idp, "alice").await;
    let access = alice["access_token"].as_str().expect("at");
    let (s, _, body) = hub.heads(Some(access)).await;
    assert_eq!(s, 200, "alice's real access token refused: {body}");
    assert!(body.contains("\"origins\""), "{body}");
    // The agent identity is let in by --authorized-sub, without the group.
    let agent = device_tokens(&idp, "agent").await;
    assert_eq!(hub.heads(agent["access_token"].as_str()).await.0, 200);

    assert_refused("no token", hub.heads(None).await, 401, "bearer");
    assert_refused(
        "malformed",
        hub.heads(Some("not-a-jwt")).await,
        401,
        "malformed",
    );
    assert_refused(
        "garbage parts",
        hub.heads(Some("a.b.c")).await,
        401,
        "malformed",
    );

    let claims = valid_claims(&idp);
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "at+jwt"})),
        b64(&claims)
    );
    assert_refused("alg none", hub.heads(Some(&none)).await, 401, "algorithm");

    // HS256 "signed" with the IdP's public key (the JWKS JSON and the key's modulus as the secret).
    let jwks: Value = reqwest::get(format!("{}/jwks", idp.issuer))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let kid = jwks["keys"][0]["kid"].as_str().expect("kid").to_string();
    for secret in [
        jwks["keys"][0].to_string(),
        jwks["keys"][0]["n"].as_str().expect("n").to_string(),
    ] {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        h.kid = Some(kid.clone());
        h.typ = Some("at+jwt".into());
        let t = jsonwebtoken::encode(
            &h,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).expect("hmac key"),
        )
        .expect("hs256");
        assert_refused(
            "HS256 with the public key",
            hub.heads(Some(&t)).await,
            401,
            "HS256",
        );
    }

    // Bad signature: a valid token with its signature altered.
    let good = idp.mint(json!({}), json!({}), false);
    assert_eq!(
        hub.heads(Some(&good)).await.0,
        200,
        "minted valid token refused"
    );
    assert_eq!(
        hub.heads(Some(&good)).await.0,
        200,
        "cached valid token refused"
    );
    let (msg, sig) = good.rsplit_once('.').expect("jws");
    let mut sig_bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig)
        .expect("sig");
    sig_bytes[10] ^= 0x55;
    let bad = format!(
        "{msg}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig_bytes)
    );
    assert_refused(
        "bad signature",
        hub.heads(Some(&bad)).await,
        401,
        "signature",
    );

    let foreign = idp.mint(json!({}), json!({}), true);
    assert_refused("unknown kid", hub.heads(Some(&foreign)).await, 401, "key");

    let t = idp.mint(json!({"iss": "http://127.0.0.1:1"}), json!({}), false);
    assert_refused("wrong iss", hub.heads(Some(&t)).await, 401, "issuer");
    let t = idp.mint(json!({"iss": format!("{}/", idp.issuer)}), json!({}), false);
    assert_refused(
        "iss with a trailing slash",
        hub.heads(Some(&t)).await,
        401,
        "issuer",
    );
    let t = idp.mint(json!({"aud": "other-api"}), json!({}), false);
    assert_refused("wrong aud", hub.heads(Some(&t)).await, 401, "audience");
    let t = idp.mint(json!({"aud": ["other-api", "heph"]}), json!({}), false);
    assert_eq!(
        hub.heads(Some(&t)).await.0,
        200,
        "aud array containing heph must be accepted"
    );
    let t = idp.mint(
        json!({"exp": now() - 3600, "iat": now() - 7200}),
        json!({}),
        false,
    );
    assert_refused("expired", hub.heads(Some(&t)).await, 401, "expired");
    let t = idp.mint(json!({"exp": now() - 30}), json!({}), false);
    assert_eq!(
        hub.heads(Some(&t)).await.0,
        200,
        "30 s past exp is inside the 60 s leeway"
    );
    let t = idp.mint(json!({"nbf": now() + 3600}), json!({}), false);
    assert_refused(
        "nbf in the future",
        hub.heads(Some(&t)).await,
        401,
        "not valid yet",
    );
    let t = idp.mint(json!({"iat": now() + 3600}), json!({}), false);
    assert_refused(
        "iat in the future",
        hub.heads(Some(&t)).await,
        401,
        "future",
    );
    let t = idp.mint(json!({"exp": null}), json!({}), false);
    assert_refused("no exp", hub.heads(Some(&t)).await, 401, "exp");

    // The ID token from the same real login: same issuer, same key, aud = client id = heph.
    let id_token = alice["id_token"].as_str().expect("id_token");
    assert_refused(
        "ID token as bearer",
        hub.heads(Some(id_token)).await,
        401,
        "not an access token",
    );
    let t = idp.mint(json!({"nonce": "n"}), json!({}), false);
    assert_refused(
        "typed token with a nonce",
        hub.heads(Some(&t)).await,
        401,
        "nonce",
    );

    // Authorisation: valid tokens of people who may not use this hub.
    let bob = device_tokens(&idp, "bob").await;
    assert_refused(
        "missing group (real bob)",
        hub.heads(bob["access_token"].as_str()).await,
        403,
        "group",
    );
    let t = idp.mint(json!({"sub": "mallory", "groups": null}), json!({}), false);
    assert_refused(
        "sub not in allowlist, no groups",
        hub.heads(Some(&t)).await,
        403,
        "not in",
    );
    let t = idp.mint(json!({"heph_owner": OTHER_OWNER}), json!({}), false);
    assert_refused(
        "token for another owner",
        hub.heads(Some(&t)).await,
        403,
        "owner",
    );
    let t = idp.mint(json!({"heph_owner": OWNER}), json!({}), false);
    assert_eq!(
        hub.heads(Some(&t)).await.0,
        200,
        "token for this hub's owner"
    );

    // Refusals are counted by reason; the repeated valid tokens came from the accepted-token cache.
    let m = hub.verifier.render_metrics();
    assert!(
        m.lines()
            .any(|l| l.starts_with("heph_auth_cache_hits_total ") && !l.ends_with(" 0")),
        "no cache hits:\n{m}"
    );
    for reason in [
        "alg_not_allowed",
        "bad_signature",
        "unknown_kid",
        "wrong_issuer",
        "wrong_audience",
        "expired",
        "not_yet_valid",
        "not_access_token",
        "forbidden",
        "missing",
    ] {
        assert!(
            m.contains(&format!("reason=\"{reason}\"")),
            "metrics lack {reason}:\n{m}"
        );
    }
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_allowlist_only_refuses_group_members_not_listed() {
    let Some(idp) = Idp::start() else { return };
    let mut c = OidcConfig::new(idp.issuer.clone(), "heph");
    c.authorized_subs = vec!["agent-sub-0003".into()];
    let hub = Hub::start(c).await;
    hub.wait_ready().await;
    let alice = idp.mint(json!({}), json!({}), false);
    assert_refused(
        "sub not in the allowlist",
        hub.heads(Some(&alice)).await,
        403,
        "authorized-sub",
    );
    let agent = idp.mint(
        json!({"sub": "agent-sub-0003", "groups": ["heph-agents"]}),
        json!({}),
        false,
    );
    assert_eq!(hub.heads(Some(&agent)).await.0, 200);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_is_picked_up_and_refetch_is_rate_limited() {
    let Some(mut idp) = Idp::start() else { return };
    let hub = Hub::start(cfg(&idp)).await;
    hub.wait_ready().await;
    let old = idp.mint(json!({}), json!({}), false);
    assert_eq!(hub.heads(Some(&old)).await.0, 200);

    idp.restart_with_new_key();
    let new = idp.mint(json!({}), json!({}), false);
    assert_eq!(
        hub.heads(Some(&new)).await.0,
        200,
        "token signed with the rotated key refused"
    );
    let fetches = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("heph_auth_jwks_fetches_total "))
            .map(str::to_string)
            .unwrap_or_default()
    };
    let after_rotation = fetches(&hub.verifier.render_metrics());
    // The old key is gone from the JWKS: refused, and garbage kids don't make the hub hammer the IdP.
    assert_refused(
        "old key after rotation",
        hub.heads(Some(&old)).await,
        401,
        "key",
    );
    for i in 0..20 {
        let t = idp.mint(json!({}), json!({"kid": format!("garbage-{i}")}), true);
        assert_eq!(hub.heads(Some(&t)).await.0, 401);
    }
    let m = hub.verifier.render_metrics();
    assert_eq!(
        fetches(&m),
        after_rotation,
        "unknown kids caused JWKS refetches inside the rate limit"
    );
    assert!(
        !m.contains("heph_auth_jwks_refetch_rate_limited_total 0\n"),
        "{m}"
    );
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_down_cached_keys_keep_working() {
    let Some(mut idp) = Idp::start() else { return };
    let hub = Hub::start(cfg(&idp)).await;
    hub.wait_ready().await;
    let t = idp.mint(json!({}), json!({}), false);
    let foreign = idp.mint(json!({}), json!({}), true);
    idp.stop();
    assert_eq!(
        hub.heads(Some(&t)).await.0,
        200,
        "cached JWKS must survive IdP downtime"
    );
    // An unknown kid while the IdP is down: the refetch fails, the cached keys stay, the token is refused.
    assert_refused(
        "unknown kid, IdP down",
        hub.heads(Some(&foreign)).await,
        401,
        "key",
    );
    assert_eq!(hub.heads(Some(&t)).await.0, 200);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_issuer_at_startup_gives_503_then_recovers() {
    if !heph_e2e::idp::node_available() {
        return;
    }
    // Find a free port, leave it closed: the issuer is unreachable.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let issuer = format!("http://127.0.0.1:{port}");
    let mut c = OidcConfig::new(issuer.clone(), "heph");
    c.required_group = Some("admins".into());
    c.retry_initial = Duration::from_millis(100);
    let hub = Hub::start(c).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resp = reqwest::get(format!("{}/healthz", hub.url))
        .await
        .expect("healthz");
    assert_eq!(
        resp.status().as_u16(),
        200,
        "the hub must start without its IdP"
    );
    let r = reqwest::Client::new()
        .get(format!("{}/sync/v1/heads", hub.url))
        .bearer_auth(format!(
            "{}.{}.c2ln",
            b64(&json!({"alg": "RS256", "typ": "at+jwt", "kid": "k"})),
            b64(
                &json!({"iss": issuer, "aud": "heph", "sub": "alice-sub-0001", "exp": now() + 300})
            )
        ))
        .send()
        .await
        .expect("heads");
    assert_eq!(r.status().as_u16(), 503);
    assert!(
        r.headers().get("retry-after").is_some(),
        "503 without Retry-After"
    );
    let body = r.text().await.unwrap_or_default();
    assert!(
        body.contains("idp_unavailable") && !body.contains("\"origins\""),
        "{body}"
    );

    let Some(idp) = Idp::start_with(IdpOptions {
        port,
        ..IdpOptions::default()
    }) else {
        return;
    };
    assert_eq!(idp.issuer, issuer);
    hub.wait_ready().await;
    let t = idp.mint(json!({}), json!({}), false);
    assert_eq!(hub.heads(Some(&t)).await.0, 200);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_with_the_wrong_issuer_is_a_clear_error() {
    let Some(idp) = Idp::start() else { return };
    // Configured with a trailing slash: the discovery URL is the same, its `issuer` is not.
    let mut c = OidcConfig::new(format!("{}/", idp.issuer), "heph");
    c.required_group = Some("admins".into());
    let v = OidcVerifier::new(c).expect("config");
    let err = v.refresh().await.expect_err("issuer mismatch must fail");
    assert!(matches!(err, OidcError::IssuerMismatch { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("expected exactly") && msg.contains(&idp.issuer),
        "{msg}"
    );
    assert!(!v.is_ready());
    let t = idp.mint(json!({}), json!({}), false);
    assert_eq!(v.verify(&t).await.map_err(|e| e.status()), Err(503));
}

/// A static HTTP server for documents oidc-provider can't be made to serve (a JWKS with no usable keys).
async fn serve_static(routes: Vec<(&'static str, String)>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", l.local_addr().expect("addr"));
    let routes: Vec<(String, String)> = routes
        .into_iter()
        .map(|(p, b)| (p.to_string(), b.replace("{base}", &base)))
        .collect();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let routes = routes.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, body) = match routes.iter().find(|(p, _)| *p == path) {
                    Some((_, b)) => ("200 OK", b.clone()),
                    None => ("404 Not Found", "{}".to_string()),
                };
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    base
}

#[tokio::test]
async fn jwks_without_usable_keys_and_broken_documents_are_clear_errors() {
    let base = serve_static(vec![
        ("/.well-known/openid-configuration", r#"{"issuer":"{base}","jwks_uri":"{base}/jwks"}"#.to_string()),
        ("/jwks", r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"hmac"},{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB","kid":"enc"}]}"#.to_string()),
    ])
    .await;
    let mut c = OidcConfig::new(base.clone(), "heph");
    c.required_group = Some("admins".into());
    let v = OidcVerifier::new(c).expect("config");
    let err = v.refresh().await.expect_err("no usable keys");
    assert!(
        matches!(err, OidcError::NoUsableKeys { skipped: 2, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("no usable signing keys"), "{err}");

    let base = serve_static(vec![(
        "/.well-known/openid-configuration",
        "this is not json".to_string(),
    )])
    .await;
    let mut c = OidcConfig::new(base, "heph");
    c.required_group = Some("admins".into());
    let err = OidcVerifier::new(c)
        .expect("config")
        .refresh()
        .await
        .expect_err("not json");
    assert!(err.to_string().contains("not JSON"), "{err}");
}
