"""The node's pods bridge: a Docker bridge network of Skiff's own whose subnet is the
node's podCIDR and whose gateway (the bridge's address on the host) is its first address.
Every pod sandbox joins it, so a pod's address is in the podCIDR. Planned here, purely;
kubelet/network/manager.py carries the plan out through the runtime interface.

The network is named after the node (`skiff-pods-NODE`), because several kubelets may share
one engine (tests, simulated nodes), and labelled with the node (io.skiff.node, which
`skiff down --purge` looks for) and as the pods network. Docker's own masquerading is off
on it: kubelet/network/rules.py says why.
"""

from __future__ import annotations

import enum
from ipaddress import IPv4Network

from kubelet.network.cidrs import gateway_of
from kubelet.runtime import LABEL_NODE, NetworkConfig, NetworkInfo

NETWORK_PREFIX = "skiff-pods-"
LABEL_NETWORK = "io.skiff.network"  # "pods" on the pods bridge
PODS = "pods"


def network_name(node_name: str) -> str:
    return NETWORK_PREFIX + node_name


def network_config(node_name: str, pod_cidr: IPv4Network) -> NetworkConfig:
    return NetworkConfig(
        name=network_name(node_name), subnet=str(pod_cidr), gateway=str(gateway_of(pod_cidr)),
        labels={LABEL_NODE: node_name, LABEL_NETWORK: PODS}, masquerade=False)


class BridgeAction(enum.Enum):
    KEEP = "keep"  # it is as it should be
    CREATE = "create"  # there is none
    RECREATE = "recreate"  # it is not as it should be, and no running container uses it
    BUSY = "busy"  # it is not as it should be, but running containers use it


def plan_bridge(desired: NetworkConfig, existing: NetworkInfo | None) -> BridgeAction:
    """What to do about the node's pods network. One with another subnet is what is left
    after the node was deleted and joined again with another podCIDR: it is made again,
    once no pod runs on it (its pods keep their addresses meanwhile; new ones wait)."""
    if existing is None:
        return BridgeAction.CREATE
    if (existing.subnet == desired.subnet and existing.gateway == desired.gateway
            and existing.masquerade == desired.masquerade):
        return BridgeAction.KEEP
    return BridgeAction.BUSY if existing.containers else BridgeAction.RECREATE
