"""Validation of objects, with Kubernetes' rules, field paths and messages.

`validate(obj)` checks an object as Kubernetes' `pkg/apis/*/validation` does on create;
`validate_update(new, old)` adds only what an update must also respect (immutable
fields): the apiserver runs both on every update. Each problem is one string in the
shape of Kubernetes' `field.Error`, `"<field.path>: <problem>"`, for example

    metadata.name: Invalid value: "Web": a lowercase RFC 1123 subdomain must ...
    spec.template.spec.containers[0].image: Required value

so a Kubernetes user reads the errors they know. Objects are expected to be defaulted
first (`skiff.api.defaults.apply_defaults`), as Kubernetes defaults before validating.

The module is table-driven: one small function per kind, registered by kind name in
`_VALIDATORS` and `_UPDATE_VALIDATORS`, built from shared pieces (object metadata,
label selectors, one pod spec validator used by Pods and by every pod template).

Deliberate differences from Kubernetes (each a fix of a path Kubernetes gets wrong, or
a check that spares a user a runtime failure):
- pod template labels and annotations are reported at `spec.template.metadata.labels`
  (Kubernetes says `spec.template.labels`); owner references and volume mount subPaths
  carry their list index; node taints are reported at `spec.taints` (not
  `metadata.taints`);
- a volume mount's mountPath must be absolute (the container runtime would refuse it);
- a Service nodePort must lie in 30000-32767 (Kubernetes' allocator says the same);
- a Job's (manual) selector must not be empty: it would adopt every pod around.
"""

from __future__ import annotations

import ipaddress
import json
import re
import zoneinfo
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from skiff.api import convert, defaults, kinds
from skiff.api.quantity import Quantity, QuantityError, parse_quantity
from skiff.api.selectors import (
    SelectorError,
    label_selector_from_proto_like,
    validate_dns1123_label,
    validate_dns1123_subdomain,
    validate_label_key,
    validate_label_value,
    validate_node_selector_requirement,
)
from skiff.api.v1 import apps_pb2, batch_pb2, coordination_pb2, core_pb2, meta_pb2

__all__ = ["validate", "validate_update"]

Errors = list[str]

MAX_INT32 = 2**31 - 1
MAX_SECRET_SIZE = 1024 * 1024  # Secrets and ConfigMaps: 1 MiB of data
MAX_ANNOTATIONS_SIZE = 256 * 1024
NODE_PORT_RANGE = (30000, 32767)
MAX_PARALLELISM_INDEXED_JOB = 100_000
MAX_CRON_JOB_NAME = 52  # 63 minus the 11-character suffix the CronJob controller adds


def validate(obj: Message) -> Errors:
    """All problems of a (defaulted) object of any kind; [] if it is valid."""
    return _VALIDATORS[kinds.by_message(obj).kind](obj)


def validate_update(new: Message, old: Message) -> Errors:
    """What an update from `old` to `new` may not do (immutable fields, allowed Pod
    changes). It does not repeat `validate(new)`: callers run both."""
    kind = kinds.by_message(new).kind
    errs = _validate_meta_update(new.metadata, old.metadata)  # type: ignore[attr-defined]
    specific = _UPDATE_VALIDATORS.get(kind)
    if specific is not None:
        errs += specific(new, old)
    return errs


# =====================================================================================
# Error strings, in the format of k8s.io/apimachinery/pkg/util/validation/field
# =====================================================================================

def _render(value: Any) -> str:
    """A bad value as Kubernetes prints it: simple values as Go's %v/%q, others as JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(_plain(value), ensure_ascii=False, separators=(",", ":"))


def _plain(value: Any) -> Any:
    if isinstance(value, Message):
        return convert.to_dict(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple) or (
            hasattr(value, "__iter__") and not isinstance(value, str | bytes)):
        return [_plain(v) for v in value]
    return value


def _at(path: str, body: str) -> str:
    return f"{path}: {body}" if path else body


def _invalid(path: str, value: Any, detail: str) -> str:
    return _at(path, f"Invalid value: {_render(value)}: {detail}")


def _required(path: str, detail: str = "") -> str:
    return _at(path, f"Required value: {detail}" if detail else "Required value")


def _forbidden(path: str, detail: str) -> str:
    return _at(path, f"Forbidden: {detail}")


def _unsupported(path: str, value: Any, supported: Iterable[str]) -> str:
    quoted = ", ".join(json.dumps(s) for s in supported)
    return _at(path, f"Unsupported value: {_render(value)}: supported values: {quoted}")


def _duplicate(path: str, value: Any) -> str:
    return _at(path, f"Duplicate value: {_render(value)}")


def _not_found(path: str, value: Any) -> str:
    return _at(path, f"Not found: {_render(value)}")


def _too_long(path: str, limit: int) -> str:
    return _at(path, f"Too long: must have at most {limit} bytes")


def _immutable(path: str, new_value: Any) -> str:
    return _invalid(path, new_value, "field is immutable")


def _nonnegative(path: str, value: int) -> Errors:
    return [] if value >= 0 else [_invalid(path, value, "must be greater than or equal to 0")]


def _range_error(low: int, high: int) -> str:
    return f"must be between {low} and {high}, inclusive"


# =====================================================================================
# String formats (k8s.io/apimachinery/pkg/util/validation)
# =====================================================================================

def _regex_error(message: str, fmt: str, *examples: str) -> str:
    # Kubernetes' RegexError, odd double space included, so messages match upstream.
    shown = " or ".join(f"'{example}', " for example in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{fmt}')"


def _byte_len(text: str) -> int:
    return len(text.encode("utf-8", errors="surrogatepass"))


_DNS1035_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_RE = re.compile(_DNS1035_FMT)
_DNS1035_ERR = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                "start with an alphabetic character, and end with an alphanumeric character")


def _dns1035_label(value: str) -> Errors:
    errs = []
    if _byte_len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _DNS1035_RE.fullmatch(value):
        errs.append(_regex_error(_DNS1035_ERR, _DNS1035_FMT, "my-name", "abc-123"))
    return errs


_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_KEY_RE = re.compile(_CONFIG_KEY_FMT)
_ENV_NAME_FMT = "[-._a-zA-Z][-._a-zA-Z0-9]*"
_ENV_NAME_RE = re.compile(_ENV_NAME_FMT)
_HTTP_HEADER_FMT = "[-A-Za-z0-9]+"
_HTTP_HEADER_RE = re.compile(_HTTP_HEADER_FMT)
_PERCENT_FMT = "[0-9]+%"
_PERCENT_RE = re.compile(_PERCENT_FMT)


def _no_chdir_prefix(value: str) -> Errors:
    """Names that become file names must not walk out of their directory."""
    if value == ".":
        return ["must not be '.'"]
    if value == "..":
        return ["must not be '..'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


def _config_map_key(key: str) -> Errors:
    errs = []
    if _byte_len(key) > 253:
        errs.append("must be no more than 253 characters")
    if not _CONFIG_KEY_RE.fullmatch(key):
        errs.append(_regex_error("a valid config key must consist of alphanumeric characters, "
                                 "'-', '_' or '.'", _CONFIG_KEY_FMT,
                                 "key.name", "KEY_NAME", "key-name"))
    return errs + _no_chdir_prefix(key)


def _env_var_name(name: str) -> Errors:
    errs = []
    if not _ENV_NAME_RE.fullmatch(name):
        errs.append(_regex_error("a valid environment variable name must consist of "
                                 "alphabetic characters, digits, '_', '-', or '.', and must "
                                 "not start with a digit", _ENV_NAME_FMT,
                                 "my.env-name", "MY_ENV.NAME", "MyEnvName1"))
    return errs + _no_chdir_prefix(name)


def _port_name(name: str) -> Errors:
    """IANA_SVC_NAME: what a named port may be called."""
    errs = []
    if len(name) > 15:
        errs.append("must be no more than 15 characters")
    if not re.fullmatch("[-a-z0-9]+", name):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", name):
        errs.append("must contain at least one letter (a-z)")
    if "--" in name:
        errs.append("must not contain consecutive hyphens")
    if name and (name[0] == "-" or name[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def _port_number(port: int) -> Errors:
    return [] if 1 <= port <= 65535 else [_range_error(1, 65535)]


def _percent(value: str) -> Errors:
    if _PERCENT_RE.fullmatch(value):
        return []
    return [_regex_error("a valid percent string must be a numeric string followed by an "
                         "ending '%'", _PERCENT_FMT, "1%", "93%")]


def _http_header_name(name: str) -> Errors:
    if _HTTP_HEADER_RE.fullmatch(name):
        return []
    return [_regex_error("a valid HTTP header must consist of alphanumeric characters or '-'",
                         _HTTP_HEADER_FMT, "X-Header-Name")]


def _ip_errors(value: str) -> Errors:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return ["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
    return []


def _qualified_name(path: str, value: str) -> Errors:
    return [_invalid(path, value, msg) for msg in validate_label_key(value)]


# ---- object names: Kubernetes' ValidateNameFunc(name, prefix) ----

NameFn = Callable[[str, bool], Errors]


def _mask_trailing_dash(name: str) -> str:
    # A generateName prefix may end in '-'; Kubernetes checks it with a letter instead.
    if len(name) > 1 and name.endswith("-"):
        return name[:-2] + "a"
    return name


def _subdomain_name(name: str, prefix: bool) -> Errors:
    return validate_dns1123_subdomain(_mask_trailing_dash(name) if prefix else name)


def _label_name(name: str, prefix: bool) -> Errors:
    return validate_dns1123_label(_mask_trailing_dash(name) if prefix else name)


def _dns1035_name(name: str, prefix: bool) -> Errors:
    return _dns1035_label(_mask_trailing_dash(name) if prefix else name)


def _path_segment_name(name: str, prefix: bool) -> Errors:
    """The only rule for names of kinds with free-form names (Events): usable in a URL."""
    if not prefix and name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


# =====================================================================================
# Object metadata
# =====================================================================================

_STANDARD_FINALIZERS = {"kubernetes", "orphan", "foregroundDeletion"}


def _validate_meta(meta: meta_pb2.ObjectMeta, *, namespaced: bool, name_fn: NameFn,
                   path: str = "metadata") -> Errors:
    errs: Errors = []
    if meta.generate_name:
        errs += [_invalid(f"{path}.generateName", meta.generate_name, msg)
                 for msg in name_fn(meta.generate_name, True)]
    if not meta.name:
        errs.append(_required(f"{path}.name", "name or generateName is required"))
    else:
        errs += [_invalid(f"{path}.name", meta.name, msg) for msg in name_fn(meta.name, False)]
    if namespaced:
        if not meta.namespace:
            errs.append(_required(f"{path}.namespace"))
        else:
            errs += [_invalid(f"{path}.namespace", meta.namespace, msg)
                     for msg in validate_dns1123_label(meta.namespace)]
    elif meta.namespace:
        errs.append(_forbidden(f"{path}.namespace", "not allowed on this type"))
    errs += _nonnegative(f"{path}.generation", meta.generation)
    errs += _validate_labels(meta.labels, f"{path}.labels")
    errs += _validate_annotations(meta.annotations, f"{path}.annotations")
    errs += _validate_owner_references(meta.owner_references, f"{path}.ownerReferences")
    errs += _validate_finalizers(meta.finalizers, f"{path}.finalizers")
    return errs


def _validate_labels(labels: Mapping[str, str], path: str) -> Errors:
    errs: Errors = []
    for key, value in sorted(labels.items()):
        errs += _qualified_name(path, key)
        errs += [_invalid(path, value, msg) for msg in validate_label_value(value)]
    return errs


def _validate_annotations(annotations: Mapping[str, str], path: str) -> Errors:
    # Keys are qualified names, except that case does not matter.
    errs = [_invalid(path, key, msg) for key in sorted(annotations)
            for msg in validate_label_key(key.lower())]
    size = sum(_byte_len(k) + _byte_len(v) for k, v in annotations.items())
    if size > MAX_ANNOTATIONS_SIZE:
        errs.append(_too_long(path, MAX_ANNOTATIONS_SIZE))
    return errs


def _validate_owner_references(refs: Sequence[meta_pb2.OwnerReference], path: str) -> Errors:
    errs: Errors = []
    controller = ""
    for i, ref in enumerate(refs):
        ref_path = f"{path}[{i}]"
        group, _, version = ref.api_version.rpartition("/")
        if not version or ref.api_version.count("/") > 1:
            errs.append(_invalid(f"{ref_path}.apiVersion", ref.api_version,
                                 "version must not be empty"))
        if not ref.kind:
            errs.append(_invalid(f"{ref_path}.kind", ref.kind, "must not be empty"))
        if not ref.name:
            errs.append(_invalid(f"{ref_path}.name", ref.name, "must not be empty"))
        if not ref.uid:
            errs.append(_invalid(f"{ref_path}.uid", ref.uid, "must not be empty"))
        if (group, version, ref.kind) == ("", "v1", "Event"):
            errs.append(_invalid(ref_path, ref, "/v1, Kind=Event is disallowed from being an "
                                                "owner"))
        if ref.HasField("controller") and ref.controller:
            this = f"{ref.kind}/{ref.name}"
            if controller:
                errs.append(_invalid(path, list(refs), "Only one reference can have Controller "
                                     f'set to true. Found "true" in references for {controller} '
                                     f"and {this}"))
            else:
                controller = this
    return errs


def _validate_finalizers(finalizers: Sequence[str], path: str) -> Errors:
    errs: Errors = []
    for i, name in enumerate(finalizers):
        errs += _qualified_name(path, name)
        # A finalizer without a domain must be one Kubernetes itself defines.
        if "/" not in name and name not in _STANDARD_FINALIZERS:
            errs.append(_invalid(f"{path}[{i}]", name, "name is neither a standard finalizer "
                                 "name nor is it fully qualified"))
    if "orphan" in finalizers and "foregroundDeletion" in finalizers:
        errs.append(_invalid(path, list(finalizers), "finalizer orphan and foregroundDeletion "
                             "cannot be both set"))
    return errs


def _validate_meta_update(new: meta_pb2.ObjectMeta, old: meta_pb2.ObjectMeta) -> Errors:
    errs: Errors = []
    if old.HasField("deletion_timestamp"):
        added = sorted(set(new.finalizers) - set(old.finalizers))
        if added:
            errs.append(_forbidden("metadata.finalizers", "no new finalizers can be added if "
                                   f"the object is being deleted, found new finalizers {added}"))
    if new.generation < old.generation:
        errs.append(_invalid("metadata.generation", new.generation, "must not be decremented"))
    for name, attr in (("name", "name"), ("namespace", "namespace"), ("uid", "uid")):
        if getattr(new, attr) != getattr(old, attr):
            errs.append(_immutable(f"metadata.{name}", getattr(new, attr)))
    for name, attr in (("creationTimestamp", "creation_timestamp"),
                       ("deletionTimestamp", "deletion_timestamp")):
        if (new.HasField(attr), getattr(new, attr)) != (old.HasField(attr), getattr(old, attr)):
            errs.append(_immutable(f"metadata.{name}", _timestamp(new, attr)))
    if (new.HasField("deletion_grace_period_seconds") != old.HasField(
            "deletion_grace_period_seconds")
            or new.deletion_grace_period_seconds != old.deletion_grace_period_seconds):
        grace = (new.deletion_grace_period_seconds
                 if new.HasField("deletion_grace_period_seconds") else None)
        errs.append(_immutable("metadata.deletionGracePeriodSeconds", grace))
    return errs


def _timestamp(meta: meta_pb2.ObjectMeta, attr: str) -> str | None:
    if not meta.HasField(attr):
        return None
    return str(getattr(meta, attr).ToJsonString())


# =====================================================================================
# Label selectors
# =====================================================================================

def _validate_label_selector(selector: meta_pb2.LabelSelector, path: str) -> Errors:
    errs = _validate_labels(selector.match_labels, f"{path}.matchLabels")
    for i, expr in enumerate(selector.match_expressions):
        expr_path = f"{path}.matchExpressions[{i}]"
        if expr.operator in ("In", "NotIn"):
            if not expr.values:
                errs.append(_required(f"{expr_path}.values",
                                      "must be specified when `operator` is 'In' or 'NotIn'"))
        elif expr.operator in ("Exists", "DoesNotExist"):
            if expr.values:
                errs.append(_forbidden(f"{expr_path}.values", "may not be specified when "
                                       "`operator` is 'Exists' or 'DoesNotExist'"))
        else:
            errs.append(_invalid(f"{expr_path}.operator", expr.operator,
                                 "not a valid selector operator"))
        errs += _qualified_name(f"{expr_path}.key", expr.key)
        for j, value in enumerate(expr.values):
            errs += [_invalid(f"{expr_path}.values[{j}]", value, msg)
                     for msg in validate_label_value(value)]
    return errs


def _selector_matches(selector: meta_pb2.LabelSelector, labels: Mapping[str, str]) -> bool | None:
    """Whether the selector selects `labels`; None if it is not a valid selector."""
    try:
        parsed = label_selector_from_proto_like(selector.match_labels, selector.match_expressions)
    except SelectorError:
        return None
    return parsed.matches(labels)


def _is_empty_selector(selector: meta_pb2.LabelSelector) -> bool:
    return not selector.match_labels and not selector.match_expressions


def _selects_template(selector: meta_pb2.LabelSelector, template: core_pb2.PodTemplateSpec,
                      spec_path: str) -> Errors:
    labels = template.metadata.labels
    if _selector_matches(selector, labels) is False:
        return [_invalid(f"{spec_path}.template.metadata.labels", dict(labels),
                         "`selector` does not match template `labels`")]
    return []


# =====================================================================================
# Pod spec, shared by Pods and every pod template
# =====================================================================================

@dataclass(frozen=True)
class _PodRules:
    """What differs between validating a Pod and a pod template."""

    is_pod: bool = False  # a Pod itself rather than a template
    job: bool = False  # a Job's template: its own rule reports a missing restartPolicy


_POD = _PodRules(is_pod=True)
_TEMPLATE = _PodRules()
_JOB_TEMPLATE = _PodRules(job=True)

_RESTART_POLICIES = ("Always", "OnFailure", "Never")
_DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_PROTOCOLS = ("SCTP", "TCP", "UDP")
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_HOST_PATH_TYPES = ("", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File",
                    "FileOrCreate", "Socket")
_ENV_FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
                    "spec.serviceAccountName", "status.hostIP", "status.hostIPs",
                    "status.podIP", "status.podIPs")
_DOWNWARD_API_FIELDS = {"metadata.annotations", "metadata.labels", "metadata.name",
                        "metadata.namespace", "metadata.uid", "spec.nodeName",
                        "spec.restartPolicy", "spec.serviceAccountName", "spec.schedulerName",
                        "status.phase", "status.hostIP", "status.hostIPs", "status.podIP",
                        "status.podIPs"}
_FILE_MODE_ERR = "must be a number between 0 and 0777 (octal), both inclusive"
_INIT_ONLY_ERR = "may not be set for init containers without restartPolicy=Always"
_PROBES = (("liveness_probe", "livenessProbe"), ("readiness_probe", "readinessProbe"),
           ("startup_probe", "startupProbe"))


def _validate_pod_template(template: core_pb2.PodTemplateSpec, path: str,
                           rules: _PodRules = _TEMPLATE) -> Errors:
    errs = _validate_labels(template.metadata.labels, f"{path}.metadata.labels")
    errs += _validate_annotations(template.metadata.annotations, f"{path}.metadata.annotations")
    errs += _validate_pod_spec(template.spec, f"{path}.spec", rules)
    return errs


def _validate_pod_spec(spec: core_pb2.PodSpec, path: str, rules: _PodRules) -> Errors:
    volumes, errs = _validate_volumes(spec.volumes, f"{path}.volumes")
    errs += _validate_containers(spec.containers, volumes, f"{path}.containers", rules)
    errs += _validate_init_containers(spec.init_containers, spec.containers, volumes,
                                      f"{path}.initContainers", rules)
    errs += _validate_restart_policy(spec.restart_policy, f"{path}.restartPolicy", rules)
    errs += _validate_dns_policy(spec.dns_policy, path)
    errs += _validate_labels(spec.node_selector, f"{path}.nodeSelector")
    errs += _validate_pod_security_context(spec.security_context, f"{path}.securityContext")
    errs += _validate_node_affinity(spec.affinity.node_affinity,
                                    f"{path}.affinity.nodeAffinity")
    if spec.node_name:
        errs += [_invalid(f"{path}.nodeName", spec.node_name, msg)
                 for msg in validate_dns1123_subdomain(spec.node_name)]
    if spec.HasField("active_deadline_seconds") and not (
            1 <= spec.active_deadline_seconds <= MAX_INT32):
        errs.append(_invalid(f"{path}.activeDeadlineSeconds", spec.active_deadline_seconds,
                             _range_error(1, MAX_INT32)))
    if spec.HasField("termination_grace_period_seconds"):
        errs += _nonnegative(f"{path}.terminationGracePeriodSeconds",
                             spec.termination_grace_period_seconds)
    for name in ("hostname", "subdomain"):
        value = getattr(spec, name)
        if value:
            errs += [_invalid(f"{path}.{name}", value, msg)
                     for msg in validate_dns1123_label(value)]
    errs += _validate_tolerations(spec.tolerations, f"{path}.tolerations")
    if spec.host_network:
        errs += _validate_host_network_ports(spec.containers, f"{path}.containers", rules)
        errs += _validate_host_network_ports(spec.init_containers, f"{path}.initContainers",
                                             rules)
    return errs


def _validate_restart_policy(policy: str, path: str, rules: _PodRules) -> Errors:
    if not policy:
        return [] if rules.job else [_required(path)]
    if policy not in _RESTART_POLICIES:
        return [_unsupported(path, policy, _RESTART_POLICIES)]
    return []


def _validate_dns_policy(policy: str, spec_path: str) -> Errors:
    path = f"{spec_path}.dnsPolicy"
    if not policy:
        return [_required(path)]
    if policy not in _DNS_POLICIES:
        return [_unsupported(path, policy, _DNS_POLICIES)]
    if policy == "None":
        # Skiff has no dnsConfig, so a pod with no DNS of its own could not resolve.
        return [_required(f"{spec_path}.dnsConfig",
                          "must provide `dnsConfig` when `dnsPolicy` is None")]
    return []


def _validate_host_network_ports(containers: Sequence[core_pb2.Container], path: str,
                                 rules: _PodRules) -> Errors:
    errs: Errors = []
    for i, container in enumerate(containers):
        for j, port in enumerate(container.ports):
            # A Pod's hostPort was defaulted to its containerPort; a template's may be 0.
            if (rules.is_pod or port.host_port != 0) and port.host_port != port.container_port:
                errs.append(_invalid(f"{path}[{i}].ports[{j}].hostPort", port.host_port,
                                     "must match `containerPort` when `hostNetwork` is true"))
    return errs


# ---- containers ----

def _validate_containers(containers: Sequence[core_pb2.Container], volumes: set[str],
                         path: str, rules: _PodRules) -> Errors:
    if not containers:
        return [_required(path)]
    errs: Errors = []
    names: set[str] = set()
    for i, container in enumerate(containers):
        c_path = f"{path}[{i}]"
        errs += _validate_container(container, volumes, c_path, rules)
        if container.name in names:
            errs.append(_duplicate(f"{c_path}.name", container.name))
        names.add(container.name)
        errs += _validate_probes(container, c_path)
        if container.HasField("lifecycle"):
            errs += _validate_lifecycle(container.lifecycle, f"{c_path}.lifecycle")
    errs += _validate_host_port_conflicts(containers, path)
    return errs


def _validate_init_containers(containers: Sequence[core_pb2.Container],
                              app_containers: Sequence[core_pb2.Container], volumes: set[str],
                              path: str, rules: _PodRules) -> Errors:
    errs: Errors = []
    # One namespace of names for all of a pod's containers: logs and exec pick by name.
    names = {c.name for c in app_containers}
    for i, container in enumerate(containers):
        c_path = f"{path}[{i}]"
        errs += _validate_container(container, volumes, c_path, rules)
        if container.name in names:
            errs.append(_duplicate(f"{c_path}.name", container.name))
        if container.name:
            names.add(container.name)
        # Init containers run to completion one by one: nothing to probe or hook.
        for field, name in (("lifecycle", "lifecycle"), *_PROBES):
            if container.HasField(field):
                errs.append(_forbidden(f"{c_path}.{name}", _INIT_ONLY_ERR))
    errs += _validate_host_port_conflicts(containers, path)
    return errs


def _validate_container(c: core_pb2.Container, volumes: set[str], path: str,
                        rules: _PodRules) -> Errors:
    errs: Errors = []
    if not c.name:
        errs.append(_required(f"{path}.name"))
    else:
        errs += [_invalid(f"{path}.name", c.name, msg) for msg in validate_dns1123_label(c.name)]
    # The image's format is the runtime's business, as in Kubernetes; only presence here.
    if not c.image:
        errs.append(_required(f"{path}.image"))
    elif rules.is_pod and c.image != c.image.strip():
        errs.append(_invalid(f"{path}.image", c.image,
                             "must not have leading or trailing whitespace"))
    errs += _validate_termination_message_policy(c.termination_message_policy, path)
    errs += _validate_container_ports(c.ports, f"{path}.ports")
    errs += _validate_env(c.env, f"{path}.env")
    errs += _validate_env_from(c.env_from, f"{path}.envFrom")
    errs += _validate_volume_mounts(c.volume_mounts, volumes, f"{path}.volumeMounts")
    errs += _validate_pull_policy(c.image_pull_policy, f"{path}.imagePullPolicy")
    errs += _validate_resources(c.resources, f"{path}.resources")
    errs += _validate_security_context(c, f"{path}.securityContext")
    return errs


def _validate_termination_message_policy(policy: str, path: str) -> Errors:
    policy_path = f"{path}.terminationMessagePolicy"
    if not policy:
        return [_required(policy_path, "must be 'File' or 'FallbackToLogsOnError'")]
    if policy not in ("File", "FallbackToLogsOnError"):
        return [_invalid(policy_path, policy, "must be 'File' or 'FallbackToLogsOnError'")]
    return []


def _validate_pull_policy(policy: str, path: str) -> Errors:
    if not policy:
        return [_required(path)]
    if policy not in _PULL_POLICIES:
        return [_unsupported(path, policy, _PULL_POLICIES)]
    return []


def _validate_container_ports(ports: Sequence[core_pb2.ContainerPort], path: str) -> Errors:
    errs: Errors = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        p_path = f"{path}[{i}]"
        if port.name:
            problems = _port_name(port.name)
            errs += [_invalid(f"{p_path}.name", port.name, msg) for msg in problems]
            if not problems and port.name in names:
                errs.append(_duplicate(f"{p_path}.name", port.name))
            names.add(port.name)
        if port.container_port == 0:
            errs.append(_required(f"{p_path}.containerPort"))
        else:
            errs += [_invalid(f"{p_path}.containerPort", port.container_port, msg)
                     for msg in _port_number(port.container_port)]
        if port.host_port != 0:
            errs += [_invalid(f"{p_path}.hostPort", port.host_port, msg)
                     for msg in _port_number(port.host_port)]
        errs += _validate_protocol(port.protocol, f"{p_path}.protocol")
    return errs


def _validate_protocol(protocol: str, path: str) -> Errors:
    if not protocol:
        return [_required(path)]
    if protocol not in _PROTOCOLS:
        return [_unsupported(path, protocol, _PROTOCOLS)]
    return []


def _validate_host_port_conflicts(containers: Sequence[core_pb2.Container], path: str) -> Errors:
    errs: Errors = []
    seen: set[str] = set()
    for i, container in enumerate(containers):
        for j, port in enumerate(container.ports):
            if port.host_port == 0:
                continue
            key = f"{port.protocol}/{port.host_ip}/{port.host_port}"
            if key in seen:
                errs.append(_duplicate(f"{path}[{i}].ports[{j}].hostPort", key))
            seen.add(key)
    return errs


# ---- environment ----

def _validate_env(env: Sequence[core_pb2.EnvVar], path: str) -> Errors:
    errs: Errors = []
    for i, var in enumerate(env):
        v_path = f"{path}[{i}]"
        if not var.name:
            errs.append(_required(f"{v_path}.name"))
        else:
            errs += [_invalid(f"{v_path}.name", var.name, msg) for msg in _env_var_name(var.name)]
        if var.HasField("value_from"):
            errs += _validate_env_value_from(var, f"{v_path}.valueFrom")
    return errs


def _validate_env_value_from(var: core_pb2.EnvVar, path: str) -> Errors:
    source = var.value_from
    errs: Errors = []
    count = 0
    if source.HasField("field_ref"):
        count += 1
        errs += _validate_field_ref(source.field_ref, f"{path}.fieldRef")
    if source.HasField("config_map_key_ref"):
        count += 1
        errs += _validate_key_selector(source.config_map_key_ref, f"{path}.configMapKeyRef")
    if source.HasField("secret_key_ref"):
        count += 1
        errs += _validate_key_selector(source.secret_key_ref, f"{path}.secretKeyRef")
    if count == 0:
        errs.append(_invalid(path, "", "must specify one of: `fieldRef`, `resourceFieldRef`, "
                                       "`configMapKeyRef` or `secretKeyRef`"))
    elif var.value:
        errs.append(_invalid(path, "", "may not be specified when `value` is not empty"))
    elif count > 1:
        errs.append(_invalid(path, "", "may not have more than one field specified at a time"))
    return errs


def _split_subscript(field_path: str) -> tuple[str, str] | None:
    """`metadata.labels['app']` -> (`metadata.labels`, `app`)."""
    if not field_path.endswith("']"):
        return None
    head, sep, key = field_path[:-2].partition("['")
    if not sep or not head:
        return None
    return head, key


def _validate_field_ref(ref: core_pb2.ObjectFieldSelector, path: str) -> Errors:
    if not ref.api_version:
        return [_required(f"{path}.apiVersion")]
    if not ref.field_path:
        return [_required(f"{path}.fieldPath")]
    fp_path = f"{path}.fieldPath"
    if ref.api_version != "v1":
        return [_invalid(fp_path, ref.field_path, "error converting fieldPath: unsupported pod "
                                                  f"version: {ref.api_version}")]
    subscripted = _split_subscript(ref.field_path)
    if subscripted is not None:
        field, key = subscripted
        if field == "metadata.annotations":
            return _qualified_name(path, key.lower())
        if field == "metadata.labels":
            return _qualified_name(path, key)
        return [_invalid(fp_path, ref.field_path, "error converting fieldPath: field label does "
                                                  f"not support subscript: {ref.field_path}")]
    if ref.field_path not in _DOWNWARD_API_FIELDS:
        return [_invalid(fp_path, ref.field_path, "error converting fieldPath: field label not "
                                                  f"supported: {ref.field_path}")]
    if ref.field_path not in _ENV_FIELD_PATHS:
        return [_unsupported(fp_path, ref.field_path, _ENV_FIELD_PATHS)]
    return []


def _validate_key_selector(ref: core_pb2.ConfigMapKeySelector | core_pb2.SecretKeySelector,
                           path: str) -> Errors:
    errs = [_invalid(f"{path}.name", ref.name, msg) for msg in _subdomain_name(ref.name, False)]
    if not ref.key:
        errs.append(_required(f"{path}.key"))
    else:
        errs += [_invalid(f"{path}.key", ref.key, msg) for msg in _config_map_key(ref.key)]
    return errs


def _validate_env_from(sources: Sequence[core_pb2.EnvFromSource], path: str) -> Errors:
    errs: Errors = []
    for i, source in enumerate(sources):
        s_path = f"{path}[{i}]"
        if source.prefix:
            errs += [_invalid(f"{s_path}.prefix", source.prefix, msg)
                     for msg in _env_var_name(source.prefix)]
        count = 0
        for field, name in (("config_map_ref", "configMapRef"), ("secret_ref", "secretRef")):
            if source.HasField(field):
                count += 1
                errs += _validate_ref_name(getattr(source, field).name, f"{s_path}.{name}.name")
        if count == 0:
            errs.append(_invalid(path, "", "must specify one of: `configMapRef` or `secretRef`"))
        elif count > 1:
            errs.append(_invalid(path, "", "may not have more than one field specified at a "
                                           "time"))
    return errs


def _validate_ref_name(name: str, path: str) -> Errors:
    if not name:
        return [_required(path)]
    return [_invalid(path, name, msg) for msg in _subdomain_name(name, True)]


# ---- volumes ----

def _validate_volumes(volumes: Sequence[core_pb2.Volume], path: str) -> tuple[set[str], Errors]:
    """The names a container may mount (valid volumes only), and the problems."""
    errs: Errors = []
    names: set[str] = set()
    for i, volume in enumerate(volumes):
        v_path = f"{path}[{i}]"
        problems = _validate_volume_source(volume, v_path)
        if not volume.name:
            problems.append(_required(f"{v_path}.name"))
        else:
            problems += [_invalid(f"{v_path}.name", volume.name, msg)
                         for msg in validate_dns1123_label(volume.name)]
        if volume.name in names:
            problems.append(_duplicate(f"{v_path}.name", volume.name))
        if problems:
            errs += problems
        else:
            names.add(volume.name)
    return names, errs


def _validate_volume_source(volume: core_pb2.Volume, path: str) -> Errors:
    return _exactly_one(volume, path, "volume type", (
        ("empty_dir", "emptyDir", _validate_empty_dir),
        ("host_path", "hostPath", _validate_host_path),
        ("secret", "secret", _validate_secret_volume),
        ("config_map", "configMap", _validate_config_map_volume),
    ))


def _exactly_one(message: Any, path: str, noun: str,
                 choices: tuple[tuple[str, str, Callable[[Any, str], Errors]], ...]) -> Errors:
    """Kubernetes' one-of rule (a volume's source, a probe's handler): exactly one of
    `choices` (proto field, JSON name, validator) is set; the set one is validated."""
    errs: Errors = []
    count = 0
    for field, name, check in choices:
        if not message.HasField(field):
            continue
        if count > 0:
            errs.append(_forbidden(f"{path}.{name}", f"may not specify more than 1 {noun}"))
            continue
        count += 1
        errs += check(getattr(message, field), f"{path}.{name}")
    if count == 0:
        errs.append(_required(path, f"must specify a {noun}"))
    return errs


def _validate_empty_dir(source: core_pb2.EmptyDirVolumeSource, path: str) -> Errors:
    if source.HasField("size_limit"):
        quantity = _quantity(source.size_limit.value)
        if quantity is None or quantity.sign() < 0:
            return [_forbidden(f"{path}.sizeLimit",
                               "SizeLimit field must be a valid resource quantity")]
    return []


def _validate_host_path(source: core_pb2.HostPathVolumeSource, path: str) -> Errors:
    if not source.path:
        return [_required(f"{path}.path")]
    errs = _no_backsteps(source.path, f"{path}.path")
    if source.HasField("type") and source.type not in _HOST_PATH_TYPES:
        errs.append(_unsupported(f"{path}.type", source.type, _HOST_PATH_TYPES))
    return errs


def _validate_secret_volume(source: core_pb2.SecretVolumeSource, path: str) -> Errors:
    errs = [] if source.secret_name else [_required(f"{path}.secretName")]
    return errs + _validate_projection(source, path)


def _validate_config_map_volume(source: core_pb2.ConfigMapVolumeSource, path: str) -> Errors:
    errs = [] if source.name else [_required(f"{path}.name")]
    return errs + _validate_projection(source, path)


def _validate_projection(source: core_pb2.SecretVolumeSource | core_pb2.ConfigMapVolumeSource,
                         path: str) -> Errors:
    errs: Errors = []
    if source.HasField("default_mode") and not 0 <= source.default_mode <= 0o777:
        errs.append(_invalid(f"{path}.defaultMode", source.default_mode, _FILE_MODE_ERR))
    for i, item in enumerate(source.items):
        i_path = f"{path}.items[{i}]"
        if not item.key:
            errs.append(_required(f"{i_path}.key"))
        if not item.path:
            errs.append(_required(f"{i_path}.path"))
        errs += _local_non_reserved_path(item.path, f"{i_path}.path")
        if item.HasField("mode") and not 0 <= item.mode <= 0o777:
            errs.append(_invalid(f"{i_path}.mode", item.mode, _FILE_MODE_ERR))
    return errs


def _no_backsteps(target: str, path: str) -> Errors:
    if ".." in target.replace("\\", "/").split("/"):
        return [_invalid(path, target, "must not contain '..'")]
    return []


def _local_descending_path(target: str, path: str) -> Errors:
    errs = [_invalid(path, target, "must be a relative path")] if target.startswith("/") else []
    return errs + _no_backsteps(target, path)


def _local_non_reserved_path(target: str, path: str) -> Errors:
    errs = _local_descending_path(target, path)
    # Kubernetes keeps '..'-prefixed names for the atomic writer's own files.
    if target.startswith("..") and not target.startswith("../"):
        errs.append(_invalid(path, target, "must not start with '..'"))
    return errs


def _validate_volume_mounts(mounts: Sequence[core_pb2.VolumeMount], volumes: set[str],
                            path: str) -> Errors:
    errs: Errors = []
    mount_points: set[str] = set()
    for i, mount in enumerate(mounts):
        m_path = f"{path}[{i}]"
        if not mount.name:
            errs.append(_required(f"{m_path}.name"))
        if mount.name not in volumes:
            errs.append(_not_found(f"{m_path}.name", mount.name))
        if not mount.mount_path:
            errs.append(_required(f"{m_path}.mountPath"))
        elif not mount.mount_path.startswith("/"):
            errs.append(_invalid(f"{m_path}.mountPath", mount.mount_path,
                                 "must be an absolute path"))
        if mount.mount_path in mount_points:
            errs.append(_invalid(f"{m_path}.mountPath", mount.mount_path, "must be unique"))
        mount_points.add(mount.mount_path)
        if mount.sub_path:
            errs += _local_descending_path(mount.sub_path, f"{m_path}.subPath")
    return errs


# ---- probes and lifecycle hooks ----

def _validate_probes(container: core_pb2.Container, container_path: str) -> Errors:
    errs: Errors = []
    for field, name in _PROBES:
        if container.HasField(field):
            # Liveness and startup are pass/fail: one success is all there is.
            errs += _validate_probe(getattr(container, field), f"{container_path}.{name}",
                                    single_success=name != "readinessProbe")
    return errs


def _validate_probe(probe: core_pb2.Probe, path: str, *, single_success: bool) -> Errors:
    errs = _validate_handler(probe, path)
    for attr, json_name in (("initial_delay_seconds", "initialDelaySeconds"),
                            ("timeout_seconds", "timeoutSeconds"),
                            ("period_seconds", "periodSeconds"),
                            ("success_threshold", "successThreshold"),
                            ("failure_threshold", "failureThreshold")):
        errs += _nonnegative(f"{path}.{json_name}", getattr(probe, attr))
    if single_success and probe.success_threshold != 1:
        errs.append(_invalid(f"{path}.successThreshold", probe.success_threshold, "must be 1"))
    return errs


def _validate_lifecycle(lifecycle: core_pb2.Lifecycle, path: str) -> Errors:
    errs: Errors = []
    if lifecycle.HasField("post_start"):
        errs += _validate_handler(lifecycle.post_start, f"{path}.postStart")
    if lifecycle.HasField("pre_stop"):
        errs += _validate_handler(lifecycle.pre_stop, f"{path}.preStop")
    return errs


def _validate_handler(handler: core_pb2.Probe | core_pb2.LifecycleHandler, path: str) -> Errors:
    return _exactly_one(handler, path, "handler type", (
        ("exec", "exec", _validate_exec),
        ("http_get", "httpGet", _validate_http_get),
        ("tcp_socket", "tcpSocket", _validate_tcp_socket),
    ))


def _validate_exec(action: core_pb2.ExecAction, path: str) -> Errors:
    return [] if action.command else [_required(f"{path}.command")]


def _validate_http_get(action: core_pb2.HTTPGetAction, path: str) -> Errors:
    errs = [] if action.path else [_required(f"{path}.path")]
    errs += _validate_port_num_or_name(action.port, f"{path}.port")
    if action.scheme not in ("HTTP", "HTTPS"):
        errs.append(_unsupported(f"{path}.scheme", action.scheme, ("HTTP", "HTTPS")))
    for header in action.http_headers:
        errs += [_invalid(f"{path}.httpHeaders", header.name, msg)
                 for msg in _http_header_name(header.name)]
    return errs


def _validate_tcp_socket(action: core_pb2.TCPSocketAction, path: str) -> Errors:
    return _validate_port_num_or_name(action.port, f"{path}.port")


def _validate_port_num_or_name(port: meta_pb2.IntOrString, path: str) -> Errors:
    if port.HasField("str_val"):
        return [_invalid(path, port.str_val, msg) for msg in _port_name(port.str_val)]
    return [_invalid(path, port.int_val, msg) for msg in _port_number(port.int_val)]


# ---- resources ----

_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")


def _quantity(text: str) -> Quantity | None:
    try:
        return parse_quantity(text)
    except QuantityError:
        return None


def _is_native_resource(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def _overcommit_allowed(name: str) -> bool:
    """Only native, non-hugepage resources may be requested below their limit."""
    return _is_native_resource(name) and not name.startswith("hugepages-")


def _validate_resource_name(name: str, path: str) -> Errors:
    errs = _qualified_name(path, name)
    if errs:
        return errs
    if "/" not in name:
        if name not in _CONTAINER_RESOURCES and not name.startswith("hugepages-"):
            return [_invalid(path, name, "must be a standard resource for containers")]
    elif not _is_native_resource(name) and (
            name.startswith("requests.") or validate_label_key(f"requests.{name}")):
        return [_invalid(path, name, "doesn't follow extended resource name standard")]
    return []


def _validate_quantity(name: str, text: str, path: str) -> Errors:
    quantity = _quantity(text)
    if quantity is None:
        return [_invalid(path, text, "must be a valid resource quantity")]
    if quantity.sign() < 0:
        return [_invalid(path, text, "must be greater than or equal to 0")]
    # Extended resources (devices) come in whole units.
    if not _is_native_resource(name) and quantity.milli_value() % 1000 != 0:
        return [_invalid(path, text, "must be an integer")]
    return []


def _validate_resources(resources: core_pb2.ResourceRequirements, path: str) -> Errors:
    errs: Errors = []
    for name, value in sorted(resources.limits.items()):
        r_path = f"{path}.limits[{name}]"
        errs += _validate_resource_name(name, r_path)
        errs += _validate_quantity(name, value.value, r_path)
    for name, value in sorted(resources.requests.items()):
        r_path = f"{path}.requests[{name}]"
        errs += _validate_resource_name(name, r_path)
        errs += _validate_quantity(name, value.value, r_path)
        errs += _validate_request_within_limit(resources, name, value.value, path)
    return errs


def _validate_request_within_limit(resources: core_pb2.ResourceRequirements, name: str,
                                   request_text: str, path: str) -> Errors:
    if name not in resources.limits:
        if not _overcommit_allowed(name):
            return [_required(f"{path}.limits", "Limit must be set for non overcommitable "
                                                "resources")]
        return []
    request = _quantity(request_text)
    limit = _quantity(resources.limits[name].value)
    if request is None or limit is None:
        return []
    if not _overcommit_allowed(name) and request != limit:
        return [_invalid(f"{path}.requests", request_text,
                         f"must be equal to {name} limit of {limit.canonical()}")]
    if request > limit:
        return [_invalid(f"{path}.requests", request_text,
                         f"must be less than or equal to {name} limit of {limit.canonical()}")]
    return []


# ---- security contexts ----

def _validate_ids(path: str, values: Iterable[tuple[str, int]]) -> Errors:
    return [_invalid(f"{path}.{name}", value, _range_error(0, MAX_INT32))
            for name, value in values if not 0 <= value <= MAX_INT32]


def _validate_pod_security_context(sc: core_pb2.PodSecurityContext, path: str) -> Errors:
    ids = [(name, getattr(sc, attr)) for name, attr in (
        ("runAsUser", "run_as_user"), ("runAsGroup", "run_as_group"), ("fsGroup", "fs_group"))
        if sc.HasField(attr)]
    ids += [(f"supplementalGroups[{i}]", gid) for i, gid in enumerate(sc.supplemental_groups)]
    return _validate_ids(path, ids)


def _validate_security_context(container: core_pb2.Container, path: str) -> Errors:
    if not container.HasField("security_context"):
        return []
    sc = container.security_context
    errs = _validate_ids(path, [(name, getattr(sc, attr)) for name, attr in (
        ("runAsUser", "run_as_user"), ("runAsGroup", "run_as_group")) if sc.HasField(attr)])
    no_escalation = sc.HasField("allow_privilege_escalation") and not sc.allow_privilege_escalation
    if no_escalation and sc.HasField("privileged") and sc.privileged:
        errs.append(_invalid(path, sc, "cannot set `allowPrivilegeEscalation` to false and "
                                       "`privileged` to true"))
    if no_escalation and "CAP_SYS_ADMIN" in sc.capabilities.add:
        errs.append(_invalid(path, sc, "cannot set `allowPrivilegeEscalation` to false and "
                                       "`capabilities.Add` CAP_SYS_ADMIN"))
    return errs


# ---- scheduling ----

def _validate_tolerations(tolerations: Sequence[core_pb2.Toleration], path: str) -> Errors:
    errs: Errors = []
    for i, tol in enumerate(tolerations):
        t_path = f"{path}[{i}]"
        if tol.key:
            errs += _qualified_name(f"{t_path}.key", tol.key)
        # An empty key with Exists tolerates every taint; with Equal it would match none.
        if not tol.key and tol.operator != "Exists":
            errs.append(_invalid(f"{t_path}.operator", tol.operator, "operator must be Exists "
                                 'when `key` is empty, which means "match all values and all '
                                 'keys"'))
        if tol.HasField("toleration_seconds") and tol.effect != "NoExecute":
            errs.append(_invalid(f"{t_path}.effect", tol.effect, "effect must be 'NoExecute' "
                                 "when `tolerationSeconds` is set"))
        if tol.operator in ("Equal", ""):
            problems = validate_label_value(tol.value)
            if problems:
                errs.append(_invalid(f"{t_path}.operator", tol.value, ";".join(problems)))
        elif tol.operator == "Exists":
            if tol.value:
                errs.append(_invalid(f"{t_path}.operator", tol,
                                     "value must be empty when `operator` is 'Exists'"))
        else:
            errs.append(_unsupported(f"{t_path}.operator", tol.operator, ("Equal", "Exists")))
        if tol.effect:
            errs += _validate_taint_effect(tol.effect, f"{t_path}.effect")
    return errs


def _validate_taint_effect(effect: str, path: str) -> Errors:
    if not effect:
        return [_required(path)]
    if effect not in _TAINT_EFFECTS:
        return [_unsupported(path, effect, _TAINT_EFFECTS)]
    return []


def _validate_node_affinity(affinity: core_pb2.NodeAffinity, path: str) -> Errors:
    errs: Errors = []
    if affinity.HasField("required_during_scheduling_ignored_during_execution"):
        required = affinity.required_during_scheduling_ignored_during_execution
        r_path = f"{path}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
        if not required.node_selector_terms:
            errs.append(_required(r_path, "must have at least one node selector term"))
        for i, term in enumerate(required.node_selector_terms):
            errs += _validate_node_selector_term(term, f"{r_path}[{i}]")
    preferred = affinity.preferred_during_scheduling_ignored_during_execution
    for i, weighted in enumerate(preferred):
        p_path = f"{path}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
        if not 1 <= weighted.weight <= 100:
            errs.append(_invalid(f"{p_path}.weight", weighted.weight,
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
            errs.append(_required(f"{path}.values", "must be only one value when `operator` is "
                                                    "'In' or 'NotIn' for node field selector"))
    else:
        errs.append(_invalid(f"{path}.operator", req.operator, "not a valid selector operator"))
    # The one node field a pod may select on is the node's name.
    if req.key != "metadata.name":
        errs.append(_invalid(f"{path}.key", req.key, "not a valid field selector key"))
    else:
        for i, value in enumerate(req.values):
            errs += [_invalid(f"{path}.values[{i}]", value, msg)
                     for msg in validate_dns1123_subdomain(value)]
    return errs


# =====================================================================================
# Kinds
# =====================================================================================

def _meta_of(obj: Any, name_fn: NameFn = _subdomain_name) -> Errors:
    kind = kinds.by_message(obj)
    return _validate_meta(obj.metadata, namespaced=kind.namespaced, name_fn=name_fn)


# ---- Pod ----

def _validate_pod(obj: Message) -> Errors:
    assert isinstance(obj, core_pb2.Pod)
    return _meta_of(obj) + _validate_pod_spec(obj.spec, "spec", _POD)


_POD_UPDATABLE = ("`spec.containers[*].image`,`spec.initContainers[*].image`,"
                  "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
                  "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 "
                  "if it was previously negative)")


def _validate_pod_update(new_obj: Message, old_obj: Message) -> Errors:
    assert isinstance(new_obj, core_pb2.Pod) and isinstance(old_obj, core_pb2.Pod)
    new, old = new_obj.spec, old_obj.spec
    for field, name in (("containers", "containers"), ("init_containers", "initContainers")):
        if len(getattr(new, field)) != len(getattr(old, field)):
            return [_forbidden(f"spec.{name}", "pod updates may not add or remove containers")]
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
        errs.append(_forbidden("spec", f"pod updates may not change fields other than "
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
            return [_invalid(path, value, _range_error(0, MAX_INT32))]
        if old.HasField("active_deadline_seconds") and old.active_deadline_seconds < value:
            return [_invalid(path, value, "must be less than or equal to previous value")]
    elif old.HasField("active_deadline_seconds"):
        return [_invalid(path, None, "must not update from a positive integer to nil value")]
    return []


def _validate_only_added_tolerations(new: Sequence[core_pb2.Toleration],
                                     old: Sequence[core_pb2.Toleration]) -> Errors:
    def without_seconds(t: core_pb2.Toleration) -> tuple[str, str, str, str]:
        return (t.key, t.operator, t.value, t.effect)

    kept = {without_seconds(t) for t in new}
    if any(without_seconds(t) not in kept for t in old):
        return [_forbidden("spec.tolerations",
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


# ---- ReplicaSet, Deployment, DaemonSet ----

def _validate_replicated_template(template: core_pb2.PodTemplateSpec, path: str,
                                  kind: str) -> Errors:
    """A template that replicas run forever from: it restarts, and has no deadline."""
    errs = _validate_pod_template(template, path)
    policy = template.spec.restart_policy
    if policy != "Always":
        errs.append(_unsupported(f"{path}.spec.restartPolicy", policy, ("Always",)))
    if template.spec.HasField("active_deadline_seconds"):
        errs.append(_forbidden(f"{path}.spec.activeDeadlineSeconds",
                               f"activeDeadlineSeconds in {kind} is not Supported"))
    return errs


def _validate_required_selector(spec: Any, kind_word: str) -> Errors:
    """RS and Deployment: a selector is required, must be valid and not empty."""
    if not spec.HasField("selector"):
        return [_required("spec.selector")]
    errs = _validate_label_selector(spec.selector, "spec.selector")
    if _is_empty_selector(spec.selector):
        errs.append(_invalid("spec.selector", spec.selector,
                             f"empty selector is invalid for {kind_word}"))
    if _selector_matches(spec.selector, {}) is None:
        errs.append(_invalid("spec.selector", spec.selector, "invalid label selector"))
    return errs


def _validate_replica_set(obj: Message) -> Errors:
    assert isinstance(obj, apps_pb2.ReplicaSet)
    spec = obj.spec
    errs = _meta_of(obj)
    errs += _nonnegative("spec.replicas", spec.replicas)
    errs += _nonnegative("spec.minReadySeconds", spec.min_ready_seconds)
    # Kubernetes' own wording: ReplicaSets share the Deployment's selector check.
    errs += _validate_required_selector(spec, "deployment")
    errs += _selects_template(spec.selector, spec.template, "spec")
    errs += _validate_replicated_template(spec.template, "spec.template", "ReplicaSet")
    return errs


def _validate_deployment(obj: Message) -> Errors:
    assert isinstance(obj, apps_pb2.Deployment)
    spec = obj.spec
    errs = _meta_of(obj)
    errs += _nonnegative("spec.replicas", spec.replicas)
    errs += _validate_required_selector(spec, "deployment")
    errs += _selects_template(spec.selector, spec.template, "spec")
    errs += _validate_replicated_template(spec.template, "spec.template", "ReplicaSet")
    errs += _validate_deployment_strategy(spec.strategy, "spec.strategy")
    errs += _nonnegative("spec.minReadySeconds", spec.min_ready_seconds)
    if spec.HasField("revision_history_limit"):
        errs += _nonnegative("spec.revisionHistoryLimit", spec.revision_history_limit)
    if spec.HasField("progress_deadline_seconds"):
        deadline = spec.progress_deadline_seconds
        errs += _nonnegative("spec.progressDeadlineSeconds", deadline)
        # Otherwise a rollout would be declared stuck before a pod could become available.
        if deadline <= spec.min_ready_seconds:
            errs.append(_invalid("spec.progressDeadlineSeconds", deadline,
                                 "must be greater than minReadySeconds"))
    return errs


def _validate_deployment_strategy(strategy: apps_pb2.DeploymentStrategy, path: str) -> Errors:
    if strategy.type == "Recreate":
        if strategy.HasField("rolling_update"):
            return [_forbidden(f"{path}.rollingUpdate",
                               "may not be specified when strategy `type` is 'Recreate'")]
        return []
    if strategy.type == "RollingUpdate":
        if not strategy.HasField("rolling_update"):
            return [_required(f"{path}.rollingUpdate",
                              "this should be defaulted and never be nil")]
        return _validate_rolling_update_deployment(strategy.rolling_update,
                                                   f"{path}.rollingUpdate")
    return [_unsupported(path, strategy, ("Recreate", "RollingUpdate"))]


def _validate_rolling_update_deployment(rolling: apps_pb2.RollingUpdateDeployment,
                                        path: str) -> Errors:
    unavailable, surge = rolling.max_unavailable, rolling.max_surge
    errs = _validate_int_or_percent(unavailable, f"{path}.maxUnavailable")
    errs += _validate_int_or_percent(surge, f"{path}.maxSurge")
    # With neither room to surge nor to go down, a rollout could never make progress.
    if _int_or_percent_value(unavailable) == 0 and _int_or_percent_value(surge) == 0:
        errs.append(_invalid(f"{path}.maxUnavailable", _int_or_string(unavailable),
                             "may not be 0 when `maxSurge` is 0"))
    errs += _not_more_than_100_percent(unavailable, f"{path}.maxUnavailable")
    return errs


def _int_or_string(value: meta_pb2.IntOrString) -> int | str:
    return value.str_val if value.HasField("str_val") else value.int_val


def _validate_int_or_percent(value: meta_pb2.IntOrString, path: str) -> Errors:
    if value.HasField("str_val"):
        return [_invalid(path, value.str_val, msg) for msg in _percent(value.str_val)]
    if value.HasField("int_val"):
        return _nonnegative(path, value.int_val)
    return [_invalid(path, None, "must be an integer or percentage (e.g '5%')")]


def _percent_value(value: meta_pb2.IntOrString) -> int | None:
    if value.HasField("str_val") and not _percent(value.str_val):
        return int(value.str_val[:-1])
    return None


def _int_or_percent_value(value: meta_pb2.IntOrString) -> int:
    percent = _percent_value(value)
    return percent if percent is not None else value.int_val


def _not_more_than_100_percent(value: meta_pb2.IntOrString, path: str) -> Errors:
    percent = _percent_value(value)
    if percent is not None and percent > 100:
        return [_invalid(path, value.str_val, "must not be greater than 100%")]
    return []


def _validate_daemon_set(obj: Message) -> Errors:
    assert isinstance(obj, apps_pb2.DaemonSet)
    spec = obj.spec
    errs = _meta_of(obj)
    if not spec.HasField("selector"):
        errs.append(_required("spec.selector"))
    else:
        errs += _validate_label_selector(spec.selector, "spec.selector")
        errs += _selects_template(spec.selector, spec.template, "spec")
        if _is_empty_selector(spec.selector):
            errs.append(_invalid("spec.selector", spec.selector,
                                 "empty selector is invalid for daemonset"))
    errs += _validate_pod_template(spec.template, "spec.template")
    if spec.template.spec.restart_policy != "Always":
        errs.append(_unsupported("spec.template.spec.restartPolicy",
                                 spec.template.spec.restart_policy, ("Always",)))
    if spec.template.spec.HasField("active_deadline_seconds"):
        errs.append(_invalid("spec.template.spec.activeDeadlineSeconds",
                             spec.template.spec.active_deadline_seconds,
                             "activeDeadlineSeconds in DaemonSet is not Supported"))
    errs += _nonnegative("spec.minReadySeconds", spec.min_ready_seconds)
    errs += _validate_daemon_set_strategy(spec.update_strategy, "spec.updateStrategy")
    if spec.HasField("revision_history_limit"):
        errs += _nonnegative("spec.revisionHistoryLimit", spec.revision_history_limit)
    return errs


def _validate_daemon_set_strategy(strategy: apps_pb2.DaemonSetUpdateStrategy,
                                  path: str) -> Errors:
    if strategy.type == "OnDelete":
        return []
    if strategy.type != "RollingUpdate":
        return [_unsupported(path, strategy, ("RollingUpdate", "OnDelete"))]
    if not strategy.HasField("rolling_update"):
        return [_required(f"{path}.rollingUpdate")]
    rolling, r_path = strategy.rolling_update, f"{path}.rollingUpdate"
    unavailable, surge = rolling.max_unavailable, rolling.max_surge
    errs = _validate_int_or_percent(unavailable, f"{r_path}.maxUnavailable")
    errs += _validate_int_or_percent(surge, f"{r_path}.maxSurge")
    errs += _not_more_than_100_percent(unavailable, f"{r_path}.maxUnavailable")
    errs += _not_more_than_100_percent(surge, f"{r_path}.maxSurge")
    # One node's pod is either replaced in place (unavailable) or next to it (surge).
    has_unavailable = _int_or_percent_value(unavailable) != 0
    has_surge = _int_or_percent_value(surge) != 0
    if has_unavailable and has_surge:
        errs.append(_invalid(f"{r_path}.maxSurge", _int_or_string(surge),
                             "may not be set when maxUnavailable is non-zero"))
    elif not has_unavailable and not has_surge:
        errs.append(_required(f"{r_path}.maxUnavailable", "cannot be 0 when maxSurge is 0"))
    return errs


def _validate_selector_update(new: Message, old: Message) -> Errors:
    new_sel, old_sel = new.spec.selector, old.spec.selector  # type: ignore[attr-defined]
    if new_sel != old_sel:
        return [_immutable("spec.selector", new_sel)]
    return []


# ---- Job and CronJob ----

def _validate_job(obj: Message) -> Errors:
    assert isinstance(obj, batch_pb2.Job)
    spec = obj.spec
    errs = _meta_of(obj)
    errs += _validate_generated_selector(obj)
    errs += _validate_job_spec(spec, "spec")
    if not spec.HasField("selector"):
        errs.append(_required("spec.selector"))
    else:
        errs += _validate_label_selector(spec.selector, "spec.selector")
        errs += _selects_template(spec.selector, spec.template, "spec")
        # Skiff's own rule: a hand-written empty selector would adopt every pod in the
        # namespace (Kubernetes accepts it; generated selectors are never empty).
        if _is_empty_selector(spec.selector):
            errs.append(_invalid("spec.selector", spec.selector,
                                 "empty selector is invalid for job"))
    return errs


def _validate_generated_selector(job: batch_pb2.Job) -> Errors:
    """A generated selector must select exactly the labels generation put on the pods."""
    if job.spec.HasField("manual_selector") and job.spec.manual_selector:
        return []
    if not job.spec.HasField("selector"):
        return []  # reported as a missing selector
    errs = [] if job.metadata.uid else [_required("metadata.uid")]
    labels = job.spec.template.metadata.labels
    expected = {defaults.LEGACY_CONTROLLER_UID_LABEL: job.metadata.uid,
                defaults.LEGACY_JOB_NAME_LABEL: job.metadata.name,
                defaults.CONTROLLER_UID_LABEL: job.metadata.uid,
                defaults.JOB_NAME_LABEL: job.metadata.name}
    for key, value in expected.items():
        l_path = f"spec.template.metadata.labels[{key}]"
        if key not in labels:
            errs.append(_required(l_path, f"must be '{value}'"))
        elif labels[key] != value:
            errs.append(_invalid(l_path, dict(labels), f"must be '{value}'"))
    if _selector_matches(job.spec.selector, expected) is False:
        errs.append(_invalid("spec.selector", job.spec.selector, "`selector` not auto-generated"))
    return errs


def _validate_job_spec(spec: batch_pb2.JobSpec, path: str) -> Errors:
    errs: Errors = []
    for field, name in (("parallelism", "parallelism"), ("completions", "completions"),
                        ("active_deadline_seconds", "activeDeadlineSeconds"),
                        ("backoff_limit", "backoffLimit"),
                        ("ttl_seconds_after_finished", "ttlSecondsAfterFinished")):
        if spec.HasField(field):
            errs += _nonnegative(f"{path}.{name}", getattr(spec, field))
    if spec.HasField("completion_mode"):
        errs += _validate_completion_mode(spec, path)
    errs += _validate_pod_template(spec.template, f"{path}.template", _JOB_TEMPLATE)
    policy = spec.template.spec.restart_policy
    policy_path = f"{path}.template.spec.restartPolicy"
    # A job's pods must end: Always (or nothing) would restart a finished pod forever.
    if policy in ("Always", ""):
        errs.append(_required(policy_path, 'valid values: "OnFailure", "Never"'))
    elif policy not in ("OnFailure", "Never"):
        errs.append(_unsupported(policy_path, policy, ("OnFailure", "Never")))
    return errs


def _validate_completion_mode(spec: batch_pb2.JobSpec, path: str) -> Errors:
    mode = spec.completion_mode
    if mode not in ("NonIndexed", "Indexed"):
        return [_unsupported(f"{path}.completionMode", mode, ("NonIndexed", "Indexed"))]
    errs: Errors = []
    if mode == "Indexed":
        if not spec.HasField("completions"):
            errs.append(_required(f"{path}.completions", "when completion mode is Indexed"))
        if spec.HasField("parallelism") and spec.parallelism > MAX_PARALLELISM_INDEXED_JOB:
            errs.append(_invalid(f"{path}.parallelism", spec.parallelism,
                                 f"must be less than or equal to {MAX_PARALLELISM_INDEXED_JOB} "
                                 "when completion mode is Indexed"))
    return errs


def _validate_job_update(new_obj: Message, old_obj: Message) -> Errors:
    assert isinstance(new_obj, batch_pb2.Job) and isinstance(old_obj, batch_pb2.Job)
    new, old = new_obj.spec, old_obj.spec
    errs: Errors = []
    errs += _validate_completions_update(new, old)
    if new.selector != old.selector:
        errs.append(_immutable("spec.selector", new.selector))
    if new.template != old.template:
        errs.append(_immutable("spec.template", new.template))
    if (new.HasField("completion_mode"), new.completion_mode) != (
            old.HasField("completion_mode"), old.completion_mode):
        errs.append(_immutable("spec.completionMode", new.completion_mode))
    return errs


def _validate_completions_update(new: batch_pb2.JobSpec, old: batch_pb2.JobSpec) -> Errors:
    def completions(spec: batch_pb2.JobSpec) -> int | None:
        return spec.completions if spec.HasField("completions") else None

    if completions(new) == completions(old):
        return []
    # Elastic indexed jobs: completions may follow parallelism, scaling the job.
    indexed = new.completion_mode == "Indexed" and old.completion_mode == "Indexed"
    if not indexed:
        return [_immutable("spec.completions", completions(new))]
    if completions(new) != (new.parallelism if new.HasField("parallelism") else None):
        return [_invalid("spec.completions", completions(new),
                         "must be equal to parallelism when updating completions for Indexed "
                         "Jobs")]
    return []


def _validate_cron_job(obj: Message) -> Errors:
    assert isinstance(obj, batch_pb2.CronJob)
    spec = obj.spec
    errs = _meta_of(obj)
    if len(obj.metadata.name) > MAX_CRON_JOB_NAME:
        errs.append(_invalid("metadata.name", obj.metadata.name,
                             f"must be no more than {MAX_CRON_JOB_NAME} characters"))
    if not spec.schedule:
        errs.append(_required("spec.schedule"))
    else:
        errs += _validate_schedule(spec.schedule, "spec.schedule")
    if spec.HasField("starting_deadline_seconds"):
        errs += _nonnegative("spec.startingDeadlineSeconds", spec.starting_deadline_seconds)
    if spec.HasField("time_zone"):
        errs += _validate_time_zone(spec.time_zone, "spec.timeZone")
    errs += _validate_concurrency_policy(spec.concurrency_policy)
    errs += _validate_job_template(spec.job_template, "spec.jobTemplate")
    for field, name in (("successful_jobs_history_limit", "successfulJobsHistoryLimit"),
                        ("failed_jobs_history_limit", "failedJobsHistoryLimit")):
        if spec.HasField(field):
            errs += _nonnegative(f"spec.{name}", getattr(spec, field))
    return errs


def _validate_concurrency_policy(policy: str) -> Errors:
    path = "spec.concurrencyPolicy"
    if not policy:
        return [_required(path)]
    if policy not in ("Allow", "Forbid", "Replace"):
        return [_unsupported(path, policy, ("Allow", "Forbid", "Replace"))]
    return []


def _validate_job_template(template: batch_pb2.JobTemplateSpec, path: str) -> Errors:
    spec_path = f"{path}.spec"
    errs = _validate_labels(template.metadata.labels, f"{path}.metadata.labels")
    errs += _validate_annotations(template.metadata.annotations, f"{path}.metadata.annotations")
    errs += _validate_job_spec(template.spec, spec_path)
    # Each Job the CronJob creates gets its own generated selector.
    if template.spec.HasField("selector"):
        errs.append(_invalid(f"{spec_path}.selector", template.spec.selector,
                             "`selector` will be auto-generated"))
    if template.spec.HasField("manual_selector") and template.spec.manual_selector:
        errs.append(_unsupported(f"{spec_path}.manualSelector", True, ("nil", "false")))
    return errs


def _validate_time_zone(zone: str, path: str) -> Errors:
    if not zone:
        return [_invalid(path, zone, "timeZone must be nil or non-empty string")]
    if zone.lower() == "local":
        return [_invalid(path, zone, "timeZone must be an explicit time zone as defined in "
                                     "https://www.iana.org/time-zones")]
    if not _known_time_zone(zone):
        return [_invalid(path, zone, f"unknown time zone {zone}")]
    return []


def _known_time_zone(zone: str) -> bool:
    if any(part in (".", "..") or part.startswith("-") for part in zone.split("/")):
        return False
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


# ---- cron schedules (robfig/cron's standard parser, which Kubernetes uses) ----

_MONTHS = {name: i + 1 for i, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_WEEKDAYS = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_CRON_FIELDS: tuple[tuple[int, int, Mapping[str, int]], ...] = (
    (0, 59, {}),  # minute
    (0, 23, {}),  # hour
    (1, 31, {}),  # day of month
    (1, 12, _MONTHS),
    (0, 6, _WEEKDAYS),
)
_CRON_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight",
                     "@hourly"}
_GO_DURATION_RE = re.compile(r"[-+]?(?:0|(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
                             r"(?:ns|us|µs|μs|ms|s|m|h))+)")
_GO_INT_RE = re.compile(r"[-+]?[0-9]+")


def _validate_schedule(schedule: str, path: str) -> Errors:
    errs: Errors = []
    problem = _cron_problem(schedule)
    if problem:
        errs.append(_invalid(path, schedule, problem))
    # The time zone has its own field; a TZ in the schedule would silently compete.
    if "TZ" in schedule:
        errs.append(_invalid(path, schedule, "cannot use TZ or CRON_TZ in schedule, use "
                                             "timeZone field instead"))
    return errs


def _cron_problem(spec: str) -> str | None:
    """What robfig/cron's ParseStandard says about a schedule; None if it parses."""
    if not spec:
        return "empty spec string"
    if spec.startswith(("TZ=", "CRON_TZ=")):
        space = spec.find(" ")
        zone = spec[spec.find("=") + 1:space if space >= 0 else len(spec)]
        if not _known_time_zone(zone):
            return f"provided bad location {zone}: unknown time zone {zone}"
        spec = spec[space:].strip() if space >= 0 else ""
    if spec.startswith("@"):
        return _cron_descriptor_problem(spec)
    fields = spec.split()
    if len(fields) != 5:
        return f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]"
    for text, (low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for expr in filter(None, text.split(",")):
            problem = _cron_range_problem(expr, low, high, names)
            if problem:
                return problem
    return None


def _cron_descriptor_problem(spec: str) -> str | None:
    if spec in _CRON_DESCRIPTORS:
        return None
    if spec.startswith("@every "):
        duration = spec[len("@every "):]
        if _GO_DURATION_RE.fullmatch(duration):
            return None
        return f'failed to parse duration {spec}: time: invalid duration "{duration}"'
    return f"unrecognized descriptor: {spec}"


def _cron_int(text: str, names: Mapping[str, int]) -> tuple[int, str | None]:
    if text.lower() in names:
        return names[text.lower()], None
    if not _GO_INT_RE.fullmatch(text):
        return 0, f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": invalid syntax'
    value = int(text)
    if value < 0:
        return 0, f"negative number ({value}) not allowed: {text}"
    return value, None


def _cron_range_problem(expr: str, low: int, high: int, names: Mapping[str, int]) -> str | None:
    range_and_step = expr.split("/")
    bounds = range_and_step[0].split("-")
    if bounds[0] in ("*", "?"):
        start, end = low, high
    else:
        if len(bounds) > 2:
            return f"too many hyphens: {expr}"
        start, problem = _cron_int(bounds[0], names)
        if problem:
            return problem
        end = start
        if len(bounds) == 2:
            end, problem = _cron_int(bounds[1], names)
            if problem:
                return problem
    step = 1
    if len(range_and_step) > 2:
        return f"too many slashes: {expr}"
    if len(range_and_step) == 2:
        step, problem = _cron_int(range_and_step[1], {})
        if problem:
            return problem
        if len(bounds) == 1:
            end = high  # "N/step" means N through the maximum
    if start < low:
        return f"beginning of range ({start}) below minimum ({low}): {expr}"
    if end > high:
        return f"end of range ({end}) above maximum ({high}): {expr}"
    if start > end:
        return f"beginning of range ({start}) beyond end of range ({end}): {expr}"
    if step == 0:
        return f"step of range should be a positive number: {expr}"
    return None


# ---- Service ----

_SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")


def _validate_service(obj: Message) -> Errors:
    assert isinstance(obj, core_pb2.Service)
    spec = obj.spec
    headless = spec.cluster_ip == "None"
    errs = _meta_of(obj, _dns1035_name)
    if not spec.ports and not headless and spec.type != "ExternalName":
        errs.append(_required("spec.ports"))
    errs += _validate_service_type_rules(spec)
    names: set[str] = set()
    for i, port in enumerate(spec.ports):
        errs += _validate_service_port(port, len(spec.ports) > 1, names, f"spec.ports[{i}]")
    errs += _validate_labels(spec.selector, "spec.selector")
    errs += _validate_session_affinity(spec.session_affinity)
    errs += _validate_cluster_ips(spec)
    for i, ip in enumerate(spec.external_ips):
        errs += [_invalid(f"spec.externalIPs[{i}]", ip, msg) for msg in _ip_errors(ip)]
    if not spec.type:
        errs.append(_required("spec.type"))
    elif spec.type not in _SERVICE_TYPES:
        errs.append(_unsupported("spec.type", spec.type, _SERVICE_TYPES))
    errs += _validate_node_ports(spec)
    errs += _validate_duplicate_service_ports(spec)
    errs += _validate_traffic_policies(spec)
    return errs


def _validate_service_type_rules(spec: core_pb2.ServiceSpec) -> Errors:
    errs: Errors = []
    headless = spec.cluster_ip == "None"
    if spec.type in ("LoadBalancer", "NodePort") and headless:
        errs.append(_invalid("spec.clusterIP", spec.cluster_ip,
                             f"may not be set to 'None' for {spec.type} services"))
    if spec.type == "LoadBalancer":
        errs += [_invalid(f"spec.ports[{i}]", port.port, "may not expose port 10250 externally "
                                                         "since it is used by kubelet")
                 for i, port in enumerate(spec.ports) if port.port == 10250]
    if spec.type == "ExternalName":
        # Kubernetes' strategy copies clusterIP into clusterIPs before this check.
        if spec.cluster_ip or spec.cluster_ips:
            errs.append(_forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
        if spec.ip_families:
            errs.append(_forbidden("spec.ipFamilies", "may not be set for ExternalName services"))
        if spec.HasField("ip_family_policy"):
            errs.append(_forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName "
                                                          "services"))
        # A CNAME may end with a dot to say it is fully qualified.
        cname = spec.external_name.removesuffix(".")
        if not cname:
            errs.append(_required("spec.externalName"))
        else:
            errs += [_invalid("spec.externalName", cname, msg)
                     for msg in validate_dns1123_subdomain(cname)]
    return errs


def _validate_service_port(port: core_pb2.ServicePort, require_name: bool, names: set[str],
                           path: str) -> Errors:
    errs: Errors = []
    # With several ports, Endpoints and DNS SRV records tell them apart by name.
    if require_name and not port.name:
        errs.append(_required(f"{path}.name"))
    elif port.name:
        errs += [_invalid(f"{path}.name", port.name, msg)
                 for msg in validate_dns1123_label(port.name)]
        if port.name in names:
            errs.append(_duplicate(f"{path}.name", port.name))
        names.add(port.name)
    errs += [_invalid(f"{path}.port", port.port, msg) for msg in _port_number(port.port)]
    errs += _validate_protocol(port.protocol, f"{path}.protocol")
    errs += _validate_port_num_or_name(port.target_port, f"{path}.targetPort")
    if port.app_protocol:
        errs += _qualified_name(f"{path}.appProtocol", port.app_protocol)
    return errs


def _validate_session_affinity(affinity: str) -> Errors:
    if not affinity:
        return [_required("spec.sessionAffinity")]
    if affinity not in ("ClientIP", "None"):
        return [_unsupported("spec.sessionAffinity", affinity, ("ClientIP", "None"))]
    return []


def _validate_cluster_ips(spec: core_pb2.ServiceSpec) -> Errors:
    if spec.type == "ExternalName":
        return []
    errs: Errors = []
    if spec.cluster_ip and spec.cluster_ip != "None":
        errs += [_invalid("spec.clusterIP", spec.cluster_ip, msg)
                 for msg in _ip_errors(spec.cluster_ip)]
    ips = list(spec.cluster_ips)
    for i, ip in enumerate(ips):
        if i == 0 and ip == "None":
            if len(ips) > 1:
                errs.append(_invalid("spec.clusterIPs", ips,
                                     "'None' must be the first and only value"))
            continue
        errs += [_invalid(f"spec.clusterIPs[{i}]", ip, msg) for msg in _ip_errors(ip)]
    if len(ips) > 2:
        errs.append(_invalid("spec.clusterIPs", ips, "may only hold up to 2 values"))
    if ips and spec.cluster_ip and ips[0] != spec.cluster_ip:
        errs.append(_invalid("spec.clusterIPs", ips, "first value must match `clusterIP`"))
    if spec.HasField("ip_family_policy") and spec.ip_family_policy not in (
            "SingleStack", "PreferDualStack", "RequireDualStack"):
        errs.append(_unsupported("spec.ipFamilyPolicy", spec.ip_family_policy,
                                 ("SingleStack", "PreferDualStack", "RequireDualStack")))
    for i, family in enumerate(spec.ip_families):
        if family not in ("IPv4", "IPv6"):
            errs.append(_unsupported(f"spec.ipFamilies[{i}]", family, ("IPv4", "IPv6")))
    return errs


def _validate_node_ports(spec: core_pb2.ServiceSpec) -> Errors:
    errs: Errors = []
    seen: set[tuple[str, int]] = set()
    low, high = NODE_PORT_RANGE
    for i, port in enumerate(spec.ports):
        if port.node_port == 0:
            continue
        path = f"spec.ports[{i}].nodePort"
        if spec.type == "ClusterIP":
            errs.append(_forbidden(path, "may not be used when `type` is 'ClusterIP'"))
        elif spec.type in ("NodePort", "LoadBalancer") and not low <= port.node_port <= high:
            errs.append(_invalid(path, port.node_port, "provided port is not in the valid "
                                 f"range. The range of valid ports is {low}-{high}"))
        key = (port.protocol, port.node_port)
        if key in seen:
            errs.append(_duplicate(path, port.node_port))
        seen.add(key)
    return errs


def _validate_duplicate_service_ports(spec: core_pb2.ServiceSpec) -> Errors:
    errs: Errors = []
    seen: set[tuple[str, int]] = set()
    for i, port in enumerate(spec.ports):
        key = (port.protocol, port.port)
        if key in seen:
            errs.append(_duplicate(f"spec.ports[{i}]", {"port": port.port,
                                                        "protocol": port.protocol}))
        seen.add(key)
    return errs


def _validate_traffic_policies(spec: core_pb2.ServiceSpec) -> Errors:
    errs: Errors = []
    external = spec.type in ("NodePort", "LoadBalancer") or (
        spec.type == "ClusterIP" and bool(spec.external_ips))
    policy = spec.external_traffic_policy
    if not external:
        if policy:
            errs.append(_invalid("spec.externalTrafficPolicy", policy,
                                 "may only be set for externally-accessible services"))
    elif not policy:
        errs.append(_required("spec.externalTrafficPolicy"))
    elif policy not in ("Cluster", "Local"):
        errs.append(_unsupported("spec.externalTrafficPolicy", policy, ("Cluster", "Local")))
    if not spec.HasField("internal_traffic_policy"):
        if spec.type in ("ClusterIP", "NodePort", "LoadBalancer"):
            errs.append(_required("spec.internalTrafficPolicy"))
    elif spec.internal_traffic_policy not in ("Cluster", "Local"):
        errs.append(_unsupported("spec.internalTrafficPolicy", spec.internal_traffic_policy,
                                 ("Cluster", "Local")))
    return errs


def _validate_service_update(new_obj: Message, old_obj: Message) -> Errors:
    assert isinstance(new_obj, core_pb2.Service) and isinstance(old_obj, core_pb2.Service)
    new, old = new_obj.spec, old_obj.spec
    # Moving to or from ExternalName drops or allocates the IP; otherwise, once
    # allocated, clients and DNS have it, so it stays.
    involves_external_name = "ExternalName" in (new.type, old.type)
    if not involves_external_name and old.cluster_ip and new.cluster_ip != old.cluster_ip:
        return [_immutable("spec.clusterIP", new.cluster_ip)]
    return []


# ---- Secret and ConfigMap ----

_SECRET_REQUIRED_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}
_SECRET_JSON_KEYS = {"kubernetes.io/dockercfg": ".dockercfg",
                     "kubernetes.io/dockerconfigjson": ".dockerconfigjson"}


def _validate_secret(obj: Message) -> Errors:
    assert isinstance(obj, core_pb2.Secret)
    errs = _meta_of(obj)
    size = 0
    for key, value in sorted(obj.data.items()):
        errs += [_invalid(f"data[{key}]", key, msg) for msg in _config_map_key(key)]
        size += len(value)
    if size > MAX_SECRET_SIZE:
        errs.append(_too_long("data", MAX_SECRET_SIZE))
    return errs + _validate_secret_type(obj)


def _validate_secret_type(secret: core_pb2.Secret) -> Errors:
    kind, data = secret.type, secret.data
    if kind == "kubernetes.io/service-account-token":
        key = "kubernetes.io/service-account.name"
        if not secret.metadata.annotations.get(key):
            return [_required(f"metadata.annotations[{key}]")]
        return []
    if kind == "kubernetes.io/basic-auth":
        # Either may be empty, but one of them must be there.
        if "username" not in data and "password" not in data:
            return [_required("data[username]"), _required("data[password]")]
        return []
    if kind == "kubernetes.io/ssh-auth":
        return [] if data.get("ssh-privatekey") else [_required("data[ssh-privatekey]")]
    missing = [k for k in _SECRET_REQUIRED_KEYS.get(kind, ()) if k not in data]
    if missing:
        return [_required(f"data[{k}]") for k in missing]
    json_key = _SECRET_JSON_KEYS.get(kind)
    if json_key:
        try:
            parsed = json.loads(data[json_key])
        except ValueError as err:
            return [_invalid(f"data[{json_key}]", "<secret contents redacted>", str(err))]
        if not isinstance(parsed, dict):
            return [_invalid(f"data[{json_key}]", "<secret contents redacted>",
                             "must be a JSON object")]
    return []


def _validate_immutable_data(new: Any, old: Any, fields: Sequence[tuple[str, str]]) -> Errors:
    """Secrets and ConfigMaps marked immutable keep their data, and stay immutable."""
    if not (old.HasField("immutable") and old.immutable):
        return []
    errs: Errors = []
    if not (new.HasField("immutable") and new.immutable):
        errs.append(_forbidden("immutable", "field is immutable when `immutable` is set"))
    for attr, name in fields:
        if getattr(new, attr) != getattr(old, attr):
            errs.append(_forbidden(name, "field is immutable when `immutable` is set"))
    return errs


def _validate_secret_update(new: Message, old: Message) -> Errors:
    assert isinstance(new, core_pb2.Secret) and isinstance(old, core_pb2.Secret)
    errs = [_immutable("type", new.type)] if new.type != old.type else []
    return errs + _validate_immutable_data(new, old, (("data", "data"),))


def _validate_config_map(obj: Message) -> Errors:
    assert isinstance(obj, core_pb2.ConfigMap)
    errs = _meta_of(obj)
    size = 0
    for key, text in sorted(obj.data.items()):
        errs += [_invalid(f"data[{key}]", key, msg) for msg in _config_map_key(key)]
        # One key, one file: it cannot be both text and binary.
        if key in obj.binary_data:
            errs.append(_invalid(f"data[{key}]", key, "duplicate of key present in binaryData"))
        size += _byte_len(text)
    for key, blob in sorted(obj.binary_data.items()):
        errs += [_invalid(f"binaryData[{key}]", key, msg) for msg in _config_map_key(key)]
        size += len(blob)
    if size > MAX_SECRET_SIZE:
        errs.append(_too_long("", MAX_SECRET_SIZE))
    return errs


def _validate_config_map_update(new: Message, old: Message) -> Errors:
    return _validate_immutable_data(new, old, (("data", "data"), ("binary_data", "binaryData")))


# ---- Namespace, Node, Endpoints, Event, Lease ----

def _validate_namespace(obj: Message) -> Errors:
    assert isinstance(obj, core_pb2.Namespace)
    errs = _meta_of(obj, _label_name)
    for name in obj.spec.finalizers:
        errs += _qualified_name("spec.finalizers", name)
        if "/" not in name and name not in _STANDARD_FINALIZERS:
            errs.append(_invalid("spec.finalizers", name, "name is neither a standard "
                                 "finalizer name nor is it fully qualified"))
    return errs


def _validate_node(obj: Message) -> Errors:
    assert isinstance(obj, core_pb2.Node)
    errs = _meta_of(obj)
    errs += _validate_taints(obj.spec.taints, "spec.taints")
    for field, name in (("capacity", "capacity"), ("allocatable", "allocatable")):
        for resource, value in sorted(getattr(obj.status, field).items()):
            errs += _validate_quantity(resource, value.value, f"status.{name}[{resource}]")
    for i, cidr in enumerate(obj.spec.pod_cidrs):
        errs += _validate_cidr(cidr, f"spec.podCIDRs[{i}]")
    if len(obj.spec.pod_cidrs) > 1 and not _dual_stack(obj.spec.pod_cidrs):
        errs.append(_invalid("spec.podCIDRs", list(obj.spec.pod_cidrs),
                             "may specify no more than one CIDR for each IP family"))
    return errs


def _validate_cidr(cidr: str, path: str) -> Errors:
    try:
        ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return [_invalid(path, cidr, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or "
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
        errs += _qualified_name(f"{t_path}.key", taint.key)
        problems = validate_label_value(taint.value)
        if problems:
            errs.append(_invalid(f"{t_path}.value", taint.value, ";".join(problems)))
        errs += _validate_taint_effect(taint.effect, f"{t_path}.effect")
        # A node tolerates one answer per (key, effect): two would contradict.
        if (taint.key, taint.effect) in seen:
            errs.append(_at(t_path, f"Duplicate value: {_render(taint)}: taints must be "
                                    "unique by key and effect pair"))
        seen.add((taint.key, taint.effect))
    return errs


def _validate_node_update(new: Message, old: Message) -> Errors:
    assert isinstance(new, core_pb2.Node) and isinstance(old, core_pb2.Node)
    errs: Errors = []
    # Routes and the node's network are built from the pod CIDR: it is set once.
    if old.spec.pod_cidr and new.spec.pod_cidr != old.spec.pod_cidr:
        errs.append(_forbidden("spec.podCIDR", 'node updates may not change podCIDR except '
                                               'from "" to valid'))
    if old.spec.pod_cidrs and list(new.spec.pod_cidrs) != list(old.spec.pod_cidrs):
        errs.append(_forbidden("spec.podCIDRs", 'node updates may not change podCIDR except '
                                                'from "" to valid'))
    if old.spec.provider_id and new.spec.provider_id != old.spec.provider_id:
        errs.append(_forbidden("spec.providerID", 'node updates may not change providerID '
                                                  'except from "" to valid'))
    return errs


def _validate_endpoints(obj: Message) -> Errors:
    assert isinstance(obj, core_pb2.Endpoints)
    errs = _meta_of(obj)
    for i, subset in enumerate(obj.subsets):
        s_path = f"subsets[{i}]"
        if not subset.addresses and not subset.not_ready_addresses:
            errs.append(_required(s_path, "must specify `addresses` or `notReadyAddresses`"))
        for field, name in (("addresses", "addresses"),
                            ("not_ready_addresses", "notReadyAddresses")):
            for j, address in enumerate(getattr(subset, field)):
                errs += _validate_endpoint_address(address, f"{s_path}.{name}[{j}]")
        for j, port in enumerate(subset.ports):
            errs += _validate_endpoint_port(port, len(subset.ports) > 1, f"{s_path}.ports[{j}]")
    return errs


def _validate_endpoint_address(address: core_pb2.EndpointAddress, path: str) -> Errors:
    errs = [_invalid(f"{path}.ip", address.ip, msg) for msg in _ip_errors(address.ip)]
    if address.hostname:
        errs += [_invalid(f"{path}.hostname", address.hostname, msg)
                 for msg in validate_dns1123_label(address.hostname)]
    if address.HasField("node_name"):
        errs += [_invalid(f"{path}.nodeName", address.node_name, msg)
                 for msg in validate_dns1123_subdomain(address.node_name)]
    if not errs:
        errs += _special_ip(address.ip, f"{path}.ip")
    return errs


def _special_ip(text: str, path: str) -> Errors:
    """Addresses that would send a service's traffic to the node itself."""
    ip = ipaddress.ip_address(text)
    if ip.is_unspecified:
        return [_invalid(path, text, f"may not be unspecified ({text})")]
    if ip.is_loopback:
        return [_invalid(path, text, "may not be in the loopback range (127.0.0.0/8, ::1/128)")]
    if ip.is_link_local:
        return [_invalid(path, text, "may not be in the link-local range (169.254.0.0/16, "
                                     "fe80::/10)")]
    if ip in ipaddress.ip_network("224.0.0.0/24") or (
            ip.version == 6 and ip in ipaddress.ip_network("ff02::/10")):
        return [_invalid(path, text, "may not be in the link-local multicast range "
                                     "(224.0.0.0/24, ff02::/10)")]
    return []


def _validate_endpoint_port(port: core_pb2.EndpointPort, require_name: bool,
                            path: str) -> Errors:
    errs: Errors = []
    if require_name and not port.name:
        errs.append(_required(f"{path}.name"))
    elif port.name:
        errs += [_invalid(f"{path}.name", port.name, msg)
                 for msg in validate_dns1123_label(port.name)]
    errs += [_invalid(f"{path}.port", port.port, msg) for msg in _port_number(port.port)]
    errs += _validate_protocol(port.protocol, f"{path}.protocol")
    if port.HasField("app_protocol"):
        errs += _qualified_name(f"{path}.appProtocol", port.app_protocol)
    return errs


def _validate_event(obj: Message) -> Errors:
    assert isinstance(obj, core_pb2.Event)
    # core/v1 Events keep their legacy rules: free-form names, and checks that depend
    # on whether the event is old-style (no eventTime) or new-style.
    errs = _validate_meta(obj.metadata, namespaced=True, name_fn=_path_segment_name)
    involved_ns = obj.involved_object.namespace
    namespace = obj.metadata.namespace
    if not obj.HasField("event_time"):
        agrees = (namespace in ("", "default") if not involved_ns
                  else namespace == involved_ns)
    else:
        agrees = bool(involved_ns) or namespace in ("default", "kube-system")
        errs += _validate_new_style_event(obj)
    if not agrees:
        errs.append(_invalid("involvedObject.namespace", involved_ns,
                             "does not match event.namespace"))
    return errs


def _validate_new_style_event(event: core_pb2.Event) -> Errors:
    errs: Errors = []
    if not event.reporting_component:
        errs.append(_required("reportingComponent"))
    errs += _qualified_name("reportingComponent", event.reporting_component)
    for attr, name, limit in (("reporting_instance", "reportingInstance", 128),
                              ("action", "action", 128), ("reason", "reason", 128)):
        value = getattr(event, attr)
        if not value:
            errs.append(_required(name))
        if len(value) > limit:
            errs.append(_invalid(name, "", f"can have at most {limit} characters"))
    if len(event.message) > 1024:
        errs.append(_invalid("message", "", "can have at most 1024 characters"))
    return errs


def _validate_lease(obj: Message) -> Errors:
    assert isinstance(obj, coordination_pb2.Lease)
    errs = _meta_of(obj)
    spec = obj.spec
    if spec.HasField("lease_duration_seconds") and spec.lease_duration_seconds <= 0:
        errs.append(_invalid("spec.leaseDurationSeconds", spec.lease_duration_seconds,
                             "must be greater than 0"))
    if spec.HasField("lease_transitions"):
        errs += _nonnegative("spec.leaseTransitions", spec.lease_transitions)
    return errs


# =====================================================================================
# The tables
# =====================================================================================

_VALIDATORS: dict[str, Callable[[Message], Errors]] = {
    "Pod": _validate_pod,
    "ReplicaSet": _validate_replica_set,
    "Deployment": _validate_deployment,
    "DaemonSet": _validate_daemon_set,
    "Job": _validate_job,
    "CronJob": _validate_cron_job,
    "Service": _validate_service,
    "Secret": _validate_secret,
    "ConfigMap": _validate_config_map,
    "Namespace": _validate_namespace,
    "Node": _validate_node,
    "Endpoints": _validate_endpoints,
    "Event": _validate_event,
    "Lease": _validate_lease,
}

_UPDATE_VALIDATORS: dict[str, Callable[[Message, Message], Errors]] = {
    "Pod": _validate_pod_update,
    "ReplicaSet": _validate_selector_update,
    "Deployment": _validate_selector_update,
    "DaemonSet": _validate_selector_update,
    "Job": _validate_job_update,
    "Service": _validate_service_update,
    "Secret": _validate_secret_update,
    "ConfigMap": _validate_config_map_update,
    "Node": _validate_node_update,
}
