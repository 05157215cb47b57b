//! HTTPS: the hub terminating TLS itself (`--tls-cert/--tls-key`, a certificate generated here with rcgen)
//! and the spoke's HTTP client trusting it through `--ca-file` — for `/config`, the device login (real test
//! IdP) and an authenticated `GET /sync/v1/heads`. Bad certificate/key files are clear startup errors.

use std::sync::Arc;
use std::time::Duration;

use heph_e2e::idp::Idp;
use heph_hub::oidc::{OidcAuthenticator, OidcConfig, OidcVerifier};
use heph_hub::store::MemoryStore;
use heph_hub::{Authenticator, DevAuthenticator, HubConfig, ServerError};
use heph_spoke::auth::{LoginOptions, device, http};

async fn start(mut cfg: HubConfig) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    cfg.header_timeout = Duration::from_secs(5);
    tokio::spawn(async move {
        if let Err(e) = heph_hub::run(listener, cfg, async move {
            let _ = rx.await;
        })
        .await
        {
            panic!("hub: {e}");
        }
    });
    (format!("https://127.0.0.1:{}", addr.port()), tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_serves_https_and_the_spoke_trusts_it_with_ca_file() {
    let c = heph_e2e::tls::self_signed();
    let mut cfg = HubConfig::new(Arc::new(MemoryStore::new()), Arc::new(DevAuthenticator));
    cfg.tls_cert = Some(c.cert.clone());
    cfg.tls_key = Some(c.key.clone());
    let (url, _stop) = start(cfg).await;

    let trusting = http::client_builder(Some(&c.cert))
        .expect("builder")
        .build()
        .expect("client");
    let r = trusting
        .get(format!("{url}/healthz"))
        .send()
        .await
        .expect("https healthz");
    assert_eq!(r.status().as_u16(), 200);
    let r = trusting
        .get(format!("{url}/sync/v1/heads"))
        .send()
        .await
        .expect("https heads");
    assert_eq!(r.status().as_u16(), 200);

    // Without the CA the certificate is refused.
    let plain = http::client_builder(None)
        .expect("builder")
        .build()
        .expect("client");
    let e = plain
        .get(format!("{url}/healthz"))
        .send()
        .await
        .expect_err("untrusted certificate");
    assert!(
        format!("{e:?}").to_lowercase().contains("certificate"),
        "{e:?}"
    );
    // Plain HTTP to the TLS port gets no HTTP answer.
    assert!(
        reqwest::get(format!("{}/healthz", url.replace("https", "http")))
            .await
            .is_err()
    );

    // A bad --ca-file is a clear error.
    let bad = c.key.parent().expect("dir").join("not-a-cert.pem");
    std::fs::write(&bad, "hello").expect("write");
    let e = http::client_builder(Some(&bad))
        .expect_err("not PEM")
        .to_string();
    assert!(e.contains("--ca-file"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_login_through_an_https_hub_with_ca_file() {
    let Some(idp) = Idp::start() else { return };
    let c = heph_e2e::tls::self_signed();
    let mut oc = OidcConfig::new(idp.issuer.clone(), "heph");
    oc.required_group = Some("admins".into());
    let verifier = OidcVerifier::new(oc).expect("verifier");
    verifier.spawn_refresh();
    let auth: Arc<dyn Authenticator> = Arc::new(OidcAuthenticator::new(verifier.clone()));
    let mut cfg = HubConfig::new(Arc::new(MemoryStore::new()), auth);
    cfg.dev_mode = false;
    cfg.oidc_issuer = Some(idp.issuer.clone());
    cfg.oidc_audience = Some("heph".into());
    cfg.oidc_client_id = Some("heph".into());
    cfg.tls_cert = Some(c.cert.clone());
    cfg.tls_key = Some(c.key.clone());
    let (url, _stop) = start(cfg).await;

    let mut opts = LoginOptions::new(url.clone());
    opts.ca_file = Some(c.cert.clone());
    let login = device::start(&opts)
        .await
        .expect("login start over https (/config)");
    assert_eq!(login.issuer, idp.issuer);
    let (uri, code) = (login.verification_uri.clone(), login.user_code.clone());
    tokio::task::block_in_place(|| idp.approve(&uri, &code, "alice", false));
    let sleep = device::tokio_sleep();
    let tokens = login.finish(&|_| {}, sleep.as_ref()).await.expect("tokens");
    let client = http::client_builder(Some(&c.cert))
        .expect("builder")
        .build()
        .expect("client");
    let r = client
        .get(format!("{url}/sync/v1/heads"))
        .bearer_auth(&tokens.access_token)
        .send()
        .await
        .expect("heads");
    assert_eq!(r.status().as_u16(), 200);
    let r = client
        .get(format!("{url}/sync/v1/heads"))
        .send()
        .await
        .expect("heads");
    assert_eq!(r.status().as_u16(), 401);

    // Without --ca-file the login can't even read /config.
    let e = device::start(&LoginOptions::new(url.clone()))
        .await
        .expect_err("untrusted");
    assert!(e.to_string().contains("/config"), "{e}");
}

#[tokio::test]
async fn bad_certificate_or_key_files_are_clear_startup_errors() {
    let c = heph_e2e::tls::self_signed();
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not pem at all").expect("write");
    let cases = [
        (
            Some(junk.clone()),
            Some(c.key.clone()),
            "no PEM certificate",
        ),
        (
            Some(c.cert.clone()),
            Some(junk.clone()),
            "no PEM private key",
        ),
        (
            Some(c.cert.clone()),
            Some(dir.path().join("missing.pem")),
            "reading",
        ),
        (
            Some(c.key.clone()),
            Some(c.key.clone()),
            "no PEM certificate",
        ),
        (Some(c.cert.clone()), None, "must be given together"),
    ];
    for (cert, key, needle) in cases {
        let mut cfg = HubConfig::new(Arc::new(MemoryStore::new()), Arc::new(DevAuthenticator));
        cfg.tls_cert = cert;
        cfg.tls_key = key;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let e = heph_hub::run(listener, cfg, std::future::pending())
            .await
            .expect_err("bad tls files");
        assert!(matches!(e, ServerError::Tls(_)), "{e:?}");
        assert!(e.to_string().contains(needle), "{e} lacks {needle:?}");
    }
}
