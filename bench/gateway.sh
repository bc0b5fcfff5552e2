#!/usr/bin/env bash
# Gateway benchmark: wrk against POST /api/v1/seckill (JWT verify + body validation + one
# SECKILL.RESERVE over the multiplexed connection; distinct users; stock large enough that every
# request succeeds) and, in the same run, against a trivial warp handler on the same stack.
# Prints a markdown table for docs/benchmarks.md.
#
# Usage: bench/gateway.sh [duration] [connections]   (defaults 10s, 64)
# Env: THREADS USERS ACTIVITIES REQUESTS, RATE_LIMITS [on: limiters as in production; off]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10s}
CONNS=${2:-64}
export THREADS=${THREADS:-1}
USERS=${USERS:-20000}
export REQUESTS=${REQUESTS:-1000000}
ACTIVITIES=${ACTIVITIES:-100}
# Two builds: `--bins` would apply to the module too, which has none, and leave a stale .so.
cargo build --release -p seckill-module >&2
cargo build --release -p seckill-gateway --bins >&2
MODULE=$(realpath target/release/libseckill_module.so)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPORT=$(free_port); GPORT=$(free_port); BPORT=$(free_port)
DIR=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT

redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$DIR" \
  --loadmodule "$MODULE" --daemonize no --logfile "$DIR/redis.log" &
PIDS+=($!)
for _ in $(seq 100); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
for a in $(seq 0 $((ACTIVITIES - 1))); do
  redis-cli -p "$RPORT" SECKILL.CREATE "b$a" STOCK 1000000000 >/dev/null
done

export SECKILL_AUTH__JWT_SECRET="bench-only-secret-bench-only-secret-0123"
target/release/seckill-gateway-bench tokens "$USERS" "$DIR/tokens.txt"

# RATE_LIMITS=on (the default) keeps the rate limiters of the production config: the per-user
# one as configured (each user sends one request, so it never refuses) and the per-IP one with
# its limit lifted (every request comes from 127.0.0.1). RATE_LIMITS=off skips both.
if [ "${RATE_LIMITS:-on}" = on ]; then
  export SECKILL_RATE_LIMIT__ENABLED=true SECKILL_RATE_LIMIT__PER_IP_PER_SECOND=100000000 \
    SECKILL_RATE_LIMIT__PER_IP_BURST=100000000
else
  export SECKILL_RATE_LIMIT__ENABLED=false
fi
SECKILL_GATEWAY__LOG_FILTER=error \
  target/release/seckill-gateway --config configs/config.yaml --listen "127.0.0.1:$GPORT" \
  --redis-url "redis://127.0.0.1:$RPORT/" --mysql-url "mysql://root@127.0.0.1:1/none" \
  >"$DIR/gateway.log" 2>&1 &
PIDS+=($!)
target/release/seckill-gateway-bench baseline "127.0.0.1:$BPORT" 2>/dev/null &
PIDS+=($!)
for port in "$GPORT" "$BPORT"; do
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
done

run() { # name url
  local out="$DIR/wrk-$RANDOM.txt"
  TOKENS="$DIR/tokens.txt" ACTIVITIES=$ACTIVITIES \
    wrk -t"$THREADS" -c"$CONNS" -d"$DUR" --latency -s bench/gateway.lua "$2" >"$out"
  local rps p50 p95 p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' "$out")
  read -r p50 p95 p99 < <(awk '$1=="PCTL" {print $2, $3, $4}' "$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' "$out")
  echo "| $1 | ${rps} | ${p50} ms | ${p95} ms | ${p99} ms | ${non2xx:-0} |"
  cat "$out" >&2
  FAILED=$((FAILED + ${non2xx:-0}))
}
FAILED=0

echo "| target | requests/s | p50 | p95 | p99 | non-2xx |"
echo "|---|---|---|---|---|---|"
run "trivial warp handler" "http://127.0.0.1:$BPORT/"
run "POST /api/v1/seckill" "http://127.0.0.1:$GPORT/api/v1/seckill"
echo
echo "redis: $(redis-cli -p "$RPORT" SECKILL.STATUS b0 | paste -sd' ' | cut -c1-80)"
# The numbers only mean something if every request reserved: refuse to report a failed run.
if [ "$FAILED" -gt 0 ]; then
  echo "gateway.sh: $FAILED requests were not 2xx; the run is invalid. One reply:" >&2
  curl -s -XPOST "http://127.0.0.1:$GPORT/api/v1/seckill" -H 'content-type: application/json' \
    -H "authorization: Bearer $(head -1 "$DIR/tokens.txt")" \
    -d '{"activity_id":"b0","product_id":"p","quantity":1}' >&2 || true
  exit 1
fi
