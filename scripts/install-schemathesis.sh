#!/usr/bin/env bash
# Installs schemathesis (from PyPI, pinned) into its own venv under .state/, for
# gateway/tests/schemathesis.rs: property-based tests of the OpenAPI document the gateway
# serves. Does nothing when that version is already there. Used by scripts/setup.sh and
# `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=4.32.5
VENV=.state/schemathesis
if "$VENV/bin/schemathesis" --version 2>/dev/null | grep -qx "schemathesis, version $VERSION"; then
  exit 0
fi
echo "setup: installing schemathesis $VERSION into $VENV" >&2
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$VERSION"
"$VENV/bin/schemathesis" --version >&2
