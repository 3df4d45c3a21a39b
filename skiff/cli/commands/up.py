"""`skiff up` and `skiff down`: run a whole single-machine cluster from one data directory.

`up` starts the control plane as child processes, one component after another, each only once
the previous one is ready: etcd, the apiserver, the scheduler, the controller manager and the
kubelet (one line each in `cluster_components`). Every component's PID and command line are
recorded under DATA_DIR/run so that `down` (or a later `up`) finds exactly these processes and
never a stranger that reused a PID.

Layout of the data directory (default ~/.skiff):
    etcd/            etcd's data
    logs/<name>.log  each component's stdout and stderr
    run/<name>.pid   PID of each running component (and run/<name>.json: how to recognise it)
    token            the bearer token the apiserver accepts (0600)
    config           client config: server and token (the default client config path)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
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

import yaml

from skiff.cli.errors import CliError
from skiff.cli.etcd_launcher import (
    EtcdError,
    child_env,
    etcd_argv,
    etcd_is_healthy,
    find_etcd,
    log_tail,
    port_is_free,
)

DEFAULT_DATA_DIR = "~/.skiff"
DEFAULT_CLIENT_CONFIG = "~/.skiff/config"
STOP_GRACE_SECONDS = 10.0
READY_TIMEOUT_SECONDS = 30.0
# The foreground `skiff up` records itself too, so `skiff down` from another terminal asks
# it to stop the cluster in order instead of pulling processes out from under it.
SUPERVISOR = "skiff-up"

ReadinessCheck = Callable[[], bool]


def _say(message: str, *, err: bool = False) -> None:
    """Print and flush, ignoring a closed stdout (`skiff up | head`, a closed terminal): the
    components must still be stopped in order when nobody reads our messages any more."""
    with contextlib.suppress(OSError, ValueError):
        print(message, file=sys.stderr if err else sys.stdout, flush=True)


# --- components -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ComponentSpec:
    """One process of the cluster: how to start it and how to tell it is ready."""

    name: str
    argv: list[str]
    log_file: Path
    # None: ready once it has stayed up for a moment (for daemons that serve nothing to probe).
    ready: ReadinessCheck | None
    ready_what: str = "to keep running"
    ready_timeout: float = READY_TIMEOUT_SECONDS
    env: dict[str, str] = field(default_factory=child_env)


@dataclass(frozen=True)
class ClusterConfig:
    data_dir: Path
    port: int
    etcd_port: int
    kubelet_port: int = 10250
    node_name: str = ""  # default: the host name, as the kubelet's own default

    @property
    def etcd_peer_port(self) -> int:
        # etcd's own convention: peer port = client port + 1 (2379 -> 2380).
        return self.etcd_port + 1

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def token_file(self) -> Path:
        return self.data_dir / "token"

    @property
    def client_config(self) -> Path:
        return self.data_dir / "config"

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"


def tcp_ready(host: str, port: int) -> ReadinessCheck:
    def check() -> bool:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            return False

    return check


def python_daemon(
    cfg: ClusterConfig,
    name: str,
    module: str,
    *flags: str,
    ready: ReadinessCheck | None = None,
    ready_what: str = "to keep running",
) -> ComponentSpec:
    """A Skiff daemon run as `python -m module flags...` with this interpreter, so it runs from
    the same environment as this `skiff`."""
    # Unbuffered, so that what a daemon printed just before it died is in its log.
    env = {**child_env(), "PYTHONUNBUFFERED": "1"}
    return ComponentSpec(
        name=name,
        argv=[sys.executable, "-m", module, *flags],
        log_file=cfg.logs / f"{name}.log",
        ready=ready,
        ready_what=ready_what,
        env=env,
    )


def cluster_components(cfg: ClusterConfig, etcd_binary: str) -> list[ComponentSpec]:
    """The cluster, in start order (stopped in reverse). Add a daemon with one line."""
    etcd_url = f"http://127.0.0.1:{cfg.etcd_port}"
    etcd_servers = f"127.0.0.1:{cfg.etcd_port}"
    return [
        ComponentSpec(
            name="etcd",
            argv=etcd_argv(etcd_binary, cfg.data_dir / "etcd", cfg.etcd_port, cfg.etcd_peer_port),
            log_file=cfg.logs / "etcd.log",
            ready=lambda: etcd_is_healthy(etcd_url),
            ready_what=f"to answer {etcd_url}/health",
        ),
        python_daemon(
            cfg, "apiserver", "apiserver.main",
            "--etcd-servers", etcd_servers,
            "--bind-address", "127.0.0.1",
            "--port", str(cfg.port),
            "--token-file", str(cfg.token_file),
            "--kubelet-token-file", str(cfg.token_file),
            ready=tcp_ready("127.0.0.1", cfg.port),
            ready_what=f"to accept connections on {cfg.server}",
        ),
        # The other daemons are clients of the apiserver; each is one line.
        python_daemon(cfg, "scheduler", "scheduler.main", "--config", str(cfg.client_config)),
        python_daemon(cfg, "controller-manager", "controllers.main",
                      "--config", str(cfg.client_config)),
        python_daemon(
            cfg, "kubelet", "kubelet.main",
            "--config", str(cfg.client_config),
            "--root-dir", str(cfg.data_dir / "kubelet"),
            "--port", str(cfg.kubelet_port),
            "--kubelet-token-file", str(cfg.token_file),
            *(("--node-name", cfg.node_name) if cfg.node_name else ()),
            ready=tcp_ready("127.0.0.1", cfg.kubelet_port),
            ready_what=f"to accept connections on port {cfg.kubelet_port}",
        ),
    ]  # fmt: skip


def ports_in_use(cfg: ClusterConfig) -> list[str]:
    wanted = {
        "--etcd-port": cfg.etcd_port,
        "etcd peer port (--etcd-port + 1)": cfg.etcd_peer_port,
        "--port": cfg.port,
        "--kubelet-port": cfg.kubelet_port,
    }
    return [f"{port} ({what})" for what, port in wanted.items() if not port_is_free(port)]


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


def _proc_cmdline(pid: int) -> list[str] | None:
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
        return "same" if _proc_cmdline(self.pid) == self.argv else "changed"

    def is_alive(self) -> bool:
        return self.identity() == "same"


class RunDir:
    """run/<name>.pid (the PID, for humans and scripts) and run/<name>.json (for `down`)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, name: str, pid: int, argv: list[str], order: int, log_file: Path) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        rec = ProcessRecord(name, pid, argv, _proc_start_time(pid), order, str(log_file))
        _write_atomic(self.path / f"{name}.json", json.dumps(rec.__dict__, indent=1) + "\n")
        _write_atomic(self.path / f"{name}.pid", f"{pid}\n")

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


def _write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)  # in case tmp already existed with other bits
    os.replace(tmp, path)


def _wait_gone(is_alive: Callable[[], bool], timeout: float) -> bool:
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
    if _wait_gone(rec.is_alive, grace):
        return "stopped"
    if rec.is_alive():  # check again right before SIGKILL: never hit a reused PID
        with contextlib.suppress(ProcessLookupError):
            os.kill(rec.pid, signal.SIGKILL)
        _wait_gone(rec.is_alive, 5.0)
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

    def __init__(self, run_dir: RunDir, stop_requested: threading.Event) -> None:
        self.run_dir = run_dir
        self.stop_requested = stop_requested
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
        """True once ready; False if a stop was requested meanwhile. Raises CliError when
        the component exits or is not ready in time."""
        spec, proc = running.spec, running.proc
        deadline = time.monotonic() + spec.ready_timeout
        settle = time.monotonic() + 1.0  # a probe-less daemon counts as up after 1 s
        while not self.stop_requested.is_set():
            code = proc.poll()
            if code is not None:
                raise CliError(_died_message(spec, code) + running.log_tail())
            if spec.ready() if spec.ready is not None else time.monotonic() > settle:
                return True
            if time.monotonic() > deadline:
                raise CliError(
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
                    _say(f"{running.spec.name}: no exit after {grace:.0f} s, killing")
                    proc.kill()
                    proc.wait()
            self.run_dir.forget(running.spec.name)
            _say(f"stopped {running.spec.name}")


def _died_message(spec: ComponentSpec, code: int) -> str:
    how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
    return f"{spec.name} {how}; see its log {spec.log_file}"


@contextlib.contextmanager
def _stop_signals(event: threading.Event) -> Iterator[None]:
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
        raise CliError(f"{path} is empty: remove it and run skiff up again to make a new token")
    return token


def write_client_config(cfg: ClusterConfig, token: str) -> None:
    # 0600: it holds the token.
    text = yaml.safe_dump({"server": cfg.server, "token": token}, default_flow_style=False)
    _write_atomic(cfg.client_config, text, mode=0o600)


def _config_hint(cfg: ClusterConfig) -> str | None:
    """The `export` a user needs when clients would not find this config by default."""
    where = os.environ.get("SKIFF_CONFIG") or DEFAULT_CLIENT_CONFIG
    if Path(where).expanduser().resolve() == cfg.client_config.resolve():
        return None
    return f"export SKIFF_CONFIG={cfg.client_config}"


# --- commands -------------------------------------------------------------------------------


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir).expanduser().absolute()


def refuse_if_running(run_dir: RunDir) -> None:
    for rec in run_dir.records():
        if rec.is_alive():
            raise CliError(
                f"skiff is already running from {run_dir.path.parent} ({rec.name}, pid "
                f"{rec.pid}); use skiff down"
            )
        run_dir.forget(rec.name)  # stale: its process is gone


def run_up(args: argparse.Namespace) -> int:
    cfg = ClusterConfig(_data_dir(args), args.port, args.etcd_port, args.kubelet_port,
                        args.node_name)
    run_dir = RunDir(cfg.run_dir)
    refuse_if_running(run_dir)
    busy = ports_in_use(cfg)
    if busy:
        raise CliError(
            f"port(s) already in use on 127.0.0.1: {', '.join(busy)}; stop what listens there "
            "or choose others with --port / --etcd-port"
        )
    try:
        etcd_binary, etcd_description = find_etcd()
    except EtcdError as err:
        raise CliError(str(err)) from err

    cfg.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    cfg.logs.mkdir(exist_ok=True)
    token = ensure_token(cfg.token_file)
    write_client_config(cfg, token)
    _say(f"etcd: {etcd_description}")

    stop_requested = threading.Event()
    supervisor = Supervisor(run_dir, stop_requested)
    with _stop_signals(stop_requested):
        if not args.detach:
            run_dir.record(SUPERVISOR, os.getpid(), _proc_cmdline(os.getpid()) or [], 0, Path())
        try:
            if not _start_all(supervisor, cluster_components(cfg, etcd_binary)):
                supervisor.stop_all()
                return 0
            _print_started(cfg, detached=args.detach)
            if args.detach:
                return 0
            return _supervise(supervisor, stop_requested)
        except BaseException:
            supervisor.stop_all()
            raise
        finally:
            if not args.detach:
                run_dir.forget(SUPERVISOR)


def _start_all(supervisor: Supervisor, components: list[ComponentSpec]) -> bool:
    for spec in components:
        _say(f"starting {spec.name} (log {spec.log_file})")
        if not supervisor.wait_ready(supervisor.start(spec)):
            _say("interrupted during startup, stopping")
            return False
    return True


def _print_started(cfg: ClusterConfig, *, detached: bool) -> None:
    _say(f"\nSkiff is up: apiserver {cfg.server}, data in {cfg.data_dir}")
    _say(f"Logs: {cfg.logs}/<component>.log")
    hint = _config_hint(cfg)
    if hint:
        _say(f"Client config: {cfg.client_config}; to use it:\n  {hint}")
    if detached:
        default = cfg.data_dir == Path(DEFAULT_DATA_DIR).expanduser().absolute()
        _say("Stop with: skiff down" + ("" if default else f" --data-dir {cfg.data_dir}"))
    else:
        _say("Press Ctrl-C to stop.")


def _supervise(supervisor: Supervisor, stop_requested: threading.Event) -> int:
    while not stop_requested.wait(0.5):
        dead = supervisor.first_dead()
        if dead is not None:
            code = dead.proc.returncode
            _say(f"error: {_died_message(dead.spec, code)}", err=True)
            _say(dead.log_tail(), err=True)
            _say("stopping the other components")
            supervisor.stop_all()
            return 1
    _say("stopping")
    supervisor.stop_all()
    return 0


def run_down(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args)
    run_dir = RunDir(data_dir / "run")
    records = run_dir.records()
    supervisor = next((r for r in records if r.name == SUPERVISOR), None)
    anything = False
    if supervisor is not None and supervisor.is_alive():
        anything = True
        # A foreground `skiff up` owns the components: let it stop them in order.
        _say(f"asking skiff up (pid {supervisor.pid}) to stop the cluster")
        with contextlib.suppress(ProcessLookupError):
            os.kill(supervisor.pid, signal.SIGTERM)
        components = sum(1 for r in records if r.name != SUPERVISOR)
        if not _wait_gone(supervisor.is_alive, (STOP_GRACE_SECONDS + 5) * max(components, 1)):
            _say(f"skiff up (pid {supervisor.pid}) did not finish; stopping directly")
        records = run_dir.records()
    for rec in reversed(records):
        if rec.name == SUPERVISOR:
            run_dir.forget(rec.name)
            continue
        outcome = stop_recorded(rec)
        run_dir.forget(rec.name)
        if outcome != "not running":
            anything = True
            _say(f"{rec.name} (pid {rec.pid}): {outcome}")
    if not anything:
        _say("nothing running")
    return 0


def register(subparsers: Any) -> None:
    up = subparsers.add_parser(
        "up",
        help="start a single-machine cluster (etcd, apiserver, ...)",
        description="Start etcd and the Skiff daemons on this machine, in order, each once the "
        "one before is ready. Foreground by default: Ctrl-C stops everything.",
    )
    up.add_argument(
        "--data-dir",
        default=DEFAULT_DATA_DIR,
        help="etcd data, logs, PIDs, token and client config (default %(default)s)",
    )
    up.add_argument("--port", type=int, default=6443, help="apiserver port (default %(default)s)")
    up.add_argument(
        "--etcd-port",
        type=int,
        default=2379,
        help="etcd client port; its peer port is this + 1 (default %(default)s)",
    )
    up.add_argument("--kubelet-port", type=int, default=10250,
                    help="the kubelet's port for logs and exec (default %(default)s)")
    up.add_argument("--node-name", default="",
                    help="this host's Node name (default: the host name)")
    up.add_argument(
        "-d", "--detach", action="store_true", help="start in the background and return"
    )
    up.set_defaults(func=run_up)

    down = subparsers.add_parser(
        "down",
        help="stop what skiff up started",
        description="Stop the processes recorded by skiff up, in reverse order.",
    )
    down.add_argument(
        "--data-dir",
        default=DEFAULT_DATA_DIR,
        help="data dir given to skiff up (default %(default)s)",
    )
    down.set_defaults(func=run_down)
