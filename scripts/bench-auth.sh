#!/usr/bin/env bash
# Auth benchmark (docs/benchmarks.md, "Auth"): wrk GETs of one ~8 KiB segment blob from two release hubs in
# front of the same file store — one in dev mode (no token), one verifying an OIDC bearer token against the
# real test IdP's JWKS (cached) — in alternating rounds; prints each round and the medians and their ratio.
#   scripts/bench-auth.sh            (ROUNDS=5 DUR=10s CONNS=32 THREADS=2 by default)
# Needs: wrk, node + tests/node/node_modules (scripts/setup.sh), python3.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
DUR=${DUR:-10s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}

cargo build --release -q -p heph-spoke --bin hephd
cargo build --release -q -p heph-hub --example loadgen
TARGET=${CARGO_TARGET_DIR:-target}
HEPHD=$TARGET/release/hephd
LOADGEN=$TARGET/release/examples/loadgen

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  exec 3>&- 2>/dev/null || true
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 200); do curl -fs "$1/healthz" >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "not up: $1" >&2; exit 1; }

# The IdP runs until its stdin closes (fd 3, closed on exit).
mkfifo "$TMP/idp.in"
(cd tests/node && exec node idp.mjs --access-ttl 3600 <"$TMP/idp.in" >"$TMP/idp.out" 2>"$TMP/idp.err") &
PIDS+=($!)
exec 3>"$TMP/idp.in"
for _ in $(seq 100); do [ -s "$TMP/idp.out" ] && break; sleep 0.1; done
ISS=$(head -1 "$TMP/idp.out")

PA=$(free_port)
HEPH_LOG=warn "$HEPHD" --mode server --http-addr "127.0.0.1:$PA" --store "file://$TMP/store" 2>"$TMP/a.err" &
PIDS+=($!)
wait_up "http://127.0.0.1:$PA"
BLOB=$("$LOADGEN" seed --addr "127.0.0.1:$PA" | awk '{print $1}')

PB=$(free_port)
HEPH_LOG=warn "$HEPHD" --mode server --http-addr "127.0.0.1:$PB" --store "file://$TMP/store" \
  --oidc-issuer "$ISS" --oidc-audience heph --required-group admins 2>"$TMP/b.err" &
PIDS+=($!)
wait_up "http://127.0.0.1:$PB"
TOKEN=$(curl -fs -XPOST "$ISS/__test/mint" -H 'content-type: application/json' -d '{}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
for _ in $(seq 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PB$BLOB")" = 200 ] && break
  sleep 0.1
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PB$BLOB")" = 401 ] || { echo "OIDC hub served without a token" >&2; exit 1; }
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PB$BLOB")" = 200 ] ||
  { echo "OIDC hub refused the token" >&2; exit 1; }

rps() { wrk -t"$THREADS" -c"$CONNS" -d"$DUR" "$@" | awk '/Requests\/sec/ {print $2}'; }
A=(); B=()
for r in $(seq "$ROUNDS"); do
  a=$(rps "http://127.0.0.1:$PA$BLOB")
  b=$(rps -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PB$BLOB")
  echo "round $r: unauthenticated $a req/s, authenticated $b req/s"
  A+=("$a"); B+=("$b")
done
python3 - "${A[*]}" "${B[*]}" <<'PY'
import statistics, sys
a = [float(x) for x in sys.argv[1].split()]
b = [float(x) for x in sys.argv[2].split()]
ma, mb = statistics.median(a), statistics.median(b)
print(f"median unauthenticated {ma:.0f} req/s, authenticated {mb:.0f} req/s, ratio {mb / ma:.2f}")
PY
