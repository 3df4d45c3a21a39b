"""Validation of objects, with Kubernetes' rules, field paths and messages.

A kind's validator checks an object as Kubernetes' `pkg/apis/*/validation` does on create;
its update validator adds only what an update must also respect (immutable fields): the
apiserver runs both on every update. Each problem is one string in the
shape of Kubernetes' `field.Error`, `"<field.path>: <problem>"`, for example

    metadata.name: Invalid value: "Web": a lowercase RFC 1123 subdomain must ...
    spec.template.spec.containers[0].image: Required value

so a Kubernetes user reads the errors they know. Objects are expected to be defaulted
first (`skiff.api.kinds.apply_defaults`), as Kubernetes defaults before validating.
`skiff.api.kinds.validate(obj)` and `validate_update(new, old)` run a kind's checks, after
the metadata's (named and scoped as the kind declares).

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
