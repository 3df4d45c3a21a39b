"""Logs and exec through the whole real chain: client -> apiserver -> a `skiff-kubelet`
process (its server on --port, advertised in its Node's status) -> Docker.
"""

from __future__ import annotations

import asyncio

from fixtures.kubelet import KubeletProcess, kubelet, kubelet_factory  # noqa: F401

from skiff.api.v1 import core_pb2
from skiff.client.client import Client


async def running_pod(client: Client, ns: str, node: str, image: str) -> None:
    pod = core_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace = "web", ns
    c = pod.spec.containers.add(name="app", image=image, image_pull_policy="Never")
    c.command.extend(["sh", "-c", "echo hello; sleep 3600"])
    pod.spec.node_name = node
    await client.create(pod)
    for _ in range(150):
        pod = await client.get(core_pb2.Pod, "web", ns)
        if pod.status.phase == "Running":
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"pod did not start: {pod.status}")


async def test_logs_and_exec_on_docker(kubelet: KubeletProcess, client: Client, ns: str,  # noqa: F811
                                       busybox_image: str) -> None:
    await running_pod(client, ns, kubelet.node_name, busybox_image)
    node = await client.get(core_pb2.Node, kubelet.node_name)
    assert node.status.daemon_endpoints.kubelet_endpoint.port == kubelet.port

    for _ in range(50):  # the container's first line may take a moment to be logged
        if b"".join([c async for c in client.logs("web", ns)]) == b"hello\n":
            break
        await asyncio.sleep(0.1)
    assert b"".join([c async for c in client.logs("web", ns)]) == b"hello\n"

    session = await client.exec("web", ["cat"], ns, stdin=True)
    await session.write(b"ping\n")
    await session.close_stdin()
    assert [c async for c in session.output()] == [(1, b"ping\n")]
    assert session.exit_code == 0

    session = await client.exec("web", ["sh", "-c", "echo e >&2; exit 7"], ns)
    assert [c async for c in session.output()] == [(2, b"e\n")]
    assert session.exit_code == 7
