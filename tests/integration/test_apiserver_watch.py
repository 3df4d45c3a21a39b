"""Watch through the real apiserver: resume, expiry, selectors, bookmarks; event TTL;
and etcd going away and coming back."""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest

from cluster.etcd import etcdctl
from skiff.api.v1 import core_pb2
from skiff.client import errors
from skiff.client.client import Client, WatchEvent


def cm(name: str, ns: str, **labels: str) -> core_pb2.ConfigMap:
    c = core_pb2.ConfigMap()
    c.metadata.name, c.metadata.namespace = name, ns
    c.metadata.labels.update(labels)
    return c


async def collect(stream, count: int, timeout: float = 10.0) -> list[WatchEvent]:  # type: ignore[no-untyped-def]
    out: list[WatchEvent] = []

    async def run() -> None:
        async for event in stream:
            if event.type != "BOOKMARK":
                out.append(event)
            if len(out) >= count:
                return

    await asyncio.wait_for(run(), timeout)
    return out


async def test_watch_from_list_version_sees_every_change(client: Client, ns: str) -> None:
    await client.create(cm("before", ns))
    _, rv = await client.list(core_pb2.ConfigMap, ns)
    stream = client.watch(core_pb2.ConfigMap, ns, resource_version=rv)
    created = await client.create(cm("a", ns))
    created.data["k"] = "v"
    await client.update(created)
    await client.delete(core_pb2.ConfigMap, "a", ns)
    events = await collect(stream, 3)
    assert [(e.type, e.object.metadata.name) for e in events] == [  # type: ignore[union-attr]
        ("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    assert events[1].object.data["k"] == "v"  # type: ignore[union-attr]
    assert int(events[2].resource_version) > int(events[1].resource_version)


async def test_watch_without_version_starts_with_current_state(client: Client, ns: str
                                                               ) -> None:
    await client.create(cm("x", ns))
    await client.create(cm("y", ns))
    events = await collect(client.watch(core_pb2.ConfigMap, ns), 2)
    assert sorted((e.type, e.object.metadata.name) for e in events) == [  # type: ignore[union-attr]
        ("ADDED", "x"), ("ADDED", "y")]


async def test_resume_after_reconnect_loses_no_event(apiserver, ns: str) -> None:  # type: ignore[no-untyped-def]
    """A watcher that disconnects and resumes from the last version it saw receives
    exactly the changes made while it was away."""
    writer, watcher = apiserver.client(), apiserver.client()
    try:
        _, rv = await watcher.list(core_pb2.ConfigMap, ns)
        seen: list[str] = []
        stream = watcher.watch(core_pb2.ConfigMap, ns, resource_version=rv)
        for i in range(5):
            await writer.create(cm(f"c{i}", ns))
        for e in await collect(stream, 5):
            seen.append(e.object.metadata.name)  # type: ignore[union-attr]
            rv = e.resource_version
        await stream.aclose()
        await watcher.close()
        for i in range(5, 10):  # changes while disconnected
            await writer.create(cm(f"c{i}", ns))
        watcher = apiserver.client()
        stream = watcher.watch(core_pb2.ConfigMap, ns, resource_version=rv)
        for i in range(10, 12):
            await writer.create(cm(f"c{i}", ns))
        seen += [e.object.metadata.name for e in await collect(stream, 7)]  # type: ignore[union-attr]
        assert seen == [f"c{i}" for i in range(12)]
    finally:
        await writer.close()
        await watcher.close()


async def test_too_old_version_expires(apiserver_factory) -> None:  # type: ignore[no-untyped-def]
    server = apiserver_factory(extra_args=("--watch-history", "5"))
    client = server.client()
    try:
        _, rv = await client.list(core_pb2.ConfigMap, "default")
        for i in range(10):
            await client.create(cm(f"e{i}", "default"))
        with pytest.raises(errors.Expired, match="too old resource version.*relist"):
            await collect(client.watch(core_pb2.ConfigMap, "default", resource_version=rv), 1)
        # A version within the kept history still resumes.
        _, recent = await client.list(core_pb2.ConfigMap, "default")
        await client.create(cm("after", "default"))
        events = await collect(client.watch(core_pb2.ConfigMap, "default",
                                            resource_version=recent), 1)
        assert events[0].object.metadata.name == "after"  # type: ignore[union-attr]
    finally:
        await client.close()


async def test_filtered_watch_sees_objects_enter_and_leave(client: Client, ns: str) -> None:
    _, rv = await client.list(core_pb2.ConfigMap, ns)
    stream = client.watch(core_pb2.ConfigMap, ns, label_selector="tier=web",
                          resource_version=rv)
    c = await client.create(cm("m", ns, tier="db"))  # not matching: unseen
    c.metadata.labels["tier"] = "web"
    c = await client.update(c)  # now matching: ADDED
    c.metadata.labels["tier"] = "db"
    await client.update(c)  # leaves: DELETED
    await client.create(cm("n", ns, tier="web"))
    events = await collect(stream, 3)
    assert [(e.type, e.object.metadata.name) for e in events] == [  # type: ignore[union-attr]
        ("ADDED", "m"), ("DELETED", "m"), ("ADDED", "n")]


async def test_bookmarks_keep_idle_watchers_current(apiserver, ns: str) -> None:  # type: ignore[no-untyped-def]
    client = apiserver.client()
    try:
        _, rv = await client.list(core_pb2.Secret, ns)
        stream = client.watch(core_pb2.Secret, ns, resource_version=rv, bookmarks=True)
        await client.create(cm("elsewhere", ns))  # another kind moves the revision on

        async def first_bookmark() -> WatchEvent:
            async for e in stream:
                if e.type == "BOOKMARK":
                    return e
            raise AssertionError("stream ended")

        bookmark = await asyncio.wait_for(first_bookmark(), 15)
        assert int(bookmark.resource_version) > int(rv)
    finally:
        await client.close()


async def test_events_expire_through_an_etcd_lease(client: Client, ns: str,
                                                   etcd_endpoint: str) -> None:
    ev = core_pb2.Event()
    ev.metadata.name, ev.metadata.namespace = "p.123", ns
    ev.involved_object.kind, ev.involved_object.name = "Pod", "p"
    ev.involved_object.namespace = ns
    ev.reason, ev.message, ev.type = "Tested", "hello", "Normal"
    await client.create(ev)
    key = f"/registry/events/{ns}/p.123"
    got = json.loads(etcdctl(etcd_endpoint, "get", key, "-w", "json").stdout)
    lease = got["kvs"][0]["lease"]
    assert lease
    ttl = json.loads(etcdctl(etcd_endpoint, "lease", "timetolive", format(lease, "x"),
                             "-w", "json").stdout)
    assert 3600 <= ttl["granted-ttl"] <= 3700
    assert ttl["ttl"] > 3500


async def test_etcd_outage_is_unavailable_then_heals(apiserver_factory, etcd_factory
                                                     ) -> None:  # type: ignore[no-untyped-def]
    etcd = etcd_factory()
    server = apiserver_factory(etcd.endpoint)
    client = server.client()
    try:
        await client.create(cm("kept", "default"))
        etcd.kill()
        with pytest.raises(errors.Unavailable):
            await client.create(cm("lost", "default"))
        etcd.restart()
        for _ in range(100):
            try:
                await client.create(cm("after", "default"))
                break
            except errors.Unavailable:
                await asyncio.sleep(0.1)
        names = sorted(i.metadata.name for i in (await client.list(core_pb2.ConfigMap,
                                                                   "default"))[0])
        assert names == ["after", "kept"]
        # The watch cache recovered too: a new watcher sees new changes.
        _, rv = await client.list(core_pb2.ConfigMap, "default")
        stream = client.watch(core_pb2.ConfigMap, "default", resource_version=rv)
        await client.create(cm("later", "default"))
        assert (await collect(stream, 1))[0].object.metadata.name == "later"  # type: ignore[union-attr]
    finally:
        await client.close()


async def test_history_is_compacted_and_the_cache_survives(apiserver_factory, etcd_factory
                                                            ) -> None:  # type: ignore[no-untyped-def]
    etcd = etcd_factory()
    server = apiserver_factory(etcd.endpoint, extra_args=("--etcd-compaction-interval", "0.5"))
    client = server.client()
    try:
        first = await client.create(cm("old", "default"))
        for i in range(3):
            first.data["n"] = str(i)
            first = await client.update(first)
        await asyncio.sleep(1.5)  # two intervals: the revisions above are compacted
        with pytest.raises(subprocess.CalledProcessError) as old_read:
            etcdctl(etcd.endpoint, "get", "/registry/configmaps/default/old", "--rev", "2")
        assert "compacted" in old_read.value.stderr
        # The apiserver still serves lists and watches from its cache.
        _, rv = await client.list(core_pb2.ConfigMap, "default")
        stream = client.watch(core_pb2.ConfigMap, "default", resource_version=rv)
        await client.create(cm("new", "default"))
        assert (await collect(stream, 1))[0].object.metadata.name == "new"  # type: ignore[union-attr]
    finally:
        await client.close()
