#!/usr/bin/env bash
# Arize Phoenix, the trace server tests/test_phoenix.py sends spans to, in a venv of its own
# (it brings ~850 MB of packages that must not meet the app's pins). Idempotent; prints the venv.
set -euo pipefail
VERSION=20.26.1
VENV="${RLM_PHOENIX_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/rlm-tracer/phoenix-$VERSION}"
if [ ! -x "$VENV/bin/phoenix" ]; then
  python -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "arize-phoenix==$VERSION" >&2
fi
echo "$VENV"
