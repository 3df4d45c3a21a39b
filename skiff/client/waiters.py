"""Tasks waiting their turn for an item of a queue, woken one at a time in arrival order.

Both of Skiff's asyncio queues (the controllers' work queue and the scheduler's pod queue)
park their consumers here. The subtle part lives in one place: a task woken for an item
and cancelled before it could take it passes the wake-up on, or the item would sit in the
queue while other consumers sleep.
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["Waiters"]


class Waiters:
    def __init__(self) -> None:
        self._futures: deque[asyncio.Future[None]] = deque()

    async def wait(self) -> None:
        """Returns when woken (the caller then checks its queue again)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._futures.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.wake_one()
            raise
        finally:
            if fut in self._futures:
                self._futures.remove(fut)

    def wake_one(self) -> None:
        while self._futures:
            fut = self._futures.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def wake_all(self) -> None:
        while self._futures:
            fut = self._futures.popleft()
            if not fut.done():
                fut.set_result(None)
