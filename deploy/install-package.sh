#!/usr/bin/env bash
# Installs Skiff from this checkout into /opt/skiff/venv and nothing else: the first step
# of install-server.sh and install-agent.sh, which then find it done. `skiff cluster create`
# runs it on every node at once, so the server's install and the agents' that follow it do
# not each spend their own turn on pip. Running it again changes nothing and says so.
set -euo pipefail

PROG=install-package
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=deploy/install-common.sh
. "$REPO/deploy/install-common.sh"

require_root
require_checkout
install_packages
install_skiff
