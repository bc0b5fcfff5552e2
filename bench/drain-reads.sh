#!/usr/bin/env bash
# What the worker's reads cost Redis' one thread, which the sale's reservations wait behind:
# XREADGROUP (consumer group, new entries) and XACK of the reservations' six-field entries, per
# entry, by COUNT, on a private redis-server with the shipped redis.conf (AOF, fsync always:
# each delivered entry is also propagated to the AOF as an XCLAIM) and, as a labelled row,
# without AOF. Server-side time from INFO commandstats, so the client's share of the cores
# does not count. worker.batch_size_while_arriving is chosen against this (configs/config.yaml).
#
# Usage: bench/drain-reads.sh [entries-per-row]   (default 20000; COUNTS ["1000 250 100"])
# Env: SECKILL_MODULE (a built module; else the release one, built unless STACK_SKIP_BUILD=1)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source-path=SCRIPTDIR source=../scripts/lib/stack.sh
source "$ROOT/scripts/lib/stack.sh"
ENTRIES=${1:-20000}
COUNTS=${COUNTS:-1000 250 100}
MODULE=$(bench_module)

stack_traps
DIR=$(mktemp -d "${TMPDIR:-/tmp}/seckill-drain-reads.XXXXXX")
cleanup_dir "$DIR"
PORT=$(free_port)
cli() { redis-cli -p "$PORT" "$@"; }

# Redis' time in one command, µs in all since CONFIG RESETSTAT (INFO commandstats; 0 when it
# never ran).
usec_total() { # COMMAND
  cli INFO commandstats | tr -d '\r' | awk -F'[:,=]' -v c="cmdstat_$1" '$1 == c {print $5; f = 1} END {if (!f) print 0}'
}

row() { # CONFIG COUNT
  local key=drain:bench reads acks rounds
  cli DEL "$key" >/dev/null
  # A stream like an activity's: six-field entries, pipelined in (inline commands).
  awk -v n="$ENTRIES" -v k="$key" 'BEGIN {
    for (i = 0; i < n; i++)
      printf "XADD %s * activity 7 product p1 user u%d qty 1 price 1999 ts 1764460800000\r\n", k, i }' |
    cli --pipe >/dev/null
  cli XGROUP CREATE "$key" g 0 >/dev/null
  cli CONFIG RESETSTAT >/dev/null
  rounds=$((ENTRIES / $2))
  for _ in $(seq "$rounds"); do
    # Each read's ids, acknowledged as the worker does: one XACK per batch.
    mapfile -t ids < <(cli XREADGROUP GROUP g c COUNT "$2" STREAMS "$key" '>' | grep -E '^[0-9]+-[0-9]+$')
    [ "${#ids[@]}" -eq "$2" ] || { echo "drain-reads.sh: read ${#ids[@]} of $2 entries" >&2; exit 1; }
    cli XACK "$key" g "${ids[@]}" >/dev/null
  done
  # The same entries read without a group (no pending entries list, nothing propagated):
  # what the read alone costs.
  local start=-
  for _ in $(seq "$rounds"); do
    mapfile -t ids < <(cli XRANGE "$key" "$start" + COUNT "$2" | grep -E '^[0-9]+-[0-9]+$')
    start="(${ids[-1]}"
  done
  reads=$(usec_total xreadgroup)
  acks=$(usec_total xack)
  awk -v c="$1" -v n="$2" -v r="$reads" -v a="$acks" -v x="$(usec_total xrange)" -v e="$((rounds * $2))" 'BEGIN {
    printf "| %s | %d | %.2f | %.2f | %.2f | %.1f | %.2f |\n", c, n, r / e, a / e, (r + a) / e, (r + a) / (e / n) / 1000, x / e }'
}

echo "| redis.conf | COUNT | XREADGROUP µs/entry | XACK µs/entry | both µs/entry | one batch holds Redis (ms) | XRANGE µs/entry (no group) |"
echo "|---|---|---|---|---|---|---|"
for config in shipped noaof; do
  extra=()
  label="shipped (AOF, fsync always)"
  if [ "$config" = noaof ]; then
    extra=(--appendonly no)
    label="no AOF"
  fi
  mkdir -p "$DIR/$config"
  redis_cmd "$PORT" "$DIR/$config" "$MODULE" "${extra[@]}"
  spawn "redis-$config" "$DIR/redis-$config.log" "${REDIS_CMD[@]}"
  wait_until 30 redis_up "$PORT" || { tail "$DIR/redis-$config.log" >&2; exit 1; }
  for count in $COUNTS; do
    row "$label" "$count"
  done
  stop_spawned 30
done
echo
echo "$ENTRIES entries per row, six fields each; server time from INFO commandstats; $(nproc) cores, $(date -u +%F)."
