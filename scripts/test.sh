#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs, then lint, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1

python -m pip install -q -r requirements-dev.txt
# browser tests drive Debian's chromium (Playwright's own browser download fails offline); the
# REPL sandbox prefers bubblewrap, and its isolation tests run in every mode
MISSING=""
[ -x /usr/bin/chromium ] || MISSING="$MISSING chromium"
command -v bwrap >/dev/null || MISSING="$MISSING bubblewrap"
if [ -n "$MISSING" ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $MISSING >/dev/null
fi

# Phoenix, the real trace server of tests/test_phoenix.py, in a venv of its own (about 70 s the
# first time); without it that test is skipped and says so
bash scripts/phoenix_venv.sh >/dev/null || echo "note: Phoenix could not be installed" >&2

python -m ruff check .
python -m ruff format --check .
python -m mypy
python -m pytest "$@"
