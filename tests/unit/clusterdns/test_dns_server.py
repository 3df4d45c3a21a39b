"""The server in this process on loopback, without an apiserver: a zone built here, and an
upstream that never answers (a port nobody listens on)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from dnslib import RCODE, DNSRecord

from cluster.process import free_ports
from clusterdns.records import ClusterZone
from clusterdns.server import DnsServer
from clusterdns.upstream import Forwarder
from skiff.api.v1 import core_pb2


@pytest.fixture
async def server() -> AsyncIterator[DnsServer]:
    zone = ClusterZone()
    svc = core_pb2.Service()
    svc.metadata.namespace, svc.metadata.name = "default", "web"
    svc.spec.cluster_ip = "10.96.0.20"
    zone.set_service(svc)
    alias = core_pb2.Service()
    alias.metadata.namespace, alias.metadata.name = "default", "alias"
    alias.spec.type, alias.spec.external_name = "ExternalName", "web.default.svc.cluster.local"
    zone.set_service(alias)
    forwarder = Forwarder([("127.0.0.1", free_ports(1)[0])], attempt_timeout=0.3)
    await forwarder.start()
    dns = DnsServer(zone, forwarder, "127.0.0.1", 0)
    await dns.start()
    yield dns
    await dns.stop()
    forwarder.close()


async def ask(server: DnsServer, name: str, tcp: bool) -> DNSRecord:
    query = DNSRecord.question(name)
    # dnslib's client blocks: in a thread, so that this loop goes on serving.
    wire = await asyncio.to_thread(query.send, "127.0.0.1", server.port, tcp=tcp, timeout=3)
    return DNSRecord.parse(wire)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_zone_names_answer_and_a_dead_upstream_is_servfail(server: DnsServer,
                                                                 tcp: bool) -> None:
    answer = await ask(server, "web.default.svc.cluster.local", tcp)
    assert [str(rr.rdata) for rr in answer.rr] == ["10.96.0.20"]
    failed = await ask(server, "www.example.test", tcp)
    assert failed.header.rcode == RCODE.SERVFAIL and not failed.rr


async def test_an_external_name_naming_another_service_is_followed_in_the_zone(
        server: DnsServer) -> None:
    answer = await ask(server, "alias.default.svc.cluster.local", tcp=False)
    assert [str(rr.rdata) for rr in answer.rr] == ["web.default.svc.cluster.local.",
                                                   "10.96.0.20"]
