"""Whether a pod may run on a node: taints and tolerations, nodeSelector and node affinity.

Pure matching rules, shared by every daemon that has to answer the question the same way:
the scheduler's filters (TaintToleration, NodeAffinity, NodeReady, NodeUnschedulable), the
DaemonSet controller (which nodes should run a daemon pod) and the node lifecycle
controller (which pods a NoExecute taint evicts). They live in the shared kernel because
the daemons never import each other.

The rules are Kubernetes' (``k8s.io/component-helpers/scheduling/corev1``): a toleration
with an empty key or effect is a wildcard; ``Exists`` ignores the value; node selector terms
are ORed and the requirements inside a term ANDed; ``matchFields`` may only name
``metadata.name``.

A pod's selectors are compiled once (into ``skiff.api.selectors.Requirement`` objects) and
reused for every node they are matched against: building a requirement validates it,
which costs ten times more than matching it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from skiff.api.selectors import Requirement, node_selector_requirement
from skiff.api.v1 import core_pb2

__all__ = [
    "FILTER_EFFECTS",
    "NODE_NAME_FIELD",
    "NO_EXECUTE",
    "NO_SCHEDULE",
    "PREFER_NO_SCHEDULE",
    "TAINT_DISK_PRESSURE",
    "TAINT_MEMORY_PRESSURE",
    "TAINT_NETWORK_UNAVAILABLE",
    "TAINT_NOT_READY",
    "TAINT_OUT_OF_SERVICE",
    "TAINT_PID_PRESSURE",
    "TAINT_UNREACHABLE",
    "TAINT_UNSCHEDULABLE",
    "CompiledAffinity",
    "SelectorTerm",
    "find_untolerated",
    "tolerates",
    "tolerates_any",
]

NO_SCHEDULE = "NoSchedule"
PREFER_NO_SCHEDULE = "PreferNoSchedule"
NO_EXECUTE = "NoExecute"

FILTER_EFFECTS: frozenset[str] = frozenset({NO_SCHEDULE, NO_EXECUTE})
"""The effects that keep a pod off a node (PreferNoSchedule is only a score)."""

# The taints Kubernetes' node lifecycle controller manages (k8s.io/api/core/v1 well_known_taints).
TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
TAINT_MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
TAINT_DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
TAINT_PID_PRESSURE = "node.kubernetes.io/pid-pressure"
TAINT_NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"
TAINT_OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"

NODE_NAME_FIELD = "metadata.name"
"""The only field a ``matchFields`` requirement may name."""


# --------------------------------------------------------------------------- taints


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


# --------------------------------------------------------------------------- node affinity


@dataclass(frozen=True, slots=True)
class SelectorTerm:
    """One usable node selector term: label requirements and node-name conditions,
    all of which must hold."""

    expressions: tuple[Requirement, ...]
    names: tuple[tuple[bool, str], ...]  # (must equal, name) from matchFields

    def matches(self, labels: Mapping[str, str], node_name: str) -> bool:
        for requirement in self.expressions:
            if not requirement.matches(labels):
                return False
        return all((node_name == name) is must_equal for must_equal, name in self.names)

    @classmethod
    def of(cls, term: core_pb2.NodeSelectorTerm) -> SelectorTerm | None:
        """The compiled term, or None for a term that can match no node: one with no
        requirements at all, or with an invalid one (Kubernetes' API rejects those, and
        its scheduler lets such a term match nothing rather than fail)."""
        if not term.match_expressions and not term.match_fields:
            return None
        expressions = []
        for expression in term.match_expressions:
            requirement = node_selector_requirement(expression.key, expression.operator,
                                                    expression.values)
            if requirement is None:
                return None
            expressions.append(requirement)
        names = []
        for field in term.match_fields:
            # matchFields is only ever metadata.name, with In or NotIn and one value.
            if (field.key != NODE_NAME_FIELD or field.operator not in ("In", "NotIn")
                    or len(field.values) != 1):
                return None
            names.append((field.operator == "In", field.values[0]))
        return cls(tuple(expressions), tuple(names))


def _terms(terms: Iterable[core_pb2.NodeSelectorTerm]) -> tuple[SelectorTerm, ...]:
    return tuple(t for t in map(SelectorTerm.of, terms) if t is not None)


@dataclass(frozen=True, slots=True)
class CompiledAffinity:
    """What one pod asks of a node's labels and name, ready to match."""

    node_selector: tuple[tuple[str, str], ...] = ()
    required: tuple[SelectorTerm, ...] | None = None  # None: not set; (): matches nothing
    preferred: tuple[tuple[int, SelectorTerm], ...] = ()

    @classmethod
    def of(cls, spec: core_pb2.PodSpec) -> CompiledAffinity:
        node_selector = tuple(spec.node_selector.items())
        required: tuple[SelectorTerm, ...] | None = None
        preferred: tuple[tuple[int, SelectorTerm], ...] = ()
        if spec.HasField("affinity") and spec.affinity.HasField("node_affinity"):
            affinity = spec.affinity.node_affinity
            if affinity.HasField("required_during_scheduling_ignored_during_execution"):
                required = _terms(affinity.required_during_scheduling_ignored_during_execution
                                  .node_selector_terms)
            preferred = tuple(
                (p.weight, term)
                for p in affinity.preferred_during_scheduling_ignored_during_execution
                if p.weight and (term := SelectorTerm.of(p.preference)) is not None)
        return cls(node_selector, required, preferred)

    def matches(self, labels: Mapping[str, str], node_name: str) -> bool:
        """Whether a node satisfies the nodeSelector and the required affinity."""
        for key, value in self.node_selector:
            if labels.get(key) != value:
                return False
        required = self.required
        if required is None:
            return True
        return any(term.matches(labels, node_name) for term in required)

    def matches_node(self, node: core_pb2.Node) -> bool:
        return self.matches(node.metadata.labels, node.metadata.name)

    def preferred_weight(self, labels: Mapping[str, str], node_name: str) -> int:
        return sum(weight for weight, term in self.preferred if term.matches(labels, node_name))
