"""What a user sees of pods run by a real `skiff-kubelet` process on the real Docker engine,
through the real apiserver: phases, conditions, container states and restart counts, logs,
events, and the files, mounts and processes on the node.

Each test gets its own kubelet (its own node name, root directory and containers, all
removed afterwards by the fixture) and its own namespace. Pods are bound to the node
directly (no scheduler) and use short grace periods, so every test ends in seconds. The
kubelet runs with test-friendly timings: a 1 s crash-loop back-off base and a 1 s volume
refresh and a 4 s node lease renewed every second (`--crash-backoff-base`,
`--volume-refresh-period`, `--node-lease-duration-seconds`).

Nothing leaves the machine: images are the offline busybox, a registry on loopback
(tests/fixtures/registry.py), or `127.0.0.1:1/...`, where nothing listens.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import pytest
from fixtures.kubelet import REPO, KubeletProcess
from fixtures.registry import Registry

from cluster.process import free_ports
from kubelet.runtime import LABEL_NODE, LABEL_POD_UID, LABEL_SANDBOX
from skiff.api.v1 import coordination_pb2, core_pb2
from skiff.client import errors
from skiff.client.client import Client

_T = TypeVar("_T")

GRACE = 2  # terminationGracePeriodSeconds of every pod here: deletions are quick
FAST_KUBELET = ("--crash-backoff-base", "1", "--volume-refresh-period", "1",
                "--node-lease-duration-seconds", "4")


@pytest.fixture
def kubelet(kubelet_factory: Callable[..., KubeletProcess], busybox_image: str
            ) -> KubeletProcess:
    """A kubelet with test timings, its node registered, its caches synced."""
    return kubelet_factory(extra_args=FAST_KUBELET).wait_running()


# ---- helpers ----

async def eventually(fn: Callable[[], Awaitable[_T | None]], *, timeout: float = 30.0,
                     what: str = "the condition", interval: float = 0.1) -> _T:
    """Polls `fn` until it returns something truthy, and returns that."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = await fn()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(interval)


def container(name: str, script: str, image: str, **fields: Any) -> dict[str, Any]:
    """A busybox container running `sh -c script`."""
    return {"name": name, "image": image, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", script], **fields}


async def create_pod(client: Client, ns: str, node: str, name: str,
                     containers: list[dict[str, Any]], **spec: Any) -> core_pb2.Pod:
    manifest = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": GRACE,
                 "containers": containers, **spec},
    }
    pod, warnings = await client.create_manifest(manifest)
    assert not warnings, warnings
    assert isinstance(pod, core_pb2.Pod)
    return pod


async def get_pod(client: Client, ns: str, name: str) -> core_pb2.Pod:
    return await client.get(core_pb2.Pod, name, ns)


async def wait_pod(client: Client, ns: str, name: str,
                   check: Callable[[core_pb2.Pod], bool], what: str,
                   timeout: float = 30.0) -> core_pb2.Pod:
    last: list[core_pb2.Pod] = []

    async def probe() -> core_pb2.Pod | None:
        pod = await get_pod(client, ns, name)
        last[:] = [pod]
        return pod if check(pod) else None

    try:
        return await eventually(probe, timeout=timeout, what=f"pod {name}: {what}")
    except AssertionError as err:
        raise AssertionError(f"{err}; its status: {last[0].status if last else None}") from None


def condition(pod: core_pb2.Pod, type_: str) -> core_pb2.PodCondition | None:
    return next((c for c in pod.status.conditions if c.type == type_), None)


def is_ready(pod: core_pb2.Pod) -> bool:
    ready = condition(pod, "Ready")
    return ready is not None and ready.status == "True"


def running_and_ready(pod: core_pb2.Pod) -> bool:
    return pod.status.phase == "Running" and is_ready(pod)


def cstatus(pod: core_pb2.Pod, name: str) -> core_pb2.ContainerStatus:
    for status in [*pod.status.container_statuses, *pod.status.init_container_statuses]:
        if status.name == name:
            return status
    raise AssertionError(f"no status for container {name}: {pod.status}")


def restarts(pod: core_pb2.Pod, name: str) -> int:
    """The container's restartCount, -1 before it has a status."""
    statuses = [*pod.status.container_statuses, *pod.status.init_container_statuses]
    status = next((s for s in statuses if s.name == name), None)
    return status.restart_count if status is not None else -1


def waiting_reason(pod: core_pb2.Pod, name: str) -> str:
    statuses = [*pod.status.container_statuses, *pod.status.init_container_statuses]
    status = next((s for s in statuses if s.name == name), None)
    return status.state.waiting.reason if status and status.state.HasField("waiting") else ""


async def logs(client: Client, ns: str, name: str, container: str = "") -> str:
    return b"".join([chunk async for chunk in client.logs(name, ns, container=container)]
                    ).decode()


async def wait_logs(client: Client, ns: str, name: str, text: str, container: str = "",
                    timeout: float = 20.0) -> str:
    async def probe() -> str | None:
        try:
            out = await logs(client, ns, name, container)
        except errors.ApiError:
            return None
        return out if text in out else None

    return await eventually(probe, timeout=timeout,
                            what=f"{text!r} in the logs of {name}/{container}")


async def exec_output(client: Client, ns: str, name: str, command: list[str],
                      container: str = "") -> tuple[int, str]:
    session = await client.exec(name, command, ns, container=container)
    out = b"".join([data async for _, data in session.output()])
    return session.exit_code or 0, out.decode()


async def delete_and_wait_gone(client: Client, ns: str, name: str,
                               grace: int | None = None, timeout: float = 30.0) -> None:
    await client.delete(core_pb2.Pod, name, ns, grace_period=grace)

    async def gone() -> bool:
        try:
            await get_pod(client, ns, name)
        except errors.NotFound:
            return True
        return False

    await eventually(gone, timeout=timeout, what=f"pod {name} to be gone")


async def skiff(server: str, *args: str) -> str:
    """Runs the `skiff` CLI; returns its output."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli.main", "--server", server, *args, cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    return out.decode()


def node_containers(docker_client: docker.DockerClient, kubelet: KubeletProcess,
                    pod: core_pb2.Pod | None = None) -> list[dict[str, Any]]:
    """Raw docker list entries of the node's containers, any state (of one pod, if given);
    the pod's sandbox among them."""
    labels = [f"{LABEL_NODE}={kubelet.node_name}"]
    if pod is not None:
        labels.append(f"{LABEL_POD_UID}={pod.metadata.uid}")
    found: list[dict[str, Any]] = docker_client.api.containers(
        all=True, filters={"label": labels})
    return found


def app_containers(docker_client: docker.DockerClient, kubelet: KubeletProcess,
                   pod: core_pb2.Pod) -> list[dict[str, Any]]:
    """The pod's containers on the node but its sandbox, any state."""
    return [c for c in node_containers(docker_client, kubelet, pod)
            if (c.get("Labels") or {}).get(LABEL_SANDBOX) != "true"]


class ReasonLog:
    """Every waiting reason each container of the namespace's pods went through, in order
    (from a watch, so a reason shown only for a moment is not missed)."""

    def __init__(self, client: Client, ns: str) -> None:
        self.client, self.ns = client, ns
        self.reasons: dict[tuple[str, str], list[str]] = {}
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ReasonLog:
        _, version = await self.client.list(core_pb2.Pod, self.ns)
        self._task = asyncio.create_task(self._watch(version))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _watch(self, version: str) -> None:
        async for event in self.client.watch(core_pb2.Pod, self.ns, resource_version=version):
            pod = event.object
            if not isinstance(pod, core_pb2.Pod):
                continue
            for status in [*pod.status.init_container_statuses,
                           *pod.status.container_statuses]:
                reason = status.state.waiting.reason
                seen = self.reasons.setdefault((pod.metadata.name, status.name), [])
                if reason and (not seen or seen[-1] != reason):
                    seen.append(reason)

    def of(self, pod: str, container: str) -> list[str]:
        return self.reasons.get((pod, container), [])

    def went_through(self, pod: str, container: str, *reasons: str) -> bool:
        """The container showed these reasons one right after the other."""
        seen = self.of(pod, container)
        n = len(reasons)
        return any(tuple(seen[i:i + n]) == reasons for i in range(len(seen)))


async def pod_events(client: Client, ns: str, name: str) -> list[core_pb2.Event]:
    events, _ = await client.list(core_pb2.Event, ns)
    return [e for e in events if e.involved_object.name == name]


async def wait_event(client: Client, ns: str, name: str, reason: str, text: str = "",
                     timeout: float = 20.0) -> core_pb2.Event:
    async def probe() -> core_pb2.Event | None:
        return next((e for e in await pod_events(client, ns, name)
                     if e.reason == reason and text in e.message), None)

    return await eventually(probe, timeout=timeout,
                            what=f"a {reason} event about {name} saying {text!r}")


def mount_table() -> list[tuple[str, str]]:
    """(mount point, file system type) of every mount of this mount namespace."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        head, _, tail = line.partition(" - ")
        out.append((head.split(" ")[4], tail.split(" ")[0]))
    return out


def mounts_under(root: Path) -> list[tuple[str, str]]:
    real = os.path.realpath(root)
    return [(p, t) for p, t in mount_table() if p == real or p.startswith(real + "/")]


@pytest.fixture
def latest_image(docker_client: docker.DockerClient, busybox_image: str) -> Iterator[str]:
    """busybox, also as an untagged image of a registry on loopback that refuses."""
    name = "127.0.0.1:1/skiff-latest-probe"
    docker_client.images.get(busybox_image).tag(name, "latest")
    yield name
    docker_client.images.remove(f"{name}:latest", noprune=True)


# ---- 1. a two-container pod ----

async def test_two_containers_share_the_pod_network(
        kubelet: KubeletProcess, client: Client, ns: str, busybox_image: str,
        docker_client: docker.DockerClient) -> None:
    started = time.monotonic()
    await create_pod(client, ns, kubelet.node_name, "web", [
        container("server", "echo '<h1>hello from skiff</h1>' > /www/index.html; "
                  "exec httpd -f -p 8080 -h /www", busybox_image,
                  readinessProbe={"httpGet": {"path": "/", "port": 8080},
                                  "periodSeconds": 1}),
        container("fetcher", "until wget -q -O - http://localhost:8080/; do sleep 0.2; done; "
                  "echo; echo fetched; exec sleep 3600", busybox_image),
    ])
    pod = await wait_pod(client, ns, "web", lambda p: p.status.phase == "Running", "Running")
    running_after = time.monotonic() - started
    pod = await wait_pod(client, ns, "web", running_and_ready, "Ready")
    assert running_after < 10, f"took {running_after:.1f}s to run"
    assert pod.status.pod_ip and pod.status.host_ip == "127.0.0.1"
    assert [s.name for s in pod.status.container_statuses] == ["server", "fetcher"]
    assert all(s.ready and s.state.HasField("running") and s.restart_count == 0
               for s in pod.status.container_statuses)
    assert len(node_containers(docker_client, kubelet, pod)) == 3  # sandbox and two

    out = await wait_logs(client, ns, "web", "fetched", container="fetcher")
    assert "<h1>hello from skiff</h1>" in out
    # Both containers live in the sandbox's network namespace: the pod IP is theirs.
    for name in ("server", "fetcher"):
        code, addresses = await exec_output(client, ns, "web", ["ip", "-4", "-o", "addr"],
                                            container=name)
        assert code == 0 and f"inet {pod.status.pod_ip}/" in addresses, addresses


# ---- 2. secret volumes: a tmpfs, never the disk ----

async def test_secret_volume_is_a_tmpfs_and_never_touches_the_disk(
        kubelet: KubeletProcess, client: Client, ns: str, busybox_image: str) -> None:
    token = f"s3cret-{uuid.uuid4().hex}"
    secret = core_pb2.Secret()
    secret.metadata.name, secret.metadata.namespace = "creds", ns
    secret.data["password"] = token.encode()
    await client.create(secret)
    pod = await create_pod(client, ns, kubelet.node_name, "app", [
        container("app", "cat /etc/creds/password; echo; grep ' /etc/creds ' /proc/mounts; "
                  "exec sleep 3600", busybox_image,
                  volumeMounts=[{"name": "creds", "mountPath": "/etc/creds"}]),
    ], volumes=[{"name": "creds", "secret": {"secretName": "creds"}}])
    await wait_pod(client, ns, "app", running_and_ready, "Running")

    out = await wait_logs(client, ns, "app", "/etc/creds")
    assert out.splitlines()[0] == token
    fields = out.splitlines()[1].split()
    assert fields[1:3] == ["/etc/creds", "tmpfs"], out  # a tmpfs in the container...
    assert "ro" in fields[3].split(","), out  # ... mounted read-only

    pod_dir = kubelet.root / "pods" / pod.metadata.uid
    mounts = mounts_under(pod_dir)
    assert mounts == [(str(pod_dir / "volumes" / "secret" / "creds"), "tmpfs")], mounts
    # Not one byte of the secret anywhere under the kubelet's root, but in that tmpfs.
    tmpfs = {p for p, _ in mounts}
    for dirpath, dirnames, filenames in os.walk(kubelet.root):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in tmpfs]
        for name in filenames:
            path = Path(dirpath, name)
            if path.is_file() and not path.is_symlink():
                assert token.encode() not in path.read_bytes(), path
    assert token not in kubelet.log()

    await delete_and_wait_gone(client, ns, "app")
    assert mounts_under(pod_dir) == []
    assert not pod_dir.exists()


# ---- 3. configMap updates reach a running pod ----

async def test_config_map_change_reaches_the_running_pod(
        kubelet_factory: Callable[..., KubeletProcess], client: Client, ns: str,
        busybox_image: str) -> None:
    # No periodic refresh to speak of: the change must arrive through the watch.
    kubelet = kubelet_factory(extra_args=("--volume-refresh-period", "3600")).wait_running()
    cm = core_pb2.ConfigMap()
    cm.metadata.name, cm.metadata.namespace = "settings", ns
    cm.data["greeting"] = "hello"
    cm = await client.create(cm)
    await create_pod(client, ns, kubelet.node_name, "app", [
        container("app", "exec sleep 3600", busybox_image,
                  volumeMounts=[{"name": "config", "mountPath": "/etc/config"}]),
    ], volumes=[{"name": "config", "configMap": {"name": "settings"}}])
    await wait_pod(client, ns, "app", running_and_ready, "Running")
    assert await exec_output(client, ns, "app", ["cat", "/etc/config/greeting"]) == (0, "hello")

    cm.data["greeting"] = "bonjour"
    cm.data["farewell"] = "au revoir"
    changed = time.monotonic()
    await client.update(cm)

    async def updated() -> bool:
        code, out = await exec_output(client, ns, "app", [
            "sh", "-c", "cat /etc/config/greeting; echo; cat /etc/config/farewell"])
        return (code, out) == (0, "bonjour\nau revoir")

    await eventually(updated, timeout=10, what="the new configMap content in the pod")
    assert time.monotonic() - changed < 5


# ---- 4. environment from Secrets and ConfigMaps ----

async def test_env_from_secret_and_config_map(kubelet: KubeletProcess, client: Client,
                                              ns: str, busybox_image: str) -> None:
    secret = core_pb2.Secret()
    secret.metadata.name, secret.metadata.namespace = "db", ns
    secret.data["user"], secret.data["password"] = b"admin", b"pa ss"
    await client.create(secret)
    cm = core_pb2.ConfigMap()
    cm.metadata.name, cm.metadata.namespace = "settings", ns
    cm.data.update({"MODE": "production", "LEVEL": "debug"})
    await client.create(cm)
    await create_pod(client, ns, kubelet.node_name, "app", [{
        "name": "app", "image": busybox_image,
        "command": ["sh", "-c", 'echo "password=$DB_PASSWORD mode=$APP_MODE '
                    'cfg=$CFG_MODE/$CFG_LEVEL user=$user"; echo "arg=$(APP_MODE)"; '
                    "exec sleep 3600"],
        "env": [
            {"name": "DB_PASSWORD",
             "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
            {"name": "APP_MODE",
             "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "MODE"}}},
        ],
        "envFrom": [{"prefix": "CFG_", "configMapRef": {"name": "settings"}},
                    {"secretRef": {"name": "db"}}],
    }])
    out = await wait_logs(client, ns, "app", "arg=")
    assert out == ("password=pa ss mode=production cfg=production/debug user=admin\n"
                   "arg=production\n")


# ---- 5. probes ----

async def test_failing_liveness_probe_restarts_the_container(
        kubelet: KubeletProcess, client: Client, ns: str, busybox_image: str) -> None:
    await create_pod(client, ns, kubelet.node_name, "app", [
        container("app", "trap 'exit 143' TERM; while :; do sleep 0.1; done", busybox_image,
                  livenessProbe={"exec": {"command": ["cat", "/tmp/healthy"]},
                                 "periodSeconds": 1, "failureThreshold": 2}),
    ])
    pod = await wait_pod(client, ns, "app", lambda p: restarts(p, "app") >= 1,
                         "restarted", timeout=30)
    status = cstatus(pod, "app")
    assert status.last_state.HasField("terminated"), status
    assert status.last_state.terminated.exit_code == 143
    assert pod.status.phase == "Running"
    await wait_event(client, ns, "app", "Unhealthy", "Liveness probe failed")
    await wait_event(client, ns, "app", "Killing", "failed liveness probe")
    await wait_pod(client, ns, "app", lambda p: restarts(p, "app") >= 2,
                   "restarted again", timeout=30)


async def test_failing_readiness_probe_clears_ready(kubelet: KubeletProcess, client: Client,
                                                    ns: str, busybox_image: str) -> None:
    await create_pod(client, ns, kubelet.node_name, "app", [
        container("app", "touch /tmp/ready; exec sleep 3600", busybox_image,
                  readinessProbe={"exec": {"command": ["cat", "/tmp/ready"]},
                                  "periodSeconds": 1}),
    ])
    await wait_pod(client, ns, "app", running_and_ready, "Ready")
    assert (await exec_output(client, ns, "app", ["rm", "/tmp/ready"]))[0] == 0
    pod = await wait_pod(client, ns, "app", lambda p: not is_ready(p), "not Ready")
    ready = condition(pod, "Ready")
    assert ready is not None and ready.reason == "ContainersNotReady", ready
    assert "[app]" in ready.message
    assert pod.status.phase == "Running"
    status = cstatus(pod, "app")
    assert not status.ready and status.state.HasField("running") and status.restart_count == 0
    assert "0/1" in await skiff(kubelet.server, "get", "pods", "-n", ns)

    assert (await exec_output(client, ns, "app", ["touch", "/tmp/ready"]))[0] == 0
    await wait_pod(client, ns, "app", running_and_ready, "Ready again")


# ---- 6. restart policies and crash-loop back-off ----

async def test_restart_policies(kubelet: KubeletProcess, client: Client, ns: str,
                                busybox_image: str,
                                docker_client: docker.DockerClient) -> None:
    node = kubelet.node_name
    await create_pod(client, ns, node, "onfailure-ok", [container("c", "exit 0", busybox_image)],
                     restartPolicy="OnFailure")
    await create_pod(client, ns, node, "onfailure-bad",
                     [container("c", "sleep 0.2; exit 1", busybox_image)],
                     restartPolicy="OnFailure")
    await create_pod(client, ns, node, "never-bad", [container("c", "exit 1", busybox_image)],
                     restartPolicy="Never")

    pod = await wait_pod(client, ns, "onfailure-ok", lambda p: p.status.phase == "Succeeded",
                         "Succeeded")
    status = cstatus(pod, "c")
    assert status.restart_count == 0
    assert status.state.terminated.exit_code == 0
    assert status.state.terminated.reason == "Completed"

    pod = await wait_pod(client, ns, "never-bad", lambda p: p.status.phase == "Failed", "Failed")
    status = cstatus(pod, "c")
    assert status.state.terminated.exit_code == 1 and status.state.terminated.reason == "Error"

    pod = await wait_pod(client, ns, "onfailure-bad",
                         lambda p: restarts(p, "c") >= 2, "restarted twice")
    assert pod.status.phase == "Running"  # being restarted

    await asyncio.sleep(1.5)  # what finished stays finished
    for name in ("onfailure-ok", "never-bad"):
        pod = await get_pod(client, ns, name)
        assert cstatus(pod, "c").restart_count == 0, pod.status
        assert len(app_containers(docker_client, kubelet, pod)) == 1
        # Nothing runs in it again: its sandbox is stopped; the pod keeps its IP.
        sandboxes = [c for c in node_containers(docker_client, kubelet, pod)
                     if c["Labels"].get(LABEL_SANDBOX) == "true"]
        assert [c["State"] for c in sandboxes] == ["exited"], sandboxes
        assert pod.status.pod_ip
    assert (await get_pod(client, ns, "onfailure-ok")).status.phase == "Succeeded"
    assert (await get_pod(client, ns, "never-bad")).status.phase == "Failed"


async def test_crash_loop_back_off_grows(kubelet: KubeletProcess, client: Client, ns: str,
                                         busybox_image: str) -> None:
    # The kubelet's back-off starts at 1 s here (Kubernetes: 10 s): 1 s, 2 s, 4 s, ...
    await create_pod(client, ns, kubelet.node_name, "crash",
                     [container("c", "sleep 0.3; exit 1", busybox_image)])
    # container id -> (startedAt, finishedAt) of each attempt, as the status reported them.
    attempts: dict[str, tuple[float, float]] = {}
    reasons: set[str] = set()

    def record(state: core_pb2.ContainerState) -> None:
        t = state.terminated
        if state.HasField("terminated") and t.container_id:
            attempts[t.container_id] = (t.started_at.ToNanoseconds() / 1e9,
                                        t.finished_at.ToNanoseconds() / 1e9)

    async def four_attempts() -> bool:
        pod = await get_pod(client, ns, "crash")
        if restarts(pod, "c") < 0:
            return False
        status = cstatus(pod, "c")
        record(status.state)
        record(status.last_state)
        if status.state.HasField("waiting"):
            reasons.add(status.state.waiting.reason)
        return len(attempts) >= 4

    await eventually(four_attempts, timeout=30, what="four attempts", interval=0.1)
    assert "CrashLoopBackOff" in reasons
    runs = sorted(attempts.values())
    gaps = [later[0] - earlier[1] for earlier, later in itertools.pairwise(runs)]
    print("gaps between attempts:", [round(g, 2) for g in gaps])
    # The first restart is immediate (after noticing the exit); then 1 s, then 2 s.
    assert gaps[1] >= 0.9, gaps
    assert gaps[2] >= 1.9, gaps
    assert gaps[2] > gaps[1], gaps
    pod = await get_pod(client, ns, "crash")
    assert pod.status.phase == "Running"
    describe = await skiff(kubelet.server, "describe", "pod", "crash", "-n", ns)
    assert "CrashLoopBackOff" in describe, describe  # the container's state
    assert "Back-off restarting failed container c in pod crash" in describe, describe


# ---- 7. init containers ----

async def test_init_containers_run_first_and_in_order(
        kubelet: KubeletProcess, client: Client, ns: str, busybox_image: str) -> None:
    work = [{"name": "work", "mountPath": "/work"}]
    await create_pod(client, ns, kubelet.node_name, "app", [
        container("app", "cat /work/log; exec sleep 3600", busybox_image, volumeMounts=work),
    ], initContainers=[
        container("first", "sleep 0.5; echo first >> /work/log", busybox_image,
                  volumeMounts=work),
        container("second", "echo second >> /work/log", busybox_image, volumeMounts=work),
    ], volumes=[{"name": "work", "emptyDir": {}}])
    pod = await wait_pod(client, ns, "app", running_and_ready, "Running")
    assert await wait_logs(client, ns, "app", "second") == "first\nsecond\n"
    first, second = (cstatus(pod, n) for n in ("first", "second"))
    for status in (first, second):
        assert status.state.terminated.exit_code == 0, status
        assert status.state.terminated.reason == "Completed" and status.ready
    assert second.state.terminated.started_at.ToNanoseconds() >= \
        first.state.terminated.finished_at.ToNanoseconds()
    initialized = condition(pod, "Initialized")
    assert initialized is not None and initialized.status == "True"


async def test_failing_init_container_fails_the_pod_under_never(
        kubelet: KubeletProcess, client: Client, ns: str, busybox_image: str,
        docker_client: docker.DockerClient) -> None:
    await create_pod(client, ns, kubelet.node_name, "app", [
        container("app", "echo app ran; exec sleep 3600", busybox_image),
    ], initContainers=[container("init", "exit 3", busybox_image)], restartPolicy="Never")
    pod = await wait_pod(client, ns, "app", lambda p: p.status.phase == "Failed", "Failed")
    init = cstatus(pod, "init")
    assert init.state.terminated.exit_code == 3 and init.restart_count == 0
    assert not cstatus(pod, "app").state.HasField("running")
    initialized = condition(pod, "Initialized")
    assert initialized is not None and initialized.status == "False"
    assert "Init:Error" in await skiff(kubelet.server, "get", "pods", "-n", ns)
    await asyncio.sleep(1.5)
    pod = await get_pod(client, ns, "app")
    assert pod.status.phase == "Failed" and cstatus(pod, "init").restart_count == 0
    assert len(app_containers(docker_client, kubelet, pod)) == 1  # the app never ran
    assert all(c["State"] == "exited" for c in node_containers(docker_client, kubelet, pod))


# ---- 8. a kubelet restart adopts what runs ----

async def test_restarted_kubelet_adopts_its_pods(kubelet: KubeletProcess, client: Client,
                                                 ns: str, busybox_image: str,
                                                 docker_client: docker.DockerClient) -> None:
    node = kubelet.node_name
    for name in ("keep", "deleted", "forced"):
        await create_pod(client, ns, node, name, [
            container("a", "exec sleep 3600", busybox_image),
            container("b", "trap 'exit 0' TERM; while :; do sleep 0.1; done", busybox_image,
                      volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}]),
        ], volumes=[{"name": "scratch", "emptyDir": {"medium": "Memory"}}])
    pods = {}
    for name in ("keep", "deleted", "forced"):
        pods[name] = await wait_pod(client, ns, name, running_and_ready, "Running")
    before = {c["Id"] for c in node_containers(docker_client, kubelet, pods["keep"])}
    assert len(before) == 3  # the sandbox and two containers

    kubelet.kill()  # SIGKILL: no chance to clean up anything
    await client.delete(core_pb2.Pod, "deleted", ns)  # graceful: waits for the kubelet
    await client.delete(core_pb2.Pod, "forced", ns, grace_period=0)  # gone from the API
    kubelet.start()
    await asyncio.to_thread(kubelet.wait_running)

    for name in ("deleted", "forced"):
        pod_dir = kubelet.root / "pods" / pods[name].metadata.uid

        async def cleaned(pod: core_pb2.Pod = pods[name], pod_dir: Path = pod_dir) -> bool:
            return not node_containers(docker_client, kubelet, pod) and not pod_dir.exists()

        await eventually(cleaned, timeout=20, what=f"pod {name}'s containers and volumes "
                         "to be removed")
        assert mounts_under(pod_dir) == []
    with pytest.raises(errors.NotFound):
        await get_pod(client, ns, "deleted")

    await asyncio.sleep(2)  # a few relists and syncs: still the same containers
    after = {c["Id"] for c in node_containers(docker_client, kubelet, pods["keep"])}
    assert after == before
    pod = await wait_pod(client, ns, "keep", running_and_ready, "Running")
    for status in pod.status.container_statuses:
        assert status.restart_count == 0 and status.state.HasField("running"), status
        assert status.container_id.removeprefix("docker://") in before
    assert pod.status.pod_ip == pods["keep"].status.pod_ip


# ---- 9. graceful deletion: preStop, then SIGTERM ----

async def test_graceful_deletion_runs_pre_stop_then_sigterm(
        kubelet: KubeletProcess, client: Client, ns: str, busybox_image: str,
        tmp_path: Path) -> None:
    host_dir = tmp_path / "marks"
    await create_pod(client, ns, kubelet.node_name, "app", [
        container("app", "trap 'echo TERM >> /marks/log; exit 0' TERM; "
                  "echo started >> /marks/log; while :; do sleep 0.1; done", busybox_image,
                  volumeMounts=[{"name": "marks", "mountPath": "/marks"}],
                  lifecycle={"preStop": {"exec": {"command": [
                      "sh", "-c", "echo preStop >> /marks/log"]}}}),
    ], volumes=[{"name": "marks", "hostPath": {"path": str(host_dir),
                                               "type": "DirectoryOrCreate"}}],
        terminationGracePeriodSeconds=30)
    await wait_pod(client, ns, "app", running_and_ready, "Running")
    await eventually(lambda: _read(host_dir / "log"), what="the container to start")

    started = time.monotonic()
    await delete_and_wait_gone(client, ns, "app", timeout=20)
    # Well within the 30 s grace period: the container ended on SIGTERM.
    assert time.monotonic() - started < 10
    assert (host_dir / "log").read_text() == "started\npreStop\nTERM\n"


async def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


# ---- 10. private registries ----

async def test_pull_from_an_authenticated_registry(
        kubelet: KubeletProcess, client: Client, ns: str, auth_registry: Registry,
        docker_client: docker.DockerClient) -> None:
    image = auth_registry.image
    with contextlib.suppress(docker.errors.ImageNotFound):  # another test may have pulled it
        docker_client.images.remove(image, force=True)
    await create_pod(client, ns, kubelet.node_name, "anonymous",
                     [container("app", "exec sleep 3600", image)])
    pod = await wait_pod(client, ns, "anonymous",
                         lambda p: waiting_reason(p, "app") == "ErrImagePull", "ErrImagePull")
    message = cstatus(pod, "app").state.waiting.message
    assert message.startswith(f'Failed to pull image "{image}": '), message
    assert "no basic auth credentials" in message or "unauthorized" in message.lower(), message
    pod = await wait_pod(client, ns, "anonymous",
                         lambda p: waiting_reason(p, "app") == "ImagePullBackOff",
                         "ImagePullBackOff")
    message = cstatus(pod, "app").state.waiting.message
    assert message.startswith(f'Back-off pulling image "{image}": ErrImagePull: '), message
    assert "no basic auth credentials" in message or "unauthorized" in message.lower(), message

    config = {"auths": {auth_registry.host: {
        "username": auth_registry.username, "password": auth_registry.password,
        "auth": base64.b64encode(
            f"{auth_registry.username}:{auth_registry.password}".encode()).decode()}}}
    secret = core_pb2.Secret(type="kubernetes.io/dockerconfigjson")
    secret.metadata.name, secret.metadata.namespace = "registry", ns
    secret.data[".dockerconfigjson"] = json.dumps(config).encode()
    await client.create(secret)
    try:
        await create_pod(client, ns, kubelet.node_name, "authorized",
                         [container("app", "echo pulled; exec sleep 3600", image)],
                         imagePullSecrets=[{"name": "registry"}])
        await wait_pod(client, ns, "authorized", running_and_ready, "Running")
        await wait_event(client, ns, "authorized", "Pulled", image)
        assert await wait_logs(client, ns, "authorized", "pulled") == "pulled\n"
    finally:
        for name in ("authorized", "anonymous"):
            await delete_and_wait_gone(client, ns, name)
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(image, force=True)


# ---- 11. what a user sees when something is wrong ----

async def test_bad_input_shows_the_reason(kubelet: KubeletProcess, client: Client, ns: str,
                                          busybox_image: str, latest_image: str) -> None:
    node = kubelet.node_name
    async with ReasonLog(client, ns) as log:
        await create_pod(client, ns, node, "no-image",
                         [container("app", "exec sleep 3600", "127.0.0.1:1/nope:1")])
        await create_pod(client, ns, node, "env-secret", [container(
            "app", "exec sleep 3600", busybox_image,
            env=[{"name": "PASSWORD",
                  "valueFrom": {"secretKeyRef": {"name": "missing", "key": "password"}}}])])
        await create_pod(client, ns, node, "vol-secret", [container(
            "app", "cat /creds/password; echo; exec sleep 3600", busybox_image,
            volumeMounts=[{"name": "creds", "mountPath": "/creds"}])],
            volumes=[{"name": "creds", "secret": {"secretName": "later"}}])
        await create_pod(client, ns, node, "no-command", [{
            "name": "app", "image": busybox_image, "command": ["nosuchcmd", "--flag"]}])
        # On the node, untagged and with no policy: Always, so it is pulled (from loopback,
        # which refuses) rather than run, and an event says why (kind#328's trap).
        await create_pod(client, ns, node, "latest", [{
            "name": "app", "image": latest_image, "command": ["sleep", "3600"]}])

        pod = await wait_pod(client, ns, "no-image",
                             lambda p: waiting_reason(p, "app") == "ImagePullBackOff",
                             "ImagePullBackOff")
        assert log.went_through("no-image", "app", "ErrImagePull", "ImagePullBackOff"), \
            log.of("no-image", "app")
        message = cstatus(pod, "app").state.waiting.message
        assert message.startswith('Back-off pulling image "127.0.0.1:1/nope:1": '), message
        assert "connection refused" in message, message
        pod = await wait_pod(client, ns, "env-secret",
                             lambda p: waiting_reason(p, "app") == "CreateContainerConfigError",
                             "CreateContainerConfigError")
        assert cstatus(pod, "app").state.waiting.message == 'secret "missing" not found'
        pod = await wait_pod(client, ns, "vol-secret",
                             lambda p: waiting_reason(p, "app") == "ContainerCreating",
                             "ContainerCreating")
        await wait_event(client, ns, "vol-secret", "FailedMount",
                         'MountVolume.SetUp failed for volume "creds" : '
                         'secret "later" not found')
        pod = await wait_pod(client, ns, "no-command",
                             lambda p: waiting_reason(p, "app") == "CrashLoopBackOff",
                             "CrashLoopBackOff")
        assert log.went_through("no-command", "app", "RunContainerError",
                                "CrashLoopBackOff"), log.of("no-command", "app")
        status = cstatus(pod, "app")
        assert status.last_state.terminated.reason == "ContainerCannotRun", status
        assert '"nosuchcmd"' in status.last_state.terminated.message, status
        assert status.last_state.terminated.exit_code != 0
        warning = await wait_event(client, ns, "latest", "AlwaysPull")
        assert warning.type == "Warning"
        assert warning.message == (
            f'Pulling image "{latest_image}" at every start: its tag is latest (or none), for '
            "which imagePullPolicy defaults to Always; it is on the node, but Always pulls it "
            "anyway. To run an image loaded into the node, give it another tag or set "
            "imagePullPolicy: IfNotPresent"), warning.message
        await wait_pod(client, ns, "latest",
                       lambda p: waiting_reason(p, "app") in ("ErrImagePull", "ImagePullBackOff"),
                       "ErrImagePull")

    table = await skiff(kubelet.server, "get", "pods", "-n", ns)
    rows = {line.split()[0]: line.split()[2] for line in table.splitlines()[1:]}
    assert rows["no-image"] in ("ErrImagePull", "ImagePullBackOff"), table
    assert rows["env-secret"] == "CreateContainerConfigError", table
    assert rows["vol-secret"] == "ContainerCreating", table
    assert rows["no-command"] in ("RunContainerError", "CrashLoopBackOff"), table

    described = {name: await skiff(kubelet.server, "describe", "pod", name, "-n", ns)
                 for name in rows}
    assert 'Failed to pull image "127.0.0.1:1/nope:1"' in described["no-image"]
    assert 'secret "missing" not found' in described["env-secret"]
    assert "FailedMount" in described["vol-secret"]
    assert 'secret "later" not found' in described["vol-secret"]
    assert "nosuchcmd" in described["no-command"]
    assert "executable file not found" in described["no-command"]

    # The missing secret arrives: the pod waiting for it starts by itself, at once.
    secret = core_pb2.Secret()
    secret.metadata.name, secret.metadata.namespace = "later", ns
    secret.data["password"] = b"finally"
    await client.create(secret)
    await wait_pod(client, ns, "vol-secret", running_and_ready, "Running", timeout=5)
    assert await wait_logs(client, ns, "vol-secret", "finally") == "finally\n"


# ---- 12. host network and host ports ----

def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as response:
        return str(response.read().decode())


async def wait_http(url: str, text: str, timeout: float = 15.0) -> None:
    async def probe() -> bool:
        try:
            return text in await asyncio.to_thread(http_get, url)
        except OSError:
            return False

    await eventually(probe, timeout=timeout, what=f"{url} to answer {text!r}")


async def test_host_network_and_host_port(kubelet: KubeletProcess, client: Client, ns: str,
                                          busybox_image: str) -> None:
    host_net_port, host_port = free_ports(2)
    await create_pod(client, ns, kubelet.node_name, "hostnet", [
        container("web", f"mkdir -p /tmp/w; echo on-the-host > /tmp/w/index.html; "
                  f"exec httpd -f -p 127.0.0.1:{host_net_port} -h /tmp/w", busybox_image)],
        hostNetwork=True)
    await create_pod(client, ns, kubelet.node_name, "hostport", [
        container("web", "echo via-host-port > /www/index.html; exec httpd -f -p 8080 -h /www",
                  busybox_image, ports=[{"containerPort": 8080, "hostPort": host_port}])])
    pod = await wait_pod(client, ns, "hostnet", running_and_ready, "Running")
    assert pod.status.pod_ip == pod.status.host_ip == "127.0.0.1"
    await wait_http(f"http://127.0.0.1:{host_net_port}/", "on-the-host")
    pod = await wait_pod(client, ns, "hostport", running_and_ready, "Running")
    assert pod.status.pod_ip != "127.0.0.1"
    await wait_http(f"http://127.0.0.1:{host_port}/", "via-host-port")


# ---- 13. resources and security context ----

async def test_limits_and_run_as_user(kubelet: KubeletProcess, client: Client, ns: str,
                                      busybox_image: str,
                                      docker_client: docker.DockerClient) -> None:
    pod = await create_pod(client, ns, kubelet.node_name, "app", [
        container("app", "echo uid=$(id -u) gid=$(id -g); exec sleep 3600", busybox_image,
                  resources={"limits": {"cpu": "500m", "memory": "64Mi"},
                             "requests": {"cpu": "250m", "memory": "32Mi"}},
                  securityContext={"runAsUser": 1234, "runAsGroup": 2345})])
    pod = await wait_pod(client, ns, "app", running_and_ready, "Running")
    assert await wait_logs(client, ns, "app", "uid=") == "uid=1234 gid=2345\n"
    cid = cstatus(pod, "app").container_id.removeprefix("docker://")
    host_config = docker_client.api.inspect_container(cid)["HostConfig"]
    assert host_config["NanoCpus"] == 500_000_000
    assert host_config["Memory"] == 64 * 1024 * 1024
    assert host_config["CpuShares"] == 256
    assert pod.status.qos_class == "Burstable"


# ---- 14. the node ----

async def test_node_registers_and_renews_its_lease(kubelet: KubeletProcess,
                                                   client: Client) -> None:
    node = await client.get(core_pb2.Node, kubelet.node_name)
    labels = node.metadata.labels
    assert labels["kubernetes.io/hostname"] == kubelet.node_name
    assert labels["kubernetes.io/os"] == "linux"
    assert labels["kubernetes.io/arch"] in ("amd64", "arm64", "arm")
    capacity = node.status.capacity
    assert int(capacity["cpu"].value) == os.cpu_count()
    assert capacity["memory"].value.endswith("Ki") and int(capacity["memory"].value[:-2]) > 0
    assert capacity["pods"].value == "110"
    ready = next(c for c in node.status.conditions if c.type == "Ready")
    assert ready.status == "True", ready
    assert node.status.node_info.container_runtime_version.startswith("docker://")
    assert node.status.node_info.operating_system == "linux"
    assert any(a.type == "InternalIP" and a.address == "127.0.0.1"
               for a in node.status.addresses)

    lease = await client.get(coordination_pb2.Lease, kubelet.node_name, "kube-node-lease")
    assert lease.spec.holder_identity == kubelet.node_name
    assert lease.spec.lease_duration_seconds == 4
    first = lease.spec.renew_time.seconds

    async def renewed() -> bool:
        again = await client.get(coordination_pb2.Lease, kubelet.node_name, "kube-node-lease")
        return again.spec.renew_time.seconds > first

    # Renewed every quarter of its duration: 1 s here.
    await eventually(renewed, timeout=5, what="the lease to be renewed", interval=0.2)


# ---- 15. interrupted work ----

async def test_deleting_a_pod_while_it_starts_abandons_the_start(
        kubelet: KubeletProcess, client: Client, ns: str, busybox_image: str,
        docker_client: docker.DockerClient) -> None:
    many = 40  # started one after the other: seconds of work on any engine
    await create_pod(client, ns, kubelet.node_name, "many", [
        container(f"c{i}", "trap 'exit 0' TERM; while :; do sleep 0.1; done", busybox_image)
        for i in range(many)])
    pod = await get_pod(client, ns, "many")
    seen: set[str] = set()  # every app container of the pod the engine ever showed

    async def watch_engine() -> None:
        while True:
            found = await asyncio.to_thread(app_containers, docker_client, kubelet, pod)
            seen.update(c["Id"] for c in found)
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch_engine())
    try:
        async def starting() -> bool:
            return len(seen) >= 2

        await eventually(starting, what="the first containers to be created")
        deleted = time.monotonic()
        await delete_and_wait_gone(client, ns, "many", timeout=60)
        took = time.monotonic() - deleted
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    assert app_containers(docker_client, kubelet, pod) == []
    # The start gave up at once, not after starting all of them ...
    assert len(seen) < many // 2, f"{len(seen)} of {many} containers were created"
    # ... and the stop took the grace period at most, and a little.
    assert took < GRACE + 5, f"the pod was gone after {took:.1f}s"


async def test_a_container_left_created_by_a_killed_kubelet_is_no_restart(
        kubelet: KubeletProcess, client: Client, ns: str, busybox_image: str,
        docker_client: docker.DockerClient) -> None:
    from kubelet.pods.configs import container_config, sandbox_config
    from kubelet.runtime.docker import DockerRuntime

    await create_pod(client, ns, kubelet.node_name, "half", [
        container("app", "trap 'exit 0' TERM; while :; do sleep 0.1; done", busybox_image)])
    pod = await wait_pod(client, ns, "half", running_and_ready, "Running")
    [running] = app_containers(docker_client, kubelet, pod)
    [sandbox] = [c for c in node_containers(docker_client, kubelet, pod)
                 if c["Labels"].get(LABEL_SANDBOX) == "true"]

    # The kubelet dies between creating the container and starting it: what it leaves is
    # the container, created with the pod's labels, never started.
    kubelet.kill()
    docker_client.api.remove_container(running["Id"], force=True)
    runtime = DockerRuntime(docker_client)
    try:
        spec = pod.spec.containers[0]
        half_done = await runtime.create_container(sandbox["Id"], container_config(
            pod, spec, attempt=0, init=False, env=[], command=list(spec.command),
            args=list(spec.args), mounts=(), node_name=kubelet.node_name),
            sandbox_config(pod, 0, kubelet.node_name))
    finally:
        runtime.close()
    assert docker_client.api.inspect_container(half_done)["State"]["Status"] == "created"

    kubelet.start()
    await asyncio.to_thread(kubelet.wait_running)

    def started_afresh(p: core_pb2.Pod) -> bool:
        status = cstatus(p, "app")
        return (running_and_ready(p)
                and status.container_id.removeprefix("docker://") != running["Id"])

    pod = await wait_pod(client, ns, "half", started_afresh, "running again")
    status = cstatus(pod, "app")
    assert status.restart_count == 0, status
    assert not status.last_state.HasField("terminated"), status
    assert [c["State"] for c in app_containers(docker_client, kubelet, pod)] == ["running"]


# ---- 13. the pods' resolv.conf ----

async def test_pods_get_the_cluster_dns_or_their_own(
        kubelet_factory: Callable[..., KubeletProcess], client: Client, ns: str,
        busybox_image: str) -> None:
    """ClusterFirst: the cluster's DNS server, Kubernetes' search path and ndots:5, in every
    container of the pod (they share the sandbox's file); None: the pod's dnsConfig alone.
    Both on the pod network's bridge, where Docker's --dns would have given 127.0.0.11."""
    kubelet = kubelet_factory(extra_args=(*FAST_KUBELET, "--cluster-dns", "10.96.0.10",
                                          "--cluster-domain", "cluster.test")).wait_running()
    node = kubelet.node_name
    show = "cat /etc/resolv.conf; echo END; exec sleep 3600"
    await create_pod(client, ns, node, "cluster-first", [
        container("app", show, busybox_image), container("side", show, busybox_image)])
    await create_pod(client, ns, node, "own", [container("app", show, busybox_image)],
                     dnsPolicy="None", dnsConfig={
                         "nameservers": ["192.0.2.53"], "searches": ["my.dns.search.suffix"],
                         "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]})
    host = Path("/etc/resolv.conf").read_text().splitlines()
    host_search = next((line.split()[1:] for line in reversed(host)
                        if line.split()[:1] in (["search"], ["domain"])), [])
    searches = " ".join(dict.fromkeys([f"{ns}.svc.cluster.test", "svc.cluster.test",
                                       "cluster.test", *(s.rstrip(".") for s in host_search
                                                         if s != ".")]))
    for name in ("app", "side"):
        shown = await wait_logs(client, ns, "cluster-first", "END", container=name)
        assert shown == (f"nameserver 10.96.0.10\nsearch {searches}\noptions ndots:5\nEND\n"), \
            shown
    shown = await wait_logs(client, ns, "own", "END")
    assert shown == ("nameserver 192.0.2.53\nsearch my.dns.search.suffix\n"
                     "options ndots:2 edns0\nEND\n"), shown
