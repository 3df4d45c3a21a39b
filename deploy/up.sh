#!/usr/bin/env bash
# One command from a fresh Debian machine to a running single-machine cluster:
# set up (deploy/setup.sh), then `skiff up -d`. Extra arguments go to `skiff up`.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$REPO/deploy/setup.sh"
"$REPO/.venv/bin/skiff" up -d "$@"

cat <<MSG

Next:
  export PATH=$REPO/.venv/bin:\$PATH
  skiff apply -f $REPO/examples/
  skiff get all
  skiff describe deployment web
  skiff down            # stops what skiff up started
MSG
