"""What the scheduler does when a bind fails: it gives the room back and tries again later.

A stand-in apiserver (lists what it is given, never sends watch events, fails the first
bind) is enough here: the real-apiserver paths are covered by the integration tests, and a
bind failure cannot be provoked reliably against a real apiserver.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from scheduler.scheduler import Scheduler
from skiff.api.v1 import core_pb2
from skiff.client import errors
from skiff.client.client import WatchEvent
from skiff.client.events import FakeRecorder


class FlakyApiServer:
    def __init__(self, objects: list[Any]) -> None:
        self.objects = objects
        self.binds: list[tuple[str, str, bool]] = []  # (pod, node, succeeded)

    async def list(self, kind: Any, namespace: str = "", **_: Any) -> tuple[list[Any], str]:
        name = getattr(kind, "kind", None) or getattr(kind, "__name__", "")
        return [o for o in self.objects if type(o).__name__ == name], "1"

    async def watch(self, *args: Any, **kwargs: Any) -> AsyncIterator[WatchEvent]:
        await asyncio.Event().wait()
        yield WatchEvent("BOOKMARK", None, "1")  # pragma: no cover

    async def bind(self, namespace: str, name: str, node: str, uid: str = "") -> Any:
        first = not self.binds
        self.binds.append((name, node, not first))
        if first:
            raise errors.Unavailable("etcd is briefly gone")
        return None

    async def update_status(self, obj: Any) -> Any:
        return obj


def pod(name: str, cpu: str, created: int) -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.metadata.namespace, p.metadata.name, p.metadata.uid = "ns", name, f"uid-{name}"
    p.metadata.creation_timestamp.seconds = created
    p.spec.scheduler_name = "default-scheduler"
    c = p.spec.containers.add(name="c", image="i")
    c.resources.requests["cpu"].value = cpu
    return p


async def test_a_failed_bind_frees_the_room_and_the_pod_is_retried() -> None:
    node = core_pb2.Node()
    node.metadata.name = "only"
    node.status.allocatable["cpu"].value = "1"
    node.status.allocatable["pods"].value = "10"
    node.status.conditions.add(type="Ready", status="True")
    server = FlakyApiServer([node, pod("first", "600m", 1)])
    recorder = FakeRecorder()
    scheduler = Scheduler(server, recorder=recorder)  # type: ignore[arg-type]
    task = asyncio.create_task(scheduler.run())
    try:
        await _until(lambda: len(server.binds) == 1)
        await asyncio.sleep(0.05)
        # The bind failed: the room the pod was given is free again, and it waits.
        booked = scheduler.cache.node("only")
        assert booked is not None and booked.requested.milli_cpu == 0
        assert scheduler.queue.pending()["backoff"] == 1
        await _until(lambda: len(server.binds) == 2)  # after its 1 s back-off
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert server.binds == [("first", "only", False), ("first", "only", True)]
    assert "Warning FailedScheduling Binding rejected: etcd is briefly gone" in recorder.events
    assert "Normal Scheduled Successfully assigned ns/first to only" in recorder.events
    assert booked.requested.milli_cpu == 600


async def _until(check: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)
