"""The scheduling framework: what plugins see and the two shapes a plugin takes.

A scheduling decision runs on plain, precomputed views of the cluster, so that the plugins
are pure functions of their arguments, cheap enough to call a few thousand times per pod,
and testable on hand-built nodes:

* ``PodInfo``: one pending pod, with everything the plugins ask about it worked out once
  (requests as integers, host ports, tolerations, its controller).
* ``NodeInfo``: one node plus what is already booked on it (the pods bound or assumed
  there, their summed requests, used host ports, how many pods of each owner).

A **filter** answers "can this pod go on this node?" with a ``Status``, as kube-scheduler's
framework.Status: ``FITS`` (code Success), or a code and the reasons it cannot
(``Status.unschedulable("Insufficient cpu")``). The reasons are counted across nodes to
explain an unschedulable pod. The code says what could change the answer:

* ``UNSCHEDULABLE``: the node may take the pod once something on it changes (a pod
  leaves, a port is freed); evicting pods (preemption) could make room.
* ``UNSCHEDULABLE_AND_UNRESOLVABLE``: nothing done to the pods on the node helps (it is
  cordoned, not the named node, does not match the selector, is too small); only a change
  to the node itself or to the pod can.
* ``ERROR``: the plugin failed; the decision stops and the pod is retried after a
  back-off, reported as an error rather than as "does not fit".

A filter plugin may also say which cluster events can make a pod it rejected schedulable
(``events_to_register``, see ``scheduler.events``).

A **score** ranks the nodes that passed every filter: a raw score per node, then
``normalize`` maps the raw scores of one decision onto 0..100, and the scheduler sums
``weight * score`` over the score plugins. Plugins never do I/O.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from skiff.api.quantity import QuantityError, parse_quantity
from skiff.api.resources import pod_requests
from skiff.api.v1 import core_pb2

__all__ = [
    "DEFAULT_MEMORY_REQUEST",
    "DEFAULT_MILLI_CPU_REQUEST",
    "FITS",
    "MAX_NODE_SCORE",
    "Code",
    "FilterPlugin",
    "HostPort",
    "NodeInfo",
    "PodInfo",
    "Resources",
    "ScorePlugin",
    "Status",
    "normalize_to_max",
]

class Code(enum.Enum):
    """kube-scheduler's status codes, as far as filters use them."""

    SUCCESS = "Success"
    ERROR = "Error"
    UNSCHEDULABLE = "Unschedulable"
    UNSCHEDULABLE_AND_UNRESOLVABLE = "UnschedulableAndUnresolvable"


@dataclass(frozen=True, slots=True)
class Status:
    """A filter's answer: a code and, unless it is Success, the reasons (for an Error,
    the error's message)."""

    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()

    @classmethod
    def unschedulable(cls, *reasons: str) -> Status:
        return cls(Code.UNSCHEDULABLE, reasons)

    @classmethod
    def unresolvable(cls, *reasons: str) -> Status:
        return cls(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, reasons)

    @classmethod
    def error(cls, message: str) -> Status:
        return cls(Code.ERROR, (message,))

    def is_success(self) -> bool:
        return self.code is Code.SUCCESS

    def is_rejected(self) -> bool:
        """The pod does not fit (Unschedulable or UnschedulableAndUnresolvable)."""
        return self.code is Code.UNSCHEDULABLE or self.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE

    def message(self) -> str:
        return ", ".join(self.reasons)


FITS = Status()
"""Success. Filters return this one object, so the scheduler's check is an identity test."""

MAX_NODE_SCORE = 100

# What a container without requests counts as when *scoring* (never when filtering), so
# that pods without requests still spread out (Kubernetes' non-zero defaults).
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024


@dataclass(slots=True)
class Resources:
    """Amounts of the resources the scheduler accounts for, as integers."""

    milli_cpu: int = 0
    memory: int = 0
    ephemeral_storage: int = 0

    def add(self, other: Resources) -> None:
        self.milli_cpu += other.milli_cpu
        self.memory += other.memory
        self.ephemeral_storage += other.ephemeral_storage

    def subtract(self, other: Resources) -> None:
        self.milli_cpu -= other.milli_cpu
        self.memory -= other.memory
        self.ephemeral_storage -= other.ephemeral_storage

    def is_zero(self) -> bool:
        return not (self.milli_cpu or self.memory or self.ephemeral_storage)

    @classmethod
    def from_quantities(cls, quantities: dict[str, str]) -> Resources:
        """From `{"cpu": "500m", "memory": "1Gi"}`-shaped text (unparsable values count 0)."""
        def amount(name: str, milli: bool) -> int:
            text = quantities.get(name)
            if not text:
                return 0
            try:
                q = parse_quantity(text)
            except QuantityError:
                return 0
            return q.milli_value() if milli else q.value()

        return cls(amount("cpu", True), amount("memory", False),
                   amount("ephemeral-storage", False))


@dataclass(frozen=True, slots=True)
class HostPort:
    """One host port a pod asks for; host_ip "0.0.0.0" means every address."""

    host_ip: str
    protocol: str
    port: int

    def conflicts(self, other: HostPort) -> bool:
        return (self.port == other.port and self.protocol == other.protocol
                and (self.host_ip == other.host_ip or "0.0.0.0" in (self.host_ip,
                                                                    other.host_ip)))


class PodInfo:
    """A pod as the plugins see it. Built once per pod (and again when it changes)."""

    __slots__ = (
        "host_ports",
        "key",
        "namespace",
        "non_zero_memory",
        "non_zero_milli_cpu",
        "owner_uid",
        "pod",
        "requests",
        "uid",
    )

    def __init__(self, pod: core_pb2.Pod) -> None:
        self.pod = pod
        self.namespace = pod.metadata.namespace
        self.key = f"{pod.metadata.namespace}/{pod.metadata.name}"
        self.uid = pod.metadata.uid
        requests = pod_requests(pod.spec)
        self.requests = Resources(
            requests["cpu"].milli_value() if "cpu" in requests else 0,
            requests["memory"].value() if "memory" in requests else 0,
            requests["ephemeral-storage"].value() if "ephemeral-storage" in requests else 0)
        self.non_zero_milli_cpu, self.non_zero_memory = _non_zero_requests(pod.spec)
        self.host_ports: tuple[HostPort, ...] = tuple(
            HostPort(port.host_ip or "0.0.0.0", port.protocol or "TCP", port.host_port)
            for c in pod.spec.containers for port in c.ports if port.host_port > 0)
        self.owner_uid = next((ref.uid for ref in pod.metadata.owner_references
                               if ref.controller), "")

    @property
    def spec(self) -> core_pb2.PodSpec:
        return self.pod.spec

    def __repr__(self) -> str:
        return f"PodInfo({self.key})"


def _non_zero_requests(spec: core_pb2.PodSpec) -> tuple[int, int]:
    """Requests for scoring: each container's cpu and memory, or the defaults when it
    asks for none; init containers as for the real requests."""
    def of(c: core_pb2.Container) -> tuple[int, int]:
        r = Resources.from_quantities({k: q.value for k, q in c.resources.requests.items()})
        return (r.milli_cpu or DEFAULT_MILLI_CPU_REQUEST, r.memory or DEFAULT_MEMORY_REQUEST)

    cpu = memory = 0
    for c in spec.containers:
        c_cpu, c_memory = of(c)
        cpu += c_cpu
        memory += c_memory
    for c in spec.init_containers:
        c_cpu, c_memory = of(c)
        cpu, memory = max(cpu, c_cpu), max(memory, c_memory)
    return cpu, memory


@dataclass(eq=False)
class NodeInfo:
    """A node and what is booked on it. ``node`` is None for a node that is gone (or not
    seen yet) while pods are still bound to it: such a node is never a candidate."""

    name: str
    node: core_pb2.Node | None = None
    allocatable: Resources = field(default_factory=Resources)
    allowed_pods: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    taints: Sequence[core_pb2.Taint] = ()
    unschedulable: bool = False
    ready: bool = False
    not_ready_reason: str = ""  # the Ready condition's status when not "True" (or "")
    pods: dict[str, PodInfo] = field(default_factory=dict)
    requested: Resources = field(default_factory=Resources)
    non_zero_milli_cpu: int = 0
    non_zero_memory: int = 0
    used_ports: Counter[HostPort] = field(default_factory=Counter)
    owner_counts: Counter[str] = field(default_factory=Counter)

    def set_node(self, node: core_pb2.Node | None) -> None:
        self.node = node
        if node is None:
            self.allocatable, self.allowed_pods = Resources(), 0
            self.labels, self.taints = {}, ()
            self.unschedulable, self.ready, self.not_ready_reason = False, False, ""
            return
        source = node.status.allocatable or node.status.capacity
        self.allocatable = Resources.from_quantities({k: q.value for k, q in source.items()})
        self.allowed_pods = _count(source["pods"].value) if "pods" in source else 0
        self.labels = dict(node.metadata.labels)
        self.taints = tuple(node.spec.taints)
        self.unschedulable = node.spec.unschedulable
        ready = next((c.status for c in node.status.conditions if c.type == "Ready"), "")
        self.ready = ready == "True"
        self.not_ready_reason = "" if self.ready else (ready or "Unknown")

    @classmethod
    def of(cls, node: core_pb2.Node, pods: Sequence[PodInfo] = ()) -> NodeInfo:
        """A NodeInfo for `node` with `pods` booked on it (handy in tests)."""
        info = cls(node.metadata.name)
        info.set_node(node)
        for pod in pods:
            info.add_pod(pod)
        return info

    def add_pod(self, pod: PodInfo) -> None:
        self.remove_pod(pod.key)
        self.pods[pod.key] = pod
        self.requested.add(pod.requests)
        self.non_zero_milli_cpu += pod.non_zero_milli_cpu
        self.non_zero_memory += pod.non_zero_memory
        self.used_ports.update(pod.host_ports)
        if pod.owner_uid:
            self.owner_counts[pod.owner_uid] += 1

    def remove_pod(self, key: str) -> PodInfo | None:
        pod = self.pods.pop(key, None)
        if pod is None:
            return None
        self.requested.subtract(pod.requests)
        self.non_zero_milli_cpu -= pod.non_zero_milli_cpu
        self.non_zero_memory -= pod.non_zero_memory
        for port in pod.host_ports:
            _decrement(self.used_ports, port)
        if pod.owner_uid:
            _decrement(self.owner_counts, pod.owner_uid)
        return pod


def _decrement(counter: Counter[Any], key: Any) -> None:
    """One fewer of `key`; a count that reaches zero is dropped, so `in` stays true to it."""
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


def _count(text: str) -> int:
    try:
        return parse_quantity(text).value()
    except QuantityError:
        return 0


class FilterPlugin(Protocol):
    """Can `pod` go on `node`? ``FITS``, or a Status with the code and reasons it cannot
    (each reason is counted once per node in the "0/N nodes are available" message).

    A filter plugin should also have ``events_to_register()`` (``scheduler.events.
    EnqueueExtensions``); one without it is asked again after every cluster event."""

    name: str

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status: ...


class ScorePlugin(Protocol):
    """How good is `node` for `pod`? ``score`` gives a raw number per feasible node;
    ``normalize`` then rewrites the raw scores of one decision, in place, onto
    0..MAX_NODE_SCORE (higher is better). ``applies`` lets the scheduler skip a plugin
    that has nothing to say about this pod (e.g. no preferred affinity)."""

    name: str
    weight: int

    def applies(self, pod: PodInfo) -> bool: ...

    def score(self, pod: PodInfo, node: NodeInfo) -> int: ...

    def normalize(self, pod: PodInfo, scores: list[int]) -> None: ...


def normalize_to_max(scores: list[int], *, reverse: bool = False) -> None:
    """Scales `scores` in place so the highest becomes MAX_NODE_SCORE (or, with
    `reverse`, so the highest becomes 0 and zero becomes MAX_NODE_SCORE). All zeros stay
    zeros (or all become MAX_NODE_SCORE when reversed): nothing to tell the nodes apart."""
    highest = max(scores, default=0)
    if highest == 0:
        if reverse:
            scores[:] = [MAX_NODE_SCORE] * len(scores)
        return
    for i, raw in enumerate(scores):
        scaled = MAX_NODE_SCORE * raw // highest
        scores[i] = MAX_NODE_SCORE - scaled if reverse else scaled
