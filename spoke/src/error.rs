//! The spoke core's typed errors: every way a replica operation or a request can fail.

use heph_format::{FormatError, Origin};

/// Why a spoke operation failed. Nothing in the store has changed when one of these is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpokeError {
    /// No node has this id or id prefix.
    #[error("no node matches id {0:?}")]
    UnknownId(String),
    /// Several nodes share this prefix.
    #[error("id prefix {prefix:?} is ambiguous: it matches {}", candidates.join(", "))]
    AmbiguousId {
        /// What the user typed.
        prefix: String,
        /// Some of the matching ids.
        candidates: Vec<String>,
    },
    /// The id prefix is shorter than 4 characters or not Crockford base32.
    #[error(
        "invalid id {0:?}: give a full ULID or a unique prefix of at least 4 base32 characters"
    )]
    BadId(String),
    /// A date the parser does not understand.
    #[error(
        "cannot parse date {0:?}: use today, tomorrow, +3d, +2w, a weekday (fri) or YYYY-MM-DD"
    )]
    BadDate(String),
    /// A recurrence the parser does not understand.
    #[error(
        "cannot parse recurrence {0:?}: use daily, weekly, monthly, yearly, weekdays, \"every N days|weeks|months|years\", weekday names (mon,thu) or an RRULE like FREQ=WEEKLY;INTERVAL=2;BYDAY=MO"
    )]
    BadRecurrence(String),
    /// An attention level outside a1–a4.
    #[error("invalid attention {0:?}: use a1, a2, a3 or a4")]
    BadAttention(String),
    /// A title that is empty or only whitespace.
    #[error("the title must not be empty")]
    EmptyTitle,
    /// Any other invalid argument.
    #[error("{0}")]
    Invalid(String),
    /// The node exists but the operation does not apply to it.
    #[error("{0}")]
    NotApplicable(String),
    /// There is nothing to undo.
    #[error("nothing to undo")]
    NothingToUndo,
    /// The file is not an SQLite database at all (corrupted or something else).
    #[error(
        "{path} is not a heph database (the file is corrupted or not SQLite); nothing was changed"
    )]
    NotADatabase {
        /// The database path.
        path: String,
    },
    /// The file is an SQLite database that belongs to something else.
    #[error(
        "{path} is an SQLite database but not a heph store (no heph meta table); nothing was changed"
    )]
    ForeignDatabase {
        /// The database path.
        path: String,
    },
    /// The store was written by a newer heph.
    #[error(
        "the store has schema version {found}, but this heph supports up to {supported}; upgrade heph (nothing was changed)"
    )]
    NewerSchema {
        /// The store's version.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
    /// The store or its directory cannot be written.
    #[error("cannot write the store at {path}: {reason}")]
    ReadOnly {
        /// The database path.
        path: String,
        /// What the operating system said.
        reason: String,
    },
    /// A foreign op conflicts with a different op already stored at the same (origin, seq).
    #[error(
        "origin {origin} seq {seq}: a different op is already stored at this position (forked chain)"
    )]
    ForkedOp {
        /// The origin.
        origin: Origin,
        /// The position in its chain.
        seq: u64,
    },
    /// A stored op could not be decoded (the op log is damaged).
    #[error("damaged op in the log: {0}")]
    Decode(String),
    /// Segment or op format error.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// SQLite failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// Shorthand for results of spoke operations.
pub type Result<T, E = SpokeError> = core::result::Result<T, E>;
