//! Sync end to end with real processes on loopback: one `hephd --mode server`, spokes running
//! `hephd --mode local`, the real `heph` CLI. Convergence (also after offline conflicting edits), hub
//! SIGKILL mid-sync, a proxy cutting connections mid-stream, spoke SIGKILL mid-apply, a copied store.
//!
//! `HEPH_LONG_TESTS=1` repeats the spoke SIGKILL 50 times (3 by default).

mod sync_support;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use heph_format::OwnerId;
use serde_json::Value;
use sync_support::{CuttingProxy, Hub, Spoke, titles, wait_until};

const CONVERGE: Duration = Duration::from_secs(30);

fn converged(spokes: &[&Spoke], n: usize) -> bool {
    let lists: Vec<Value> = spokes.iter().map(|s| s.list()).collect();
    lists
        .iter()
        .all(|l| l.as_array().is_some_and(|a| a.len() == n))
        && lists.windows(2).all(|w| w[0] == w[1])
}

fn assert_converges(spokes: &[&Spoke], n: usize) {
    let ok = wait_until(CONVERGE, || converged(spokes, n));
    if !ok {
        for s in spokes {
            eprintln!(
                "{}: {:?}\n{}",
                s.dir.display(),
                titles(&s.list()),
                s.ok(&["sync", "--status"])
            );
        }
    }
    assert!(ok, "the spokes did not converge on {n} tasks");
}

#[test]
fn three_daemons_converge_through_a_real_hub_including_offline_conflicting_edits() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut hub = Hub::start(&tmp.path().join("hub"), None);
    let mut a = Spoke::new();
    let mut b = Spoke::new();
    let mut c = Spoke::new();
    let shared = a.add("shared task");
    a.ok(&["sync", "--hub-url", &hub.url()]);
    for s in [&mut a, &mut b, &mut c] {
        s.start_daemon(&hub.url());
    }
    for (i, s) in [&a, &b, &c].iter().enumerate() {
        for j in 0..3 {
            s.add(&format!("spoke {i} task {j}"));
        }
    }
    assert_converges(&[&a, &b, &c], 10);
    // Every spoke adopted the hub's owner.
    let owner = a.info()["owner_id"].clone();
    assert_eq!(b.info()["owner_id"], owner);
    assert_eq!(c.info()["owner_id"], owner);

    // The hub goes away; every spoke edits the same task and adds one, offline.
    hub.kill();
    for (i, s) in [&a, &b, &c].iter().enumerate() {
        s.ok(&["edit", &shared, "--title", &format!("offline title {i}")]);
        s.add(&format!("offline task {i}"));
    }
    std::thread::sleep(Duration::from_millis(300));
    let st = b.status();
    assert!(
        st["pending_local_ops"].as_u64().unwrap_or(0) > 0,
        "offline writes are pending: {st}"
    );
    hub.restart();
    assert_converges(&[&a, &b, &c], 13);
    let list = a.list();
    let t = titles(&list);
    let winners: Vec<&String> = t
        .iter()
        .filter(|t| t.starts_with("offline title"))
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "one LWW winner for the conflicting title: {t:?}"
    );
    let uniq: BTreeSet<&String> = t.iter().collect();
    assert_eq!(uniq.len(), t.len(), "no duplicates: {t:?}");
    let ok = wait_until(CONVERGE, || {
        [&a, &b, &c].iter().all(|s| {
            let st = s.status();
            st["last_error"].is_null()
                && st["pending_local_ops"] == 0
                && st["last_success"].is_string()
        })
    });
    assert!(ok, "every spoke reports a clean last sync");
    assert_eq!(a.info()["digest"], c.info()["digest"]);
}

#[test]
fn hub_sigkilled_mid_sync_and_restarted_loses_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut hub = Hub::start(&tmp.path().join("hub"), None);
    let mut a = Spoke::new();
    let mut b = Spoke::new();
    a.add("first");
    a.ok(&["sync", "--hub-url", &hub.url()]);
    a.start_daemon(&hub.url());
    b.start_daemon(&hub.url());
    let mut acknowledged = vec!["first".to_owned()];
    for i in 0..40 {
        let t = format!("written during hub trouble {i}");
        a.add(&t);
        acknowledged.push(t);
        if i == 10 || i == 25 {
            hub.kill();
        }
        if i == 15 || i == 30 {
            hub.restart();
        }
    }
    assert_converges(&[&a, &b], acknowledged.len());
    acknowledged.sort();
    assert_eq!(
        titles(&b.list()),
        acknowledged,
        "every acknowledged write arrived exactly once"
    );
    a.stop_daemon();
    b.stop_daemon();
    assert_eq!(a.integrity(), "ok");
    assert_eq!(b.integrity(), "ok");
}

fn owner_ulid() -> OwnerId {
    OwnerId::from_parts(1_767_225_600_000, [0x5a; 10])
}

#[test]
fn a_proxy_cutting_connections_mid_stream_never_corrupts_and_sync_resumes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub = Hub::start(&tmp.path().join("hub"), Some(&owner_ulid().to_string()));
    let total = sync_support::seed_chains(&hub, owner_ulid(), 0xabc, 2, 4 * 2_000, 2_000);
    let proxy = CuttingProxy::start(hub.addr());
    let s = Spoke::new();
    let mut last = 0;
    for cut in [300u64, 2_000, 30_000, 90_000] {
        proxy.cut_after.store(cut, Ordering::SeqCst);
        let err = s.fails(&["sync", "--hub-url", &proxy.url()]);
        assert!(
            err.contains("cut short") || err.contains("unreachable") || err.contains("garbage"),
            "a cut connection is reported clearly: {err}"
        );
        assert_eq!(s.integrity(), "ok");
        let rows = s.op_rows();
        assert!(
            rows >= last && rows < total,
            "complete segments are kept, nothing half-applied: {rows}"
        );
        last = rows;
    }
    assert!(
        proxy.cuts.load(Ordering::SeqCst) >= 4,
        "the proxy really cut connections"
    );
    proxy.cut_after.store(0, Ordering::SeqCst);
    s.ok(&["sync"]);
    assert_eq!(s.op_rows(), total);
    let direct = Spoke::new();
    direct.ok(&["sync", "--hub-url", &hub.url()]);
    assert_eq!(
        s.info()["digest"],
        direct.info()["digest"],
        "same state as a spoke that was never cut"
    );
}

#[test]
fn a_spoke_sigkilled_mid_apply_keeps_a_whole_store_and_every_acknowledged_write() {
    let rounds = if std::env::var("HEPH_LONG_TESTS").as_deref() == Ok("1") {
        50
    } else {
        3
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let hub = Hub::start(&tmp.path().join("hub"), Some(&owner_ulid().to_string()));
    let seeded = sync_support::seed_chains(&hub, owner_ulid(), 0xabc, 3, 8 * 5_000, 5_000);
    let mut s = Spoke::new();
    let owner = owner_ulid().to_string();
    let mut written = Vec::new();
    for round in 0..rounds {
        if round > 0 {
            // An acknowledged write while no daemon runs (the CLI opens the store itself).
            let t = format!("offline write {round}");
            s.add(&t);
            written.push(t);
        }
        s.start_daemon_with(&hub.url(), &["--owner-id", &owner]);
        // An acknowledged write through the daemon, then SIGKILL while it pulls.
        let t = format!("daemon write {round}");
        s.add(&t);
        written.push(t);
        let delay = 20 + (round as u64 * 37) % 400;
        std::thread::sleep(Duration::from_millis(delay));
        s.kill_daemon();
        assert_eq!(s.integrity(), "ok", "round {round}");
        // The cursor moves with the ops: for every origin, sync_state.last_seq == max(seq) held.
        let c = rusqlite::Connection::open(s.db()).expect("open");
        let mut st = c
            .prepare(
                "SELECT s.last_seq, (SELECT max(first_seq + n - 1) FROM op_chunks o WHERE o.origin = s.origin), \
                 (SELECT coalesce(sum(n), 0) FROM op_chunks o WHERE o.origin = s.origin) FROM sync_state s \
                 WHERE s.origin != ?1",
            )
            .expect("prepare");
        let own = own_origin(&c);
        let rows: Vec<(i64, Option<i64>, i64)> = st
            .query_map([&own.to_bytes()[..]], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .expect("q")
            .map(|r| r.expect("row"))
            .collect();
        for (cursor, max, count) in rows {
            if cursor > 0 {
                assert_eq!(Some(cursor), max, "round {round}: cursor and op log agree");
                assert_eq!(cursor, count, "round {round}: no duplicate and no hole");
            }
        }
    }
    s.start_daemon_with(&hub.url(), &["--owner-id", &owner]);
    let expect = seeded + s.op_rows_local();
    let ok = wait_until(Duration::from_secs(60), || s.op_rows() == expect);
    assert!(
        ok,
        "the spoke finished the bring-up ({} of {expect} ops)",
        s.op_rows()
    );
    let other = Spoke::new();
    other.ok(&["sync", "--hub-url", &hub.url()]);
    let ok = wait_until(CONVERGE, || {
        other.ok(&["sync"]);
        titles(&other.list()) == titles(&s.list())
    });
    assert!(ok, "every acknowledged write reached another device");
    let t = titles(&other.list());
    for w in &written {
        assert_eq!(
            t.iter().filter(|x| *x == w).count(),
            1,
            "{w} arrived exactly once"
        );
    }
    s.stop_daemon();
    assert_eq!(s.integrity(), "ok");
}

fn own_origin(c: &rusqlite::Connection) -> heph_format::Origin {
    let origin: String = c
        .query_row("SELECT value FROM meta WHERE key = 'origin'", [], |r| {
            r.get(0)
        })
        .expect("origin");
    origin.parse().expect("ulid")
}

trait LocalRows {
    fn op_rows_local(&self) -> u64;
}

impl LocalRows for Spoke {
    /// Ops of the spoke's own origin.
    fn op_rows_local(&self) -> u64 {
        let c = rusqlite::Connection::open(self.db()).expect("open");
        let origin = own_origin(&c);
        c.query_row(
            "SELECT coalesce(sum(n), 0) FROM op_chunks WHERE origin = ?1",
            [&origin.to_bytes()[..]],
            |r| r.get::<_, i64>(0),
        )
        .expect("count") as u64
    }
}

#[test]
fn a_copied_store_without_origin_reset_is_detected_and_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let hub = Hub::start(&tmp.path().join("hub"), None);
    let a = Spoke::new();
    a.add("before the copy");
    a.ok(&["sync", "--hub-url", &hub.url()]);
    let mut copy = Spoke::new();
    std::fs::create_dir_all(&copy.dir).expect("mkdir");
    std::fs::copy(a.db(), copy.db()).expect("copy the store");
    assert_eq!(a.info()["origin"], copy.info()["origin"]);
    a.add("written on the original");
    a.ok(&["sync"]);
    copy.add("written on the copy");
    let heads_before = hub.heads();
    let err = copy.fails(&["sync"]);
    assert!(
        err.contains("heph-seed reset-origin"),
        "the fix is named: {err}"
    );
    assert!(err.contains("another copy"), "what happened is said: {err}");
    assert_eq!(hub.heads(), heads_before, "nothing was pushed");
    assert!(
        titles(&copy.list()).contains(&"written on the copy".to_owned()),
        "local ops are kept"
    );
    let st = copy.status();
    assert_eq!(st["last_error_code"], "origin_cloned", "{st}");
    // The daemon refuses the same way, and keeps serving the store.
    copy.start_daemon(&hub.url());
    let ok = wait_until(Duration::from_secs(10), || {
        copy.status()["last_error_code"] == "origin_cloned"
    });
    assert!(ok, "the daemon reports the clone");
    copy.add("still usable");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        hub.heads(),
        heads_before,
        "the daemon pushed nothing either"
    );
    copy.stop_daemon();
}
