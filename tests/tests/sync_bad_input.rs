//! Bad input from (or about) the hub, through the real `heph sync`: a URL that is not http(s), an
//! unreachable hub, a hub answering garbage, a truncated stream, a segment whose hash does not match, a
//! segment of another owner, a chain with a gap. Each is a clear one-line error, the replica is unchanged
//! (beyond verified segments), and sync succeeds once the hub is sane.

mod sync_support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;

use heph_format::{EncodedSegment, Origin, OwnerId, encode_segment, sample::typical_ops};
use serde_json::json;
use sync_support::{Hub, Spoke, free_port};

fn owner() -> OwnerId {
    OwnerId::from_parts(1_767_225_600_000, [0x61; 10])
}

fn stranger() -> OwnerId {
    OwnerId::from_parts(1_767_225_600_000, [0x62; 10])
}

fn origin() -> Origin {
    Origin::from_parts(1_767_225_600_000, [0x63; 10])
}

fn seg(owner: OwnerId, k: u64, prev: Option<&EncodedSegment>) -> EncodedSegment {
    let ops = typical_ops(origin(), 1_767_225_600_000 + k * 1_000_000, 5, k);
    encode_segment(owner, origin(), 1 + k * 5, prev.map(|p| p.id), &ops).expect("encode")
}

/// What a fake hub serves.
struct Script {
    heads: String,
    stream: Vec<u8>,
    garbage: Option<Vec<u8>>,
}

fn frames(segs: &[(&EncodedSegment, Option<[u8; 32]>)], end: bool) -> Vec<u8> {
    let mut b = b"HEPHSTR1".to_vec();
    for (s, id) in segs {
        b.extend_from_slice(&(s.bytes.len() as u32).to_le_bytes());
        b.extend_from_slice(&id.unwrap_or(s.id.0));
        b.extend_from_slice(&s.bytes);
    }
    if end {
        b.extend_from_slice(&[0u8; 36]);
    }
    b
}

fn heads_json(owner: OwnerId, last: &EncodedSegment, segments: u64) -> String {
    json!({
        "owner": owner.to_string(), "tag": "0123456789abcdef0123456789abcdef",
        "origins": { origin().to_string(): {"last_seq": last.header.last_seq(), "hash": last.id.to_string(), "segments": segments} }
    })
    .to_string()
}

/// A fake hub on loopback serving `script` (one thread; stops when the test process exits).
fn fake_hub(script: Script) -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let script = Arc::new(script);
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let script = script.clone();
            std::thread::spawn(move || {
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                if let Some(g) = &script.garbage {
                    let _ = c.write_all(g);
                    return;
                }
                let line = String::from_utf8_lossy(&req)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned();
                let path = line.split(' ').nth(1).unwrap_or("/").to_owned();
                let (ctype, body): (&str, Vec<u8>) = if path.starts_with("/config") {
                    (
                        "application/json",
                        json!({"api": "sync/v1", "dev_mode": true, "owner": null})
                            .to_string()
                            .into_bytes(),
                    )
                } else if path.starts_with("/sync/v1/heads") || path.starts_with("/sync/v1/wait") {
                    ("application/json", script.heads.clone().into_bytes())
                } else if path.starts_with("/sync/v1/stream") {
                    ("application/vnd.heph.segment-stream", script.stream.clone())
                } else {
                    (
                        "application/json",
                        br#"{"error":"not_found","message":"no"}"#.to_vec(),
                    )
                };
                let _ = write!(
                    c,
                    "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = c.write_all(&body);
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// A real hub holding the sane chain (three segments of `owner()`).
fn sane_hub(dir: &std::path::Path) -> (Hub, u64) {
    let hub = Hub::start(dir, Some(&owner().to_string()));
    let s0 = seg(owner(), 0, None);
    let s1 = seg(owner(), 1, Some(&s0));
    let s2 = seg(owner(), 2, Some(&s1));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let client = reqwest::Client::new();
    for s in [&s0, &s1, &s2] {
        let url = format!(
            "{}/sync/v1/segments/{}/{}",
            hub.url(),
            origin(),
            s.header.first_seq
        );
        let st = rt.block_on(async {
            client
                .put(url)
                .header("Heph-Segment-Id", s.id.to_string())
                .body(s.bytes.clone())
                .send()
                .await
                .expect("push")
                .status()
        });
        assert!(st.is_success(), "{st}");
    }
    (hub, 15)
}

fn check_then_recover(spoke: &Spoke, fake: &str, expect: &[&str], rows_after: u64) {
    let before = spoke.info();
    let err = spoke.fails(&["sync", "--hub-url", fake]);
    assert!(
        expect.iter().any(|e| err.contains(e)),
        "expected one of {expect:?} in {err}"
    );
    assert_eq!(
        spoke.op_rows(),
        rows_after,
        "only verified segments are applied: {err}"
    );
    assert_eq!(spoke.integrity(), "ok");
    if rows_after == 0 {
        assert_eq!(
            spoke.info()["digest"],
            before["digest"],
            "replica unchanged"
        );
    }
    let st = spoke.status();
    assert!(
        st["last_error"].is_string() && st["last_success"].is_null(),
        "{st}"
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let (hub, total) = sane_hub(&tmp.path().join("hub"));
    spoke.ok(&["sync", "--hub-url", &hub.url()]);
    assert_eq!(spoke.op_rows(), total, "sync resumes once the hub is sane");
    assert!(spoke.status()["last_error"].is_null());
}

#[test]
fn a_hub_url_that_is_not_http_is_refused_and_nothing_is_remembered() {
    let s = Spoke::new();
    for bad in [
        "ftp://127.0.0.1/",
        "file:///etc/passwd",
        "127.0.0.1:8787",
        "not a url",
    ] {
        let err = s.fails(&["sync", "--hub-url", bad]);
        assert!(err.contains("invalid hub URL"), "{err}");
    }
    assert!(s.status()["hub_url"].is_null());
    let err = s.fails(&["sync"]);
    assert!(err.contains("--hub-url"), "{err}");
}

#[test]
fn an_unreachable_hub_is_a_clear_error_and_changes_nothing() {
    let s = Spoke::new();
    s.add("local");
    let before = s.info();
    let err = s.fails(&[
        "sync",
        "--hub-url",
        &format!("http://127.0.0.1:{}", free_port()),
    ]);
    assert!(err.contains("unreachable"), "{err}");
    assert_eq!(s.info()["digest"], before["digest"]);
    let st = s.status();
    assert_eq!(st["last_error_code"], "unreachable", "{st}");
    assert_eq!(st["pending_local_ops"], 2, "{st}");
}

#[test]
fn a_hub_answering_garbage_is_refused() {
    for garbage in [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello".to_vec(),
        b"SSH-2.0-OpenSSH_9.6\r\n".to_vec(),
    ] {
        let fake = fake_hub(Script {
            heads: String::new(),
            stream: Vec::new(),
            garbage: Some(garbage),
        });
        check_then_recover(&Spoke::new(), &fake, &["garbage", "unreachable"], 0);
    }
}

#[test]
fn a_truncated_stream_keeps_only_complete_verified_segments() {
    let s0 = seg(owner(), 0, None);
    let s1 = seg(owner(), 1, Some(&s0));
    let mut stream = frames(&[(&s0, None), (&s1, None)], false);
    stream.truncate(stream.len() - 10);
    let fake = fake_hub(Script {
        heads: heads_json(owner(), &s1, 2),
        stream,
        garbage: None,
    });
    check_then_recover(&Spoke::new(), &fake, &["cut short"], 5);
}

#[test]
fn a_segment_whose_hash_does_not_match_is_refused() {
    let s0 = seg(owner(), 0, None);
    let stream = frames(&[(&s0, Some([7; 32]))], true);
    let fake = fake_hub(Script {
        heads: heads_json(owner(), &s0, 1),
        stream,
        garbage: None,
    });
    check_then_recover(&Spoke::new(), &fake, &["hash mismatch"], 0);
}

#[test]
fn a_segment_of_another_owner_is_refused() {
    let s0 = seg(stranger(), 0, None);
    let stream = frames(&[(&s0, None)], true);
    let fake = fake_hub(Script {
        heads: heads_json(owner(), &s0, 1),
        stream,
        garbage: None,
    });
    check_then_recover(&Spoke::new(), &fake, &["owner"], 0);
}

#[test]
fn a_chain_with_a_gap_is_refused_after_its_valid_prefix() {
    let s0 = seg(owner(), 0, None);
    let s1 = seg(owner(), 1, Some(&s0));
    let s2 = seg(owner(), 2, Some(&s1));
    let stream = frames(&[(&s0, None), (&s2, None)], true);
    let fake = fake_hub(Script {
        heads: heads_json(owner(), &s2, 3),
        stream,
        garbage: None,
    });
    check_then_recover(&Spoke::new(), &fake, &["gap"], 5);
}
