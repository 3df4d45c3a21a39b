"""Recording Events about objects, as client-go's ``tools/record`` does.

``EventRecorder.event(obj, type, reason, message)`` returns at once: the event is queued
and a background task writes it. Before writing, events are correlated (client-go's
``EventCorrelator``):

* a spam filter (a token bucket per source and involved object: 25 at once, then one
  every 5 minutes) drops floods from one component about one object;
* repeats fold: an event equal to a recent one in involved object, type, reason,
  message and source updates that Event object's ``count`` and ``lastTimestamp``
  instead of creating another. The recent ones are kept in a bounded LRU cache. When
  the update fails because the object is gone (Events expire) the series is created
  again under its name; on a Conflict (someone else wrote it) a new series starts.

Events are best effort: when the apiserver is unreachable for long, or the queue is
full, they are dropped (and logged) rather than slowing the caller down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from google.protobuf.message import Message

from skiff.api import kinds
from skiff.api.meta import meta
from skiff.api.v1 import core_pb2, meta_pb2
from skiff.client import errors
from skiff.client.backoff import exponential_delay
from skiff.client.client import Client
from skiff.client.clock import Clock, RealClock

__all__ = ["NORMAL", "WARNING", "EventRecorder", "FakeRecorder", "Recorder"]

log = logging.getLogger(__name__)

NORMAL = "Normal"
WARNING = "Warning"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_WRITE_RETRIES = 4
_RETRY_DELAY = 0.5


class Recorder(Protocol):
    """What components need to record events; tests pass a ``FakeRecorder``."""

    def event(self, obj: Message | meta_pb2.ObjectReference, type: str, reason: str,
              message: str) -> None: ...


def object_reference(obj: Message | meta_pb2.ObjectReference) -> meta_pb2.ObjectReference:
    """The ObjectReference of an object (kind and apiVersion from the kind table)."""
    if isinstance(obj, meta_pb2.ObjectReference):
        ref = meta_pb2.ObjectReference()
        ref.CopyFrom(obj)
        return ref
    kind = kinds.by_message(obj)
    m = meta(obj)
    return meta_pb2.ObjectReference(
        kind=kind.kind, api_version=kind.api_version, namespace=m.namespace,
        name=m.name, uid=m.uid, resource_version=m.resource_version)


# What makes two events "the same" for folding: client-go's eventLogger key. The
# involved object's resourceVersion is left out on purpose: it changes with every
# write of the object, and a repeat about a newer version is still a repeat.
_Key = tuple[str, ...]


def _fold_key(ref: meta_pb2.ObjectReference, source: core_pb2.EventSource, type: str,
              reason: str, message: str) -> _Key:
    return (source.component, source.host, ref.kind, ref.namespace, ref.name, ref.uid,
            ref.api_version, ref.field_path, type, reason, message)


def _spam_key(ref: meta_pb2.ObjectReference, source: core_pb2.EventSource) -> _Key:
    return (source.component, source.host, ref.kind, ref.namespace, ref.name, ref.uid,
            ref.api_version)


@dataclass
class _Pending:
    key: _Key
    ref: meta_pb2.ObjectReference
    type: str
    reason: str
    message: str
    first: datetime
    last: datetime
    count: int = 1


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class _SpamFilter:
    """Token bucket per source and object (client-go's EventSourceObjectSpamFilter)."""

    burst: int
    refill_seconds: float
    clock: Clock
    max_entries: int = 4096
    _buckets: OrderedDict[_Key, _Bucket] = field(default_factory=OrderedDict)

    def allow(self, key: _Key) -> bool:
        now = self.clock.now()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            if len(self._buckets) > self.max_entries:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(float(self.burst),
                                bucket.tokens + (now - bucket.updated) / self.refill_seconds)
            bucket.updated = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True


class EventRecorder:
    """Records Events for `component` (on `host`) through the apiserver.

    ``event`` must be called on the event loop thread (it starts the writer task on
    first use). ``flush`` waits until everything recorded so far is written or dropped;
    ``close`` flushes and stops the writer.
    """

    def __init__(self, client: Client, component: str, host: str = "", *,
                 clock: Clock | None = None, cache_size: int = 4096,
                 max_queue: int = 1000, spam_burst: int | None = 25,
                 spam_refill_seconds: float = 300.0) -> None:
        self.client = client
        self.source = core_pb2.EventSource(component=component, host=host)
        self._clock: Clock = clock if clock is not None else RealClock()
        self._cache: OrderedDict[_Key, core_pb2.Event] = OrderedDict()
        self._cache_size = cache_size
        self._max_queue = max_queue
        self._spam = (_SpamFilter(spam_burst, spam_refill_seconds, self._clock)
                      if spam_burst else None)
        self._queue: deque[_Pending] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._last_nanos = 0

    # ---- recording ----

    def event(self, obj: Message | meta_pb2.ObjectReference, type: str, reason: str,
              message: str) -> None:
        """Queues an event about `obj` (a message with metadata, or a reference).
        `type` is "Normal" or "Warning"; `reason` is a short CamelCase word."""
        if type not in (NORMAL, WARNING):
            raise ValueError(f'event type must be "Normal" or "Warning", got {type!r}')
        if self._closed:
            log.warning("event recorder closed; dropping event %s %s", reason, message)
            return
        ref = object_reference(obj)
        if self._spam is not None and not self._spam.allow(_spam_key(ref, self.source)):
            log.debug("event spam filter dropped %s about %s/%s", reason, ref.namespace,
                      ref.name)
            return
        if len(self._queue) >= self._max_queue:
            log.warning("event queue full (%d); dropping %s about %s/%s", self._max_queue,
                        reason, ref.namespace, ref.name)
            return
        now = self._clock.wall()
        self._queue.append(_Pending(_fold_key(ref, self.source, type, reason, message), ref,
                                    type, reason, message, now, now))
        self._idle.clear()
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"event-recorder-{self.source.component}")

    async def flush(self) -> None:
        """Waits until every event recorded so far has been written (or dropped)."""
        if self._task is None or self._task.done():
            return
        await self._idle.wait()

    async def close(self, timeout: float = 5.0) -> None:
        """Flushes (for at most `timeout` seconds), then stops the writer."""
        self._closed = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), timeout)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ---- writing ----

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                # Repeats queued meanwhile fold into one write: a burst of the same
                # event costs one request, not one per occurrence.
                batch: OrderedDict[_Key, _Pending] = OrderedDict()
                while self._queue:
                    item = self._queue.popleft()
                    folded = batch.get(item.key)
                    if folded is None:
                        batch[item.key] = item
                    else:
                        folded.count += item.count
                        folded.last = item.last
                for pending in batch.values():
                    try:
                        await self._write(pending)
                    except Exception:
                        log.exception("could not write event %s about %s/%s",
                                      pending.reason, pending.ref.namespace,
                                      pending.ref.name)
            self._idle.set()

    async def _write(self, pending: _Pending) -> None:
        cached = self._cache.get(pending.key)
        if cached is not None:
            event = core_pb2.Event()
            event.CopyFrom(cached)
            event.count += pending.count
            event.last_timestamp.FromDatetime(pending.last)
            try:
                written = await self._retrying(lambda: self.client.update(event))
            except errors.NotFound:
                # Expired or deleted: the series goes on under the same name.
                event.metadata.resource_version = ""
                written = await self._create(event)
            except errors.Conflict:
                # Someone else wrote it: start a series of our own.
                written = await self._create(self._new_event(pending))
        else:
            written = await self._create(self._new_event(pending))
        self._remember(pending.key, written)

    async def _create(self, event: core_pb2.Event) -> core_pb2.Event:
        for _ in range(3):
            try:
                return await self._retrying(lambda: self.client.create(event))
            except errors.AlreadyExists:
                # A retried create that had landed, or (rarely) a name taken: the
                # object now exists under this name either way if it is ours.
                try:
                    existing = await self.client.get(core_pb2.Event, event.metadata.name,
                                                     event.metadata.namespace)
                except errors.NotFound:
                    continue
                if (existing.source == event.source
                        and existing.involved_object.uid == event.involved_object.uid
                        and existing.reason == event.reason):
                    return existing
                event.metadata.name = self._name(event.involved_object.name)
        raise errors.AlreadyExists(f'events "{event.metadata.name}" already exists')

    async def _retrying(self, call: Callable[[], Awaitable[core_pb2.Event]]
                        ) -> core_pb2.Event:
        for attempt in range(_WRITE_RETRIES):
            try:
                return await call()
            except (errors.Unavailable, errors.Timeout):
                # Safe to send again even if it was stored: an event's name is chosen
                # before the first send, and _create takes AlreadyExists for its own.
                if attempt == _WRITE_RETRIES - 1:
                    raise
                await self._clock.sleep(exponential_delay(attempt + 1, _RETRY_DELAY, math.inf))
        raise AssertionError("unreachable")

    def _new_event(self, pending: _Pending) -> core_pb2.Event:
        ref = pending.ref
        event = core_pb2.Event(
            involved_object=ref, reason=pending.reason, message=pending.message,
            source=self.source, count=pending.count, type=pending.type,
            reporting_component=self.source.component,
            reporting_instance=self.source.host)
        event.metadata.name = self._name(ref.name)
        # Events about cluster-scoped objects (nodes, namespaces) live in "default".
        event.metadata.namespace = ref.namespace or "default"
        event.first_timestamp.FromDatetime(pending.first)
        event.last_timestamp.FromDatetime(pending.last)
        return event

    def _name(self, involved_name: str) -> str:
        # Kubernetes' naming: "<involved name>.<unix nanoseconds in hex>". Strictly
        # increasing per recorder, so two events in one clock tick get distinct names.
        delta = self._clock.wall() - _EPOCH
        nanos = (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000
        nanos = max(nanos, self._last_nanos + 1)
        self._last_nanos = nanos
        return f"{involved_name}.{nanos:x}"

    def _remember(self, key: _Key, event: core_pb2.Event) -> None:
        self._cache[key] = event
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


class FakeRecorder:
    """A Recorder for unit tests: keeps ``"<type> <reason> <message>"`` strings."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.objects: list[meta_pb2.ObjectReference] = []

    def event(self, obj: Message | meta_pb2.ObjectReference, type: str, reason: str,
              message: str) -> None:
        self.events.append(f"{type} {reason} {message}")
        self.objects.append(object_reference(obj))
