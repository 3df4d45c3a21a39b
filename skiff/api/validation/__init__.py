"""Validation of objects, with Kubernetes' rules, field paths and messages.

`validate(obj)` checks an object as Kubernetes' `pkg/apis/*/validation` does on create;
`validate_update(new, old)` adds only what an update must also respect (immutable
fields): the apiserver runs both on every update. Each problem is one string in the
shape of Kubernetes' `field.Error`, `"<field.path>: <problem>"`, for example

    metadata.name: Invalid value: "Web": a lowercase RFC 1123 subdomain must ...
    spec.template.spec.containers[0].image: Required value

so a Kubernetes user reads the errors they know. Objects are expected to be defaulted
first (`skiff.api.defaults.apply_defaults`), as Kubernetes defaults before validating.

The package is table-driven: one small function per kind, registered by kind name in
`_VALIDATORS` and `_UPDATE_VALIDATORS` below, built from shared pieces (object metadata,
label selectors, one pod spec validator used by Pods and by every pod template). Its
modules, each importing only those above it:

- `errors`: the error strings (`invalid`, `required`, ...) and the `Errors` type;
- `formats`: string formats and small shared checks (names, ports, protocols, IPs);
- `meta`: object names and ObjectMeta; `label_selector`: label selectors;
- `rules`, `resources`, `security`, `scheduling`, `env`, `volumes`, `container`: the
  parts of a pod spec; `pod`: the pod spec itself, pod templates and the Pod kind;
- the other kinds: `workloads` (ReplicaSet, Deployment, DaemonSet), `cron` (schedules),
  `jobs` (Job, CronJob), `service` (Service, Endpoints), `config` (Secret, ConfigMap)
  and `core` (Namespace, Node, Event, Lease).

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

from collections.abc import Callable

from google.protobuf.message import Message

from skiff.api import kinds
from skiff.api.validation.config import (
    validate_config_map,
    validate_config_map_update,
    validate_secret,
    validate_secret_update,
)
from skiff.api.validation.core import (
    validate_event,
    validate_lease,
    validate_namespace,
    validate_node,
    validate_node_update,
)
from skiff.api.validation.errors import Errors
from skiff.api.validation.jobs import validate_cron_job, validate_job, validate_job_update
from skiff.api.validation.meta import validate_meta_update
from skiff.api.validation.pod import validate_pod, validate_pod_update
from skiff.api.validation.service import (
    validate_endpoints,
    validate_service,
    validate_service_update,
)
from skiff.api.validation.workloads import (
    validate_daemon_set,
    validate_deployment,
    validate_replica_set,
    validate_selector_update,
)

__all__ = ["validate", "validate_update"]


def validate(obj: Message) -> Errors:
    """All problems of a (defaulted) object of any kind; [] if it is valid."""
    return _VALIDATORS[kinds.by_message(obj).kind](obj)


def validate_update(new: Message, old: Message) -> Errors:
    """What an update from `old` to `new` may not do (immutable fields, allowed Pod
    changes). It does not repeat `validate(new)`: callers run both."""
    kind = kinds.by_message(new).kind
    errs = validate_meta_update(new.metadata, old.metadata)  # type: ignore[attr-defined]
    specific = _UPDATE_VALIDATORS.get(kind)
    if specific is not None:
        errs += specific(new, old)
    return errs


_VALIDATORS: dict[str, Callable[[Message], Errors]] = {
    "Pod": validate_pod,
    "ReplicaSet": validate_replica_set,
    "Deployment": validate_deployment,
    "DaemonSet": validate_daemon_set,
    "Job": validate_job,
    "CronJob": validate_cron_job,
    "Service": validate_service,
    "Secret": validate_secret,
    "ConfigMap": validate_config_map,
    "Namespace": validate_namespace,
    "Node": validate_node,
    "Endpoints": validate_endpoints,
    "Event": validate_event,
    "Lease": validate_lease,
}

_UPDATE_VALIDATORS: dict[str, Callable[[Message, Message], Errors]] = {
    "Pod": validate_pod_update,
    "ReplicaSet": validate_selector_update,
    "Deployment": validate_selector_update,
    "DaemonSet": validate_selector_update,
    "Job": validate_job_update,
    "Service": validate_service_update,
    "Secret": validate_secret_update,
    "ConfigMap": validate_config_map_update,
    "Node": validate_node_update,
}
