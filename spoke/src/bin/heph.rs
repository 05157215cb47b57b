//! `heph`: the hephaestus command-line interface.

fn main() {}
