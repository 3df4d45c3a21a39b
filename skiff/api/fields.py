"""The field paths each kind can be selected by (`--field-selector`), as in Kubernetes.

Every kind supports metadata.name and metadata.namespace; a few kinds add their own.
The apiserver filters List and Watch with these; informers may reuse them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Getter = Callable[[Any], str]

_COMMON: dict[str, Getter] = {
    "metadata.name": lambda o: o.metadata.name,
    "metadata.namespace": lambda o: o.metadata.namespace,
}

_BY_KIND: dict[str, dict[str, Getter]] = {
    "Pod": {
        "spec.nodeName": lambda o: o.spec.node_name,
        "spec.restartPolicy": lambda o: o.spec.restart_policy,
        "spec.schedulerName": lambda o: o.spec.scheduler_name,
        "spec.hostNetwork": lambda o: "true" if o.spec.host_network else "false",
        "status.phase": lambda o: o.status.phase,
        "status.podIP": lambda o: o.status.pod_ip,
    },
    "Node": {"spec.unschedulable": lambda o: "true" if o.spec.unschedulable else "false"},
    "Namespace": {"status.phase": lambda o: o.status.phase},
    "Secret": {"type": lambda o: o.type},
    "Event": {
        "involvedObject.kind": lambda o: o.involved_object.kind,
        "involvedObject.namespace": lambda o: o.involved_object.namespace,
        "involvedObject.name": lambda o: o.involved_object.name,
        "involvedObject.uid": lambda o: o.involved_object.uid,
        "involvedObject.fieldPath": lambda o: o.involved_object.field_path,
        "reason": lambda o: o.reason,
        "source": lambda o: o.source.component,
        "type": lambda o: o.type,
    },
    "ReplicaSet": {"status.replicas": lambda o: str(o.status.replicas)},
    "Job": {"status.successful": lambda o: str(o.status.succeeded)},
}


def getters(kind: str) -> dict[str, Getter]:
    """Field path -> getter for one kind."""
    return {**_COMMON, **_BY_KIND.get(kind, {})}


def unsupported(kind: str, paths: set[str]) -> list[str]:
    known = getters(kind)
    return sorted(p for p in paths if p not in known)
