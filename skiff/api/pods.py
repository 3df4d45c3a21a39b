"""Facts about pods that every component asks alike: finished or not, alive, ready, their
conditions and their QoS class. One answer each, so the scheduler, the controllers, the
kubelet, the apiserver and the CLI cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping

from skiff.api.quantity import Quantity, parse_quantity
from skiff.api.v1 import core_pb2, meta_pb2

__all__ = ["FAILED", "PENDING", "RUNNING", "SUCCEEDED", "TERMINAL_PHASES", "UNKNOWN",
           "condition", "is_active", "is_ready", "is_terminal", "is_terminal_phase", "qos_class"]

PENDING, RUNNING, SUCCEEDED, FAILED, UNKNOWN = (
    "Pending", "Running", "Succeeded", "Failed", "Unknown")
TERMINAL_PHASES = frozenset({SUCCEEDED, FAILED})


def is_terminal(pod: core_pb2.Pod) -> bool:
    """The pod has finished (Succeeded or Failed): nothing in it runs or will run again."""
    return is_terminal_phase(pod.status.phase)


def is_terminal_phase(phase: str) -> bool:
    """A phase a pod never leaves (for a status being built, before it is the pod's)."""
    return phase in TERMINAL_PHASES


def is_active(pod: core_pb2.Pod) -> bool:
    """Counts towards a controller's replicas: not finished and not being deleted."""
    return not is_terminal(pod) and not pod.metadata.HasField("deletion_timestamp")


def condition(pod: core_pb2.Pod, type_: str) -> core_pb2.PodCondition | None:
    return next((c for c in pod.status.conditions if c.type == type_), None)


def is_ready(pod: core_pb2.Pod) -> bool:
    ready = condition(pod, "Ready")
    return ready is not None and ready.status == "True"


# Only these resources decide the QoS class (Kubernetes' supportedQoSComputeResources):
# a pod that asks only for ephemeral-storage is BestEffort.
_QOS_RESOURCES = ("cpu", "memory")


def qos_class(spec: core_pb2.PodSpec) -> str:
    """Kubernetes' ComputePodQOS. Guaranteed: every container limits cpu and memory, and
    requests equal limits; BestEffort: no cpu or memory request or limit anywhere;
    Burstable otherwise. Zero amounts do not count."""
    requests: dict[str, Quantity] = {}
    limits: dict[str, Quantity] = {}
    guaranteed = True
    for container in [*spec.containers, *spec.init_containers]:
        _add_positive(requests, container.resources.requests)
        limited = _add_positive(limits, container.resources.limits)
        if not limited.issuperset(_QOS_RESOURCES):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and requests.keys() == limits.keys() and all(
            limits[name] == amount for name, amount in requests.items()):
        return "Guaranteed"
    return "Burstable"


def _add_positive(totals: dict[str, Quantity], resources: Mapping[str, meta_pb2.Quantity]
                  ) -> set[str]:
    """Adds the positive cpu and memory amounts to `totals`; returns their names."""
    seen: set[str] = set()
    for name in _QOS_RESOURCES:
        if name not in resources:
            continue
        try:
            amount = parse_quantity(resources[name].value)
        except ValueError:  # validation refuses these; a reader must not crash on one
            continue
        if amount.sign() > 0:
            seen.add(name)
            totals[name] = totals[name] + amount if name in totals else amount
    return seen
