"""The controller loop every Skiff controller uses: informers -> keys -> ``sync(key)``.

The contract (client-go's, "level driven, not edge driven"):

* Informer handlers only turn events into keys (``namespace/name``) with ``enqueue`` or
  ``enqueue_owner``; they never act. The work queue de-duplicates keys and never hands
  one key to two workers at once, so a burst of events for one object costs one sync.
* ``sync(key)`` reads the desired and actual state from the informers' caches (never by
  polling the apiserver), and makes the smallest set of writes that converges them. It
  must be correct however many events were missed, repeated or merged: it is told only
  *which* object to look at, never *what* happened. A key whose object is gone from the
  cache means "clean up what is left of it".
* If ``sync`` raises, the key is requeued with per-key exponential backoff. If it returns,
  the key's backoff is forgotten. To look again later without failing (e.g. a deadline),
  call ``enqueue_after``.
* ``run`` waits until every informer has synced (acting on a partial cache would create
  what already exists), then runs ``workers`` workers until cancelled, and shuts the
  queue down on the way out.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from google.protobuf.message import Message

from skiff.api.meta import meta
from skiff.client.client import KindLike, kind_of
from skiff.client.clock import Clock
from skiff.client.informer import Informer, object_key
from skiff.client.workqueue import RateLimiter, WorkQueue

__all__ = ["Controller", "controller_owner_key"]

log = logging.getLogger(__name__)


def controller_owner_key(obj: Message, owner_kind: KindLike) -> str | None:
    """The key of the object's managing controller of `owner_kind` (its ownerReference
    with controller=true), or None. Owners live in the object's namespace."""
    kind = kind_of(owner_kind).kind
    obj_meta = meta(obj)
    for ref in obj_meta.owner_references:
        if ref.controller and ref.kind == kind:
            return f"{obj_meta.namespace}/{ref.name}" if obj_meta.namespace else ref.name
    return None


class Controller(abc.ABC):
    """Base class: subclass, implement ``sync``, register handlers in ``__init__``.

    A minimal controller::

        class EchoController(Controller):
            def __init__(self, factory: SharedInformerFactory) -> None:
                self.pods = factory.informer(core_pb2.Pod)
                super().__init__("echo", informers=[self.pods])
                self.enqueue_from(self.pods)

            async def sync(self, key: str) -> None:
                pod = self.pods.store.get(key)
                ...
    """

    def __init__(self, name: str, *, informers: Sequence[Informer[Any]] = (),
                 workers: int = 1, clock: Clock | None = None,
                 rate_limiter: RateLimiter | None = None) -> None:
        if workers < 1:
            raise ValueError("a controller needs at least one worker")
        self.name = name
        self.workers = workers
        self.informers: list[Informer[Any]] = list(informers)
        self.queue = WorkQueue(name, clock=clock, rate_limiter=rate_limiter)

    @abc.abstractmethod
    async def sync(self, key: str) -> None:
        """Converge the object named by `key`; raise to be retried with backoff."""

    # ---- turning events into keys ----

    def enqueue(self, obj: Message) -> None:
        self.queue.add(object_key(obj))

    def enqueue_key(self, key: str) -> None:
        self.queue.add(key)

    def enqueue_after(self, obj_or_key: Message | str, seconds: float) -> None:
        key = obj_or_key if isinstance(obj_or_key, str) else object_key(obj_or_key)
        self.queue.add_after(key, seconds)

    def enqueue_owner(self, obj: Message, owner_kind: KindLike) -> None:
        """Enqueues the controller owner (of `owner_kind`) of `obj`, if it has one."""
        key = controller_owner_key(obj, owner_kind)
        if key is not None:
            self.queue.add(key)

    def enqueue_from(self, informer: Informer[Any]) -> None:
        """Enqueues every object of `informer` on add, update and delete, and waits for
        its sync before the workers start."""
        self._depend_on(informer)
        informer.add_handlers(on_add=self.enqueue,
                              on_update=lambda old, new: self.enqueue(new),
                              on_delete=self.enqueue)

    def enqueue_owners_from(self, informer: Informer[Any], owner_kind: KindLike) -> None:
        """Enqueues the controller owner of every object of `informer` that changes. On
        an update that moved the object to another owner, both owners are enqueued."""
        self._depend_on(informer)

        def on_update(old: Message, new: Message) -> None:
            old_key = controller_owner_key(old, owner_kind)
            new_key = controller_owner_key(new, owner_kind)
            for key in {old_key, new_key} - {None}:
                assert key is not None
                self.queue.add(key)

        informer.add_handlers(on_add=lambda obj: self.enqueue_owner(obj, owner_kind),
                              on_update=on_update,
                              on_delete=lambda obj: self.enqueue_owner(obj, owner_kind))

    def _depend_on(self, informer: Informer[Any]) -> None:
        if not any(i is informer for i in self.informers):
            self.informers.append(informer)

    # ---- running ----

    async def wait_for_sync(self) -> None:
        await asyncio.gather(*(i.wait_synced() for i in self.informers))

    async def run(self) -> None:
        """Waits for the informers, then runs the workers until cancelled."""
        try:
            log.info("controller %s: waiting for %d informer(s) to sync", self.name,
                     len(self.informers))
            await self.wait_for_sync()
            log.info("controller %s: started with %d worker(s)", self.name, self.workers)
            await self.queue.run_workers(self.workers, self.sync)
        finally:
            # Cancelled (or the queue was shut down): run_workers has already cancelled
            # and awaited its workers; refuse new keys so late handlers are no-ops.
            self.queue.shutdown()
            log.info("controller %s: stopped", self.name)
