"""Informers: a local, indexed cache of one kind, kept current by list + watch.

An ``Informer`` lists the objects it is interested in, then watches from the list's
resourceVersion, and calls its handlers for every change, as client-go's
``SharedIndexInformer`` (Reflector + DeltaFIFO + Indexer) does. What it promises:

* Handlers see a consistent stream. Whatever happens to the connection, the sequence
  of add/update/delete calls they receive, applied in order, yields exactly what the
  cache holds, and the cache converges on the apiserver's state.
* A dropped watch resumes from the last resourceVersion seen (bookmarks included, so an
  idle watch still moves forward); the apiserver replays what was missed. When that
  version is too old (``errors.Expired``), the informer lists again and delivers the
  difference between its cache and the new list: deletions for objects gone meanwhile
  (with the last state it knew), updates for changed ones, adds for new ones.
* Controllers never poll: they read ``informer.store`` and react to handlers.

Objects in the store and those passed to handlers are shared with every reader: treat
them as read-only, and copy (``CopyFrom``) before changing one to write it back.

Everything runs on the event loop: handlers are plain functions called from the
informer's task, so they must be quick (enqueue a key, nothing more).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, cast, overload

from google.protobuf.message import Message

from skiff.api import kinds
from skiff.api.meta import meta
from skiff.api.v1 import core_pb2
from skiff.client import errors
from skiff.client.backoff import exponential_delay
from skiff.client.client import KindLike, WatchEvent, kind_of
from skiff.client.clock import Clock, RealClock

__all__ = [
    "INDEX_LABEL",
    "INDEX_NAMESPACE",
    "INDEX_NODE_NAME",
    "INDEX_OWNER_UID",
    "HandlerRegistration",
    "IndexFunc",
    "Informer",
    "ListerWatcher",
    "SharedInformerFactory",
    "Store",
    "object_key",
    "split_key",
]

log = logging.getLogger(__name__)

T = TypeVar("T", bound=Message)
M = TypeVar("M", bound=Message)

IndexFunc = Callable[[Any], list[str]]
"""An index function: the index values of an object (none, one or many)."""

INDEX_NAMESPACE = "namespace"
INDEX_LABEL = "label"  # values are "key=value"
INDEX_NODE_NAME = "nodeName"  # pods' spec.nodeName
INDEX_OWNER_UID = "ownerUID"  # every uid in metadata.ownerReferences

# Re-watch backoff: quick enough that an apiserver restart costs a fraction of a second,
# capped so that a long outage does not turn into a flood of reconnects.
_BACKOFF_INITIAL = 0.2
_BACKOFF_MAX = 10.0
_BACKOFF_JITTER = 0.2


# --------------------------------------------------------------------------- keys


def object_key(obj: Message) -> str:
    """The cache and work-queue key of an object: ``namespace/name``, or ``name`` for
    cluster-scoped objects."""
    m = meta(obj)
    return f"{m.namespace}/{m.name}" if m.namespace else m.name


def split_key(key: str) -> tuple[str, str]:
    """``namespace/name`` -> (namespace, name); ``name`` -> ("", name)."""
    namespace, sep, name = key.partition("/")
    return (namespace, name) if sep else ("", key)


# --------------------------------------------------------------------------- store


def _index_namespace(obj: Message) -> list[str]:
    return [meta(obj).namespace]


def _index_labels(obj: Message) -> list[str]:
    return [f"{k}={v}" for k, v in meta(obj).labels.items()]


def _index_node_name(obj: Message) -> list[str]:
    if isinstance(obj, core_pb2.Pod) and obj.spec.node_name:
        return [obj.spec.node_name]
    return []


def _index_owner_uids(obj: Message) -> list[str]:
    return [ref.uid for ref in meta(obj).owner_references if ref.uid]


_DEFAULT_INDEXERS: dict[str, IndexFunc] = {
    INDEX_NAMESPACE: _index_namespace,
    INDEX_LABEL: _index_labels,
    INDEX_NODE_NAME: _index_node_name,
    INDEX_OWNER_UID: _index_owner_uids,
}


class Store(Generic[T]):
    """Objects by key, plus indexes: index name -> index value -> keys.

    Built-in indexes: ``namespace``, ``label`` (``key=value``), ``nodeName`` (pods),
    ``ownerUID``. More with ``add_indexer``. Only the informer writes to it.
    """

    def __init__(self) -> None:
        self._items: dict[str, T] = {}
        self._indexers: dict[str, IndexFunc] = dict(_DEFAULT_INDEXERS)
        self._indices: dict[str, dict[str, set[str]]] = {name: {} for name in self._indexers}

    # ---- reads ----

    def get(self, key: str) -> T | None:
        return self._items.get(key)

    def get_by_name(self, namespace: str, name: str) -> T | None:
        return self._items.get(f"{namespace}/{name}" if namespace else name)

    def list(self) -> list[T]:
        return list(self._items.values())

    def keys(self) -> builtins.list[str]:
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def by_index(self, index_name: str, value: str) -> builtins.list[T]:
        """Objects whose index function returned `value` (sorted by key, for stable
        iteration). Raises KeyError for an unknown index: a typo must not read as
        "no objects"."""
        return [self._items[k] for k in self.index_keys(index_name, value)]

    def index_keys(self, index_name: str, value: str) -> builtins.list[str]:
        index = self._indices.get(index_name)
        if index is None:
            raise KeyError(f"no index named {index_name!r} (have {sorted(self._indices)})")
        return sorted(index.get(value, ()))

    def index_values(self, index_name: str) -> builtins.list[str]:
        """Every value the index holds (e.g. every node that has pods)."""
        if index_name not in self._indices:
            raise KeyError(f"no index named {index_name!r}")
        return sorted(self._indices[index_name])

    def add_indexer(self, name: str, fn: IndexFunc) -> None:
        """Adds an index; objects already in the store are indexed at once."""
        if name in self._indexers:
            raise ValueError(f"an index named {name!r} exists already")
        self._indexers[name] = fn
        self._indices[name] = {}
        for key, obj in self._items.items():
            self._index_one(name, fn, key, obj)

    # ---- writes (the informer's) ----

    def _put(self, key: str, obj: T) -> T | None:
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        for name, fn in self._indexers.items():
            self._index_one(name, fn, key, obj)
        return old

    def _delete(self, key: str) -> T | None:
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def _index_one(self, name: str, fn: IndexFunc, key: str, obj: T) -> None:
        try:
            values = fn(obj)
        except Exception:  # a buggy custom indexer must not take the informer down
            log.exception("index %r failed on %s", name, key)
            return
        index = self._indices[name]
        for value in values:
            index.setdefault(value, set()).add(key)

    def _unindex(self, key: str, obj: T) -> None:
        # Index values are recomputed from the stored object, which nobody mutates.
        for name, fn in self._indexers.items():
            try:
                values = fn(obj)
            except Exception:
                continue
            index = self._indices[name]
            for value in values:
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]


# --------------------------------------------------------------------------- informer


class ListerWatcher(Protocol):
    """What an informer needs from a client (``skiff.client.client.Client`` has it)."""

    async def list(self, kind: kinds.Kind | str, namespace: str = "", *,
                   label_selector: str = "", field_selector: str = "",
                   resource_version: str = "") -> tuple[list[Message], str]: ...

    def watch(self, kind: KindLike, namespace: str = "", *, label_selector: str = "",
              field_selector: str = "", resource_version: str = "",
              bookmarks: bool = False) -> AsyncIterator[WatchEvent]: ...


@dataclass(eq=False)
class HandlerRegistration(Generic[T]):
    on_add: Callable[[T], object] | None
    on_update: Callable[[T, T], object] | None
    on_delete: Callable[[T], object] | None


class Informer(Generic[T]):
    """List + watch of one kind (optionally one namespace, label and field selector)
    into a ``Store``, calling handlers on every change. See the module docstring."""

    def __init__(self, client: ListerWatcher, kind: type[T] | kinds.Kind | str,
                 namespace: str = "", label_selector: str = "", field_selector: str = "",
                 resync: float | None = None, *, clock: Clock | None = None) -> None:
        self.client = client
        self.kind = kind_of(kind)
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync = resync
        self.store: Store[T] = Store()
        self._clock: Clock = clock if clock is not None else RealClock()
        self._handlers: list[HandlerRegistration[T]] = []
        self._synced = asyncio.Event()
        self._resource_version = ""
        self._task: asyncio.Task[None] | None = None
        self._watch_got_events = False
        self.relists = 0  # how many times it listed after the first (for logs and tests)

    def __repr__(self) -> str:
        return f"Informer({self.name})"

    @property
    def name(self) -> str:
        parts = [self.kind.plural]
        if self.namespace:
            parts.append(f"ns={self.namespace}")
        if self.label_selector:
            parts.append(f"labels={self.label_selector}")
        if self.field_selector:
            parts.append(f"fields={self.field_selector}")
        return ",".join(parts)

    @property
    def resource_version(self) -> str:
        """The last resourceVersion the cache reflects (list, event or bookmark)."""
        return self._resource_version

    # ---- handlers ----

    def add_handlers(self, on_add: Callable[[T], object] | None = None,
                     on_update: Callable[[T, T], object] | None = None,
                     on_delete: Callable[[T], object] | None = None
                     ) -> HandlerRegistration[T]:
        """Registers handlers. A handler added after objects are cached first gets an
        add for each of them, so late registrants see the same stream as early ones.
        ``on_delete`` receives the object's final state: the one its DELETED event
        carried, or, when the deletion was only found by a relist, the last state the
        informer knew."""
        reg = HandlerRegistration(on_add, on_update, on_delete)
        self._handlers.append(reg)
        if on_add is not None:
            for obj in self.store.list():
                self._call(on_add, obj)
        return reg

    def remove_handlers(self, registration: HandlerRegistration[T]) -> None:
        with contextlib.suppress(ValueError):
            self._handlers.remove(registration)

    def _call(self, fn: Callable[..., object], *args: T) -> None:
        try:
            fn(*args)
        except Exception:  # one broken handler must not stop the stream for the others
            log.exception("informer %s: handler %r failed", self.name, fn)

    def _on_add(self, obj: T) -> None:
        for reg in list(self._handlers):
            if reg.on_add is not None:
                self._call(reg.on_add, obj)

    def _on_update(self, old: T, new: T) -> None:
        for reg in list(self._handlers):
            if reg.on_update is not None:
                self._call(reg.on_update, old, new)

    def _on_delete(self, obj: T) -> None:
        for reg in list(self._handlers):
            if reg.on_delete is not None:
                self._call(reg.on_delete, obj)

    # ---- sync state ----

    def has_synced(self) -> bool:
        """True once the first list has been delivered to the handlers."""
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    # ---- lifecycle ----

    def start(self) -> asyncio.Task[None]:
        """Runs the informer in a named task (once; later calls return the same task)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self.run(), name=f"informer-{self.name}")
        return self._task

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        """List, then watch, until cancelled."""
        resync = None
        if self.resync:
            resync = asyncio.get_running_loop().create_task(
                self._resync_loop(self.resync), name=f"informer-resync-{self.name}")
        try:
            await self._list_and_watch()
        finally:
            if resync is not None:
                resync.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await resync

    async def _list_and_watch(self) -> None:
        need_list = True
        # As client-go's reflector: the first list takes whatever the apiserver's watch
        # cache holds ("0"), so informers start (and controllers with them) while etcd is
        # stalled; after Expired only a consistent list ("") can say what was missed.
        list_version = "0"
        failures = 0  # in a row, since the connection was last healthy
        while True:
            self._watch_got_events = False
            try:
                if need_list:
                    items, rv = await self.client.list(
                        self.kind, self.namespace, label_selector=self.label_selector,
                        field_selector=self.field_selector, resource_version=list_version)
                    self._replace(cast(list[T], items), rv)
                    need_list = False
                    failures = 0
                await self._watch()
                if self._watch_got_events:
                    continue  # the server ended a healthy stream: resume at once
                log.debug("informer %s: watch ended without events", self.name)
            except errors.Expired as err:
                # The apiserver no longer has history from our version: only a fresh
                # list can tell what we missed. No sleep: the list is the remedy.
                log.info("informer %s: relisting: %s", self.name, err.message)
                need_list, list_version = True, ""
                continue
            except errors.ApiError as err:
                # Unavailable (apiserver down or restarting) or a refusal: keep our
                # version and retry the same step after a pause.
                log.warning("informer %s: %s: %s; retrying", self.name,
                            type(err).__name__, err.message)
            except Exception:
                # A bug must not silently end the cache every controller relies on.
                log.exception("informer %s: unexpected error; retrying", self.name)
            # A connection healthy until now makes this a fresh failure.
            failures = 1 if self._watch_got_events else failures + 1
            delay = exponential_delay(failures, _BACKOFF_INITIAL, _BACKOFF_MAX)
            await self._clock.sleep(delay * (1 + _BACKOFF_JITTER * random.random()))

    async def _watch(self) -> None:
        """Watches from the current version until the stream ends or fails."""
        stream = self.client.watch(
            self.kind, self.namespace, label_selector=self.label_selector,
            field_selector=self.field_selector, resource_version=self._resource_version,
            bookmarks=True)
        # aclosing: cancelling the informer must end the gRPC call now, not at GC.
        async with contextlib.aclosing(cast(AsyncGenerator[WatchEvent, None], stream)):
            async for event in stream:
                self._watch_got_events = True
                self._apply(event)

    def _apply(self, event: WatchEvent) -> None:
        if event.resource_version:
            self._resource_version = event.resource_version
        obj = cast("T | None", event.object)
        if event.type == "BOOKMARK" or obj is None:
            return
        key = object_key(obj)
        if event.type == "DELETED":
            # The event carries the object's last state; deliver it only if we had
            # delivered the object, so handlers never see a delete without an add.
            if self.store._delete(key) is not None:
                self._on_delete(obj)
            return
        # ADDED and MODIFIED are treated alike: what matters is whether we knew it.
        old = self.store._put(key, obj)
        if old is None:
            self._on_add(obj)
        else:
            self._on_update(old, obj)

    def _replace(self, items: Iterable[T], resource_version: str) -> None:
        """Makes the store equal a fresh list, delivering the difference."""
        if self._synced.is_set():
            self.relists += 1
        fresh = {object_key(obj): obj for obj in items}
        for key in [k for k in self.store._items if k not in fresh]:
            gone = self.store._delete(key)
            if gone is not None:
                self._on_delete(gone)
        for key, obj in fresh.items():
            old = self.store._put(key, obj)
            if old is None:
                self._on_add(obj)
            elif meta(old).resource_version != meta(obj).resource_version:
                self._on_update(old, obj)
        self._resource_version = resource_version
        if not self._synced.is_set():
            log.info("informer %s: synced %d objects at version %s", self.name,
                     len(fresh), resource_version)
        self._synced.set()

    async def _resync_loop(self, period: float) -> None:
        # Periodic resync (client-go's resyncPeriod): an update(obj, obj) for every
        # cached object, so level-triggered controllers revisit everything now and then.
        while True:
            await self._clock.sleep(period)
            for obj in self.store.list():
                self._on_update(obj, obj)


# --------------------------------------------------------------------------- factory


class SharedInformerFactory:
    """One informer per (kind, namespace, label selector, field selector), so that
    controllers interested in the same objects share one watch and one cache."""

    def __init__(self, client: ListerWatcher, *, resync: float | None = None,
                 clock: Clock | None = None) -> None:
        self.client = client
        self.resync = resync
        self._clock = clock
        self._informers: dict[tuple[str, str, str, str], Informer[Any]] = {}
        self._tasks: dict[tuple[str, str, str, str], asyncio.Task[None]] = {}

    @overload
    def informer(self, kind: type[M], namespace: str = "", label_selector: str = "",
                 field_selector: str = "") -> Informer[M]: ...
    @overload
    def informer(self, kind: kinds.Kind | str, namespace: str = "", label_selector: str = "",
                 field_selector: str = "") -> Informer[Message]: ...

    def informer(self, kind: KindLike, namespace: str = "", label_selector: str = "",
                 field_selector: str = "") -> Informer[Any]:
        k = kind_of(kind)
        key = (k.kind, namespace if k.namespaced else "", label_selector, field_selector)
        found = self._informers.get(key)
        if found is None:
            found = self._informers[key] = Informer(
                self.client, k, key[1], label_selector, field_selector, self.resync,
                clock=self._clock)
        return found

    def informers(self) -> list[Informer[Any]]:
        return list(self._informers.values())

    def start_all(self) -> None:
        """Starts every informer not yet running (call again after asking for more)."""
        for key, informer in self._informers.items():
            task = self._tasks.get(key)
            if task is None or task.done():
                self._tasks[key] = informer.start()

    async def wait_for_sync(self, timeout: float | None = None) -> None:
        """Returns once every informer asked for so far has synced; TimeoutError if not
        within `timeout` seconds."""
        waits = [i.wait_synced() for i in self._informers.values()]
        async with asyncio.timeout(timeout):
            await asyncio.gather(*waits)

    async def stop_all(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
