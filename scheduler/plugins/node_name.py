"""NodeName: a pod that names its node (``spec.nodeName``) fits that node only."""

from __future__ import annotations

from scheduler.events import NODE_ADD, ClusterEventWithHint
from scheduler.framework import FITS, NodeInfo, PodInfo, Status

__all__ = ["NodeName"]

_MISMATCH = Status.unresolvable("node(s) didn't match the requested node name")


class NodeName:
    """Filter: rejects every node but the one in ``spec.nodeName``, when set; only that
    node's arrival can help (UnschedulableAndUnresolvable)."""

    name = "NodeName"

    def events_to_register(self) -> list[ClusterEventWithHint]:
        return [ClusterEventWithHint(NODE_ADD)]

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status:
        wanted = pod.pod.spec.node_name
        if not wanted or wanted == node.name:
            return FITS
        return _MISMATCH
