#!/usr/bin/env bash
# `make bench`: every benchmark, each row side by side with its baseline, in one run.
#
#   1. builds the release binaries once (gateway, worker, CLI, module; the worker's drain bench)
#      into $CARGO_TARGET_DIR (default target/), and every step uses those (STACK_SKIP_BUILD=1);
#   2. runs, each on private servers it starts itself and stops, in the shipped configuration
#      (redis.conf with AOF and appendfsync always; the gateway's shipped log filter, output to
#      a file) with clearly labelled variants next to it:
#      bench/module.sh   SECKILL.RESERVE, bare XADD of the same entry (baseline), the
#                        feature-equivalent and the minimal Lua scripts, INCR; shipped and no AOF;
#                        memory per buyer;
#      bench/gateway.sh  a trivial warp handler (baseline), POST /api/v1/seckill shipped, no AOF,
#                        access log off, no AOF + access log off, admission on (wrk);
#      bench/stack.sh    the whole stack as `make run` starts it (scripts/run-local.sh), the
#                        worker draining into MariaDB at the local stack's pace, same wrk load;
#                        orders checked after; again with the worker unpaced (a variant);
#      bench/cluster.sh  the gateway on one redis-server (baseline) and on a 3-primary,
#                        3-replica Redis Cluster with min_replicas 0 and 1, same wrk load;
#      the worker's drain bench (worker vs plain batched INSERTs);
#      a benchmark that does not exist yet becomes a "not available yet" row, never a number;
#   3. bench/plot.py turns their tables into docs/bench-results/<date>.json and the plot
#      docs/bench-results/latest.png (throughput and p50/p95/p99 per row next to its baseline),
#      and prints the summary table and the ratios (stack / trivial, stack / gateway alone,
#      durable / no AOF, access log shipped / off, RESERVE / XADD, RESERVE / Lua, worker /
#      INSERT), also written to docs/bench-results/<date>.md.
# The raw output of each benchmark is kept in .state/bench/<date>/ (NAME.md tables, NAME.log).
#
# Environment: BENCH_ONLY ["module gateway stack cluster worker"] BENCH_MODULE_REQUESTS [1000000 per
#   pipelined row] BENCH_MODULE_UNPIPELINED_REQUESTS [200000 per unpipelined row]
#   BENCH_GATEWAY_DURATION [10s per row, also the stack's] BENCH_GATEWAY_CONNECTIONS [64]
#   BENCH_WORKER_ENTRIES [200000] BENCH_STEP_TIMEOUT [1200 s per benchmark]
#   STACK_SKIP_BUILD=1 (use the binaries in SECKILL_BIN_DIR / $CARGO_TARGET_DIR/release as is)
# Exit status 1 when a benchmark that exists failed (missed targets are reported, not fatal).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source-path=SCRIPTDIR source=sim/stack.sh
source "$ROOT/bench/sim/stack.sh"

ONLY=${BENCH_ONLY:-module gateway stack cluster worker}
STEP_TIMEOUT=${BENCH_STEP_TIMEOUT:-1200}
DATE=$(date -u +%Y-%m-%d)
OUT=$ROOT/docs/bench-results
RAW=$ROOT/.state/bench/$DATE
mkdir -p "$RAW" "$OUT"
rm -f "$RAW"/*.status "$RAW"/*.md "$RAW"/*.log

wanted() {
  [[ " $ONLY " == *" $1 "* ]] && return 0
  echo "not run (BENCH_ONLY=$ONLY)" >"$RAW/$1.status"
  return 1
}

# Machine and versions, for the JSON and the table's caption.
meta() { # load_before|load_after
  python3 - "$RAW/meta.json" "$1" <<'EOF'
import json, os, platform, subprocess, sys
path, which = sys.argv[1], sys.argv[2]
def out(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception:
        return ""
try:
    doc = json.load(open(path))
except Exception:
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")
    mem = next((int(l.split()[1]) // 1024 // 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
    doc = {
        "date": out("date", "-u", "+%Y-%m-%d"),
        "commit": out("git", "rev-parse", "--short", "HEAD") + (" (dirty)" if out("git", "status", "--porcelain", "--untracked-files=no") else ""),
        "machine": {"cores": os.cpu_count(), "cpu": cpu, "memory_gib": mem, "kernel": platform.release(),
                    "os": out("sh", "-c", ". /etc/os-release && echo $PRETTY_NAME")},
        "versions": {"rustc": out("rustc", "--version"), "redis": out("redis-server", "--version"),
                     "mariadb": out("mariadbd", "--version"), "wrk": out("sh", "-c", "wrk -v 2>&1 | head -1")},
        "commands": {"module": "bash bench/module.sh $BENCH_MODULE_REQUESTS $BENCH_MODULE_UNPIPELINED_REQUESTS",
                     "gateway": "bash bench/gateway.sh $BENCH_GATEWAY_DURATION $BENCH_GATEWAY_CONNECTIONS",
                     "stack": "bash bench/stack.sh $BENCH_GATEWAY_DURATION $BENCH_GATEWAY_CONNECTIONS",
                     "cluster": "bash bench/cluster.sh $BENCH_GATEWAY_DURATION $BENCH_GATEWAY_CONNECTIONS",
                     "worker": "ENTRIES=$BENCH_WORKER_ENTRIES cargo bench -p seckill-worker --bench drain"},
        "configurations": {
            "shipped": "redis-server with the repository's redis.conf (appendonly yes, appendfsync always) "
                       "plus --port/--dir/--bind and the module; gateway log filter of configs/config.yaml "
                       "(access log on), output to a file",
            "no AOF": "the same with redis-server --appendonly no",
            "access log off": "SECKILL_GATEWAY__LOG_FILTER = the shipped filter + ',access=off'"},
        "settings": {k: os.environ.get(k) for k in ("BENCH_MODULE_REQUESTS", "BENCH_MODULE_UNPIPELINED_REQUESTS",
                     "BENCH_GATEWAY_DURATION", "BENCH_GATEWAY_CONNECTIONS", "BENCH_WORKER_ENTRIES")},
    }
doc["machine"][which] = round(os.getloadavg()[0], 2)
json.dump(doc, open(path, "w"), indent=1)
EOF
}

# step NAME COMMAND...: stdout (the benchmark's table) to RAW/NAME.md, stderr to RAW/NAME.log,
# the outcome to RAW/NAME.status (ok | failed (exit N) | timed out after N s).
FAILED=0
step() {
  local name=$1 rc=0
  shift
  stack_say "== $name: $*"
  timeout --kill-after=30 "$STEP_TIMEOUT" "$@" >"$RAW/$name.md" 2> >(tee "$RAW/$name.log" | grep -v '^\s*Compiling\|^\s*Running\|^\s*Finished' >&2) || rc=$?
  case $rc in
  0) echo ok >"$RAW/$name.status" ;;
  124 | 137) echo "timed out after ${STEP_TIMEOUT} s" >"$RAW/$name.status" ;;
  *) echo "failed (exit $rc)" >"$RAW/$name.status" ;;
  esac
  [ "$rc" = 0 ] || {
    FAILED=1
    stack_say "$name: $(cat "$RAW/$name.status"); see $RAW/$name.log"
  }
  cat "$RAW/$name.md"
}
missing() { # NAME WHY
  echo "not available yet ($2)" >"$RAW/$1.status"
  stack_say "== $1: not available yet ($2)"
}

rm -f "$RAW/meta.json"
export BENCH_MODULE_REQUESTS=${BENCH_MODULE_REQUESTS:-1000000}
export BENCH_MODULE_UNPIPELINED_REQUESTS=${BENCH_MODULE_UNPIPELINED_REQUESTS:-200000}
export BENCH_GATEWAY_DURATION=${BENCH_GATEWAY_DURATION:-10s}
export BENCH_GATEWAY_CONNECTIONS=${BENCH_GATEWAY_CONNECTIONS:-64}
export BENCH_WORKER_ENTRIES=${BENCH_WORKER_ENTRIES:-200000}
ensure_venv
stack_build
HAVE_DRAIN=0
[ -f order-worker/benches/drain.rs ] && HAVE_DRAIN=1
if [ "$HAVE_DRAIN" = 1 ] && [ "${STACK_SKIP_BUILD:-0}" != 1 ] && wanted worker; then
  cargo bench --no-run -p seckill-worker --bench drain >&2 || stack_say "building the drain bench failed"
fi
# Built once above: the steps use these binaries as they are.
export STACK_SKIP_BUILD=1 SECKILL_BIN_DIR=$BIN
meta load_before

if wanted module; then
  if [ -f bench/module.sh ]; then
    step module env SECKILL_MODULE="$BIN/libseckill_module.so" bash bench/module.sh "$BENCH_MODULE_REQUESTS" \
      "$BENCH_MODULE_UNPIPELINED_REQUESTS"
  else missing module "bench/module.sh not found"; fi
fi
if wanted gateway; then
  if [ -f bench/gateway.sh ]; then
    step gateway bash bench/gateway.sh "$BENCH_GATEWAY_DURATION" "$BENCH_GATEWAY_CONNECTIONS"
  else missing gateway "bench/gateway.sh not found"; fi
fi
if wanted stack; then
  if [ -f bench/stack.sh ]; then
    step stack bash bench/stack.sh "$BENCH_GATEWAY_DURATION" "$BENCH_GATEWAY_CONNECTIONS"
    # The labelled variant: the worker unpaced (the local stack paces it at 5,000 orders/s).
    step stack-nocap env STACK_WORKER_MAX_ORDERS_PER_SEC=0 \
      bash bench/stack.sh "$BENCH_GATEWAY_DURATION" "$BENCH_GATEWAY_CONNECTIONS"
  else missing stack "bench/stack.sh not found"; fi
fi
if wanted cluster; then
  if [ -f bench/cluster.sh ]; then
    step cluster bash bench/cluster.sh "$BENCH_GATEWAY_DURATION" "$BENCH_GATEWAY_CONNECTIONS"
  else missing cluster "bench/cluster.sh not found"; fi
fi
if wanted worker; then
  if [ "$HAVE_DRAIN" = 1 ]; then
    step worker env ENTRIES="$BENCH_WORKER_ENTRIES" cargo bench -q -p seckill-worker --bench drain
  else missing worker "order-worker/benches/drain.rs not found"; fi
fi
meta load_after

python3 bench/plot.py collect "$RAW" "$OUT/$DATE.json"
"$VENV/bin/python" bench/plot.py plot "$OUT/$DATE.json" "$OUT/latest.png"
echo
python3 bench/plot.py table "$OUT/$DATE.json" | tee "$OUT/$DATE.md"
echo
echo "results: docs/bench-results/$DATE.json, docs/bench-results/$DATE.md, plot docs/bench-results/latest.png; raw output in .state/bench/$DATE/"
exit "$FAILED"
