#!/usr/bin/env bash
# Gateway benchmark: wrk against POST /api/v1/seckill (JWT verify + body validation + one
# SECKILL.RESERVE through the coalescer on the multiplexed connection; distinct users; stock
# large enough that every request succeeds) and, in the same run, against a trivial warp
# handler. Prints a markdown table for docs/benchmarks.md.
#
# Rows, each on a fresh redis-server (scripts/lib/stack.sh, the module loaded) and a fresh
# gateway whose output goes to a file, as under `make run`:
#   trivial warp handler            the baseline (fixed JSON envelope, same warp/tokio stack);
#   shipped                         the headline: the repository's redis.conf as it ships (AOF,
#                                   appendfsync always; only port/dir/bind overridden) and the
#                                   gateway's log filter from configs/config.yaml (an access
#                                   log line per request);
#   no AOF                          redis-server with --appendonly no;
#   access log off                  gateway.log_filter = the shipped filter + ",access=off";
#   no AOF + access log off         both;
#   admission on                    shipped, with admission.required on at difficulty 0: every
#                                   request carries an admission token minted beforehand
#                                   (`seckill-gateway-bench admission`, gateway.lua's
#                                   ADMISSION), so the row prices the token check itself;
#   floor                           a reference, not the gateway: `seckill-gateway-bench floor`
#                                   on the shipped redis.conf, the cheapest handler that does
#                                   what a reservation cannot avoid (read the request, one
#                                   SECKILL.RESERVE through the gateway's Redis client, a fixed
#                                   reply): the bound the durable round trip sets;
#   floor, no AOF                   (row floor-noaof, not run unless named) the floor on
#                                   --appendonly no: what the fsync costs the round trip.
# Each row also reports the gateway's CPU per request (user + system, from /proc), and the
# whole machine's (wrk, Redis and the gateway; /proc/stat) with how busy the machine was.
#
# Usage: bench/gateway.sh [duration] [connections]   (defaults 10s, 64)
# Env: THREADS USERS ACTIVITIES REQUESTS, RATE_LIMITS [on: limiters as in production; off],
#      GATEWAY_ROWS ["shipped noaof nolog noaof-nolog admission floor"], STACK_SKIP_BUILD=1 (use the binaries
#      in SECKILL_BIN_DIR [$CARGO_TARGET_DIR/release, else target/release] as they are)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source-path=SCRIPTDIR source=../scripts/lib/stack.sh
source "$ROOT/scripts/lib/stack.sh"
DUR=${1:-10s}
CONNS=${2:-64}
export THREADS=${THREADS:-1}
USERS=${USERS:-20000}
export REQUESTS=${REQUESTS:-1000000}
ACTIVITIES=${ACTIVITIES:-100}
ROWS=${GATEWAY_ROWS:-shipped noaof nolog noaof-nolog admission floor}
if [ "${STACK_SKIP_BUILD:-0}" != 1 ]; then
  # Two builds: `--bins` would apply to the module too, which has none, and leave a stale .so.
  cargo build --release -p seckill-module >&2
  cargo build --release -p seckill-gateway --bins >&2
fi
BIN=$(seckill_bin_dir)
MODULE=$(realpath "$BIN/libseckill_module.so")
# The shipped log filter is configs/config.yaml's; nothing in the caller's environment may
# change it (RUST_LOG would win over it).
unset RUST_LOG SECKILL_GATEWAY__LOG_FILTER
SHIPPED_FILTER=$(awk '$1 == "log_filter:" {print $2; exit}' configs/config.yaml)
[ -n "$SHIPPED_FILTER" ] || { echo "gateway.sh: no gateway.log_filter in configs/config.yaml" >&2; exit 1; }

stack_traps
DIR=$(mktemp -d "${TMPDIR:-/tmp}/seckill-gateway-bench.XXXXXX")
cleanup_dir "$DIR"
RPORT=$(free_port)
GPORT=$(free_port)
BPORT=$(free_port)

export SECKILL_AUTH__JWT_SECRET="bench-only-secret-bench-only-secret-0123"
"$BIN/seckill-gateway-bench" tokens "$USERS" "$DIR/tokens.txt"
case " $ROWS " in *" admission "*)
  # One token per request the run may send (each is good once).
  "$BIN/seckill-gateway-bench" admission "$USERS" "$ACTIVITIES" "$REQUESTS" "$DIR/admission.txt" ;;
esac

# RATE_LIMITS=on (the default) keeps the rate limiters of the production config: the per-user
# one as configured (each user sends one request, so it never refuses) and the per-IP one with
# its limit lifted (every request comes from 127.0.0.1). RATE_LIMITS=off skips both.
if [ "${RATE_LIMITS:-on}" = on ]; then
  export SECKILL_RATE_LIMIT__ENABLED=true SECKILL_RATE_LIMIT__PER_IP_PER_SECOND=100000000 \
    SECKILL_RATE_LIMIT__PER_IP_BURST=100000000
else
  export SECKILL_RATE_LIMIT__ENABLED=false
fi

label() {
  case $1 in
  shipped) echo "shipped (redis.conf: AOF, fsync always; access log on)" ;;
  noaof) echo "no AOF" ;;
  nolog) echo "access log off" ;;
  noaof-nolog) echo "no AOF + access log off" ;;
  admission) echo "admission on (difficulty 0)" ;;
  floor) echo "shipped redis.conf; seckill-gateway-bench floor" ;;
  floor-noaof) echo "no AOF; seckill-gateway-bench floor" ;;
  *) echo "gateway.sh: unknown row '$1' (shipped noaof nolog noaof-nolog admission floor floor-noaof)" >&2; exit 2 ;;
  esac
}

cpu_ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }
# Busy and idle ticks of the whole machine (wrk included): whether a row had CPU to spare,
# and what a request costs in all (the stack row adds the drain's share to it).
machine_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8, $5 + $6}' /proc/stat; }
TICK=$(getconf CLK_TCK)

# run TARGET CONFIG URL PID: wrk, then one table row; PID is the server whose CPU is counted.
FAILED=0
run() {
  local out=$DIR/wrk-$RANDOM.txt t0 t1 busy0 idle0 busy1 idle1
  t0=$(cpu_ticks "$4")
  read -r busy0 idle0 < <(machine_ticks)
  TOKENS="$DIR/tokens.txt" ACTIVITIES=$ACTIVITIES ADMISSION=${5:-} \
    wrk -t"$THREADS" -c"$CONNS" -d"$DUR" --latency -s bench/gateway.lua "$3" >"$out"
  read -r busy1 idle1 < <(machine_ticks)
  t1=$(cpu_ticks "$4")
  local rps p50 p95 p99 non2xx total
  rps=$(awk '/Requests\/sec/ {print $2}' "$out")
  read -r p50 p95 p99 < <(awk '$1=="PCTL" {print $2, $3, $4}' "$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' "$out")
  total=$(awk '/requests in/ {print $1}' "$out")
  echo "| $1 | $2 | ${rps} | ${p50} ms | ${p95} ms | ${p99} ms | ${non2xx:-0} |" \
    "$(awk -v t="$((t1 - t0))" -v hz="$TICK" -v n="$total" 'BEGIN { printf "%.1f", (n > 0 ? t * 1000000 / hz / n : 0) }') |" \
    "$(awk -v b="$((busy1 - busy0))" -v i="$((idle1 - idle0))" -v hz="$TICK" -v n="$total" \
      'BEGIN { printf "%.1f | %.0f%%", (n > 0 ? b * 1000000 / hz / n : 0), (b + i > 0 ? 100 * b / (b + i) : 0) }') |"
  cat "$out" >&2
  FAILED=$((FAILED + ${non2xx:-0}))
}

echo "| target | config | requests/s | p50 | p95 | p99 | non-2xx | HTTP server CPU µs/request | machine CPU µs/request | machine busy |"
echo "|---|---|---|---|---|---|---|---|---|---|"

spawn baseline "$DIR/baseline.log" "$BIN/seckill-gateway-bench" baseline "127.0.0.1:$BPORT"
wait_for_port 30 "$BPORT" || { echo "gateway.sh: the trivial handler did not start" >&2; exit 1; }
run "trivial warp handler" "–" "http://127.0.0.1:$BPORT/" "$SPAWNED_PID"
stop_spawned

for row in $ROWS; do
  name=$(label "$row")
  extra=()
  filter=$SHIPPED_FILTER
  case $row in *noaof*) extra=(--appendonly no) ;; esac
  case $row in *nolog*) filter="$SHIPPED_FILTER,access=off" ;; esac
  admission=()
  tickets=""
  if [ "$row" = admission ]; then
    admission=(SECKILL_ADMISSION__REQUIRED=true SECKILL_ADMISSION__DIFFICULTY=0)
    tickets=$DIR/admission.txt
  fi
  rm -rf "$DIR/redis"
  mkdir -p "$DIR/redis"
  rurl="redis://127.0.0.1:$RPORT/"
  redis_cmd "$RPORT" "$DIR/redis" "$MODULE" "${extra[@]}"
  spawn redis "$DIR/redis-$row.log" "${REDIS_CMD[@]}"
  wait_until 30 redis_up "$RPORT" || { tail "$DIR/redis-$row.log" >&2; exit 1; }
  for a in $(seq 0 $((ACTIVITIES - 1))); do
    redis-cli -p "$RPORT" SECKILL.CREATE "b$a" STOCK 1000000000 >/dev/null
  done
  target="POST /api/v1/seckill"
  if [ "${row%-noaof}" = floor ]; then
    target="one RESERVE per request, nothing else"
    spawn floor "$DIR/gateway-$row.log" "$BIN/seckill-gateway-bench" floor "127.0.0.1:$GPORT" \
      "$rurl" "$ACTIVITIES"
  else
    spawn gateway "$DIR/gateway-$row.log" env SECKILL_GATEWAY__LOG_FILTER="$filter" "${admission[@]}" \
      "$BIN/seckill-gateway" --config configs/config.yaml --listen "127.0.0.1:$GPORT" \
      --redis-url "$rurl" --mysql-url "mysql://root@127.0.0.1:1/none"
  fi
  gpid=$SPAWNED_PID
  wait_for_port 30 "$GPORT" || { tail "$DIR/gateway-$row.log" >&2; exit 1; }
  run "$target" "$name" "http://127.0.0.1:$GPORT/api/v1/seckill" "$gpid" "$tickets"
  echo "gateway.sh: $name: redis appendonly $(redis-cli -p "$RPORT" CONFIG GET appendonly | tail -1)," \
    "log filter '$filter', gateway log $(wc -l <"$DIR/gateway-$row.log") lines" >&2
  echo "redis: $(redis-cli -p "$RPORT" SECKILL.STATUS b0 | paste -sd' ' | cut -c1-80)" >&2
  if [ "$FAILED" -gt 0 ]; then
    echo "gateway.sh: $FAILED requests were not 2xx; the run is invalid. One reply:" >&2
    curl -s -XPOST "http://127.0.0.1:$GPORT/api/v1/seckill" -H 'content-type: application/json' \
      -H "authorization: Bearer $(head -1 "$DIR/tokens.txt")" \
      -d '{"activity_id":"b0","product_id":"p","quantity":1}' >&2 || true
    exit 1
  fi
  stop_spawned
done
echo
echo "wrk: $THREADS thread(s), $CONNS connections, $DUR per row; $USERS users x $ACTIVITIES activities;" \
  "rate limiters ${RATE_LIMITS:-on}; shipped log filter '$SHIPPED_FILTER'; $(nproc) cores, $(date -u +%Y-%m-%d)."
