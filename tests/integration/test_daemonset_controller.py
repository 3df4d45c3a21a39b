"""The DaemonSet controller on a simulated cluster (real apiserver, scheduler and three
kubelets on the fake runtime): one pod per eligible node, placed by the scheduler, kept
in line with node labels and taints, and updated node by node."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import AsyncIterator, Callable

from fixtures.simcluster import ControlPlane, SimCluster, control_plane

from controllers.nodes.podgc import PodGCController
from controllers.workloads.daemonset import REVISION_HASH_LABEL, DaemonSetController
from skiff.api import pods as pod_facts
from skiff.api.v1 import apps_pb2, core_pb2
from skiff.client import errors
from skiff.client.client import Client


def daemon_set(name: str, *, node_selector: dict[str, str] | None = None,
               strategy: str = "RollingUpdate", max_unavailable: int = 1,
               min_ready_seconds: int = 0) -> apps_pb2.DaemonSet:
    ds = apps_pb2.DaemonSet()
    ds.metadata.name = name
    ds.spec.selector.match_labels["app"] = name
    ds.spec.template.metadata.labels["app"] = name
    ds.spec.template.spec.containers.add(name="agent", image="busybox",
                                         command=["sleep", "3600"])
    ds.spec.template.spec.node_selector.update(node_selector or {})
    ds.spec.update_strategy.type = strategy
    if strategy == "RollingUpdate":
        ds.spec.update_strategy.rolling_update.max_unavailable.int_val = max_unavailable
    ds.spec.min_ready_seconds = min_ready_seconds
    return ds


async def create_ds(plane: ControlPlane, ds: apps_pb2.DaemonSet) -> apps_pb2.DaemonSet:
    ds.metadata.namespace = plane.namespace
    return await plane.client.create(ds)


async def get_ds(plane: ControlPlane, name: str) -> apps_pb2.DaemonSet:
    return await plane.client.get(apps_pb2.DaemonSet, name, plane.namespace)


async def edit(client: Client, kind: type, name: str, namespace: str,
               change: Callable[[object], None]) -> None:
    """Read-modify-write, again on a conflict (controllers write status meanwhile)."""
    while True:
        obj = await client.get(kind, name, namespace)
        change(obj)
        try:
            await client.update(obj)
            return
        except errors.Conflict:
            continue


@contextlib.asynccontextmanager
async def node_changed(client: Client, name: str,
                       change: Callable[[core_pb2.Node], None]) -> AsyncIterator[None]:
    """Changes a shared sim node for the block and puts back its labels and taints."""
    node = await client.get(core_pb2.Node, name)
    labels, taints = dict(node.metadata.labels), list(node.spec.taints)

    def restore(n: object) -> None:
        assert isinstance(n, core_pb2.Node)
        n.metadata.labels.clear()
        n.metadata.labels.update(labels)
        del n.spec.taints[:]
        n.spec.taints.extend(taints)

    await edit(client, core_pb2.Node, name, "", change)  # type: ignore[arg-type]
    try:
        yield
    finally:
        await edit(client, core_pb2.Node, name, "", restore)


async def live_pods(plane: ControlPlane, app: str) -> list[core_pb2.Pod]:
    return [p for p in await plane.pods(f"app={app}") if pod_facts.is_active(p)]


async def wait_status(plane: ControlPlane, name: str, timeout: float = 20.0,
                      **want: int) -> apps_pb2.DaemonSet:
    """Waits until the status fields named (e.g. number_available=3) have those values."""
    async def check() -> apps_pb2.DaemonSet | None:
        ds = await get_ds(plane, name)
        got = {k: getattr(ds.status, k) for k in want}
        return ds if got == want else None
    result: apps_pb2.DaemonSet = await plane.until(check, timeout, f"{name} status {want}")
    return result


async def pods_by_node(plane: ControlPlane, app: str) -> dict[str, list[core_pb2.Pod]]:
    by_node: dict[str, list[core_pb2.Pod]] = {}
    for pod in await live_pods(plane, app):
        by_node.setdefault(pod.spec.node_name, []).append(pod)
    return by_node


async def test_one_pod_per_node_placed_by_the_scheduler(sim_cluster: SimCluster) -> None:
    nodes = set(sim_cluster.node_names)
    async with control_plane(sim_cluster, DaemonSetController) as plane:
        ds = await create_ds(plane, daemon_set("agent", min_ready_seconds=1))
        ds = await wait_status(plane, "agent", desired_number_scheduled=3,
                               current_number_scheduled=3, number_ready=3,
                               number_available=3, updated_number_scheduled=3,
                               number_unavailable=0, number_misscheduled=0)
        assert ds.status.observed_generation == ds.metadata.generation

        by_node = await pods_by_node(plane, "agent")
        assert set(by_node) == nodes and all(len(p) == 1 for p in by_node.values())
        for node, [pod] in by_node.items():
            assert pod.status.phase == "Running"
            [term] = (pod.spec.affinity.node_affinity
                      .required_during_scheduling_ignored_during_execution.node_selector_terms)
            assert [(f.key, f.operator, list(f.values)) for f in term.match_fields] == [
                ("metadata.name", "In", [node])]
            assert pod.metadata.labels[REVISION_HASH_LABEL]
            tolerated = {(t.key, t.effect) for t in pod.spec.tolerations
                         if not t.HasField("toleration_seconds")}
            assert ("node.kubernetes.io/unreachable", "NoExecute") in tolerated
            assert ("node.kubernetes.io/unschedulable", "NoSchedule") in tolerated
            [ref] = pod.metadata.owner_references
            assert (ref.kind, ref.name, ref.controller) == ("DaemonSet", "agent", True)

        async def created_events() -> bool:
            return len(await plane.events("SuccessfulCreate")) == 3
        await plane.until(created_events, 5, "three SuccessfulCreate events")

        # A deleted pod comes back on its node.
        victim = by_node[sorted(nodes)[0]][0]
        await plane.client.delete(core_pb2.Pod, victim.metadata.name, plane.namespace)

        async def replaced() -> bool:
            pods = (await pods_by_node(plane, "agent")).get(victim.spec.node_name, [])
            return bool(pods) and pods[0].metadata.name != victim.metadata.name
        await plane.until(replaced, 15, "the deleted pod's replacement")

        # A second pod for one node (an orphan the set adopts): the older one stays.
        keeper = by_node[sorted(nodes)[1]][0]
        extra = core_pb2.Pod()
        extra.metadata.name, extra.metadata.namespace = "agent-extra", plane.namespace
        extra.metadata.labels.update(keeper.metadata.labels)
        extra.spec.CopyFrom(keeper.spec)
        await plane.client.create(extra)

        async def duplicate_removed() -> bool:
            pods = (await pods_by_node(plane, "agent")).get(keeper.spec.node_name, [])
            return [p.metadata.name for p in pods] == [keeper.metadata.name]
        await plane.until(duplicate_removed, 15, "the duplicate removed, the oldest kept")

        async def deleted_event() -> bool:
            return "Deleted pod: agent-extra" in {
                e.message for e in await plane.events("SuccessfulDelete")}
        await plane.until(deleted_event, 5, "the duplicate's SuccessfulDelete event")


async def test_node_selector_and_labels(sim_cluster: SimCluster) -> None:
    target = sim_cluster.node_names[1]
    key = f"ds-test-{uuid.uuid4().hex[:6]}"

    def label(node: object) -> None:
        assert isinstance(node, core_pb2.Node)
        node.metadata.labels[key] = "yes"

    async with (control_plane(sim_cluster, DaemonSetController) as plane,
                node_changed(plane.client, target, label)):
        await create_ds(plane, daemon_set("picky", node_selector={key: "yes"}))
        await wait_status(plane, "picky", desired_number_scheduled=1, number_ready=1)
        assert set(await pods_by_node(plane, "picky")) == {target}

        # The node stops matching: its pod goes.
        await edit(plane.client, core_pb2.Node, target, "",
                   lambda n: n.metadata.labels.pop(key))  # type: ignore[attr-defined]
        await wait_status(plane, "picky", desired_number_scheduled=0,
                          current_number_scheduled=0)

        async def gone() -> bool:
            return not await live_pods(plane, "picky")
        await plane.until(gone, 10, "the pod of the node that stopped matching deleted")


async def test_taints_keep_daemons_off_and_evict_them(sim_cluster: SimCluster) -> None:
    no_execute, no_schedule = sim_cluster.node_names[0], sim_cluster.node_names[2]
    key = f"ds-test-{uuid.uuid4().hex[:6]}"

    def taint(effect: str) -> Callable[[core_pb2.Node], None]:
        def change(node: core_pb2.Node) -> None:
            node.spec.taints.add(key=key, value="x", effect=effect)
        return change

    async with control_plane(sim_cluster, DaemonSetController) as plane:
        await create_ds(plane, daemon_set("tainted"))
        await wait_status(plane, "tainted", desired_number_scheduled=3, number_ready=3)

        async with node_changed(plane.client, no_execute, taint("NoExecute")):
            # An untolerated NoExecute taint: the node's daemon pod is deleted.
            await wait_status(plane, "tainted", desired_number_scheduled=2,
                              current_number_scheduled=2, number_misscheduled=0)

            async def evicted() -> bool:
                return no_execute not in await pods_by_node(plane, "tainted")
            await plane.until(evicted, 10, "the pod on the NoExecute-tainted node deleted")

            async with node_changed(plane.client, no_schedule, taint("NoSchedule")):
                # NoSchedule only keeps new pods off: the running one stays (misscheduled).
                await wait_status(plane, "tainted", desired_number_scheduled=1,
                                  number_misscheduled=1)
                assert no_schedule in await pods_by_node(plane, "tainted")

                # A new set skips both tainted nodes.
                await create_ds(plane, daemon_set("late"))
                await wait_status(plane, "late", desired_number_scheduled=1, number_ready=1)
                assert set(await pods_by_node(plane, "late")) == {sim_cluster.node_names[1]}

        # Taints gone: every node runs both sets' pods again.
        await wait_status(plane, "tainted", desired_number_scheduled=3, number_ready=3,
                          number_misscheduled=0)
        await wait_status(plane, "late", desired_number_scheduled=3, number_ready=3)


async def watch_unserved(client: Client, namespace: str, nodes: set[str],
                         seen: list[int]) -> None:
    """Appends, after every pod change in the namespace (in the apiserver's order, so no
    moment is missed), how many of `nodes` lack a ready pod that is not going away."""
    listed, version = await client.list(core_pb2.Pod, namespace)
    pods = {p.metadata.name: p for p in listed}
    seen.append(-1)  # watching from here
    async for event in client.watch(core_pb2.Pod, namespace, resource_version=version):
        pod = event.object
        if not isinstance(pod, core_pb2.Pod):
            continue
        if event.type == "DELETED":
            pods.pop(pod.metadata.name, None)
        else:
            pods[pod.metadata.name] = pod
        serving = {p.spec.node_name for p in pods.values()
                   if pod_facts.is_active(p) and pod_facts.is_ready(p)}
        seen.append(len(nodes - serving))


async def test_rolling_update_replaces_one_node_at_a_time(sim_cluster: SimCluster) -> None:
    nodes = set(sim_cluster.node_names)
    async with control_plane(sim_cluster, DaemonSetController) as plane:
        await create_ds(plane, daemon_set("roll", min_ready_seconds=1))
        await wait_status(plane, "roll", number_available=3)
        before = {p.metadata.name for p in await live_pods(plane, "roll")}
        old_hash = (await live_pods(plane, "roll"))[0].metadata.labels[REVISION_HASH_LABEL]
        unserved: list[int] = []
        watcher = asyncio.create_task(
            watch_unserved(plane.client, plane.namespace, nodes, unserved))
        try:
            await plane.until(lambda: asyncio.sleep(0, unserved), 5, "the pod watch")

            def new_template(obj: object) -> None:
                assert isinstance(obj, apps_pb2.DaemonSet)
                obj.spec.template.spec.containers[0].command[:] = ["sleep", "3601"]
            await edit(plane.client, apps_pb2.DaemonSet, "roll", plane.namespace,
                       new_template)

            async def rolled() -> bool:
                pods = await live_pods(plane, "roll")
                ds = await get_ds(plane, "roll")
                s = ds.status
                return (s.observed_generation == ds.metadata.generation
                        and (s.updated_number_scheduled, s.number_available) == (3, 3)
                        and len(pods) == 3
                        and all(p.metadata.labels[REVISION_HASH_LABEL] != old_hash
                                for p in pods))
            await plane.until(rolled, 40, "the rolling update")
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

        # Each node in turn lost its pod, never two at once (maxUnavailable 1).
        assert max(unserved) == 1, f"up to {max(unserved)} nodes were without a ready pod"
        after = await live_pods(plane, "roll")
        assert not before & {p.metadata.name for p in after}
        assert {p.spec.node_name for p in after} == nodes


async def test_on_delete_replaces_only_deleted_pods(sim_cluster: SimCluster) -> None:
    async with control_plane(sim_cluster, DaemonSetController) as plane:
        await create_ds(plane, daemon_set("manual", strategy="OnDelete"))
        await wait_status(plane, "manual", number_ready=3, updated_number_scheduled=3)
        pods = await live_pods(plane, "manual")
        old_hash = pods[0].metadata.labels[REVISION_HASH_LABEL]

        def new_template(obj: object) -> None:
            assert isinstance(obj, apps_pb2.DaemonSet)
            obj.spec.template.metadata.labels["version"] = "2"
        await edit(plane.client, apps_pb2.DaemonSet, "manual", plane.namespace, new_template)
        ds = await get_ds(plane, "manual")
        await wait_status(plane, "manual", observed_generation=ds.metadata.generation,
                          updated_number_scheduled=0, number_ready=3)
        await asyncio.sleep(1.0)  # time enough for a rollout that must not happen
        assert {p.metadata.name for p in await live_pods(plane, "manual")} == {
            p.metadata.name for p in pods}

        victim = pods[0]
        await plane.client.delete(core_pb2.Pod, victim.metadata.name, plane.namespace)
        await wait_status(plane, "manual", updated_number_scheduled=1, number_ready=3)
        by_node = await pods_by_node(plane, "manual")
        [replacement] = by_node[victim.spec.node_name]
        assert replacement.metadata.labels[REVISION_HASH_LABEL] != old_hash
        assert replacement.metadata.labels["version"] == "2"
        others = [p for node, ps in by_node.items() if node != victim.spec.node_name for p in ps]
        assert {p.metadata.labels[REVISION_HASH_LABEL] for p in others} == {old_hash}


async def test_new_node_gets_a_pod_and_a_deleted_one_loses_it(sim_cluster: SimCluster
                                                              ) -> None:
    extra = f"extra-{uuid.uuid4().hex[:6]}"
    node = core_pb2.Node()
    node.metadata.name = extra
    node.metadata.labels["kubernetes.io/hostname"] = extra
    for resource, value in (("cpu", "4"), ("memory", "8Gi"), ("pods", "110")):
        node.status.capacity[resource].value = value
        node.status.allocatable[resource].value = value
    node.status.conditions.add(type="Ready", status="True")

    gc = functools.partial(PodGCController, quarantine=1.0)
    async with control_plane(sim_cluster, DaemonSetController, gc) as plane:
        await create_ds(plane, daemon_set("everywhere"))
        await wait_status(plane, "everywhere", desired_number_scheduled=3, number_ready=3)
        created = await plane.client.create(node)
        try:
            created.status.CopyFrom(node.status)
            await plane.client.update_status(created)
            # No kubelet there: the pod is bound by the scheduler and stays Pending.
            await wait_status(plane, "everywhere", desired_number_scheduled=4,
                              current_number_scheduled=4, number_ready=3,
                              number_unavailable=1)

            async def bound() -> core_pb2.Pod | None:
                pods = (await pods_by_node(plane, "everywhere")).get(extra, [])
                return pods[0] if pods else None
            pod: core_pb2.Pod = await plane.until(bound, 10, "a pod bound to the new node")
            assert pod.status.phase == "Pending"

            # A failed daemon pod is deleted (with an event) and made again.
            pod.status.phase = "Failed"
            await plane.client.update_status(pod)

            async def remade() -> bool:
                pods = (await pods_by_node(plane, "everywhere")).get(extra, [])
                return bool(pods) and pods[0].metadata.name != pod.metadata.name
            await plane.until(remade, 10, "the failed pod replaced")
            [failed] = await plane.until(lambda: plane.events("FailedDaemonPod"), 5,
                                         "a FailedDaemonPod event")
            assert failed.type == "Warning"
            assert failed.message == (f"Found failed daemon pod {plane.namespace}/"
                                      f"{pod.metadata.name} on node {extra}, will try to kill it")
        finally:
            with contextlib.suppress(errors.NotFound):
                await plane.client.delete(core_pb2.Node, extra)

        # The node is gone: pod GC removes its pod after the quarantine.
        await wait_status(plane, "everywhere", desired_number_scheduled=3,
                          current_number_scheduled=3, number_available=3)

        async def collected() -> bool:
            return all(p.spec.node_name != extra for p in await plane.pods("app=everywhere"))
        await plane.until(collected, 10, "the pod of the deleted node collected")
