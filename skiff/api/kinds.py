"""The registry of kinds: the one place a kind Skiff serves is declared.

Each `Kind` names its API group, resource names and message, and carries its parts: the
defaulter, the validators, the field selectors and whether the system owns its status.
The apiserver's registry, the typed client, the manifest reader, `skiff api-resources`,
defaulting and validation all read this table. The parts that live above the kernel (the
apiserver's strategies, the CLI's printers and describers) are keyed by `Kind.kind`, and
tests/unit/kernel/test_kinds.py checks that every kind has every part.

Adding a kind: its message in proto/, one entry here, then whatever that test asks for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message

from skiff.api import defaults, fields
from skiff.api.meta import meta
from skiff.api.v1 import apps_pb2, batch_pb2, coordination_pb2, core_pb2
from skiff.api.validation import config, core, jobs, pod, service, workloads
from skiff.api.validation.meta import (
    NameFn,
    dns1035_name,
    label_name,
    path_segment_name,
    subdomain_name,
    validate_meta,
    validate_meta_update,
)

Validator = Callable[[Message], list[str]]
UpdateValidator = Callable[[Message, Message], list[str]]
Defaulter = Callable[[Message], None]

TYPE_URL_PREFIX = "type.googleapis.com/"


@dataclass(frozen=True, eq=False)  # one object per kind: compared and hashed by identity
class Kind:
    kind: str
    group: str  # "" is the core group
    plural: str
    short_names: tuple[str, ...]
    namespaced: bool
    message: type[Message]
    # The kind's own checks; its metadata is checked first, by `validate(obj)`.
    validate_spec: Validator
    # What an update must also respect (immutable fields), beyond metadata's rules.
    validate_update: UpdateValidator | None = None
    default: Defaulter | None = None
    # What a name must look like (most kinds: a DNS subdomain).
    name_format: NameFn = subdomain_name
    # Field selectors beyond metadata.name and metadata.namespace.
    fields: Mapping[str, Callable[[Any], str]] = field(default_factory=dict)
    # The system writes its status: a client's status on create is dropped.
    system_status: bool = False
    has_status: bool = True
    has_spec: bool = True
    version: str = "v1"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def type_url(self) -> str:
        return TYPE_URL_PREFIX + self.message.DESCRIPTOR.full_name

    @property
    def singular(self) -> str:
        return self.kind.lower()

    def field_getters(self) -> dict[str, Callable[[Any], str]]:
        """Field path -> getter for the field selectors this kind supports."""
        return {**fields.COMMON, **self.fields}

    @property
    def qualified(self) -> str:
        """kubectl's name for the resource in messages: `deployment.apps`, `pod`."""
        return f"{self.singular}.{self.group}" if self.group else self.singular


KINDS: tuple[Kind, ...] = (
    Kind("Namespace", "", "namespaces", ("ns",), False, core_pb2.Namespace,
         core.validate_namespace, default=defaults.default_namespace, name_format=label_name,
         fields=fields.NAMESPACE, system_status=True),
    Kind("Node", "", "nodes", ("no",), False, core_pb2.Node,
         core.validate_node, core.validate_node_update, defaults.default_node,
         fields=fields.NODE),
    Kind("Pod", "", "pods", ("po",), True, core_pb2.Pod,
         pod.validate_pod, pod.validate_pod_update, defaults.default_pod,
         fields=fields.POD, system_status=True),
    Kind("Service", "", "services", ("svc",), True, core_pb2.Service,
         service.validate_service, service.validate_service_update, defaults.default_service,
         name_format=dns1035_name, system_status=True),
    Kind("Endpoints", "", "endpoints", ("ep",), True, core_pb2.Endpoints,
         service.validate_endpoints, default=defaults.default_endpoints,
         has_status=False, has_spec=False),
    Kind("Secret", "", "secrets", ("secret",), True, core_pb2.Secret,
         config.validate_secret, config.validate_secret_update, defaults.default_secret,
         fields=fields.SECRET, has_status=False, has_spec=False),
    Kind("ConfigMap", "", "configmaps", ("cm",), True, core_pb2.ConfigMap,
         config.validate_config_map, config.validate_config_map_update,
         has_status=False, has_spec=False),
    Kind("Event", "", "events", ("ev",), True, core_pb2.Event,
         # core/v1 Events keep their legacy free-form names.
         core.validate_event, name_format=path_segment_name, fields=fields.EVENT,
         has_status=False, has_spec=False),
    Kind("ReplicaSet", "apps", "replicasets", ("rs",), True, apps_pb2.ReplicaSet,
         workloads.validate_replica_set, workloads.validate_selector_update,
         defaults.default_replica_set, fields=fields.REPLICA_SET, system_status=True),
    Kind("Deployment", "apps", "deployments", ("deploy",), True, apps_pb2.Deployment,
         workloads.validate_deployment, workloads.validate_selector_update,
         defaults.default_deployment, system_status=True),
    Kind("DaemonSet", "apps", "daemonsets", ("ds",), True, apps_pb2.DaemonSet,
         workloads.validate_daemon_set, workloads.validate_selector_update,
         defaults.default_daemon_set, system_status=True),
    Kind("Job", "batch", "jobs", ("job",), True, batch_pb2.Job,
         jobs.validate_job, jobs.validate_job_update, defaults.default_job,
         fields=fields.JOB, system_status=True),
    Kind("CronJob", "batch", "cronjobs", ("cj",), True, batch_pb2.CronJob,
         jobs.validate_cron_job, default=defaults.default_cron_job, system_status=True),
    Kind("Lease", "coordination.k8s.io", "leases", (), True, coordination_pb2.Lease,
         core.validate_lease, has_status=False),
)


_BY_KIND = {k.kind: k for k in KINDS}
_BY_TYPE_URL = {k.type_url: k for k in KINDS}
_BY_NAME: dict[str, Kind] = {}
for _k in KINDS:
    for _name in (_k.kind.lower(), _k.plural, _k.singular, *_k.short_names, _k.qualified,
                  f"{_k.plural}.{_k.group}" if _k.group else _k.plural):
        _BY_NAME.setdefault(_name, _k)

# apiVersions Kubernetes once served for these kinds and has since removed; a
# manifest using one is refused, as Kubernetes refuses it, with the version to use.
REMOVED_API_VERSIONS: dict[tuple[str, str], str] = {
    ("extensions/v1beta1", "Deployment"): "1.16",
    ("apps/v1beta1", "Deployment"): "1.16",
    ("apps/v1beta2", "Deployment"): "1.16",
    ("extensions/v1beta1", "ReplicaSet"): "1.16",
    ("apps/v1beta2", "ReplicaSet"): "1.16",
    ("extensions/v1beta1", "DaemonSet"): "1.16",
    ("apps/v1beta2", "DaemonSet"): "1.16",
    ("batch/v1beta1", "CronJob"): "1.25",
    ("batch/v2alpha1", "CronJob"): "1.21",
    ("coordination.k8s.io/v1beta1", "Lease"): "1.22",
    ("events.k8s.io/v1beta1", "Event"): "1.25",
}


class UnknownKindError(LookupError):
    pass


def by_kind(kind: str) -> Kind:
    try:
        return _BY_KIND[kind]
    except KeyError:
        raise UnknownKindError(f'the server does not serve kind "{kind}"') from None


def apply_defaults(obj: Message) -> None:
    """Fills in Kubernetes' defaults on an object of any kind, in place."""
    default = by_message(obj).default
    if default is not None:
        default(obj)


def validate(obj: Message) -> list[str]:
    """All problems of a (defaulted) object of any kind, its metadata's first; [] if it
    is valid."""
    kind = by_message(obj)
    return (validate_meta(meta(obj), namespaced=kind.namespaced, name_fn=kind.name_format)
            + kind.validate_spec(obj))


def validate_update(new: Message, old: Message) -> list[str]:
    """What an update from `old` to `new` may not do (immutable fields, allowed Pod
    changes). It does not repeat `validate(new)`: callers run both."""
    errs = validate_meta_update(meta(new), meta(old))
    specific = by_message(new).validate_update
    if specific is not None:
        errs += specific(new, old)
    return errs


def by_type_url(type_url: str) -> Kind:
    try:
        return _BY_TYPE_URL[type_url]
    except KeyError:
        raise UnknownKindError(f'the server does not serve type "{type_url}"') from None


def by_message(message: Message) -> Kind:
    return by_type_url(TYPE_URL_PREFIX + message.DESCRIPTOR.full_name)


def lookup(name: str) -> Kind:
    """Resolves what a user types (`po`, `pods`, `Pod`, `deployment.apps`) to a kind."""
    found = _BY_NAME.get(name.lower())
    if found is None:
        raise UnknownKindError(f'the server doesn\'t have a resource type "{name}"')
    return found


def for_manifest(api_version: str, kind: str) -> Kind:
    """The kind a manifest's apiVersion and kind name, refusing what Kubernetes refuses."""
    if not kind:
        raise UnknownKindError("Object 'Kind' is missing")
    if not api_version:
        raise UnknownKindError(f"apiVersion not set for kind \"{kind}\": every object needs one "
                               "(e.g. apiVersion: v1)")
    removed = REMOVED_API_VERSIONS.get((api_version, kind))
    found = _BY_KIND.get(kind)
    if removed and found:
        raise UnknownKindError(
            f'no matches for kind "{kind}" in version "{api_version}": it was removed in '
            f"Kubernetes {removed}; use apiVersion: {found.api_version}")
    if found is None or found.api_version != api_version:
        raise UnknownKindError(f'no matches for kind "{kind}" in version "{api_version}"')
    return found
