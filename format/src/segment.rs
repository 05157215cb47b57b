//! Segments: a fixed 120-byte header plus a zstd-compressed postcard payload of ops.
//!
//! See `docs/format.md` for the byte layout. A segment's id is the blake3 hash of all its bytes.
//! Decoding is strict and bounded: every length is checked against [`DecodeLimits`] before any
//! allocation that depends on it, and every malformed input is a [`FormatError`], never a panic.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::FormatError;
use crate::hlc::Hlc;
use crate::id::{NodeId, Origin, OwnerId};
use crate::op::{Op, OpKind};

/// The first four bytes of every segment.
pub const MAGIC: [u8; 4] = *b"HEPH";
/// The format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u16 = 1;
/// Length of the fixed header in bytes.
pub const HEADER_LEN: usize = 120;
/// Header flag: the segment names a previous segment.
const FLAG_HAS_PREV: u16 = 0x0001;
/// zstd level used when encoding (segments are written once and read many times).
const ZSTD_LEVEL: i32 = 9;

/// The blake3 hash of a whole encoded segment: its content address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SegmentId(pub [u8; 32]);

impl SegmentId {
    /// Hashes encoded segment bytes.
    pub fn of(bytes: &[u8]) -> SegmentId {
        SegmentId(*blake3::hash(bytes).as_bytes())
    }

    /// Checks that `bytes` hash to this id.
    pub fn verify(&self, bytes: &[u8]) -> Result<(), FormatError> {
        let actual = SegmentId::of(bytes);
        if actual == *self {
            Ok(())
        } else {
            Err(FormatError::HashMismatch {
                claimed: self.to_string(),
                actual: actual.to_string(),
            })
        }
    }
}

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SegmentId({self})")
    }
}

impl FromStr for SegmentId {
    type Err = FormatError;

    /// Parses 64 hex digits (lowercase canonical; uppercase accepted).
    fn from_str(s: &str) -> Result<SegmentId, FormatError> {
        let bad = || FormatError::BadSegmentId {
            text: s.chars().take(80).collect(),
        };
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16).ok_or_else(bad)?;
            let lo = (pair[1] as char).to_digit(16).ok_or_else(bad)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Ok(SegmentId(out))
    }
}

impl Serialize for SegmentId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for SegmentId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SegmentId, D::Error> {
        if d.is_human_readable() {
            String::deserialize(d)?
                .parse()
                .map_err(serde::de::Error::custom)
        } else {
            Ok(SegmentId(<[u8; 32]>::deserialize(d)?))
        }
    }
}

/// Bounds applied while decoding untrusted bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest whole segment (header + compressed payload) accepted.
    pub max_segment_bytes: u64,
    /// Largest uncompressed payload accepted.
    pub max_raw_bytes: u64,
    /// Most ops one segment may declare.
    pub max_ops: u64,
}

impl DecodeLimits {
    /// The limits every component uses unless configured otherwise: 16 MiB segments,
    /// 64 MiB uncompressed, 100,000 ops.
    pub const DEFAULT: DecodeLimits = DecodeLimits {
        max_segment_bytes: 16 << 20,
        max_raw_bytes: 64 << 20,
        max_ops: 100_000,
    };
}

impl Default for DecodeLimits {
    fn default() -> DecodeLimits {
        DecodeLimits::DEFAULT
    }
}

/// The fixed header: everything the hub may read. Field order mirrors the byte layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Format version the segment was written with.
    pub version: u16,
    /// The owner whose data this is.
    pub owner: OwnerId,
    /// The replica whose chain this segment extends.
    pub origin: Origin,
    /// Sequence number of the first op (the chain starts at 1).
    pub first_seq: u64,
    /// Number of ops in the payload (at least 1).
    pub op_count: u32,
    /// Encryption key id; 0 means the payload is plaintext. Reserved for end-to-end encryption.
    pub key_id: u32,
    /// Id of the previous segment of this origin; none exactly when `first_seq` is 1.
    pub prev: Option<SegmentId>,
    /// Clock of the first op.
    pub hlc_min: Hlc,
    /// Clock of the last op.
    pub hlc_max: Hlc,
    /// Length of the compressed payload that follows the header.
    pub payload_len: u32,
    /// Length of the payload once decompressed.
    pub raw_len: u32,
}

impl SegmentHeader {
    /// Sequence number of the last op.
    pub fn last_seq(&self) -> u64 {
        self.first_seq + u64::from(self.op_count) - 1
    }

    /// Total encoded length (header + payload).
    pub fn total_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.payload_len)
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.version.to_le_bytes());
        let flags = if self.prev.is_some() {
            FLAG_HAS_PREV
        } else {
            0
        };
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&self.owner.to_bytes());
        out.extend_from_slice(&self.origin.to_bytes());
        out.extend_from_slice(&self.first_seq.to_le_bytes());
        out.extend_from_slice(&self.op_count.to_le_bytes());
        out.extend_from_slice(&self.key_id.to_le_bytes());
        out.extend_from_slice(&self.prev.unwrap_or_default().0);
        for h in [self.hlc_min, self.hlc_max] {
            out.extend_from_slice(&h.wall_ms.to_le_bytes());
            out.extend_from_slice(&h.counter.to_le_bytes());
        }
        out.extend_from_slice(&self.payload_len.to_le_bytes());
        out.extend_from_slice(&self.raw_len.to_le_bytes());
    }
}

/// Little-endian field reader over the (already length-checked) header bytes.
struct HeaderReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl HeaderReader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[self.pos..self.pos + N]);
        self.pos += N;
        out
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
}

/// Parses and validates the header of `bytes`, which must be one whole segment.
///
/// This is all the hub ever reads: it checks magic, version, flags, lengths against `limits`, the
/// seq range and prev presence, but never touches the payload.
pub fn decode_header(bytes: &[u8], limits: &DecodeLimits) -> Result<SegmentHeader, FormatError> {
    if bytes.len() < HEADER_LEN {
        return Err(FormatError::Truncated {
            needed: HEADER_LEN as u64,
            got: bytes.len() as u64,
        });
    }
    if bytes.len() as u64 > limits.max_segment_bytes {
        return Err(FormatError::SegmentTooLarge {
            len: bytes.len() as u64,
            max: limits.max_segment_bytes,
        });
    }
    let mut r = HeaderReader { bytes, pos: 0 };
    let magic: [u8; 4] = r.take();
    if magic != MAGIC {
        return Err(FormatError::BadMagic { found: magic });
    }
    let version = r.u16();
    if version == 0 || version > FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let flags = r.u16();
    if flags & !FLAG_HAS_PREV != 0 {
        return Err(FormatError::UnknownFlags { flags });
    }
    let owner = OwnerId::from_bytes(r.take());
    let origin = Origin::from_bytes(r.take());
    let first_seq = r.u64();
    let op_count = r.u32();
    let key_id = r.u32();
    let prev_bytes: [u8; 32] = r.take();
    let mut hlc = [Hlc::default(); 2];
    for h in &mut hlc {
        *h = Hlc {
            wall_ms: r.u64(),
            counter: r.u32(),
            origin,
        };
    }
    let payload_len = r.u32();
    let raw_len = r.u32();
    debug_assert_eq!(r.pos, HEADER_LEN);

    let actual = (bytes.len() - HEADER_LEN) as u64;
    if u64::from(payload_len) > actual {
        return Err(FormatError::Truncated {
            needed: HEADER_LEN as u64 + u64::from(payload_len),
            got: bytes.len() as u64,
        });
    }
    if u64::from(payload_len) != actual {
        return Err(FormatError::LengthMismatch {
            declared: payload_len.into(),
            actual,
        });
    }
    if op_count == 0 {
        return Err(FormatError::Empty);
    }
    if u64::from(op_count) > limits.max_ops {
        return Err(FormatError::TooManyOps {
            count: op_count.into(),
            max: limits.max_ops,
        });
    }
    if u64::from(raw_len) > limits.max_raw_bytes {
        return Err(FormatError::DecompressedTooLarge {
            len: raw_len.into(),
            max: limits.max_raw_bytes,
        });
    }
    if first_seq == 0 || first_seq.checked_add(u64::from(op_count)).is_none() {
        return Err(FormatError::BadSeqRange {
            first_seq,
            op_count: op_count.into(),
        });
    }
    let has_prev = flags & FLAG_HAS_PREV != 0;
    if has_prev != (first_seq > 1) {
        return Err(FormatError::PrevMismatch {
            first_seq,
            has_prev,
        });
    }
    if hlc[0] > hlc[1] {
        return Err(FormatError::HlcRangeMismatch);
    }
    Ok(SegmentHeader {
        version,
        owner,
        origin,
        first_seq,
        op_count,
        key_id,
        prev: has_prev.then_some(SegmentId(prev_bytes)),
        hlc_min: hlc[0],
        hlc_max: hlc[1],
        payload_len,
        raw_len,
    })
}

/// One op as stored in a payload: the origin is implied by the header, the wall clock is a delta
/// from the previous op's (the first op's from `hlc_min.wall_ms`, so its delta is 0).
/// Do not reorder.
#[derive(Serialize, Deserialize)]
struct WireOp {
    wall_delta: u64,
    counter: u32,
    node: NodeId,
    kind: OpKind,
}

/// A decoded segment: its header and its ops, in seq order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The header.
    pub header: SegmentHeader,
    /// The ops; op `i` has sequence number `header.first_seq + i`.
    pub ops: Vec<Op>,
}

/// A freshly encoded segment: its bytes, its id and its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedSegment {
    /// Content address: blake3 of `bytes`.
    pub id: SegmentId,
    /// The encoded segment.
    pub bytes: Vec<u8>,
    /// The header written into `bytes`.
    pub header: SegmentHeader,
}

/// Decodes and fully validates a whole segment: header, decompression within limits, every op,
/// op count, strictly increasing clocks, origin of every op and the header's clock range.
pub fn decode_segment(bytes: &[u8], limits: &DecodeLimits) -> Result<Segment, FormatError> {
    let header = decode_header(bytes, limits)?;
    if header.key_id != 0 {
        return Err(FormatError::Encrypted {
            key_id: header.key_id,
        });
    }
    let raw = decompress(&bytes[HEADER_LEN..], header.raw_len)?;
    let mut rest: &[u8] = &raw;
    let declared = u64::from(header.op_count);
    // Each op needs several bytes, so this cannot over-allocate beyond the bounded payload.
    let mut ops = Vec::with_capacity(header.op_count.min(raw.len() as u32 / 4 + 1) as usize);
    let mut wall = header.hlc_min.wall_ms;
    let mut prev: Option<Hlc> = None;
    for index in 0..declared {
        if rest.is_empty() {
            return Err(FormatError::OpCountMismatch {
                declared,
                actual: index,
            });
        }
        let (w, tail): (WireOp, &[u8]) =
            postcard::take_from_bytes(rest).map_err(|e| FormatError::MalformedOp {
                index,
                reason: e.to_string(),
            })?;
        rest = tail;
        wall = wall
            .checked_add(w.wall_delta)
            .ok_or(FormatError::NonMonotonicHlc { index })?;
        let hlc = Hlc {
            wall_ms: wall,
            counter: w.counter,
            origin: header.origin,
        };
        if prev.is_some_and(|p| p >= hlc) {
            return Err(FormatError::NonMonotonicHlc { index });
        }
        prev = Some(hlc);
        ops.push(Op {
            hlc,
            node: w.node,
            kind: w.kind,
        });
    }
    if !rest.is_empty() {
        return Err(FormatError::TrailingBytes {
            extra: rest.len() as u64,
        });
    }
    let (first, last) = (ops.first().map(|o| o.hlc), ops.last().map(|o| o.hlc));
    if first != Some(header.hlc_min) || last != Some(header.hlc_max) {
        return Err(FormatError::HlcRangeMismatch);
    }
    Ok(Segment { header, ops })
}

fn decompress(payload: &[u8], raw_len: u32) -> Result<Vec<u8>, FormatError> {
    let declared = u64::from(raw_len);
    // A frame that declares its content size must declare exactly raw_len; the decompressor
    // is given exactly raw_len bytes of room, so a frame that lies cannot write more.
    match zstd::zstd_safe::get_frame_content_size(payload) {
        Ok(Some(size)) if size != declared => {
            return Err(FormatError::DecompressedLengthMismatch { declared });
        }
        Err(_) => {
            return Err(FormatError::Decompress {
                reason: "unreadable zstd frame header".into(),
            });
        }
        _ => {}
    }
    let raw = zstd::bulk::decompress(payload, raw_len as usize).map_err(|e| {
        let reason = e.to_string();
        if reason.contains("Destination buffer is too small") {
            FormatError::DecompressedLengthMismatch { declared }
        } else {
            FormatError::Decompress { reason }
        }
    })?;
    if raw.len() as u64 != declared {
        return Err(FormatError::DecompressedLengthMismatch { declared });
    }
    Ok(raw)
}

/// Encodes `ops` (all issued by `origin`, clocks strictly increasing) as the segment of `owner`'s
/// chain for `origin` that starts at `first_seq`, after segment `prev`.
pub fn encode_segment(
    owner: OwnerId,
    origin: Origin,
    first_seq: u64,
    prev: Option<SegmentId>,
    ops: &[Op],
) -> Result<EncodedSegment, FormatError> {
    let limits = DecodeLimits::DEFAULT;
    let (Some(first), Some(last)) = (ops.first(), ops.last()) else {
        return Err(FormatError::Empty);
    };
    if ops.len() as u64 > limits.max_ops {
        return Err(FormatError::TooManyOps {
            count: ops.len() as u64,
            max: limits.max_ops,
        });
    }
    let op_count = ops.len() as u32;
    if first_seq == 0 || first_seq.checked_add(u64::from(op_count)).is_none() {
        return Err(FormatError::BadSeqRange {
            first_seq,
            op_count: op_count.into(),
        });
    }
    if prev.is_some() != (first_seq > 1) {
        return Err(FormatError::PrevMismatch {
            first_seq,
            has_prev: prev.is_some(),
        });
    }
    let mut raw = Vec::with_capacity(ops.len() * 48);
    let mut wall = first.hlc.wall_ms;
    let mut before: Option<Hlc> = None;
    for (i, op) in ops.iter().enumerate() {
        let index = i as u64;
        if op.hlc.origin != origin {
            return Err(FormatError::ForeignOriginOp { index });
        }
        if before.is_some_and(|b| b >= op.hlc) {
            return Err(FormatError::NonMonotonicHlc { index });
        }
        before = Some(op.hlc);
        let wire = WireOp {
            wall_delta: op.hlc.wall_ms - wall,
            counter: op.hlc.counter,
            node: op.node,
            kind: op.kind.clone(),
        };
        wall = op.hlc.wall_ms;
        raw = postcard::to_extend(&wire, raw).map_err(|e| FormatError::MalformedOp {
            index,
            reason: e.to_string(),
        })?;
    }
    if raw.len() as u64 > limits.max_raw_bytes {
        return Err(FormatError::DecompressedTooLarge {
            len: raw.len() as u64,
            max: limits.max_raw_bytes,
        });
    }
    let payload = zstd::bulk::compress(&raw, ZSTD_LEVEL).map_err(|e| FormatError::Decompress {
        reason: format!("compression failed: {e}"),
    })?;
    let header = SegmentHeader {
        version: FORMAT_VERSION,
        owner,
        origin,
        first_seq,
        op_count,
        key_id: 0,
        prev,
        hlc_min: first.hlc,
        hlc_max: last.hlc,
        payload_len: payload.len() as u32,
        raw_len: raw.len() as u32,
    };
    if header.total_len() > limits.max_segment_bytes {
        return Err(FormatError::SegmentTooLarge {
            len: header.total_len(),
            max: limits.max_segment_bytes,
        });
    }
    let mut bytes = Vec::with_capacity(header.total_len() as usize);
    header.write(&mut bytes);
    bytes.extend_from_slice(&payload);
    Ok(EncodedSegment {
        id: SegmentId::of(&bytes),
        bytes,
        header,
    })
}
