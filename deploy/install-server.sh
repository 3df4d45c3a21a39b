#!/usr/bin/env bash
# Installs the Skiff server on this Debian 12 host, from this checkout, as a systemd service:
# etcd, the apiserver, the scheduler, the controller manager and this host's own node (a
# kubelet), all run and supervised by `skiff up` in skiff-server.service, with the cluster's
# data under /var/lib/skiff/server. Other hosts join it with `skiff token create` here and
# deploy/install-agent.sh there.
#
#   deploy/install-server.sh [--token-port PORT] [--port PORT] [--node-name NAME]
#                            [--bind-address ADDRESS]
#
#   --token-port    where hosts join with tokens (default 9345)
#   --port          the apiserver's port (default 6443)
#   --node-name     this host's Node (default: the host name, in lower case)
#   --bind-address  where the apiserver and the token port listen (default 0.0.0.0: every
#                   address, for the other hosts)
#
# Run as root. Running it again with the same arguments changes nothing and says so; with
# other arguments or a newer checkout, it changes what differs and restarts the service
# (the pods keep running). deploy/uninstall.sh (also on the host as skiff-uninstall.sh)
# removes it all.
# What it writes and why: docs/decisions/0011-install.md.
set -euo pipefail

PROG=install-server
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=deploy/install-common.sh
. "$REPO/deploy/install-common.sh"

usage() {
    echo "usage: $0 [--token-port PORT] [--port PORT] [--node-name NAME] [--bind-address ADDRESS]" >&2
    exit 2
}

token_port=9345
port=6443
node_name=$(hostname | tr '[:upper:]' '[:lower:]')
bind_address=0.0.0.0
while [ $# -gt 0 ]; do
    case "$1" in
        --token-port|--port|--node-name|--bind-address)
            [ $# -ge 2 ] || { echo "$PROG: error: $1 needs a value" >&2; usage; }
            case "$1" in
                --token-port) token_port=$2 ;;
                --port) port=$2 ;;
                --node-name) node_name=$2 ;;
                --bind-address) bind_address=$2 ;;
            esac
            shift 2 ;;
        --token-port=*) token_port=${1#*=}; shift ;;
        --port=*) port=${1#*=}; shift ;;
        --node-name=*) node_name=${1#*=}; shift ;;
        --bind-address=*) bind_address=${1#*=}; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "$PROG: error: unknown argument $1" >&2; usage ;;
    esac
done
for p in "$token_port" "$port"; do
    if ! [[ "$p" =~ ^[0-9]+$ ]] || [ "$p" -lt 1 ] || [ "$p" -gt 65535 ]; then
        die "port \"$p\": must be a number from 1 to 65535"
    fi
done
[ "$token_port" != "$port" ] || die "--token-port and --port must differ (both $port)"
plain_value --node-name "$node_name"
plain_value --bind-address "$bind_address"

require_root
require_systemd
require_checkout
refuse_other_role "$SKIFF_AGENT_UNIT" "a Skiff agent"
install_packages
require_docker
install_skiff
install_command
install_uninstaller

write_file "$SKIFF_ETC/server.env" 600 <<EOF
# Skiff server settings, written by deploy/install-server.sh; read by $SKIFF_SERVER_UNIT.
# skiff up's flags (skiff up --help); the cluster's data is in $SKIFF_SERVER_DATA.
$(env_line SKIFF_SERVER_ARGS "--port $port --token-port $token_port --bind-address $bind_address --node-name $node_name")
EOF

# One unit runs `skiff up` in the foreground: it starts etcd and the daemons in order, each
# once the one before is ready, restarts any that dies, and adopts those still running
# when it is itself restarted (decisions/0011 says why not one unit per daemon).
write_file "$SKIFF_UNIT_DIR/$SKIFF_SERVER_UNIT" 644 <<EOF
# Written by deploy/install-server.sh (deploy/uninstall.sh removes it).
[Unit]
Description=Skiff server: etcd, apiserver, scheduler, controller manager and this host's node
Wants=network-online.target docker.service
After=network-online.target docker.service

[Service]
Type=exec
EnvironmentFile=$SKIFF_ETC/server.env
ExecStart=$SKIFF_VENV/bin/skiff up --data-dir $SKIFF_SERVER_DATA \$SKIFF_SERVER_ARGS
# skiff up stops its daemons itself, in order, on SIGTERM; when it is killed they keep
# running and the next skiff up adopts them. The pods run in Docker, outside this unit.
KillMode=process
Delegate=yes
# No per-unit limits: as k3s, the containers account for themselves in their cgroups.
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0
# Each of the five daemons gets 10 s to stop.
TimeoutStopSec=120
Restart=always
RestartSec=5s

[Install]
WantedBy=multi-user.target
EOF

start_unit "$SKIFF_SERVER_UNIT"

admin="$SKIFF_SERVER_DATA/config"
node_ready() {
    "$SKIFF_VENV/bin/skiff" --config "$admin" get node "$node_name" --no-headers 2>/dev/null \
        | awk '{print $2}' | grep -qx Ready
}
WAIT_UNIT=$SKIFF_SERVER_UNIT
wait_until 180 "the apiserver answering and node $node_name Ready" node_ready
say "Skiff server is running ($SKIFF_SERVER_UNIT): apiserver on port $port, joins on port \
$token_port, node $node_name Ready"
say "admin config: $admin (the skiff command on this host uses it)"
say "to add a host: run 'skiff token create' here; it prints 'skiff join URL --token ... \
--ca-cert-hash ...'. On that host, from a checkout, run deploy/install-agent.sh with the \
same arguments: deploy/install-agent.sh URL --token ... --ca-cert-hash ..."
report_changes "the server"
