"""Start processes in order, wait until each is ready, record them, stop them in reverse.

The supervisor of `skiff up`: every component's PID and command line are recorded under
DATA_DIR/run, so that `skiff down` (or a later `up`) finds exactly these processes and never
a stranger that reused a PID.

    run/<name>.pid   PID of each running component (and run/<name>.json: how to recognise it)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from cluster.components import ComponentSpec
from cluster.errors import ClusterError
from cluster.process import log_tail

STOP_GRACE_SECONDS = 10.0

Say = Callable[..., None]
"""How progress is reported: `say(message)`, or `say(message, err=True)` for trouble."""


def say(message: str, *, err: bool = False) -> None:
    """Print and flush, ignoring a closed stdout (`skiff up | head`, a closed terminal): the
    components must still be stopped in order when nobody reads our messages any more."""
    with contextlib.suppress(OSError, ValueError):
        print(message, file=sys.stderr if err else sys.stdout, flush=True)


# --- recognising our processes --------------------------------------------------------------


def _proc_start_time(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat): with the
    PID it identifies one process for good, as a PID alone does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has finished; only its parent's wait() is missing
        return None
    return int(fields[19])


def proc_cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.decode(errors="surrogateescape").split("\0")[:-1] if raw else None


@dataclass(frozen=True)
class ProcessRecord:
    """What run/<name>.json keeps about a started component."""

    name: str
    pid: int
    argv: list[str]
    start_time: int | None
    order: int
    log_file: str

    def identity(self) -> str:
        """Whether the recorded PID is still the process `up` started.

        "same": same start time and command line. "gone": it has exited, or the PID now
        belongs to a newer process. "changed": same process by start time but another command
        line (it rewrote its title or exec'd something else): no longer ours to kill.
        """
        start = _proc_start_time(self.pid) if self.pid > 0 else None
        if start is None or (self.start_time is not None and start != self.start_time):
            return "gone"
        return "same" if proc_cmdline(self.pid) == self.argv else "changed"

    def is_alive(self) -> bool:
        return self.identity() == "same"


class RunDir:
    """run/<name>.pid (the PID, for humans and scripts) and run/<name>.json (for `down`)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, name: str, pid: int, argv: list[str], order: int, log_file: Path) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        rec = ProcessRecord(name, pid, argv, _proc_start_time(pid), order, str(log_file))
        write_atomic(self.path / f"{name}.json", json.dumps(rec.__dict__, indent=1) + "\n")
        write_atomic(self.path / f"{name}.pid", f"{pid}\n")

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

    def forget(self, name: str) -> None:
        for suffix in (".pid", ".json"):
            (self.path / f"{name}{suffix}").unlink(missing_ok=True)


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)  # in case tmp already existed with other bits
    os.replace(tmp, path)


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


# --- running the cluster --------------------------------------------------------------------


@dataclass
class Running:
    spec: ComponentSpec
    proc: subprocess.Popen[bytes]
    log_offset: int  # where this run's lines start in the (appended) log

    def log_tail(self) -> str:
        tail = log_tail(self.spec.log_file, 15, since=self.log_offset)
        return f"\n--- last lines of {self.spec.log_file} ---\n{tail}" if tail else ""


class Supervisor:
    """Starts components in order, waits for each to be ready, stops them in reverse."""

    def __init__(self, run_dir: RunDir, stop_requested: threading.Event,
                 say: Say = say) -> None:
        self.run_dir = run_dir
        self.stop_requested = stop_requested
        self.say = say
        self.running: list[Running] = []

    def start(self, spec: ComponentSpec) -> Running:
        spec.log_file.parent.mkdir(parents=True, exist_ok=True)
        with spec.log_file.open("ab") as log:
            log.write(f"--- skiff up: starting {spec.name} at {time.ctime()}\n".encode())
            log.flush()
            offset = log.tell()
            proc = subprocess.Popen(
                spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=spec.env,
                # Its own session: a Ctrl-C reaches only `skiff up`, which then stops the
                # components in reverse order; and with -d they outlive the terminal.
                start_new_session=True,
            )
        running = Running(spec, proc, offset)
        self.running.append(running)
        self.run_dir.record(spec.name, proc.pid, spec.argv, len(self.running), spec.log_file)
        return running

    def wait_ready(self, running: Running) -> bool:
        """True once ready; False if a stop was requested meanwhile. Raises ClusterError when
        the component exits or is not ready in time."""
        spec, proc = running.spec, running.proc
        deadline = time.monotonic() + spec.ready_timeout
        settle = time.monotonic() + 1.0  # a probe-less daemon counts as up after 1 s
        while not self.stop_requested.is_set():
            code = proc.poll()
            if code is not None:
                raise ClusterError(died_message(spec, code) + running.log_tail())
            if spec.ready() if spec.ready is not None else time.monotonic() > settle:
                return True
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"{spec.name} did not become ready ({spec.ready_what}) within "
                    f"{spec.ready_timeout:.0f} s; see its log {spec.log_file}" + running.log_tail()
                )
            self.stop_requested.wait(0.2)
        return False

    def first_dead(self) -> Running | None:
        return next((r for r in self.running if r.proc.poll() is not None), None)

    def stop_all(self, grace: float = STOP_GRACE_SECONDS) -> None:
        while self.running:
            running = self.running.pop()
            proc = running.proc
            if proc.poll() is None:
                # As our child it cannot have been replaced by another PID owner until reaped.
                proc.terminate()
                try:
                    proc.wait(grace)
                except subprocess.TimeoutExpired:
                    self.say(f"{running.spec.name}: no exit after {grace:.0f} s, killing")
                    proc.kill()
                    proc.wait()
            self.run_dir.forget(running.spec.name)
            self.say(f"stopped {running.spec.name}")


def died_message(spec: ComponentSpec, code: int) -> str:
    how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
    return f"{spec.name} {how}; see its log {spec.log_file}"


@contextlib.contextmanager
def stop_signals(event: threading.Event) -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP (the terminal went away) set `event` instead of
    interrupting, so shutdown runs in order."""

    def handler(signum: int, frame: FrameType | None) -> None:
        event.set()

    previous = {
        s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
