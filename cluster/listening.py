"""Sockets the supervisor holds for a component across its restarts (socket activation,
as systemd's .socket units): bound once, with IP_FREEBIND so that an address the component
itself puts on the host (skiff-dns's cluster DNS address) may come later, and handed to
each run of the component as fds 3, 4, ... with LISTEN_FDS (skiff.daemon.activation)."""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Callable, Sequence

from cluster.components import ListenSocket

__all__ = ["bind", "handing_over", "kept_fds"]

FIRST = 3  # SD_LISTEN_FDS_START
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)
BACKLOG = 1024


def bind(wanted: Sequence[ListenSocket]) -> list[socket.socket]:
    """The sockets of `wanted`, bound (and listening, for TCP); OSError if one cannot be."""
    made: list[socket.socket] = []
    try:
        for item in wanted:
            kind = socket.SOCK_DGRAM if item.protocol == "udp" else socket.SOCK_STREAM
            sock = socket.socket(socket.AF_INET, kind)
            made.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
            sock.bind((item.host, item.port))
            if kind == socket.SOCK_STREAM:
                sock.listen(BACKLOG)
    except OSError:
        for sock in made:
            sock.close()
        raise
    return made


def handing_over(sockets: Sequence[socket.socket]
                 ) -> tuple[dict[str, str], Callable[[], None] | None]:
    """What a child needs to find `sockets` at fds 3, 4, ...: its environment's additions,
    and the function that moves them there between fork and exec (None: nothing to hand)."""
    if not sockets:
        return {}, None
    fds = [s.fileno() for s in sockets]

    def move() -> None:
        # In the child, between fork and exec: fcntl and dup2 only (no locks). Copies
        # first, above the targets, so that no socket is overwritten before it is moved.
        copies = [fcntl.fcntl(fd, fcntl.F_DUPFD, FIRST + len(fds)) for fd in fds]
        for target, fd in enumerate(copies, start=FIRST):
            os.dup2(fd, target)  # the copy at target is inheritable
            os.close(fd)

    return {"LISTEN_FDS": str(len(fds))}, move


def kept_fds(sockets: Sequence[socket.socket]) -> tuple[int, ...]:
    """The child's fds that must survive Popen's close_fds."""
    return tuple(range(FIRST, FIRST + len(sockets)))
