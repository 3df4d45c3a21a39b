"""The ReplicaSet controller's pure logic (deletion order, status, availability recheck)
and its sync against an in-memory apiserver whose watch can be made to lag, to show that
slow-start batching and expectations hold."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf.message import Message

from controllers.common.context import ControllerContext
from controllers.workloads.replicaset import (
    REPLICA_FAILURE,
    ReplicaSetController,
    calculate_status,
    is_fully_labeled,
    pods_to_delete,
    seconds_until_available,
)
from skiff.api.v1 import apps_pb2, core_pb2
from skiff.client import errors
from skiff.client.client import KindLike, WatchEvent, kind_of
from skiff.client.clock import FakeClock
from skiff.client.events import FakeRecorder
from skiff.client.informer import SharedInformerFactory, object_key

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
NS = "ns1"


# --------------------------------------------------------------------------- builders


def make_pod(name: str, *, node: str = "n1", phase: str = "Running",
             ready_since: datetime | None = None, not_ready: bool = False,
             restarts: int = 0, created: datetime = NOW - timedelta(hours=1),
             labels: dict[str, str] | None = None) -> core_pb2.Pod:
    pod = core_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace = name, NS
    pod.metadata.labels.update(labels if labels is not None else {"app": "web"})
    pod.metadata.creation_timestamp.FromDatetime(created)
    pod.spec.node_name = node
    pod.status.phase = phase
    if ready_since is not None or not_ready:
        cond = pod.status.conditions.add(type="Ready", status="False" if not_ready else "True")
        cond.last_transition_time.FromDatetime(ready_since or created)
    pod.status.container_statuses.add(name="c", restart_count=restarts)
    return pod


def make_rs(name: str = "web", *, replicas: int = 3, min_ready: int = 0,
            template_labels: dict[str, str] | None = None) -> apps_pb2.ReplicaSet:
    rs = apps_pb2.ReplicaSet()
    rs.metadata.name, rs.metadata.namespace = name, NS
    rs.spec.replicas = replicas
    rs.spec.min_ready_seconds = min_ready
    rs.spec.selector.match_labels["app"] = "web"
    rs.spec.template.metadata.labels.update(
        template_labels if template_labels is not None else {"app": "web"})
    rs.spec.template.spec.containers.add(name="c", image="busybox", command=["sleep", "3600"])
    return rs


# --------------------------------------------------------------------------- deletion order

EARLIER = NOW - timedelta(minutes=30)
LATER = NOW - timedelta(minutes=5)

# (should go first, should go later, why)
DELETION_ORDER = [
    (make_pod("a", node=""), make_pod("b", phase="Pending", ready_since=EARLIER),
     "unscheduled before scheduled, whatever else"),
    (make_pod("a", phase="Pending", ready_since=EARLIER),
     make_pod("b", phase="Unknown", ready_since=EARLIER), "Pending before Unknown"),
    (make_pod("a", phase="Unknown", ready_since=EARLIER),
     make_pod("b", phase="Running", ready_since=EARLIER), "Unknown before Running"),
    (make_pod("a", not_ready=True, created=EARLIER),
     make_pod("b", ready_since=NOW, created=NOW), "not ready before ready, even if older"),
    (make_pod("a", ready_since=LATER, created=EARLIER),
     make_pod("b", ready_since=EARLIER, created=LATER),
     "ready for less time before ready for longer, even if older"),
    (make_pod("a", ready_since=EARLIER, restarts=3),
     make_pod("b", ready_since=EARLIER, restarts=1), "more restarts first"),
    (make_pod("a", ready_since=EARLIER, created=LATER),
     make_pod("b", ready_since=EARLIER, created=EARLIER), "newer before older"),
]


@pytest.mark.parametrize(("first", "later", "why"), DELETION_ORDER,
                         ids=[case[2] for case in DELETION_ORDER])
def test_deletion_order(first: core_pb2.Pod, later: core_pb2.Pod, why: str) -> None:
    assert pods_to_delete([later, first], 1) == [first], why
    assert pods_to_delete([first, later], 1) == [first], why
    assert pods_to_delete([later, first], 2) == [first, later], why


def test_pods_to_delete_takes_the_count_asked_for() -> None:
    pods = [make_pod(f"p{i}", ready_since=EARLIER, created=EARLIER + timedelta(seconds=i))
            for i in range(5)]
    assert [p.metadata.name for p in pods_to_delete(pods, 2)] == ["p4", "p3"]
    assert pods_to_delete(pods, 0) == []


# --------------------------------------------------------------------------- status


def test_fully_labeled_needs_every_template_label_with_its_value() -> None:
    template = {"app": "web", "tier": "front"}
    assert is_fully_labeled(make_pod("a", labels={"app": "web", "tier": "front", "x": "1"}),
                            template)
    assert not is_fully_labeled(make_pod("b", labels={"app": "web"}), template)
    assert not is_fully_labeled(make_pod("c", labels={"app": "web", "tier": "back"}), template)
    assert is_fully_labeled(make_pod("d", labels={}), {})


def test_status_counts_labeled_ready_and_available_pods() -> None:
    rs = make_rs(replicas=4, min_ready=10, template_labels={"app": "web", "tier": "front"})
    rs.metadata.generation = 7
    pods = [
        make_pod("full-available", labels={"app": "web", "tier": "front"},
                 ready_since=NOW - timedelta(seconds=30)),
        make_pod("full-just-ready", labels={"app": "web", "tier": "front"},
                 ready_since=NOW - timedelta(seconds=3)),
        make_pod("partial-available", labels={"app": "web"},
                 ready_since=NOW - timedelta(seconds=60)),
        make_pod("partial-not-ready", labels={"app": "web"}, not_ready=True),
    ]
    status = calculate_status(rs, pods, None, NOW)
    assert status.replicas == 4
    assert status.fully_labeled_replicas == 2
    assert status.ready_replicas == 3
    assert status.available_replicas == 2
    assert status.observed_generation == 7
    assert not status.conditions


def test_replica_failure_condition_set_once_and_cleared_on_success() -> None:
    rs = make_rs(replicas=3)
    failed = calculate_status(rs, [make_pod("a", ready_since=EARLIER)],
                              errors.Forbidden('pods "x" is forbidden: exceeded quota'), NOW)
    [cond] = failed.conditions
    assert (cond.type, cond.status, cond.reason) == (REPLICA_FAILURE, "True", "FailedCreate")
    assert cond.message == 'pods "x" is forbidden: exceeded quota'
    assert cond.last_transition_time.ToDatetime(tzinfo=UTC) == NOW

    rs.status.CopyFrom(failed)
    again = calculate_status(rs, [], RuntimeError("other"), NOW + timedelta(minutes=1))
    assert list(again.conditions) == [cond]  # kept as first reported

    rs.status.CopyFrom(again)
    assert not calculate_status(rs, [], None, NOW).conditions

    too_many = [make_pod(f"p{i}", ready_since=EARLIER) for i in range(5)]
    deleting = calculate_status(make_rs(replicas=3), too_many, RuntimeError("no"), NOW)
    assert deleting.conditions[0].reason == "FailedDelete"


def test_seconds_until_available_waits_for_the_first_pod_that_will_be() -> None:
    rs = make_rs(min_ready=10)
    pods = [make_pod("old", ready_since=NOW - timedelta(seconds=60)),
            make_pod("a", ready_since=NOW - timedelta(seconds=4)),
            make_pod("b", ready_since=NOW - timedelta(seconds=7)),
            make_pod("unready", not_ready=True)]
    wait = seconds_until_available(rs, pods, NOW)
    assert wait is not None and 3.0 < wait <= 3.5
    assert seconds_until_available(rs, pods[:1] + pods[3:], NOW) is None
    assert seconds_until_available(make_rs(min_ready=0), pods, NOW) is None


# --------------------------------------------------------------------------- fake apiserver


class FakeApi:
    """Just enough of the apiserver for the controller: objects in memory, one event log
    every watch reads, and a switch to hold back the watch of a kind (the informer lags
    behind the writes, as it does for a moment in a real cluster)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], Message] = {}
        self.history: list[WatchEvent] = []
        self.revision = 0
        self.held: set[str] = set()
        self.creates: list[core_pb2.Pod] = []
        self.deletes: list[str] = []
        self.create_batches: list[int] = []  # per create: creates finished before it began
        self.fail_create: Callable[[int], errors.ApiError | None] = lambda n: None
        self._changed = asyncio.Condition()
        self._names = itertools.count()
        self._finished_creates = 0

    # ---- list/watch ----

    async def list(self, kind: KindLike, namespace: str = "", *, label_selector: str = "",
                   field_selector: str = "", resource_version: str = ""
                   ) -> tuple[list[Message], str]:
        name = kind_of(kind).kind
        return [o for (k, _), o in self.objects.items() if k == name], str(self.revision)

    async def watch(self, kind: KindLike, namespace: str = "", *, label_selector: str = "",
                    field_selector: str = "", resource_version: str = "",
                    bookmarks: bool = False) -> AsyncIterator[WatchEvent]:
        name = kind_of(kind).kind
        sent = int(resource_version or 0)
        while True:
            async with self._changed:
                await self._changed.wait_for(functools.partial(self._has_next, name, sent))
                event = self._next(name, sent)
            assert event is not None
            sent = int(event.resource_version)
            yield event

    def _has_next(self, kind: str, sent: int) -> bool:
        return self._next(kind, sent) is not None

    def _next(self, kind: str, sent: int) -> WatchEvent | None:
        if kind in self.held:
            return None
        return next((e for e in self.history if int(e.resource_version) > sent
                     and e.object is not None and kind_of(type(e.object)).kind == kind), None)

    async def release(self, kind: str) -> None:
        self.held.discard(kind)
        async with self._changed:
            self._changed.notify_all()

    async def _emit(self, type_: str, obj: Message) -> Message:
        self.revision += 1
        stored = type(obj)()
        stored.CopyFrom(obj)
        stored.metadata.resource_version = str(self.revision)  # type: ignore[attr-defined]
        key = (kind_of(type(obj)).kind, object_key(obj))
        if type_ == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = stored
        self.history.append(WatchEvent(type_, stored, str(self.revision)))
        async with self._changed:
            self._changed.notify_all()
        return stored

    # ---- writes ----

    async def create(self, obj: Any) -> Any:
        if isinstance(obj, core_pb2.Pod):
            started_after = self._finished_creates
            n = len(self.create_batches)
            self.create_batches.append(started_after)
            await asyncio.sleep(0)  # let the rest of the batch start
            self._finished_creates += 1
            failure = self.fail_create(n)
            if failure is not None:
                raise failure
        copy = type(obj)()
        copy.CopyFrom(obj)
        meta = copy.metadata
        serial = next(self._names)
        if not meta.name:
            meta.name = f"{meta.generate_name}{serial:05d}"
        meta.uid = f"uid-{meta.name}"
        meta.generation = 1
        meta.creation_timestamp.FromDatetime(NOW + timedelta(seconds=serial))
        stored = await self._emit("ADDED", copy)
        if isinstance(obj, core_pb2.Pod):
            self.creates.append(stored)  # type: ignore[arg-type]
        return stored

    async def get(self, kind: KindLike, name: str, namespace: str = "") -> Message:
        found = self.objects.get((kind_of(kind).kind, f"{namespace}/{name}"))
        if found is None:
            raise errors.NotFound(f"{name} not found")
        return found

    async def update(self, obj: Any) -> Any:
        current = await self.get(type(obj), obj.metadata.name, obj.metadata.namespace)
        if current.metadata.resource_version != obj.metadata.resource_version:  # type: ignore[attr-defined]
            raise errors.Conflict("the object has been modified")
        return await self._emit("MODIFIED", obj)

    update_status = update

    async def delete(self, kind: KindLike, name: str, namespace: str = "", **_: Any) -> None:
        current = await self.get(kind, name, namespace)
        self.deletes.append(name)
        gone = type(current)()
        gone.CopyFrom(current)
        gone.metadata.deletion_timestamp.FromDatetime(NOW)  # type: ignore[attr-defined]
        await self._emit("MODIFIED", gone)  # graceful: the kubelet removes it later


@contextlib.asynccontextmanager
async def running(api: FakeApi) -> AsyncIterator[tuple[ReplicaSetController, FakeRecorder]]:
    """A controller over `api` with synced informers; the test calls `sync` itself."""
    clock = FakeClock()
    recorder = FakeRecorder()
    ctx = ControllerContext(api, SharedInformerFactory(api, clock=clock), clock,  # type: ignore[arg-type]
                            make_recorder=lambda component: recorder)
    controller = ReplicaSetController(ctx)
    ctx.factory.start_all()
    try:
        await ctx.factory.wait_for_sync(timeout=5)
        yield controller, recorder
    finally:
        await ctx.factory.stop_all()


async def settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


def stored_rs(api: FakeApi) -> apps_pb2.ReplicaSet:
    return api.objects[("ReplicaSet", f"{NS}/web")]  # type: ignore[return-value]


async def test_creates_in_slow_start_batches() -> None:
    api = FakeApi()
    await api.create(make_rs(replicas=10))
    async with running(api) as (controller, recorder):
        await settle()
        await controller.sync(f"{NS}/web")
    # Creates that began together (same count finished before them) form one batch.
    batches = [len(list(group)) for _, group in itertools.groupby(api.create_batches)]
    assert batches == [1, 2, 4, 3]
    assert len(api.creates) == 10
    assert all(p.metadata.owner_references[0].name == "web" for p in api.creates)
    assert recorder.events.count(
        f"Normal SuccessfulCreate Created pod: {api.creates[0].metadata.name}") == 1


async def test_failed_batch_stops_creation_and_reports_it() -> None:
    api = FakeApi()
    api.fail_create = lambda n: (errors.Forbidden('pods "web-x" is forbidden: exceeded quota')
                                 if n == 4 else None)  # the first call of the batch of 4
    await api.create(make_rs(replicas=10))
    async with running(api) as (controller, recorder):
        await settle()
        with pytest.raises(errors.Forbidden):
            await controller.sync(f"{NS}/web")
        assert len(api.create_batches) == 7  # 1 + 2 + 4, then it stopped
        assert len(api.creates) == 6
        assert ("Warning FailedCreate Error creating: pods \"web-x\" is forbidden: "
                "exceeded quota") in recorder.events
        await settle()
        [cond] = stored_rs(api).status.conditions
        assert (cond.type, cond.reason) == (REPLICA_FAILURE, "FailedCreate")
        assert "exceeded quota" in cond.message

        # The six made are expected, the four never made are not: once the six are
        # seen, the next sync makes the rest and the condition goes.
        api.fail_create = lambda n: None
        await controller.sync(f"{NS}/web")
        assert len(api.creates) == 10
        await settle()
        assert not stored_rs(api).status.conditions


async def test_expectations_stop_a_lagging_cache_from_creating_twice() -> None:
    api = FakeApi()
    await api.create(make_rs(replicas=3))
    async with running(api) as (controller, _):
        await settle()
        api.held.add("Pod")  # the pod watch falls behind
        await controller.sync(f"{NS}/web")
        assert len(api.creates) == 3
        await settle()
        await controller.sync(f"{NS}/web")  # sees no pods yet, but expects three
        await controller.sync(f"{NS}/web")
        assert len(api.creates) == 3
        assert not controller.expectations.satisfied(f"{NS}/web")

        await api.release("Pod")
        await settle()
        assert controller.expectations.satisfied(f"{NS}/web")
        await controller.sync(f"{NS}/web")
        assert len(api.creates) == 3
        await settle()
        assert stored_rs(api).status.replicas == 3


async def test_expectations_stop_a_lagging_cache_from_deleting_twice() -> None:
    api = FakeApi()
    await api.create(make_rs(replicas=4))
    async with running(api) as (controller, recorder):
        await settle()
        await controller.sync(f"{NS}/web")
        await settle()
        rs = apps_pb2.ReplicaSet()
        rs.CopyFrom(stored_rs(api))
        rs.spec.replicas = 1
        await api.update(rs)
        await settle()

        api.held.add("Pod")
        await controller.sync(f"{NS}/web")
        assert len(api.deletes) == 3
        await settle()
        await controller.sync(f"{NS}/web")  # the three still look alive in the cache
        assert len(api.deletes) == 3
        newest_first = [p.metadata.name for p in reversed(api.creates)][:3]
        assert sorted(api.deletes) == sorted(newest_first)
        assert sum(e.startswith("Normal SuccessfulDelete") for e in recorder.events) == 3

        await api.release("Pod")
        await settle()
        assert controller.expectations.satisfied(f"{NS}/web")
        await controller.sync(f"{NS}/web")
        assert len(api.deletes) == 3
        await settle()
        assert stored_rs(api).status.replicas == 1


async def test_deleting_replica_set_makes_no_pods_but_gets_status() -> None:
    api = FakeApi()
    rs = make_rs(replicas=2)
    rs.metadata.deletion_timestamp.FromDatetime(NOW)
    rs.metadata.finalizers.append("foregroundDeletion")
    await api.create(rs)
    async with running(api) as (controller, _):
        await settle()
        await controller.sync(f"{NS}/web")
    assert api.creates == []
    assert stored_rs(api).status.observed_generation == 1
