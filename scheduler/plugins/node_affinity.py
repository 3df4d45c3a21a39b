"""NodeAffinity: ``spec.nodeSelector`` and node affinity, required and preferred.

The filter requires every ``nodeSelector`` label and, when the pod sets required node
affinity, at least one of its terms (terms are ORed, the requirements inside a term
ANDed). The score adds up the weights of the preferred terms a node matches.

A pod's selectors are compiled once (``skiff.api.scheduling.CompiledAffinity``) and reused
for every node of the same scheduling decision: building a requirement validates it, which
costs ten times more than matching it.
"""

from __future__ import annotations

from scheduler.events import NODE_ADD, ActionType, ClusterEvent, ClusterEventWithHint, Resource
from scheduler.framework import FITS, NodeInfo, PodInfo, Status, normalize_to_max
from skiff.api.scheduling import NODE_NAME_FIELD, CompiledAffinity, SelectorTerm

# The matching rules live in the shared kernel (the DaemonSet controller needs them too);
# they are re-exported here for the plugin's callers.
__all__ = ["NODE_NAME_FIELD", "CompiledAffinity", "NodeAffinity", "SelectorTerm"]

_MISMATCH = Status.unresolvable("node(s) didn't match Pod's node affinity/selector")

_NOTHING = CompiledAffinity()


class NodeAffinity:
    """Filter on the nodeSelector and required node affinity; score on the preferred
    node affinity (the sum of the weights of the terms a node matches, scaled so the best
    node gets 100). A mismatch is UnschedulableAndUnresolvable: only a new node or new
    labels help."""

    name = "NodeAffinity"
    weight = 2

    def __init__(self) -> None:
        # The last pod seen and its compiled affinity, in one tuple so that reading both
        # is atomic: the scheduler asks about one pod for many nodes in a row.
        self._last: tuple[PodInfo | None, CompiledAffinity] = (None, _NOTHING)

    def compiled(self, pod: PodInfo) -> CompiledAffinity:
        last = self._last
        if last[0] is pod:
            return last[1]
        compiled = CompiledAffinity.of(pod.pod.spec)
        self._last = (pod, compiled)
        return compiled

    def events_to_register(self) -> list[ClusterEventWithHint]:
        return [ClusterEventWithHint(NODE_ADD),
                ClusterEventWithHint(ClusterEvent(Resource.NODE, ActionType.UPDATE_NODE_LABEL))]

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status:
        compiled = self.compiled(pod)
        if not compiled.node_selector and compiled.required is None:  # most pods
            return FITS
        if compiled.matches(node.labels, node.name):
            return FITS
        return _MISMATCH

    def applies(self, pod: PodInfo) -> bool:
        return bool(self.compiled(pod).preferred)

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        return self.compiled(pod).preferred_weight(node.labels, node.name)

    def normalize(self, pod: PodInfo, scores: list[int]) -> None:
        normalize_to_max(scores)
