"""NodeReady: Skiff's stand-in for the taints Kubernetes' node lifecycle controller adds.

Kubernetes keeps pods off a node whose Ready condition is not "True" by tainting it
``node.kubernetes.io/not-ready`` (Ready is "False") or ``node.kubernetes.io/unreachable``
(Ready is "Unknown" or missing), both NoSchedule. Skiff's node lifecycle controller adds
those taints too, but this filter reads the condition directly (honouring the same
tolerations), so a node is kept out from the moment its status says so, whether or not
the controller has tainted it yet (or runs at all).
"""

from __future__ import annotations

from scheduler.framework import FITS, NodeInfo, PodInfo, Status
from skiff.api.scheduling import NO_SCHEDULE, TAINT_NOT_READY, TAINT_UNREACHABLE, tolerates_any
from skiff.api.v1 import core_pb2

__all__ = ["NOT_READY_TAINT", "UNREACHABLE_TAINT", "NodeReady", "not_ready_taint"]

NOT_READY_TAINT = core_pb2.Taint(key=TAINT_NOT_READY, effect=NO_SCHEDULE)
UNREACHABLE_TAINT = core_pb2.Taint(key=TAINT_UNREACHABLE, effect=NO_SCHEDULE)

_NOT_READY: Status = ("node(s) were not ready",)


def not_ready_taint(node: NodeInfo) -> core_pb2.Taint:
    """The taint Kubernetes would put on a node that is not ready."""
    return NOT_READY_TAINT if node.not_ready_reason == "False" else UNREACHABLE_TAINT


class NodeReady:
    """Filter: rejects nodes that are not ready unless the pod tolerates their taint."""

    name = "NodeReady"

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status:
        if node.ready or tolerates_any(pod.pod.spec.tolerations, not_ready_taint(node)):
            return FITS
        return _NOT_READY
