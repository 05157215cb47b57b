//! Typed errors for decoding and encoding segments: one variant per class of bad input.

use crate::id::IdError;

/// Why bytes are not a valid segment (or ops cannot be encoded as one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Fewer bytes than a header or than the header's declared payload.
    #[error("segment truncated: need {needed} bytes, have {got}")]
    Truncated { needed: u64, got: u64 },
    /// The first four bytes are not `HEPH`.
    #[error("not a heph segment: bad magic {found:02x?} (expected \"HEPH\")")]
    BadMagic { found: [u8; 4] },
    /// Written by a newer format version than this build understands.
    #[error(
        "segment format version {found} is newer than this build supports ({supported}); upgrade heph"
    )]
    UnsupportedVersion { found: u16, supported: u16 },
    /// Flag bits this version does not define are set.
    #[error("segment header has unknown flag bits {flags:#06x}")]
    UnknownFlags { flags: u16 },
    /// The byte count after the header differs from the header's payload length.
    #[error("segment length mismatch: header declares {declared} payload bytes, found {actual}")]
    LengthMismatch { declared: u64, actual: u64 },
    /// The segment is bigger than the decoder allows.
    #[error("segment of {len} bytes exceeds the limit of {max} bytes")]
    SegmentTooLarge { len: u64, max: u64 },
    /// The declared uncompressed payload is bigger than the decoder allows (a decompression bomb).
    #[error("segment payload would decompress to {len} bytes, over the limit of {max} bytes")]
    DecompressedTooLarge { len: u64, max: u64 },
    /// The payload did not decompress to exactly the declared length.
    #[error("segment payload decompressed to a different length than declared ({declared} bytes)")]
    DecompressedLengthMismatch { declared: u64 },
    /// The payload is not a valid zstd frame.
    #[error("segment payload is not valid zstd: {reason}")]
    Decompress { reason: String },
    /// The header declares zero ops.
    #[error("segment declares no ops")]
    Empty,
    /// The header declares more ops than the decoder allows.
    #[error("segment declares {count} ops, over the limit of {max}")]
    TooManyOps { count: u64, max: u64 },
    /// The payload holds a different number of ops than the header declares.
    #[error("segment op count mismatch: header declares {declared}, payload holds {actual}")]
    OpCountMismatch { declared: u64, actual: u64 },
    /// An op in the payload could not be decoded.
    #[error("segment op #{index} is malformed: {reason}")]
    MalformedOp { index: u64, reason: String },
    /// Bytes remain after the last declared op.
    #[error("segment payload has {extra} bytes after its last op")]
    TrailingBytes { extra: u64 },
    /// Op clocks inside a segment must strictly increase.
    #[error(
        "segment op #{index} has a clock not after the previous op's (clocks must strictly increase)"
    )]
    NonMonotonicHlc { index: u64 },
    /// The header's HLC range does not match the first and last op.
    #[error("segment header HLC range does not match its ops")]
    HlcRangeMismatch,
    /// An op claims to come from another origin than the segment's.
    #[error("segment op #{index} was issued by another origin than the segment's")]
    ForeignOriginOp { index: u64 },
    /// `first_seq` is zero, or the seq range overflows.
    #[error("segment sequence range is invalid (first_seq {first_seq}, {op_count} ops)")]
    BadSeqRange { first_seq: u64, op_count: u64 },
    /// A first segment (`first_seq` 1) must have no `prev`; every later one must have one.
    #[error("segment at first_seq {first_seq} {}", if *has_prev { "must not name a previous segment" } else { "must name its previous segment" })]
    PrevMismatch { first_seq: u64, has_prev: bool },
    /// The payload is encrypted with a key id this build cannot decrypt.
    #[error("segment payload is encrypted (key id {key_id}); this build cannot decrypt it")]
    Encrypted { key_id: u32 },
    /// The bytes do not hash to the id they were claimed to have.
    #[error("segment hash mismatch: claimed {claimed}, bytes hash to {actual}")]
    HashMismatch { claimed: String, actual: String },
    /// A segment id in text form is not 64 hex digits.
    #[error("invalid segment id {text:?}: expected 64 lowercase hex digits")]
    BadSegmentId { text: String },
    /// An id inside the segment is invalid.
    #[error(transparent)]
    Id(#[from] IdError),
}
