"""Address arithmetic of the pod network, pure: reading a podCIDR, its gateway, and whether
it collides with one of the host's own networks.

A podCIDR that overlaps a network the host already reaches (an interface's subnet, such as
docker0's 172.17.0.0/16 or the LAN's, or any route but the default one) cannot be used:
the node's bridge would claim addresses the host sends elsewhere, and traffic to them
would go to pods, or the pods' replies would never come back. Kubernetes leaves this to
the network plugin; Skiff refuses such a range and says which network it collides with.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from ipaddress import IPv4Address, IPv4Network, ip_network

from kubelet.network.host import InterfaceAddress, Route

# A bridge needs its network address, the gateway, at least one pod and broadcast: /30.
MAX_PREFIX_LENGTH = 30


class CIDRError(ValueError):
    """A podCIDR or cluster CIDR that cannot be used; the message says why."""


def parse_cidr(text: str, what: str = "CIDR") -> IPv4Network:
    """An IPv4 network in CIDR form, host bits cleared as Kubernetes' sloppy parse does
    (10.244.1.7/24 is 10.244.1.0/24); an address alone is no range."""
    try:
        if "/" not in text:
            raise ValueError(text)
        network = ip_network(text.strip(), strict=False)
    except ValueError:
        raise CIDRError(f"{what} {text!r} is not an IPv4 network in CIDR form "
                        "(e.g. 10.244.1.0/24)") from None
    if not isinstance(network, IPv4Network):
        raise CIDRError(f"{what} {text!r} is IPv6; the pod network is IPv4 only")
    return network


def check_pod_cidr(pod_cidr: IPv4Network, cluster: IPv4Network) -> None:
    """Raises CIDRError when the node's podCIDR cannot be its pods' bridge subnet."""
    if not pod_cidr.subnet_of(cluster):
        raise CIDRError(f"podCIDR {pod_cidr} is not inside the cluster CIDR {cluster} "
                        "(the kubelet's --cluster-cidr, which must be the controller "
                        "manager's)")
    if pod_cidr.prefixlen > MAX_PREFIX_LENGTH:
        raise CIDRError(f"podCIDR {pod_cidr} is too small for a bridge: it needs at most "
                        f"a /{MAX_PREFIX_LENGTH}")


def gateway_of(pod_cidr: IPv4Network) -> IPv4Address:
    """The bridge's own address: the first of the range (10.244.1.0/24 -> 10.244.1.1)."""
    return pod_cidr.network_address + 1


def find_collision(pod_cidr: IPv4Network, addresses: Iterable[InterfaceAddress],
                   routes: Iterable[Route], *, ignore_interfaces: Collection[str] = ()
                   ) -> str | None:
    """The first of the host's networks that `pod_cidr` overlaps, described for a person
    ("the network 172.17.0.0/16 of interface docker0"), or None.

    Not collisions: the default route, Skiff's own routes (to other nodes' podCIDRs),
    and whatever is on `ignore_interfaces` (this node's own pods bridge, which is made
    again when its subnet is not the podCIDR)."""
    for a in addresses:
        if a.interface not in ignore_interfaces and a.network.overlaps(pod_cidr):
            return (f"the network {a.network} of interface {a.interface} (address "
                    f"{a.address.ip}){_bridge_hint(a.interface)}")
    for r in routes:
        if r.is_default or r.is_skiffs or r.device in ignore_interfaces:
            continue
        if r.destination.overlaps(pod_cidr):
            return f"the route {r.describe()}{_bridge_hint(r.device)}"
    return None


def _bridge_hint(interface: str) -> str:
    if not interface.startswith("br-"):
        return ""
    # Often the pods bridge of an earlier cluster on this host, left by `skiff down`.
    return (f", a Docker network's bridge (`docker network ls --filter id="
            f"{interface[3:]}`; a skiff-pods-* one left by an earlier cluster goes with "
            "`skiff down --purge` or `skiff-kubelet --cleanup-pod-network --node-name "
            "NODE`)")
