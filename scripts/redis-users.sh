#!/bin/sh
# Renders redis-users.conf (seckill's Redis ACL users, without passwords) into a file that
# redis-server loads with `--include`: each `#<name>` becomes `#` + the SHA-256 of that
# user's password, so the rendered file holds hashes, never a password. POSIX sh, so the
# Redis image (Debian) runs it too.
#
#   scripts/redis-users.sh TEMPLATE OUTPUT [prod|dev]
#
# Passwords come from the environment: SECKILL_REDIS_GATEWAY_PASSWORD,
# SECKILL_REDIS_WORKER_PASSWORD, SECKILL_REDIS_CLI_PASSWORD, SECKILL_REDIS_EXPORTER_PASSWORD,
# SECKILL_REDIS_ADMIN_PASSWORD (one per `#<name>` of the template); a missing or empty one
# is an error naming it. prod (the default) keeps the `default` user off; dev turns it on
# without a password (loopback-only development stacks). OUTPUT is written with mode 600.
set -eu

template=${1:?usage: redis-users.sh TEMPLATE OUTPUT [prod|dev]}
output=${2:?usage: redis-users.sh TEMPLATE OUTPUT [prod|dev]}
mode=${3:-prod}
case $mode in prod | dev) ;; *)
  echo "redis-users.sh: mode must be prod or dev, not '$mode'" >&2
  exit 2
  ;;
esac
[ -r "$template" ] || {
  echo "redis-users.sh: cannot read $template" >&2
  exit 1
}

sha256() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

script=""
for name in $(grep -v '^#' "$template" | grep -o '#<[a-z]*>' | tr -d '#<>' | sort -u); do
  var=SECKILL_REDIS_$(echo "$name" | tr '[:lower:]' '[:upper:]')_PASSWORD
  eval "password=\${$var:-}"
  # shellcheck disable=SC2154 # set by the eval above
  if [ -z "$password" ]; then
    echo "redis-users.sh: $var is not set (the password of the Redis user seckill-$name)" >&2
    exit 1
  fi
  script="${script}s/#<$name>/#$(sha256 "$password")/g;"
done
if [ "$mode" = dev ]; then
  script="${script}s/^user default off\$/user default on nopass ~* \\&* +@all/;"
fi

tmp=$output.partial
(umask 077 && sed "$script" "$template" >"$tmp")
if grep -v '^#' "$tmp" | grep -q '#<'; then
  echo "redis-users.sh: a placeholder of $template was left unrendered" >&2
  rm -f "$tmp"
  exit 1
fi
mv "$tmp" "$output"
