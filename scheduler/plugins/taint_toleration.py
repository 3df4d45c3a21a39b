"""TaintToleration: a node's taints repel pods that do not tolerate them.

Taints with effect NoSchedule or NoExecute filter a node out; PreferNoSchedule taints only
lower its score. The matching rule (``tolerates``) is shared with NodeUnschedulable and
NodeReady, which ask whether a pod tolerates the taint Kubernetes would have put on a
cordoned or not-ready node.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from scheduler.framework import FITS, NodeInfo, PodInfo, Status, normalize_to_max
from skiff.api.v1 import core_pb2

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

NO_SCHEDULE = "NoSchedule"
PREFER_NO_SCHEDULE = "PreferNoSchedule"
NO_EXECUTE = "NoExecute"

FILTER_EFFECTS: frozenset[str] = frozenset({NO_SCHEDULE, NO_EXECUTE})
"""The effects that keep a pod off a node (PreferNoSchedule is only a score)."""


def tolerates(toleration: core_pb2.Toleration, taint: core_pb2.Taint) -> bool:
    """Whether `toleration` tolerates `taint`, with Kubernetes' rules.

    An empty effect or key is a wildcard; "Exists" ignores the value, "Equal" (or no
    operator) needs the value to match exactly; any other operator tolerates nothing.
    """
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.key and toleration.key != taint.key:
        return False
    operator = toleration.operator
    if operator == "Exists":
        return True
    if operator in ("", "Equal"):
        return toleration.value == taint.value
    return False


def tolerates_any(tolerations: Iterable[core_pb2.Toleration], taint: core_pb2.Taint) -> bool:
    """Whether at least one of `tolerations` tolerates `taint`."""
    return any(tolerates(toleration, taint) for toleration in tolerations)


def find_untolerated(
    taints: Iterable[core_pb2.Taint],
    tolerations: Sequence[core_pb2.Toleration],
    effects: Collection[str] = FILTER_EFFECTS,
) -> core_pb2.Taint | None:
    """The first taint with one of `effects` that no toleration tolerates, else None."""
    for taint in taints:
        if taint.effect in effects and not tolerates_any(tolerations, taint):
            return taint
    return None


class TaintToleration:
    """Filter and score: untolerated NoSchedule/NoExecute taints exclude a node, and the
    fewer untolerated PreferNoSchedule taints a node has, the better it scores."""

    name = "TaintToleration"
    weight = 3

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status:
        taints = node.taints
        if not taints:  # most nodes: nothing to tolerate
            return FITS
        taint = find_untolerated(taints, pod.pod.spec.tolerations)
        if taint is None:
            return FITS
        return (f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}",)

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
