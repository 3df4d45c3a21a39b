"""The single-machine cluster of `skiff up` and `skiff down`, all in one data directory.

`up` starts the control plane as child processes, one component after another, each only once
the previous one is ready: etcd, the apiserver, the scheduler, the controller manager and the
kubelet (one line each in `cluster.components.cluster_components`), and supervises them
(cluster.supervisor: a component that dies is started again), in the foreground or, with
`-d`, from a supervisor in the background (cluster.detached). On a partly running cluster it
keeps what runs and starts what is missing. `down` stops what an `up` started, in reverse
order, and says what stays (the pods' containers and their volume mounts); `down --purge`
removes those too, and the data directory (cluster.purge).

Layout of the data directory (default ~/.skiff):
    cluster.json     the cluster's settings (ports, node name) as the last `up` was given them
    etcd/            etcd's data
    kubelet/         the kubelet's root dir: pods' volumes (Secrets on tmpfs mounts)
    logs/<name>.log  each component's stdout and stderr; logs/skiff-up.log the supervisor's
    run/<name>.pid   PID of each running component (and run/<name>.json: cluster.records)
    token            the bearer token the apiserver accepts (0600)
    config           client config: server and token (the default client config path)
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from cluster import purge as purging
from cluster.certs import host_addresses
from cluster.components import ClusterConfig, cluster_components, ports_in_use
from cluster.detached import start_detached
from cluster.errors import ClusterError
from cluster.etcd import find_etcd
from cluster.records import STOP_GRACE_SECONDS, RunDir, stop_recorded, wait_gone
from cluster.supervisor import (
    SUPERVISOR,
    Say,
    SupervisorLog,
    kept_components,
    say,
    stop_signals,
    supervise,
)

__all__ = ["DEFAULT_CLIENT_CONFIG", "DEFAULT_DATA_DIR", "SUPERVISOR", "data_dir_flag", "down",
           "supervisor_log", "up", "write_credentials"]

DEFAULT_DATA_DIR = "~/.skiff"
DEFAULT_CLIENT_CONFIG = "~/.skiff/config"


# --- files the clients need -----------------------------------------------------------------


def write_credentials(cfg: ClusterConfig) -> None:
    """The cluster's certificates and every client's config (cluster.certs)."""
    cfg.pki.ensure_local_cluster(node_name=cfg.node_name or socket.gethostname().lower(),
                                 node_ips=host_addresses(), server=cfg.server,
                                 configs=cfg.client_configs())


def data_dir_flag(data_dir: Path) -> str:
    """What a command needs to name `data_dir` ("" for the default one), for hints."""
    return "" if data_dir == Path(DEFAULT_DATA_DIR).expanduser().absolute() \
        else f" --data-dir {data_dir}"


def supervisor_log(cfg: ClusterConfig) -> Path:
    return cfg.logs / f"{SUPERVISOR}.log"


# --- up -------------------------------------------------------------------------------------


def up(
    cfg: ClusterConfig,
    *,
    detach: bool,
    started: Callable[[ClusterConfig], None] = lambda cfg: None,
    say: Say = say,
) -> int:
    """Start the cluster described by `cfg`, or what of it is not running; returns an exit code.

    `started(cfg)` runs once every component is ready. Detached, `up` returns then and a
    supervisor in the background keeps the components running; otherwise `up` supervises
    them itself until SIGINT, SIGTERM or SIGHUP and stops them in reverse order. Raises
    ClusterError when the cluster cannot start (after stopping what had started)."""
    run_dir = RunDir(cfg.run_dir)
    supervisor = run_dir.get(SUPERVISOR)
    if supervisor is not None and supervisor.is_alive():
        raise ClusterError(
            f"skiff is already running from {cfg.data_dir}, supervised by skiff up (pid "
            f"{supervisor.pid}); see skiff status, or stop it with skiff down")
    etcd_binary, etcd_description = find_etcd()
    specs = cluster_components(cfg, etcd_binary)
    kept = kept_components(run_dir, specs)
    busy = ports_in_use(cfg, running=list(kept))
    if busy:
        raise ClusterError(
            f"port(s) already in use on 127.0.0.1: {', '.join(busy)}; stop what listens there "
            "or choose others with --port / --etcd-port / --kubelet-port"
        )

    cfg.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    cfg.logs.mkdir(exist_ok=True)
    write_credentials(cfg)
    cfg.save()
    say(f"etcd: {etcd_description}")

    if detach:
        start_detached(cfg, etcd_binary, supervisor_log(cfg), say)
        started(cfg)
        return 0
    stop_requested = threading.Event()
    with stop_signals(stop_requested):
        supervise(run_dir, specs, stop_requested, SupervisorLog(supervisor_log(cfg), echo=say),
                  on_ready=lambda: started(cfg))
    return 0


# --- down -----------------------------------------------------------------------------------


def down(data_dir: Path, *, purge: bool = False, say: Say = say) -> None:
    """Stop what `up` started from `data_dir`, in reverse order: through the supervising `up`
    when one runs, else each recorded process that is still ours. Then say what keeps
    running (the pods' containers, their volume mounts) or, with `purge`, remove that and the
    data directory."""
    cfg = ClusterConfig.load(data_dir)
    if purge:
        purging.check_removable(data_dir)  # before stopping anything: refuse early
    if not _stop_processes(RunDir(cfg.run_dir), say):
        say("nothing running")
    node = purging.node_name(cfg)
    if purge:
        purging.purge(data_dir, node, say, cluster_dns=cfg.cluster_dns)
        return
    left = purging.leftovers(data_dir, node)
    if left.anything():
        say(f"Still on this host: {left.describe()}.\n"
            "They stay for the next skiff up (its kubelet adopts the pods). To remove them "
            f"and the cluster's data ({data_dir}): skiff down --purge{data_dir_flag(data_dir)}")


def _stop_processes(run_dir: RunDir, say: Say) -> bool:
    """Stops the recorded processes; True when anything was running."""
    records = run_dir.records()
    supervisor = next((r for r in records if r.name == SUPERVISOR), None)
    anything = False
    if supervisor is not None and supervisor.is_alive():
        anything = True
        # The supervising `skiff up` owns the components: let it stop them in order.
        say(f"asking skiff up (pid {supervisor.pid}) to stop the cluster")
        with contextlib.suppress(ProcessLookupError):
            os.kill(supervisor.pid, signal.SIGTERM)
        components = sum(1 for r in records if r.name != SUPERVISOR)
        if not wait_gone(supervisor.is_alive, (STOP_GRACE_SECONDS + 5) * max(components, 1)):
            say(f"skiff up (pid {supervisor.pid}) did not finish; stopping directly")
            # First the supervisor, so that it restarts nothing we stop.
            stop_recorded(supervisor, grace=1.0)
        records = run_dir.records()
    run_dir.forget(SUPERVISOR)
    for rec in reversed(records):
        if rec.name == SUPERVISOR:
            continue
        outcome = stop_recorded(rec)
        run_dir.forget(rec.name)
        if outcome != "not running":
            anything = True
            say(f"{rec.name} (pid {rec.pid}): {outcome}")
    return anything
