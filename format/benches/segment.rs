//! Segment encode and decode+verify throughput for 1,000 and 10,000 typical task ops.
//!
//! Run: `cargo bench -p heph-format --bench segment`. "Typical" is the mix in
//! `heph_format::sample::typical_ops`. Bytes per op is printed once per size before the timings.

use heph_format::sample::{sample_origin, sample_owner, typical_ops};
use heph_format::{DecodeLimits, SegmentId, decode_segment, encode_segment};

const START: u64 = 1_767_225_600_000;
const SIZES: [usize; 2] = [1_000, 10_000];

fn main() {
    for n in SIZES {
        let ops = typical_ops(sample_origin(), START, n, 7);
        let enc = encode_segment(sample_owner(), sample_origin(), 1, None, &ops).expect("encode");
        println!(
            "segment of {n} typical ops: {} bytes, {:.2} bytes/op (payload {:.2} bytes/op, raw {:.2} bytes/op)",
            enc.bytes.len(),
            enc.bytes.len() as f64 / n as f64,
            f64::from(enc.header.payload_len) / n as f64,
            f64::from(enc.header.raw_len) / n as f64,
        );
    }
    divan::main();
}

#[divan::bench(args = SIZES)]
fn encode(bencher: divan::Bencher, n: usize) {
    let ops = typical_ops(sample_origin(), START, n, 7);
    bencher
        .counter(divan::counter::ItemsCount::new(n))
        .bench(|| {
            encode_segment(
                sample_owner(),
                sample_origin(),
                1,
                None,
                divan::black_box(&ops),
            )
            .expect("encode")
        });
}

#[divan::bench(args = SIZES)]
fn decode_and_verify(bencher: divan::Bencher, n: usize) {
    let ops = typical_ops(sample_origin(), START, n, 7);
    let enc = encode_segment(sample_owner(), sample_origin(), 1, None, &ops).expect("encode");
    bencher
        .counter(divan::counter::ItemsCount::new(n))
        .bench(|| {
            let bytes = divan::black_box(&enc.bytes);
            enc.id.verify(bytes).expect("hash");
            decode_segment(bytes, &DecodeLimits::DEFAULT).expect("decode")
        });
}

#[divan::bench(args = SIZES)]
fn hash_only(bencher: divan::Bencher, n: usize) {
    let ops = typical_ops(sample_origin(), START, n, 7);
    let enc = encode_segment(sample_owner(), sample_origin(), 1, None, &ops).expect("encode");
    bencher
        .counter(divan::counter::BytesCount::new(enc.bytes.len()))
        .bench(|| SegmentId::of(divan::black_box(&enc.bytes)));
}
