"""Pod startup on one real node: create-to-Running latency, and a burst against plain Docker.

Starts a private etcd and apiserver (bench/_cluster.py) and one real kubelet subprocess on
the local Docker engine (node `bench-<random>`; there is no scheduler, so every pod is bound
with spec.nodeName), waits for its Node to be Ready, then measures:

- latency: PODS pods created at RATE per second; for each, the time from sending its create
  call to the arrival of the watch event that shows it Running (status.phase Running and
  every container ready). Both timestamps are taken in this process, on one watch of the
  namespace. Prints p50 and p99 (goal p99 < 2 s).
- burst: PODS pods created at once; the time from sending the first create to the watch
  event that shows the last one Running. Beside it, the floor: the same containers started
  with plain Docker (Docker SDK, one thread per pod, all at once): per pod a sandbox (the
  pause image `skiff/pause:1`, IPC shareable, on the bridge network, as the kubelet makes it)
  and an app container (`skiff.test/busybox:1.0 sleep 3600`, joined with network and IPC
  `container:<sandbox>`), until the last start call returns. Skiff and floor rounds
  alternate (skiff, floor, skiff, floor, ...); prints their medians, every round, and the
  ratio of the medians skiff/floor (goal <= 1.5).

Every pod has one container `skiff.test/busybox:1.0` running `sleep 3600` (imagePullPolicy
IfNotPresent) and terminationGracePeriodSeconds 0. Between rounds everything is deleted and
the benchmark waits until the node's containers (label io.skiff.node=<node>) and the floor's
(label io.skiff.bench.run=<run id>) are gone, so rounds never overlap.

Images are made offline as the tests make them (tests/fixtures/docker.py for busybox,
kubelet/runtime/pause.py for pause). Everything started here is stopped on exit, also on
Ctrl-C or error: the kubelet, apiserver and etcd by PID, containers by their labels.

Usage: python bench/pod_startup.py [--pods N] [--rate R] [--rounds N] [--keep-logs DIR]
       [--kubelet-log-level LEVEL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
# The kubelet is started with a preexec_fn while this process may have gRPC calls in flight;
# gRPC's fork handlers can then crash the child (see tests/conftest.py). No child uses gRPC.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

import docker  # noqa: E402
from fixtures.docker import BUSYBOX_IMAGE, busybox_image  # noqa: E402
from fixtures.kubelet import KubeletProcess  # noqa: E402

from bench._cluster import cluster, percentile  # noqa: E402
from kubelet.runtime import LABEL_NODE  # noqa: E402
from kubelet.runtime.pause import PAUSE_IMAGE, ensure_pause_image  # noqa: E402
from skiff.api.v1 import core_pb2  # noqa: E402
from skiff.client import errors  # noqa: E402
from skiff.client.client import Client  # noqa: E402

NAMESPACE = "default"
FLOOR_LABEL = "io.skiff.bench"  # = "floor" on the floor's containers
FLOOR_RUN_LABEL = "io.skiff.bench.run"  # = this run's id: cleanup touches only these
RUNNING_TIMEOUT = 120.0
GONE_TIMEOUT = 120.0


# ---- pods and the watch ----

def make_pod(name: str, node: str) -> core_pb2.Pod:
    pod = core_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace = name, NAMESPACE
    pod.spec.node_name = node
    pod.spec.termination_grace_period_seconds = 0
    c = pod.spec.containers.add(name="app", image=BUSYBOX_IMAGE,
                                image_pull_policy="IfNotPresent")
    c.command.extend(["sleep", "3600"])
    return pod


def is_running(pod: core_pb2.Pod) -> bool:
    """Phase Running and every container ready."""
    statuses = pod.status.container_statuses
    return (pod.status.phase == "Running" and len(statuses) == len(pod.spec.containers)
            and all(s.ready for s in statuses))


class PodWatch:
    """One watch on the namespace's pods: when each pod (by name) was first seen Running."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.running: dict[str, float] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        _, rv = await self.client.list(core_pb2.Pod, NAMESPACE)
        self._task = asyncio.create_task(self._run(rv))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _see(self, pod: core_pb2.Pod | None, at: float) -> None:
        if pod is not None and is_running(pod) and pod.metadata.name not in self.running:
            self.running[pod.metadata.name] = at
            self._changed.set()

    async def _run(self, rv: str) -> None:
        while True:
            try:
                async for event in self.client.watch(core_pb2.Pod, NAMESPACE,
                                                     resource_version=rv):
                    now = time.perf_counter()
                    rv = event.resource_version or rv
                    if isinstance(event.object, core_pb2.Pod):
                        self._see(event.object, now)
            except (errors.Expired, errors.Unavailable) as err:
                # Relist: pods that turned Running meanwhile are stamped late (and said so).
                print(f"# watch restarted ({type(err).__name__}); some times may be late",
                      file=sys.stderr)
                await asyncio.sleep(0.1)
                pods, rv = await self.client.list(core_pb2.Pod, NAMESPACE)
                for pod in pods:
                    self._see(pod, time.perf_counter())

    async def wait_running(self, names: Iterable[str], timeout: float = RUNNING_TIMEOUT
                           ) -> dict[str, float]:
        wanted = set(names)
        deadline = time.perf_counter() + timeout
        while not wanted <= self.running.keys():
            self._changed.clear()
            left = deadline - time.perf_counter()
            if left <= 0:
                missing = sorted(wanted - self.running.keys())
                raise TimeoutError(f"{len(missing)} pods not Running after {timeout:.0f} s: "
                                   f"{', '.join(missing[:5])}...")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return {name: self.running[name] for name in wanted}


# ---- cleanup between rounds ----

def label_ids(api: Any, label: str) -> list[str]:
    return [c["Id"] for c in api.containers(all=True, filters={"label": label})]


def remove_all(api: Any, label: str) -> None:
    """Force-removes every container with `label`, 30 at a time. Blocking."""
    with ThreadPoolExecutor(30) as pool:
        list(pool.map(lambda cid: _remove(api, cid), label_ids(api, label)))


def _remove(api: Any, cid: str) -> None:
    try:
        api.remove_container(cid, force=True, v=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as e:
        if e.status_code != 409:  # 409: removal already in progress
            raise


async def delete_pods(client: Client, api: Any, node: str) -> None:
    """Deletes every pod of the namespace; returns once they and the node's containers are
    gone (the kubelet removes the containers)."""
    pods, _ = await client.list(core_pb2.Pod, NAMESPACE)
    await asyncio.gather(*(client.delete(core_pb2.Pod, p.metadata.name, NAMESPACE)
                           for p in pods), return_exceptions=True)
    deadline = time.perf_counter() + GONE_TIMEOUT
    while True:
        pods, _ = await client.list(core_pb2.Pod, NAMESPACE)
        left = await asyncio.to_thread(label_ids, api, f"{LABEL_NODE}={node}")
        if not pods and not left:
            break
        if time.perf_counter() > deadline:
            raise TimeoutError(f"after deleting: {len(pods)} pods, {len(left)} containers left")
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # let the engine finish tearing down network namespaces


# ---- the measurements ----

async def latency_round(client: Client, watch: PodWatch, node: str, pods: int, rate: float
                        ) -> list[float]:
    names = [f"lat-{i}" for i in range(pods)]
    sent: dict[str, float] = {}

    async def create(name: str) -> None:
        sent[name] = time.perf_counter()
        await client.create(make_pod(name, node))

    start = time.perf_counter()
    creates = []
    for i, name in enumerate(names):
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        creates.append(asyncio.create_task(create(name)))
    await asyncio.gather(*creates)
    running = await watch.wait_running(names)
    return [running[n] - sent[n] for n in names]


async def burst_round(client: Client, watch: PodWatch, node: str, pods: int, round_: int
                      ) -> float:
    names = [f"burst{round_}-{i}" for i in range(pods)]
    start = time.perf_counter()
    await asyncio.gather(*(client.create(make_pod(n, node)) for n in names))
    running = await watch.wait_running(names)
    return max(running.values()) - start


def floor_round(api: Any, pods: int, run_id: str, round_: int) -> float:
    """Starts `pods` sandbox + app pairs with plain Docker, all at once. Blocking."""
    labels = {FLOOR_LABEL: "floor", FLOOR_RUN_LABEL: run_id}

    def one(i: int) -> None:
        name = f"skiff-bench-floor-{run_id}-{round_}-{i}"
        sandbox = api.create_container(
            PAUSE_IMAGE, name=f"{name}-pause", hostname=name, labels=labels,
            host_config=api.create_host_config(ipc_mode="shareable", network_mode="bridge",
                                               restart_policy={"Name": "no"}))["Id"]
        api.start(sandbox)
        app = api.create_container(
            BUSYBOX_IMAGE, command=["sleep", "3600"], name=f"{name}-app", labels=labels,
            host_config=api.create_host_config(network_mode=f"container:{sandbox}",
                                               ipc_mode=f"container:{sandbox}",
                                               restart_policy={"Name": "no"}))["Id"]
        api.start(app)

    with ThreadPoolExecutor(pods) as pool:
        start = time.perf_counter()
        list(pool.map(one, range(pods)))  # re-raises the first failure
        return time.perf_counter() - start


async def wait_node_ready(client: Client, kubelet: KubeletProcess, timeout: float = 60.0
                          ) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if not kubelet.alive():
            raise RuntimeError("kubelet exited:\n" + kubelet.log()[-3000:])
        try:
            node = await client.get(core_pb2.Node, kubelet.node_name)
            if any(c.type == "Ready" and c.status == "True" for c in node.status.conditions):
                return
        except errors.NotFound:
            pass
        await asyncio.sleep(0.2)
    raise TimeoutError(f"node {kubelet.node_name} not Ready after {timeout:.0f} s")


def machine_load(api: Any) -> str:
    """The load average and the engine's running containers: a busy machine skews results."""
    return (f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, "
            f"{len(api.containers())} containers running")


def rounds_text(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


async def measure(address: str, kubelet: KubeletProcess, api: Any, run_id: str,
                  args: argparse.Namespace) -> None:
    node = kubelet.node_name
    floor_label = f"{FLOOR_RUN_LABEL}={run_id}"
    async with Client(address) as client:
        await wait_node_ready(client, kubelet)
        watch = PodWatch(client)
        await watch.start()
        try:
            log = lambda text: print(f"# {time.strftime('%H:%M:%S')} {text}",  # noqa: E731
                                     file=sys.stderr, flush=True)
            log(f"before: {machine_load(api)}")
            log(f"latency: {args.pods} pods at {args.rate:g}/s")
            latencies = await latency_round(client, watch, node, args.pods, args.rate)
            await delete_pods(client, api, node)
            print(f"pod startup latency ({args.pods} pods at {args.rate:g}/s): "
                  f"p50 {percentile(latencies, 50):.2f} s, p99 {percentile(latencies, 99):.2f} s"
                  f" (goal p99 < 2 s)", flush=True)
            print(f"  each, in order of creation: {rounds_text(latencies)}", flush=True)

            skiff: list[float] = []
            floor: list[float] = []
            for r in range(args.rounds):
                log(f"burst round {r + 1}: skiff")
                skiff.append(await burst_round(client, watch, node, args.pods, r))
                await delete_pods(client, api, node)
                log(f"burst round {r + 1}: skiff {skiff[-1]:.2f} s; plain docker")
                floor.append(await asyncio.to_thread(floor_round, api, args.pods, run_id, r))
                await asyncio.to_thread(remove_all, api, floor_label)
                await asyncio.sleep(1.0)
                log(f"burst round {r + 1}: plain docker {floor[-1]:.2f} s")
            s, f = statistics.median(skiff), statistics.median(floor)
            print(f"burst of {args.pods} pods: skiff {s:.2f} s (rounds {rounds_text(skiff)}), "
                  f"plain docker {f:.2f} s (rounds {rounds_text(floor)}), "
                  f"ratio {s / f:.2f} (goal <= 1.5)", flush=True)
            log(f"after: {machine_load(api)}")
        finally:
            await watch.stop()


def prepare_images(client: docker.DockerClient) -> None:
    """skiff.test/busybox:1.0 as the tests build it, and the pause image."""
    build: Callable[[docker.DockerClient], str] = getattr(busybox_image, "__wrapped__",
                                                          busybox_image)
    build(client)
    ensure_pause_image(client.api)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=30)
    parser.add_argument("--rate", type=float, default=5.0, help="creates/s for the latency")
    parser.add_argument("--rounds", type=int, default=3, help="burst rounds of each kind")
    parser.add_argument("--keep-logs", type=Path,
                        help="copy the kubelet's and apiserver's logs to this directory")
    parser.add_argument("--kubelet-log-level", default="INFO")
    args = parser.parse_args()

    docker_client = docker.DockerClient.from_env(version="auto", timeout=120,
                                                 max_pool_size=args.pods + 10)
    api = docker_client.api
    prepare_images(docker_client)
    run_id = uuid.uuid4().hex[:8]
    try:
        with cluster() as b:
            kubelet = KubeletProcess(b.address, b.workdir / "kubelet",
                                     node_name=f"bench-{run_id}",
                                     extra_args=("--log-level", args.kubelet_log_level))
            try:
                kubelet.start()
                assert kubelet.proc is not None
                print(f"# kubelet pid {kubelet.proc.pid}, node {kubelet.node_name}, "
                      f"apiserver pid {b.apiserver.pid}", file=sys.stderr, flush=True)
                asyncio.run(measure(b.address, kubelet, api, run_id, args))
            finally:
                kubelet.stop()
                if args.keep_logs:
                    args.keep_logs.mkdir(parents=True, exist_ok=True)
                    for log in (kubelet.log_file, b.workdir / "apiserver.log"):
                        if log.exists():
                            shutil.copy(log, args.keep_logs / log.name)
                kubelet.cleanup()
    finally:
        remove_all(api, f"{FLOOR_RUN_LABEL}={run_id}")
        docker_client.close()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
