"""One scheduling decision: filter the nodes, score the feasible ones, pick the best.

Pure and synchronous: it reads the cache and the plugins and nothing else, so a decision
cannot interleave with informer updates, and a test can run it on hand-built nodes.

In a large cluster the scheduler does not need every feasible node to make a good choice:
like Kubernetes' percentageOfNodesToScore, it stops filtering once it has found enough
feasible nodes (all of them below 100 nodes; then a share that shrinks from 50% with the
cluster's size, never under 5% and never under 100 nodes), and starts each search where
the previous one stopped so that every node gets its turn.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from scheduler.framework import FilterPlugin, NodeInfo, PodInfo, ScorePlugin

__all__ = ["Algorithm", "Decision", "explain", "feasible_nodes_to_find"]

MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_PERCENTAGE_OF_NODES_TO_SCORE = 5


def feasible_nodes_to_find(num_nodes: int, percentage: int = 0) -> int:
    """How many feasible nodes are enough. `percentage` 0 means adaptive."""
    if num_nodes < MIN_FEASIBLE_NODES_TO_FIND or percentage >= 100:
        return num_nodes
    if percentage <= 0:
        percentage = max(50 - num_nodes // 125, MIN_PERCENTAGE_OF_NODES_TO_SCORE)
    return min(num_nodes, max(num_nodes * percentage // 100, MIN_FEASIBLE_NODES_TO_FIND))


@dataclass
class Decision:
    """Where the pod goes (None: nowhere), and why each rejected node was rejected."""

    node: str | None
    nodes: int  # nodes in the cluster
    evaluated: int  # nodes filtered
    feasible: int  # nodes that passed every filter
    reasons: Counter[str] = field(default_factory=Counter)  # reason -> number of nodes
    rejected_by: frozenset[str] = frozenset()  # names of the filters that rejected a node

    def explain(self) -> str:
        return explain(self.nodes, self.reasons)


def explain(num_nodes: int, reasons: Counter[str]) -> str:
    """Kubernetes' FailedScheduling message: `0/3 nodes are available: 1 node(s) had
    untolerated taint {dedicated: gpu}, 2 Insufficient memory.`"""
    if num_nodes == 0:
        return "no nodes available to schedule pods"
    counted = sorted(f"{count} {reason}" for reason, count in reasons.items())
    return f"0/{num_nodes} nodes are available: {', '.join(counted)}."


class Algorithm:
    def __init__(self, filters: Sequence[FilterPlugin], scores: Sequence[ScorePlugin], *,
                 percentage_of_nodes_to_score: int = 0, rng: random.Random | None = None
                 ) -> None:
        self.filters = list(filters)
        self.scores = list(scores)
        self.percentage_of_nodes_to_score = percentage_of_nodes_to_score
        self._rng = rng if rng is not None else random.Random()
        self._next_start = 0

    def schedule(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Decision:
        feasible, evaluated, reasons, rejected_by = self._filter(pod, nodes)
        if not feasible:
            return Decision(None, len(nodes), evaluated, 0, reasons, rejected_by)
        best = feasible[0] if len(feasible) == 1 else self._best(pod, feasible)
        return Decision(best.name, len(nodes), evaluated, len(feasible), reasons, rejected_by)

    def _filter(self, pod: PodInfo, nodes: Sequence[NodeInfo]
                ) -> tuple[list[NodeInfo], int, Counter[str], frozenset[str]]:
        n = len(nodes)
        wanted = feasible_nodes_to_find(n, self.percentage_of_nodes_to_score)
        start = self._next_start % n if n else 0
        feasible: list[NodeInfo] = []
        reasons: Counter[str] = Counter()
        rejected_by: set[str] = set()
        filters = self.filters
        evaluated = 0
        for i in range(n):
            node = nodes[(start + i) % n]
            evaluated += 1
            for plugin in filters:
                status = plugin.filter(pod, node)
                if status:
                    reasons.update(status)
                    rejected_by.add(plugin.name)
                    break
            else:
                feasible.append(node)
                if len(feasible) >= wanted:
                    break
        self._next_start = (start + evaluated) % n if n else 0
        return feasible, evaluated, reasons, frozenset(rejected_by)

    def _best(self, pod: PodInfo, feasible: list[NodeInfo]) -> NodeInfo:
        totals = [0] * len(feasible)
        for plugin in self.scores:
            if not plugin.applies(pod):
                continue
            scores = [plugin.score(pod, node) for node in feasible]
            plugin.normalize(pod, scores)
            weight = plugin.weight
            for i, score in enumerate(scores):
                totals[i] += weight * score
        top = max(totals)
        # Ties are broken at random so that equal nodes share the load.
        best = [i for i, total in enumerate(totals) if total == top]
        return feasible[best[0] if len(best) == 1 else self._rng.choice(best)]
