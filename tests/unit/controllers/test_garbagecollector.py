"""The garbage collector's decisions: the pure rules, then `sync` over hand-filled caches
with a fake apiserver that records what the collector writes."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.message import Message

from controllers.common.context import ControllerContext
from controllers.gc.garbagecollector import (
    FOREGROUND_FINALIZER,
    ORPHAN_FINALIZER,
    Classification,
    Delete,
    GarbageCollector,
    Keep,
    OwnerState,
    RemoveOwnerReferences,
    blocks_owner,
    classify,
    decide,
    item_key,
    owner_namespace,
    parse_item_key,
    with_unblocked_references,
    without_finalizer,
    without_owner_references,
)
from skiff.api import kinds
from skiff.api.v1 import apps_pb2, core_pb2, meta_pb2
from skiff.client import errors
from skiff.client.informer import SharedInformerFactory, object_key


def ref(kind: str, name: str, uid: str, *, block: bool = False,
        controller: bool = False) -> meta_pb2.OwnerReference:
    r = meta_pb2.OwnerReference(api_version=kinds.by_kind(kind).api_version, kind=kind,
                                name=name, uid=uid)
    if block:
        r.block_owner_deletion = True
    if controller:
        r.controller = True
    return r


def pod(name: str, *refs: meta_pb2.OwnerReference, ns: str = "ns", uid: str = "",
        finalizers: tuple[str, ...] = (), deleted: bool = False) -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.metadata.name, p.metadata.namespace = name, ns
    p.metadata.uid = uid or f"uid-{name}"
    p.metadata.resource_version = "7"
    p.metadata.owner_references.extend(refs)
    p.metadata.finalizers.extend(finalizers)
    if deleted:
        p.metadata.deletion_timestamp.seconds = 1
    return p


def replica_set(name: str, *refs: meta_pb2.OwnerReference, ns: str = "ns",
                finalizers: tuple[str, ...] = (), deleted: bool = False
                ) -> apps_pb2.ReplicaSet:
    rs = apps_pb2.ReplicaSet()
    rs.metadata.name, rs.metadata.namespace, rs.metadata.uid = name, ns, f"uid-{name}"
    rs.metadata.resource_version = "5"
    rs.metadata.owner_references.extend(refs)
    rs.metadata.finalizers.extend(finalizers)
    if deleted:
        rs.metadata.deletion_timestamp.seconds = 1
    return rs


# ---- pure rules ----


def test_keys_carry_the_kind_and_allow_cluster_scoped_objects() -> None:
    assert item_key("Pod", "ns", "web-1") == "Pod/ns/web-1"
    assert parse_item_key("Pod/ns/web-1") == ("Pod", "ns", "web-1")
    assert parse_item_key(item_key("Node", "", "n1")) == ("Node", "", "n1")


def test_owners_are_looked_up_in_the_dependents_namespace_or_cluster_wide() -> None:
    assert owner_namespace("ns", kinds.by_kind("ReplicaSet")) == "ns"
    assert owner_namespace("ns", kinds.by_kind("Node")) == ""
    assert owner_namespace("", kinds.by_kind("Node")) == ""
    # a cluster-scoped dependent cannot have a namespaced owner
    assert owner_namespace("", kinds.by_kind("ReplicaSet")) is None


def test_classify_sorts_references_by_their_owners_state() -> None:
    a, b, c = ref("ReplicaSet", "a", "1"), ref("ReplicaSet", "b", "2"), ref("Job", "c", "3")
    found = classify([a, b, c], [OwnerState.SOLID, OwnerState.ABSENT, OwnerState.WAITING])
    assert found == Classification(solid=(a,), dangling=(b,), waiting=(c,))
    assert classify([a, b], [OwnerState.ABSENT, OwnerState.INVALID]).invalid


def test_a_dependent_whose_owners_are_all_gone_is_deleted_in_the_background() -> None:
    a = ref("ReplicaSet", "a", "1")
    found = Classification(dangling=(a,))
    assert decide(pod("p", a), found, has_dependents=True) == Delete("Background")


def test_its_own_finalizer_sets_the_propagation_of_that_deletion() -> None:
    a = ref("ReplicaSet", "a", "1")
    found = Classification(dangling=(a,))
    assert decide(pod("p", a, finalizers=(ORPHAN_FINALIZER,)), found,
                  has_dependents=False) == Delete("Orphan")
    assert decide(pod("p", a, finalizers=(FOREGROUND_FINALIZER,)), found,
                  has_dependents=False) == Delete("Foreground")


def test_a_dependent_with_a_live_owner_only_loses_the_gone_and_waiting_ones() -> None:
    a, b, c = ref("ReplicaSet", "a", "1"), ref("ReplicaSet", "b", "2"), ref("Job", "c", "3")
    obj = pod("p", a, b, c)
    assert decide(obj, Classification(solid=(a,)), has_dependents=False) == Keep()
    assert decide(obj, Classification(solid=(a,), dangling=(b,), waiting=(c,)),
                  has_dependents=False) == RemoveOwnerReferences(("2", "3"))


def test_a_waiting_owner_deletes_a_dependent_with_dependents_in_the_foreground() -> None:
    d = ref("Deployment", "d", "1", block=True)
    rs = replica_set("rs", d)
    waiting = Classification(waiting=(d,))
    assert decide(rs, waiting, has_dependents=True) == Delete("Foreground")
    # nothing below it: a plain background deletion
    assert decide(rs, waiting, has_dependents=False) == Delete("Background")
    # a dependent already deleting its own dependents: unblock first to break a cycle
    assert decide(rs, waiting, has_dependents=True,
                  a_dependent_deletes_dependents=True) == Delete("Foreground", unblock=True)


def test_an_invalid_reference_or_no_reference_means_keep() -> None:
    assert decide(pod("p"), Classification(), has_dependents=False) == Keep()
    a = ref("ReplicaSet", "a", "1")
    assert decide(pod("p", a), Classification(invalid=True), has_dependents=False) == Keep()


def test_blocking_and_the_copies_that_edit_metadata() -> None:
    a, b = ref("ReplicaSet", "a", "1", block=True), ref("Job", "b", "2")
    obj = pod("p", a, b, finalizers=(FOREGROUND_FINALIZER, "example.com/x"))
    assert blocks_owner(obj, "1") and not blocks_owner(obj, "2") and not blocks_owner(obj, "9")
    assert [r.uid for r in without_owner_references(obj, ["1"]).metadata.owner_references] == ["2"]
    assert list(without_finalizer(obj, FOREGROUND_FINALIZER).metadata.finalizers) == [
        "example.com/x"]
    assert not blocks_owner(with_unblocked_references(obj), "1")
    assert len(obj.metadata.owner_references) == 2  # the original is untouched
    assert blocks_owner(obj, "1")


# ---- sync over caches ----


class FakeApi:
    """What the collector calls on the apiserver: get (the live truth), update, delete."""

    def __init__(self) -> None:
        self.live: dict[tuple[str, str, str], Message] = {}
        self.calls: list[tuple[Any, ...]] = []

    def put(self, obj: Message) -> None:
        kind = kinds.by_message(obj).kind
        meta = obj.metadata  # type: ignore[attr-defined]
        self.live[(kind, meta.namespace, meta.name)] = obj

    async def get(self, kind: Any, name: str, namespace: str = "") -> Message:
        k = kind if isinstance(kind, kinds.Kind) else kinds.lookup(kind)
        self.calls.append(("get", k.kind, namespace, name))
        found = self.live.get((k.kind, namespace, name))
        if found is None:
            raise errors.NotFound(f"{k.plural} {name} not found")
        return found

    async def update(self, obj: Message) -> Message:
        self.calls.append(("update", kinds.by_message(obj).kind, obj))
        return obj

    async def delete(self, kind: Any, name: str, namespace: str = "", **options: Any) -> Message:
        k = kind if isinstance(kind, kinds.Kind) else kinds.lookup(kind)
        self.calls.append(("delete", k.kind, namespace, name, options.get("propagation")))
        return core_pb2.Pod()

    def writes(self) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] != "get"]


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def gc(api: FakeApi) -> GarbageCollector:
    ctx = ControllerContext(api, SharedInformerFactory(api))  # type: ignore[arg-type]
    return GarbageCollector(ctx)


def cache(gc: GarbageCollector, *objects: Message) -> None:
    for obj in objects:
        gc._informers[kinds.by_message(obj).kind].store._put(object_key(obj), obj)


def key_of(obj: Message) -> str:
    meta = obj.metadata  # type: ignore[attr-defined]
    return item_key(kinds.by_message(obj).kind, meta.namespace, meta.name)


async def test_an_owner_missing_from_the_cache_is_asked_for_before_deleting(
        gc: GarbageCollector, api: FakeApi) -> None:
    owner = replica_set("web")
    p = pod("web-1", ref("ReplicaSet", "web", owner.metadata.uid))
    cache(gc, p)  # the owner's creation has not reached our cache yet
    api.put(owner)
    await gc.sync(key_of(p))
    assert ("get", "ReplicaSet", "ns", "web") in api.calls
    assert api.writes() == []


async def test_an_owner_gone_or_replaced_gets_its_dependent_deleted_once_asked(
        gc: GarbageCollector, api: FakeApi) -> None:
    p = pod("web-1", ref("ReplicaSet", "web", "uid-old"))
    cache(gc, p)
    api.put(replica_set("web"))  # same name, another uid: a new object
    await gc.sync(key_of(p))
    assert api.writes() == [("delete", "Pod", "ns", "web-1", "Background")]
    # The absence is remembered: a second dependent costs no GET.
    q = pod("web-2", ref("ReplicaSet", "web", "uid-old"))
    cache(gc, q)
    gets = len([c for c in api.calls if c[0] == "get"])
    await gc.sync(key_of(q))
    assert len([c for c in api.calls if c[0] == "get"]) == gets


async def test_a_dependent_with_two_owners_loses_only_the_gone_one(
        gc: GarbageCollector, api: FakeApi) -> None:
    alive = replica_set("a")
    p = pod("p", ref("ReplicaSet", "a", alive.metadata.uid), ref("ReplicaSet", "b", "uid-b"))
    cache(gc, alive, p)
    await gc.sync(key_of(p))
    (call,) = api.writes()
    assert call[:2] == ("update", "Pod")
    assert [r.name for r in call[2].metadata.owner_references] == ["a"]


async def test_a_reference_to_another_namespace_does_not_count(
        gc: GarbageCollector, api: FakeApi) -> None:
    elsewhere = replica_set("web", ns="other")
    p = pod("web-1", ref("ReplicaSet", "web", elsewhere.metadata.uid))
    cache(gc, elsewhere, p)
    api.put(elsewhere)
    await gc.sync(key_of(p))
    assert api.writes() == [("delete", "Pod", "ns", "web-1", "Background")]
    # and the owner in the other namespace does not see it as a dependent
    assert gc._dependents(kinds.by_kind("ReplicaSet"), elsewhere) == []


async def test_a_foreground_owner_waits_for_blocking_dependents_only(
        gc: GarbageCollector, api: FakeApi) -> None:
    owner = replica_set("web", finalizers=(FOREGROUND_FINALIZER,), deleted=True)
    blocking = pod("web-1", ref("ReplicaSet", "web", owner.metadata.uid, block=True),
                   deleted=True)
    loose = pod("web-2", ref("ReplicaSet", "web", owner.metadata.uid))
    cache(gc, owner, blocking, loose)
    await gc.sync(key_of(owner))
    assert api.writes() == []  # web-1 is still going
    # the dependent not yet going is handed to its own sync, which deletes it
    assert len(gc.queue) == 1
    await gc.sync(key_of(loose))
    assert api.writes() == [("delete", "Pod", "ns", "web-2", "Background")]
    # once the blocking dependent is gone, the finalizer goes
    gc._informers["Pod"].store._delete(object_key(blocking))
    await gc.sync(key_of(owner))
    update = api.writes()[-1]
    assert update[:2] == ("update", "ReplicaSet")
    assert list(update[2].metadata.finalizers) == []


async def test_a_waiting_owner_has_a_dependent_with_dependents_deleted_in_the_foreground(
        gc: GarbageCollector, api: FakeApi) -> None:
    d = apps_pb2.Deployment()
    d.metadata.name, d.metadata.namespace, d.metadata.uid = "web", "ns", "uid-d"
    d.metadata.deletion_timestamp.seconds = 1
    d.metadata.finalizers.append(FOREGROUND_FINALIZER)
    rs = replica_set("web-1", ref("Deployment", "web", "uid-d", block=True))
    p = pod("web-1-a", ref("ReplicaSet", "web-1", rs.metadata.uid, block=True))
    cache(gc, d, rs, p)
    await gc.sync(key_of(rs))
    assert api.writes() == [("delete", "ReplicaSet", "ns", "web-1", "Foreground")]


async def test_orphaning_removes_the_references_then_the_finalizer(
        gc: GarbageCollector, api: FakeApi) -> None:
    owner = replica_set("web", finalizers=(ORPHAN_FINALIZER,), deleted=True)
    other = replica_set("other")
    p = pod("web-1", ref("ReplicaSet", "web", owner.metadata.uid),
            ref("ReplicaSet", "other", other.metadata.uid))
    cache(gc, owner, other, p)
    await gc.sync(key_of(owner))
    first, second = api.writes()
    assert first[:2] == ("update", "Pod")
    assert [r.name for r in first[2].metadata.owner_references] == ["other"]
    assert second[:2] == ("update", "ReplicaSet")
    assert ORPHAN_FINALIZER not in second[2].metadata.finalizers


async def test_an_object_being_deleted_without_gc_finalizers_is_left_alone(
        gc: GarbageCollector, api: FakeApi) -> None:
    p = pod("web-1", ref("ReplicaSet", "web", "uid-gone"), deleted=True)
    cache(gc, p)
    await gc.sync(key_of(p))
    assert api.calls == []


def test_deleting_an_owner_enqueues_its_dependents_and_a_dependent_its_owners(
        gc: GarbageCollector) -> None:
    owner = replica_set("web")
    p = pod("web-1", ref("ReplicaSet", "web", owner.metadata.uid))
    cache(gc, owner, p)
    gc._on_delete(kinds.by_kind("ReplicaSet"), owner)
    assert gc.queue.len() == 1
    d = ref("Deployment", "d", "uid-d")
    rs = replica_set("web", d)
    gc._on_delete(kinds.by_kind("ReplicaSet"), rs)
    assert gc.queue.len() == 2  # + Deployment/ns/d
