# shellcheck shell=bash disable=SC2034  # (constants for the scripts that source this)
# Shared by deploy/install-server.sh and deploy/install-agent.sh (sourced, not run):
# the checks every install makes, Skiff's venv, files written only when their content
# changes, and the start of a unit. Decisions: docs/decisions/0011-install.md.
#
# Every step first looks at what is there and changes only what differs, adding a line to
# CHANGED for each change; an install that finds everything in place says so and changes
# nothing (k3s compares hashes of its binary, unit and env file the same way).
#
# The caller sets PROG (its name, for messages) and REPO (the checkout), then calls these.

SKIFF_VENV=/opt/skiff/venv
SKIFF_WHEELHOUSE=/opt/skiff/wheels    # the node image's (cluster/nodeimage.py): offline
SKIFF_ETC=/etc/skiff
SKIFF_STATE=/var/lib/skiff
SKIFF_UNIT_DIR=/etc/systemd/system
SKIFF_SERVER_UNIT=skiff-server.service
SKIFF_AGENT_UNIT=skiff-agent.service
SKIFF_DNS_UNIT=skiff-dns.service
SKIFF_DNS_SOCKET=skiff-dns.socket
SKIFF_CLUSTER_DNS=10.96.0.10          # skiff up's and skiff agent's default --cluster-dns
SKIFF_SERVER_DATA="$SKIFF_STATE/server"
SKIFF_AGENT_STATE="$SKIFF_STATE/agent"
SKIFF_COMMAND=/usr/local/bin/skiff
# A copy of deploy/uninstall.sh, so that a host can be cleaned up without the checkout.
SKIFF_UNINSTALL=/usr/local/bin/skiff-uninstall.sh
# The first lines of the command we put on PATH: uninstall.sh removes only a file with it.
SKIFF_COMMAND_MARK="# Skiff's command, installed by deploy/install-server.sh or install-agent.sh"
# The venv remembers the digest of the sources it was installed from.
SKIFF_SOURCE_STAMP="$SKIFF_VENV/.skiff-source.sha256"
# Debian packages an install needs: Python with venv, Docker (the pods' runtime), the packet
# filter, conntrack (stale UDP flows of services) and mount tools the agent uses.
SKIFF_PACKAGES=(python3 python3-venv docker.io iptables conntrack mount)

# dockerd, iptables and friends live in sbin, which a non-login root shell may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

CHANGED=()

say() { echo "$PROG: $*"; }
warn() { echo "$PROG: warning: $*" >&2; }
die() { echo "$PROG: error: $*" >&2; exit 1; }

# --- checks ---------------------------------------------------------------------------------

require_root() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (it installs into /opt/skiff, writes systemd \
units and starts them): sudo $0 ..."
}

require_systemd() {
    # systemd's own test (sd_booted): this directory exists only when it is PID 1.
    if [ ! -d /run/systemd/system ] || ! command -v systemctl >/dev/null; then
        die "systemd is not running on this host (PID 1 is $(cat /proc/1/comm 2>/dev/null \
|| echo unknown)); these scripts install systemd units. Without systemd, run Skiff by hand: \
skiff up (server) or skiff join, then skiff agent"
    fi
}

require_checkout() {
    if [ ! -f "$REPO/pyproject.toml" ] || [ ! -d "$REPO/skiff" ]; then
        die "$REPO is not a Skiff checkout (no pyproject.toml and skiff/); run the script \
from the checkout it came with"
    fi
}

# The other role's unit on this host: a host is a server (which runs its own node) or an
# agent, not both.
refuse_other_role() {
    local other=$1 what=$2
    if [ -e "$SKIFF_UNIT_DIR/$other" ]; then
        die "this host already runs $what ($other); a host is either the server (which is a \
node too) or an agent. To change its role, first run deploy/uninstall.sh"
    fi
}

is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

# Debian's packages that are missing, from the configured archive (the only network an
# install needs besides PyPI, and none at all on a host that has them).
install_packages() {
    local missing=() p
    command -v dpkg-query >/dev/null || die "not a Debian host (no dpkg-query); install \
${SKIFF_PACKAGES[*]} by hand"
    for p in "${SKIFF_PACKAGES[@]}"; do
        is_installed "$p" || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    say "installing Debian packages: ${missing[*]}"
    {
        DEBIAN_FRONTEND=noninteractive apt-get update -q \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
    } >&2 || die "apt-get install ${missing[*]} failed"
    CHANGED+=("Debian packages ${missing[*]}")
}

# Docker must answer: the agent runs the pods' containers there.
require_docker() {
    if docker info >/dev/null 2>&1; then
        return 0
    fi
    say "starting docker.service"
    systemctl enable --now docker.service >/dev/null 2>&1 || true
    local tries=0
    until docker info >/dev/null 2>&1; do
        tries=$((tries + 1))
        [ "$tries" -lt 60 ] || die "Docker does not answer (docker info); see: journalctl -u \
docker.service"
        sleep 0.5
    done
    CHANGED+=("started docker.service")
}

# --- Skiff in its venv ----------------------------------------------------------------------

# What pip installs from the checkout: pyproject.toml, README.md (its readme) and the
# top-level Python packages (the directories with an __init__.py, which is what setuptools'
# packages.find includes).
source_paths() {
    local d
    echo pyproject.toml
    echo README.md
    for d in "$REPO"/*/; do
        d=${d%/}
        if [ -f "$d/__init__.py" ]; then
            basename "$d"
        fi
    done
}

source_digest() {
    local paths
    mapfile -t paths < <(source_paths)
    (cd "$REPO" && find "${paths[@]}" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' \
        -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

# Installs Skiff from the checkout into /opt/skiff/venv, unless the venv holds these very
# sources already. Offline from the wheelhouse when there is one, else from PyPI.
install_skiff() {
    local digest
    digest=$(source_digest)
    if [ -x "$SKIFF_VENV/bin/skiff" ] && [ "$(cat "$SKIFF_SOURCE_STAMP" 2>/dev/null)" = "$digest" ]
    then
        say "Skiff in $SKIFF_VENV is this checkout's: unchanged"
        return 0
    fi
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "Skiff needs Python 3.11 or newer; python3 is $(python3 --version 2>&1)"
    if [ ! -x "$SKIFF_VENV/bin/python" ]; then
        mkdir -p "$(dirname "$SKIFF_VENV")"
        python3 -m venv "$SKIFF_VENV" || die "python3 -m venv $SKIFF_VENV failed"
    fi
    local from=() where="PyPI"
    if [ -d "$SKIFF_WHEELHOUSE" ]; then
        from=(--no-index --find-links "$SKIFF_WHEELHOUSE")
        where="the wheelhouse $SKIFF_WHEELHOUSE, offline"
        # Build in the venv itself, with the build requirements the wheelhouse has: pip's
        # isolated build environment would install them again, a second or so each time.
        if "$SKIFF_VENV/bin/pip" install --quiet --disable-pip-version-check "${from[@]}" \
                'setuptools>=68' wheel >/dev/null 2>&1; then
            from+=(--no-build-isolation)
        fi
    fi
    # A copy of just the sources: pip builds in the tree it is given (build/, *.egg-info),
    # which would leave files in the checkout, and stale ones in build/ could be packaged.
    local build
    build=$(mktemp -d /tmp/skiff-install.XXXXXX)
    # shellcheck disable=SC2064  # expand now: the path is fixed
    trap "rm -rf '$build'" EXIT
    local paths
    mapfile -t paths < <(source_paths)
    tar -C "$REPO" -c --exclude=__pycache__ --exclude='*.pyc' "${paths[@]}" | tar -x -C "$build"
    say "installing Skiff into $SKIFF_VENV from $where"
    local log="$build.log"
    if ! "$SKIFF_VENV/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir \
            "${from[@]}" "$build" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        die "pip could not install Skiff into $SKIFF_VENV (its output is above)"
    fi
    rm -rf "$log" "$build"
    trap - EXIT
    echo "$digest" >"$SKIFF_SOURCE_STAMP"
    local version
    version=$("$SKIFF_VENV/bin/skiff" version --client 2>/dev/null | sed -n 's/^Client Version: //p')
    CHANGED+=("Skiff ${version:-(version unknown)} in $SKIFF_VENV")
}

# /usr/local/bin/skiff: the venv's command on PATH. On the server it uses the cluster's
# admin config unless $SKIFF_CONFIG or ~/.skiff/config says otherwise (as k3s's kubectl
# reads /etc/rancher/k3s/k3s.yaml).
install_command() {
    if [ -e "$SKIFF_COMMAND" ] && ! grep -qF "$SKIFF_COMMAND_MARK" "$SKIFF_COMMAND"; then
        warn "$SKIFF_COMMAND exists and is not ours: left alone (Skiff's command is \
$SKIFF_VENV/bin/skiff)"
        return 0
    fi
    write_file "$SKIFF_COMMAND" 755 <<EOF
#!/bin/sh
$SKIFF_COMMAND_MARK
# (deploy/uninstall.sh removes it). Runs Skiff from $SKIFF_VENV; on the server, with the
# cluster's admin config unless \$SKIFF_CONFIG or ~/.skiff/config says otherwise.
if [ -z "\${SKIFF_CONFIG:-}" ] && [ ! -e "\${HOME:-/root}/.skiff/config" ] \\
        && [ -r $SKIFF_SERVER_DATA/config ]; then
    SKIFF_CONFIG=$SKIFF_SERVER_DATA/config
    export SKIFF_CONFIG
fi
exec $SKIFF_VENV/bin/skiff "\$@"
EOF
}

install_uninstaller() {
    write_file "$SKIFF_UNINSTALL" 755 <"$REPO/deploy/uninstall.sh"
}

# --- files ----------------------------------------------------------------------------------

# write_file PATH MODE < CONTENT: writes PATH (atomically, with MODE, owned by root) only
# when its content or mode differs; records the change.
write_file() {
    local path=$1 mode=$2 content
    content=$(cat; echo x)   # the x keeps trailing newlines through $( )
    content=${content%x}
    if [ -f "$path" ] && [ "$(stat -c %a "$path")" = "$mode" ] \
            && [ "$(cat "$path"; echo x)" = "${content}x" ]; then
        return 0
    fi
    mkdir -p "$(dirname "$path")"
    local tmp
    tmp=$(mktemp "$(dirname "$path")/.$(basename "$path").XXXXXX")
    chmod "$mode" "$tmp"
    printf '%s' "$content" >"$tmp"
    mv -f "$tmp" "$path"
    CHANGED+=("$path")
}

# An env file line KEY=VALUE that systemd reads back as VALUE: double quotes around it,
# with \ and " escaped.
env_line() {
    local value=$2
    value=${value//\\/\\\\}
    value=${value//\"/\\\"}
    printf '%s="%s"\n' "$1" "$value"
}

# Refuses a value that would not survive systemd's unit and env file syntax unchanged.
plain_value() {
    case "$2" in
        *[[:space:]\"\'\\\$%]*|"") die "$1 \"$2\": must not be empty nor contain spaces, \
quotes, backslashes, \$ or %" ;;
    esac
}

# --- the unit -------------------------------------------------------------------------------

# start_unit UNIT: enabled, and (re)started when this run changed anything (its unit, env
# file, Skiff's venv, its credentials) or when it is not running; otherwise left alone.
start_unit() {
    local unit=$1
    if [ "${#CHANGED[@]}" -gt 0 ]; then
        systemctl daemon-reload
    fi
    if ! systemctl is-enabled --quiet "$unit" 2>/dev/null; then
        systemctl enable --quiet "$unit"
        CHANGED+=("enabled $unit")
    fi
    if [ "${#CHANGED[@]}" -gt 0 ]; then
        say "starting $unit"
        systemctl reset-failed "$unit" 2>/dev/null || true
        systemctl restart "$unit"
    elif ! systemctl is-active --quiet "$unit"; then
        say "$unit was not running: starting it"
        systemctl reset-failed "$unit" 2>/dev/null || true
        systemctl start "$unit"
        CHANGED+=("started $unit")
    fi
    STARTED_RESTARTS=$(systemctl show --property NRestarts --value "$unit")
}

# unit_failing UNIT: whether the unit gave up, or systemd had to restart it since
# start_unit (re)started it; prints its last log lines if so.
unit_failing() {
    local unit=$1 state restarts
    state=$(systemctl show --property ActiveState --value "$unit")
    restarts=$(systemctl show --property NRestarts --value "$unit")
    if [ "$state" = failed ] || [ "${restarts:-0}" -gt "${STARTED_RESTARTS:-0}" ]; then
        echo "$PROG: $unit is $state after $((${restarts:-0} - ${STARTED_RESTARTS:-0})) \
restart(s); its last log lines:" >&2
        journalctl --no-pager -n 25 -u "$unit" >&2 || true
        return 0
    fi
    return 1
}

# wait_until SECONDS WHAT COMMAND...: runs COMMAND every half second until it succeeds;
# dies naming WHAT after SECONDS, or as soon as UNIT ($WAIT_UNIT) is failing.
wait_until() {
    local seconds=$1 what=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        if [ -n "${WAIT_UNIT:-}" ] && unit_failing "$WAIT_UNIT"; then
            die "$WAIT_UNIT does not start (see above)"
        fi
        [ "$SECONDS" -lt "$deadline" ] || die "$what: not within ${seconds} s; see: \
journalctl -u ${WAIT_UNIT:-skiff-*}"
        sleep 0.5
    done
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The last line of an install: what changed, or that nothing did.
report_changes() {
    if [ "${#CHANGED[@]}" -eq 0 ]; then
        say "nothing changed: $1 was installed and running as asked"
    else
        local changed
        changed=$(printf '%s; ' "${CHANGED[@]}")
        say "changed: ${changed%; }"
    fi
}
