"""Expectations: what a controller has asked for and not yet seen in its cache.

After creating three pods, a ReplicaSet's next sync may run before the informer has
delivered them; counting pods then would create three more. So a controller records what
it expects (`expect`), the informer handlers tick the expectations off as the objects
arrive (`created`, `deleted`), and `sync` makes no new creations or deletions for a key
until its expectations are met, or have expired (5 minutes, as Kubernetes: a lost event
must not block a controller forever).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from skiff.client.clock import Clock, RealClock

__all__ = ["EXPECTATIONS_TIMEOUT", "Expectations"]

EXPECTATIONS_TIMEOUT = 300.0


@dataclass
class _Pending:
    creations: int
    deletions: set[str] = field(default_factory=set)  # keys of objects being deleted
    since: float = 0.0


class Expectations:
    def __init__(self, clock: Clock | None = None) -> None:
        self._clock: Clock = clock if clock is not None else RealClock()
        self._pending: dict[str, _Pending] = {}

    def expect(self, key: str, *, creations: int = 0, deletions: Iterable[str] = ()) -> None:
        """Replaces the expectations of controller `key`."""
        self._pending[key] = _Pending(creations, set(deletions), self._clock.now())

    def created(self, key: str, count: int = 1) -> None:
        """An object the controller created appeared (or its creation failed)."""
        pending = self._pending.get(key)
        if pending is not None:
            pending.creations = max(0, pending.creations - count)

    def deleted(self, key: str, object_key: str) -> None:
        """An object the controller deleted is gone (or its deletion failed)."""
        pending = self._pending.get(key)
        if pending is not None:
            pending.deletions.discard(object_key)

    def satisfied(self, key: str) -> bool:
        pending = self._pending.get(key)
        if pending is None:
            return True
        if pending.creations <= 0 and not pending.deletions:
            return True
        return self._clock.now() - pending.since > EXPECTATIONS_TIMEOUT

    def forget(self, key: str) -> None:
        self._pending.pop(key, None)
