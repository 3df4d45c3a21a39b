#!/usr/bin/env bash
# Removes what deploy/install-server.sh or deploy/install-agent.sh put on this host, and what
# Skiff made while it ran, and nothing else:
#   - the services skiff-server.service, skiff-agent.service and skiff-dns.service, and
#     skiff-dns.socket (stopped, disabled, their unit files gone) and any process still left in them (KillMode=process
#     leaves them), and the cluster DNS address skiff-dns put on the loopback interface;
#   - every Docker container of Skiff's pods (label io.skiff.node) and Skiff's Docker
#     networks (labels io.skiff.node, io.skiff.network), and the pause image it built;
#   - Skiff's iptables chains (SKIFF-*) and the jumps to them, in every table, IPv4 and IPv6;
#   - every mount under /var/lib/skiff (Secrets on tmpfs), then /var/lib/skiff itself (the
#     server's cluster data, the agent's credentials);
#   - /etc/skiff/*.env, the venv /opt/skiff/venv and /usr/local/bin/skiff (if it is ours).
# Docker itself, its images and the Debian packages an install added stay.
# Safe to run again: what is not there is skipped; on a host with nothing of Skiff's it says
# so. Run as root. Decisions: docs/decisions/0011-install.md.
# The installs copy this script to /usr/local/bin/skiff-uninstall.sh, so it needs nothing
# else (not the checkout): the paths below are install-common.sh's
# (tests/unit/cluster/test_install_scripts.py checks that they agree).
set -euo pipefail

PROG=uninstall
SKIFF_VENV=/opt/skiff/venv
SKIFF_ETC=/etc/skiff
SKIFF_STATE=/var/lib/skiff
SKIFF_UNIT_DIR=/etc/systemd/system
SKIFF_SERVER_UNIT=skiff-server.service
SKIFF_AGENT_UNIT=skiff-agent.service
SKIFF_DNS_UNIT=skiff-dns.service
SKIFF_DNS_SOCKET=skiff-dns.socket
SKIFF_COMMAND=/usr/local/bin/skiff
SKIFF_COMMAND_MARK="# Skiff's command, installed by deploy/install-server.sh or install-agent.sh"
SKIFF_UNINSTALL=/usr/local/bin/skiff-uninstall.sh
SKIFF_UNINSTALL_MARK="Removes what deploy/install-server.sh or deploy/install-agent.sh put"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

say() { echo "$PROG: $*"; }
warn() { echo "$PROG: warning: $*" >&2; }
die() { echo "$PROG: error: $*" >&2; exit 1; }

POD_LABEL=io.skiff.node          # kubelet.runtime.LABEL_NODE: every container of a pod
NETWORK_LABELS=(io.skiff.node io.skiff.network)
PAUSE_IMAGE=skiff/pause:1        # kubelet/runtime/pause.py builds it on the node
UNITS=("$SKIFF_DNS_SOCKET" "$SKIFF_DNS_UNIT" "$SKIFF_AGENT_UNIT" "$SKIFF_SERVER_UNIT")
REMOVED=()

case "${1:-}" in
    "") ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: $0" >&2; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || die "must run as root (it stops services and removes them): sudo $0"

# --- the services and their processes -------------------------------------------------------

# PIDs of processes in UNIT's cgroup (or below it), on cgroup v1 or v2.
unit_pids() {
    local unit=$1 f pid
    for f in /proc/[0-9]*/cgroup; do
        if grep -qE "/${unit//./\\.}(/|$)" "$f" 2>/dev/null; then
            pid=${f#/proc/}
            echo "${pid%/cgroup}"
        fi
    done
}

stop_leftovers() {
    local unit=$1 pids tries=0
    mapfile -t pids < <(unit_pids "$unit")
    [ "${#pids[@]}" -gt 0 ] || return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    while [ "$tries" -lt 20 ]; do
        mapfile -t pids < <(unit_pids "$unit")
        [ "${#pids[@]}" -gt 0 ] || break
        sleep 0.5
        tries=$((tries + 1))
    done
    mapfile -t pids < <(unit_pids "$unit")
    if [ "${#pids[@]}" -gt 0 ]; then
        kill -KILL "${pids[@]}" 2>/dev/null || true
    fi
    REMOVED+=("the processes left in $unit")
}

remove_units() {
    local unit have_systemd=""
    [ -d /run/systemd/system ] && command -v systemctl >/dev/null && have_systemd=1
    for unit in "${UNITS[@]}"; do
        local file="$SKIFF_UNIT_DIR/$unit" known=""
        [ -e "$file" ] && known=1
        if [ -n "$have_systemd" ]; then
            if [ -n "$known" ] || systemctl is-active --quiet "$unit" 2>/dev/null; then
                say "stopping $unit"
                systemctl disable --now --quiet "$unit" 2>/dev/null || true
            fi
            stop_leftovers "$unit"
        fi
        if [ -n "$known" ]; then
            rm -f "$file"
            REMOVED+=("$unit")
        fi
    done
    if [ -n "$have_systemd" ]; then
        systemctl daemon-reload
        systemctl reset-failed "${UNITS[@]}" 2>/dev/null || true
    fi
}

# --- Docker ---------------------------------------------------------------------------------

remove_docker_objects() {
    if ! command -v docker >/dev/null; then
        return 0
    fi
    if ! docker info >/dev/null 2>&1; then
        warn "Docker does not answer: Skiff's containers and networks, if any, were not \
removed (start docker and run this again)"
        return 0
    fi
    local ids label
    mapfile -t ids < <(docker ps -aq --no-trunc --filter "label=$POD_LABEL")
    if [ "${#ids[@]}" -gt 0 ]; then
        # -f: stopped with SIGKILL, as k3s-killall does; the agent that would stop them
        # gracefully is gone already.
        docker rm -f -v "${ids[@]}" >/dev/null
        REMOVED+=("${#ids[@]} pod container(s)")
    fi
    if [ -x "$SKIFF_VENV/bin/skiff-kubelet" ] \
            && "$SKIFF_VENV/bin/skiff-kubelet" --help 2>/dev/null | grep -q -- --cleanup-pod-network
    then
        # The pod network's own cleanup: its routes, chains and bridge, as it knows them,
        # and the service proxy's chains.
        "$SKIFF_VENV/bin/skiff-kubelet" --cleanup-pod-network | sed "s/^/$PROG: /" \
            || warn "the pod network's cleanup reported problems (above)"
    fi
    if [ -x "$SKIFF_VENV/bin/skiff-dns" ] \
            && "$SKIFF_VENV/bin/skiff-dns" --help 2>/dev/null | grep -q -- --cleanup; then
        # The cluster DNS address on lo (label lo:skiff-dns), as skiff-dns knows it.
        "$SKIFF_VENV/bin/skiff-dns" --cleanup | sed "s/^/$PROG: /" \
            || warn "the cluster DNS cleanup reported problems (above)"
    fi
    for label in "${NETWORK_LABELS[@]}"; do
        mapfile -t ids < <(docker network ls -q --no-trunc --filter "label=$label")
        if [ "${#ids[@]}" -gt 0 ]; then
            docker network rm "${ids[@]}" >/dev/null
            REMOVED+=("${#ids[@]} network(s) labelled $label")
        fi
    done
    if docker image inspect "$PAUSE_IMAGE" >/dev/null 2>&1; then
        if docker image rm "$PAUSE_IMAGE" >/dev/null; then
            REMOVED+=("the image $PAUSE_IMAGE")
        else
            warn "could not remove the image $PAUSE_IMAGE (a container of someone else's uses it?)"
        fi
    fi
}

# --- iptables -------------------------------------------------------------------------------

# In each table: Skiff's chains emptied, every jump to them deleted, the chains deleted; one
# iptables-restore --noflush transaction per table, which touches no other rule.
remove_chains() {
    local tool table save chains jumps chain
    for tool in iptables ip6tables; do
        if ! command -v "$tool-save" >/dev/null || ! command -v "$tool-restore" >/dev/null; then
            continue
        fi
        for table in filter nat mangle raw; do
            save=$("$tool-save" -t "$table" 2>/dev/null) || continue
            mapfile -t chains < <(grep -oE '^:SKIFF-[^ ]+' <<<"$save" | cut -c2-)
            [ "${#chains[@]}" -gt 0 ] || continue
            jumps=$(grep -E '^-A [^ ]+ .*-[jg] SKIFF-' <<<"$save" | grep -v '^-A SKIFF-' \
                | sed 's/^-A /-D /' || true)
            {
                echo "*$table"
                for chain in "${chains[@]}"; do echo ":$chain - [0:0]"; done
                [ -z "$jumps" ] || echo "$jumps"
                for chain in "${chains[@]}"; do echo "-X $chain"; done
                echo COMMIT
            } | "$tool-restore" --noflush \
                || { warn "$tool: could not remove ${chains[*]} from table $table"; continue; }
            REMOVED+=("$tool $table chains ${chains[*]}")
        done
    done
}

# --- mounts and files -----------------------------------------------------------------------

# Mount points at or below DIR, deepest and latest first (the order to unmount them in).
mounts_under() {
    local dir=$1
    awk '{print $5}' /proc/self/mountinfo | sed 's/\\040/ /g' | tac \
        | awk -v d="$dir" '$0 == d || index($0, d "/") == 1 {print gsub("/", "/"), $0}' \
        | sort -s -rn -k1,1 | cut -d' ' -f2-
}

remove_state() {
    local dir=$SKIFF_STATE points point
    if [ ! -e "$dir" ]; then
        return 0
    fi
    mapfile -t points < <(mounts_under "$dir")
    for point in "${points[@]}"; do
        # Busy (a process still has a file open there): detached now, freed by the kernel
        # when the last user goes.
        umount "$point" 2>/dev/null || umount -l "$point" \
            || die "cannot unmount $point; nothing under $dir was removed"
    done
    [ "${#points[@]}" -eq 0 ] || REMOVED+=("${#points[@]} mount(s) under $dir")
    mapfile -t points < <(mounts_under "$dir")
    [ "${#points[@]}" -eq 0 ] || die "still mounted under $dir: ${points[*]}; it was not removed"
    rm -rf "$dir"
    REMOVED+=("$dir")
}

remove_path() {
    if [ -e "$1" ] || [ -L "$1" ]; then
        rm -rf "$1"
        REMOVED+=("$1")
    fi
}

remove_files() {
    remove_path "$SKIFF_ETC/server.env"
    remove_path "$SKIFF_ETC/agent.env"
    rmdir "$SKIFF_ETC" 2>/dev/null || true
    if [ -e "$SKIFF_COMMAND" ] && grep -qF "$SKIFF_COMMAND_MARK" "$SKIFF_COMMAND"; then
        remove_path "$SKIFF_COMMAND"
    fi
    if [ -e "$SKIFF_VENV/.skiff-node-image" ]; then
        # A node image's venv (cluster/nodeimage.py), made with Skiff's dependencies: it
        # came with the host, so only Skiff leaves it.
        if [ -e "$SKIFF_VENV/bin/skiff" ]; then
            "$SKIFF_VENV/bin/pip" uninstall --quiet --yes skiff >/dev/null 2>&1 \
                || die "pip could not uninstall Skiff from $SKIFF_VENV"
            REMOVED+=("Skiff from $SKIFF_VENV (the node image's venv stays)")
        fi
        remove_path "$SKIFF_VENV/.skiff-source.sha256"
    else
        remove_path "$SKIFF_VENV"
    fi
    # /opt/skiff/wheels, a node image's wheelhouse, is not ours: /opt/skiff stays with it.
    rmdir /opt/skiff 2>/dev/null || true
    # Last, this very script when it runs from there (bash reads on from the removed file).
    if [ -e "$SKIFF_UNINSTALL" ] && grep -qF "$SKIFF_UNINSTALL_MARK" "$SKIFF_UNINSTALL"; then
        remove_path "$SKIFF_UNINSTALL"
    fi
}

remove_units
remove_docker_objects
remove_chains
remove_state
remove_files

if [ "${#REMOVED[@]}" -eq 0 ]; then
    say "nothing of Skiff's is on this host: nothing to remove"
else
    removed=$(printf '%s; ' "${REMOVED[@]}")
    say "removed: ${removed%; }"
fi
