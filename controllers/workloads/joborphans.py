"""The orphan-pod controller of Jobs: releases pods that carry the Job controller's
tracking finalizer but have no Job to account for them.

Such a pod lost its controller reference (its Job was deleted with orphan propagation,
or someone removed the reference). Its finalizer would keep it forever, so it is removed,
unless a Job that has not finished, is not being deleted and whose selector matches the
pod may still adopt it (that Job's sync then counts it). Kubernetes does this in the job
controller, on a queue of its own (its orphanQueue); here it is a controller of its own,
which the controller manager runs with the Job controller.
"""

from __future__ import annotations

from controllers.common.claim import controller_of, selector_of
from controllers.common.context import ControllerContext
from controllers.common.jobs import (
    finished_condition,
    has_tracking_finalizer,
    remove_tracking_finalizer,
)
from skiff.api.v1 import batch_pb2, core_pb2
from skiff.client.controller import Controller
from skiff.client.informer import INDEX_NAMESPACE

__all__ = ["JobOrphanPodController"]


class JobOrphanPodController(Controller):
    """Removes the tracking finalizer of pods no Job controls or may adopt (see the module
    docstring). Its keys are pod keys."""

    def __init__(self, ctx: ControllerContext, *, workers: int = 1) -> None:
        self.client = ctx.client
        self.jobs = ctx.factory.informer(batch_pb2.Job)
        self.pods = ctx.factory.informer(core_pb2.Pod)
        super().__init__("job-orphan-pods", informers=[self.jobs, self.pods],
                         workers=workers, clock=ctx.clock)
        self.pods.add_handlers(on_add=self._pod_changed,
                               on_update=lambda old, new: self._pod_changed(new))

    def _pod_changed(self, pod: core_pb2.Pod) -> None:
        if has_tracking_finalizer(pod) and controller_of(pod) is None:
            self.enqueue(pod)

    async def sync(self, key: str) -> None:
        pod = self.pods.store.get(key)
        if pod is None or not has_tracking_finalizer(pod) or controller_of(pod) is not None:
            return
        for job in self.jobs.store.by_index(INDEX_NAMESPACE, pod.metadata.namespace):
            if (finished_condition(job) is None
                    and not job.metadata.HasField("deletion_timestamp")
                    and selector_of(job).matches(pod.metadata.labels)):
                return
        await remove_tracking_finalizer(self.client, pod)
