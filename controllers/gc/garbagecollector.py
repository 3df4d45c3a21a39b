"""The garbage collector: dependents go with their owners, as Kubernetes' does.

An object names its owners in metadata.ownerReferences (a ReplicaSet its Deployment, a
Pod its ReplicaSet, a ConfigMap whatever made it). The graph "owner uid -> dependents"
is the union of every informer's `ownerUID` index, so the collector keeps no graph of
its own and shares the caches (one watch per kind) with the other controllers. Three
deletion modes, chosen by the propagationPolicy of the owner's Delete:

* Background (default): the apiserver removes the owner at once. Its dependents are
  then looked at one by one: a dependent all of whose owners are gone is deleted; one
  that still has a live owner only loses the references to the gone ones.
* Foreground: the apiserver keeps the owner, with a deletionTimestamp and the
  `foregroundDeletion` finalizer. The collector deletes its dependents (foreground in
  turn for those that have dependents of their own, so a chain goes depth first) and
  removes the finalizer once no dependent with blockOwnerDeletion=true is left; only
  then does the apiserver finish deleting the owner.
* Orphan: the owner keeps the `orphan` finalizer until the collector has removed the
  references to it from all its dependents, which then live on.

An owner is "gone" only when a live GET says so (NotFound, or an object of that name
with another uid): a cache that has not yet seen an owner's creation must never get its
dependents deleted. Owners of namespaced dependents are looked up in the dependent's
namespace (a reference across namespaces is invalid); cluster-scoped owners cluster-wide.

Work queue keys name the kind too (`Kind/namespace/name`, namespace empty for cluster-
scoped objects), since one queue serves every kind.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from google.protobuf.message import Message

from controllers.common.context import ControllerContext
from skiff.api import kinds
from skiff.api.meta import meta
from skiff.api.v1 import meta_pb2
from skiff.client import errors
from skiff.client.controller import Controller
from skiff.client.informer import INDEX_OWNER_UID, Informer

__all__ = [
    "FOREGROUND_FINALIZER",
    "ORPHAN_FINALIZER",
    "Classification",
    "Delete",
    "GarbageCollector",
    "Keep",
    "OwnerState",
    "RemoveOwnerReferences",
    "blocks_owner",
    "classify",
    "decide",
    "item_key",
    "owner_namespace",
    "parse_item_key",
    "with_unblocked_references",
    "without_finalizer",
    "without_owner_references",
]

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)

FOREGROUND_FINALIZER = "foregroundDeletion"
ORPHAN_FINALIZER = "orphan"
# Events are never owners (validation refuses it) and far too many to watch, as in
# Kubernetes, whose collector ignores them too.
IGNORED_KINDS = frozenset({"Event"})
# Owners confirmed absent by a GET, so a hundred pods of a deleted ReplicaSet cost one
# GET, not a hundred. A uid never comes back, so an entry never goes stale.
ABSENT_OWNER_CACHE_SIZE = 500
DEFAULT_WORKERS = 5


# --------------------------------------------------------------------------- keys


def item_key(kind: str, namespace: str, name: str) -> str:
    """The work-queue key of an object of any kind: `Kind/namespace/name`."""
    return f"{kind}/{namespace}/{name}"


def parse_item_key(key: str) -> tuple[str, str, str]:
    """`Kind/namespace/name` -> (kind, namespace, name)."""
    kind, namespace, name = key.split("/", 2)
    return kind, namespace, name


# --------------------------------------------------------------------------- decisions


class OwnerState(Enum):
    SOLID = "solid"  # exists and is not waiting for its dependents
    WAITING = "waiting"  # exists, being deleted in the foreground
    ABSENT = "absent"  # a GET found nothing with that uid
    INVALID = "invalid"  # a cluster-scoped dependent naming a namespaced owner


@dataclass(frozen=True)
class Classification:
    solid: tuple[meta_pb2.OwnerReference, ...] = ()
    dangling: tuple[meta_pb2.OwnerReference, ...] = ()
    waiting: tuple[meta_pb2.OwnerReference, ...] = ()
    invalid: bool = False


@dataclass(frozen=True)
class Keep:
    """Leave the object alone."""


@dataclass(frozen=True)
class RemoveOwnerReferences:
    """Drop the references to these owners; the object stays, since others own it."""

    uids: tuple[str, ...]


@dataclass(frozen=True)
class Delete:
    """Delete the object with this propagation policy; `unblock` first clears the
    blockOwnerDeletion of its own references (to break a foreground cycle)."""

    propagation: str
    unblock: bool = False


Action = Keep | RemoveOwnerReferences | Delete


def being_deleted(obj: Message) -> bool:
    return meta(obj).HasField("deletion_timestamp")


def is_deleting_dependents(obj: Message) -> bool:
    """Being deleted in the foreground: the owner waits for its dependents."""
    return being_deleted(obj) and FOREGROUND_FINALIZER in meta(obj).finalizers


def is_orphaning(obj: Message) -> bool:
    return being_deleted(obj) and ORPHAN_FINALIZER in meta(obj).finalizers


def owner_state(owner: Message) -> OwnerState:
    """SOLID or WAITING for an owner that exists."""
    return OwnerState.WAITING if is_deleting_dependents(owner) else OwnerState.SOLID


def owner_namespace(dependent_namespace: str, owner_kind: kinds.Kind) -> str | None:
    """Where a dependent's owner of `owner_kind` lives: the dependent's namespace for a
    namespaced kind, "" for a cluster-scoped one; None when the reference is invalid (a
    cluster-scoped dependent cannot have a namespaced owner)."""
    if not owner_kind.namespaced:
        return ""
    return dependent_namespace or None


def classify(refs: Sequence[meta_pb2.OwnerReference],
             states: Sequence[OwnerState]) -> Classification:
    """Sorts a dependent's references by what their owners' states say."""
    solid: list[meta_pb2.OwnerReference] = []
    dangling: list[meta_pb2.OwnerReference] = []
    waiting: list[meta_pb2.OwnerReference] = []
    for ref, state in zip(refs, states, strict=True):
        if state is OwnerState.INVALID:
            return Classification(invalid=True)
        {OwnerState.SOLID: solid, OwnerState.ABSENT: dangling,
         OwnerState.WAITING: waiting}[state].append(ref)
    return Classification(tuple(solid), tuple(dangling), tuple(waiting))


def decide(obj: Message, found: Classification, *, has_dependents: bool,
           a_dependent_deletes_dependents: bool = False) -> Action:
    """What to do with an object that is not being deleted, given its owners' states
    (Kubernetes' attemptToDeleteItem):

    * a live owner remains: keep it, minus the references to owners that are gone or
      waiting for their dependents (a waiting owner would otherwise wait forever);
    * an owner waits for it and it has dependents itself: delete it in the foreground,
      so its own dependents go first;
    * otherwise no owner remains: delete it, honouring a finalizer it already carries.
    """
    if found.invalid or not meta(obj).owner_references:
        return Keep()
    if found.solid:
        gone = found.dangling + found.waiting
        return RemoveOwnerReferences(tuple(ref.uid for ref in gone)) if gone else Keep()
    if found.waiting and has_dependents:
        # A dependent that itself waits on this object could be waiting on us in a
        # cycle; making our references non-blocking lets the owner go regardless.
        return Delete("Foreground", unblock=a_dependent_deletes_dependents)
    finalizers = meta(obj).finalizers
    if ORPHAN_FINALIZER in finalizers:
        return Delete("Orphan")
    if FOREGROUND_FINALIZER in finalizers:
        return Delete("Foreground")
    return Delete("Background")


def blocks_owner(dependent: Message, owner_uid: str) -> bool:
    """Whether the dependent's reference to the owner has blockOwnerDeletion=true."""
    return any(ref.uid == owner_uid and ref.block_owner_deletion
               for ref in meta(dependent).owner_references)


def _copy(obj: M) -> M:
    copy = type(obj)()
    copy.CopyFrom(obj)
    return copy


def without_owner_references(obj: M, uids: Iterable[str]) -> M:
    """A copy of the object without its references to these owner uids."""
    drop = set(uids)
    copy = _copy(obj)
    refs = meta(copy).owner_references
    keep = [ref for ref in refs if ref.uid not in drop]
    del refs[:]
    refs.extend(keep)
    return copy


def without_finalizer(obj: M, finalizer: str) -> M:
    copy = _copy(obj)
    finalizers = meta(copy).finalizers
    keep = [f for f in finalizers if f != finalizer]
    del finalizers[:]
    finalizers.extend(keep)
    return copy


def with_unblocked_references(obj: M) -> M:
    """A copy whose references no longer block their owners' foreground deletion."""
    copy = _copy(obj)
    for ref in meta(copy).owner_references:
        if ref.block_owner_deletion:
            ref.block_owner_deletion = False
    return copy


def _describe(refs: Iterable[meta_pb2.OwnerReference]) -> str:
    return ", ".join(f"{ref.kind}/{ref.name}" for ref in refs)


# --------------------------------------------------------------------------- controller


class GarbageCollector(Controller):
    """Deletes dependents whose owners are gone and carries out foreground and orphan
    deletion (see the module docstring)."""

    def __init__(self, ctx: ControllerContext, *, workers: int = DEFAULT_WORKERS) -> None:
        self.client = ctx.client
        self._informers: dict[str, Informer[Any]] = {
            kind.kind: ctx.factory.informer(kind)
            for kind in kinds.KINDS if kind.kind not in IGNORED_KINDS}
        super().__init__("garbagecollector", informers=list(self._informers.values()),
                         workers=workers, clock=ctx.clock)
        self._absent: OrderedDict[tuple[str, str, str, str], None] = OrderedDict()
        for kind_name, informer in self._informers.items():
            kind = kinds.by_kind(kind_name)
            informer.add_handlers(on_add=self._adder(kind), on_update=self._updater(kind),
                                  on_delete=self._deleter(kind))

    # ---- events -> keys ----

    def _adder(self, kind: kinds.Kind) -> Callable[[Message], None]:
        def on_add(obj: Message) -> None:
            self._enqueue_if_pending(kind, obj)
        return on_add

    def _updater(self, kind: kinds.Kind) -> Callable[[Message, Message], None]:
        def on_update(old: Message, new: Message) -> None:
            om, nm = meta(old), meta(new)
            if om.uid != nm.uid:
                # Deleted and recreated between two lists: for the graph, two events.
                self._on_delete(kind, old)
                self._enqueue_if_pending(kind, new)
                return
            # Only what the collector decides on: references, deletion, finalizers.
            if (list(om.owner_references) == list(nm.owner_references)
                    and om.HasField("deletion_timestamp") == nm.HasField("deletion_timestamp")
                    and list(om.finalizers) == list(nm.finalizers)):
                return
            self._enqueue_if_pending(kind, new)
            # Owners waiting for this object look again (it is going, or let go of them).
            self._enqueue_owners(new)
            self._enqueue_owners(old)
        return on_update

    def _deleter(self, kind: kinds.Kind) -> Callable[[Message], None]:
        return lambda obj: self._on_delete(kind, obj)

    def _on_delete(self, kind: kinds.Kind, obj: Message) -> None:
        for dep_kind, dep in self._dependents(kind, obj):
            self.enqueue_key(self._key(dep_kind, dep))
        self._enqueue_owners(obj)

    def _enqueue_if_pending(self, kind: kinds.Kind, obj: Message) -> None:
        """Enqueues an object that has owners to check or a deletion mode to carry out."""
        obj_meta = meta(obj)
        if obj_meta.owner_references or is_deleting_dependents(obj) or is_orphaning(obj):
            self.enqueue_key(self._key(kind, obj))

    def _enqueue_owners(self, obj: Message) -> None:
        obj_meta = meta(obj)
        for ref in obj_meta.owner_references:
            if ref.kind not in self._informers:
                continue
            namespace = owner_namespace(obj_meta.namespace, kinds.by_kind(ref.kind))
            if namespace is not None:
                self.enqueue_key(item_key(ref.kind, namespace, ref.name))

    @staticmethod
    def _key(kind: kinds.Kind, obj: Message) -> str:
        obj_meta = meta(obj)
        return item_key(kind.kind, obj_meta.namespace, obj_meta.name)

    # ---- the graph ----

    def _dependents(self, kind: kinds.Kind, owner: Message) -> list[tuple[kinds.Kind, Message]]:
        """Every cached object whose references name the owner's uid, leaving out
        references from other namespaces (invalid: they cannot mean this owner)."""
        owner_meta = meta(owner)
        found = []
        for dep_kind_name, informer in self._informers.items():
            for dep in informer.store.by_index(INDEX_OWNER_UID, owner_meta.uid):
                if kind.namespaced and dep.metadata.namespace != owner_meta.namespace:
                    continue
                found.append((kinds.by_kind(dep_kind_name), dep))
        return found

    # ---- sync ----

    async def sync(self, key: str) -> None:
        kind_name, namespace, name = parse_item_key(key)
        informer = self._informers.get(kind_name)
        if informer is None:
            return
        obj = informer.store.get_by_name(namespace, name)
        if obj is None:
            return  # gone: its delete event enqueued its dependents and owners
        kind = kinds.by_kind(kind_name)
        if being_deleted(obj):
            # Only the modes the collector owns; any other deleted object is on a one-way
            # trip, and its dependents are looked at once it is gone.
            if is_orphaning(obj):
                await self._orphan_dependents(kind, obj)
            elif is_deleting_dependents(obj):
                await self._delete_dependents(kind, obj)
            return
        if obj.metadata.owner_references:
            await self._collect(kind, obj)

    async def _collect(self, kind: kinds.Kind, obj: Message) -> None:
        refs = list(meta(obj).owner_references)
        states = [await self._owner_state(obj, ref) for ref in refs]
        found = classify(refs, states)
        dependents = self._dependents(kind, obj) if found.waiting and not found.solid else []
        action = decide(obj, found, has_dependents=bool(dependents),
                        a_dependent_deletes_dependents=any(
                            is_deleting_dependents(dep) for _, dep in dependents))
        key = self._key(kind, obj)
        if isinstance(action, RemoveOwnerReferences):
            gone = [ref for ref in refs if ref.uid in action.uids]
            log.info("garbage collector: removing ownerReferences [%s] from %s: owner gone "
                     "or deleting its dependents", _describe(gone), key)
            await self._update(kind, obj,
                               lambda o: without_owner_references(o, action.uids))
        elif isinstance(action, Delete):
            if action.unblock:
                log.info("garbage collector: making the ownerReferences of %s non-blocking "
                         "(possible foreground cycle)", key)
                await self._update(kind, obj, with_unblocked_references)
            log.info("garbage collector: deleting %s (propagation %s): owners [%s] %s", key,
                     action.propagation, _describe(refs),
                     "deleting their dependents" if found.waiting else "gone")
            await self._delete(kind, obj, action.propagation)

    async def _owner_state(self, dependent: Message, ref: meta_pb2.OwnerReference
                           ) -> OwnerState:
        try:
            owner_kind = kinds.by_kind(ref.kind)
        except kinds.UnknownKindError:
            # An owner we cannot look up is never assumed gone.
            log.debug("garbage collector: %s names an owner of unknown kind %s",
                      meta(dependent).name, ref.kind)
            return OwnerState.SOLID
        namespace = owner_namespace(meta(dependent).namespace, owner_kind)
        if namespace is None:
            return OwnerState.INVALID
        absent_key = (ref.kind, namespace, ref.name, ref.uid)
        if absent_key in self._absent:
            self._absent.move_to_end(absent_key)
            return OwnerState.ABSENT
        informer = self._informers.get(ref.kind)
        if informer is not None:
            cached = informer.store.get_by_name(namespace, ref.name)
            if cached is not None and cached.metadata.uid == ref.uid:
                return owner_state(cached)
        # Not in the cache (or another uid): perhaps only our cache is behind. Ask.
        try:
            live = await self.client.get(owner_kind, ref.name, namespace)
        except errors.NotFound:
            live = None
        if live is None or meta(live).uid != ref.uid:
            self._remember_absent(absent_key)
            return OwnerState.ABSENT
        return owner_state(live)

    def _remember_absent(self, key: tuple[str, str, str, str]) -> None:
        self._absent[key] = None
        self._absent.move_to_end(key)
        while len(self._absent) > ABSENT_OWNER_CACHE_SIZE:
            self._absent.popitem(last=False)

    async def _delete_dependents(self, kind: kinds.Kind, owner: Message) -> None:
        """Foreground deletion: the owner goes once no blocking dependent is left."""
        uid = meta(owner).uid
        dependents = self._dependents(kind, owner)
        if not any(blocks_owner(dep, uid) for _, dep in dependents):
            log.info("garbage collector: removing the %s finalizer from %s: no blocking "
                     "dependents left", FOREGROUND_FINALIZER, self._key(kind, owner))
            await self._update(kind, owner,
                               lambda o: without_finalizer(o, FOREGROUND_FINALIZER))
            return
        # Each dependent decides for itself (it sees this owner waiting); those already
        # going need nothing, and their deletion brings this owner back.
        for dep_kind, dep in dependents:
            if not being_deleted(dep):
                self.enqueue_key(self._key(dep_kind, dep))

    async def _orphan_dependents(self, kind: kinds.Kind, owner: Message) -> None:
        """Orphan deletion: dependents lose their reference, then the owner may go."""
        uid = meta(owner).uid
        owner_key = self._key(kind, owner)
        for dep_kind, dep in self._dependents(kind, owner):
            log.info("garbage collector: orphaning %s: removing its ownerReference to %s",
                     self._key(dep_kind, dep), owner_key)
            await self._update(dep_kind, dep, lambda o: without_owner_references(o, [uid]))
        log.info("garbage collector: removing the %s finalizer from %s: dependents orphaned",
                 ORPHAN_FINALIZER, owner_key)
        await self._update(kind, owner, lambda o: without_finalizer(o, ORPHAN_FINALIZER))

    # ---- writes ----

    async def _update(self, kind: kinds.Kind, obj: Message,
                      change: Callable[[Message], Message]) -> None:
        """Writes `change(obj)` with the cached resourceVersion. On a conflict (a busy
        pod's status moves its version all the time) the change is made to the live
        object instead, provided its references are still those the decision was made
        on; otherwise the key is retried, to decide again. An object gone or replaced
        meanwhile needs nothing more."""
        changed = change(obj)
        if changed == obj:
            return
        try:
            await self.client.update(changed)
            return
        except errors.NotFound:
            return
        except errors.Conflict:
            pass
        live = await self._live(kind, obj)
        if live is None:
            return
        if list(meta(live).owner_references) != list(meta(obj).owner_references):
            raise errors.Conflict(f"{self._key(kind, obj)} changed its ownerReferences "
                                  "meanwhile; deciding again")
        changed = change(live)
        if changed != live:
            try:
                await self.client.update(changed)
            except errors.NotFound:
                return

    async def _delete(self, kind: kinds.Kind, obj: Message, propagation: str) -> None:
        """Deletes the object the decision was made on: same uid and, unless only its
        status moved on meanwhile, same version (so an object adopted by a new owner in
        between is spared)."""
        obj_meta = meta(obj)
        try:
            await self.client.delete(kind, obj_meta.name, obj_meta.namespace,
                                     propagation=propagation, uid=obj_meta.uid,
                                     resource_version=obj_meta.resource_version)
            return
        except errors.NotFound:
            return
        except errors.FailedPrecondition:
            pass
        live = await self._live(kind, obj)
        if live is None:
            return
        if list(meta(live).owner_references) != list(obj_meta.owner_references):
            raise errors.Conflict(f"{self._key(kind, obj)} changed its ownerReferences "
                                  "meanwhile; deciding again")
        try:
            await self.client.delete(kind, obj_meta.name, obj_meta.namespace,
                                     propagation=propagation, uid=obj_meta.uid)
        except errors.NotFound:
            return

    async def _live(self, kind: kinds.Kind, obj: Message) -> Message | None:
        """The object as the apiserver has it now; None when gone or replaced."""
        obj_meta = meta(obj)
        try:
            live = await self.client.get(kind, obj_meta.name, obj_meta.namespace)
        except errors.NotFound:
            return None
        return live if meta(live).uid == obj_meta.uid else None
