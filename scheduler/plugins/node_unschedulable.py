"""NodeUnschedulable: a cordoned node takes no new pods, except those that tolerate the
taint Kubernetes puts on it (``node.kubernetes.io/unschedulable:NoSchedule``), which is how
DaemonSet pods still land on cordoned nodes."""

from __future__ import annotations

from scheduler.events import NODE_ADD, ActionType, ClusterEvent, ClusterEventWithHint, Resource
from scheduler.framework import FITS, NodeInfo, PodInfo, Status
from skiff.api.scheduling import NO_SCHEDULE, TAINT_UNSCHEDULABLE, tolerates_any
from skiff.api.v1 import core_pb2

__all__ = ["UNSCHEDULABLE_TAINT", "NodeUnschedulable"]

UNSCHEDULABLE_TAINT = core_pb2.Taint(key=TAINT_UNSCHEDULABLE, effect=NO_SCHEDULE)

_UNSCHEDULABLE = Status.unresolvable("node(s) were unschedulable")


class NodeUnschedulable:
    """Filter: rejects nodes with ``spec.unschedulable`` unless the pod tolerates it
    (UnschedulableAndUnresolvable: only uncordoning, or a new node, helps)."""

    name = "NodeUnschedulable"

    def events_to_register(self) -> list[ClusterEventWithHint]:
        return [ClusterEventWithHint(NODE_ADD),
                ClusterEventWithHint(ClusterEvent(Resource.NODE, ActionType.UPDATE_NODE_TAINT))]

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status:
        if not node.unschedulable or tolerates_any(pod.pod.spec.tolerations,
                                                    UNSCHEDULABLE_TAINT):
            return FITS
        return _UNSCHEDULABLE
