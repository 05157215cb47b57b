//! The op log on disk: every op of every origin, stored as *runs* — consecutive seqs of one origin that
//! change one node — so that the usual shape of a chain (an action writes several ops to one node) costs
//! one row and one index entry instead of one per op.
//!
//! Layout (schema version 3): `op_runs(origin, first_seq, n, node, ops)`, primary key `(origin, first_seq)`,
//! index `(node)`. `ops` is the postcard encoding of `[(wall_ms, counter, OpKind)]`; each op's node and
//! clock origin are the row's (the format guarantees an op's clock origin is the origin of its chain).
//! Runs never overlap and hold at most [`MAX_RUN`] ops, so the runs covering any seq range are found with
//! one index range scan. How ops are split into runs depends on how they arrived; nothing that reads the
//! log depends on it.

use std::collections::BTreeMap;

use heph_format::{Hlc, NodeId, Op, OpKind, Origin};
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SpokeError};
use crate::materialise::{blob16, decode_op};
use crate::replica::StoredOp;

/// The most ops one run holds.
pub(crate) const MAX_RUN: u64 = 256;

/// Schema step 3: the run table (the data moves in [`migrate_ops_table`]), plus each node's tag list and
/// a covering index of outstanding tasks in list order.
pub(crate) const V3_SQL: &str = r#"
CREATE TABLE op_runs(
    origin    BLOB    NOT NULL,
    first_seq INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    node      BLOB    NOT NULL,
    ops       BLOB    NOT NULL,
    PRIMARY KEY (origin, first_seq)
) WITHOUT ROWID;
CREATE INDEX op_runs_node ON op_runs(node);

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

#[derive(Serialize)]
struct RunOpRef<'a>(u64, u32, &'a OpKind);

#[derive(Deserialize)]
struct RunOp(u64, u32, OpKind);

fn encode_run(ops: &[&StoredOp]) -> Result<Vec<u8>> {
    let items: Vec<RunOpRef<'_>> = ops
        .iter()
        .map(|s| RunOpRef(s.op.hlc.wall_ms, s.op.hlc.counter, &s.op.kind))
        .collect();
    postcard::to_allocvec(&items).map_err(|e| SpokeError::Decode(e.to_string()))
}

/// Decodes one run row into its ops.
fn decode_run(origin: Origin, first_seq: u64, node: NodeId, bytes: &[u8]) -> Result<Vec<StoredOp>> {
    let items: Vec<RunOp> =
        postcard::from_bytes(bytes).map_err(|e| SpokeError::Decode(format!("op run: {e}")))?;
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(i, RunOp(wall_ms, counter, kind))| StoredOp {
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
        .collect())
}

fn row_run(r: &rusqlite::Row<'_>) -> Result<Vec<StoredOp>> {
    let origin = Origin::from_bytes(blob16(r.get(0)?)?);
    let first: i64 = r.get(1)?;
    let node = NodeId::from_bytes(blob16(r.get(2)?)?);
    let bytes: Vec<u8> = r.get(3)?;
    decode_run(origin, first as u64, node, &bytes)
}

fn window_start(seq: u64) -> i64 {
    seq.saturating_sub(MAX_RUN) as i64
}

/// Stores the ops not held yet and returns them (in input order); ops already held are checked to be
/// the same op (a different op at a held position is [`SpokeError::ForkedOp`]) and counted as duplicates.
pub(crate) fn insert<'a>(
    conn: &Connection,
    ops: &'a [StoredOp],
) -> Result<(Vec<&'a StoredOp>, u64)> {
    let mut by_origin: BTreeMap<Origin, Vec<&'a StoredOp>> = BTreeMap::new();
    for s in ops {
        if s.seq == 0 || s.seq > i64::MAX as u64 - MAX_RUN {
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
        "SELECT origin, first_seq, node, ops FROM op_runs
         WHERE origin = ?1 AND first_seq > ?2 AND first_seq <= ?3",
    )?;
    let mut ins = conn.prepare_cached(
        "INSERT INTO op_runs(origin, first_seq, n, node, ops) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut fresh: Vec<&'a StoredOp> = Vec::with_capacity(ops.len());
    let mut duplicates = 0u64;
    for (origin, mut list) in by_origin {
        list.sort_by_key(|s| s.seq);
        let (lo, hi) = (list[0].seq, list[list.len() - 1].seq);
        let key = origin.to_bytes();
        let mut held: BTreeMap<u64, Op> = BTreeMap::new();
        let mut rows = held_q.query(params![&key[..], window_start(lo), hi as i64])?;
        while let Some(r) = rows.next()? {
            for s in row_run(r)? {
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
            let first = new_here[start];
            let mut end = start + 1;
            while end < new_here.len()
                && (end - start) < MAX_RUN as usize
                && new_here[end].seq == new_here[end - 1].seq + 1
                && new_here[end].op.node == first.op.node
            {
                end += 1;
            }
            let run = &new_here[start..end];
            ins.execute(params![
                &key[..],
                first.seq as i64,
                run.len() as i64,
                &first.op.node.to_bytes()[..],
                encode_run(run)?
            ])?;
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
        "SELECT origin, first_seq, node, ops FROM op_runs
         WHERE origin = ?1 AND first_seq > ?2 ORDER BY first_seq",
    )?;
    let mut rows = st.query(params![&origin.to_bytes()[..], window_start(after_seq)])?;
    let mut out = Vec::new();
    while out.len() < limit {
        let Some(r) = rows.next()? else { break };
        for s in row_run(r)? {
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
            "SELECT first_seq + n - 1 FROM op_runs WHERE origin = ?1 ORDER BY first_seq DESC LIMIT 1",
        )?
        .query_row([&origin.to_bytes()[..]], |r| r.get(0))
        .optional()?;
    Ok(v.unwrap_or(0) as u64)
}

/// Every origin in the log with the highest seq held for it, ordered by origin.
pub(crate) fn origins(conn: &Connection) -> Result<Vec<(Origin, u64)>> {
    let mut st = conn.prepare_cached(
        "SELECT origin, max(first_seq + n - 1) FROM op_runs GROUP BY origin ORDER BY origin",
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
    let n: i64 = conn.query_row("SELECT coalesce(sum(n), 0) FROM op_runs", [], |r| r.get(0))?;
    Ok(n as u64)
}

/// All ops of one node (unordered).
pub(crate) fn of_node(conn: &Connection, node: NodeId) -> Result<Vec<StoredOp>> {
    let mut st =
        conn.prepare_cached("SELECT origin, first_seq, node, ops FROM op_runs WHERE node = ?1")?;
    let mut rows = st.query([&node.to_bytes()[..]])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.extend(row_run(r)?);
    }
    Ok(out)
}

/// The op of `node` issued at clock `h`, if held.
pub(crate) fn of_node_at(conn: &Connection, node: NodeId, h: Hlc) -> Result<Option<Op>> {
    let mut st = conn.prepare_cached(
        "SELECT origin, first_seq, node, ops FROM op_runs WHERE node = ?1 AND origin = ?2",
    )?;
    let mut rows = st.query(params![&node.to_bytes()[..], &h.origin.to_bytes()[..]])?;
    while let Some(r) = rows.next()? {
        if let Some(s) = row_run(r)?.into_iter().find(|s| s.op.hlc == h) {
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
    let mut st = conn.prepare("SELECT origin, first_seq, node, ops FROM op_runs ORDER BY node")?;
    let mut rows = st.query([])?;
    let mut cur: Option<(NodeId, Vec<Op>)> = None;
    while let Some(r) = rows.next()? {
        let run = row_run(r)?;
        let Some(node) = run.first().map(|s| s.op.node) else {
            continue;
        };
        match &mut cur {
            Some((n, v)) if *n == node => v.extend(run.into_iter().map(|s| s.op)),
            _ => {
                if let Some((n, v)) = cur.take() {
                    f(n, v)?;
                }
                cur = Some((node, run.into_iter().map(|s| s.op).collect()));
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
    let mut st = conn.prepare("SELECT origin, first_seq, node, ops FROM op_runs")?;
    let mut rows = st.query([])?;
    let mut best: Option<(u64, u32)> = None;
    while let Some(r) = rows.next()? {
        for s in row_run(r)? {
            let c = (s.op.hlc.wall_ms, s.op.hlc.counter);
            best = Some(best.map_or(c, |b| b.max(c)));
        }
    }
    Ok(best)
}

/// The data step of schema version 3: moves the one-row-per-op log of versions 1–2 (`ops`) into runs,
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
