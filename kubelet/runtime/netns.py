"""A TCP connection to localhost:PORT inside another network namespace (port-forward).

As in Kubernetes, port-forward reaches the pod's port on the pod's own loopback, so a
server bound only to 127.0.0.1 inside the pod is reached too. The socket is made and
connected by a short-lived thread of its own that has entered the pod's network namespace
(`setns(2)` with CLONE_NEWNET changes the calling thread only); once connected, the socket
stays in that namespace whatever the thread does next, so the thread switches back to the
namespace it started in and ends, and the socket is handed to asyncio. A thread that could
not switch back ends all the same: no thread of the kubelet ever runs in a pod's namespace
past this call.

Python 3.11 has no `os.setns`, hence libc's through ctypes. Entering another network
namespace needs CAP_SYS_ADMIN (the kubelet runs as root).

`netns` None means this process's own namespace (hostNetwork pods: the node's loopback).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import socket
import threading

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class ConnectFailed(Exception):
    """Nothing accepted the connection; the message says why, in the kubelet's words."""


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def _dial_error(err: OSError) -> str:
    """Go's words for a failed connect, as the kubelet reports it: `connect: connection
    refused`."""
    if isinstance(err, TimeoutError):
        return "i/o timeout"
    text = err.strerror or str(err)
    return "connect: " + text[:1].lower() + text[1:]


def connect_loopback(port: int, namespace_id: str, timeout: float) -> socket.socket:
    """A non-blocking socket connected to 127.0.0.1:port, else [::1]:port, in the calling
    thread's network namespace; ConnectFailed with both reasons otherwise (containerd's
    message)."""
    reasons: list[str] = []
    for family, host, dial in ((socket.AF_INET, "127.0.0.1", f"dial tcp4 127.0.0.1:{port}"),
                               (socket.AF_INET6, "::1", f"dial tcp6 [::1]:{port}")):
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as err:
            reasons.append(f"{dial}: socket: {err.strerror or err}")
            continue
        try:
            sock.settimeout(timeout)
            sock.connect((host, port))
        except OSError as err:
            sock.close()
            reasons.append(f"{dial}: {_dial_error(err)}")
            continue
        sock.setblocking(False)
        return sock
    raise ConnectFailed(f"failed to connect to localhost:{port} inside namespace "
                        f'"{namespace_id}", IPv4: {reasons[0]} IPv6 {reasons[1]}')


def _connect_in(netns: str, port: int, namespace_id: str, timeout: float) -> socket.socket:
    """Runs on a thread of its own, which it leaves in its own namespace (or ends)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            target = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as err:
            raise ConnectFailed(f'cannot open the network namespace of "{namespace_id}" '
                                f"({netns}): {err.strerror or err}") from None
        try:
            _setns(target)
        except OSError as err:
            raise ConnectFailed(f'cannot enter the network namespace of "{namespace_id}": '
                                f"{err.strerror}") from None
        finally:
            os.close(target)
        try:
            return connect_loopback(port, namespace_id, timeout)
        finally:
            # This thread ends right after, so a switch back that fails strands nothing.
            with contextlib.suppress(OSError):
                _setns(own)
    finally:
        os.close(own)


async def connect_in_network_namespace(netns: str | None, port: int, *, namespace_id: str,
                                       timeout: float = 10.0) -> socket.socket:
    """A connected non-blocking socket to localhost:port inside `netns` (a path such as
    /proc/PID/ns/net; None: this process's namespace). Raises ConnectFailed."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[socket.socket] = loop.create_future()

    def settle(sock: socket.socket | None, error: BaseException | None) -> None:
        if done.cancelled():  # the caller went away: the connection is nobody's
            if sock is not None:
                sock.close()
        elif error is not None:
            done.set_exception(error)
        else:
            assert sock is not None
            done.set_result(sock)

    def work() -> None:
        sock: socket.socket | None = None
        error: BaseException | None = None
        try:
            sock = (connect_loopback(port, namespace_id, timeout) if netns is None
                    else _connect_in(netns, port, namespace_id, timeout))
        except BaseException as err:  # handed to the awaiting coroutine
            error = err
        try:
            loop.call_soon_threadsafe(settle, sock, error)
        except RuntimeError:  # the loop is closed
            if sock is not None:
                sock.close()

    threading.Thread(target=work, name=f"skiff-port-forward-{port}", daemon=True).start()
    return await done
