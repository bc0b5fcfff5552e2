#!/usr/bin/env bash
# Module benchmark: SECKILL.RESERVE vs the equivalent Lua script vs INCR, on one private
# redis-server, in one run, with redis-benchmark (distinct users, stock large enough that
# every reservation succeeds). Prints a markdown table; `make bench` appends it to
# docs/benchmarks.md.
#
# Usage: bench/module.sh [requests-per-row]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
CLIENTS=${CLIENTS:-50}
# Always build unless a module is given: a stale .so would measure old code.
[ -n "${SECKILL_MODULE:-}" ] || cargo build --release -p seckill-module >&2
MODULE=${SECKILL_MODULE:-target/release/libseckill_module.so}
MODULE=$(realpath "$MODULE")

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DIR=$(mktemp -d)
redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$DIR" \
  --loadmodule "$MODULE" --daemonize no --logfile "$DIR/redis.log" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
cli() { redis-cli -p "$PORT" "$@"; }

SHA=$(cli SCRIPT LOAD "$(cat bench/reserve.lua)")
# redis-benchmark replaces each __rand_int__ with its own random number below -r and stops at the
# first error reply, so users are two placeholders (10^18 ids): no user repeats, none refused.
RAND=1000000000

# CPU time redis-server spent, in clock ticks: per request it is the cost of the command
# itself, which the machine's other load (the benchmark client shares the cores) cannot skew.
server_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
TICK=$(getconf CLK_TCK)

row() { # name pipeline command...
  local name=$1 pipe=$2; shift 2
  local csv t0 t1
  t0=$(server_ticks)
  csv=$(redis-benchmark -p "$PORT" -n "$N" -c "$CLIENTS" -P "$pipe" -r "$RAND" --csv "$@" | tail -1)
  t1=$(server_ticks)
  # "test","rps","avg","min","p50","p95","p99","max"
  echo "$csv" | awk -F'","' -v name="$name" -v pipe="$pipe" -v cpu="$(( (t1 - t0) * 1000000 / TICK ))" -v n="$N" '{
    gsub(/"/, "", $0); split($0, f, ",");
    printf "%s|%s|%s|%s|%s|%s|%.2f\n", name, pipe, f[2], f[5], f[6], f[7], cpu / n }'
}

results=()
for pipe in 16 1; do
  for activity in rsv lua; do cli DEL "seckill:{$activity}" "seckill:{$activity}:buyers" "seckill:{$activity}:stream" >/dev/null; done
  cli SECKILL.CREATE rsv STOCK 1000000000000 LIMIT 1 PRICE 100 PRODUCT p1 >/dev/null
  # The script keeps its activity in a hash, as public projects do.
  cli HSET 'seckill:{lua}' remaining 1000000000000 limit 1 start 0 end 0 product p1 price 100 reservations 0 >/dev/null
  results+=("$(row "SECKILL.RESERVE" "$pipe" SECKILL.RESERVE rsv u__rand_int____rand_int__ 1)")
  results+=("$(row "Lua script (EVALSHA)" "$pipe" EVALSHA "$SHA" 3 'seckill:{lua}' 'seckill:{lua}:buyers' 'seckill:{lua}:stream' lua u__rand_int____rand_int__ 1)")
  results+=("$(row "INCR" "$pipe" INCR counter)")
  # Every reservation must have succeeded, or the comparison is not like for like.
  for activity in rsv lua; do
    len=$(cli XLEN "seckill:{$activity}:stream")
    [ "$len" -ge $((N * 99 / 100)) ] || { echo "only $len of $N $activity reservations succeeded" >&2; exit 1; }
  done
done

echo "| command | pipeline | requests/s | p50 ms | p95 ms | p99 ms | server CPU µs/request | throughput vs Lua | CPU vs Lua |"
echo "|---|---|---|---|---|---|---|---|---|"
for pipe in 16 1; do
  lua=$(printf '%s\n' "${results[@]}" | awk -F'|' -v p="$pipe" '$1 ~ /^Lua/ && $2 == p {print $3 "|" $7}')
  printf '%s\n' "${results[@]}" | awk -F'|' -v p="$pipe" -v lua="$lua" 'BEGIN { split(lua, l, "|") } $2 == p {
    printf "| %s | %s | %.0f | %s | %s | %s | %.2f | %.2fx | %.2fx |\n", $1, $2, $3, $4, $5, $6, $7, $3 / l[1], l[2] / $7 }'
done
# Memory per buyer: 1,000,000 reservations by users u1..u1000000 (pipelined through
# redis-cli --pipe), measured as the growth of used_memory and as MEMORY USAGE of the buyers
# hash; stream entries are reported apart.
BUYERS=${BUYERS:-1000000}
cli SECKILL.CREATE mem STOCK "$BUYERS" >/dev/null
used() { cli INFO memory | awk -F: '/^used_memory:/ {print $2+0}'; }
before=$(used)
python3 -c "
import sys
out = sys.stdout.buffer
for i in range(1, $BUYERS + 1):
    u = b'u%d' % i
    out.write(b'*4\r\n\$15\r\nSECKILL.RESERVE\r\n\$3\r\nmem\r\n\$%d\r\n%s\r\n\$1\r\n1\r\n' % (len(u), u))
" | redis-cli -p "$PORT" --pipe >/dev/null
after=$(used)
buyers_bytes=$(cli MEMORY USAGE 'seckill:{mem}:buyers' SAMPLES 0)
stream_bytes=$(cli MEMORY USAGE 'seckill:{mem}:stream' SAMPLES 0)
sold=$(cli HLEN 'seckill:{mem}:buyers')
echo
echo "| memory, $sold buyers (ids u1..u$BUYERS) | bytes per buyer |"
echo "|---|---|"
echo "| buyers hash (MEMORY USAGE) | $((buyers_bytes / sold)) |"
echo "| stream entries (MEMORY USAGE) | $((stream_bytes / sold)) |"
echo "| all of it (used_memory growth) | $(( (after - before) / sold )) |"

echo
echo "redis-server $(redis-server --version | awk '{print $3}' | cut -d= -f2), $N requests per row, $CLIENTS clients, $(nproc) cores, $(date -u +%Y-%m-%d)."
