"""NodeResourcesFit: the pod's requests must fit in what the node has not yet promised.

Requests are compared with allocatable minus the requests of the pods already booked
(never with actual usage), and the pod count with the node's ``pods`` allocatable. All
failing reasons are reported, so "0/3 nodes are available" can say a node was short of
both cpu and memory.
"""

from __future__ import annotations

from scheduler.framework import FITS, NodeInfo, PodInfo, Status

__all__ = ["NodeResourcesFit"]

TOO_MANY_PODS = "Too many pods"
INSUFFICIENT_CPU = "Insufficient cpu"
INSUFFICIENT_MEMORY = "Insufficient memory"
INSUFFICIENT_EPHEMERAL_STORAGE = "Insufficient ephemeral-storage"

_TOO_MANY: Status = (TOO_MANY_PODS,)


class NodeResourcesFit:
    """Filter: pod count, then cpu, memory and ephemeral-storage requests."""

    name = "NodeResourcesFit"

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
        reasons = []
        if too_many:
            reasons.append(TOO_MANY_PODS)
        if short_cpu:
            reasons.append(INSUFFICIENT_CPU)
        if short_memory:
            reasons.append(INSUFFICIENT_MEMORY)
        if short_storage:
            reasons.append(INSUFFICIENT_EPHEMERAL_STORAGE)
        return tuple(reasons)
