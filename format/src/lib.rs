//! `heph-format`: the bytes every hephaestus component agrees on — ids, clocks, ops, segments, chain rules.
//!
//! This crate is pure: it performs no I/O, reads no clock and draws no randomness (callers pass
//! wall-clock milliseconds and random bytes in), and depends on no runtime or database, so the hub,
//! the native spoke and the browser spoke (wasm32) share it unchanged. The byte layout is specified
//! in `docs/format.md`; golden fixtures in `format/tests/fixtures/` pin every released version.

#![deny(unreachable_pub)]

pub mod chain;
pub mod error;
pub mod hlc;
pub mod id;
pub mod op;
pub mod sample;
pub mod segment;

pub use chain::{ChainError, ChainHead, check_continues};
pub use error::FormatError;
pub use hlc::{Clock, ClockObservation, Hlc, MAX_FORWARD_DRIFT_MS};
pub use id::{IdError, NodeId, Origin, OwnerId, Ulid};
pub use op::{Attention, Field, NodeKind, Op, OpKind, TaskState};
pub use segment::{
    DecodeLimits, EncodedSegment, FORMAT_VERSION, HEADER_LEN, MAGIC, Segment, SegmentHeader,
    SegmentId, decode_header, decode_segment, encode_segment,
};
