//! Fuzz target: decoding arbitrary bytes as a segment must never panic or allocate without bound.
#![no_main]

use heph_format::{DecodeLimits, decode_header, decode_segment};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits::DEFAULT;
    let _ = decode_header(data, &limits);
    if let Ok(seg) = decode_segment(data, &limits) {
        // A segment that decodes must re-encode to a segment that decodes to the same ops.
        let again = heph_format::encode_segment(seg.header.owner, seg.header.origin, seg.header.first_seq, seg.header.prev, &seg.ops)
            .expect("a decoded segment re-encodes");
        let back = decode_segment(&again.bytes, &limits).expect("re-encoded segment decodes");
        assert_eq!(back.ops, seg.ops);
    }
});
