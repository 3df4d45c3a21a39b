"""Injectable clocks.

Controllers and queues take a ``Clock`` instead of calling ``asyncio.sleep`` /
``time.monotonic`` directly, so tests can drive time explicitly with ``FakeClock``
and never depend on real elapsed time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "FakeClock", "RealClock", "sleep_or_wake"]


class Clock(Protocol):
    """Source of time: monotonic seconds for scheduling, UTC wall time for stamping."""

    def now(self) -> float:
        """Monotonic seconds; only differences between values are meaningful."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the calling task for ``seconds`` of this clock's time."""
        ...

    def wall(self) -> datetime:
        """Current wall-clock time as a timezone-aware UTC datetime."""
        ...


class RealClock:
    """Clock backed by the running event loop."""

    def now(self) -> float:
        # Prefer the loop's clock so now() agrees with the deadlines asyncio.sleep uses;
        # fall back to time.monotonic() (the loop's default source) outside a loop.
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def wall(self) -> datetime:
        return datetime.now(UTC)


# How many times FakeClock yields to the event loop after waking a sleeper. A woken
# task typically needs several loop iterations to react (future -> task -> asyncio.wait
# callback -> awaiting task -> whatever it wakes in turn); 20 is comfortably more than
# the chains in this code base while still costing nothing measurable.
_SETTLE_ROUNDS = 20

_DEFAULT_WALL_START = datetime(2024, 1, 1, tzinfo=UTC)


class FakeClock:
    """Deterministic clock for tests: time moves only when ``advance`` is called.

    ``sleep`` parks the caller until ``advance`` moves time to or past its deadline.
    ``advance`` steps through the pending deadlines in order, setting ``now()`` to each
    one before waking its sleeper and letting the event loop run, so a woken task that
    immediately sleeps again (e.g. a timer loop) is woken again within the same advance
    if its new deadline is still inside the window.
    """

    def __init__(self, start: float = 0.0, wall_start: datetime = _DEFAULT_WALL_START) -> None:
        if wall_start.tzinfo is None:
            raise ValueError("wall_start must be timezone-aware")
        self._now = start
        self._start = start
        self._wall_start = wall_start
        # (deadline, seq, future); seq keeps equal deadlines in FIFO order and avoids
        # comparing futures.
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def wall(self) -> datetime:
        return self._wall_start + timedelta(seconds=self._now - self._start)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            # Still yield once, matching asyncio.sleep(0): callers may rely on sleep
            # being a scheduling point.
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        # If the sleeping task is cancelled the future is cancelled with it; advance()
        # skips done futures, so no explicit removal is needed.
        await fut

    def pending_sleepers(self) -> int:
        """Number of tasks currently parked in ``sleep`` (useful for test assertions)."""
        return sum(1 for _, _, fut in self._sleepers if not fut.done())

    async def settle(self) -> None:
        """Let runnable tasks run without moving time."""
        for _ in range(_SETTLE_ROUNDS):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking sleepers in deadline order."""
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go backwards")
        target = self._now + seconds
        # Tasks created just before advance() may not have reached their sleep() yet;
        # let them register so their deadlines are honoured in this advance.
        await self.settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            if fut.done():
                continue
            self._now = max(self._now, deadline)
            fut.set_result(None)
            await self.settle()
        self._now = target
        await self.settle()

    async def set_time(self, t: float) -> None:
        """Move time forward to absolute ``t`` (same wake-up semantics as ``advance``)."""
        await self.advance(t - self._now)


async def sleep_or_wake(clock: Clock, seconds: float, wake: asyncio.Event) -> bool:
    """Sleeps `seconds` of `clock`'s time, or less if `wake` is set first (at once if it is
    set already). Returns True when woken by the event. The one "wait for a timer or a
    signal" loop every queue and prober uses."""
    if wake.is_set():
        return True
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    waker = asyncio.ensure_future(wake.wait())
    try:
        await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeper.cancel()
        waker.cancel()
    return wake.is_set()
