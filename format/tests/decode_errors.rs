//! One test per class of bad segment input: each is a distinct, typed, actionable error.

use heph_format::sample::{every_variant_ops, sample_origin, sample_owner, typical_ops};
use heph_format::{
    DecodeLimits, FormatError, HEADER_LEN, Hlc, NodeId, Op, OpKind, SegmentId, decode_header,
    decode_segment, encode_segment,
};

const START: u64 = 1_767_225_600_000;

fn good() -> Vec<u8> {
    encode_segment(
        sample_owner(),
        sample_origin(),
        1,
        None,
        &every_variant_ops(sample_origin(), START),
    )
    .expect("encode")
    .bytes
}

fn decode(bytes: &[u8]) -> Result<heph_format::Segment, FormatError> {
    decode_segment(bytes, &DecodeLimits::DEFAULT)
}

/// Rewrites a little-endian u32 header field at `offset`.
fn put_u32(bytes: &mut [u8], offset: usize, v: u32) {
    bytes[offset..offset + 4].copy_from_slice(&v.to_le_bytes());
}

/// Builds a segment by hand around an arbitrary raw (uncompressed) payload.
fn with_raw_payload(raw: &[u8], op_count: u32, tweak: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = good();
    let payload = zstd::bulk::compress(raw, 3).expect("compress");
    bytes.truncate(HEADER_LEN);
    put_u32(&mut bytes, 48, op_count);
    put_u32(&mut bytes, 112, payload.len() as u32);
    put_u32(&mut bytes, 116, raw.len() as u32);
    bytes.extend_from_slice(&payload);
    tweak(&mut bytes);
    bytes
}

#[test]
fn the_good_segment_decodes() {
    let seg = decode(&good()).expect("decodes");
    assert_eq!(seg.ops, every_variant_ops(sample_origin(), START));
}

#[test]
fn truncated_segments() {
    let bytes = good();
    assert!(matches!(
        decode(&bytes[..10]),
        Err(FormatError::Truncated {
            needed: 120,
            got: 10
        })
    ));
    assert!(matches!(
        decode(&bytes[..bytes.len() - 1]),
        Err(FormatError::Truncated { .. })
    ));
    assert!(matches!(
        decode(&[]),
        Err(FormatError::Truncated { got: 0, .. })
    ));
}

#[test]
fn wrong_magic() {
    let mut bytes = good();
    bytes[0] = b'X';
    let err = decode(&bytes).unwrap_err();
    assert!(matches!(err, FormatError::BadMagic { .. }));
    assert!(err.to_string().contains("not a heph segment"));
}

#[test]
fn unknown_future_version() {
    let mut bytes = good();
    bytes[4..6].copy_from_slice(&2u16.to_le_bytes());
    let err = decode(&bytes).unwrap_err();
    assert_eq!(
        err,
        FormatError::UnsupportedVersion {
            found: 2,
            supported: 1
        }
    );
    assert!(err.to_string().contains("upgrade heph"));
}

#[test]
fn unknown_flags() {
    let mut bytes = good();
    bytes[6] |= 0x80;
    assert!(matches!(
        decode(&bytes),
        Err(FormatError::UnknownFlags { .. })
    ));
}

#[test]
fn header_payload_length_mismatch() {
    let mut bytes = good();
    bytes.push(0);
    assert!(matches!(
        decode(&bytes),
        Err(FormatError::LengthMismatch { .. })
    ));
}

#[test]
fn hash_mismatch() {
    let bytes = good();
    let claimed = SegmentId::of(b"something else");
    let err = claimed.verify(&bytes).unwrap_err();
    assert!(matches!(err, FormatError::HashMismatch { .. }));
    SegmentId::of(&bytes)
        .verify(&bytes)
        .expect("own hash verifies");
}

#[test]
fn oversize_segment() {
    let bytes = good();
    let limits = DecodeLimits {
        max_segment_bytes: 100,
        ..DecodeLimits::DEFAULT
    };
    assert!(matches!(
        decode_segment(&bytes, &limits),
        Err(FormatError::SegmentTooLarge { max: 100, .. })
    ));
}

#[test]
fn decompression_bomb_declared_too_large() {
    let mut bytes = good();
    put_u32(&mut bytes, 116, u32::MAX);
    assert!(matches!(
        decode(&bytes),
        Err(FormatError::DecompressedTooLarge { .. })
    ));
}

#[test]
fn decompression_bomb_lying_about_its_size() {
    // 32 MiB of zeros compresses to a few KiB; the header claims 1 KiB.
    let bomb = vec![0u8; 32 << 20];
    let bytes = with_raw_payload(&bomb, 1, |b| put_u32(b, 116, 1024));
    assert!(matches!(
        decode(&bytes),
        Err(FormatError::DecompressedLengthMismatch { declared: 1024 })
    ));
}

#[test]
fn payload_that_is_not_zstd() {
    let mut bytes = good();
    for b in &mut bytes[HEADER_LEN..] {
        *b = 0xAB;
    }
    assert!(matches!(
        decode(&bytes),
        Err(FormatError::Decompress { .. })
    ));
}

#[test]
fn op_count_lies() {
    let bytes = good();
    let seg = decode(&bytes).expect("good");
    let n = seg.header.op_count;
    let mut more = bytes.clone();
    put_u32(&mut more, 48, n + 1);
    assert!(matches!(
        decode(&more),
        Err(FormatError::OpCountMismatch { .. })
    ));
    let mut fewer = bytes.clone();
    put_u32(&mut fewer, 48, n - 1);
    assert!(matches!(
        decode(&fewer),
        Err(FormatError::TrailingBytes { .. })
    ));
    let mut zero = bytes.clone();
    put_u32(&mut zero, 48, 0);
    assert_eq!(decode(&zero).unwrap_err(), FormatError::Empty);
    let mut huge = bytes;
    put_u32(&mut huge, 48, 10_000_000);
    assert!(matches!(decode(&huge), Err(FormatError::TooManyOps { .. })));
}

#[test]
fn invalid_ulid_text() {
    assert!(matches!(
        "not-a-ulid".parse::<NodeId>(),
        Err(heph_format::IdError::Length { .. })
    ));
    assert!(matches!(
        "01ARYZ6S41000000000000000!".parse::<NodeId>(),
        Err(heph_format::IdError::Character { .. })
    ));
    assert!(matches!(
        "zzzzzzzzzzzzzzzzzzzzzzzzzz".parse::<NodeId>(),
        Err(heph_format::IdError::Overflow { .. })
    ));
}

#[test]
fn invalid_segment_id_text() {
    assert!(matches!(
        "abc".parse::<SegmentId>(),
        Err(FormatError::BadSegmentId { .. })
    ));
    let not_hex = "g".repeat(64);
    assert!(matches!(
        not_hex.parse::<SegmentId>(),
        Err(FormatError::BadSegmentId { .. })
    ));
    let id = SegmentId::of(b"x");
    assert_eq!(id.to_string().parse::<SegmentId>().expect("round trip"), id);
}

#[test]
fn non_monotonic_hlc_inside_a_segment() {
    let origin = sample_origin();
    let mut ops = typical_ops(origin, START, 10, 1);
    ops.swap(3, 4);
    assert!(matches!(
        encode_segment(sample_owner(), origin, 1, None, &ops),
        Err(FormatError::NonMonotonicHlc { index: 4 })
    ));
    // Same clock twice, written by hand past the encoder's check.
    let dup = Op {
        hlc: Hlc {
            wall_ms: START,
            counter: 0,
            origin,
        },
        node: NodeId::default(),
        kind: OpKind::Delete,
    };
    let mut raw = Vec::new();
    for _ in 0..2 {
        raw = postcard::to_extend(&(0u64, 0u32, dup.node, &dup.kind), raw).expect("ser");
    }
    let bytes = with_raw_payload(&raw, 2, |b| {
        b[88..96].copy_from_slice(&START.to_le_bytes());
        b[100..108].copy_from_slice(&START.to_le_bytes());
        b[96..100].copy_from_slice(&0u32.to_le_bytes());
        b[108..112].copy_from_slice(&0u32.to_le_bytes());
    });
    assert!(matches!(
        decode(&bytes),
        Err(FormatError::NonMonotonicHlc { index: 1 })
    ));
}

#[test]
fn hlc_range_in_header_must_match_ops() {
    let mut bytes = good();
    let wall = u64::from_le_bytes(bytes[100..108].try_into().expect("8 bytes"));
    bytes[100..108].copy_from_slice(&(wall + 1).to_le_bytes());
    assert_eq!(decode(&bytes).unwrap_err(), FormatError::HlcRangeMismatch);
}

#[test]
fn malformed_op_bytes() {
    let bytes = with_raw_payload(&[0xff; 40], 1, |_| {});
    assert!(matches!(
        decode(&bytes),
        Err(FormatError::MalformedOp { index: 0, .. })
    ));
}

#[test]
fn seq_and_prev_rules() {
    let ops = every_variant_ops(sample_origin(), START);
    assert!(matches!(
        encode_segment(sample_owner(), sample_origin(), 0, None, &ops),
        Err(FormatError::BadSeqRange { .. })
    ));
    assert!(matches!(
        encode_segment(sample_owner(), sample_origin(), 5, None, &ops),
        Err(FormatError::PrevMismatch {
            has_prev: false,
            ..
        })
    ));
    assert!(matches!(
        encode_segment(
            sample_owner(),
            sample_origin(),
            1,
            Some(SegmentId::default()),
            &ops
        ),
        Err(FormatError::PrevMismatch { has_prev: true, .. })
    ));
    let mut bytes = good();
    bytes[6] |= 0x01; // claims a prev at first_seq 1
    assert!(matches!(
        decode_header(&bytes, &DecodeLimits::DEFAULT),
        Err(FormatError::PrevMismatch { .. })
    ));
}

#[test]
fn foreign_origin_op_is_refused_by_the_encoder() {
    let ops = every_variant_ops(heph_format::Origin::from_parts(1, [9; 10]), START);
    assert!(matches!(
        encode_segment(sample_owner(), sample_origin(), 1, None, &ops),
        Err(FormatError::ForeignOriginOp { index: 0 })
    ));
}

#[test]
fn encrypted_payloads_are_reported_not_misread() {
    let mut bytes = good();
    put_u32(&mut bytes, 52, 7);
    assert!(
        decode_header(&bytes, &DecodeLimits::DEFAULT).is_ok(),
        "the hub can still read the header"
    );
    assert_eq!(
        decode(&bytes).unwrap_err(),
        FormatError::Encrypted { key_id: 7 }
    );
}
