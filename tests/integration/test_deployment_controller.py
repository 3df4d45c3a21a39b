"""The Deployment controller on a simulated cluster (real apiserver, scheduler, the
ReplicaSet controller and kubelets on the fake runtime): what a user sees in
ReplicaSets, pods, statuses, conditions and events while deployments roll out."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fixtures.simcluster import ControlPlane, SimCluster, control_plane

from controllers.common import replicas, rollout
from controllers.workloads.deployment import DeploymentController
from controllers.workloads.replicaset import ReplicaSetController
from skiff.api import pods as pod_facts
from skiff.api.v1 import apps_pb2, core_pb2, meta_pb2
from skiff.client import errors
from skiff.client.client import WatchEvent

REVISION = "deployment.kubernetes.io/revision"
HASH = "pod-template-hash"
CRASH = ("sh", "-c", "exit 1")
HOLD = "skiff.test/hold"


def deployment(name: str, replicas: int, *, image: str = "nginx:1",
               command: tuple[str, ...] = ("sleep", "3600"), strategy: str = "RollingUpdate",
               surge: int | str | None = None, unavailable: int | str | None = None,
               min_ready_seconds: int = 0, deadline: int | None = None,
               history: int | None = None) -> apps_pb2.Deployment:
    d = apps_pb2.Deployment()
    d.metadata.name = name
    d.spec.replicas = replicas
    d.spec.selector.match_labels["app"] = name
    d.spec.template.metadata.labels["app"] = name
    container = d.spec.template.spec.containers.add(name="main", image=image,
                                                    command=list(command))
    container.image_pull_policy = "IfNotPresent"
    d.spec.template.spec.termination_grace_period_seconds = 1
    d.spec.strategy.type = strategy
    for field, value in (("max_surge", surge), ("max_unavailable", unavailable)):
        target = getattr(d.spec.strategy.rolling_update, field)
        if isinstance(value, int):
            target.int_val = value
        elif isinstance(value, str):
            target.str_val = value
    d.spec.min_ready_seconds = min_ready_seconds
    if deadline is not None:
        d.spec.progress_deadline_seconds = deadline
    if history is not None:
        d.spec.revision_history_limit = history
    return d


async def create(plane: ControlPlane, d: apps_pb2.Deployment) -> apps_pb2.Deployment:
    d.metadata.namespace = plane.namespace
    return await plane.client.create(d)


async def get(plane: ControlPlane, name: str) -> apps_pb2.Deployment:
    return await plane.client.get(apps_pb2.Deployment, name, plane.namespace)


async def change(plane: ControlPlane, name: str,
                 edit: Callable[[apps_pb2.Deployment], None]) -> apps_pb2.Deployment:
    """Applies `edit` to the current deployment, as `kubectl edit` would."""
    while True:
        d = await get(plane, name)
        edit(d)
        try:
            return await plane.client.update(d)
        except errors.Conflict:
            continue  # the controller wrote status meanwhile


def set_image(image: str, command: tuple[str, ...] = ("sleep", "3600")
              ) -> Callable[[apps_pb2.Deployment], None]:
    def edit(d: apps_pb2.Deployment) -> None:
        d.spec.template.spec.containers[0].image = image
        del d.spec.template.spec.containers[0].command[:]
        d.spec.template.spec.containers[0].command.extend(command)
    return edit


async def release(plane: ControlPlane, pod_name: str) -> None:
    """Removes the test's finalizer from a pod, letting its deletion finish."""
    while True:
        try:
            pod = await plane.client.get(core_pb2.Pod, pod_name, plane.namespace)
        except errors.NotFound:
            return
        kept = [f for f in pod.metadata.finalizers if f != HOLD]
        del pod.metadata.finalizers[:]
        pod.metadata.finalizers.extend(kept)
        try:
            await plane.client.update(pod)
            return
        except (errors.Conflict, errors.NotFound):
            continue


async def replica_sets(plane: ControlPlane, app: str) -> list[apps_pb2.ReplicaSet]:
    items, _ = await plane.client.list(apps_pb2.ReplicaSet, plane.namespace,
                                       label_selector=f"app={app}")
    return sorted(items, key=lambda rs: int(rs.metadata.annotations.get(REVISION, "0")))


def condition(d: apps_pb2.Deployment, type_: str) -> meta_pb2.Condition | None:
    return next((c for c in d.status.conditions if c.type == type_), None)


async def wait_complete(plane: ControlPlane, name: str, timeout: float = 20.0
                        ) -> apps_pb2.Deployment:
    """Waits for `kubectl rollout status` to say done: this generation observed, every
    replica updated and available, no old ones, Progressing NewReplicaSetAvailable."""
    async def check() -> apps_pb2.Deployment | None:
        d = await get(plane, name)
        s, progressing = d.status, condition(d, "Progressing")
        done = (s.observed_generation >= d.metadata.generation
                and s.updated_replicas == s.replicas == s.available_replicas
                == d.spec.replicas
                and progressing is not None and progressing.reason == "NewReplicaSetAvailable")
        return d if done else None
    result: apps_pb2.Deployment = await plane.until(check, timeout, f"{name} rolled out")
    return result


def live(pod: core_pb2.Pod) -> bool:
    return not pod.metadata.HasField("deletion_timestamp") and not pod_facts.is_terminal(pod)


@contextlib.asynccontextmanager
async def sampling(check: Callable[[], Awaitable[str | None]]) -> AsyncIterator[list[str]]:
    """Runs `check` every 0.1 s while the block runs; yields the violations it reported."""
    violations: list[str] = []
    samples = 0

    async def sample() -> None:
        nonlocal samples
        while True:
            problem = await check()
            samples += 1
            if problem:
                violations.append(problem)
            await asyncio.sleep(0.1)

    task = asyncio.create_task(sample())
    try:
        yield violations
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert samples >= 5, "the sampler barely ran"


class PodHistory:
    """The template hashes of the unfinished pods (being deleted or not: they may still
    run) after every pod change a watch delivered."""

    def __init__(self) -> None:
        self.pods: dict[str, core_pb2.Pod] = {}
        self.history: list[set[str]] = []

    def apply(self, event: WatchEvent) -> None:
        pod = event.object
        if not isinstance(pod, core_pb2.Pod):
            return  # a bookmark
        if event.type == "DELETED" or pod_facts.is_terminal(pod):
            self.pods.pop(pod.metadata.name, None)
        else:
            self.pods[pod.metadata.name] = pod
        self.history.append({p.metadata.labels.get(HASH, "") for p in self.pods.values()})


@contextlib.asynccontextmanager
async def watching_pods(plane: ControlPlane, selector: str) -> AsyncIterator[PodHistory]:
    history = PodHistory()
    started = asyncio.Event()

    async def watch() -> None:
        stream = plane.client.watch(core_pb2.Pod, plane.namespace, label_selector=selector)
        async with contextlib.aclosing(stream):  # type: ignore[type-var]
            started.set()
            async for event in stream:
                history.apply(event)

    task = asyncio.create_task(watch())
    await started.wait()
    # The watch starts with the current pods as ADDED events: wait until they are in.
    current = [p for p in await plane.pods(selector) if not pod_facts.is_terminal(p)]
    deadline = asyncio.get_running_loop().time() + 5
    while len(history.pods) < len(current):
        assert asyncio.get_running_loop().time() < deadline, "the pod watch did not start"
        await asyncio.sleep(0.02)
    try:
        yield history
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def messages(plane: ControlPlane, reason: str) -> list[str]:
    return [e.message for e in await plane.events(reason)]


async def wait_events(plane: ControlPlane, reason: str, wanted: set[str],
                      timeout: float = 5.0) -> None:
    async def check() -> bool:
        return wanted <= set(await messages(plane, reason))
    await plane.until(check, timeout, f"{reason} events {sorted(wanted)}")


def plane_for(sim_cluster: SimCluster) -> Any:
    return control_plane(sim_cluster, ReplicaSetController, DeploymentController)


# ---------------------------------------------------------------------------- tests


async def test_deployment_becomes_available(sim_cluster: SimCluster) -> None:
    async with plane_for(sim_cluster) as plane:
        created = await create(plane, deployment("web", 3))
        d = await wait_complete(plane, "web")

        [rs] = await replica_sets(plane, "web")
        h = rs.metadata.labels[HASH]
        assert rs.metadata.name == f"web-{h}"
        assert rs.spec.selector.match_labels == {"app": "web", HASH: h}
        assert [(r.kind, r.name, r.controller) for r in rs.metadata.owner_references] == [
            ("Deployment", "web", True)]
        assert rs.metadata.annotations[REVISION] == "1"
        # 25% surge of 3 rounds up to 1.
        assert rs.metadata.annotations["deployment.kubernetes.io/desired-replicas"] == "3"
        assert rs.metadata.annotations["deployment.kubernetes.io/max-replicas"] == "4"
        assert d.metadata.annotations[REVISION] == "1"
        assert d.metadata.generation == created.metadata.generation

        s = d.status
        assert (s.observed_generation, s.replicas, s.updated_replicas, s.ready_replicas,
                s.available_replicas, s.unavailable_replicas) == (
                    d.metadata.generation, 3, 3, 3, 3, 0)
        available, progressing = condition(d, "Available"), condition(d, "Progressing")
        assert available is not None and progressing is not None
        assert (available.status, available.reason, available.message) == (
            "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        assert (progressing.status, progressing.reason, progressing.message) == (
            "True", "NewReplicaSetAvailable",
            f'ReplicaSet "{rs.metadata.name}" has successfully progressed.')
        assert progressing.HasField("last_update_time")
        assert progressing.HasField("last_transition_time")

        pods = [p for p in await plane.pods("app=web") if live(p)]
        assert len(pods) == 3 and all(p.metadata.labels[HASH] == h for p in pods)
        await wait_events(plane, "ScalingReplicaSet",
                          {f"Scaled up replica set {rs.metadata.name} to 3"})


async def test_rolling_update_keeps_within_surge_and_availability(
        sim_cluster: SimCluster) -> None:
    async with plane_for(sim_cluster) as plane:
        await create(plane, deployment("web", 4, surge=1, unavailable=1, min_ready_seconds=1))
        await wait_complete(plane, "web")
        [first] = await replica_sets(plane, "web")

        async def check() -> str | None:
            pods = [p for p in await plane.pods("app=web") if live(p)]
            now = datetime.now(UTC)
            available = sum(1 for p in pods if replicas.is_available(p, 1, now))
            if len(pods) > 4 + 1:
                return f"{len(pods)} pods > replicas + maxSurge"
            if available < 4 - 1:
                return f"{available} available pods < replicas - maxUnavailable"
            return None

        async with sampling(check) as violations:
            await change(plane, "web", set_image("nginx:2"))
            d = await wait_complete(plane, "web", timeout=30)
        assert violations == []

        old, new = await replica_sets(plane, "web")
        assert old.metadata.name == first.metadata.name
        assert old.spec.replicas == 0 and old.metadata.annotations[REVISION] == "1"
        assert new.spec.replicas == 4 and new.metadata.annotations[REVISION] == "2"
        assert new.spec.template.spec.containers[0].image == "nginx:2"
        assert d.metadata.annotations[REVISION] == "2"
        pods = [p for p in await plane.pods("app=web") if live(p)]
        assert {p.metadata.labels[HASH] for p in pods} == {new.metadata.labels[HASH]}
        scaled = await messages(plane, "ScalingReplicaSet")
        assert any(m.startswith(f"Scaled up replica set {new.metadata.name} to ")
                   for m in scaled)
        assert any(m.startswith(f"Scaled down replica set {old.metadata.name} to 0 from ")
                   for m in scaled), scaled


async def test_recreate_never_runs_old_and_new_pods_together(sim_cluster: SimCluster) -> None:
    async with plane_for(sim_cluster) as plane:
        held = deployment("web", 3, strategy="Recreate")
        # Simulated pods stop at once; a finalizer keeps the old ones around, being
        # deleted, until the test lets them go, as a slow shutdown would.
        held.spec.template.metadata.finalizers.append(HOLD)
        await create(plane, held)
        await wait_complete(plane, "web")
        [first] = await replica_sets(plane, "web")
        old_hash = first.metadata.labels[HASH]

        def new_template(d: apps_pb2.Deployment) -> None:
            set_image("nginx:2")(d)
            del d.spec.template.metadata.finalizers[:]

        async with watching_pods(plane, "app=web") as pods:
            await change(plane, "web", new_template)

            async def old_pods_deleting() -> list[core_pb2.Pod] | None:
                found = await plane.pods(f"{HASH}={old_hash}")
                deleting = [p for p in found if p.metadata.HasField("deletion_timestamp")]
                return found if len(deleting) == len(found) == 3 else None
            stopping = await plane.until(old_pods_deleting, 10, "the old pods being deleted")
            await asyncio.sleep(1)
            assert len(await replica_sets(plane, "web")) == 1, "a new set next to old pods"
            assert {p.metadata.labels[HASH] for p in await plane.pods("app=web")} == {old_hash}
            for pod in stopping:
                await release(plane, pod.metadata.name)
            await wait_complete(plane, "web", timeout=30)
        together = [hashes for hashes in pods.history
                    if old_hash in hashes and len(hashes) > 1]
        assert together == []

        old, new = await replica_sets(plane, "web")
        assert (old.spec.replicas, new.spec.replicas) == (0, 3)
        assert pods.history[0] == {old_hash}
        assert pods.history[-1] == {new.metadata.labels[HASH]}
        # Recreate makes the new set at full size at once.
        await wait_events(plane, "ScalingReplicaSet", {
            f"Scaled down replica set {old.metadata.name} to 0 from 3",
            f"Scaled up replica set {new.metadata.name} to 3"})


async def test_crash_looping_template_exceeds_progress_deadline(
        sim_cluster: SimCluster) -> None:
    async with plane_for(sim_cluster) as plane:
        await create(plane, deployment("web", 2, deadline=5, min_ready_seconds=1))
        await wait_complete(plane, "web")
        [first] = await replica_sets(plane, "web")
        await change(plane, "web", set_image("nginx:2", CRASH))

        async def timed_out() -> apps_pb2.Deployment | None:
            d = await get(plane, "web")
            cond = condition(d, "Progressing")
            return d if cond is not None and cond.status == "False" else None
        d = await plane.until(timed_out, 40, "Progressing False")

        old, new = await replica_sets(plane, "web")
        cond = condition(d, "Progressing")
        assert cond is not None
        assert (cond.reason, cond.message) == (
            "ProgressDeadlineExceeded",
            f'ReplicaSet "{new.metadata.name}" has timed out progressing.')
        # maxUnavailable 25% of 2 is 0: the old pods were never touched.
        assert old.metadata.name == first.metadata.name and old.spec.replicas == 2
        old_pods = [p for p in await plane.pods(f"{HASH}={old.metadata.labels[HASH]}")
                    if live(p)]
        assert len(old_pods) == 2 and all(pod_facts.is_ready(p) for p in old_pods)
        available = condition(d, "Available")
        assert available is not None and available.status == "True"
        assert d.status.updated_replicas == 1 and d.status.available_replicas == 2


async def test_paused_deployment_rolls_out_only_when_resumed(sim_cluster: SimCluster) -> None:
    async with plane_for(sim_cluster) as plane:
        await create(plane, deployment("web", 2))
        await wait_complete(plane, "web")

        def pause(d: apps_pb2.Deployment) -> None:
            d.spec.paused = True
        await change(plane, "web", pause)
        changed = await change(plane, "web", set_image("nginx:2"))

        async def observed() -> apps_pb2.Deployment | None:
            d = await get(plane, "web")
            return d if d.status.observed_generation >= changed.metadata.generation else None
        d = await plane.until(observed, 10, "the template change observed")
        progressing = condition(d, "Progressing")
        assert progressing is not None
        assert (progressing.status, progressing.reason, progressing.message) == (
            "Unknown", "DeploymentPaused", "Deployment is paused")
        assert len(await replica_sets(plane, "web")) == 1
        assert d.status.updated_replicas == 0  # the running pods are not of the template

        def resume(d: apps_pb2.Deployment) -> None:
            d.spec.paused = False
        await change(plane, "web", resume)
        d = await wait_complete(plane, "web")
        old, new = await replica_sets(plane, "web")
        assert (old.spec.replicas, new.spec.replicas) == (0, 2)
        assert new.spec.template.spec.containers[0].image == "nginx:2"
        assert d.metadata.annotations[REVISION] == "2"


async def test_scaling_mid_rollout_is_proportional(sim_cluster: SimCluster) -> None:
    async with plane_for(sim_cluster) as plane:
        # minReadySeconds keeps a crash-looping pod from ever counting as available.
        await create(plane, deployment("web", 4, min_ready_seconds=2))
        await wait_complete(plane, "web")
        await change(plane, "web", set_image("nginx:2", CRASH))

        # 4 replicas, 25%/25%: surge 1, unavailable 1. The new pods never become
        # available, so the rollout stops at 3 old + 2 new (5 = 4 + 1).
        async def stuck() -> list[apps_pb2.ReplicaSet] | None:
            rss = await replica_sets(plane, "web")
            sizes = [rs.spec.replicas for rs in rss]
            return rss if sizes == [3, 2] else None
        old, new = await plane.until(stuck, 20, "the rollout stuck at 3 old + 2 new")

        def scale(d: apps_pb2.Deployment) -> None:
            d.spec.replicas = 8
        await change(plane, "web", scale)

        # 8 replicas: surge 2, so 10 pods in all, shared 3:2 -> 6:4.
        async def proportional() -> list[apps_pb2.ReplicaSet] | None:
            rss = await replica_sets(plane, "web")
            return rss if [rs.spec.replicas for rs in rss] == [6, 4] else None
        old, new = await plane.until(proportional, 15, "old and new scaled to 6 and 4")
        for rs in (old, new):
            assert rs.metadata.annotations["deployment.kubernetes.io/desired-replicas"] == "8"
            assert rs.metadata.annotations["deployment.kubernetes.io/max-replicas"] == "10"
        await wait_events(plane, "ScalingReplicaSet", {
            f"Scaled up replica set {old.metadata.name} to 6 from 3",
            f"Scaled up replica set {new.metadata.name} to 4 from 2"})
        await asyncio.sleep(1)  # and it stays there: no more room to surge or to shrink
        assert [rs.spec.replicas for rs in await replica_sets(plane, "web")] == [6, 4]


async def test_revision_history_limit_deletes_older_sets(sim_cluster: SimCluster) -> None:
    async with plane_for(sim_cluster) as plane:
        await create(plane, deployment("web", 1, history=1))
        await wait_complete(plane, "web")
        [first] = await replica_sets(plane, "web")
        for image in ("nginx:2", "nginx:3"):
            await change(plane, "web", set_image(image))
            await wait_complete(plane, "web")

        async def pruned() -> list[apps_pb2.ReplicaSet] | None:
            rss = await replica_sets(plane, "web")
            return rss if len(rss) == 2 else None
        old, new = await plane.until(pruned, 10, "one old replica set kept")
        assert first.metadata.name not in {old.metadata.name, new.metadata.name}
        assert (old.metadata.annotations[REVISION], new.metadata.annotations[REVISION]) == (
            "2", "3")
        assert (old.spec.replicas, new.spec.replicas) == (0, 1)
        assert new.spec.template.spec.containers[0].image == "nginx:3"


async def test_name_collision_bumps_collision_count(sim_cluster: SimCluster) -> None:
    async with plane_for(sim_cluster) as plane:
        paused = deployment("web", 1)
        paused.spec.paused = True  # no replica set yet: room to plant a namesake
        stored = await create(plane, paused)
        taken = f"web-{rollout.pod_template_hash(stored.spec.template)}"
        squatter = apps_pb2.ReplicaSet()
        squatter.metadata.name, squatter.metadata.namespace = taken, plane.namespace
        squatter.spec.replicas = 0
        squatter.spec.selector.match_labels["app"] = "other"
        squatter.spec.template.metadata.labels["app"] = "other"
        squatter.spec.template.spec.containers.add(name="main", image="busybox")
        await plane.client.create(squatter)

        def resume(d: apps_pb2.Deployment) -> None:
            d.spec.paused = False
        await change(plane, "web", resume)
        d = await wait_complete(plane, "web")
        assert d.status.HasField("collision_count") and d.status.collision_count == 1
        [rs] = await replica_sets(plane, "web")
        assert rs.metadata.name == f"web-{rollout.pod_template_hash(stored.spec.template, 1)}"
        assert rs.metadata.name != taken
        kept = await plane.client.get(apps_pb2.ReplicaSet, taken, plane.namespace)
        assert not kept.metadata.owner_references  # the namesake is left alone
