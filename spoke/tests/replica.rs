//! Replica tests: schema migration from version 1, open/owner rules, the sync-facing API
//! (ops_since, apply_foreign with its cursor, duplicates, forks) and the store on a real SQLite file.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use heph_format::{Field, NodeId, Op, OpKind, Origin, OwnerId, SegmentId};
use heph_spoke::api::{self, AddTask};
use heph_spoke::schema::{SCHEMA_VERSION, V1, V2};
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

/// Writes, at `path`, the store `src` as schema version `version` (1 or 2) laid it out: the DDL of those
/// versions, one `ops` row per op (postcard of the whole op), and `src`'s materialised rows.
fn write_legacy_store(path: &str, src: &Replica, src_path: &str, version: u32) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(V1).unwrap();
    if version >= 2 {
        c.execute_batch(V2).unwrap();
    }
    c.execute(
        "INSERT INTO meta(key, value) VALUES ('schema_version', ?1), ('owner_id', ?2), ('origin', ?3)",
        [
            version.to_string(),
            src.owner().to_string(),
            src.origin().to_string(),
        ],
    )
    .unwrap();
    for (origin, last) in src.origins().unwrap() {
        for s in src.ops_since(origin, 0, last as usize).unwrap() {
            c.execute(
                "INSERT INTO ops(origin, seq, wall, counter, node, op) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                rusqlite::params![
                    &origin.to_bytes()[..],
                    s.seq as i64,
                    s.op.hlc.wall_ms as i64,
                    i64::from(s.op.hlc.counter),
                    &s.op.node.to_bytes()[..],
                    postcard::to_allocvec(&s.op).unwrap()
                ],
            )
            .unwrap();
        }
    }
    c.execute("ATTACH ?1 AS src", [src_path]).unwrap();
    // The old layout's node columns (later versions add some).
    let cols: String = c
        .query_row(
            "SELECT group_concat(name, ', ') FROM pragma_table_info('nodes', 'main')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    c.execute_batch(&format!(
        "INSERT INTO nodes({cols}) SELECT {cols} FROM src.nodes;"
    ))
    .unwrap();
    c.execute_batch(
        "INSERT INTO tags SELECT * FROM src.tags;
         INSERT INTO links SELECT * FROM src.links; INSERT INTO log_entries SELECT * FROM src.log_entries;
         INSERT INTO fts(rowid, title, context, log) SELECT rowid, title, context, log FROM src.fts;
         DETACH src;",
    )
    .unwrap();
}

fn migrates_from(version: u32) {
    let dir = tempfile::tempdir().unwrap();
    let src_path = dir.path().join("src.db");
    let src_path = src_path.to_str().unwrap();
    let path = dir.path().join("heph.db");
    let path = path.to_str().unwrap();
    let env = TestEnv::new(T0, 1);
    let mut src = Replica::open(src_path, &env).unwrap();
    let id = add(&mut src, &env, "from an old version");
    add(&mut src, &env, "also old");
    api::log(&mut src, &env, &id, "a log line").unwrap();
    // Ops of a second origin, too.
    let eb = TestEnv::new(T0, 2);
    let mut b = Replica::open_in_memory_with_owner(src.owner(), &eb).unwrap();
    add(&mut b, &eb, "from another device");
    let theirs = b.ops_since(b.origin(), 0, 100).unwrap();
    src.apply_stored(&theirs, None).unwrap();
    let (digest, ops, origins) = (
        src.digest().unwrap(),
        src.op_count().unwrap(),
        src.origins().unwrap(),
    );
    write_legacy_store(path, &src, src_path, version);

    let mut r = Replica::open(path, &env).unwrap();
    assert_eq!(r.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!((r.owner(), r.origin()), (src.owner(), src.origin()));
    assert_eq!(r.digest().unwrap(), digest, "materialised rows kept");
    assert_eq!(r.op_count().unwrap(), ops);
    assert_eq!(r.origins().unwrap(), origins);
    for (o, last) in &origins {
        assert_eq!(
            r.ops_since(*o, 0, usize::MAX).unwrap(),
            src.ops_since(*o, 0, usize::MAX).unwrap(),
            "every op moved, in order"
        );
        assert_eq!(r.last_seq(*o).unwrap(), *last);
    }
    let old_tables: i64 = r
        .connection()
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name IN ('ops', 'ops_node')",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(old_tables, 0, "the old op table is gone");
    // The tag list added by version 3 is filled from the tags table.
    let listed = heph_spoke::model::list(&r, &env, &Default::default()).unwrap();
    assert!(!listed.is_empty());
    assert!(
        listed.iter().all(|n| n.tags == vec!["t".to_owned()]),
        "{listed:?}"
    );
    // The rebuilt state from the moved log equals the old rows; the clock resumes after every op.
    let (a, b2) = r.doctor().unwrap();
    assert_eq!((a, b2), (digest, digest));
    let t = r.tick(&env);
    assert!(theirs.iter().all(|s| s.op.hlc < t));
    // Later features work on the migrated store, and the chain continues where it was.
    let next = r.next_local_seq();
    assert_eq!(next, src.last_seq(src.origin()).unwrap() + 1);
    add(&mut r, &env, "after migration");
    api::undo(&mut r, &env).unwrap();
    let (a, b2) = r.doctor().unwrap();
    assert_eq!(a, b2);
}

#[test]
fn migrates_a_version_1_store() {
    migrates_from(1);
}

#[test]
fn migrates_a_version_2_store() {
    migrates_from(2);
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
