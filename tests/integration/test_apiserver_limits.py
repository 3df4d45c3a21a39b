"""Bad input at the apiserver: oversized requests and objects, and callers without a token,
are refused with a clear status before they cost the server memory."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from fixtures.apiserver import ApiServerProcess

from skiff.api.limits import MAX_OBJECT_BYTES, MAX_REQUEST_BYTES
from skiff.api.status import StatusReason
from skiff.api.v1 import apps_pb2, core_pb2
from skiff.api.v1 import service_pb2 as api
from skiff.client import errors
from skiff.client.client import Client, pack, throttle_delay
from skiff.client.transport import ClientCredentials, open_channel

TOKEN = "limits-token"
CREATE = "/skiff.api.v1.Api/Create"
HUGE = 60 * 1024 * 1024
# Eight unauthenticated 60 MiB requests may grow the apiserver by no more than this.
RSS_ALLOWANCE = 50 * 1024 * 1024


def rss(pid: int) -> int:
    """A process's resident set, in bytes (/proc/PID/status VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.fixture
def guarded(apiserver_factory: Callable[..., ApiServerProcess], etcd_endpoint: str,
            tmp_path: Path) -> ApiServerProcess:
    """An apiserver that requires TOKEN."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    return apiserver_factory(etcd_endpoint, extra_args=("--token-file", str(token_file)))


def deployment(name: str, ns: str, arg_bytes: int) -> apps_pb2.Deployment:
    d = apps_pb2.Deployment()
    d.metadata.name, d.metadata.namespace = name, ns
    d.spec.selector.match_labels["app"] = name
    d.spec.template.metadata.labels["app"] = name
    container = d.spec.template.spec.containers.add(name="app", image="busybox:1.36")
    container.args.extend(["x" * 1024] * (arg_bytes // 1024))
    return d


def huge_create(size: int) -> bytes:
    """A serialized CreateRequest of about `size` bytes (a Secret of that much data)."""
    secret = core_pb2.Secret()
    secret.metadata.name, secret.metadata.namespace = "huge", "default"
    secret.data["blob"] = b"\0" * size
    return api.CreateRequest(object=pack(secret)).SerializeToString()


async def raw_create(address: str, body: bytes, token: str | None) -> grpc.aio.AioRpcError:
    """Sends `body` as a Create as any gRPC client could (the client library refuses to
    send an oversized request); returns the refusal."""
    channel = open_channel(address, ClientCredentials(token=token))
    try:
        await channel.unary_unary(CREATE)(body, metadata=ClientCredentials(token=token).metadata,
                                          timeout=60)
    except grpc.aio.AioRpcError as err:
        return err
    finally:
        await channel.close()
    raise AssertionError("an oversized request was accepted")


async def test_unauthenticated_huge_requests_are_refused_unread(
        guarded: ApiServerProcess, capsys: pytest.CaptureFixture[str]) -> None:
    async with Client(guarded.address, token=TOKEN) as client:  # warm it up
        for _ in range(3):
            await client.list(core_pb2.Namespace)
    before = rss(guarded.pid)
    body = huge_create(HUGE)
    refusals = await asyncio.gather(*(raw_create(guarded.address, body, None)
                                      for _ in range(8)))
    await asyncio.sleep(0.5)  # let the server's last work settle
    after = rss(guarded.pid)
    with capsys.disabled():
        print(f"\napiserver RSS before 8 unauthenticated 60 MiB requests: {before >> 20} MiB, "
              f"after: {after >> 20} MiB")
    assert [r.code() for r in refusals] == [grpc.StatusCode.UNAUTHENTICATED] * 8
    assert {errors.from_rpc_error(r).reason for r in refusals} == {StatusReason.UNAUTHORIZED}
    assert after - before < RSS_ALLOWANCE, f"RSS grew from {before} to {after} bytes"
    async with Client(guarded.address, token=TOKEN) as client:  # and it keeps serving
        await client.get(core_pb2.Namespace, "default")


async def test_a_request_over_the_limit_is_refused_naming_the_limit(
        guarded: ApiServerProcess) -> None:
    refused = await raw_create(guarded.address, huge_create(MAX_REQUEST_BYTES + 1024), TOKEN)
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    err = errors.from_rpc_error(refused)
    assert isinstance(err, errors.RequestEntityTooLarge)
    assert err.message.startswith("Request entity too large")
    assert str(MAX_REQUEST_BYTES) in err.message

    # The client library does not even send it, and says why.
    secret = core_pb2.Secret()
    secret.metadata.name, secret.metadata.namespace = "huge", "default"
    secret.data["blob"] = b"\0" * (MAX_REQUEST_BYTES + 1024)
    async with Client(guarded.address, token=TOKEN) as client:
        with pytest.raises(errors.RequestEntityTooLarge,
                           match=rf"limit is {MAX_REQUEST_BYTES} bytes \(3 MiB\), the "
                                 rf"request is \d+ bytes"):
            await client.create(secret)


async def test_an_object_over_the_stored_limit_is_refused_and_nothing_is_stored(
        client: Client, ns: str) -> None:
    too_big = MAX_OBJECT_BYTES + 64 * 1024  # under the request limit, over the object's
    name = f"big-{uuid.uuid4().hex[:6]}"
    with pytest.raises(errors.RequestEntityTooLarge) as refused:
        await client.create(deployment(name, ns, too_big))
    assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused.value.reason == StatusReason.REQUEST_ENTITY_TOO_LARGE
    assert f'Deployment.apps "{name}" is too large to store' in refused.value.message
    assert f"the limit is {MAX_OBJECT_BYTES} bytes (1.5 MiB)" in refused.value.message
    with pytest.raises(errors.NotFound):
        await client.get(apps_pb2.Deployment, name, ns)

    small = await client.create(deployment(name, ns, 1024))
    grown = deployment(name, ns, too_big)
    grown.metadata.resource_version = small.metadata.resource_version
    with pytest.raises(errors.RequestEntityTooLarge, match="is too large to store"):
        await client.update(grown)
    live = await client.get(apps_pb2.Deployment, name, ns)
    assert live.metadata.resource_version == small.metadata.resource_version


# ---- requests in flight ----

@pytest.fixture
def narrow(apiserver_factory: Callable[..., ApiServerProcess],
           etcd_endpoint: str) -> ApiServerProcess:
    """An apiserver that serves 2 reads and 1 write at a time."""
    return apiserver_factory(etcd_endpoint, extra_args=(
        "--max-requests-inflight", "2", "--max-mutating-requests-inflight", "1"))


async def test_a_burst_past_the_bound_is_refused_and_the_client_retries_it(
        narrow: ApiServerProcess) -> None:
    ns = f"burst-{uuid.uuid4().hex[:6]}"
    async with Client(narrow.address) as client:
        namespace = core_pb2.Namespace()
        namespace.metadata.name = ns
        await client.create(namespace)

        # Plain gRPC, no retries: the bound shows.
        channel = open_channel(narrow.address)
        try:
            async def create(i: int) -> grpc.aio.AioRpcError | None:
                cm = core_pb2.ConfigMap()
                cm.metadata.name, cm.metadata.namespace = f"raw-{i}", ns
                try:
                    await channel.unary_unary(CREATE)(
                        api.CreateRequest(object=pack(cm)).SerializeToString(), timeout=30)
                except grpc.aio.AioRpcError as err:
                    return err
                return None

            outcomes = await asyncio.gather(*(create(i) for i in range(40)))
        finally:
            await channel.close()
        refused = [errors.from_rpc_error(e) for e in outcomes if e is not None]
        assert refused, "a burst of 40 creates past a bound of 1 was all served"
        for err in refused:
            assert isinstance(err, errors.TooManyRequests), err
            assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert err.retry_after == 1.0
        stored, _ = await client.list(core_pb2.ConfigMap, ns)
        assert len(stored) == 40 - len(refused)  # a refused create was never processed

        # Watches are not counted: more of them than the bound, and reads still pass.
        watches = [client.watch(core_pb2.ConfigMap, ns) for _ in range(4)]
        firsts = [asyncio.ensure_future(anext(w)) for w in watches]
        await asyncio.wait_for(asyncio.gather(*firsts), 10)
        try:
            # The client library backs off and retries: every call succeeds.
            async def create_and_get(i: int) -> None:
                cm = core_pb2.ConfigMap()
                cm.metadata.name, cm.metadata.namespace = f"lib-{i}", ns
                await client.create(cm)
                await client.get(core_pb2.ConfigMap, f"lib-{i}", ns)

            await asyncio.gather(*(create_and_get(i) for i in range(40)))
            assert len((await client.list(core_pb2.ConfigMap, ns))[0]) == 80 - len(refused)
        finally:
            for w in watches:
                await w.aclose()


def test_the_client_waits_at_least_the_hint_and_backs_off() -> None:
    assert 1.0 <= throttle_delay(1, 1.0) <= 1.25
    assert 2.0 <= throttle_delay(2, 1.0) <= 2.5
    assert 8.0 <= throttle_delay(10, 1.0) <= 10.0
    assert 0.5 <= throttle_delay(1, None) <= 0.625
