//! The op log on disk: every op of every origin, stored as *chunks* — up to [`MAX_CHUNK`] consecutive seqs
//! of one origin in one row — with a node index saying which chunks hold ops of which node. A bring-up
//! then costs one row per chunk and one index entry per node and chunk instead of a row and an index
//! entry per op; reading one node's ops decodes the few chunks that hold them.
//!
//! Layout (schema version 3): `op_chunks(origin, first_seq, n, ops)`, primary key `(origin, first_seq)`;
//! `ops` is the postcard encoding of [`ChunkBody`] (the distinct nodes, then per op: node index, wall,
//! counter, kind; the clock origin of every op is the chunk's, as the format guarantees).
//! `op_nodes(node, origin, first_seq)` (primary key, all three) names the chunks holding a node's ops.
//! Chunks never overlap, so the chunks covering any seq range are found with one index range scan. How
//! ops split into chunks depends on how they arrived; nothing that reads the log depends on it.

use std::collections::BTreeMap;

use heph_format::{Hlc, NodeId, Op, OpKind, Origin};
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SpokeError};
use crate::materialise::{blob16, decode_op};
use crate::replica::StoredOp;

/// The most ops one chunk holds.
pub(crate) const MAX_CHUNK: u64 = 256;

/// Schema step 3: the chunk tables (the data moves in [`migrate_ops_table`]), plus each node's tag list and
/// a covering index of outstanding tasks in list order.
pub(crate) const V3_SQL: &str = r#"
CREATE TABLE op_chunks(
    origin    BLOB    NOT NULL,
    first_seq INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    ops       BLOB    NOT NULL,
    PRIMARY KEY (origin, first_seq)
) WITHOUT ROWID;
CREATE TABLE op_nodes(
    node      BLOB    NOT NULL,
    origin    BLOB    NOT NULL,
    first_seq INTEGER NOT NULL,
    PRIMARY KEY (node, origin, first_seq)
) WITHOUT ROWID;

-- A node's tags, sorted and joined with U+001F, kept with the node so listing needs no per-row lookup.
ALTER TABLE nodes ADD COLUMN tag_list TEXT NOT NULL DEFAULT '';
UPDATE nodes SET tag_list = coalesce(
    (SELECT group_concat(tag, char(31)) FROM (SELECT tag FROM tags t WHERE t.node = nodes.id ORDER BY tag)),
    '');
-- Outstanding tasks in list order, with every listed column: `heph list` reads this index alone.
CREATE INDEX nodes_open ON nodes(
    kind, deleted, state, coalesce(attention, 3), do_date IS NULL, do_date, id,
    title, project, late_on, attention, recurrence, series, conflicted, created_ms, updated_ms, tag_list
) WHERE deleted = 0 AND state = 0;
"#;

/// A chunk's `ops` column.
#[derive(Serialize, Deserialize)]
struct ChunkBody {
    /// The distinct nodes the chunk's ops change, in first-use order.
    nodes: Vec<NodeId>,
    /// Per op, in seq order: (index into `nodes`, wall ms, counter, kind).
    ops: Vec<(u32, u64, u32, OpKind)>,
}

#[derive(Serialize)]
struct ChunkBodyRef<'a> {
    nodes: &'a [NodeId],
    ops: Vec<(u32, u64, u32, &'a OpKind)>,
}

/// Encodes consecutive ops of one origin; returns the bytes and the distinct nodes.
fn encode_chunk(ops: &[&StoredOp]) -> Result<(Vec<u8>, Vec<NodeId>)> {
    let mut nodes: Vec<NodeId> = Vec::new();
    let mut items = Vec::with_capacity(ops.len());
    for s in ops {
        let ix = match nodes.iter().rposition(|n| *n == s.op.node) {
            Some(i) => i,
            None => {
                nodes.push(s.op.node);
                nodes.len() - 1
            }
        };
        items.push((ix as u32, s.op.hlc.wall_ms, s.op.hlc.counter, &s.op.kind));
    }
    let bytes = postcard::to_allocvec(&ChunkBodyRef {
        nodes: &nodes,
        ops: items,
    })
    .map_err(|e| SpokeError::Decode(e.to_string()))?;
    Ok((bytes, nodes))
}

/// Decodes one chunk row into its ops.
fn decode_chunk(origin: Origin, first_seq: u64, bytes: &[u8]) -> Result<Vec<StoredOp>> {
    let body: ChunkBody =
        postcard::from_bytes(bytes).map_err(|e| SpokeError::Decode(format!("op chunk: {e}")))?;
    let nodes = body.nodes;
    body.ops
        .into_iter()
        .enumerate()
        .map(|(i, (ix, wall_ms, counter, kind))| {
            let node = *nodes.get(ix as usize).ok_or_else(|| {
                SpokeError::Decode(format!("op chunk {origin}/{first_seq}: node index {ix}"))
            })?;
            Ok(StoredOp {
                origin,
                seq: first_seq + i as u64,
                op: Op {
                    hlc: Hlc {
                        wall_ms,
                        counter,
                        origin,
                    },
                    node,
                    kind,
                },
            })
        })
        .collect()
}

/// Decodes a row of `(origin, first_seq, ops)`.
fn row_chunk(r: &rusqlite::Row<'_>) -> Result<Vec<StoredOp>> {
    let origin = Origin::from_bytes(blob16(r.get(0)?)?);
    let first: i64 = r.get(1)?;
    let bytes: Vec<u8> = r.get(2)?;
    decode_chunk(origin, first as u64, &bytes)
}

fn window_start(seq: u64) -> i64 {
    seq.saturating_sub(MAX_CHUNK) as i64
}

/// Stores the ops not held yet and returns them (in input order); ops already held are checked to be
/// the same op (a different op at a held position is [`SpokeError::ForkedOp`]) and counted as duplicates.
pub(crate) fn insert<'a>(
    conn: &Connection,
    ops: &'a [StoredOp],
) -> Result<(Vec<&'a StoredOp>, u64)> {
    let mut by_origin: BTreeMap<Origin, Vec<&'a StoredOp>> = BTreeMap::new();
    for s in ops {
        if s.seq == 0 || s.seq > i64::MAX as u64 - MAX_CHUNK {
            return Err(SpokeError::Invalid(format!(
                "op seq {} out of range",
                s.seq
            )));
        }
        if s.op.hlc.origin != s.origin {
            return Err(SpokeError::Invalid(format!(
                "op {}/{} carries the clock of origin {}",
                s.origin, s.seq, s.op.hlc.origin
            )));
        }
        by_origin.entry(s.origin).or_default().push(s);
    }
    let mut held_q = conn.prepare_cached(
        "SELECT origin, first_seq, ops FROM op_chunks
         WHERE origin = ?1 AND first_seq > ?2 AND first_seq <= ?3",
    )?;
    let mut ins = conn.prepare_cached(
        "INSERT INTO op_chunks(origin, first_seq, n, ops) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut ins_node =
        conn.prepare_cached("INSERT INTO op_nodes(node, origin, first_seq) VALUES (?1, ?2, ?3)")?;
    let mut fresh: Vec<&'a StoredOp> = Vec::with_capacity(ops.len());
    let mut duplicates = 0u64;
    for (origin, mut list) in by_origin {
        list.sort_by_key(|s| s.seq);
        let (lo, hi) = (list[0].seq, list[list.len() - 1].seq);
        let key = origin.to_bytes();
        let mut held: BTreeMap<u64, Op> = BTreeMap::new();
        let mut rows = held_q.query(params![&key[..], window_start(lo), hi as i64])?;
        while let Some(r) = rows.next()? {
            for s in row_chunk(r)? {
                if (lo..=hi).contains(&s.seq) {
                    held.insert(s.seq, s.op);
                }
            }
        }
        let mut new_here: Vec<&'a StoredOp> = Vec::with_capacity(list.len());
        for s in list {
            let seen = held
                .get(&s.seq)
                .or_else(|| new_here.last().filter(|p| p.seq == s.seq).map(|p| &p.op));
            match seen {
                Some(op) if *op == s.op => duplicates += 1,
                Some(_) => {
                    return Err(SpokeError::ForkedOp { origin, seq: s.seq });
                }
                None => new_here.push(s),
            }
        }
        let mut start = 0;
        while start < new_here.len() {
            let mut end = start + 1;
            while end < new_here.len()
                && (end - start) < MAX_CHUNK as usize
                && new_here[end].seq == new_here[end - 1].seq + 1
            {
                end += 1;
            }
            let chunk = &new_here[start..end];
            let first = chunk[0].seq as i64;
            let (bytes, nodes) = encode_chunk(chunk)?;
            ins.execute(params![&key[..], first, chunk.len() as i64, bytes])?;
            for node in nodes {
                ins_node.execute(params![&node.to_bytes()[..], &key[..], first])?;
            }
            start = end;
        }
        fresh.extend(new_here);
    }
    Ok((fresh, duplicates))
}

/// Ops of `origin` with seq greater than `after_seq`, in seq order, at most `limit`.
pub(crate) fn since(
    conn: &Connection,
    origin: Origin,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<StoredOp>> {
    let mut st = conn.prepare_cached(
        "SELECT origin, first_seq, ops FROM op_chunks
         WHERE origin = ?1 AND first_seq > ?2 ORDER BY first_seq",
    )?;
    let mut rows = st.query(params![&origin.to_bytes()[..], window_start(after_seq)])?;
    let mut out = Vec::new();
    while out.len() < limit {
        let Some(r) = rows.next()? else { break };
        for s in row_chunk(r)? {
            if s.seq > after_seq && out.len() < limit {
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// The highest seq held for `origin` (0 when none).
pub(crate) fn last_seq(conn: &Connection, origin: Origin) -> Result<u64> {
    use rusqlite::OptionalExtension;
    let v: Option<i64> = conn
        .prepare_cached(
            "SELECT first_seq + n - 1 FROM op_chunks WHERE origin = ?1 ORDER BY first_seq DESC LIMIT 1",
        )?
        .query_row([&origin.to_bytes()[..]], |r| r.get(0))
        .optional()?;
    Ok(v.unwrap_or(0) as u64)
}

/// Every origin in the log with the highest seq held for it, ordered by origin.
pub(crate) fn origins(conn: &Connection) -> Result<Vec<(Origin, u64)>> {
    let mut st = conn.prepare_cached(
        "SELECT origin, max(first_seq + n - 1) FROM op_chunks GROUP BY origin ORDER BY origin",
    )?;
    let rows = st.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (o, s) = row?;
        out.push((Origin::from_bytes(blob16(o)?), s as u64));
    }
    Ok(out)
}

/// Number of ops held (all origins).
pub(crate) fn count(conn: &Connection) -> Result<u64> {
    let n: i64 = conn.query_row("SELECT coalesce(sum(n), 0) FROM op_chunks", [], |r| {
        r.get(0)
    })?;
    Ok(n as u64)
}

/// All ops of one node (unordered).
pub(crate) fn of_node(conn: &Connection, node: NodeId) -> Result<Vec<StoredOp>> {
    let mut st = conn.prepare_cached(
        "SELECT c.origin, c.first_seq, c.ops FROM op_nodes j
         JOIN op_chunks c ON c.origin = j.origin AND c.first_seq = j.first_seq
         WHERE j.node = ?1",
    )?;
    let mut rows = st.query([&node.to_bytes()[..]])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.extend(row_chunk(r)?.into_iter().filter(|s| s.op.node == node));
    }
    Ok(out)
}

/// The op of `node` issued at clock `h`, if held.
pub(crate) fn of_node_at(conn: &Connection, node: NodeId, h: Hlc) -> Result<Option<Op>> {
    let mut st = conn.prepare_cached(
        "SELECT c.origin, c.first_seq, c.ops FROM op_nodes j
         JOIN op_chunks c ON c.origin = j.origin AND c.first_seq = j.first_seq
         WHERE j.node = ?1 AND j.origin = ?2",
    )?;
    let mut rows = st.query(params![&node.to_bytes()[..], &h.origin.to_bytes()[..]])?;
    while let Some(r) = rows.next()? {
        if let Some(s) = row_chunk(r)?
            .into_iter()
            .find(|s| s.op.node == node && s.op.hlc == h)
        {
            return Ok(Some(s.op));
        }
    }
    Ok(None)
}

/// Calls `f` once per node with all of that node's ops (unordered), nodes in id order.
pub(crate) fn for_each_node(
    conn: &Connection,
    f: &mut dyn FnMut(NodeId, Vec<Op>) -> Result<()>,
) -> Result<()> {
    let mut st = conn.prepare("SELECT node, origin, first_seq FROM op_nodes ORDER BY node")?;
    let mut chunk_q = conn.prepare(
        "SELECT origin, first_seq, ops FROM op_chunks WHERE origin = ?1 AND first_seq = ?2",
    )?;
    // Nodes in id order are mostly in creation order, so their chunks repeat: keep recent ones decoded.
    let mut cache: BTreeMap<(Origin, u64), std::rc::Rc<Vec<StoredOp>>> = BTreeMap::new();
    let mut rows = st.query([])?;
    let mut cur: Option<(NodeId, Vec<Op>)> = None;
    while let Some(r) = rows.next()? {
        let node = NodeId::from_bytes(blob16(r.get(0)?)?);
        let origin = Origin::from_bytes(blob16(r.get(1)?)?);
        let first = r.get::<_, i64>(2)? as u64;
        let chunk = match cache.get(&(origin, first)) {
            Some(c) => c.clone(),
            None => {
                let c = std::rc::Rc::new(
                    chunk_q.query_row(params![&origin.to_bytes()[..], first as i64], |row| {
                        Ok(row_chunk(row))
                    })??,
                );
                if cache.len() >= 512 {
                    cache.clear();
                }
                cache.insert((origin, first), c.clone());
                c
            }
        };
        let ops = chunk
            .iter()
            .filter(|s| s.op.node == node)
            .map(|s| s.op.clone());
        match &mut cur {
            Some((n, v)) if *n == node => v.extend(ops),
            _ => {
                if let Some((n, v)) = cur.take() {
                    f(n, v)?;
                }
                cur = Some((node, ops.collect()));
            }
        }
    }
    if let Some((n, v)) = cur {
        f(n, v)?;
    }
    Ok(())
}

/// The greatest clock (wall, counter) of any op held — a full scan, used only when `meta.clock` is
/// missing.
pub(crate) fn max_clock(conn: &Connection) -> Result<Option<(u64, u32)>> {
    let mut st = conn.prepare("SELECT origin, first_seq, ops FROM op_chunks")?;
    let mut rows = st.query([])?;
    let mut best: Option<(u64, u32)> = None;
    while let Some(r) = rows.next()? {
        for s in row_chunk(r)? {
            let c = (s.op.hlc.wall_ms, s.op.hlc.counter);
            best = Some(best.map_or(c, |b| b.max(c)));
        }
    }
    Ok(best)
}

/// The data step of schema version 3: moves the one-row-per-op log of versions 1–2 (`ops`) into chunks,
/// records `meta.clock` when it is missing, and drops the old table.
pub(crate) fn migrate_ops_table(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "INSERT OR IGNORE INTO meta(key, value)
             SELECT 'clock', wall || '.' || counter FROM ops ORDER BY wall DESC, counter DESC LIMIT 1;",
    )?;
    let mut st = conn.prepare("SELECT origin, seq, op FROM ops ORDER BY origin, seq")?;
    let mut rows = st.query([])?;
    let mut batch: Vec<StoredOp> = Vec::new();
    while let Some(r) = rows.next()? {
        let origin = Origin::from_bytes(blob16(r.get(0)?)?);
        let seq: i64 = r.get(1)?;
        let op = decode_op(&r.get::<_, Vec<u8>>(2)?)?;
        if op.hlc.origin != origin {
            return Err(SpokeError::Decode(format!(
                "op {origin}/{seq} carries the clock of origin {}",
                op.hlc.origin
            )));
        }
        batch.push(StoredOp {
            origin,
            seq: seq as u64,
            op,
        });
        if batch.len() >= 10_000 {
            insert(conn, &batch)?;
            batch.clear();
        }
    }
    insert(conn, &batch)?;
    drop(rows);
    drop(st);
    conn.execute_batch("DROP TABLE ops;")?;
    Ok(())
}
