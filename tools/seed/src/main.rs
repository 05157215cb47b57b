//! heph-seed: bring-up tool (Path A origin reset, clone, init, hub import, verify)

fn main() {}
