"""Informers against a real apiserver: the stream handlers see, the cache's indexes, and
convergence after a dropped connection, an apiserver restart and an expired version."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from google.protobuf.message import Message

from skiff.api.v1 import core_pb2
from skiff.client.client import Client
from skiff.client.informer import (
    INDEX_LABEL,
    INDEX_NAMESPACE,
    INDEX_NODE_NAME,
    INDEX_OWNER_UID,
    Informer,
    SharedInformerFactory,
)

# ---- helpers ----


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0,
                     what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def configmap(name: str, ns: str, labels: dict[str, str] | None = None,
              **data: str) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap()
    cm.metadata.name, cm.metadata.namespace = name, ns
    cm.metadata.labels.update(labels or {})
    cm.data.update(data)
    return cm


def pod(name: str, ns: str, node: str = "", owner_uid: str = "", **labels: str
        ) -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.metadata.name, p.metadata.namespace = name, ns
    p.metadata.labels.update(labels)
    p.spec.containers.add(name="app", image="busybox:1.36")
    if node:
        p.spec.node_name = node
    if owner_uid:
        p.metadata.owner_references.add(api_version="apps/v1", kind="ReplicaSet",
                                        name="rs", uid=owner_uid, controller=True)
    return p


class Recorder:
    """Handlers that log what they see and replay it into a dict, to check that the
    stream alone reconstructs the cache."""

    def __init__(self, informer: Informer[Any]) -> None:
        self.log: list[tuple[str, str, Message]] = []
        self.replayed: dict[str, str] = {}  # name -> resourceVersion
        informer.add_handlers(on_add=self._add, on_update=self._update,
                              on_delete=self._delete)

    def _add(self, obj: Any) -> None:
        assert obj.metadata.name not in self.replayed, f"add of known {obj.metadata.name}"
        self.replayed[obj.metadata.name] = obj.metadata.resource_version
        self.log.append(("add", obj.metadata.name, obj))

    def _update(self, old: Any, new: Any) -> None:
        assert old.metadata.name in self.replayed, f"update of unknown {old.metadata.name}"
        assert self.replayed[old.metadata.name] == old.metadata.resource_version
        self.replayed[new.metadata.name] = new.metadata.resource_version
        self.log.append(("update", new.metadata.name, new))

    def _delete(self, obj: Any) -> None:
        assert obj.metadata.name in self.replayed, f"delete of unknown {obj.metadata.name}"
        del self.replayed[obj.metadata.name]
        self.log.append(("delete", obj.metadata.name, obj))

    def events(self) -> list[tuple[str, str]]:
        return [(kind, name) for kind, name, _ in self.log]


def assert_stream_matches_cache(recorder: Recorder, informer: Informer[Any]) -> None:
    assert recorder.replayed == {
        o.metadata.name: o.metadata.resource_version for o in informer.store.list()}


@contextlib.asynccontextmanager
async def running(informer: Informer[Any]) -> AsyncIterator[Informer[Any]]:
    informer.start()
    try:
        await asyncio.wait_for(informer.wait_synced(), 15)
        yield informer
    finally:
        await informer.stop()


class TcpProxy:
    """A TCP relay in front of the apiserver that a test can cut and restore, to drop
    an informer's connection while the apiserver (and its history) stays up."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.up = True
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                      ) -> None:
        if not self.up:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            dst.transport.abort()
            self._writers.discard(dst)

    def cut(self) -> None:
        """Resets every connection and refuses new ones until `restore`."""
        self.up = False
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self.up = True

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# ---- tests ----


async def test_list_then_watch_delivers_add_update_delete(client: Client, ns: str) -> None:
    await client.create(configmap("before", ns, v="1"))
    informer = Informer(client, core_pb2.ConfigMap, ns)
    recorder = Recorder(informer)
    async with running(informer):
        assert informer.has_synced()
        # Its first list is at resourceVersion "0": whatever the watch cache holds, which
        # may be a moment behind the create (then the watch brings it).
        await eventually(lambda: recorder.events() == [("add", "before")], what="before")
        created = await client.create(configmap("new", ns, v="1"))
        changed = configmap("before", ns, v="2")
        await client.update(changed)
        await client.delete(core_pb2.ConfigMap, "new", ns)
        await eventually(lambda: len(recorder.log) == 4, what="three more events")
        assert recorder.events()[1:] == [("add", "new"), ("update", "before"),
                                         ("delete", "new")]
        _, _, updated = recorder.log[2]
        assert updated.data["v"] == "2"  # type: ignore[attr-defined]
        _, _, deleted = recorder.log[3]
        assert deleted.metadata.uid == created.metadata.uid  # type: ignore[attr-defined]
        assert informer.store.keys() == [f"{ns}/before"]
        got = informer.store.get(f"{ns}/before")
        assert got is not None and got.data["v"] == "2"
        assert_stream_matches_cache(recorder, informer)

        # A handler registered late first hears of what is already cached.
        late: list[str] = []
        informer.add_handlers(on_add=lambda o: late.append(o.metadata.name))
        assert late == ["before"]


async def test_indexes_follow_changes(client: Client, ns: str) -> None:
    await client.create(pod("p1", ns, node="node-a", owner_uid="u1", app="web", tier="fe"))
    await client.create(pod("p2", ns, node="node-b", owner_uid="u1", app="web"))
    await client.create(pod("p3", ns, app="db"))
    informer = Informer(client, core_pb2.Pod, ns)
    informer.store.add_indexer("app", lambda p: [p.metadata.labels.get("app", "")])

    def names(index: str, value: str) -> list[str]:
        return [p.metadata.name for p in informer.store.by_index(index, value)]

    async with running(informer):
        assert names(INDEX_NAMESPACE, ns) == ["p1", "p2", "p3"]
        assert names(INDEX_LABEL, "app=web") == ["p1", "p2"]
        assert names(INDEX_LABEL, "tier=fe") == ["p1"]
        assert names(INDEX_NODE_NAME, "node-a") == ["p1"]
        assert names(INDEX_NODE_NAME, "node-b") == ["p2"]
        assert names(INDEX_OWNER_UID, "u1") == ["p1", "p2"]
        assert names("app", "db") == ["p3"]

        p1 = await client.get(core_pb2.Pod, "p1", ns)
        p1.metadata.labels["app"] = "db"
        del p1.metadata.labels["tier"]
        del p1.metadata.owner_references[:]
        await client.update(p1)
        await client.delete(core_pb2.Pod, "p2", ns, grace_period=0)
        await eventually(lambda: names("app", "db") == ["p1", "p3"]
                         and informer.store.get(f"{ns}/p2") is None, what="index update")
        assert names(INDEX_LABEL, "app=web") == []
        assert names(INDEX_LABEL, "tier=fe") == []
        assert names(INDEX_OWNER_UID, "u1") == []
        assert names(INDEX_NODE_NAME, "node-b") == []
        assert names(INDEX_NODE_NAME, "node-a") == ["p1"]
        assert informer.store.index_values(INDEX_NODE_NAME) == ["node-a"]
        with pytest.raises(KeyError):
            informer.store.by_index("no-such-index", "x")


async def test_selectors_limit_the_cache_and_relabels_read_as_add_and_delete(
        client: Client, ns: str) -> None:
    await client.create(configmap("web1", ns, {"app": "web"}))
    await client.create(configmap("db1", ns, {"app": "db"}))
    informer = Informer(client, core_pb2.ConfigMap, ns, label_selector="app=web")
    recorder = Recorder(informer)
    async with running(informer):
        assert recorder.events() == [("add", "web1")]
        web1 = await client.get(core_pb2.ConfigMap, "web1", ns)
        web1.metadata.labels["app"] = "db"  # leaves the selection
        await client.update(web1)
        db1 = await client.get(core_pb2.ConfigMap, "db1", ns)
        db1.metadata.labels["app"] = "web"  # enters it
        await client.update(db1)
        await eventually(lambda: len(recorder.log) == 3, what="relabel events")
        assert recorder.events()[1:] == [("delete", "web1"), ("add", "db1")]
        assert informer.store.keys() == [f"{ns}/db1"]
        assert_stream_matches_cache(recorder, informer)

    await client.create(pod("on-x", ns, node="node-x"))
    await client.create(pod("on-y", ns, node="node-y"))
    pods = Informer(client, core_pb2.Pod, ns, field_selector="spec.nodeName=node-x")
    async with running(pods):
        assert pods.store.keys() == [f"{ns}/on-x"]


async def test_watch_resumes_from_its_version_after_a_dropped_connection(
        client: Client, ns: str, apiserver: Any) -> None:
    """The apiserver stays up (and keeps its history); only the informer's connection
    drops. Everything missed meanwhile arrives once it reconnects, without a relist."""
    proxy = TcpProxy(apiserver.address)
    await proxy.start()
    proxied = Client(proxy.address)
    try:
        for name in ("a", "b"):
            await client.create(configmap(name, ns, v="1"))
        informer = Informer(proxied, core_pb2.ConfigMap, ns)
        recorder = Recorder(informer)
        async with running(informer):
            proxy.cut()
            await client.create(configmap("c", ns, v="1"))
            await client.update(configmap("a", ns, v="2"))
            await client.delete(core_pb2.ConfigMap, "b", ns)
            await asyncio.sleep(0.5)  # the informer is retrying against a closed door
            assert len(recorder.log) == 2
            proxy.restore()
            await eventually(lambda: len(recorder.log) == 5, what="the missed events")
            assert recorder.events()[2:] == [("add", "c"), ("update", "a"), ("delete", "b")]
            assert informer.relists == 0  # resumed from history, not relisted
            assert_stream_matches_cache(recorder, informer)
    finally:
        await proxied.close()
        await proxy.close()


async def test_relist_after_expiry_delivers_what_changed_meanwhile(
        apiserver_factory: Callable[..., Any]) -> None:
    """The informer's apiserver restarts while writes go through another apiserver: its
    new watch cache has no history from the informer's version (Expired), so the
    informer relists, and handlers still see the deletion, the update and the add."""
    first = apiserver_factory()
    second = apiserver_factory(first.etcd_endpoint)
    ns = f"t-{uuid.uuid4().hex[:10]}"
    async with first.client() as watched_through, second.client() as writer:
        namespace = core_pb2.Namespace()
        namespace.metadata.name = ns
        await writer.create(namespace)
        for name in ("keep", "change", "drop"):
            await writer.create(configmap(name, ns, v="1"))
        informer = Informer(watched_through, core_pb2.ConfigMap, ns)
        recorder = Recorder(informer)
        async with running(informer):
            assert sorted(recorder.replayed) == ["change", "drop", "keep"]
            dropped_before = informer.store.get(f"{ns}/drop")
            first.stop()
            await writer.delete(core_pb2.ConfigMap, "drop", ns)
            await writer.update(configmap("change", ns, v="2"))
            await writer.create(configmap("new", ns, v="1"))
            first.start()
            await eventually(lambda: len(recorder.log) == 6, timeout=30,
                             what="the difference after the relist")
            assert informer.relists >= 1
            assert sorted(recorder.events()[3:]) == [("add", "new"), ("delete", "drop"),
                                                     ("update", "change")]
            deleted = next(obj for kind, _, obj in recorder.log if kind == "delete")
            assert deleted == dropped_before  # the last state the informer knew
            got = informer.store.get(f"{ns}/change")
            assert got is not None and got.data["v"] == "2"
            assert_stream_matches_cache(recorder, informer)

            # And the informer watches on from the new list.
            await writer.create(configmap("after", ns, v="1"))
            await eventually(lambda: "after" in recorder.replayed, what="a later add")


async def test_shared_informer_factory_shares_one_informer_per_selection(
        client: Client, ns: str) -> None:
    await client.create(configmap("x", ns, {"app": "web"}))
    factory = SharedInformerFactory(client)
    a = factory.informer(core_pb2.ConfigMap, ns)
    assert factory.informer(core_pb2.ConfigMap, ns) is a
    assert factory.informer("configmaps", ns) is a
    web = factory.informer(core_pb2.ConfigMap, ns, label_selector="app=web")
    assert web is not a
    factory.start_all()
    try:
        await factory.wait_for_sync(timeout=15)
        assert a.store.keys() == web.store.keys() == [f"{ns}/x"]
        # Asked for after start_all: started by the next start_all.
        pods = factory.informer(core_pb2.Pod, ns)
        assert not pods.has_synced()
        factory.start_all()
        await factory.wait_for_sync(timeout=15)
        assert pods.has_synced() and len(pods.store) == 0
    finally:
        await factory.stop_all()
