#!/usr/bin/env bash
# Installs what seckill needs to build, test and run on Debian/Ubuntu, skipping what is
# already there. Safe to run again. Used by `make deps`, `make run` and CI.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

want() { # package [command that proves it is there]
  local pkg=$1 cmd=${2:-}
  if [ -n "$cmd" ] && have_cmd "$cmd"; then return; fi
  have_pkg "$pkg" || need_pkgs+=("$pkg")
}

want redis-server redis-server     # 7.0+: the module needs SetCommandInfo and StreamAdd
want redis-tools redis-cli          # redis-cli, redis-benchmark
want mariadb-server mariadbd        # our MySQL (tests start private instances)
want mariadb-client mariadb
want etcd-server etcd
want etcd-client etcdctl
want libclang-dev                   # bindgen, for the redis-module crate
want clang clang
want protobuf-compiler protoc       # etcd-client's gRPC stubs
want libprotobuf-dev                # protobuf's well-known .proto files (etcd-client's stubs import them)
want pkg-config pkg-config
want build-essential gcc
want wrk wrk                        # make bench
want python3 python3
want curl curl
want jq jq                          # the README's curl examples
want chromium chromium              # the storefront's browser test (Debian's, never downloaded)
want nodejs node                    # the browser test's driver (playwright-core)
want npm npm
want prometheus promtool            # promtool checks, and a real Prometheus in the deploy tests
want docker-compose docker-compose  # `docker-compose config` checks of the compose files
want shellcheck shellcheck          # the local stack script is linted by its test
want python3-venv                   # honcho (the local stack's process runner) lives in a venv

if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "setup: installing ${need_pkgs[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    have_cmd sudo || { echo "setup: run as root or install sudo" >&2; exit 1; }
    SUDO="sudo"
  fi
  # Packaged services must not start system-wide instances: we run private ones.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

if ! have_cmd cargo; then
  echo "setup: installing Rust with rustup" >&2
  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest" >&2
  cargo install --locked cargo-nextest >/dev/null
fi
# Supply-chain checks of `make lint` (deny.toml); built from crates.io, a few minutes once.
if ! cargo deny --version >/dev/null 2>&1; then
  echo "setup: installing cargo-deny" >&2
  cargo install --locked cargo-deny >/dev/null
fi
# The browser test's npm packages, pinned by e2e/package-lock.json (playwright-core drives
# Debian's Chromium; it never downloads a browser).
if [ -f e2e/package-lock.json ] && [ ! -d e2e/node_modules ]; then
  echo "setup: installing the browser test's npm packages" >&2
  npm ci --prefix e2e --no-audit --no-fund >/dev/null
fi
# Schemathesis (PyPI) for the gateway's OpenAPI property tests, in a venv under .state/.
bash scripts/install-schemathesis.sh
echo "setup: ok (redis $(redis-server --version | awk '{print $3}'), $(mariadbd --version | awk '{print $3}'), etcd $(etcd --version | head -1 | awk '{print $3}'))" >&2
