"""Validation of objects, with Kubernetes' rules, field paths and messages.

`validate(obj)` checks an object as Kubernetes' `pkg/apis/*/validation` does on create;
`validate_update(new, old)` adds only what an update must also respect (immutable
fields): the apiserver runs both on every update. Each problem is one string in the
shape of Kubernetes' `field.Error`, `"<field.path>: <problem>"`, for example

    metadata.name: Invalid value: "Web": a lowercase RFC 1123 subdomain must ...
    spec.template.spec.containers[0].image: Required value

so a Kubernetes user reads the errors they know. Objects are expected to be defaulted
first (`skiff.api.kinds.apply_defaults`), as Kubernetes defaults before validating.

One small function per kind, declared with the kind in skiff.api.kinds (`Kind.validate`,
`Kind.validate_update`), built from shared pieces (object metadata, label selectors, one
pod spec validator used by Pods and by every pod template). The package's modules, each
importing only those above it:

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

from google.protobuf.message import Message

# kinds first: it declares each kind's validators, from this package's modules, which
# therefore finish loading before anything here runs.
from skiff.api import kinds
from skiff.api.meta import meta as metadata  # `meta` is also this package's submodule
from skiff.api.validation.errors import Errors
from skiff.api.validation.meta import validate_meta_update

__all__ = ["validate", "validate_update"]


def validate(obj: Message) -> Errors:
    """All problems of a (defaulted) object of any kind; [] if it is valid."""
    return kinds.by_message(obj).validate(obj)


def validate_update(new: Message, old: Message) -> Errors:
    """What an update from `old` to `new` may not do (immutable fields, allowed Pod
    changes). It does not repeat `validate(new)`: callers run both."""
    errs = validate_meta_update(metadata(new), metadata(old))
    specific = kinds.by_message(new).validate_update
    if specific is not None:
        errs += specific(new, old)
    return errs
