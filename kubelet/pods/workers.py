"""Pod workers: one serialized worker task per pod.

A worker runs its pod's sync once per wake, so the latest state always wins and one pod
is never synced twice at once. It wakes when told (`wake`: the pod or its containers
changed, a probe result did, an object it uses did), when the sync asked for it (a
back-off ends), and at least every RESYNC seconds; it ends when a sync says the pod is
done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from kubelet.runtime import RuntimeError_
from skiff.client import errors
from skiff.client.clock import Clock, sleep_or_wake

log = logging.getLogger(__name__)

RESYNC = 10.0
# How soon a sync that failed is tried again: the runtime or the apiserver failed, or
# something unexpected did.
RETRY_AFTER_ERROR = 2.0
RETRY_AFTER_BUG = 5.0

# A pod's sync: (seconds until it wants to sync again (None: at the resync), whether its
# worker is done).
SyncFn = Callable[[str], Awaitable[tuple[float | None, bool]]]


@dataclass
class _Worker:
    task: asyncio.Task[None]
    wake: asyncio.Event


class PodWorkers:
    def __init__(self, sync: SyncFn, *, clock: Clock,
                 describe: Callable[[str], str] = str) -> None:
        self._sync = sync
        self._clock = clock
        self._describe = describe  # a pod's uid as the logs name it
        self._workers: dict[str, _Worker] = {}

    def wake(self, uid: str) -> None:
        """The pod syncs soon (starting its worker if it has none)."""
        worker = self._workers.get(uid)
        if worker is None or worker.task.done():
            event = asyncio.Event()
            task = asyncio.create_task(self._work(uid, event), name=f"pod-{uid[:8]}")
            worker = self._workers[uid] = _Worker(task, event)
        worker.wake.set()

    def working(self, uid: str) -> bool:
        """The pod has a worker (it is not done)."""
        worker = self._workers.get(uid)
        return worker is not None and not worker.task.done()

    async def stop(self) -> None:
        for worker in self._workers.values():
            worker.task.cancel()
        for worker in self._workers.values():
            with contextlib.suppress(asyncio.CancelledError):
                await worker.task

    async def _work(self, uid: str, wake: asyncio.Event) -> None:
        timeout = 0.0
        while True:
            await sleep_or_wake(self._clock, timeout, wake)
            wake.clear()
            try:
                retry, done = await self._sync(uid)
            except (RuntimeError_, errors.ApiError) as err:
                log.warning("pod %s: sync failed: %s", self._describe(uid), err)
                retry, done = RETRY_AFTER_ERROR, False
            except Exception:
                log.exception("pod %s: sync failed", self._describe(uid))
                retry, done = RETRY_AFTER_BUG, False
            if done:
                self._workers.pop(uid, None)
                return
            timeout = min(retry if retry is not None else RESYNC, RESYNC)
