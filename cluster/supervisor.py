"""Start components in order, keep them running, stop them in reverse.

The supervisor of `skiff up`, in the foreground or detached (`-d`): it starts each component
once the one before is ready (or keeps one that an earlier `skiff up` left running; one with
no readiness probe, the scheduler and the controller manager, does not hold up the next, and
counts as up once it has run a second), records
it in run/ (cluster.records), then watches them. A component that dies is started again
after a back-off (1 s, doubling to 30 s; one that stays up a minute starts over at 1 s), as
systemd's Restart= or a kubelet's static pods do; the death and the restart go to the
supervisor's log (logs/skiff-up.log), where `skiff status` shows them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from cluster import listening
from cluster.components import ComponentSpec
from cluster.errors import ClusterError
from cluster.process import log_tail
from cluster.records import (
    STOP_GRACE_SECONDS,
    ProcessRecord,
    RunDir,
    proc_cmdline,
    stop_recorded,
)
from skiff.client.backoff import Backoff
from skiff.client.clock import Clock, RealClock

__all__ = ["RESTART_INITIAL_SECONDS", "RESTART_MAX_SECONDS", "SUPERVISOR", "Running", "Say",
           "Supervisor", "SupervisorLog", "died_message", "exit_description", "exit_summary",
           "kept_components", "say", "stop_signals", "supervise"]

# The supervising `skiff up` records itself under this name (and logs to logs/<name>.log),
# so that `skiff down` from another terminal asks it to stop the cluster in order instead
# of pulling processes out from under it.
SUPERVISOR = "skiff-up"

RESTART_INITIAL_SECONDS = 1.0
RESTART_MAX_SECONDS = 30.0

Say = Callable[..., None]
"""How progress is reported: `say(message)`, or `say(message, err=True)` for trouble."""


def say(message: str, *, err: bool = False) -> None:
    """Print and flush, ignoring a closed stdout (`skiff up | head`, a closed terminal): the
    components must still be stopped in order when nobody reads our messages any more."""
    with contextlib.suppress(OSError, ValueError):
        print(message, file=sys.stderr if err else sys.stdout, flush=True)


class SupervisorLog:
    """The supervisor's log: each message with its time, appended to `path`, and also passed
    to `echo` (the terminal of a foreground `skiff up`) when there is one."""

    def __init__(self, path: Path, echo: Say | None = None) -> None:
        self.path = path
        self.echo = echo

    def __call__(self, message: str, *, err: bool = False) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(f"{stamp} {message}\n")
        if self.echo is not None:
            self.echo(message, err=err)


def exit_summary(code: int | None) -> str:
    """How a process ended, from its exit status (None: not our child, kept from an earlier
    `skiff up`, so there is no status to read)."""
    if code is None:
        return "gone (exit status unknown)"
    return f"killed by signal {-code}" if code < 0 else f"exited with code {code}"


def exit_description(code: int | None) -> str:
    if code is None:
        return "is gone"
    return f"was {exit_summary(code)}" if code < 0 else exit_summary(code)


def died_message(spec: ComponentSpec, code: int | None) -> str:
    return f"{spec.name} {exit_description(code)}; see its log {spec.log_file}"


@dataclass
class Running:
    """A component under supervision: our child, or one kept from an earlier `skiff up`."""

    spec: ComponentSpec
    record: ProcessRecord
    proc: subprocess.Popen[bytes] | None  # None: kept from an earlier `skiff up`
    log_offset: int  # where this run's lines start in the (appended) log
    restart_due: float | None = None  # supervisor clock time of its next start, while it waits
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.record.pid

    def exit_code(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def is_alive(self) -> bool:
        if self.proc is not None:
            # As our child its PID cannot be reused by another process until we reap it.
            return self.proc.poll() is None
        return self.record.is_alive()

    def log_tail(self) -> str:
        tail = log_tail(self.spec.log_file, 15, since=self.log_offset)
        return f"\n--- last lines of {self.spec.log_file} ---\n{tail}" if tail else ""


class Supervisor:
    """Starts components in order, waits for each to be ready, restarts one that dies,
    stops them in reverse."""

    def __init__(self, run_dir: RunDir, stop_requested: threading.Event, say: Say = say, *,
                 clock: Clock | None = None) -> None:
        self.run_dir = run_dir
        self.stop_requested = stop_requested
        self.say = say
        self.clock: Clock = clock or RealClock()
        self.backoff = Backoff(RESTART_INITIAL_SECONDS, RESTART_MAX_SECONDS, clock=self.clock)
        self.running: list[Running] = []
        self.sockets: dict[str, list[socket.socket]] = {}  # held for components (listen)

    # --- starting ---------------------------------------------------------------------------

    def start(self, spec: ComponentSpec, order: int, **past: Any) -> Running:
        """Starts `spec` as our child and records it; `past` carries its record's history
        (restarts, last_exit) over a restart."""
        spec.log_file.parent.mkdir(parents=True, exist_ok=True)
        with spec.log_file.open("ab") as log:
            log.write(f"--- skiff up: starting {spec.name} at {time.ctime()}\n".encode())
            log.flush()
            offset = log.tell()
            sockets = self._sockets_of(spec)
            extra_env, move_sockets = listening.handing_over(sockets)
            proc = subprocess.Popen(
                spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**spec.env, **extra_env},
                preexec_fn=move_sockets,
                pass_fds=listening.kept_fds(sockets),
                # Its own session: a Ctrl-C reaches only `skiff up`, which then stops the
                # components in reverse order; and they outlive a supervisor that was killed,
                # for the next `skiff up` to keep.
                start_new_session=True,
            )
        record = ProcessRecord.of(spec.name, proc.pid, spec.argv, order, spec.log_file, **past)
        return self._put(Running(spec, record, proc, offset))

    def _sockets_of(self, spec: ComponentSpec) -> list[socket.socket]:
        """The sockets held for `spec`, bound at its first start; none (it binds its own)
        when they cannot be bound, as when an earlier `skiff up`'s component holds them."""
        if not spec.listen:
            return []
        if spec.name not in self.sockets:
            try:
                self.sockets[spec.name] = listening.bind(spec.listen)
            except OSError as err:
                self.say(f"{spec.name}: cannot hold its sockets across restarts ({err}); "
                         "it binds its own", err=True)
                return []
        return self.sockets[spec.name]

    def adopt(self, spec: ComponentSpec, record: ProcessRecord) -> Running:
        """Supervises a component an earlier `skiff up` started and that still runs."""
        offset = spec.log_file.stat().st_size if spec.log_file.exists() else 0
        return self._put(Running(spec, record.but(restart_at=None), None, offset))

    def _put(self, running: Running) -> Running:
        self.run_dir.save(running.record)
        for i, other in enumerate(self.running):
            if other.spec.name == running.spec.name:
                self.running[i] = running
                return running
        self.running.append(running)
        return running

    def wait_ready(self, running: Running) -> bool:
        """True once ready; False if a stop was requested meanwhile. Raises ClusterError when
        the component exits or is not ready in time."""
        spec = running.spec
        deadline = time.monotonic() + spec.ready_timeout
        settle = running.started + 1.0  # a probe-less daemon counts as up after 1 s
        if running.proc is None:
            settle = time.monotonic()  # kept from an earlier `up`: it has been up a while
        while not self.stop_requested.is_set():
            if not running.is_alive():
                raise ClusterError(died_message(spec, running.exit_code()) + running.log_tail())
            if spec.ready() if spec.ready is not None else time.monotonic() >= settle:
                return True
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"{spec.name} did not become ready ({spec.ready_what}) within "
                    f"{spec.ready_timeout:.0f} s; see its log {spec.log_file}" + running.log_tail()
                )
            self.stop_requested.wait(0.2)
        return False

    # --- keeping them running ----------------------------------------------------------------

    def run_until_stopped(self, interval: float = 0.5) -> None:
        while not self.stop_requested.wait(interval):
            self.check()

    def check(self) -> None:
        """One round: notes each component that died and starts those whose back-off is over."""
        for running in list(self.running):
            if running.restart_due is None:
                if not running.is_alive():
                    self._died(running)
            elif self.clock.now() >= running.restart_due:
                self._restart(running)

    def _died(self, running: Running) -> None:
        name = running.spec.name
        how = exit_description(running.exit_code())
        delay = self.backoff.next(name)
        running.restart_due = self.clock.now() + delay
        running.record = running.record.but(
            last_exit=f"{exit_summary(running.exit_code())} at {time.strftime('%H:%M:%S')}",
            restart_at=time.time() + delay)
        self.run_dir.save(running.record)
        # One line, without the log's tail: `skiff status` shows both logs side by side.
        self.say(f"{name} (pid {running.pid}) {how}; starting it again in {delay:.0f} s "
                 f"(its log: {running.spec.log_file})", err=True)

    def _restart(self, running: Running) -> None:
        old = running.record
        past = {"restarts": old.restarts + 1, "last_exit": old.last_exit}
        try:
            new = self.start(running.spec, old.order, **past)
        except OSError as err:
            # Its binary went missing, the disk is full, ...: back off as after a death.
            running.restart_due = None
            self.say(f"{running.spec.name} could not be started: {err}", err=True)
            self._died(running)
            return
        self.say(f"started {running.spec.name} again (pid {new.pid}, "
                 f"restart {new.record.restarts})")

    # --- stopping ----------------------------------------------------------------------------

    def stop_all(self, grace: float = STOP_GRACE_SECONDS) -> None:
        while self.running:
            running = self.running.pop()
            proc = running.proc
            if proc is None:
                if running.restart_due is None:
                    stop_recorded(running.record, grace)
            elif proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(grace)
                except subprocess.TimeoutExpired:
                    self.say(f"{running.spec.name}: no exit after {grace:.0f} s, killing")
                    proc.kill()
                    proc.wait()
            self.run_dir.forget(running.spec.name)
            for sock in self.sockets.pop(running.spec.name, []):
                sock.close()
            self.say(f"stopped {running.spec.name}")


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


# --- the cluster's supervisor, in the foreground or in the background -----------------------


def kept_components(run_dir: RunDir, specs: list[ComponentSpec]) -> dict[str, ProcessRecord]:
    """The components an earlier `skiff up` started that still run, by name: a new
    supervisor keeps them and starts only what is missing. Raises ClusterError when one runs
    with another command line than `specs` give it (other ports, another checkout)."""
    kept = {}
    records = {r.name: r for r in run_dir.records()}
    for spec in specs:
        rec = records.get(spec.name)
        if rec is None or not rec.is_alive():
            continue
        if rec.argv != spec.argv:
            raise ClusterError(
                f"{spec.name} (pid {rec.pid}) runs with another command line than this skiff "
                f"up would give it (other flags?); stop it with skiff down --data-dir "
                f"{run_dir.path.parent} first")
        kept[spec.name] = rec
    return kept


def supervise(run_dir: RunDir, specs: list[ComponentSpec], stop_requested: threading.Event,
              log: SupervisorLog, on_ready: Callable[[], None]) -> None:
    """Be the cluster's supervisor until `stop_requested`: record this process, start each
    component in order (keeping any still running from an earlier `skiff up`), call
    `on_ready`, restart what dies, and at the end stop everything in reverse order. Raises
    ClusterError when the cluster cannot start (after stopping what had started)."""
    me = os.getpid()
    run_dir.save(ProcessRecord.of(SUPERVISOR, me, proc_cmdline(me) or [], 0, log.path))
    supervisor = Supervisor(run_dir, stop_requested, log)
    try:
        if not _start_in_order(supervisor, specs, kept_components(run_dir, specs), log):
            log("interrupted during startup, stopping")
            return
        on_ready()
        supervisor.run_until_stopped()
        log("stopping")
    finally:
        supervisor.stop_all()
        run_dir.forget(SUPERVISOR)


def _start_in_order(supervisor: Supervisor, specs: list[ComponentSpec],
                    kept: dict[str, ProcessRecord], log: Say) -> bool:
    records = {r.name: r for r in supervisor.run_dir.records()}
    settling: list[Running] = []
    for order, spec in enumerate(specs, 1):
        if spec.name in kept:
            log(f"{spec.name} is running (pid {kept[spec.name].pid}): kept")
            running = supervisor.adopt(spec, kept[spec.name].but(order=order))
        else:
            past: dict[str, Any] = {}
            stale = records.get(spec.name)
            if stale is not None and stale.pid > 0:
                # It died while nobody supervised it: this start is a restart.
                past = {"restarts": stale.restarts + 1, "last_exit": stale.last_exit
                        or f"found not running at {time.strftime('%H:%M:%S')}"}
            log(f"starting {spec.name} (log {spec.log_file})")
            running = supervisor.start(spec, order, **past)
        if spec.ready is None:
            # Nothing after it waits for it: only that it stays up, checked at the end.
            settling.append(running)
        elif not supervisor.wait_ready(running):
            return False
    return all(supervisor.wait_ready(running) for running in settling)
