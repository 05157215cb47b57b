//! The operations the CLI, the daemon and the PWA perform: typed requests in, views out.
//!
//! Each write validates everything first, then issues its ops in one [`Replica::commit_local`] call, so a
//! rejected request leaves the store unchanged.

use heph_format::{Field, Hlc, NodeId, NodeKind, Op, OpKind, TaskState};
use serde::{Deserialize, Serialize};

use crate::dates::{self, local_day, local_midnight_ms};
use crate::env::Env;
use crate::error::{Result, SpokeError};
use crate::materialise::NodeState;
use crate::model::{self, NodeDetail, NodeView, parse_attention, resolve_id};
use crate::recur::{Rule, normalise};
use crate::replica::{Replica, mint_node_id};

/// `task.add`: create a task (or a note).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddTask {
    /// The title (must not be empty).
    pub title: String,
    /// Project name.
    #[serde(default)]
    pub project: Option<String>,
    /// Do date in the CLI date language.
    #[serde(default)]
    pub do_date: Option<String>,
    /// Late-on date in the CLI date language.
    #[serde(default)]
    pub late_on: Option<String>,
    /// `a1`…`a4`.
    #[serde(default)]
    pub attention: Option<String>,
    /// Recurrence in the CLI language or RRULE.
    #[serde(default)]
    pub recur: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// `task` (default) or `note`.
    #[serde(default)]
    pub kind: Option<String>,
    /// An initial context document.
    #[serde(default)]
    pub context: Option<String>,
}

/// `task.edit`: change fields; `Some("none")` clears a clearable field, `None` leaves it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditTask {
    /// Id or prefix.
    pub id: String,
    /// New title.
    #[serde(default)]
    pub title: Option<String>,
    /// New do date or `none`.
    #[serde(default)]
    pub do_date: Option<String>,
    /// New late-on date or `none`.
    #[serde(default)]
    pub late_on: Option<String>,
    /// New recurrence or `none`.
    #[serde(default)]
    pub recur: Option<String>,
    /// New attention or `none`.
    #[serde(default)]
    pub attention: Option<String>,
    /// New project or `none`.
    #[serde(default)]
    pub project: Option<String>,
}

/// What `task.done` / `task.skip` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completed {
    /// The node after the change.
    pub node: NodeView,
    /// The next occurrence created for a recurring task.
    pub next: Option<NodeView>,
}

/// What `undo` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undone {
    /// The label of the undone action.
    pub action: String,
    /// How many inverse ops were written.
    pub ops: u64,
    /// Changes that cannot be undone (log entries are append-only).
    pub skipped: Vec<String>,
}

fn clean_title(t: &str) -> Result<String> {
    let t = t.trim();
    if t.is_empty() {
        return Err(SpokeError::EmptyTitle);
    }
    if t.contains('\n') {
        return Err(SpokeError::Invalid("the title must be one line".into()));
    }
    Ok(t.to_owned())
}

fn clean_tag(t: &str) -> Result<String> {
    let t = t.trim().trim_start_matches('+');
    if t.is_empty() || t.chars().any(|c| c.is_whitespace() || c == '\u{1f}') {
        return Err(SpokeError::Invalid(format!(
            "invalid tag {t:?}: tags are single words"
        )));
    }
    Ok(t.to_owned())
}

fn opt_text(v: Option<&str>) -> Option<String> {
    v.map(str::trim)
        .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("none"))
        .map(str::to_owned)
}

struct Batch<'a> {
    replica: &'a mut Replica,
    env: &'a dyn Env,
    ops: Vec<Op>,
}

impl<'a> Batch<'a> {
    fn new(replica: &'a mut Replica, env: &'a dyn Env) -> Batch<'a> {
        Batch {
            replica,
            env,
            ops: Vec::new(),
        }
    }
    fn push(&mut self, node: NodeId, kind: OpKind) -> Hlc {
        let hlc = self.replica.tick(self.env);
        self.ops.push(Op { hlc, node, kind });
        hlc
    }
    fn commit(self, label: &str) -> Result<()> {
        self.replica.commit_local(Some(label), self.ops)?;
        Ok(())
    }
}

fn load(replica: &Replica, id: NodeId) -> Result<NodeState> {
    NodeState::load(replica.connection(), id)?.ok_or_else(|| SpokeError::UnknownId(id.to_string()))
}

fn view(replica: &Replica, env: &dyn Env, id: NodeId) -> Result<NodeView> {
    model::node_view(replica, env, id)?.ok_or_else(|| SpokeError::UnknownId(id.to_string()))
}

/// Creates a task or note.
pub fn add_task(replica: &mut Replica, env: &dyn Env, req: &AddTask) -> Result<NodeView> {
    let title = clean_title(&req.title)?;
    let kind = match req.kind.as_deref().unwrap_or("task") {
        "task" => NodeKind::Task,
        "note" => NodeKind::Note,
        other => {
            return Err(SpokeError::Invalid(format!(
                "unknown kind {other:?}: use task or note"
            )));
        }
    };
    let do_date = req
        .do_date
        .as_deref()
        .map(|d| dates::parse_date_ms(env, d))
        .transpose()?
        .flatten();
    let late_on = req
        .late_on
        .as_deref()
        .map(|d| dates::parse_date_ms(env, d))
        .transpose()?
        .flatten();
    let attention = req
        .attention
        .as_deref()
        .map(parse_attention)
        .transpose()?
        .flatten();
    let recur = req.recur.as_deref().map(normalise).transpose()?.flatten();
    let tags = req
        .tags
        .iter()
        .map(|t| clean_tag(t))
        .collect::<Result<Vec<_>>>()?;
    let project = opt_text(req.project.as_deref());
    let id = mint_node_id(env);
    let mut b = Batch::new(replica, env);
    b.push(id, OpKind::Create { kind });
    b.push(id, OpKind::Set(Field::Title(title)));
    if let Some(p) = project {
        b.push(id, OpKind::Set(Field::Project(Some(p))));
    }
    if do_date.is_some() {
        b.push(id, OpKind::Set(Field::DoDate(do_date)));
    } else if recur.is_some() {
        // A recurring task needs an anchor day for its next occurrence.
        let today = local_midnight_ms(env, dates::today(env));
        b.push(id, OpKind::Set(Field::DoDate(Some(today))));
    }
    if late_on.is_some() {
        b.push(id, OpKind::Set(Field::LateOn(late_on)));
    }
    if attention.is_some() {
        b.push(id, OpKind::Set(Field::Attention(attention)));
    }
    if recur.is_some() {
        b.push(id, OpKind::Set(Field::Recurrence(recur)));
    }
    for tag in tags {
        b.push(id, OpKind::Tag { tag, present: true });
    }
    if let Some(text) = &req.context {
        b.push(
            id,
            OpKind::Context {
                base: None,
                text: text.clone(),
            },
        );
    }
    b.commit("add")?;
    view(replica, env, id)
}

/// Edits fields of a node.
pub fn edit_task(replica: &mut Replica, env: &dyn Env, req: &EditTask) -> Result<NodeView> {
    let id = resolve_id(replica, &req.id)?;
    let cur = load(replica, id)?;
    let mut sets = Vec::new();
    if let Some(t) = &req.title {
        sets.push(Field::Title(clean_title(t)?));
    }
    if let Some(d) = &req.do_date {
        sets.push(Field::DoDate(dates::parse_date_ms(env, d)?));
    }
    if let Some(d) = &req.late_on {
        sets.push(Field::LateOn(dates::parse_date_ms(env, d)?));
    }
    if let Some(r) = &req.recur {
        let r = normalise(r)?;
        if r.is_some() && cur.do_date.is_none() && req.do_date.is_none() {
            sets.push(Field::DoDate(Some(local_midnight_ms(
                env,
                dates::today(env),
            ))));
        }
        sets.push(Field::Recurrence(r));
    }
    if let Some(a) = &req.attention {
        sets.push(Field::Attention(parse_attention(a)?));
    }
    if let Some(p) = &req.project {
        sets.push(Field::Project(opt_text(Some(p))));
    }
    if sets.is_empty() {
        return Err(SpokeError::Invalid(
            "nothing to change: give --title, --do-date, --late-on, --recur, --attention or --project".into(),
        ));
    }
    let mut b = Batch::new(replica, env);
    for f in sets {
        b.push(id, OpKind::Set(f));
    }
    b.commit("edit")?;
    view(replica, env, id)
}

/// Ops that create the next occurrence of a recurring node `cur`, after day `from_day`.
fn next_occurrence(b: &mut Batch<'_>, cur: &NodeState, rule_text: &str) -> Result<NodeId> {
    let rule = Rule::from_rrule(rule_text)?;
    let env = b.env;
    let anchor_day = cur
        .do_date
        .map(|d| local_day(env, d))
        .unwrap_or_else(|| dates::today(env));
    let next_day = rule.next_after(anchor_day);
    let next_ms = local_midnight_ms(env, next_day);
    let series = cur.series.unwrap_or(cur.id);
    let next = NodeId::occurrence(series, next_ms);
    b.push(
        next,
        OpKind::Create {
            kind: cur.kind.unwrap_or(NodeKind::Task),
        },
    );
    b.push(next, OpKind::Set(Field::Title(cur.title.clone())));
    b.push(next, OpKind::Set(Field::Series(Some(series))));
    b.push(
        next,
        OpKind::Set(Field::Recurrence(Some(rule_text.to_owned()))),
    );
    b.push(next, OpKind::Set(Field::DoDate(Some(next_ms))));
    if let (Some(late), Some(dd)) = (cur.late_on, cur.do_date) {
        b.push(
            next,
            OpKind::Set(Field::LateOn(Some(next_ms + (late - dd)))),
        );
    }
    if cur.attention.is_some() {
        b.push(next, OpKind::Set(Field::Attention(cur.attention)));
    }
    if cur.project.is_some() {
        b.push(next, OpKind::Set(Field::Project(cur.project.clone())));
    }
    for t in &cur.tags {
        b.push(
            next,
            OpKind::Tag {
                tag: t.clone(),
                present: true,
            },
        );
    }
    Ok(next)
}

fn finish(
    replica: &mut Replica,
    env: &dyn Env,
    id_text: &str,
    state: TaskState,
    skip: bool,
) -> Result<Completed> {
    let id = resolve_id(replica, id_text)?;
    let cur = load(replica, id)?;
    if cur.deleted {
        return Err(SpokeError::NotApplicable(format!("{id} is deleted")));
    }
    if skip && cur.recurrence.is_none() {
        return Err(SpokeError::NotApplicable(format!(
            "{id} is not recurring: skip applies to an occurrence of a recurring task (use drop)"
        )));
    }
    if cur.state == state {
        return Err(SpokeError::NotApplicable(format!(
            "{id} is already {}",
            model::state_str(state)
        )));
    }
    let mut b = Batch::new(replica, env);
    b.push(id, OpKind::Set(Field::State(state)));
    if skip {
        b.push(
            id,
            OpKind::Log {
                text: "skipped this occurrence".into(),
            },
        );
    }
    let mut next = None;
    if (cur.state == TaskState::Outstanding && state != TaskState::Dropped || skip)
        && let Some(rule) = &cur.recurrence
    {
        next = Some(next_occurrence(&mut b, &cur, rule)?);
    }
    b.commit(if skip {
        "skip"
    } else if state == TaskState::Done {
        "done"
    } else {
        "drop"
    })?;
    Ok(Completed {
        node: view(replica, env, id)?,
        next: next.map(|n| view(replica, env, n)).transpose()?,
    })
}

/// Marks a task done (creating the next occurrence of a recurring one).
pub fn done(replica: &mut Replica, env: &dyn Env, id: &str) -> Result<Completed> {
    finish(replica, env, id, TaskState::Done, false)
}

/// Drops a task (a recurring series ends here).
pub fn drop_task(replica: &mut Replica, env: &dyn Env, id: &str) -> Result<Completed> {
    finish(replica, env, id, TaskState::Dropped, false)
}

/// Skips this occurrence of a recurring task (dropped, and the next occurrence created).
pub fn skip(replica: &mut Replica, env: &dyn Env, id: &str) -> Result<Completed> {
    finish(replica, env, id, TaskState::Dropped, true)
}

/// Reopens a done or dropped task.
pub fn reopen(replica: &mut Replica, env: &dyn Env, id: &str) -> Result<NodeView> {
    let id = resolve_id(replica, id)?;
    let mut b = Batch::new(replica, env);
    b.push(id, OpKind::Set(Field::State(TaskState::Outstanding)));
    b.commit("reopen")?;
    view(replica, env, id)
}

/// Tombstones (`delete = true`) or restores a node.
pub fn set_deleted(
    replica: &mut Replica,
    env: &dyn Env,
    id: &str,
    delete: bool,
) -> Result<NodeView> {
    let id = resolve_id(replica, id)?;
    let mut b = Batch::new(replica, env);
    b.push(
        id,
        if delete {
            OpKind::Delete
        } else {
            OpKind::Restore
        },
    );
    b.commit(if delete { "delete" } else { "restore" })?;
    view(replica, env, id)
}

/// Writes a new context document on top of the version this replica shows.
fn write_context(b: &mut Batch<'_>, cur: &NodeState, text: String) -> Result<()> {
    let mut base = cur.ctx_head;
    if let Some(head) = cur.ctx_head {
        // When the shown document is a merge result (not the head edit's own text), record it as a
        // version first, so the new edit's base is exactly what its author saw.
        let head_text = b
            .replica
            .node_ops(cur.id)?
            .into_iter()
            .find(|s| s.op.hlc == head)
            .and_then(|s| match s.op.kind {
                OpKind::Context { text, .. } => Some(text),
                _ => None,
            });
        if head_text.as_deref() != Some(cur.context.as_str()) {
            base = Some(b.push(
                cur.id,
                OpKind::Context {
                    base: Some(head),
                    text: cur.context.clone(),
                },
            ));
        }
    }
    b.push(cur.id, OpKind::Context { base, text });
    Ok(())
}

/// `task.context`: replace (`body`) or append to (`append`) the context document; with neither, show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextEdit {
    /// Id or prefix.
    pub id: String,
    /// Text to append as new lines.
    #[serde(default)]
    pub append: Option<String>,
    /// The full new document.
    #[serde(default)]
    pub body: Option<String>,
}

/// Edits or shows a context document.
pub fn context(replica: &mut Replica, env: &dyn Env, req: &ContextEdit) -> Result<NodeDetail> {
    let id = resolve_id(replica, &req.id)?;
    let cur = load(replica, id)?;
    let new = match (&req.append, &req.body) {
        (Some(_), Some(_)) => {
            return Err(SpokeError::Invalid(
                "give either --append or --body, not both".into(),
            ));
        }
        (Some(a), None) => {
            let mut doc = cur.context.clone();
            if !doc.is_empty() && !doc.ends_with('\n') {
                doc.push('\n');
            }
            doc.push_str(a);
            if !doc.ends_with('\n') {
                doc.push('\n');
            }
            Some(doc)
        }
        (None, Some(body)) => Some(body.clone()),
        (None, None) => None,
    };
    if let Some(text) = new
        && text != cur.context
    {
        let mut b = Batch::new(replica, env);
        write_context(&mut b, &cur, text)?;
        b.commit("context")?;
    }
    model::node_detail(replica, env, id)
}

/// Appends a log entry.
pub fn log(replica: &mut Replica, env: &dyn Env, id: &str, text: &str) -> Result<NodeDetail> {
    let id = resolve_id(replica, id)?;
    if text.trim().is_empty() {
        return Err(SpokeError::Invalid(
            "the log entry must not be empty".into(),
        ));
    }
    let mut b = Batch::new(replica, env);
    b.push(
        id,
        OpKind::Log {
            text: text.to_owned(),
        },
    );
    b.commit("log")?;
    model::node_detail(replica, env, id)
}

/// Adds (`present`) or removes a tag.
pub fn tag(
    replica: &mut Replica,
    env: &dyn Env,
    id: &str,
    tag: &str,
    present: bool,
) -> Result<NodeView> {
    let id = resolve_id(replica, id)?;
    let tag = clean_tag(tag)?;
    let mut b = Batch::new(replica, env);
    b.push(id, OpKind::Tag { tag, present });
    b.commit(if present { "tag" } else { "untag" })?;
    view(replica, env, id)
}

/// Adds (`present`) or removes a typed link from `id` to `target`.
pub fn link(
    replica: &mut Replica,
    env: &dyn Env,
    id: &str,
    target: &str,
    kind: Option<&str>,
    present: bool,
) -> Result<NodeDetail> {
    let from = resolve_id(replica, id)?;
    let to = resolve_id(replica, target)?;
    if from == to {
        return Err(SpokeError::Invalid("a node cannot link to itself".into()));
    }
    let link_kind = kind
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .unwrap_or("related")
        .to_owned();
    if link_kind.chars().any(char::is_whitespace) {
        return Err(SpokeError::Invalid(format!(
            "invalid link kind {link_kind:?}: one word"
        )));
    }
    let mut b = Batch::new(replica, env);
    b.push(
        from,
        OpKind::Link {
            target: to,
            link_kind,
            present,
        },
    );
    b.commit(if present { "link" } else { "unlink" })?;
    model::node_detail(replica, env, from)
}

/// The deterministic id of the project named `name` (two devices adding it converge on one node).
pub fn project_id(name: &str) -> NodeId {
    let h = blake3::hash(&[b"heph.project.v1".as_slice(), name.as_bytes()].concat());
    let mut r = [0u8; 10];
    r.copy_from_slice(&h.as_bytes()[..10]);
    NodeId::from_parts(0, r)
}

/// Adds a project.
pub fn add_project(replica: &mut Replica, env: &dyn Env, name: &str) -> Result<NodeView> {
    let name = clean_title(name)?;
    let id = project_id(&name);
    if let Some(cur) = NodeState::load(replica.connection(), id)?
        && !cur.deleted
    {
        return Err(SpokeError::NotApplicable(format!(
            "project {name:?} already exists"
        )));
    }
    let mut b = Batch::new(replica, env);
    b.push(
        id,
        OpKind::Create {
            kind: NodeKind::Project,
        },
    );
    b.push(id, OpKind::Set(Field::Title(name)));
    b.push(id, OpKind::Restore);
    b.commit("project add")?;
    view(replica, env, id)
}

/// Undoes this replica's latest not-yet-undone action with new inverse ops.
pub fn undo(replica: &mut Replica, env: &dyn Env) -> Result<Undone> {
    use rusqlite::OptionalExtension;
    let origin = replica.origin();
    let action: Option<(i64, String, i64, i64)> = replica
        .connection()
        .query_row(
            "SELECT id, label, first_seq, last_seq FROM undo_actions
             WHERE undone = 0 AND origin = ?1 ORDER BY id DESC LIMIT 1",
            [&origin.to_bytes()[..]],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((action_id, label, first, last)) = action else {
        return Err(SpokeError::NothingToUndo);
    };
    let ops = replica.ops_since(origin, (first - 1) as u64, (last - first + 1) as usize)?;
    let mut skipped = Vec::new();
    let mut inverse: Vec<(NodeId, OpKind)> = Vec::new();
    let mut context_targets: Vec<(NodeId, String)> = Vec::new();
    for s in ops.iter().rev() {
        let op = &s.op;
        let before = state_before(replica, op.node, op.hlc)?;
        match &op.kind {
            OpKind::Create { .. } => {
                if before.kind.is_none() {
                    inverse.push((op.node, OpKind::Delete));
                }
            }
            OpKind::Set(f) => inverse.push((op.node, OpKind::Set(field_value(&before, f)))),
            OpKind::Tag { tag, .. } => inverse.push((
                op.node,
                OpKind::Tag {
                    tag: tag.clone(),
                    present: before.tags.contains(tag),
                },
            )),
            OpKind::Link {
                target, link_kind, ..
            } => inverse.push((
                op.node,
                OpKind::Link {
                    target: *target,
                    link_kind: link_kind.clone(),
                    present: before.links.contains(&(*target, link_kind.clone())),
                },
            )),
            OpKind::Log { text } => {
                skipped.push(format!("log entry {text:?} (log entries are append-only)"))
            }
            OpKind::Context { .. } => {
                // Restore the document as it was before the action's first context edit.
                context_targets.retain(|(n, _)| *n != op.node);
                context_targets.push((op.node, before.context.clone()));
            }
            OpKind::Delete | OpKind::Restore => inverse.push((
                op.node,
                if before.deleted {
                    OpKind::Delete
                } else {
                    OpKind::Restore
                },
            )),
        }
    }
    let mut b = Batch::new(replica, env);
    for (node, kind) in inverse {
        b.push(node, kind);
    }
    for (node, text) in context_targets {
        let cur = load(b.replica, node)?;
        if cur.context != text {
            write_context(&mut b, &cur, text)?;
        }
    }
    let n = b.ops.len() as u64;
    let ops = std::mem::take(&mut b.ops);
    replica.commit_local(None, ops)?;
    replica.connection().execute(
        "UPDATE undo_actions SET undone = 1 WHERE id = ?1",
        [action_id],
    )?;
    Ok(Undone {
        action: label,
        ops: n,
        skipped,
    })
}

/// The node's state folded from its ops strictly older than `hlc` (in memory).
fn state_before(replica: &Replica, node: NodeId, hlc: Hlc) -> Result<NodeState> {
    let ops: Vec<Op> = replica
        .node_ops(node)?
        .into_iter()
        .map(|s| s.op)
        .filter(|op| op.hlc < hlc)
        .collect();
    let texts: std::collections::BTreeMap<Hlc, String> = ops
        .iter()
        .filter_map(|op| match &op.kind {
            OpKind::Context { text, .. } => Some((op.hlc, text.clone())),
            _ => None,
        })
        .collect();
    let mut st = NodeState::empty(node, None);
    for op in &ops {
        st.apply(op, &mut |h| Ok(texts.get(&h).cloned()))?;
    }
    Ok(st)
}

fn field_value(st: &NodeState, like: &Field) -> Field {
    match like {
        Field::Title(_) => Field::Title(st.title.clone()),
        Field::State(_) => Field::State(st.state),
        Field::DoDate(_) => Field::DoDate(st.do_date),
        Field::LateOn(_) => Field::LateOn(st.late_on),
        Field::Recurrence(_) => Field::Recurrence(st.recurrence.clone()),
        Field::Attention(_) => Field::Attention(st.attention),
        Field::Project(_) => Field::Project(st.project.clone()),
        Field::Series(_) => Field::Series(st.series),
    }
}
