"""`skiff status`: what runs of a data directory's cluster, read from run/ and logs/.

For each component (and the supervising `skiff up`): its PID, state, uptime, how often the
supervisor restarted it and how it last ended, and the last lines of its log, where the
supervisor's log says when each death and restart happened.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from cluster.components import ClusterConfig, cluster_components
from cluster.errors import ClusterError
from cluster.process import log_tail
from cluster.records import ProcessRecord, RunDir
from cluster.supervisor import SUPERVISOR

__all__ = ["ClusterStatus", "ComponentStatus", "cluster_status"]


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None  # None when it does not run
    state: str  # "running", "restarting in N s", "stopped", "not ours (...)"
    uptime: float | None
    restarts: int
    last_exit: str
    log_file: Path
    log_tail: str

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class ClusterStatus:
    data_dir: Path
    server: str
    supervisor: ComponentStatus
    components: list[ComponentStatus]

    @property
    def healthy(self) -> bool:
        """Every component runs, under a supervisor."""
        return self.supervisor.running and all(c.running for c in self.components)


def _state(rec: ProcessRecord | None, supervised: bool) -> tuple[str, int | None]:
    if rec is None or rec.pid <= 0:
        return "stopped", None
    identity = rec.identity()
    if identity == "same":
        return "running", rec.pid
    if identity == "changed":
        return "not ours (its PID now runs something else)", None
    if rec.restart_at is not None and supervised:
        return f"restarting in {max(0, round(rec.restart_at - time.time()))} s", None
    return "not running", None


def _component(name: str, rec: ProcessRecord | None, log_file: Path, lines: int,
               supervised: bool) -> ComponentStatus:
    state, pid = _state(rec, supervised)
    return ComponentStatus(
        name=name, pid=pid, state=state,
        uptime=rec.uptime() if rec is not None and pid is not None else None,
        restarts=rec.restarts if rec is not None else 0,
        last_exit=rec.last_exit if rec is not None else "",
        log_file=log_file,
        log_tail=log_tail(log_file, lines) if lines > 0 else "")


def cluster_status(data_dir: Path, lines: int = 5) -> ClusterStatus:
    """The cluster of `data_dir` as its run/ and logs/ describe it; `lines` of each log."""
    cfg = ClusterConfig.load(data_dir)
    if not cfg.saved_file.exists() and not cfg.run_dir.exists():
        raise ClusterError(f"no cluster in {data_dir}: start one with skiff up"
                           + ("" if data_dir.exists() else " (no such directory)"))
    records = {r.name: r for r in RunDir(cfg.run_dir).records()}
    supervisor = _component(SUPERVISOR, records.get(SUPERVISOR),
                            cfg.logs / f"{SUPERVISOR}.log", lines, supervised=False)
    # The names and logs of the components; the binary does not matter here.
    components = [
        _component(spec.name, records.get(spec.name), spec.log_file, lines,
                   supervised=supervisor.running)
        for spec in cluster_components(cfg, "etcd")]
    return ClusterStatus(data_dir, cfg.server, supervisor, components)
