# shellcheck shell=bash
# How seckill's scripts start their servers, written once. Sourced (never run) by
# scripts/run-local.sh (`make run`), bench/sim/stack.sh (`make load-test`, `make simulate`),
# bench/module.sh, bench/gateway.sh and bench/stack.sh.
#
# Paths     STACK_ROOT (the repository), STACK_REDIS_CONF (its redis.conf),
#           STACK_REDIS_USERS (redis-users.conf: the ACL users, rendered with passwords by
#           scripts/redis-users.sh and passed to redis_cmd as `--include FILE`),
#           seckill_bin_dir: $SECKILL_BIN_DIR, else $CARGO_TARGET_DIR/release, else
#           target/release (always absolute)
# Ports     free_port, port_in_use PORT, wait_for_port SECONDS PORT
# Waiting   wait_until SECONDS COMMAND...: polls COMMAND every 0.2 s; status 1 on timeout
# Secrets   redact_url URL: URL with its password replaced by *** (for messages; anything
#           that is not scheme://... becomes *** whole)
# Redis     redis_cmd PORT DIR MODULE [ARG...]: sets REDIS_CMD to redis-server with the
#           repository's redis.conf (AOF, appendfsync always: what ships), the module, on
#           127.0.0.1:PORT with its data in DIR; ARGs are extra overrides (--appendonly no ...)
#           redis_up PORT: PING answers PONG
# MariaDB   mariadb_write_cnf FILE DATADIR PORT RUNDIR [BUFFER_POOL]: a my.cnf for a private
#           server (innodb-log-file-size=32M, no binlog, utf8mb4) with a [client] section
#           mariadb_init DATADIR LOG: system tables on first use (atomic: a half-initialised
#           directory is never left looking complete)
#           mariadb_up CNF: SELECT 1 answers
# etcd      etcd_cmd PORT PEER_PORT DIR: sets ETCD_CMD to a one-member etcd on 127.0.0.1
#           etcd_up PORT: /health says healthy
# Processes spawn NAME LOG COMMAND...: runs COMMAND in the background, its output appended to
#           LOG (a file: nothing goes through a pipe); records it in SPAWNED_PIDS/SPAWNED_NAMES
#           and SPAWNED_PID. stop_spawned [SECONDS]: SIGTERM to every spawned process, SIGKILL
#           to those still running after SECONDS (default 10), all reaped.
#           process_running PID: alive and not a zombie.
#           stack_pids_of STATE: the processes of a `make run` (or `make run-cluster`) stack
#           whose state directory is STATE (scripts/run-local.sh), one pid a line.
# Cleanup   cleanup_dir DIR: removed by stack_cleanup. stack_cleanup: stop_spawned, then
#           remove the registered directories. stack_traps: stack_cleanup on EXIT, and
#           SIGINT/SIGTERM turned into exit 130/143 so the EXIT trap runs.

STACK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STACK_REDIS_CONF=$STACK_ROOT/redis.conf
# shellcheck disable=SC2034 # read by the scripts that source this file
STACK_REDIS_USERS=$STACK_ROOT/redis-users.conf
SPAWNED_PIDS=()
SPAWNED_NAMES=()
SPAWNED_PID=""
CLEANUP_DIRS=()

seckill_bin_dir() {
  local d=${SECKILL_BIN_DIR:-${CARGO_TARGET_DIR:-target}/release}
  case $d in /*) ;; *) d=$STACK_ROOT/$d ;; esac
  echo "$d"
}

# The module a benchmark loads: SECKILL_MODULE when given, else the release build, built
# first unless STACK_SKIP_BUILD=1 (a stale .so would measure old code). Prints its path.
bench_module() {
  if [ -z "${SECKILL_MODULE:-}" ] && [ "${STACK_SKIP_BUILD:-0}" != 1 ]; then
    (cd "$STACK_ROOT" && cargo build --release -p seckill-module >&2)
  fi
  realpath "${SECKILL_MODULE:-$(seckill_bin_dir)/libseckill_module.so}"
}

# ---------------------------------------------------------------------------- ports

# A port nobody listens on now (the kernel's choice for port 0; python3 is needed anyway).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_until() { # SECONDS COMMAND...
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

wait_for_port() { wait_until "$1" port_in_use "$2"; } # SECONDS PORT

redact_url() { # URL
  case $1 in
  *://*) printf '%s\n' "$1" | sed -E 's#^([A-Za-z][A-Za-z0-9+.-]*://[^:/@]*):[^?]*@#\1:***@#' ;;
  *) echo '***' ;;
  esac
}

# ---------------------------------------------------------------------------- redis

redis_cmd() { # PORT DIR MODULE [ARG...]
  local port=$1 dir=$2 module=$3
  shift 3
  case $module in /*) ;; *) module=$STACK_ROOT/$module ;; esac
  # shellcheck disable=SC2034 # read by the caller
  REDIS_CMD=(redis-server "$STACK_REDIS_CONF" --port "$port" --bind 127.0.0.1 --dir "$dir"
    --loadmodule "$module" "$@")
}

redis_up() { [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]; }
# redis_stalls PORT: the server's own record of its stalls over latency-monitor-threshold
# (redis.conf: 10 ms), one "event (last N ms, worst M ms)" each, or "none": an fsync that
# blocked (`aof-fsync-always`), a slow command, a fork...
redis_stalls() {
  redis-cli -h 127.0.0.1 -p "$1" LATENCY LATEST 2>/dev/null |
    awk '{ a[NR % 4] = $0 } NR % 4 == 0 { printf "%s%s (last %s ms, worst %s ms)", (n++ ? "; " : ""), a[1], a[3], a[0] } END { if (!n) printf "none" }'
}

# ---------------------------------------------------------------------------- mariadb

mariadb_write_cnf() { # FILE DATADIR PORT RUNDIR [BUFFER_POOL]
  local user_line=""
  # mariadbd refuses to run as root unless told to (we are root in CI and containers).
  [ "$(id -u)" -eq 0 ] && user_line="user=root"
  cat >"$1" <<EOF
# Written by scripts/lib/stack.sh; edits are overwritten on the next start.
[mariadbd]
datadir=$2
port=$3
bind-address=127.0.0.1
socket=$4/mysqld.sock
pid-file=$4/mysqld.pid
$user_line
skip-name-resolve
skip-log-bin
character-set-server=utf8mb4
collation-server=utf8mb4_general_ci
innodb-buffer-pool-size=${5:-128M}
innodb-log-file-size=32M
max-connections=500

[client]
host=127.0.0.1
port=$3
user=root
protocol=tcp
EOF
}

# System tables, installed into DATADIR.partial and renamed: an interrupted first run never
# leaves a half-initialised data directory that looks complete. Nothing to do when DATADIR
# already holds them. Status 1 (the tail of LOG on stderr) when mariadb-install-db fails.
mariadb_init() { # DATADIR LOG
  local dir=$1 log=$2
  [ -d "$dir/mysql" ] && return 0
  local tmp=$dir.partial
  rm -rf "$tmp" "$dir" "$dir.tmpdir"
  # A temp directory of its own: two bootstraps sharing /tmp (two stacks initialising at
  # once) can pick the same temporary table names there and fail, or crash.
  mkdir -p "$dir.tmpdir"
  local args=(--no-defaults "--datadir=$tmp" "--tmpdir=$dir.tmpdir"
    --auth-root-authentication-method=normal --skip-test-db)
  [ "$(id -u)" -eq 0 ] && args+=(--user=root)
  if ! mariadb-install-db "${args[@]}" >"$log" 2>&1; then
    rm -rf "$dir.tmpdir"
    tail -n 30 "$log" >&2
    return 1
  fi
  rm -rf "$dir.tmpdir"
  mv "$tmp" "$dir"
}

mariadb_up() { mariadb --defaults-file="$1" -N -B -e 'SELECT 1' >/dev/null 2>&1; }

# ---------------------------------------------------------------------------- etcd

etcd_cmd() { # PORT PEER_PORT DIR
  # shellcheck disable=SC2034 # read by the caller
  ETCD_CMD=(etcd --name seckill-local --data-dir "$3" --logger zap
    --listen-client-urls "http://127.0.0.1:$1" --advertise-client-urls "http://127.0.0.1:$1"
    --listen-peer-urls "http://127.0.0.1:$2" --initial-advertise-peer-urls "http://127.0.0.1:$2"
    --initial-cluster "seckill-local=http://127.0.0.1:$2")
}

etcd_up() { curl -fsS --max-time 2 "http://127.0.0.1:$1/health" 2>/dev/null | grep -q '"health":"true"'; }

# ---------------------------------------------------------------------------- processes

spawn() { # NAME LOG COMMAND...
  local name=$1 log=$2
  shift 2
  "$@" >>"$log" 2>&1 &
  SPAWNED_PID=$!
  SPAWNED_PIDS+=("$SPAWNED_PID")
  SPAWNED_NAMES+=("$name")
}

process_running() { [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* (.*) Z ' "/proc/$1/stat" 2>/dev/null; }

# SIGTERM to all first (each shuts down cleanly: the worker finishes its batch, MariaDB
# flushes), then waits for each, SIGKILL after SECONDS.
stop_spawned() { # [SECONDS]
  local limit=${1:-10} p deadline
  for p in "${SPAWNED_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  deadline=$((SECONDS + limit))
  for p in "${SPAWNED_PIDS[@]}"; do
    while process_running "$p" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  SPAWNED_PIDS=()
  SPAWNED_NAMES=()
}

# The processes of a `make run` stack, found by the SECKILL_STACK_DIR in their environment
# (run-local.sh exports it just before honcho starts, so a shell that merely set
# SECKILL_STATE_DIR is never matched): precise even with other redis/mariadbd instances on the
# machine. redis-server overwrites its environment with its process title, so it is found by
# the pid file it writes instead (mariadbd's too), checking the name against pid reuse.
stack_pids_of() { # STATE
  local p f pid
  for p in /proc/[0-9]*; do
    case ${p#/proc/} in "$$" | "$BASHPID") continue ;; esac
    # Kernel threads and other users' processes cannot be read: skip them quietly.
    if { tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -qxF "SECKILL_STACK_DIR=$1"; then
      echo "${p#/proc/}"
    fi
  done
  for f in "$1/run/redis.pid" "$1/run/mysqld.pid" "$1"/redis-cluster/*/redis.pid; do
    [ -s "$f" ] || continue
    pid=$(cat "$f")
    if grep -qE '^(redis-server|mariadbd)' "/proc/$pid/comm" 2>/dev/null; then
      echo "$pid"
    fi
  done
}

cleanup_dir() { CLEANUP_DIRS+=("$1"); }

stack_cleanup() {
  stop_spawned 10
  local d
  for d in "${CLEANUP_DIRS[@]}"; do rm -rf "$d"; done
  CLEANUP_DIRS=()
}

stack_traps() {
  trap stack_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
