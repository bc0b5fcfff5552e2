#!/usr/bin/env bash
# The local stack behind `make run`: a private redis-server with the seckill module, MariaDB
# and etcd, all under a project-local state directory (.state/), then the gateway and one
# worker, in the foreground. The processes are listed in the Procfile and supervised by honcho
# (installed into .state/venv on first use); Ctrl-C or SIGTERM stops every one of them.
# Each process writes its output straight to .state/logs/NAME.log (`make logs` follows them);
# the console shows the banner and one line per process start, log file and exit.
# How each server is started (ports, data directories, redis.conf) is in scripts/lib/stack.sh,
# shared with the benchmarks. A second run reuses .state/ (data, demo activity, users).
#
#   scripts/run-local.sh [run]          set up, build, start, seed, print URLs and logins
#   scripts/run-local.sh run-cluster    the same with a Redis Cluster (3 primaries, 3 replicas,
#                                       the module on each) instead of one redis-server
#                                       (`make run-cluster`; = SECKILL_REDIS_CLUSTER=1 run)
#   scripts/run-local.sh health         check a running stack (exit 1 when something is down)
#   scripts/run-local.sh logs           follow the processes' logs (.state/logs/*.log)
#   scripts/run-local.sh stop           stop what a killed run left behind (normally nothing)
#   scripts/run-local.sh dev            run, rebuilt and restarted on every source change (watchexec)
#   scripts/run-local.sh db-init        create the database (if missing) and migrate it
#   scripts/run-local.sh db-migrate     apply pending migrations
#   scripts/run-local.sh db-rollback    revert every migration (asks first; drops all data)
#   scripts/run-local.sh proc NAME      (used by the Procfile) wait for NAME's dependencies,
#                                       send its output to .state/logs/NAME.log, exec it
#
# Environment (defaults in brackets):
#   SECKILL_REDIS_PORT [6379] SECKILL_MYSQL_PORT [3306] SECKILL_ETCD_PORT [2379]
#   SECKILL_ETCD_PEER_PORT [2380] SECKILL_GATEWAY_PORT [8080] SECKILL_WORKER_METRICS_PORT [9101]
#   SECKILL_STATE_DIR [.state]   where data, logs, sockets and the honcho venv live
#   SECKILL_DEV [1]              1: dev mode (admin/admin, demo users and activity, built-in
#                                JWT key, Redis's `default` user left open for redis-cli);
#                                0: nothing seeded, SECKILL_AUTH__JWT_SECRET required, Redis's
#                                `default` user off (redis-cli as seckill-admin, see the banner)
#   SECKILL_DEMO_STOCK [100]     stock of the demo activity created on the first run
#   SECKILL_SKIP_SETUP=1         do not run scripts/setup.sh (packages already installed)
#   SECKILL_SKIP_BUILD=1         do not run cargo build (use the binaries already built)
#   SECKILL_BIN_DIR [$CARGO_TARGET_DIR/release, else target/release] where seckill,
#                                seckill-gateway, seckill-worker and libseckill_module.so are
#   SECKILL_STARTUP_TIMEOUT [120] seconds to wait for each server to come up
#   SECKILL_REDIS_CLUSTER [0]    1: a Redis Cluster on SECKILL_REDIS_CLUSTER_PORT.. (6 ports,
#                                each with its bus port + 10000), redis.min_replicas 1 unless
#                                SECKILL_REDIS__MIN_REPLICAS says otherwise; data in
#                                STATE/redis-cluster/<port>/ (see scripts/lib/cluster.sh)
#   SECKILL_REDIS_CLUSTER_PORT [7000]  first port of the cluster's nodes
#   SECKILL_BACKGROUND_NICE [10] CPU niceness of the order worker and MariaDB (0: none; see
#                                cmd_proc)
#   SECKILL_WORKER__MAX_ORDERS_PER_SEC [5000] the worker's pace into MariaDB (0: no cap;
#                                configs/config.yaml ships 0, this stack shares its cores)
#   SECKILL_WORKER__LIFT_PACE_WHEN_IDLE [true] the pace only while reservations arrive
#                                (configs/config.yaml ships false)
# The binaries also read configs/config.yaml; this script overrides the addresses with
# SECKILL_<SECTION>__<KEY> variables so they point at the servers it started, and writes
# .state/stack.yaml (addresses, each binary's Redis ACL user, the MySQL application and
# schema-owner URLs) for the binaries and the CLI run next to it.
# Least privilege: the gateway, the worker and the CLI log in to Redis as their own ACL
# users (redis-users.conf) and to MariaDB as the application user (rows only); migrations
# run as the schema owner (scripts/mysql-users.sh). Their passwords are random per stack,
# generated on the first run into .state/secrets/ (mode 600) and never printed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source-path=SCRIPTDIR source=lib/stack.sh
source "$ROOT/scripts/lib/stack.sh"
# shellcheck source-path=SCRIPTDIR source=lib/cluster.sh
source "$ROOT/scripts/lib/cluster.sh"

STATE=${SECKILL_STATE_DIR:-$ROOT/.state}
case $STATE in /*) ;; *) STATE=$ROOT/$STATE ;; esac
REDIS_PORT=${SECKILL_REDIS_PORT:-6379}
MYSQL_PORT=${SECKILL_MYSQL_PORT:-3306}
ETCD_PORT=${SECKILL_ETCD_PORT:-2379}
ETCD_PEER_PORT=${SECKILL_ETCD_PEER_PORT:-2380}
GATEWAY_PORT=${SECKILL_GATEWAY_PORT:-8080}
WORKER_METRICS_PORT=${SECKILL_WORKER_METRICS_PORT:-9101}
DEV=${SECKILL_DEV:-1}
DEMO_STOCK=${SECKILL_DEMO_STOCK:-100}
STARTUP_TIMEOUT=${SECKILL_STARTUP_TIMEOUT:-120}
BACKGROUND_NICE=${SECKILL_BACKGROUND_NICE:-10}
# Redis Cluster instead of one redis-server (`run-cluster`). health, logs and stop find out
# from the stack file which kind of stack ran last.
CLUSTER=${SECKILL_REDIS_CLUSTER:-0}
case ${1:-run} in
health | logs | stop)
  if [ -z "${SECKILL_REDIS_CLUSTER:-}" ] && grep -qs 'cluster_nodes' "$STATE/stack.yaml"; then
    CLUSTER=1
  fi
  ;;
esac
CLUSTER_PORT=${SECKILL_REDIS_CLUSTER_PORT:-7000}
# The venv is kept in the repository's .state even when SECKILL_STATE_DIR points elsewhere
# (tests use throwaway state directories and should not reinstall honcho each time).
VENV=${SECKILL_VENV:-$ROOT/.state/venv}
HONCHO_VERSION=2.0.0
# Where the binaries and the module are; tests point it at target/debug.
RELEASE_DIR=$(seckill_bin_dir)
GATEWAY_URL=http://127.0.0.1:$GATEWAY_PORT
WORKER_METRICS_URL=http://127.0.0.1:$WORKER_METRICS_PORT/metrics
ETCD_URL=http://127.0.0.1:$ETCD_PORT
# Demo users created through the public API in dev mode (passwords: 8+ characters).
DEMO_USERS=(alice bob carol)
DEMO_PASSWORD=demo-password

# The MariaDB accounts (scripts/mysql-users.sh).
MYSQL_APP_USER=seckill_app
MYSQL_MIGRATE_USER=seckill_migrate

say() { echo "run-local: $*" >&2; }
die() {
  echo "run-local: error: $*" >&2
  exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

# The variables the Procfile and the binaries read. SECKILL_<SECTION>__<KEY> override
# configs/config.yaml (see its header), so the binaries talk to this stack's servers.
export_stack_env() {
  export SECKILL_STATE_DIR=$STATE SECKILL_BIN_DIR=$RELEASE_DIR
  export SECKILL_REDIS_PORT=$REDIS_PORT SECKILL_MYSQL_PORT=$MYSQL_PORT
  export SECKILL_ETCD_PORT=$ETCD_PORT SECKILL_ETCD_PEER_PORT=$ETCD_PEER_PORT
  export SECKILL_GATEWAY_PORT=$GATEWAY_PORT SECKILL_WORKER_METRICS_PORT=$WORKER_METRICS_PORT
  export SECKILL_REDIS__URL="redis://127.0.0.1:$REDIS_PORT/"
  if [ "$CLUSTER" = 1 ]; then
    export SECKILL_REDIS_CLUSTER=1 SECKILL_REDIS_CLUSTER_PORT=$CLUSTER_PORT
    export SECKILL_REDIS__URL="redis://127.0.0.1:$CLUSTER_PORT/"
    SECKILL_REDIS__CLUSTER_NODES="[$(cluster_seeds "$CLUSTER_PORT")]"
    export SECKILL_REDIS__CLUSTER_NODES
    # Acknowledge only what a replica holds (README, "Durability"); 0 turns it off.
    export SECKILL_REDIS__MIN_REPLICAS=${SECKILL_REDIS__MIN_REPLICAS:-1}
  fi
  # The application user; the schema owner's URL is in stack.yaml only (migrations).
  SECKILL_MYSQL__URL=$(mysql_stack_url "$MYSQL_APP_USER" mysql-app)
  export SECKILL_MYSQL__URL
  export SECKILL_ETCD__ENDPOINTS="[http://127.0.0.1:$ETCD_PORT]"
  export SECKILL_GATEWAY__LISTEN="127.0.0.1:$GATEWAY_PORT"
  export SECKILL_WORKER__METRICS_ADDR="127.0.0.1:$WORKER_METRICS_PORT"
  # The sale, Redis, MariaDB and the worker share this machine's cores: the worker writes at
  # most this many orders a second, so a burst's drain does not take the sale's CPU (the
  # stream holds the backlog; docs/benchmarks.md, "Stack row"). 0: as fast as MariaDB goes.
  export SECKILL_WORKER__MAX_ORDERS_PER_SEC=${SECKILL_WORKER__MAX_ORDERS_PER_SEC:-5000}
  # ...while the sale writes: once no reservation arrived between two lag polls (2 s), the
  # backlog goes in at full speed, so orders reach MariaDB seconds after a burst, not a
  # minute.
  export SECKILL_WORKER__LIFT_PACE_WHEN_IDLE=${SECKILL_WORKER__LIFT_PACE_WHEN_IDLE:-true}
  if [ "$DEV" = 1 ]; then
    export SECKILL_GATEWAY__DEV_MODE=true
    # This stack's own token key (never a public constant), unless one was given.
    if [ -z "${SECKILL_AUTH__JWT_SECRET:-}" ]; then
      SECKILL_AUTH__JWT_SECRET=$(dev_jwt_secret)
      export SECKILL_AUTH__JWT_SECRET
    fi
  else
    export SECKILL_GATEWAY__DEV_MODE=false
  fi
}

# The password NAME of this stack (.state/secrets/NAME): random on the first run (24 bytes,
# hex: URL-safe), kept with mode 600 so later runs and the CLI find it. Never printed.
stack_secret() {
  local dir=$STATE/secrets file=$STATE/secrets/$1
  if [ ! -s "$file" ]; then
    (umask 077 && mkdir -p "$dir" &&
      od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$file.partial" && mv "$file.partial" "$file")
  fi
  cat "$file"
}

# mysql_stack_url USER SECRET: the URL of USER (password: secret SECRET) on this stack.
mysql_stack_url() { echo "mysql://$1:$(stack_secret "$2")@127.0.0.1:$MYSQL_PORT/seckill"; }

# The Redis ACL users (redis-users.conf) with this stack's passwords, as the file
# redis-server includes. Dev mode leaves the `default` user open (loopback only).
write_redis_users() {
  local mode=prod
  [ "$DEV" = 1 ] && mode=dev
  SECKILL_REDIS_GATEWAY_PASSWORD=$(stack_secret redis-gateway) \
    SECKILL_REDIS_WORKER_PASSWORD=$(stack_secret redis-worker) \
    SECKILL_REDIS_CLI_PASSWORD=$(stack_secret redis-cli) \
    SECKILL_REDIS_EXPORTER_PASSWORD=$(stack_secret redis-exporter) \
    SECKILL_REDIS_ADMIN_PASSWORD=$(stack_secret redis-admin) \
    sh "$ROOT/scripts/redis-users.sh" "$STACK_REDIS_USERS" "$STATE/redis-users.conf" "$mode"
  # A cluster's replicas log in to their primaries as seckill-admin (`default` may be off);
  # the password stays in a private file, not on a command line.
  (
    umask 077
    printf 'masteruser seckill-admin\nmasterauth "%s"\n' "$(stack_secret redis-admin)" \
      >"$STATE/redis-replication.conf"
  )
}

# The cluster's own redis-cli calls (scripts/lib/cluster.sh) log in as seckill-admin unless
# `default` is open.
cluster_admin_env() {
  if ! redis_default_open; then
    CLUSTER_ADMIN_USER=seckill-admin CLUSTER_ADMIN_PASSWORD=$(stack_secret redis-admin)
    export CLUSTER_ADMIN_USER CLUSTER_ADMIN_PASSWORD
  fi
}

# Whether this stack's Redis leaves the `default` user open (dev mode), read from the users
# file it was started with (so `health` from another shell knows too).
redis_default_open() { grep -q '^user default on' "$STATE/redis-users.conf" 2>/dev/null; }

# redis-cli on this stack: as `default` in dev mode, else as seckill-admin (password from
# the environment, never on the command line).
# In a cluster: node CLUSTER_PORT, following redirects (-c).
rcli() {
  local where=(-h 127.0.0.1 -p "$REDIS_PORT")
  [ "$CLUSTER" = 1 ] && where=(-c -h 127.0.0.1 -p "$CLUSTER_PORT")
  if redis_default_open; then
    redis-cli "${where[@]}" "$@"
  else
    REDISCLI_AUTH=$(stack_secret redis-admin) redis-cli --user seckill-admin --no-auth-warning \
      "${where[@]}" "$@"
  fi
}

redis_ready() { [ "$(rcli ping 2>/dev/null)" = PONG ]; }

# The dev-mode JWT key of this stack: random on the first run, kept in the state directory
# (mode 600) so tokens and the CLI keep working across runs.
dev_jwt_secret() {
  local file=$STATE/dev-jwt-secret
  if [ ! -s "$file" ]; then
    (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$file")
  fi
  cat "$file"
}

# `.state/stack.yaml`: where this stack's servers are (and, in dev mode, its token key), for
# the CLI and any binary started without --config in this directory: `seckill lag`, `users
# seed`, `members` then need no flags. Precedence: built-in defaults < configs/config.yaml <
# this file < SECKILL_* variables < flags; an explicit --config skips both files.
write_stack_file() {
  local secret_line=""
  if [ "$DEV" = 1 ]; then
    secret_line="auth: {jwt_secret: '$SECKILL_AUTH__JWT_SECRET'}"
  fi
  (
    umask 077
    {
      echo "# Written by scripts/run-local.sh for the stack it runs; rewritten on every run."
      echo "# Holds this stack's passwords (from .state/secrets/): keep it private."
      echo "redis:"
      echo "  url: '$SECKILL_REDIS__URL'"
      if [ "$CLUSTER" = 1 ]; then
        echo "  cluster_nodes: $SECKILL_REDIS__CLUSTER_NODES"
        echo "  min_replicas: $SECKILL_REDIS__MIN_REPLICAS"
      fi
      echo "  # Each binary logs in as its own ACL user (redis-users.conf)."
      echo "  users:"
      echo "    gateway: {username: seckill-gateway, password: '$(stack_secret redis-gateway)'}"
      echo "    worker: {username: seckill-worker, password: '$(stack_secret redis-worker)'}"
      echo "    cli: {username: seckill-cli, password: '$(stack_secret redis-cli)'}"
      echo "mysql:"
      echo "  url: '$SECKILL_MYSQL__URL'"
      echo "  migrate_url: '$(mysql_stack_url "$MYSQL_MIGRATE_USER" mysql-migrate)'"
      echo "etcd: {endpoints: ['$ETCD_URL']}"
      echo "gateway: {listen: '$SECKILL_GATEWAY__LISTEN'}"
      echo "worker: {metrics_addr: '$SECKILL_WORKER__METRICS_ADDR'}"
      echo "$secret_line"
    } >"$STATE/stack.yaml"
  )
}

# MariaDB's settings (scripts/lib/stack.sh), rewritten on every run so port changes take
# effect. The [client] section lets `mariadb --defaults-file=.state/my.cnf` reach this server.
write_my_cnf() { mariadb_write_cnf "$STATE/my.cnf" "$STATE/mysql" "$MYSQL_PORT" "$STATE/run" 128M; }

# First run only: the system tables.
init_mariadb() {
  [ -d "$STATE/mysql/mysql" ] && return 0
  say "initialising MariaDB in $STATE/mysql (first run)"
  mariadb_init "$STATE/mysql" "$STATE/logs/mysql-install.log" ||
    die "mariadb-install-db failed (full output in $STATE/logs/mysql-install.log)"
}

# A server left over from a run that was SIGKILLed, or a system-wide one, would make ours
# fail with a less helpful message: say which port and how to move.
check_ports_free() {
  local name port var busy=0
  local redis_specs=("redis:$REDIS_PORT:SECKILL_REDIS_PORT")
  if [ "$CLUSTER" = 1 ]; then
    redis_specs=()
    for port in $(cluster_ports "$CLUSTER_PORT"); do
      redis_specs+=("redis-cluster:$port:SECKILL_REDIS_CLUSTER_PORT" "redis-cluster-bus:$((port + 10000)):SECKILL_REDIS_CLUSTER_PORT")
    done
  fi
  for spec in "${redis_specs[@]}" mysql:$MYSQL_PORT:SECKILL_MYSQL_PORT \
    etcd:$ETCD_PORT:SECKILL_ETCD_PORT etcd-peer:$ETCD_PEER_PORT:SECKILL_ETCD_PEER_PORT \
    gateway:$GATEWAY_PORT:SECKILL_GATEWAY_PORT \
    worker-metrics:$WORKER_METRICS_PORT:SECKILL_WORKER_METRICS_PORT; do
    IFS=: read -r name port var <<<"$spec"
    if port_in_use "$port"; then
      echo "run-local: port $port ($name) on 127.0.0.1 is already in use." >&2
      have ss && ss -ltnp "sport = :$port" 2>/dev/null | tail -n +2 | sed 's/^/    /' >&2
      echo "    stop that process or choose another port: $var=<port>" >&2
      busy=1
    fi
  done
  if [ "$busy" = 1 ]; then
    if [ -n "$(stack_pids)" ]; then
      echo "run-local: processes of an earlier run in $STATE are still running;" \
        "stop them with: scripts/run-local.sh stop" >&2
    fi
    exit 1
  fi
}

ensure_honcho() {
  [ -x "$VENV/bin/honcho" ] && return 0
  have python3 || die "python3 is missing: run 'make deps' (scripts/setup.sh)"
  say "installing honcho $HONCHO_VERSION into $VENV (first run)"
  python3 -m venv "$VENV" ||
    die "python3 -m venv failed: install the python3-venv package (apt-get install python3-venv)"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "honcho==$HONCHO_VERSION" ||
    die "pip could not install honcho (is PyPI reachable?)"
}

build() {
  if [ "${SECKILL_SKIP_BUILD:-0}" = 1 ]; then
    say "SECKILL_SKIP_BUILD=1: using the binaries in $RELEASE_DIR"
  else
    say "building release binaries (cargo build --release --workspace)"
    cargo build --release --workspace
  fi
  local f
  for f in seckill seckill-gateway seckill-worker libseckill_module.so; do
    [ -e "$RELEASE_DIR/$f" ] || die "$RELEASE_DIR/$f is missing: run 'cargo build --release --workspace'"
  done
}

# await DESCRIPTION LOGNAME COMMAND...: polls COMMAND until it succeeds, or gives up after
# SECKILL_STARTUP_TIMEOUT seconds pointing at the log that will say why.
await() {
  local what=$1 log=$2
  shift 2
  wait_until "$STARTUP_TIMEOUT" "$@" ||
    die "$what not ready after ${STARTUP_TIMEOUT}s; see $STATE/logs/$log.log"
}

gateway_up() { curl -fsS --max-time 2 "$GATEWAY_URL/health"; }

seckill_cli() { "$RELEASE_DIR/seckill" "$@"; }

# Schema and demo data, before the gateway and the worker start. Idempotent: a second run
# finds the database, the applied migrations and the demo activity in place.
bootstrap_db() {
  # The database and its two users (as root over the stack's my.cnf), then the schema as
  # its owner (mysql.migrate_url in stack.yaml).
  SECKILL_MYSQL_APP_USER=$MYSQL_APP_USER SECKILL_MYSQL_MIGRATE_USER=$MYSQL_MIGRATE_USER \
    SECKILL_MYSQL_APP_PASSWORD=$(stack_secret mysql-app) \
    SECKILL_MYSQL_MIGRATE_PASSWORD=$(stack_secret mysql-migrate) \
    sh "$ROOT/scripts/mysql-users.sh" sql | mariadb --defaults-file="$STATE/my.cnf"
  seckill_cli db migrate
  [ "$DEV" = 1 ] || return 0
  local file=$STATE/demo-activity id=""
  [ -s "$file" ] && id=$(cat "$file")
  # Reuse the demo activity when Redis still knows it (AOF in .state/redis); a wiped Redis
  # or database gets a fresh one.
  if [ -n "$id" ] && rcli SECKILL.STATUS "$id" 2>&1 | grep -q '^total$'; then
    echo "demo activity $id reused"
    return 0
  fi
  id=$(seckill_cli activity create --stock "$DEMO_STOCK" --limit 1 --start now \
    --price 999 --title "demo flash sale")
  echo "$id" >"$file"
  echo "demo activity $id created (stock $DEMO_STOCK, limit 1 per user)"
}

# `proc NAME`: one Procfile line. The gateway first waits for the servers, migrates and seeds
# (those few lines go to the console and to gateway.log), the worker waits for that bootstrap;
# then the process's output is redirected to .state/logs/NAME.log and the process replaces
# this shell (exec): honcho's SIGTERM reaches the real process, and no output line crosses
# honcho or any other process on its way to the file.
cmd_proc() {
  local name=$1 log=$STATE/logs/$1.log cmd
  mkdir -p "$STATE/logs"
  case $name in
  redis)
    redis_cmd "$REDIS_PORT" "$STATE/redis" "$RELEASE_DIR/libseckill_module.so" \
      --pidfile "$STATE/run/redis.pid" --include "$STATE/redis-users.conf"
    cmd=("${REDIS_CMD[@]}")
    ;;
  redis-cluster)
    say "$name: pid $$, output in $log"
    # Six nodes under this shell; honcho's SIGTERM reaches them all (scripts/lib/cluster.sh).
    export NO_COLOR=${NO_COLOR:-1}
    cluster_run "$STATE/redis-cluster" "$CLUSTER_PORT" "$RELEASE_DIR/libseckill_module.so" \
      --include "$STATE/redis-users.conf" --include "$STATE/redis-replication.conf" >>"$log" 2>&1
    exit 0
    ;;
  mysql) cmd=(mariadbd --defaults-file="$STATE/my.cnf") ;;
  etcd)
    etcd_cmd "$ETCD_PORT" "$ETCD_PEER_PORT" "$STATE/etcd"
    cmd=("${ETCD_CMD[@]}")
    ;;
  gateway)
    if [ "$CLUSTER" = 1 ]; then
      # First run: join the nodes; later runs: they rejoin from their nodes.conf.
      cluster_admin_env
      cluster_form "$CLUSTER_PORT" "$STARTUP_TIMEOUT" 2>&1 | tee -a "$log" ||
        die "the Redis Cluster did not form; see $STATE/logs/redis-cluster.log"
    else
      await "redis-server on 127.0.0.1:$REDIS_PORT" redis redis_ready
    fi
    await "MariaDB on 127.0.0.1:$MYSQL_PORT" mysql mariadb_up "$STATE/my.cnf"
    await "etcd on 127.0.0.1:$ETCD_PORT" etcd etcd_up "$ETCD_PORT"
    bootstrap_db 2>&1 | tee -a "$log"
    touch "$STATE/run/db-ready"
    cmd=("$RELEASE_DIR/seckill-gateway")
    ;;
  worker)
    await "the database bootstrap (migrations)" gateway test -e "$STATE/run/db-ready"
    cmd=("$RELEASE_DIR/seckill-worker")
    ;;
  *) die "unknown process '$name' (redis, redis-cluster, mysql, etcd, gateway, worker)" ;;
  esac
  # On one machine the order worker and MariaDB share the cores with the request path.
  # Turning reservations into orders is asynchronous by design (the stream holds them, the
  # lag alerts watch it): during a burst they yield the CPU to redis-server and the gateway,
  # which answer the crowd, and catch up as soon as the cores are free. With the whole stack
  # at one priority the drain took a quarter of the CPU at the peak (docs/benchmarks.md).
  case $name in
  mysql | worker) [ "$BACKGROUND_NICE" = 0 ] || cmd=(nice -n "$BACKGROUND_NICE" "${cmd[@]}") ;;
  esac
  say "$name: pid $$, output in $log"
  # The binaries write to a file, not a terminal: no ANSI colours.
  export NO_COLOR=${NO_COLOR:-1}
  exec "${cmd[@]}" >>"$log" 2>&1
}

# Demo users through the public API (409 USERNAME_TAKEN on later runs is fine).
seed_demo_users() {
  local u code
  for u in "${DEMO_USERS[@]}"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST \
      -H 'Content-Type: application/json' \
      -d "{\"username\":\"$u\",\"password\":\"$DEMO_PASSWORD\"}" \
      "$GATEWAY_URL/api/v1/auth/register") || code=000
    case $code in
    200 | 201 | 409) ;;
    *) say "warning: registering demo user $u returned HTTP $code" ;;
    esac
  done
}

# How to open redis-cli on this stack (the admin password is read from its file, not shown).
redis_cli_hint() {
  local node="-p $REDIS_PORT"
  [ "$CLUSTER" = 1 ] && node="-c -p $CLUSTER_PORT"
  if redis_default_open; then
    echo "redis-cli $node"
  else
    echo "REDISCLI_AUTH=\$(cat $STATE/secrets/redis-admin) redis-cli --user seckill-admin $node"
  fi
}

# The banner goes out in one write: whoever watches the console for its first line (a test,
# bench/stack.sh) then reads all of it, never half.
banner() {
  local text
  text=$(banner_text)
  printf '%s\n\n' "$text"
}

banner_text() {
  local activity="" product=1 remaining="?" json
  [ -s "$STATE/demo-activity" ] && activity=$(cat "$STATE/demo-activity")
  if [ -n "$activity" ]; then
    json=$(curl -s --max-time 5 "$GATEWAY_URL/api/v1/activities/$activity") || json=""
    product=$(sed -nE 's/.*"product_id":([0-9]+).*/\1/p' <<<"$json")
    remaining=$(sed -nE 's/.*"remaining":([0-9]+).*/\1/p' <<<"$json")
  fi
  cat <<EOF

==========================================================================================
 seckill local stack is up$([ "$DEV" = 1 ] && echo " (dev mode)")
   API            $GATEWAY_URL/api/v1/activities
   health         $GATEWAY_URL/health          (make health)
   metrics        $GATEWAY_URL/metrics   $WORKER_METRICS_URL
$(redis_banner_line "${activity:-<id>}")
   MariaDB        mariadb --defaults-file=$STATE/my.cnf seckill
   etcd           $ETCD_URL
   logs           $STATE/logs/*.log   (make logs)
   passwords      $STATE/secrets/ (per stack; the binaries read $STATE/stack.yaml)
EOF
  if [ "$DEV" = 1 ]; then
    cat <<EOF
   logins         admin / admin (admin)
                  ${DEMO_USERS[*]} / $DEMO_PASSWORD (each)
   demo activity  ${activity:-none} (${remaining:-?} units left, 1 per user)
 try it:
   TOKEN=\$(curl -s -X POST $GATEWAY_URL/api/v1/auth/login \\
     -d '{"username":"alice","password":"$DEMO_PASSWORD"}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
   curl -s -X POST $GATEWAY_URL/api/v1/seckill -H "Authorization: Bearer \$TOKEN" \\
     -d '{"activity_id":"${activity:-1}","product_id":"${product:-1}","quantity":1}'
   $RELEASE_DIR/seckill lag
EOF
  fi
  cat <<EOF
 Ctrl-C stops everything.
==========================================================================================

EOF
}

# The banner's Redis line(s).
redis_banner_line() { # ACTIVITY
  if [ "$CLUSTER" = 1 ]; then
    local last=$((CLUSTER_PORT + 2 * CLUSTER_PRIMARIES - 1))
    printf '   Redis Cluster  %s    e.g. SECKILL.STATUS %s\n' "$(redis_cli_hint)" "$1"
    printf '                  nodes 127.0.0.1:%s-%s (3 primaries, 3 replicas), redis.min_replicas %s' \
      "$CLUSTER_PORT" "$last" "${SECKILL_REDIS__MIN_REPLICAS:-1}"
  else
    printf '   Redis          %s        e.g. SECKILL.STATUS %s' "$(redis_cli_hint)" "$1"
  fi
}

cmd_run() {
  if [ "${SECKILL_SKIP_SETUP:-0}" != 1 ]; then
    bash "$ROOT/scripts/setup.sh"
  fi
  local t
  for t in redis-server redis-cli mariadbd mariadb mariadb-install-db etcd curl; do
    have "$t" || die "$t is missing: run 'make deps' (scripts/setup.sh)"
  done
  if [ "$DEV" != 1 ] && [ -z "${SECKILL_AUTH__JWT_SECRET:-}" ]; then
    die "SECKILL_DEV=0 needs a JWT key: export SECKILL_AUTH__JWT_SECRET=<32+ random bytes>"
  fi
  ensure_honcho
  build
  mkdir -p "$STATE"/{redis,etcd,logs,run}
  rm -f "$STATE/run/db-ready"
  write_my_cnf
  init_mariadb
  check_ports_free
  export_stack_env
  write_stack_file
  write_redis_users

  local procfile=$ROOT/Procfile
  if [ "$CLUSTER" = 1 ]; then
    procfile=$ROOT/Procfile.cluster
    mkdir -p "$STATE/redis-cluster"
  fi
  say "starting $(cut -d: -f1 "$procfile" | grep -v '^#' | paste -sd, - | sed 's/,/, /g') (honcho -f $(basename "$procfile")); Ctrl-C stops them"
  say "each process writes to $STATE/logs/<name>.log; follow them all with 'make logs'"
  # Marks every process of this stack (see stack_pids).
  export SECKILL_STACK_DIR=$STATE
  "$VENV/bin/honcho" start -f "$procfile" -d "$ROOT" &
  local honcho=$!
  # Ctrl-C reaches honcho directly (same process group); SIGTERM sent to this script only
  # (kill, timeout, watchexec) is passed on. honcho stops each process group with SIGTERM,
  # and SIGKILLs what is still there after 5 seconds.
  trap 'kill -TERM "$honcho" 2>/dev/null || true' INT TERM

  local deadline=$((SECONDS + STARTUP_TIMEOUT * 2))
  while kill -0 "$honcho" 2>/dev/null && ! gateway_up >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "the gateway did not answer $GATEWAY_URL/health in time; stopping (see $STATE/logs/)"
      kill -TERM "$honcho" 2>/dev/null || true
      break
    fi
    sleep 0.5
  done
  if kill -0 "$honcho" 2>/dev/null && gateway_up >/dev/null 2>&1; then
    [ "$DEV" = 1 ] && seed_demo_users
    banner
  fi

  local rc=0
  while :; do
    wait "$honcho" && rc=0 || rc=$?
    kill -0 "$honcho" 2>/dev/null || break
  done
  # 130/143: stopped by Ctrl-C / SIGTERM, which is how the stack is meant to end.
  case $rc in
  0 | 130 | 143) say "stopped" ;;
  *)
    say "a process exited (status $rc) and honcho stopped the others; see $STATE/logs/"
    exit "$rc"
    ;;
  esac
}

cmd_health() {
  local failed=0
  check() { # NAME COMMAND...
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then
      printf 'ok    %-16s %s\n' "$name" "$(echo "$out" | head -c 100 | tr '\n' ' ')"
    else
      printf 'FAIL  %-16s %s\n' "$name" "$(echo "$out" | head -c 200 | tr '\n' ' ')"
      failed=1
    fi
  }
  metrics_ok() { curl -fsS --max-time 3 "$1" | grep -c '^seckill_' | sed 's/$/ seckill_* samples/'; }
  redis_ping() {
    if [ "$CLUSTER" = 1 ]; then
      rcli CLUSTER INFO | grep -E '^cluster_(state|slots_ok|known_nodes)' | tr -d '\r' | paste -sd' ' - | grep 'cluster_state:ok'
    else
      [ "$(rcli ping)" = PONG ] && echo PONG
    fi
  }
  check "gateway" curl -fsS --max-time 3 "$GATEWAY_URL/health"
  check "gateway metrics" metrics_ok "$GATEWAY_URL/metrics"
  check "worker metrics" metrics_ok "$WORKER_METRICS_URL"
  check "redis" redis_ping
  check "mariadb" mariadb-admin --no-defaults -h 127.0.0.1 -P "$MYSQL_PORT" -u root --connect-timeout=3 ping
  check "etcd" curl -fsS --max-time 3 "$ETCD_URL/health"
  [ "$failed" = 0 ] || die "some checks failed: is the stack running ('make run')? logs: make logs"
}

# Processes of this stack: see stack_pids in scripts/lib/stack.sh (found by the
# SECKILL_STACK_DIR that `run` exports just before honcho starts, and by the pid files).
stack_pids() { stack_pids_of "$STATE"; }

# Stops what a run killed with SIGKILL (or a crashed supervisor) left behind: SIGTERM, then
# SIGKILL after 10 s.
cmd_stop() {
  local pids
  pids=$(stack_pids | sort -un)
  if [ -z "$pids" ]; then
    say "no process of the stack in $STATE is running"
    return 0
  fi
  say "stopping $(echo "$pids" | wc -l) process(es): $(echo "$pids" | tr '\n' ' ')"
  # shellcheck disable=SC2086 # one pid per word
  kill -TERM $pids 2>/dev/null || true
  local deadline=$((SECONDS + 10))
  while [ -n "$(stack_pids)" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
  pids=$(stack_pids | sort -un)
  if [ -n "$pids" ]; then
    say "still running after 10 s, killing: $(echo "$pids" | tr '\n' ' ')"
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
  fi
  say "stopped"
}

# Every process's log, followed across restarts (tail -F reopens a file that is recreated and
# picks up one that appears later).
cmd_logs() {
  compgen -G "$STATE/logs/*.log" >/dev/null || die "no logs in $STATE/logs yet: start the stack with 'make run'"
  local files=() name
  local redis="redis"
  [ "$CLUSTER" = 1 ] && redis="redis-cluster"
  for name in "$redis" mysql etcd gateway worker; do files+=("$STATE/logs/$name.log"); done
  exec tail -n 20 -F "${files[@]}"
}

# Rebuild and restart on change with watchexec (crates.io). Restarting the whole stack
# keeps the code simple; the data in .state/ survives, so a restart takes a few seconds.
cmd_dev() {
  if ! watchexec --version >/dev/null 2>&1; then
    say "installing watchexec from crates.io (first use, a few minutes)"
    cargo install --locked watchexec-cli || die "cargo install watchexec-cli failed"
  fi
  # Setup once here rather than on every restart.
  [ "${SECKILL_SKIP_SETUP:-0}" = 1 ] || bash "$ROOT/scripts/setup.sh"
  export SECKILL_SKIP_SETUP=1
  # On a change watchexec sends SIGTERM to the command's process group and waits (up to the
  # stop timeout) for run-local.sh to stop the whole stack before it starts the next one;
  # `--restart` also restarts when the stack exits by itself.
  exec watchexec --restart --stop-signal SIGTERM --stop-timeout 20s --debounce 1s \
    --watch Cargo.toml --watch core --watch redis-module --watch client --watch db \
    --watch runtime --watch gateway --watch order-worker --watch cli --watch migrations \
    --watch configs --watch redis.conf --watch redis-users.conf --watch Procfile \
    --watch Procfile.cluster --watch scripts/run-local.sh \
    --watch scripts/lib -- bash scripts/run-local.sh run
}

mysql_url() { echo "${SECKILL_MYSQL__URL:-mysql://root@127.0.0.1:$MYSQL_PORT/seckill}"; }

# The database named in the URL, created when missing (sqlx migrations need it to exist).
cmd_db_init() {
  local url re user pass host port db
  url=$(mysql_url)
  re='^mysql://([^:@/]+)(:([^@]*))?@([^:/?]+)(:([0-9]+))?/([A-Za-z0-9_]+)'
  [[ $url =~ $re ]] || die "cannot read '$(redact_url "$url")' as mysql://user[:password]@host[:port]/database"
  user=${BASH_REMATCH[1]} pass=${BASH_REMATCH[3]} host=${BASH_REMATCH[4]}
  port=${BASH_REMATCH[6]:-3306} db=${BASH_REMATCH[7]}
  MYSQL_PWD=$pass mariadb --no-defaults -h "$host" -P "$port" -u "$user" --connect-timeout=5 \
    -e "CREATE DATABASE IF NOT EXISTS \`$db\` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci" ||
    die "cannot reach MySQL at $host:$port: start the stack ('make run') or set SECKILL_MYSQL__URL"
  say "database $db ready on $host:$port"
  cmd_db_migrate
}

cli_for_db() {
  [ "${SECKILL_SKIP_BUILD:-0}" = 1 ] || cargo build --release --quiet -p seckill-cli
  [ -x "$RELEASE_DIR/seckill" ] || die "$RELEASE_DIR/seckill is missing: cargo build --release -p seckill-cli"
}

# The URL goes through the environment (a flag would show its password in `ps`); the CLI
# migrates as mysql.migrate_url when one is configured (.state/stack.yaml), else as it.
cmd_db_migrate() {
  cli_for_db
  SECKILL_MYSQL__URL=$(mysql_url) seckill_cli db migrate
}

cmd_db_rollback() {
  cli_for_db
  local url
  url=$(mysql_url)
  if [ "${SECKILL_CONFIRM:-}" != yes ]; then
    [ -t 0 ] || die "db-rollback drops every table of $(redact_url "$url"); set SECKILL_CONFIRM=yes to go ahead"
    read -r -p "Revert every migration of $(redact_url "${url%%\?*}") (all tables and data are dropped)? [y/N] " ok
    [[ $ok == [yY]* ]] || die "cancelled"
  fi
  SECKILL_MYSQL__URL=$url seckill_cli db rollback
}

case ${1:-run} in
run) cmd_run ;;
run-cluster)
  CLUSTER=1
  cmd_run
  ;;
proc)
  [ $# -eq 2 ] || die "usage: $0 proc NAME"
  export_stack_env
  cmd_proc "$2"
  ;;
health) cmd_health ;;
logs) cmd_logs ;;
stop) cmd_stop ;;
dev) cmd_dev ;;
db-init) cmd_db_init ;;
db-migrate) cmd_db_migrate ;;
db-rollback) cmd_db_rollback ;;
-h | --help | help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
*) die "unknown command '$1' (try: $0 --help)" ;;
esac
