//! The replica: one SQLite store holding the op log of every origin, per-origin sync state and the
//! materialised tables derived from the ops.
//!
//! Opening is careful: a file that is not SQLite, an SQLite file that is not a heph store, or a store
//! from a newer schema is refused *before* anything is written. Local writes and foreign batches each
//! run in one transaction that records the ops and updates the materialised rows.

use std::collections::BTreeMap;

use heph_format::{Clock, Hlc, NodeId, Op, Origin, OwnerId, SegmentId, Ulid};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::env::Env;
use crate::error::{Result, SpokeError};
use crate::materialise::{NodeState, blob16};
use crate::oplog;
use crate::schema::{MIGRATIONS, SCHEMA_VERSION};

/// What the sync layer records about one origin's chain: the last seq taken from (or pushed to) the hub,
/// the hash of that chain's head segment, and how many segments it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncCursor {
    /// The origin whose chain this is.
    pub origin: Origin,
    /// The last seq covered by segments already exchanged.
    pub last_seq: u64,
    /// The id of the chain's head segment (none before the first).
    pub head_hash: Option<SegmentId>,
    /// Number of segments in the chain.
    pub segments: u64,
}

/// What applying a batch of ops did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyReport {
    /// Ops newly stored.
    pub inserted: u64,
    /// Ops that were already held (ignored).
    pub duplicates: u64,
    /// Distinct nodes whose rows changed.
    pub nodes_touched: u64,
    /// Nodes re-folded from all their ops because an older op arrived.
    pub rematerialised: u64,
}

/// A stored op with its chain position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOp {
    /// The origin that issued it.
    pub origin: Origin,
    /// Its position in that origin's chain (1-based).
    pub seq: u64,
    /// The op.
    pub op: Op,
}

/// How much of the database file is memory-mapped for reads outside bulk apply (256 MiB).
const MMAP_BYTES: i64 = 256 << 20;
/// WAL pages after which a commit checkpoints (16 MiB of 4 KiB pages).
const CHECKPOINT_PAGES: u32 = 4000;
/// The same in bulk-apply mode: a page rewritten by many commits is copied back once per checkpoint.
const BULK_CHECKPOINT_PAGES: u32 = 16_000;

/// A heph store: op log + materialised state. See the module docs.
#[derive(Debug)]
pub struct Replica {
    conn: Connection,
    path: String,
    owner: OwnerId,
    origin: Origin,
    clock: Clock,
    pending_observe: Option<Hlc>,
    next_seq: u64,
}

fn map_open_error(path: &str, e: rusqlite::Error) -> SpokeError {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => {
            SpokeError::NotADatabase {
                path: path.to_owned(),
            }
        }
        Some(ErrorCode::ReadOnly)
        | Some(ErrorCode::CannotOpen)
        | Some(ErrorCode::PermissionDenied) => SpokeError::ReadOnly {
            path: path.to_owned(),
            reason: e.to_string(),
        },
        _ => SpokeError::Sqlite(e),
    }
}

fn mint(env: &dyn Env) -> Ulid {
    let r = env.random();
    let mut rand = [0u8; 10];
    rand.copy_from_slice(&r[..10]);
    Ulid::from_parts(env.now_ms(), rand)
}

/// Mints a fresh node id from the environment's clock and randomness.
pub fn mint_node_id(env: &dyn Env) -> NodeId {
    NodeId(mint(env))
}

impl Replica {
    /// Opens (creating if needed) the store at `path`. A new store mints its owner; a store without
    /// `meta.origin` (fresh, or reset by the documented Path A procedure) mints a fresh origin.
    pub fn open(path: &str, env: &dyn Env) -> Result<Replica> {
        Replica::open_inner(path, None, env)
    }

    /// Opens (creating if needed) a store that belongs to `owner`: a new store joins that owner instead of
    /// minting one. A store that already belongs to another owner is refused.
    pub fn open_with_owner(path: &str, owner: OwnerId, env: &dyn Env) -> Result<Replica> {
        Replica::open_inner(path, Some(owner), env)
    }

    /// A private in-memory store (tests, and the conformance of everything that is a pure function of ops).
    pub fn open_in_memory(env: &dyn Env) -> Result<Replica> {
        Replica::open_inner(":memory:", None, env)
    }

    /// An in-memory store that belongs to `owner`.
    pub fn open_in_memory_with_owner(owner: OwnerId, env: &dyn Env) -> Result<Replica> {
        Replica::open_inner(":memory:", Some(owner), env)
    }

    fn open_inner(path: &str, want_owner: Option<OwnerId>, env: &dyn Env) -> Result<Replica> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| map_open_error(path, e))?;
        conn.busy_timeout(std::time::Duration::from_millis(5000))
            .map_err(|e| map_open_error(path, e))?;
        // Inspect before writing anything.
        let tables: Vec<String> = (|| -> rusqlite::Result<Vec<String>> {
            let mut st =
                conn.prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")?;
            let rows = st.query_map([], |r| r.get(0))?;
            rows.collect()
        })()
        .map_err(|e| map_open_error(path, e))?;
        let has_meta = tables.iter().any(|t| t == "meta");
        if !tables.is_empty() && !has_meta {
            return Err(SpokeError::ForeignDatabase {
                path: path.to_owned(),
            });
        }
        let mut version = 0u32;
        if has_meta {
            let v: Option<String> = conn
                .query_row(
                    "SELECT value FROM meta WHERE key = 'schema_version'",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| map_open_error(path, e))?;
            version = match v {
                Some(v) => v.parse().map_err(|_| SpokeError::ForeignDatabase {
                    path: path.to_owned(),
                })?,
                None => {
                    return Err(SpokeError::ForeignDatabase {
                        path: path.to_owned(),
                    });
                }
            };
            if version > SCHEMA_VERSION {
                return Err(SpokeError::NewerSchema {
                    found: version,
                    supported: SCHEMA_VERSION,
                });
            }
            if let Some(want) = want_owner {
                let have: Option<String> = conn
                    .query_row("SELECT value FROM meta WHERE key = 'owner_id'", [], |r| {
                        r.get(0)
                    })
                    .optional()?;
                if let Some(have) = have
                    && have != want.to_string()
                {
                    return Err(SpokeError::Invalid(format!(
                        "the store at {path} belongs to owner {have}, not {want}; nothing was changed"
                    )));
                }
            }
        }
        if path != ":memory:" {
            let mode: String = conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
                .map_err(|e| map_open_error(path, e))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(SpokeError::ReadOnly {
                    path: path.to_owned(),
                    reason: format!("cannot switch to WAL journal mode (got {mode})"),
                });
            }
        }
        conn.execute_batch(&format!(
            "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF; PRAGMA cache_size = -65536;
             PRAGMA mmap_size = {MMAP_BYTES}; PRAGMA temp_store = MEMORY;
             PRAGMA wal_autocheckpoint = {CHECKPOINT_PAGES};"
        ))
        .map_err(|e| map_open_error(path, e))?;

        let mut conn = conn;
        {
            let tx = conn.transaction().map_err(|e| map_open_error(path, e))?;
            for (i, step) in MIGRATIONS.iter().enumerate().skip(version as usize) {
                tx.execute_batch(step.sql)
                    .map_err(|e| map_open_error(path, e))?;
                if let Some(data) = step.data {
                    data(&tx).map_err(|e| remap(path, e))?;
                }
                tx.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?1)",
                    [(i + 1).to_string()],
                )
                .map_err(|e| map_open_error(path, e))?;
            }
            let get = |k: &str| -> rusqlite::Result<Option<String>> {
                tx.query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0))
                    .optional()
            };
            if get("owner_id")?.is_none() {
                let owner = want_owner.unwrap_or(OwnerId(mint(env)));
                tx.execute(
                    "INSERT INTO meta(key, value) VALUES ('owner_id', ?1)",
                    [owner.to_string()],
                )
                .map_err(|e| map_open_error(path, e))?;
            }
            if get("origin")?.is_none() {
                tx.execute(
                    "INSERT INTO meta(key, value) VALUES ('origin', ?1)",
                    [Origin(mint(env)).to_string()],
                )
                .map_err(|e| map_open_error(path, e))?;
            }
            tx.commit().map_err(|e| map_open_error(path, e))?;
        }
        let meta = |k: &str| -> Result<String> {
            Ok(conn.query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0))?)
        };
        let owner: OwnerId = meta("owner_id")?
            .parse()
            .map_err(|_| SpokeError::Decode("meta.owner_id is not a ULID".into()))?;
        let origin: Origin = meta("origin")?
            .parse()
            .map_err(|_| SpokeError::Decode("meta.origin is not a ULID".into()))?;
        let last = match stored_clock(&conn)? {
            Some(h) => Some(h),
            // Stores written before `meta.clock` existed: find the greatest clock once.
            None => oplog::max_clock(&conn)?.map(|(wall_ms, counter)| Hlc {
                wall_ms,
                counter,
                origin,
            }),
        };
        let clock = Clock::resume(origin, last);
        let max_seq = oplog::last_seq(&conn, origin)?;
        Ok(Replica {
            conn,
            path: path.to_owned(),
            owner,
            origin,
            clock,
            pending_observe: None,
            next_seq: max_seq + 1,
        })
    }

    /// The owner every replica of this person shares.
    pub fn owner(&self) -> OwnerId {
        self.owner
    }

    /// This replica's own origin.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// The path the store was opened from (`:memory:` for in-memory stores).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The schema version of the open store (always [`SCHEMA_VERSION`] after open).
    pub fn schema_version(&self) -> Result<u32> {
        let v: String = self.conn.query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )?;
        v.parse()
            .map_err(|_| SpokeError::Decode("meta.schema_version is not a number".into()))
    }

    /// Read access to the underlying connection (queries; never write through it).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Switches bulk-apply mode (for a bring-up or any pull of many ops) on or off. In bulk mode the
    /// database file is read through SQLite's page cache instead of a memory map (a file growing by
    /// hundreds of megabytes would be remapped again and again, and every page the load touches would
    /// stay resident), and the WAL checkpoints less often. Reads (list, search) are faster
    /// memory-mapped, so that is the normal mode.
    pub fn set_bulk_apply(&mut self, bulk: bool) -> Result<()> {
        let (bytes, checkpoint) = if bulk {
            (0, BULK_CHECKPOINT_PAGES)
        } else {
            (MMAP_BYTES, CHECKPOINT_PAGES)
        };
        self.conn
            .execute_batch(&format!(
                "PRAGMA mmap_size = {bytes}; PRAGMA wal_autocheckpoint = {checkpoint};"
            ))
            .map_err(|e| map_open_error(&self.path, e))
    }

    /// Issues a new clock reading for a local op (ordered after every op this replica holds).
    pub fn tick(&mut self, env: &dyn Env) -> Hlc {
        let now = env.now_ms();
        if let Some(h) = self.pending_observe.take() {
            self.clock.observe(h, now);
        }
        self.clock.tick(now)
    }

    /// The seq the next local op will get.
    pub fn next_local_seq(&self) -> u64 {
        self.next_seq
    }

    /// Records local ops (already stamped with [`Replica::tick`], on this replica's origin) as the next
    /// positions of this origin's chain and materialises them, in one transaction. With a `label` the ops
    /// form one undoable action. Returns the stored ops with their seqs.
    pub fn commit_local(&mut self, label: Option<&str>, ops: Vec<Op>) -> Result<Vec<StoredOp>> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let first = self.next_seq;
        let stored: Vec<StoredOp> = ops
            .into_iter()
            .enumerate()
            .map(|(i, op)| StoredOp {
                origin: self.origin,
                seq: first + i as u64,
                op,
            })
            .collect();
        let last = first + stored.len() as u64 - 1;
        let tx = self
            .conn
            .transaction()
            .map_err(|e| map_open_error(&self.path, e))?;
        ingest(&tx, &stored).map_err(|e| remap(&self.path, e))?;
        if let Some(label) = label {
            tx.execute(
                "INSERT INTO undo_actions(label, origin, first_seq, last_seq) VALUES (?1, ?2, ?3, ?4)",
                params![label, &self.origin.to_bytes()[..], first as i64, last as i64],
            )
            .map_err(|e| map_open_error(&self.path, e))?;
        }
        tx.commit().map_err(|e| map_open_error(&self.path, e))?;
        self.next_seq = last + 1;
        Ok(stored)
    }

    /// Applies ops of `origin` occupying seqs `first_seq..first_seq + ops.len()` (from a segment),
    /// in any order relative to other batches; ops already held are ignored. When `cursor` is given it is
    /// written in the same transaction, so the sync state never runs ahead of or behind the op log.
    pub fn apply_foreign(
        &mut self,
        origin: Origin,
        first_seq: u64,
        ops: &[Op],
        cursor: Option<&SyncCursor>,
    ) -> Result<ApplyReport> {
        let stored: Vec<StoredOp> = ops
            .iter()
            .enumerate()
            .map(|(i, op)| StoredOp {
                origin,
                seq: first_seq + i as u64,
                op: op.clone(),
            })
            .collect();
        self.apply_stored(&stored, cursor)
    }

    /// Like [`Replica::apply_foreign`] for ops of several origins at once (each with its own seq).
    pub fn apply_stored(
        &mut self,
        ops: &[StoredOp],
        cursor: Option<&SyncCursor>,
    ) -> Result<ApplyReport> {
        self.apply_with_cursors(ops, cursor.map(std::slice::from_ref).unwrap_or_default())
    }

    /// Like [`Replica::apply_stored`], writing several origins' cursors in the same transaction (for
    /// one origin, the last cursor given wins).
    pub fn apply_with_cursors(
        &mut self,
        ops: &[StoredOp],
        cursors: &[SyncCursor],
    ) -> Result<ApplyReport> {
        let tx = self
            .conn
            .transaction()
            .map_err(|e| map_open_error(&self.path, e))?;
        let report = ingest(&tx, ops).map_err(|e| remap(&self.path, e))?;
        for c in cursors {
            write_cursor(&tx, c).map_err(|e| remap(&self.path, e))?;
        }
        tx.commit().map_err(|e| map_open_error(&self.path, e))?;
        if let Some(max) = ops.iter().map(|s| s.op.hlc).max() {
            self.pending_observe = Some(self.pending_observe.map_or(max, |p| p.max(max)));
        }
        for s in ops {
            if s.origin == self.origin && s.seq >= self.next_seq {
                self.next_seq = s.seq + 1;
            }
        }
        Ok(report)
    }

    /// Ops of `origin` with seq greater than `after_seq`, in seq order, at most `limit`.
    pub fn ops_since(&self, origin: Origin, after_seq: u64, limit: usize) -> Result<Vec<StoredOp>> {
        oplog::since(&self.conn, origin, after_seq, limit)
    }

    /// Every origin in the op log with the highest seq held for it.
    pub fn origins(&self) -> Result<Vec<(Origin, u64)>> {
        oplog::origins(&self.conn)
    }

    /// The highest seq held for `origin` (0 when none).
    pub fn last_seq(&self, origin: Origin) -> Result<u64> {
        oplog::last_seq(&self.conn, origin)
    }

    /// Number of ops held (all origins).
    pub fn op_count(&self) -> Result<u64> {
        oplog::count(&self.conn)
    }

    /// The sync state recorded for `origin`.
    pub fn sync_state(&self, origin: Origin) -> Result<Option<SyncCursor>> {
        Ok(self
            .all_sync_states()?
            .into_iter()
            .find(|c| c.origin == origin))
    }

    /// Every recorded sync state, ordered by origin.
    pub fn all_sync_states(&self) -> Result<Vec<SyncCursor>> {
        let mut st = self.conn.prepare_cached(
            "SELECT origin, last_seq, head_hash, segments FROM sync_state ORDER BY origin",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<Vec<u8>>>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (o, last, hash, segs) = row?;
            let head_hash = match hash {
                Some(h) => Some(SegmentId(h.try_into().map_err(|_| {
                    SpokeError::Decode("sync_state.head_hash is not 32 bytes".into())
                })?)),
                None => None,
            };
            out.push(SyncCursor {
                origin: Origin::from_bytes(blob16(o)?),
                last_seq: last as u64,
                head_hash,
                segments: segs as u64,
            });
        }
        Ok(out)
    }

    /// Writes (replaces) the sync state of `cursor.origin`.
    pub fn set_sync_state(&mut self, cursor: &SyncCursor) -> Result<()> {
        write_cursor(&self.conn, cursor).map_err(|e| remap(&self.path, e))
    }

    /// All ops of one node, in HLC order, with their origin and seq.
    pub fn node_ops(&self, node: NodeId) -> Result<Vec<StoredOp>> {
        let mut out = oplog::of_node(&self.conn, node)?;
        out.sort_by_key(|s| s.op.hlc);
        Ok(out)
    }

    /// Rebuilds every materialised table from the op log, in one transaction.
    pub fn rebuild(&mut self) -> Result<()> {
        let tx = self
            .conn
            .transaction()
            .map_err(|e| map_open_error(&self.path, e))?;
        tx.execute_batch(
            "DELETE FROM nodes; DELETE FROM tags; DELETE FROM links; DELETE FROM log_entries; DELETE FROM fts;",
        )?;
        oplog::for_each_node(&tx, &mut |node, ops| {
            fold_node(&tx, node, None, ops.iter().collect())
        })?;
        tx.commit()?;
        Ok(())
    }

    /// A blake3 digest of the materialised state (independent of row ids and arrival order).
    pub fn digest(&self) -> Result<[u8; 32]> {
        digest(&self.conn)
    }

    /// Checks that a rebuild from the op log reproduces the materialised state: returns the digest
    /// before and after (equal when the store is healthy). The store is left rebuilt.
    pub fn doctor(&mut self) -> Result<([u8; 32], [u8; 32])> {
        let before = self.digest()?;
        self.rebuild()?;
        let after = self.digest()?;
        Ok((before, after))
    }
}

fn remap(path: &str, e: SpokeError) -> SpokeError {
    match e {
        SpokeError::Sqlite(e) => map_open_error(path, e),
        other => other,
    }
}

/// The greatest HLC held, as recorded in `meta.clock` (origin is not recorded: only wall and counter
/// matter for resuming a clock).
fn stored_clock(conn: &Connection) -> Result<Option<Hlc>> {
    let v: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'clock'", [], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(v.and_then(|v| {
        let (w, c) = v.split_once('.')?;
        Some(Hlc {
            wall_ms: w.parse().ok()?,
            counter: c.parse().ok()?,
            origin: Origin::default(),
        })
    }))
}

fn write_cursor(conn: &Connection, c: &SyncCursor) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO sync_state(origin, last_seq, head_hash, segments) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        &c.origin.to_bytes()[..],
        c.last_seq as i64,
        c.head_hash.map(|h| h.0.to_vec()),
        c.segments as i64
    ])?;
    Ok(())
}

/// Stores ops (ignoring ones already held) and materialises the nodes they touch.
pub(crate) fn ingest(conn: &Connection, ops: &[StoredOp]) -> Result<ApplyReport> {
    let mut report = ApplyReport::default();
    let (fresh, duplicates) = oplog::insert(conn, ops)?;
    report.duplicates = duplicates;
    report.inserted = fresh.len() as u64;
    let mut by_node: BTreeMap<NodeId, Vec<&Op>> = BTreeMap::new();
    for s in fresh {
        by_node.entry(s.op.node).or_default().push(&s.op);
    }
    if let Some(max) = by_node.values().flatten().map(|o| o.hlc).max() {
        let cur = stored_clock(conn)?;
        if cur.is_none_or(|c| (max.wall_ms, max.counter) > (c.wall_ms, c.counter)) {
            conn.prepare_cached("INSERT OR REPLACE INTO meta(key, value) VALUES ('clock', ?1)")?
                .execute([format!("{}.{}", max.wall_ms, max.counter)])?;
        }
    }
    for (node, mut new_ops) in by_node {
        new_ops.sort_by_key(|o| o.hlc);
        report.nodes_touched += 1;
        match NodeState::load(conn, node)? {
            None => fold_node(conn, node, None, new_ops)?,
            Some(mut state) => {
                let min_new = new_ops[0].hlc;
                if state.max.is_none_or(|m| min_new > m) {
                    for op in new_ops {
                        state.apply(op, &mut |h| base_lookup(conn, node, h))?;
                    }
                    state.store(conn)?;
                } else {
                    report.rematerialised += 1;
                    let all = load_node_ops(conn, node)?;
                    fold_node(conn, node, state.rowid, all.iter().collect())?;
                }
            }
        }
    }
    Ok(report)
}

fn load_node_ops(conn: &Connection, node: NodeId) -> Result<Vec<Op>> {
    Ok(oplog::of_node(conn, node)?
        .into_iter()
        .map(|s| s.op)
        .collect())
}

fn base_lookup(conn: &Connection, node: NodeId, h: Hlc) -> Result<Option<String>> {
    Ok(match oplog::of_node_at(conn, node, h)? {
        Some(Op {
            kind: heph_format::OpKind::Context { text, .. },
            ..
        }) => Some(text),
        _ => None,
    })
}

/// Folds all of a node's ops from scratch and writes its rows (replacing any existing ones).
fn fold_node(conn: &Connection, node: NodeId, rowid: Option<i64>, mut ops: Vec<&Op>) -> Result<()> {
    ops.sort_by_key(|o| o.hlc);
    let texts: BTreeMap<Hlc, String> = ops
        .iter()
        .filter_map(|op| match &op.kind {
            heph_format::OpKind::Context { text, .. } => Some((op.hlc, text.clone())),
            _ => None,
        })
        .collect();
    let mut state = NodeState::empty(node, rowid);
    for op in &ops {
        state.apply(op, &mut |h| Ok(texts.get(&h).cloned()))?;
    }
    state.store(conn)
}

fn digest(conn: &Connection) -> Result<[u8; 32]> {
    let mut h = blake3::Hasher::new();
    fn put(h: &mut blake3::Hasher, v: rusqlite::types::ValueRef<'_>) {
        use rusqlite::types::ValueRef;
        match v {
            ValueRef::Null => {
                h.update(&[0]);
            }
            ValueRef::Integer(i) => {
                h.update(&[1]);
                h.update(&i.to_le_bytes());
            }
            ValueRef::Real(f) => {
                h.update(&[2]);
                h.update(&f.to_le_bytes());
            }
            ValueRef::Text(t) | ValueRef::Blob(t) => {
                h.update(&[3]);
                h.update(&(t.len() as u64).to_le_bytes());
                h.update(t);
            }
        }
    }
    let queries = [
        "SELECT id, kind, title, state, do_date, late_on, recurrence, attention, project, series, context,
                ctx_wall, ctx_counter, ctx_origin, conflicted, deleted, created_ms, updated_ms,
                max_wall, max_counter, max_origin FROM nodes ORDER BY id",
        "SELECT node, tag FROM tags ORDER BY node, tag",
        "SELECT node, target, kind FROM links ORDER BY node, target, kind",
        "SELECT node, wall, counter, origin, text FROM log_entries ORDER BY node, wall, counter, origin",
    ];
    for (i, q) in queries.iter().enumerate() {
        h.update(&[0xff, i as u8]);
        let mut st = conn.prepare(q)?;
        let n = st.column_count();
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            for c in 0..n {
                put(&mut h, r.get_ref(c)?);
            }
        }
    }
    Ok(*h.finalize().as_bytes())
}
