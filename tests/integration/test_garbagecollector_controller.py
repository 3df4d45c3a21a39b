"""The garbage collector in a simulated cluster: a Deployment -> ReplicaSet -> Pods chain
built by hand (no workload controllers run), then deleted in each propagation mode, as a
user would with `skiff delete --cascade=...`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fixtures.cli import ENV, Cli
from fixtures.simcluster import ControlPlane, control_plane
from google.protobuf.message import Message

from controllers.common.podcontrol import owner_reference
from controllers.gc.garbagecollector import FOREGROUND_FINALIZER, GarbageCollector
from skiff.api import kinds
from skiff.api.v1 import apps_pb2, core_pb2, meta_pb2
from skiff.client import errors
from skiff.client.client import Client

REPO = Path(__file__).resolve().parents[2]
HOLD = "skiff.test/hold"  # a finalizer the test removes itself, to hold a pod being deleted


def template(app: str) -> core_pb2.PodTemplateSpec:
    t = core_pb2.PodTemplateSpec()
    t.metadata.labels["app"] = app
    t.spec.containers.add(name="app", image="registry.invalid/app:1", command=["sleep", "3600"])
    return t


async def make_chain(plane: ControlPlane, app: str, pods: int = 2, *, hold: bool = False
                     ) -> tuple[apps_pb2.Deployment, apps_pb2.ReplicaSet, list[core_pb2.Pod]]:
    """A Deployment, a ReplicaSet it controls, and pods the ReplicaSet controls: what the
    deployment and replicaset controllers would have made. With `hold`, the first pod
    carries a finalizer of the test's, so that it stays, being deleted, until released."""
    d = apps_pb2.Deployment()
    d.metadata.name, d.metadata.namespace = app, plane.namespace
    d.spec.replicas = pods
    d.spec.selector.match_labels["app"] = app
    d.spec.template.CopyFrom(template(app))
    d = await plane.client.create(d)
    rs = apps_pb2.ReplicaSet()
    rs.metadata.name, rs.metadata.namespace = f"{app}-5d4f8", plane.namespace
    rs.metadata.owner_references.append(owner_reference(d))
    rs.spec.replicas = pods
    rs.spec.selector.match_labels["app"] = app
    rs.spec.template.CopyFrom(template(app))
    rs = await plane.client.create(rs)
    made = []
    for i in range(pods):
        p = core_pb2.Pod()
        p.metadata.name, p.metadata.namespace = f"{rs.metadata.name}-{i}", plane.namespace
        p.metadata.labels["app"] = app
        p.metadata.owner_references.append(owner_reference(rs))
        p.spec.CopyFrom(template(app).spec)
        if hold and i == 0:
            p.metadata.finalizers.append(HOLD)
        made.append(await plane.client.create(p))
    return d, rs, made


async def exists(client: Client, obj: Message) -> Message | None:
    meta = obj.metadata  # type: ignore[attr-defined]
    try:
        live = await client.get(kinds.by_message(obj), meta.name, meta.namespace)
    except errors.NotFound:
        return None
    return live if live.metadata.uid == meta.uid else None  # type: ignore[attr-defined]


async def all_gone(client: Client, *objects: Message) -> bool:
    return all([await exists(client, o) is None for o in objects])


async def running(plane: ControlPlane, pods: list[core_pb2.Pod]) -> bool:
    live = {p.metadata.name: p for p in await plane.pods()}
    return all(live.get(p.metadata.name) is not None
               and live[p.metadata.name].status.phase == "Running" for p in pods)


@dataclass
class Timeline:
    """DELETED events of the namespace's pods, replica sets and deployments, in order."""

    deleted: list[tuple[float, str, str]] = field(default_factory=list)

    def when(self, kind: str, name: str) -> float:
        return next(t for t, k, n in self.deleted if (k, n) == (kind, name))


@contextlib.asynccontextmanager
async def timeline(plane: ControlPlane) -> AsyncIterator[Timeline]:
    line = Timeline()
    ready = [asyncio.Event() for _ in range(3)]

    async def follow(kind: type[Message], started: asyncio.Event) -> None:
        _, rv = await plane.client.list(kind, plane.namespace)
        started.set()
        async for event in plane.client.watch(kind, plane.namespace, resource_version=rv):
            if event.type == "DELETED" and event.object is not None:
                line.deleted.append((time.monotonic(), kinds.by_message(event.object).kind,
                                     event.object.metadata.name))  # type: ignore[attr-defined]

    tasks = [asyncio.create_task(follow(k, e)) for k, e in
             zip((core_pb2.Pod, apps_pb2.ReplicaSet, apps_pb2.Deployment), ready, strict=True)]
    await asyncio.gather(*(e.wait() for e in ready))
    try:
        yield line
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def release(client: Client, pod: core_pb2.Pod) -> None:
    """Removes the test's finalizer (the kubelet writes the pod too: retry conflicts)."""
    for _ in range(10):
        live = await client.get(core_pb2.Pod, pod.metadata.name, pod.metadata.namespace)
        live.metadata.finalizers.remove(HOLD)
        try:
            await client.update(live)
            return
        except errors.Conflict:
            continue
    raise AssertionError("could not release the pod")


async def skiff(address: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *Cli(address).argv(*args), cwd=REPO, env=ENV,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def test_background_deletion_takes_the_replica_set_and_its_pods(sim_cluster: Any) -> None:
    async with control_plane(sim_cluster, GarbageCollector) as plane:
        d, rs, pods = await make_chain(plane, "bg")
        await plane.until(lambda: running(plane, pods), 20, "the pods to run")
        await plane.client.delete(apps_pb2.Deployment, "bg", plane.namespace)
        assert await exists(plane.client, d) is None  # background: the owner goes at once
        await plane.until(lambda: all_gone(plane.client, rs, *pods), 20,
                          "the replica set and its pods to be collected")


async def test_foreground_deletion_goes_depth_first_and_skiff_delete_waits_for_it(
        sim_cluster: Any) -> None:
    async with control_plane(sim_cluster, GarbageCollector) as plane:
        # One pod holds on (a finalizer of ours), so the state midway can be looked at.
        d, rs, pods = await make_chain(plane, "fg", hold=True)
        held = pods[0]
        await plane.until(lambda: running(plane, pods), 20, "the pods to run")
        async with timeline(plane) as line:
            cli = await skiff(sim_cluster.address, "delete", "deployment", "fg", "-n",
                              plane.namespace, "--cascade=foreground", "--timeout=40s")

            async def held_pod_going() -> Message | None:
                live = await exists(plane.client, held)
                return live if live is not None and live.metadata.HasField(  # type: ignore[attr-defined]
                    "deletion_timestamp") else None

            await plane.until(held_pod_going, 20, "the held pod to be deleted")
            await plane.until(lambda: all_gone(plane.client, pods[1]), 20, "the other pod to go")
            # The owners wait, marked, while a blocking dependent remains.
            for owner in (d, rs):
                live = await exists(plane.client, owner)
                assert live is not None, f"{owner.metadata.name} went before its pods"  # type: ignore[attr-defined]
                assert live.metadata.HasField("deletion_timestamp")  # type: ignore[attr-defined]
                assert FOREGROUND_FINALIZER in live.metadata.finalizers  # type: ignore[attr-defined]
            assert cli.returncode is None, "skiff delete returned before the deployment went"

            await release(plane.client, held)
            out, err = await asyncio.wait_for(cli.communicate(), 40)
            assert cli.returncode == 0, err.decode()
            assert out.decode() == 'deployment.apps "fg" deleted\n'
            assert await all_gone(plane.client, d, rs, *pods)

            async def watched_all() -> bool:
                return len(line.deleted) == 4

            await plane.until(watched_all, 10, "the watch to see every deletion")
        last_pod = max(line.when("Pod", p.metadata.name) for p in pods)
        assert last_pod < line.when("ReplicaSet", rs.metadata.name) < line.when(
            "Deployment", "fg")


async def test_orphan_deletion_leaves_the_dependents_without_the_reference(
        sim_cluster: Any) -> None:
    async with control_plane(sim_cluster, GarbageCollector) as plane:
        d, rs, pods = await make_chain(plane, "orph")
        await plane.client.delete(apps_pb2.Deployment, "orph", plane.namespace,
                                  propagation="Orphan")
        await plane.until(lambda: all_gone(plane.client, d), 20, "the deployment to go")
        live_rs: Any = await exists(plane.client, rs)
        assert live_rs is not None
        assert list(live_rs.metadata.owner_references) == []
        # The pods keep their own owner, which still exists.
        for p in pods:
            live: Any = await exists(plane.client, p)
            assert live is not None and not live.metadata.HasField("deletion_timestamp")
            assert [r.uid for r in live.metadata.owner_references] == [rs.metadata.uid]

        # Orphaning the replica set in turn leaves its pods owner-less and alive.
        await plane.client.delete(apps_pb2.ReplicaSet, rs.metadata.name, plane.namespace,
                                  propagation="Orphan")
        await plane.until(lambda: all_gone(plane.client, rs), 20, "the replica set to go")
        await asyncio.sleep(1)  # time the collector would need to (wrongly) collect them
        for p in pods:
            live = await exists(plane.client, p)
            assert live is not None and not live.metadata.HasField("deletion_timestamp")
            assert list(live.metadata.owner_references) == []


async def test_a_dependent_with_two_owners_loses_only_the_deleted_one(sim_cluster: Any) -> None:
    async with control_plane(sim_cluster, GarbageCollector) as plane:
        owners = []
        for name in ("first", "second"):
            cm = core_pb2.ConfigMap()
            cm.metadata.name, cm.metadata.namespace = name, plane.namespace
            owners.append(await plane.client.create(cm))
        shared = core_pb2.Secret()
        shared.metadata.name, shared.metadata.namespace = "shared", plane.namespace
        for owner in owners:
            shared.metadata.owner_references.append(meta_pb2.OwnerReference(
                api_version="v1", kind="ConfigMap", name=owner.metadata.name,
                uid=owner.metadata.uid))
        shared = await plane.client.create(shared)

        await plane.client.delete(core_pb2.ConfigMap, "first", plane.namespace)

        async def lost_first() -> bool:
            live: Any = await exists(plane.client, shared)
            assert live is not None, "deleted although an owner remains"
            return [r.name for r in live.metadata.owner_references] == ["second"]

        await plane.until(lost_first, 20, "the reference to the deleted owner to go")
        await plane.client.delete(core_pb2.ConfigMap, "second", plane.namespace)
        await plane.until(lambda: all_gone(plane.client, shared), 20,
                          "the secret to go with its last owner")


async def test_a_config_map_owned_by_a_pod_goes_with_the_pod(sim_cluster: Any) -> None:
    async with control_plane(sim_cluster, GarbageCollector) as plane:
        p = core_pb2.Pod()
        p.metadata.name, p.metadata.namespace = "owner", plane.namespace
        p.spec.CopyFrom(template("cm").spec)
        p = await plane.client.create(p)
        cm = core_pb2.ConfigMap()
        cm.metadata.name, cm.metadata.namespace = "owned", plane.namespace
        cm.data["k"] = "v"
        cm.metadata.owner_references.append(owner_reference(p))
        cm = await plane.client.create(cm)
        await plane.until(lambda: running(plane, [p]), 20, "the pod to run")
        await asyncio.sleep(0.5)
        assert await exists(plane.client, cm) is not None  # its owner lives: it stays

        await plane.client.delete(core_pb2.Pod, "owner", plane.namespace)
        await plane.until(lambda: all_gone(plane.client, p, cm), 30,
                          "the config map to go with its pod")


async def test_a_dependent_of_an_owner_that_never_existed_is_collected(sim_cluster: Any) -> None:
    async with control_plane(sim_cluster, GarbageCollector) as plane:
        cm = core_pb2.ConfigMap()
        cm.metadata.name, cm.metadata.namespace = "stray", plane.namespace
        cm.metadata.owner_references.append(meta_pb2.OwnerReference(
            api_version="apps/v1", kind="ReplicaSet", name="nowhere",
            uid="00000000-0000-0000-0000-000000000000"))
        cm = await plane.client.create(cm)
        await plane.until(lambda: all_gone(plane.client, cm), 20, "the stray to be collected")
