"""The scheduler's plugins, one per module, with Kubernetes' names and semantics.

``default_filters`` runs the cheap checks first; it is also Kubernetes' order, which
matters because a node reports only the reasons of the first filter that rejects it.

Adding a plugin touches its own module and this registry only: the module holds the
plugin's filter and/or score and, for a filter, the cluster events that can make a pod
it rejected schedulable (``events_to_register``); ``default_plugins`` below puts it in
place.
"""

from __future__ import annotations

from scheduler.framework import FilterPlugin, ScorePlugin
from scheduler.plugins.least_allocated import NodeResourcesLeastAllocated
from scheduler.plugins.node_affinity import NodeAffinity
from scheduler.plugins.node_name import NodeName
from scheduler.plugins.node_ports import NodePorts
from scheduler.plugins.node_ready import NodeReady
from scheduler.plugins.node_resources_fit import NodeResourcesFit
from scheduler.plugins.node_unschedulable import NodeUnschedulable
from scheduler.plugins.owner_spread import OwnerSpread
from scheduler.plugins.taint_toleration import TaintToleration

__all__ = [
    "NodeAffinity",
    "NodeName",
    "NodePorts",
    "NodeReady",
    "NodeResourcesFit",
    "NodeResourcesLeastAllocated",
    "NodeUnschedulable",
    "OwnerSpread",
    "TaintToleration",
    "default_filters",
    "default_plugins",
    "default_scores",
]


def default_plugins() -> tuple[list[FilterPlugin], list[ScorePlugin]]:
    """The default filters and scores; plugins that are both (NodeAffinity,
    TaintToleration) are one instance in both lists, sharing their per-pod caches."""
    affinity, taints = NodeAffinity(), TaintToleration()
    filters: list[FilterPlugin] = [
        NodeUnschedulable(),
        NodeReady(),
        NodeName(),
        taints,
        affinity,
        NodePorts(),
        NodeResourcesFit(),
    ]
    scores: list[ScorePlugin] = [
        NodeResourcesLeastAllocated(),
        OwnerSpread(),
        affinity,
        taints,
    ]
    return filters, scores


def default_filters() -> list[FilterPlugin]:
    """Kubernetes' filter order: NodeUnschedulable, NodeReady, NodeName, TaintToleration,
    NodeAffinity, NodePorts, NodeResourcesFit."""
    return default_plugins()[0]


def default_scores() -> list[ScorePlugin]:
    """NodeResourcesLeastAllocated, OwnerSpread, NodeAffinity, TaintToleration."""
    return default_plugins()[1]
