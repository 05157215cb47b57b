//! Unit tests of the sync engine against the in-memory hub (fast; the same rules run over HTTP in `tests/`).

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use heph_format::{OwnerId, encode_segment, sample::typical_ops};

use super::conformance;
use super::engine::{NoProgress, SyncError, SyncOptions, sync_once};
use super::hub::{HubClient, HubError};
use super::memory::{MemoryHub, Tamper};
use crate::api::{self, AddTask, EditTask};
use crate::env::TestEnv;
use crate::replica::Replica;

/// Drives a future whose every await is immediately ready (the in-memory hub never blocks).
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1_000_000 {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("future did not complete");
}

fn owner() -> OwnerId {
    OwnerId::from_parts(1_767_225_600_000, [0x42; 10])
}

struct Spoke {
    env: TestEnv,
    cell: RefCell<Replica>,
}

impl Spoke {
    fn new(seed: u64) -> Spoke {
        let env = TestEnv::new(1_767_225_600_000 + seed * 7, seed);
        let r = Replica::open_in_memory_with_owner(owner(), &env).expect("open");
        Spoke {
            env,
            cell: RefCell::new(r),
        }
    }

    fn fresh(seed: u64) -> Spoke {
        let env = TestEnv::new(1_767_225_600_000 + seed * 7, seed);
        let r = Replica::open_in_memory(&env).expect("open");
        Spoke {
            env,
            cell: RefCell::new(r),
        }
    }

    fn add(&self, title: &str) -> String {
        self.env.advance(1000);
        let req = AddTask {
            title: title.into(),
            ..AddTask::default()
        };
        api::add_task(&mut self.cell.borrow_mut(), &self.env, &req)
            .expect("add")
            .id
    }

    fn retitle(&self, id: &str, title: &str) {
        self.env.advance(1000);
        let req = EditTask {
            id: id.into(),
            title: Some(title.into()),
            ..EditTask::default()
        };
        api::edit_task(&mut self.cell.borrow_mut(), &self.env, &req).expect("edit");
    }

    fn sync(&self, hub: &dyn HubClient) -> Result<super::SyncReport, SyncError> {
        self.sync_with(hub, &SyncOptions::default())
    }

    fn sync_with(
        &self,
        hub: &dyn HubClient,
        opts: &SyncOptions,
    ) -> Result<super::SyncReport, SyncError> {
        block_on(sync_once(&self.cell, hub, &self.env, opts, &mut NoProgress))
    }

    fn digest(&self) -> [u8; 32] {
        self.cell.borrow().digest().expect("digest")
    }

    fn ops(&self) -> u64 {
        self.cell.borrow().op_count().expect("count")
    }
}

#[test]
fn memory_hub_passes_the_conformance_suite() {
    block_on(conformance::run(
        &MemoryHub::with_owner(owner()),
        owner(),
        1,
    ));
    // A hub without an owner adopts the first pusher's.
    block_on(conformance::run(&MemoryHub::new(), owner(), 2));
}

#[test]
fn three_spokes_converge_including_conflicting_offline_edits() {
    let hub = MemoryHub::with_owner(owner());
    let (a, b, c) = (Spoke::new(1), Spoke::new(2), Spoke::new(3));
    let shared = a.add("shared task");
    a.sync(&hub).expect("a");
    b.sync(&hub).expect("b");
    c.sync(&hub).expect("c");
    // Offline: conflicting edits of the same field on all three, plus new tasks.
    a.retitle(&shared, "title from a");
    b.retitle(&shared, "title from b");
    c.retitle(&shared, "title from c");
    for i in 0..5 {
        a.add(&format!("a{i}"));
        b.add(&format!("b{i}"));
        c.add(&format!("c{i}"));
    }
    hub.tamper(Tamper::Down);
    let e = a.sync(&hub).expect_err("hub down");
    assert!(e.is_transient(), "{e}");
    hub.tamper(Tamper::None);
    for s in [&a, &b, &c, &a, &b] {
        s.sync(&hub).expect("sync");
    }
    assert_eq!(a.digest(), b.digest());
    assert_eq!(b.digest(), c.digest());
    assert_eq!(a.ops(), c.ops());
    let list = crate::model::list(&a.cell.borrow(), &a.env, &Default::default()).expect("list");
    assert_eq!(list.len(), 16);
    // An idle sync pushes and pulls nothing and still checks the heads.
    let r = c.sync(&hub).expect("idle");
    assert_eq!((r.pushed_segments, r.pulled_segments), (0, 0));
}

#[test]
fn pushed_segments_are_bounded_and_retries_are_idempotent() {
    let hub = MemoryHub::with_owner(owner());
    let a = Spoke::new(1);
    for i in 0..10 {
        a.add(&format!("t{i}"));
    }
    let n = a.ops();
    let opts = SyncOptions {
        max_segment_ops: 3,
        ..SyncOptions::default()
    };
    let r = a.sync_with(&hub, &opts).expect("sync");
    assert_eq!(r.pushed_ops, n);
    assert_eq!(r.pushed_segments, n.div_ceil(3));
    // The push answer was lost: the cursor is behind the hub; the next sync fast-forwards, pushes nothing.
    let own = a.cell.borrow().origin();
    a.cell
        .borrow_mut()
        .set_sync_state(&crate::SyncCursor {
            origin: own,
            last_seq: 0,
            head_hash: None,
            segments: 0,
        })
        .expect("reset");
    let r = a.sync_with(&hub, &opts).expect("resync");
    assert_eq!(r.pushed_segments, 0);
    let h = block_on(hub.heads()).expect("heads");
    assert_eq!(h.origins[&own].segments, n.div_ceil(3));
}

#[test]
fn fresh_spoke_adopts_the_hub_owner_and_a_foreign_store_is_refused() {
    let hub = MemoryHub::with_owner(owner());
    let a = Spoke::new(1);
    a.add("hello");
    a.sync(&hub).expect("a");
    let fresh = Spoke::fresh(9);
    assert_ne!(fresh.cell.borrow().owner(), owner());
    let r = fresh.sync(&hub).expect("fresh");
    assert_eq!(r.adopted_owner, Some(owner()));
    assert_eq!(fresh.cell.borrow().owner(), owner());
    assert_eq!(fresh.digest(), a.digest());

    let stranger = Spoke::fresh(10);
    stranger.add("someone else's data");
    let before = block_on(hub.heads()).expect("heads");
    let (ops, digest, other) = (
        stranger.ops(),
        stranger.digest(),
        stranger.cell.borrow().owner(),
    );
    match stranger.sync(&hub) {
        Err(SyncError::OwnerMismatch { ours, hub: h, .. }) => {
            assert_eq!((ours, h), (other, owner()));
        }
        other => panic!("expected owner mismatch, got {other:?}"),
    }
    assert_eq!(
        block_on(hub.heads()).expect("heads"),
        before,
        "nothing pushed"
    );
    assert_eq!(
        (stranger.ops(), stranger.digest()),
        (ops, digest),
        "nothing changed"
    );
    assert_eq!(stranger.cell.borrow().owner(), other);
}

#[test]
fn a_copied_store_is_detected_and_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let p1 = dir.path().join("one.db");
    let p2 = dir.path().join("two.db");
    let hub = MemoryHub::with_owner(owner());
    let env = TestEnv::new(1_767_225_600_000, 1);
    let one = Spoke {
        cell: RefCell::new(
            Replica::open_with_owner(p1.to_str().expect("utf8"), owner(), &env).expect("open"),
        ),
        env,
    };
    one.add("before the copy");
    one.sync(&hub).expect("sync");
    drop(
        one.cell
            .borrow_mut()
            .connection()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);"),
    );
    std::fs::copy(&p1, &p2).expect("copy");
    let env2 = TestEnv::new(1_767_225_700_000, 2);
    let two = Spoke {
        cell: RefCell::new(Replica::open(p2.to_str().expect("utf8"), &env2).expect("open")),
        env: env2,
    };
    assert_eq!(two.cell.borrow().origin(), one.cell.borrow().origin());
    one.add("written on the original");
    one.sync(&hub).expect("original syncs");
    two.add("written on the copy");
    let hub_before = block_on(hub.heads()).expect("heads");
    let ops_before = two.ops();
    match two.sync(&hub) {
        Err(e @ SyncError::OriginCloned { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("heph-seed reset-origin"), "{msg}");
        }
        other => panic!("expected a clone report, got {other:?}"),
    }
    assert_eq!(
        block_on(hub.heads()).expect("heads"),
        hub_before,
        "nothing pushed"
    );
    assert_eq!(two.ops(), ops_before, "local ops kept");
}

#[test]
fn bad_hub_data_is_refused_and_sync_resumes_when_the_hub_is_sane() {
    let hub = MemoryHub::with_owner(owner());
    let a = Spoke::new(1);
    for i in 0..30 {
        a.add(&format!("t{i}"));
    }
    let opts = SyncOptions {
        max_segment_ops: 10,
        ..SyncOptions::default()
    };
    a.sync_with(&hub, &opts).expect("a");
    let b = Spoke::new(2);
    let (d0, n0) = (b.digest(), b.ops());

    hub.tamper(Tamper::CorruptBytes);
    match b.sync(&hub) {
        Err(SyncError::BadSegment { reason, .. }) => assert!(reason.contains("hash"), "{reason}"),
        other => panic!("expected a hash mismatch, got {other:?}"),
    }
    assert_eq!((b.digest(), b.ops()), (d0, n0), "replica unchanged");

    hub.tamper(Tamper::CutStreamAfter(1));
    match b.sync(&hub) {
        Err(SyncError::Hub(HubError::Truncated { .. })) => {}
        other => panic!("expected a truncated stream, got {other:?}"),
    }
    assert!(b.ops() > 0, "complete frames before the cut are kept");

    hub.tamper(Tamper::None);
    b.sync(&hub).expect("resumes");
    assert_eq!(b.digest(), a.digest());
}

#[test]
fn foreign_owner_and_gapped_segments_from_a_broken_hub_are_refused() {
    let hub = MemoryHub::with_owner(owner());
    let stranger = OwnerId::from_parts(1_600_000_000_000, [0xee; 10]);
    let evil = conformance::origin(77, 1);
    let seg = conformance::segment(stranger, evil, 0, 5, None, 3);
    hub.inject_unchecked(evil, seg.bytes);
    let b = Spoke::new(2);
    let (d0, n0) = (b.digest(), b.ops());
    match b.sync(&hub) {
        Err(SyncError::BadSegment { reason, .. }) => assert!(reason.contains("owner"), "{reason}"),
        other => panic!("expected another owner's segment to be refused, got {other:?}"),
    }
    assert_eq!((b.digest(), b.ops()), (d0, n0));

    let hub = MemoryHub::with_owner(owner());
    let gappy = conformance::origin(78, 1);
    let s0 = conformance::segment(owner(), gappy, 0, 5, None, 3);
    let s2 = conformance::segment(owner(), gappy, 2, 5, Some(s0.id), 3);
    hub.inject_unchecked(gappy, s0.bytes);
    hub.inject_unchecked(gappy, s2.bytes);
    match b.sync(&hub) {
        Err(SyncError::BadSegment { reason, .. }) => assert!(reason.contains("gap"), "{reason}"),
        other => panic!("expected a gap to be refused, got {other:?}"),
    }
    assert_eq!(
        b.ops(),
        n0 + 5,
        "the valid first segment is kept, the gapped one is not"
    );
}

#[test]
fn a_hub_that_lost_data_is_reported_not_overwritten() {
    let hub = MemoryHub::with_owner(owner());
    let a = Spoke::new(1);
    let b = Spoke::new(2);
    for i in 0..4 {
        a.add(&format!("t{i}"));
    }
    let opts = SyncOptions {
        max_segment_ops: 2,
        ..SyncOptions::default()
    };
    a.sync_with(&hub, &opts).expect("a");
    b.sync(&hub).expect("b");
    let ao = a.cell.borrow().origin();
    hub.truncate_chain(ao, 1);
    assert!(matches!(b.sync(&hub), Err(SyncError::HubBehind { .. })));
    assert!(matches!(a.sync(&hub), Err(SyncError::HubBehind { .. })));
}

#[test]
fn hub_urls_must_be_http() {
    for bad in [
        "ftp://example.org",
        "file:///etc/passwd",
        "not a url",
        "http://",
        "unix:/tmp/x",
    ] {
        assert!(
            matches!(super::normalise_hub_url(bad), Err(HubError::BadUrl { .. })),
            "{bad} must be refused"
        );
    }
    assert_eq!(
        super::normalise_hub_url("http://127.0.0.1:8787/").expect("ok"),
        "http://127.0.0.1:8787"
    );
}

#[test]
fn sample_segments_decode() {
    let o = conformance::origin(1, 1);
    let ops = typical_ops(o, 1_767_225_600_000, 3, 1);
    assert!(encode_segment(owner(), o, 1, None, &ops).is_ok());
}
