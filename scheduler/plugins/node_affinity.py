"""NodeAffinity: ``spec.nodeSelector`` and node affinity, required and preferred.

The filter requires every ``nodeSelector`` label and, when the pod sets required node
affinity, at least one of its terms (terms are ORed, the requirements inside a term
ANDed). The score adds up the weights of the preferred terms a node matches.

A pod's selectors are compiled once (into ``skiff.api.selectors.Requirement`` objects) and
reused for every node of the same scheduling decision: building a requirement validates
it, which costs ten times more than matching it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from scheduler.framework import FITS, NodeInfo, PodInfo, Status, normalize_to_max
from skiff.api.selectors import Requirement, node_selector_requirement
from skiff.api.v1 import core_pb2

__all__ = ["NODE_NAME_FIELD", "CompiledAffinity", "NodeAffinity", "SelectorTerm"]

NODE_NAME_FIELD = "metadata.name"
"""The only field a ``matchFields`` requirement may name."""

_MISMATCH: Status = ("node(s) didn't match Pod's node affinity/selector",)

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
            requirement = _requirement(expression)
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


def _requirement(expression: core_pb2.NodeSelectorRequirement) -> Requirement | None:
    return node_selector_requirement(expression.key, expression.operator, expression.values)


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

    def preferred_weight(self, labels: Mapping[str, str], node_name: str) -> int:
        return sum(weight for weight, term in self.preferred if term.matches(labels, node_name))


_NOTHING = CompiledAffinity()


class NodeAffinity:
    """Filter on the nodeSelector and required node affinity; score on the preferred
    node affinity (the sum of the weights of the terms a node matches, scaled so the best
    node gets 100)."""

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
