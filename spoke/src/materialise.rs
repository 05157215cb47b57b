//! Folding a node's ops into its materialised rows (nodes, tags, links, log entries, FTS).
//!
//! **Invariant:** a node's rows depend only on the set of that node's ops, folded in HLC order. The
//! replica applies a batch incrementally when every new op is newer than everything the node already
//! reflects, and otherwise re-folds that one node from all its ops; both give the same rows.

use std::collections::BTreeSet;

use heph_format::{Attention, Field, Hlc, NodeId, NodeKind, Op, OpKind, Origin, TaskState};
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Result, SpokeError};
use crate::merge::{has_conflict_markers, merge3};

pub(crate) fn kind_to_i64(k: NodeKind) -> i64 {
    match k {
        NodeKind::Task => 0,
        NodeKind::Note => 1,
        NodeKind::Project => 2,
    }
}

pub(crate) fn kind_from_i64(v: i64) -> Option<NodeKind> {
    match v {
        0 => Some(NodeKind::Task),
        1 => Some(NodeKind::Note),
        2 => Some(NodeKind::Project),
        _ => None,
    }
}

pub(crate) fn state_to_i64(s: TaskState) -> i64 {
    match s {
        TaskState::Outstanding => 0,
        TaskState::Done => 1,
        TaskState::Dropped => 2,
    }
}

pub(crate) fn state_from_i64(v: i64) -> TaskState {
    match v {
        1 => TaskState::Done,
        2 => TaskState::Dropped,
        _ => TaskState::Outstanding,
    }
}

pub(crate) fn attention_to_i64(a: Attention) -> i64 {
    match a {
        Attention::A1 => 1,
        Attention::A2 => 2,
        Attention::A3 => 3,
        Attention::A4 => 4,
    }
}

pub(crate) fn attention_from_i64(v: i64) -> Option<Attention> {
    match v {
        1 => Some(Attention::A1),
        2 => Some(Attention::A2),
        3 => Some(Attention::A3),
        4 => Some(Attention::A4),
        _ => None,
    }
}

pub(crate) fn blob16(v: Vec<u8>) -> Result<[u8; 16]> {
    v.try_into()
        .map_err(|_| SpokeError::Decode("an id column is not 16 bytes".into()))
}

pub(crate) fn decode_op(bytes: &[u8]) -> Result<Op> {
    postcard::from_bytes(bytes).map_err(|e| SpokeError::Decode(e.to_string()))
}

/// One node's materialised state while ops are folded into it.
#[derive(Debug, Clone)]
pub(crate) struct NodeState {
    pub(crate) id: NodeId,
    pub(crate) rowid: Option<i64>,
    pub(crate) kind: Option<NodeKind>,
    pub(crate) title: String,
    pub(crate) state: TaskState,
    pub(crate) do_date: Option<i64>,
    pub(crate) late_on: Option<i64>,
    pub(crate) recurrence: Option<String>,
    pub(crate) attention: Option<Attention>,
    pub(crate) project: Option<String>,
    pub(crate) series: Option<NodeId>,
    pub(crate) context: String,
    pub(crate) ctx_head: Option<Hlc>,
    pub(crate) conflicted: bool,
    pub(crate) deleted: bool,
    pub(crate) created_ms: Option<u64>,
    pub(crate) updated_ms: u64,
    pub(crate) max: Option<Hlc>,
    pub(crate) tags: BTreeSet<String>,
    pub(crate) links: BTreeSet<(NodeId, String)>,
    new_logs: Vec<(Hlc, String)>,
    logs_reset: bool,
    tags_dirty: bool,
    links_dirty: bool,
    fts_dirty: bool,
}

impl NodeState {
    pub(crate) fn empty(id: NodeId, rowid: Option<i64>) -> NodeState {
        NodeState {
            id,
            rowid,
            kind: None,
            title: String::new(),
            state: TaskState::Outstanding,
            do_date: None,
            late_on: None,
            recurrence: None,
            attention: None,
            project: None,
            series: None,
            context: String::new(),
            ctx_head: None,
            conflicted: false,
            deleted: false,
            created_ms: None,
            updated_ms: 0,
            max: None,
            tags: BTreeSet::new(),
            links: BTreeSet::new(),
            new_logs: Vec::new(),
            logs_reset: rowid.is_some(),
            tags_dirty: true,
            links_dirty: true,
            fts_dirty: true,
        }
    }

    /// Loads a node's current rows, or `None` when no op for it has been applied yet.
    pub(crate) fn load(conn: &Connection, id: NodeId) -> Result<Option<NodeState>> {
        let mut st = conn.prepare_cached(
            "SELECT rowid, kind, title, state, do_date, late_on, recurrence, attention, project, series,
                    context, ctx_wall, ctx_counter, ctx_origin, conflicted, deleted, created_ms, updated_ms,
                    max_wall, max_counter, max_origin
             FROM nodes WHERE id = ?1",
        )?;
        let row = st
            .query_row([&id.to_bytes()[..]], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, Option<i64>>(7)?,
                    r.get::<_, Option<String>>(8)?,
                    r.get::<_, Option<Vec<u8>>>(9)?,
                    r.get::<_, String>(10)?,
                    (
                        r.get::<_, Option<i64>>(11)?,
                        r.get::<_, Option<i64>>(12)?,
                        r.get::<_, Option<Vec<u8>>>(13)?,
                    ),
                    (r.get::<_, i64>(14)?, r.get::<_, i64>(15)?),
                    (r.get::<_, Option<i64>>(16)?, r.get::<_, i64>(17)?),
                    (
                        r.get::<_, i64>(18)?,
                        r.get::<_, i64>(19)?,
                        r.get::<_, Vec<u8>>(20)?,
                    ),
                ))
            })
            .optional()?;
        let Some((
            rowid,
            kind,
            title,
            state,
            do_date,
            late_on,
            recurrence,
            attention,
            project,
            series,
            context,
            ctx,
            flags,
            times,
            max,
        )) = row
        else {
            return Ok(None);
        };
        let ctx_head = match ctx {
            (Some(w), Some(c), Some(o)) => Some(Hlc {
                wall_ms: w as u64,
                counter: c as u32,
                origin: Origin::from_bytes(blob16(o)?),
            }),
            _ => None,
        };
        let mut n = NodeState::empty(id, Some(rowid));
        n.kind = kind.and_then(kind_from_i64);
        n.title = title;
        n.state = state_from_i64(state);
        n.do_date = do_date;
        n.late_on = late_on;
        n.recurrence = recurrence;
        n.attention = attention.and_then(attention_from_i64);
        n.project = project;
        n.series = series.map(blob16).transpose()?.map(NodeId::from_bytes);
        n.context = context;
        n.ctx_head = ctx_head;
        n.conflicted = flags.0 != 0;
        n.deleted = flags.1 != 0;
        n.created_ms = times.0.map(|v| v as u64);
        n.updated_ms = times.1 as u64;
        n.max = Some(Hlc {
            wall_ms: max.0 as u64,
            counter: max.1 as u32,
            origin: Origin::from_bytes(blob16(max.2)?),
        });
        let mut st = conn.prepare_cached("SELECT tag FROM tags WHERE node = ?1")?;
        n.tags = st
            .query_map([&id.to_bytes()[..]], |r| r.get::<_, String>(0))?
            .collect::<Result<_, _>>()?;
        let mut st = conn.prepare_cached("SELECT target, kind FROM links WHERE node = ?1")?;
        let links: Vec<(Vec<u8>, String)> = st
            .query_map([&id.to_bytes()[..]], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (t, k) in links {
            n.links.insert((NodeId::from_bytes(blob16(t)?), k));
        }
        n.logs_reset = false;
        n.tags_dirty = false;
        n.links_dirty = false;
        n.fts_dirty = false;
        Ok(Some(n))
    }

    /// Folds one op (which must order after every op already folded) into the state.
    /// `base_text` returns the text of the context op with the given clock, if it is held.
    pub(crate) fn apply(
        &mut self,
        op: &Op,
        base_text: &mut dyn FnMut(Hlc) -> Result<Option<String>>,
    ) -> Result<()> {
        if self.max.is_none_or(|m| op.hlc > m) {
            self.max = Some(op.hlc);
            self.updated_ms = op.hlc.wall_ms;
        }
        match &op.kind {
            OpKind::Create { kind } => {
                if self.kind.is_none() {
                    self.kind = Some(*kind);
                    self.created_ms = Some(op.hlc.wall_ms);
                }
            }
            OpKind::Set(field) => match field {
                Field::Title(t) => {
                    self.title = t.clone();
                    self.fts_dirty = true;
                }
                Field::State(s) => self.state = *s,
                Field::DoDate(d) => self.do_date = *d,
                Field::LateOn(d) => self.late_on = *d,
                Field::Recurrence(r) => self.recurrence = r.clone(),
                Field::Attention(a) => self.attention = *a,
                Field::Project(p) => self.project = p.clone(),
                Field::Series(s) => self.series = *s,
            },
            OpKind::Tag { tag, present } => {
                if *present {
                    self.tags.insert(tag.clone());
                } else {
                    self.tags.remove(tag);
                }
                self.tags_dirty = true;
            }
            OpKind::Link {
                target,
                link_kind,
                present,
            } => {
                let key = (*target, link_kind.clone());
                if *present {
                    self.links.insert(key);
                } else {
                    self.links.remove(&key);
                }
                self.links_dirty = true;
            }
            OpKind::Log { text } => {
                self.new_logs.push((op.hlc, text.clone()));
                self.fts_dirty = true;
            }
            OpKind::Context { base, text } => {
                let base_doc = match base {
                    // A base that does not order before the edit cannot have been seen by its author.
                    Some(b) if *b < op.hlc => base_text(*b)?.unwrap_or_default(),
                    _ => String::new(),
                };
                let merged = merge3(&base_doc, &self.context, text, &op.hlc.to_string());
                self.context = merged.text;
                self.ctx_head = Some(op.hlc);
                self.conflicted = has_conflict_markers(&self.context);
                self.fts_dirty = true;
            }
            OpKind::Delete => self.deleted = true,
            OpKind::Restore => self.deleted = false,
        }
        Ok(())
    }

    /// Writes the state back to the materialised tables.
    pub(crate) fn store(&mut self, conn: &Connection) -> Result<()> {
        let id = self.id.to_bytes();
        let max = self.max.unwrap_or_default();
        let ctx = self.ctx_head;
        // BTreeSet order: sorted.
        let tag_list = self
            .tags
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\u{1f}");
        let values = params![
            self.kind.map(kind_to_i64),
            self.title,
            state_to_i64(self.state),
            self.do_date,
            self.late_on,
            self.recurrence,
            self.attention.map(attention_to_i64),
            self.project,
            self.series.map(|s| s.to_bytes().to_vec()),
            self.context,
            ctx.map(|h| h.wall_ms as i64),
            ctx.map(|h| i64::from(h.counter)),
            ctx.map(|h| h.origin.to_bytes().to_vec()),
            i64::from(self.conflicted),
            i64::from(self.deleted),
            self.created_ms.map(|v| v as i64),
            self.updated_ms as i64,
            max.wall_ms as i64,
            i64::from(max.counter),
            &max.origin.to_bytes()[..],
            tag_list,
            &id[..],
        ];
        let new_row = self.rowid.is_none();
        match self.rowid {
            None => {
                let mut st = conn.prepare_cached(
                    "INSERT INTO nodes(kind, title, state, do_date, late_on, recurrence, attention, project, series,
                        context, ctx_wall, ctx_counter, ctx_origin, conflicted, deleted, created_ms, updated_ms,
                        max_wall, max_counter, max_origin, tag_list, id, id_text)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)",
                )?;
                let text = self.id.to_string();
                let mut all: Vec<&dyn rusqlite::ToSql> = values.to_vec();
                all.push(&text);
                st.execute(&all[..])?;
                self.rowid = Some(conn.last_insert_rowid());
            }
            Some(_) => {
                let mut st = conn.prepare_cached(
                    "UPDATE nodes SET kind = ?1, title = ?2, state = ?3, do_date = ?4, late_on = ?5, recurrence = ?6,
                        attention = ?7, project = ?8, series = ?9, context = ?10, ctx_wall = ?11, ctx_counter = ?12,
                        ctx_origin = ?13, conflicted = ?14, deleted = ?15, created_ms = ?16, updated_ms = ?17,
                        max_wall = ?18, max_counter = ?19, max_origin = ?20, tag_list = ?21
                     WHERE id = ?22",
                )?;
                st.execute(values)?;
            }
        }
        if self.logs_reset {
            conn.prepare_cached("DELETE FROM log_entries WHERE node = ?1")?
                .execute([&id[..]])?;
        }
        if !self.new_logs.is_empty() {
            let mut st = conn.prepare_cached(
                "INSERT OR IGNORE INTO log_entries(node, wall, counter, origin, text) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (h, text) in &self.new_logs {
                st.execute(params![
                    &id[..],
                    h.wall_ms as i64,
                    i64::from(h.counter),
                    &h.origin.to_bytes()[..],
                    text
                ])?;
            }
        }
        if self.tags_dirty {
            if !new_row {
                conn.prepare_cached("DELETE FROM tags WHERE node = ?1")?
                    .execute([&id[..]])?;
            }
            let mut st = conn.prepare_cached("INSERT INTO tags(node, tag) VALUES (?1, ?2)")?;
            for t in &self.tags {
                st.execute(params![&id[..], t])?;
            }
        }
        if self.links_dirty {
            if !new_row {
                conn.prepare_cached("DELETE FROM links WHERE node = ?1")?
                    .execute([&id[..]])?;
            }
            let mut st =
                conn.prepare_cached("INSERT INTO links(node, target, kind) VALUES (?1, ?2, ?3)")?;
            for (t, k) in &self.links {
                st.execute(params![&id[..], &t.to_bytes()[..], k])?;
            }
        }
        if self.fts_dirty {
            let rowid = self.rowid.unwrap_or_default();
            let log: String = if new_row || self.logs_reset {
                let texts: Vec<&str> = self.new_logs.iter().map(|(_, t)| t.as_str()).collect();
                texts.join("\n")
            } else {
                conn.prepare_cached("DELETE FROM fts WHERE rowid = ?1")?
                    .execute([rowid])?;
                let mut st = conn.prepare_cached(
                    "SELECT text FROM log_entries WHERE node = ?1 ORDER BY wall, counter, origin",
                )?;
                let texts: Vec<String> = st
                    .query_map([&id[..]], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                texts.join("\n")
            };
            if !new_row && self.logs_reset {
                conn.prepare_cached("DELETE FROM fts WHERE rowid = ?1")?
                    .execute([rowid])?;
            }
            conn.prepare_cached(
                "INSERT INTO fts(rowid, title, context, log) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![rowid, self.title, self.context, log])?;
        }
        self.new_logs.clear();
        self.logs_reset = false;
        self.tags_dirty = false;
        self.links_dirty = false;
        self.fts_dirty = false;
        Ok(())
    }
}
