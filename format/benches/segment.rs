//! Segment encode/decode benchmarks (placeholder replaced below).
fn main() {}
