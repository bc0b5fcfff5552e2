#!/usr/bin/env bash
# `make load-test`: k6 against the whole stack, then the invariants.
#
# 1. Starts a private stack on free 127.0.0.1 ports (bench/sim/stack.sh: redis-server with the
#    module and redis.conf, MariaDB in a temp dir, migrations, gateway, worker), or uses the
#    running one with SECKILL_STACK=running (see bench/sim/stack.sh for its variables).
# 2. Seeds USERS users and their tokens (`seckill users seed`, progress bar) and opens a sale
#    of STOCK units, limit 1 per user (`seckill activity create`).
# 3. k6 (bench/k6/seckill.js) ramps POST /api/v1/seckill to RATE requests/s over RAMP, holds
#    for HOLD; each request carries one of the tokens.
# 4. Waits (at most DRAIN_TIMEOUT s) for the worker to drain the stream, then checks:
#    exactly STOCK reservations answered 200, exactly STOCK orders, no user twice, stock 0
#    (SECKILL.STATUS and GET /api/v1/activities/{id}), lag 0 and pending 0, every winner sees
#    one order through GET /api/v1/orders, `seckill audit <id>` exits 0.
# Prints QPS, P50/P95/P99 and the replies by code; exit status 1 when an invariant fails.
# Result: docs/bench-results/load-test-<date>-<RATE>rps.json (figures, settings, invariants_ok).
#
# Environment (defaults sized for a 2-core machine running k6, gateway, worker, Redis and
# MariaDB at once): USERS [20000] STOCK [1000] RATE [3000] RAMP [10s] HOLD [20s] VUS [200]
# MAX_VUS [1000] DRAIN_TIMEOUT [120] K6_TIMEOUT [300]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
USERS=${USERS:-20000}
STOCK=${STOCK:-1000}
RATE=${RATE:-3000}
RAMP=${RAMP:-10s}
HOLD=${HOLD:-20s}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-120}
K6_TIMEOUT=${K6_TIMEOUT:-300}
[ "$STOCK" -le "$USERS" ] || { echo "STOCK ($STOCK) must not exceed USERS ($USERS)" >&2; exit 2; }

# shellcheck source-path=SCRIPTDIR source=sim/stack.sh
source "$ROOT/bench/sim/stack.sh"

ensure_venv
[ "${SECKILL_STACK:-}" = running ] && STACK_SKIP_BUILD=${STACK_SKIP_BUILD:-1}
stack_build
stack_up
WORK=$(mktemp -d "${TMPDIR:-/tmp}/seckill-load.XXXXXX")
# stack_down is the EXIT trap (private stack); chain the work dir's removal before it.
trap 'rc=$?; rm -rf "$WORK"; stack_down "$rc"' EXIT

stack_say "seeding $USERS users and their tokens (seckill users seed)"
seckill_cli users seed --count "$USERS" --tokens "$WORK/tokens.txt" --prefix load
[ "$(wc -l <"$WORK/tokens.txt")" -eq "$USERS" ] || stack_die "expected $USERS tokens"
ACTIVITY=$(seckill_cli activity create --stock "$STOCK" --limit 1 --start now --price 999 --title "load test")
PRODUCT=$(sql "SELECT product_id FROM activities WHERE id = $ACTIVITY")
stack_say "activity $ACTIVITY (product $PRODUCT, stock $STOCK, limit 1); k6: ramp to $RATE req/s over $RAMP, hold $HOLD"

stack_cpu >"$WORK/cpu.before"
TIMER=()
[ -x /usr/bin/time ] && TIMER=(/usr/bin/time -f '%U %S' -o "$WORK/k6.time")
K6_T0=$(date +%s%N)
set +e
BASE_URL=$GATEWAY_URL ACTIVITY_ID=$ACTIVITY PRODUCT_ID=$PRODUCT TOKENS=$WORK/tokens.txt \
  RATE=$RATE RAMP=$RAMP HOLD=$HOLD SUMMARY=$WORK/k6-summary.json \
  timeout "$K6_TIMEOUT" "${TIMER[@]}" "$VENV/bin/k6" run --quiet --no-usage-report --log-output=stderr \
  "$ROOT/bench/k6/seckill.js"
K6_RC=$?
set -e
K6_NS=$(($(date +%s%N) - K6_T0))
stack_cpu >"$WORK/cpu.after"
[ -s "$WORK/k6-summary.json" ] || stack_die "k6 produced no summary (exit status $K6_RC)"
# Where the machine's CPU went during the k6 run (the load generator shares the cores).
CPU_LINE=$(python3 "$ROOT/bench/k6/report.py" cpu "$WORK/cpu.before" "$WORK/cpu.after" "$WORK/k6.time" "$K6_NS")

echo
echo "== load test: $USERS users, stock $STOCK, ramp to $RATE req/s over $RAMP, hold $HOLD, $(nproc) cores"
python3 "$ROOT/bench/k6/report.py" summary "$WORK/k6-summary.json" "$WORK/result.json"
[ -z "$CPU_LINE" ] || echo "CPU seconds   $CPU_LINE"

echo
echo "== invariants"
FAILED=0
check() { # DESCRIPTION OK(0/1) DETAIL
  if [ "$2" = 0 ]; then printf '  ok    %-44s %s\n' "$1" "$3"; else
    printf '  FAIL  %-44s %s\n' "$1" "$3"
    FAILED=1
  fi
}
stack_say "waiting for the worker to drain (at most ${DRAIN_TIMEOUT}s)"
DRAIN_START=$SECONDS
wait_drained "$ACTIVITY" "$DRAIN_TIMEOUT" && drained=0 || drained=1
read -r LAG PENDING < <(stream_backlog "$ACTIVITY")
check "lag 0, pending 0 (XINFO GROUPS)" "$drained" "lag $LAG pending $PENDING, drained $((SECONDS - DRAIN_START)) s after k6"
seckill_cli lag | sed 's/^/        /'

ok200=$(python3 -c "import json; print(json.load(open('$WORK/result.json'))['codes'].get('200', 0))")
check "exactly $STOCK reservations answered 200" "$([ "$ok200" -eq "$STOCK" ] && echo 0 || echo 1)" "$ok200"
REMAINING=$(rcli SECKILL.STATUS "$ACTIVITY" | awk 'prev == "remaining" {print; exit} {prev = $0}')
check "stock 0 (SECKILL.STATUS remaining)" "$([ "$REMAINING" = 0 ] && echo 0 || echo 1)" "remaining $REMAINING"
read -r ORDERS QTY USERS_WITH < <(sql "SELECT COUNT(*), COALESCE(SUM(quantity),0), COUNT(DISTINCT user_id) FROM orders WHERE activity_id = $ACTIVITY")
check "exactly $STOCK orders in MySQL" "$([ "$ORDERS" -eq "$STOCK" ] && [ "$QTY" -eq "$STOCK" ] && echo 0 || echo 1)" "$ORDERS orders, quantity $QTY"
check "no user twice" "$([ "$USERS_WITH" -eq "$ORDERS" ] && echo 0 || echo 1)" "$USERS_WITH distinct users for $ORDERS orders"
sql "SELECT user_id FROM orders WHERE activity_id = $ACTIVITY" >"$WORK/winners.txt"
if api=$(python3 "$ROOT/bench/k6/report.py" verify "$GATEWAY_URL" "$ACTIVITY" "$WORK/tokens.txt" "$WORK/winners.txt" 200); then
  check "through the API" 0 "$(echo "$api" | head -1)"
else
  check "through the API" 1 "$api"
fi
if audit=$(seckill_cli audit "$ACTIVITY" 2>&1); then check "seckill audit $ACTIVITY" 0 "$(echo "$audit" | head -1)"; else
  check "seckill audit $ACTIVITY" 1 "$audit"
fi
[ "$K6_RC" = 0 ] || check "k6 exit status" 1 "$K6_RC"

DATE=$(date -u +%Y-%m-%d)
RESULT=$ROOT/docs/bench-results/load-test-$DATE-${RATE}rps.json
mkdir -p "$ROOT/docs/bench-results"
python3 - "$WORK/result.json" "$RESULT" <<EOF
import json, os, sys
r = json.load(open(sys.argv[1]))
r.update(users=$USERS, stock=$STOCK, target_rate=$RATE, ramp="$RAMP", hold="$HOLD",
         cores=os.cpu_count(), load_average=os.getloadavg()[0], invariants_ok=not $FAILED,
         orders=$ORDERS, drain_s=$((SECONDS - DRAIN_START)), date="$DATE",
         stack="${SECKILL_STACK:-private}", appendfsync="${STACK_APPENDFSYNC:-always}",
         cpu_seconds="$CPU_LINE")
json.dump(r, open(sys.argv[2], "w"), indent=1)
EOF
echo
if [ "$FAILED" = 0 ]; then echo "load test: all invariants hold (result: ${RESULT#"$ROOT"/})"; else
  echo "load test: INVARIANT FAILED (result: ${RESULT#"$ROOT"/})"
  exit 1
fi
