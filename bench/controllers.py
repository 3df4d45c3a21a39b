"""A 500-replica Deployment on 20 simulated nodes: time to available, and to roll it over.

Starts a private etcd and apiserver (bench/_cluster.py), NODES kubelet processes on the fake
runtime (real kubelets whose containers live in memory), and the real scheduler and
controller manager daemons (subprocesses, leader election on). Then, timed from this
process with a watch on the Deployment:

1. create a Deployment of REPLICAS (`sleep 3600`, default strategy RollingUpdate 25%/25%)
   and wait until status.availableReplicas == REPLICAS (goal < 15 s);
2. change its pod template (an env var) and wait until the rollout is complete:
   observedGeneration current, updatedReplicas == availableReplicas == replicas ==
   REPLICAS (old pods gone).

Everything started here is stopped on exit, by PID.

Usage: python bench/controllers.py [--replicas 500] [--nodes 20] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

from fixtures.kubelet import KubeletProcess  # noqa: E402

from bench._cluster import cluster  # noqa: E402
from cluster.components import daemon_command  # noqa: E402
from skiff.api.v1 import apps_pb2, core_pb2  # noqa: E402
from skiff.client.client import Client  # noqa: E402


def deployment(namespace: str, name: str, replicas: int) -> apps_pb2.Deployment:
    d = apps_pb2.Deployment()
    d.metadata.namespace, d.metadata.name = namespace, name
    d.spec.replicas = replicas
    d.spec.selector.match_labels["app"] = name
    d.spec.template.metadata.labels["app"] = name
    c = d.spec.template.spec.containers.add(name="app", image="busybox:1.36",
                                            command=["sleep", "3600"])
    c.resources.requests["cpu"].value = "10m"
    d.spec.template.spec.termination_grace_period_seconds = 0
    return d


async def wait_for(client: Client, namespace: str, name: str,
                   done: Callable[[apps_pb2.Deployment], bool], timeout: float) -> float:
    """Seconds until a watch event shows `done` (measured from the call)."""
    started = time.monotonic()
    current = await client.get(apps_pb2.Deployment, name, namespace)
    if done(current):
        return time.monotonic() - started

    async def watch() -> None:
        async for event in client.watch(apps_pb2.Deployment, namespace,
                                        field_selector=f"metadata.name={name}",
                                        resource_version=current.metadata.resource_version):
            if event.object is not None and done(event.object):  # type: ignore[arg-type]
                return

    await asyncio.wait_for(watch(), timeout)
    return time.monotonic() - started


def available(replicas: int) -> Callable[[apps_pb2.Deployment], bool]:
    return lambda d: d.status.available_replicas == replicas


def rolled_out(replicas: int) -> Callable[[apps_pb2.Deployment], bool]:
    return lambda d: (d.status.observed_generation >= d.metadata.generation
                      and d.status.updated_replicas == replicas
                      and d.status.available_replicas == replicas
                      and d.status.replicas == replicas)


def start_daemon(module: str, address: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(daemon_command(module, "--server", address,
                                               "--log-level", "WARNING"),
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT)


async def one_round(client: Client, namespace: str, name: str, replicas: int
                    ) -> tuple[float, float]:
    started = time.monotonic()
    await client.create(deployment(namespace, name, replicas))
    await wait_for(client, namespace, name, available(replicas), timeout=300)
    to_available = time.monotonic() - started
    current = await client.get(apps_pb2.Deployment, name, namespace)
    current.spec.template.spec.containers[0].env.add(name="VERSION", value="2")
    started = time.monotonic()
    await client.update(current)
    await wait_for(client, namespace, name, rolled_out(replicas), timeout=600)
    return to_available, time.monotonic() - started


async def main(args: argparse.Namespace) -> None:
    with cluster() as c:
        kubelets = [KubeletProcess(c.address, c.workdir / f"node-{i}", fake=True,
                                   node_name=f"sim-{i:02d}")
                    for i in range(args.nodes)]
        daemons: list[subprocess.Popen[bytes]] = []
        try:
            for k in kubelets:
                k.start()
            for k in kubelets:
                k.wait_running(timeout=60)
            daemons = [start_daemon(m, c.address, c.workdir / f"{m}.log")
                       for m in ("scheduler.main", "controllers.main")]
            async with Client(c.address) as client:
                ns = core_pb2.Namespace()
                ns.metadata.name = "bench"
                await client.create(ns)
                results = []
                for i in range(args.rounds):
                    results.append(await one_round(client, "bench", f"web-{i}",
                                                   args.replicas))
                    await client.delete(apps_pb2.Deployment, f"web-{i}", "bench")
                    if i + 1 < args.rounds:
                        await asyncio.sleep(5)  # let the previous round's pods go
        finally:
            for d in daemons:
                d.terminate()
            for d in daemons:
                d.wait(10)
            for k in kubelets:
                k.stop()
            for k in kubelets:
                k.cleanup()
    ups = [r[0] for r in results]
    rolls = [r[1] for r in results]
    print(f"deployment of {args.replicas} replicas on {args.nodes} simulated nodes: "
          f"available in {statistics.median(ups):.1f} s (goal < 15 s; rounds: "
          f"{', '.join(f'{u:.1f}' for u in ups)})")
    print(f"rolling update of it (maxSurge 25%, maxUnavailable 25%): complete in "
          f"{statistics.median(rolls):.1f} s (rounds: {', '.join(f'{r:.1f}' for r in rolls)})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=500)
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1)
    asyncio.run(main(parser.parse_args()))
