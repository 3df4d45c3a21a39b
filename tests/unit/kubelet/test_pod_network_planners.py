"""The pod network's planners (kubelet/network/): pure functions from what the host and the
apiserver show to what to change. The bridge's subnet, a podCIDR that collides with a host
network, the iptables-restore text (and that a second plan over its result is empty), and
the routes to other nodes."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Any

import pytest

from kubelet.network.bridge import BridgeAction, network_config, network_name, plan_bridge
from kubelet.network.cidrs import CIDRError, check_pod_cidr, find_collision, gateway_of, parse_cidr
from kubelet.network.fake import FakeHost, address
from kubelet.network.host import ROUTE_PROTOCOL, Route, parse_addresses, parse_routes
from kubelet.network.routes import NodeRoute, desired_routes, plan_routes
from kubelet.network.rules import (
    FORWARD_CHAIN,
    POSTROUTING_CHAIN,
    chain_rules,
    jump_rule,
    plan_cleanup,
    plan_rules,
    skiff_rules,
)
from kubelet.runtime import LABEL_NODE, NetworkInfo
from skiff.api.v1 import core_pb2

CLUSTER = IPv4Network("10.244.0.0/16")
HOST = [address("lo", "127.0.0.1/8"), address("eth0", "192.168.1.10/24"),
        address("docker0", "172.17.0.1/16")]
HOST_ROUTES = [
    Route(IPv4Network("0.0.0.0/0"), IPv4Address("192.168.1.1"), "eth0"),
    Route(IPv4Network("192.168.1.0/24"), None, "eth0", "kernel"),
    Route(IPv4Network("172.17.0.0/16"), None, "docker0", "kernel"),
]


def net(text: str) -> IPv4Network:
    return IPv4Network(text)


# ---- podCIDRs and the host's networks ----

def test_a_pod_cidr_is_read_sloppily_and_must_fit_in_the_cluster_range() -> None:
    assert parse_cidr("10.244.1.7/24") == net("10.244.1.0/24")
    for bad, words in [("10.244.1.0", "not an IPv4 network"), ("fd00::/64", "IPv6"),
                       ("banana", "not an IPv4 network")]:
        with pytest.raises(CIDRError, match=words):
            parse_cidr(bad, "podCIDR")
    check_pod_cidr(net("10.244.3.0/24"), CLUSTER)
    with pytest.raises(CIDRError, match=r"10.245.0.0/24 is not inside the cluster CIDR "
                       r"10.244.0.0/16 \(the kubelet's --cluster-cidr"):
        check_pod_cidr(net("10.245.0.0/24"), CLUSTER)
    with pytest.raises(CIDRError, match="too small for a bridge"):
        check_pod_cidr(net("10.244.3.0/31"), CLUSTER)
    assert gateway_of(net("10.244.3.0/24")) == IPv4Address("10.244.3.1")


def test_a_pod_cidr_overlapping_an_interface_or_a_route_collides() -> None:
    assert find_collision(net("10.244.1.0/24"), HOST, HOST_ROUTES) is None
    assert find_collision(net("172.17.5.0/24"), HOST, HOST_ROUTES) == (
        "the network 172.17.0.0/16 of interface docker0 (address 172.17.0.1)")
    assert find_collision(net("192.168.0.0/16"), HOST, HOST_ROUTES) == (
        "the network 192.168.1.0/24 of interface eth0 (address 192.168.1.10)")
    vpn = Route(net("10.0.0.0/8"), IPv4Address("192.168.1.254"), "eth0", "static")
    assert find_collision(net("10.244.1.0/24"), HOST, [*HOST_ROUTES, vpn]) == (
        "the route 10.0.0.0/8 via 192.168.1.254 dev eth0")


def test_the_default_route_skiffs_own_routes_and_its_own_bridge_are_no_collision() -> None:
    ours = Route(net("10.244.1.0/24"), IPv4Address("192.168.1.11"), "eth0", ROUTE_PROTOCOL)
    bridge = address("br-0123456789ab", "10.244.9.1/24")
    bridge_route = Route(net("10.244.9.0/24"), None, "br-0123456789ab", "kernel")
    routes = [*HOST_ROUTES, ours, bridge_route]
    assert find_collision(net("10.244.1.0/24"), [*HOST, bridge], routes) is None
    # This node's own old bridge (another subnet) is made again, so it does not count;
    # another bridge with that subnet does.
    assert find_collision(net("10.244.9.0/24"), [*HOST, bridge], routes,
                          ignore_interfaces={"br-0123456789ab"}) is None
    found = str(find_collision(net("10.244.9.0/24"), [*HOST, bridge], routes))
    assert found.startswith("the network 10.244.9.0/24 of interface br-0123456789ab (address "
                            "10.244.9.1), a Docker network's bridge (`docker network ls "
                            "--filter id=0123456789ab`; a skiff-pods-* one left by an "
                            "earlier cluster goes with `skiff down --purge`"), found


def test_ip_json_output_is_read() -> None:
    addresses = parse_addresses([
        {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1",
                                        "prefixlen": 8}]},
        {"ifname": "eth0", "addr_info": [
            {"family": "inet", "local": "192.0.2.2", "prefixlen": 24},
            {"family": "inet6", "local": "fe80::1", "prefixlen": 64}]},
        {"ifname": "down0"}])
    assert addresses == [address("lo", "127.0.0.1/8"), address("eth0", "192.0.2.2/24")]
    routes = parse_routes([
        {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0", "flags": []},
        {"dst": "10.244.201.0/24", "gateway": "198.51.100.2", "dev": "skiff-pn-dummy",
         "protocol": "83", "flags": []},
        {"dst": "203.0.113.7", "dev": "eth0", "protocol": "static"}])
    assert routes == [
        Route(net("0.0.0.0/0"), IPv4Address("192.0.2.1"), "eth0"),
        Route(net("10.244.201.0/24"), IPv4Address("198.51.100.2"), "skiff-pn-dummy", "83"),
        Route(net("203.0.113.7/32"), None, "eth0", "static")]
    assert routes[0].is_default and routes[1].is_skiffs and not routes[2].is_skiffs
    assert routes[1].describe() == "10.244.201.0/24 via 198.51.100.2 dev skiff-pn-dummy"


# ---- the bridge ----

def info(subnet: str, *, gateway: str = "", containers: tuple[str, ...] = (),
         masquerade: bool = False) -> NetworkInfo:
    cidr = net(subnet)
    return NetworkInfo(name=network_name("n1"), id="abc", subnet=subnet,
                       gateway=gateway or str(cidr.network_address + 1), interface="br-abc",
                       masquerade=masquerade, containers=containers)


def test_the_bridge_is_named_after_its_node_has_the_pod_cidr_and_no_docker_masquerade() -> None:
    config = network_config("n1", net("10.244.7.0/24"))
    assert (config.name, config.subnet, config.gateway) == (
        "skiff-pods-n1", "10.244.7.0/24", "10.244.7.1")
    assert config.labels[LABEL_NODE] == "n1" and config.labels["io.skiff.network"] == "pods"
    assert config.masquerade is False


def test_the_bridge_is_kept_made_or_made_again_when_no_pod_uses_it() -> None:
    desired = network_config("n1", net("10.244.7.0/24"))
    assert plan_bridge(desired, None) is BridgeAction.CREATE
    assert plan_bridge(desired, info("10.244.7.0/24")) is BridgeAction.KEEP
    # The node was deleted and joined again with another podCIDR.
    assert plan_bridge(desired, info("10.244.3.0/24")) is BridgeAction.RECREATE
    assert plan_bridge(desired, info("10.244.3.0/24", containers=("c1",))) is BridgeAction.BUSY
    assert plan_bridge(desired, info("10.244.7.0/24", gateway="10.244.7.254")
                       ) is BridgeAction.RECREATE
    assert plan_bridge(desired, info("10.244.7.0/24", masquerade=True)) is BridgeAction.RECREATE


# ---- iptables ----

DOCKER_FILTER = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o docker0 -j DOCKER
-A DOCKER-USER -j RETURN
COMMIT
"""
DOCKER_NAT = """*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
COMMIT
"""


async def restored(host: FakeHost, text: str | None) -> dict[str, str]:
    if text is not None:
        await host.iptables_restore(text)
    return {t: await host.iptables_save(t) for t in ("filter", "nat")}


def docker_host() -> FakeHost:
    host = FakeHost()
    host.tables["filter"] = {"INPUT": [], "FORWARD": [
        "-A FORWARD -j DOCKER-USER", "-A FORWARD -j DOCKER-ISOLATION-STAGE-1",
        "-A FORWARD -o docker0 -j DOCKER"], "OUTPUT": [], "DOCKER": [],
        "DOCKER-ISOLATION-STAGE-1": [], "DOCKER-USER": ["-A DOCKER-USER -j RETURN"]}
    host.tables["nat"] = {"PREROUTING": [], "INPUT": [], "OUTPUT": [], "POSTROUTING": [
        "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE"], "DOCKER": []}
    return host


def test_the_rules_text_is_one_transaction_per_table_with_the_jump_first() -> None:
    text = plan_rules(CLUSTER, {"filter": DOCKER_FILTER, "nat": DOCKER_NAT})
    assert text == "\n".join([
        "*filter",
        ":SKIFF-FORWARD - [0:0]",
        '-I FORWARD 1 -m comment --comment "skiff pod network" -j SKIFF-FORWARD',
        '-A SKIFF-FORWARD -d 10.244.0.0/16 -m comment --comment "skiff: forwarded to pods" '
        "-j ACCEPT",
        "COMMIT",
        "*nat",
        ":SKIFF-POSTROUTING - [0:0]",
        '-I POSTROUTING 1 -m comment --comment "skiff pod network" -j SKIFF-POSTROUTING',
        '-A SKIFF-POSTROUTING -m comment --comment "skiff: service traffic requiring SNAT" '
        "-m mark --mark 0x4000/0x4000 -j MASQUERADE",
        '-A SKIFF-POSTROUTING -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment '
        '"skiff: pod to pod keeps its source address" -j RETURN',
        '-A SKIFF-POSTROUTING -s 10.244.0.0/16 ! -d 10.244.0.0/16 -m comment --comment '
        '"skiff: pods to elsewhere leave as the node" -j MASQUERADE',
        "COMMIT", ""])


async def test_rules_in_place_plan_nothing_and_a_moved_jump_is_put_back_first() -> None:
    host = docker_host()
    saves = await restored(host, plan_rules(CLUSTER, await restored(host, None)))
    assert plan_rules(CLUSTER, saves) is None
    assert host.tables["filter"]["FORWARD"][0] == jump_rule("filter")
    assert host.tables["nat"]["POSTROUTING"][0] == jump_rule("nat")
    assert host.tables["filter"]["FORWARD"][1:] == [
        "-A FORWARD -j DOCKER-USER", "-A FORWARD -j DOCKER-ISOLATION-STAGE-1",
        "-A FORWARD -o docker0 -j DOCKER"]  # Docker's rules untouched
    # Docker made a network: its jumps are first again.
    forward = host.tables["filter"]["FORWARD"]
    forward.remove("-A FORWARD -j DOCKER-USER")
    forward.insert(0, "-A FORWARD -j DOCKER-USER")
    text = plan_rules(CLUSTER, await restored(host, None))
    assert text is not None and text.startswith("*filter\n:SKIFF-FORWARD - [0:0]\n-D FORWARD")
    assert "*nat" not in text  # that table is as it should be
    saves = await restored(host, text)
    assert host.tables["filter"]["FORWARD"][0] == jump_rule("filter")
    assert sum(FORWARD_CHAIN in r for r in host.tables["filter"]["FORWARD"]) == 1
    assert plan_rules(CLUSTER, saves) is None


async def test_a_forced_plan_rebuilds_and_another_cluster_cidr_replaces_the_rules() -> None:
    host = docker_host()
    saves = await restored(host, plan_rules(CLUSTER, await restored(host, None)))
    forced = plan_rules(CLUSTER, saves, force=True)
    assert forced is not None and forced.count("COMMIT") == 2
    saves = await restored(host, forced)
    assert plan_rules(CLUSTER, saves) is None
    other = net("10.200.0.0/16")
    saves = await restored(host, plan_rules(other, saves))
    assert host.tables["filter"][FORWARD_CHAIN] == chain_rules(other)["filter"]
    assert host.tables["nat"][POSTROUTING_CHAIN] == chain_rules(other)["nat"]
    assert plan_rules(other, saves) is None


async def test_cleanup_removes_skiffs_chains_and_jumps_and_nothing_else() -> None:
    host = docker_host()
    before = {t: dict(chains) for t, chains in host.tables.items()}
    assert plan_cleanup(await restored(host, None)) is None  # nothing of Skiff's
    saves = await restored(host, plan_rules(CLUSTER, await restored(host, None)))
    assert len(skiff_rules(saves)) == 6
    text = plan_cleanup(saves)
    assert text is not None
    saves = await restored(host, text)
    assert skiff_rules(saves) == []
    assert host.tables == before
    assert plan_cleanup(saves) is None


# ---- routes ----

def node(name: str, pod_cidr: str = "", ip: str = "") -> core_pb2.Node:
    n = core_pb2.Node()
    n.metadata.name = name
    if pod_cidr:
        n.spec.pod_cidr = pod_cidr
        n.spec.pod_cidrs.append(pod_cidr)
    if ip:
        n.status.addresses.add(type="InternalIP", address=ip)
    return n


def plan_for(nodes: list[core_pb2.Node], routes: list[Route] | None = None,
             **kwargs: Any) -> tuple[list[NodeRoute], dict[str, str]]:
    return desired_routes(nodes, self_name="me", cluster=CLUSTER,
                          own_pod_cidr=net("10.244.1.0/24"), addresses=HOST,
                          routes=routes if routes is not None else HOST_ROUTES, **kwargs)


def test_each_other_node_on_the_segment_is_routed_through_its_internal_ip() -> None:
    wanted, skipped = plan_for([
        node("me", "10.244.1.0/24", "192.168.1.10"),
        node("b", "10.244.2.0/24", "192.168.1.11"),
        node("c", "10.244.3.0/24", "192.168.1.12"),
        node("new"),  # no podCIDR yet: nothing to route, nothing to say
    ])
    assert wanted == [NodeRoute("b", net("10.244.2.0/24"), IPv4Address("192.168.1.11")),
                      NodeRoute("c", net("10.244.3.0/24"), IPv4Address("192.168.1.12"))]
    assert skipped == {}


def test_nodes_that_cannot_be_routed_say_why() -> None:
    vpn = Route(net("10.244.9.0/24"), IPv4Address("192.168.1.254"), "eth0", "static")
    wanted, skipped = plan_for([
        node("far", "10.244.4.0/24", "203.0.113.5"),
        node("outside", "10.99.0.0/24", "192.168.1.13"),
        node("mine", "10.244.1.0/25", "192.168.1.14"),
        node("first", "10.244.5.0/24", "192.168.1.15"),
        node("second", "10.244.5.0/24", "192.168.1.16"),
        node("noip", "10.244.6.0/24"),
        node("here", "10.244.7.0/24", "192.168.1.10"),  # a kubelet on this very host
        node("blocked", "10.244.9.0/24", "192.168.1.17"),
    ], [*HOST_ROUTES, vpn])
    assert wanted == [NodeRoute("first", net("10.244.5.0/24"), IPv4Address("192.168.1.15"))]
    assert skipped == {
        "far": "its InternalIP 203.0.113.5 is on none of this host's networks (hosts on "
               "different segments need VXLAN, not yet done)",
        "outside": "its podCIDR 10.99.0.0/24 is not inside the cluster CIDR 10.244.0.0/16",
        "mine": "its podCIDR 10.244.1.0/25 overlaps this node's (10.244.1.0/24)",
        "second": "its podCIDR 10.244.5.0/24 overlaps node first's",
        "noip": "it has no InternalIP",
        "blocked": "a route to 10.244.9.0/24 that Skiff did not make is in the way: "
                   "10.244.9.0/24 via 192.168.1.254 dev eth0",
    }


def test_routes_follow_nodes_and_only_skiffs_routes_in_the_cluster_range_are_touched() -> None:
    def ours(cidr: str, via: str) -> Route:
        return Route(net(cidr), IPv4Address(via), "eth0", ROUTE_PROTOCOL)

    current = [*HOST_ROUTES,
               ours("10.244.2.0/24", "192.168.1.11"),  # kept
               ours("10.244.3.0/24", "192.168.1.99"),  # its node changed address
               ours("10.244.8.0/24", "192.168.1.18"),  # its node is gone
               ours("10.50.0.0/24", "192.168.1.19"),  # Skiff's, but outside the range
               Route(net("10.244.20.0/24"), IPv4Address("192.168.1.20"), "eth0", "static")]
    desired = [NodeRoute("b", net("10.244.2.0/24"), IPv4Address("192.168.1.11")),
               NodeRoute("c", net("10.244.3.0/24"), IPv4Address("192.168.1.12")),
               NodeRoute("d", net("10.244.4.0/24"), IPv4Address("192.168.1.13"))]
    plan = plan_routes(desired, current, CLUSTER)
    assert plan.replace == desired[1:]
    assert plan.delete == [ours("10.244.8.0/24", "192.168.1.18")]
    assert plan_routes(desired, current, CLUSTER, force=True).replace == desired
    assert not plan_routes([], HOST_ROUTES, CLUSTER)
