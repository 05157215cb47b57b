//! The one conformance suite every [`SegmentStore`] runs (memory, filesystem, S3).
//!
//! Each check takes a fresh, empty store. Use [`run_all`] from one test, or the
//! [`store_conformance!`](crate::store_conformance) macro to get one `#[tokio::test]` per check.
//! Checks panic (assert) on a violation; they are meant to be called from tests only.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use heph_format::SegmentId;

use crate::log::{LogOptions, PushError, SegmentLog};
use crate::store::{Position, PutOutcome, SegmentStore};
use crate::testkit::{chain, origin, owner, position_of, segment};

fn pos(first_seq: u64, last_seq: u64, salt: u8) -> Position {
    Position {
        first_seq,
        last_seq,
        hash: SegmentId([salt; 32]),
        len: 100 + u64::from(salt),
        prev: (first_seq > 1).then_some(SegmentId([salt.wrapping_add(1); 32])),
    }
}

fn opts() -> LogOptions {
    LogOptions {
        revalidate: Duration::ZERO,
        ..LogOptions::default()
    }
}

async fn open_log(store: &Arc<dyn SegmentStore>) -> SegmentLog {
    SegmentLog::open(Arc::clone(store), None, opts())
        .await
        .expect("open log")
}

/// Blobs: round trip, idempotent create, absent is `None`, existing never replaced.
pub async fn blobs(store: Arc<dyn SegmentStore>) {
    let s = segment(owner(1), origin(1), 1, None, 3, 40, 1);
    let id = s.id;
    assert_eq!(store.get_blob(id).await.expect("get"), None);
    store
        .put_blob(id, Bytes::from(s.bytes.clone()))
        .await
        .expect("put");
    assert_eq!(
        store.get_blob(id).await.expect("get").as_deref(),
        Some(&s.bytes[..])
    );
    // A second create with other bytes under the same id must not replace the first.
    store
        .put_blob(id, Bytes::from_static(b"other"))
        .await
        .expect("re-put");
    assert_eq!(
        store.get_blob(id).await.expect("get").as_deref(),
        Some(&s.bytes[..])
    );
    assert_eq!(store.get_blob(SegmentId([9; 32])).await.expect("get"), None);
}

/// Position entries: create-if-absent, the existing entry returned and kept.
pub async fn positions(store: Arc<dyn SegmentStore>) {
    let (w, o) = (owner(1), origin(1));
    assert_eq!(store.get_position(w, o, 1).await.expect("get"), None);
    let a = pos(1, 5, 1);
    let b = pos(1, 9, 2);
    assert_eq!(
        store.put_position(w, o, &a).await.expect("put"),
        PutOutcome::Created
    );
    assert_eq!(
        store.put_position(w, o, &b).await.expect("put"),
        PutOutcome::Exists(a)
    );
    assert_eq!(
        store.put_position(w, o, &a).await.expect("put"),
        PutOutcome::Exists(a)
    );
    assert_eq!(store.get_position(w, o, 1).await.expect("get"), Some(a));
    // Other owners and origins are separate namespaces.
    assert_eq!(store.get_position(owner(2), o, 1).await.expect("get"), None);
    assert_eq!(
        store.get_position(w, origin(2), 1).await.expect("get"),
        None
    );
}

/// Many concurrent creates of one position: exactly one wins, everyone sees the winner.
pub async fn position_race(store: Arc<dyn SegmentStore>) {
    let (w, o) = (owner(1), origin(1));
    let tasks: Vec<_> = (0..24u8)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                (
                    i,
                    store.put_position(w, o, &pos(7, 7 + u64::from(i), i)).await,
                )
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut seen = BTreeSet::new();
    for t in tasks {
        let (i, r) = t.await.expect("join");
        match r.expect("put") {
            PutOutcome::Created => winners.push(i),
            PutOutcome::Exists(p) => {
                seen.insert(p.hash);
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one creator wins: {winners:?}");
    let winner = pos(7, 7 + u64::from(winners[0]), winners[0]);
    assert!(
        seen.iter().all(|h| *h == winner.hash),
        "losers all see the winner"
    );
    assert_eq!(
        store.get_position(w, o, 7).await.expect("get"),
        Some(winner)
    );
}

/// Whole segments (`put_segment`): the blob and the entry are stored together; a second segment
/// for a taken position gets the existing entry and leaves it alone; racing writers of one
/// position have one winner; many concurrent writers to many chains all land.
pub async fn segments(store: Arc<dyn SegmentStore>) {
    let (w, o) = (owner(1), origin(1));
    let a = segment(w, o, 1, None, 4, 30, 1);
    let b = segment(w, o, 1, None, 6, 30, 2);
    let (pa, pb) = (position_of(&a), position_of(&b));
    let put = |p: Position, bytes: Vec<u8>| {
        let store = Arc::clone(&store);
        async move { store.put_segment(w, o, &p, Bytes::from(bytes)).await }
    };
    assert_eq!(
        put(pa, a.bytes.clone()).await.expect("put"),
        PutOutcome::Created
    );
    assert_eq!(store.get_position(w, o, 1).await.expect("get"), Some(pa));
    assert_eq!(
        store.get_blob(a.id).await.expect("blob").as_deref(),
        Some(&a.bytes[..])
    );
    assert_eq!(
        put(pa, a.bytes.clone()).await.expect("again"),
        PutOutcome::Exists(pa),
        "an identical re-put reports the entry"
    );
    assert_eq!(
        put(pb, b.bytes.clone()).await.expect("other"),
        PutOutcome::Exists(pa),
        "another segment for a taken position gets the existing entry"
    );
    assert_eq!(store.get_position(w, o, 1).await.expect("get"), Some(pa));

    // Racing writers of one position (different segments): exactly one wins.
    let racers: Vec<_> = (0..12u64)
        .map(|i| {
            let s = segment(w, origin(2), 1, None, 2 + i as usize, 20, 100 + i);
            let p = position_of(&s);
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let r = store
                    .put_segment(w, origin(2), &p, Bytes::from(s.bytes))
                    .await;
                (p, r)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in racers {
        let (p, r) = t.await.expect("join");
        if r.expect("race put") == PutOutcome::Created {
            winners.push(p);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one racer wins");
    assert_eq!(
        store.get_position(w, origin(2), 1).await.expect("get"),
        Some(winners[0])
    );
    assert!(
        store
            .get_blob(winners[0].hash)
            .await
            .expect("blob")
            .is_some(),
        "the winner's blob is stored"
    );

    // Many chains at once, each in order: every segment lands with its blob.
    let chains: Vec<_> = (0..16u16)
        .map(|i| chain(w, origin(100 + i), 5, 3, 200, u64::from(i)))
        .collect();
    let writers: Vec<_> = chains
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (store, c) = (Arc::clone(&store), c.clone());
            let o = origin(100 + i as u16);
            tokio::spawn(async move {
                for s in c {
                    let p = position_of(&s);
                    let r = store.put_segment(w, o, &p, Bytes::from(s.bytes)).await;
                    assert_eq!(r.expect("put"), PutOutcome::Created);
                }
            })
        })
        .collect();
    for t in writers {
        t.await.expect("writer");
    }
    for (i, c) in chains.iter().enumerate() {
        let o = origin(100 + i as u16);
        for s in c {
            let p = store
                .get_position(w, o, s.header.first_seq)
                .await
                .expect("get")
                .expect("entry stored");
            assert_eq!(p.hash, s.id);
            assert_eq!(
                store.get_blob(s.id).await.expect("blob").as_deref(),
                Some(&s.bytes[..])
            );
        }
    }
}

/// Listing positions: numeric order (not lexicographic), `after`, `limit`; listing origins.
pub async fn listing(store: Arc<dyn SegmentStore>) {
    let w = owner(1);
    let o = origin(1);
    for seq in [1u64, 2, 9, 10, 11, 100, 1000, 12345678901] {
        store
            .put_position(w, o, &pos(seq, seq, 1))
            .await
            .expect("put");
    }
    let all = store
        .list_positions(w, o, 0, usize::MAX)
        .await
        .expect("list");
    assert_eq!(all, vec![1, 2, 9, 10, 11, 100, 1000, 12345678901]);
    let after = store
        .list_positions(w, o, 9, usize::MAX)
        .await
        .expect("list");
    assert_eq!(after, vec![10, 11, 100, 1000, 12345678901]);
    let limited = store.list_positions(w, o, 2, 3).await.expect("list");
    assert_eq!(limited, vec![9, 10, 11]);
    assert!(
        store
            .list_positions(w, origin(9), 0, 10)
            .await
            .expect("list")
            .is_empty()
    );

    for n in [5u16, 3, 4] {
        store
            .put_position(w, origin(n), &pos(1, 1, 1))
            .await
            .expect("put");
    }
    store
        .put_position(owner(2), origin(8), &pos(1, 1, 1))
        .await
        .expect("put");
    let origins = store.list_origins(w).await.expect("origins");
    let mut want = vec![origin(1), origin(3), origin(4), origin(5)];
    want.sort();
    assert_eq!(origins, want);
    assert_eq!(store.list_origins(owner(3)).await.expect("origins"), vec![]);
}

/// Owner record: first claim wins (also under a race), later claims return it.
pub async fn owner_claim(store: Arc<dyn SegmentStore>) {
    assert_eq!(store.owner().await.expect("owner"), None);
    let tasks: Vec<_> = (1..=8u8)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.claim_owner(owner(i)).await })
        })
        .collect();
    let mut got = BTreeSet::new();
    for t in tasks {
        got.insert(t.await.expect("join").expect("claim"));
    }
    assert_eq!(got.len(), 1, "every claimant sees the same owner");
    let winner = *got.iter().next().expect("one");
    assert_eq!(store.owner().await.expect("owner"), Some(winner));
    assert_eq!(store.claim_owner(owner(99)).await.expect("claim"), winner);
    store.check().await.expect("check");
}

/// The chain rules over the store: accept, idempotent re-push, and every refusal storing nothing.
pub async fn chain_rules(store: Arc<dyn SegmentStore>) {
    let log = open_log(&store).await;
    let (w, o) = (owner(1), origin(1));
    let c = chain(w, o, 4, 5, 30, 1);
    let push = |i: usize| {
        let s = &c[i];
        log.push(o, s.header.first_seq, s.id, Bytes::from(s.bytes.clone()))
    };
    // Gap: segment 2 before 1.
    let e = push(1).await.expect_err("gap");
    assert!(
        matches!(
            e,
            PushError::Gap {
                expected: 1,
                head: None,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        store.get_blob(c[1].id).await.expect("get"),
        None,
        "nothing stored on refusal"
    );

    let first = push(0).await.expect("first");
    assert!(first.created);
    assert_eq!(first.head.last_seq, 5);
    assert_eq!(first.head.segments, 1);
    assert_eq!(log.owner(), Some(w), "first pusher became the owner");
    assert_eq!(store.owner().await.expect("owner"), Some(w));
    let again = push(0).await.expect("idempotent");
    assert!(!again.created);
    assert_eq!(again.head, first.head);

    // Occupied: another segment at position 1.
    let other = segment(w, o, 1, None, 5, 30, 2);
    let e = log
        .push(o, 1, other.id, Bytes::from(other.bytes.clone()))
        .await
        .expect_err("occupied");
    assert!(
        matches!(e, PushError::Occupied { first_seq: 1, head: Some(h) } if h == first.head),
        "{e:?}"
    );
    assert_eq!(store.get_blob(other.id).await.expect("get"), None);
    // Occupied: a position inside the first segment.
    let inside = segment(w, o, 3, Some(c[0].id), 2, 30, 3);
    let e = log
        .push(o, 3, inside.id, Bytes::from(inside.bytes.clone()))
        .await
        .expect_err("inside");
    assert!(matches!(e, PushError::Occupied { .. }), "{e:?}");

    // Fork: right position, wrong prev.
    let fork = segment(w, o, 6, Some(SegmentId([3; 32])), 5, 30, 4);
    let e = log
        .push(o, 6, fork.id, Bytes::from(fork.bytes.clone()))
        .await
        .expect_err("fork");
    assert!(matches!(e, PushError::Fork { head: Some(_), .. }), "{e:?}");
    assert_eq!(store.get_blob(fork.id).await.expect("get"), None);

    // Hash mismatch, malformed, URL mismatch, wrong owner.
    let e = log
        .push(o, 6, SegmentId([1; 32]), Bytes::from(c[1].bytes.clone()))
        .await
        .expect_err("hash");
    assert!(matches!(e, PushError::HashMismatch { .. }), "{e:?}");
    let garbage = Bytes::from_static(b"definitely not a segment");
    let e = log
        .push(o, 6, SegmentId::of(&garbage), garbage.clone())
        .await
        .expect_err("malformed");
    assert!(matches!(e, PushError::Malformed(_)), "{e:?}");
    let e = log
        .push(origin(2), 6, c[1].id, Bytes::from(c[1].bytes.clone()))
        .await
        .expect_err("url");
    assert!(matches!(e, PushError::UrlMismatch { .. }), "{e:?}");
    let e = log
        .push(o, 7, c[1].id, Bytes::from(c[1].bytes.clone()))
        .await
        .expect_err("url seq");
    assert!(matches!(e, PushError::UrlMismatch { .. }), "{e:?}");
    let stranger = segment(owner(2), origin(3), 1, None, 2, 30, 5);
    let e = log
        .push(
            origin(3),
            1,
            stranger.id,
            Bytes::from(stranger.bytes.clone()),
        )
        .await
        .expect_err("owner");
    assert!(matches!(e, PushError::WrongOwner { .. }), "{e:?}");
    assert_eq!(store.get_blob(stranger.id).await.expect("get"), None);

    for i in 1..4 {
        assert!(push(i).await.expect("continue").created);
    }
    let heads = log.heads().await.expect("heads");
    let h = heads.origins.get(&o).expect("head");
    assert_eq!((h.last_seq, h.hash, h.segments), (20, c[3].id, 4));
    let (list, more, head) = log.segments(o, 5, 2).await.expect("list");
    assert_eq!(
        list.iter().map(|p| p.first_seq).collect::<Vec<_>>(),
        vec![6, 11]
    );
    assert!(more);
    assert_eq!(head, Some(*h));
    for s in &c {
        assert_eq!(
            log.blob(s.id).await.expect("blob").as_deref(),
            Some(&s.bytes[..])
        );
    }
}

/// Stateless hubs: a second log over the same store derives the same heads and sees new pushes;
/// two logs racing different segments at one position: exactly one wins.
pub async fn shared_store(store: Arc<dyn SegmentStore>) {
    let (w, o) = (owner(1), origin(1));
    let a = open_log(&store).await;
    let c = chain(w, o, 3, 4, 20, 1);
    for s in &c[..2] {
        a.push(o, s.header.first_seq, s.id, Bytes::from(s.bytes.clone()))
            .await
            .expect("push");
    }
    let b = open_log(&store).await;
    assert_eq!(
        b.heads().await.expect("heads"),
        a.heads().await.expect("heads")
    );
    assert_eq!(b.owner(), Some(w));
    // b continues the chain a started (b's cache knows it from the store).
    b.push(
        o,
        c[2].header.first_seq,
        c[2].id,
        Bytes::from(c[2].bytes.clone()),
    )
    .await
    .expect("push via b");
    let ha = a.heads().await.expect("heads");
    assert_eq!(ha.origins.get(&o).map(|h| h.hash), Some(c[2].id));
    assert_eq!(ha.tag, b.heads().await.expect("heads").tag);

    // Race: one position, different segments, pushed through both logs at once, many rounds.
    let o2 = origin(2);
    let mut prev: Option<SegmentId> = None;
    let mut first = 1u64;
    for round in 0..6u64 {
        let x = segment(w, o2, first, prev, 2, 20, 100 + round);
        let y = segment(w, o2, first, prev, 2, 20, 200 + round);
        let (rx, ry) = tokio::join!(
            a.push(o2, first, x.id, Bytes::from(x.bytes.clone())),
            b.push(o2, first, y.id, Bytes::from(y.bytes.clone())),
        );
        let wins = [rx.is_ok(), ry.is_ok()];
        assert_eq!(
            wins.iter().filter(|w| **w).count(),
            1,
            "round {round}: {rx:?} {ry:?}"
        );
        let loser = if rx.is_ok() { ry } else { rx };
        assert!(
            matches!(loser, Err(PushError::Occupied { .. })),
            "{loser:?}"
        );
        let winner = if wins[0] { &x } else { &y };
        prev = Some(winner.id);
        first += 2;
    }
    let ha = a.heads().await.expect("heads");
    let hb = b.heads().await.expect("heads");
    assert_eq!(ha, hb);
    assert_eq!(
        ha.origins.get(&o2).map(|h| (h.last_seq, h.segments)),
        Some((12, 6))
    );
    // A third log opened cold agrees too.
    assert_eq!(open_log(&store).await.heads().await.expect("heads"), ha);
}

/// A configured owner is claimed on open; a conflicting one is refused.
pub async fn configured_owner(store: Arc<dyn SegmentStore>) {
    let log = SegmentLog::open(Arc::clone(&store), Some(owner(5)), opts())
        .await
        .expect("open");
    assert_eq!(log.owner(), Some(owner(5)));
    let e = SegmentLog::open(Arc::clone(&store), Some(owner(6)), opts())
        .await
        .expect_err("conflict");
    assert!(e.to_string().contains("already belongs"), "{e}");
    let s = segment(owner(6), origin(1), 1, None, 1, 10, 1);
    let e = log
        .push(origin(1), 1, s.id, Bytes::from(s.bytes.clone()))
        .await
        .expect_err("wrong owner");
    assert!(matches!(e, PushError::WrongOwner { .. }), "{e:?}");
}

/// Runs every check, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn SegmentStore>>,
{
    blobs(make().await).await;
    positions(make().await).await;
    position_race(make().await).await;
    segments(make().await).await;
    listing(make().await).await;
    owner_claim(make().await).await;
    chain_rules(make().await).await;
    shared_store(make().await).await;
    configured_owner(make().await).await;
}

/// Expands to one `#[tokio::test]` per conformance check; `$make` is an async expression
/// (evaluated once per test) yielding a fresh `Arc<dyn SegmentStore>`.
#[macro_export]
macro_rules! store_conformance {
    ($make:expr) => {
        $crate::store_conformance!(@tests $make;
            blobs positions position_race segments listing owner_claim chain_rules shared_store configured_owner);
    };
    (@tests $make:expr; $($check:ident)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                $crate::store::conformance::$check($make.await).await;
            }
        )*
    };
}
