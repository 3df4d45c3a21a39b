"""The generic registry: create, read, update and delete any kind in etcd.

Every verb goes through the kind's Strategy for what differs between kinds; reads
of many objects (List, Watch) come from the watch cache.
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass

import grpc
from google.protobuf import timestamp_pb2
from google.protobuf.message import Message

from apiserver import codec, errors, storage
from apiserver.allocator import ServiceAllocator
from apiserver.leases import LeaseManager
from apiserver.strategies import PROTECTED_NAMESPACES, Strategy, for_kind, now
from apiserver.watchcache import Entry, Filter, TooNew, WatchCache
from skiff.api import fields, kinds, validation
from skiff.api.selectors import SelectorError, parse_field_selector, parse_label_selector
from skiff.api.v1 import core_pb2, meta_pb2

log = logging.getLogger(__name__)

_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # as Kubernetes: no vowels, no 0/1/3
_CONFLICT_RETRIES = 8


def _meta(obj: Message) -> meta_pb2.ObjectMeta:  # every kind's metadata is an ObjectMeta
    return obj.metadata  # type: ignore[attr-defined, no-any-return]


def _set_time(ts: timestamp_pb2.Timestamp, seconds: int) -> None:
    ts.seconds, ts.nanos = seconds, 0


@dataclass(frozen=True)
class _Requested:
    ip: str
    ports: dict[int, int]
    keys: set[str]


def _taken(key: str) -> str:
    value = key.rsplit("/", 1)[1]
    if "/serviceips/" in key:
        return f'spec.clusterIP: Invalid value: "{value}": provided IP is already allocated'
    return f"spec.ports.nodePort: Invalid value: {value}: provided port is already allocated"


class Registry:
    def __init__(self, store: storage.EtcdStore, cache: WatchCache,
                 service_cidr: str = "10.96.0.0/12") -> None:
        self.store = store
        self.cache = cache
        self.leases = LeaseManager(store)
        self.services = ServiceAllocator(service_cidr)
        self._strategies = {k.kind: for_kind(k) for k in kinds.KINDS}

    def strategy(self, kind: kinds.Kind) -> Strategy:
        return self._strategies[kind.kind]

    # ---- reads ----

    async def get(self, kind: kinds.Kind, namespace: str, name: str) -> Message:
        obj, _ = await self._read(kind, namespace, name)
        return obj

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
        unknown = fields.unsupported(kind, set(fsel.fields()))
        if unknown:
            raise errors.bad_request(
                f'field label not supported: {", ".join(unknown)} (for {errors.resource(kind)}'
                f' use {", ".join(sorted(fields.getters(kind)))})')
        return Filter(namespace if kind.namespaced else "", labels, fsel,
                      fields.getters(kind))

    async def list_entries(self, kind: kinds.Kind, f: Filter) -> tuple[list[Entry], int]:
        # A consistent read: the cache first catches up with etcd's current revision,
        # so a client always lists what it has just written.
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
        meta = _meta(obj)
        obj.api_version, obj.kind = kind.api_version, kind.kind  # type: ignore[attr-defined]
        meta.namespace = self._namespace_of(kind, meta.namespace)
        if not meta.name and meta.generate_name:
            meta.name = meta.generate_name + "".join(
                random.choices(_NAME_SUFFIX_ALPHABET, k=5))
        meta.uid = str(uuid.uuid4())
        meta.resource_version = ""
        _set_time(meta.creation_timestamp, now())
        meta.ClearField("deletion_timestamp")
        meta.ClearField("deletion_grace_period_seconds")
        meta.generation = 1 if kind.has_spec else 0
        strategy.prepare_for_create(obj)
        problems = validation.validate(obj)
        if problems:
            raise errors.invalid(kind, meta.name, problems)
        if kind.namespaced:
            await self._check_namespace_open(meta.namespace)
        if dry_run:
            return obj
        lease = await self._lease(strategy)
        key = codec.key(kind, meta.namespace, meta.name)
        requested = self._requested_allocations(obj) if kind.kind == "Service" else None
        for _ in range(_CONFLICT_RETRIES):
            also = self._allocate(obj, requested) if requested else []
            try:
                revision = await self.store.create(key, codec.encode(obj), lease=lease,
                                                   also=also)
                break
            except storage.KeyExists as err:
                if err.key == key.decode():
                    raise errors.already_exists(kind, meta.name) from None
                if requested and err.key in requested.keys:
                    raise errors.invalid(kind, meta.name, [_taken(err.key)]) from None
                # A value picked at random lost a race: pick again.
        else:
            raise errors.unavailable(f"could not allocate addresses for {meta.name}; retry")
        meta.resource_version = str(revision)
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
                raise errors.ApiError(grpc.StatusCode.NOT_FOUND,
                                      f'namespaces "{namespace}" not found')
            ns = codec.decode(ns_kind, kv.value, kv.mod_revision)
        if _meta(ns).HasField("deletion_timestamp"):
            raise errors.forbidden(f"unable to create new content in namespace {namespace} "
                                   "because it is being terminated")

    async def _lease(self, strategy: Strategy) -> int:
        ttl = strategy.lease_ttl()
        return await self.leases.lease_for(ttl) if ttl else 0

    # ---- services: cluster IPs and node ports ----

    def _requested_allocations(self, svc_msg: Message) -> _Requested:
        """What the user asked for by value; everything else is picked at random."""
        svc: core_pb2.Service = svc_msg  # type: ignore[assignment]
        spec = svc.spec
        ip = spec.cluster_ip if spec.cluster_ip not in ("", "None") else ""
        if ip and not self.services.contains(ip):
            raise errors.invalid(kinds.by_kind("Service"), svc.metadata.name, [
                f'spec.clusterIP: Invalid value: "{ip}": provided IP is not in the valid '
                f"range ({self.services.network})"])
        ports = {i: p.node_port for i, p in enumerate(spec.ports) if p.node_port}
        keys = {self.services.ip_key(ip).decode()} if ip else set()
        keys |= {self.services.node_port_key(spec.ports[i].node_port,
                                             spec.ports[i].protocol).decode() for i in ports}
        return _Requested(ip, ports, keys)

    def _allocate(self, svc_msg: Message, requested: _Requested) -> list[storage.Put]:
        svc: core_pb2.Service = svc_msg  # type: ignore[assignment]
        spec = svc.spec
        owner = f"{svc.metadata.namespace}/{svc.metadata.name}".encode()
        puts: list[storage.Put] = []
        if spec.type != "ExternalName" and spec.cluster_ip != "None":
            spec.cluster_ip = requested.ip or self.services.random_ip()
            del spec.cluster_ips[:]
            spec.cluster_ips.append(spec.cluster_ip)
            puts.append(storage.Put(self.services.ip_key(spec.cluster_ip), owner))
        if spec.type in ("NodePort", "LoadBalancer"):
            for i, port in enumerate(spec.ports):
                port.node_port = requested.ports.get(i) or self.services.random_node_port()
                puts.append(storage.Put(
                    self.services.node_port_key(port.node_port, port.protocol), owner))
        return puts

    def _release(self, obj: Message) -> list[storage.Delete]:
        if not isinstance(obj, core_pb2.Service):
            return []
        keys = []
        if obj.spec.cluster_ip and obj.spec.cluster_ip != "None":
            keys.append(self.services.ip_key(obj.spec.cluster_ip))
        keys += [self.services.node_port_key(p.node_port, p.protocol)
                 for p in obj.spec.ports if p.node_port]
        return [storage.Delete(k) for k in keys]

    # ---- update ----

    async def update(self, obj: Message, *, status: bool = False,
                     dry_run: bool = False) -> Message:
        """Update (spec and metadata) or UpdateStatus (status only) with optimistic
        concurrency: a resourceVersion other than the stored one is a conflict."""
        kind = kinds.by_message(obj)
        if status and not kind.has_status:
            raise errors.bad_request(f"{errors.resource(kind)} have no status")
        strategy = self.strategy(kind)
        meta = _meta(obj)
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
                return await self._write_update(kind, strategy, new, kv)
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
            new = type(obj)()
            new.CopyFrom(obj)
            new.api_version, new.kind = kind.api_version, kind.kind  # type: ignore[attr-defined]
            _meta(new).namespace = _meta(old).namespace
            strategy.prepare_for_update(new, old)
            if kind.has_spec and new.spec != old.spec:  # type: ignore[attr-defined]
                _meta(new).generation = _meta(old).generation + 1
        _meta(new).resource_version = _meta(old).resource_version
        problems = validation.validate(new) + validation.validate_update(new, old)
        if problems:
            raise errors.invalid(kind, _meta(new).name, problems)
        return new

    async def _write_update(self, kind: kinds.Kind, strategy: Strategy, new: Message,
                            kv: storage.KeyValue) -> Message:
        meta = _meta(new)
        key = codec.key(kind, meta.namespace, meta.name)
        if self._ready_to_go(strategy, new):
            await self.store.delete(key, kv.mod_revision, also=self._release(new))
            return new
        also: list[storage.Put | storage.Delete] = []
        if kind.kind == "Service":
            also = self._reallocate(new, codec.decode(kind, kv.value, kv.mod_revision))
        revision = await self.store.update(key, codec.encode(new), kv.mod_revision,
                                           lease=await self._lease(strategy), also=also)
        meta.resource_version = str(revision)
        return new

    def _reallocate(self, new_msg: Message, old_msg: Message) -> list[storage.Put | storage.Delete]:
        """Side keys for a Service whose allocated values changed on update."""
        owner_keys_old = {d.key for d in self._release(old_msg)}
        owner_keys_new = {d.key for d in self._release(new_msg)}
        svc: core_pb2.Service = new_msg  # type: ignore[assignment]
        owner = f"{svc.metadata.namespace}/{svc.metadata.name}".encode()
        ops: list[storage.Put | storage.Delete] = [
            storage.Put(k, owner) for k in sorted(owner_keys_new - owner_keys_old)]
        ops += [storage.Delete(k) for k in sorted(owner_keys_old - owner_keys_new)]
        return ops

    @staticmethod
    def _ready_to_go(strategy: Strategy, obj: Message) -> bool:
        """A deleted object goes once no finalizer holds it and no grace period runs."""
        meta = _meta(obj)
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
        if kind.kind == "Namespace" and name in PROTECTED_NAMESPACES:
            raise errors.forbidden(f'namespaces "{name}" is forbidden: this namespace may not '
                                   "be deleted")
        strategy = self.strategy(kind)
        for _ in range(_CONFLICT_RETRIES):
            obj, kv = await self._read(kind, namespace, name)
            meta = _meta(obj)
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
                    await self.store.delete(key, kv.mod_revision, also=self._release(obj))
                    return obj
                if marked is obj:
                    return obj  # already marked as asked: nothing to write
                revision = await self.store.update(key, codec.encode(marked), kv.mod_revision,
                                                   lease=await self._lease(strategy))
                _meta(marked).resource_version = str(revision)
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
        meta = _meta(obj)
        grace = strategy.grace_period(obj, grace_period)
        finalizer = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}.get(propagation)
        adds_finalizer = finalizer is not None and finalizer not in meta.finalizers
        if not strategy.finalizing(obj) and not adds_finalizer and grace == 0:
            return None
        marked = type(obj)()
        marked.CopyFrom(obj)
        mmeta = _meta(marked)
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
        if isinstance(marked, core_pb2.Namespace):
            marked.status.phase = "Terminating"
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
            pod: core_pb2.Pod = obj  # type: ignore[assignment]
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
            _set_condition(pod, "PodScheduled", "True")
            try:
                revision = await self.store.update(codec.key(kind, pod.metadata.namespace, name),
                                                   codec.encode(pod), kv.mod_revision)
            except storage.Conflict:
                continue
            pod.metadata.resource_version = str(revision)
            return pod
        raise errors.conflict(kind, name)


def _set_condition(pod: core_pb2.Pod, type_: str, status: str, reason: str = "") -> None:
    for cond in pod.status.conditions:
        if cond.type == type_:
            if cond.status != status:
                cond.status = status
                _set_time(cond.last_transition_time, now())
            cond.reason = reason
            cond.message = ""
            return
    cond = pod.status.conditions.add(type=type_, status=status, reason=reason)
    _set_time(cond.last_transition_time, now())
