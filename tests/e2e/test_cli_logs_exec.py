"""`skiff logs` and `skiff exec` as a user runs them: the real CLI in a subprocess, against a
real apiserver, whose kubelet is the real kubelet server over a fake runtime (in this
test's event loop, so the CLI runs as an asyncio subprocess while it serves).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import struct
import sys
import termios
from pathlib import Path
from typing import Any

import pytest
from fixtures.fake_node import FakeNode

from kubelet.runtime import LABEL_POD_UID
from skiff.api.v1 import core_pb2

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "SKIFF_CONFIG": "/nonexistent/skiff-config"}


@pytest.fixture
def node(fake_node: FakeNode) -> FakeNode:
    return fake_node


class Result:
    def __init__(self, code: int, out: bytes, err: bytes) -> None:
        self.code, self.out, self.err = code, out, err.decode()


async def skiff(apiserver: Any, *args: str, stdin: bytes = b"", timeout: float = 30) -> Result:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli.main", "--server", apiserver.address, *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=REPO, env=ENV)
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    assert proc.returncode is not None
    return Result(proc.returncode, out, err)


def app_container(node: FakeNode, pod: core_pb2.Pod) -> str:
    return next(c.id for c in node.runtime.containers.values()
                if c.labels.get(LABEL_POD_UID) == pod.metadata.uid and not c.is_sandbox)


async def test_logs(apiserver: Any, ns: str, node: FakeNode) -> None:
    await node.add_pod(ns, "web", logs={"app": b"one\ntwo\n"})
    r = await skiff(apiserver, "logs", "web", "-n", ns)
    assert (r.code, r.out, r.err) == (0, b"one\ntwo\n", "")
    r = await skiff(apiserver, "logs", "pod/web", "app", "-n", ns, "--tail", "1")
    assert (r.code, r.out) == (0, b"two\n")
    r = await skiff(apiserver, "logs", "nope", "-n", ns)
    assert (r.code, r.err) == (1, 'error: pods "nope" not found\n')
    r = await skiff(apiserver, "logs", "web", "-n", ns, "-p")
    assert r.code == 1
    assert r.err == 'error: previous terminated container "app" in pod "web" not found\n'


async def test_logs_follow_ends_with_the_container(apiserver: Any, ns: str,
                                                   node: FakeNode) -> None:
    pod = await node.add_pod(ns, "web", logs={"app": b"started\n"})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli.main", "--server", apiserver.address, "logs", "-f",
        "web", "-n", ns, stdout=asyncio.subprocess.PIPE, cwd=REPO, env=ENV)
    assert proc.stdout is not None
    assert await asyncio.wait_for(proc.stdout.readline(), 20) == b"started\n"
    node.runtime.write_log(app_container(node, pod), b"later\n")
    assert await asyncio.wait_for(proc.stdout.readline(), 10) == b"later\n"
    node.runtime.crash(app_container(node, pod))
    assert await asyncio.wait_for(proc.wait(), 10) == 0


async def test_exec_exit_code_and_streams(apiserver: Any, ns: str, node: FakeNode) -> None:
    await node.add_pod(ns, "web")
    r = await skiff(apiserver, "exec", "web", "-n", ns, "--", "sh", "-c", "exit 3")
    assert (r.code, r.err) == (3, "command terminated with exit code 3\n")
    r = await skiff(apiserver, "exec", "-n", ns, "web", "--", "sh", "-c",
                    "echo out; echo err >&2")
    assert (r.code, r.out, r.err) == (0, b"out\n", "err\n")
    r = await skiff(apiserver, "exec", "web", "-i", "-n", ns, "--", "cat",
                    stdin=b"piped in\nand more\n")
    assert (r.code, r.out) == (0, b"piped in\nand more\n")
    # -t with a stdin that is not a terminal: kubectl's warning, and no TTY.
    r = await skiff(apiserver, "exec", "-it", "web", "-n", ns, "--", "cat", stdin=b"x\n")
    assert (r.code, r.out) == (0, b"x\n")
    assert "Unable to use a TTY" in r.err
    assert not node.runtime.sessions[-1].tty
    r = await skiff(apiserver, "exec", "web", "-n", ns)
    assert r.code == 1 and "at least one command" in r.err
    r = await skiff(apiserver, "exec", "nope", "-n", ns, "--", "true")
    assert (r.code, r.err) == (1, 'error: pods "nope" not found\n')


async def test_exec_tty_sends_the_window_size_and_restores_the_terminal(
        apiserver: Any, ns: str, node: FakeNode) -> None:
    await node.add_pod(ns, "web")
    leader, follower = pty.openpty()
    try:
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 77, 0, 0))
        before = termios.tcgetattr(follower)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cli.main", "--server", apiserver.address, "exec",
            "-it", "web", "-n", ns, "--", "stty", "size", stdin=follower, stdout=follower,
            stderr=asyncio.subprocess.PIPE, cwd=REPO, env=ENV)
        code = await asyncio.wait_for(proc.wait(), 30)
        assert proc.stderr is not None
        assert code == 0, await proc.stderr.read()
        assert os.read(leader, 1024) == b"33 77\n"  # raw mode: no \n -> \r\n locally
        assert node.runtime.sessions[-1].tty
        assert termios.tcgetattr(follower) == before
    finally:
        os.close(leader)
        os.close(follower)


async def test_kubelet_down(apiserver: Any, ns: str, node: FakeNode) -> None:
    await node.add_pod(ns, "web")
    await node.stop()
    r = await skiff(apiserver, "exec", "web", "-n", ns, "--", "true")
    assert r.code == 1
    assert r.err.startswith("error: error dialing backend: "), r.err
