//! The seam between a spoke and its hub: the [`HubClient`] trait, the values it exchanges and its errors.
//!
//! Every implementation ([`super::memory::MemoryHub`], [`super::http::HttpHub`]) runs the same conformance
//! suite ([`super::conformance`]). Futures are `?Send` so the trait also works in the browser (fetch).

use std::collections::BTreeMap;

use async_trait::async_trait;
use heph_format::{ChainHead, Origin, OwnerId, SegmentId};
use serde::{Deserialize, Serialize};

/// Every origin's head as the hub reports it (`GET /sync/v1/heads`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubHeads {
    /// The hub's owner (`None` until one is fixed by a flag or the first push).
    pub owner: Option<OwnerId>,
    /// Digest of all heads (changes exactly when a head changes).
    pub tag: String,
    /// Origin → head of its chain.
    pub origins: BTreeMap<Origin, ChainHead>,
}

/// The answer of a long-poll (`GET /sync/v1/wait`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitOutcome {
    /// Whether the heads differ from the tag that was given.
    pub changed: bool,
    /// The current heads.
    pub heads: HubHeads,
}

/// What a spoke needs to know about a hub before talking to it (`GET /config`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubConfig {
    /// Hub version string.
    #[serde(default)]
    pub hub_version: Option<String>,
    /// Protocol name (`sync/v1`).
    #[serde(default)]
    pub api: Option<String>,
    /// OIDC issuer (none in dev mode).
    #[serde(default)]
    pub issuer: Option<String>,
    /// OIDC audience.
    #[serde(default)]
    pub audience: Option<String>,
    /// OIDC client id for device login.
    #[serde(default)]
    pub client_id: Option<String>,
    /// True when the hub accepts every request without a token (loopback only).
    #[serde(default)]
    pub dev_mode: bool,
    /// The hub's owner, when known.
    #[serde(default)]
    pub owner: Option<OwnerId>,
}

/// A successful push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushOutcome {
    /// The segment is new on the hub (`201`).
    Stored,
    /// The identical segment was already stored at that position (`200`, idempotent retry).
    Exists,
}

/// One entry of a segment listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentEntry {
    /// First seq of the segment.
    pub first_seq: u64,
    /// Last seq of the segment.
    pub last_seq: u64,
    /// Segment id.
    pub hash: SegmentId,
    /// Encoded length in bytes.
    pub len: u64,
}

/// A page of an origin's segments (`GET /sync/v1/segments/{origin}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentList {
    /// The segments with `last_seq > after`, in chain order.
    pub segments: Vec<SegmentEntry>,
    /// More segments follow; ask again after the last listed `last_seq`.
    pub more: bool,
    /// The origin's head (none when the hub holds nothing of it).
    pub head: Option<ChainHead>,
}

/// Why a hub request failed. Transient failures ([`HubError::is_transient`]) are retried with backoff.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// The hub URL is unusable (not http/https, unparseable).
    #[error("invalid hub URL {url:?}: {reason}")]
    BadUrl {
        /// What was given.
        url: String,
        /// Why it is refused.
        reason: String,
    },
    /// The hub could not be reached (connection refused, reset, timeout, DNS).
    #[error("hub {url} is unreachable: {reason}")]
    Unreachable {
        /// The hub URL.
        url: String,
        /// What the network layer said.
        reason: String,
    },
    /// `401`: no valid token.
    #[error("the hub refused the token (401): {message}; log in again with `heph auth login`")]
    Unauthorized {
        /// The hub's message.
        message: String,
    },
    /// `403`: valid token, caller not authorised.
    #[error("the hub refused access (403): {message}")]
    Forbidden {
        /// The hub's message.
        message: String,
    },
    /// `403 wrong_owner`: the segment (or caller) belongs to another owner than the hub's.
    #[error("the hub belongs to owner {}: {message}", hub_owner.map_or_else(|| "?".to_owned(), |o| o.to_string()))]
    WrongOwner {
        /// The hub's owner.
        hub_owner: Option<OwnerId>,
        /// The hub's message.
        message: String,
    },
    /// `409 occupied`: a different segment holds that position.
    #[error(
        "position {first_seq} of origin {origin} is occupied on the hub by a different segment: {message}"
    )]
    Occupied {
        /// The origin pushed to.
        origin: Origin,
        /// The position pushed to.
        first_seq: u64,
        /// The hub's head for that origin.
        head: Option<ChainHead>,
        /// The hub's message.
        message: String,
    },
    /// `409 gap`: the push starts after the position the hub expects.
    #[error("gap in origin {origin}: the hub expects first_seq {expected_first_seq}: {message}")]
    Gap {
        /// The origin pushed to.
        origin: Origin,
        /// The position the hub expects next.
        expected_first_seq: u64,
        /// The hub's head for that origin.
        head: Option<ChainHead>,
        /// The hub's message.
        message: String,
    },
    /// `409 fork`: the push names another previous segment than the hub's head.
    #[error("fork in origin {origin}: {message}")]
    Fork {
        /// The origin pushed to.
        origin: Origin,
        /// The hub's head for that origin.
        head: Option<ChainHead>,
        /// The hub's message.
        message: String,
    },
    /// Any other refusal (`400 hash_mismatch`, `malformed`, `url_mismatch`, `413 too_large`, …).
    #[error("the hub refused the request ({status} {code}): {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The hub's error code.
        code: String,
        /// The hub's message.
        message: String,
    },
    /// `404` for a blob.
    #[error("the hub does not hold {what}")]
    NotFound {
        /// What was asked for.
        what: String,
    },
    /// `5xx` (store unavailable, IdP unavailable, busy, internal).
    #[error("the hub is temporarily unavailable ({status} {code}): {message}")]
    Unavailable {
        /// HTTP status.
        status: u16,
        /// The hub's error code.
        code: String,
        /// The hub's message.
        message: String,
    },
    /// The hub answered something that is not the protocol (garbage, wrong content, bad JSON).
    #[error("the hub answered garbage: {reason}")]
    Protocol {
        /// What was wrong.
        reason: String,
    },
    /// A stream ended before its end frame.
    #[error("the hub's segment stream was cut short: {reason}")]
    Truncated {
        /// What was missing.
        reason: String,
    },
    /// No bearer token could be produced.
    #[error("no access token: {0}")]
    Token(String),
}

impl HubError {
    /// Whether retrying later may succeed without anyone changing anything (network, 5xx, cut streams).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            HubError::Unreachable { .. }
                | HubError::Unavailable { .. }
                | HubError::Truncated { .. }
        )
    }

    /// Whether the failure is about the token (the spoke should report `auth_failure`).
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            HubError::Unauthorized { .. } | HubError::Forbidden { .. } | HubError::Token(_)
        )
    }
}

/// A bulk stream of segments (`GET /sync/v1/stream`): `(claimed id, bytes)` frames in chain order.
/// The receiver verifies every frame itself.
#[async_trait(?Send)]
pub trait SegmentStream {
    /// The next frame, `None` after the end frame. A stream cut short yields [`HubError::Truncated`].
    async fn next_segment(&mut self) -> Result<Option<(SegmentId, Vec<u8>)>, HubError>;
}

/// A hub as the sync client sees it. See `docs/protocol.md` for the meaning of each call.
#[async_trait(?Send)]
pub trait HubClient {
    /// A short description for messages (the URL, or `memory`).
    fn describe(&self) -> String;
    /// `GET /config`.
    async fn config(&self) -> Result<HubConfig, HubError>;
    /// `GET /sync/v1/heads`.
    async fn heads(&self) -> Result<HubHeads, HubError>;
    /// `PUT /sync/v1/segments/{origin}/{first_seq}` with the segment `bytes` claimed to hash to `id`.
    async fn push(
        &self,
        origin: Origin,
        first_seq: u64,
        id: SegmentId,
        bytes: &[u8],
    ) -> Result<PushOutcome, HubError>;
    /// `GET /sync/v1/segments/{origin}?after=&limit=`.
    async fn list(&self, origin: Origin, after: u64, limit: u32) -> Result<SegmentList, HubError>;
    /// `GET /sync/v1/blobs/{hash}`: the bytes as stored (unverified).
    async fn blob(&self, id: SegmentId) -> Result<Vec<u8>, HubError>;
    /// `GET /sync/v1/stream`: segments of `only` (every origin when empty), skipping for each
    /// `(origin, seq)` in `after` the segments with `last_seq <= seq`.
    async fn stream<'a>(
        &'a self,
        after: &[(Origin, u64)],
        only: &[Origin],
    ) -> Result<Box<dyn SegmentStream + 'a>, HubError>;
    /// `GET /sync/v1/wait`: returns when the heads tag differs from `tag` or after `timeout_secs`.
    async fn wait(&self, tag: Option<&str>, timeout_secs: u64) -> Result<WaitOutcome, HubError>;
}

/// Where a bearer token comes from. The auth layer's token store implements it; `None` sends no
/// `Authorization` header (a dev-mode hub).
pub trait TokenProvider {
    /// A valid access token (refreshed when needed), or `None` when none is configured.
    fn bearer(&self) -> Result<Option<String>, String>;
    /// Called after the hub answered `401` to the token last returned (drop a cached token).
    fn rejected(&self) {}
}

/// A fixed token (or none).
#[derive(Debug, Clone, Default)]
pub struct StaticToken(pub Option<String>);

impl TokenProvider for StaticToken {
    fn bearer(&self) -> Result<Option<String>, String> {
        Ok(self.0.clone())
    }
}
