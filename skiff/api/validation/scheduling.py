"""Scheduling constraints of a pod spec: tolerations (and taint effects) and node
affinity."""

from __future__ import annotations

from collections.abc import Sequence

from skiff.api.selectors import (
    validate_dns1123_subdomain,
    validate_label_value,
    validate_node_selector_requirement,
)
from skiff.api.v1 import core_pb2
from skiff.api.validation.errors import Errors, invalid, required, unsupported
from skiff.api.validation.formats import qualified_name

_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def validate_tolerations(tolerations: Sequence[core_pb2.Toleration], path: str) -> Errors:
    errs: Errors = []
    for i, tol in enumerate(tolerations):
        t_path = f"{path}[{i}]"
        if tol.key:
            errs += qualified_name(f"{t_path}.key", tol.key)
        # An empty key with Exists tolerates every taint; with Equal it would match none.
        if not tol.key and tol.operator != "Exists":
            errs.append(invalid(f"{t_path}.operator", tol.operator, "operator must be Exists "
                                'when `key` is empty, which means "match all values and all '
                                'keys"'))
        if tol.HasField("toleration_seconds") and tol.effect != "NoExecute":
            errs.append(invalid(f"{t_path}.effect", tol.effect, "effect must be 'NoExecute' "
                                "when `tolerationSeconds` is set"))
        if tol.operator in ("Equal", ""):
            problems = validate_label_value(tol.value)
            if problems:
                errs.append(invalid(f"{t_path}.operator", tol.value, ";".join(problems)))
        elif tol.operator == "Exists":
            if tol.value:
                errs.append(invalid(f"{t_path}.operator", tol,
                                    "value must be empty when `operator` is 'Exists'"))
        else:
            errs.append(unsupported(f"{t_path}.operator", tol.operator, ("Equal", "Exists")))
        if tol.effect:
            errs += validate_taint_effect(tol.effect, f"{t_path}.effect")
    return errs


def validate_taint_effect(effect: str, path: str) -> Errors:
    if not effect:
        return [required(path)]
    if effect not in _TAINT_EFFECTS:
        return [unsupported(path, effect, _TAINT_EFFECTS)]
    return []


def validate_node_affinity(affinity: core_pb2.NodeAffinity, path: str) -> Errors:
    errs: Errors = []
    if affinity.HasField("required_during_scheduling_ignored_during_execution"):
        selector = affinity.required_during_scheduling_ignored_during_execution
        r_path = f"{path}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
        if not selector.node_selector_terms:
            errs.append(required(r_path, "must have at least one node selector term"))
        for i, term in enumerate(selector.node_selector_terms):
            errs += _validate_node_selector_term(term, f"{r_path}[{i}]")
    preferred = affinity.preferred_during_scheduling_ignored_during_execution
    for i, weighted in enumerate(preferred):
        p_path = f"{path}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
        if not 1 <= weighted.weight <= 100:
            errs.append(invalid(f"{p_path}.weight", weighted.weight,
                                "must be in the range 1-100"))
        errs += _validate_node_selector_term(weighted.preference, f"{p_path}.preference")
    return errs


def _validate_node_selector_term(term: core_pb2.NodeSelectorTerm, path: str) -> Errors:
    errs: Errors = []
    for i, req in enumerate(term.match_expressions):
        errs += [f"{path}.matchExpressions[{i}].{msg}" for msg in
                 validate_node_selector_requirement(req.key, req.operator, list(req.values))]
    for i, req in enumerate(term.match_fields):
        errs += _validate_node_field_requirement(req, f"{path}.matchFields[{i}]")
    return errs


def _validate_node_field_requirement(req: core_pb2.NodeSelectorRequirement,
                                     path: str) -> Errors:
    errs: Errors = []
    if req.operator in ("In", "NotIn"):
        if len(req.values) != 1:
            errs.append(required(f"{path}.values", "must be only one value when `operator` is "
                                                   "'In' or 'NotIn' for node field selector"))
    else:
        errs.append(invalid(f"{path}.operator", req.operator, "not a valid selector operator"))
    # The one node field a pod may select on is the node's name.
    if req.key != "metadata.name":
        errs.append(invalid(f"{path}.key", req.key, "not a valid field selector key"))
    else:
        for i, value in enumerate(req.values):
            errs += [invalid(f"{path}.values[{i}]", value, msg)
                     for msg in validate_dns1123_subdomain(value)]
    return errs
