//! Segment stores: the [`SegmentStore`] trait, its key layout, and [`open_store`] for store URLs.
//!
//! Every store holds three kinds of objects (see "Store layout" in `docs/protocol.md`): the
//! `owner` record, content-addressed segment blobs, and per-(owner, origin, first_seq) position
//! entries. All writes are create-if-absent and atomic; nothing is ever replaced or deleted.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use heph_format::{Origin, OwnerId, SegmentId};
use serde::{Deserialize, Serialize};

pub mod conformance;
mod fs;
mod memory;
mod s3;

pub use fs::FsStore;
pub use memory::MemoryStore;
pub use s3::{S3Options, S3Store};

/// One segment's place in its origin's chain: the content of a position entry.
/// Serialized as JSON in the store; do not rename fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Sequence number of the segment's first op (the position).
    pub first_seq: u64,
    /// Sequence number of its last op.
    pub last_seq: u64,
    /// The segment's id.
    pub hash: SegmentId,
    /// The segment's length in bytes.
    pub len: u64,
    /// The previous segment's id (none for the first segment of a chain).
    pub prev: Option<SegmentId>,
}

/// Result of a create-if-absent write of a position entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The entry did not exist and is now stored.
    Created,
    /// An entry already holds that position (possibly the same one): it is returned, unchanged.
    Exists(Position),
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("store I/O error at {path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The object store backend (S3) failed.
    #[error("object store error: {0}")]
    Backend(String),
    /// An object in the store does not have the expected content.
    #[error("corrupt store object {key}: {reason}")]
    Corrupt {
        /// The object's key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A store URL could not be understood.
    #[error("invalid store URL {url:?}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl StoreError {
    pub(crate) fn io(path: impl fmt::Display, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_string(),
            source,
        }
    }
}

/// A segment store: the hub's only persistent state. Object-safe: use `Arc<dyn SegmentStore>`.
///
/// Implementations must make every write atomic (a reader sees a whole object or none) and
/// create-if-absent (an existing object is never replaced), also across processes and hosts
/// sharing the same store. The chain rules live above this trait, in [`crate::log::SegmentLog`].
///
/// A store implements the two object primitives [`create`](SegmentStore::create) and
/// [`read`](SegmentStore::read) plus the listings; the typed methods (blobs, position entries,
/// the owner record, [`put_segment`](SegmentStore::put_segment)) are provided over them with the
/// shared [`keys`] layout and encodings. A store may override a provided method when it can do
/// the same thing faster (the filesystem store writes a segment's blob and entry as one journaled write).
#[async_trait]
pub trait SegmentStore: Send + Sync + fmt::Debug {
    /// A human-readable description for logs (`file:///…`, `s3://bucket/prefix`, `memory:`).
    fn describe(&self) -> String;

    /// Creates the object `key` (a [`keys`] path) holding `bytes` unless it exists; returns
    /// `None` when this call created it, or the existing object's bytes (unchanged). Atomic and
    /// durable before it returns: exactly one of any number of concurrent callers (in any
    /// process) creates a given key.
    async fn create(&self, key: &str, bytes: Bytes) -> Result<Option<Bytes>, StoreError>;

    /// The bytes of object `key`, if it exists.
    async fn read(&self, key: &str) -> Result<Option<Bytes>, StoreError>;

    /// Stores segment bytes under their id unless a blob with that id exists (which, being
    /// content-addressed, holds the same bytes). The caller has verified `id` against `bytes`.
    async fn put_blob(&self, id: SegmentId, bytes: Bytes) -> Result<(), StoreError> {
        self.create(&keys::blob(&id), bytes).await.map(|_| ())
    }

    /// The bytes of blob `id`, if stored.
    async fn get_blob(&self, id: SegmentId) -> Result<Option<Bytes>, StoreError> {
        self.read(&keys::blob(&id)).await
    }

    /// Writes the position entry for `(owner, origin, pos.first_seq)` if none exists; otherwise
    /// returns the existing entry and changes nothing. Exactly one of any number of concurrent
    /// callers (in any process) gets [`PutOutcome::Created`] for a given position.
    async fn put_position(
        &self,
        owner: OwnerId,
        origin: Origin,
        pos: &Position,
    ) -> Result<PutOutcome, StoreError> {
        let key = keys::position(owner, origin, pos.first_seq);
        let existing = self.create(&key, encode_position(pos)).await?;
        position_outcome(&key, pos.first_seq, existing)
    }

    /// The position entry at `(owner, origin, first_seq)`, if any.
    async fn get_position(
        &self,
        owner: OwnerId,
        origin: Origin,
        first_seq: u64,
    ) -> Result<Option<Position>, StoreError> {
        let key = keys::position(owner, origin, first_seq);
        self.read(&key)
            .await?
            .map(|b| decode_position(&key, first_seq, &b))
            .transpose()
    }

    /// Stores one pushed segment: its blob (`bytes`, whose id is `pos.hash`), then its position
    /// entry, which is the commit. When this returns [`PutOutcome::Created`], both are durable;
    /// the position entry never becomes visible or durable before the blob is durable.
    async fn put_segment(
        &self,
        owner: OwnerId,
        origin: Origin,
        pos: &Position,
        bytes: Bytes,
    ) -> Result<PutOutcome, StoreError> {
        self.put_blob(pos.hash, bytes).await?;
        self.put_position(owner, origin, pos).await
    }

    /// The `first_seq` of up to `limit` position entries of `(owner, origin)` with
    /// `first_seq > after`, ascending.
    async fn list_positions(
        &self,
        owner: OwnerId,
        origin: Origin,
        after: u64,
        limit: usize,
    ) -> Result<Vec<u64>, StoreError>;

    /// Every origin of `owner` that has at least one position entry, ascending.
    async fn list_origins(&self, owner: OwnerId) -> Result<Vec<Origin>, StoreError>;

    /// Records `owner` as the store's owner unless one is recorded; returns the recorded owner
    /// (which is `owner` exactly when this call or an earlier one with the same owner won).
    async fn claim_owner(&self, owner: OwnerId) -> Result<OwnerId, StoreError> {
        match self.create(keys::OWNER, encode_owner(owner)).await? {
            None => Ok(owner),
            Some(existing) => decode_owner(&existing),
        }
    }

    /// The recorded owner, if any.
    async fn owner(&self) -> Result<Option<OwnerId>, StoreError> {
        self.read(keys::OWNER)
            .await?
            .map(|b| decode_owner(&b))
            .transpose()
    }

    /// A cheap liveness check of the backend (for `/healthz`).
    async fn check(&self) -> Result<(), StoreError>;
}

/// The outcome of a create-if-absent write of the position entry `key`, from what
/// [`SegmentStore::create`] returned.
pub(crate) fn position_outcome(
    key: &str,
    first_seq: u64,
    existing: Option<Bytes>,
) -> Result<PutOutcome, StoreError> {
    match existing {
        None => Ok(PutOutcome::Created),
        Some(b) => Ok(PutOutcome::Exists(decode_position(key, first_seq, &b)?)),
    }
}

/// Key layout shared by every store (relative to the store's root or prefix).
pub mod keys {
    use heph_format::{Origin, OwnerId, SegmentId};

    /// The owner record.
    pub const OWNER: &str = "owner";

    /// The blob of segment `id`: `blobs/<hh>/<hash>`.
    pub fn blob(id: &SegmentId) -> String {
        let hex = id.to_string();
        format!("blobs/{}/{hex}", &hex[..2])
    }

    /// The directory/prefix of an owner's chains: `chains/<owner>`.
    pub fn owner_chains(owner: OwnerId) -> String {
        format!("chains/{owner}")
    }

    /// The directory/prefix of one chain: `chains/<owner>/<origin>`.
    pub fn chain(owner: OwnerId, origin: Origin) -> String {
        format!("chains/{owner}/{origin}")
    }

    /// The name of a position entry inside its chain: `first_seq` as 20 zero-padded digits.
    pub fn position_name(first_seq: u64) -> String {
        format!("{first_seq:020}")
    }

    /// A position entry: `chains/<owner>/<origin>/<first_seq:020>`.
    pub fn position(owner: OwnerId, origin: Origin, first_seq: u64) -> String {
        format!("{}/{}", chain(owner, origin), position_name(first_seq))
    }

    /// Parses a position entry name back into `first_seq` (exactly 20 ASCII digits).
    pub fn parse_position_name(name: &str) -> Option<u64> {
        if name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()) {
            name.parse().ok()
        } else {
            None
        }
    }
}

/// The owner record as stored. Do not rename fields.
#[derive(Serialize, Deserialize)]
struct OwnerRecord {
    owner: OwnerId,
}

pub(crate) fn encode_position(pos: &Position) -> Bytes {
    // Serialising a plain struct of integers and ids cannot fail.
    Bytes::from(serde_json::to_vec(pos).unwrap_or_default())
}

pub(crate) fn decode_position(
    key: &str,
    first_seq: u64,
    bytes: &[u8],
) -> Result<Position, StoreError> {
    let pos: Position = serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })?;
    if pos.first_seq != first_seq || pos.last_seq < pos.first_seq {
        return Err(StoreError::Corrupt {
            key: key.to_owned(),
            reason: format!(
                "entry says first_seq {} last_seq {}",
                pos.first_seq, pos.last_seq
            ),
        });
    }
    Ok(pos)
}

pub(crate) fn encode_owner(owner: OwnerId) -> Bytes {
    Bytes::from(serde_json::to_vec(&OwnerRecord { owner }).unwrap_or_default())
}

pub(crate) fn decode_owner(bytes: &[u8]) -> Result<OwnerId, StoreError> {
    serde_json::from_slice::<OwnerRecord>(bytes)
        .map(|r| r.owner)
        .map_err(|e| StoreError::Corrupt {
            key: keys::OWNER.to_owned(),
            reason: e.to_string(),
        })
}

/// Opens the store named by `url`:
/// - `memory:` — a fresh in-memory store (tests, benchmarks);
/// - `file:///absolute/dir` — the filesystem store (created if missing);
/// - `s3://bucket/optional/prefix` — the S3 store, configured by `s3`.
pub async fn open_store(url: &str, s3: &S3Options) -> Result<Arc<dyn SegmentStore>, StoreError> {
    let bad = |reason: &str| StoreError::BadUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    if url == "memory:" {
        return Ok(Arc::new(MemoryStore::new()));
    }
    if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(bad(
                "a file store URL needs an absolute path: file:///path/to/dir",
            ));
        }
        let store = FsStore::open(path).await?;
        return Ok(Arc::new(store));
    }
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("an S3 store URL needs a bucket: s3://bucket/prefix"));
        }
        let store = S3Store::open(bucket, prefix.trim_matches('/'), s3)?;
        return Ok(Arc::new(store));
    }
    Err(bad(
        "unsupported scheme; use file:///dir, s3://bucket/prefix or memory:",
    ))
}

/// The `first_seq` of up to `limit` position entry names in `names` with `first_seq > after`,
/// ascending (other names are ignored).
pub(crate) fn select_positions(names: &[String], after: u64, limit: usize) -> Vec<u64> {
    let mut seqs: Vec<u64> = names
        .iter()
        .filter_map(|n| keys::parse_position_name(n))
        .filter(|&s| s > after)
        .collect();
    seqs.sort_unstable();
    seqs.truncate(limit);
    seqs
}

/// Parses directory/prefix names as origins, keeping only canonical ULID spellings, ascending.
pub(crate) fn canonical_origins(names: Vec<String>) -> Vec<Origin> {
    let mut origins: Vec<Origin> = names
        .iter()
        .filter_map(|n| n.parse::<Origin>().ok().filter(|o| o.to_string() == *n))
        .collect();
    origins.sort_unstable();
    origins.dedup();
    origins
}
