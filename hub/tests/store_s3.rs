//! The store conformance suite against the S3 store on a real SeaweedFS, plus two real hubs
//! racing over one bucket through HTTP.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use heph_hub::store::{S3Options, SegmentStore, open_store};
use heph_hub::testkit::{origin, owner, segment};
use support::{TestHub, push, weed};

static PREFIX: AtomicU32 = AtomicU32::new(0);

fn options(w: &weed::Weed) -> S3Options {
    S3Options {
        endpoint: Some(w.s3_endpoint.clone()),
        region: Some("us-east-1".into()),
        access_key_id: Some(weed::ACCESS_KEY.into()),
        secret_access_key: Some(weed::SECRET_KEY.into()),
    }
}

async fn fresh(w: &weed::Weed) -> Arc<dyn SegmentStore> {
    let n = PREFIX.fetch_add(1, Ordering::Relaxed);
    let store = open_store(&format!("s3://heph-test/run{n}"), &options(w))
        .await
        .expect("open s3 store");
    // SeaweedFS may need a moment after its port opens; retry the first request.
    for attempt in 0..50 {
        match store.check().await {
            Ok(()) => break,
            Err(e) if attempt == 49 => panic!("SeaweedFS S3 not usable: {e}\n{}", w.log()),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    }
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_conformance_on_seaweedfs() {
    let Some(w) = weed::start() else { return };
    heph_hub::store::conformance::run_all(|| fresh(&w)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hubs_over_one_bucket_never_both_win() {
    let Some(w) = weed::start() else { return };
    let store_a = fresh(&w).await;
    let n = PREFIX.load(Ordering::Relaxed) - 1;
    let store_b = open_store(&format!("s3://heph-test/run{n}"), &options(&w))
        .await
        .expect("open");
    let mut ca = support::memory_config();
    ca.store = store_a;
    let mut cb = support::memory_config();
    cb.store = store_b;
    let a = TestHub::start(ca).await;
    let b = TestHub::start(cb).await;
    let (wner, o) = (owner(1), origin(1));
    let mut prev = None;
    let mut first = 1u64;
    for round in 0..8u64 {
        let x = segment(wner, o, first, prev, 3, 50, 1000 + round);
        let y = segment(wner, o, first, prev, 3, 50, 2000 + round);
        let (rx, ry) = tokio::join!(push(a.addr, &x), push(b.addr, &y));
        let statuses = [rx.status, ry.status];
        assert_eq!(
            statuses.iter().filter(|s| **s == 201).count(),
            1,
            "round {round}: exactly one hub wins: {statuses:?} {:?} {:?}",
            String::from_utf8_lossy(&rx.body),
            String::from_utf8_lossy(&ry.body)
        );
        let loser = if rx.status == 201 { &ry } else { &rx };
        assert_eq!(loser.status, 409);
        assert_eq!(loser.json()["error"], "occupied");
        let winner = if rx.status == 201 { &x } else { &y };
        assert_eq!(loser.json()["head"]["hash"], winner.id.to_string());
        prev = Some(winner.id);
        first += 3;
    }
    let ha = support::get(a.addr, "/sync/v1/heads").await.json();
    let hb = support::get(b.addr, "/sync/v1/heads").await.json();
    assert_eq!(ha, hb, "both hubs derive the same heads from the bucket");
    assert_eq!(ha["origins"][o.to_string()]["last_seq"], 24);
    assert_eq!(ha["origins"][o.to_string()]["segments"], 8);
    a.stop().await;
    b.stop().await;
}
