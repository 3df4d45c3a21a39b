"""The cluster zone's answers, as a client reads them off the wire: Services, Endpoints and
Pods built here, queries encoded with dnslib, responses from `ZoneAnswers` decoded."""

from __future__ import annotations

import pytest
from dnslib import EDNS0, QTYPE, RCODE, DNSRecord

from clusterdns.records import ClusterZone
from clusterdns.wire import Chase, ZoneAnswers, parse_query
from skiff.api.v1 import core_pb2


def service(ns: str, name: str, cluster_ip: str = "10.96.0.20",
            ports: tuple[tuple[str, int, str], ...] = (), type_: str = "ClusterIP",
            external_name: str = "") -> core_pb2.Service:
    svc = core_pb2.Service()
    svc.metadata.namespace, svc.metadata.name = ns, name
    svc.spec.cluster_ip = cluster_ip
    svc.spec.type = type_
    svc.spec.external_name = external_name
    for port_name, port, proto in ports:
        svc.spec.ports.add(name=port_name, port=port, protocol=proto)
    return svc


def endpoints(ns: str, name: str, addresses: list[tuple[str, str]],
              ports: tuple[tuple[str, int], ...] = (),
              not_ready: tuple[str, ...] = ()) -> core_pb2.Endpoints:
    ep = core_pb2.Endpoints()
    ep.metadata.namespace, ep.metadata.name = ns, name
    subset = ep.subsets.add()
    for ip, hostname in addresses:
        subset.addresses.add(ip=ip, hostname=hostname)
    for ip in not_ready:
        subset.not_ready_addresses.add(ip=ip)
    for port_name, port in ports:
        subset.ports.add(name=port_name, port=port, protocol="TCP")
    return ep


def ask(zone: ClusterZone, name: str, qtype: str = "A", *, edns: int = 0
        ) -> DNSRecord | None:
    q = DNSRecord.question(name, qtype)
    if edns:
        q.add_ar(EDNS0(udp_len=edns))
    query = parse_query(q.pack())
    assert query is not None
    wire = ZoneAnswers(zone).answer(query)
    if wire is None:
        return None
    if isinstance(wire, Chase):
        wire = wire.response
    response = DNSRecord.parse(wire)
    assert response.header.id == q.header.id
    assert str(response.q.qname) == str(q.q.qname)  # the asker's spelling, case included
    return response


def addresses(response: DNSRecord | None) -> list[str]:
    assert response is not None
    return sorted(str(rr.rdata) for rr in response.rr if rr.rtype in (QTYPE.A, QTYPE.AAAA))


@pytest.fixture
def zone() -> ClusterZone:
    z = ClusterZone()
    z.set_service(service("default", "web", "10.96.0.20",
                          ports=(("http", 80, "TCP"), ("dns", 53, "UDP"), ("", 81, "TCP"))))
    z.set_service(service("default", "db", "None"))
    z.set_endpoints(endpoints("default", "db", [("10.244.1.5", "db-0"), ("10.244.2.6", "")],
                              ports=(("pg", 5432),), not_ready=("10.244.3.7",)))
    z.set_service(service("other", "ext", "", type_="ExternalName",
                          external_name="example.invalid"))
    return z


def test_cluster_ip_service_resolves_to_its_cluster_ip(zone: ClusterZone) -> None:
    response = ask(zone, "web.default.svc.cluster.local")
    assert response is not None and response.header.rcode == RCODE.NOERROR
    assert response.header.aa == 1
    assert addresses(response) == ["10.96.0.20"]
    assert response.rr[0].ttl == 5


def test_names_are_case_insensitive_and_answer_with_the_askers_case(zone: ClusterZone) -> None:
    assert addresses(ask(zone, "WeB.Default.SVC.cluster.LOCAL.")) == ["10.96.0.20"]


def test_headless_service_resolves_to_its_ready_addresses(zone: ClusterZone) -> None:
    assert addresses(ask(zone, "db.default.svc.cluster.local")) == ["10.244.1.5", "10.244.2.6"]


def test_headless_endpoints_have_names_by_hostname_or_address(zone: ClusterZone) -> None:
    assert addresses(ask(zone, "db-0.db.default.svc.cluster.local")) == ["10.244.1.5"]
    assert addresses(ask(zone, "10-244-2-6.db.default.svc.cluster.local")) == ["10.244.2.6"]
    response = ask(zone, "10-244-3-7.db.default.svc.cluster.local")
    assert response is not None and response.header.rcode == RCODE.NXDOMAIN


def test_srv_for_a_named_port_of_a_cluster_ip_service(zone: ClusterZone) -> None:
    response = ask(zone, "_http._tcp.web.default.svc.cluster.local", "SRV")
    assert response is not None
    [srv] = response.rr
    assert (srv.rdata.port, str(srv.rdata.target)) == (80, "web.default.svc.cluster.local.")
    assert addresses(DNSRecord(rr=response.ar)) == ["10.96.0.20"]
    udp = ask(zone, "_dns._udp.web.default.svc.cluster.local", "SRV")
    assert udp is not None and [rr.rdata.port for rr in udp.rr] == [53]
    # A port without a name has no SRV record; the protocol label exists (NOERROR).
    assert ask(zone, "_tcp.web.default.svc.cluster.local", "SRV").header.rcode == 0  # type: ignore[union-attr]


def test_srv_of_a_headless_service_has_one_target_per_endpoint(zone: ClusterZone) -> None:
    response = ask(zone, "_pg._tcp.db.default.svc.cluster.local", "SRV")
    assert response is not None
    targets = sorted((rr.rdata.port, str(rr.rdata.target)) for rr in response.rr)
    assert targets == [(5432, "10-244-2-6.db.default.svc.cluster.local."),
                       (5432, "db-0.db.default.svc.cluster.local.")]
    assert sorted(str(rr.rdata) for rr in response.ar) == ["10.244.1.5", "10.244.2.6"]


def test_external_name_is_a_cname(zone: ClusterZone) -> None:
    response = ask(zone, "ext.other.svc.cluster.local")
    assert response is not None
    [rr] = response.rr
    assert rr.rtype == QTYPE.CNAME and str(rr.rdata) == "example.invalid."
    # For addresses, the server is told to ask upstream for the target (a Chase).
    query = parse_query(DNSRecord.question("ext.other.svc.cluster.local").pack())
    assert query is not None
    chase = ZoneAnswers(zone).answer(query)
    assert isinstance(chase, Chase) and chase.target == "example.invalid"
    txt = parse_query(DNSRecord.question("ext.other.svc.cluster.local", "TXT").pack())
    assert txt is not None and isinstance(ZoneAnswers(zone).answer(txt), bytes)


def test_unknown_names_in_the_zone_are_nxdomain_with_the_soa(zone: ClusterZone) -> None:
    for name in ("nope.default.svc.cluster.local", "web.nons.svc.cluster.local",
                 "x.web.default.svc.cluster.local", "foo.cluster.local"):
        response = ask(zone, name)
        assert response is not None and response.header.rcode == RCODE.NXDOMAIN, name
        assert [rr.rtype for rr in response.auth] == [QTYPE.SOA]


def test_a_name_without_the_type_asked_is_nodata(zone: ClusterZone) -> None:
    for name, qtype in (("web.default.svc.cluster.local", "AAAA"),
                        ("default.svc.cluster.local", "A"), ("svc.cluster.local", "A")):
        response = ask(zone, name, qtype)
        assert response is not None and response.header.rcode == RCODE.NOERROR, name
        assert not response.rr and [rr.rtype for rr in response.auth] == [QTYPE.SOA]


def test_names_outside_the_zone_are_not_answered(zone: ClusterZone) -> None:
    assert ask(zone, "example.com") is None


def test_pod_names_spell_their_address_and_schema_version_is_published(
        zone: ClusterZone) -> None:
    assert addresses(ask(zone, "10-244-1-9.default.pod.cluster.local")) == ["10.244.1.9"]
    txt = ask(zone, "dns-version.cluster.local", "TXT")
    assert txt is not None and str(txt.rr[0].rdata) == '"1.1.0"'


def test_reverse_lookup_of_a_cluster_ip_and_a_named_endpoint(zone: ClusterZone) -> None:
    ptr = ask(zone, "20.0.96.10.in-addr.arpa", "PTR")
    assert ptr is not None and str(ptr.rr[0].rdata) == "web.default.svc.cluster.local."
    ptr = ask(zone, "5.1.244.10.in-addr.arpa", "PTR")
    assert ptr is not None and str(ptr.rr[0].rdata) == "db-0.db.default.svc.cluster.local."
    assert ask(zone, "9.9.9.9.in-addr.arpa", "PTR") is None  # forwarded


def test_pod_hostname_and_subdomain_under_a_headless_service() -> None:
    zone = ClusterZone("kube.test")
    zone.set_service(service("ns1", "sub", "None"))
    pod = core_pb2.Pod()
    pod.metadata.namespace, pod.metadata.name = "ns1", "p1"
    pod.spec.hostname, pod.spec.subdomain = "host1", "sub"
    pod.status.pod_ip = "10.244.0.9"
    zone.set_pod(pod)  # not ready yet: no name
    assert ask(zone, "host1.sub.ns1.svc.kube.test").header.rcode == RCODE.NXDOMAIN  # type: ignore[union-attr]
    pod.status.conditions.add(type="Ready", status="True")
    zone.set_pod(pod)
    assert addresses(ask(zone, "host1.sub.ns1.svc.kube.test")) == ["10.244.0.9"]
    zone.delete_pod("ns1", "p1")
    assert ask(zone, "host1.sub.ns1.svc.kube.test").header.rcode == RCODE.NXDOMAIN  # type: ignore[union-attr]


def test_changes_are_seen_by_the_next_query(zone: ClusterZone) -> None:
    answers = ZoneAnswers(zone)
    query = parse_query(DNSRecord.question("web.default.svc.cluster.local").pack())
    assert query is not None
    assert addresses(DNSRecord.parse(answers.answer(query))) == ["10.96.0.20"]  # type: ignore[arg-type]
    zone.set_service(service("default", "web", "10.96.0.99"))
    assert addresses(DNSRecord.parse(answers.answer(query))) == ["10.96.0.99"]  # type: ignore[arg-type]
    zone.delete_service("default", "web")
    assert DNSRecord.parse(answers.answer(query)).header.rcode == RCODE.NXDOMAIN  # type: ignore[arg-type]


def test_edns_queries_get_an_opt_record_back(zone: ClusterZone) -> None:
    response = ask(zone, "web.default.svc.cluster.local", edns=1232)
    assert response is not None
    assert addresses(response) == ["10.96.0.20"]
    assert [rr.rtype for rr in response.ar] == [QTYPE.OPT]


def test_a_change_forgets_only_the_changed_services_answers(
        zone: ClusterZone, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = ZoneAnswers(zone)
    web = parse_query(DNSRecord.question("web.default.svc.cluster.local").pack())
    db = parse_query(DNSRecord.question("db.default.svc.cluster.local").pack())
    assert web is not None and db is not None
    answers.answer(web), answers.answer(db)
    encodings = []
    monkeypatch.setattr(answers, "_encode", lambda q: encodings.append(q.qname) or (
        ZoneAnswers._encode(answers, q)))
    zone.set_endpoints(endpoints("default", "db", [("10.244.9.9", "")]))
    assert addresses(DNSRecord.parse(answers.answer(web))) == ["10.96.0.20"]  # type: ignore[arg-type]
    assert addresses(DNSRecord.parse(answers.answer(db))) == ["10.244.9.9"]  # type: ignore[arg-type]
    assert encodings == ["db.default.svc.cluster.local"]


def test_too_many_changes_to_follow_forget_every_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("clusterdns.records.CHANGE_LOG", 2)
    zone = ClusterZone()
    zone.set_service(service("default", "web", "10.96.0.20"))
    answers = ZoneAnswers(zone)
    web = parse_query(DNSRecord.question("web.default.svc.cluster.local").pack())
    assert web is not None
    answers.answer(web)
    for i in range(3):
        zone.set_service(service("default", f"other{i}", f"10.96.1.{i}"))
    zone.delete_service("default", "web")  # lost among the changes: everything goes
    zone.set_service(service("default", "other9", "10.96.1.9"))
    assert zone.changed_since(0) is None
    assert DNSRecord.parse(answers.answer(web)).header.rcode == RCODE.NXDOMAIN  # type: ignore[arg-type]


@pytest.mark.parametrize(("count", "outcome"), [(6, "lean"), (30, "truncated")])
def test_udp_answers_drop_the_additional_section_before_truncating(count: int,
                                                                   outcome: str) -> None:
    zone = ClusterZone()
    zone.set_service(service("default", "db", "None"))
    zone.set_endpoints(endpoints("default", "db",
                                 [(f"10.244.1.{i}", f"host-{i:05d}") for i in range(count)],
                                 ports=(("pg", 5432),)))
    answers = ZoneAnswers(zone)
    query = parse_query(DNSRecord.question("_pg._tcp.db.default.svc.cluster.local", "SRV")
                        .pack())
    assert query is not None
    full = answers.answer(query)
    assert isinstance(full, bytes) and len(full) > 512
    assert len(DNSRecord.parse(full).ar) == count
    fitted = DNSRecord.parse(answers.fit(query, full))
    if outcome == "lean":
        assert fitted.header.tc == 0 and len(fitted.rr) == count and not fitted.ar
    else:
        assert fitted.header.tc == 1 and not fitted.rr


def test_before_the_caches_sync_the_zone_is_servfail_and_other_names_forwarded(
        zone: ClusterZone) -> None:
    answers = ZoneAnswers(zone)
    answers.synced = False
    query = parse_query(DNSRecord.question("web.default.svc.cluster.local").pack())
    foreign = parse_query(DNSRecord.question("example.com").pack())
    assert query is not None and foreign is not None
    assert DNSRecord.parse(answers.answer(query)).header.rcode == RCODE.SERVFAIL  # type: ignore[arg-type]
    assert answers.answer(foreign) is None
    answers.synced = True
    assert addresses(DNSRecord.parse(answers.answer(query))) == ["10.96.0.20"]  # type: ignore[arg-type]
