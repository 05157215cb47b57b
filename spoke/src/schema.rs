//! Versioned schema migrations of the replica database. Each step runs once, in order, in a transaction.
//!
//! Version 1 is the first released layout (op log, sync state, materialised tables, FTS5). Version 2 adds
//! the local undo journal and the `projects` view. Version 3 stores the op log as runs (see the
//! `oplog` module); its data step is Rust code. Never edit a released step: add a new one.

use rusqlite::Connection;

use crate::error::Result;

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: u32 = 3;

/// One migration step: DDL, then an optional data step, in the same transaction.
#[derive(Debug)]
pub struct Migration {
    /// The DDL of this step.
    pub sql: &'static str,
    /// Moves data the DDL alone cannot (runs after `sql`).
    pub(crate) data: Option<fn(&Connection) -> Result<()>>,
}

/// Migration steps: `MIGRATIONS[n]` takes a store from version `n` to `n + 1`.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        sql: V1,
        data: None,
    },
    Migration {
        sql: V2,
        data: None,
    },
    Migration {
        sql: crate::oplog::V3_SQL,
        data: Some(crate::oplog::migrate_ops_table),
    },
];

/// Schema version 1.
pub const V1: &str = r#"
-- meta keys: owner_id, origin, schema_version, and clock (the greatest HLC held, "wall.counter").
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;

-- The op log of every origin. seq is the op's position in its origin's chain (1-based).
CREATE TABLE ops(
    origin  BLOB    NOT NULL,
    seq     INTEGER NOT NULL,
    wall    INTEGER NOT NULL,
    counter INTEGER NOT NULL,
    node    BLOB    NOT NULL,
    op      BLOB    NOT NULL,
    PRIMARY KEY (origin, seq)
) WITHOUT ROWID;
CREATE INDEX ops_node ON ops(node, wall, counter, origin);

-- What the sync layer knows about each origin's chain on the hub.
CREATE TABLE sync_state(
    origin    BLOB PRIMARY KEY,
    last_seq  INTEGER NOT NULL,
    head_hash BLOB,
    segments  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- Materialised state: a pure function of the op set.
CREATE TABLE nodes(
    rowid       INTEGER PRIMARY KEY,
    id          BLOB    NOT NULL UNIQUE,
    id_text     TEXT    NOT NULL UNIQUE,
    kind        INTEGER,
    title       TEXT    NOT NULL DEFAULT '',
    state       INTEGER NOT NULL DEFAULT 0,
    do_date     INTEGER,
    late_on     INTEGER,
    recurrence  TEXT,
    attention   INTEGER,
    project     TEXT,
    series      BLOB,
    context     TEXT    NOT NULL DEFAULT '',
    ctx_wall    INTEGER,
    ctx_counter INTEGER,
    ctx_origin  BLOB,
    conflicted  INTEGER NOT NULL DEFAULT 0,
    deleted     INTEGER NOT NULL DEFAULT 0,
    created_ms  INTEGER,
    updated_ms  INTEGER NOT NULL,
    max_wall    INTEGER NOT NULL,
    max_counter INTEGER NOT NULL,
    max_origin  BLOB    NOT NULL
);
CREATE INDEX nodes_list ON nodes(kind, deleted, state, do_date);
CREATE INDEX nodes_project ON nodes(project);
CREATE INDEX nodes_conflicted ON nodes(conflicted) WHERE conflicted = 1;

CREATE TABLE tags(node BLOB NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (node, tag)) WITHOUT ROWID;

CREATE TABLE links(
    node   BLOB NOT NULL,
    target BLOB NOT NULL,
    kind   TEXT NOT NULL,
    PRIMARY KEY (node, target, kind)
) WITHOUT ROWID;
CREATE INDEX links_target ON links(target);

CREATE TABLE log_entries(
    node    BLOB    NOT NULL,
    wall    INTEGER NOT NULL,
    counter INTEGER NOT NULL,
    origin  BLOB    NOT NULL,
    text    TEXT    NOT NULL,
    PRIMARY KEY (node, wall, counter, origin)
) WITHOUT ROWID;

-- Full-text index; rowid = nodes.rowid.
CREATE VIRTUAL TABLE fts USING fts5(title, context, log, tokenize = 'unicode61');
"#;

/// Schema version 2.
pub const V2: &str = r#"
-- Local undo journal: each user action is a contiguous run of this replica's own ops.
CREATE TABLE undo_actions(
    id        INTEGER PRIMARY KEY,
    label     TEXT    NOT NULL,
    origin    BLOB    NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq  INTEGER NOT NULL,
    undone    INTEGER NOT NULL DEFAULT 0
);
CREATE VIEW projects AS
    SELECT title AS name, id AS node FROM nodes WHERE kind = 2 AND deleted = 0;
"#;
