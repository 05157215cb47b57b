//! Replica tests: schema migration from version 1, open/owner rules, the sync-facing API
//! (ops_since, apply_foreign with its cursor, duplicates, forks) and the store on a real SQLite file.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use heph_format::{Field, NodeId, Op, OpKind, Origin, OwnerId, SegmentId};
use heph_spoke::api::{self, AddTask};
use heph_spoke::schema::{SCHEMA_VERSION, V1};
use heph_spoke::{Replica, SpokeError, SyncCursor, TestEnv};

const T0: u64 = 1_796_000_000_000;

fn add(r: &mut Replica, env: &TestEnv, title: &str) -> String {
    api::add_task(
        r,
        env,
        &AddTask {
            title: title.into(),
            tags: vec!["t".into()],
            ..Default::default()
        },
    )
    .unwrap()
    .id
}

#[test]
fn migrates_a_version_1_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("heph.db");
    let path = path.to_str().unwrap();
    // Build a store exactly as version 1 wrote it: the v1 DDL, meta rows, an op log and its materialised rows.
    let env = TestEnv::new(T0, 1);
    let (digest, ops, owner, origin) = {
        let mut r = Replica::open(path, &env).unwrap();
        add(&mut r, &env, "from v1");
        add(&mut r, &env, "also from v1");
        (
            r.digest().unwrap(),
            r.op_count().unwrap(),
            r.owner(),
            r.origin(),
        )
    };
    {
        let c = rusqlite::Connection::open(path).unwrap();
        c.execute_batch(
            "DROP VIEW projects; DROP TABLE undo_actions; UPDATE meta SET value = '1' WHERE key = 'schema_version';",
        )
        .unwrap();
        // The v1 DDL is what this store now has (every v1 table exists).
        for stmt in [
            "ops",
            "sync_state",
            "nodes",
            "tags",
            "links",
            "log_entries",
            "fts",
        ] {
            assert!(
                V1.contains(
                    &format!(
                        "CREATE {}",
                        if stmt == "fts" {
                            "VIRTUAL TABLE fts"
                        } else {
                            "TABLE "
                        }
                    )
                    .trim_end()
                    .to_owned()
                )
            );
            let n: i64 = c
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE name = ?1",
                    [stmt],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 1, "{stmt}");
        }
    }
    let mut r = Replica::open(path, &env).unwrap();
    assert_eq!(r.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(r.digest().unwrap(), digest);
    assert_eq!(r.op_count().unwrap(), ops);
    assert_eq!((r.owner(), r.origin()), (owner, origin));
    // v2 features work on the migrated store.
    add(&mut r, &env, "after migration");
    api::undo(&mut r, &env).unwrap();
    let (a, b) = r.doctor().unwrap();
    assert_eq!(a, b);
}

#[test]
fn a_fresh_v1_ddl_store_migrates_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("heph.db");
    let path = path.to_str().unwrap();
    {
        let c = rusqlite::Connection::open(path).unwrap();
        c.execute_batch(V1).unwrap();
        c.execute_batch("INSERT INTO meta VALUES ('schema_version', '1'), ('owner_id', '01ARYZ6S410000000000000000');")
            .unwrap();
    }
    let env = TestEnv::new(T0, 1);
    let r = Replica::open(path, &env).unwrap();
    assert_eq!(r.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(
        r.owner().to_string(),
        "01ARYZ6S410000000000000000",
        "an existing owner is kept"
    );
}

#[test]
fn owner_rules() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("heph.db");
    let path = path.to_str().unwrap();
    let env = TestEnv::new(T0, 1);
    let owner = OwnerId::from_parts(T0, [9; 10]);
    let r = Replica::open_with_owner(path, owner, &env).unwrap();
    assert_eq!(r.owner(), owner);
    drop(r);
    assert_eq!(Replica::open(path, &env).unwrap().owner(), owner);
    let other = OwnerId::from_parts(T0, [8; 10]);
    assert!(matches!(
        Replica::open_with_owner(path, other, &env),
        Err(SpokeError::Invalid(_))
    ));
}

#[test]
fn sync_api_ops_since_apply_foreign_cursor_duplicates_forks() {
    let ea = TestEnv::new(T0, 1);
    let eb = TestEnv::new(T0, 2);
    let mut a = Replica::open_in_memory(&ea).unwrap();
    let mut b = Replica::open_in_memory_with_owner(a.owner(), &eb).unwrap();
    add(&mut a, &ea, "one");
    add(&mut a, &ea, "two");
    let own = a.ops_since(a.origin(), 0, 1000).unwrap();
    assert_eq!(own.len() as u64, a.last_seq(a.origin()).unwrap());
    assert_eq!(own[0].seq, 1);
    assert!(own.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    let page = a.ops_since(a.origin(), 2, 2).unwrap();
    assert_eq!(page.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![3, 4]);

    // Apply as two segments, second first; the cursor is written with the batch.
    let ops: Vec<Op> = own.iter().map(|s| s.op.clone()).collect();
    let cursor = SyncCursor {
        origin: a.origin(),
        last_seq: ops.len() as u64,
        head_hash: Some(SegmentId([7; 32])),
        segments: 2,
    };
    let r2 = b.apply_foreign(a.origin(), 4, &ops[3..], None).unwrap();
    assert_eq!(r2.inserted, ops.len() as u64 - 3);
    let r1 = b
        .apply_foreign(a.origin(), 1, &ops[..3], Some(&cursor))
        .unwrap();
    assert_eq!(r1.inserted, 3);
    assert_eq!(b.sync_state(a.origin()).unwrap(), Some(cursor.clone()));
    assert_eq!(b.all_sync_states().unwrap(), vec![cursor]);
    assert_eq!(a.digest().unwrap(), b.digest().unwrap());
    // Duplicates are ignored.
    let dup = b.apply_foreign(a.origin(), 1, &ops, None).unwrap();
    assert_eq!((dup.inserted, dup.duplicates), (0, ops.len() as u64));
    // A different op at an occupied position is a fork: refused, nothing changes.
    let before = b.digest().unwrap();
    let mut forged = ops[0].clone();
    forged.hlc.wall_ms += 1;
    forged.kind = OpKind::Set(Field::Title("forged".into()));
    let err = b
        .apply_foreign(a.origin(), 1, &[ops[0].clone(), forged], None)
        .unwrap_err();
    assert!(matches!(err, SpokeError::ForkedOp { seq: 2, .. }), "{err}");
    assert_eq!(b.digest().unwrap(), before);
    // b's own writes continue its own chain at seq 1 and a fresh origin.
    add(&mut b, &eb, "from b");
    assert_eq!(
        b.last_seq(b.origin()).unwrap(),
        b.ops_since(b.origin(), 0, 100).unwrap().len() as u64
    );
    assert_eq!(b.origins().unwrap().len(), 2);
    // Local ticks order after every foreign op seen.
    let newest = ops.iter().map(|o| o.hlc).max().unwrap();
    let far = Op {
        hlc: heph_format::Hlc {
            wall_ms: newest.wall_ms + 5000,
            counter: 0,
            origin: Origin::from_parts(1, [1; 10]),
        },
        node: NodeId::from_parts(1, [2; 10]),
        kind: OpKind::Log { text: "x".into() },
    };
    b.apply_foreign(far.hlc.origin, 1, std::slice::from_ref(&far), None)
        .unwrap();
    assert!(b.tick(&eb) > far.hlc);
}

#[test]
fn wal_and_busy_timeout_on_a_file_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("heph.db");
    let env = TestEnv::new(T0, 1);
    let r = Replica::open(path.to_str().unwrap(), &env).unwrap();
    let mode: String = r
        .connection()
        .query_row("PRAGMA journal_mode", [], |x| x.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let t: i64 = r
        .connection()
        .query_row("PRAGMA busy_timeout", [], |x| x.get(0))
        .unwrap();
    assert!(t >= 1000);
    // A second handle (another process in real life) reads the same store.
    let r2 = Replica::open(path.to_str().unwrap(), &env).unwrap();
    assert_eq!(r.origin(), r2.origin());
}
