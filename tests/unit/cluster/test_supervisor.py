"""The supervisor of `skiff up` keeps components running: a component that dies is started
again after a back-off (1 s doubling to 30 s), its record says how it ended and how often it
was restarted, and one kept from an earlier `skiff up` (not our child) is watched the same
way. Real processes (`sleep`), a fake clock for the back-off."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.components import ComponentSpec
from cluster.errors import ClusterError
from cluster.records import ProcessRecord, RunDir
from cluster.supervisor import Running, Supervisor, _start_in_order, kept_components
from skiff.client.clock import FakeClock


def sleeper(tmp_path: Path, name: str = "worker") -> ComponentSpec:
    return ComponentSpec(name=name, argv=["sleep", "300"], log_file=tmp_path / f"{name}.log",
                         ready=None)


def kill_and_reap(running_pid: int, proc: subprocess.Popen[bytes] | None) -> None:
    os.kill(running_pid, signal.SIGKILL)
    if proc is not None:
        proc.wait(5)
    else:
        deadline = time.monotonic() + 5
        while Path(f"/proc/{running_pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    sup = Supervisor(RunDir(tmp_path / "run"), threading.Event(), lambda *a, **k: None,
                     clock=FakeClock())
    try:
        yield sup
    finally:
        sup.stop_all(grace=2)


async def test_a_dead_component_is_restarted_after_a_doubling_back_off(
        tmp_path: Path, supervisor: Supervisor) -> None:
    clock = supervisor.clock
    assert isinstance(clock, FakeClock)
    first = supervisor.start(sleeper(tmp_path), order=1)
    run_dir = supervisor.run_dir
    for restarts, delay in ((1, 1.0), (2, 2.0), (3, 4.0)):
        current = supervisor.running[0]
        kill_and_reap(current.pid, current.proc)
        supervisor.check()
        waiting = run_dir.get("worker")
        assert waiting is not None and waiting.last_exit.startswith("killed by signal 9 at")
        assert waiting.restart_at is not None and waiting.restart_at > time.time()
        await clock.advance(delay - 0.1)
        supervisor.check()
        assert supervisor.running[0].pid == current.pid  # still waiting out its back-off
        await clock.advance(0.1)
        supervisor.check()
        restarted = run_dir.get("worker")
        assert restarted is not None and restarted.is_alive()
        assert restarted.pid != current.pid and restarted.restarts == restarts
        assert restarted.restart_at is None and restarted.last_exit == waiting.last_exit
    assert first.pid != supervisor.running[0].pid


async def test_the_back_off_starts_over_once_a_component_stays_up(
        tmp_path: Path, supervisor: Supervisor) -> None:
    clock = supervisor.clock
    assert isinstance(clock, FakeClock)
    supervisor.start(sleeper(tmp_path), order=1)
    for _ in range(3):
        current = supervisor.running[0]
        kill_and_reap(current.pid, current.proc)
        supervisor.check()
        await clock.advance(30)
        supervisor.check()
    await clock.advance(61)  # up for a minute: back to 1 s
    current = supervisor.running[0]
    kill_and_reap(current.pid, current.proc)
    supervisor.check()
    await clock.advance(1)
    supervisor.check()
    assert supervisor.running[0].pid != current.pid


async def test_a_component_kept_from_an_earlier_up_is_watched_too(
        tmp_path: Path, supervisor: Supervisor) -> None:
    spec = sleeper(tmp_path)
    earlier = subprocess.Popen(spec.argv, start_new_session=True)
    try:
        record = ProcessRecord.of(spec.name, earlier.pid, spec.argv, 1, spec.log_file)
        supervisor.run_dir.save(record)
        assert kept_components(supervisor.run_dir, [spec]) == {"worker": record}
        kept = supervisor.adopt(spec, record)
        assert kept.proc is None and supervisor.wait_ready(kept)
        supervisor.check()
        assert supervisor.running[0].pid == earlier.pid
        earlier.kill()
        earlier.wait(5)  # reaped by us, its parent here; to the supervisor it is just gone
        supervisor.check()
        waiting = supervisor.run_dir.get("worker")
        assert waiting is not None
        assert waiting.last_exit.startswith("gone (exit status unknown) at")
        assert isinstance(supervisor.clock, FakeClock)
        await supervisor.clock.advance(1)
        supervisor.check()
        again = supervisor.running[0]
        assert again.proc is not None and again.is_alive() and again.record.restarts == 1
    finally:
        if earlier.poll() is None:
            earlier.kill()
            earlier.wait()


def test_stop_all_stops_children_and_kept_components_and_forgets_them(
        tmp_path: Path, supervisor: Supervisor) -> None:
    spec = sleeper(tmp_path, "kept")
    earlier = subprocess.Popen(spec.argv, start_new_session=True)
    try:
        supervisor.adopt(spec, ProcessRecord.of("kept", earlier.pid, spec.argv, 1,
                                                spec.log_file))
        child = supervisor.start(sleeper(tmp_path, "child"), order=2)
        supervisor.stop_all(grace=2)
        assert earlier.wait(5) == -signal.SIGTERM
        assert child.proc is not None and child.proc.poll() is not None
        assert supervisor.run_dir.records() == []
    finally:
        if earlier.poll() is None:
            earlier.kill()
            earlier.wait()


def test_a_component_running_with_other_flags_is_not_kept(tmp_path: Path) -> None:
    spec = sleeper(tmp_path)
    earlier = subprocess.Popen(["sleep", "299"], start_new_session=True)
    try:
        run_dir = RunDir(tmp_path / "run")
        run_dir.save(ProcessRecord.of("worker", earlier.pid, ["sleep", "299"], 1, spec.log_file))
        with pytest.raises(ClusterError, match=r"worker \(pid \d+\) runs with another command"):
            kept_components(run_dir, [spec])
    finally:
        earlier.kill()
        earlier.wait()


def test_a_record_of_a_dead_component_is_not_kept(tmp_path: Path) -> None:
    spec = sleeper(tmp_path)
    gone = subprocess.Popen(["true"])
    gone.wait()
    run_dir = RunDir(tmp_path / "run")
    run_dir.save(ProcessRecord.of("worker", gone.pid, spec.argv, 1, spec.log_file))
    assert kept_components(run_dir, [spec]) == {}


def test_a_component_without_a_readiness_probe_does_not_hold_up_the_next(
        tmp_path: Path) -> None:
    """The scheduler and the controller manager (no probe: up once they have run a second)
    start together, and the kubelet after them does not wait out their seconds; a probe-less
    one that dies at once still fails the start."""
    supervisor = Supervisor(RunDir(tmp_path / "run"), threading.Event(), lambda *a, **k: None)
    starts: dict[str, float] = {}
    real_start = supervisor.start

    def start(spec: ComponentSpec, order: int, **past: object) -> Running:
        starts[spec.name] = time.monotonic()
        return real_start(spec, order, **past)

    supervisor.start = start  # type: ignore[method-assign]
    probed = ComponentSpec(name="kubelet", argv=["sleep", "300"],
                           log_file=tmp_path / "kubelet.log", ready=lambda: True)
    specs = [sleeper(tmp_path, "scheduler"), sleeper(tmp_path, "controller-manager"), probed]
    try:
        began = time.monotonic()
        assert _start_in_order(supervisor, specs, {}, lambda *a, **k: None)
        assert starts["kubelet"] - starts["scheduler"] < 0.5, starts
        assert time.monotonic() - began >= 1.0  # yet up only once they have run a second
    finally:
        supervisor.stop_all(grace=2)
    dying = ComponentSpec(name="scheduler", argv=["false"], log_file=tmp_path / "s.log",
                          ready=None)
    supervisor = Supervisor(RunDir(tmp_path / "run2"), threading.Event(), lambda *a, **k: None)
    try:
        with pytest.raises(ClusterError, match="scheduler"):
            _start_in_order(supervisor, [dying, probed], {}, lambda *a, **k: None)
    finally:
        supervisor.stop_all(grace=2)
