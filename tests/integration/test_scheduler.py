"""The scheduler against a real apiserver and etcd, with Node objects registered directly.

The apiserver is private to this module (`private_apiserver`), so the scheduler sees only
the nodes these tests make; every test removes its nodes and pods when it ends. The
scheduler runs in this process (the daemon's own `Scheduler`), except in the hand-over
test, which runs two real `skiff-scheduler` processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fixtures.cli import ENV, Cli
from fixtures.simcluster import until

from cluster.components import scheduler_command
from scheduler.scheduler import Scheduler
from skiff.api.v1 import coordination_pb2, core_pb2
from skiff.client import errors
from skiff.client.client import Client

REPO = Path(__file__).resolve().parents[2]


def make_node(name: str, *, cpu: str = "4", memory: str = "8Gi", pods: str = "110",
              labels: dict[str, str] | None = None, taints: Iterable[str] = (),
              unschedulable: bool = False, ready: str = "True") -> core_pb2.Node:
    node = core_pb2.Node()
    node.metadata.name = name
    node.metadata.labels.update({"kubernetes.io/hostname": name, **(labels or {})})
    for taint in taints:  # key=value:Effect
        key_value, _, effect = taint.partition(":")
        key, _, value = key_value.partition("=")
        node.spec.taints.add(key=key, value=value, effect=effect)
    node.spec.unschedulable = unschedulable
    for key, value in (("cpu", cpu), ("memory", memory), ("pods", pods)):
        node.status.capacity[key].value = value
        node.status.allocatable[key].value = value
    node.status.conditions.add(type="Ready", status=ready)
    return node


def make_pod(namespace: str, name: str, *, cpu: str = "", memory: str = "",
             node_selector: dict[str, str] | None = None, host_port: int = 0,
             tolerations: Iterable[dict[str, str]] = (),
             scheduler_name: str = "") -> core_pb2.Pod:
    pod = core_pb2.Pod()
    pod.metadata.namespace, pod.metadata.name = namespace, name
    container = pod.spec.containers.add(name="app", image="registry.invalid/app:1")
    if cpu:
        container.resources.requests["cpu"].value = cpu
    if memory:
        container.resources.requests["memory"].value = memory
    if host_port:
        container.ports.add(container_port=80, host_port=host_port)
    pod.spec.node_selector.update(node_selector or {})
    for toleration in tolerations:
        pod.spec.tolerations.add(**toleration)
    if scheduler_name:
        pod.spec.scheduler_name = scheduler_name
    return pod


@dataclass
class Cluster:
    client: Client
    namespace: str
    address: str

    async def nodes(self, *nodes: core_pb2.Node) -> None:
        for node in nodes:
            await self.client.create(node)

    async def pods(self, *pods: core_pb2.Pod) -> None:
        await asyncio.gather(*(self.client.create(p) for p in pods))

    async def pod(self, name: str) -> core_pb2.Pod:
        return await self.client.get(core_pb2.Pod, name, self.namespace)

    async def bound(self) -> dict[str, str]:
        pods, _ = await self.client.list(core_pb2.Pod, self.namespace)
        return {p.metadata.name: p.spec.node_name for p in pods  # type: ignore[attr-defined]
                if p.spec.node_name}  # type: ignore[attr-defined]

    async def until(self, check: Callable[[], Any], timeout: float = 15.0,
                    what: str = "condition") -> Any:
        return await until(check, timeout, what)


@pytest.fixture
async def cluster(private_apiserver: Any) -> AsyncIterator[Cluster]:
    client = private_apiserver.client()
    namespace = core_pb2.Namespace()
    namespace.metadata.name = f"s-{uuid.uuid4().hex[:8]}"
    await client.create(namespace)
    try:
        yield Cluster(client, namespace.metadata.name, private_apiserver.address)
    finally:
        # No kubelet confirms deletions here: remove the pods at once.
        pods, _ = await client.list(core_pb2.Pod, namespace.metadata.name)
        for pod in pods:
            with contextlib.suppress(errors.NotFound):
                await client.delete(core_pb2.Pod, pod.metadata.name,  # type: ignore[attr-defined]
                                    namespace.metadata.name, grace_period=0)
        nodes, _ = await client.list(core_pb2.Node)
        for node in nodes:
            with contextlib.suppress(errors.NotFound):
                await client.delete(core_pb2.Node, node.metadata.name)  # type: ignore[attr-defined]
        await client.delete(core_pb2.Namespace, namespace.metadata.name)
        await client.close()


@contextlib.asynccontextmanager
async def running(scheduler: Scheduler) -> AsyncIterator[Scheduler]:
    task = asyncio.create_task(scheduler.run())
    try:
        yield scheduler
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_pods_land_only_where_they_fit(cluster: Cluster) -> None:
    ns = cluster.namespace
    await cluster.nodes(
        make_node("small", cpu="1", memory="1Gi"),
        make_node("ssd", labels={"disk": "ssd"}),
        make_node("gpu", taints=["dedicated=gpu:NoSchedule"]),
        make_node("cordoned", unschedulable=True),
        make_node("down", ready="False"))
    gpu_toleration = {"key": "dedicated", "operator": "Equal", "value": "gpu",
                      "effect": "NoSchedule"}
    await cluster.pods(
        make_pod(ns, "big", cpu="2"),
        make_pod(ns, "wants-ssd", node_selector={"disk": "ssd"}),
        make_pod(ns, "gpu-user", tolerations=[gpu_toleration],
                 node_selector={"kubernetes.io/hostname": "gpu"}),
        make_pod(ns, "port-a", host_port=8080),
        make_pod(ns, "port-b", host_port=8080),
        *(make_pod(ns, f"any-{i}", cpu="100m") for i in range(6)))
    async with running(Scheduler(cluster.client)):
        bound = await cluster.until(
            lambda: _all_bound(cluster, 11), what="11 pods bound")
    assert bound["big"] == "ssd"
    assert bound["wants-ssd"] == "ssd"
    assert bound["gpu-user"] == "gpu"
    assert {bound["port-a"], bound["port-b"]} == {"small", "ssd"}
    assert {bound[f"any-{i}"] for i in range(6)} <= {"small", "ssd"}
    for pod_name in bound:
        pod = await cluster.pod(pod_name)
        scheduled = next(c for c in pod.status.conditions if c.type == "PodScheduled")
        assert scheduled.status == "True"


async def _all_bound(cluster: Cluster, count: int) -> dict[str, str] | None:
    bound = await cluster.bound()
    return bound if len(bound) == count else None


async def _scheduled_condition(cluster: Cluster, name: str) -> core_pb2.PodCondition | None:
    pod = await cluster.pod(name)
    return next((c for c in pod.status.conditions if c.type == "PodScheduled"), None)


async def test_an_unschedulable_pod_says_why_and_is_placed_once_a_node_fits(
        cluster: Cluster) -> None:
    ns = cluster.namespace
    await cluster.nodes(make_node("gpu", taints=["dedicated=gpu:NoSchedule"]),
                        make_node("tiny-1", memory="1Gi"), make_node("tiny-2", memory="1Gi"))
    await cluster.pods(make_pod(ns, "hungry", memory="2Gi"))
    expected = ("0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, "
                "2 Insufficient memory.")
    async with running(Scheduler(cluster.client)):
        async def unschedulable() -> core_pb2.PodCondition | None:
            condition = await _scheduled_condition(cluster, "hungry")
            return condition if condition is not None and condition.status == "False" else None

        condition = await cluster.until(unschedulable, what="PodScheduled=False")
        assert (condition.reason, condition.message) == ("Unschedulable", expected)

        async def failed_event() -> list[core_pb2.Event]:
            events, _ = await cluster.client.list(core_pb2.Event, ns)
            return [e for e in events if e.reason == "FailedScheduling"]  # type: ignore[attr-defined]

        events = await cluster.until(failed_event, what="a FailedScheduling event")
        assert events[0].type == "Warning" and events[0].message == expected
        assert events[0].involved_object.name == "hungry"
        described = await asyncio.to_thread(Cli(cluster.address), "describe", "pod", "hungry",
                                            "-n", ns)
        assert described.returncode == 0, described.stderr
        assert "FailedScheduling" in described.stdout
        assert expected in described.stdout

        await cluster.nodes(make_node("roomy", memory="4Gi"))
        bound = await cluster.until(lambda: _all_bound(cluster, 1), timeout=10,
                                    what="the pod bound once a node fits")
    assert bound == {"hungry": "roomy"}
    condition = await _scheduled_condition(cluster, "hungry")
    assert condition is not None and condition.status == "True"


async def test_a_hundred_pods_racing_for_fifty_places_never_overbook(cluster: Cluster) -> None:
    ns = cluster.namespace
    await cluster.nodes(*(make_node(f"n{i}", cpu="1") for i in range(5)))
    await cluster.pods(*(make_pod(ns, f"p{i:03d}", cpu="100m") for i in range(100)))
    async with running(Scheduler(cluster.client)) as scheduler:
        await cluster.until(lambda: _count_bound(cluster, 50), what="50 pods bound")

        async def settled() -> bool:
            return scheduler.queue.pending()["unschedulable"] == 50

        await cluster.until(settled, what="the other 50 waiting as unschedulable")
        bound = await cluster.bound()
        assert len(bound) == 50
        assert max(Counter(bound.values()).values()) <= 10  # 1 cpu / 100m

        # Room freed by deleted pods is taken by the waiting ones, and no more.
        for name in sorted(bound)[:10]:
            await cluster.client.delete(core_pb2.Pod, name, ns, grace_period=0)
        await cluster.until(lambda: _count_bound(cluster, 50, excluding=sorted(bound)[:10]),
                            what="10 waiting pods bound after deletions")
        await asyncio.sleep(0.5)
        bound = await cluster.bound()
    assert len(bound) == 50
    assert max(Counter(bound.values()).values()) <= 10


async def _count_bound(cluster: Cluster, count: int, excluding: Iterable[str] = ()) -> bool:
    bound = await cluster.bound()
    return len(set(bound) - set(excluding)) >= count


async def test_a_node_cordoned_mid_run_gets_nothing_more(cluster: Cluster) -> None:
    ns = cluster.namespace
    await cluster.nodes(make_node("a"), make_node("b"))
    async with running(Scheduler(cluster.client)):
        async def stream(names: list[str]) -> None:
            for name in names:
                await cluster.pods(make_pod(ns, name, cpu="10m"))
                await asyncio.sleep(0.02)

        first = asyncio.create_task(stream([f"early-{i}" for i in range(40)]))
        await asyncio.sleep(0.4)
        node = await cluster.client.get(core_pb2.Node, "a")
        node.spec.unschedulable = True
        await cluster.client.update(node)
        cordoned_at = time.time()
        await first
        await cluster.pods(*(make_pod(ns, f"late-{i}", cpu="10m") for i in range(20)))
        await cluster.until(lambda: _count_bound(cluster, 60), what="60 pods bound")
    pods, _ = await cluster.client.list(core_pb2.Pod, ns)
    on_a = [p for p in pods if p.spec.node_name == "a"]  # type: ignore[attr-defined]
    assert on_a, "the stream started before the cordon, some pods should be on a"
    for pod in on_a:
        scheduled = next(c for c in pod.status.conditions  # type: ignore[attr-defined]
                         if c.type == "PodScheduled")
        # Bound before the cordon, or within the moment it takes the scheduler to see it.
        assert scheduled.last_transition_time.ToDatetime().timestamp() < cordoned_at + 0.5


async def test_a_node_that_becomes_ready_gets_the_waiting_pod(cluster: Cluster) -> None:
    ns = cluster.namespace
    await cluster.nodes(make_node("late", ready="False"))
    await cluster.pods(make_pod(ns, "waiting"))
    async with running(Scheduler(cluster.client)):
        async def explained() -> core_pb2.PodCondition | None:
            condition = await _scheduled_condition(cluster, "waiting")
            return condition if condition is not None and condition.status == "False" else None

        condition = await cluster.until(explained, what="PodScheduled=False")
        assert condition.message == "0/1 nodes are available: 1 node(s) were not ready."
        node = await cluster.client.get(core_pb2.Node, "late")
        node.status.conditions[0].status = "True"
        await cluster.client.update_status(node)
        assert await cluster.until(lambda: _all_bound(cluster, 1)) == {"waiting": "late"}


async def test_pods_for_another_scheduler_are_left_alone(cluster: Cluster) -> None:
    ns = cluster.namespace
    await cluster.nodes(make_node("only"))
    await cluster.pods(make_pod(ns, "mine"), make_pod(ns, "theirs", scheduler_name="other"))
    async with running(Scheduler(cluster.client)):
        await cluster.until(lambda: _all_bound(cluster, 1))
        await asyncio.sleep(0.3)
        assert await cluster.bound() == {"mine": "only"}


async def test_pods_of_one_owner_spread_over_the_nodes(cluster: Cluster) -> None:
    ns = cluster.namespace
    await cluster.nodes(*(make_node(f"z{i}") for i in range(3)))
    owner_uid = str(uuid.uuid4())
    pods = []
    for i in range(6):
        pod = make_pod(ns, f"replica-{i}")
        pod.metadata.owner_references.add(api_version="apps/v1", kind="ReplicaSet",
                                          name="web", uid=owner_uid, controller=True)
        pods.append(pod)
    await cluster.pods(*pods)
    async with running(Scheduler(cluster.client)):
        bound = await cluster.until(lambda: _all_bound(cluster, 6))
    assert sorted(Counter(bound.values()).values()) == [2, 2, 2]


# ---- two scheduler processes, one Lease ----


def start_scheduler(address: str, lease: str, identity: str, log: Path
                    ) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            scheduler_command(server=address,
                              extra=["--lease-name", lease, "--identity", identity]),
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            env=ENV)


async def test_killing_the_active_scheduler_hands_over(cluster: Cluster,
                                                       tmp_path: Path) -> None:
    ns = cluster.namespace
    lease = f"scheduler-{uuid.uuid4().hex[:6]}"
    await cluster.nodes(make_node("solo"))
    procs = {name: start_scheduler(cluster.address, lease, name, tmp_path / f"{name}.log")
             for name in ("first", "second")}
    try:
        async def holder() -> str:
            with contextlib.suppress(errors.NotFound):
                got = await cluster.client.get(coordination_pb2.Lease, lease, "kube-system")
                return got.spec.holder_identity
            return ""

        leader = await cluster.until(holder, what="a leader")
        await cluster.pods(make_pod(ns, "before"))
        await cluster.until(lambda: _all_bound(cluster, 1), what="the leader scheduling")

        procs[leader].send_signal(signal.SIGKILL)
        procs[leader].wait()
        killed_at = time.monotonic()
        await cluster.pods(make_pod(ns, "after"))
        await cluster.until(lambda: _all_bound(cluster, 2), timeout=20,
                            what="the standby scheduling")
        took = time.monotonic() - killed_at
        print(f"hand-over: the standby bound a new pod {took:.1f}s after the leader died")
        assert took < 15, f"the standby took {took:.1f}s to take over"
        standby = "second" if leader == "first" else "first"
        assert await holder() == standby
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
