//! heph-seed: the bring-up operations as a library — clone (Path A), reset-origin, init, hub-import, verify.
//!
//! Every operation that writes first proves it may: the source is a heph store, no daemon holds it, the
//! target does not exist. Digests are always computed on a private scratch copy made with SQLite's online
//! backup API, so measuring never changes the store being measured. Nothing is renamed into place until it
//! has been verified.

#![deny(unreachable_pub)]

mod digest;
mod hubimport;
mod ops;

pub use digest::{StoreDigest, digest_of};
pub use hubimport::{ImportReport, OriginImport, hub_import};
pub use ops::{
    CloneReport, InitReport, ResetReport, VerifyReport, backup_to, check_heph_store, clone_store,
    daemon_holding, init_store, parse_owner, reset_origin, verify_store,
};

use std::path::PathBuf;

/// Why a seed command refused or failed. Nothing was changed unless the variant says otherwise.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeedError {
    /// The target already exists; heph-seed never overwrites a store.
    #[error(
        "{path} already exists; heph-seed never overwrites a store (choose another path or move it away)"
    )]
    TargetExists {
        /// The target.
        path: PathBuf,
    },
    /// The source does not exist.
    #[error("{path} does not exist")]
    Missing {
        /// The path.
        path: PathBuf,
    },
    /// The source is not a heph store.
    #[error("{path} is not a heph store: {reason}; nothing was changed")]
    NotAHephStore {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A daemon holds the store.
    #[error(
        "a daemon holds {path} ({how}); stop it first (`heph daemon stop`) — nothing was changed"
    )]
    DaemonRunning {
        /// The store.
        path: PathBuf,
        /// "lock held: …" or "socket answering: …".
        how: String,
    },
    /// The owner id is not a ULID.
    #[error(
        "invalid owner id {0:?}: expected a 26-character Crockford base32 ULID such as 01J9ZQ4V8W6Y7X5T3R2Q1P0N9M"
    )]
    BadOwnerId(String),
    /// The copy's digest differs from the source's: the copy was discarded.
    #[error(
        "verification failed: {what} differs between {before} and {after}; the copy was discarded, nothing was changed"
    )]
    DigestMismatch {
        /// Which part differs.
        what: &'static str,
        /// Digest before.
        before: String,
        /// Digest after.
        after: String,
    },
    /// `verify` found problems (listed).
    #[error("verify found problems in {path}: {}", problems.join("; "))]
    VerifyFailed {
        /// The store.
        path: PathBuf,
        /// Each problem.
        problems: Vec<String>,
    },
    /// The hub store already holds a different chain for an origin of this device.
    #[error(
        "the hub store's chain for origin {origin} differs from this device's op log at seq {seq}: {detail}"
    )]
    HubChainDiffers {
        /// The origin.
        origin: heph_format::Origin,
        /// Where.
        seq: u64,
        /// What differs.
        detail: String,
    },
    /// The hub store refused or failed.
    #[error("hub store: {0}")]
    Hub(String),
    /// The spoke's replica refused or failed.
    #[error(transparent)]
    Spoke(#[from] heph_spoke::SpokeError),
    /// SQLite failed.
    #[error("sqlite on {path}: {source}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: rusqlite::Error,
    },
    /// A filesystem operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A path is not UTF-8 (the replica API takes UTF-8 paths).
    #[error("{0} is not valid UTF-8")]
    NonUtf8Path(PathBuf),
    /// Encoding a segment failed.
    #[error("encoding a segment: {0}")]
    Format(#[from] heph_format::FormatError),
}

pub(crate) fn sqlite_err(path: &std::path::Path) -> impl FnOnce(rusqlite::Error) -> SeedError + '_ {
    move |source| SeedError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn io_err<'a>(
    action: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(std::io::Error) -> SeedError + 'a {
    move |source| SeedError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Hex of a digest, for printing.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
