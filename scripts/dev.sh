#!/usr/bin/env bash
# The main job on the embedded default: a hub on loopback with its store on local disk, a local spoke
# daemon syncing through it, and the PWA served by the hub. Runs until Ctrl-C; state lives in .heph-dev/.
set -euo pipefail
cd "$(dirname "$0")/.."
ADDR=${HEPH_DEV_ADDR:-127.0.0.1:8787}
DEV=${HEPH_DEV_DIR:-$PWD/.heph-dev}
bash scripts/setup.sh dev
cargo build --bins
cargo xtask pwa --out target/web
BIN=${CARGO_TARGET_DIR:-$PWD/target}/debug
mkdir -p "$DEV/hub" "$DEV/spoke"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$BIN/hephd" --mode server --http-addr "$ADDR" --db "$DEV/hub/heph.db" --web-root "$PWD/target/web" \
  >"$DEV/hub.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fsS "http://$ADDR/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "http://$ADDR/healthz" >/dev/null || { echo "hub did not start; see $DEV/hub.log" >&2; exit 1; }

"$BIN/hephd" --mode local --data-dir "$DEV/spoke" --hub-url "http://$ADDR" >"$DEV/spoke.log" 2>&1 &
pids+=($!)
export HEPH_DATA_DIR="$DEV/spoke"
for _ in $(seq 100); do [ -S "$DEV/spoke/hephd.sock" ] && break; sleep 0.1; done

if [ -z "$("$BIN/heph" list --json 2>/dev/null | tr -d '[:space:][]')" ]; then
  "$BIN/heph" task "Welcome to hephaestus" --project heph --do-date today --attention a3 >/dev/null
fi
"$BIN/heph" sync >/dev/null 2>&1 || true

cat <<MSG
hephaestus is running (dev mode: loopback only, no login).
  hub       http://$ADDR/            (store: $DEV/hub, log: $DEV/hub.log)
  PWA       http://$ADDR/
  spoke     $DEV/spoke               (daemon log: $DEV/spoke.log)
In another terminal:
  export HEPH_DATA_DIR=$DEV/spoke
  $BIN/heph list
  $BIN/heph task "Something to do" --do-date tomorrow
Ctrl-C stops everything.
MSG
"$BIN/heph" list || true
wait
