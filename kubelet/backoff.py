"""Per-key exponential back-off in time, as the kubelet's crash-loop and image-pull
back-offs: 10 s doubling to 300 s; a key left alone for long enough starts over.
"""

from __future__ import annotations

from dataclasses import dataclass

from skiff.client.clock import Clock, RealClock


@dataclass
class _Entry:
    delay: float
    last: float  # when the delay was last raised


class Backoff:
    def __init__(self, initial: float = 10.0, maximum: float = 300.0, *,
                 clock: Clock | None = None) -> None:
        self.initial = initial
        self.maximum = maximum
        self.clock = clock or RealClock()
        self._entries: dict[str, _Entry] = {}

    def _now(self) -> float:
        # Wall-clock seconds: delays are measured from container finish times, which the
        # runtime reports as unix times.
        return self.clock.wall().timestamp()

    def next(self, key: str) -> float:
        """Records a failure of `key` and returns the delay before its next try."""
        now = self._now()
        entry = self._entries.get(key)
        # Quiet for twice the longest delay: the trouble is over, start from the bottom.
        if entry is None or now - entry.last > 2 * self.maximum:
            entry = self._entries[key] = _Entry(self.initial, now)
        else:
            entry.delay = min(entry.delay * 2, self.maximum)
            entry.last = now
        return entry.delay

    def remaining(self, key: str) -> float:
        """Seconds until `key` may be tried again (0 when it may now)."""
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        return max(0.0, entry.last + entry.delay - self._now())

    def remaining_since(self, key: str, since: float) -> float:
        """Seconds until `key` may be tried again, counting its current delay from `since`
        (for crash loops: from when the container last finished), 0 when it may now."""
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        return max(0.0, since + entry.delay - self._now())

    def reset(self, key: str) -> None:
        self._entries.pop(key, None)

    def forget_prefix(self, prefix: str) -> None:
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]
