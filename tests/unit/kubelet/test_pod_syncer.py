"""The pod workers (kubelet/pods/) over the in-memory runtime: what their cache of the
runtime, their wake-ups, their start slots and their stops promise.

The runtime here yields to the event loop inside every call, as a real engine's round
trips do, so relists and syncs interleave the way they do on a node.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kubelet.images import ImageManager
from kubelet.plan import plan_pod
from kubelet.pods import executor
from kubelet.pods.configs import container_config, sandbox_config
from kubelet.pods.references import referenced_objects
from kubelet.pods.syncer import PodSyncer
from kubelet.probes import ProbeManager
from kubelet.runtime import ContainerConfig, ContainerInfo, ExecResult, SandboxConfig, State
from kubelet.runtime.fake import FakeRuntime, Script
from kubelet.volumes import FakeMounter, VolumeManager
from skiff.api.convert import from_dict
from skiff.api.kinds import apply_defaults
from skiff.api.v1 import core_pb2
from skiff.client.clock import Clock, FakeClock
from skiff.client.events import FakeRecorder

IMAGE = "busybox:1"
NS = "default"


class SlowRuntime(FakeRuntime):
    """A FakeRuntime whose calls take a moment; it also tracks which pods are starting."""

    def __init__(self, delay: float = 0.002) -> None:
        super().__init__(images=[IMAGE])
        self.delay = delay
        self.starting: set[str] = set()  # pod uids between sandbox and container start
        self.most_starting = 0

    async def run_sandbox(self, config: SandboxConfig) -> str:
        self.starting.add(config.pod_uid)
        self.most_starting = max(self.most_starting, len(self.starting))
        await asyncio.sleep(self.delay)
        return await super().run_sandbox(config)

    async def create_container(self, sandbox_id: str, config: ContainerConfig,
                               sandbox: SandboxConfig) -> str:
        await asyncio.sleep(self.delay)
        return await super().create_container(sandbox_id, config, sandbox)

    async def start_container(self, container_id: str) -> None:
        await asyncio.sleep(self.delay)
        await super().start_container(container_id)
        uid = self.containers[container_id].labels["io.skiff.pod.uid"]
        self.starting.discard(uid)

    async def list_containers(self) -> list[ContainerInfo]:
        # The engine answers as of when the list began, and takes a while to: a list can
        # miss what a start going on meanwhile does.
        found = await super().list_containers()
        await asyncio.sleep(self.delay * 2)
        return found


class Objects:
    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], core_pb2.Secret] = {}
        self.config_maps: dict[tuple[str, str], core_pb2.ConfigMap] = {}

    def get_secret(self, namespace: str, name: str) -> core_pb2.Secret | None:
        return self.secrets.get((namespace, name))

    def get_config_map(self, namespace: str, name: str) -> core_pb2.ConfigMap | None:
        return self.config_maps.get((namespace, name))


class FakeClient:
    """What the pod workers call on the apiserver: status writes and final deletes. A
    status written comes back as an update of the pod, as through the informer (`echo`:
    the status on the pod as the apiserver holds it then, see make_syncer)."""

    def __init__(self) -> None:
        self.statuses: list[core_pb2.Pod] = []
        self.deletes: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self.echo: Callable[[core_pb2.Pod], None] = lambda pod: None

    async def update_status(self, pod: core_pb2.Pod) -> core_pb2.Pod:
        self.statuses.append(pod)
        asyncio.get_running_loop().call_soon(self.echo, pod)
        return pod

    async def delete(self, *args: Any, **kwargs: Any) -> None:
        self.deletes.append((args, kwargs))

    def last_status(self, uid: str) -> core_pb2.PodStatus | None:
        found = [p.status for p in self.statuses if p.metadata.uid == uid]
        return found[-1] if found else None


@pytest.fixture
def runtime() -> SlowRuntime:
    return SlowRuntime()


def make_syncer(runtime: FakeRuntime, tmp_path: Path, *, clock: Clock | None = None
                ) -> PodSyncer:
    objects = Objects()
    client = FakeClient()
    syncer = PodSyncer(
        node_name="node-1", node_ip="10.0.0.1", client=client,
        runtime=runtime, volumes=VolumeManager(tmp_path, objects, mounter=FakeMounter()),
        images=ImageManager(runtime, objects, clock=clock),
        probes=ProbeManager(runtime, on_change=lambda uid: None),
        source=objects, recorder=FakeRecorder(), start_concurrency=2, clock=clock)

    def echo(written: core_pb2.Pod) -> None:
        # The apiserver writes the status onto the pod it holds, which may have changed
        # since (a deletion): what comes back is that, never the older pod again.
        current = syncer.pods.get(written.metadata.uid)
        if current is None:
            return
        updated = core_pb2.Pod()
        updated.CopyFrom(current)
        updated.status.CopyFrom(written.status)
        syncer.pod_updated(updated)

    client.echo = echo
    return syncer


@pytest.fixture
async def syncer(runtime: SlowRuntime, tmp_path: Path) -> AsyncIterator[PodSyncer]:
    syncer = make_syncer(runtime, tmp_path)
    yield syncer
    await syncer.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(wall_start=datetime(2024, 5, 1, tzinfo=UTC))


def fake_client(syncer: PodSyncer) -> FakeClient:
    client = syncer.client
    assert isinstance(client, FakeClient)
    return client


def make_pod(name: str, containers: int = 1, **spec: Any) -> core_pb2.Pod:
    pod, _ = from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}"},
        "spec": {"nodeName": "node-1", "terminationGracePeriodSeconds": 0,
                 "containers": [{"name": f"c{i}", "image": IMAGE} for i in range(containers)],
                 **spec},
    })
    assert isinstance(pod, core_pb2.Pod)
    apply_defaults(pod)
    return pod


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


def running_containers(runtime: FakeRuntime, uid: str) -> list[str]:
    return [c.id for c in runtime.containers.values()
            if c.labels.get("io.skiff.pod.uid") == uid and not c.is_sandbox
            and c.state is State.RUNNING]


async def relist_often(syncer: PodSyncer, period: float) -> None:
    while True:
        await asyncio.gather(syncer.relist(), asyncio.sleep(period))


async def test_relists_racing_syncs_never_start_a_container_twice(
        syncer: PodSyncer, runtime: SlowRuntime) -> None:
    relists = asyncio.create_task(relist_often(syncer, runtime.delay))
    try:
        pods = [make_pod(f"p{i}", containers=2) for i in range(24)]
        for pod in pods:
            syncer.pod_updated(pod)
        await until(lambda: all(len(running_containers(runtime, p.metadata.uid)) == 2
                                for p in pods))
        await asyncio.sleep(0.2)  # many more relists and the syncs they wake
    finally:
        relists.cancel()
    for pod in pods:
        mine = [c for c in runtime.containers.values()
                if c.labels.get("io.skiff.pod.uid") == pod.metadata.uid]
        assert len(mine) == 3, [c.name for c in mine]  # one sandbox, two containers
    assert len(runtime.calls_to("run_sandbox")) == len(pods)
    assert len(runtime.calls_to("create_container")) == 2 * len(pods)


async def test_a_few_pods_start_at_a_time(syncer: PodSyncer, runtime: SlowRuntime) -> None:
    pods = [make_pod(f"p{i}") for i in range(10)]
    for pod in pods:
        syncer.pod_updated(pod)
    await until(lambda: all(running_containers(runtime, p.metadata.uid) for p in pods))
    assert runtime.most_starting == 2


async def test_a_quiet_pod_costs_no_runtime_call(syncer: PodSyncer,
                                                 runtime: SlowRuntime) -> None:
    pod = make_pod("p")
    syncer.pod_updated(pod)
    await until(lambda: bool(running_containers(runtime, pod.metadata.uid)))
    await syncer.relist()  # the cache now shows the pod as it is
    await asyncio.sleep(0.05)
    runtime.calls.clear()
    assert await syncer.sync(pod.metadata.uid) == (None, False)
    assert list(runtime.calls) == []


async def test_status_only_updates_do_not_wake_the_worker(
        syncer: PodSyncer, runtime: SlowRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    pod = make_pod("p")
    syncer.pod_updated(pod)
    await until(lambda: bool(running_containers(runtime, pod.metadata.uid)))
    await asyncio.sleep(0.05)
    synced: list[str] = []
    real_sync = syncer.sync

    async def counting_sync(uid: str) -> tuple[float | None, bool]:
        synced.append(uid)
        return await real_sync(uid)

    monkeypatch.setattr(syncer, "sync", counting_sync)
    echo = core_pb2.Pod()
    echo.CopyFrom(pod)
    echo.metadata.resource_version = "42"
    echo.status.phase = "Running"  # e.g. our own status write coming back
    syncer.pod_updated(echo)
    await asyncio.sleep(0.05)
    assert synced == []
    assert syncer.pods[pod.metadata.uid].status.phase == "Running"  # but it is kept

    changed = core_pb2.Pod()
    changed.CopyFrom(echo)
    changed.metadata.labels["tier"] = "web"
    syncer.pod_updated(changed)
    await until(lambda: synced == [pod.metadata.uid])


async def test_a_changed_secret_or_config_map_wakes_the_pods_using_it(
        syncer: PodSyncer, monkeypatch: pytest.MonkeyPatch) -> None:
    woken: list[str] = []
    monkeypatch.setattr(syncer, "wake", woken.append)
    user = make_pod("user", volumes=[{"name": "v", "configMap": {"name": "settings"}}])
    other = make_pod("other")
    syncer.pod_updated(user)
    syncer.pod_updated(other)
    woken.clear()
    syncer.object_changed("ConfigMap", NS, "settings")
    assert woken == ["uid-user"]
    woken.clear()
    syncer.object_changed("ConfigMap", "elsewhere", "settings")
    syncer.object_changed("Secret", NS, "settings")
    assert woken == []
    syncer.pod_deleted(user)
    woken.clear()
    syncer.object_changed("ConfigMap", NS, "settings")
    assert woken == []


def test_referenced_objects() -> None:
    pod = make_pod("p", volumes=[
        {"name": "a", "secret": {"secretName": "vol-secret"}},
        {"name": "b", "configMap": {"name": "vol-cm"}},
        {"name": "c", "emptyDir": {}},
    ], imagePullSecrets=[{"name": "pull"}], initContainers=[{
        "name": "init", "image": IMAGE,
        "envFrom": [{"secretRef": {"name": "init-env"}}]}])
    user, _ = from_dict({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{
        "name": "c0", "image": IMAGE,
        "envFrom": [{"configMapRef": {"name": "env-cm"}}],
        "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "key-s", "key": "k"}}},
                {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "key-cm", "key": "k"}}},
                {"name": "C", "value": "plain"}]}]}})
    assert isinstance(user, core_pb2.Pod)
    pod.spec.containers[0].CopyFrom(user.spec.containers[0])
    assert referenced_objects(pod) == {
        ("Secret", NS, "vol-secret"), ("ConfigMap", NS, "vol-cm"), ("Secret", NS, "pull"),
        ("Secret", NS, "init-env"), ("ConfigMap", NS, "env-cm"), ("Secret", NS, "key-s"),
        ("ConfigMap", NS, "key-cm")}


async def test_failed_pull_shows_err_image_pull_then_back_off(
        runtime: SlowRuntime, tmp_path: Path, clock: FakeClock) -> None:
    syncer = make_syncer(runtime, tmp_path, clock=clock)
    client = fake_client(syncer)
    pod = make_pod("p")
    pod.spec.containers[0].image = "registry.example/nope:1"

    def reasons() -> list[str]:
        return [p.status.container_statuses[0].state.waiting.reason for p in client.statuses
                if p.status.container_statuses]

    try:
        syncer.pod_updated(pod)
        await until(lambda: "ErrImagePull" in reasons())
        # ErrImagePull shows for a moment of the kubelet's clock, then that it waits.
        await clock.settle()
        assert "ImagePullBackOff" not in reasons()
        await clock.advance(executor.IMAGE_BACKOFF_REPORT_DELAY)
        await until(lambda: "ImagePullBackOff" in reasons())
    finally:
        await syncer.stop()
    seen = [r for i, r in enumerate(reasons()) if i == 0 or reasons()[i - 1] != r]
    assert seen == ["ContainerCreating", "ErrImagePull", "ImagePullBackOff"]
    status = client.last_status(pod.metadata.uid)
    assert status is not None
    message = status.container_statuses[0].state.waiting.message
    assert message == ('Back-off pulling image "registry.example/nope:1": ErrImagePull: '
                       "manifest for registry.example/nope:1 not found: manifest unknown: "
                       "manifest unknown")
    assert len(runtime.calls_to("pull_image")) == 1  # the back-off holds the next pull


async def test_containers_sharing_an_image_share_its_pull() -> None:
    runtime = FakeRuntime(pullable={"*": None})
    images = ImageManager(runtime, Objects())
    pod = make_pod("p", containers=3)
    for c in pod.spec.containers:
        c.image = "registry.example/app:2"
    pulls: list[str] = []

    async def on_pull(present: bool) -> None:
        pulls.append("pulling")

    outcomes = await asyncio.gather(*(images.ensure(pod, c, on_pull=on_pull)
                                      for c in pod.spec.containers))
    assert len(runtime.calls_to("pull_image")) == 1 and pulls == ["pulling"]
    assert len({o.image_id for o in outcomes}) == 1


async def test_never_pull_policy_without_the_image_never_starts(
        syncer: PodSyncer, runtime: SlowRuntime) -> None:
    pod = make_pod("p")
    pod.spec.containers[0].image = "not-here:1"
    pod.spec.containers[0].image_pull_policy = "Never"
    syncer.pod_updated(pod)
    client = syncer.client
    assert isinstance(client, FakeClient)
    await until(lambda: client.last_status(pod.metadata.uid) is not None)
    status = client.last_status(pod.metadata.uid)
    assert status is not None
    waiting = status.container_statuses[0].state.waiting
    assert waiting.reason == "ErrImageNeverPull"
    assert waiting.message == ('Container image "not-here:1" is not present with pull '
                               "policy of Never")
    assert runtime.calls_to("create_container") == [] and runtime.calls_to("pull_image") == []


@pytest.mark.parametrize("policy, exit_code, phase", [
    ("Never", 0, "Succeeded"), ("Never", 1, "Failed"), ("OnFailure", 0, "Succeeded")])
def test_a_finished_pod_has_its_sandbox_stopped(policy: str, exit_code: int,
                                                phase: str) -> None:
    pod = make_pod("p", restartPolicy=policy)
    sandbox = ContainerInfo(id="sb", labels={"io.skiff.pod.uid": pod.metadata.uid,
                                             "io.skiff.sandbox": "true"},
                            image="pause", image_id="", state=State.RUNNING, created_at=1.0)
    done = ContainerInfo(id="c", labels={"io.skiff.pod.uid": pod.metadata.uid,
                                         "io.skiff.container.name": "c0"},
                         image=IMAGE, image_id="", state=State.EXITED, exit_code=exit_code,
                         created_at=2.0, finished_at=3.0)
    actions = plan_pod(pod, [sandbox], [done], liveness_failed=lambda cid: False,
                       backoff_remaining=lambda key, since: 0.0)
    assert actions.stop_sandboxes == ["sb"] and actions.start == [] and not actions.kill
    stopped = ContainerInfo(id="sb", labels=sandbox.labels, image="pause", image_id="",
                            state=State.EXITED, created_at=1.0)
    again = plan_pod(pod, [stopped], [done], liveness_failed=lambda cid: False,
                     backoff_remaining=lambda key, since: 0.0)
    assert not again.create_sandbox and again.start == [] and again.stop_sandboxes == []


async def test_a_finished_pod_keeps_its_ip(tmp_path: Path, clock: FakeClock) -> None:
    runtime = FakeRuntime(images=[IMAGE], clock=lambda: clock.wall().timestamp())
    runtime.scripts["c0"] = Script(exits_after=5, exit_code=0)
    syncer = make_syncer(runtime, tmp_path, clock=clock)
    client = fake_client(syncer)
    pod = make_pod("p", restartPolicy="Never")

    def phase() -> str:
        status = client.last_status(pod.metadata.uid)
        return status.phase if status is not None else ""

    def sandbox_states() -> list[State]:
        return [c.state for c in runtime.containers.values() if c.is_sandbox]

    try:
        syncer.pod_updated(pod)
        await until(lambda: phase() == "Running")
        running = client.last_status(pod.metadata.uid)
        assert running is not None and running.pod_ip
        await clock.advance(5)  # the container exits; the relist notices
        await syncer.relist()
        await until(lambda: phase() == "Succeeded" and sandbox_states() == [State.EXITED])
        await clock.settle()
    finally:
        await syncer.stop()
    assert sandbox_states() == [State.EXITED]
    final = client.last_status(pod.metadata.uid)
    assert final is not None and final.phase == "Succeeded"
    assert final.pod_ip == running.pod_ip
    assert [ip.ip for ip in final.pod_ips] == [running.pod_ip]


# ---- timing, on the kubelet's clock ----

async def test_a_crash_loop_waits_out_its_back_off(tmp_path: Path, clock: FakeClock) -> None:
    runtime = FakeRuntime(images=[IMAGE], clock=lambda: clock.wall().timestamp())
    syncer = make_syncer(runtime, tmp_path, clock=clock)
    pod = make_pod("p")
    uid = pod.metadata.uid
    try:
        syncer.pod_updated(pod)
        await until(lambda: len(running_containers(runtime, uid)) == 1)
        runtime.crash(running_containers(runtime, uid)[0])
        await syncer.relist()  # the first restart is at once; it starts the back-off
        await until(lambda: len(running_containers(runtime, uid)) == 1)
        assert len(runtime.calls_to("create_container")) == 2
        runtime.crash(running_containers(runtime, uid)[0])
        await syncer.relist()
        await until(lambda: any(
            s.container_statuses[0].state.waiting.reason == "CrashLoopBackOff"
            for s in (p.status for p in fake_client(syncer).statuses)))
        await clock.advance(9)
        assert len(runtime.calls_to("create_container")) == 2  # 10 s from the exit
        await clock.advance(1)
        await until(lambda: len(runtime.calls_to("create_container")) == 3)
        assert running_containers(runtime, uid)
    finally:
        await syncer.stop()


async def test_deletion_runs_pre_stop_within_the_grace_period_through_the_plan(
        tmp_path: Path, clock: FakeClock) -> None:
    runtime = FakeRuntime(images=[IMAGE], clock=lambda: clock.wall().timestamp())

    async def pre_stop(command: Sequence[str]) -> ExecResult:
        await clock.sleep(5)  # a hook that takes 5 s of the grace period
        return ExecResult(0, b"")

    runtime.exec_results["c0"] = pre_stop
    syncer = make_syncer(runtime, tmp_path, clock=clock)
    client = fake_client(syncer)
    pod = make_pod("p", terminationGracePeriodSeconds=30, volumes=[
        {"name": "scratch", "emptyDir": {"medium": "Memory"}}])
    pod.spec.containers[0].lifecycle.pre_stop.exec.command.extend(["/bin/drain"])
    uid = pod.metadata.uid
    try:
        syncer.pod_updated(pod)
        await until(lambda: len(running_containers(runtime, uid)) == 1)
        [cid] = running_containers(runtime, uid)
        deleted = core_pb2.Pod()
        deleted.CopyFrom(pod)
        # Deleted with 30 s of grace, 10 s of which have gone by.
        deleted.metadata.deletion_timestamp.seconds = int(clock.wall().timestamp()) + 20
        deleted.metadata.deletion_grace_period_seconds = 30
        syncer.pod_updated(deleted)
        await until(lambda: bool(runtime.calls_to("exec_sync")))
        assert runtime.calls_to("exec_sync") == [(cid, ("/bin/drain",))]
        assert runtime.calls_to("stop_container") == []  # preStop first
        await clock.advance(5)
        await until(lambda: bool(client.deletes))
        # What the hook took comes off the 20 s left.
        assert runtime.calls_to("stop_container") == [(cid, 15.0)]
        assert [c[0] for c in runtime.calls if c[0] in (
            "stop_container", "stop_sandbox", "remove_container", "remove_sandbox")] == [
            "stop_container", "stop_sandbox", "remove_container", "remove_sandbox"]
        assert runtime.containers == {}
        assert not (tmp_path / "pods" / uid).exists()  # the volumes went too
        assert client.deletes == [((core_pb2.Pod, "p", NS),
                                   {"grace_period": 0, "uid": uid})]
        syncer.pod_deleted(deleted)
        await until(lambda: not syncer.workers.working(uid))
    finally:
        await syncer.stop()


async def test_an_orphan_is_stopped_with_the_grace_period_it_started_with(
        tmp_path: Path, clock: FakeClock) -> None:
    runtime = FakeRuntime(images=[IMAGE], clock=lambda: clock.wall().timestamp())
    syncer = make_syncer(runtime, tmp_path, clock=clock)
    pod = make_pod("p", terminationGracePeriodSeconds=7)
    uid = pod.metadata.uid
    try:
        syncer.pod_updated(pod)
        await until(lambda: len(running_containers(runtime, uid)) == 1)
        [cid] = running_containers(runtime, uid)
        syncer.pod_deleted(pod)  # gone from the apiserver without a graceful deletion
        await until(lambda: runtime.containers == {})
        assert runtime.calls_to("stop_container") == [(cid, 7.0)]
        assert runtime.calls_to("exec_sync") == []
        assert fake_client(syncer).deletes == []  # nothing left to confirm
    finally:
        await syncer.stop()


# ---- interrupted work ----

def deleted_copy(pod: core_pb2.Pod, clock: FakeClock, grace: int = 0) -> core_pb2.Pod:
    """The pod as a graceful deletion leaves it: `grace` seconds from the clock's now."""
    deleted = core_pb2.Pod()
    deleted.CopyFrom(pod)
    deleted.metadata.deletion_timestamp.seconds = int(clock.wall().timestamp()) + grace
    deleted.metadata.deletion_grace_period_seconds = grace
    return deleted


async def test_deleting_a_pod_abandons_its_start(tmp_path: Path, clock: FakeClock) -> None:
    runtime = SlowRuntime()  # each call takes a moment, as an engine's round trip does
    syncer = make_syncer(runtime, tmp_path, clock=clock)
    client = fake_client(syncer)
    pod = make_pod("big", containers=200)
    uid = pod.metadata.uid
    try:
        syncer.pod_updated(pod)
        await until(lambda: len(running_containers(runtime, uid)) >= 5)
        created_before = len(runtime.calls_to("create_container"))
        syncer.pod_updated(deleted_copy(pod, clock))
        await until(lambda: bool(client.deletes))
        # The start gave up before its next container: the one under way, at most, more.
        assert len(runtime.calls_to("create_container")) <= created_before + 1
        assert runtime.containers == {}
        assert client.deletes == [((core_pb2.Pod, "big", NS), {"grace_period": 0, "uid": uid})]
    finally:
        await syncer.stop()


async def test_deleting_a_pod_abandons_its_wait_for_an_image(
        tmp_path: Path, clock: FakeClock) -> None:
    class BlockedPulls(FakeRuntime):
        async def pull_image(self, image: str, auth: Any = None) -> str:
            self.calls.append(("pull_image", image, auth))
            await asyncio.Event().wait()  # a registry that never answers
            raise AssertionError("unreachable")

    runtime = BlockedPulls(images=[IMAGE], pullable={"*": None})
    syncer = make_syncer(runtime, tmp_path, clock=clock)
    client = fake_client(syncer)
    pod = make_pod("slow-image", containers=2)
    pod.spec.containers[1].image = "registry.example/slow:1"
    try:
        syncer.pod_updated(pod)
        await until(lambda: bool(runtime.calls_to("pull_image")))
        syncer.pod_updated(deleted_copy(pod, clock))
        await until(lambda: bool(client.deletes))
        assert runtime.calls_to("create_container") == []
        assert runtime.containers == {}
    finally:
        await syncer.stop()


async def test_deleting_a_pod_abandons_its_wait_for_a_start_slot(
        tmp_path: Path, clock: FakeClock) -> None:
    runtime = SlowRuntime()
    syncer = make_syncer(runtime, tmp_path, clock=clock)  # two start slots
    client = fake_client(syncer)
    pods = [make_pod(f"p{i}", containers=50) for i in range(3)]
    try:
        for pod in pods:
            syncer.pod_updated(pod)
        await until(lambda: bool(runtime.calls_to("create_container")))
        waiting = pods[2]  # the third waits for a slot
        syncer.pod_updated(deleted_copy(waiting, clock))
        await until(lambda: bool(client.deletes))
        assert not any(c.labels.get("io.skiff.pod.uid") == waiting.metadata.uid
                       for c in runtime.containers.values())
        # Deleted in well under the time the two others take to start.
        assert len(running_containers(runtime, pods[0].metadata.uid)) < 50
    finally:
        await syncer.stop()


async def test_a_container_left_created_by_a_dead_kubelet_is_no_restart(
        tmp_path: Path, clock: FakeClock) -> None:
    runtime = FakeRuntime(images=[IMAGE], clock=lambda: clock.wall().timestamp())
    pod = make_pod("p", restartPolicy="Never")
    uid = pod.metadata.uid
    # What a kubelet SIGKILLed between creating the container and starting it leaves.
    sandbox = sandbox_config(pod, 0, "node-1")
    sandbox_id = await runtime.run_sandbox(sandbox)
    half_done = await runtime.create_container(sandbox_id, container_config(
        pod, pod.spec.containers[0], attempt=0, init=False, env=[], command=[], args=[],
        mounts=(), node_name="node-1"), sandbox)
    syncer = make_syncer(runtime, tmp_path, clock=clock)
    client = fake_client(syncer)

    def status() -> core_pb2.PodStatus | None:
        return client.last_status(uid)

    try:
        await syncer.prime()  # the restarted kubelet's first look at the runtime
        syncer.pod_updated(pod)
        await until(lambda: len(running_containers(runtime, uid)) == 1)
        await until(lambda: (s := status()) is not None and s.phase == "Running")
    finally:
        await syncer.stop()
    assert half_done not in runtime.containers  # removed, and created afresh
    assert [c.labels["io.skiff.container.attempt"] for c in runtime.containers.values()
            if not c.is_sandbox] == ["0"]
    final = status()
    assert final is not None
    [app] = final.container_statuses
    assert app.restart_count == 0 and app.state.HasField("running")
    assert not app.last_state.HasField("terminated")
    assert all(p.status.phase != "Failed" for p in client.statuses)
