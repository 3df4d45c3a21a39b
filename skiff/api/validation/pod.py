"""The pod spec, shared by Pods and every pod template, and the Pod kind with the few
changes a Pod update may make."""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.message import Message

from skiff.api.selectors import validate_dns1123_label, validate_dns1123_subdomain
from skiff.api.v1 import core_pb2
from skiff.api.validation.container import validate_containers, validate_init_containers
from skiff.api.validation.errors import (
    Errors,
    forbidden,
    invalid,
    nonnegative,
    range_error,
    required,
    unsupported,
)
from skiff.api.validation.formats import MAX_INT32, ip_errors
from skiff.api.validation.meta import validate_annotations, validate_labels
from skiff.api.validation.rules import POD, TEMPLATE, PodRules
from skiff.api.validation.scheduling import validate_node_affinity, validate_tolerations
from skiff.api.validation.security import validate_pod_security_context
from skiff.api.validation.volumes import validate_volumes

_RESTART_POLICIES = ("Always", "OnFailure", "Never")
_DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
# Kubernetes' limits on a pod's dnsConfig (and on the resolv.conf the kubelet writes).
MAX_DNS_NAMESERVERS = 3
MAX_DNS_SEARCH_PATHS = 32
MAX_DNS_SEARCH_LIST_CHARS = 2048


def validate_pod_template(template: core_pb2.PodTemplateSpec, path: str,
                          rules: PodRules = TEMPLATE) -> Errors:
    errs = validate_labels(template.metadata.labels, f"{path}.metadata.labels")
    errs += validate_annotations(template.metadata.annotations, f"{path}.metadata.annotations")
    errs += _validate_pod_spec(template.spec, f"{path}.spec", rules)
    return errs


def _validate_pod_spec(spec: core_pb2.PodSpec, path: str, rules: PodRules) -> Errors:
    volumes, errs = validate_volumes(spec.volumes, f"{path}.volumes")
    errs += validate_containers(spec.containers, volumes, f"{path}.containers", rules)
    errs += validate_init_containers(spec.init_containers, spec.containers, volumes,
                                     f"{path}.initContainers", rules)
    errs += _validate_restart_policy(spec.restart_policy, f"{path}.restartPolicy", rules)
    errs += _validate_dns_policy(spec.dns_policy, path)
    errs += _validate_dns_config(spec, path)
    errs += validate_labels(spec.node_selector, f"{path}.nodeSelector")
    errs += validate_pod_security_context(spec.security_context, f"{path}.securityContext")
    errs += validate_node_affinity(spec.affinity.node_affinity,
                                   f"{path}.affinity.nodeAffinity")
    if spec.node_name:
        errs += [invalid(f"{path}.nodeName", spec.node_name, msg)
                 for msg in validate_dns1123_subdomain(spec.node_name)]
    if spec.HasField("active_deadline_seconds") and not (
            1 <= spec.active_deadline_seconds <= MAX_INT32):
        errs.append(invalid(f"{path}.activeDeadlineSeconds", spec.active_deadline_seconds,
                            range_error(1, MAX_INT32)))
    if spec.HasField("termination_grace_period_seconds"):
        errs += nonnegative(f"{path}.terminationGracePeriodSeconds",
                            spec.termination_grace_period_seconds)
    for name in ("hostname", "subdomain"):
        value = getattr(spec, name)
        if value:
            errs += [invalid(f"{path}.{name}", value, msg)
                     for msg in validate_dns1123_label(value)]
    errs += validate_tolerations(spec.tolerations, f"{path}.tolerations")
    if spec.host_network:
        errs += _validate_host_network_ports(spec.containers, f"{path}.containers", rules)
        errs += _validate_host_network_ports(spec.init_containers, f"{path}.initContainers",
                                             rules)
    return errs


def _validate_restart_policy(policy: str, path: str, rules: PodRules) -> Errors:
    if not policy:
        return [] if rules.job else [required(path)]
    if policy not in _RESTART_POLICIES:
        return [unsupported(path, policy, _RESTART_POLICIES)]
    return []


def _validate_dns_policy(policy: str, spec_path: str) -> Errors:
    path = f"{spec_path}.dnsPolicy"
    if not policy:
        return [required(path)]
    if policy not in _DNS_POLICIES:
        return [unsupported(path, policy, _DNS_POLICIES)]
    return []


def _validate_dns_config(spec: core_pb2.PodSpec, spec_path: str) -> Errors:
    """Kubernetes' validatePodDNSConfig."""
    path = f"{spec_path}.dnsConfig"
    config = spec.dns_config
    if spec.dns_policy == "None":
        if not spec.HasField("dns_config"):
            return [required(path, "must provide `dnsConfig` when `dnsPolicy` is None")]
        if not config.nameservers:
            return [required(f"{path}.nameservers", "must provide at least one DNS nameserver "
                             "when `dnsPolicy` is None")]
    errs: Errors = []
    if len(config.nameservers) > MAX_DNS_NAMESERVERS:
        errs.append(invalid(f"{path}.nameservers", list(config.nameservers),
                            f"must not have more than {MAX_DNS_NAMESERVERS} nameservers"))
    for i, server in enumerate(config.nameservers):
        errs += [invalid(f"{path}.nameservers[{i}]", server, msg) for msg in ip_errors(server)]
    if len(config.searches) > MAX_DNS_SEARCH_PATHS:
        errs.append(invalid(f"{path}.searches", list(config.searches),
                            f"must not have more than {MAX_DNS_SEARCH_PATHS} search paths"))
    if len(" ".join(config.searches)) > MAX_DNS_SEARCH_LIST_CHARS:
        errs.append(invalid(f"{path}.searches", list(config.searches),
                            f"must not have more than {MAX_DNS_SEARCH_LIST_CHARS} characters "
                            "(including spaces) in the search list"))
    for i, search in enumerate(config.searches):
        search = search.removesuffix(".")  # a trailing dot is fine
        errs += [invalid(f"{path}.searches[{i}]", search, msg)
                 for msg in validate_dns1123_subdomain(search)]
    for i, option in enumerate(config.options):
        if not option.name:
            errs.append(required(f"{path}.options[{i}]", "Option.Name must not be empty"))
    return errs


def _validate_host_network_ports(containers: Sequence[core_pb2.Container], path: str,
                                 rules: PodRules) -> Errors:
    errs: Errors = []
    for i, container in enumerate(containers):
        for j, port in enumerate(container.ports):
            # A Pod's hostPort was defaulted to its containerPort; a template's may be 0.
            if (rules.is_pod or port.host_port != 0) and port.host_port != port.container_port:
                errs.append(invalid(f"{path}[{i}].ports[{j}].hostPort", port.host_port,
                                    "must match `containerPort` when `hostNetwork` is true"))
    return errs


def validate_pod(obj: Message) -> Errors:
    assert isinstance(obj, core_pb2.Pod)
    return _validate_pod_spec(obj.spec, "spec", POD)


_POD_UPDATABLE = ("`spec.containers[*].image`,`spec.initContainers[*].image`,"
                  "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
                  "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 "
                  "if it was previously negative)")


def validate_pod_update(new_obj: Message, old_obj: Message) -> Errors:
    assert isinstance(new_obj, core_pb2.Pod) and isinstance(old_obj, core_pb2.Pod)
    new, old = new_obj.spec, old_obj.spec
    for field, name in (("containers", "containers"), ("init_containers", "initContainers")):
        if len(getattr(new, field)) != len(getattr(old, field)):
            return [forbidden(f"spec.{name}", "pod updates may not add or remove containers")]
    errs = _validate_active_deadline_update(new, old)
    errs += _validate_only_added_tolerations(new.tolerations, old.tolerations)
    # Compare with the updatable fields taken from the old spec: what remains must match.
    munged = core_pb2.PodSpec()
    munged.CopyFrom(new)
    for field in ("containers", "init_containers"):
        for container, old_container in zip(getattr(munged, field), getattr(old, field),
                                            strict=True):
            container.image = old_container.image
    _copy_optional(munged, old, "active_deadline_seconds")
    del munged.tolerations[:]
    munged.tolerations.extend(old.tolerations)
    if (old.HasField("termination_grace_period_seconds")
            and old.termination_grace_period_seconds < 0
            and new.termination_grace_period_seconds == 1):
        munged.termination_grace_period_seconds = old.termination_grace_period_seconds
    if munged != old:
        changed = ", ".join(_changed_fields(munged, old, "spec"))
        errs.append(forbidden("spec", f"pod updates may not change fields other than "
                                      f"{_POD_UPDATABLE}\nchanged: {changed}"))
    return errs


def _copy_optional(target: Message, source: Message, field: str) -> None:
    if source.HasField(field):
        setattr(target, field, getattr(source, field))
    else:
        target.ClearField(field)


def _validate_active_deadline_update(new: core_pb2.PodSpec, old: core_pb2.PodSpec) -> Errors:
    path = "spec.activeDeadlineSeconds"
    if new.HasField("active_deadline_seconds"):
        value = new.active_deadline_seconds
        if not 0 <= value <= MAX_INT32:
            return [invalid(path, value, range_error(0, MAX_INT32))]
        if old.HasField("active_deadline_seconds") and old.active_deadline_seconds < value:
            return [invalid(path, value, "must be less than or equal to previous value")]
    elif old.HasField("active_deadline_seconds"):
        return [invalid(path, None, "must not update from a positive integer to nil value")]
    return []


def _validate_only_added_tolerations(new: Sequence[core_pb2.Toleration],
                                     old: Sequence[core_pb2.Toleration]) -> Errors:
    def without_seconds(t: core_pb2.Toleration) -> tuple[str, str, str, str]:
        return (t.key, t.operator, t.value, t.effect)

    kept = {without_seconds(t) for t in new}
    if any(without_seconds(t) not in kept for t in old):
        return [forbidden("spec.tolerations",
                          "existing toleration can not be modified except its tolerationSeconds")]
    return []


def _changed_fields(new: Message, old: Message, path: str) -> list[str]:
    """The paths where two messages differ, for an error a user can act on."""
    changed: list[str] = []
    for fd in new.DESCRIPTOR.fields:
        a, b = getattr(new, fd.name), getattr(old, fd.name)
        if a == b:
            continue
        sub = f"{path}.{fd.json_name}"
        is_message = fd.message_type is not None and not fd.message_type.GetOptions().map_entry
        if is_message and not fd.is_repeated:
            # Added or removed as a whole: name it, not each of its fields.
            both = new.HasField(fd.name) and old.HasField(fd.name)
            changed += (_changed_fields(a, b, sub) if both else []) or [sub]
        elif is_message and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                if x != y:
                    changed += _changed_fields(x, y, f"{sub}[{i}]") or [f"{sub}[{i}]"]
        else:
            changed.append(sub)
    return changed
