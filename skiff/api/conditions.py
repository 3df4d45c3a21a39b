"""Conditions, as every Kubernetes status carries them: one entry per type, whose
lastTransitionTime moves only when its status does.

Pods, nodes, deployments and jobs all keep a repeated field of conditions with the same
shape; these helpers serve every one of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

__all__ = ["find", "is_true", "set_condition", "stamp_transition"]


class Condition(Protocol):
    type: str
    status: str
    reason: str
    message: str

    @property
    def last_transition_time(self) -> Timestamp: ...


C = TypeVar("C", bound=Condition)
C_co = TypeVar("C_co", bound=Condition, covariant=True)


class Conditions(Iterable[C_co], Protocol[C_co]):
    """A repeated condition field (`pod.status.conditions`, `node.status.conditions`)."""

    def add(self, **kwargs: str) -> C_co: ...


def find(conditions: Iterable[C], type_: str) -> C | None:
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: Iterable[C], type_: str) -> bool:
    found = find(conditions, type_)
    return found is not None and found.status == "True"


def set_condition(conditions: Conditions[C], type_: str, status: str, now: datetime, *,
                  reason: str = "", message: str = "") -> tuple[C, bool]:
    """Sets the condition of `type_` to status, reason and message (adding it when
    missing), stamping lastTransitionTime with `now` only when the status changes or was
    never stamped. Returns the condition and whether anything changed."""
    cond = find(conditions, type_)
    if cond is None:
        cond = conditions.add(type=type_)
    before = (cond.status, cond.reason, cond.message)
    if cond.status != status or not cond.last_transition_time.seconds:
        cond.last_transition_time.FromDatetime(now)
    cond.status, cond.reason, cond.message = status, reason, message
    return cond, before != (status, reason, message)


def stamp_transition(cond: Condition, previous: Condition | None, now: datetime) -> None:
    """For a condition built afresh: it keeps `previous`'s lastTransitionTime when its
    status is the same (and was stamped), else it transitions `now`."""
    if (previous is not None and previous.status == cond.status
            and previous.last_transition_time.seconds):
        cond.last_transition_time.CopyFrom(previous.last_transition_time)
    else:
        cond.last_transition_time.FromDatetime(now)
