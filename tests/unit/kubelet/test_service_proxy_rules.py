"""The service proxy's rules (kubelet/proxy/rules.py) against kube-proxy-like golden
iptables-restore text, and `ServiceProxy` over the in-memory host: one write per change
set, only the changed chains, stale chains of an earlier run removed at the start, a
deleted service's rules gone, jumps put back, stale UDP flows cleared, cleanup."""

from __future__ import annotations

from ipaddress import IPv4Network
from pathlib import Path

from kubelet.network.fake import FakeHost
from kubelet.proxy.cleanup import cleanup_services
from kubelet.proxy.conntrack import FakeConntrack
from kubelet.proxy.hairpin import enable_hairpin
from kubelet.proxy.model import DEFAULT_AFFINITY_TIMEOUT, service_ports
from kubelet.proxy.proxier import ServiceProxy
from kubelet.proxy.rules import (
    TABLES,
    build,
    plan_full,
    probability,
    proxy_rules,
    service_chain,
)
from skiff.api.v1 import core_pb2

CLUSTER = IPv4Network("10.244.0.0/16")
SERVICES = IPv4Network("10.96.0.0/12")


def service(ns: str, name: str, ip: str, *ports: tuple[str, int, str, int],
            type_: str = "ClusterIP", affinity: str = "") -> core_pb2.Service:
    svc = core_pb2.Service()
    svc.metadata.namespace, svc.metadata.name = ns, name
    svc.spec.cluster_ip, svc.spec.type = ip, type_
    svc.spec.session_affinity = affinity
    for port_name, port, protocol, node_port in ports:
        svc.spec.ports.add(name=port_name, port=port, protocol=protocol, node_port=node_port)
    return svc


def endpoints(ns: str, name: str, ips: list[str], *ports: tuple[str, int, str],
              not_ready: list[str] | None = None) -> core_pb2.Endpoints:
    eps = core_pb2.Endpoints()
    eps.metadata.namespace, eps.metadata.name = ns, name
    subset = eps.subsets.add()
    for ip in ips:
        subset.addresses.add(ip=ip)
    for ip in not_ready or []:
        subset.not_ready_addresses.add(ip=ip)
    for port_name, port, protocol in ports:
        subset.ports.add(name=port_name, port=port, protocol=protocol)
    return eps


# kube-proxy's proxier_test.go style: the whole restore input, as iptables-save spells it.
GOLDEN = (Path(__file__).parent / "service_proxy_golden.txt").read_text()


def golden_objects() -> tuple[list[core_pb2.Service], list[core_pb2.Endpoints]]:
    # kube-proxy's proxier_test shapes: ns1/svc1 two endpoints, ns2/svc2 a NodePort with
    # ClientIP affinity, ns3/svc3 a UDP NodePort without endpoints, and what is never
    # proxied: a headless service and an ExternalName one.
    svcs = [service("ns1", "svc1", "10.96.0.41", ("p80", 80, "TCP", 0)),
            service("ns2", "svc2", "10.96.0.42", ("p80", 80, "TCP", 3001), type_="NodePort",
                    affinity="ClientIP"),
            service("ns3", "svc3", "10.96.0.43", ("p53", 53, "UDP", 3003), type_="NodePort"),
            service("ns4", "headless", "None", ("p80", 80, "TCP", 0)),
            service("ns5", "external", "", type_="ExternalName")]
    eps = [endpoints("ns1", "svc1", ["10.180.0.2", "10.180.0.1"], ("p80", 80, "TCP"),
                     not_ready=["10.180.0.9"]),
           endpoints("ns2", "svc2", ["10.180.0.3"], ("p80", 80, "TCP")),
           endpoints("ns4", "headless", ["10.180.0.4"], ("p80", 80, "TCP"))]
    return svcs, eps


def test_rules_match_the_golden_text() -> None:
    svcs, eps = golden_objects()
    ruleset = build(service_ports(svcs, eps), cluster_cidr=CLUSTER, service_cidr=SERVICES)
    assert plan_full(ruleset, {}, force=True) == GOLDEN


def test_chain_names_are_kube_proxys() -> None:
    # KUBE-SVC-XPGD46QRK7WJZT7O is ns1/svc1:p80 tcp in kube-proxy's proxier_test.go.
    [port] = service_ports([service("ns1", "svc1", "10.96.0.41", ("p80", 80, "TCP", 0))], [])
    assert service_chain(port) == "SKIFF-SVC-XPGD46QRK7WJZT7O"


def test_equal_weights() -> None:
    assert [probability(n) for n in (4, 3, 2)] == [
        "0.25000000000", "0.33333333349", "0.50000000000"]


def test_affinity_default_timeout() -> None:
    [port] = service_ports([service("a", "b", "10.96.0.1", ("", 80, "TCP", 0),
                                    affinity="ClientIP")], [])
    assert port.affinity_timeout == DEFAULT_AFFINITY_TIMEOUT


class World:
    def __init__(self) -> None:
        self.host = FakeHost()
        self.conntrack = FakeConntrack()
        self.services: dict[str, core_pb2.Service] = {}
        self.endpoints: dict[str, core_pb2.Endpoints] = {}
        self.proxy = ServiceProxy(
            host=self.host, conntrack=self.conntrack,
            services=lambda: list(self.services.values()),
            endpoints=lambda: list(self.endpoints.values()),
            cluster_cidr=CLUSTER, service_cidr=SERVICES, resync_period=1e9)

    async def rules(self) -> list[str]:
        return proxy_rules({t: await self.host.iptables_save(t) for t in TABLES})


async def test_one_write_per_change_set_and_only_what_changed() -> None:
    w = World()
    svcs, eps = golden_objects()
    w.services = {s.metadata.name: s for s in svcs}
    w.endpoints = {e.metadata.name: e for e in eps}
    assert await w.proxy.sync()
    assert w.host.calls.count("iptables_restore") == 1
    first = await w.rules()
    assert await w.proxy.sync() is False  # nothing changed: nothing written
    # svc3 gets an endpoint: one write, its chains and the dispatch chains only.
    w.endpoints["svc3"] = endpoints("ns3", "svc3", ["10.180.0.5"], ("p53", 53, "UDP"))
    w.host.calls.clear()
    assert await w.proxy.sync()
    assert w.host.calls == ["iptables_restore"]  # no iptables-save between full syncs
    after = await w.rules()
    assert not any("svc3:p53 has no endpoints" in r for r in after)
    assert any("DNAT --to-destination 10.180.0.5:53" in r for r in after)
    assert [r for r in first if "ns1/svc1" in r] == [r for r in after if "ns1/svc1" in r]
    # The UDP service went from no endpoints to one: flows remembered for it are cleared.
    assert ("-p", "udp", "--orig-dst", "10.96.0.43") in w.conntrack.calls


async def test_deleted_service_leaves_no_rule_and_gone_udp_endpoint_is_cleared() -> None:
    w = World()
    w.services = {"dns": service("kube-system", "dns", "10.96.0.10", ("dns", 53, "UDP", 0))}
    w.endpoints = {"dns": endpoints("kube-system", "dns", ["10.244.1.2", "10.244.1.3"],
                                    ("dns", 53, "UDP"))}
    await w.proxy.sync()
    w.endpoints["dns"] = endpoints("kube-system", "dns", ["10.244.1.3"], ("dns", 53, "UDP"))
    await w.proxy.sync()
    assert ("-p", "udp", "--orig-dst", "10.96.0.10", "--dst-nat", "10.244.1.2"
            ) in w.conntrack.calls
    del w.services["dns"], w.endpoints["dns"]
    await w.proxy.sync()
    assert not [r for r in await w.rules() if "kube-system/dns" in r]
    assert not [c for c in w.host.tables["nat"] if c.startswith(("SKIFF-SVC-", "SKIFF-SEP-"))]


async def test_start_removes_stale_chains_and_puts_jumps_back() -> None:
    w = World()
    w.services = {"a": service("ns", "a", "10.96.0.5", ("", 80, "TCP", 0))}
    w.endpoints = {"a": endpoints("ns", "a", ["10.244.1.2"], ("", 80, "TCP"))}
    await w.proxy.sync()
    # The agent stops; meanwhile the service goes and Docker puts its jump first.
    w.host.tables["filter"].setdefault("DOCKER-USER", [])
    w.host.tables["filter"]["FORWARD"].insert(0, "-A FORWARD -j DOCKER-USER")
    w.services.clear()
    w.endpoints.clear()
    restarted = World()
    restarted.host = w.host
    restarted.proxy.host = w.host
    await restarted.proxy.sync()
    assert not [c for c in w.host.tables["nat"] if c.startswith(("SKIFF-SVC-", "SKIFF-SEP-"))]
    assert w.host.tables["filter"]["FORWARD"][0].endswith("-j SKIFF-SERVICES")
    assert w.host.tables["nat"]["PREROUTING"] == [
        '-A PREROUTING -m comment --comment "skiff service portals" -j SKIFF-SERVICES']
    # The next full sync finds everything in place: nothing written.
    assert await restarted.proxy.sync(full=True) is False


async def test_jump_goes_after_the_pod_networks_and_before_dockers() -> None:
    w = World()
    forward = w.host.tables["filter"]["FORWARD"]
    w.host.tables["filter"].update({"SKIFF-FORWARD": [], "DOCKER-USER": []})
    forward += ['-A FORWARD -m comment --comment "skiff pod network" -j SKIFF-FORWARD',
                "-A FORWARD -j DOCKER-USER"]
    await w.proxy.sync()
    forward = w.host.tables["filter"]["FORWARD"]
    assert [r.split()[-1] for r in forward] == ["SKIFF-FORWARD", "SKIFF-SERVICES",
                                                "DOCKER-USER"]


async def test_cleanup_removes_the_proxys_chains_only() -> None:
    w = World()
    w.host.tables["nat"]["DOCKER"] = ["-A DOCKER -i docker0 -j RETURN"]
    w.services = {"a": service("ns", "a", "10.96.0.5", ("", 80, "TCP", 30005),
                               type_="NodePort")}
    w.endpoints = {"a": endpoints("ns", "a", ["10.244.1.2"], ("", 80, "TCP"))}
    await w.proxy.sync()
    assert await w.rules()
    done, problems = await cleanup_services(w.host)
    assert done and not problems
    assert await w.rules() == []
    assert w.host.tables["nat"]["DOCKER"] == ["-A DOCKER -i docker0 -j RETURN"]
    assert not [c for t in w.host.tables.values() for c in t if c.startswith("SKIFF-")]
    assert await cleanup_services(w.host) == ([], [])


def test_hairpin_mode_set_on_every_port_of_the_bridge(tmp_path: Path) -> None:
    for port, mode in (("veth1", "0"), ("veth2", "1")):
        (tmp_path / "br-x" / "brif" / port).mkdir(parents=True)
        (tmp_path / "br-x" / "brif" / port / "hairpin_mode").write_text(mode + "\n")
    assert enable_hairpin("br-x", tmp_path) == 1
    assert (tmp_path / "br-x" / "brif" / "veth1" / "hairpin_mode").read_text() == "1"
    assert enable_hairpin("br-x", tmp_path) == 0
    assert enable_hairpin("br-gone", tmp_path) == enable_hairpin("", tmp_path) == 0
