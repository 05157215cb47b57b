//! xtask: build and dev helpers for the hephaestus workspace

fn main() {}
