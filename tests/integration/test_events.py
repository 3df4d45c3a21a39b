"""EventRecorder against a real apiserver: repeats fold into one Event with a count."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from skiff.api.v1 import core_pb2
from skiff.client.client import Client
from skiff.client.events import NORMAL, WARNING, EventRecorder


@pytest.fixture
async def recorder(client: Client) -> AsyncIterator[EventRecorder]:
    r = EventRecorder(client, "test-controller", host="host-1")
    try:
        yield r
    finally:
        await r.close()


async def make_pod(client: Client, ns: str, name: str = "web") -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.metadata.name, p.metadata.namespace = name, ns
    p.spec.containers.add(name="app", image="busybox:1.36")
    return await client.create(p)


async def events_about(client: Client, ns: str, name: str) -> list[core_pb2.Event]:
    items, _ = await client.list(core_pb2.Event, ns,
                                 field_selector=f"involvedObject.name={name}")
    return sorted(items, key=lambda e: e.reason)


async def test_repeats_fold_into_one_event_with_a_count(client: Client, ns: str,
                                                        recorder: EventRecorder) -> None:
    pod = await make_pod(client, ns)
    for _ in range(5):
        # A flush between repeats: each repeat after the first is an update of the
        # Event object written before, not a fold within one batch.
        recorder.event(pod, WARNING, "BackOff", "Back-off restarting failed container")
        await recorder.flush()
    events = await events_about(client, ns, "web")
    assert len(events) == 1
    event = events[0]
    assert event.count == 5
    assert (event.type, event.reason, event.message) == (
        "Warning", "BackOff", "Back-off restarting failed container")
    assert event.metadata.namespace == ns
    assert event.metadata.name.startswith("web.")
    int(event.metadata.name.split(".", 1)[1], 16)  # <name>.<hex nanos>
    ref = event.involved_object
    assert (ref.kind, ref.api_version, ref.namespace, ref.name, ref.uid) == (
        "Pod", "v1", ns, "web", pod.metadata.uid)
    assert ref.resource_version == pod.metadata.resource_version
    assert (event.source.component, event.source.host) == ("test-controller", "host-1")
    assert event.reporting_component == "test-controller"
    assert event.first_timestamp.ToDatetime() <= event.last_timestamp.ToDatetime()
    assert event.last_timestamp.ToDatetime() > event.first_timestamp.ToDatetime()


async def test_a_burst_of_repeats_is_one_event(client: Client, ns: str,
                                               recorder: EventRecorder) -> None:
    pod = await make_pod(client, ns)
    for _ in range(5):
        recorder.event(pod, NORMAL, "Pulled", "Container image already present")
    await recorder.flush()
    events = await events_about(client, ns, "web")
    assert [(e.reason, e.count) for e in events] == [("Pulled", 5)]


async def test_different_reasons_are_different_events(client: Client, ns: str,
                                                      recorder: EventRecorder) -> None:
    pod = await make_pod(client, ns)
    recorder.event(pod, NORMAL, "Scheduled", "Successfully assigned to node-1")
    recorder.event(pod, NORMAL, "Pulled", "Container image already present")
    recorder.event(pod, NORMAL, "Pulled", "Container image already present")
    await recorder.flush()
    events = await events_about(client, ns, "web")
    assert [(e.reason, e.count) for e in events] == [("Pulled", 2), ("Scheduled", 1)]
    assert events[0].metadata.name != events[1].metadata.name


async def test_event_returns_at_once_and_the_series_survives_a_deleted_event(
        client: Client, ns: str, recorder: EventRecorder) -> None:
    pod = await make_pod(client, ns)
    recorder.event(pod, NORMAL, "Started", "Started container app")  # not awaited
    await recorder.flush()
    [first] = await events_about(client, ns, "web")
    await client.delete(core_pb2.Event, first.metadata.name, ns)
    recorder.event(pod, NORMAL, "Started", "Started container app")
    await recorder.flush()
    [again] = await events_about(client, ns, "web")
    assert again.metadata.name == first.metadata.name
    assert again.count == 2


async def test_events_about_cluster_scoped_objects_go_to_default(
        client: Client, ns: str, recorder: EventRecorder) -> None:
    namespace = await client.get(core_pb2.Namespace, ns)
    recorder.event(namespace, NORMAL, "Checked", "namespace looked at")
    await recorder.flush()
    events = await events_about(client, "default", ns)
    assert [(e.reason, e.involved_object.kind, e.involved_object.namespace)
            for e in events] == [("Checked", "Namespace", "")]


async def test_the_spam_filter_limits_a_flood_about_one_object(client: Client,
                                                               ns: str) -> None:
    recorder = EventRecorder(client, "flooder", spam_burst=3)
    try:
        pod = await make_pod(client, ns)
        for i in range(10):
            recorder.event(pod, NORMAL, "Tick", f"tick {i}")
            await asyncio.sleep(0)
        await recorder.flush()
    finally:
        await recorder.close()
    events = await events_about(client, ns, "web")
    assert sorted(e.message for e in events) == ["tick 0", "tick 1", "tick 2"]
