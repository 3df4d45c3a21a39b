"""Listening sockets handed to a daemon by whoever starts it, so that they outlive the
daemon's restarts: systemd's socket activation (sd_listen_fds(3): `LISTEN_FDS` sockets
from fd 3 on, `LISTEN_PID` naming the process they are for) and `skiff up`'s supervisor,
which passes them the same way (cluster.supervisor). While the daemon restarts, what
arrives waits in the sockets' queues instead of being refused.
"""

from __future__ import annotations

import os
import socket

__all__ = ["LISTEN_FDS_START", "listen_sockets"]

LISTEN_FDS_START = 3  # SD_LISTEN_FDS_START


def listen_sockets() -> list[socket.socket]:
    """The sockets handed to this process (none when nothing was), each once: the
    variables are removed so that a child of ours does not take them for its own."""
    count = os.environ.pop("LISTEN_FDS", "")
    pid = os.environ.pop("LISTEN_PID", "")
    os.environ.pop("LISTEN_FDNAMES", None)
    if not count.isdigit() or (pid and pid != str(os.getpid())):
        return []
    sockets = []
    for fd in range(LISTEN_FDS_START, LISTEN_FDS_START + int(count)):
        os.set_inheritable(fd, False)
        sockets.append(socket.socket(fileno=fd))  # family and type read from the fd
    return sockets
