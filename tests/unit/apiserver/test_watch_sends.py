"""The watchers' shared rate of sends: a burst of events reaches a busy watcher in a few
batches, complete and in order, instead of one send per event."""

from __future__ import annotations

import asyncio

import pytest
from fixtures.memstore import MemoryStore

from apiserver.namespaces import ensure_built_in
from apiserver.registry import Registry
from apiserver.watchcache import SendBudget, WatchCache
from skiff.api import kinds
from skiff.api.v1 import core_pb2
from skiff.api.v1 import service_pb2 as api


def test_sends_within_the_burst_go_at_once_and_the_rest_wait_their_turn() -> None:
    budget = SendBudget(rate=100, burst=2)
    assert [budget.reserve(10.0) for _ in range(4)] == pytest.approx([0, 0, 0.01, 0.02])
    # A second later the bucket is full again, and never fuller than the burst.
    assert [budget.reserve(11.0) for _ in range(3)] == pytest.approx([0, 0, 0.01])


def test_no_rate_means_no_wait() -> None:
    budget = SendBudget(rate=0)
    assert {budget.reserve(0.0) for _ in range(1000)} == {0.0}


async def _burst_to_a_watcher(budget: SendBudget, events: int) -> list[list[str]]:
    """Creates `events` ConfigMaps while one watcher reads; the names each send carried."""
    cache = WatchCache(MemoryStore())
    cache.send_budget = budget
    await cache.start()
    try:
        await cache.wait_ready(timeout=5)
        registry = Registry(cache.store, cache, "10.0.0.0/29")
        await ensure_built_in(registry)
        everything = registry.filter(kinds.by_kind("ConfigMap"), "", "", "")
        watcher = cache.watch("ConfigMap", everything, None, bookmarks=False)
        sends: list[list[str]] = []

        async def read() -> None:
            seen = 0
            while seen < events:
                batch = await watcher.next_batch()
                assert batch is not None
                names = []
                for event in api.WatchResponse.FromString(batch).events:
                    cm = core_pb2.ConfigMap.FromString(event.object.value)
                    names.append(cm.metadata.name)
                sends.append(names)
                seen += len(names)

        reader = asyncio.create_task(read())
        for i in range(events):
            cm = core_pb2.ConfigMap()
            cm.metadata.name, cm.metadata.namespace = f"cm-{i:03}", "default"
            await registry.create(cm)
            await asyncio.sleep(0)  # the reader runs between writes
        await asyncio.wait_for(reader, 10)
        cache.unwatch("ConfigMap", watcher)
        return sends
    finally:
        await cache.stop()


async def test_a_burst_reaches_a_busy_watcher_in_a_few_sends_complete_and_in_order() -> None:
    events = 60
    unpaced = await _burst_to_a_watcher(SendBudget(rate=0), events)
    paced = await _burst_to_a_watcher(SendBudget(rate=10, burst=1), events)
    expected = [f"cm-{i:03}" for i in range(events)]
    for sends in (unpaced, paced):
        assert [name for names in sends for name in names] == expected
    assert len(unpaced) > events / 2  # each event sent nearly on its own
    assert len(paced) <= 4, [len(names) for names in paced]


def test_every_kind_has_a_cache() -> None:
    assert set(WatchCache(MemoryStore()).kinds) == {k.kind for k in kinds.KINDS}
