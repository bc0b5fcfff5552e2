#!/usr/bin/env bash
# `make simulate`: a realistic flash sale through the whole stack, with its timeline.
#
# 100,000 users, stock 1,000 (limit 1), 1% of users clicking 10 times (from half a second
# before the opening, every 100-400 ms), the others once: 60% of them in the first second,
# the rest trailing off over 20 s. The click schedule (bench/sim/sale.py schedule) is replayed
# by k6 (bench/k6/sale.js) against a private stack (bench/sim/stack.sh; or SECKILL_STACK=running)
# while bench/sim/sale.py samples, every SIM_INTERVAL s: requests/s by reply (gateway /metrics),
# stock remaining (SECKILL.STATUS), reservations, orders written and the worker's backlog
# (XINFO GROUPS lag + pending). At the end: exactly STOCK orders, no user twice, backlog 0,
# `seckill audit` clean (exit status 1 otherwise).
#
# Writes docs/bench-results/sale-timeline.csv, docs/bench-results/sale-timeline.png and
# docs/bench-results/sale-<date>.json (the summary).
#
# Environment: SIM_USERS [100000] SIM_STOCK [1000] SIM_CLICKERS_PCT [1] SIM_CLICKS [10]
#   SIM_BURST_SHARE [0.6] SIM_TAIL_S [20] SIM_VUS [300] SIM_INTERVAL [0.2] SIM_LEAD_S [12]
#   (seconds from the activity's creation to its opening) SIM_OUT [docs/bench-results]
#   SIM_BUDGET_S [900]: when the predicted run time (seeding + clicks at SIM_EXPECTED_RPS, [2500
#   per core]) exceeds it, users and stock are scaled down together (same 1% ratio); the
#   summary says so. SIM_SCALE=1 forces the full size.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
USERS=${SIM_USERS:-100000}
STOCK=${SIM_STOCK:-1000}
CLICKERS_PCT=${SIM_CLICKERS_PCT:-1}
CLICKS=${SIM_CLICKS:-10}
BURST_SHARE=${SIM_BURST_SHARE:-0.6}
TAIL_S=${SIM_TAIL_S:-20}
VUS=${SIM_VUS:-300}
INTERVAL=${SIM_INTERVAL:-0.2}
BUDGET=${SIM_BUDGET_S:-900}
EXPECTED_RPS=${SIM_EXPECTED_RPS:-$(($(nproc) * 2500))}
OUT=${SIM_OUT:-$ROOT/docs/bench-results}

# shellcheck source-path=SCRIPTDIR source=sim/stack.sh
source "$ROOT/bench/sim/stack.sh"

# Scale: predicted seconds = seeding (~10,000 users/s) + clicks / expected rate + tail + drain.
SCALE_NOTE="full size"
if [ "${SIM_SCALE:-auto}" = auto ]; then
  read -r USERS STOCK SCALE_NOTE < <(python3 - "$USERS" "$STOCK" "$CLICKERS_PCT" "$CLICKS" "$EXPECTED_RPS" "$TAIL_S" "$BUDGET" <<'EOF'
import sys
users, stock, pct, clicks, rps, tail, budget = (float(x) for x in sys.argv[1:])
def predict(u):
    n = u * (1 - pct / 100) + u * pct / 100 * clicks
    return u / 10000 + n / rps + tail + 60
p = predict(users)
if p <= budget:
    print(int(users), int(stock), "full size")
else:
    f = budget / p
    while predict(users * f) > budget and users * f > 1000:
        f *= 0.95
    print(int(users * f), max(1, int(stock * f)),
          f"scaled to {f:.2f} of the full size (predicted {p:.0f} s > budget {budget:.0f} s)")
EOF
  )
fi
[ "$STOCK" -le "$USERS" ] || stack_die "SIM_STOCK must not exceed SIM_USERS"

ensure_venv
[ "${SECKILL_STACK:-}" = running ] && STACK_SKIP_BUILD=${STACK_SKIP_BUILD:-1}
stack_build
stack_up
WORK=$(mktemp -d "${TMPDIR:-/tmp}/seckill-sale.XXXXXX")
SAMPLER=""
trap 'rc=$?; [ -z "$SAMPLER" ] || kill "$SAMPLER" 2>/dev/null; rm -rf "$WORK"; stack_down "$rc"' EXIT
stack_say "simulation: $USERS users, stock $STOCK, $CLICKERS_PCT% clicking $CLICKS times ($SCALE_NOTE)"

T0=$(date +%s%N)
seckill_cli users seed --count "$USERS" --tokens "$WORK/tokens.txt" --prefix sale
SEED_S=$(python3 -c "print(round(($(date +%s%N) - $T0) / 1e9, 1))")
python3 bench/sim/sale.py schedule "$USERS" "$WORK/schedule.json" \
  --clickers-pct "$CLICKERS_PCT" --clicks "$CLICKS" --burst-share "$BURST_SHARE" --tail-s "$TAIL_S"

# The sale opens a few seconds from now, once k6 has its VUs ready; clicks before that get
# 403 NOT_STARTED, as they would in a real sale.
LEAD_S=${SIM_LEAD_S:-12}
START_MS=$(($(date +%s%3N) + LEAD_S * 1000))
START=$(python3 -c "import datetime,sys; print(datetime.datetime.fromtimestamp($START_MS/1000, datetime.timezone.utc).isoformat(timespec='milliseconds'))")
ACTIVITY=$(seckill_cli activity create --stock "$STOCK" --limit 1 --start "$START" --price 999 --title "simulated flash sale")
PRODUCT=$(sql "SELECT product_id FROM activities WHERE id = $ACTIVITY")
stack_say "activity $ACTIVITY opens at $START"

python3 bench/sim/sale.py sample --redis "$REDIS_HOST:$REDIS_PORT" --activity "$ACTIVITY" \
  --gateway "$GATEWAY_URL" --start-ms "$START_MS" --out "$WORK/timeline.csv" --done "$WORK/done" \
  --interval "$INTERVAL" --max-s "$((BUDGET + 120))" &
SAMPLER=$!

stack_cpu >"$WORK/cpu.before"
TIMER=()
[ -x /usr/bin/time ] && TIMER=(/usr/bin/time -f '%U %S' -o "$WORK/k6.time")
K6_T0=$(date +%s%N)
set +e
BASE_URL=$GATEWAY_URL ACTIVITY_ID=$ACTIVITY PRODUCT_ID=$PRODUCT TOKENS=$WORK/tokens.txt \
  SCHEDULE=$WORK/schedule.json START_MS=$START_MS VUS=$VUS SUMMARY=$WORK/k6-summary.json \
  MAX_DURATION="$((BUDGET))s" \
  timeout "$((BUDGET + 120))" "${TIMER[@]}" "$VENV/bin/k6" run --quiet --no-usage-report --log-output=stderr \
  "$ROOT/bench/k6/sale.js"
K6_RC=$?
set -e
K6_NS=$(($(date +%s%N) - K6_T0))
stack_cpu >"$WORK/cpu.after"
CPU_LINE=$(python3 bench/k6/report.py cpu "$WORK/cpu.before" "$WORK/cpu.after" "$WORK/k6.time" "$K6_NS")
touch "$WORK/done"
LOAD_END_MS=$(date +%s%3N)
stack_say "k6 done (exit status $K6_RC); waiting for the worker and the sampler"
wait_drained "$ACTIVITY" 180 && drained=0 || drained=1
DRAIN_S=$(( ($(date +%s%3N) - LOAD_END_MS) / 1000 ))
wait "$SAMPLER" || true
SAMPLER=""

echo
echo "== sale simulation: $USERS users, stock $STOCK, $CLICKERS_PCT% clicking $CLICKS times, $(nproc) cores ($SCALE_NOTE)"
python3 bench/k6/report.py summary "$WORK/k6-summary.json" "$WORK/result.json" \
  409_SOLD_OUT,409_LIMIT_EXCEEDED,403_NOT_STARTED
[ -z "$CPU_LINE" ] || echo "CPU seconds   $CPU_LINE (k6 run, including its wait for the opening)"

FAILED=0
read -r ORDERS USERS_WITH < <(sql "SELECT COUNT(*), COUNT(DISTINCT user_id) FROM orders WHERE activity_id = $ACTIVITY")
REMAINING=$(rcli SECKILL.STATUS "$ACTIVITY" | awk 'prev == "remaining" {print; exit} {prev = $0}')
echo
echo "== invariants"
echo "  orders $ORDERS (want $STOCK), distinct users $USERS_WITH, remaining $REMAINING, backlog drained: $([ "$drained" = 0 ] && echo yes || echo NO)"
[ "$ORDERS" -eq "$STOCK" ] && [ "$USERS_WITH" -eq "$ORDERS" ] && [ "$REMAINING" = 0 ] && [ "$drained" = 0 ] || FAILED=1
if audit=$(seckill_cli audit "$ACTIVITY" 2>&1); then echo "  $(echo "$audit" | tr '\n' ' ')"; else
  echo "$audit"
  FAILED=1
fi

mkdir -p "$OUT"
DATE=$(date -u +%Y-%m-%d)
cp "$WORK/timeline.csv" "$OUT/sale-timeline.csv"
python3 bench/sim/sale.py offered "$WORK/schedule.json" "$OUT/sale-timeline.csv"
ensure_venv
"$VENV/bin/python" bench/sim/sale.py plot "$OUT/sale-timeline.csv" "$OUT/sale-timeline.png" \
  --title "flash sale: $USERS users, stock $STOCK, $CLICKERS_PCT% clicking $CLICKS×, $(nproc) cores, $DATE"
python3 - "$WORK/result.json" "$OUT/sale-timeline.csv" "$OUT/sale-$DATE.json" <<EOF
import csv, json, os, sys
r = json.load(open(sys.argv[1]))
rows = list(csv.DictReader(open(sys.argv[2])))
t = lambda row: float(row["t_s"])
sold_out = next((t(x) for x in rows if x["remaining"] == "0"), None)
peak = max((float(x["req_per_s"]) for x in rows), default=0)
written = next((t(x) for x in rows if int(x["orders_written"]) >= $STOCK), None)
r.update(users=$USERS, stock=$STOCK, clickers_pct=$CLICKERS_PCT, clicks=$CLICKS,
         burst_share=$BURST_SHARE, tail_s=$TAIL_S, vus=$VUS, scale="$SCALE_NOTE",
         seed_s=$SEED_S, sold_out_at_s=sold_out, all_orders_written_at_s=written,
         peak_req_per_s=peak, drain_after_load_s=$DRAIN_S, orders=$ORDERS,
         invariants_ok=not $FAILED, cores=os.cpu_count(), load_average=os.getloadavg()[0],
         cpu_seconds="$CPU_LINE")
json.dump(r, open(sys.argv[3], "w"), indent=1)
print(f"timeline: sold out {sold_out} s after the opening; all {$STOCK} orders written at {written} s;"
      f" peak {peak:.0f} requests/s (sampled every $INTERVAL s); seeding took $SEED_S s")
EOF
echo "wrote $OUT/sale-timeline.{csv,png} and $OUT/sale-$DATE.json"
[ "$FAILED" = 0 ] || {
  echo "sale simulation: INVARIANT FAILED"
  exit 1
}
