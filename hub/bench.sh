#!/usr/bin/env bash
# Hub benchmarks (docs/benchmarks.md, "Hub"): release hephd on loopback, filesystem store and SeaweedFS
# side by side. GET blob and heads with wrk (64 connections); push rate, 1,000 open long-polls (RSS) and
# the bulk stream with the loadgen example. Usage: bash hub/bench.sh [fs|s3|both] (default both).
set -euo pipefail
cd "$(dirname "$0")/.."
WHICH=${1:-both}
DUR=${HEPH_BENCH_SECS:-10}
command -v wrk >/dev/null || { echo "bench: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
# HEPH_HEPHD_BIN / HEPH_LOADGEN_BIN: use these binaries instead of building them (to compare builds).
if [ -z "${HEPH_HEPHD_BIN:-}" ]; then cargo build --release -q -p heph-spoke --bin hephd; fi
if [ -z "${HEPH_LOADGEN_BIN:-}" ]; then cargo build --release -q -p heph-hub --example loadgen; fi
HEPHD=${HEPH_HEPHD_BIN:-target/release/hephd}
LOADGEN=${HEPH_LOADGEN_BIN:-target/release/examples/loadgen}
WORK=$(mktemp -d)
PIDS=()
# HEPH_BENCH_KEEP=1: keep the stores (path printed) instead of deleting them. On ext4 without a journal, deleting
# the ~40,000 files of a run slows the next minutes of inode allocation (see docs/benchmarks.md, "Hub"), so
# back-to-back runs keep their stores.
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  if [ -n "${HEPH_BENCH_KEEP:-}" ]; then echo "bench: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 300); do curl -fsS "http://$1/healthz" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "bench: $1 did not start" >&2; exit 1; }

start_hub() { # name store-url -> sets ADDR, HUB_PID
  local port; port=$(free_port); ADDR=127.0.0.1:$port
  HEPH_LOG=warn "$HEPHD" --mode server --http-addr "$ADDR" --store "$2" "${@:3}" >"$WORK/$1.log" 2>&1 &
  HUB_PID=$!; PIDS+=("$HUB_PID"); wait_http "$ADDR"
}

run_suite() { # label
  local label=$1
  echo "== $label"
  local blob; blob=$("$LOADGEN" seed --addr "$ADDR" | awk '{print $1}')
  echo -n "GET 8 KiB blob, wrk -t2 -c64 -d${DUR}s: "
  wrk -t2 -c64 -d"${DUR}s" "http://$ADDR$blob" | awk '/Requests\/sec/ {print $2 " req/s"}'
  echo -n "GET heads,      wrk -t2 -c64 -d${DUR}s: "
  wrk -t2 -c64 -d"${DUR}s" "http://$ADDR/sync/v1/heads" | awk '/Requests\/sec/ {print $2 " req/s"}'
  "$LOADGEN" push --addr "$ADDR" --segments "${HEPH_BENCH_PUSHES:-20000}" --origins 256 --concurrency 64 --base 1000
  "$LOADGEN" polls --addr "$ADDR" --count 1000 --pid "$HUB_PID"
  "$LOADGEN" stream --addr "$ADDR" --ops 1000000 --ops-per-segment 1000 --payload 64
}

if [ "$WHICH" = fs ] || [ "$WHICH" = both ]; then
  start_hub fs "file://$WORK/fs-store"
  run_suite "filesystem store ($WORK/fs-store)"
  kill "$HUB_PID"; wait "$HUB_PID" 2>/dev/null || true
fi

if [ "$WHICH" = s3 ] || [ "$WHICH" = both ]; then
  WEED=${HEPH_WEED_BIN:-.venv/bin/weed}
  [ -x "$WEED" ] || { echo "bench: weed not found (HEPH_WEED_BIN or .venv/bin/weed)" >&2; exit 1; }
  mkdir -p "$WORK/weed"
  echo '{"identities":[{"name":"heph","credentials":[{"accessKey":"benchkey","secretKey":"benchsecret0123456789"}],"actions":["Admin","Read","Write","List","Tagging"]}]}' >"$WORK/s3.json"
  P=(); for _ in $(seq 1 12); do P+=("$(free_port)"); done
  "$WEED" mini -dir="$WORK/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -admin.ui=false -s3.config="$WORK/s3.json" \
    -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false -s3.autoCreateBucket=true \
    -s3.port="${P[0]}" -s3.port.grpc="${P[1]}" -master.port="${P[2]}" -master.port.grpc="${P[3]}" \
    -volume.port="${P[4]}" -volume.port.grpc="${P[5]}" -filer.port="${P[6]}" -filer.port.grpc="${P[7]}" \
    -webdav.port="${P[8]}" -admin.port="${P[9]}" -admin.port.grpc="${P[10]}" >"$WORK/weed.log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/${P[0]}") 2>/dev/null && break; sleep 0.1; done
  sleep 1
  start_hub s3 "s3://heph-bench/hub" --s3-endpoint "http://127.0.0.1:${P[0]}" \
    --s3-access-key-id benchkey --s3-secret-access-key benchsecret0123456789
  run_suite "SeaweedFS S3 store (weed mini on loopback)"
fi
