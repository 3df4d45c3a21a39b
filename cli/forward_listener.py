"""The local side of `skiff port-forward`: listeners on this machine, and for each accepted
connection one stream to the pod's port (Client.port_forward), bytes copied both ways.

As kubectl: each port listens on every address (`localhost` is 127.0.0.1 and ::1, either of
which may be missing); a port that cannot listen is reported and the others go on, and only
when none listens is it an error. A local port 0 becomes a free port, the same on every
address. Each connection prints `Handling connection for PORT`; a connection the pod's side
refuses is closed, its error printed, and the forwarding goes on.

Half-close: the local client's end of file is passed on (the pod's server reads end of file
and still answers, as HTTP/1.0 clients and request/response protocols need); the pod's side
closing the connection closes the local one once its bytes are written.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

from cli.errors import CliError, one_line
from cli.forward_ports import ForwardedPort, ListenAddress
from skiff.client import errors
from skiff.client.client import PortForwardStream

_READ_SIZE = 32 * 1024

OpenStream = Callable[[int], Awaitable[PortForwardStream]]


@dataclass
class _Listening:
    port: ForwardedPort  # with the local port chosen
    servers: list[asyncio.Server]


def _host_port(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _listen_error(address: str, port: int, err: OSError) -> str:
    network = "tcp6" if ":" in address else "tcp4"
    reason = err.strerror or str(err)
    reason = reason[:1].lower() + reason[1:]
    return (f"unable to create listener: Error listen {network} {_host_port(address, port)}: "
            f"bind: {reason}")


class PortForwarder:
    def __init__(self, open_stream: OpenStream, ports: Sequence[ForwardedPort],
                 addresses: Sequence[ListenAddress], *, out: TextIO | None = None,
                 err: TextIO | None = None) -> None:
        self._open_stream = open_stream
        self.ports = list(ports)
        self.addresses = list(addresses)
        self._out = out or sys.stdout
        self._err = err or sys.stderr
        self.listening: list[_Listening] = []
        self._connections: set[asyncio.Task[None]] = set()

    def _say(self, line: str, *, error: bool = False) -> None:
        stream = self._err if error else self._out
        print(line, file=stream, flush=True)

    async def listen(self) -> None:
        """Listens on every port and address; CliError when no port could."""
        for port in self.ports:
            listening = await self._listen_on_port(port)
            if listening is not None:
                self.listening.append(listening)
        if not self.listening:
            wanted = " ".join(f"{{{p.local} {p.remote}}}" for p in self.ports)
            raise CliError(f"unable to listen on any of the requested ports: [{wanted}]")

    async def _listen_on_port(self, port: ForwardedPort) -> _Listening | None:
        servers: list[asyncio.Server] = []
        failures: list[str] = []
        failed = {"all": 0, "any": 0}
        succeeded = {"all": 0, "any": 0}
        local = port.local
        for address in self.addresses:
            try:
                server = await asyncio.start_server(
                    functools.partial(self._accepted, remote=port.remote),
                    host=address.address, port=local, reuse_address=True)
            except OSError as err:
                failures.append(_listen_error(address.address, local, err))
                failed[address.failure_mode] += 1
                continue
            succeeded[address.failure_mode] += 1
            local = server.sockets[0].getsockname()[1]  # 0: the port the first one got
            servers.append(server)
            self._say(f"Forwarding from {_host_port(address.address, local)} -> "
                      f"{port.remote}")
        if (succeeded["all"] == 0 and failed["all"] > 0) or failed["any"] > 0:
            for server in servers:
                server.close()
            self._say(f"Unable to listen on port {port.local}: Listeners failed to create "
                      f"with the following errors: [{' '.join(failures)}]", error=True)
            return None
        return _Listening(ForwardedPort(local, port.remote), servers)

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        remote: int) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        local = writer.get_extra_info("sockname")[1]
        try:
            self._say(f"Handling connection for {local}")
            await self._forward(reader, writer, local, remote)
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       local: int, remote: int) -> None:
        try:
            stream = await self._open_stream(remote)
        except errors.ApiError as err:
            self._failed(local, remote, err.message)
            return
        to_pod = asyncio.create_task(_copy_to_pod(reader, stream))
        try:
            while data := await stream.read():
                writer.write(data)
                await writer.drain()
        except errors.ApiError as err:
            self._failed(local, remote, err.message)
        except (ConnectionError, OSError):
            pass  # the local client went away
        finally:
            to_pod.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await to_pod
            stream.close()

    def _failed(self, local: int, remote: int, message: str) -> None:
        self._say(f"an error occurred forwarding {local} -> {remote}: {one_line(message)}",
                  error=True)

    async def close(self) -> None:
        """Stops listening and ends every connection."""
        for listening in self.listening:
            for server in listening.servers:
                server.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _copy_to_pod(reader: asyncio.StreamReader, stream: PortForwardStream) -> None:
    try:
        while data := await reader.read(_READ_SIZE):
            await stream.write(data)
    except (ConnectionError, OSError):
        stream.close()  # reset locally: the pod's side is closed too
        return
    except errors.ApiError:
        return  # the stream failed: its reading side says why
    await stream.done_writing()

