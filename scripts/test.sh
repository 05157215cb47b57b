#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, the wasm32 build of the pure crates, then every test
# (unit, property, CLI, hub over real sockets, SeaweedFS, the real OpenID provider, real Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
source "${HEPH_CACHE_DIR:-$HOME/.cache/heph}/env.sh"
step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy (workspace, all targets, -D warnings)"
cargo clippy --workspace --all-targets -- -D warnings
step "heph-format builds for wasm32-unknown-unknown"
cargo build -p heph-format --target wasm32-unknown-unknown
step "build the web root (PWA)"
cargo xtask pwa --out target/web
export HEPH_WEB_ROOT="$PWD/target/web"
step "tests"
cargo build --workspace --bins
cargo nextest run --workspace --no-fail-fast
cargo test --workspace --doc -q
