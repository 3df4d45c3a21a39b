"""skiff-dns, the real process, against the real apiserver and etcd, asked real DNS queries
over UDP and TCP on loopback.

Services are created through the apiserver; Endpoints are written by the tests (as for a
Service without a selector), so these tests do not depend on the Endpoints controller.
Names outside the cluster go to a fake upstream resolver this module runs on loopback:
no query leaves the machine.
"""

from __future__ import annotations

import contextlib
import socketserver
import struct
import subprocess
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from dnslib import EDNS0, QTYPE, RCODE, RR, TXT, A, DNSRecord
from fixtures.simcluster import until

from cluster.components import dns_command
from cluster.process import die_with_parent, free_ports
from skiff.api.v1 import core_pb2
from skiff.client import errors
from skiff.client.client import Client

REPO = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"


# --- a fake upstream resolver on loopback ---------------------------------------------------


class FakeUpstream:
    """Answers `*.upstream.test` A with 192.0.2.1 (TTL 60), `big.upstream.test` TXT with
    more than 512 bytes, everything else NXDOMAIN; counts the questions it gets."""

    def __init__(self) -> None:
        self.asked: Counter[str] = Counter()
        upstream = self

        def respond(data: bytes) -> bytes:
            query = DNSRecord.parse(data)
            name = str(query.q.qname).rstrip(".").lower()
            upstream.asked[name] += 1
            reply = query.reply()
            if name == "big.upstream.test":
                for i in range(12):
                    reply.add_answer(RR(query.q.qname, QTYPE.TXT, ttl=60,
                                        rdata=TXT("x" * 60 + str(i))))
            elif name.endswith(".upstream.test"):
                reply.add_answer(RR(query.q.qname, QTYPE.A, rdata=A("192.0.2.1"), ttl=60))
            else:
                reply.header.rcode = RCODE.NXDOMAIN
            return bytes(reply.pack())

        class Udp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                response = respond(data)
                if len(response) > 512:
                    response = bytes(DNSRecord.parse(response).truncate().pack())
                sock.sendto(response, self.client_address)

        class Tcp(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                length = struct.unpack("!H", self.rfile.read(2))[0]
                response = respond(self.rfile.read(length))
                self.wfile.write(struct.pack("!H", len(response)) + response)

        self.udp = socketserver.ThreadingUDPServer((LOOPBACK, 0), Udp)
        port = self.udp.server_address[1]
        self.tcp = socketserver.ThreadingTCPServer((LOOPBACK, port), Tcp)
        self.address = f"{LOOPBACK}:{port}"
        for server in (self.udp, self.tcp):
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def close(self) -> None:
        for server in (self.udp, self.tcp):
            server.shutdown()
            server.server_close()


# --- the skiff-dns process ------------------------------------------------------------------


class DnsProcess:
    def __init__(self, apiserver: str, upstream: str, log_file: Path,
                 extra: tuple[str, ...] = ()) -> None:
        self.port = free_ports(1)[0]
        self.argv = dns_command(server=apiserver, bind_address=LOOPBACK, port=self.port,
                                upstreams=[upstream], extra=extra)
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DnsProcess:
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(self.argv, cwd=REPO, stdout=log,
                                         stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError("skiff-dns exited:\n" + self.log_file.read_text()[-3000:])
            with contextlib.suppress(OSError, TimeoutError):
                self.ask("dns-version.cluster.local", "TXT", timeout=0.3)
                return
            time.sleep(0.05)
        raise RuntimeError("skiff-dns did not answer:\n" + self.log_file.read_text()[-3000:])

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def ask(self, name: str, qtype: str = "A", *, tcp: bool = False,
            timeout: float = 2.0) -> DNSRecord:
        query = DNSRecord.question(name, qtype)
        wire = query.send(LOOPBACK, self.port, tcp=tcp, timeout=timeout)
        response = DNSRecord.parse(wire)
        assert response.header.id == query.header.id
        return response


def addresses(response: DNSRecord) -> list[str]:
    return sorted(str(rr.rdata) for rr in response.rr if rr.rtype == QTYPE.A)


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream()
    yield fake
    fake.close()


@pytest.fixture
def dns(apiserver: Any, upstream: FakeUpstream, tmp_path: Path) -> Iterator[DnsProcess]:
    process = DnsProcess(apiserver.address, upstream.address, tmp_path / "skiff-dns.log")
    process.start().wait_ready()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def services(client: Client, ns: str) -> AsyncIterator[Client]:
    yield client
    for kind in (core_pb2.Service, core_pb2.Endpoints, core_pb2.Pod):
        items, _ = await client.list(kind, ns)
        for item in items:
            with contextlib.suppress(errors.NotFound):
                await client.delete(kind, item.metadata.name, ns,  # type: ignore[attr-defined]
                                    **({"grace_period": 0} if kind is core_pb2.Pod else {}))
    with contextlib.suppress(errors.NotFound):
        await client.delete(core_pb2.Namespace, ns)


async def make_service(client: Client, ns: str, name: str, *, headless: bool = False,
                       ports: tuple[tuple[str, int], ...] = (("http", 80),),
                       external_name: str = "") -> core_pb2.Service:
    svc = core_pb2.Service()
    svc.metadata.namespace, svc.metadata.name = ns, name
    if external_name:
        svc.spec.type, svc.spec.external_name = "ExternalName", external_name
    else:
        for port_name, port in ports:
            svc.spec.ports.add(name=port_name, port=port, protocol="TCP")
    if headless:
        svc.spec.cluster_ip = "None"
    created: core_pb2.Service = await client.create(svc)
    return created


async def write_endpoints(client: Client, ns: str, name: str,
                          addresses: list[tuple[str, str]], port: tuple[str, int] = ("http", 80)
                          ) -> None:
    ep = core_pb2.Endpoints()
    ep.metadata.namespace, ep.metadata.name = ns, name
    subset = ep.subsets.add()
    for ip, hostname in addresses:
        subset.addresses.add(ip=ip, hostname=hostname)
    subset.ports.add(name=port[0], port=port[1], protocol="TCP")
    try:
        await client.create(ep)
    except errors.AlreadyExists:
        current: core_pb2.Endpoints = await client.get(core_pb2.Endpoints, name, ns)
        ep.metadata.resource_version = current.metadata.resource_version
        await client.update(ep)


async def resolves(dns: DnsProcess, name: str, qtype: str = "A", *, tcp: bool = False
                   ) -> DNSRecord | None:
    response = dns.ask(name, qtype, tcp=tcp)
    return response if response.rr else None


# --- tests ----------------------------------------------------------------------------------


async def test_services_resolve_over_udp_and_tcp(dns: DnsProcess, services: Client,
                                                ns: str) -> None:
    web = await make_service(services, ns, "web")
    assert web.spec.cluster_ip
    await make_service(services, ns, "db", headless=True, ports=(("pg", 5432),))
    await write_endpoints(services, ns, "db", [("10.244.1.5", "db-0"), ("10.244.2.6", "")],
                          port=("pg", 5432))
    await make_service(services, ns, "ext", external_name="mail.upstream.test")
    name = f"web.{ns}.svc.cluster.local"
    response = await until(lambda: resolves(dns, name), 15, f"{name} to resolve")
    assert addresses(response) == [web.spec.cluster_ip]
    assert addresses(dns.ask(name, tcp=True)) == [web.spec.cluster_ip]

    headless = await until(lambda: resolves(dns, f"db.{ns}.svc.cluster.local"), 15,
                           "the headless service to resolve")
    assert addresses(headless) == ["10.244.1.5", "10.244.2.6"]
    assert addresses(dns.ask(f"db-0.db.{ns}.svc.cluster.local")) == ["10.244.1.5"]
    srv = dns.ask(f"_pg._tcp.db.{ns}.svc.cluster.local", "SRV", tcp=True)
    assert sorted(str(rr.rdata.target) for rr in srv.rr) == [
        f"10-244-2-6.db.{ns}.svc.cluster.local.", f"db-0.db.{ns}.svc.cluster.local."]
    srv = dns.ask(f"_http._tcp.web.{ns}.svc.cluster.local", "SRV")
    assert [(rr.rdata.port, str(rr.rdata.target)) for rr in srv.rr] == [(80, name + ".")]

    ext = await until(lambda: resolves(dns, f"ext.{ns}.svc.cluster.local"), 15,
                      "the ExternalName service to resolve")
    # The CNAME, and the target's address as the upstream resolver gave it.
    assert [(rr.rtype, str(rr.rdata)) for rr in ext.rr] == [
        (QTYPE.CNAME, "mail.upstream.test."), (QTYPE.A, "192.0.2.1")]
    assert [str(rr.rdata) for rr in dns.ask(f"ext.{ns}.svc.cluster.local", "CNAME").rr] == [
        "mail.upstream.test."]

    assert dns.ask(f"nope.{ns}.svc.cluster.local").header.rcode == RCODE.NXDOMAIN

    # An endpoint going away is gone from the answer; a deleted service is NXDOMAIN.
    await write_endpoints(services, ns, "db", [("10.244.2.6", "")], port=("pg", 5432))
    await until(lambda: _equals(dns, f"db.{ns}.svc.cluster.local", ["10.244.2.6"]), 15,
                "the endpoint's removal to show")
    await services.delete(core_pb2.Service, "web", ns)
    await until(lambda: _rcode(dns, name, RCODE.NXDOMAIN), 15, "the deletion to show")


async def _equals(dns: DnsProcess, name: str, expected: list[str]) -> bool:
    return addresses(dns.ask(name)) == expected


async def _rcode(dns: DnsProcess, name: str, rcode: int) -> bool:
    return bool(dns.ask(name).header.rcode == rcode)


async def test_a_pod_with_hostname_and_subdomain_is_named_under_its_headless_service(
        dns: DnsProcess, services: Client, ns: str) -> None:
    await make_service(services, ns, "workers", headless=True)
    pod = core_pb2.Pod()
    pod.metadata.namespace, pod.metadata.name = ns, "worker-a"
    pod.spec.hostname, pod.spec.subdomain = "alpha", "workers"
    pod.spec.containers.add(name="app", image="registry.invalid/app:1")
    pod = await services.create(pod)
    name = f"alpha.workers.{ns}.svc.cluster.local"
    assert dns.ask(name).header.rcode == RCODE.NXDOMAIN  # no address, not ready
    # What the kubelet reports once the pod runs (no kubelet here: written directly).
    pod.status.pod_ip = "10.244.5.17"
    pod.status.conditions.add(type="Ready", status="True")
    await services.update_status(pod)
    answer = await until(lambda: resolves(dns, name), 15, f"{name} to resolve")
    assert addresses(answer) == ["10.244.5.17"]


async def test_a_large_answer_is_truncated_over_udp_and_whole_over_tcp(
        dns: DnsProcess, services: Client, ns: str) -> None:
    await make_service(services, ns, "many", headless=True)
    ips = [f"10.244.7.{i}" for i in range(1, 41)]
    await write_endpoints(services, ns, "many", [(ip, "") for ip in ips])
    name = f"many.{ns}.svc.cluster.local"
    await until(lambda: resolves(dns, name, tcp=True), 15, f"{name} to resolve")
    udp = dns.ask(name)
    assert udp.header.tc == 1 and not udp.rr
    assert addresses(dns.ask(name, tcp=True)) == sorted(ips)
    # A client offering a larger EDNS buffer gets it all over UDP.
    query = DNSRecord.question(name)
    query.add_ar(EDNS0(udp_len=4096))
    big = DNSRecord.parse(query.send(LOOPBACK, dns.port, timeout=2))
    assert big.header.tc == 0 and addresses(big) == sorted(ips)


async def test_other_names_go_to_the_upstream_and_are_cached(
        dns: DnsProcess, upstream: FakeUpstream) -> None:
    before = upstream.asked["www.upstream.test"]
    for tcp in (False, True, False):
        response = dns.ask("www.upstream.test", tcp=tcp)
        assert addresses(response) == ["192.0.2.1"]
    assert upstream.asked["www.upstream.test"] == before + 1  # the rest from the cache
    assert dns.ask("nowhere.example.test").header.rcode == RCODE.NXDOMAIN
    # Too big for UDP upstream: the client is told to use TCP, and TCP gets it all.
    assert dns.ask("big.upstream.test", "TXT").header.tc == 1
    assert len(dns.ask("big.upstream.test", "TXT", tcp=True).rr) == 12


async def test_answers_again_after_its_own_restart(dns: DnsProcess, services: Client,
                                                   ns: str) -> None:
    web = await make_service(services, ns, "web")
    name = f"web.{ns}.svc.cluster.local"
    await until(lambda: resolves(dns, name), 15, f"{name} to resolve")
    dns.kill()
    dns.start()
    # What a resolver does: ask, and on no answer within its timeout, ask again.
    started = time.monotonic()
    for _attempt in range(40):
        try:
            response = dns.ask(name, timeout=1.0)
        except (OSError, TimeoutError):
            time.sleep(0.2)
            continue
        break
    else:
        pytest.fail("no answer after the restart:\n" + dns.log_file.read_text()[-2000:])
    # Never a wrong answer while starting: the first answer is the right one.
    assert addresses(response) == [web.spec.cluster_ip]
    assert time.monotonic() - started < 30


def test_without_an_apiserver_it_serves_other_names_and_servfail_for_the_cluster(
        upstream: FakeUpstream, tmp_path: Path) -> None:
    nobody = f"{LOOPBACK}:{free_ports(1)[0]}"  # no apiserver listens there
    dns = DnsProcess(nobody, upstream.address, tmp_path / "skiff-dns.log",
                     extra=("--sync-timeout", "0.5"))
    dns.start()
    try:
        dns.wait_ready()
        assert addresses(dns.ask("www.upstream.test")) == ["192.0.2.1"]
        answer = dns.ask("web.default.svc.cluster.local")
        assert answer.header.rcode == RCODE.SERVFAIL  # not NXDOMAIN: ask again later
    finally:
        dns.stop()
