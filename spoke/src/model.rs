//! Read-side views and queries over the materialised tables: nodes, lists, search, history, conflicts.
//!
//! Every view is a plain serde struct; the JSON the CLI prints with `--json` (and the RPC layer returns)
//! is exactly these structs.

use heph_format::{Attention, Field, NodeId, NodeKind, OpKind, TaskState};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::dates::{self, format_date};
use crate::env::Env;
use crate::error::{Result, SpokeError};
use crate::materialise::{attention_from_i64, blob16, kind_from_i64, state_from_i64};
use crate::replica::Replica;

/// Text form of an attention level (`a1`…`a4`).
pub fn attention_str(a: Attention) -> &'static str {
    match a {
        Attention::A1 => "a1",
        Attention::A2 => "a2",
        Attention::A3 => "a3",
        Attention::A4 => "a4",
    }
}

/// Parses `a1`…`a4` (case-insensitive); `none` gives `None`.
pub fn parse_attention(s: &str) -> Result<Option<Attention>> {
    match s.trim().to_ascii_lowercase().as_str() {
        "a1" => Ok(Some(Attention::A1)),
        "a2" => Ok(Some(Attention::A2)),
        "a3" => Ok(Some(Attention::A3)),
        "a4" => Ok(Some(Attention::A4)),
        "none" => Ok(None),
        _ => Err(SpokeError::BadAttention(s.to_owned())),
    }
}

/// Text form of a task state.
pub fn state_str(s: TaskState) -> &'static str {
    match s {
        TaskState::Outstanding => "outstanding",
        TaskState::Done => "done",
        TaskState::Dropped => "dropped",
    }
}

/// Text form of a node kind.
pub fn kind_str(k: NodeKind) -> &'static str {
    match k {
        NodeKind::Task => "task",
        NodeKind::Note => "note",
        NodeKind::Project => "project",
    }
}

/// One node as lists show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    /// The node's ULID.
    pub id: String,
    /// `task`, `note` or `project`.
    pub kind: String,
    /// The title.
    pub title: String,
    /// `outstanding`, `done` or `dropped`.
    pub state: String,
    /// Project name.
    pub project: Option<String>,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// Do date, local `YYYY-MM-DD`.
    pub do_date: Option<String>,
    /// Late-on date, local `YYYY-MM-DD`.
    pub late_on: Option<String>,
    /// `a1`…`a4`.
    pub attention: Option<String>,
    /// Canonical RRULE text.
    pub recurrence: Option<String>,
    /// The recurring series this node belongs to.
    pub series: Option<String>,
    /// Whether the context document holds an unresolved merge conflict.
    pub conflicted: bool,
    /// Whether the node is tombstoned.
    pub deleted: bool,
    /// Do date as stored (Unix ms of local midnight).
    pub do_date_ms: Option<i64>,
    /// Late-on date as stored (Unix ms).
    pub late_on_ms: Option<i64>,
    /// Creation time (Unix ms, from the creating op's clock).
    pub created_ms: Option<i64>,
    /// Time of the newest op (Unix ms).
    pub updated_ms: i64,
}

/// A log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogView {
    /// When it was written (Unix ms).
    pub at_ms: i64,
    /// Which replica wrote it.
    pub origin: String,
    /// The text.
    pub text: String,
}

/// A link from or to a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkView {
    /// The node at the other end.
    pub id: String,
    /// Its title (empty when it is not held yet).
    pub title: String,
    /// The link kind.
    pub kind: String,
    /// `out` (this node links to it) or `in` (it links to this node).
    pub direction: String,
}

/// Everything about one node (`heph show`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDetail {
    /// The list fields.
    #[serde(flatten)]
    pub node: NodeView,
    /// The canonical context document.
    pub context: String,
    /// The clock of the context version (edits name it as their base).
    pub context_version: Option<String>,
    /// Log entries, oldest first.
    pub log: Vec<LogView>,
    /// Links out of and into the node.
    pub links: Vec<LinkView>,
}

/// One search hit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// The node.
    #[serde(flatten)]
    pub node: NodeView,
    /// A snippet with the matches in `[brackets]`.
    pub snippet: String,
    /// bm25 rank (lower is better).
    pub rank: f64,
}

/// One entry of a node's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The op's clock, `wall.counter@origin`.
    pub hlc: String,
    /// Wall time (Unix ms).
    pub at_ms: i64,
    /// Issuing replica.
    pub origin: String,
    /// Position in that replica's chain.
    pub seq: u64,
    /// What the op did, in words.
    pub change: String,
}

/// A project with its outstanding-task count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectView {
    /// The project name.
    pub name: String,
    /// The project node id, when the project was added explicitly.
    pub id: Option<String>,
    /// Outstanding tasks in it.
    pub outstanding: u64,
}

pub(crate) const NODE_COLS: &str = "n.id, n.kind, n.title, n.state, n.project, n.do_date, n.late_on, n.attention, n.recurrence, n.series, n.conflicted, n.deleted, n.created_ms, n.updated_ms, n.tag_list";

/// Formats stored dates, remembering recent answers (lists repeat the same few days many times).
pub(crate) struct DateFmt<'a> {
    env: &'a dyn Env,
    memo: std::collections::HashMap<i64, String>,
}

impl<'a> DateFmt<'a> {
    pub(crate) fn new(env: &'a dyn Env) -> DateFmt<'a> {
        DateFmt {
            env,
            memo: std::collections::HashMap::new(),
        }
    }
    fn fmt(&mut self, ms: i64) -> String {
        if self.memo.len() > 4096 {
            self.memo.clear();
        }
        let env = self.env;
        self.memo
            .entry(ms)
            .or_insert_with(|| format_date(env, ms))
            .clone()
    }
}

pub(crate) fn node_from_row(env: &dyn Env, r: &rusqlite::Row<'_>) -> rusqlite::Result<NodeView> {
    node_from_row_with(&mut DateFmt::new(env), r)
}

pub(crate) fn node_from_row_with(
    dates: &mut DateFmt<'_>,
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<NodeView> {
    let id: Vec<u8> = r.get(0)?;
    let id = NodeId::from_bytes(id.try_into().unwrap_or([0; 16]));
    let series: Option<Vec<u8>> = r.get(9)?;
    // Sorted, joined with U+001F (which a tag cannot contain); empty when the node has none.
    let tag_list: String = r.get(14)?;
    let tags: Vec<String> = tag_list
        .split('\u{1f}')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let do_date: Option<i64> = r.get(5)?;
    let late_on: Option<i64> = r.get(6)?;
    Ok(NodeView {
        id: id.to_string(),
        kind: r
            .get::<_, Option<i64>>(1)?
            .and_then(kind_from_i64)
            .map_or("unknown", kind_str)
            .to_owned(),
        title: r.get(2)?,
        state: state_str(state_from_i64(r.get(3)?)).to_owned(),
        project: r.get(4)?,
        tags,
        do_date: do_date.map(|d| dates.fmt(d)),
        late_on: late_on.map(|d| dates.fmt(d)),
        attention: r
            .get::<_, Option<i64>>(7)?
            .and_then(attention_from_i64)
            .map(|a| attention_str(a).to_owned()),
        recurrence: r.get(8)?,
        series: series
            .and_then(|s| s.try_into().ok())
            .map(|b| NodeId::from_bytes(b).to_string()),
        conflicted: r.get::<_, i64>(10)? != 0,
        deleted: r.get::<_, i64>(11)? != 0,
        do_date_ms: do_date,
        late_on_ms: late_on,
        created_ms: r.get(12)?,
        updated_ms: r.get(13)?,
    })
}

const ALPHABET: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Resolves a full ULID or a unique prefix (≥ 4 characters, Crockford aliases allowed) to a held node.
pub fn resolve_id(replica: &Replica, text: &str) -> Result<NodeId> {
    let norm: String = text
        .trim()
        .chars()
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        })
        .collect();
    if norm.len() < 4 || norm.len() > 26 || !norm.chars().all(|c| ALPHABET.contains(c)) {
        return Err(SpokeError::BadId(text.to_owned()));
    }
    let mut st = replica.connection().prepare_cached(
        "SELECT id_text FROM nodes WHERE id_text >= ?1 AND id_text < ?2 ORDER BY id_text LIMIT 6",
    )?;
    let upper = format!("{norm}~");
    let found: Vec<String> = st
        .query_map(params![norm, upper], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    match found.len() {
        0 => Err(SpokeError::UnknownId(text.to_owned())),
        1 => found[0]
            .parse()
            .map_err(|_| SpokeError::Decode("nodes.id_text is not a ULID".into())),
        _ => Err(SpokeError::AmbiguousId {
            prefix: text.to_owned(),
            candidates: found.into_iter().take(5).collect(),
        }),
    }
}

/// The list view of one node.
pub fn node_view(replica: &Replica, env: &dyn Env, id: NodeId) -> Result<Option<NodeView>> {
    let sql = format!("SELECT {NODE_COLS} FROM nodes n WHERE n.id = ?1");
    Ok(replica
        .connection()
        .prepare_cached(&sql)?
        .query_row([&id.to_bytes()[..]], |r| node_from_row(env, r))
        .optional()?)
}

/// The full view of one node.
pub fn node_detail(replica: &Replica, env: &dyn Env, id: NodeId) -> Result<NodeDetail> {
    let conn = replica.connection();
    let node = node_view(replica, env, id)?.ok_or_else(|| SpokeError::UnknownId(id.to_string()))?;
    type Version = (Option<i64>, Option<i64>, Option<Vec<u8>>);
    let (context, ctx): (String, Version) = conn.query_row(
        "SELECT context, ctx_wall, ctx_counter, ctx_origin FROM nodes WHERE id = ?1",
        [&id.to_bytes()[..]],
        |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))),
    )?;
    let context_version = match ctx {
        (Some(w), Some(c), Some(o)) => Some(format!(
            "{w}.{c}@{}",
            heph_format::Origin::from_bytes(blob16(o)?)
        )),
        _ => None,
    };
    let mut st = conn.prepare_cached(
        "SELECT wall, origin, text FROM log_entries WHERE node = ?1 ORDER BY wall, counter, origin",
    )?;
    let rows = st.query_map([&id.to_bytes()[..]], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, Vec<u8>>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut log = Vec::new();
    for row in rows {
        let (at_ms, o, text) = row?;
        log.push(LogView {
            at_ms,
            origin: heph_format::Origin::from_bytes(blob16(o)?).to_string(),
            text,
        });
    }
    let mut links = Vec::new();
    for (sql, dir) in [
        (
            "SELECT l.target, l.kind, coalesce(n.title, '') FROM links l LEFT JOIN nodes n ON n.id = l.target WHERE l.node = ?1 ORDER BY l.target, l.kind",
            "out",
        ),
        (
            "SELECT l.node, l.kind, coalesce(n.title, '') FROM links l LEFT JOIN nodes n ON n.id = l.node WHERE l.target = ?1 ORDER BY l.node, l.kind",
            "in",
        ),
    ] {
        let mut st = conn.prepare_cached(sql)?;
        let rows = st.query_map([&id.to_bytes()[..]], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
            let (t, kind, title) = row?;
            links.push(LinkView {
                id: NodeId::from_bytes(blob16(t)?).to_string(),
                title,
                kind,
                direction: dir.to_owned(),
            });
        }
    }
    Ok(NodeDetail {
        node,
        context,
        context_version,
        log,
        links,
    })
}

/// Which tasks a list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListFilter {
    /// Only this project.
    #[serde(default)]
    pub project: Option<String>,
    /// Only tasks whose do date or late-on date is today or earlier.
    #[serde(default)]
    pub due: bool,
    /// `outstanding` (default), `done`, `dropped` or `all`.
    #[serde(default)]
    pub state: Option<String>,
    /// Only tasks with this tag.
    #[serde(default)]
    pub tag: Option<String>,
    /// Include notes as well as tasks.
    #[serde(default)]
    pub include_notes: bool,
    /// At most this many.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Tasks matching `filter`, ordered by attention (a1 first), then do date, then id.
pub fn list(replica: &Replica, env: &dyn Env, filter: &ListFilter) -> Result<Vec<NodeView>> {
    let mut sql = format!("SELECT {NODE_COLS} FROM nodes n WHERE n.deleted = 0");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if filter.include_notes {
        sql.push_str(" AND n.kind IN (0, 1)");
    } else {
        sql.push_str(" AND n.kind = 0");
    }
    match filter.state.as_deref().unwrap_or("outstanding") {
        "outstanding" | "pending" => sql.push_str(" AND n.state = 0"),
        "done" | "completed" => sql.push_str(" AND n.state = 1"),
        "dropped" => sql.push_str(" AND n.state = 2"),
        "all" => {}
        other => {
            return Err(SpokeError::Invalid(format!(
                "unknown state {other:?}: use outstanding, done, dropped or all"
            )));
        }
    }
    if let Some(p) = &filter.project {
        args.push(p.clone().into());
        sql.push_str(&format!(" AND n.project = ?{}", args.len()));
    }
    if let Some(t) = &filter.tag {
        args.push(t.clone().into());
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM tags t WHERE t.node = n.id AND t.tag = ?{})",
            args.len()
        ));
    }
    if filter.due {
        let end = dates::local_midnight_ms(env, dates::today(env) + 1);
        args.push(end.into());
        let i = args.len();
        sql.push_str(&format!(" AND (n.do_date < ?{i} OR n.late_on < ?{i})"));
    }
    sql.push_str(" ORDER BY coalesce(n.attention, 3), n.do_date IS NULL, n.do_date, n.id");
    if let Some(l) = filter.limit {
        sql.push_str(&format!(" LIMIT {l}"));
    }
    let mut st = replica.connection().prepare_cached(&sql)?;
    let mut dates = DateFmt::new(env);
    let rows = st.query_map(rusqlite::params_from_iter(args), |r| {
        node_from_row_with(&mut dates, r)
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What to do next: outstanding tasks that are due or undated, most urgent first.
pub fn next(replica: &Replica, env: &dyn Env, limit: u32) -> Result<Vec<NodeView>> {
    let end = dates::local_midnight_ms(env, dates::today(env) + 1);
    let sql = format!(
        "SELECT {NODE_COLS} FROM nodes n WHERE n.deleted = 0 AND n.kind = 0 AND n.state = 0
           AND (n.do_date IS NULL OR n.do_date < ?1)
         ORDER BY coalesce(n.attention, 3), n.late_on IS NULL, n.late_on, n.do_date IS NULL, n.do_date, n.id
         LIMIT ?2"
    );
    let mut st = replica.connection().prepare_cached(&sql)?;
    let rows = st.query_map(params![end, limit], |r| node_from_row(env, r))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Turns user text into an FTS5 query: each word is a quoted prefix token; all must match.
fn fts_query(q: &str) -> Option<String> {
    let toks: Vec<String> = q
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{w}\"*"))
        .collect();
    if toks.is_empty() {
        None
    } else {
        Some(toks.join(" "))
    }
}

/// Full-text search over titles, context documents and logs, best first.
pub fn search(replica: &Replica, env: &dyn Env, query: &str, limit: u32) -> Result<Vec<SearchHit>> {
    let Some(q) = fts_query(query) else {
        return Err(SpokeError::Invalid(
            "the search query has no words to look for".into(),
        ));
    };
    let sql = format!(
        "SELECT {NODE_COLS}, snippet(fts, -1, '[', ']', '…', 12), bm25(fts, 10.0, 2.0, 1.0)
         FROM fts JOIN nodes n ON n.rowid = fts.rowid
         WHERE fts MATCH ?1 AND n.deleted = 0 ORDER BY bm25(fts, 10.0, 2.0, 1.0), n.id LIMIT ?2"
    );
    let mut st = replica.connection().prepare_cached(&sql)?;
    let rows = st.query_map(params![q, limit], |r| {
        Ok(SearchHit {
            node: node_from_row(env, r)?,
            snippet: r.get(15)?,
            rank: r.get(16)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Nodes whose context document holds an unresolved conflict.
pub fn conflicts(replica: &Replica, env: &dyn Env) -> Result<Vec<NodeView>> {
    let sql = format!(
        "SELECT {NODE_COLS} FROM nodes n WHERE n.conflicted = 1 AND n.deleted = 0 ORDER BY n.id"
    );
    let mut st = replica.connection().prepare_cached(&sql)?;
    let rows = st.query_map([], |r| node_from_row(env, r))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Projects: explicitly added ones and every project name tasks use, with outstanding counts.
pub fn projects(replica: &Replica) -> Result<Vec<ProjectView>> {
    let mut st = replica.connection().prepare_cached(
        "SELECT name, max(node), sum(cnt) FROM (
             SELECT title AS name, id AS node, 0 AS cnt FROM nodes WHERE kind = 2 AND deleted = 0
             UNION ALL
             SELECT project, NULL, sum(state = 0) FROM nodes
               WHERE kind IN (0, 1) AND deleted = 0 AND project IS NOT NULL GROUP BY project)
         GROUP BY name ORDER BY name",
    )?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<Vec<u8>>>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (name, node, n) = row?;
        out.push(ProjectView {
            name,
            id: node
                .map(blob16)
                .transpose()?
                .map(|b| NodeId::from_bytes(b).to_string()),
            outstanding: n as u64,
        });
    }
    Ok(out)
}

/// Describes an op in words (for history).
pub fn describe(env: &dyn Env, kind: &OpKind) -> String {
    let date = |d: &Option<i64>| d.map_or("none".to_owned(), |d| format_date(env, d));
    match kind {
        OpKind::Create { kind } => format!("created {}", kind_str(*kind)),
        OpKind::Set(f) => match f {
            Field::Title(t) => format!("title = {t:?}"),
            Field::State(s) => format!("state = {}", state_str(*s)),
            Field::DoDate(d) => format!("do date = {}", date(d)),
            Field::LateOn(d) => format!("late on = {}", date(d)),
            Field::Recurrence(r) => format!("recurrence = {}", r.as_deref().unwrap_or("none")),
            Field::Attention(a) => format!("attention = {}", a.map_or("none", attention_str)),
            Field::Project(p) => format!("project = {}", p.as_deref().unwrap_or("none")),
            Field::Series(s) => format!("series = {}", s.map_or("none".into(), |s| s.to_string())),
        },
        OpKind::Tag { tag, present } => {
            format!("{} tag {tag}", if *present { "added" } else { "removed" })
        }
        OpKind::Link {
            target,
            link_kind,
            present,
        } => format!(
            "{} {link_kind} link to {target}",
            if *present { "added" } else { "removed" }
        ),
        OpKind::Log { text } => format!("log: {text}"),
        OpKind::Context { base, text } => format!(
            "context edit ({} lines) on {}",
            text.lines().count(),
            base.map_or("the empty document".to_owned(), |b| format!("version {b}"))
        ),
        OpKind::Delete => "deleted".to_owned(),
        OpKind::Restore => "restored".to_owned(),
    }
}

/// Every op of a node in HLC order, described.
pub fn history(replica: &Replica, env: &dyn Env, id: NodeId) -> Result<Vec<HistoryEntry>> {
    Ok(replica
        .node_ops(id)?
        .into_iter()
        .map(|s| HistoryEntry {
            hlc: s.op.hlc.to_string(),
            at_ms: s.op.hlc.wall_ms as i64,
            origin: s.origin.to_string(),
            seq: s.seq,
            change: describe(env, &s.op.kind),
        })
        .collect())
}
