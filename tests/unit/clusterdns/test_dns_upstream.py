"""Which resolvers skiff-dns forwards to (never a loopback stub), and its cache of their
answers (kept for their TTL, served with the asker's ID and spelling)."""

from __future__ import annotations

from pathlib import Path

import pytest
from dnslib import QTYPE, RCODE, RR, SOA, A, DNSRecord

from clusterdns import upstream
from clusterdns.upstream import ResponseCache, read_upstreams
from clusterdns.wire import Query, parse_query, truncate


def test_loopback_stubs_are_skipped(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# a comment\nnameserver 127.0.0.53\nnameserver 10.0.0.2\n"
                    "nameserver ::1\nnameserver fe80::1%eth0\nsearch example.com\n"
                    "options edns0 trust-ad\n")
    assert read_upstreams(conf, tmp_path / "absent") == [("10.0.0.2", 53), ("fe80::1%eth0", 53)]


def test_a_systemd_resolved_stub_alone_sends_us_to_its_upstreams(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.0.0.53\noptions edns0\n")
    systemd = tmp_path / "systemd-resolv.conf"
    systemd.write_text("nameserver 192.0.2.53\nnameserver 198.51.100.53\n")
    assert read_upstreams(conf, systemd) == [("192.0.2.53", 53), ("198.51.100.53", 53)]
    assert read_upstreams(conf, tmp_path / "absent") == []
    assert read_upstreams(tmp_path / "absent", systemd) == []


def _query(name: str, qtype: str = "A") -> Query:
    query = parse_query(DNSRecord.question(name, qtype).pack())
    assert query is not None
    return query


def _response(query: Query, ttl: int, rcode: int = RCODE.NOERROR) -> bytes:
    reply = DNSRecord.parse(query.data).reply()
    reply.header.rcode = rcode
    if rcode == RCODE.NOERROR:
        reply.add_answer(RR(reply.q.qname, QTYPE.A, rdata=A("192.0.2.7"), ttl=ttl))
    else:
        reply.add_auth(RR("example.test", QTYPE.SOA, ttl=ttl, rdata=SOA(
            "ns.example.test", "h.example.test", (1, 2, 3, 4, ttl))))
    return bytes(reply.pack())


def test_the_cache_keeps_an_answer_for_its_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(upstream.time, "monotonic", lambda: now[0])
    cache = ResponseCache()
    first = _query("www.example.test")
    cache.put(first, _response(first, ttl=10))
    again = _query("WWW.Example.test")  # another ID, another spelling
    hit = cache.get(again)
    assert hit is not None
    parsed = DNSRecord.parse(hit)
    assert parsed.header.id == again.data[0] << 8 | again.data[1]
    assert str(parsed.q.qname) == "WWW.Example.test."
    assert [str(rr.rdata) for rr in parsed.rr] == ["192.0.2.7"]
    assert parsed.rr[0].ttl == 10
    now[0] += 4.2
    assert DNSRecord.parse(cache.get(again)).rr[0].ttl == 6  # type: ignore[arg-type]
    now[0] += 6.3
    assert cache.get(again) is None


def test_negative_answers_are_kept_briefly_and_failures_not_at_all(
        monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr(upstream.time, "monotonic", lambda: now[0])
    cache = ResponseCache()
    missing = _query("missing.example.test")
    cache.put(missing, _response(missing, ttl=3600, rcode=RCODE.NXDOMAIN))
    assert cache.get(missing) is not None
    now[0] += upstream.MAX_NEGATIVE_TTL + 0.1
    assert cache.get(missing) is None
    failing = _query("failing.example.test")
    reply = DNSRecord.parse(failing.data).reply()
    reply.header.rcode = RCODE.SERVFAIL
    cache.put(failing, bytes(reply.pack()))
    assert cache.get(failing) is None


def test_truncation_keeps_the_header_and_question_with_tc_set() -> None:
    query = _query("www.example.test")
    cut = DNSRecord.parse(truncate(_response(query, ttl=10), query.question_end))
    assert cut.header.tc == 1 and not cut.rr and str(cut.q.qname) == "www.example.test."
