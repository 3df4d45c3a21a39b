"""Facts about pods that controllers share: alive, ready, available, and which to remove
first when there are too many."""

from __future__ import annotations

from datetime import datetime, timedelta

from skiff.api.v1 import core_pb2

__all__ = ["condition", "deletion_order", "is_active", "is_available", "is_ready",
           "is_terminal"]

_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def is_terminal(pod: core_pb2.Pod) -> bool:
    return pod.status.phase in ("Succeeded", "Failed")


def is_active(pod: core_pb2.Pod) -> bool:
    """Counts towards a controller's replicas: not finished and not being deleted."""
    return not is_terminal(pod) and not pod.metadata.HasField("deletion_timestamp")


def condition(pod: core_pb2.Pod, type_: str) -> core_pb2.PodCondition | None:
    return next((c for c in pod.status.conditions if c.type == type_), None)


def is_ready(pod: core_pb2.Pod) -> bool:
    ready = condition(pod, "Ready")
    return ready is not None and ready.status == "True"


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
    is_ready_ = ready is not None and ready.status == "True"
    ready_since = (ready.last_transition_time.seconds + ready.last_transition_time.nanos / 1e9
                   if is_ready_ and ready is not None else 0.0)
    restarts = sum(s.restart_count for s in pod.status.container_statuses)
    created = pod.metadata.creation_timestamp
    return (1 if pod.spec.node_name else 0,
            _PHASE_RANK.get(pod.status.phase, 0),
            1 if is_ready_ else 0,
            -ready_since,  # the more recently ready, the sooner
            -restarts,
            -(created.seconds + created.nanos / 1e9))
