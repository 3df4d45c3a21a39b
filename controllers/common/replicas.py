"""What workload controllers add to the pod facts of `skiff.api.pods`: when a ready pod
counts as available, and which pods to remove first when there are too many."""

from __future__ import annotations

from datetime import datetime, timedelta

from skiff.api.pods import PENDING, RUNNING, UNKNOWN, condition, is_ready
from skiff.api.v1 import core_pb2

__all__ = ["deletion_order", "is_available"]

_PHASE_RANK = {PENDING: 0, UNKNOWN: 1, RUNNING: 2}


def is_available(pod: core_pb2.Pod, min_ready_seconds: int, now: datetime) -> bool:
    """Ready for at least `min_ready_seconds` (by the Ready condition's transition time)."""
    ready = condition(pod, "Ready")
    if ready is None or ready.status != "True":
        return False
    if min_ready_seconds <= 0:
        return True
    if not ready.HasField("last_transition_time"):
        return False
    since = ready.last_transition_time.ToDatetime(tzinfo=now.tzinfo)
    return since + timedelta(seconds=min_ready_seconds) <= now


def deletion_order(pod: core_pb2.Pod) -> tuple[int, int, int, float, int, float]:
    """Sort key putting first the pods it costs least to lose, as Kubernetes does: not yet
    scheduled, then Pending, Unknown, Running; not ready before ready; ready for less time
    before ready for longer; more restarts first; newer before older."""
    ready = condition(pod, "Ready")
    ready_now = is_ready(pod)
    ready_since = (ready.last_transition_time.seconds + ready.last_transition_time.nanos / 1e9
                   if ready_now and ready is not None else 0.0)
    restarts = sum(s.restart_count for s in pod.status.container_statuses)
    created = pod.metadata.creation_timestamp
    return (1 if pod.spec.node_name else 0,
            _PHASE_RANK.get(pod.status.phase, 0),
            1 if ready_now else 0,
            -ready_since,  # the more recently ready, the sooner
            -restarts,
            -(created.seconds + created.nanos / 1e9))
