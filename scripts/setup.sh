#!/usr/bin/env bash
# Creates .venv and installs everything the app, the tests and the benchmarks need.
# Usage: scripts/setup.sh [--test]   (--test also installs Debian's chromium for browser tests)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip
# torch first, the CPU build: requirements.txt names PyTorch's CPU wheel for this Python (what Community
# Cloud installs); where that server cannot be reached, the pinned version from pip's own sources (on this
# project's build machines, the CPU wheel on local disk). An unpinned torch pulls several GB of CUDA wheels.
if ! .venv/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('torch').split('+')[0] != '2.13.0')" 2>/dev/null; then
  grep '^torch' requirements.txt > .venv/torch-requirements.txt
  $PIP install -q -r .venv/torch-requirements.txt 2>/dev/null || $PIP install -q torch==2.13.0
fi
grep -v '^torch' requirements.txt > .venv/app-requirements.txt
$PIP install -q -r .venv/app-requirements.txt -r requirements-pyreflect.txt -r requirements-dev.txt
$PIP install -q --no-deps pyreflect-nr==1.4.6
# The library itself, editable, so `python -m reflect_core` works from any folder.
$PIP install -q --no-deps --no-build-isolation -e .

if [ "${1:-}" = "--test" ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
fi
