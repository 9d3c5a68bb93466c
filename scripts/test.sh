#!/usr/bin/env bash
# Sets up .venv with the test extra and runs the whole test suite (CPU, 8 simulated devices).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
.venv/bin/python -m pytest -q tests "$@"
