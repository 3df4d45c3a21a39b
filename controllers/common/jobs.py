"""Job facts that more than one controller needs: the finalizer by which the Job
controller tracks its pods (and how it is removed), and whether a Job has finished.

The Job controller counts and releases its own pods; the orphan-pod controller releases
the pods of Jobs that are gone; the CronJob controller reads whether its Jobs finished.
"""

from __future__ import annotations

from skiff.api.v1 import batch_pb2, core_pb2
from skiff.client import errors
from skiff.client.client import Client

__all__ = [
    "COMPLETE",
    "FAILED",
    "JOB_TRACKING_FINALIZER",
    "finished_condition",
    "has_tracking_finalizer",
    "remove_tracking_finalizer",
]

JOB_TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"

COMPLETE = "Complete"
FAILED = "Failed"

_FINALIZER_RETRIES = 5


def finished_condition(job: batch_pb2.Job) -> str | None:
    """"Complete" or "Failed" once the Job has finished, else None."""
    for cond in job.status.conditions:
        if cond.type in (COMPLETE, FAILED) and cond.status == "True":
            return cond.type
    return None


def has_tracking_finalizer(pod: core_pb2.Pod) -> bool:
    return JOB_TRACKING_FINALIZER in pod.metadata.finalizers


async def remove_tracking_finalizer(client: Client, pod: core_pb2.Pod) -> None:
    """Removes the tracking finalizer from `pod` (read-modify-write: the kubelet writes
    the pod often, so a conflict is read again and retried). A pod gone, or replaced by
    another of its name, needs nothing more."""
    current = pod
    for _ in range(_FINALIZER_RETRIES):
        if not has_tracking_finalizer(current):
            return
        updated = core_pb2.Pod()
        updated.CopyFrom(current)
        kept = [f for f in updated.metadata.finalizers if f != JOB_TRACKING_FINALIZER]
        del updated.metadata.finalizers[:]
        updated.metadata.finalizers.extend(kept)
        try:
            await client.update(updated)
            return
        except errors.NotFound:
            return
        except errors.Conflict:
            try:
                current = await client.get(core_pb2.Pod, pod.metadata.name,
                                           pod.metadata.namespace)
            except errors.NotFound:
                return
            if current.metadata.uid != pod.metadata.uid:
                return
    raise errors.Conflict(f"pod {pod.metadata.namespace}/{pod.metadata.name}: could not "
                          f"remove finalizer {JOB_TRACKING_FINALIZER}")
