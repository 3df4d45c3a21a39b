#!/usr/bin/env bash
# Idempotent setup of a Debian machine for Skiff, shared by tests/run.sh and deploy/up.sh:
#   1. system packages (apt-get only when one is missing),
#   2. the repo's .venv with `pip install -e '.[dev]'` (again only when pyproject.toml changed),
#   3. a running dockerd (started here when none answers).
# Safe to run again and again: every step first checks whether it is already done.
# Run as root (apt-get, dockerd). Usage: deploy/setup.sh   (from any directory)
#   deploy/setup.sh --dockerd-only: step 3 alone (start dockerd when none answers), as
#   tests that restart dockerd start it again.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
STAMP="$VENV/.skiff-pyproject.sha256"
DOCKERD_LOG=/var/log/skiff-dockerd.log
DOCKER_PIDFILE=/var/run/docker.pid
# The pid of a dockerd this script started: tests may restart only that one (a test of a
# cluster surviving its engine's restart), never a dockerd the machine's owner runs.
SETUP_DOCKERD_PIDFILE=/run/skiff/setup-dockerd.pid
# mmdebstrap builds the node image of hosts made as containers (cluster/nodeimage.py).
PACKAGES=(etcd-server etcd-client docker.io iptables conntrack busybox-static python3-venv docker-registry apache2-utils
          mmdebstrap)

# dockerd, iptables and friends live in sbin, which a non-login root shell may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

say() { echo "setup: $*" >&2; }
die() { echo "setup: error: $*" >&2; exit 1; }

is_installed() {
    # Like `dpkg -s`, but reads only the status word: `dpkg -s` also succeeds for a removed
    # package whose config files remain, and `dpkg -s | grep -q` can die of SIGPIPE under
    # pipefail and report an installed package as missing.
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        is_installed "$p" || missing+=("$p")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    [ "$(id -u)" -eq 0 ] || die "missing packages ${missing[*]}; run as root to install them"
    say "installing ${missing[*]}"
    # Debian's etcd-server and docker.io start their services from postinst through
    # invoke-rc.d. A system etcd on 2379 would take `skiff up`'s default port, and we start
    # dockerd ourselves; a policy-rc.d that answers 101 tells invoke-rc.d not to start
    # anything. Only a policy we put there ourselves is removed afterwards.
    local policy=/usr/sbin/policy-rc.d own_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        own_policy=1
    fi
    local rc=0
    {
        DEBIAN_FRONTEND=noninteractive apt-get update -q \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
    } >&2 || rc=$?
    if [ -n "$own_policy" ]; then
        rm -f "$policy"
    fi
    [ "$rc" -eq 0 ] || die "apt-get install ${missing[*]} failed (exit $rc)"
}

setup_venv() {
    local python=${PYTHON:-python3}
    if [ ! -x "$VENV/bin/python" ]; then
        "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
            || die "$python is older than 3.11 (set PYTHON=/path/to/python3.11)"
        say "creating $VENV"
        "$python" -m venv "$VENV"
    fi
    local want have=""
    want="$(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1)"
    [ -f "$STAMP" ] && have="$(cat "$STAMP")"
    if [ "$want" != "$have" ]; then
        say "pip install -e '.[dev]' (pyproject.toml changed)"
        # Editable, so code changes need no reinstall; only pyproject.toml (dependencies,
        # console scripts) does, hence the stamp. It is written only after a full success.
        "$VENV/bin/pip" install --disable-pip-version-check -q -e "${REPO}[dev]" >&2
        echo "$want" >"$STAMP"
    fi
}

# containerd's runc shim finds a container's cgroups through /proc/PID/cgroup and gives up
# (no OOM monitor: an OOM kill then shows as reason "Error", not "OOMKilled") when a
# cgroup v1 controller listed there has no mount. Some sandboxes hide a few controllers
# (hugetlb, net_cls,net_prio, perf_event); mount each missing one under /run/skiff/cgroup.
# Shims read the mounts when a container starts, so this helps a dockerd already running.
mount_missing_cgroup_controllers() {
    [ -r /proc/self/cgroup ] || return 0
    local controllers
    while IFS=: read -r id controllers _; do
        [ "$id" != 0 ] && [ -n "$controllers" ] || continue
        case "$controllers" in name=*) continue ;; esac
        if awk -v want="$controllers" '$(NF-2) == "cgroup" {
                n = split($NF, opts, ","); have = 0; split(want, ws, ",")
                for (w in ws) for (i = 1; i <= n; i++) if (opts[i] == ws[w]) have++
                if (have == length(ws)) found = 1
            } END { exit !found }' /proc/self/mountinfo; then
            continue
        fi
        local dir="/run/skiff/cgroup/$controllers"
        mkdir -p "$dir"
        if mount -t cgroup -o "$controllers" cgroup "$dir" 2>/dev/null; then
            say "mounted cgroup controller $controllers at $dir (for docker's OOM reports)"
        else
            say "warning: cgroup controller $controllers is not mounted and cannot be; docker will report OOM kills as Error"
        fi
    done </proc/self/cgroup
}

docker_answers() { docker info >/dev/null 2>&1; }

start_dockerd() {
    docker_answers && return 0
    if [ -f "$DOCKER_PIDFILE" ]; then
        local pid
        pid="$(cat "$DOCKER_PIDFILE" 2>/dev/null || true)"
        if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = dockerd ]; then
            # A dockerd is alive but not answering yet (still starting): wait for it
            # rather than start a second one.
            say "dockerd (pid $pid) is running but not answering yet; waiting"
        else
            # Left by a dockerd that was killed: the next dockerd refuses to start while
            # it exists ("pid file found").
            say "removing stale $DOCKER_PIDFILE (pid ${pid:-?} is not a dockerd)"
            rm -f "$DOCKER_PIDFILE"
        fi
    fi
    local started=""
    if [ ! -f "$DOCKER_PIDFILE" ]; then
        say "starting dockerd (log $DOCKERD_LOG)"
        # setsid + nohup: the daemon outlives this script and its terminal. (As a background
        # job of a non-interactive shell, setsid needs no fork, so $! is dockerd itself.)
        setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
        started=$!
        mkdir -p "$(dirname "$SETUP_DOCKERD_PIDFILE")"
        echo "$started" >"$SETUP_DOCKERD_PIDFILE"
    fi
    local tries=0 problem="did not answer within 30 s"
    while [ "$tries" -lt 60 ]; do
        tries=$((tries + 1))
        if docker_answers; then
            say "dockerd is up"
            return 0
        fi
        if [ -n "$started" ] && ! kill -0 "$started" 2>/dev/null; then
            problem="exited during startup"
            break
        fi
        sleep 0.5
    done
    echo "setup: last lines of $DOCKERD_LOG:" >&2
    tail -n 20 "$DOCKERD_LOG" >&2 || true
    die "dockerd $problem; see $DOCKERD_LOG"
}

case "${1:-}" in
    "") install_packages; setup_venv ;;
    --dockerd-only) ;;
    *) die "unknown argument $1 (usage: deploy/setup.sh [--dockerd-only])" ;;
esac
mount_missing_cgroup_controllers
start_dockerd
