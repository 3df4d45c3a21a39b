"""Exponential back-off, the one implementation every component uses: the kubelet's
crash-loop and image-pull back-offs, the DaemonSet's failed-pod back-off, the Job's pod
replacement delay, the scheduler queue's and the work queue's retries.

`exponential_delay` is the arithmetic; `Backoff` keeps it per key over an injectable
clock, as Kubernetes' flowcontrol.Backoff does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from skiff.client.clock import Clock, RealClock

__all__ = ["Backoff", "exponential_delay"]


def exponential_delay(failures: int, initial: float, maximum: float) -> float:
    """The wait after `failures` failures in a row: none for none, `initial` after the
    first, doubling with each next one, at most `maximum`."""
    if failures <= 0:
        return 0.0
    if initial <= 0:
        return 0.0
    delay = initial
    for _ in range(1, failures):
        delay *= 2
        if delay >= maximum:
            return maximum
    return min(delay, maximum)


@dataclass
class _Entry:
    failures: int
    last: float  # when the latest failure was recorded


class Backoff:
    """Per-key back-off: each `next(key)` records a failure and returns the delay before
    the key's next try (`initial`, doubling, at most `maximum`). A key quiet for twice
    the maximum starts over from `initial`, and is forgotten.

    `wall=True` measures on the clock's wall time (unix seconds) rather than its
    monotonic time, for delays counted from times the outside world reports, such as a
    container's finish time."""

    def __init__(self, initial: float, maximum: float, *, clock: Clock | None = None,
                 wall: bool = False) -> None:
        if initial < 0 or maximum < initial:
            raise ValueError("need 0 <= initial <= maximum")
        self.initial = initial
        self.maximum = maximum
        self.clock: Clock = clock or RealClock()
        self._now: Callable[[], float] = (
            (lambda: self.clock.wall().timestamp()) if wall else (lambda: self.clock.now()))
        self._entries: dict[str, _Entry] = {}

    def next(self, key: str) -> float:
        """Records a failure of `key`; returns the delay before its next try."""
        now = self._now()
        self._forget_quiet(now)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(0, now)
        entry.failures += 1
        entry.last = now
        return self.delay(key)

    def failures(self, key: str) -> int:
        entry = self._entries.get(key)
        return entry.failures if entry is not None else 0

    def delay(self, key: str) -> float:
        """The key's current delay (0 when it has no failures on record)."""
        return exponential_delay(self.failures(key), self.initial, self.maximum)

    def remaining(self, key: str) -> float:
        """Seconds until `key` may be tried again, counted from its latest failure (0 when
        it may now)."""
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        return self.remaining_since(key, entry.last)

    def remaining_since(self, key: str, since: float) -> float:
        """Seconds until `key` may be tried again, counting its current delay from `since`
        (on this back-off's time scale), 0 when it may now."""
        if key not in self._entries:
            return 0.0
        return max(0.0, since + self.delay(key) - self._now())

    def reset(self, key: str) -> None:
        self._entries.pop(key, None)

    def forget_prefix(self, prefix: str) -> None:
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]

    def _forget_quiet(self, now: float) -> None:
        quiet = [k for k, e in self._entries.items() if now - e.last > 2 * self.maximum]
        for key in quiet:
            del self._entries[key]
