"""Interactive exec on the real Docker engine (kubelet/runtime/docker_exec.py): stdin in,
stdout and stderr apart, exit codes, a TTY that follows resizes.

Each test runs a busybox container labelled with a pod uid from `docker_pods`, which
removes it afterwards, pass or fail.
"""

from __future__ import annotations

import asyncio
import threading

import docker
import pytest
from fixtures.docker import DockerPods

from kubelet.runtime import LABEL_POD_UID, ExecSession, NotFound, RuntimeError_
from kubelet.runtime.docker_exec import docker_exec_stream


@pytest.fixture
def container(docker_client: docker.DockerClient, busybox_image: str,
              docker_pods: DockerPods) -> str:
    created = docker_client.containers.run(
        busybox_image, ["sleep", "3600"], detach=True,
        labels={LABEL_POD_UID: docker_pods.new_uid()})
    return str(created.id)


async def collect(session: ExecSession) -> list[tuple[int, bytes]]:
    chunks = [c async for c in session.output()]
    merged: list[tuple[int, bytes]] = []
    for stream, data in chunks:  # the engine may split output anywhere
        if merged and merged[-1][0] == stream:
            merged[-1] = (stream, merged[-1][1] + data)
        else:
            merged.append((stream, data))
    return merged


async def test_cat_echoes_stdin_until_it_ends(docker_client: docker.DockerClient,
                                              container: str) -> None:
    session = await docker_exec_stream(docker_client, container, ["cat"], tty=False,
                                       stdin=True)
    output = session.output()
    await session.write(b"hello\n")
    assert await asyncio.wait_for(anext(output), 10) == (1, b"hello\n")
    await session.write(b"world\n")
    await session.close_stdin()
    rest = b"".join([data async for _, data in output])
    assert rest == b"world\n"
    assert await asyncio.wait_for(session.exit_code(), 10) == 0


async def test_exit_code_and_separate_stderr(docker_client: docker.DockerClient,
                                             container: str) -> None:
    session = await docker_exec_stream(
        docker_client.api, container, ["sh", "-c", "echo out; sleep 0.1; echo err >&2; exit 3"],
        tty=False, stdin=False)
    assert await collect(session) == [(1, b"out\n"), (2, b"err\n")]
    assert await session.exit_code() == 3


async def test_tty_merges_streams_and_follows_resizes(docker_client: docker.DockerClient,
                                                      container: str) -> None:
    session = await docker_exec_stream(docker_client, container, ["sh"], tty=True, stdin=True)
    await session.resize(30, 100)
    await session.write(b"stty size; echo err >&2; exit 5\n")
    text = b"".join(data for _, data in await collect(session))
    assert b"30 100\r\n" in text and b"err\r\n" in text  # a terminal: \r\n, one stream
    assert await session.exit_code() == 5


async def test_large_output_arrives_whole(docker_client: docker.DockerClient,
                                          container: str) -> None:
    session = await docker_exec_stream(
        docker_client, container, ["sh", "-c", "head -c 3000000 /dev/zero; echo done >&2"],
        tty=False, stdin=False)
    sizes = {1: 0, 2: 0}
    async for stream, data in session.output():
        sizes[stream] += len(data)
    assert sizes == {1: 3_000_000, 2: len(b"done\n")}
    assert await session.exit_code() == 0


async def test_missing_command_is_the_engines_message_and_exit_code(
        docker_client: docker.DockerClient, container: str) -> None:
    session = await docker_exec_stream(docker_client, container, ["nosuchcmd"], tty=False,
                                       stdin=False)
    text = b"".join(data for _, data in await collect(session))
    assert b"executable file not found" in text
    assert await session.exit_code() in (126, 127)


async def test_closing_the_output_early_ends_the_reader(docker_client: docker.DockerClient,
                                                        container: str) -> None:
    session = await docker_exec_stream(docker_client, container, ["sleep", "60"], tty=False,
                                       stdin=True)
    output = session.output()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(output), 0.3)
    await output.aclose()
    def readers() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.startswith("skiff-exec-")]

    for _ in range(50):
        if not readers():
            break
        await asyncio.sleep(0.05)
    assert readers() == []


async def test_missing_or_stopped_container(docker_client: docker.DockerClient,
                                            container: str) -> None:
    with pytest.raises(NotFound):
        await docker_exec_stream(docker_client, "0" * 64, ["true"], tty=False, stdin=False)
    docker_client.api.stop(container, timeout=0)
    with pytest.raises(RuntimeError_, match="is not running"):
        await docker_exec_stream(docker_client, container, ["true"], tty=False, stdin=False)

