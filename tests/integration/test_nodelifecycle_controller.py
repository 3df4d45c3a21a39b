"""The node lifecycle controller and pod GC on a simulated cluster: a kubelet that dies
(SIGKILL) leaves a node that goes Unknown and gets tainted, its pods are evicted as their
tolerations say, and all is well again when the kubelet comes back; a deleted node's pods
are collected after the quarantine.

The module's kubelets renew their Leases every half second (``--node-lease-duration-seconds
2``) instead of every ten, so that a grace period of three seconds tells a dead node from
a live one and the tests stay short.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fixtures.apiserver import ApiServerProcess
from fixtures.kubelet import KubeletProcess
from fixtures.simcluster import ControlPlane, SimCluster, control_plane, sim_kubelets

from controllers.nodes.nodelifecycle import NodeLifecycleController
from controllers.nodes.podgc import PodGCController
from skiff.api import pods as pod_facts
from skiff.api.v1 import coordination_pb2, core_pb2
from skiff.client import errors
from skiff.client.client import Client

GRACE = 3.0
LEASE_ARGS = ("--node-lease-duration-seconds", "2")
KUBELET_ARGS = ("--crash-backoff-base", "1", "--relist-period", "0.5", *LEASE_ARGS)
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"


@pytest.fixture(scope="module")
def sim_cluster(private_apiserver: ApiServerProcess, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[SimCluster]:
    """The shared simulated cluster, with kubelets that renew their Leases often."""
    with sim_kubelets(private_apiserver, tmp_path_factory.mktemp("sim-nodes"),
                      LEASE_ARGS) as cluster:
        yield cluster


def lifecycle(ctx: Any) -> NodeLifecycleController:
    return NodeLifecycleController(ctx, node_monitor_grace_period=GRACE)


def pod_on(namespace: str, name: str, node: str, *,
           tolerations: tuple[core_pb2.Toleration, ...] = ()) -> core_pb2.Pod:
    pod = core_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace = name, namespace
    pod.spec.node_name = node
    pod.spec.containers.add(name="main", image="busybox", command=["sleep", "3600"])
    pod.spec.tolerations.extend(tolerations)
    return pod


def tolerate_unreachable(seconds: int | None) -> core_pb2.Toleration:
    toleration = core_pb2.Toleration(key=UNREACHABLE, operator="Exists", effect="NoExecute")
    if seconds is not None:
        toleration.toleration_seconds = seconds
    return toleration


def ready_condition(node: core_pb2.Node) -> core_pb2.NodeCondition | None:
    return next((c for c in node.status.conditions if c.type == "Ready"), None)


def taint_keys(node: core_pb2.Node) -> set[tuple[str, str]]:
    return {(t.key, t.effect) for t in node.spec.taints}


async def get_pod(plane: ControlPlane, name: str) -> core_pb2.Pod | None:
    with contextlib.suppress(errors.NotFound):
        return await plane.client.get(core_pb2.Pod, name, plane.namespace)
    return None


@contextlib.asynccontextmanager
async def extra_kubelet(cluster: SimCluster, root: Path) -> AsyncIterator[KubeletProcess]:
    """A fake kubelet of this test's own, its Node and Lease removed afterwards."""
    kubelet = KubeletProcess(cluster.address, root, fake=True,
                             node_name=f"doomed-{uuid.uuid4().hex[:6]}",
                             extra_args=KUBELET_ARGS)
    kubelet.start()
    try:
        await asyncio.to_thread(kubelet.wait_running)
        yield kubelet
    finally:
        kubelet.stop()
        kubelet.cleanup()
        async with Client(cluster.address) as client:
            with contextlib.suppress(errors.NotFound):
                await client.delete(core_pb2.Node, kubelet.node_name)
            with contextlib.suppress(errors.NotFound):
                await client.delete(coordination_pb2.Lease, kubelet.node_name,
                                    "kube-node-lease")


async def test_dead_kubelet_node_goes_unknown_and_its_pods_are_evicted(
        sim_cluster: SimCluster, tmp_path: Path) -> None:
    async with (extra_kubelet(sim_cluster, tmp_path / "doomed") as kubelet,
                control_plane(sim_cluster, lifecycle, scheduler=False) as plane):
        node_name = kubelet.node_name
        ns = plane.namespace
        for pod in (pod_on(ns, "now", node_name, tolerations=(tolerate_unreachable(0),)),
                    pod_on(ns, "soon", node_name, tolerations=(tolerate_unreachable(1),)),
                    pod_on(ns, "forever", node_name, tolerations=(tolerate_unreachable(None),)),
                    pod_on(ns, "default", node_name)):  # the apiserver adds 300 s
            await plane.client.create(pod)

        async def all_ready() -> bool:
            pods = await plane.pods()
            return len(pods) == 4 and all(pod_facts.is_ready(p) for p in pods)
        await plane.until(all_ready, 15, "the pods running on the extra node")
        node = await plane.client.get(core_pb2.Node, node_name)
        assert not any(k == UNREACHABLE for k, _ in taint_keys(node))

        kubelet.kill()
        killed_at = asyncio.get_running_loop().time()

        async def unknown() -> core_pb2.Node | None:
            node = await plane.client.get(core_pb2.Node, node_name)
            ready = ready_condition(node)
            return node if ready is not None and ready.status == "Unknown" else None
        node = await plane.until(unknown, GRACE + 10, "the node's Ready condition Unknown")
        assert asyncio.get_running_loop().time() - killed_at >= GRACE - 1.0
        ready = ready_condition(node)
        assert ready is not None
        assert (ready.reason, ready.message) == ("NodeStatusUnknown",
                                                 "Kubelet stopped posting node status.")

        async def tainted() -> core_pb2.Node | None:
            node = await plane.client.get(core_pb2.Node, node_name)
            return node if (UNREACHABLE, "NoExecute") in taint_keys(node) else None
        node = await plane.until(tainted, 5, "the unreachable:NoExecute taint")
        [taint] = [t for t in node.spec.taints if (t.key, t.effect) == (UNREACHABLE, "NoExecute")]
        assert taint.HasField("time_added")
        assert (UNREACHABLE, "NoSchedule") in taint_keys(node)

        async def evicted() -> bool:
            pods = {p.metadata.name: p for p in await plane.pods()}
            return all(pods[n].metadata.HasField("deletion_timestamp") for n in ("now", "soon"))
        await plane.until(evicted, 10, "the pods with short tolerations evicted")

        async def eviction_events() -> bool:
            messages = {e.message for e in await plane.events("TaintManagerEviction")}
            return messages == {f"Marking for deletion Pod {ns}/now",
                                f"Marking for deletion Pod {ns}/soon"}
        await plane.until(eviction_events, 5, "TaintManagerEviction events")
        now_pod = await get_pod(plane, "now")
        assert now_pod is not None
        disruption = pod_facts.condition(now_pod, "DisruptionTarget")
        assert disruption is not None and disruption.reason == "DeletionByTaintManager"

        # The others stay, but no longer count as ready; events say why.
        for name in ("forever", "default"):
            pod = await get_pod(plane, name)
            assert pod is not None and not pod.metadata.HasField("deletion_timestamp")

        async def marked_not_ready() -> bool:
            pods = [await get_pod(plane, n) for n in ("forever", "default")]
            return all(p is not None and not pod_facts.is_ready(p) for p in pods)
        await plane.until(marked_not_ready, 5, "the staying pods marked not ready")

        async def node_not_ready_events() -> bool:
            events = await plane.events("NodeNotReady")
            return {e.involved_object.name for e in events} >= {"forever", "default"}
        await plane.until(node_not_ready_events, 5, "NodeNotReady events on the pods")
        assert all(e.message == "Node is not ready" for e in await plane.events("NodeNotReady"))
        node_events, _ = await plane.client.list(core_pb2.Event, "default")
        assert any(e.involved_object.name == node_name and e.reason == "NodeNotReady"
                   and e.message == f"Node {node_name} status is now: NodeNotReady"
                   for e in node_events)

        # The kubelet comes back: Ready again, the taints go, the evicted pods finish
        # going and the others run on.
        kubelet.start()
        await asyncio.to_thread(kubelet.wait_running)

        async def healthy() -> bool:
            node = await plane.client.get(core_pb2.Node, node_name)
            ready = ready_condition(node)
            return (ready is not None and ready.status == "True"
                    and not {k for k, _ in taint_keys(node)} & {UNREACHABLE, NOT_READY})
        await plane.until(healthy, 15, "the node Ready and untainted again")

        async def settled() -> bool:
            pods = {p.metadata.name: p for p in await plane.pods()}
            return (set(pods) == {"forever", "default"}
                    and all(pod_facts.is_ready(p) for p in pods.values()))
        await plane.until(settled, 15, "evicted pods gone, the others ready again")

        for pod in await plane.pods():  # gone before the kubelet is
            await plane.client.delete(core_pb2.Pod, pod.metadata.name, ns, grace_period=0)


async def renew_lease_forever(client: Client, name: str) -> None:
    """Stands in for a kubelet's heartbeat."""
    lease = coordination_pb2.Lease()
    lease.metadata.name, lease.metadata.namespace = name, "kube-node-lease"
    lease.spec.holder_identity = name
    lease.spec.renew_time.FromDatetime(datetime.now(UTC))
    lease = await client.create(lease)
    while True:
        await asyncio.sleep(0.3)
        lease.spec.renew_time.FromDatetime(datetime.now(UTC))
        lease = await client.update(lease)


def bare_node(name: str, ready: str) -> core_pb2.Node:
    node = core_pb2.Node()
    node.metadata.name = name
    for resource, value in (("cpu", "4"), ("memory", "8Gi"), ("pods", "110")):
        node.status.capacity[resource].value = value
        node.status.allocatable[resource].value = value
    node.status.conditions.add(type="Ready", status=ready, reason="KubeletNotReady")
    return node


async def register(client: Client, node: core_pb2.Node) -> core_pb2.Node:
    """Creates the Node and writes its status, as a kubelet registers: the lifecycle
    controller may taint it in between (a node without a status is not ready), so the
    status is written again over a conflict."""
    await client.create(node)
    for _ in range(5):
        current = await client.get(core_pb2.Node, node.metadata.name)
        current.status.CopyFrom(node.status)
        try:
            return await client.update_status(current)
        except errors.Conflict:
            continue
    raise AssertionError(f"node {node.metadata.name}: its status kept conflicting")


async def test_node_reporting_not_ready_gets_the_not_ready_taint(sim_cluster: SimCluster
                                                                 ) -> None:
    name = f"sick-{uuid.uuid4().hex[:6]}"
    async with control_plane(sim_cluster, lifecycle, scheduler=False) as plane:
        heartbeat = asyncio.create_task(renew_lease_forever(plane.client, name))
        try:
            node = await register(plane.client, bare_node(name, "False"))

            async def not_ready_tainted() -> core_pb2.Node | None:
                node = await plane.client.get(core_pb2.Node, name)
                return node if taint_keys(node) == {(NOT_READY, "NoExecute"),
                                                    (NOT_READY, "NoSchedule")} else None
            node = await plane.until(not_ready_tainted, 5, "the not-ready taints")
            await asyncio.sleep(GRACE + 0.5)  # alive (Lease renewed): never Unknown
            node = await plane.client.get(core_pb2.Node, name)
            assert ready_condition(node).status == "False"  # type: ignore[union-attr]
            assert UNREACHABLE not in {k for k, _ in taint_keys(node)}

            ready = ready_condition(node)
            assert ready is not None
            ready.status, ready.reason = "True", "KubeletReady"
            await plane.client.update_status(node)

            async def untainted() -> bool:
                return not (await plane.client.get(core_pb2.Node, name)).spec.taints
            await plane.until(untainted, 5, "the taints removed once Ready")
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
            with contextlib.suppress(errors.NotFound):
                await plane.client.delete(core_pb2.Node, name)
            with contextlib.suppress(errors.NotFound):
                await plane.client.delete(coordination_pb2.Lease, name, "kube-node-lease")


async def test_pods_of_a_deleted_node_are_collected_after_the_quarantine(
        sim_cluster: SimCluster) -> None:
    name = f"gone-{uuid.uuid4().hex[:6]}"
    gc = functools.partial(PodGCController, quarantine=1.5)
    async with control_plane(sim_cluster, gc, scheduler=False) as plane:
        await register(plane.client, bare_node(name, "True"))
        for pod_name in ("a", "b"):
            await plane.client.create(pod_on(plane.namespace, pod_name, name))
        bystander = pod_on(plane.namespace, "bystander", sim_cluster.node_names[0])
        await plane.client.create(bystander)

        await plane.client.delete(core_pb2.Node, name)
        deleted_at = asyncio.get_running_loop().time()
        await asyncio.sleep(0.5)
        assert {p.metadata.name for p in await plane.pods()} == {"a", "b", "bystander"}

        async def collected() -> bool:
            return {p.metadata.name for p in await plane.pods()} == {"bystander"}
        await plane.until(collected, 10, "the deleted node's pods collected")
        assert asyncio.get_running_loop().time() - deleted_at >= 1.4


async def test_a_replica_set_replaces_its_pods_evicted_from_a_dead_node(
        sim_cluster: SimCluster, tmp_path: Path) -> None:
    from controllers.workloads.replicaset import ReplicaSetController
    from skiff.api.v1 import apps_pb2

    async with (extra_kubelet(sim_cluster, tmp_path / "doomed") as kubelet,
                control_plane(sim_cluster, lifecycle, ReplicaSetController) as plane):
        rs = apps_pb2.ReplicaSet()
        rs.metadata.name, rs.metadata.namespace = "web", plane.namespace
        rs.spec.replicas = 4
        rs.spec.selector.match_labels["app"] = "web"
        rs.spec.template.metadata.labels["app"] = "web"
        spec = rs.spec.template.spec
        spec.containers.add(name="main", image="busybox", command=["sleep", "3600"])
        # Pin every pod to the doomed node at first, and evict a second after it dies.
        spec.node_selector["kubernetes.io/hostname"] = kubelet.node_name
        spec.tolerations.append(tolerate_unreachable(1))
        await plane.client.create(rs)

        async def running_on(nodes: set[str]) -> list[core_pb2.Pod]:
            pods = [p for p in await plane.pods() if not p.metadata.HasField(
                "deletion_timestamp")]
            ok = len(pods) == 4 and all(pod_facts.is_ready(p) and p.spec.node_name in nodes
                                        for p in pods)
            return pods if ok else []

        await plane.until(lambda: running_on({kubelet.node_name}), 20,
                          "four pods on the doomed node")
        # From now on new pods may go anywhere: the template change applies to new pods
        # only, as a ReplicaSet never touches the pods it has.
        current = await plane.client.get(apps_pb2.ReplicaSet, "web", plane.namespace)
        del current.spec.template.spec.node_selector["kubernetes.io/hostname"]
        await plane.client.update(current)
        kubelet.kill()
        healthy = set(sim_cluster.node_names)
        replaced = await plane.until(lambda: running_on(healthy), 30,
                                     "four replacements on the healthy nodes")
        assert {p.spec.node_name for p in replaced} <= healthy
