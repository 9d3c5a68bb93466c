#!/usr/bin/env bash
# Creates .venv (if missing) and installs llmjp-jax into it, with the extras given as $1 (e.g. "test").
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
fi
spec="."
if [ -n "${1:-}" ]; then spec=".[$1]"; fi
.venv/bin/pip install --quiet -e "$spec"
