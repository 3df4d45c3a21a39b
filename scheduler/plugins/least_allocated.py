"""NodeResourcesLeastAllocated: prefer the node with the most cpu and memory left.

Scored on the "non-zero" requests (a container without requests counts as 100m cpu and
200Mi memory), so that pods that ask for nothing still spread out instead of piling onto
one node whose real requests stay at zero.
"""

from __future__ import annotations

from scheduler.framework import MAX_NODE_SCORE, NodeInfo, PodInfo

__all__ = ["NodeResourcesLeastAllocated", "least_requested_score"]


def least_requested_score(requested: int, allocatable: int) -> int:
    """The free share of one resource after placing the pod, 0..MAX_NODE_SCORE."""
    if allocatable <= 0 or requested > allocatable:
        return 0
    return (allocatable - requested) * MAX_NODE_SCORE // allocatable


class NodeResourcesLeastAllocated:
    """Score: the average of the cpu and memory free shares; already on 0..100, so
    ``normalize`` leaves it alone. A resource the node has none of allocatable is left
    out of the average, as in Kubernetes, rather than dragging the score to 0."""

    name = "NodeResourcesLeastAllocated"
    weight = 1

    def applies(self, pod: PodInfo) -> bool:
        return True

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        allocatable = node.allocatable
        total = count = 0
        if allocatable.milli_cpu > 0:
            total += least_requested_score(node.non_zero_milli_cpu + pod.non_zero_milli_cpu,
                                           allocatable.milli_cpu)
            count += 1
        if allocatable.memory > 0:
            total += least_requested_score(node.non_zero_memory + pod.non_zero_memory,
                                           allocatable.memory)
            count += 1
        return total // count if count else 0

    def normalize(self, pod: PodInfo, scores: list[int]) -> None:
        return None
