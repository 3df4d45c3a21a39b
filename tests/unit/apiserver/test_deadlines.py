"""Request deadlines and cached reads over a store that stops answering (a stalled etcd,
as a Store test double): every verb ends within its budget with Kubernetes' Timeout,
and reads at resourceVersion "0" are answered from the watch cache."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import pytest
from fixtures.memstore import MemoryStore

from apiserver import storage
from apiserver.deadlines import request_budget
from apiserver.namespaces import ensure_built_in
from apiserver.registry import Registry
from apiserver.server import ApiService
from apiserver.storage import KeyValue, Put, deadline
from apiserver.watchcache import WatchCache
from skiff.api import kinds
from skiff.api.v1 import core_pb2
from skiff.api.v1 import service_pb2 as api

KUBERNETES_TIMEOUT = ("Timeout: request did not complete within requested timeout - "
                      "context deadline exceeded")


class StallableStore(MemoryStore):
    """A MemoryStore whose calls (but its watch, which simply goes quiet) hang while
    `stalled`, as etcd's do when it is SIGSTOPped."""

    def __init__(self) -> None:
        super().__init__()
        self.stalled = False

    async def _maybe_hang(self) -> None:
        if self.stalled:
            await asyncio.Event().wait()

    async def get(self, key: bytes) -> KeyValue | None:
        await self._maybe_hang()
        return await super().get(key)

    async def revision(self) -> int:
        await self._maybe_hang()
        return await super().revision()

    async def create(self, key: bytes, value: bytes, *, lease: int = 0,
                     also: Sequence[Put] = ()) -> int:
        await self._maybe_hang()
        return await super().create(key, value, lease=lease, also=also)


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code, self.details = code, details


class FakeContext:
    """The part of grpc.aio.ServicerContext the unary verbs use."""

    def __init__(self, time_remaining: float | None) -> None:
        self._deadline = None if time_remaining is None else time.monotonic() + time_remaining

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else self._deadline - time.monotonic()

    async def abort(self, code: grpc.StatusCode, details: str = "",
                    trailing_metadata: object = ()) -> None:
        raise Aborted(code, details)


@pytest.fixture
async def service() -> AsyncIterator[tuple[ApiService, StallableStore]]:
    store = StallableStore()
    cache = WatchCache(store)
    await cache.start()
    try:
        await cache.wait_ready(timeout=5)
        registry = Registry(store, cache)
        await ensure_built_in(registry)
        yield ApiService(registry, request_timeout=0.6), store
    finally:
        await cache.stop()


def config_map(name: str) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap()
    cm.metadata.name, cm.metadata.namespace = name, "default"
    return cm


def create_request(name: str) -> api.CreateRequest:
    request = api.CreateRequest()
    request.object.Pack(config_map(name), type_url_prefix=kinds.TYPE_URL_PREFIX)
    return request


async def fails_in_time(call: Any, within: float) -> Aborted:
    started = time.monotonic()
    with pytest.raises(Aborted) as caught:
        await call
    assert time.monotonic() - started < within
    return caught.value


def test_the_budget_is_the_callers_deadline_less_a_margin_capped_by_the_server() -> None:
    assert request_budget(None, 60.0) == 60.0  # no deadline sent: the server's cap
    assert request_budget(30.0, 60.0) == 29.5  # half a second for the answer to travel
    assert request_budget(2.0, 60.0) == pytest.approx(1.8)  # a tenth of a short one
    assert request_budget(300.0, 60.0) == 60.0  # capped
    assert request_budget(0.0, 60.0) == 0.0


async def test_storage_calls_get_what_is_left_of_the_request() -> None:
    assert deadline.call_timeout(5.0) == 5.0  # outside a request: the store's own
    with deadline.within(2.0):
        assert 1.9 < deadline.call_timeout(5.0) <= 2.0
    with deadline.within(0.0):
        await asyncio.sleep(0.01)
        assert 0 < deadline.call_timeout(5.0) < 0.01  # expired: fail at once
    assert deadline.call_timeout(5.0) == 5.0


async def test_a_write_to_a_stalled_store_is_a_timeout_that_may_have_been_stored(
        service: tuple[ApiService, StallableStore]) -> None:
    svc, store = service
    store.stalled = True
    err = await fails_in_time(svc.Create(create_request("a"), FakeContext(0.4)), 0.5)
    assert err.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert err.details.startswith(KUBERNETES_TIMEOUT)
    assert "etcd" in err.details and "the create may have been stored" in err.details

    # No deadline from the caller: the server's --request-timeout ends it.
    err = await fails_in_time(svc.Create(create_request("b"), FakeContext(None)), 0.8)
    assert err.code == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_reads_need_etcd_unless_they_accept_the_watch_cache(
        service: tuple[ApiService, StallableStore]) -> None:
    svc, store = service
    await svc.Create(create_request("seen"), FakeContext(None))
    await svc.registry.cache.wait_for(store.rev)
    store.stalled = True

    get = api.GetRequest(kind="ConfigMap", namespace="default", name="seen")
    err = await fails_in_time(svc.Get(get, FakeContext(0.3)), 0.4)
    assert err.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "may have been stored" not in err.details  # a read changes nothing
    listing = api.ListRequest(kind="ConfigMap", namespace="default")
    err = await fails_in_time(svc.List(listing, FakeContext(0.3)), 0.4)
    assert err.code == grpc.StatusCode.DEADLINE_EXCEEDED

    get.resource_version = "0"
    reply = await svc.Get(get, FakeContext(0.3))
    cm = core_pb2.ConfigMap()
    assert reply.object.Unpack(cm) and cm.metadata.name == "seen"
    assert cm.metadata.resource_version == str(store.rev)
    listing.resource_version = "0"
    items = (await svc.List(listing, FakeContext(0.3))).items
    assert len(items) == 1

    get.name = "never-made"
    err = await fails_in_time(svc.Get(get, FakeContext(0.3)), 0.4)
    assert err.code == grpc.StatusCode.NOT_FOUND
    get.resource_version = "x"
    err = await fails_in_time(svc.Get(get, FakeContext(0.3)), 0.4)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT


def test_an_etcd_deadline_is_a_timeout_not_unavailability() -> None:
    # A write whose etcd call timed out may have been committed: reporting it as
    # UNAVAILABLE ("not done, retry") would invite a second create.
    from apiserver.storage.etcd import _translate

    def rpc_error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
        return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(),
                                    details="Deadline Exceeded")

    timed_out = _translate(rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED))
    assert isinstance(timed_out, storage.Timeout)
    assert not isinstance(timed_out, storage.Unavailable)
    assert isinstance(_translate(rpc_error(grpc.StatusCode.UNAVAILABLE)), storage.Unavailable)
