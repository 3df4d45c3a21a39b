"""TaintToleration: a node's taints repel pods that do not tolerate them.

Taints with effect NoSchedule or NoExecute filter a node out; PreferNoSchedule taints only
lower its score. The matching rule (``skiff.api.scheduling.tolerates``) is shared with
NodeUnschedulable and NodeReady, which ask whether a pod tolerates the taint Kubernetes
would have put on a cordoned or not-ready node, and with the controllers.
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
from scheduler.framework import FITS, NodeInfo, PodInfo, Status, normalize_to_max
from skiff.api.scheduling import (
    FILTER_EFFECTS,
    NO_EXECUTE,
    NO_SCHEDULE,
    PREFER_NO_SCHEDULE,
    find_untolerated,
    tolerates,
    tolerates_any,
)

# The matching rules live in the shared kernel (the DaemonSet and node lifecycle
# controllers need them too); they are re-exported here for the plugin's callers.
__all__ = [
    "FILTER_EFFECTS",
    "NO_EXECUTE",
    "NO_SCHEDULE",
    "PREFER_NO_SCHEDULE",
    "TaintToleration",
    "find_untolerated",
    "tolerates",
    "tolerates_any",
]


class TaintToleration:
    """Filter and score: untolerated NoSchedule/NoExecute taints exclude a node, and the
    fewer untolerated PreferNoSchedule taints a node has, the better it scores. A taint
    is UnschedulableAndUnresolvable: only a change to the node's taints (or a new node)
    helps."""

    name = "TaintToleration"
    weight = 3

    def events_to_register(self) -> list[ClusterEventWithHint]:
        return [ClusterEventWithHint(NODE_ADD),
                ClusterEventWithHint(ClusterEvent(Resource.NODE, ActionType.UPDATE_NODE_TAINT),
                                     taints_changed)]

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status:
        taints = node.taints
        if not taints:  # most nodes: nothing to tolerate
            return FITS
        taint = find_untolerated(taints, pod.pod.spec.tolerations)
        if taint is None:
            return FITS
        return Status.unresolvable(f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}")

    def applies(self, pod: PodInfo) -> bool:
        return True

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        """How many PreferNoSchedule taints the pod does not tolerate (lower is better).

        Only tolerations with an empty or PreferNoSchedule effect count, which is exactly
        what ``tolerates`` already requires for a PreferNoSchedule taint.
        """
        taints = node.taints
        if not taints:
            return 0
        tolerations = pod.pod.spec.tolerations
        return sum(1 for taint in taints
                   if taint.effect == PREFER_NO_SCHEDULE
                   and not tolerates_any(tolerations, taint))

    def normalize(self, pod: PodInfo, scores: list[int]) -> None:
        normalize_to_max(scores, reverse=True)
