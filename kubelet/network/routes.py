"""Routes to the other nodes' pods, planned: pure.

Every other node's podCIDR is reached through that node's InternalIP, by a host route
(`ip route replace 10.244.2.0/24 via 192.168.1.12 proto 83`): the way for hosts on one
network segment, the usual small cluster. A node that is on no segment of this host needs
an encapsulation (VXLAN, docs/decisions/0012-pod-network.md): it gets no route, and the
plan says why.

Only Skiff's routes (protocol ROUTE_PROTOCOL) inside the cluster CIDR are ever replaced or
removed; a route of anyone else's to the same destination is left alone, and that node is
reported instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from kubelet.network.cidrs import CIDRError, parse_cidr
from kubelet.network.host import InterfaceAddress, Route
from skiff.api.v1 import core_pb2


@dataclass(frozen=True)
class NodeRoute:
    """The route to one node's pods."""

    node: str
    destination: IPv4Network
    gateway: IPv4Address


@dataclass
class RoutePlan:
    replace: list[NodeRoute] = field(default_factory=list)
    delete: list[Route] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.replace or self.delete)


def node_pod_cidr(node: core_pb2.Node) -> str:
    return node.spec.pod_cidrs[0] if node.spec.pod_cidrs else node.spec.pod_cidr


def internal_ip(node: core_pb2.Node) -> str:
    return next((a.address for a in node.status.addresses if a.type == "InternalIP"), "")


def desired_routes(nodes: Iterable[core_pb2.Node], *, self_name: str, cluster: IPv4Network,
                   own_pod_cidr: IPv4Network | None, addresses: Iterable[InterfaceAddress],
                   routes: Iterable[Route]) -> tuple[list[NodeRoute], dict[str, str]]:
    """The routes this host should have, and for each node that gets none although it has
    a podCIDR, why (node name -> reason).

    `addresses` are this host's: a node whose InternalIP is one of them runs on this very
    host (several kubelets sharing one, in tests) and needs no route; one whose InternalIP
    lies in none of their networks is not on this host's segment. `routes` are the host's
    current ones: a route of someone else's to a node's podCIDR is not replaced."""
    host = [a for a in addresses if a.interface != "lo"]
    own_ips = {a.address.ip for a in addresses}
    foreign = {r.destination: r for r in routes if not r.is_skiffs}
    wanted: list[NodeRoute] = []
    skipped: dict[str, str] = {}
    taken: dict[IPv4Network, str] = {}
    for node in sorted(nodes, key=lambda n: n.metadata.name):
        name = node.metadata.name
        if name == self_name or not node_pod_cidr(node):
            continue
        try:
            cidr = parse_cidr(node_pod_cidr(node), "podCIDR")
        except CIDRError as err:
            skipped[name] = str(err)
            continue
        if not cidr.subnet_of(cluster):
            skipped[name] = f"its podCIDR {cidr} is not inside the cluster CIDR {cluster}"
            continue
        if own_pod_cidr is not None and cidr.overlaps(own_pod_cidr):
            skipped[name] = f"its podCIDR {cidr} overlaps this node's ({own_pod_cidr})"
            continue
        clash = next((other for net, other in taken.items() if net.overlaps(cidr)), None)
        if clash is not None:
            skipped[name] = f"its podCIDR {cidr} overlaps node {clash}'s"
            continue
        text = internal_ip(node)
        try:
            gateway = IPv4Address(text)
        except ValueError:
            skipped[name] = (f"its InternalIP {text!r} is no IPv4 address" if text
                             else "it has no InternalIP")
            continue
        if gateway in own_ips:
            continue  # a node on this very host: its pods' bridge is here
        if not any(gateway in a.network for a in host):
            skipped[name] = (f"its InternalIP {gateway} is on none of this host's networks "
                             "(hosts on different segments need VXLAN, not yet done)")
            continue
        if cidr in foreign:
            skipped[name] = (f"a route to {cidr} that Skiff did not make is in the way: "
                             f"{foreign[cidr].describe()}")
            continue
        taken[cidr] = name
        wanted.append(NodeRoute(name, cidr, gateway))
    return wanted, skipped


def plan_routes(desired: Iterable[NodeRoute], current: Iterable[Route], cluster: IPv4Network,
                *, force: bool = False) -> RoutePlan:
    """What to replace and remove so that Skiff's routes inside `cluster` are `desired`.
    `force`: replace every desired route, also those that look right (the kubelet's
    start, which rebuilds everything)."""
    ours = [r for r in current if r.is_skiffs and r.destination.subnet_of(cluster)]
    have = {r.destination: r for r in ours}
    want = {d.destination: d for d in desired}
    plan = RoutePlan()
    for d in want.values():
        r = have.get(d.destination)
        if force or r is None or r.gateway != d.gateway:
            plan.replace.append(d)
    plan.delete = [r for r in ours if r.destination not in want]
    return plan
