#!/usr/bin/env bash
# Creates .venv (if missing) and installs llmjp-jax into it, with the extras given as $1 (e.g. "test").
# Python 3.12 is the tested platform (JAX 0.12); it is used where `python3.12` runs (on PATH or as
# a pyenv version), else python3.
# Set PYTHON to choose another interpreter; a .venv made by a different Python is rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
pyenv_312() {  # the newest pyenv-installed 3.12, if any
  find "$(pyenv root)/versions" -maxdepth 3 -path '*/3.12*/bin/python3.12' 2>/dev/null | sort -V | tail -1
}
if [ -z "${PYTHON:-}" ]; then
  if command -v python3.12 >/dev/null 2>&1 && python3.12 -c "" >/dev/null 2>&1; then
    PYTHON=python3.12
  elif command -v pyenv >/dev/null 2>&1 && [ -n "$(pyenv_312)" ]; then
    PYTHON=$(pyenv_312)
  else
    PYTHON=python3
  fi
fi
want=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ -x .venv/bin/python ]; then
  have=$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  if [ "$have" != "$want" ]; then
    echo "setup: .venv runs Python $have; rebuilding it with $PYTHON (Python $want)." >&2
    rm -rf .venv
  fi
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
fi
spec="."
if [ -n "${1:-}" ]; then spec=".[$1]"; fi
# The test and hf extras pin torch==2.13.0. PyPI has only its CUDA build for Python 3.12 (a 5.6 GB
# venv, what CI installs: it reaches PyPI alone); TORCH_INDEX_URL (e.g. PyTorch's CPU index)
# installs torch from there first, and the pin is then already met.
if [ -n "${TORCH_INDEX_URL:-}" ] && [[ "${1:-}" =~ (test|hf) ]]; then
  .venv/bin/pip install --quiet "torch==2.13.0" --index-url "$TORCH_INDEX_URL"
fi
.venv/bin/pip install --quiet -e "$spec"
