#!/usr/bin/env bash
# One command on a fresh machine: set up .venv and start the app.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/streamlit run app.py "$@"
