#!/usr/bin/env bash
# Regenerates the Python code for proto/skiff/api/v1/*.proto into skiff/api/v1/.
# Usage: proto/generate.sh [OUTPUT_ROOT]   (default: the repository root)
# tests/unit/test_generated_code.py runs this into a temporary folder and fails
# when the committed code differs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root}
python=${PYTHON:-python3}
[ -x "$root/.venv/bin/python" ] && python=${PYTHON:-$root/.venv/bin/python}
cd "$root/proto"
"$python" -m grpc_tools.protoc -I. --python_out="$out" --pyi_out="$out" \
    --grpc_python_out="$out" skiff/api/v1/*.proto
