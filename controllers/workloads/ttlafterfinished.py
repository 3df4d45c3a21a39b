"""The TTL-after-finished controller: deletes a finished Job `ttlSecondsAfterFinished`
seconds after its Complete/Failed condition.

It deletes with background propagation (the garbage collector removes the pods).
Kubernetes deletes with foreground propagation, which keeps the Job until every pod is
gone; background does not depend on the collector's foreground support and the user sees
the same end state.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from controllers.common.context import ControllerContext
from controllers.common.jobs import COMPLETE, FAILED
from skiff.api.v1 import batch_pb2
from skiff.client import errors
from skiff.client.controller import Controller

__all__ = ["TTLAfterFinishedController", "finish_time"]

log = logging.getLogger(__name__)


def finish_time(job: batch_pb2.Job) -> datetime | None:
    """When the Job finished: its Complete or Failed condition's transition."""
    for cond in job.status.conditions:
        if (cond.type in (COMPLETE, FAILED) and cond.status == "True"
                and cond.HasField("last_transition_time")):
            finished: datetime = cond.last_transition_time.ToDatetime(tzinfo=UTC)
            return finished
    return None


class TTLAfterFinishedController(Controller):
    """Deletes each finished Job `ttlSecondsAfterFinished` seconds after it finished."""

    def __init__(self, ctx: ControllerContext, *, workers: int = 1) -> None:
        self.jobs = ctx.factory.informer(batch_pb2.Job)
        super().__init__("ttl-after-finished", informers=[self.jobs], workers=workers,
                         clock=ctx.clock)
        self.client = ctx.client
        self.clock = ctx.clock
        self.enqueue_from(self.jobs)

    async def sync(self, key: str) -> None:
        job = self.jobs.store.get(key)
        if job is None or job.metadata.HasField("deletion_timestamp"):
            return
        if not job.spec.HasField("ttl_seconds_after_finished"):
            return
        finished = finish_time(job)
        if finished is None:
            return
        expires = finished + timedelta(seconds=job.spec.ttl_seconds_after_finished)
        left = (expires - self.clock.wall()).total_seconds()
        if left > 0:
            self.enqueue_after(key, left)
            return
        log.info("job %s: deleting, finished at %s with ttlSecondsAfterFinished %d", key,
                 finished.isoformat(), job.spec.ttl_seconds_after_finished)
        try:
            # Only the very Job judged here: a changed one (a new TTL) comes back through
            # the informer and is judged again.
            await self.client.delete(batch_pb2.Job, job.metadata.name, job.metadata.namespace,
                                     propagation="Background", uid=job.metadata.uid,
                                     resource_version=job.metadata.resource_version)
        except (errors.NotFound, errors.FailedPrecondition):
            return
