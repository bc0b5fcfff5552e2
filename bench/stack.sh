#!/usr/bin/env bash
# End-to-end benchmark: the whole stack as `make run` starts it, driven like bench/gateway.sh.
#
# 1. scripts/run-local.sh run (what `make run` runs: redis-server with the shipped redis.conf —
#    AOF, appendfsync always —, MariaDB, etcd, the gateway with the shipped log settings and
#    its output in a file, one worker draining into MariaDB; honcho supervising; dev mode) on
#    free 127.0.0.1 ports (SECKILL_*_PORT), in a temp SECKILL_STATE_DIR, with the release
#    binaries (SECKILL_SKIP_BUILD=1 after one build here, SECKILL_SKIP_SETUP=1). Two settings
#    differ from a plain `make run`, both for the load generator: an explicit JWT key
#    (SECKILL_AUTH__JWT_SECRET, so `seckill users seed` can sign tokens the gateway accepts) and
#    the per-IP rate limit lifted (every request comes from 127.0.0.1; the per-user limit
#    stays as shipped).
# 2. `seckill users seed --count USERS --tokens FILE` and ACTIVITIES × `seckill activity create
#    --stock 10^9 --limit 1` (MySQL rows, preheated into Redis).
# 3. wrk with bench/gateway.lua: every request a distinct (user, activity) pair, so every one
#    is a winning reservation that becomes an order; any non-2xx voids the run.
# 4. Waits (at most DRAIN_TIMEOUT s) until `seckill lag` shows LAG 0 and PENDING 0 for every
#    activity, then checks: orders in MariaDB == reservations in Redis (SECKILL.STATUS), and
#    wrk's 2xx <= orders <= wrk's 2xx + connections (requests in flight when wrk stopped can
#    have reserved without wrk counting their reply).
# 5. Stops the stack (SIGTERM, as `kill` would), checks no process of it is left, removes the
#    temp dir (kept in .state/bench-logs/ when something failed).
# Prints a markdown table row (and the CPU each process used during the run); exit status 1
# when the run is invalid or an invariant fails.
#
# Usage: bench/stack.sh [duration] [connections]   (defaults 10s, 64)
# Env: THREADS [1] USERS [20000] ACTIVITIES [20] REQUESTS [1000000] DRAIN_TIMEOUT [120 + 1 s
#      per 1,000 requests]
#      STACK_STARTUP_TIMEOUT [240] STACK_BACKGROUND_NICE (variant: the worker's and MariaDB's
#      niceness, shipped 10) STACK_WORKER_MAX_ORDERS_PER_SEC (variant: the worker's pace,
#      shipped 5000 by scripts/run-local.sh; 0: no cap) STACK_WORKER_LIFT_PACE_WHEN_IDLE
#      (variant: true|false, shipped true by scripts/run-local.sh) STACK_SKIP_BUILD=1 (binaries in SECKILL_BIN_DIR
#      [$CARGO_TARGET_DIR/release, else target/release] as they are)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source-path=SCRIPTDIR source=sim/stack.sh
source "$ROOT/bench/sim/stack.sh"
DUR=${1:-10s}
CONNS=${2:-64}
export THREADS=${THREADS:-1}
USERS=${USERS:-20000}
ACTIVITIES=${ACTIVITIES:-20}
export REQUESTS=${REQUESTS:-1000000}
# Default: 120 s plus 1 s per 1,000 requests served (the local stack paces its worker).
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-}
STARTUP=${STACK_STARTUP_TIMEOUT:-240}
stack_build
BIN=$(seckill_bin_dir)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/seckill-stack-bench.XXXXXX")
STATE=$WORK/state
RUNLOCAL_PID=""
FAILED=0

# Stops the stack (SIGTERM to run-local.sh, which stops honcho and everything under it), then
# makes sure nothing is left (run-local.sh stop), and removes the temp dir.
# shellcheck disable=SC2317 # called from the EXIT trap
stop_stack() {
  [ -n "$RUNLOCAL_PID" ] || return 0
  kill -TERM "$RUNLOCAL_PID" 2>/dev/null || true
  local deadline=$((SECONDS + 60))
  while process_running "$RUNLOCAL_PID" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
  wait "$RUNLOCAL_PID" 2>/dev/null || true
  RUNLOCAL_PID=""
  if [ -n "$(stack_pids_of "$STATE")" ]; then
    stack_say "processes of the stack left after it stopped: $(stack_pids_of "$STATE" | tr '\n' ' ')"
    SECKILL_STATE_DIR=$STATE bash "$ROOT/scripts/run-local.sh" stop >&2 || true
    return 1
  fi
}
# shellcheck disable=SC2317 # the EXIT trap
finish() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  stop_stack || rc=1
  if [ "$rc" != 0 ] && [ -d "$STATE/logs" ]; then
    mkdir -p "$ROOT/.state/bench-logs"
    cp -r "$STATE/logs" "$ROOT/.state/bench-logs/$(basename "$WORK")"
    cp "$WORK/console.log" "$ROOT/.state/bench-logs/$(basename "$WORK")/" 2>/dev/null
    echo "stack.sh: logs kept in .state/bench-logs/$(basename "$WORK")" >&2
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- 1. the stack, as `make run` starts it
# Nothing from the caller's environment may change the shipped configuration.
unset RUST_LOG
# Variants of this script's own (labelled in the row), read before the caller's SECKILL_*
# variables are dropped so the stack runs as shipped otherwise.
VARIANT_NICE=${STACK_BACKGROUND_NICE:-}
VARIANT_CAP=${STACK_WORKER_MAX_ORDERS_PER_SEC:-}
VARIANT_LIFT=${STACK_WORKER_LIFT_PACE_WHEN_IDLE:-}
while read -r v; do unset "$v"; done < <(compgen -e | grep '^SECKILL_' || true)
[ -z "$VARIANT_NICE" ] || export SECKILL_BACKGROUND_NICE=$VARIANT_NICE
[ -z "$VARIANT_CAP" ] || export SECKILL_WORKER__MAX_ORDERS_PER_SEC=$VARIANT_CAP
[ -z "$VARIANT_LIFT" ] || export SECKILL_WORKER__LIFT_PACE_WHEN_IDLE=$VARIANT_LIFT
export SECKILL_STATE_DIR=$STATE SECKILL_SKIP_SETUP=1 SECKILL_SKIP_BUILD=1 SECKILL_BIN_DIR=$BIN
export SECKILL_DEV=1 SECKILL_STARTUP_TIMEOUT=$STARTUP
export SECKILL_REDIS_PORT SECKILL_MYSQL_PORT SECKILL_ETCD_PORT SECKILL_ETCD_PEER_PORT \
  SECKILL_GATEWAY_PORT SECKILL_WORKER_METRICS_PORT
SECKILL_REDIS_PORT=$(free_port)
SECKILL_MYSQL_PORT=$(free_port)
SECKILL_ETCD_PORT=$(free_port)
SECKILL_ETCD_PEER_PORT=$(free_port)
SECKILL_GATEWAY_PORT=$(free_port)
SECKILL_WORKER_METRICS_PORT=$(free_port)
export SECKILL_AUTH__JWT_SECRET
SECKILL_AUTH__JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
export SECKILL_RATE_LIMIT__PER_IP_PER_SECOND=100000000 SECKILL_RATE_LIMIT__PER_IP_BURST=100000000
GATEWAY_URL=http://127.0.0.1:$SECKILL_GATEWAY_PORT

stack_say "starting the stack: scripts/run-local.sh run (state $STATE, gateway $GATEWAY_URL)"
bash "$ROOT/scripts/run-local.sh" run >"$WORK/console.log" 2>&1 &
RUNLOCAL_PID=$!
deadline=$((SECONDS + STARTUP))
until grep -q 'seckill local stack is up' "$WORK/console.log"; do
  if ! process_running "$RUNLOCAL_PID" || [ "$SECONDS" -ge "$deadline" ]; then
    tail -n 40 "$WORK/console.log" >&2
    stack_die "the stack did not come up (console above; logs in $STATE/logs)"
  fi
  sleep 0.5
done
stack_say "the stack is up; seeding $USERS users and $ACTIVITIES activities"

# ---- 2. users, tokens, activities (the CLI finds this stack through these variables)
export SECKILL_MYSQL__URL="mysql://root@127.0.0.1:$SECKILL_MYSQL_PORT/seckill"
export SECKILL_REDIS__URL="redis://127.0.0.1:$SECKILL_REDIS_PORT/"
db() { mariadb --defaults-file="$STATE/my.cnf" -N -B seckill -e "$1"; }
"$BIN/seckill" users seed --count "$USERS" --tokens "$WORK/tokens.txt" --prefix bench 2>>"$WORK/cli.log" ||
  stack_die "seckill users seed failed: $(tail -3 "$WORK/cli.log")"
[ "$(wc -l <"$WORK/tokens.txt")" -eq "$USERS" ] || stack_die "expected $USERS tokens"
IDS=()
PAIRS=""
for i in $(seq "$ACTIVITIES"); do
  id=$("$BIN/seckill" activity create --stock 1000000000 --limit 1 --start now --price 100 \
    --title "bench $i" 2>>"$WORK/cli.log") || stack_die "seckill activity create failed: $(tail -3 "$WORK/cli.log")"
  IDS+=("$id")
  PAIRS+="${PAIRS:+,}$id:$(db "SELECT product_id FROM activities WHERE id = $id")"
done
IN=$(IFS=,; echo "${IDS[*]}")

# ---- 3. load
# CPU ticks per process name of the stack (honcho included), and of the whole machine.
stack_cpu_ticks() {
  local p
  for p in $(stack_pids_of "$STATE" | sort -un); do
    [ -r "/proc/$p/stat" ] || continue
    awk -v c="$(cat "/proc/$p/comm" 2>/dev/null)" '{sub(/^.*\) /, ""); print c, $12 + $13}' "/proc/$p/stat"
  done | awk '{t[$1] += $2} END {for (c in t) print c, t[c]}' | sort
}
machine_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8, $5 + $6}' /proc/stat; }
stack_cpu_ticks >"$WORK/cpu.before"
read -r busy0 idle0 < <(machine_ticks)
stack_say "wrk: $THREADS thread(s), $CONNS connections, $DUR against $GATEWAY_URL/api/v1/seckill"
T0=$SECONDS
ACTIVITY_IDS=$PAIRS TOKENS=$WORK/tokens.txt \
  wrk -t"$THREADS" -c"$CONNS" -d"$DUR" --latency -s bench/gateway.lua "$GATEWAY_URL/api/v1/seckill" >"$WORK/wrk.txt"
LOAD_END=$SECONDS
read -r busy1 idle1 < <(machine_ticks)
stack_cpu_ticks >"$WORK/cpu.after"
cat "$WORK/wrk.txt" >&2
RPS=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt")
read -r P50 P95 P99 < <(awk '$1=="PCTL" {print $2, $3, $4}' "$WORK/wrk.txt")
NON2XX=$(awk '/Non-2xx/ {print $5}' "$WORK/wrk.txt")
NON2XX=${NON2XX:-0}
TOTAL=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
OK2XX=$((TOTAL - NON2XX))
# Redis' stalls during the run (redis_stalls, scripts/lib/stack.sh), e.g. behind replies
# past the gateway's deadline.
if [ "$NON2XX" -gt 0 ]; then
  echo "stack.sh: redis-server stalls over 10 ms (LATENCY LATEST): $(redis_stalls "$SECKILL_REDIS_PORT")" >&2
  echo "stack.sh: $NON2XX requests were not 2xx; the run is invalid. One reply:" >&2
  curl -s -XPOST "$GATEWAY_URL/api/v1/seckill" -H 'content-type: application/json' \
    -H "authorization: Bearer $(head -1 "$WORK/tokens.txt")" \
    -d "{\"activity_id\":\"${IDS[0]}\",\"product_id\":\"$(db "SELECT product_id FROM activities WHERE id = ${IDS[0]}")\",\"quantity\":1}" >&2 || true
  echo >&2
  [ "$TOTAL" -le "$((USERS * ACTIVITIES))" ] ||
    echo "stack.sh: $TOTAL requests for $((USERS * ACTIVITIES)) (user, activity) pairs: raise USERS or ACTIVITIES" >&2
  exit 1
fi

# ---- 4. drain, then the invariant
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-$((120 + TOTAL / 1000))}
stack_say "waiting for the worker to drain (at most ${DRAIN_TIMEOUT}s)"
# shellcheck disable=SC2317 # called through wait_until
drained() {
  "$BIN/seckill" lag 2>/dev/null >"$WORK/lag.txt" || return 1
  # ACTIVITY LENGTH LAG PENDING DEAD CONSUMERS, one line per activity that has a stream (an
  # activity no request reached has none; every stream exists once the load is over).
  awk -v ids=" ${IDS[*]} " 'index(ids, " " $1 " ") { n++; if ($3 != 0 || $4 != 0) bad++ }
    END { exit !(n > 0 && bad == 0) }' "$WORK/lag.txt"
}
wait_until "$DRAIN_TIMEOUT" drained && DRAINED=1 || DRAINED=0
DRAIN_S=$((SECONDS - LOAD_END))
ORDERS=$(db "SELECT COUNT(*) FROM orders WHERE activity_id IN ($IN)")
RESERVED=0
for id in "${IDS[@]}"; do
  n=$(redis-cli -p "$SECKILL_REDIS_PORT" SECKILL.STATUS "$id" | awk 'prev == "reservations" {print; exit} {prev = $0}')
  RESERVED=$((RESERVED + n))
done
check() { # DESCRIPTION OK(0/1) DETAIL
  if [ "$2" = 0 ]; then echo "stack.sh: ok    $1: $3" >&2; else
    echo "stack.sh: FAIL  $1: $3" >&2
    FAILED=1
  fi
}
check "worker drained (seckill lag: LAG 0, PENDING 0)" "$((1 - DRAINED))" "$DRAIN_S s after the load"
[ "$DRAINED" = 1 ] || sed 's/^/    /' "$WORK/lag.txt" >&2
check "orders in MariaDB == reservations in Redis" "$([ "$ORDERS" -eq "$RESERVED" ] && echo 0 || echo 1)" \
  "$ORDERS orders, $RESERVED reservations"
check "wrk's 2xx <= orders <= 2xx + $CONNS in flight" \
  "$([ "$ORDERS" -ge "$OK2XX" ] && [ "$ORDERS" -le $((OK2XX + CONNS)) ] && echo 0 || echo 1)" \
  "$OK2XX replies 2xx, $ORDERS orders"

echo "| target | config | requests/s | p50 | p95 | p99 | non-2xx | orders in MariaDB | drained after |"
echo "|---|---|---|---|---|---|---|---|---|"
PACE=$(sed -n 's/.*SECKILL_WORKER__MAX_ORDERS_PER_SEC:-\([0-9]*\)}.*/\1/p' scripts/run-local.sh | head -1)
LIFT=$(sed -n 's/.*SECKILL_WORKER__LIFT_PACE_WHEN_IDLE:-\([a-z]*\)}.*/\1/p' scripts/run-local.sh | head -1)
CONFIG="shipped: scripts/run-local.sh, redis.conf (AOF, fsync always), access log on, worker into MariaDB at the local stack's pace (worker.max_orders_per_sec ${PACE:-?}, lift_pace_when_idle ${LIFT:-?})"
# A variant is labelled as such (never the headline).
VARIANT=""
[ -z "$VARIANT_NICE" ] || VARIANT+="${VARIANT:+, }worker and MariaDB at nice $VARIANT_NICE (shipped: 10)"
[ -z "$VARIANT_CAP" ] || VARIANT+="${VARIANT:+, }worker.max_orders_per_sec $VARIANT_CAP (shipped: ${PACE:-?} in the local stack; 0: no cap)"
[ -z "$VARIANT_LIFT" ] || VARIANT+="${VARIANT:+, }worker.lift_pace_when_idle $VARIANT_LIFT (shipped: ${LIFT:-?} in the local stack)"
[ -z "$VARIANT" ] || CONFIG="variant: as shipped but $VARIANT"
echo "| whole stack (make run) | $CONFIG |" \
  "$RPS | $P50 ms | $P95 ms | $P99 ms | $NON2XX | $ORDERS | $DRAIN_S s |"
echo
TICK=$(getconf CLK_TCK)
echo "CPU seconds during the $((LOAD_END - T0)) s load, per process of the stack:" \
  "$(join -a1 -e0 -o 0,1.2,2.2 "$WORK/cpu.after" "$WORK/cpu.before" |
    awk -v hz="$TICK" '{printf "%s %.1f\n", $1, ($2 - $3) / hz}' | sort -k2 -rn | awk '{printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2}');" \
  "whole machine $(awk -v b=$((busy1 - busy0)) -v i=$((idle1 - idle0)) -v hz="$TICK" -v n="$TOTAL" \
    'BEGIN {printf "%.1f busy of %.1f (%.0f%%), %.1f µs per request", b / hz, (b + i) / hz, 100 * b / (b + i), (n > 0 ? b * 1000000 / hz / n : 0)}') (wrk included)."
echo "redis-server stalls over 10 ms (LATENCY LATEST: event (last, worst)): $(redis_stalls "$SECKILL_REDIS_PORT")."
# What Redis did besides serving: AOF rewrites (each a fork and a child dumping the dataset
# on the same cores) and the longest fork.
echo "redis-server: $(redis-cli -p "$SECKILL_REDIS_PORT" INFO persistence |
  awk -F: '/^aof_rewrites:|^rdb_saves:|^latest_fork_usec:|^aof_current_size:/ {gsub(/\r/, ""); printf "%s%s %s", (n++ ? ", " : ""), $1, $2}')."
# Where Redis' one thread went: the sale's command against the drain's (microseconds of server
# time per call and in all), so the drain's share of the thread the sale waits on is visible.
echo "redis-server commands (calls, usec total, usec/call): $(redis-cli -p "$SECKILL_REDIS_PORT" INFO commandstats |
  awk -F'[:,=]' '/^cmdstat_(seckill\.reserve|xreadgroup|xack|xautoclaim|wait|xlen|xinfo)/ {gsub(/\r/, ""); sub(/^cmdstat_/, "", $1); printf "%s%s %s, %s, %s", (n++ ? "; " : ""), $1, $3, $5, $7}')."
echo "wrk: $THREADS thread(s), $CONNS connections, $DUR; $USERS users x $ACTIVITIES activities (stock 10^9, limit 1);" \
  "$(nproc) cores, $(date -u +%Y-%m-%d)."
stop_stack || check "no process of the stack left after SIGTERM" 1 "see above"
exit "$FAILED"
