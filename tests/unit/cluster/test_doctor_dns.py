"""`skiff doctor`'s cluster DNS check against a real DNS server on loopback (dnslib's)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from dnslib import RR, DNSRecord

from cluster.doctor import dns_check
from cluster.process import free_ports


@pytest.fixture
def answering() -> Iterator[tuple[int, list[str]]]:
    """A UDP server on 127.0.0.1 answering A queries with the addresses in its list."""
    answers: list[str] = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(512)
            except TimeoutError:
                continue
            query = DNSRecord.parse(data)
            reply = query.reply()
            for address in answers:
                reply.add_answer(*RR.fromZone(f"{query.q.qname} 5 A {address}"))
            sock.sendto(reply.pack(), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[1], answers
    stop.set()
    thread.join()
    sock.close()


def test_the_dns_address_answering_itself_is_ok(answering: tuple[int, list[str]]) -> None:
    port, answers = answering
    answers.append("127.0.0.1")
    check = dns_check("127.0.0.1", port=port)
    assert check.ok and check.detail == f"127.0.0.1:{port} answers on this node"


def test_a_wrong_answer_or_none_fails_and_says_how_to_fix(
        answering: tuple[int, list[str]]) -> None:
    port, answers = answering
    answers.append("10.0.0.9")
    wrong = dns_check("127.0.0.1", port=port)
    assert not wrong.ok and "answered kube-dns.kube-system.svc.cluster.local with " \
        "['10.0.0.9'], not 127.0.0.1" in wrong.detail
    silent = dns_check("127.0.0.1", port=free_ports(1)[0], timeout=0.5)
    assert not silent.ok and silent.detail.startswith("no answer from 127.0.0.1:")
    assert "systemctl status skiff-dns" in silent.line()
