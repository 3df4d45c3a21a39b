"""The client library's deadlines and what it makes of a timeout: every request but a
watch ends within its deadline; a Timeout is never taken for unavailability (which
reads retry), and informers list from the watch cache first."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from skiff.api.v1 import core_pb2
from skiff.client import errors
from skiff.client.client import Client, RequestTimeouts, WatchEvent
from skiff.client.informer import Informer


class _Hang(grpc.GenericRpcHandler):
    """Takes every call and never answers it."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        async def hang(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            await asyncio.Event().wait()
            return b""  # pragma: no cover

        return grpc.unary_unary_rpc_method_handler(hang)


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """An apiserver that takes calls and never answers them (hung, or overloaded)."""
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([_Hang()])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=None)


def test_a_deadline_from_the_server_is_a_timeout_not_unavailability() -> None:
    err = errors.from_rpc_error(grpc.aio.AioRpcError(
        grpc.StatusCode.DEADLINE_EXCEEDED, grpc.aio.Metadata(), grpc.aio.Metadata(),
        details="Timeout: request did not complete within requested timeout"))
    assert isinstance(err, errors.Timeout)
    assert not isinstance(err, (errors.Unavailable, errors.DeadlineExceeded))


@pytest.mark.parametrize("verb", ["get", "list", "create"])
async def test_each_verb_ends_within_its_deadline(silent_server: str, verb: str) -> None:
    client = Client(silent_server, timeouts=RequestTimeouts(get=0.3, list=0.4, write=0.5))
    calls = {"get": lambda: client.get(core_pb2.Pod, "p", "ns"),
             "list": lambda: client.list(core_pb2.Pod, "ns"),
             "create": lambda: client.create(core_pb2.Pod())}
    allowed = {"get": 0.3, "list": 0.4, "create": 0.5}[verb]
    started = time.monotonic()
    try:
        with pytest.raises(errors.DeadlineExceeded) as caught:
            await calls[verb]()
    finally:
        await client.close()
    assert time.monotonic() - started < allowed + 0.3
    assert silent_server in caught.value.message
    assert ("may have been applied" in caught.value.message) == (verb == "create")


async def test_a_callers_timeout_overrides_the_default(silent_server: str) -> None:
    async with Client(silent_server) as client:  # defaults: 30 s
        started = time.monotonic()
        with pytest.raises(errors.DeadlineExceeded):
            await client.get(core_pb2.Pod, "p", "ns", timeout=0.2)
        assert time.monotonic() - started < 0.6


class Lister:
    """Records the resourceVersion of each list; the first watch finds its version
    expired, later ones wait."""

    def __init__(self) -> None:
        self.versions: list[str] = []
        self.watches = 0

    async def list(self, kind: Any, namespace: str = "", *, label_selector: str = "",
                   field_selector: str = "", resource_version: str = ""
                   ) -> tuple[list[Any], str]:
        self.versions.append(resource_version)
        return [], "5"

    async def watch(self, kind: Any, namespace: str = "", **_: Any
                    ) -> AsyncIterator[WatchEvent]:
        self.watches += 1
        if self.watches == 1:
            raise errors.Expired("too old resource version: 5")
        await asyncio.Event().wait()
        yield WatchEvent("BOOKMARK", None, "5")  # pragma: no cover


async def test_informers_list_from_the_watch_cache_first_and_consistently_after_expiry(
        ) -> None:
    lister = Lister()
    informer: Informer[core_pb2.Pod] = Informer(lister, core_pb2.Pod)
    task = informer.start()
    try:
        for _ in range(100):
            if lister.watches >= 2:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    # client-go's reflector: "0" (any version the apiserver's cache holds, answered while
    # etcd is stalled), then "" (consistent) once the cache's version expired.
    assert lister.versions == ["0", ""]
