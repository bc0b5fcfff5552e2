# shellcheck shell=bash
# A local Redis Cluster for `make run-cluster` (scripts/run-local.sh) and bench/cluster.sh:
# CLUSTER_PRIMARIES primaries with one replica each, every node a redis-server with the
# repository's redis.conf and the seckill module, in cluster mode. Sourced after
# scripts/lib/stack.sh (redis_cmd, wait_until).
#
#   cluster_ports BASE             the nodes' ports: BASE .. BASE+2*CLUSTER_PRIMARIES-1 (each
#                                  node's cluster bus listens on its port + 10000)
#   cluster_node_cmd PORT DIR MODULE [ARG...]
#                                  sets REDIS_CMD to one node: redis_cmd plus cluster mode,
#                                  nodes.conf in DIR, cluster-node-timeout CLUSTER_NODE_TIMEOUT
#                                  (ms) and cluster-require-full-coverage no (the shards that
#                                  did not fail keep serving while one fails over)
#   cluster_run DIR BASE MODULE [ARG...]
#                                  runs every node in the foreground (data in DIR/<port>/),
#                                  each with its pid in DIR/<port>/redis.pid; SIGTERM/SIGINT
#                                  stop them all; returns when they are gone
#   cluster_form BASE TIMEOUT      joins the nodes (redis-cli --cluster create ...
#                                  --cluster-replicas 1) unless they already form a cluster
#                                  (a later run: nodes.conf remembers it), then waits until
#                                  every slot is served and every primary has its replica online
#   cluster_up BASE                node BASE says cluster_state:ok
#   cluster_seeds BASE             host:port of every node, comma-separated
#
# With ACL users whose `default` is off, set CLUSTER_ADMIN_USER and CLUSTER_ADMIN_PASSWORD:
# every redis-cli here logs in as that user (the password through REDISCLI_AUTH, never on a
# command line); the nodes themselves need `masteruser`/`masterauth` to replicate (pass an
# --include of a private file to cluster_run).

CLUSTER_PRIMARIES=${CLUSTER_PRIMARIES:-3}
CLUSTER_NODE_TIMEOUT=${CLUSTER_NODE_TIMEOUT:-2000}

# redis-cli, as CLUSTER_ADMIN_USER when a password is set.
cluster_cli() {
  if [ -n "${CLUSTER_ADMIN_PASSWORD:-}" ]; then
    REDISCLI_AUTH=$CLUSTER_ADMIN_PASSWORD redis-cli --user "${CLUSTER_ADMIN_USER:-seckill-admin}" \
      --no-auth-warning "$@"
  else
    redis-cli "$@"
  fi
}

cluster_node_up() { [ "$(cluster_cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]; }

cluster_ports() { # BASE
  local i
  for ((i = 0; i < 2 * CLUSTER_PRIMARIES; i++)); do echo $(($1 + i)); done
}

cluster_seeds() { # BASE
  cluster_ports "$1" | sed 's/^/127.0.0.1:/' | paste -sd, -
}

cluster_node_cmd() { # PORT DIR MODULE [ARG...]
  local port=$1 dir=$2 module=$3
  shift 3
  redis_cmd "$port" "$dir" "$module" --cluster-enabled yes --cluster-config-file nodes.conf \
    --cluster-node-timeout "$CLUSTER_NODE_TIMEOUT" --cluster-require-full-coverage no \
    --pidfile "$dir/redis.pid" "$@"
}

cluster_run() { # DIR BASE MODULE [ARG...]
  local dir=$1 base=$2 module=$3 port pids=()
  shift 3
  for port in $(cluster_ports "$base"); do
    mkdir -p "$dir/$port"
    cluster_node_cmd "$port" "$dir/$port" "$module" "$@"
    "${REDIS_CMD[@]}" &
    pids+=("$!")
  done
  # shellcheck disable=SC2317 # the trap
  stop_nodes() { kill -TERM "${pids[@]}" 2>/dev/null || true; }
  trap stop_nodes TERM INT
  local p
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  # A node that died leaves the others running: stop them too, so the supervisor sees it.
  stop_nodes
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}

cluster_up() { cluster_cli -h 127.0.0.1 -p "$1" CLUSTER INFO 2>/dev/null | grep -q '^cluster_state:ok'; }

# Every slot served, and as many primaries with an online replica as there should be.
cluster_ready() { # BASE
  local base=$1 info primaries=0 port
  info=$(cluster_cli -h 127.0.0.1 -p "$base" CLUSTER INFO 2>/dev/null) || return 1
  grep -q '^cluster_state:ok' <<<"$info" || return 1
  grep -q '^cluster_slots_ok:16384' <<<"$info" || return 1
  for port in $(cluster_ports "$base"); do
    if cluster_cli -h 127.0.0.1 -p "$port" INFO replication 2>/dev/null | grep -q '^role:master' &&
      cluster_cli -h 127.0.0.1 -p "$port" INFO replication | grep -q '^slave0:.*state=online'; then
      primaries=$((primaries + 1))
    fi
  done
  [ "$primaries" -ge "$CLUSTER_PRIMARIES" ]
}

cluster_form() { # BASE TIMEOUT
  local base=$1 timeout=$2 port nodes=()
  for port in $(cluster_ports "$base"); do
    wait_until "$timeout" cluster_node_up "$port" || {
      echo "cluster: node $port did not answer within ${timeout}s" >&2
      return 1
    }
    nodes+=("127.0.0.1:$port")
  done
  local known
  known=$(cluster_cli -h 127.0.0.1 -p "$base" CLUSTER INFO | sed -n 's/^cluster_known_nodes:\([0-9]*\).*/\1/p')
  if [ "${known:-1}" -lt "${#nodes[@]}" ]; then
    echo "cluster: joining ${#nodes[@]} nodes (${CLUSTER_PRIMARIES} primaries, 1 replica each)" >&2
    cluster_cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >&2 || return 1
  fi
  wait_until "$timeout" cluster_ready "$base" || {
    echo "cluster: not ready (every slot served, a replica online per primary) within ${timeout}s" >&2
    cluster_cli -h 127.0.0.1 -p "$base" CLUSTER NODES >&2 || true
    return 1
  }
}
