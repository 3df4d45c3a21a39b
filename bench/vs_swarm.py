"""Skiff against Docker Swarm on this host's Docker engine: deploy 20 replicas, then roll
them over, side by side in one run.

Skiff: a whole cluster from `skiff up -d` (etcd, apiserver, scheduler, controller manager,
a kubelet on the local engine) in a temporary data dir on free ports. A Deployment of
REPLICAS busybox pods is applied with `skiff apply -f`; timed from the apply until the
Deployment reports every replica available; then the manifest is applied again with a
changed env var and timed until the rollout is complete (every replica updated and
available, the old ones gone). Default strategy (maxSurge 25%, maxUnavailable 25%).

Swarm: `docker swarm init` on loopback if the engine is not in a swarm (and left again at
the end). `docker service create --replicas REPLICAS`, timed until that many tasks are
running; then `docker service update --env-add` with --update-parallelism 5, timed until
every running task has the new spec and no old one runs.

Both run the same image and command: `sh -c 'trap "exit 0" TERM; sleep 3600 & wait'`,
which exits at once on SIGTERM, so neither waits for a kill timeout. Rounds alternate
(skiff, swarm, skiff, swarm, ...); medians, every round, and the ratios skiff/swarm
(goal <= 1.0 for both) are printed.

Usage: python bench/vs_swarm.py [--replicas 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

import docker  # noqa: E402
import yaml  # noqa: E402
from fixtures.docker import BUSYBOX_IMAGE, busybox_image  # noqa: E402

from cluster.process import free_ports  # noqa: E402
from skiff.api.v1 import apps_pb2  # noqa: E402
from skiff.client.client import Client  # noqa: E402

COMMAND = ["sh", "-c", 'trap "exit 0" TERM; sleep 3600 & wait']
POLL = 0.1


def skiff(*args: str, config: Path | None = None, stdin: str | None = None
          ) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "cli.main"]
    if config is not None:
        argv += ["--config", str(config)]
    out = subprocess.run([*argv, *args], cwd=REPO, input=stdin, capture_output=True,
                         text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"skiff {' '.join(args)}: {out.stderr}")
    return out


def manifest(name: str, replicas: int, version: str) -> str:
    return yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {
                     "containers": [{"name": "app", "image": BUSYBOX_IMAGE,
                                     "imagePullPolicy": "Never", "command": COMMAND,
                                     "env": [{"name": "VERSION", "value": version}]}]}}}})


class SkiffCluster:
    def __init__(self) -> None:
        self.data = Path(tempfile.mkdtemp(prefix="skiff-vs-swarm-"))
        self.config = self.data / "config"

    def __enter__(self) -> SkiffCluster:
        while True:
            api, etcd, kubelet = free_ports(3)
            if etcd + 1 not in (api, kubelet):
                break
        skiff("up", "-d", "--data-dir", str(self.data), "--port", str(api), "--etcd-port",
              str(etcd), "--kubelet-port", str(kubelet), "--node-name",
              f"bench-{uuid.uuid4().hex[:6]}")
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run([sys.executable, "-m", "cli.main", "down", "--purge", "--data-dir",
                        str(self.data)], cwd=REPO, capture_output=True, timeout=120)
        shutil.rmtree(self.data, ignore_errors=True)

    def client(self) -> Client:
        return Client.from_config(str(self.config))


async def wait_deployment(client: Client, name: str,
                          done: Callable[[apps_pb2.Deployment], bool]) -> None:
    while True:
        try:
            current = await client.get(apps_pb2.Deployment, name, "default")
        except Exception:
            current = None
        if current is not None and done(current):
            return
        await asyncio.sleep(POLL)


def complete(replicas: int, generation: int = 0) -> Callable[[apps_pb2.Deployment], bool]:
    return lambda d: (d.metadata.generation > generation
                      and d.status.observed_generation >= d.metadata.generation
                      and d.status.updated_replicas == replicas
                      and d.status.available_replicas == replicas
                      and d.status.replicas == replicas)


async def skiff_round(cluster: SkiffCluster, replicas: int, name: str) -> tuple[float, float]:
    async with cluster.client() as client:
        started = time.monotonic()
        await asyncio.to_thread(skiff, "apply", "-f", "-", config=cluster.config,
                                stdin=manifest(name, replicas, "1"))
        await wait_deployment(client, name, complete(replicas))
        up = time.monotonic() - started
        generation = (await client.get(apps_pb2.Deployment, name, "default")).metadata.generation
        started = time.monotonic()
        await asyncio.to_thread(skiff, "apply", "-f", "-", config=cluster.config,
                                stdin=manifest(name, replicas, "2"))
        await wait_deployment(client, name, complete(replicas, generation))
        roll = time.monotonic() - started
    await asyncio.to_thread(skiff, "delete", "deployment", name, config=cluster.config)
    # Wait until its pods are gone so rounds never overlap.
    engine = docker.from_env()
    # The low-level call: the high-level one inspects each container, which races with
    # their removal.
    while engine.api.containers(filters={"label": "io.skiff.pod.namespace=default"}):
        await asyncio.sleep(0.2)
    return up, roll


def running_tasks(service: Any) -> list[dict[str, Any]]:
    return [t for t in service.tasks(filters={"desired-state": "running"})
            if t["Status"]["State"] == "running"]


def task_version(task: dict[str, Any]) -> str:
    env = task["Spec"]["ContainerSpec"].get("Env", [])
    return next((e.split("=", 1)[1] for e in env if e.startswith("VERSION=")), "")


def swarm_round(engine: docker.DockerClient, replicas: int, name: str) -> tuple[float, float]:
    started = time.monotonic()
    # --no-resolve-image: the image is local; asking a registry for its digest would
    # only add a network round trip (and leave this host).
    subprocess.run(["docker", "service", "create", "--detach", "--no-resolve-image",
                    "--name", name,
                    "--label", "io.skiff.bench=1", "--replicas", str(replicas),
                    "--stop-signal", "SIGTERM", "--env", "VERSION=1", BUSYBOX_IMAGE,
                    *COMMAND], check=True, capture_output=True)
    service = engine.services.get(name)
    while len(running_tasks(service)) < replicas:
        time.sleep(POLL)
    up = time.monotonic() - started
    started = time.monotonic()
    subprocess.run(["docker", "service", "update", "--detach", "--no-resolve-image",
                    "--env-add", "VERSION=2",
                    "--update-parallelism", "5", name], check=True, capture_output=True)
    while True:
        tasks = [t for t in service.tasks() if t["Status"]["State"] in
                 ("running", "preparing", "starting", "assigned", "accepted", "ready")]
        new = [t for t in tasks if t["Status"]["State"] == "running"
               and task_version(t) == "2"]
        if len(new) == replicas and len(tasks) == replicas:
            break
        time.sleep(POLL)
    roll = time.monotonic() - started
    subprocess.run(["docker", "service", "rm", name], check=True, capture_output=True)
    owned = {"label": f"com.docker.swarm.service.name={name}"}
    while engine.api.containers(all=True, filters=owned):
        time.sleep(0.2)
    return up, roll


def main(args: argparse.Namespace) -> None:
    engine = docker.from_env()
    # The tests' fixture, called as the plain function it wraps: builds the image offline.
    getattr(busybox_image, "__wrapped__", busybox_image)(engine)
    joined = engine.info()["Swarm"]["LocalNodeState"] != "active"
    networks_before = {n.name for n in engine.networks.list()}
    if joined:
        subprocess.run(["docker", "swarm", "init", "--advertise-addr", "127.0.0.1"],
                       check=True, capture_output=True)
    skiff_results: list[tuple[float, float]] = []
    swarm_results: list[tuple[float, float]] = []
    try:
        with SkiffCluster() as cluster:
            for i in range(args.rounds):
                skiff_results.append(asyncio.run(skiff_round(cluster, args.replicas,
                                                             f"bench-{i}")))
                swarm_results.append(swarm_round(engine, args.replicas,
                                                 f"skiff-bench-{uuid.uuid4().hex[:6]}"))
                print(f"# round {i + 1}: skiff {skiff_results[-1]}, swarm "
                      f"{swarm_results[-1]}", file=sys.stderr)
    finally:
        if joined:
            subprocess.run(["docker", "swarm", "leave", "--force"], capture_output=True)
            for network in engine.networks.list():
                if network.name not in networks_before and network.name == "docker_gwbridge":
                    network.remove()
    for what, index in ((f"deploy {args.replicas} replicas to all available", 0),
                        ("rolling update to complete", 1)):
        ours = [r[index] for r in skiff_results]
        theirs = [r[index] for r in swarm_results]
        print(f"{what}: skiff {statistics.median(ours):.2f} s (rounds "
              f"{', '.join(f'{x:.2f}' for x in ours)}), swarm {statistics.median(theirs):.2f} s "
              f"(rounds {', '.join(f'{x:.2f}' for x in theirs)}), ratio "
              f"{statistics.median(ours) / statistics.median(theirs):.2f} (goal <= 1.0)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    main(parser.parse_args())
