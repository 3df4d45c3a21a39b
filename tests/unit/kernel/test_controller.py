"""The Controller base over informers fed by an in-memory list/watch source."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from google.protobuf.message import Message

from skiff.api.v1 import apps_pb2, core_pb2
from skiff.client import errors
from skiff.client.client import WatchEvent
from skiff.client.controller import Controller, controller_owner_key
from skiff.client.informer import Informer, object_key
from skiff.client.workqueue import ItemExponentialFailureRateLimiter


class FakeSource:
    """A list/watch source: objects in memory, watchers fed from a log of events."""

    def __init__(self) -> None:
        self.objects: dict[str, Message] = {}
        self.revision = 0
        self.history: list[WatchEvent] = []
        self.list_gate = asyncio.Event()
        self.list_gate.set()
        self.lists = 0
        self._changed = asyncio.Condition()

    async def list(self, kind: object, namespace: str = "", *, label_selector: str = "",
                   field_selector: str = "", resource_version: str = ""
                   ) -> tuple[list[Message], str]:
        await self.list_gate.wait()
        self.lists += 1
        return list(self.objects.values()), str(self.revision)

    async def watch(self, kind: object, namespace: str = "", *, label_selector: str = "",
                    field_selector: str = "", resource_version: str = "",
                    bookmarks: bool = False) -> AsyncIterator[WatchEvent]:
        sent = int(resource_version or 0)
        while True:
            for event in self.history:
                if int(event.resource_version) > sent:
                    sent = int(event.resource_version)
                    yield event
            async with self._changed:
                await self._changed.wait_for(self._newer_than(sent))

    def _newer_than(self, sent: int) -> Callable[[], bool]:
        return lambda: bool(self.history) and int(self.history[-1].resource_version) > sent

    async def _emit(self, type_: str, obj: Message) -> None:
        self.revision += 1
        copy = type(obj)()
        copy.CopyFrom(obj)
        copy.metadata.resource_version = str(self.revision)  # type: ignore[attr-defined]
        if type_ == "DELETED":
            self.objects.pop(object_key(copy), None)
        else:
            self.objects[object_key(copy)] = copy
        self.history.append(WatchEvent(type_, copy, str(self.revision)))
        async with self._changed:
            self._changed.notify_all()

    async def put(self, obj: Message) -> None:
        known = object_key(obj) in self.objects
        await self._emit("MODIFIED" if known else "ADDED", obj)

    async def delete(self, obj: Message) -> None:
        await self._emit("DELETED", obj)


def configmap(name: str, ns: str = "ns1", **data: str) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap()
    cm.metadata.name, cm.metadata.namespace = name, ns
    cm.data.update(data)
    return cm


class RecordingController(Controller):
    def __init__(self, informer: Informer[core_pb2.ConfigMap],
                 fail: Callable[[str, int], bool] | None = None, workers: int = 2) -> None:
        super().__init__("recording", informers=[informer], workers=workers,
                         rate_limiter=ItemExponentialFailureRateLimiter(0.001, 0.01))
        self.informer = informer
        self.enqueue_from(informer)
        self.calls: list[str] = []
        self.seen: dict[str, str] = {}
        self.fail = fail or (lambda key, attempt: False)
        self.running: set[str] = set()
        self.overlap = False

    async def sync(self, key: str) -> None:
        # Concurrent syncs of one key would break every controller's reasoning.
        if key in self.running:
            self.overlap = True
        self.running.add(key)
        try:
            self.calls.append(key)
            await asyncio.sleep(0)
            if self.fail(key, self.calls.count(key)):
                raise RuntimeError(f"sync of {key} failed")
            obj = self.informer.store.get(key)
            self.seen[key] = obj.data.get("v", "") if obj is not None else "<gone>"
        finally:
            self.running.discard(key)


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


@pytest.fixture
async def source() -> FakeSource:
    return FakeSource()


async def test_sync_is_called_per_key_with_the_latest_state(source: FakeSource) -> None:
    await source.put(configmap("a", v="1"))
    informer: Informer[core_pb2.ConfigMap] = Informer(source, core_pb2.ConfigMap)  # type: ignore[arg-type]
    controller = RecordingController(informer)
    informer.start()
    run = asyncio.create_task(controller.run())
    try:
        await wait_for(lambda: controller.seen.get("ns1/a") == "1")
        await source.put(configmap("b", v="1"))
        for v in "23456":  # a burst of updates to one object
            await source.put(configmap("a", v=v))
        await source.delete(configmap("b"))
        await wait_for(lambda: controller.seen.get("ns1/a") == "6"
                       and controller.seen.get("ns1/b") == "<gone>")
        assert set(controller.calls) == {"ns1/a", "ns1/b"}
        assert not controller.overlap
    finally:
        run.cancel()
        await informer.stop()
        with pytest.raises(asyncio.CancelledError):
            await run
    assert controller.queue.shutting_down()


async def test_a_failing_sync_is_retried_with_backoff_until_it_succeeds(
        source: FakeSource) -> None:
    await source.put(configmap("flaky", v="1"))
    await source.put(configmap("fine", v="1"))
    informer: Informer[core_pb2.ConfigMap] = Informer(source, core_pb2.ConfigMap)  # type: ignore[arg-type]
    controller = RecordingController(
        informer, fail=lambda key, attempt: key == "ns1/flaky" and attempt <= 3)
    informer.start()
    run = asyncio.create_task(controller.run())
    try:
        await wait_for(lambda: "ns1/flaky" in controller.seen)
        assert controller.calls.count("ns1/flaky") == 4
        assert controller.calls.count("ns1/fine") == 1
        # Success forgets the failures: the next failure starts from the base delay.
        assert controller.queue.num_requeues("ns1/flaky") == 0
    finally:
        run.cancel()
        await informer.stop()
        await asyncio.gather(run, return_exceptions=True)


async def test_workers_wait_for_the_informers_to_sync(source: FakeSource) -> None:
    await source.put(configmap("a", v="1"))
    source.list_gate.clear()
    informer: Informer[core_pb2.ConfigMap] = Informer(source, core_pb2.ConfigMap)  # type: ignore[arg-type]
    controller = RecordingController(informer)
    controller.enqueue_key("ns1/a")  # e.g. a key queued by another informer early
    informer.start()
    run = asyncio.create_task(controller.run())
    try:
        await asyncio.sleep(0.05)
        assert controller.calls == []  # acting on an empty cache would read "gone"
        source.list_gate.set()
        await wait_for(lambda: controller.seen.get("ns1/a") == "1")
        assert controller.calls == ["ns1/a"]
    finally:
        run.cancel()
        await informer.stop()
        await asyncio.gather(run, return_exceptions=True)


async def test_enqueue_owner_uses_the_controller_reference(source: FakeSource) -> None:
    class OwnerController(Controller):
        def __init__(self, pods: Informer[core_pb2.Pod]) -> None:
            super().__init__("owners")
            self.enqueue_owners_from(pods, apps_pb2.ReplicaSet)
            self.keys: list[str] = []

        async def sync(self, key: str) -> None:
            self.keys.append(key)

    def pod(name: str, *owners: tuple[str, str, bool]) -> core_pb2.Pod:
        p = core_pb2.Pod()
        p.metadata.name, p.metadata.namespace = name, "ns1"
        for kind, owner, is_controller in owners:
            p.metadata.owner_references.add(kind=kind, name=owner, uid=f"uid-{owner}",
                                            controller=is_controller)
        return p

    assert controller_owner_key(pod("p", ("ReplicaSet", "rs1", True)), "ReplicaSet") == \
        "ns1/rs1"
    assert controller_owner_key(pod("p", ("ReplicaSet", "rs1", False)), "ReplicaSet") is None
    assert controller_owner_key(pod("p", ("Job", "j", True)), apps_pb2.ReplicaSet) is None

    pods: Informer[core_pb2.Pod] = Informer(source, core_pb2.Pod)  # type: ignore[arg-type]
    controller = OwnerController(pods)
    assert controller.informers == [pods]
    pods.start()
    run = asyncio.create_task(controller.run())
    try:
        await source.put(pod("p1", ("ReplicaSet", "rs1", True)))
        await source.put(pod("p2", ("ReplicaSet", "rs2", False), ("Job", "j", True)))
        await wait_for(lambda: "ns1/rs1" in controller.keys)
        # An update that moves p1 to another owner wakes both owners.
        await source.put(pod("p1", ("ReplicaSet", "rs3", True)))
        await wait_for(lambda: {"ns1/rs1", "ns1/rs3"} <= set(controller.keys)
                       and controller.keys.count("ns1/rs1") >= 2)
        assert "ns1/rs2" not in controller.keys and "ns1/j" not in controller.keys
    finally:
        run.cancel()
        await pods.stop()
        await asyncio.gather(run, return_exceptions=True)


async def test_informer_relists_on_expiry_and_delivers_the_difference(
        source: FakeSource) -> None:
    """Handlers see a consistent stream across a relist (the fake source forgets its
    history, as an apiserver whose watch cache restarted)."""
    await source.put(configmap("keep", v="1"))
    await source.put(configmap("change", v="1"))
    await source.put(configmap("drop", v="1"))
    informer: Informer[core_pb2.ConfigMap] = Informer(source, core_pb2.ConfigMap)  # type: ignore[arg-type]
    seen: list[tuple[str, str, str]] = []
    informer.add_handlers(
        on_add=lambda o: seen.append(("add", o.metadata.name, o.data["v"])),
        on_update=lambda old, new: seen.append(("update", new.metadata.name, new.data["v"])),
        on_delete=lambda o: seen.append(("delete", o.metadata.name, o.data["v"])))

    real_watch = source.watch
    expire = asyncio.Event()

    async def watch(*args: object, **kwargs: object) -> AsyncIterator[WatchEvent]:
        if expire.is_set():
            expire.clear()
            raise errors.Expired("too old resource version")
        async for event in real_watch(*args, **kwargs):  # type: ignore[arg-type]
            if expire.is_set():
                raise errors.Unavailable("connection reset")
            yield event

    source.watch = watch  # type: ignore[method-assign]
    informer.start()
    try:
        await informer.wait_synced()
        await wait_for(lambda: len(seen) == 3)
        # While "disconnected": changes whose events the informer will never see.
        expire.set()
        source.objects.pop("ns1/drop")
        changed = configmap("change", v="2")
        changed.metadata.resource_version = "100"
        source.objects["ns1/change"] = changed
        source.objects["ns1/new"] = configmap("new", v="1")
        source.revision = 100
        await source.put(configmap("keep", v="1"))  # wakes the watch, which then fails
        await wait_for(lambda: informer.relists == 1 and len(seen) >= 7)
        assert sorted(seen[3:]) == [("add", "new", "1"), ("delete", "drop", "1"),
                                    ("update", "change", "2"), ("update", "keep", "1")]
        assert sorted(informer.store.keys()) == ["ns1/change", "ns1/keep", "ns1/new"]
    finally:
        await informer.stop()
