"""The DNS server: UDP and TCP on one address and port, answering from the zone and
forwarding the rest.

UDP: a non-blocking socket drained from the event loop's reader callback; a query for the
zone is answered right there, with no task, no future and no parse by dnslib (see
wire.py); only a forwarded query becomes a task. A response larger than the client takes
(512 bytes, or its EDNS payload size) goes back as header and question with TC set, and
the client asks again over TCP, which gets the whole answer (RFC 7766).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Coroutine
from typing import Any

from dnslib import QTYPE, RCODE, DNSRecord

from clusterdns.records import ClusterZone
from clusterdns.upstream import Forwarder
from clusterdns.wire import Chase, Query, ZoneAnswers, parse_query, servfail, truncate

__all__ = ["DnsServer"]

log = logging.getLogger(__name__)

TCP_IDLE_TIMEOUT = 10.0  # seconds a TCP connection may sit without a query (RFC 7766)
# Forwarded UDP queries waiting at once; past it new ones are dropped (the client retries),
# so a flood of foreign names cannot grow the process without bound.
MAX_PENDING = 4096


class _UdpSocket:
    """The UDP side: a non-blocking socket read straight from the event loop's reader
    callback, draining up to BATCH datagrams per wake-up (asyncio's DatagramTransport
    reads one per loop iteration, and its per-datagram overhead was most of the cost)."""

    BATCH = 64  # then yield, so that TCP, the informers and forwarded answers get a turn

    def __init__(self, server: DnsServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.closed = False

    def on_readable(self) -> None:
        sock, server = self.sock, self.server
        answers = server.answers
        for _ in range(self.BATCH):
            try:
                data, addr = sock.recvfrom(4096)  # EDNS_MAX: no query is larger
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:  # an ICMP error for an earlier answer: nothing to do
                log.debug("udp: %r", err)
                continue
            query = parse_query(data)
            if query is None:
                continue
            server.udp_queries += 1
            response = answers.answer(query)
            if type(response) is bytes:
                if len(response) > query.udp_limit:
                    response = answers.fit(query, response)
                self.send(response, addr)
            elif len(server._tasks) < MAX_PENDING:
                server.spawn(self._resolve(query, response, addr))
            else:
                server.dropped += 1

    def send(self, response: bytes, addr: Any) -> None:
        try:
            self.sock.sendto(response, addr)
        except (BlockingIOError, InterruptedError):
            self.server.dropped += 1  # the send buffer is full: the client will retry
        except OSError as err:
            log.debug("udp: sending to %s: %r", addr, err)

    async def _resolve(self, query: Query, local: Chase | bytes | None, addr: Any) -> None:
        response = await self.server.resolve(query, local, tcp=False)
        if len(response) > query.udp_limit:
            response = truncate(response, query.question_end)
        if not self.closed:
            self.send(response, addr)


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
        self.dropped = 0
        self._udp: _UdpSocket | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, handed: list[socket.socket] | None = None) -> None:
        """Serves on the UDP and TCP sockets of `handed` (bound and listening already:
        socket activation), binding the ones missing there on host:port."""
        loop = asyncio.get_running_loop()
        udp = next((s for s in handed or [] if s.type == socket.SOCK_DGRAM), None)
        tcp = next((s for s in handed or [] if s.type == socket.SOCK_STREAM), None)
        if udp is None:
            family, _, _, _, address = (await loop.getaddrinfo(
                self.host, self.port, type=socket.SOCK_DGRAM))[0]
            udp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                udp.bind(address)
            except OSError:
                udp.close()
                raise
            if self.port == 0:  # tests: TCP on the port UDP got
                self.port = udp.getsockname()[1]
        udp.setblocking(False)
        self._udp = _UdpSocket(self, udp)
        loop.add_reader(udp.fileno(), self._udp.on_readable)
        if tcp is None:
            self._tcp = await asyncio.start_server(self._serve_tcp, self.host, self.port)
        else:
            self._tcp = await asyncio.start_server(self._serve_tcp, sock=tcp)
        log.info("serving DNS for %s on %s:%d (udp, tcp%s)", self.zone.domain, self.host,
                 self.port, "; sockets handed over" if handed else "")

    async def stop(self) -> None:
        if self._udp is not None:
            asyncio.get_running_loop().remove_reader(self._udp.sock.fileno())
            self._udp.closed = True
            self._udp.sock.close()
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

    async def resolve(self, query: Query, local: Chase | bytes | None, tcp: bool) -> bytes:
        """The response to a query the zone did not answer alone: forwarded (None), or an
        ExternalName's CNAME with the target's records from upstream (Chase)."""
        if isinstance(local, bytes):
            return local
        if local is not None:
            return await self._chase(local, query, tcp)
        try:
            response = await self.forwarder.forward(query, tcp)
        except Exception:  # one bad upstream answer must not end the server
            log.exception("forwarding %s failed", query.qname)
            response = None
        return response if response is not None else servfail(query)

    async def _chase(self, chase: Chase, query: Query, tcp: bool) -> bytes:
        """The CNAME, and the target's records when the upstream (or the zone itself, for
        an ExternalName naming another Service) has them; if not, the CNAME alone: the
        client may ask for the target itself."""
        target = parse_query(DNSRecord.question(chase.target, QTYPE[query.qtype]).pack())
        if target is None:
            return chase.response
        try:
            if self.zone.is_authoritative(target.qname):
                local = self.answers.answer(target)
                # One step only: a CNAME to a CNAME in the zone stays as it is.
                found = local if isinstance(local, bytes) else None
            else:
                found = await self.forwarder.forward(target, tcp)
            if found is None:
                return chase.response
            upstream = DNSRecord.parse(found)
            if upstream.header.rcode != RCODE.NOERROR or not upstream.rr:
                return chase.response
            response = DNSRecord.parse(chase.response)
            response.add_answer(*upstream.rr)
            return bytes(response.pack())
        except Exception:  # whatever the upstream said, the CNAME stands
            log.exception("resolving %s (the target of %s) failed", chase.target, query.qname)
            return chase.response

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
                local = self.answers.answer(query)
                response = (local if type(local) is bytes
                            else await self.resolve(query, local, tcp=True))
                writer.write(struct.pack("!H", len(response)) + response)
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
