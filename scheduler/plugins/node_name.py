"""NodeName: a pod that names its node (``spec.nodeName``) fits that node only."""

from __future__ import annotations

from scheduler.framework import FITS, NodeInfo, PodInfo, Status

__all__ = ["NodeName"]

_MISMATCH: Status = ("node(s) didn't match the requested node name",)


class NodeName:
    """Filter: rejects every node but the one in ``spec.nodeName``, when set."""

    name = "NodeName"

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status:
        wanted = pod.pod.spec.node_name
        if not wanted or wanted == node.name:
            return FITS
        return _MISMATCH
