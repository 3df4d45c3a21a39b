#!/usr/bin/env bash
# Builds Skiff's node image (cluster/nodeimage.py): a Debian 12 host in a container that
# boots systemd and runs its own dockerd, made offline from Debian's packages and PyPI.
# Reuses the image when one of the same recipe is there; --force rebuilds it.
# Prints the tag (skiff-node:<version>-<hash>) on its last line.
# Run as root (mmdebstrap), after deploy/setup.sh (packages, .venv, dockerd).
# Usage: deploy/build-node-image.sh [--force]
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
[ -x "$PYTHON" ] || { echo "build-node-image: no $PYTHON; run deploy/setup.sh first" >&2; exit 1; }

force=False
case "${1:-}" in
    "") ;;
    --force) force=True ;;
    *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

cd "$REPO"
exec "$PYTHON" -c "
import sys
from cluster.errors import ClusterError
from cluster.nodeimage import build_image
try:
    result = build_image(force=$force)
except ClusterError as e:
    sys.exit(f'build-node-image: error: {e}')
print(result.tag)
"
