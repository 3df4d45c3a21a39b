"""The watch cache: every object in memory, fed by one etcd watch over all keys.

List and Watch are served from here, so hundreds of watchers cost one etcd watch.
One watch over the whole keyspace (rather than one per resource, as DESIGN.md first
suggested) makes the cache's revision equal etcd's revision after every write, which
is what consistent lists and bookmarks need (docs/decisions/0002-one-etcd-watch.md).

Each event is serialized once; watchers receive pre-framed bytes that the Watch
handler concatenates into one WatchResponse, so fan-out costs a queue append per
watcher rather than a protobuf serialization per watcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from google.protobuf.message import Message

from apiserver import storage
from apiserver.codec import REGISTRY_PREFIX, split_key, with_resource_version
from skiff.api import kinds
from skiff.api.meta import meta
from skiff.api.selectors import FieldSelector, LabelSelector
from skiff.api.v1 import service_pb2
from skiff.client.backoff import exponential_delay

log = logging.getLogger(__name__)

MAX_PENDING_FRAMES = 100_000
# Watch sends the event loop may spend on, per second, over all watchers. A send costs the
# loop about as much whether it carries one event or a hundred, so when every write goes
# to a thousand watchers, sending each event as it came left the apiserver 83 creates/s
# (bench/apiserver_flood.py). Past this rate a watcher's events wait for their turn and go
# out together (450 creates/s); below it, as with the few dozen watchers of a small
# cluster, every event goes out at once.
WATCH_SENDS_PER_SECOND = 5_000
WATCH_SEND_BURST = 500
ADDED, MODIFIED, DELETED, BOOKMARK = "ADDED", "MODIFIED", "DELETED", "BOOKMARK"


class Expired(Exception):
    """A watch asked to resume from a version the cache no longer has."""


class TooNew(Exception):
    """A request named a version this apiserver has not seen yet."""


class Entry:
    """One object as the cache keeps it: serialized for sending, parsed (once, when first
    needed) for filtering. Most writes are never filtered, so most are never parsed."""

    __slots__ = ("_frames", "_obj", "_parse", "data", "deleted", "namespace", "revision")

    def __init__(self, parse: Callable[[bytes], Message], namespace: str, data: bytes,
                 revision: int, deleted: bool = False) -> None:
        self._parse = parse
        self._obj: Message | None = None
        self._frames: dict[str, bytes] = {}
        self.namespace = namespace
        self.data = data  # resourceVersion included
        self.revision = revision
        self.deleted = deleted

    @property
    def obj(self) -> Message:
        """The parsed object; shared: never mutate it."""
        if self._obj is None:
            self._obj = self._parse(self.data)
        return self._obj

    def frame(self, event_type: str, type_url: str) -> bytes:
        """This entry as one `events` element of a WatchResponse, framed on the wire."""
        cached = self._frames.get(event_type)
        if cached is None:
            event = service_pb2.WatchEvent(type=event_type, resource_version=str(self.revision))
            event.object.type_url = type_url
            event.object.value = self.data
            body = event.SerializeToString()
            cached = self._frames[event_type] = b"\x0a" + _varint(len(body)) + body
        return cached


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def bookmark_frame(revision: int) -> bytes:
    body = service_pb2.WatchEvent(type=BOOKMARK, resource_version=str(revision))
    data = body.SerializeToString()
    return b"\x0a" + _varint(len(data)) + data


@dataclass
class Filter:
    namespace: str
    labels: LabelSelector
    fields: FieldSelector
    getters: dict[str, Callable[[Message], str]]

    def matches(self, entry: Entry) -> bool:
        if self.namespace and entry.namespace != self.namespace:
            return False
        if not self.labels.is_empty() and not self.labels.matches(
                meta(entry.obj).labels):
            return False
        if self.fields.is_empty():
            return True
        obj = entry.obj
        return self.fields.matches(lambda path: self.getters[path](obj))


class SendBudget:
    """The watchers' shared rate of sends: a token bucket where each send reserves a token
    and waits until it is due (a reservation, as Go's rate.Limiter.Reserve)."""

    def __init__(self, rate: float = WATCH_SENDS_PER_SECOND,
                 burst: float = WATCH_SEND_BURST) -> None:
        self.rate = rate  # 0: no limit
        self.burst = burst
        self.tokens = burst
        self.updated = 0.0

    def reserve(self, now: float) -> float:
        """Takes a send's token; returns how long to wait for it."""
        if self.rate <= 0:
            return 0.0
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class Watcher:
    """One client's watch: a queue of frames, closed when the client is too slow."""

    def __init__(self, filter: Filter, bookmarks: bool, budget: SendBudget | None = None
                 ) -> None:
        self.filter = filter
        self.budget = budget or SendBudget(rate=0)
        self.bookmarks = bookmarks
        self.frames: deque[bytes] = deque()
        self.ready = asyncio.Event()
        self.closed = False
        self.sent_since_bookmark = False

    def push(self, frame: bytes) -> None:
        if self.closed:
            return
        if len(self.frames) >= MAX_PENDING_FRAMES:
            # A watcher this far behind would hold memory without bound; end its
            # stream so it resumes from its last version (or relists).
            self.closed = True
        else:
            self.frames.append(frame)
            self.sent_since_bookmark = True
        self.ready.set()

    def close(self) -> None:
        self.closed = True
        self.ready.set()

    async def next_batch(self) -> bytes | None:
        """Every frame waiting, as one WatchResponse; None when the watch is over."""
        while not self.frames:
            if self.closed:
                return None
            self.ready.clear()
            await self.ready.wait()
        wait = self.budget.reserve(asyncio.get_running_loop().time())
        if wait > 0:
            await asyncio.sleep(wait)  # what arrives meanwhile goes in the same batch
        if self.closed and not self.frames:
            return None
        batch = b"".join(self.frames)
        self.frames.clear()
        return batch


class KindCache:
    def __init__(self, kind: kinds.Kind, history: int) -> None:
        self.kind = kind
        self.history_size = history
        self.type_url = kind.type_url
        self.parse = kind.message.FromString
        self.items: dict[str, Entry] = {}
        self.history: deque[tuple[str, Entry, Entry | None]] = deque()
        self.oldest = 0  # a watch may resume from any revision >= this
        self.watchers: set[Watcher] = set()

    def reset(self, revision: int) -> None:
        self.items.clear()
        self.history.clear()
        self.oldest = revision
        for w in self.watchers:
            w.close()
        self.watchers.clear()

    def apply(self, key: str, entry: Entry) -> None:
        old = self.items.get(key)
        if entry.deleted:
            if old is None:
                return
            del self.items[key]
            event_type = DELETED
        else:
            self.items[key] = entry
            event_type = MODIFIED if old is not None else ADDED
        self.history.append((event_type, entry, old))
        if len(self.history) > self.history_size:
            _, dropped, _ = self.history.popleft()
            self.oldest = dropped.revision
        for watcher in self.watchers:
            self._send(watcher, event_type, entry, old)

    def _send(self, watcher: Watcher, event_type: str, entry: Entry, old: Entry | None) -> None:
        f = watcher.filter
        now = f.matches(entry)
        before = old is not None and f.matches(old)
        # As in Kubernetes, an object that starts or stops matching a filtered watch
        # appears to that watcher as added or deleted.
        if event_type == DELETED:
            if before:
                watcher.push(entry.frame(DELETED, self.type_url))
        elif now and before:
            watcher.push(entry.frame(MODIFIED, self.type_url))
        elif now:
            watcher.push(entry.frame(ADDED, self.type_url))
        elif before:
            watcher.push(entry.frame(DELETED, self.type_url))

    def list(self, f: Filter) -> list[Entry]:
        items: Iterable[Entry] = self.items.values()
        return [e for e in items if f.matches(e)]


class WatchCache:
    def __init__(self, store: storage.Store, *, history: int = 10_000,
                 bookmark_interval: float = 5.0) -> None:
        self.store = store
        self.revision = 0
        self.kinds = {k.kind: KindCache(k, history) for k in kinds.KINDS}
        self._by_plural = {k.plural: self.kinds[k.kind] for k in kinds.KINDS}
        self._advanced = asyncio.Condition()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._bookmarks: asyncio.Task[None] | None = None
        self._bookmark_interval = bookmark_interval
        self.send_budget = SendBudget()

    # ---- lifecycle ----

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="watch-cache")
        self._bookmarks = asyncio.create_task(self._send_bookmarks(), name="bookmarks")

    async def stop(self) -> None:
        for task in (self._task, self._bookmarks):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for kc in self.kinds.values():
            for w in kc.watchers:
                w.close()

    async def wait_ready(self, timeout: float) -> None:
        await asyncio.wait_for(self._ready.wait(), timeout)

    async def _run(self) -> None:
        failures = 0  # in a row, since the watch last delivered
        need_list = True
        while True:
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                async for batch in self.store.watch_all(self.revision + 1):
                    await self._apply(batch)
                    failures = 0
            except storage.Compacted as err:
                log.warning("watch cache fell behind compaction (%s); relisting", err)
                need_list = True
            except storage.StorageError as err:
                failures += 1
                delay = exponential_delay(failures, 0.1, 2.0)
                log.warning("etcd watch broke (%s); retrying in %.1fs", err, delay)
                await asyncio.sleep(delay)

    async def _relist(self) -> None:
        kvs, revision = await self.store.list_prefix(REGISTRY_PREFIX)
        for kc in self.kinds.values():
            kc.reset(revision)
        for kv in kvs:
            self._apply_kv(kv, deleted=False)
        await self._advance(revision)
        self._ready.set()
        log.info("watch cache listed %d objects at revision %d", len(kvs), revision)

    def _apply_kv(self, kv: storage.KeyValue, deleted: bool) -> None:
        parsed = split_key(kv.key)
        if parsed is None:
            return
        plural, key = parsed
        kc = self._by_plural.get(plural)
        if kc is None:
            return
        if deleted:
            old = kc.items.get(key)
            if old is None:
                return
            # The DELETED event carries the last state, at the deletion's revision.
            data = with_resource_version(old.data, kv.mod_revision)
            kc.apply(key, Entry(kc.parse, old.namespace, data, kv.mod_revision, deleted=True))
            return
        data = with_resource_version(kv.value, kv.mod_revision)
        namespace = key.partition("/")[0] if kc.kind.namespaced else ""
        kc.apply(key, Entry(kc.parse, namespace, data, kv.mod_revision))

    async def _apply(self, batch: storage.WatchBatch) -> None:
        revision = batch.revision
        for event in batch.events:
            try:
                self._apply_kv(event.kv, event.deleted)
            except Exception:  # one undecodable value must not stop the cache
                log.exception("watch cache: cannot apply %s", event.kv.key)
            revision = max(revision, event.kv.mod_revision)
        await self._advance(revision)

    async def _advance(self, revision: int) -> None:
        if revision <= self.revision:
            return
        self.revision = revision
        async with self._advanced:
            self._advanced.notify_all()

    async def wait_for(self, revision: int, timeout: float = 5.0) -> None:
        """Returns once the cache has seen `revision`: what makes List consistent."""
        if self.revision >= revision:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with self._advanced:
            while self.revision < revision:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TooNew(f"the watch cache is at revision {self.revision}, behind "
                                 f"{revision}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._advanced.wait(), remaining)

    # ---- serving ----

    def list(self, kind: str, f: Filter) -> tuple[list[Entry], int]:
        return self.kinds[kind].list(f), self.revision

    def watch(self, kind: str, f: Filter, resource_version: int | None,
              bookmarks: bool) -> Watcher:
        """Registers a watcher; replays history after `resource_version`, or the current
        state as ADDED events when it is None. Raises Expired if history is gone."""
        kc = self.kinds[kind]
        watcher = Watcher(f, bookmarks, self.send_budget)
        if resource_version is None:
            for entry in kc.list(f):
                watcher.push(entry.frame(ADDED, kc.type_url))
        else:
            if resource_version < kc.oldest:
                raise Expired(f"too old resource version: {resource_version} (oldest "
                              f"available is {kc.oldest}); the watch expired: relist")
            for event_type, entry, old in kc.history:
                if entry.revision > resource_version:
                    kc._send(watcher, event_type, entry, old)
        kc.watchers.add(watcher)
        return watcher

    def unwatch(self, kind: str, watcher: Watcher) -> None:
        self.kinds[kind].watchers.discard(watcher)
        watcher.close()

    async def _send_bookmarks(self) -> None:
        # Idle watchers learn the current revision, so that when they reconnect they
        # resume from a recent version instead of one that history no longer holds.
        while True:
            await asyncio.sleep(self._bookmark_interval)
            frame = bookmark_frame(self.revision)
            for kc in self.kinds.values():
                for w in kc.watchers:
                    if w.bookmarks and not w.sent_since_bookmark:
                        w.push(frame)
                    w.sent_since_bookmark = False
