"""Work queue for controllers, following client-go's util/workqueue semantics.

One ``WorkQueue`` combines client-go's three layers:

* the basic queue (``Type``): FIFO of string keys with de-duplication and the
  dirty/processing sets that guarantee a key is never handed to two workers at once;
* the delaying queue: ``add_after`` via a single timer task and a heap of ready times;
* the rate-limiting queue: ``add_rate_limited`` / ``forget`` / ``num_requeues`` backed
  by a per-key ``RateLimiter`` (exponential backoff by default).

Controllers normally just call ``add``/``add_after`` from their watch handlers and
``await queue.run_workers(n, sync)``.

All methods must be called from the event loop thread; the queue is not thread-safe.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from skiff.client.backoff import exponential_delay
from skiff.client.clock import Clock, RealClock, sleep_or_wake
from skiff.client.waiters import Waiters

__all__ = [
    "ItemExponentialFailureRateLimiter",
    "QueueShutDown",
    "RateLimiter",
    "WorkQueue",
]

log = logging.getLogger(__name__)


class QueueShutDown(Exception):
    """Raised by ``WorkQueue.get`` once the queue is shut down and has no items left."""


class RateLimiter(Protocol):
    """Decides how long a key should wait before being retried."""

    def when(self, key: str) -> float:
        """Record a failure of ``key`` and return the delay (seconds) before its retry."""
        ...

    def forget(self, key: str) -> None:
        """Stop tracking ``key`` (it succeeded); its next failure starts from scratch."""
        ...

    def num_requeues(self, key: str) -> int:
        """How many failures of ``key`` are currently being counted."""
        ...


class ItemExponentialFailureRateLimiter:
    """Per-key exponential backoff: ``base_delay * 2**failures``, capped at ``max_delay``
    (the kernel's ``exponential_delay``)."""

    def __init__(self, base_delay: float = 0.005, max_delay: float = 1000.0) -> None:
        if base_delay < 0 or max_delay < base_delay:
            raise ValueError("need 0 <= base_delay <= max_delay")
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._failures: dict[str, int] = {}

    def when(self, key: str) -> float:
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        return exponential_delay(failures, self.base_delay, self.max_delay)

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: str) -> int:
        return self._failures.get(key, 0)


class WorkQueue:
    """Asyncio work queue of string keys (client-go RateLimitingQueue semantics).

    Invariants (as in client-go):

    * ``_dirty`` holds every key that needs processing: those in ``_queue`` plus those
      re-added while being processed.
    * ``_processing`` holds keys handed out by ``get`` and not yet ``done``.
    * a key is in ``_queue`` at most once, and never while it is in ``_processing``;
      a dirty processing key is moved to ``_queue`` by ``done``.
    """

    def __init__(
        self,
        name: str = "",
        *,
        clock: Clock | None = None,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self.name = name
        self._clock: Clock = clock if clock is not None else RealClock()
        self._rate_limiter: RateLimiter = (
            rate_limiter if rate_limiter is not None else ItemExponentialFailureRateLimiter()
        )

        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._shutting_down = False
        # Futures of get() calls blocked on an empty queue, woken one per added key.
        self._getters = Waiters()
        # Futures of shutdown_with_drain() calls, resolved when nothing is left to do.
        self._drainers: list[asyncio.Future[None]] = []

        # Delaying layer. _waiting maps key -> its current ready time; heap entries whose
        # time no longer matches _waiting are stale (superseded by an earlier add_after,
        # or already fired) and are skipped. This gives "earliest add_after wins" without
        # a decrease-key heap operation.
        self._waiting: dict[str, float] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._timer_task: asyncio.Task[None] | None = None
        self._timer_wakeup = asyncio.Event()

    # ------------------------------------------------------------------ basic queue

    def add(self, key: str) -> None:
        """Mark ``key`` as needing processing (no-op if already pending or shut down)."""
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            # Re-queued by done(); queuing it now would let a second worker pick it up
            # while the first is still processing it.
            return
        self._queue.append(key)
        self._getters.wake_one()

    async def get(self) -> str:
        """Wait for a key and mark it as processing; the caller must call ``done(key)``.

        After ``shutdown`` remaining queued keys are still handed out; once the queue is
        empty, ``QueueShutDown`` is raised.
        """
        while not self._queue:
            if self._shutting_down:
                raise QueueShutDown(self.name)
            await self._getters.wait()
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: str) -> None:
        """Mark processing of ``key`` finished; re-queue it if it was added meanwhile."""
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._getters.wake_one()
        self._check_drained()

    def __len__(self) -> int:
        return len(self._queue)

    def len(self) -> int:
        """Number of keys waiting to be handed out (excludes processing and delayed)."""
        return len(self._queue)

    def shutting_down(self) -> bool:
        return self._shutting_down

    def shutdown(self) -> None:
        """Stop accepting keys; blocked ``get`` calls raise once the queue is empty."""
        self._shutting_down = True
        # Delayed keys would be ignored by add() anyway; stop the timer now.
        if self._timer_task is not None:
            self._timer_task.cancel()
            self._timer_task = None
        self._waiting.clear()
        self._heap.clear()
        self._getters.wake_all()
        self._check_drained()

    async def shutdown_with_drain(self) -> None:
        """``shutdown``, then wait until every queued and processing key is done."""
        self.shutdown()
        if self._queue or self._processing:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._drainers.append(fut)
            await fut

    def _check_drained(self) -> None:
        if self._shutting_down and not self._queue and not self._processing:
            for fut in self._drainers:
                if not fut.done():
                    fut.set_result(None)
            self._drainers.clear()

    # ------------------------------------------------------------------ delaying

    def add_after(self, key: str, seconds: float) -> None:
        """Add ``key`` after ``seconds``; if it is already waiting, the earlier time wins.

        Must be called with a running event loop (it starts the queue's timer task).
        """
        if self._shutting_down:
            return
        if seconds <= 0:
            self.add(key)
            return
        ready_at = self._clock.now() + seconds
        current = self._waiting.get(key)
        if current is not None and current <= ready_at:
            return
        self._waiting[key] = ready_at
        heapq.heappush(self._heap, (ready_at, next(self._seq), key))
        if self._timer_task is None or self._timer_task.done():
            self._timer_task = asyncio.get_running_loop().create_task(
                self._run_timer(), name=f"workqueue-timer-{self.name}"
            )
        # The timer may be sleeping until a later deadline; make it re-plan.
        self._timer_wakeup.set()

    def _fire_ready(self) -> None:
        """Add every waiting key whose time has come, and drop stale heap entries."""
        now = self._clock.now()
        while self._heap:
            ready_at, _, key = self._heap[0]
            if self._waiting.get(key) != ready_at:
                heapq.heappop(self._heap)  # stale
                continue
            if ready_at > now:
                return
            heapq.heappop(self._heap)
            del self._waiting[key]
            self.add(key)

    async def _run_timer(self) -> None:
        # One task per queue: sleep until the earliest ready time, or until add_after
        # signals that an earlier deadline arrived.
        while not self._shutting_down:
            self._fire_ready()
            self._timer_wakeup.clear()
            if not self._heap:
                await self._timer_wakeup.wait()
                continue
            delay = self._heap[0][0] - self._clock.now()
            await sleep_or_wake(self._clock, delay, self._timer_wakeup)

    # ------------------------------------------------------------------ rate limiting

    def add_rate_limited(self, key: str) -> None:
        """Add ``key`` after its backoff delay (and count one more failure for it)."""
        self.add_after(key, self._rate_limiter.when(key))

    def forget(self, key: str) -> None:
        """Reset ``key``'s backoff; call when it was processed successfully."""
        self._rate_limiter.forget(key)

    def num_requeues(self, key: str) -> int:
        return self._rate_limiter.num_requeues(key)

    # ------------------------------------------------------------------ workers

    async def run_workers(self, n: int, sync: Callable[[str], Awaitable[None]]) -> None:
        """Run ``n`` workers calling ``sync(key)`` until the queue is shut down.

        ``sync`` returning means the key is reconciled (its backoff is forgotten);
        ``sync`` raising means it must be retried later with backoff. If this coroutine
        is cancelled, the workers are cancelled too.
        """
        if n < 1:
            raise ValueError("need at least one worker")
        workers = [asyncio.ensure_future(self._worker(sync)) for _ in range(n)]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
            # Wait for cancelled workers so their done() calls run before we return.
            await asyncio.gather(*workers, return_exceptions=True)

    async def _worker(self, sync: Callable[[str], Awaitable[None]]) -> None:
        while True:
            try:
                key = await self.get()
            except QueueShutDown:
                return
            try:
                await sync(key)
            except Exception:
                log.exception(
                    "workqueue %r: sync of key %r failed; requeuing with backoff",
                    self.name,
                    key,
                )
                self.add_rate_limited(key)
            else:
                self.forget(key)
            finally:
                # Also on cancellation, so the key is not stuck in "processing".
                self.done(key)
