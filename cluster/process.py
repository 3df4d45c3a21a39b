"""What starting local processes needs: free ports, a clean environment, the tail of a log,
and a child that dies with its parent."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
from pathlib import Path

__all__ = ["LOOPBACK", "child_env", "die_with_parent", "free_ports", "log_tail",
           "port_is_free", "write_atomic"]

LOOPBACK = "127.0.0.1"


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """`count` distinct ports that were free a moment ago (the kernel picks them).

    All sockets stay open until every port is chosen so the kernel cannot hand out one twice.
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True when nothing listens on host:port (checked the way servers bind: SO_REUSEADDR,
    so a TIME_WAIT leftover from a previous run does not count as busy)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def write_atomic(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    """Writes `path` at once: a reader (`skiff status`, `skiff down`, a daemon reading its
    certificate) never sees half of it; a key is never readable by others, not even for a
    moment (`mode` from the start)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.chmod(tmp, mode)  # in case tmp already existed with other bits
    os.replace(tmp, path)


def child_env() -> dict[str, str]:
    """The environment for a child (etcd above all): ours without ETCD_* variables, which
    etcd would read as flags and which could silently point it at another data dir or
    cluster."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ETCD_")}


def log_tail(path: Path, lines: int = 20, since: int = 0) -> str:
    """The last `lines` lines of a log file written after byte offset `since`, for error
    messages (logs are appended to across runs; only this run's lines are of interest)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(since, f.tell() - 16384))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def die_with_parent() -> None:
    """A `preexec_fn`: runs in the child between fork and exec and asks the kernel to
    SIGKILL the child when its parent (a test run, a benchmark) dies, so an interrupted run
    never leaves an etcd or a daemon behind."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
