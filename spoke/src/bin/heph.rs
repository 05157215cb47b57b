//! `heph`: the hephaestus command-line interface (all logic lives in `heph_spoke::cli`).

fn main() -> std::process::ExitCode {
    heph_spoke::cli::main()
}
