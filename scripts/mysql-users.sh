#!/bin/sh
# seckill's two MySQL users, written once for the local stack, the compose files and the
# tests (POSIX sh, so the official MySQL image runs it too):
#   the application user (gateway, worker, CLI): SELECT, INSERT, UPDATE on the database's
#     tables and nothing else: it cannot CREATE, ALTER, DROP or DELETE;
#   the schema owner (migrations only: `seckill db migrate`, `seckill-worker --migrate`, the
#     gateway's --run-migrations/dev mode): every privilege on the database, none elsewhere.
# Running it again converges: passwords are reset, privileges revoked and granted afresh.
#
#   scripts/mysql-users.sh sql   print the SQL (e.g. `| mariadb --defaults-file=...`)
#   scripts/mysql-users.sh       in /docker-entrypoint-initdb.d/ of the mysql image (first
#                                start of an empty volume): run it as root over the socket
#
# Environment (defaults in brackets):
#   SECKILL_MYSQL_DATABASE [seckill]
#   SECKILL_MYSQL_APP_USER [seckill_app]          SECKILL_MYSQL_APP_PASSWORD (required)
#   SECKILL_MYSQL_MIGRATE_USER [seckill_migrate]  SECKILL_MYSQL_MIGRATE_PASSWORD (required)
#   SECKILL_MYSQL_USER_HOST [%]     the host part of both accounts
#   SECKILL_MYSQL_REQUIRE [NONE]    SSL: both users must connect over TLS; X509: with a
#                                   client certificate too
# Passwords end up in URLs: they must be URL-safe ([A-Za-z0-9._~-], e.g. `openssl rand -hex
# 24`), which also keeps them out of SQL quoting trouble; anything else is refused.
set -eu

db=${SECKILL_MYSQL_DATABASE:-seckill}
app=${SECKILL_MYSQL_APP_USER:-seckill_app}
owner=${SECKILL_MYSQL_MIGRATE_USER:-seckill_migrate}
host=${SECKILL_MYSQL_USER_HOST:-%}
require=${SECKILL_MYSQL_REQUIRE:-NONE}
app_pw=${SECKILL_MYSQL_APP_PASSWORD:-}
owner_pw=${SECKILL_MYSQL_MIGRATE_PASSWORD:-}

fail() {
  echo "mysql-users.sh: $*" >&2
  exit 1
}
matches() { printf '%s' "$1" | grep -Eq "^$2\$"; }

[ -n "$app_pw" ] || fail "SECKILL_MYSQL_APP_PASSWORD is not set"
[ -n "$owner_pw" ] || fail "SECKILL_MYSQL_MIGRATE_PASSWORD is not set"
for name in "$db" "$app" "$owner"; do
  matches "$name" '[A-Za-z0-9_]{1,32}' || fail "'$name' is not a plain database or user name"
done
matches "$host" '[A-Za-z0-9_.%-]{1,60}' || fail "'$host' is not a host pattern"
for pw in "$app_pw" "$owner_pw"; do
  matches "$pw" '[A-Za-z0-9._~-]{12,128}' ||
    fail "a password must be 12 to 128 URL-safe characters ([A-Za-z0-9._~-])"
done
case $require in NONE | SSL | X509) ;; *) fail "SECKILL_MYSQL_REQUIRE must be NONE, SSL or X509" ;; esac

sql() {
  # $1 user, $2 password, $3 privileges
  cat <<EOF
CREATE USER IF NOT EXISTS '$1'@'$host' IDENTIFIED BY '$2';
ALTER USER '$1'@'$host' IDENTIFIED BY '$2' REQUIRE $require;
REVOKE ALL PRIVILEGES, GRANT OPTION FROM '$1'@'$host';
GRANT $3 ON \`$db\`.* TO '$1'@'$host';
EOF
}

statements() {
  echo "CREATE DATABASE IF NOT EXISTS \`$db\` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;"
  sql "$app" "$app_pw" "SELECT, INSERT, UPDATE"
  sql "$owner" "$owner_pw" "ALL PRIVILEGES"
  echo "FLUSH PRIVILEGES;"
}

case ${1:-initdb} in
sql) statements ;;
initdb)
  [ -n "${MYSQL_ROOT_PASSWORD:-}" ] || fail "not in the mysql image's first start (MYSQL_ROOT_PASSWORD unset); use '$0 sql'"
  echo "mysql-users.sh: creating the users $app (rows) and $owner (schema) on $db"
  statements | MYSQL_PWD=$MYSQL_ROOT_PASSWORD mysql --protocol=socket -uroot
  ;;
*) fail "usage: $0 [sql]" ;;
esac
