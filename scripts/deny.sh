#!/usr/bin/env bash
# Supply-chain checks of `make lint` (and so CI): cargo-deny's bans, licences and sources
# (deny.toml), then RustSec advisories.
#
# The advisory database is a git repository on GitHub. Where GitHub is unreachable (CI here
# reaches only the package registries) the advisory check cannot run: this script says so in
# a loud warning and goes on, unless SECKILL_ADVISORIES=required. SECKILL_ADVISORY_DB=<dir>
# points at a local clone of https://github.com/RustSec/advisory-db to check offline.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo deny --version >/dev/null 2>&1 || {
  echo "deny: cargo-deny is missing: run 'make deps' (scripts/setup.sh installs it)" >&2
  exit 1
}
cargo deny --locked check bans licenses sources

if [ -n "${SECKILL_ADVISORY_DB:-}" ]; then
  # cargo-deny looks for the default database under <db-path>/advisory-db-<hash of its URL>.
  dbs=$(mktemp -d)
  trap 'rm -rf "$dbs"' EXIT
  git clone -q "$SECKILL_ADVISORY_DB" "$dbs/advisory-db-3157b0e258782691"
  sed "s|^yanked = \"deny\"|yanked = \"deny\"\ndb-path = \"$dbs\"|" deny.toml >"$dbs/deny.toml"
  cargo deny --offline --config "$dbs/deny.toml" check advisories
  exit 0
fi
if cargo deny fetch db >/dev/null 2>&1; then
  cargo deny --locked check advisories
elif [ "${SECKILL_ADVISORIES:-}" = required ]; then
  echo "deny: the RustSec advisory database could not be fetched (GitHub unreachable)" >&2
  exit 1
else
  echo "deny: WARNING: advisories NOT checked: the RustSec advisory database (GitHub) is" \
    "unreachable from here. Run 'SECKILL_ADVISORY_DB=<clone of RustSec/advisory-db>" \
    "scripts/deny.sh' or run it where GitHub is reachable." >&2
fi
