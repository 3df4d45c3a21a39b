"""The field paths each kind can be selected by (`--field-selector`), as in Kubernetes.

Every kind supports metadata.name and metadata.namespace; a few kinds add their own,
declared with the kind (`Kind.fields`, from the tables here). The apiserver filters List
and Watch with these; informers may reuse them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Getter = Callable[[Any], str]

COMMON: dict[str, Getter] = {
    "metadata.name": lambda o: o.metadata.name,
    "metadata.namespace": lambda o: o.metadata.namespace,
}

POD: dict[str, Getter] = {
    "spec.nodeName": lambda o: o.spec.node_name,
    "spec.restartPolicy": lambda o: o.spec.restart_policy,
    "spec.schedulerName": lambda o: o.spec.scheduler_name,
    "spec.hostNetwork": lambda o: "true" if o.spec.host_network else "false",
    "status.phase": lambda o: o.status.phase,
    "status.podIP": lambda o: o.status.pod_ip,
}
NODE: dict[str, Getter] = {
    "spec.unschedulable": lambda o: "true" if o.spec.unschedulable else "false"}
NAMESPACE: dict[str, Getter] = {"status.phase": lambda o: o.status.phase}
SECRET: dict[str, Getter] = {"type": lambda o: o.type}
EVENT: dict[str, Getter] = {
    "involvedObject.kind": lambda o: o.involved_object.kind,
    "involvedObject.namespace": lambda o: o.involved_object.namespace,
    "involvedObject.name": lambda o: o.involved_object.name,
    "involvedObject.uid": lambda o: o.involved_object.uid,
    "involvedObject.fieldPath": lambda o: o.involved_object.field_path,
    "reason": lambda o: o.reason,
    "source": lambda o: o.source.component,
    "type": lambda o: o.type,
}
REPLICA_SET: dict[str, Getter] = {"status.replicas": lambda o: str(o.status.replicas)}
JOB: dict[str, Getter] = {"status.successful": lambda o: str(o.status.succeeded)}

