"""The scheduler's picture of the cluster: nodes and what is booked on each.

A pod books room on its node from the moment the scheduler decides, not from the moment
the apiserver confirms: ``assume`` adds the pod to its node at once, so the next decision,
made while the bind is still in flight, already sees the room taken. Two pods can never
be given the last room on a node. When the informer later delivers the bound pod,
``add_pod`` replaces the assumption with the real thing; if the bind fails, ``forget``
gives the room back.

Pods that have finished (Succeeded or Failed) hold nothing, as in Kubernetes. A pod bound
to a node the scheduler does not know (yet, or any more) is kept on a placeholder
NodeInfo, so that its booking is right when the node (re)appears.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from scheduler.framework import NodeInfo, PodInfo
from skiff.api.pods import is_terminal
from skiff.api.v1 import core_pb2

__all__ = ["SchedulerCache"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Booking:
    node: str
    pod: PodInfo
    assumed: bool


class SchedulerCache:
    def __init__(self) -> None:
        self._nodes: dict[str, NodeInfo] = {}
        self._bookings: dict[str, _Booking] = {}
        self._candidates: list[NodeInfo] | None = None

    # ---- nodes ----

    def set_node(self, node: core_pb2.Node) -> NodeInfo:
        """Adds or updates a node; the pods booked on it stay."""
        info = self._nodes.get(node.metadata.name)
        if info is None:
            info = self._nodes[node.metadata.name] = NodeInfo(node.metadata.name)
        had_node = info.node is not None
        info.set_node(node)
        if not had_node:
            self._candidates = None
        return info

    def remove_node(self, name: str) -> None:
        info = self._nodes.get(name)
        if info is None:
            return
        info.set_node(None)
        if not info.pods:
            del self._nodes[name]
        self._candidates = None

    def node(self, name: str) -> NodeInfo | None:
        return self._nodes.get(name)

    def candidates(self) -> list[NodeInfo]:
        """Every node that exists, in a stable order (the order nodes were first seen)."""
        if self._candidates is None:
            self._candidates = [info for info in self._nodes.values() if info.node is not None]
        return self._candidates

    # ---- pods ----

    def assume(self, pod: PodInfo, node_name: str) -> None:
        """Books `pod` on `node_name` before its binding is confirmed."""
        self._book(pod, node_name, assumed=True)

    def forget(self, key: str) -> None:
        """Drops an assumption (its bind failed); a confirmed booking is kept."""
        booking = self._bookings.get(key)
        if booking is not None and booking.assumed:
            self._unbook(key)

    def is_assumed(self, key: str) -> bool:
        booking = self._bookings.get(key)
        return booking is not None and booking.assumed

    def add_pod(self, pod: core_pb2.Pod) -> None:
        """A pod the apiserver says is bound (added or updated). Finished pods hold nothing."""
        key = f"{pod.metadata.namespace}/{pod.metadata.name}"
        if not pod.spec.node_name or is_terminal(pod):
            self.remove_pod(key)
            return
        booking = self._bookings.get(key)
        if (booking is not None and booking.node == pod.spec.node_name
                and booking.pod.uid == pod.metadata.uid):
            # What a pod books cannot change once it is bound, so a status update (or the
            # confirmation of an assumption) changes nothing but that flag.
            booking.assumed = False
            return
        # A new object under the same name, or bound elsewhere: book what the apiserver has.
        self._book(PodInfo(pod), pod.spec.node_name, assumed=False)

    def remove_pod(self, key: str) -> PodInfo | None:
        """A pod deleted or finished: its room is free again. Returns what was booked."""
        return self._unbook(key)

    def booked_node(self, key: str) -> str | None:
        booking = self._bookings.get(key)
        return booking.node if booking is not None else None

    def __len__(self) -> int:
        return len(self._bookings)

    def _book(self, pod: PodInfo, node_name: str, *, assumed: bool) -> None:
        self._unbook(pod.key)
        info = self._nodes.get(node_name)
        if info is None:
            info = self._nodes[node_name] = NodeInfo(node_name)  # placeholder until it exists
        info.add_pod(pod)
        self._bookings[pod.key] = _Booking(node_name, pod, assumed)

    def _unbook(self, key: str) -> PodInfo | None:
        booking = self._bookings.pop(key, None)
        if booking is None:
            return None
        info = self._nodes.get(booking.node)
        if info is not None:
            info.remove_pod(key)
            if info.node is None and not info.pods:
                del self._nodes[booking.node]
        return booking.pod
