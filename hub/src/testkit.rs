//! Helpers for tests and benchmarks of hubs: deterministic owners, origins and segment chains.
//!
//! Public so the conformance suite, the crate's integration tests, end-to-end tests and the load
//! generator share one way of making valid (and deliberately invalid) segments.

use heph_format::{
    EncodedSegment, Hlc, NodeId, Op, OpKind, Origin, OwnerId, SegmentId, encode_segment,
};

/// The position entry a hub stores for segment `s`.
pub fn position_of(s: &EncodedSegment) -> crate::store::Position {
    crate::store::Position {
        first_seq: s.header.first_seq,
        last_seq: s.header.last_seq(),
        hash: s.id,
        len: s.bytes.len() as u64,
        prev: s.header.prev,
    }
}

/// A deterministic owner id from a small number.
pub fn owner(n: u8) -> OwnerId {
    OwnerId::from_parts(1_700_000_000_000, [n; 10])
}

/// A deterministic origin id from a small number.
pub fn origin(n: u16) -> Origin {
    let [a, b] = n.to_be_bytes();
    Origin::from_parts(1_700_000_000_000, [a, b, 7, 7, 7, 7, 7, 7, 7, 7])
}

/// `count` ops issued by `origin`, starting at clock `wall_ms`, each carrying `payload` bytes of
/// log text (`salt` makes otherwise equal segments differ).
pub fn ops(origin: Origin, wall_ms: u64, count: usize, payload: usize, salt: u64) -> Vec<Op> {
    (0..count)
        .map(|i| {
            let mut x = salt
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add((i as u64) << 32);
            let text: String = (0..payload)
                .map(|_| {
                    // splitmix64: a cheap deterministic stream that zstd cannot squeeze much
                    // (about 4.7 bits per character survive compression).
                    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
                    let mut z = x;
                    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                    z ^= z >> 31;
                    char::from(b'a' + (z % 26) as u8)
                })
                .collect();
            Op {
                hlc: Hlc {
                    wall_ms: wall_ms + i as u64,
                    counter: 0,
                    origin,
                },
                node: NodeId::from_parts(wall_ms, [salt as u8; 10]),
                kind: OpKind::Log { text },
            }
        })
        .collect()
}

/// One segment of `owner`'s chain for `origin` at `first_seq` after `prev`.
pub fn segment(
    owner: OwnerId,
    origin: Origin,
    first_seq: u64,
    prev: Option<SegmentId>,
    op_count: usize,
    payload: usize,
    salt: u64,
) -> EncodedSegment {
    let ops = ops(
        origin,
        1_700_000_000_000 + first_seq * 10,
        op_count,
        payload,
        salt,
    );
    // The inputs are always valid (origin matches, clocks increase, prev matches first_seq).
    match encode_segment(owner, origin, first_seq, prev, &ops) {
        Ok(s) => s,
        Err(e) => panic!("testkit segment could not be encoded: {e}"),
    }
}

/// A whole chain of `segments` segments with `ops_per` ops each.
pub fn chain(
    owner: OwnerId,
    origin: Origin,
    segments: usize,
    ops_per: usize,
    payload: usize,
    salt: u64,
) -> Vec<EncodedSegment> {
    let mut out: Vec<EncodedSegment> = Vec::with_capacity(segments);
    let mut first = 1u64;
    for _ in 0..segments {
        let prev = out.last().map(|s| s.id);
        let s = segment(owner, origin, first, prev, ops_per, payload, salt);
        first = s.header.last_seq() + 1;
        out.push(s);
    }
    out
}
