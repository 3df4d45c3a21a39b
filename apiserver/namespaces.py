"""Namespace lifecycle: the built-in namespaces exist, and deleting a namespace
removes everything in it before the namespace itself goes.

Kubernetes does the second part in a controller; Skiff's apiserver does it itself,
so a cluster without a controller manager still honours namespace deletion. It
looks at the watch cache (memory), never polls etcd, and is idempotent: any
apiserver may run it and a restart picks up a half-finished namespace.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

import grpc

from apiserver import codec, errors, storage
from apiserver.registry import Registry
from skiff.api import kinds
from skiff.api.defaults import NAMESPACE_FINALIZER
from skiff.api.meta import meta
from skiff.api.v1 import core_pb2

log = logging.getLogger(__name__)

BUILT_IN = ("default", "kube-system", "kube-public", "kube-node-lease")


async def ensure_built_in(registry: Registry) -> None:
    for name in BUILT_IN:
        ns = core_pb2.Namespace()
        ns.metadata.name = name
        try:
            await registry.create(ns)
            log.info("created namespace %s", name)
        except errors.ApiError as err:
            if err.code != grpc.StatusCode.ALREADY_EXISTS:
                raise


class NamespaceFinalizer:
    def __init__(self, registry: Registry, interval: float = 0.5) -> None:
        self.registry = registry
        self.interval = interval
        self._namespaced = [k for k in kinds.KINDS if k.namespaced]

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            terminating = [meta(e.obj).name
                           for e in self.registry.cache.kinds["Namespace"].items.values()
                           if meta(e.obj).HasField("deletion_timestamp")]
            for name in terminating:
                try:
                    await self.finalize(name)
                except (errors.ApiError, storage.StorageError) as err:
                    log.warning("namespace %s: cannot finish deletion yet: %s", name, err)

    async def finalize(self, name: str) -> None:
        remaining = 0
        for kind in self._namespaced:
            items = [e.obj for e in self.registry.cache.kinds[kind.kind].items.values()
                     if meta(e.obj).namespace == name]
            remaining += len(items)
            for obj in items:
                m = meta(obj)
                if m.HasField("deletion_timestamp"):
                    continue  # already going (graceful deletion or finalizers)
                try:
                    await self.registry.delete(kind, name, m.name, precondition_uid=m.uid)
                except errors.ApiError as err:
                    if err.code not in (grpc.StatusCode.NOT_FOUND,
                                        grpc.StatusCode.FAILED_PRECONDITION):
                        raise
        if remaining == 0:
            await self._remove_finalizer(name)

    async def _remove_finalizer(self, name: str) -> None:
        kind = kinds.by_kind("Namespace")
        kv = await self.registry.store.get(codec.key(kind, "", name))
        if kv is None:
            return
        ns = cast(core_pb2.Namespace, codec.decode(kind, kv.value, kv.mod_revision))
        if NAMESPACE_FINALIZER in ns.spec.finalizers:
            ns.spec.finalizers.remove(NAMESPACE_FINALIZER)
        key = codec.key(kind, "", name)
        if not ns.spec.finalizers and not ns.metadata.finalizers:
            await self.registry.store.delete(key, kv.mod_revision)
            log.info("namespace %s is empty and deleted", name)
        else:
            await self.registry.store.update(key, codec.encode(ns), kv.mod_revision)
