"""A pod's start that gives way to its stop: the cancellation points of a sync.

A sync that starts a pod can take long (a thousand containers, one after the other; an
image that takes minutes to come). A deletion that arrives meanwhile must not wait for
all of it: the syncer requests the stop (`StopRequest.request`), and the start gives up
at its next cancellation point, before its next action (`check`) or while it waits for
something slow (`race`), leaving the pod for its next sync, which stops it. Kubernetes'
pod workers do the same by cancelling the context of a sync when the pod is to terminate.

Actions themselves are never cut in half: a container is created and started, or not
created, so the stop that follows finds nothing half-done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

_T = TypeVar("_T")


class StartAbandoned(Exception):
    """The start gave up because the pod is to stop; its next sync stops it."""


class StopRequest:
    def __init__(self) -> None:
        self._requested = asyncio.Event()

    def request(self) -> None:
        self._requested.set()

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    def check(self) -> None:
        """A cancellation point: raises StartAbandoned once the stop is requested."""
        if self.requested:
            raise StartAbandoned()

    async def race(self, awaitable: Awaitable[_T]) -> _T:
        """Waits for `awaitable` unless the stop is requested first; then the wait is
        cancelled (what must outlive it, such as a pull other containers share, is
        shielded by its owner) and StartAbandoned raised. When both happen, the result
        wins: what was done is kept and the next cancellation point gives up."""
        self.check()
        task = asyncio.ensure_future(awaitable)
        stop = asyncio.ensure_future(self._requested.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            task.add_done_callback(_retrieve)
            raise
        finally:
            stop.cancel()
        if task.done():
            return task.result()
        task.cancel()
        task.add_done_callback(_retrieve)
        raise StartAbandoned()


def _retrieve(task: asyncio.Future[_T]) -> None:
    """Takes a cancelled wait's outcome, which no one else will."""
    if not task.cancelled():
        task.exception()


class StartingPods:
    """The stop request of each pod whose sync runs now (one at a time per pod, as the
    pod workers guarantee)."""

    def __init__(self) -> None:
        self._requests: dict[str, StopRequest] = {}

    def begin(self, uid: str) -> StopRequest:
        request = self._requests[uid] = StopRequest()
        return request

    def end(self, uid: str, request: StopRequest) -> None:
        if self._requests.get(uid) is request:
            del self._requests[uid]

    def stop(self, uid: str) -> None:
        """The pod is to stop: its sync under way, if any, gives up its start."""
        request = self._requests.get(uid)
        if request is not None:
            request.request()
