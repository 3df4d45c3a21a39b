"""Logs and exec end to end below the CLI: the typed client -> the real apiserver (over a
real etcd) -> the real kubelet server of the pod's node -> a fake runtime.

The node's kubelet server runs in the test's event loop (tests/fixtures/fake_node.py); the
apiserver finds it through the Node's status, as it finds any kubelet.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest
from fixtures.fake_node import FakeNode

from cluster.process import free_ports
from kubelet.runtime import LABEL_POD_UID
from kubelet.server import start_kubelet_server
from skiff.api.v1 import kubelet_pb2 as kapi
from skiff.api.v1 import kubelet_pb2_grpc
from skiff.client import errors
from skiff.client.client import Client
from skiff.client.transport import ClientCredentials, open_channel


@pytest.fixture
def node(fake_node: FakeNode) -> FakeNode:
    return fake_node


async def read_logs(client: Client, pod: str, ns: str, **kwargs: object) -> bytes:
    return b"".join([chunk async for chunk in client.logs(pod, ns, **kwargs)])  # type: ignore[arg-type]


# ---- logs ----

async def test_logs_of_the_only_container(client: Client, ns: str, node: FakeNode) -> None:
    await node.add_pod(ns, "web", logs={"app": b"one\ntwo\nthree\n"})
    assert await read_logs(client, "web", ns) == b"one\ntwo\nthree\n"
    assert await read_logs(client, "web", ns, tail_lines=2) == b"two\nthree\n"
    assert await read_logs(client, "web", ns, tail_lines=0) == b""
    stamped = (await read_logs(client, "web", ns, timestamps=True)).splitlines()
    assert len(stamped) == 3
    assert stamped[0].endswith(b"Z one") and stamped[0][:4].isdigit()


async def test_logs_follow_streams_until_the_container_stops(client: Client, ns: str,
                                                            node: FakeNode) -> None:
    pod = await node.add_pod(ns, "web", logs={"app": b"started\n"})
    cid = next(c.id for c in node.runtime.containers.values()
               if c.labels.get(LABEL_POD_UID) == pod.metadata.uid and not c.is_sandbox)
    stream = client.logs("web", ns, follow=True)
    assert await anext(stream) == b"started\n"
    node.runtime.write_log(cid, b"more\n")
    assert await asyncio.wait_for(anext(stream), 5) == b"more\n"
    node.runtime.crash(cid, 1)
    rest = await asyncio.wait_for(read_rest(stream), 5)
    assert rest == b""  # the stream ended with the container


async def read_rest(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


async def test_logs_follow_ends_on_the_kubelet_when_the_caller_goes_away(
        client: Client, ns: str, node: FakeNode) -> None:
    await node.add_pod(ns, "web", logs={"app": b"x\n"})
    stream = client.logs("web", ns, follow=True)
    assert await anext(stream) == b"x\n"
    assert node.runtime.following == 1
    await stream.aclose()  # type: ignore[attr-defined]
    # The cancel reaches the kubelet through the apiserver, which closes the runtime's stream.
    for _ in range(100):
        if node.runtime.following == 0:
            break
        await asyncio.sleep(0.05)
    assert node.runtime.following == 0


async def test_logs_previous_is_the_attempt_before_the_newest(client: Client, ns: str,
                                                             node: FakeNode) -> None:
    pod = await node.add_pod(ns, "web", logs={"app": b"first run\n"})
    with pytest.raises(errors.NotFound,
                       match='previous terminated container "app" in pod "web" not found'):
        await read_logs(client, "web", ns, previous=True)
    first = next(c.id for c in node.runtime.containers.values() if c.name.endswith("_app_0"))
    node.runtime.crash(first, 2)
    await node.start_container(pod, "app", attempt=1, log=b"second run\n")
    assert await read_logs(client, "web", ns) == b"second run\n"
    assert await read_logs(client, "web", ns, previous=True) == b"first run\n"


async def test_logs_of_a_pod_with_several_containers_needs_a_name(client: Client, ns: str,
                                                                  node: FakeNode) -> None:
    await node.add_pod(ns, "web", ["a", "b"], logs={"a": b"from a\n", "b": b"from b\n"})
    with pytest.raises(errors.Invalid) as err:
        await read_logs(client, "web", ns)
    assert err.value.message == ("a container name must be specified for pod web, "
                                 "choose one of: [a b]")
    assert await read_logs(client, "web", ns, container="b") == b"from b\n"
    with pytest.raises(errors.Invalid, match="container c is not valid for pod web"):
        await read_logs(client, "web", ns, container="c")


async def test_logs_errors(client: Client, ns: str, node: FakeNode) -> None:
    with pytest.raises(errors.NotFound, match='pods "nope" not found'):
        await read_logs(client, "nope", ns)
    await node.add_pod(ns, "pending", bound=False)
    with pytest.raises(errors.FailedPrecondition, match='pod "pending" is not scheduled yet'):
        await read_logs(client, "pending", ns)
    # Bound, but the kubelet has not started it: the kubelet's own error comes through.
    await node.add_pod(ns, "starting", start=False)
    with pytest.raises(errors.FailedPrecondition,
                       match='container "app" in pod "starting" is waiting to start'):
        await read_logs(client, "starting", ns)


async def test_kubelet_down_is_unavailable(client: Client, ns: str, node: FakeNode) -> None:
    await node.add_pod(ns, "web", logs={"app": b"hi\n"})
    assert await read_logs(client, "web", ns) == b"hi\n"  # a cached channel, then...
    await node.stop()
    with pytest.raises(errors.Unavailable, match="^error dialing backend: "):
        await read_logs(client, "web", ns)
    with pytest.raises(errors.Unavailable, match="^error dialing backend: "):
        await (await client.exec("web", ["true"], ns)).wait()


# ---- exec ----

async def test_exec_round_trips_stdin_and_passes_the_exit_code(client: Client, ns: str,
                                                              node: FakeNode) -> None:
    await node.add_pod(ns, "web")
    session = await client.exec("web", ["cat"], ns, stdin=True)
    await session.write(b"hello\n")
    output = session.output()
    assert await asyncio.wait_for(anext(output), 5) == (1, b"hello\n")
    await session.write(b"world\n")
    assert await asyncio.wait_for(anext(output), 5) == (1, b"world\n")
    await session.close_stdin()
    assert [chunk async for chunk in output] == []
    assert session.exit_code == 0
    await session.close()

    session = await client.exec("web", ["sh", "-c", "exit 3"], ns)
    assert await session.wait() == 3


async def test_exec_separates_stderr_without_a_tty(client: Client, ns: str,
                                                   node: FakeNode) -> None:
    await node.add_pod(ns, "web")
    script = ["sh", "-c", "echo out; echo err >&2; exit 1"]
    session = await client.exec("web", script, ns)
    assert [c async for c in session.output()] == [(1, b"out\n"), (2, b"err\n")]
    assert session.exit_code == 1
    session = await client.exec("web", script, ns, tty=True, stdin=True)
    assert [c async for c in session.output()] == [(1, b"out\n"), (1, b"err\n")]


async def test_exec_tty_resize_reaches_the_runtime(client: Client, ns: str,
                                                   node: FakeNode) -> None:
    await node.add_pod(ns, "web")
    session = await client.exec("web", ["stty", "size"], ns, tty=True, stdin=True)
    await session.resize(40, 120)
    assert [c async for c in session.output()] == [(1, b"40 120\n")]
    assert node.runtime.sessions[-1].tty


async def test_exec_errors(client: Client, ns: str, node: FakeNode) -> None:
    with pytest.raises(errors.NotFound, match='pods "nope" not found'):
        await (await client.exec("nope", ["true"], ns)).wait()
    await node.add_pod(ns, "pending", bound=False)
    with pytest.raises(errors.FailedPrecondition, match='pod "pending" is not scheduled yet'):
        await (await client.exec("pending", ["true"], ns)).wait()
    await node.add_pod(ns, "two", ["a", "b"])
    with pytest.raises(errors.Invalid, match=r"choose one of: \[a b\]"):
        await (await client.exec("two", ["true"], ns)).wait()
    assert await (await client.exec("two", ["sh", "-c", "exit 4"], ns, container="b")).wait() == 4
    with pytest.raises(errors.Invalid, match="at least one command"):
        await (await client.exec("two", [], ns, container="a")).wait()
    pod = await node.add_pod(ns, "dead")
    for c in node.runtime.containers.values():
        if c.labels.get(LABEL_POD_UID) == pod.metadata.uid and not c.is_sandbox:
            node.runtime.crash(c.id, 1)
    with pytest.raises(errors.FailedPrecondition, match='container "app" in pod "dead" is not '
                       "running"):
        await (await client.exec("dead", ["true"], ns)).wait()


# ---- the kubelet's server on its own ----

async def test_kubelet_server_finds_pods_by_name_and_requires_its_token(
        client: Client, ns: str, node: FakeNode) -> None:
    await node.add_pod(ns, "two", ["a", "b"], logs={"a": b"A\n"})
    port = free_ports(1)[0]
    server = await start_kubelet_server(node.runtime, port, "s3cret", address="127.0.0.1")
    channel = open_channel(f"127.0.0.1:{port}")
    stub = kubelet_pb2_grpc.KubeletStub(channel)
    good = ClientCredentials(token="s3cret").metadata
    try:
        # No uid: found by namespace and name; several containers: the kubelet asks which.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in stub.Logs(kapi.LogsRequest(namespace=ns, pod="two"), metadata=good):
                pass
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details() == ("a container name must be specified for pod two, "
                                       "choose one of: [a b]")
        chunks = [c.data async for c in stub.Logs(
            kapi.LogsRequest(namespace=ns, pod="two", container="a"), metadata=good)]
        assert chunks == [b"A\n"]
        # Without the token, streaming calls of either shape are refused cleanly.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in stub.Logs(kapi.LogsRequest(namespace=ns, pod="two", container="a")):
                pass
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        call = stub.Exec(iter([kapi.ExecRequest(start=kapi.ExecStart(
            namespace=ns, pod="two", container="a", command=["true"]))]))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in call:
                pass
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await channel.close()
        await server.stop(grace=0)


async def test_apiserver_sends_its_kubelet_token(
        apiserver_factory: Callable[..., object], tmp_path: Path) -> None:
    token_file = tmp_path / "kubelet-token"
    token_file.write_text("t0ken\n")
    server = apiserver_factory(extra_args=("--kubelet-token-file", str(token_file)))
    client: Client = server.client()  # type: ignore[attr-defined]
    good = await FakeNode(client, token="t0ken").start()
    bad = await FakeNode(client, token="other").start()
    try:
        await good.add_pod("default", "web", logs={"app": b"secret logs\n"})
        assert await read_logs(client, "web", "default") == b"secret logs\n"
        session = await client.exec("web", ["cat"], "default", stdin=True)
        await session.write(b"in\n")
        await session.close_stdin()
        assert [c async for c in session.output()] == [(1, b"in\n")]
        await bad.add_pod("default", "other", logs={"app": b"x\n"})
        with pytest.raises(errors.Unauthenticated, match="kubelet-token-file"):
            await read_logs(client, "other", "default")
    finally:
        await good.stop()
        await bad.stop()
        await client.close()


async def test_apiserver_token_guards_logs_and_exec(
        apiserver_factory: Callable[..., object], tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("abc")
    server = apiserver_factory(extra_args=("--token-file", str(token_file)))
    client = Client(server.address)  # type: ignore[attr-defined]
    try:
        with pytest.raises(errors.Unauthenticated):
            await read_logs(client, "web", "default")
        with pytest.raises(errors.Unauthenticated):
            await (await client.exec("web", ["true"], "default")).wait()
    finally:
        await client.close()
