#!/usr/bin/env bash
# Module benchmark: SECKILL.RESERVE next to what it is measured against, with redis-benchmark
# (distinct users, stock large enough that every reservation succeeds), on private
# redis-servers started as `make run` starts its own (scripts/lib/stack.sh), in one run.
#
# Two server configurations, each a fresh redis-server in a temp dir:
#   shipped  the repository's redis.conf as it ships (AOF with appendfsync always, RDB saves,
#            ...) plus only --port/--dir/--bind and the module: the headline rows;
#   no AOF   the same with --appendonly no: what durability costs.
# Rows, each pipelined (-P 16) and unpipelined, CLIENTS connections:
#   SECKILL.RESERVE                    the subject;
#   XADD                               the bare stream append of the same six-field entry
#                                      (activity product user qty price ts), which RESERVE
#                                      cannot avoid: the baseline of RESERVE/XADD;
#   Lua, feature-equivalent            bench/reserve.lua (what RESERVE does, as public seckill
#                                      projects script it): RESERVE/Lua is the issue's target;
#   Lua, minimal                       bench/reserve-minimal.lua (GET stock, SISMEMBER buyers,
#                                      DECRBY, SADD, XADD: the common tutorial pattern);
#   INCR                               the floor of any command (reference).
# Each row: requests/s, p50/p95/p99, and redis-server's own CPU per request (user + system of
# the server and the children it reaped — AOF rewrites, RDB saves — from /proc), which the
# client sharing the cores cannot skew. Then memory per buyer (1,000,000 reservations on the
# shipped server). Prints markdown tables; `make bench` collects them.
#
# Usage: bench/module.sh [requests-per-row] [unpipelined-requests-per-row]
#        (defaults 1000000 and a fifth of it: unpipelined with fsync always, a row runs at
#        ~10k requests/s on the 2-core machine, and a row should take seconds, not minutes)
# Env: CLIENTS [50] BUYERS [1000000] MODULE_CONFIGS ["shipped noaof"]
#      SECKILL_MODULE (a built module; else built unless STACK_SKIP_BUILD=1)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source-path=SCRIPTDIR source=../scripts/lib/stack.sh
source "$ROOT/scripts/lib/stack.sh"
N=${1:-1000000}
N1=${2:-$((N / 5))}
CLIENTS=${CLIENTS:-50}
BUYERS=${BUYERS:-1000000}
CONFIGS=${MODULE_CONFIGS:-shipped noaof}
MODULE=$(bench_module)

stack_traps
DIR=$(mktemp -d "${TMPDIR:-/tmp}/seckill-module-bench.XXXXXX")
cleanup_dir "$DIR"
PORT=$(free_port)
PID=""
cli() { redis-cli -p "$PORT" "$@"; }

config_label() {
  case $1 in
  shipped) echo "shipped (AOF, fsync always)" ;;
  noaof) echo "no AOF" ;;
  *) echo "unknown configuration '$1' (shipped, noaof)" >&2; exit 2 ;;
  esac
}

start_server() { # CONFIG
  local extra=()
  [ "$1" = noaof ] && extra=(--appendonly no)
  mkdir -p "$DIR/$1"
  redis_cmd "$PORT" "$DIR/$1" "$MODULE" "${extra[@]}"
  spawn "redis-$1" "$DIR/redis-$1.log" "${REDIS_CMD[@]}"
  PID=$SPAWNED_PID
  wait_until 30 redis_up "$PORT" || { tail "$DIR/redis-$1.log" >&2; echo "redis-server did not start" >&2; exit 1; }
  echo "module.sh: redis-server $(config_label "$1"): appendonly $(cli CONFIG GET appendonly | tail -1)," \
    "appendfsync $(cli CONFIG GET appendfsync | tail -1), save '$(cli CONFIG GET save | tail -1)'" >&2
}

stop_server() { # CONFIG: stopped and its data removed (AOF files grow by GBs)
  stop_spawned 30
  rm -rf "${DIR:?}/$1"
}

# CPU time of redis-server (utime + stime) and of its reaped children (cutime + cstime: AOF
# rewrites and RDB saves fork), in clock ticks.
server_ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13 + $14 + $15}' "/proc/$PID/stat"; }
TICK=$(getconf CLK_TCK)

# redis-benchmark replaces each __rand_int__ with its own random number below -r, so users are
# two placeholders (10^18 ids): no user repeats, none refused.
RAND=1000000000
USER=u__rand_int____rand_int__
TS=1764460800000

row() { # config pipeline name command...
  local config=$1 pipe=$2 name=$3
  shift 3
  local csv t0 t1 n
  n=$(requests "$pipe")
  t0=$(server_ticks)
  csv=$(redis-benchmark -p "$PORT" -n "$n" -c "$CLIENTS" -P "$pipe" -r "$RAND" --csv "$@" | tail -1)
  t1=$(server_ticks)
  # "test","rps","avg","min","p50","p95","p99","max"
  echo "$csv" | awk -F'","' -v name="$name" -v config="$(config_label "$config")" -v pipe="$pipe" \
    -v cpu="$(((t1 - t0) * 1000000 / TICK))" -v n="$n" '{
    gsub(/"/, "", $0); split($0, f, ",");
    printf "%s|%s|%s|%s|%s|%s|%s|%.2f\n", name, config, pipe, f[2], f[5], f[6], f[7], cpu / n }'
}

requests() { if [ "$1" = 1 ]; then echo "$N1"; else echo "$N"; fi; } # PIPELINE

# Every row must have appended its n entries, or the comparison is not like for like.
check_stream() { # key n
  local len
  len=$(cli XLEN "$1")
  [ "$len" -ge $(($2 * 99 / 100)) ] || {
    echo "module.sh: only $len of $2 entries in $1: requests were refused" >&2
    exit 1
  }
}

results=()
for config in $CONFIGS; do
  config_label "$config" >/dev/null
  start_server "$config"
  SHA=$(cli SCRIPT LOAD "$(cat bench/reserve.lua)")
  SHA_MIN=$(cli SCRIPT LOAD "$(cat bench/reserve-minimal.lua)")
  for pipe in 16 1; do
    cli FLUSHALL >/dev/null
    cli SECKILL.CREATE rsv STOCK 1000000000000 LIMIT 1 PRICE 100 PRODUCT p1 >/dev/null
    # The feature-equivalent script keeps its activity in a hash, as public projects do.
    cli HSET 'seckill:{lua}' remaining 1000000000000 limit 1 start 0 end 0 product p1 price 100 reservations 0 >/dev/null
    cli SET 'seckill:{min}:stock' 1000000000000 >/dev/null
    results+=("$(row "$config" "$pipe" "SECKILL.RESERVE" SECKILL.RESERVE rsv "$USER" 1)")
    results+=("$(row "$config" "$pipe" "XADD (the stream append alone)" XADD 'seckill:{xadd}:stream' '*' \
      activity xadd product p1 user "$USER" qty 1 price 100 ts "$TS")")
    results+=("$(row "$config" "$pipe" "Lua, feature-equivalent (EVALSHA)" EVALSHA "$SHA" 3 \
      'seckill:{lua}' 'seckill:{lua}:buyers' 'seckill:{lua}:stream' lua "$USER" 1)")
    results+=("$(row "$config" "$pipe" "Lua, minimal (EVALSHA)" EVALSHA "$SHA_MIN" 3 \
      'seckill:{min}:stock' 'seckill:{min}:buyers' 'seckill:{min}:stream' min "$USER" 1 p1 100 "$TS")")
    results+=("$(row "$config" "$pipe" "INCR" INCR counter)")
    for key in 'seckill:{rsv}:stream' 'seckill:{xadd}:stream' 'seckill:{lua}:stream' 'seckill:{min}:stream'; do
      check_stream "$key" "$(requests "$pipe")"
    done
  done
  if [ "$config" = shipped ]; then
    # Memory per buyer: BUYERS reservations by users u1..uBUYERS (pipelined through
    # redis-cli --pipe), measured as the growth of used_memory and as MEMORY USAGE of the
    # buyer set; stream entries are reported apart.
    cli FLUSHALL >/dev/null
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
    sold=$(cli SECKILL.STATUS mem | awk 'prev == "buyers" { print; exit } { prev = $0 }')
  fi
  stop_server "$config"
done

# Ratios within one configuration and pipeline depth: vs XADD (the append RESERVE cannot
# avoid) and vs the feature-equivalent Lua script (the issue's target, RESERVE >= 3x).
echo "| command | config | pipeline | requests/s | p50 ms | p95 ms | p99 ms | server CPU µs/request | throughput vs XADD | CPU vs XADD | throughput vs Lua |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${results[@]}" | awk -F'|' '
  { rows[NR] = $0; key = $2 "|" $3
    if ($1 ~ /^XADD/) { xr[key] = $4; xc[key] = $8 }
    if ($1 ~ /^Lua, feature/) { lr[key] = $4 } }
  END { for (i = 1; i <= NR; i++) { split(rows[i], f, "|"); key = f[2] "|" f[3]
    printf "| %s | %s | %s | %.0f | %s | %s | %s | %.2f | %.2fx | %.2fx | %.2fx |\n", f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8],
      f[4] / xr[key], (f[8] > 0 ? xc[key] / f[8] : 0), f[4] / lr[key] } }'
# What durability costs: each command with the shipped redis.conf against the same without AOF.
if [[ " $CONFIGS " == *" shipped "* && " $CONFIGS " == *" noaof "* ]]; then
  echo
  echo "| command | pipeline | shipped (AOF, fsync always) requests/s | no AOF requests/s | durable / no AOF |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${results[@]}" | awk -F'|' '
    $2 ~ /^shipped/ { s[$1 "|" $3] = $4; order[++n] = $1 "|" $3 }
    $2 == "no AOF" { a[$1 "|" $3] = $4 }
    END { for (i = 1; i <= n; i++) { k = order[i]; split(k, f, "|")
      if (a[k] > 0) printf "| %s | %s | %.0f | %.0f | %.2fx |\n", f[1], f[2], s[k], a[k], s[k] / a[k] } }'
fi
if [ -n "${sold:-}" ]; then
  echo
  echo "| memory, $sold buyers (ids u1..u$BUYERS) | bytes per buyer |"
  echo "|---|---|"
  echo "| buyer set (MEMORY USAGE) | $((buyers_bytes / sold)) |"
  echo "| stream entries (MEMORY USAGE) | $((stream_bytes / sold)) |"
  echo "| all of it (used_memory growth) | $(((after - before) / sold)) |"
fi

echo
echo "redis-server $(redis-server --version | awk '{print $3}' | cut -d= -f2), $N requests per pipelined row, $N1 per unpipelined row, $CLIENTS clients, $(nproc) cores, $(date -u +%Y-%m-%d)."
