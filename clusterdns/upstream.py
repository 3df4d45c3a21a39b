"""Names outside the cluster zone: forwarded to the node's real resolvers, with a cache.

The resolvers come from the node's resolv.conf, less loopback stubs: a cluster DNS that
forwards to 127.0.0.53 or 127.0.0.1 asks itself, or a stub that asks it again, and loops
(kubernetes#45828, coredns#2087). When systemd-resolved's stub is all resolv.conf names,
its real upstreams are in /run/systemd/resolve/resolv.conf, as the kubelet reads them.

The cache keeps whole responses by (name, type, class) for the smallest TTL they carry
(capped; negative answers for their SOA's minimum, shorter still), and serves them with
the asker's ID and question and the TTLs they have left, never past their time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dnslib import QTYPE, RCODE, DNSError, DNSRecord

from clusterdns.wire import Query

__all__ = ["SYSTEMD_RESOLV_CONF", "Forwarder", "ResponseCache", "read_upstreams"]

log = logging.getLogger(__name__)

SYSTEMD_RESOLV_CONF = "/run/systemd/resolve/resolv.conf"
DNS_PORT = 53
MAX_CACHE_TTL = 30.0  # seconds: a small cache, so a changed record is seen soon
MAX_NEGATIVE_TTL = 5.0
CACHE_ENTRIES = 10_000
ATTEMPT_TIMEOUT = 2.0  # per upstream, as glibc's default `timeout:` is 5 for a whole try
MAX_IN_FLIGHT = 1024


def _nameservers(text: str) -> list[str]:
    found = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) >= 2 and words[0] == "nameserver":
            found.append(words[1])
    return found


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return True  # not an address at all: of no use either


def read_upstreams(resolv_conf: str | Path,
                   systemd_resolv_conf: str | Path = SYSTEMD_RESOLV_CONF
                   ) -> list[tuple[str, int]]:
    """The resolvers to forward to, as (address, port): resolv.conf's nameservers that are
    not loopback; when it names only loopback stubs, systemd-resolved's upstreams."""
    try:
        named = _nameservers(Path(resolv_conf).read_text())
    except OSError as err:
        log.warning("cannot read %s: %s", resolv_conf, err)
        named = []
    usable = [a for a in named if not _is_loopback(a)]
    if not usable and named:
        with contextlib.suppress(OSError):
            usable = [a for a in _nameservers(Path(systemd_resolv_conf).read_text())
                      if not _is_loopback(a)]
        if usable:
            log.info("%s names only loopback stubs (%s); forwarding to systemd-resolved's "
                     "upstreams from %s", resolv_conf, ", ".join(named), systemd_resolv_conf)
    return [(a, DNS_PORT) for a in usable]


def _min_ttl(response: bytes) -> float:
    """How long a response may be cached: its smallest TTL (capped), negative answers for
    their SOA's minimum (capped shorter); 0 for a failure or what cannot be parsed."""
    try:
        record = DNSRecord.parse(response)
    except (DNSError, ValueError, IndexError, struct.error):
        return 0.0
    rcode = record.header.rcode
    if rcode not in (RCODE.NOERROR, RCODE.NXDOMAIN) or record.header.tc:
        return 0.0
    if record.rr:
        return float(min(MAX_CACHE_TTL, *(rr.ttl for rr in record.rr)))
    soa = [rr for rr in record.auth if rr.rtype == QTYPE.SOA]
    if soa:
        return float(min(MAX_NEGATIVE_TTL, soa[0].ttl, soa[0].rdata.times[-1]))
    return 0.0


@dataclass(slots=True)
class _Cached:
    response: bytes
    stored: float
    expires: float
    ttl_offsets: list[tuple[int, int]]  # where each record's TTL is, and its value


def _skip_name(data: bytes, i: int) -> int:
    """The offset after the (possibly compressed) name at `i`."""
    while True:
        n = data[i]
        if n & 0xC0 == 0xC0:
            return i + 2
        if n == 0:
            return i + 1
        i += n + 1


def _ttl_offsets(response: bytes) -> list[tuple[int, int]]:
    """(offset, TTL) of every record but OPT (whose TTL field holds EDNS flags), so that
    a cached response goes out with the time it has left, as CoreDNS's cache does."""
    qdcount, ancount, nscount, arcount = struct.unpack_from("!HHHH", response, 4)
    i = 12
    for _ in range(qdcount):
        i = _skip_name(response, i) + 4
    found = []
    for _ in range(ancount + nscount + arcount):
        i = _skip_name(response, i)
        rtype, _rclass, ttl, rdlength = struct.unpack_from("!HHIH", response, i)
        if rtype != QTYPE.OPT:
            found.append((i + 4, ttl))
        i += 10 + rdlength
    return found


class ResponseCache:
    """Upstream responses by question, kept for their TTL (see the module docstring)."""

    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self.entries = entries
        self._items: dict[bytes, _Cached] = {}
        self.hits = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, query: Query) -> bytes | None:
        cached = self._items.get(query.key)
        if cached is None:
            return None
        if cached.expires <= time.monotonic():
            del self._items[query.key]
            return None
        self.hits += 1
        r = bytearray(cached.response)
        # The asker's ID and spelling of the question (same length: offsets hold), and
        # the time left on each record.
        r[:2] = query.data[:2]
        r[12:query.question_end] = query.data[12:query.question_end]
        elapsed = int(time.monotonic() - cached.stored)
        for offset, ttl in cached.ttl_offsets:
            struct.pack_into("!I", r, offset, max(0, ttl - elapsed))
        return bytes(r)

    def put(self, query: Query, response: bytes) -> None:
        ttl = _min_ttl(response)
        if ttl <= 0:
            return
        try:
            offsets = _ttl_offsets(response)
        except (IndexError, struct.error):
            return  # dnslib read it, we cannot: do not cache what we cannot age
        if len(self._items) >= self.entries:
            # Drop the oldest tenth (dicts keep insertion order): simple, and bounded.
            for key in list(self._items)[: max(1, self.entries // 10)]:
                del self._items[key]
        now = time.monotonic()
        self._items[query.key] = _Cached(response, now, now + ttl, offsets)


class _UpstreamSocket(asyncio.DatagramProtocol):
    """One UDP socket for every forwarded query; responses matched by our own ID."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: dict[int, tuple[asyncio.Future[bytes], tuple[str, int]]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if len(data) < 12:
            return
        entry = self.pending.get(struct.unpack_from("!H", data)[0])
        if entry is None:
            return
        future, upstream = entry
        if (str(addr[0]), addr[1]) != upstream:
            return  # not from whom we asked: ignore (a spoofing attempt, or stale)
        if not future.done():
            future.set_result(data)


class Forwarder:
    """Forwards queries to the upstream resolvers in turn (UDP, TCP when the answer does
    not fit), through the cache."""

    def __init__(self, upstreams: Sequence[tuple[str, int]],
                 attempt_timeout: float = ATTEMPT_TIMEOUT) -> None:
        self.upstreams = list(upstreams)
        self.attempt_timeout = attempt_timeout
        self.cache = ResponseCache()
        self._sockets: dict[bool, _UpstreamSocket] = {}  # by "is IPv6"
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def start(self) -> None:
        """One socket per address family the upstreams use (a resolv.conf often names an
        IPv4 and an IPv6 resolver), bound to loopback when every upstream is there."""
        loop = asyncio.get_running_loop()
        for v6 in sorted({":" in host for host, _ in self.upstreams}):
            hosts = [h for h, _ in self.upstreams if (":" in h) == v6]
            local = ("::1" if v6 else "127.0.0.1") if all(map(_is_loopback, hosts)) else (
                "::" if v6 else "0.0.0.0")
            _, protocol = await loop.create_datagram_endpoint(_UpstreamSocket,
                                                              local_addr=(local, 0))
            self._sockets[v6] = protocol

    def close(self) -> None:
        for sock in self._sockets.values():
            if sock.transport is not None:
                sock.transport.close()

    async def forward(self, query: Query, tcp: bool) -> bytes | None:
        """The upstream's response to `query` (with the query's ID), or None when no
        upstream answered (the caller answers SERVFAIL)."""
        cached = self.cache.get(query)
        if cached is not None:
            return cached
        if not self.upstreams:
            return None
        async with self._in_flight:
            for upstream in self.upstreams:
                try:
                    response = await self._ask_udp(query.data, upstream)
                    if response[2] & 0x02 and tcp:
                        response = await self._ask_tcp(query.data, upstream)
                except (TimeoutError, OSError, asyncio.IncompleteReadError) as err:
                    log.debug("upstream %s:%d: %r", *upstream, err)
                    continue
                self.cache.put(query, response)
                return response
        return None

    async def _ask_udp(self, data: bytes, upstream: tuple[str, int]) -> bytes:
        sock = self._sockets.get(":" in upstream[0])
        assert sock is not None and sock.transport is not None, "Forwarder not started"
        while True:
            our_id = random.getrandbits(16)
            if our_id not in sock.pending:
                break
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        sock.pending[our_id] = (future, upstream)
        try:
            sock.transport.sendto(struct.pack("!H", our_id) + data[2:], upstream)
            async with asyncio.timeout(self.attempt_timeout):
                response = await future
        finally:
            sock.pending.pop(our_id, None)
        return data[:2] + response[2:]

    async def _ask_tcp(self, data: bytes, upstream: tuple[str, int]) -> bytes:
        async with asyncio.timeout(self.attempt_timeout):
            reader, writer = await asyncio.open_connection(*upstream)
            try:
                writer.write(struct.pack("!H", len(data)) + data)
                await writer.drain()
                length = struct.unpack("!H", await reader.readexactly(2))[0]
                return await reader.readexactly(length)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
