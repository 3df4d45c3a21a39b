"""A small asyncio client for etcd's v3 gRPC API: the only code that talks to etcd.

It speaks the wire protocol through the stubs that the `aetcd` package generates
(they work with current protobuf, unlike `etcd3`'s), so every request is exactly
the one the apiserver needs: compare-and-swap transactions on mod_revision,
prefix ranges, one watch with progress requests, and leases.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import grpc
from aetcd.rpc import kv_pb2, rpc_pb2, rpc_pb2_grpc

from apiserver.storage.deadline import call_timeout
from apiserver.storage.errors import (
    Compacted,
    Conflict,
    KeyExists,
    KeyNotFound,
    StorageError,
    Timeout,
    Unavailable,
)
from apiserver.storage.store import Delete, KeyValue, Put, WatchBatch, WatchEvent
from skiff.client.transport import INSECURE, ClientCredentials, is_loopback, open_channel

log = logging.getLogger(__name__)
T = TypeVar("T")

# Per call, for calls made outside a request (the watch cache's list, leases granted at
# start-up, the compactor); a request's calls get what is left of its deadline instead.
_REQUEST_TIMEOUT = 5.0
_LIST_TIMEOUT = 30.0
_LIST_PAGE = 2000
_CHANNEL_OPTIONS = [
    # A watch response carries every event of one revision, however many that is.
    ("grpc.max_receive_message_length", 512 * 1024 * 1024),
    # Reconnect quickly after etcd comes back: gRPC's default backoff grows to 120 s.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    # Kubernetes' values (storagebackend's keepaliveTime/keepaliveTimeout): a stalled etcd
    # is found dead after 40 s, past a write's default deadline, so a write in flight then
    # ends as a timeout (outcome unknown), not as a dropped connection.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
]


def prefix_end(prefix: bytes) -> bytes:
    """The range end that makes a range request cover every key with `prefix`."""
    end = bytearray(prefix)
    for i in reversed(range(len(end))):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


def _kv(kv: kv_pb2.KeyValue) -> KeyValue:
    return KeyValue(kv.key, kv.value, kv.mod_revision, kv.create_revision, kv.lease)


def _op(op: Put | Delete) -> rpc_pb2.RequestOp:
    if isinstance(op, Put):
        return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=op.key, value=op.value,
                                                                lease=op.lease))
    return rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=op.key))


def _mod_is(key: bytes, revision: int) -> rpc_pb2.Compare:
    return rpc_pb2.Compare(key=key, target=rpc_pb2.Compare.MOD,
                           result=rpc_pb2.Compare.EQUAL, mod_revision=revision)


def _absent(key: bytes) -> rpc_pb2.Compare:
    return rpc_pb2.Compare(key=key, target=rpc_pb2.Compare.CREATE,
                           result=rpc_pb2.Compare.EQUAL, create_revision=0)


class EtcdStore:
    """The Store (apiserver.storage.store) over etcd's v3 API."""

    def __init__(self, endpoints: Sequence[str],
                 credentials: ClientCredentials = INSECURE) -> None:
        """`credentials` with a CA: TLS to etcd (and a client certificate, when etcd asks
        for one); without, plaintext, which only loopback endpoints may use."""
        hosts = [e.removeprefix("http://").removeprefix("https://").rstrip("/")
                 for e in endpoints]
        remote = [h for h in hosts if not is_loopback(h)]
        if remote and not credentials.tls:
            raise ValueError(
                f"etcd at {', '.join(remote)} is beyond loopback: talk to it over TLS "
                "(--etcd-cafile, and --etcd-certfile/--etcd-keyfile if etcd checks clients)")
        target = hosts[0] if len(hosts) == 1 else "ipv4:" + ",".join(hosts)
        self.endpoints = hosts
        self._channel = open_channel(target, credentials, options=_CHANNEL_OPTIONS)
        self._kv = rpc_pb2_grpc.KVStub(self._channel)
        self._watch = rpc_pb2_grpc.WatchStub(self._channel)
        self._lease = rpc_pb2_grpc.LeaseStub(self._channel)
        self._maintenance = rpc_pb2_grpc.MaintenanceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, make: Callable[[], Awaitable[T]]) -> T:
        try:
            return await make()
        except grpc.aio.AioRpcError as err:
            raise _translate(err) from None

    # ---- reads ----

    async def get(self, key: bytes) -> KeyValue | None:
        reply = await self._call(lambda: self._kv.Range(
            rpc_pb2.RangeRequest(key=key), timeout=call_timeout(_REQUEST_TIMEOUT)))
        return _kv(reply.kvs[0]) if reply.kvs else None

    async def list_prefix(self, prefix: bytes) -> tuple[list[KeyValue], int]:
        """Every key under `prefix` and the store revision they were read at.

        Read in pages, all at the revision of the first, so that a large registry
        neither exceeds a message size limit nor yields an inconsistent snapshot."""
        end = prefix_end(prefix)
        start, revision = prefix, 0
        out: list[KeyValue] = []
        while True:
            request = rpc_pb2.RangeRequest(key=start, range_end=end, limit=_LIST_PAGE,
                                           revision=revision)
            reply = await self._call(functools.partial(self._kv.Range, request,
                                                       timeout=call_timeout(_LIST_TIMEOUT)))
            revision = revision or int(reply.header.revision)
            out += [_kv(kv) for kv in reply.kvs]
            if not reply.more or not reply.kvs:
                return out, revision
            start = reply.kvs[-1].key + b"\0"

    async def revision(self) -> int:
        """The store's current revision (a one-key read; etcd puts it in every header)."""
        request = rpc_pb2.RangeRequest(key=b"\0", count_only=True)
        reply = await self._call(lambda: self._kv.Range(
            request, timeout=call_timeout(_REQUEST_TIMEOUT)))
        return int(reply.header.revision)

    async def version(self) -> str:
        reply = await self._call(lambda: self._maintenance.Status(
            rpc_pb2.StatusRequest(), timeout=call_timeout(_REQUEST_TIMEOUT)))
        return str(reply.version)

    # ---- writes: each one transaction, so a write and its side keys land together ----

    async def _txn(self, compares: list[rpc_pb2.Compare], ops: list[Put | Delete]
                   ) -> rpc_pb2.TxnResponse:
        request = rpc_pb2.TxnRequest(compare=compares, success=[_op(o) for o in ops])
        return await self._call(lambda: self._kv.Txn(
            request, timeout=call_timeout(_REQUEST_TIMEOUT)))

    async def create(self, key: bytes, value: bytes, *, lease: int = 0,
                     also: Sequence[Put] = ()) -> int:
        """Writes `key` only if absent (and every `also` key likewise); returns the revision."""
        compares = [_absent(key)] + [_absent(p.key) for p in also]
        reply = await self._txn(compares, [Put(key, value, lease), *also])
        if not reply.succeeded:
            if await self.get(key) is not None:
                raise KeyExists(key.decode())
            taken = [p.key for p in also if await self.get(p.key) is not None]
            raise KeyExists((taken[0] if taken else key).decode())
        return int(reply.header.revision)

    async def update(self, key: bytes, value: bytes, expected_revision: int, *,
                     lease: int = 0, also: Sequence[Put | Delete] = ()) -> int:
        """Writes `key` only if it is still at `expected_revision`; returns the new revision.
        KeyExists names a side key to create that was taken while `key` was unchanged."""
        compares = [_mod_is(key, expected_revision)]
        compares += [_absent(o.key) for o in also if isinstance(o, Put)]
        reply = await self._txn(compares, [Put(key, value, lease), *also])
        if not reply.succeeded:
            current = await self.get(key)
            if current is not None and current.mod_revision == expected_revision:
                taken = [p.key for p in also
                         if isinstance(p, Put) and await self.get(p.key) is not None]
                if taken:
                    raise KeyExists(taken[0].decode())
            raise Conflict(key.decode())
        return int(reply.header.revision)

    async def delete(self, key: bytes, expected_revision: int,
                     also: Sequence[Delete] = ()) -> int:
        """Deletes `key` only if it is still at `expected_revision`."""
        reply = await self._txn([_mod_is(key, expected_revision)], [Delete(key), *also])
        if not reply.succeeded:
            if await self.get(key) is None:
                raise KeyNotFound(key.decode())
            raise Conflict(key.decode())
        return int(reply.header.revision)

    async def grant_lease(self, ttl: int) -> int:
        reply = await self._call(lambda: self._lease.LeaseGrant(
            rpc_pb2.LeaseGrantRequest(TTL=ttl), timeout=call_timeout(_REQUEST_TIMEOUT)))
        if reply.error:
            raise StorageError(reply.error)
        return int(reply.ID)

    async def compact(self, revision: int) -> None:
        await self._call(lambda: self._kv.Compact(
            rpc_pb2.CompactionRequest(revision=revision, physical=True), timeout=30))

    # ---- watch ----

    async def watch_all(self, start_revision: int) -> AsyncIterator[WatchBatch]:
        """Every change to any key from `start_revision` on, in revision order.

        Raises Compacted when the start is too old, Unavailable when the stream breaks.
        (No progress requests: etcd before 3.4.24/3.5.8 may answer one before the
        events of a watch that is still catching up, which would claim a revision
        whose events have not arrived.)
        """
        create = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
            key=b"\0", range_end=b"\0", start_revision=start_revision))
        never = asyncio.Event()

        async def requests() -> AsyncIterator[rpc_pb2.WatchRequest]:
            yield create
            await never.wait()  # keep the request side open for the stream's life

        call = self._watch.Watch(requests())
        try:
            async for reply in call:
                if reply.compact_revision:
                    raise Compacted(reply.compact_revision)
                if reply.canceled:
                    raise Unavailable(f"etcd canceled the watch: {reply.cancel_reason}")
                if not reply.events:
                    continue
                events = [WatchEvent(e.type == kv_pb2.Event.DELETE, _kv(e.kv))
                          for e in reply.events]
                yield WatchBatch(int(reply.header.revision), events)
            raise Unavailable("etcd closed the watch stream")
        except grpc.aio.AioRpcError as err:
            raise _translate(err) from None
        finally:
            call.cancel()


def _translate(err: grpc.aio.AioRpcError) -> StorageError:
    code = err.code()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return Timeout(f"etcd did not answer in time: {err.details()}")
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        return Unavailable(f"etcd is unavailable: {err.details()}")
    return StorageError(f"etcd: {code.name}: {err.details()}")
