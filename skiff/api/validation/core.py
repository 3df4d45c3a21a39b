"""Namespace, Node, Event and Lease."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from google.protobuf.message import Message

from skiff.api.selectors import validate_label_value
from skiff.api.v1 import coordination_pb2, core_pb2
from skiff.api.validation.errors import (
    Errors,
    at,
    forbidden,
    invalid,
    nonnegative,
    render,
    required,
)
from skiff.api.validation.formats import qualified_name
from skiff.api.validation.meta import (
    STANDARD_FINALIZERS,
)
from skiff.api.validation.resources import validate_quantity
from skiff.api.validation.scheduling import validate_taint_effect


def validate_namespace(obj: Message) -> Errors:
    assert isinstance(obj, core_pb2.Namespace)
    errs: Errors = []
    for name in obj.spec.finalizers:
        errs += qualified_name("spec.finalizers", name)
        if "/" not in name and name not in STANDARD_FINALIZERS:
            errs.append(invalid("spec.finalizers", name, "name is neither a standard "
                                "finalizer name nor is it fully qualified"))
    return errs


def validate_node(obj: Message) -> Errors:
    assert isinstance(obj, core_pb2.Node)
    errs: Errors = []
    errs += _validate_taints(obj.spec.taints, "spec.taints")
    for field, name in (("capacity", "capacity"), ("allocatable", "allocatable")):
        for resource, value in sorted(getattr(obj.status, field).items()):
            errs += validate_quantity(resource, value.value, f"status.{name}[{resource}]")
    errs += _validate_pod_cidrs(obj.spec)
    return errs


def _validate_pod_cidrs(spec: core_pb2.NodeSpec) -> Errors:
    errs: Errors = []
    if spec.pod_cidr:
        errs += _validate_cidr(spec.pod_cidr, "spec.podCIDR")
    for i, cidr in enumerate(spec.pod_cidrs):
        errs += _validate_cidr(cidr, f"spec.podCIDRs[{i}]")
    # Kubernetes keeps podCIDR as podCIDRs[0]; two different answers would be a puzzle.
    if spec.pod_cidr and spec.pod_cidrs and spec.pod_cidr != spec.pod_cidrs[0]:
        errs.append(invalid("spec.podCIDR", spec.pod_cidr,
                            f"must be the first of spec.podCIDRs ({spec.pod_cidrs[0]}) "
                            "when both are set"))
    if len(spec.pod_cidrs) > 1 and not _dual_stack(spec.pod_cidrs):
        errs.append(invalid("spec.podCIDRs", list(spec.pod_cidrs),
                            "may specify no more than one CIDR for each IP family"))
    return errs


def _validate_cidr(cidr: str, path: str) -> Errors:
    try:
        if "/" not in cidr:  # an address alone is no CIDR (Go's ParseCIDR agrees)
            raise ValueError(cidr)
        ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return [invalid(path, cidr, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or "
                                    "2001:db8::/64)")]
    return []


def _dual_stack(cidrs: Sequence[str]) -> bool:
    try:
        versions = [ipaddress.ip_network(c, strict=False).version for c in cidrs]
    except ValueError:
        return False
    return len(versions) == 2 and set(versions) == {4, 6}


def _validate_taints(taints: Sequence[core_pb2.Taint], path: str) -> Errors:
    errs: Errors = []
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(taints):
        t_path = f"{path}[{i}]"
        errs += qualified_name(f"{t_path}.key", taint.key)
        problems = validate_label_value(taint.value)
        if problems:
            errs.append(invalid(f"{t_path}.value", taint.value, ";".join(problems)))
        errs += validate_taint_effect(taint.effect, f"{t_path}.effect")
        # A node tolerates one answer per (key, effect): two would contradict.
        if (taint.key, taint.effect) in seen:
            errs.append(at(t_path, f"Duplicate value: {render(taint)}: taints must be "
                                   "unique by key and effect pair"))
        seen.add((taint.key, taint.effect))
    return errs


def validate_node_update(new: Message, old: Message) -> Errors:
    assert isinstance(new, core_pb2.Node) and isinstance(old, core_pb2.Node)
    errs: Errors = []
    # Routes and the node's network are built from the pod CIDR: it is set once.
    if old.spec.pod_cidr and new.spec.pod_cidr != old.spec.pod_cidr:
        errs.append(forbidden("spec.podCIDR", 'node updates may not change podCIDR except '
                                              'from "" to valid'))
    if old.spec.pod_cidrs and list(new.spec.pod_cidrs) != list(old.spec.pod_cidrs):
        errs.append(forbidden("spec.podCIDRs", 'node updates may not change podCIDR except '
                                               'from "" to valid'))
    if old.spec.provider_id and new.spec.provider_id != old.spec.provider_id:
        errs.append(forbidden("spec.providerID", 'node updates may not change providerID '
                                                 'except from "" to valid'))
    return errs


def validate_event(obj: Message) -> Errors:
    assert isinstance(obj, core_pb2.Event)
    # core/v1 Events keep their legacy rules: free-form names, and checks that depend
    # on whether the event is old-style (no eventTime) or new-style.
    errs: Errors = []
    involved_ns = obj.involved_object.namespace
    namespace = obj.metadata.namespace
    if not obj.HasField("event_time"):
        agrees = (namespace in ("", "default") if not involved_ns
                  else namespace == involved_ns)
    else:
        agrees = bool(involved_ns) or namespace in ("default", "kube-system")
        errs += _validate_new_style_event(obj)
    if not agrees:
        errs.append(invalid("involvedObject.namespace", involved_ns,
                            "does not match event.namespace"))
    return errs


def _validate_new_style_event(event: core_pb2.Event) -> Errors:
    errs: Errors = []
    if not event.reporting_component:
        errs.append(required("reportingComponent"))
    errs += qualified_name("reportingComponent", event.reporting_component)
    for attr, name, limit in (("reporting_instance", "reportingInstance", 128),
                              ("action", "action", 128), ("reason", "reason", 128)):
        value = getattr(event, attr)
        if not value:
            errs.append(required(name))
        if len(value) > limit:
            errs.append(invalid(name, "", f"can have at most {limit} characters"))
    if len(event.message) > 1024:
        errs.append(invalid("message", "", "can have at most 1024 characters"))
    return errs


def validate_lease(obj: Message) -> Errors:
    assert isinstance(obj, coordination_pb2.Lease)
    errs: Errors = []
    spec = obj.spec
    if spec.HasField("lease_duration_seconds") and spec.lease_duration_seconds <= 0:
        errs.append(invalid("spec.leaseDurationSeconds", spec.lease_duration_seconds,
                            "must be greater than 0"))
    if spec.HasField("lease_transitions"):
        errs += nonnegative("spec.leaseTransitions", spec.lease_transitions)
    return errs
