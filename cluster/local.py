"""The single-machine cluster of `skiff up` and `skiff down`, all in one data directory.

`up` starts the control plane as child processes, one component after another, each only once
the previous one is ready: etcd, the apiserver, the scheduler, the controller manager and the
kubelet (one line each in `cluster.components.cluster_components`); `down` stops what an `up`
started, in reverse order.

Layout of the data directory (default ~/.skiff):
    etcd/            etcd's data
    logs/<name>.log  each component's stdout and stderr
    run/<name>.pid   PID of each running component (and run/<name>.json: how to recognise it)
    token            the bearer token the apiserver accepts (0600)
    config           client config: server and token (the default client config path)
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from cluster.components import ClusterConfig, ComponentSpec, cluster_components, ports_in_use
from cluster.errors import ClusterError
from cluster.etcd import find_etcd
from cluster.supervisor import (
    STOP_GRACE_SECONDS,
    RunDir,
    Say,
    Supervisor,
    died_message,
    proc_cmdline,
    say,
    stop_recorded,
    stop_signals,
    wait_gone,
)
from skiff.client.config import ClientConfig

__all__ = ["DEFAULT_CLIENT_CONFIG", "DEFAULT_DATA_DIR", "SUPERVISOR", "down", "ensure_token",
           "refuse_if_running", "up", "write_client_config"]

DEFAULT_DATA_DIR = "~/.skiff"
DEFAULT_CLIENT_CONFIG = "~/.skiff/config"
# The foreground `skiff up` records itself too, so `skiff down` from another terminal asks
# it to stop the cluster in order instead of pulling processes out from under it.
SUPERVISOR = "skiff-up"


# --- files the clients need -----------------------------------------------------------------


def ensure_token(path: Path) -> str:
    """The apiserver's bearer token: one line in a 0600 file, made once and then kept."""
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32) + "\n")
    token = path.read_text().strip()
    if not token:
        raise ClusterError(
            f"{path} is empty: remove it and run skiff up again to make a new token")
    return token


def write_client_config(cfg: ClusterConfig, token: str) -> None:
    ClientConfig(server=cfg.server, token=token).save(cfg.client_config)


# --- up and down ----------------------------------------------------------------------------


def refuse_if_running(run_dir: RunDir) -> None:
    for rec in run_dir.records():
        if rec.is_alive():
            raise ClusterError(
                f"skiff is already running from {run_dir.path.parent} ({rec.name}, pid "
                f"{rec.pid}); use skiff down"
            )
        run_dir.forget(rec.name)  # stale: its process is gone


def up(
    cfg: ClusterConfig,
    *,
    detach: bool,
    started: Callable[[ClusterConfig], None] = lambda cfg: None,
    say: Say = say,
) -> int:
    """Start the cluster described by `cfg`; returns an exit code.

    `started(cfg)` runs once every component is ready. Detached, `up` returns then and the
    components keep running; otherwise it supervises them until SIGINT, SIGTERM or SIGHUP (or
    until one dies: exit code 1) and stops them in reverse order. Raises ClusterError when
    the cluster cannot start (after stopping what had started)."""
    run_dir = RunDir(cfg.run_dir)
    refuse_if_running(run_dir)
    busy = ports_in_use(cfg)
    if busy:
        raise ClusterError(
            f"port(s) already in use on 127.0.0.1: {', '.join(busy)}; stop what listens there "
            "or choose others with --port / --etcd-port"
        )
    etcd_binary, etcd_description = find_etcd()

    cfg.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    cfg.logs.mkdir(exist_ok=True)
    token = ensure_token(cfg.token_file)
    write_client_config(cfg, token)
    say(f"etcd: {etcd_description}")

    stop_requested = threading.Event()
    supervisor = Supervisor(run_dir, stop_requested, say)
    with stop_signals(stop_requested):
        if not detach:
            run_dir.record(SUPERVISOR, os.getpid(), proc_cmdline(os.getpid()) or [], 0, Path())
        try:
            if not _start_all(supervisor, cluster_components(cfg, etcd_binary), say):
                supervisor.stop_all()
                return 0
            started(cfg)
            if detach:
                return 0
            return _supervise(supervisor, stop_requested, say)
        except BaseException:
            supervisor.stop_all()
            raise
        finally:
            if not detach:
                run_dir.forget(SUPERVISOR)


def _start_all(supervisor: Supervisor, components: list[ComponentSpec], say: Say) -> bool:
    for spec in components:
        say(f"starting {spec.name} (log {spec.log_file})")
        if not supervisor.wait_ready(supervisor.start(spec)):
            say("interrupted during startup, stopping")
            return False
    return True


def _supervise(supervisor: Supervisor, stop_requested: threading.Event, say: Say) -> int:
    while not stop_requested.wait(0.5):
        dead = supervisor.first_dead()
        if dead is not None:
            code = dead.proc.returncode
            say(f"error: {died_message(dead.spec, code)}", err=True)
            say(dead.log_tail(), err=True)
            say("stopping the other components")
            supervisor.stop_all()
            return 1
    say("stopping")
    supervisor.stop_all()
    return 0


def down(data_dir: Path, *, say: Say = say) -> None:
    """Stop what `up` started from `data_dir`, in reverse order: through a foreground `up`
    when one supervises the cluster, else each recorded process that is still ours."""
    run_dir = RunDir(data_dir / "run")
    records = run_dir.records()
    supervisor = next((r for r in records if r.name == SUPERVISOR), None)
    anything = False
    if supervisor is not None and supervisor.is_alive():
        anything = True
        # A foreground `skiff up` owns the components: let it stop them in order.
        say(f"asking skiff up (pid {supervisor.pid}) to stop the cluster")
        with contextlib.suppress(ProcessLookupError):
            os.kill(supervisor.pid, signal.SIGTERM)
        components = sum(1 for r in records if r.name != SUPERVISOR)
        if not wait_gone(supervisor.is_alive, (STOP_GRACE_SECONDS + 5) * max(components, 1)):
            say(f"skiff up (pid {supervisor.pid}) did not finish; stopping directly")
        records = run_dir.records()
    for rec in reversed(records):
        if rec.name == SUPERVISOR:
            run_dir.forget(rec.name)
            continue
        outcome = stop_recorded(rec)
        run_dir.forget(rec.name)
        if outcome != "not running":
            anything = True
            say(f"{rec.name} (pid {rec.pid}): {outcome}")
    if not anything:
        say("nothing running")
