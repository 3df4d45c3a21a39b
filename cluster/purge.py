"""What a stopped cluster leaves on the host, and `skiff down --purge`, which removes it.

`skiff down` stops the daemons only: the pods' containers keep running (a restarted kubelet
adopts them, as k3s's do), and with them the tmpfs mounts that hold their Secrets under the
kubelet's root dir (DATA_DIR/kubelet). `--purge` (kind's `delete cluster`, k3s's killall and
uninstall) removes every container and network of this cluster's node, unmounts every mount
under the data directory and removes the data directory, and nothing else:

- containers and networks: those labelled with this cluster's node name (`io.skiff.node`,
  which the kubelet puts on all it creates, its pods bridge included), so another Skiff
  cluster or test on the same engine keeps its own. The docker CLI does the work: `cluster`
  never imports the kubelet or the docker SDK (import contracts).
- the pod network's iptables chains (SKIFF-FORWARD, SKIFF-POSTROUTING and the jumps to
  them), the service proxy's (SKIFF-SERVICES, SKIFF-SVC-*, ...) and the routes to other
  nodes' pods: `skiff-kubelet --cleanup-pod-network` does it, as kube-proxy's --cleanup;
  they are the host's, not one node's.
- mounts: every mount point at or below the data directory, deepest first.
- the data directory: only if it holds nothing but what `skiff up` makes there.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from cluster.components import ClusterConfig, dns_cleanup_command, kubelet_cleanup_command
from cluster.errors import ClusterError
from cluster.supervisor import Say

__all__ = ["NODE_LABEL", "Leftovers", "check_removable", "cleanup_pod_network", "leftovers",
           "mounts_under", "node_name", "purge"]

# kubelet.runtime.LABEL_NODE, which `cluster` may not import (tests/unit/cluster/test_purge.py
# checks that the two agree).
NODE_LABEL = "io.skiff.node"

# What `skiff up` and its components make in a data directory (cluster.local's layout), and
# the temporary names of files written atomically there (".<name>.tmp").
DATA_DIR_ENTRIES = frozenset({"cluster.json", "config", "etcd", "kubelet", "logs", "run",
                              "token", "pki", "scheduler.conf", "controller-manager.conf",
                              "kubelet.conf"})


def node_name(cfg: ClusterConfig) -> str:
    """The cluster's node: as given to `skiff up`, else the kubelet's default (the host name,
    lower case: kubelet.main's --node-name default)."""
    return cfg.node_name or socket.gethostname().lower()


# --- what is there --------------------------------------------------------------------------


def _docker(*args: str) -> list[str]:
    """The output lines of a docker CLI command; ClusterError when the engine cannot answer."""
    try:
        out = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise ClusterError("the docker command is not installed; it is needed to list and "
                           "remove the pods' containers") from None
    except subprocess.TimeoutExpired:
        raise ClusterError(f"docker {' '.join(args)} did not answer within 120 s") from None
    if out.returncode != 0:
        raise ClusterError(f"docker {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout.split()


def _unescape_mountinfo(path: str) -> str:
    # mountinfo writes space, tab, newline and backslash in a path as \040, \011, \012, \134.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        path = path.replace(code, char)
    return path


def mounts_under(root: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> list[str]:
    """Mount points at or below `root`, deepest and latest first (the order to unmount in:
    one entry per stacked mount)."""
    base = os.path.realpath(root)
    points = []
    for line in mountinfo.read_text(errors="surrogateescape").splitlines():
        fields = line.split()
        if len(fields) > 4:
            point = _unescape_mountinfo(fields[4])
            if point == base or point.startswith(base.rstrip("/") + "/"):
                points.append(point)
    return [p for _, p in sorted(enumerate(points), key=lambda ip: (-ip[1].count("/"), -ip[0]))]


@dataclass(frozen=True)
class Leftovers:
    """What of a stopped cluster still exists on the host."""

    node: str
    containers: list[str] = field(default_factory=list)
    running: int = 0
    networks: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    docker_problem: str = ""  # why the containers could not be listed, if they could not

    def anything(self) -> bool:
        return bool(self.containers or self.networks or self.mounts or self.docker_problem)

    def describe(self) -> str:
        """What is left, in one line, e.g. "2 containers of node n1's pods (2 running) and
        1 volume mount under /d (Secrets on tmpfs)"."""
        parts = []
        if self.containers:
            parts.append(f"{len(self.containers)} container(s) of node {self.node}'s pods "
                         f"({self.running} running)")
        if self.networks:
            parts.append(f"{len(self.networks)} network(s) of node {self.node}")
        if self.mounts:
            under = os.path.commonpath(self.mounts) if len(self.mounts) > 1 else self.mounts[0]
            parts.append(f"{len(self.mounts)} volume mount(s) (Secrets on tmpfs) at {under}")
        if self.docker_problem:
            parts.append(f"perhaps containers: they could not be listed ({self.docker_problem})")
        return " and ".join(parts)


def leftovers(data_dir: Path, node: str) -> Leftovers:
    label = f"label={NODE_LABEL}={node}"
    mounts = mounts_under(data_dir) if data_dir.exists() else []
    try:
        containers = _docker("ps", "-aq", "--no-trunc", "--filter", label)
        running = len(_docker("ps", "-q", "--filter", label))
        networks = _docker("network", "ls", "-q", "--no-trunc", "--filter", label)
    except ClusterError as err:
        return Leftovers(node, mounts=mounts, docker_problem=str(err))
    return Leftovers(node, containers, running, networks, mounts)


# --- removing it ----------------------------------------------------------------------------


def check_removable(data_dir: Path) -> None:
    """Refuses to purge a directory that holds anything `skiff up` did not make there (a
    mistyped --data-dir must not delete a home directory)."""
    if not data_dir.exists():
        return
    if not data_dir.is_dir():
        raise ClusterError(f"{data_dir} is not a directory")
    foreign = sorted(
        entry.name for entry in data_dir.iterdir()
        if entry.name not in DATA_DIR_ENTRIES
        and not (entry.name.startswith(".") and entry.name.endswith(".tmp")
                 and entry.name[1:-4] in DATA_DIR_ENTRIES))
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise ClusterError(
            f"{data_dir} holds files skiff up did not make ({shown}); is it a Skiff data "
            "directory? Nothing was removed")


def purge(data_dir: Path, node: str, say: Say, *, cluster_dns: str = "") -> None:
    """Removes the (stopped) cluster's containers, networks, mounts, its cluster DNS address
    (`cluster_dns`) and data directory.
    Raises ClusterError, before the data directory is touched, when a part cannot be
    removed."""
    check_removable(data_dir)
    label = f"label={NODE_LABEL}={node}"
    containers = _docker("ps", "-aq", "--no-trunc", "--filter", label)
    if containers:
        # -f: stopped with SIGKILL, as k3s-killall does; the daemons that would stop them
        # gracefully are gone already.
        _docker("rm", "-f", "-v", *containers)
        say(f"removed {len(containers)} container(s) of node {node}")
    networks = _docker("network", "ls", "-q", "--no-trunc", "--filter", label)
    if networks:
        _docker("network", "rm", *networks)
        say(f"removed {len(networks)} network(s) of node {node}")
    cleanup_pod_network(node, say)
    if cluster_dns:
        cleanup_cluster_dns(cluster_dns, say)
    if not data_dir.exists():
        say(f"{data_dir} does not exist; nothing else to remove")
        return
    mounts = mounts_under(data_dir)
    for point in mounts:
        _unmount(point)
    if mounts:
        say(f"unmounted {len(mounts)} volume mount(s) under {data_dir}")
    left = mounts_under(data_dir)
    if left:
        raise ClusterError(f"still mounted under {data_dir}: {', '.join(left)}; nothing "
                           "there was removed")
    shutil.rmtree(data_dir)
    say(f"removed {data_dir}")


def cleanup_pod_network(node: str, say: Say) -> None:
    """Removes the pod network's iptables chains and routes (and the node's pods bridge,
    if the label did not find it) with the kubelet's own cleanup; ClusterError when it
    cannot."""
    _run_cleanup(kubelet_cleanup_command(node_name=node), "the pod network's rules and routes",
                 say, timeout=120, quiet="nothing of the pod network's")


def cleanup_cluster_dns(address: str, say: Say) -> None:
    """Removes the cluster DNS address skiff-dns put on this host (if it did); ClusterError
    when it cannot."""
    _run_cleanup(dns_cleanup_command(address), "the cluster DNS address", say, timeout=60)


def _run_cleanup(argv: list[str], what: str, say: Say, *, timeout: float,
                 quiet: str = "") -> None:
    """A daemon's own --cleanup (kube-proxy's way): what it removed is said (but its lines
    starting with `quiet`); ClusterError when it could not remove something."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ClusterError(f"removing {what} did not finish within {timeout:.0f} s") from None
    for line in out.stdout.splitlines():
        if line.strip() and not (quiet and line.startswith(quiet)):
            say(line)
    if out.returncode != 0:
        lines = (out.stderr.strip() or out.stdout.strip()).splitlines()
        raise ClusterError(f"cannot remove {what}: "
                           f"{lines[-1] if lines else f'exit code {out.returncode}'}")


def _unmount(point: str) -> None:
    out = subprocess.run(["umount", point], capture_output=True, text=True)
    if out.returncode != 0:
        # Busy (a process still has a file open there): detach it now, the kernel frees it
        # when the last user goes; the data directory no longer reaches into it either way.
        lazy = subprocess.run(["umount", "-l", point], capture_output=True, text=True)
        if lazy.returncode != 0:
            raise ClusterError(f"cannot unmount {point}: {lazy.stderr.strip() or out.stderr}")
