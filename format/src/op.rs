//! The op vocabulary: every change to the task/knowledge model is one of these, stamped with an HLC.
//!
//! Serialized with postcard inside segment payloads. Variant and field order are part of the
//! format: **do not reorder**; new variants go at the end with a format version bump.

use serde::{Deserialize, Serialize};

use crate::hlc::Hlc;
use crate::id::NodeId;

/// What kind of node an op creates. Do not reorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NodeKind {
    /// Something to do.
    Task,
    /// A knowledge node: shares the task model (title, context, log, tags, links).
    Note,
    /// A named project that tasks refer to by name.
    Project,
}

/// A task's lifecycle state. Do not reorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskState {
    /// Still to do.
    Outstanding,
    /// Completed.
    Done,
    /// Abandoned.
    Dropped,
}

/// Attention levels a1–a4 (red / orange / white / blue). Do not reorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Attention {
    /// a1, red: urgent.
    A1,
    /// a2, orange.
    A2,
    /// a3, white: the default.
    A3,
    /// a4, blue: someday.
    A4,
}

/// A value for one typed last-writer-wins register of a node. Do not reorder.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Field {
    /// The one-line title.
    Title(String),
    /// Lifecycle state.
    State(TaskState),
    /// When to do it, Unix ms (local midnight of the day the user named), or none.
    DoDate(Option<i64>),
    /// When it becomes late, Unix ms, or none.
    LateOn(Option<i64>),
    /// Recurrence rule (RFC 5545 RRULE subset, e.g. `FREQ=DAILY;INTERVAL=3`), or none.
    Recurrence(Option<String>),
    /// Attention level, or none.
    Attention(Option<Attention>),
    /// Project name, or none.
    Project(Option<String>),
    /// The recurring series this node is an occurrence of, or none.
    Series(Option<NodeId>),
}

/// What an op does to its node. Do not reorder.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OpKind {
    /// Creates the node with a kind. Creating an existing node is idempotent (deterministic ids).
    Create {
        /// The node's kind.
        kind: NodeKind,
    },
    /// Sets one typed field (LWW per node and field).
    Set(Field),
    /// Adds (`present`) or removes a tag (LWW per node and tag).
    Tag {
        /// The tag, without a leading `+`.
        tag: String,
        /// Whether the tag is present after this op.
        present: bool,
    },
    /// Adds or removes a typed link to another node (LWW per node, target and link kind).
    Link {
        /// The linked node.
        target: NodeId,
        /// The link kind, e.g. `related`, `blocks`, `parent`.
        link_kind: String,
        /// Whether the link is present after this op.
        present: bool,
    },
    /// Appends a log entry (append-only; concurrent appends are all kept, ordered by HLC).
    Log {
        /// The entry's text.
        text: String,
    },
    /// Replaces the context document with `text`, written on top of version `base`
    /// (the HLC of the context op it was based on; none for the first version).
    Context {
        /// The version this edit was made from.
        base: Option<Hlc>,
        /// The full document after the edit.
        text: String,
    },
    /// Tombstones the node (LWW with `Restore`).
    Delete,
    /// Undoes a tombstone (LWW with `Delete`).
    Restore,
}

/// One op: a change to one node at one clock reading.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Op {
    /// When and where this op was issued; unique across all replicas.
    pub hlc: Hlc,
    /// The node it changes.
    pub node: NodeId,
    /// What it does.
    pub kind: OpKind,
}
