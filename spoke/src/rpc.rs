//! One entry point for every operation: `dispatch(replica, env, method, params)` with JSON in and out.
//!
//! The CLI calls it in-process; the daemon serves it over a Unix socket and the PWA worker over
//! `postMessage`, so all three speak exactly the same method table (documented in `docs/spoke.md`).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api::{self, AddTask, ContextEdit, EditTask};
use crate::env::Env;
use crate::error::SpokeError;
use crate::model::{self, ListFilter, resolve_id};
use crate::replica::Replica;

/// A failed call: a stable machine-readable `code` and a one-line human `message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct RpcError {
    /// Stable error code, e.g. `unknown_id`, `ambiguous_id`, `bad_date`, `bad_params`.
    pub code: String,
    /// What went wrong and how to fix it.
    pub message: String,
}

impl RpcError {
    /// Builds an error.
    pub fn new(code: &str, message: impl Into<String>) -> RpcError {
        RpcError {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

impl From<SpokeError> for RpcError {
    fn from(e: SpokeError) -> RpcError {
        let code = match &e {
            SpokeError::UnknownId(_) => "unknown_id",
            SpokeError::AmbiguousId { .. } => "ambiguous_id",
            SpokeError::BadId(_) => "bad_id",
            SpokeError::BadDate(_) => "bad_date",
            SpokeError::BadRecurrence(_) => "bad_recurrence",
            SpokeError::BadAttention(_) => "bad_attention",
            SpokeError::EmptyTitle => "empty_title",
            SpokeError::Invalid(_) => "invalid",
            SpokeError::NotApplicable(_) => "not_applicable",
            SpokeError::NothingToUndo => "nothing_to_undo",
            SpokeError::NotADatabase { .. } => "not_a_database",
            SpokeError::ForeignDatabase { .. } => "foreign_database",
            SpokeError::NewerSchema { .. } => "newer_schema",
            SpokeError::ReadOnly { .. } => "read_only",
            SpokeError::ForkedOp { .. } => "forked_op",
            _ => "internal",
        };
        RpcError::new(code, e.to_string())
    }
}

/// The method table: every method name `dispatch` accepts, with a one-line description.
pub const METHODS: &[(&str, &str)] = &[
    ("task.add", "create a task or note: AddTask -> NodeView"),
    ("task.list", "list tasks: ListFilter -> [NodeView]"),
    ("task.next", "what to do next: {limit?} -> [NodeView]"),
    ("task.show", "everything about a node: {id} -> NodeDetail"),
    (
        "task.done",
        "complete (recurring: creates the next occurrence): {id} -> Completed",
    ),
    ("task.drop", "drop: {id} -> Completed"),
    (
        "task.skip",
        "skip this occurrence of a recurring task: {id} -> Completed",
    ),
    ("task.reopen", "back to outstanding: {id} -> NodeView"),
    (
        "task.edit",
        "change fields (\"none\" clears): EditTask -> NodeView",
    ),
    ("task.delete", "tombstone: {id} -> NodeView"),
    ("task.restore", "undo a tombstone: {id} -> NodeView"),
    (
        "task.context",
        "show/replace/append the context document: ContextEdit -> NodeDetail",
    ),
    ("task.log", "append a log entry: {id, text} -> NodeDetail"),
    ("task.tag", "add a tag: {id, tag} -> NodeView"),
    ("task.untag", "remove a tag: {id, tag} -> NodeView"),
    (
        "task.link",
        "link two nodes: {id, target, kind?} -> NodeDetail",
    ),
    (
        "task.unlink",
        "remove a link: {id, target, kind?} -> NodeDetail",
    ),
    ("task.history", "every op of a node: {id} -> [HistoryEntry]"),
    (
        "project.list",
        "projects with outstanding counts: {} -> [ProjectView]",
    ),
    ("project.add", "add a project: {name} -> NodeView"),
    ("search", "full-text search: {query, limit?} -> [SearchHit]"),
    (
        "conflicts",
        "nodes with unresolved context conflicts: {} -> [NodeView]",
    ),
    ("undo", "undo this replica's latest action: {} -> Undone"),
    (
        "export",
        "export everything: {format: json|markdown} -> {format, content}",
    ),
    (
        "import.taskwarrior",
        "import `task export` JSON: {data} -> ImportReport",
    ),
    (
        "store.info",
        "owner, origin, schema, counts: {} -> StoreInfo",
    ),
    (
        "store.doctor",
        "rebuild derived tables and compare digests: {} -> DoctorReport",
    ),
    ("methods", "this table: {} -> [{name, description}]"),
];

#[derive(Deserialize)]
struct IdParams {
    id: String,
}

#[derive(Deserialize)]
struct TextParams {
    id: String,
    text: String,
}

#[derive(Deserialize)]
struct TagParams {
    id: String,
    tag: String,
}

#[derive(Deserialize)]
struct LinkParams {
    id: String,
    target: String,
    #[serde(default)]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct NameParams {
    name: String,
}

#[derive(Deserialize, Default)]
struct LimitParams {
    #[serde(default)]
    limit: Option<u32>,
}

#[derive(Deserialize)]
struct SearchParams {
    query: String,
    #[serde(default)]
    limit: Option<u32>,
}

#[derive(Deserialize)]
struct ExportParams {
    #[serde(default)]
    format: Option<String>,
}

#[derive(Deserialize)]
struct ImportParams {
    data: String,
}

/// Facts about the open store (`store.info`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreInfo {
    /// The owner id.
    pub owner_id: String,
    /// This replica's origin.
    pub origin: String,
    /// Schema version.
    pub schema_version: u32,
    /// Ops held (all origins).
    pub ops: u64,
    /// Origins in the op log with their highest seq.
    pub origins: Vec<(String, u64)>,
    /// The materialised-state digest (hex).
    pub digest: String,
}

/// What `store.doctor` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoctorReport {
    /// Digest of the materialised state as found (hex).
    pub before: String,
    /// Digest after rebuilding every derived table from the op log (hex).
    pub after: String,
    /// Whether they are equal.
    pub ok: bool,
    /// Ops replayed.
    pub ops: u64,
}

/// Hex form of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn params<T: DeserializeOwned>(method: &str, v: Value) -> Result<T, RpcError> {
    let v = if v.is_null() { json!({}) } else { v };
    serde_json::from_value(v)
        .map_err(|e| RpcError::new("bad_params", format!("{method}: invalid parameters: {e}")))
}

fn out<T: Serialize>(v: T) -> Result<Value, RpcError> {
    serde_json::to_value(v).map_err(|e| RpcError::new("internal", e.to_string()))
}

/// Like [`dispatch`], but answers with pretty-printed JSON text. List-shaped answers are serialised straight
/// from their typed views (no intermediate `Value`), which is what keeps `heph list --json` fast.
pub fn dispatch_text(
    replica: &mut Replica,
    env: &dyn Env,
    method: &str,
    p: Value,
) -> Result<String, RpcError> {
    fn text<T: Serialize>(v: &T) -> Result<String, RpcError> {
        serde_json::to_string_pretty(v).map_err(|e| RpcError::new("internal", e.to_string()))
    }
    match method {
        "task.list" => text(&model::list(
            replica,
            env,
            &params::<ListFilter>(method, p)?,
        )?),
        "task.next" => {
            let l: LimitParams = params(method, p)?;
            text(&model::next(replica, env, l.limit.unwrap_or(10))?)
        }
        "search" => {
            let s: SearchParams = params(method, p)?;
            text(&model::search(
                replica,
                env,
                &s.query,
                s.limit.unwrap_or(20),
            )?)
        }
        _ => text(&dispatch(replica, env, method, p)?),
    }
}

/// Calls `method` with JSON `params` against the replica. Errors leave the store unchanged.
pub fn dispatch(
    replica: &mut Replica,
    env: &dyn Env,
    method: &str,
    p: Value,
) -> Result<Value, RpcError> {
    match method {
        "task.add" => out(api::add_task(replica, env, &params::<AddTask>(method, p)?)?),
        "task.list" => out(model::list(
            replica,
            env,
            &params::<ListFilter>(method, p)?,
        )?),
        "task.next" => {
            let l: LimitParams = params(method, p)?;
            out(model::next(replica, env, l.limit.unwrap_or(10))?)
        }
        "task.show" => {
            let IdParams { id } = params(method, p)?;
            let id = resolve_id(replica, &id)?;
            out(model::node_detail(replica, env, id)?)
        }
        "task.done" => out(api::done(replica, env, &params::<IdParams>(method, p)?.id)?),
        "task.drop" => out(api::drop_task(
            replica,
            env,
            &params::<IdParams>(method, p)?.id,
        )?),
        "task.skip" => out(api::skip(replica, env, &params::<IdParams>(method, p)?.id)?),
        "task.reopen" => out(api::reopen(
            replica,
            env,
            &params::<IdParams>(method, p)?.id,
        )?),
        "task.edit" => out(api::edit_task(
            replica,
            env,
            &params::<EditTask>(method, p)?,
        )?),
        "task.delete" => out(api::set_deleted(
            replica,
            env,
            &params::<IdParams>(method, p)?.id,
            true,
        )?),
        "task.restore" => out(api::set_deleted(
            replica,
            env,
            &params::<IdParams>(method, p)?.id,
            false,
        )?),
        "task.context" => out(api::context(
            replica,
            env,
            &params::<ContextEdit>(method, p)?,
        )?),
        "task.log" => {
            let t: TextParams = params(method, p)?;
            out(api::log(replica, env, &t.id, &t.text)?)
        }
        "task.tag" | "task.untag" => {
            let t: TagParams = params(method, p)?;
            out(api::tag(replica, env, &t.id, &t.tag, method == "task.tag")?)
        }
        "task.link" | "task.unlink" => {
            let l: LinkParams = params(method, p)?;
            out(api::link(
                replica,
                env,
                &l.id,
                &l.target,
                l.kind.as_deref(),
                method == "task.link",
            )?)
        }
        "task.history" => {
            let IdParams { id } = params(method, p)?;
            let id = resolve_id(replica, &id)?;
            out(model::history(replica, env, id)?)
        }
        "project.list" => out(model::projects(replica)?),
        "project.add" => out(api::add_project(
            replica,
            env,
            &params::<NameParams>(method, p)?.name,
        )?),
        "search" => {
            let s: SearchParams = params(method, p)?;
            out(model::search(
                replica,
                env,
                &s.query,
                s.limit.unwrap_or(20),
            )?)
        }
        "conflicts" => out(model::conflicts(replica, env)?),
        "undo" => out(api::undo(replica, env)?),
        "export" => {
            let e: ExportParams = params(method, p)?;
            let format = e.format.unwrap_or_else(|| "json".into());
            let content = crate::export::export(replica, env, &format)?;
            Ok(json!({ "format": format, "content": content }))
        }
        "import.taskwarrior" => {
            let i: ImportParams = params(method, p)?;
            out(crate::taskwarrior::import(replica, env, &i.data)?)
        }
        "store.info" => out(StoreInfo {
            owner_id: replica.owner().to_string(),
            origin: replica.origin().to_string(),
            schema_version: replica.schema_version()?,
            ops: replica.op_count()?,
            origins: replica
                .origins()?
                .into_iter()
                .map(|(o, s)| (o.to_string(), s))
                .collect(),
            digest: hex(&replica.digest()?),
        }),
        "store.doctor" => {
            let (before, after) = replica.doctor()?;
            out(DoctorReport {
                before: hex(&before),
                after: hex(&after),
                ok: before == after,
                ops: replica.op_count()?,
            })
        }
        "methods" => out(METHODS
            .iter()
            .map(|(n, d)| json!({ "name": n, "description": d }))
            .collect::<Vec<_>>()),
        other => Err(RpcError::new(
            "unknown_method",
            format!("unknown method {other:?} (call \"methods\" for the list)"),
        )),
    }
}
