"""What a data directory's run/ says about the cluster's processes, and how to stop one of
them safely.

Every process `skiff up` starts (and the supervising `skiff up` itself) is recorded under
DATA_DIR/run, so that `skiff down`, `skiff status` and a later `skiff up` find exactly these
processes and never a stranger that reused a PID:

    run/<name>.pid   its PID, for humans and scripts
    run/<name>.json  how to recognise it (PID, start time, command line) and what the
                     supervisor knows of its past: restarts, last exit, next restart
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from cluster.process import write_atomic

__all__ = ["STOP_GRACE_SECONDS", "ProcessRecord", "RunDir", "proc_cmdline", "stop_recorded",
           "wait_gone"]

STOP_GRACE_SECONDS = 10.0


# --- recognising our processes --------------------------------------------------------------


def _proc_stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat from field 3 on (state, ...), None when the process is gone or a zombie
    (it has finished; only its parent's wait() is missing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] == "Z" else fields


def _proc_start_time(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat): with the
    PID it identifies one process for good, as a PID alone does not."""
    fields = _proc_stat_fields(pid)
    return int(fields[19]) if fields is not None else None


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def proc_cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.decode(errors="surrogateescape").split("\0")[:-1] if raw else None


@dataclass(frozen=True)
class ProcessRecord:
    """What run/<name>.json keeps about a component (or the supervisor)."""

    name: str
    pid: int
    argv: list[str]
    start_time: int | None
    order: int
    log_file: str
    restarts: int = 0  # how often a supervisor started it again after it died
    last_exit: str = ""  # how it last ended and when, e.g. "killed by signal 9 at ..."
    restart_at: float | None = None  # unix time of its next start while it waits (back-off)

    @classmethod
    def of(cls, name: str, pid: int, argv: list[str], order: int, log_file: Path | str,
           **past: Any) -> ProcessRecord:
        """The record of the running process `pid` (its start time read now)."""
        return cls(name, pid, argv, _proc_start_time(pid), order, str(log_file), **past)

    def identity(self) -> str:
        """Whether the recorded PID is still the process `up` started.

        "same": same start time and command line. "gone": it has exited, or the PID now
        belongs to a newer process. "changed": same process by start time but another command
        line (it rewrote its title or exec'd something else): no longer ours to kill.
        """
        start = _proc_start_time(self.pid) if self.pid > 0 else None
        if start is None or (self.start_time is not None and start != self.start_time):
            return "gone"
        cmdline = proc_cmdline(self.pid)
        for _ in range(20):
            if cmdline is not None:
                break
            # Just exec'd: for a moment the new program's arguments are not in place yet
            # (its /proc/PID/cmdline reads empty). Give them a few milliseconds.
            time.sleep(0.005)
            cmdline = proc_cmdline(self.pid)
        return "same" if cmdline == self.argv else "changed"

    def is_alive(self) -> bool:
        return self.identity() == "same"

    def uptime(self) -> float | None:
        """Seconds since the process started, None when it is not running."""
        if self.start_time is None or not self.is_alive():
            return None
        with contextlib.suppress(OSError, ValueError):
            started = _boot_time() + self.start_time / os.sysconf("SC_CLK_TCK")
            return max(0.0, time.time() - started)
        return None

    def but(self, **changes: Any) -> ProcessRecord:
        return replace(self, **changes)


class RunDir:
    """run/<name>.pid (the PID, for humans and scripts) and run/<name>.json (for `down`)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def save(self, rec: ProcessRecord) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(self.path / f"{rec.name}.json", json.dumps(asdict(rec), indent=1) + "\n")
        write_atomic(self.path / f"{rec.name}.pid", f"{rec.pid}\n")

    def records(self) -> list[ProcessRecord]:
        found = []
        for meta in sorted(self.path.glob("*.json")):
            try:
                data: dict[str, Any] = json.loads(meta.read_text())
                found.append(ProcessRecord(**data))
            except (OSError, ValueError, TypeError):
                # Unreadable or from another version: a record that matches no process, so
                # it is treated as stale and removed, never acted on.
                found.append(ProcessRecord(meta.stem, -1, [], None, 0, ""))
        return sorted(found, key=lambda r: r.order)

    def get(self, name: str) -> ProcessRecord | None:
        return next((r for r in self.records() if r.name == name), None)

    def forget(self, name: str) -> None:
        for suffix in (".pid", ".json"):
            (self.path / f"{name}{suffix}").unlink(missing_ok=True)


def wait_gone(is_alive: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while is_alive():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def stop_recorded(rec: ProcessRecord, grace: float = STOP_GRACE_SECONDS) -> str:
    """Stop a process `up` started earlier (not our child), after checking it is that one."""
    identity = rec.identity()
    if identity == "changed":
        return "left alone: its command line no longer matches what skiff up started"
    if identity == "gone":
        return "not running"
    with contextlib.suppress(ProcessLookupError):  # it may exit on its own meanwhile
        os.kill(rec.pid, signal.SIGTERM)
    if wait_gone(rec.is_alive, grace):
        return "stopped"
    if rec.is_alive():  # check again right before SIGKILL: never hit a reused PID
        with contextlib.suppress(ProcessLookupError):
            os.kill(rec.pid, signal.SIGKILL)
        wait_gone(rec.is_alive, 5.0)
    return f"killed after {grace:.0f} s"
