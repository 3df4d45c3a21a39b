"""Port-forward below the CLI: the typed client -> the real apiserver (over a real etcd) ->
the real kubelet server of the pod's node -> a fake runtime, whose "pod network namespace"
is this host's loopback, where the test runs the pod's server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from fixtures.fake_node import FakeNode

from cluster.process import free_ports
from skiff.api.v1 import core_pb2
from skiff.client import errors
from skiff.client.client import Client, PortForwardStream


@pytest.fixture
def node(fake_node: FakeNode) -> FakeNode:
    return fake_node


@pytest.fixture
async def shouting_server() -> AsyncIterator[int]:
    """A loopback server that reads to end of file, then answers it in capitals and
    closes: a request/response exchange that needs the half-close passed on."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()
        writer.write(data.upper())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def running_pod(client: Client, node: FakeNode, ns: str) -> core_pb2.Pod:
    pod = await node.add_pod(ns, "web")
    pod.status.phase = "Running"
    return await client.update_status(pod)


async def read_all(stream: PortForwardStream) -> bytes:
    chunks = []
    while chunk := await stream.read():
        chunks.append(chunk)
    return b"".join(chunks)


async def test_bytes_both_ways_with_half_close(client: Client, ns: str, node: FakeNode,
                                               shouting_server: int) -> None:
    pod = await running_pod(client, node, ns)
    node.runtime.port_forwards[80] = shouting_server
    stream = await client.port_forward("web", 80, ns, pod_uid=pod.metadata.uid)
    await stream.write(b"hello ")
    await stream.write(b"pod" * 50_000)
    await stream.done_writing()
    assert await read_all(stream) == b"HELLO " + b"POD" * 50_000
    sandbox = next(c for c in node.runtime.containers.values() if c.is_sandbox)
    assert node.runtime.calls_to("port_forward_socket") == [(sandbox.id, 80)]


async def test_errors(client: Client, ns: str, node: FakeNode) -> None:
    pending = await node.add_pod(ns, "pending", start=False)
    stream = await client.port_forward("pending", 80, ns)
    with pytest.raises(errors.ApiError, match="unable to forward port because pod is not "
                                              "running. Current status=Pending"):
        await stream.read()

    pod = await running_pod(client, node, ns)
    stream = await client.port_forward("web", 80, ns, pod_uid=pending.metadata.uid)
    with pytest.raises(errors.NotFound, match='pods "web" not found'):
        await stream.read()

    stream = await client.port_forward("nope", 80, ns)
    with pytest.raises(errors.NotFound, match='pods "nope" not found'):
        await stream.read()

    closed = free_ports(1)[0]
    node.runtime.port_forwards[81] = closed
    stream = await client.port_forward("web", 81, ns)
    with pytest.raises(errors.Unavailable) as caught:
        await stream.read()
    assert caught.value.message.startswith(
        f"error forwarding port 81 to pod web, uid {pod.metadata.uid}: failed to connect to "
        f"localhost:{closed} inside namespace")
    assert "dial tcp4 127.0.0.1" in caught.value.message
    assert "connection refused" in caught.value.message
