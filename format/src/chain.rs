//! Chain rules: where a segment may stand in its origin's append-only chain.

use serde::{Deserialize, Serialize};

use crate::id::OwnerId;
use crate::segment::{SegmentHeader, SegmentId};

/// The last segment of one origin's chain as a store knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// Sequence number of the last op in the chain.
    pub last_seq: u64,
    /// Id of the last segment.
    pub hash: SegmentId,
    /// Number of segments in the chain.
    pub segments: u64,
}

/// Why a segment does not continue a chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The segment belongs to another owner than the chain.
    #[error("segment owner {found} is not the chain's owner {expected}")]
    WrongOwner { expected: OwnerId, found: OwnerId },
    /// The segment starts after the position the chain expects next: ops are missing.
    #[error("gap: chain expects first_seq {expected}, segment starts at {found}")]
    Gap { expected: u64, found: u64 },
    /// The segment starts at a position the chain already holds (and is not identical to it).
    #[error("position occupied: chain already holds seq {found} (head at {head_seq})")]
    Occupied { found: u64, head_seq: u64 },
    /// The segment continues the position but names another previous segment: a fork.
    #[error("fork: segment names prev {claimed}, chain head is {head}")]
    Fork { claimed: String, head: String },
}

/// Checks that a segment with `header` is the next one after `head` (none: an empty chain).
///
/// This does not check the owner; use [`check_owner`] for that where the chain has one.
pub fn check_continues(head: Option<&ChainHead>, header: &SegmentHeader) -> Result<(), ChainError> {
    let expected = head.map_or(1, |h| h.last_seq + 1);
    if header.first_seq > expected {
        return Err(ChainError::Gap {
            expected,
            found: header.first_seq,
        });
    }
    if header.first_seq < expected {
        return Err(ChainError::Occupied {
            found: header.first_seq,
            head_seq: head.map_or(0, |h| h.last_seq),
        });
    }
    match (head, header.prev) {
        (None, None) => Ok(()),
        (Some(h), Some(prev)) if prev == h.hash => Ok(()),
        (Some(h), prev) => Err(ChainError::Fork {
            claimed: prev.map_or_else(|| "none".to_owned(), |p| p.to_string()),
            head: h.hash.to_string(),
        }),
        // Unreachable for a valid header (first_seq 1 has no prev), reported as a fork all the same.
        (None, Some(prev)) => Err(ChainError::Fork {
            claimed: prev.to_string(),
            head: "none".to_owned(),
        }),
    }
}

/// Checks that a segment belongs to `owner`.
pub fn check_owner(owner: OwnerId, header: &SegmentHeader) -> Result<(), ChainError> {
    if header.owner == owner {
        Ok(())
    } else {
        Err(ChainError::WrongOwner {
            expected: owner,
            found: header.owner,
        })
    }
}

/// The chain head after appending a segment with `header` and `id` to `head`.
pub fn advance(head: Option<&ChainHead>, header: &SegmentHeader, id: SegmentId) -> ChainHead {
    ChainHead {
        last_seq: header.last_seq(),
        hash: id,
        segments: head.map_or(0, |h| h.segments) + 1,
    }
}
