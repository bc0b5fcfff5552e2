#!/usr/bin/env bash
# Installs schemathesis and openapi-spec-validator (from PyPI, pinned) into their own venv
# under .state/, for gateway/tests/schemathesis.rs: the OpenAPI document the gateway serves is
# validated against the OpenAPI 3.1 meta-schema, then tested property by property. Does
# nothing when those versions are already there. Used by scripts/setup.sh and `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=4.32.5
VALIDATOR=0.9.0
VENV=.state/schemathesis
if "$VENV/bin/schemathesis" --version 2>/dev/null | grep -qx "schemathesis, version $VERSION" &&
  "$VENV/bin/pip" show openapi-spec-validator 2>/dev/null | grep -qx "Version: $VALIDATOR"; then
  exit 0
fi
echo "setup: installing schemathesis $VERSION, openapi-spec-validator $VALIDATOR into $VENV" >&2
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$VERSION" \
  "openapi-spec-validator==$VALIDATOR"
"$VENV/bin/schemathesis" --version >&2
