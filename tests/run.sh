#!/usr/bin/env bash
# Set up this machine (deploy/setup.sh: packages, .venv, dockerd), check the import
# contracts, ruff and mypy, then run pytest; arguments go to pytest. Runs from any directory.
#   tests/run.sh                 all tests
#   tests/run.sh tests/unit -q   one tier
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$REPO/deploy/setup.sh"
cd "$REPO"   # lint-imports and pytest read their settings from ./pyproject.toml
.venv/bin/lint-imports --no-logo
.venv/bin/ruff check --quiet .
.venv/bin/mypy
exec .venv/bin/pytest "$@"
