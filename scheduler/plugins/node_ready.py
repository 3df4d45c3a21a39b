"""NodeReady: Skiff's stand-in for the taints Kubernetes' node lifecycle controller adds.

Kubernetes keeps pods off a node whose Ready condition is not "True" by tainting it
``node.kubernetes.io/not-ready`` (Ready is "False") or ``node.kubernetes.io/unreachable``
(Ready is "Unknown" or missing), both NoSchedule. Skiff's node lifecycle controller adds
those taints too, but this filter reads the condition directly (honouring the same
tolerations), so a node is kept out from the moment its status says so, whether or not
the controller has tainted it yet (or runs at all).
"""

from __future__ import annotations

from scheduler.events import (
    NODE_ADD,
    ActionType,
    ClusterEvent,
    ClusterEventWithHint,
    Resource,
    taints_changed,
)
from scheduler.framework import FITS, NodeInfo, PodInfo, Status
from skiff.api.scheduling import NO_SCHEDULE, TAINT_NOT_READY, TAINT_UNREACHABLE, tolerates_any
from skiff.api.v1 import core_pb2

__all__ = ["NOT_READY_TAINT", "UNREACHABLE_TAINT", "NodeReady", "not_ready_taint"]

NOT_READY_TAINT = core_pb2.Taint(key=TAINT_NOT_READY, effect=NO_SCHEDULE)
UNREACHABLE_TAINT = core_pb2.Taint(key=TAINT_UNREACHABLE, effect=NO_SCHEDULE)

_NOT_READY = Status.unresolvable("node(s) were not ready")


def not_ready_taint(node: NodeInfo) -> core_pb2.Taint:
    """The taint Kubernetes would put on a node that is not ready."""
    return NOT_READY_TAINT if node.not_ready_reason == "False" else UNREACHABLE_TAINT


class NodeReady:
    """Filter: rejects nodes that are not ready unless the pod tolerates their taint
    (UnschedulableAndUnresolvable, as TaintToleration's rejection of the taint would be).
    A node that becomes ready, or whose taints change, may help."""

    name = "NodeReady"

    def events_to_register(self) -> list[ClusterEventWithHint]:
        return [
            ClusterEventWithHint(NODE_ADD),
            ClusterEventWithHint(ClusterEvent(Resource.NODE, ActionType.UPDATE_NODE_TAINT),
                                 taints_changed),
            ClusterEventWithHint(ClusterEvent(Resource.NODE, ActionType.UPDATE_NODE_CONDITION),
                                 _readiness_changed),
        ]

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status:
        if node.ready or tolerates_any(pod.pod.spec.tolerations, not_ready_taint(node)):
            return FITS
        return _NOT_READY


def _readiness_changed(old: core_pb2.Node | None, new: core_pb2.Node | None) -> bool:
    if old is None or new is None:
        return True
    return _ready(old) != _ready(new)


def _ready(node: core_pb2.Node) -> str:
    return next((c.status for c in node.status.conditions if c.type == "Ready"), "")
