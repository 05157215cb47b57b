//! `hephd`: the hephaestus daemon (`--mode server` runs the hub, `--mode local` a spoke).

fn main() {}
