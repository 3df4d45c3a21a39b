#!/usr/bin/env bash
# Installs a Skiff agent on this Debian 12 host, from this checkout: joins the host to the
# cluster (skiff join) and runs its node's agent (skiff agent: the kubelet) as the systemd
# service skiff-agent.service, with its state under /var/lib/skiff/agent.
#
#   deploy/install-agent.sh https://SERVER:PORT --token ID.SECRET --ca-cert-hash sha256:HEX
#                           [--node-name NAME] [--node-ip ADDRESS]
#
# The arguments are those `skiff token create` prints on the server after "skiff join".
#   --node-name  this host's Node (default: the host name, in lower case)
#   --node-ip    the address the cluster reaches this node at (default: the address of the
#                default route)
#
# Run as root. Running it again changes nothing and says so; after `skiff delete node NAME`
# it joins again under the same name (with a token that is still valid). The agent's
# service restarts and upgrades without stopping the pods (KillMode=process).
# deploy/uninstall.sh (also on the host as skiff-uninstall.sh) removes it all. Decisions: docs/decisions/0011-install.md.
set -euo pipefail

PROG=install-agent
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=deploy/install-common.sh
. "$REPO/deploy/install-common.sh"

usage() {
    echo "usage: $0 https://SERVER:PORT --token ID.SECRET --ca-cert-hash sha256:HEX \
[--node-name NAME] [--node-ip ADDRESS]" >&2
    echo "(the arguments skiff token create prints on the server, after \"skiff join\")" >&2
    exit 2
}

url=""
token=""
ca_hash=""
node_name=$(hostname | tr '[:upper:]' '[:lower:]')
node_ip=""
while [ $# -gt 0 ]; do
    case "$1" in
        --token|--ca-cert-hash|--node-name|--node-ip)
            [ $# -ge 2 ] || { echo "$PROG: error: $1 needs a value" >&2; usage; }
            case "$1" in
                --token) token=$2 ;;
                --ca-cert-hash) ca_hash=$2 ;;
                --node-name) node_name=$2 ;;
                --node-ip) node_ip=$2 ;;
            esac
            shift 2 ;;
        --token=*) token=${1#*=}; shift ;;
        --ca-cert-hash=*) ca_hash=${1#*=}; shift ;;
        --node-name=*) node_name=${1#*=}; shift ;;
        --node-ip=*) node_ip=${1#*=}; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "$PROG: error: unknown argument $1" >&2; usage ;;
        *)
            [ -z "$url" ] || { echo "$PROG: error: one server only (got $url and $1)" >&2; usage; }
            url=$1; shift ;;
    esac
done
missing=()
[ -n "$url" ] || missing+=("the server's https://SERVER:PORT")
[ -n "$token" ] || missing+=("--token")
[ -n "$ca_hash" ] || missing+=("--ca-cert-hash")
if [ "${#missing[@]}" -gt 0 ]; then
    joined=$(printf '%s, ' "${missing[@]}")
    echo "$PROG: error: missing ${joined%, }" >&2
    usage
fi
case "$url" in
    https://*:[0-9]*) ;;
    *) die "server \"$url\": expected https://SERVER:PORT, as skiff token create prints it" ;;
esac
plain_value server "$url"
plain_value --token "$token"
plain_value --ca-cert-hash "$ca_hash"
plain_value --node-name "$node_name"
[ -z "$node_ip" ] || plain_value --node-ip "$node_ip"

require_root
require_systemd
require_checkout
refuse_other_role "$SKIFF_SERVER_UNIT" "the Skiff server"
install_packages
require_docker
install_skiff

# --- join -----------------------------------------------------------------------------------
# skiff join does nothing when this host joined as this node before and the cluster still
# takes its certificate; joins again when `skiff delete node` revoked it; refuses another
# name or another cluster. The token goes through the environment, not the command line.
join_args=(--ca-cert-hash "$ca_hash" --node-name "$node_name" --state-dir "$SKIFF_AGENT_STATE")
[ -z "$node_ip" ] || join_args+=(--node-ip "$node_ip")
credentials="$SKIFF_AGENT_STATE/kubelet.conf"
before=$(sha256sum "$credentials" 2>/dev/null || true)
if ! joined=$(SKIFF_JOIN_TOKEN=$token "$SKIFF_VENV/bin/skiff" join "$url" "${join_args[@]}" 2>&1)
then
    echo "$joined" >&2
    if [ -e "$credentials" ]; then
        echo "$PROG: this host joined a cluster before (state in $SKIFF_AGENT_STATE); to join it \
under another name or to another cluster, run deploy/uninstall.sh first" >&2
    elif [ ! -e "$SKIFF_UNIT_DIR/$SKIFF_AGENT_UNIT" ]; then
        echo "$PROG: nothing was installed but Skiff itself in $SKIFF_VENV (deploy/uninstall.sh \
removes it)" >&2
    fi
    die "this host did not join the cluster at $url (why: above)"
fi
# (Its hints for a hand-run join do not apply here: the service starts the agent.)
echo "$joined" | grep -v '^Start its agent:' | sed "s/; --force joins again$//; s/^/$PROG: /"
if [ "$before" != "$(sha256sum "$credentials" 2>/dev/null || true)" ]; then
    CHANGED+=("joined as node $node_name")
fi
install_command
install_uninstaller

# --- the service ----------------------------------------------------------------------------
# (Fed by redirection, not a pipe: write_file must run in this shell to record a change.)
write_file "$SKIFF_ETC/agent.env" 600 < <(
    echo "# Skiff agent settings, written by deploy/install-agent.sh; read by $SKIFF_AGENT_UNIT."
    echo "# Mode 0600: the join token is a secret. It is used only to join (again)."
    env_line SKIFF_SERVER "$url"
    env_line SKIFF_JOIN_TOKEN "$token"
    env_line SKIFF_CA_CERT_HASH "$ca_hash"
    env_line SKIFF_NODE_NAME "$node_name"
    env_line SKIFF_JOIN_ARGS "${node_ip:+--node-ip $node_ip}"
)

write_file "$SKIFF_UNIT_DIR/$SKIFF_AGENT_UNIT" 644 <<EOF
# Written by deploy/install-agent.sh (deploy/uninstall.sh removes it).
[Unit]
Description=Skiff agent: this host's node (the kubelet)
Wants=network-online.target docker.service
After=network-online.target docker.service

[Service]
Type=exec
EnvironmentFile=$SKIFF_ETC/agent.env
# Joins first if this host has not, or if the cluster revoked its node's certificate
# (skiff join does nothing otherwise); SKIFF_JOIN_TOKEN comes from the env file.
ExecStartPre=$SKIFF_VENV/bin/skiff join \${SKIFF_SERVER} --ca-cert-hash \${SKIFF_CA_CERT_HASH} \
--node-name \${SKIFF_NODE_NAME} --state-dir $SKIFF_AGENT_STATE \$SKIFF_JOIN_ARGS
ExecStart=$SKIFF_VENV/bin/skiff agent --state-dir $SKIFF_AGENT_STATE --cluster-dns $SKIFF_CLUSTER_DNS
# Stopping or restarting the agent (an upgrade) signals the agent alone: whatever it
# started keeps running, and the pods run in Docker anyway (k3s#4599).
KillMode=process
# The agent may make cgroups below its own.
Delegate=yes
# No per-unit limits: as k3s, the containers account for themselves in their cgroups.
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0
Restart=always
RestartSec=5s

[Install]
WantedBy=multi-user.target
EOF

# The cluster DNS: skiff-dns answers this host's pods on the cluster DNS address (which it
# puts on lo); systemd holds its sockets, so that queries during its restarts wait for it
# rather than fail (FreeBind: the address comes when skiff-dns puts it there).
write_file "$SKIFF_UNIT_DIR/$SKIFF_DNS_SOCKET" 644 <<EOF
# Written by deploy/install-agent.sh (deploy/uninstall.sh removes it).
[Unit]
Description=Skiff DNS sockets: the cluster DNS address, held across skiff-dns's restarts

[Socket]
ListenDatagram=$SKIFF_CLUSTER_DNS:53
ListenStream=$SKIFF_CLUSTER_DNS:53
FreeBind=yes
ReuseAddress=yes
Backlog=1024

[Install]
WantedBy=sockets.target
EOF

write_file "$SKIFF_UNIT_DIR/$SKIFF_DNS_UNIT" 644 <<EOF
# Written by deploy/install-agent.sh (deploy/uninstall.sh removes it).
[Unit]
Description=Skiff DNS: the cluster DNS for this node's pods (skiff-dns)
# It reads Services, Endpoints and Pods with the node's credentials, which the agent's
# join leaves; until they are there it fails and is started again.
Requires=$SKIFF_DNS_SOCKET
Wants=network-online.target
After=network-online.target $SKIFF_DNS_SOCKET $SKIFF_AGENT_UNIT

[Service]
Type=exec
ExecStart=$SKIFF_VENV/bin/skiff-dns --config $SKIFF_AGENT_STATE/kubelet.conf \
--bind-address $SKIFF_CLUSTER_DNS
Restart=always
RestartSec=1s

[Install]
WantedBy=multi-user.target
EOF

start_unit "$SKIFF_AGENT_UNIT"
start_unit "$SKIFF_DNS_SOCKET"
start_unit "$SKIFF_DNS_UNIT"

# Up when its server for the apiserver (logs, exec) listens: it runs with its credentials
# and registers its Node right after.
WAIT_UNIT=$SKIFF_AGENT_UNIT
wait_until 120 "the agent listening on port 10250" port_open 10250
say "Skiff agent is running ($SKIFF_AGENT_UNIT): node $node_name of the cluster at $url; \
see it on the server with: skiff get nodes"
report_changes "the agent"
