"""The generic registry: create, read, update and delete any kind in the store.

Every verb goes through the kind's Strategy for what differs between kinds (including
what a write allocates besides the object: a Service's cluster IP and node ports); the
registry itself knows no kind but the Pod binding and the namespace an object lives in.
Reads of many objects (List, Watch) come from the watch cache; so do reads of one that
accept any recent version (resourceVersion "0", as Kubernetes), which therefore go on
being served while etcd is stalled.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol, cast

from google.protobuf import timestamp_pb2
from google.protobuf.message import Message

from apiserver import codec, errors, storage
from apiserver.leases import LeaseManager
from apiserver.strategies import Settings, Strategy, for_kinds, now
from apiserver.watchcache import Entry, Filter, TooNew, WatchCache
from skiff.api import kinds
from skiff.api.conditions import set_condition
from skiff.api.limits import MAX_OBJECT_BYTES
from skiff.api.meta import generated_name
from skiff.api.meta import meta as meta_of
from skiff.api.selectors import SelectorError, parse_field_selector, parse_label_selector
from skiff.api.v1 import core_pb2

log = logging.getLogger(__name__)

_CONFLICT_RETRIES = 8


class _Typed(Protocol):
    """The type fields every kind's message has."""

    api_version: str
    kind: str


class _HasSpec(Protocol):
    @property
    def spec(self) -> Message: ...


def _set_type(obj: Message, kind: kinds.Kind) -> None:
    typed = cast(_Typed, obj)
    typed.api_version, typed.kind = kind.api_version, kind.kind


def _clone(obj: Message) -> Message:
    copy = type(obj)()
    copy.CopyFrom(obj)
    return copy


def _encode_stored(kind: kinds.Kind, obj: Message) -> bytes:
    """The stored form of a created or updated object, refused over MAX_OBJECT_BYTES (what
    etcd takes in one request, as in Kubernetes)."""
    data = codec.encode(obj)
    if len(data) > MAX_OBJECT_BYTES:
        raise errors.object_too_large(kind, meta_of(obj).name, len(data))
    return data


def _set_time(ts: timestamp_pb2.Timestamp, seconds: int) -> None:
    ts.seconds, ts.nanos = seconds, 0


class Registry:
    def __init__(self, store: storage.Store, cache: WatchCache,
                 service_cidr: str = "10.96.0.0/12", *,
                 strategies: Mapping[str, Strategy] | None = None) -> None:
        """A registry over `store`; `strategies` (by kind name) replace the built-in
        ones of their kinds."""
        self.store = store
        self.cache = cache
        self.leases = LeaseManager(store)
        self._strategies = for_kinds(Settings(service_cluster_ip_range=service_cidr))
        self._strategies.update(strategies or {})

    def strategy(self, kind: kinds.Kind) -> Strategy:
        return self._strategies[kind.kind]

    # ---- reads ----

    async def get(self, kind: kinds.Kind, namespace: str, name: str, *,
                  resource_version: str = "") -> Message:
        """The object as etcd has it now, or, with a `resource_version`, as the watch
        cache has it: "0" any version it holds, "N" one at least as new as N."""
        if not resource_version:
            obj, _ = await self._read(kind, namespace, name)
            return obj
        await self._cache_at_least(resource_version)
        namespace = self._namespace_of(kind, namespace)
        entry = self.cache.kinds[kind.kind].items.get(codec.object_key(namespace, name))
        if entry is None:
            raise errors.not_found(kind, name)
        return kind.message.FromString(entry.data)

    async def _cache_at_least(self, resource_version: str) -> None:
        """Waits until the watch cache has seen `resource_version` ("0": any will do)."""
        if not resource_version.isdigit():
            raise errors.bad_request(
                f'resourceVersion: Invalid value: "{resource_version}"')
        try:
            # Even "0" waits for the first list: an empty cache is not a version.
            await self.cache.wait_for(max(1, int(resource_version)))
        except TooNew as err:
            raise errors.unavailable(
                f"Too large resource version: {resource_version} ({err})") from None

    async def _read(self, kind: kinds.Kind, namespace: str, name: str
                    ) -> tuple[Message, storage.KeyValue]:
        namespace = self._namespace_of(kind, namespace)
        kv = await self.store.get(codec.key(kind, namespace, name))
        if kv is None:
            raise errors.not_found(kind, name)
        return codec.decode(kind, kv.value, kv.mod_revision), kv

    def filter(self, kind: kinds.Kind, namespace: str, label_selector: str,
               field_selector: str) -> Filter:
        try:
            labels = parse_label_selector(label_selector)
            fsel = parse_field_selector(field_selector)
        except SelectorError as err:
            raise errors.bad_request(str(err)) from None
        getters = kind.field_getters()
        unknown = sorted(set(fsel.fields()) - getters.keys())
        if unknown:
            raise errors.bad_request(
                f'field label not supported: {", ".join(unknown)} (for {errors.resource(kind)}'
                f' use {", ".join(sorted(getters))})')
        return Filter(namespace if kind.namespaced else "", labels, fsel, getters)

    async def list_entries(self, kind: kinds.Kind, f: Filter, *, resource_version: str = ""
                           ) -> tuple[list[Entry], int]:
        """From the watch cache. With no `resource_version`, a consistent read: the cache
        first catches up with etcd's current revision, so a client always lists what it
        has just written (this asks etcd). "0": whatever the cache holds now (informers'
        first list, served while etcd is stalled); "N": at least as new as N."""
        if resource_version:
            await self._cache_at_least(resource_version)
            return self.cache.list(kind.kind, f)
        revision = await self.store.revision()
        try:
            await self.cache.wait_for(revision)
        except TooNew as err:
            raise errors.unavailable(f"watch cache is not ready: {err}") from None
        return self.cache.list(kind.kind, f)

    # ---- create ----

    async def create(self, obj: Message, *, dry_run: bool = False) -> Message:
        kind = kinds.by_message(obj)
        strategy = self.strategy(kind)
        meta = meta_of(obj)
        _set_type(obj, kind)
        meta.namespace = self._namespace_of(kind, meta.namespace)
        if not meta.name and meta.generate_name:
            meta.name = generated_name(meta.generate_name)
        meta.uid = str(uuid.uuid4())
        meta.resource_version = ""
        _set_time(meta.creation_timestamp, now())
        meta.ClearField("deletion_timestamp")
        meta.ClearField("deletion_grace_period_seconds")
        meta.generation = 1 if kind.has_spec else 0
        strategy.prepare_for_create(obj)
        problems = strategy.validate(obj)
        if problems:
            raise errors.invalid(kind, meta.name, problems)
        if kind.namespaced:
            await self._check_namespace_open(meta.namespace)
        if dry_run:
            return await self._dry_run_allocation(kind, strategy, obj)
        lease = await self._lease(strategy)
        key = codec.key(kind, meta.namespace, meta.name)
        asked = _clone(obj)  # as the user sent it: allocation starts afresh from it
        for attempt in range(_CONFLICT_RETRIES):
            if attempt:
                obj.CopyFrom(asked)
            also = strategy.allocate(obj)
            try:
                revision = await self.store.create(key, _encode_stored(kind, obj), lease=lease,
                                                   also=also)
                break
            except storage.KeyExists as err:
                if err.key == key.decode():
                    raise errors.already_exists(kind, meta.name) from None
                problem = strategy.allocation_conflict(asked, err.key)
                if problem:
                    raise errors.invalid(kind, meta.name, [problem]) from None
                # A value picked at random lost a race: pick again.
        else:
            raise errors.unavailable(f"could not allocate addresses for {meta.name}; retry")
        # (not `meta`: a retry's CopyFrom detached it from obj)
        meta_of(obj).resource_version = str(revision)
        return obj

    async def _dry_run_allocation(self, kind: kinds.Kind, strategy: Strategy,
                                  obj: Message) -> Message:
        """As Kubernetes' dry-run allocators: the object shows what it would be given, and
        a value asked for that is taken is refused, but nothing is held."""
        asked = _clone(obj)
        for put in strategy.allocate(obj):
            if await self.store.get(put.key) is not None:
                problem = strategy.allocation_conflict(asked, put.key.decode())
                if problem:
                    raise errors.invalid(kind, meta_of(obj).name, [problem])
        return obj

    def _namespace_of(self, kind: kinds.Kind, namespace: str) -> str:
        if not kind.namespaced:
            return ""
        return namespace or "default"

    async def _check_namespace_open(self, namespace: str) -> None:
        ns_kind = kinds.by_kind("Namespace")
        entry = self.cache.kinds["Namespace"].items.get(namespace)
        ns = entry.obj if entry else None
        if ns is None:  # the cache may lag a namespace created a moment ago
            kv = await self.store.get(codec.key(ns_kind, "", namespace))
            if kv is None:
                raise errors.not_found(ns_kind, namespace)
            ns = codec.decode(ns_kind, kv.value, kv.mod_revision)
        if meta_of(ns).HasField("deletion_timestamp"):
            raise errors.namespace_terminating(namespace)

    async def _lease(self, strategy: Strategy) -> int:
        ttl = strategy.lease_ttl()
        return await self.leases.lease_for(ttl) if ttl else 0

    # ---- update ----

    async def update(self, obj: Message, *, status: bool = False,
                     dry_run: bool = False) -> Message:
        """Update (spec and metadata) or UpdateStatus (status only) with optimistic
        concurrency: a resourceVersion other than the stored one is a conflict."""
        kind = kinds.by_message(obj)
        if status and not kind.has_status:
            raise errors.bad_request(f"{errors.resource(kind)} have no status")
        strategy = self.strategy(kind)
        meta = meta_of(obj)
        wanted_rv = meta.resource_version
        if wanted_rv and not wanted_rv.isdigit():
            raise errors.bad_request(f'metadata.resourceVersion: Invalid value: "{wanted_rv}"')
        for _ in range(_CONFLICT_RETRIES):
            old, kv = await self._read(kind, meta.namespace, meta.name)
            if wanted_rv and int(wanted_rv) != kv.mod_revision:
                raise errors.conflict(kind, meta.name)
            new = self._updated(kind, strategy, obj, old, status)
            if new.SerializeToString(deterministic=True) == old.SerializeToString(
                    deterministic=True):
                return old  # nothing changed: no write, the version stays
            if dry_run:
                return new
            try:
                return await self._write_update(kind, strategy, new, old, kv)
            except storage.Conflict:
                if wanted_rv:
                    raise errors.conflict(kind, meta.name) from None
                # An update without a version wants "last write wins": read and retry.
        raise errors.conflict(kind, meta.name)

    def _updated(self, kind: kinds.Kind, strategy: Strategy, obj: Message, old: Message,
                 status: bool) -> Message:
        if status:
            new = strategy.status_update(obj, old)
        else:
            new = _clone(obj)
            _set_type(new, kind)
            meta_of(new).namespace = meta_of(old).namespace
            strategy.prepare_for_update(new, old)
            if kind.has_spec and cast(_HasSpec, new).spec != cast(_HasSpec, old).spec:
                meta_of(new).generation = meta_of(old).generation + 1
        meta_of(new).resource_version = meta_of(old).resource_version
        problems = strategy.validate_update(new, old)
        if problems:
            raise errors.invalid(kind, meta_of(new).name, problems)
        return new

    async def _write_update(self, kind: kinds.Kind, strategy: Strategy, new: Message,
                            old: Message, kv: storage.KeyValue) -> Message:
        meta = meta_of(new)
        key = codec.key(kind, meta.namespace, meta.name)
        if self._ready_to_go(strategy, new):
            await self.store.delete(key, kv.mod_revision, also=strategy.release(new))
            return new
        asked = _clone(new)  # before reallocate fills in values picked at random
        also = strategy.reallocate(new, old)  # first: it may fill in what it allocates
        try:
            revision = await self.store.update(key, _encode_stored(kind, new), kv.mod_revision,
                                               lease=await self._lease(strategy), also=also)
        except storage.KeyExists as err:
            problem = strategy.allocation_conflict(asked, err.key)
            if problem:
                raise errors.invalid(kind, meta.name, [problem]) from None
            # A value picked at random lost a race: the caller reads again and retries.
            raise storage.Conflict(key.decode()) from None
        meta.resource_version = str(revision)
        return new

    @staticmethod
    def _ready_to_go(strategy: Strategy, obj: Message) -> bool:
        """A deleted object goes once no finalizer holds it and no grace period runs."""
        meta = meta_of(obj)
        return (meta.HasField("deletion_timestamp") and not strategy.finalizing(obj)
                and meta.deletion_grace_period_seconds == 0)

    # ---- delete ----

    async def delete(self, kind: kinds.Kind, namespace: str, name: str, *,
                     grace_period: int | None = None, propagation: str = "",
                     precondition_uid: str = "", precondition_rv: str = "",
                     dry_run: bool = False) -> Message:
        if propagation not in ("", "Background", "Foreground", "Orphan"):
            raise errors.bad_request(f'propagationPolicy: Unsupported value: "{propagation}": '
                                     'supported values: "Background", "Foreground", "Orphan"')
        strategy = self.strategy(kind)
        strategy.check_delete(name)
        for _ in range(_CONFLICT_RETRIES):
            obj, kv = await self._read(kind, namespace, name)
            meta = meta_of(obj)
            if precondition_uid and precondition_uid != meta.uid:
                raise errors.failed_precondition(
                    f"Precondition failed: UID in precondition: {precondition_uid}, UID in "
                    f"object meta: {meta.uid}")
            if precondition_rv and precondition_rv != str(kv.mod_revision):
                raise errors.failed_precondition(
                    f"Precondition failed: ResourceVersion in precondition: {precondition_rv},"
                    f" ResourceVersion in object meta: {kv.mod_revision}")
            marked = self._mark_deleted(strategy, obj, grace_period, propagation)
            if dry_run:
                return obj if marked is None else marked
            key = codec.key(kind, meta.namespace, name)
            try:
                if marked is None:
                    await self.store.delete(key, kv.mod_revision, also=strategy.release(obj))
                    return obj
                if marked is obj:
                    return obj  # already marked as asked: nothing to write
                revision = await self.store.update(key, codec.encode(marked), kv.mod_revision,
                                                   lease=await self._lease(strategy))
                meta_of(marked).resource_version = str(revision)
                return marked
            except storage.Conflict:
                continue  # changed under us: read again and redo the decision
            except storage.KeyNotFound:
                raise errors.not_found(kind, name) from None
        raise errors.conflict(kind, name)

    def _mark_deleted(self, strategy: Strategy, obj: Message, grace_period: int | None,
                      propagation: str) -> Message | None:
        """None: remove now. `obj` itself: leave as is. Otherwise: the object to write,
        marked with a deletionTimestamp (graceful deletion or finalizers pending)."""
        meta = meta_of(obj)
        grace = strategy.grace_period(obj, grace_period)
        finalizer = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}.get(propagation)
        adds_finalizer = finalizer is not None and finalizer not in meta.finalizers
        if not strategy.finalizing(obj) and not adds_finalizer and grace == 0:
            return None
        marked = _clone(obj)
        mmeta = meta_of(marked)
        if finalizer and adds_finalizer and not meta.HasField("deletion_timestamp"):
            mmeta.finalizers.append(finalizer)
        deadline = now() + grace
        if meta.HasField("deletion_timestamp"):
            # A second delete may only shorten the grace period, as in Kubernetes.
            current = meta.deletion_timestamp.seconds
            if deadline >= current and grace >= meta.deletion_grace_period_seconds:
                if mmeta.finalizers == meta.finalizers:
                    return obj
            else:
                _set_time(mmeta.deletion_timestamp, deadline)
                mmeta.deletion_grace_period_seconds = grace
        else:
            _set_time(mmeta.deletion_timestamp, deadline)
            mmeta.deletion_grace_period_seconds = grace
        strategy.prepare_for_delete(marked)
        if self._ready_to_go(strategy, marked):
            return None
        return marked

    # ---- bind ----

    async def bind(self, namespace: str, name: str, node_name: str, uid: str = "") -> Message:
        """Sets a pod's node once, as Kubernetes' binding subresource."""
        kind = kinds.by_kind("Pod")
        if not node_name:
            raise errors.bad_request("target.name: Required value: a node to bind to")
        for _ in range(_CONFLICT_RETRIES):
            obj, kv = await self._read(kind, namespace, name)
            pod = cast(core_pb2.Pod, obj)
            if uid and pod.metadata.uid != uid:
                raise errors.failed_precondition(
                    f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                    f"{pod.metadata.uid}")
            if pod.metadata.HasField("deletion_timestamp"):
                raise errors.failed_precondition(
                    f"pod {name} is being deleted, cannot be assigned to a host")
            if pod.spec.node_name:
                raise errors.failed_precondition(
                    f'pod {name} is already assigned to node "{pod.spec.node_name}"')
            pod.spec.node_name = node_name
            set_condition(pod.status.conditions, "PodScheduled", "True",
                          datetime.fromtimestamp(now(), UTC))
            try:
                revision = await self.store.update(codec.key(kind, pod.metadata.namespace, name),
                                                   codec.encode(pod), kv.mod_revision)
            except storage.Conflict:
                continue
            pod.metadata.resource_version = str(revision)
            return pod
        raise errors.conflict(kind, name)
