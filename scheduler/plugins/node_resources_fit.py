"""NodeResourcesFit: the pod's requests must fit in what the node has not yet promised.

Requests are compared with allocatable minus the requests of the pods already booked
(never with actual usage), and the pod count with the node's ``pods`` allocatable. All
failing reasons are reported, so "0/3 nodes are available" can say a node was short of
both cpu and memory.
"""

from __future__ import annotations

from scheduler.events import (
    ASSIGNED_POD_DELETE,
    NODE_ADD,
    ActionType,
    ClusterEvent,
    ClusterEventWithHint,
    Resource,
)
from scheduler.framework import FITS, Code, NodeInfo, PodInfo, Status

__all__ = ["NodeResourcesFit"]

TOO_MANY_PODS = "Too many pods"
INSUFFICIENT_CPU = "Insufficient cpu"
INSUFFICIENT_MEMORY = "Insufficient memory"
INSUFFICIENT_EPHEMERAL_STORAGE = "Insufficient ephemeral-storage"

_TOO_MANY = Status.unschedulable(TOO_MANY_PODS)

# The answers, by (too many pods, short of cpu, memory, storage, unresolvable): a handful
# of combinations, each built once.
_answers: dict[tuple[bool, bool, bool, bool, bool], Status] = {}


class NodeResourcesFit:
    """Filter: pod count, then cpu, memory and ephemeral-storage requests.

    Unschedulable, since pods leaving the node make room; UnschedulableAndUnresolvable
    when the pod asks for more of a resource than the node has allocatable at all, as in
    Kubernetes (no eviction can make such room)."""

    name = "NodeResourcesFit"

    def events_to_register(self) -> list[ClusterEventWithHint]:
        return [
            ClusterEventWithHint(NODE_ADD),
            ClusterEventWithHint(
                ClusterEvent(Resource.NODE, ActionType.UPDATE_NODE_ALLOCATABLE)),
            ClusterEventWithHint(ASSIGNED_POD_DELETE),
        ]

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status:
        too_many = len(node.pods) + 1 > node.allowed_pods
        want = pod.requests
        if want.is_zero():  # a pod without requests fits anywhere it may count
            return _TOO_MANY if too_many else FITS
        have, booked = node.allocatable, node.requested
        # A resource the pod does not ask for never fails, even on an overcommitted node.
        short_cpu = 0 < want.milli_cpu > have.milli_cpu - booked.milli_cpu
        short_memory = 0 < want.memory > have.memory - booked.memory
        short_storage = (0 < want.ephemeral_storage
                         > have.ephemeral_storage - booked.ephemeral_storage)
        if not (too_many or short_cpu or short_memory or short_storage):
            return FITS
        unresolvable = ((short_cpu and want.milli_cpu > have.milli_cpu)
                        or (short_memory and want.memory > have.memory)
                        or (short_storage and want.ephemeral_storage > have.ephemeral_storage))
        key = (too_many, short_cpu, short_memory, short_storage, unresolvable)
        answer = _answers.get(key)
        if answer is None:
            answer = _answers[key] = _answer(*key)
        return answer


def _answer(too_many: bool, short_cpu: bool, short_memory: bool, short_storage: bool,
            unresolvable: bool) -> Status:
    reasons = []
    if too_many:
        reasons.append(TOO_MANY_PODS)
    if short_cpu:
        reasons.append(INSUFFICIENT_CPU)
    if short_memory:
        reasons.append(INSUFFICIENT_MEMORY)
    if short_storage:
        reasons.append(INSUFFICIENT_EPHEMERAL_STORAGE)
    code = Code.UNSCHEDULABLE_AND_UNRESOLVABLE if unresolvable else Code.UNSCHEDULABLE
    return Status(code, tuple(reasons))
