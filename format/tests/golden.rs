//! Golden fixtures: every released format version keeps decoding, and re-encodes byte for byte.
//!
//! `HEPH_BLESS=1 cargo test -p heph-format --test golden` (re)writes the fixtures of the *current*
//! version only; fixtures of released versions must never be rewritten.

use std::path::PathBuf;

use heph_format::sample::{every_variant_ops, sample_origin, sample_owner, typical_ops};
use heph_format::{DecodeLimits, FORMAT_VERSION, SegmentId, decode_segment, encode_segment};

const START: u64 = 1_767_225_600_000;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The v1 fixtures: (file name, how to rebuild it with the current encoder).
fn v1_fixtures() -> Vec<(&'static str, heph_format::EncodedSegment)> {
    let first = encode_segment(
        sample_owner(),
        sample_origin(),
        1,
        None,
        &every_variant_ops(sample_origin(), START),
    )
    .expect("encode first");
    let second_ops = typical_ops(sample_origin(), START + 1_000, 200, 42);
    let second = encode_segment(
        sample_owner(),
        sample_origin(),
        first.header.last_seq() + 1,
        Some(first.id),
        &second_ops,
    )
    .expect("encode second");
    vec![
        ("v1-every-variant.seg", first),
        ("v1-typical-200.seg", second),
    ]
}

#[test]
fn v1_fixtures_decode_and_reencode_byte_for_byte() {
    let bless = std::env::var_os("HEPH_BLESS").is_some();
    if bless && FORMAT_VERSION == 1 {
        let ids: String = v1_fixtures()
            .iter()
            .map(|(_, e)| format!("{}\n", e.id))
            .collect();
        std::fs::write(fixture("v1-ids.txt"), ids).expect("write ids");
    }
    for (name, rebuilt) in v1_fixtures() {
        let path = fixture(name);
        if bless && FORMAT_VERSION == 1 {
            std::fs::write(&path, &rebuilt.bytes).expect("write fixture");
        }
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("fixture {} missing: {e}", path.display()));
        let seg = decode_segment(&bytes, &DecodeLimits::DEFAULT).expect("fixture decodes");
        assert_eq!(seg.header.version, 1);
        assert_eq!(seg.header.op_count as usize, seg.ops.len());
        let reencoded = encode_segment(
            seg.header.owner,
            seg.header.origin,
            seg.header.first_seq,
            seg.header.prev,
            &seg.ops,
        )
        .expect("re-encode");
        assert_eq!(
            reencoded.bytes, bytes,
            "{name} must re-encode byte for byte"
        );
        assert_eq!(reencoded.id, SegmentId::of(&bytes));
        assert_eq!(
            rebuilt.bytes, bytes,
            "{name}: the sample generator changed; fixtures are frozen"
        );
    }
}

#[test]
fn v1_fixture_ids_are_pinned() {
    // The content addresses of the released v1 fixtures: a change here means the bytes changed.
    let ids: Vec<String> = v1_fixtures()
        .iter()
        .map(|(name, _)| SegmentId::of(&std::fs::read(fixture(name)).expect("fixture")).to_string())
        .collect();
    let pinned = std::fs::read_to_string(fixture("v1-ids.txt")).expect("v1-ids.txt");
    let pinned: Vec<&str> = pinned.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(ids, pinned);
}
