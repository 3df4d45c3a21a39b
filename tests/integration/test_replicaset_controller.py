"""The ReplicaSet controller on a simulated cluster (real apiserver, scheduler and
kubelets on the fake runtime): what a user sees in pods, statuses and events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from fixtures.simcluster import ControlPlane, SimCluster, control_plane
from google.protobuf.message import Message

from controllers.common.context import ControllerContext
from controllers.workloads.replicaset import ReplicaSetController
from skiff.api import pods as pod_facts
from skiff.api.v1 import apps_pb2, core_pb2
from skiff.client import errors
from skiff.client.client import Client, WatchEvent, kind_of
from skiff.client.informer import SharedInformerFactory


def replica_set(name: str, replicas: int, *, command: tuple[str, ...] = ("sleep", "3600"),
                min_ready_seconds: int = 0) -> apps_pb2.ReplicaSet:
    rs = apps_pb2.ReplicaSet()
    rs.metadata.name = name
    rs.spec.replicas = replicas
    rs.spec.min_ready_seconds = min_ready_seconds
    rs.spec.selector.match_labels["app"] = name
    rs.spec.template.metadata.labels.update({"app": name, "tier": "web"})
    rs.spec.template.spec.containers.add(name="main", image="busybox", command=list(command))
    return rs


async def create_rs(plane: ControlPlane, rs: apps_pb2.ReplicaSet) -> apps_pb2.ReplicaSet:
    rs.metadata.namespace = plane.namespace
    return await plane.client.create(rs)


async def get_rs(plane: ControlPlane, name: str) -> apps_pb2.ReplicaSet:
    return await plane.client.get(apps_pb2.ReplicaSet, name, plane.namespace)


async def scale(plane: ControlPlane, name: str, replicas: int) -> None:
    while True:
        rs = await get_rs(plane, name)
        rs.spec.replicas = replicas
        try:
            await plane.client.update(rs)
            return
        except errors.Conflict:
            continue  # the controller wrote status meanwhile


async def active_pods(plane: ControlPlane, app: str) -> list[core_pb2.Pod]:
    return [p for p in await plane.pods(f"app={app}") if pod_facts.is_active(p)]


def owned_by(pod: core_pb2.Pod, rs: apps_pb2.ReplicaSet) -> bool:
    return any(ref.controller and ref.kind == "ReplicaSet" and ref.uid == rs.metadata.uid
               for ref in pod.metadata.owner_references)


async def wait_ready(plane: ControlPlane, name: str, replicas: int,
                     timeout: float = 15.0) -> apps_pb2.ReplicaSet:
    """Waits for the status to report `replicas` pods, all ready and available."""
    async def check() -> apps_pb2.ReplicaSet | None:
        rs = await get_rs(plane, name)
        s = rs.status
        done = (s.replicas, s.ready_replicas, s.available_replicas) == (replicas,) * 3
        return rs if done else None
    result: apps_pb2.ReplicaSet = await plane.until(
        check, timeout, f"{name}: {replicas} ready replicas")
    return result


async def test_replicas_become_running_owned_pods(sim_cluster: SimCluster) -> None:
    async with control_plane(sim_cluster, ReplicaSetController) as plane:
        await create_rs(plane, replica_set("web", 3))
        rs = await wait_ready(plane, "web", 3)

        pods = await plane.pods("app=web")
        assert len(pods) == 3
        assert all(p.status.phase == "Running" for p in pods)
        assert all(owned_by(p, rs) for p in pods)
        assert all(p.metadata.name.startswith("web-") for p in pods)
        assert rs.status.fully_labeled_replicas == 3
        assert rs.status.observed_generation == rs.metadata.generation

        want = {f"Created pod: {p.metadata.name}" for p in pods}

        async def created_events() -> bool:
            return {e.message for e in await plane.events("SuccessfulCreate")} == want
        await plane.until(created_events, 5, "SuccessfulCreate events")


async def test_scale_up_then_down_deletes_what_costs_least(sim_cluster: SimCluster) -> None:
    async with control_plane(sim_cluster, ReplicaSetController) as plane:
        await create_rs(plane, replica_set("web", 3))
        await wait_ready(plane, "web", 3)
        first = {p.metadata.name for p in await active_pods(plane, "web")}
        # Timestamps have whole seconds: make the new pods measurably newer.
        await asyncio.sleep(1.1)

        await scale(plane, "web", 5)
        await wait_ready(plane, "web", 5)
        five = await active_pods(plane, "web")
        assert len(five) == 5 and first < {p.metadata.name for p in five}

        await scale(plane, "web", 1)
        rs = await wait_ready(plane, "web", 1)
        [keeper] = [p.metadata.name for p in await active_pods(plane, "web")]
        # All ran and were ready: the newer (more recently ready) pods went first.
        assert keeper in first

        want = {f"Deleted pod: {p.metadata.name}" for p in five if p.metadata.name != keeper}

        async def deleted_events() -> bool:
            return {e.message for e in await plane.events("SuccessfulDelete")} == want
        await plane.until(deleted_events, 5, "SuccessfulDelete events")
        assert rs.status.replicas == 1


async def test_deleted_pod_is_replaced(sim_cluster: SimCluster) -> None:
    async with control_plane(sim_cluster, ReplicaSetController) as plane:
        await create_rs(plane, replica_set("web", 2))
        await wait_ready(plane, "web", 2)
        victim = (await active_pods(plane, "web"))[0]
        await plane.client.delete(core_pb2.Pod, victim.metadata.name, plane.namespace)

        async def replaced() -> bool:
            names = {p.metadata.name for p in await active_pods(plane, "web")}
            return len(names) == 2 and victim.metadata.name not in names
        await plane.until(replaced, 15, "a replacement pod")
        await wait_ready(plane, "web", 2)


async def test_orphan_with_matching_labels_is_adopted(sim_cluster: SimCluster) -> None:
    async with control_plane(sim_cluster, ReplicaSetController) as plane:
        orphan = core_pb2.Pod()
        orphan.metadata.name, orphan.metadata.namespace = "stray", plane.namespace
        orphan.metadata.labels["app"] = "web"
        orphan.spec.containers.add(name="main", image="busybox", command=["sleep", "3600"])
        await plane.client.create(orphan)

        async def orphan_running() -> bool:
            pod = await plane.client.get(core_pb2.Pod, "stray", plane.namespace)
            return pod.status.phase == "Running"
        # By then the controller's cache has it too, so the set never sees too few pods.
        await plane.until(orphan_running, 10, "the orphan running")

        rs = await create_rs(plane, replica_set("web", 2))
        rs = await wait_ready(plane, "web", 2)
        pods = await active_pods(plane, "web")
        assert len(pods) == 2
        assert "stray" in {p.metadata.name for p in pods}
        assert all(owned_by(p, rs) for p in pods)
        # The adopted pod lacks the template's tier label: counted, not fully labeled.
        assert rs.status.fully_labeled_replicas == 1
        await asyncio.sleep(0.5)  # the events are written in the background
        assert len(await plane.events("SuccessfulCreate")) == 1
        assert not await plane.events("SuccessfulDelete")


async def test_relabelled_pod_is_released_and_replaced(sim_cluster: SimCluster) -> None:
    async with control_plane(sim_cluster, ReplicaSetController) as plane:
        await create_rs(plane, replica_set("web", 2))
        rs = await wait_ready(plane, "web", 2)
        pod = (await active_pods(plane, "web"))[0]
        name = pod.metadata.name
        while True:
            pod.metadata.labels["app"] = "debug"
            try:
                await plane.client.update(pod)
                break
            except errors.Conflict:
                pod = await plane.client.get(core_pb2.Pod, name, plane.namespace)

        async def released() -> bool:
            p = await plane.client.get(core_pb2.Pod, name, plane.namespace)
            return not p.metadata.owner_references
        await plane.until(released, 10, f"{name} released")

        async def replaced() -> bool:
            pods = await active_pods(plane, "web")
            return len(pods) == 2 and name not in {p.metadata.name for p in pods}
        await plane.until(replaced, 10, "a replacement pod")
        rs = await wait_ready(plane, "web", 2)
        kept = await plane.client.get(core_pb2.Pod, name, plane.namespace)
        assert pod_facts.is_active(kept) and not owned_by(kept, rs)


async def test_min_ready_seconds_delays_availability(sim_cluster: SimCluster) -> None:
    async with control_plane(sim_cluster, ReplicaSetController) as plane:
        await create_rs(plane, replica_set("web", 2, min_ready_seconds=2))

        async def all_ready() -> apps_pb2.ReplicaSet | None:
            rs = await get_rs(plane, "web")
            return rs if rs.status.ready_replicas == 2 else None
        rs = await plane.until(all_ready, 15, "2 ready replicas", interval=0.05)
        assert rs.status.available_replicas < 2

        # Nothing changes on the pods from now on: the controller has to come back by
        # itself once each has been ready for two seconds.
        rs = await wait_ready(plane, "web", 2, timeout=6)
        ready_since = [pod_facts.condition(p, "Ready").last_transition_time  # type: ignore[union-attr]
                       .ToDatetime(tzinfo=UTC) for p in await active_pods(plane, "web")]
        assert (datetime.now(UTC) - max(ready_since)).total_seconds() >= 2.0


async def test_crash_looping_pod_stays_owned(sim_cluster: SimCluster) -> None:
    async with control_plane(sim_cluster, ReplicaSetController) as plane:
        rs = await create_rs(plane, replica_set("crash", 1, command=("sh", "-c",
                                                                       "sleep 1; exit 1")))

        async def restarted() -> core_pb2.Pod | None:
            pods = await plane.pods("app=crash")
            restarts = [s.restart_count for p in pods for s in p.status.container_statuses]
            return pods[0] if len(pods) == 1 and restarts and restarts[0] >= 1 else None
        pod = await plane.until(restarted, 15, "the container restarted")
        assert owned_by(pod, rs) and pod_facts.is_active(pod)
        assert len(await plane.pods("app=crash")) == 1
        assert len(await plane.events("SuccessfulCreate")) == 1


class LaggingPodWatch:
    """The apiserver as a slow watch shows it: every pod event arrives `delay` seconds
    late (lists are current). Other kinds pass through."""

    def __init__(self, client: Client, delay: float) -> None:
        self.client = client
        self.delay = delay

    async def list(self, kind: Any, namespace: str = "", **kwargs: Any
                   ) -> tuple[list[Message], str]:
        return await self.client.list(kind, namespace, **kwargs)

    async def watch(self, kind: Any, namespace: str = "", **kwargs: Any
                    ) -> AsyncIterator[WatchEvent]:
        if kind_of(kind).kind != "Pod":
            async for event in self.client.watch(kind, namespace, **kwargs):
                yield event
            return
        loop = asyncio.get_running_loop()
        arrived: asyncio.Queue[tuple[float, WatchEvent | BaseException | None]] = (
            asyncio.Queue())

        async def pump() -> None:
            try:
                async for event in self.client.watch(kind, namespace, **kwargs):
                    arrived.put_nowait((loop.time() + self.delay, event))
                arrived.put_nowait((loop.time() + self.delay, None))
            except Exception as err:
                arrived.put_nowait((loop.time() + self.delay, err))

        task = asyncio.create_task(pump())
        try:
            while True:
                due, item = await arrived.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            task.cancel()


class LaggingReplicaSetController(ReplicaSetController):
    """The controller with a pod cache half a second behind the apiserver, so that its
    syncs run before it has seen the pods it made."""

    def __init__(self, ctx: ControllerContext) -> None:
        lagging = ControllerContext(
            ctx.client, SharedInformerFactory(LaggingPodWatch(ctx.client, 0.5)), ctx.clock,
            make_recorder=ctx.recorder)
        super().__init__(lagging)
        self._lagging_factory = lagging.factory

    async def run(self) -> None:
        self._lagging_factory.start_all()
        try:
            await super().run()
        finally:
            await self._lagging_factory.stop_all()


async def test_many_replicas_are_made_exactly_once(sim_cluster: SimCluster) -> None:
    async with control_plane(sim_cluster, LaggingReplicaSetController) as plane:
        await create_rs(plane, replica_set("many", 20))

        async def twenty() -> bool:
            return (await get_rs(plane, "many")).status.replicas == 20
        await plane.until(twenty, 20, "status.replicas 20")
        await asyncio.sleep(1.5)  # anything made twice would show up by now
        pods = await plane.pods("app=many")
        assert len(pods) == 20
        assert len(await plane.events("SuccessfulCreate")) == 20
        assert not await plane.events("SuccessfulDelete")
