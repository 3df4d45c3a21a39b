"""`skiff status` reads run/ and logs/: each component's PID, state, uptime, restarts, how
it last ended, and the last lines of its log and of the supervisor's."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from cli.commands.status import render
from cluster.components import ClusterConfig
from cluster.errors import ClusterError
from cluster.records import ProcessRecord, RunDir, proc_cmdline
from cluster.status import cluster_status
from cluster.supervisor import SUPERVISOR


def test_no_cluster_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match=r"no cluster in .*: start one with skiff up"):
        cluster_status(tmp_path / "none")


def test_each_component_with_its_state_restarts_and_log(tmp_path: Path) -> None:
    cfg = ClusterConfig(tmp_path, port=7000)
    cfg.save()
    run_dir = RunDir(cfg.run_dir)
    cfg.logs.mkdir()
    (cfg.logs / "apiserver.log").write_text("one\ntwo\nthree\n")
    (cfg.logs / f"{SUPERVISOR}.log").write_text("apiserver (pid 1) was killed by signal 9\n")
    me = os.getpid()
    # This test's process stands in for the supervisor and etcd: both "run".
    argv = proc_cmdline(me) or []
    run_dir.save(ProcessRecord.of(SUPERVISOR, me, argv, 0, cfg.logs / "skiff-up.log"))
    run_dir.save(ProcessRecord.of("etcd", me, argv, 1, cfg.logs / "etcd.log", restarts=2,
                                  last_exit="exited with code 1 at 10:00:00"))
    gone = subprocess.Popen(["true"])
    gone.wait()
    run_dir.save(ProcessRecord.of("apiserver", gone.pid, ["x"], 2, cfg.logs / "apiserver.log",
                                  restarts=1, last_exit="killed by signal 9 at 10:00:01",
                                  restart_at=time.time() + 4))
    status = cluster_status(tmp_path, lines=2)
    by_name = {c.name: c for c in status.components}
    assert status.server == "127.0.0.1:7000" and status.supervisor.running
    assert by_name["etcd"].pid == me and by_name["etcd"].running
    assert by_name["etcd"].uptime is not None and by_name["etcd"].restarts == 2
    assert by_name["apiserver"].pid is None and by_name["apiserver"].state in (
        "restarting in 3 s", "restarting in 4 s")
    assert by_name["apiserver"].log_tail == "two\nthree"
    assert by_name["scheduler"].state == "stopped"
    assert not status.healthy
    text = render(status, 2)
    assert "killed by signal 9 at 10:00:01" in text and "skiff-up.log <==" in text
    assert "apiserver (pid 1) was killed by signal 9" in text
