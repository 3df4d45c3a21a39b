"""NodePorts: two pods cannot bind the same host port, protocol and address on a node."""

from __future__ import annotations

from scheduler.events import ASSIGNED_POD_DELETE, NODE_ADD, ClusterEventWithHint
from scheduler.framework import FITS, NodeInfo, PodInfo, Status

__all__ = ["NodePorts"]

_NO_FREE_PORTS = Status.unschedulable(
    "node(s) didn't have free ports for the requested pod ports")


class NodePorts:
    """Filter: rejects nodes where one of the pod's host ports is already taken (an
    address of 0.0.0.0 on either side takes the port on every address). Unschedulable:
    the port is freed when the pod holding it leaves."""

    name = "NodePorts"

    def events_to_register(self) -> list[ClusterEventWithHint]:
        return [ClusterEventWithHint(NODE_ADD), ClusterEventWithHint(ASSIGNED_POD_DELETE)]

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status:
        wanted = pod.host_ports
        if not wanted:
            return FITS
        used = node.used_ports
        if not used:
            return FITS
        for port in wanted:
            for taken in used:
                if port.conflicts(taken):
                    return _NO_FREE_PORTS
        return FITS
