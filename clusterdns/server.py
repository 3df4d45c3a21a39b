"""The DNS server: UDP and TCP on one address and port, answering from the zone and
forwarding the rest.

UDP: an asyncio DatagramProtocol; a query for the zone is answered inside
`datagram_received`, with no task, no future and no parse by dnslib (see wire.py); only a
forwarded query becomes a task. A response larger than the client takes (512 bytes, or
its EDNS payload size) goes back as header and question with TC set, and the client asks
again over TCP, which gets the whole answer (RFC 7766).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Coroutine
from typing import Any

from clusterdns.records import ClusterZone
from clusterdns.upstream import Forwarder
from clusterdns.wire import Query, ZoneAnswers, parse_query, servfail, truncate

__all__ = ["DnsServer"]

log = logging.getLogger(__name__)

TCP_IDLE_TIMEOUT = 10.0  # seconds a TCP connection may sit without a query (RFC 7766)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        query = parse_query(data)
        if query is None:
            return
        self.server.udp_queries += 1
        response = self.server.answers.answer(query)
        if response is not None:
            if len(response) > query.udp_limit:
                response = truncate(response, query.question_end)
            assert self.transport is not None
            self.transport.sendto(response, addr)
            return
        self.server.spawn(self._forward(query, addr))

    async def _forward(self, query: Query, addr: tuple[str | object, ...]) -> None:
        response = await self.server.forward(query, tcp=False)
        if len(response) > query.udp_limit:
            response = truncate(response, query.question_end)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(response, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp: %r", exc)  # an ICMP error for an earlier answer: nothing to do


class DnsServer:
    """Serves a ClusterZone (and forwards the rest) on `host:port`, UDP and TCP."""

    def __init__(self, zone: ClusterZone, forwarder: Forwarder, host: str, port: int) -> None:
        self.zone = zone
        self.answers = ZoneAnswers(zone)
        self.forwarder = forwarder
        self.host = host
        self.port = port
        self.udp_queries = 0
        self.tcp_queries = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=(self.host, self.port))
        self._udp = transport
        if self.port == 0:  # tests: TCP on the port UDP got
            self.port = transport.get_extra_info("sockname")[1]
        self._tcp = await asyncio.start_server(self._serve_tcp, self.host, self.port)
        log.info("serving DNS for %s on %s:%d (udp, tcp)", self.zone.domain, self.host,
                 self.port)

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def forward(self, query: Query, tcp: bool) -> bytes:
        try:
            response = await self.forwarder.forward(query, tcp)
        except Exception:  # one bad upstream answer must not end the server
            log.exception("forwarding %s failed", query.qname)
            response = None
        return response if response is not None else servfail(query)

    async def _serve_tcp(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                async with asyncio.timeout(TCP_IDLE_TIMEOUT):
                    length = struct.unpack("!H", await reader.readexactly(2))[0]
                    data = await reader.readexactly(length)
                query = parse_query(data)
                if query is None:
                    break
                self.tcp_queries += 1
                response = self.answers.answer(query)
                if response is None:
                    response = await self.forward(query, tcp=True)
                writer.write(struct.pack("!H", len(response)) + response)
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
