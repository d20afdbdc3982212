#!/usr/bin/env bash
# Build the API reference (pdoc, from the docstrings) into docs/api/ or the folder given.
#
#   bash scripts/docs.sh [OUT]      needs the dev install (bash scripts/setup.sh --dev)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec "${PYTHON:-.venv/bin/python}" scripts/docs.py "$@"
