"""Queries and responses on the wire: the hot path.

A query for a name in the cluster zone is answered from bytes encoded once: the response
for (name, type) is kept as the part after the question (the answer, authority and
additional sections, made by dnslib with names compressed against the question) and the
header's counts. Answering then is a parse of the question (a walk over its labels),
one dict lookup and a join: the query's ID, the flags, the query's own question (so a
client that mixes case, as some do against spoofing, gets its spelling back) and the
encoded sections. dnslib is used only when a (name, type) is first asked after a change.
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass

from dnslib import QTYPE, RCODE, DNSHeader, DNSLabel, DNSQuestion, DNSRecord

from clusterdns.records import Answer, ClusterZone

__all__ = ["MAX_UDP", "Query", "ZoneAnswers", "parse_query", "servfail", "truncate"]

MAX_UDP = 512  # without EDNS (RFC 1035)
EDNS_MAX = 4096  # what we accept over UDP at most, whatever a client offers
_OPT_TYPE = b"\x00\x29"
# Our OPT record: root name, type OPT, our payload size, no extended rcode/flags, no data.
_OPT_RR = b"\x00" + _OPT_TYPE + struct.pack("!H", EDNS_MAX) + b"\x00\x00\x00\x00\x00\x00"
_QCLASS_IN = b"\x00\x01"
_QCLASS_ANY = b"\x00\xff"
_CACHE_LIMIT = 100_000  # encoded answers kept before the cache starts afresh


@dataclass(frozen=True, slots=True)
class Query:
    """What the hot path needs of a query: the cache key, where the question ends, and
    the largest response the client takes over UDP."""

    data: bytes
    key: bytes  # the name's wire form in lower case + type + class
    question_end: int
    edns: bool
    udp_limit: int

    @property
    def qname(self) -> str:
        """The name, lower case, dotted, without the final dot."""
        labels, i, wire = [], 0, self.key
        while wire[i]:
            n = wire[i]
            labels.append(wire[i + 1:i + 1 + n].decode("ascii", "replace"))
            i += n + 1
        return ".".join(labels)

    @property
    def qtype(self) -> int:
        value: int = struct.unpack_from("!H", self.key, len(self.key) - 4)[0]
        return value

    @property
    def qclass(self) -> bytes:
        return self.key[-2:]


def parse_query(data: bytes) -> Query | None:
    """The query in `data`, or None when it is not one we answer (a response, not a
    standard query, not exactly one question, a compressed or malformed question): the
    caller drops it, as CoreDNS drops what it cannot parse."""
    if type(data) is not bytes:
        data = bytes(data)  # dnslib packs into bytearrays, which cannot be keys
    if len(data) < 17 or data[2] & 0xF8 or data[4:6] != b"\x00\x01":
        return None  # QR set or opcode not QUERY, or QDCOUNT != 1
    i = 12
    try:
        n = data[i]
        while n:
            if n & 0xC0:
                return None
            i += n + 1
            n = data[i]
    except IndexError:
        return None
    end = i + 5  # the root label, type and class
    if end > len(data):
        return None
    key = data[12:i + 1].lower() + data[i + 1:end]
    edns, limit = False, MAX_UDP
    if data[10:12] != b"\x00\x00" and data[end + 1:end + 3] == _OPT_TYPE and data[end] == 0:
        edns = True
        offered = struct.unpack_from("!H", data, end + 3)[0] if len(data) >= end + 5 else 0
        limit = min(max(offered, MAX_UDP), EDNS_MAX)
    return Query(data, key, end, edns, limit)


def truncate(response: bytes, question_end: int) -> bytes:
    """The response cut to its header and question, with TC set: "ask me over TCP"."""
    header = bytearray(response[:12])
    header[2] |= 0x02
    header[6:12] = b"\x00\x00\x00\x00\x00\x00"
    return bytes(header) + response[12:question_end]


def servfail(query: Query) -> bytes:
    flags = bytes([0x80 | (query.data[2] & 0x01), 0x80 | RCODE.SERVFAIL])
    return query.data[:2] + flags + b"\x00\x01\x00\x00\x00\x00\x00\x00" + query.data[
        12:query.question_end]


@dataclass(frozen=True, slots=True)
class _Encoded:
    flags: bytes  # the second byte of flags and the counts (QD, AN, NS, AR)
    first_flags: int  # the first byte of flags, without RD
    counts: bytes  # ANCOUNT NSCOUNT ARCOUNT
    arcount: int
    sections: bytes
    chase: str = ""  # an ExternalName's target, whose addresses the upstream may know
    lean: _Encoded | None = None  # the same without the additional section, if it had one


@dataclass(frozen=True, slots=True)
class Chase:
    """The zone's answer is a CNAME out of the cluster (an ExternalName Service): the
    caller asks upstream for `target` and adds what it gets to `response`, as CoreDNS
    does, since stub resolvers (glibc's) do not follow a CNAME themselves."""

    response: bytes
    target: str


class ZoneAnswers:
    """Encoded answers of a ClusterZone. When a Service changes, the answers for its
    names are forgotten, and those for names no Service owns; the rest stay encoded (with
    a thousand Services asked for, re-encoding all of them on every endpoint change would
    cost more than answering)."""

    def __init__(self, zone: ClusterZone) -> None:
        self.zone = zone
        self._cache: dict[bytes, _Encoded | None] = {}
        self._by_owner: dict[str, list[bytes]] = {}  # Service -> its names' cache keys
        self._unowned: list[bytes] = []
        self._version = zone.version
        # False while the informers have not synced: the zone's names get SERVFAIL (ask
        # again), never an NXDOMAIN that would be cached for a Service not heard of yet.
        self.synced = True

    def _forget_changes(self) -> None:
        changed = self.zone.changed_since(self._version)
        self._version = self.zone.version
        cache = self._cache
        if changed is None:
            self._forget_all()
            return
        for key in self._unowned:
            cache.pop(key, None)
        self._unowned.clear()
        for owner in changed:
            for key in self._by_owner.pop(owner, ()):
                cache.pop(key, None)

    def _forget_all(self) -> None:
        self._cache.clear()
        self._by_owner.clear()
        self._unowned.clear()

    def answer(self, query: Query) -> bytes | Chase | None:
        """The response to `query` if its name is the zone's (the full response: the
        caller truncates it for UDP), else None (to be forwarded); a Chase for an
        ExternalName's CNAME."""
        if not self.synced:
            return self._unsynced(query)
        if self._version != self.zone.version:
            self._forget_changes()
        cache = self._cache
        encoded = cache.get(query.key, _MISSING)
        if encoded is _MISSING:
            if len(cache) >= _CACHE_LIMIT:
                self._forget_all()
            encoded = cache[query.key] = self._encode(query)
            owner = self.zone.owner(query.qname)
            if owner is None:
                self._unowned.append(query.key)
            else:
                self._by_owner.setdefault(owner, []).append(query.key)
        if encoded is None:
            return None
        if encoded.chase:
            return Chase(self._join(query, encoded), encoded.chase)
        return self._join(query, encoded)

    def _unsynced(self, query: Query) -> bytes | None:
        if not self.zone.is_authoritative(query.qname):
            return None
        return servfail(query)

    def fit(self, query: Query, response: bytes) -> bytes:
        """`response` made to fit the client's UDP limit: without its additional section
        if that is enough (RFC 2181 9: no TC bit for a missing additional section), else
        truncated."""
        encoded = self._cache.get(query.key)
        if encoded is not None and encoded.lean is not None:
            lean = self._join(query, encoded.lean)
            if len(lean) <= query.udp_limit:
                return lean
        return truncate(response, query.question_end)

    @staticmethod
    def _join(query: Query, encoded: _Encoded) -> bytes:
        data = query.data
        end = query.question_end
        if query.edns:
            return b"".join((data[:2], bytes((encoded.first_flags | (data[2] & 0x01),)),
                             encoded.flags[:1], b"\x00\x01", encoded.counts[:4],
                             struct.pack("!H", encoded.arcount + 1), data[12:end],
                             encoded.sections, _OPT_RR))
        return b"".join((data[:2], bytes((encoded.first_flags | (data[2] & 0x01),)),
                         encoded.flags, data[12:end], encoded.sections))

    def _encode(self, query: Query) -> _Encoded | None:
        qclass = query.qclass
        name = query.qname
        if qclass not in (_QCLASS_IN, _QCLASS_ANY):
            return None if not self.zone.is_authoritative(name) else _encode_answer(
                query, Answer(RCODE.REFUSED))
        answer = self.zone.lookup(name, query.qtype)
        if answer is None:
            return None
        return _encode_answer(query, answer)


_MISSING: _Encoded | None = _Encoded(b"", 0, b"", 0, b"")  # a sentinel of the cache's type


def _encode_answer(query: Query, answer: Answer) -> _Encoded:
    encoded = _encode_sections(query, answer)
    if answer.additional:
        lean = _encode_sections(query, Answer(answer.rcode, answer.answer, answer.authority))
        encoded = dataclasses.replace(encoded, lean=lean)
    return encoded


def _encode_sections(query: Query, answer: Answer) -> _Encoded:
    labels = []
    wire, i = query.key, 0
    while wire[i]:
        labels.append(wire[i + 1:i + 1 + wire[i]])
        i += wire[i] + 1
    record = DNSRecord(DNSHeader(id=0, qr=1, aa=1, ra=1, rcode=answer.rcode),
                       q=DNSQuestion(DNSLabel(labels), query.qtype, 1))
    record.add_answer(*answer.answer)
    record.add_auth(*answer.authority)
    record.add_ar(*answer.additional)
    packed = record.pack()
    question_length = len(query.key)
    chase = ""
    if (query.qtype in (QTYPE.A, QTYPE.AAAA) and len(answer.answer) == 1
            and answer.answer[0].rtype == QTYPE.CNAME):
        chase = str(answer.answer[0].rdata.label).rstrip(".")
    return _Encoded(flags=bytes(packed[3:12]), first_flags=packed[2] & 0xFE,
                    counts=packed[6:12], arcount=struct.unpack_from("!H", packed, 10)[0],
                    sections=bytes(packed[12 + question_length:]), chase=chase)
