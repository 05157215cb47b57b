//! The HTTP API over real loopback sockets: every route and every status in `docs/protocol.md`,
//! and the bad-input list (garbage, truncation, overlong bodies, slow clients, floods, unknown
//! routes and methods, huge query strings, non-hex hashes).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use heph_format::SegmentId;
use heph_hub::authn::{AuthError, Authenticator, Caller};
use heph_hub::store::{FsStore, SegmentStore};
use heph_hub::testkit::{chain, origin, owner, segment};
use support::{TestHub, get, memory_config, push, raw_exchange, request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn seg_path(s: &heph_format::EncodedSegment) -> String {
    format!(
        "/sync/v1/segments/{}/{}",
        s.header.origin, s.header.first_seq
    )
}

#[tokio::test]
async fn push_statuses_and_bodies() {
    let hub = TestHub::start(memory_config()).await;
    let a = hub.addr;
    let (w, o) = (owner(1), origin(1));
    let c = chain(w, o, 3, 4, 40, 1);

    // 409 gap before anything is stored; head is null.
    let r = push(a, &c[1]).await;
    assert_eq!(r.status, 409);
    let j = r.json();
    assert_eq!(j["error"], "gap");
    assert_eq!(j["expected_first_seq"], 1);
    assert_eq!(j["head"], serde_json::Value::Null);

    // 201 stored, then 200 exists (idempotent).
    let r = push(a, &c[0]).await;
    assert_eq!(r.status, 201, "{:?}", String::from_utf8_lossy(&r.body));
    let j = r.json();
    assert_eq!(j["status"], "stored");
    assert_eq!(j["first_seq"], 1);
    assert_eq!(j["last_seq"], 4);
    assert_eq!(j["hash"], c[0].id.to_string());
    assert_eq!(j["head"]["last_seq"], 4);
    assert_eq!(j["head"]["segments"], 1);
    let r = push(a, &c[0]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "exists");

    // 409 occupied: a different segment at position 1; head names the stored one.
    let other = segment(w, o, 1, None, 4, 40, 99);
    let r = push(a, &other).await;
    assert_eq!(r.status, 409);
    let j = r.json();
    assert_eq!(j["error"], "occupied");
    assert_eq!(j["head"]["hash"], c[0].id.to_string());
    assert_eq!(j["origin"], o.to_string());

    // 409 fork: right position, wrong prev.
    let fork = segment(w, o, 5, Some(SegmentId([7; 32])), 2, 40, 3);
    let r = push(a, &fork).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["error"], "fork");
    assert_eq!(r.json()["head"]["last_seq"], 4);

    // 400 hash mismatch.
    let r = request(
        a,
        "PUT",
        &seg_path(&c[1]),
        &[("Heph-Segment-Id", &"ab".repeat(32))],
        &c[1].bytes,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "hash_mismatch");

    // 400 malformed: garbage body with a correct hash.
    let garbage = b"this is not a segment at all, just bytes".repeat(10);
    let gid = SegmentId::of(&garbage).to_string();
    let r = request(
        a,
        "PUT",
        &format!("/sync/v1/segments/{o}/5"),
        &[("Heph-Segment-Id", &gid)],
        &garbage,
    )
    .await;
    assert_eq!(r.status, 400);
    let j = r.json();
    assert_eq!(j["error"], "malformed");
    assert!(
        j["reason"].as_str().expect("reason").contains("magic"),
        "{j}"
    );

    // 400 url mismatch (origin and first_seq).
    let id = c[1].id.to_string();
    let r = request(
        a,
        "PUT",
        &format!("/sync/v1/segments/{}/5", origin(2)),
        &[("Heph-Segment-Id", &id)],
        &c[1].bytes,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, "url_mismatch".into())
    );
    let r = request(
        a,
        "PUT",
        &format!("/sync/v1/segments/{o}/6"),
        &[("Heph-Segment-Id", &id)],
        &c[1].bytes,
    )
    .await;
    assert_eq!(r.json()["error"], "url_mismatch");

    // 400 bad request: bad origin, bad seq, missing or non-hex id header.
    for (path, hdr) in [
        (
            "/sync/v1/segments/not-an-origin/5".to_owned(),
            Some(id.as_str()),
        ),
        (format!("/sync/v1/segments/{o}/five"), Some(id.as_str())),
        (format!("/sync/v1/segments/{o}/-1"), Some(id.as_str())),
        (format!("/sync/v1/segments/{o}/5"), None),
        (format!("/sync/v1/segments/{o}/5"), Some("zz-not-hex")),
    ] {
        let headers: Vec<(&str, &str)> = hdr.map(|h| ("Heph-Segment-Id", h)).into_iter().collect();
        let r = request(a, "PUT", &path, &headers, &c[1].bytes).await;
        assert_eq!(r.status, 400, "{path} {hdr:?}");
        assert_eq!(r.json()["error"], "bad_request", "{path}");
    }

    // 403 wrong owner.
    let stranger = segment(owner(2), origin(3), 1, None, 1, 10, 1);
    let r = push(a, &stranger).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "wrong_owner");
    assert_eq!(r.json()["hub_owner"], w.to_string());

    // None of the refused segments is fetchable.
    for s in [&other, &fork, &stranger] {
        let r = get(a, &format!("/sync/v1/blobs/{}", s.id)).await;
        assert_eq!(r.status, 404, "refused segment must not be stored");
    }
    // The chain continues normally.
    assert_eq!(push(a, &c[1]).await.status, 201);
    assert_eq!(push(a, &c[2]).await.status, 201);

    let m = get(a, "/metrics").await;
    let text = String::from_utf8_lossy(&m.body).to_string();
    for needle in [
        "heph_push_rejections_total{reason=\"gap\"} 1",
        "heph_push_rejections_total{reason=\"occupied\"} 1",
        "heph_push_rejections_total{reason=\"fork\"} 1",
        "heph_push_rejections_total{reason=\"hash_mismatch\"} 1",
        "heph_push_rejections_total{reason=\"malformed\"} 1",
        "heph_push_rejections_total{reason=\"wrong_owner\"} 1",
        "heph_http_requests_total{route=\"push\",status=\"201\"} 3",
        "heph_segments_stored_total 3",
        "heph_store_segments 3",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
    hub.stop().await;
}

#[tokio::test]
async fn too_large_by_length_and_by_stream() {
    let mut cfg = memory_config();
    cfg.limits.max_segment_bytes = 4096;
    let hub = TestHub::start(cfg).await;
    let o = origin(1);
    let id = "00".repeat(32);
    let big = vec![0u8; 5000];
    let r = request(
        hub.addr,
        "PUT",
        &format!("/sync/v1/segments/{o}/1"),
        &[("Heph-Segment-Id", &id)],
        &big,
    )
    .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"], "too_large");
    assert_eq!(r.json()["limit"], 4096);
    // Chunked, no Content-Length: cut off while streaming.
    let mut raw = format!(
        "PUT /sync/v1/segments/{o}/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nHeph-Segment-Id: {id}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..3 {
        raw.extend_from_slice(b"800\r\n");
        raw.extend_from_slice(&[1u8; 0x800]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let resp = support::parse_response(&raw_exchange(hub.addr, &raw).await, false);
    assert_eq!(resp.status, 413);
    assert_eq!(
        get(hub.addr, "/sync/v1/heads").await.json()["origins"],
        serde_json::json!({})
    );
    hub.stop().await;
}

#[tokio::test]
async fn reads_heads_list_blob_stream() {
    let hub = TestHub::start(memory_config()).await;
    let a = hub.addr;
    let w = owner(1);
    let c1 = chain(w, origin(1), 3, 5, 30, 1);
    let c2 = chain(w, origin(2), 2, 2, 30, 2);
    for s in c1.iter().chain(&c2) {
        assert_eq!(push(a, s).await.status, 201);
    }
    // Heads + ETag + 304.
    let r = get(a, "/sync/v1/heads").await;
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["owner"], w.to_string());
    let tag = j["tag"].as_str().expect("tag").to_owned();
    assert_eq!(tag.len(), 32);
    assert_eq!(r.header("etag"), Some(format!("\"{tag}\"").as_str()));
    assert_eq!(j["origins"][origin(1).to_string()]["last_seq"], 15);
    assert_eq!(j["origins"][origin(1).to_string()]["segments"], 3);
    assert_eq!(
        j["origins"][origin(1).to_string()]["hash"],
        c1[2].id.to_string()
    );
    assert_eq!(j["origins"][origin(2).to_string()]["last_seq"], 4);
    let r = request(
        a,
        "GET",
        "/sync/v1/heads",
        &[("If-None-Match", &format!("\"{tag}\""))],
        b"",
    )
    .await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());

    // List with after/limit.
    let r = get(
        a,
        &format!("/sync/v1/segments/{}?after=5&limit=1", origin(1)),
    )
    .await;
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["segments"].as_array().map(Vec::len), Some(1));
    assert_eq!(j["segments"][0]["first_seq"], 6);
    assert_eq!(j["segments"][0]["hash"], c1[1].id.to_string());
    assert_eq!(j["segments"][0]["len"], c1[1].bytes.len());
    assert_eq!(j["more"], true);
    assert_eq!(j["head"]["last_seq"], 15);
    let j = get(a, &format!("/sync/v1/segments/{}", origin(9)))
        .await
        .json();
    assert_eq!(j["segments"], serde_json::json!([]));
    assert_eq!(j["head"], serde_json::Value::Null);
    for bad in ["?after=x", "?limit=0", "?bogus=1"] {
        let r = get(a, &format!("/sync/v1/segments/{}{bad}", origin(1))).await;
        assert_eq!(r.status, 400, "{bad}");
    }

    // Blob: bytes, ETag, immutable; 304; HEAD; 400 non-hex; 404 unknown.
    let r = get(a, &format!("/sync/v1/blobs/{}", c1[0].id)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, c1[0].bytes);
    assert_eq!(r.header("etag"), Some(format!("\"{}\"", c1[0].id).as_str()));
    assert!(r.header("cache-control").expect("cc").contains("immutable"));
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.heph.segment")
    );
    let r = request(
        a,
        "GET",
        &format!("/sync/v1/blobs/{}", c1[0].id),
        &[("If-None-Match", &format!("\"{}\"", c1[0].id))],
        b"",
    )
    .await;
    assert_eq!(r.status, 304);
    let r = request(a, "HEAD", &format!("/sync/v1/blobs/{}", c1[0].id), &[], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some(c1[0].bytes.len().to_string().as_str())
    );
    for bad in [
        "xyz",
        "GG".repeat(32).as_str(),
        "ab".repeat(33).as_str(),
        "%2e%2e",
    ] {
        let r = get(a, &format!("/sync/v1/blobs/{bad}")).await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.json()["error"], "bad_request");
    }
    let r = get(a, &format!("/sync/v1/blobs/{}", "0".repeat(64))).await;
    assert_eq!(r.status, 404);

    // Bulk stream: all, then with after= and origin=.
    let r = get(a, "/sync/v1/stream").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.heph.segment-stream")
    );
    let frames = parse_stream(&r.body);
    let want: Vec<SegmentId> = c1.iter().chain(&c2).map(|s| s.id).collect();
    assert_eq!(frames.iter().map(|f| f.0).collect::<Vec<_>>(), want);
    for (id, bytes) in &frames {
        id.verify(bytes).expect("frame hash");
    }
    let r = get(
        a,
        &format!(
            "/sync/v1/stream?after={}:10&origin={}",
            origin(1),
            origin(1)
        ),
    )
    .await;
    let frames = parse_stream(&r.body);
    assert_eq!(
        frames.iter().map(|f| f.0).collect::<Vec<_>>(),
        vec![c1[2].id]
    );
    for bad in ["?after=nocolon", "?after=X:1", "?origin=bad"] {
        assert_eq!(
            get(a, &format!("/sync/v1/stream{bad}")).await.status,
            400,
            "{bad}"
        );
    }
    hub.stop().await;
}

/// Parses the bulk stream; panics unless it is complete (preamble, frames, end frame).
fn parse_stream(body: &[u8]) -> Vec<(SegmentId, Vec<u8>)> {
    assert_eq!(&body[..8], b"HEPHSTR1");
    let mut rest = &body[8..];
    let mut out = Vec::new();
    loop {
        assert!(rest.len() >= 36, "stream cut short");
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4")) as usize;
        let id = SegmentId(rest[4..36].try_into().expect("32"));
        rest = &rest[36..];
        if len == 0 {
            assert_eq!(id, SegmentId([0; 32]));
            assert!(rest.is_empty(), "bytes after the end frame");
            return out;
        }
        out.push((id, rest[..len].to_vec()));
        rest = &rest[len..];
    }
}

#[tokio::test]
async fn wait_wakes_on_push_and_times_out() {
    let hub = TestHub::start(memory_config()).await;
    let a = hub.addr;
    let tag = get(a, "/sync/v1/heads").await.json()["tag"]
        .as_str()
        .expect("tag")
        .to_owned();
    // Without a tag: returns at once.
    let r = get(a, "/sync/v1/wait").await;
    assert_eq!(r.json()["changed"], true);
    // Times out unchanged.
    let t = Instant::now();
    let r = get(a, &format!("/sync/v1/wait?tag={tag}&timeout_secs=1")).await;
    assert!(t.elapsed() >= Duration::from_millis(900));
    assert_eq!(r.json()["changed"], false);
    assert_eq!(r.json()["tag"], tag.as_str());
    // Wakes on a push.
    let waiter = tokio::spawn(async move {
        let t = Instant::now();
        let r = get(a, &format!("/sync/v1/wait?tag={tag}&timeout_secs=20")).await;
        (t.elapsed(), r)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = String::from_utf8_lossy(&get(a, "/metrics").await.body).to_string();
    assert!(m.contains("heph_long_polls_open 1"), "{m}");
    let s = segment(owner(1), origin(1), 1, None, 2, 10, 1);
    assert_eq!(push(a, &s).await.status, 201);
    let (elapsed, r) = waiter.await.expect("join");
    assert!(elapsed < Duration::from_secs(5), "woke after {elapsed:?}");
    let j = r.json();
    assert_eq!(j["changed"], true);
    assert_eq!(
        j["origins"][origin(1).to_string()]["hash"],
        s.id.to_string()
    );
    assert_eq!(get(a, "/sync/v1/wait?timeout_secs=x").await.status, 400);
    let m = String::from_utf8_lossy(&get(a, "/metrics").await.body).to_string();
    assert!(m.contains("heph_long_polls_open 0"), "{m}");
    hub.stop().await;
}

#[tokio::test]
async fn wait_sees_pushes_through_another_hub_on_the_same_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn SegmentStore> = Arc::new(FsStore::open(dir.path()).await.expect("open"));
    let mut ca = memory_config();
    ca.store = Arc::clone(&store);
    let mut cb = memory_config();
    cb.store = Arc::new(FsStore::open(dir.path()).await.expect("open"));
    let a = TestHub::start(ca).await;
    let b = TestHub::start(cb).await;
    let tag = get(a.addr, "/sync/v1/heads").await.json()["tag"]
        .as_str()
        .expect("tag")
        .to_owned();
    let addr = a.addr;
    let waiter = tokio::spawn(async move {
        get(addr, &format!("/sync/v1/wait?tag={tag}&timeout_secs=20")).await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s = segment(owner(1), origin(1), 1, None, 2, 10, 1);
    let t = Instant::now();
    assert_eq!(push(b.addr, &s).await.status, 201);
    let r = waiter.await.expect("join");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(
        r.json()["origins"][origin(1).to_string()]["hash"],
        s.id.to_string()
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn config_healthz_metrics_unknown_routes_and_methods() {
    let mut cfg = memory_config();
    cfg.oidc_issuer = Some("http://127.0.0.1:1/issuer".into());
    cfg.oidc_audience = Some("heph".into());
    cfg.oidc_client_id = Some("heph-client".into());
    let hub = TestHub::start(cfg).await;
    let a = hub.addr;
    let j = get(a, "/config").await.json();
    assert_eq!(j["issuer"], "http://127.0.0.1:1/issuer");
    assert_eq!(j["audience"], "heph");
    assert_eq!(j["client_id"], "heph-client");
    assert_eq!(j["hub_version"], heph_hub::VERSION);
    assert_eq!(j["api"], "sync/v1");
    assert_eq!(j["owner"], serde_json::Value::Null);
    let r = get(a, "/healthz").await;
    assert_eq!((r.status, r.json()["status"].clone()), (200, "ok".into()));
    let r = get(a, "/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .expect("ct")
            .starts_with("text/plain; version=0.0.4")
    );
    // Unknown routes: 404; wrong methods: 405 with Allow.
    for path in [
        "/sync/v1/nope",
        "/sync/v1/",
        "/sync/v2/heads",
        "/sync/v1/segments/a/b/c",
        "/nothing-here",
    ] {
        let r = get(a, path).await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.json()["error"], "not_found");
    }
    for (method, path, allow) in [
        ("POST", "/sync/v1/heads", "GET, HEAD"),
        (
            "DELETE",
            &format!("/sync/v1/blobs/{}", "0".repeat(64)) as &str,
            "GET, HEAD",
        ),
        ("GET", &format!("/sync/v1/segments/{}/1", origin(1)), "PUT"),
        ("PUT", "/healthz", "GET, HEAD"),
        ("POST", "/index.html", "GET, HEAD"),
        ("BREW", "/sync/v1/heads", "GET, HEAD"),
    ] {
        let r = request(a, method, path, &[], b"").await;
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(r.header("allow"), Some(allow));
    }
    // Huge query string: 414 from the hub (8 KiB), 431 from the HTTP layer past 64 KiB.
    let long = format!("/sync/v1/heads?x={}", "a".repeat(10_000));
    let r = get(a, &long).await;
    assert_eq!(r.status, 414);
    assert_eq!(r.json()["error"], "uri_too_long");
    let huge = format!("/sync/v1/heads?x={}", "a".repeat(100_000));
    let raw = raw_exchange(
        a,
        format!("GET {huge} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
    .await;
    let status = String::from_utf8_lossy(&raw[..raw.len().min(12)]).to_string();
    assert!(status.starts_with("HTTP/1.1 4"), "{status:?}");
    // Garbage request line: 400 from the HTTP layer.
    let raw = raw_exchange(a, b"\x16\x03\x01garbage garbage\r\n\r\n").await;
    assert!(
        raw.starts_with(b"HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
    // The hub is still up.
    assert_eq!(get(a, "/healthz").await.status, 200);
    hub.stop().await;
}

#[tokio::test]
async fn truncated_overlong_and_slow_uploads() {
    let hub = TestHub::start(memory_config()).await;
    let a = hub.addr;
    let s = segment(owner(1), origin(1), 1, None, 3, 200, 1);
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nHeph-Segment-Id: {}\r\nContent-Length: {}\r\n\r\n",
        seg_path(&s),
        s.id,
        s.bytes.len()
    );
    // Truncated: half the body, then the client closes its side.
    {
        let mut c = tokio::net::TcpStream::connect(a).await.expect("connect");
        c.write_all(head.as_bytes()).await.expect("w");
        c.write_all(&s.bytes[..s.bytes.len() / 2]).await.expect("w");
        c.shutdown().await.expect("shutdown");
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut out)).await;
        if !out.is_empty() {
            assert!(
                out.starts_with(b"HTTP/1.1 400"),
                "{:?}",
                String::from_utf8_lossy(&out)
            );
        }
    }
    // Slow body: half the body, then silence → 408 within the body timeout (1 s in tests).
    {
        let mut c = tokio::net::TcpStream::connect(a).await.expect("connect");
        c.write_all(head.as_bytes()).await.expect("w");
        c.write_all(&s.bytes[..10]).await.expect("w");
        let mut out = vec![0u8; 4096];
        let t = Instant::now();
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut out))
            .await
            .expect("answered in time")
            .expect("read");
        assert!(t.elapsed() < Duration::from_secs(4));
        let text = String::from_utf8_lossy(&out[..n]).to_string();
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("\"timeout\""), "{text}");
    }
    // Slow-loris on the header: the connection is closed after the header timeout.
    {
        let mut c = tokio::net::TcpStream::connect(a).await.expect("connect");
        c.write_all(b"GET /sync/v1/heads HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .expect("w");
        let t = Instant::now();
        let mut out = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut out)).await;
        assert!(r.is_ok(), "connection not closed by the header timeout");
        assert!(t.elapsed() < Duration::from_secs(4));
    }
    let j = get(a, "/sync/v1/heads").await.json();
    assert_eq!(
        j["origins"],
        serde_json::json!({}),
        "nothing stored by broken uploads"
    );
    // Body longer than Content-Length: the segment (exact length) is read, the excess is
    // parsed as a next request and refused; nothing but the exact segment is stored.
    let mut raw = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nHeph-Segment-Id: {}\r\nContent-Length: {}\r\n\r\n",
        seg_path(&s),
        s.id,
        s.bytes.len()
    )
    .into_bytes();
    raw.extend_from_slice(&s.bytes);
    raw.extend_from_slice(b"EXTRA GARBAGE BYTES THAT DO NOT BELONG\r\n\r\n");
    let out = raw_exchange(a, &raw).await;
    let text = String::from_utf8_lossy(&out).to_string();
    assert!(text.starts_with("HTTP/1.1 201"), "{text}");
    assert!(
        text.contains("HTTP/1.1 400"),
        "excess bytes are refused: {text}"
    );
    let r = get(a, &format!("/sync/v1/blobs/{}", s.id)).await;
    assert_eq!(r.body, s.bytes);
    // A body shorter than Content-Length with a lying length: the claimed hash fails.
    let mut raw = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nHeph-Segment-Id: {}\r\nContent-Length: 50\r\n\r\n",
        seg_path(&s),
        s.id
    )
    .into_bytes();
    raw.extend_from_slice(&s.bytes[..50]);
    let r = support::parse_response(&raw_exchange(a, &raw).await, false);
    assert_eq!(r.status, 400);
    assert_eq!(get(a, "/healthz").await.status, 200);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_pushes_to_one_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = memory_config();
    cfg.store = Arc::new(FsStore::open(dir.path()).await.expect("open"));
    let hub = TestHub::start(cfg).await;
    let a = hub.addr;
    let (w, o) = (owner(1), origin(1));
    // 10,000 different segments, all for position 1, pushed with 256 in flight.
    let segs: Vec<_> = (0..10_000u64)
        .map(|i| segment(w, o, 1, None, 1, 8, i))
        .collect();
    let segs = Arc::new(segs);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..256 {
        let (segs, next) = (Arc::clone(&segs), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(s) = segs.get(i) else { break };
                statuses.push(push(a, s).await.status);
            }
            statuses
        }));
    }
    let mut created = 0;
    let mut conflicts = 0;
    for t in tasks {
        for st in t.await.expect("join") {
            match st {
                201 => created += 1,
                409 => conflicts += 1,
                other => panic!("unexpected status {other}"),
            }
        }
    }
    assert_eq!(created, 1);
    assert_eq!(conflicts, 9_999);
    let blobs = walk_files(&dir.path().join("blobs"));
    assert_eq!(blobs, 1, "only the winner's blob is stored");
    assert_eq!(walk_files(&dir.path().join("tmp")), 0);
    assert_eq!(get(a, "/healthz").await.status, 200);
    hub.stop().await;
}

fn walk_files(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            n += walk_files(&p);
        } else {
            n += 1;
        }
    }
    n
}

#[derive(Debug)]
struct TokenAuth;

#[async_trait]
impl Authenticator for TokenAuth {
    async fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, AuthError> {
        let Some(value) = authorization else {
            return Err(AuthError::missing_token());
        };
        match heph_hub::authn::bearer_token(value) {
            Some("good") => Ok(Caller {
                sub: "alice".into(),
                owner: None,
            }),
            Some("other-owner") => Ok(Caller {
                sub: "mallory".into(),
                owner: Some(owner(9)),
            }),
            Some("forbidden") => Err(AuthError::Forbidden {
                reason: "sub bob is not authorised".into(),
            }),
            Some("idp-down") => Err(AuthError::Unavailable {
                reason: "issuer unreachable".into(),
            }),
            _ => Err(AuthError::invalid_token("signature does not verify")),
        }
    }
}

#[tokio::test]
async fn every_data_route_is_authenticated() {
    let mut cfg = memory_config();
    cfg.authenticator = Arc::new(TokenAuth);
    cfg.dev_mode = false;
    cfg.owner = Some(owner(1));
    let www = tempfile::tempdir().expect("tempdir");
    std::fs::write(www.path().join("index.html"), "<h1>heph</h1>").expect("w");
    cfg.web_root = Some(www.path().to_path_buf());
    let hub = TestHub::start(cfg).await;
    let a = hub.addr;
    let s = segment(owner(1), origin(1), 1, None, 1, 10, 1);
    let routes = vec![
        ("GET", "/sync/v1/heads".to_owned()),
        ("GET", format!("/sync/v1/segments/{}", origin(1))),
        ("GET", format!("/sync/v1/blobs/{}", s.id)),
        ("GET", "/sync/v1/stream".to_owned()),
        ("GET", "/sync/v1/wait?timeout_secs=0".to_owned()),
        ("PUT", seg_path(&s)),
    ];
    let id = s.id.to_string();
    for (method, path) in &routes {
        let send = |auth: Option<&'static str>| {
            let mut h: Vec<(&str, &str)> = vec![("Heph-Segment-Id", id.as_str())];
            if let Some(v) = auth {
                h.push(("Authorization", v));
            }
            let body: &[u8] = if *method == "PUT" { &s.bytes } else { b"" };
            let (method, path, h, body) = (
                *method,
                path.clone(),
                h.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Vec<_>>(),
                body.to_vec(),
            );
            async move {
                let hv: Vec<(&str, &str)> =
                    h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                request(a, method, &path, &hv, &body).await
            }
        };
        let r = send(None).await;
        assert_eq!(r.status, 401, "{method} {path}");
        assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"heph\""));
        assert_eq!(r.json()["error"], "unauthorized");
        let r = send(Some("Bearer nonsense")).await;
        assert_eq!(r.status, 401);
        assert!(
            r.header("www-authenticate")
                .expect("www")
                .contains("error=\"invalid_token\"")
        );
        let r = send(Some("Bearer forbidden")).await;
        assert_eq!(
            (r.status, r.json()["error"].clone()),
            (403, "forbidden".into()),
            "{method} {path}"
        );
        let r = send(Some("Bearer idp-down")).await;
        assert_eq!(
            (r.status, r.json()["error"].clone()),
            (503, "idp_unavailable".into())
        );
        assert!(r.header("retry-after").is_some());
        let r = send(Some("Bearer other-owner")).await;
        assert_eq!(
            (r.status, r.json()["error"].clone()),
            (403, "wrong_owner".into())
        );
        let r = send(Some("Bearer good")).await;
        assert!(
            r.status < 300 || r.status == 404,
            "{method} {path}: {}",
            r.status
        );
    }
    // Open routes need no token.
    assert_eq!(get(a, "/healthz").await.status, 200);
    assert_eq!(get(a, "/config").await.status, 200);
    assert_eq!(get(a, "/metrics").await.status, 200);
    assert_eq!(get(a, "/").await.status, 200);
    let m = String::from_utf8_lossy(&get(a, "/metrics").await.body).to_string();
    for needle in [
        "heph_auth_total{result=\"unauthorized\"} 12",
        "heph_auth_total{result=\"forbidden\"} 6",
        "heph_auth_total{result=\"unavailable\"} 6",
        "heph_auth_total{result=\"ok\"} 12",
    ] {
        assert!(m.contains(needle), "{needle}\n{m}");
    }
    hub.stop().await;
}

#[tokio::test]
async fn static_files_types_cache_and_traversal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let www = dir.path().join("www");
    std::fs::create_dir_all(www.join("assets")).expect("mkdir");
    std::fs::write(www.join("index.html"), "<h1>heph</h1>").expect("w");
    std::fs::write(
        www.join("sw.js"),
        "self.addEventListener('fetch', () => {});",
    )
    .expect("w");
    std::fs::write(www.join("app.wasm"), b"\0asm\x01\0\0\0").expect("w");
    std::fs::write(www.join("manifest.webmanifest"), "{}").expect("w");
    std::fs::write(www.join("assets/app.js"), "export {};").expect("w");
    std::fs::write(www.join("assets/style.css"), "body{}").expect("w");
    std::fs::write(dir.path().join("secret.txt"), "TOP SECRET").expect("w");
    #[cfg(unix)]
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), www.join("leak.txt"))
        .expect("symlink");
    let mut cfg = memory_config();
    cfg.web_root = Some(www.clone());
    let hub = TestHub::start(cfg).await;
    let a = hub.addr;
    for (path, ct) in [
        ("/", "text/html; charset=utf-8"),
        ("/index.html", "text/html; charset=utf-8"),
        ("/sw.js", "text/javascript; charset=utf-8"),
        ("/app.wasm", "application/wasm"),
        ("/manifest.webmanifest", "application/manifest+json"),
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/assets/style.css", "text/css; charset=utf-8"),
        ("/assets/", "text/html; charset=utf-8"),
    ] {
        let r = get(a, path).await;
        if path == "/assets/" {
            assert_eq!(r.status, 404, "a directory without index.html");
            continue;
        }
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(ct), "{path}");
    }
    assert_eq!(
        get(a, "/sw.js").await.header("cache-control"),
        Some("no-cache")
    );
    assert_eq!(get(a, "/app.wasm").await.body, b"\0asm\x01\0\0\0");
    for evil in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/assets/..%2F..%2Fsecret.txt",
        "/assets/%2e%2e/%2e%2e/secret.txt",
        "/..%5Csecret.txt",
        "//etc/passwd",
        "/%2Fetc%2Fpasswd",
        "/leak.txt",
        "/index.html%00.js",
        "/%zz",
    ] {
        let r = get(a, evil).await;
        assert!(r.status == 404 || r.status == 400, "{evil}: {}", r.status);
        assert!(
            !String::from_utf8_lossy(&r.body).contains("TOP SECRET"),
            "{evil}"
        );
        assert!(
            !String::from_utf8_lossy(&r.body).contains("root:"),
            "{evil}"
        );
    }
    let r = request(a, "HEAD", "/index.html", &[], b"").await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    hub.stop().await;
}

#[tokio::test]
async fn dev_mode_refuses_non_loopback_and_tls_is_refused() {
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0")
        .await
        .expect("bind");
    let e = heph_hub::run(listener, memory_config(), std::future::pending())
        .await
        .expect_err("must refuse");
    assert!(
        matches!(e, heph_hub::ServerError::DevModeNonLoopback { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("dev mode"), "{e}");
    let mut cfg = memory_config();
    cfg.tls_cert = Some("/nonexistent.pem".into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let e = heph_hub::run(listener, cfg, std::future::pending())
        .await
        .expect_err("tls");
    assert!(matches!(e, heph_hub::ServerError::Tls(_)), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_an_inflight_upload() {
    let hub = TestHub::start(memory_config()).await;
    let a = hub.addr;
    let s = segment(owner(1), origin(1), 1, None, 3, 100, 1);
    let mut c = tokio::net::TcpStream::connect(a).await.expect("connect");
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nHeph-Segment-Id: {}\r\nContent-Length: {}\r\n\r\n",
        seg_path(&s),
        s.id,
        s.bytes.len()
    );
    c.write_all(head.as_bytes()).await.expect("w");
    c.write_all(&s.bytes[..20]).await.expect("w");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let hub_state = Arc::clone(hub.hub.state());
    let stopper = tokio::spawn(hub.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !stopper.is_finished(),
        "shutdown waits for the in-flight upload"
    );
    c.write_all(&s.bytes[20..]).await.expect("w");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).to_string();
    assert!(text.starts_with("HTTP/1.1 201"), "{text}");
    tokio::time::timeout(Duration::from_secs(5), stopper)
        .await
        .expect("shutdown completes")
        .expect("join");
    let heads = hub_state.log().heads().await.expect("heads");
    assert_eq!(heads.origins.get(&origin(1)).map(|h| h.hash), Some(s.id));
}

/// A store whose backend is down: every call fails.
#[derive(Debug)]
struct DownStore;

#[async_trait]
impl SegmentStore for DownStore {
    fn describe(&self) -> String {
        "down:".into()
    }
    async fn create(
        &self,
        _: &str,
        _: bytes::Bytes,
    ) -> Result<Option<bytes::Bytes>, heph_hub::StoreError> {
        Err(heph_hub::StoreError::Backend("connection refused".into()))
    }
    async fn read(&self, _: &str) -> Result<Option<bytes::Bytes>, heph_hub::StoreError> {
        Err(heph_hub::StoreError::Backend("connection refused".into()))
    }
    async fn list_positions(
        &self,
        _: heph_format::OwnerId,
        _: heph_format::Origin,
        _: u64,
        _: usize,
    ) -> Result<Vec<u64>, heph_hub::StoreError> {
        Err(heph_hub::StoreError::Backend("connection refused".into()))
    }
    async fn list_origins(
        &self,
        _: heph_format::OwnerId,
    ) -> Result<Vec<heph_format::Origin>, heph_hub::StoreError> {
        Err(heph_hub::StoreError::Backend("connection refused".into()))
    }
    async fn owner(&self) -> Result<Option<heph_format::OwnerId>, heph_hub::StoreError> {
        // Opening the hub reads the owner; let that succeed so the hub starts.
        Ok(None)
    }
    async fn check(&self) -> Result<(), heph_hub::StoreError> {
        Err(heph_hub::StoreError::Backend("connection refused".into()))
    }
}

#[tokio::test]
async fn store_down_is_503_and_long_poll_limit_is_503_busy() {
    let mut cfg = memory_config();
    cfg.store = Arc::new(DownStore);
    let hub = TestHub::start(cfg).await;
    let a = hub.addr;
    let r = get(a, "/healthz").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "store_unavailable");
    assert!(r.header("retry-after").is_some());
    let s = segment(owner(1), origin(1), 1, None, 1, 10, 1);
    let r = push(a, &s).await;
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (503, "store_unavailable".into())
    );
    let r = get(a, &format!("/sync/v1/blobs/{}", s.id)).await;
    assert_eq!(r.status, 503);
    hub.stop().await;

    let mut cfg = memory_config();
    cfg.http.max_long_polls = 1;
    let hub = TestHub::start(cfg).await;
    let a = hub.addr;
    let tag = get(a, "/sync/v1/heads").await.json()["tag"]
        .as_str()
        .expect("tag")
        .to_owned();
    let path = format!("/sync/v1/wait?tag={tag}&timeout_secs=3");
    let p2 = path.clone();
    let first = tokio::spawn(async move { get(a, &p2).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = get(a, &path).await;
    assert_eq!((r.status, r.json()["error"].clone()), (503, "busy".into()));
    assert_eq!(first.await.expect("join").status, 200);
    hub.stop().await;
}
