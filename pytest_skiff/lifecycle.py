"""The session's cluster: made (or reused), and removed at the end whatever happens.

A cluster the session made is deleted when the session ends, also after Ctrl-C and SIGTERM
(see _Guard: the first one stops pytest, which still tears fixtures down; later ones wait for
the deletion). Only SIGKILL leaves a cluster behind; everything carries the cluster's label,
and `skiff cluster delete NAME` removes what is left.

A reused cluster (--skiff-cluster) and a kept one (--skiff-keep) are never deleted.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from cluster import multinode
from cluster.dockercli import docker, docker_ok
from cluster.errors import ClusterError
from cluster.nodeimage import build_image, image_recipe, project_recipe
from cluster.supervisor import Say
from pytest_skiff.session import SkiffCluster


@dataclass(frozen=True)
class Options:
    nodes: int
    reuse: str | None  # --skiff-cluster NAME
    keep: bool
    image: str | None
    prefix: str  # of the names of clusters the session makes


class Unavailable(Exception):
    """No cluster can be made on this machine (no engine, no node image and no way to build
    it); the fixture skips with this reason."""


def open_cluster(options: Options, workdir: Path, say: Say) -> SkiffCluster:
    if not docker_ok("info", timeout=30):
        raise Unavailable("no Docker engine answers (start dockerd; skiff_cluster needs one)")
    kubeconfig = workdir / "config"
    if options.reuse:
        return _reuse(options.reuse, kubeconfig, say)
    image = options.image or _node_image(say)
    name = f"{options.prefix}-{uuid.uuid4().hex[:6]}"
    _GUARD.enter(name)
    try:
        say(f"skiff: creating cluster {name} ({options.nodes} node(s))")
        created = multinode.create(name, options.nodes, image=image, config_path=kubeconfig,
                                   say=lambda message, err=False: say(f"skiff: {message}"))
        say(f"skiff: cluster {name} ready in {created.seconds:.1f} s")
        return SkiffCluster(name, kubeconfig=kubeconfig, nodes=created.nodes, owned=True,
                            say=say)
    except BaseException:
        with _GUARD.shield():
            multinode.delete(name, config_path=None)
        _GUARD.leave()
        raise


def close_cluster(cluster: SkiffCluster, *, keep: bool, say: Say) -> None:
    try:
        cluster.close()
    finally:
        if cluster.owned:
            try:
                if keep:
                    say(_kept_message(cluster))
                else:
                    with _GUARD.shield():
                        multinode.delete(cluster.name, config_path=None)
                    say(f"skiff: cluster {cluster.name} deleted")
            finally:
                _GUARD.leave()


def _reuse(name: str, kubeconfig: Path, say: Say) -> SkiffCluster:
    try:
        kubeconfig.write_text(multinode.get_config(name))
    except ClusterError as err:
        raise ClusterError(f"--skiff-cluster {name}: {err}") from None
    nodes = sorted(docker("container", "ls", "--filter",
                          f"label={multinode.CLUSTER_LABEL}={name}",
                          "--format", "{{.Names}}").stdout.split())
    say(f"skiff: using running cluster {name} ({len(nodes)} node(s)); it is left running")
    return SkiffCluster(name, kubeconfig=kubeconfig, nodes=nodes, owned=False, say=say)


def _node_image(say: Say) -> str:
    """This installation's node image, built first when it is not there (once, ~1 min)."""
    recipe = project_recipe()
    if image_recipe(recipe.tag) != recipe.digest:
        if os.geteuid() != 0:
            raise Unavailable(f"node image {recipe.tag} is not built and building it needs "
                              "root")
        if shutil.which("mmdebstrap") is None:
            raise Unavailable(f"node image {recipe.tag} is not built and building it needs "
                              "mmdebstrap (apt-get install mmdebstrap)")
    return build_image(recipe, say=say).tag


def _kept_message(cluster: SkiffCluster) -> str:
    return (f"skiff: cluster {cluster.name} kept (--skiff-keep). Reach it with\n"
            f"  SKIFF_CONFIG={cluster.kubeconfig} skiff get pods -A\n"
            f"  (or: skiff cluster get-config {cluster.name} > config)\n"
            f"reuse it with --skiff-cluster {cluster.name}; delete it with\n"
            f"  skiff cluster delete {cluster.name}")


class _Guard:
    """While the session owns a cluster, the first Ctrl-C or SIGTERM raises KeyboardInterrupt
    (pytest then stops and tears fixtures down, deleting the cluster: SIGTERM's default would
    end the process on the spot); later ones, and any while the cluster is being made undone
    or deleted, are only acknowledged, so that an impatient second Ctrl-C does not leave half
    a cluster behind. Signal handlers belong to the main thread: elsewhere this does nothing.
    """

    def __init__(self) -> None:
        self.name = ""
        self.previous: dict[signal.Signals, Any] = {}
        self.interrupted = False
        self.shielded = False

    def enter(self, name: str) -> None:
        if threading.current_thread() is not threading.main_thread() or self.previous:
            return
        self.name, self.interrupted, self.shielded = name, False, False
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handle)

    def leave(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}

    @contextmanager
    def shield(self) -> Iterator[None]:
        self.shielded = True
        try:
            yield
        finally:
            self.shielded = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        __tracebackhide__ = True  # pytest reports where the test was, not this line
        if self.interrupted or self.shielded:
            # Straight to the terminal: a signal handler must not re-enter pytest's writer.
            os.write(2, (f"\nskiff: {signal.Signals(signum).name}: removing cluster "
                         f"{self.name} first (SIGKILL would leave it behind; then "
                         f"`skiff cluster delete {self.name}`)\n").encode())
            return
        self.interrupted = True
        raise KeyboardInterrupt(signal.Signals(signum).name)


_GUARD = _Guard()
