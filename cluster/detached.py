"""`skiff up -d`: the cluster's supervisor as a process in the background.

`start_detached` (in the `skiff up -d` a user runs) starts `python -m cluster.detached` in a
session of its own, with its output in logs/skiff-up.log, and relays what it reports over a
pipe (each component starting, then "ready" or the error) until the cluster is up; then it
returns and the background supervisor stays, recorded in run/ as `skiff-up` as a foreground
`skiff up` is: it restarts a component that dies, and `skiff down` asks it to stop the
cluster in order.

A child process rather than a fork: the supervisor starts from a clean interpreter (no
threads, no gRPC state inherited), and its command line says what it is.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from cluster.components import ClusterConfig, cluster_components
from cluster.errors import ClusterError
from cluster.process import log_tail
from cluster.records import RunDir
from cluster.supervisor import (
    SUPERVISOR,
    Say,
    SupervisorLog,
    exit_description,
    stop_signals,
    supervise,
)

__all__ = ["main", "start_detached"]


def start_detached(cfg: ClusterConfig, etcd_binary: str, log_file: Path, say: Say) -> int:
    """Starts the background supervisor of `cfg`'s cluster and waits until the cluster is up;
    returns the supervisor's PID. Raises ClusterError when it cannot start the cluster (it
    has then stopped what it had started, and exited)."""
    read_end, write_end = os.pipe()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    offset = log_file.stat().st_size if log_file.exists() else 0
    try:
        with log_file.open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cluster.detached", "--data-dir", str(cfg.data_dir),
                 "--etcd", etcd_binary, "--report-fd", str(write_end)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                pass_fds=(write_end,),
                # No terminal, no signals from it: it outlives this `skiff up -d`.
                start_new_session=True,
            )
    finally:
        os.close(write_end)  # the child's copy is the only one: EOF when it goes
    say(f"supervisor: skiff up in the background (pid {proc.pid}, log {log_file})")
    try:
        with os.fdopen(read_end) as reports:
            for line in reports:
                report = json.loads(line)
                if "say" in report:
                    say(report["say"], err=bool(report.get("err")))
                elif "ready" in report:
                    return proc.pid
                elif "error" in report:
                    proc.wait(30)
                    raise ClusterError(str(report["error"]))
    except KeyboardInterrupt:
        proc.terminate()  # it stops what it had started, in order
        proc.wait()
        raise
    code = proc.wait()
    tail = log_tail(log_file, 15, since=offset)
    raise ClusterError(
        f"the background skiff up (pid {proc.pid}) {exit_description(code)} before the cluster "
        f"was up; see {log_file}" + (f"\n{tail}" if tail else ""))


class _Reports:
    """The background side of the pipe: JSON lines until "ready" or "error", then closed.
    A `skiff up -d` that went away (Ctrl-C, closed terminal) only ends the reports."""

    def __init__(self, fd: int) -> None:
        self._pipe = os.fdopen(fd, "w") if fd >= 0 else None
        self._lock = threading.Lock()

    def _send(self, report: dict[str, object], last: bool = False) -> None:
        with self._lock:
            if self._pipe is None:
                return
            with contextlib.suppress(OSError, ValueError):
                self._pipe.write(json.dumps(report) + "\n")
                self._pipe.flush()
            if last:
                with contextlib.suppress(OSError):
                    self._pipe.close()
                self._pipe = None

    def say(self, message: str, *, err: bool = False) -> None:
        self._send({"say": message, "err": err})

    def ready(self) -> None:
        self._send({"ready": True}, last=True)

    def error(self, message: str) -> None:
        self._send({"error": message}, last=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster.detached",
                                     description="the background supervisor of skiff up -d")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--etcd", required=True, help="the etcd binary skiff up chose")
    parser.add_argument("--report-fd", type=int, default=-1)
    args = parser.parse_args(argv)
    cfg = ClusterConfig.load(Path(args.data_dir))
    reports = _Reports(args.report_fd)
    log_path = cfg.logs / f"{SUPERVISOR}.log"
    log = SupervisorLog(log_path, echo=reports.say)
    stop_requested = threading.Event()
    with stop_signals(stop_requested):
        try:
            supervise(RunDir(cfg.run_dir), cluster_components(cfg, args.etcd), stop_requested,
                      log, on_ready=reports.ready)
        except ClusterError as err:
            SupervisorLog(log_path)(f"error: {err}", err=True)
            reports.error(str(err))
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
