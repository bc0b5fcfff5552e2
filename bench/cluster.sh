#!/usr/bin/env bash
# Cluster benchmark: wrk against POST /api/v1/seckill (the same requests as bench/gateway.sh:
# distinct users, 100 activities b0..b99 of stock 10^9, every request a winning reservation)
# with the gateway on one redis-server and on a 3-primary, 3-replica Redis Cluster, same
# machine, same run. Prints a markdown table for docs/benchmarks.md.
#
# Rows, each on fresh servers (scripts/lib/stack.sh, scripts/lib/cluster.sh; the
# repository's redis.conf on every node, as shipped: AOF, appendfsync always) and a fresh
# gateway whose output goes to a file:
#   standalone                   one redis-server (the baseline)
#   cluster, min_replicas 0      6 nodes; the gateway routes each RESERVE to its activity's
#                                primary (the subject: target >= 0.8x standalone)
#   cluster, min_replicas 1      the same, each reservation confirmed on its shard's replica
#                                before the 200 (SECKILL.HELD + fence + WAIT per node per batch):
#                                the cost of durability (target >= 0.8x min_replicas 0)
# Each row reports the gateway's CPU per request, and the 202 (pending) answers the gateway
# counted (seckill_gateway_reservations_total{outcome="pending"}).
#
# Usage: bench/cluster.sh [duration] [connections]   (defaults 10s, 64)
# Env: THREADS USERS ACTIVITIES REQUESTS, CLUSTER_ROWS ["standalone cluster0 cluster1"],
#      CLUSTER_REDIS_ARGS [none] more redis-server arguments for every node of every row (e.g.
#      "--appendonly no", to see what fsync costs apart from routing and replication),
#      CLUSTER_BASE_PORT [free ports], STACK_SKIP_BUILD=1 (use the binaries in
#      SECKILL_BIN_DIR [$CARGO_TARGET_DIR/release, else target/release] as they are)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source-path=SCRIPTDIR source=../scripts/lib/stack.sh
source "$ROOT/scripts/lib/stack.sh"
# shellcheck source-path=SCRIPTDIR source=../scripts/lib/cluster.sh
source "$ROOT/scripts/lib/cluster.sh"
DUR=${1:-10s}
CONNS=${2:-64}
export THREADS=${THREADS:-1}
USERS=${USERS:-20000}
export REQUESTS=${REQUESTS:-1000000}
ACTIVITIES=${ACTIVITIES:-100}
ROWS=${CLUSTER_ROWS:-standalone cluster0 cluster1}
read -r -a REDIS_ARGS <<<"${CLUSTER_REDIS_ARGS:-}"
if [ "${STACK_SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release -p seckill-module >&2
  cargo build --release -p seckill-gateway --bins >&2
fi
BIN=$(seckill_bin_dir)
MODULE=$(realpath "$BIN/libseckill_module.so")
unset RUST_LOG SECKILL_GATEWAY__LOG_FILTER
export SECKILL_AUTH__JWT_SECRET="bench-only-secret-bench-only-secret-0123"
export SECKILL_RATE_LIMIT__ENABLED=true SECKILL_RATE_LIMIT__PER_IP_PER_SECOND=100000000 \
  SECKILL_RATE_LIMIT__PER_IP_BURST=100000000

stack_traps
DIR=$(mktemp -d "${TMPDIR:-/tmp}/seckill-cluster-bench.XXXXXX")
cleanup_dir "$DIR"
"$BIN/seckill-gateway-bench" tokens "$USERS" "$DIR/tokens.txt"

# Six consecutive ports whose bus ports (+10000) can be bound too, below the ephemeral range
# (a bus port in it may be held by some process's outgoing connection: redis-server then
# fails to bind it).
cluster_base() {
  python3 - "$GPORT" <<'PY'
import random, socket, sys
taken = {int(sys.argv[1])}
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(500):
    base = random.randrange(20000, 22600)
    ports = [p for b in range(base, base + 6) for p in (b, b + 10000)]
    if not taken.intersection(ports) and all(free(p) for p in ports):
        print(base)
        sys.exit(0)
sys.exit("cluster.sh: no free port range")
PY
}

cpu_ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)
FAILED=0

# run NAME URL PID: wrk, then one table row (PID: the gateway, whose CPU is counted).
run() {
  local out=$DIR/wrk-$RANDOM.txt t0 t1
  t0=$(cpu_ticks "$3")
  TOKENS="$DIR/tokens.txt" ACTIVITIES=$ACTIVITIES \
    wrk -t"$THREADS" -c"$CONNS" -d"$DUR" --latency -s bench/gateway.lua "$2" >"$out"
  t1=$(cpu_ticks "$3")
  local rps p50 p95 p99 non2xx total pending
  rps=$(awk '/Requests\/sec/ {print $2}' "$out")
  read -r p50 p95 p99 < <(awk '$1=="PCTL" {print $2, $3, $4}' "$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' "$out")
  total=$(awk '/requests in/ {print $1}' "$out")
  pending=$(curl -s "${2%/api/v1/seckill}/metrics" |
    awk '/^seckill_gateway_reservations_total\{outcome="pending"\}/ {print $2}')
  echo "| POST /api/v1/seckill | $1 | ${rps} | ${p50} ms | ${p95} ms | ${p99} ms | ${non2xx:-0} | ${pending:-0} |" \
    "$(awk -v t="$((t1 - t0))" -v hz="$TICK" -v n="$total" 'BEGIN { printf "%.1f", (n > 0 ? t * 1000000 / hz / n : 0) }') |"
  cat "$out" >&2
  FAILED=$((FAILED + ${non2xx:-0}))
}

label() {
  case $1 in
  standalone) echo "standalone (one redis-server)" ;;
  cluster0) echo "3-shard cluster, min_replicas 0" ;;
  cluster1) echo "3-shard cluster, min_replicas 1" ;;
  *) echo "cluster.sh: unknown row '$1' (standalone cluster0 cluster1)" >&2; exit 2 ;;
  esac
}

echo "| target | config | requests/s | p50 | p95 | p99 | non-2xx | 202 pending | HTTP server CPU µs/request |"
echo "|---|---|---|---|---|---|---|---|---|"
GPORT=$(free_port)
for row in $ROWS; do
  name=$(label "$row")
  rm -rf "$DIR/redis"
  mkdir -p "$DIR/redis"
  redis_env=()
  case $row in
  standalone)
    RPORT=$(free_port)
    redis_cmd "$RPORT" "$DIR/redis" "$MODULE" "${REDIS_ARGS[@]}"
    spawn redis "$DIR/redis-$row.log" "${REDIS_CMD[@]}"
    wait_until 30 redis_up "$RPORT" || { tail "$DIR/redis-$row.log" >&2; exit 1; }
    for a in $(seq 0 $((ACTIVITIES - 1))); do
      redis-cli -p "$RPORT" SECKILL.CREATE "b$a" STOCK 1000000000 >/dev/null
    done
    redis_env=(--redis-url "redis://127.0.0.1:$RPORT/")
    ;;
  cluster*)
    BASE=${CLUSTER_BASE_PORT:-$(cluster_base)}
    echo "cluster.sh: $name on 127.0.0.1:$BASE-$((BASE + 5))" >&2
    spawn redis-cluster "$DIR/redis-$row.log" cluster_run "$DIR/redis" "$BASE" "$MODULE" "${REDIS_ARGS[@]}"
    cluster_form "$BASE" 60 >&2 || { tail -50 "$DIR/redis-$row.log" >&2; exit 1; }
    for a in $(seq 0 $((ACTIVITIES - 1))); do
      redis-cli -c -p "$BASE" SECKILL.CREATE "b$a" STOCK 1000000000 >/dev/null
    done
    redis_env=(--redis-url "redis://127.0.0.1:$BASE/")
    SECKILL_REDIS__CLUSTER_NODES="[$(cluster_seeds "$BASE")]"
    export SECKILL_REDIS__CLUSTER_NODES
    export SECKILL_REDIS__MIN_REPLICAS=${row#cluster}
    ;;
  esac
  spawn gateway "$DIR/gateway-$row.log" "$BIN/seckill-gateway" --config configs/config.yaml \
    --listen "127.0.0.1:$GPORT" "${redis_env[@]}" --mysql-url "mysql://root@127.0.0.1:1/none"
  gpid=$SPAWNED_PID
  wait_for_port 60 "$GPORT" || { tail "$DIR/gateway-$row.log" >&2; exit 1; }
  run "$name" "http://127.0.0.1:$GPORT/api/v1/seckill" "$gpid"
  unset SECKILL_REDIS__CLUSTER_NODES SECKILL_REDIS__MIN_REPLICAS
  if [ "$FAILED" -gt 0 ]; then
    # Every non-2xx is logged (access log "Problem"), with the warnings around it.
    echo "cluster.sh: $FAILED requests were not 2xx; the run is invalid. The gateway logged:" >&2
    grep -E '"logged":"Problem"|"level":"(WARN|ERROR)"' "$DIR/gateway-$row.log" | head -20 >&2 ||
      tail -5 "$DIR/gateway-$row.log" >&2
    # Each node's stalls over 10 ms (an fsync that blocked its thread shows here).
    case $row in
    standalone) ports=$RPORT ;;
    *) ports=$(seq "$BASE" $((BASE + 5))) ;;
    esac
    for p in $ports; do echo "cluster.sh: redis 127.0.0.1:$p stalls: $(redis_stalls "$p")" >&2; done
    exit 1
  fi
  stop_spawned
done
echo
echo "wrk: $THREADS thread(s), $CONNS connections, $DUR per row; $USERS users x $ACTIVITIES activities;" \
  "every Redis node with the shipped redis.conf (AOF, appendfsync always)${CLUSTER_REDIS_ARGS:+ plus $CLUSTER_REDIS_ARGS}; $(nproc) cores," \
  "$(date -u +%Y-%m-%d). The cluster's 6 nodes share the cores with the gateway and wrk."
