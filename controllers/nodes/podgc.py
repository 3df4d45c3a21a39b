"""Pod garbage collection: removes the pods no kubelet will ever finish.

Kubernetes' semantics (pkg/controller/podgc), the parts that matter without a cloud:

* Orphans: a pod bound to a node that no longer exists is marked Failed (with a
  DisruptionTarget condition, reason DeletionByPodGC) and force-deleted (grace period 0),
  once the node has been missing for a quarantine (40 s), so a node that is only being
  re-registered does not lose its pods.
* Unscheduled terminating pods (no node, deletion requested) are force-deleted: no kubelet
  is there to confirm.
* Terminating pods on a node an administrator declared out of service (the
  ``node.kubernetes.io/out-of-service`` taint) that is not Ready are force-deleted, so
  their replacements (e.g. a StatefulSet's, which wait for the name) can start elsewhere.

Left out: the cap on finished pods (``terminated-pod-gc-threshold``, 12500 by default),
and the apiserver re-read of a missing node before deleting its pods (the informer and the
quarantine stand in for it).
"""

from __future__ import annotations

import logging
from datetime import datetime

from controllers.common.context import ControllerContext
from skiff.api import conditions
from skiff.api.pods import FAILED, is_terminal
from skiff.api.scheduling import TAINT_OUT_OF_SERVICE
from skiff.api.v1 import core_pb2
from skiff.client import errors
from skiff.client.controller import Controller
from skiff.client.informer import INDEX_NODE_NAME

__all__ = ["ORPHAN_QUARANTINE", "PodGCController", "gc_reason"]

log = logging.getLogger(__name__)

ORPHAN_QUARANTINE = 40.0

ORPHANED = "orphaned"
UNSCHEDULED_TERMINATING = "unscheduled terminating"
OUT_OF_SERVICE = "terminating on an out-of-service node"


def _terminating(pod: core_pb2.Pod) -> bool:
    return pod.metadata.HasField("deletion_timestamp")


def _out_of_service(node: core_pb2.Node) -> bool:
    not_ready = not conditions.is_true(node.status.conditions, "Ready")
    return not_ready and any(t.key == TAINT_OUT_OF_SERVICE for t in node.spec.taints)


def gc_reason(pod: core_pb2.Pod, node: core_pb2.Node | None) -> str | None:
    """Why `pod` (bound to `node`, None if that node is missing) is garbage, if it is.
    An orphan still has to sit out the quarantine."""
    if not pod.spec.node_name:
        return UNSCHEDULED_TERMINATING if _terminating(pod) else None
    if node is None:
        return ORPHANED
    if _terminating(pod) and _out_of_service(node):
        return OUT_OF_SERVICE
    return None


def _mark_failed(pod: core_pb2.Pod, now: datetime) -> core_pb2.Pod | None:
    """The pod Failed, with DisruptionTarget saying why; None if already finished."""
    if is_terminal(pod):
        return None
    updated = core_pb2.Pod()
    updated.CopyFrom(pod)
    updated.status.phase = FAILED
    conditions.set_condition(updated.status.conditions, "DisruptionTarget", "True", now,
                             reason="DeletionByPodGC", message="PodGC: node no longer exists")
    return updated


class PodGCController(Controller):
    def __init__(self, ctx: ControllerContext, *, workers: int = 1,
                 quarantine: float = ORPHAN_QUARANTINE) -> None:
        self.client = ctx.client
        self.clock = ctx.clock
        self.quarantine = quarantine
        self.pods = ctx.factory.informer(core_pb2.Pod)
        self.nodes = ctx.factory.informer(core_pb2.Node)
        super().__init__("podgc", informers=[self.pods, self.nodes], workers=workers,
                         clock=ctx.clock)
        # node name -> when the controller first found it missing (its own clock)
        self._missing_since: dict[str, float] = {}

        self.pods.add_handlers(on_add=self._pod_changed,
                               on_update=lambda old, new: self._pod_changed(new))
        self.nodes.add_handlers(on_add=self._node_present,
                                on_update=lambda old, new: self._node_changed(new),
                                on_delete=self._node_deleted)

    # ---- handlers ----

    def _pod_changed(self, pod: core_pb2.Pod) -> None:
        name = pod.spec.node_name
        if (not name and _terminating(pod)) or (name and name not in self.nodes.store):
            self.enqueue(pod)
        elif name and _terminating(pod):
            node = self.nodes.store.get(name)
            if node is not None and _out_of_service(node):
                self.enqueue(pod)

    def _node_present(self, node: core_pb2.Node) -> None:
        self._missing_since.pop(node.metadata.name, None)

    def _node_changed(self, node: core_pb2.Node) -> None:
        self._node_present(node)
        if _out_of_service(node):
            self._enqueue_pods_on(node)

    def _node_deleted(self, node: core_pb2.Node) -> None:
        self._missing_since.setdefault(node.metadata.name, self.clock.now())
        self._enqueue_pods_on(node)

    def _enqueue_pods_on(self, node: core_pb2.Node) -> None:
        for pod in self.pods.store.by_index(INDEX_NODE_NAME, node.metadata.name):
            self.enqueue(pod)

    # ---- sync ----

    async def sync(self, key: str) -> None:
        pod = self.pods.store.get(key)
        if pod is None:
            return
        node = self.nodes.store.get(pod.spec.node_name) if pod.spec.node_name else None
        reason = gc_reason(pod, node)
        if reason is None:
            return
        if reason == ORPHANED:
            now = self.clock.now()
            since = self._missing_since.setdefault(pod.spec.node_name, now)
            wait = since + self.quarantine - now
            if wait > 0:
                self.enqueue_after(key, wait)
                return
            failed = _mark_failed(pod, self.clock.wall())
            if failed is not None:
                try:
                    await self.client.update_status(failed)
                except errors.NotFound:
                    return
        log.info("pod GC: force-deleting %s pod %s (node %r)", reason, key,
                 pod.spec.node_name)
        try:
            await self.client.delete(core_pb2.Pod, pod.metadata.name, pod.metadata.namespace,
                                     grace_period=0, uid=pod.metadata.uid)
        except errors.NotFound:
            return
        if reason == ORPHANED and not [
                k for k in self.pods.store.index_keys(INDEX_NODE_NAME, pod.spec.node_name)
                if k != key]:
            self._missing_since.pop(pod.spec.node_name, None)  # nothing left to collect
