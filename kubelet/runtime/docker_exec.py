"""Interactive exec on a Docker engine: `skiff exec -it` with streams attached.

`docker_exec_stream` creates an exec instance and starts it with the connection hijacked
(`exec_start(socket=True)`): from then on the HTTP connection is a raw byte pipe. Writing
to it feeds the command's stdin, half-closing it (shutdown SHUT_WR) is end of file, and it
carries the command's output: as is with a TTY, otherwise multiplexed in frames of an
8-byte header (stream type: 1 stdout, 2 stderr; 3 zero bytes; big-endian payload length)
that `StreamDemuxer` takes apart.

The socket is blocking, so one thread per session reads it and hands chunks to the event
loop through a small bounded queue (a command printing faster than the caller reads waits
instead of filling memory); writes, resizes and inspects run in worker threads. Closing the
output iterator shuts the socket down, which wakes and ends the reading thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import struct
import threading
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any, TypeVar

import docker.errors
import requests.exceptions

from kubelet.runtime import NotFound, RuntimeError_, RuntimeUnavailable
from skiff.client.backoff import exponential_delay

STDOUT, STDERR = 1, 2
_HEADER = struct.Struct(">BxxxL")
_READ_SIZE = 64 * 1024
_QUEUE_SIZE = 64
_T = TypeVar("_T")


class StreamDemuxer:
    """Takes Docker's multiplexed stream apart into (stream, bytes) chunks.

    Chunks of the socket do not line up with frames, so a header may arrive split and a
    frame's payload over several reads: a payload is passed on as soon as any of it is
    there, so a long frame is not held back until complete.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._stream = STDOUT
        self._remaining = 0  # payload bytes of the current frame not yet seen

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        chunks: list[tuple[int, bytes]] = []
        while self._buffer:
            if self._remaining == 0:
                if len(self._buffer) < _HEADER.size:
                    break
                kind, self._remaining = _HEADER.unpack_from(self._buffer)
                del self._buffer[:_HEADER.size]
                # 3 is the engine's own error stream (e.g. the command does not exist):
                # the user should see it where errors go.
                self._stream = STDERR if kind in (2, 3) else STDOUT
                continue
            take = min(self._remaining, len(self._buffer))
            chunks.append((self._stream, bytes(self._buffer[:take])))
            del self._buffer[:take]
            self._remaining -= take
        return chunks


def _engine_call(fn: Callable[[], _T]) -> _T:
    """Runs a blocking SDK call, turning the engine's failures into the runtime's errors."""
    try:
        return fn()
    except docker.errors.NotFound as e:
        raise NotFound(str(e.explanation or e)) from e
    except docker.errors.APIError as e:  # e.g. 409: the container is not running
        raise RuntimeError_(str(e.explanation or e)) from e
    except requests.exceptions.ConnectionError as e:
        raise RuntimeUnavailable(f"docker engine unreachable: {e}") from e
    except requests.exceptions.Timeout as e:
        raise RuntimeUnavailable(f"docker engine did not answer: {e}") from e


def _socket_of(hijacked: Any) -> socket.socket:
    """The OS socket under what `exec_start(socket=True)` returns (a SocketIO over a unix
    or TCP socket, or the socket itself)."""
    raw = getattr(hijacked, "_sock", hijacked)
    if not isinstance(raw, socket.socket):
        raise RuntimeError_(f"unsupported docker connection for exec: {type(hijacked).__name__}")
    return raw


def _reader_of(hijacked: Any, raw: socket.socket) -> Callable[[int], bytes]:
    """A blocking `read(n)` of the exec's output.

    Prefer http.client's buffered reader that parsed the upgrade response: it may already
    hold the first bytes of output that arrived with the headers, which reading the bare
    socket would lose. The SDK keeps the response on the socket object it returns."""
    try:
        buffered = hijacked._response.raw._fp.fp
        read1: Callable[[int], bytes] = buffered.read1
        return read1
    except AttributeError:
        return raw.recv


class DockerExecSession:
    """One running exec; the `ExecSession` protocol of kubelet.runtime."""

    def __init__(self, api: Any, exec_id: str, hijacked: Any, *, tty: bool) -> None:
        self._api = api
        self.exec_id = exec_id
        self._hijacked = hijacked
        self._sock = _socket_of(hijacked)
        # The SDK's client timeout (60 s by default) is on the socket: an exec may wait for
        # input or output far longer.
        self._sock.settimeout(None)
        self._read = _reader_of(hijacked, self._sock)
        self._tty = tty
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[int, bytes] | BaseException | None] = asyncio.Queue(
            maxsize=_QUEUE_SIZE)
        self._closed = threading.Event()
        self._write_lock = asyncio.Lock()
        self._stdin_closed = False
        threading.Thread(target=self._read_loop, name=f"skiff-exec-{exec_id[:12]}",
                         daemon=True).start()

    # ---- the reading thread ----

    def _put(self, item: tuple[int, bytes] | BaseException | None) -> bool:
        """Hands an item to the loop, waiting while the queue is full; False when nobody
        will take it any more."""
        try:
            future = asyncio.run_coroutine_threadsafe(self._queue.put(item), self._loop)
        except RuntimeError:  # the loop is closed
            return False
        while True:
            try:
                future.result(timeout=0.5)
                return True
            except concurrent.futures.TimeoutError:
                if self._closed.is_set() or self._loop.is_closed():
                    future.cancel()
                    return False
            except (concurrent.futures.CancelledError, RuntimeError):
                return False

    def _read_loop(self) -> None:
        demuxer = None if self._tty else StreamDemuxer()
        try:
            while True:
                data = self._read(_READ_SIZE)
                if not data:
                    break
                chunks = [(STDOUT, data)] if demuxer is None else demuxer.feed(data)
                for chunk in chunks:
                    if not self._put(chunk):
                        return
        except (OSError, ValueError) as e:  # ValueError: read of a closed file
            if self._closed.is_set():
                return  # we shut the socket down ourselves
            self._put(RuntimeError_(f"exec stream broke: {e}"))
            return
        self._put(None)

    # ---- the ExecSession protocol ----

    async def write(self, data: bytes) -> None:
        if self._stdin_closed or self._closed.is_set():
            return
        async with self._write_lock:  # writes run in threads: keep them in order
            try:
                await asyncio.to_thread(self._sock.sendall, data)
            except OSError as e:
                # The command ended (or closed its stdin): like a pipe, extra input is lost.
                if not self._closed.is_set():
                    raise RuntimeError_(f"cannot write to the command's stdin: {e}") from e

    async def close_stdin(self) -> None:
        if self._stdin_closed:
            return
        self._stdin_closed = True
        async with self._write_lock:
            with contextlib.suppress(OSError):
                # Half-close: the engine turns it into end of file on the command's stdin
                # and keeps sending output.
                self._sock.shutdown(socket.SHUT_WR)

    async def output(self) -> AsyncGenerator[tuple[int, bytes], None]:
        try:
            while True:
                item = await self._queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.close()

    async def resize(self, rows: int, columns: int) -> None:
        if not self._tty or rows <= 0 or columns <= 0:
            return
        # A resize before the engine has started the process, or after it ended, fails
        # with 409/500: harmless, the next resize (or none) applies.
        with contextlib.suppress(RuntimeError_):
            await asyncio.to_thread(_engine_call, lambda: self._api.exec_resize(
                self.exec_id, height=rows, width=columns))

    async def exit_code(self) -> int:
        polls = 0
        while True:
            info = await asyncio.to_thread(_engine_call,
                                           lambda: self._api.exec_inspect(self.exec_id))
            # The output ends a moment before the engine records the exit code.
            if not info.get("Running") and info.get("ExitCode") is not None:
                return int(info["ExitCode"])
            polls += 1
            await asyncio.sleep(exponential_delay(polls, 0.01, 0.5))

    def close(self) -> None:
        """Drops the connection (the command's stdin reads end of file; it keeps running
        as in `docker exec`). Idempotent."""
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the reading thread
        with contextlib.suppress(Exception):
            self._hijacked.close()


async def docker_exec_stream(client: Any, container_id: str, command: Sequence[str], *,
                             tty: bool, stdin: bool) -> DockerExecSession:
    """Starts `command` in the container with its streams attached.

    `client`: a `docker.DockerClient` or `docker.APIClient`. Raises NotFound for a missing
    container, RuntimeError_ with the engine's message for one that is not running, and
    RuntimeUnavailable when the engine cannot be reached. A command that does not exist
    is not an error here: as with `docker exec`, the engine's message comes as output and
    the exit code is 126 or 127.
    """
    api = getattr(client, "api", client)
    created = await asyncio.to_thread(_engine_call, lambda: api.exec_create(
        container_id, list(command), stdout=True, stderr=True, stdin=stdin, tty=tty))
    exec_id = str(created["Id"])
    hijacked = await asyncio.to_thread(_engine_call, lambda: api.exec_start(
        exec_id, tty=tty, socket=True))
    return DockerExecSession(api, exec_id, hijacked, tty=tty)
