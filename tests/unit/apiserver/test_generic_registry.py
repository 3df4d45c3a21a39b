"""The generic registry over the storage seam: a Store test double in memory (no etcd),
the Service strategy's allocation hooks, and hooks of a kind the registry does not know."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fixtures.memstore import MemoryStore
from google.protobuf.message import Message

from apiserver import errors, storage, strategies
from apiserver.codec import ALLOCATIONS_PREFIX
from apiserver.namespaces import ensure_built_in
from apiserver.registry import Registry
from apiserver.storage.store import Store
from apiserver.watchcache import WatchCache
from skiff.api import kinds
from skiff.api.v1 import core_pb2


async def _registry(store: MemoryStore, strategies: dict[str, strategies.Strategy] | None = None
                    ) -> AsyncIterator[Registry]:
    seam: Store = store  # the test double is a Store
    cache = WatchCache(seam)
    await cache.start()
    try:
        await cache.wait_ready(timeout=5)
        registry = Registry(seam, cache, "10.0.0.0/29", strategies=strategies)
        await ensure_built_in(registry)
        yield registry
    finally:
        await cache.stop()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
async def registry(store: MemoryStore) -> AsyncIterator[Registry]:
    async for r in _registry(store):
        yield r


def allocations(store: MemoryStore) -> dict[str, bytes]:
    return {k[len(ALLOCATIONS_PREFIX):].decode(): kv.value for k, kv in store.data.items()
            if k.startswith(ALLOCATIONS_PREFIX)}


def service(name: str, type_: str = "ClusterIP", cluster_ip: str = "",
            node_port: int = 0) -> core_pb2.Service:
    svc = core_pb2.Service()
    svc.metadata.name, svc.metadata.namespace = name, "default"
    svc.spec.type = type_
    svc.spec.cluster_ip = cluster_ip
    svc.spec.ports.add(port=80, node_port=node_port)
    return svc


async def test_a_service_holds_its_ip_and_node_ports_until_deleted(
        registry: Registry, store: MemoryStore) -> None:
    created = await registry.create(service("web", "NodePort"))
    assert isinstance(created, core_pb2.Service)
    ip, port = created.spec.cluster_ip, created.spec.ports[0].node_port
    assert ip.startswith("10.0.0.") and created.spec.cluster_ips == [ip]
    assert 30000 <= port <= 32767
    assert allocations(store) == {f"serviceips/{ip}": b"default/web",
                                  f"nodeports/{port}": b"default/web"}
    # An update to ClusterIP gives the node port back; the IP stays.
    created.spec.type = "ClusterIP"
    created.spec.ports[0].node_port = 0
    created.spec.ClearField("external_traffic_policy")
    await registry.update(created)
    assert allocations(store) == {f"serviceips/{ip}": b"default/web"}
    await registry.delete(kinds.by_kind("Service"), "default", "web")
    assert allocations(store) == {}


async def test_a_requested_value_that_is_taken_or_out_of_range_is_invalid(
        registry: Registry) -> None:
    first = await registry.create(service("a", cluster_ip="10.0.0.3"))
    assert isinstance(first, core_pb2.Service) and first.spec.cluster_ip == "10.0.0.3"
    with pytest.raises(errors.ApiError, match="provided IP is already allocated"):
        await registry.create(service("b", cluster_ip="10.0.0.3"))
    with pytest.raises(errors.ApiError,
                       match=r"the provided IP \(192.168.0.1\) is not in the valid range"):
        await registry.create(service("c", cluster_ip="192.168.0.1"))
    await registry.create(service("d", "NodePort", node_port=30080))
    with pytest.raises(errors.ApiError, match="30080: provided port is already allocated"):
        await registry.create(service("e", "NodePort", node_port=30080))


async def test_a_random_pick_that_lost_a_race_is_picked_again(
        registry: Registry, store: MemoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    await registry.create(service("a", cluster_ip="10.0.0.2"))
    strategy = registry.strategy(kinds.by_kind("Service"))
    assert isinstance(strategy, strategies.ServiceStrategy)
    picks = iter(["10.0.0.2", "10.0.0.2", "10.0.0.5"])
    monkeypatch.setattr(strategy.allocator, "random_ip", lambda: next(picks))
    created = await registry.create(service("b"))
    assert isinstance(created, core_pb2.Service) and created.spec.cluster_ip == "10.0.0.5"
    stored = store.data[b"/registry/services/default/b"]
    assert created.metadata.resource_version == str(stored.mod_revision)
    assert set(allocations(store)) == {"serviceips/10.0.0.2", "serviceips/10.0.0.5"}


class TicketStrategy(strategies.Strategy):
    """A kind the registry knows nothing about, holding one side key per object."""

    def __init__(self, kind: kinds.Kind) -> None:
        super().__init__(kind)
        self.calls: list[str] = []

    def _key(self, obj: Message) -> bytes:
        assert isinstance(obj, core_pb2.ConfigMap)
        return ALLOCATIONS_PREFIX + b"tickets/" + obj.data["ticket"].encode()

    def allocate(self, obj: Message) -> list[storage.Put]:
        self.calls.append("allocate")
        return [storage.Put(self._key(obj), b"held")]

    def allocation_conflict(self, obj: Message, key: str) -> str | None:
        return f"data.ticket: {key.rsplit('/', 1)[1]} is taken"

    def release(self, obj: Message) -> list[storage.Delete]:
        self.calls.append("release")
        return [storage.Delete(self._key(obj))]


async def test_any_kind_may_hold_side_keys_through_its_strategy(store: MemoryStore) -> None:
    tickets = TicketStrategy(kinds.by_kind("ConfigMap"))
    async for registry in _registry(store, strategies={"ConfigMap": tickets}):
        cm = core_pb2.ConfigMap()
        cm.metadata.name, cm.metadata.namespace = "one", "default"
        cm.data["ticket"] = "7"
        await registry.create(cm)
        assert allocations(store) == {"tickets/7": b"held"}
        cm.metadata.name = "two"
        with pytest.raises(errors.ApiError, match="data.ticket: 7 is taken"):
            await registry.create(cm)
        await registry.delete(kinds.by_kind("ConfigMap"), "default", "one")
        assert allocations(store) == {}
        assert tickets.calls == ["allocate", "allocate", "release"]


async def test_protected_namespaces_and_terminating_phase_come_from_the_strategy(
        registry: Registry) -> None:
    ns_kind = kinds.by_kind("Namespace")
    with pytest.raises(errors.ApiError, match='namespaces "default" is forbidden'):
        await registry.delete(ns_kind, "", "default")
    ns = core_pb2.Namespace()
    ns.metadata.name = "going"
    await registry.create(ns)
    marked = await registry.delete(ns_kind, "", "going")
    assert isinstance(marked, core_pb2.Namespace)
    assert marked.status.phase == "Terminating"  # its finalizer holds it


async def test_bind_sets_the_scheduled_condition(registry: Registry) -> None:
    pod = core_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace = "p", "default"
    pod.spec.containers.add(name="c", image="busybox")
    await registry.create(pod)
    bound = await registry.bind("default", "p", "node-1")
    assert isinstance(bound, core_pb2.Pod) and bound.spec.node_name == "node-1"
    [cond] = [c for c in bound.status.conditions if c.type == "PodScheduled"]
    assert cond.status == "True" and cond.last_transition_time.seconds > 0


async def test_a_service_leaving_nodeport_drops_what_only_that_type_used(
        registry: Registry, store: MemoryStore) -> None:
    """Kubernetes' dropTypeDependentFields: the ClusterIP form of a NodePort Service, sent
    with the node ports and policy the server filled in (as `apply` merges them), is
    accepted; the node ports are released."""
    created = await registry.create(service("shape", "NodePort"))
    assert isinstance(created, core_pb2.Service)
    ip, port = created.spec.cluster_ip, created.spec.ports[0].node_port
    assert created.spec.external_traffic_policy == "Cluster"
    created.spec.type = "ClusterIP"  # nodePort and externalTrafficPolicy left as they were
    updated = await registry.update(created)
    assert isinstance(updated, core_pb2.Service)
    assert updated.spec.ports[0].node_port == 0
    assert updated.spec.external_traffic_policy == ""
    assert updated.spec.cluster_ip == ip
    assert allocations(store) == {f"serviceips/{ip}": b"default/shape"}
    # The node port is free for another Service.
    other = await registry.create(service("taker", "NodePort", node_port=port))
    assert isinstance(other, core_pb2.Service) and other.spec.ports[0].node_port == port


async def test_a_node_port_asked_for_while_leaving_nodeport_is_still_refused(
        registry: Registry) -> None:
    created = await registry.create(service("asks", "NodePort"))
    assert isinstance(created, core_pb2.Service)
    created.spec.type = "ClusterIP"
    created.spec.ports[0].node_port = 30999 if created.spec.ports[0].node_port != 30999 else 30998
    with pytest.raises(errors.ApiError, match="nodePort"):
        await registry.update(created)


async def test_a_service_becoming_external_name_gives_its_cluster_ip_back(
        registry: Registry, store: MemoryStore) -> None:
    created = await registry.create(service("named"))
    assert isinstance(created, core_pb2.Service)
    created.spec.type = "ExternalName"
    created.spec.external_name = "example.org"
    del created.spec.ports[:]
    updated = await registry.update(created)
    assert isinstance(updated, core_pb2.Service)
    assert updated.spec.cluster_ip == "" and not updated.spec.cluster_ips
    assert allocations(store) == {}


async def test_a_service_becoming_nodeport_gets_its_node_ports(
        registry: Registry, store: MemoryStore) -> None:
    created = await registry.create(service("grows"))
    assert isinstance(created, core_pb2.Service)
    created.spec.type = "NodePort"
    updated = await registry.update(created)
    assert isinstance(updated, core_pb2.Service)
    port = updated.spec.ports[0].node_port
    assert 30000 <= port <= 32767
    assert allocations(store)[f"nodeports/{port}"] == b"default/grows"
    stored = await registry.get(kinds.by_kind("Service"), "default", "grows")
    assert isinstance(stored, core_pb2.Service) and stored.spec.ports[0].node_port == port
