"""OwnerSpread: spread the pods of one controller (ReplicaSet, Job, ...) across nodes.

Skiff's analogue of Kubernetes' default spreading (SelectorSpread): instead of matching
Service and controller selectors, it counts the pods on each node that share the pod's
controller owner, so a node already running replicas of the same workload scores lower.
"""

from __future__ import annotations

from scheduler.framework import NodeInfo, PodInfo, normalize_to_max

__all__ = ["OwnerSpread"]


class OwnerSpread:
    """Score: fewer pods of the same controller on the node is better."""

    name = "OwnerSpread"
    weight = 2

    def applies(self, pod: PodInfo) -> bool:
        return bool(pod.owner_uid)

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        return node.owner_counts.get(pod.owner_uid, 0)

    def normalize(self, pod: PodInfo, scores: list[int]) -> None:
        normalize_to_max(scores, reverse=True)
