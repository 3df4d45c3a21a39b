"""Scheduler throughput and decision time, through a real apiserver and etcd.

Starts a private etcd and apiserver (bench/_cluster.py) and registers NODES simulated nodes
(Node objects only, Ready, 4 cpu / 16Gi / 110 pods each) and PODS pending pods (one
container requesting 100m cpu and 128Mi memory). Then:

1. throughput: starts the real scheduler daemon (`python -m scheduler.main`, a subprocess,
   leader election on) and watches the pods from this process; prints pods bound per second
   from the first bind seen to the last (goal >= 300 pods/s). Then stops it, adds nodes up
   to BIG_NODES, creates PODS more pending pods and measures again with a fresh daemon.
2. decision time: with the cluster as the apiserver holds it after each phase (the nodes
   and the pods bound to them), runs the scheduler's own algorithm and default plugins in
   this process on SAMPLES further pods (each decision books its pod, as the scheduler
   does), and prints p50 and p99 of one decision at NODES and at BIG_NODES nodes.

Every bound pod is checked afterwards: no node holds more than its allocatable.

Usage: python bench/scheduler.py [--nodes 1000] [--big-nodes 5000] [--pods 5000]
       [--samples 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

from bench._cluster import cluster, percentile  # noqa: E402
from cluster.components import scheduler_command  # noqa: E402
from scheduler import plugins  # noqa: E402
from scheduler.algorithm import Algorithm  # noqa: E402
from scheduler.cache import SchedulerCache  # noqa: E402
from scheduler.framework import PodInfo  # noqa: E402
from skiff.api.v1 import core_pb2  # noqa: E402
from skiff.client.client import Client  # noqa: E402

NODE_CPU, NODE_MEMORY, NODE_PODS = "4", "16Gi", "110"
POD_CPU_MILLI, POD_MEMORY = 100, "128Mi"
CLIENTS = 32


def make_node(name: str) -> core_pb2.Node:
    node = core_pb2.Node()
    node.metadata.name = name
    node.metadata.labels["kubernetes.io/hostname"] = name
    for key, value in (("cpu", NODE_CPU), ("memory", NODE_MEMORY), ("pods", NODE_PODS)):
        node.status.capacity[key].value = value
        node.status.allocatable[key].value = value
    node.status.conditions.add(type="Ready", status="True", reason="KubeletReady")
    return node


def make_pod(namespace: str, name: str) -> core_pb2.Pod:
    pod = core_pb2.Pod()
    pod.metadata.namespace, pod.metadata.name = namespace, name
    container = pod.spec.containers.add(name="app", image="registry.invalid/app:1")
    container.resources.requests["cpu"].value = f"{POD_CPU_MILLI}m"
    container.resources.requests["memory"].value = POD_MEMORY
    return pod


async def in_parallel(items: Iterable[object], call: Callable[[object], Awaitable[object]],
                      clients: int = CLIENTS) -> None:
    queue = list(items)
    queue.reverse()

    async def worker() -> None:
        while queue:
            await call(queue.pop())

    await asyncio.gather(*(worker() for _ in range(clients)))


async def create_nodes(client: Client, names: list[str]) -> None:
    await in_parallel(names, lambda name: client.create(make_node(str(name))))


async def create_pods(client: Client, namespace: str, names: list[str]) -> None:
    await in_parallel(names, lambda name: client.create(make_pod(namespace, str(name))))


async def wait_bound(client: Client, namespace: str, names: set[str], since: str,
                     timeout: float) -> list[float]:
    """Watches until every named pod has a node; returns when each bind was seen."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout

    async def watch() -> None:
        async for event in client.watch(core_pb2.Pod, namespace, resource_version=since):
            pod = event.object
            name = pod.metadata.name  # type: ignore[attr-defined]
            if name in names and pod.spec.node_name and name not in seen:  # type: ignore[attr-defined]
                seen[name] = time.monotonic()
                if len(seen) == len(names):
                    return

    try:
        await asyncio.wait_for(watch(), max(1.0, deadline - time.monotonic()))
    except TimeoutError:
        raise SystemExit(
            f"only {len(seen)} of {len(names)} pods were bound in {timeout:.0f}s") from None
    return sorted(seen.values())


async def check_no_overbooking(client: Client, namespace: str) -> Counter[str]:
    pods, _ = await client.list(core_pb2.Pod, namespace)
    per_node = Counter(p.spec.node_name for p in pods)  # type: ignore[attr-defined]
    limit = min(int(NODE_CPU) * 1000 // POD_CPU_MILLI, int(NODE_PODS))
    assert "" not in per_node, "some pods are not bound"
    worst = max(per_node.values())
    assert worst <= limit, f"a node holds {worst} pods, more than its room for {limit}"
    return per_node


async def decision_times(client: Client, namespace: str, samples: int) -> list[float]:
    """The scheduler's algorithm on the cluster as the apiserver has it, in this process."""
    nodes, _ = await client.list(core_pb2.Node)
    pods, _ = await client.list(core_pb2.Pod)
    cache = SchedulerCache()
    for node in nodes:
        cache.set_node(node)  # type: ignore[arg-type]
    for pod in pods:
        cache.add_pod(pod)  # type: ignore[arg-type]
    algorithm = Algorithm(*plugins.default_plugins())
    times = []
    for i in range(samples):
        pod = make_pod(namespace, f"sample-{i}")
        pod.metadata.uid = uuid.uuid4().hex
        started = time.perf_counter()
        info = PodInfo(pod)
        decision = algorithm.schedule(info, cache.candidates())
        times.append(time.perf_counter() - started)
        assert decision.node is not None, decision.explain()
        cache.assume(info, decision.node)
    return times


def start_scheduler(address: str, workdir: Path) -> subprocess.Popen[bytes]:
    with open(workdir / "scheduler.log", "ab") as out:
        return subprocess.Popen(
            scheduler_command(server=address, extra=["--log-level", "WARNING"]),
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT)


async def phase(client: Client, address: str, workdir: Path, namespace: str, prefix: str,
                pods: int) -> float:
    """Creates `pods` pending pods, then runs the scheduler daemon until all are bound."""
    names = [f"{prefix}-{i:05d}" for i in range(pods)]
    await create_pods(client, namespace, names)
    _, since = await client.list(core_pb2.Pod, namespace)
    watching = asyncio.create_task(wait_bound(client, namespace, set(names), since,
                                              timeout=600))
    await asyncio.sleep(0.5)  # the watch is open before the first bind can happen
    proc = start_scheduler(address, workdir)
    try:
        seen = await watching
    finally:
        proc.terminate()  # releases its Lease: the next one leads at once
        if proc.wait(10) not in (0, -signal.SIGTERM):
            print((workdir / "scheduler.log").read_text()[-3000:], file=sys.stderr)
    return (len(seen) - 1) / (seen[-1] - seen[0])


async def main(args: argparse.Namespace) -> None:
    with cluster() as c:
        async with Client(c.address) as client:
            namespace = core_pb2.Namespace()
            namespace.metadata.name = "bench"
            await client.create(namespace)
            print(f"# registering {args.nodes} nodes", file=sys.stderr)
            await create_nodes(client, [f"node-{i:05d}" for i in range(args.nodes)])
            print(f"# {args.pods} pods, then the scheduler", file=sys.stderr)
            rate_small = await phase(client, c.address, c.workdir, "bench", "a", args.pods)
            per_node = await check_no_overbooking(client, "bench")
            small = await decision_times(client, "bench", args.samples)

            print(f"# adding nodes up to {args.big_nodes}, {args.pods} more pods",
                  file=sys.stderr)
            await create_nodes(client, [f"node-{i:05d}"
                                        for i in range(args.nodes, args.big_nodes)])
            rate_big = await phase(client, c.address, c.workdir, "bench", "b", args.pods)
            per_node = await check_no_overbooking(client, "bench")
            big = await decision_times(client, "bench", args.samples)

    ms = 1000.0
    print(f"pods bound per second, {args.pods} pods on {args.nodes} nodes: {rate_small:.0f} "
          "(goal >= 300)")
    print(f"pods bound per second, {args.pods} more pods on {args.big_nodes} nodes: "
          f"{rate_big:.0f} (goal >= 300; kube-scheduler's threshold at 5000 nodes: 270)")
    for n, times in ((args.nodes, small), (args.big_nodes, big)):
        print(f"one scheduling decision at {n} nodes: p50 {statistics.median(times) * ms:.2f} "
              f"ms, p99 {percentile(times, 99) * ms:.2f} ms ({len(times)} decisions)")
    print(f"no node overbooked: at most {max(per_node.values())} pods on a node "
          f"({len(per_node)} nodes used)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--big-nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=5000)
    parser.add_argument("--samples", type=int, default=2000)
    asyncio.run(main(parser.parse_args()))
