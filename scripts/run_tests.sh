#!/usr/bin/env bash
# One command on a fresh machine: set up .venv (and chromium) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
# Lint first (pyproject.toml, [tool.ruff]): a style or import error fails the run like a test.
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
