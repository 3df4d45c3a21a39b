"""The session's cluster: made (or reused), and removed at the end whatever happens.

A cluster the session made is deleted when the session ends, also after Ctrl-C (pytest
turns it into KeyboardInterrupt and still tears fixtures down) and SIGTERM (turned into
KeyboardInterrupt here while such a cluster exists, so it takes the same path). While the
cluster is being removed, further Ctrl-C and SIGTERM are only acknowledged: an impatient
second Ctrl-C must not leave half a cluster behind. Only SIGKILL can; everything carries the
cluster's label, and `skiff cluster delete NAME` removes what is left.

A reused cluster (--skiff-cluster) and a kept one (--skiff-keep) are never deleted.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
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
    _TERM_AS_INTERRUPT.enter()
    try:
        say(f"skiff: creating cluster {name} ({options.nodes} node(s))")
        created = multinode.create(name, options.nodes, image=image, config_path=kubeconfig,
                                   say=lambda message, err=False: say(f"skiff: {message}"))
        say(f"skiff: cluster {name} ready in {created.seconds:.1f} s")
        return SkiffCluster(name, kubeconfig=kubeconfig, nodes=created.nodes, owned=True,
                            say=say)
    except BaseException:
        with _shielded(say, f"removing cluster {name}"):
            multinode.delete(name, config_path=None)
        _TERM_AS_INTERRUPT.leave()
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
                    with _shielded(say, f"deleting cluster {cluster.name}"):
                        multinode.delete(cluster.name, config_path=None)
                    say(f"skiff: cluster {cluster.name} deleted")
            finally:
                _TERM_AS_INTERRUPT.leave()


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


class _TermAsInterrupt:
    """SIGTERM raises KeyboardInterrupt while the session owns a cluster, so that pytest
    tears fixtures down (deleting it) instead of dying on the spot."""

    def __init__(self) -> None:
        self.depth = 0
        self.previous: Any = None

    def enter(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if self.depth == 0:
            self.previous = signal.signal(signal.SIGTERM, _interrupt)
        self.depth += 1

    def leave(self) -> None:
        if self.depth == 0 or threading.current_thread() is not threading.main_thread():
            return
        self.depth -= 1
        if self.depth == 0:
            signal.signal(signal.SIGTERM, self.previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


_TERM_AS_INTERRUPT = _TermAsInterrupt()


@contextmanager
def _shielded(say: Say, what: str) -> Iterator[None]:
    """Runs the block with Ctrl-C and SIGTERM only acknowledged (main thread only: signal
    handlers cannot be set elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def acknowledge(signum: int, frame: FrameType | None) -> None:
        say(f"skiff: {what}; wait a moment (a signal now would leave part of it behind)")

    previous: dict[signal.Signals, Callable[..., Any] | int | None] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, acknowledge)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
