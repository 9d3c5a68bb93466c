#!/usr/bin/env bash
# Single host, all local devices (GPUs, TPU chips or the CPU):
#
#   bash launch/local.sh configs/llmjp3/1.8b.py runs/1.8b [--config.x=y ...]
set -euo pipefail
config=${1:?usage: bash launch/local.sh CONFIG WORKDIR [overrides...]}
workdir=${2:?usage: bash launch/local.sh CONFIG WORKDIR [overrides...]}
shift 2
cd "$(dirname "$0")/.."
# shellcheck source=scripts/cpu_env.sh
source scripts/cpu_env.sh  # host allocator that reuses freed memory (see the script)
exec "${LLMJP_BIN:-.venv/bin}/llmjp-train" --config="$config" --workdir="$workdir" "$@"
