"""One scheduling decision: filter the nodes, score the feasible ones, pick the best.

Pure and synchronous: it reads the cache and the plugins and nothing else, so a decision
cannot interleave with informer updates, and a test can run it on hand-built nodes.

In a large cluster the scheduler does not need every feasible node to make a good choice:
like Kubernetes' percentageOfNodesToScore, it stops filtering once it has found enough
feasible nodes (all of them below 100 nodes; then a share that shrinks from 50% with the
cluster's size, never under 5% and never under 100 nodes), and starts each search where
the previous one stopped so that every node gets its turn.

A filter that answers Error (or raises) stops the decision: the pod was not found not to
fit, the scheduler failed, and ``Decision.error`` says how, as kube-scheduler's framework
does.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from scheduler.framework import FITS, Code, FilterPlugin, NodeInfo, PodInfo, ScorePlugin, Status

__all__ = ["Algorithm", "Decision", "explain", "feasible_nodes_to_find"]

log = logging.getLogger(__name__)

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
    """Where the pod goes (None: nowhere), and why each rejected node was rejected; or,
    when a filter failed, the error (then nothing is known about fitting)."""

    node: str | None
    nodes: int  # nodes in the cluster
    evaluated: int  # nodes filtered
    feasible: int  # nodes that passed every filter
    reasons: Counter[str] = field(default_factory=Counter)  # reason -> number of nodes
    rejected_by: frozenset[str] = frozenset()  # names of the filters that rejected a node
    # Nodes rejected as UnschedulableAndUnresolvable: evicting pods there would not help.
    unresolvable: int = 0
    error: Status | None = None  # a filter's Error: the decision was not made

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
        decision, feasible = self._filter(pod, nodes)
        if feasible:
            best = feasible[0] if len(feasible) == 1 else self._best(pod, feasible)
            decision.node = best.name
        return decision

    def _filter(self, pod: PodInfo, nodes: Sequence[NodeInfo]
                ) -> tuple[Decision, list[NodeInfo]]:
        n = len(nodes)
        wanted = feasible_nodes_to_find(n, self.percentage_of_nodes_to_score)
        start = self._next_start % n if n else 0
        feasible: list[NodeInfo] = []
        reasons: Counter[str] = Counter()
        rejected_by: set[str] = set()
        filters = self.filters
        evaluated = unresolvable = 0
        error: Status | None = None
        plugin: FilterPlugin | None = None
        try:
            for i in range(n):
                node = nodes[(start + i) % n]
                evaluated += 1
                for plugin in filters:
                    status = plugin.filter(pod, node)
                    if status is FITS:
                        continue
                    code = status.code
                    if code is Code.SUCCESS:
                        continue
                    if code is Code.ERROR:
                        error = _plugin_error(plugin.name, status.message())
                        break
                    reasons.update(status.reasons)
                    rejected_by.add(plugin.name)
                    if code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                        unresolvable += 1
                    break
                else:
                    feasible.append(node)
                    if len(feasible) >= wanted:
                        break
                if error is not None:
                    break
        except Exception as err:
            name = plugin.name if plugin is not None else "?"
            log.exception("pod %s: filter plugin %s failed", pod.key, name)
            error = _plugin_error(name, repr(err))
        self._next_start = (start + evaluated) % n if n else 0
        if error is not None:
            return Decision(None, n, evaluated, 0, error=error), []
        return Decision(None, n, evaluated, len(feasible), reasons, frozenset(rejected_by),
                        unresolvable), feasible

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


def _plugin_error(plugin: str, message: str) -> Status:
    return Status.error(f"running {plugin!r} filter plugin: {message}")
