"""Pod workers: one serialized worker per pod carries out its plan (kubelet/plan.py).

Every pod bound to this node gets a worker task. A worker wakes when the pod changes
(informer), when its containers change (the relist in `Kubelet.relist`), when a probe
result changes, when a back-off ends, and at least every RESYNC seconds; each wake runs
`sync` once, so the latest state always wins and one pod is never synced twice at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from google.protobuf.message import Message

from kubelet import plan as planning
from kubelet.backoff import Backoff
from kubelet.env import EnvError, ObjectSource, build_env, expand_command
from kubelet.images import ImageManager
from kubelet.probes import ProbeManager
from kubelet.runtime import (
    LABEL_ATTEMPT,
    LABEL_CONTAINER_NAME,
    LABEL_GRACE,
    LABEL_INIT,
    LABEL_NODE,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    LABEL_SPEC_HASH,
    ContainerConfig,
    ContainerInfo,
    ContainerRuntime,
    PortMapping,
    RuntimeError_,
    SandboxConfig,
    State,
)
from kubelet.status import build_pod_status
from kubelet.volumes import VolumeError, VolumeManager
from skiff.api.quantity import QuantityError, parse_quantity
from skiff.api.v1 import core_pb2, meta_pb2
from skiff.client import errors
from skiff.client.client import Client
from skiff.client.events import EventRecorder

log = logging.getLogger(__name__)

RESYNC = 10.0
NORMAL, WARNING = "Normal", "Warning"


@dataclass
class _Worker:
    task: asyncio.Task[None]
    wake: asyncio.Event


class PodSyncer:
    """Runs pods on this node: the kubelet's sync loop."""

    def __init__(self, *, node_name: str, node_ip: str, client: Client,
                 runtime: ContainerRuntime, volumes: VolumeManager, images: ImageManager,
                 probes: ProbeManager, source: ObjectSource, recorder: EventRecorder,
                 crash_backoff: Backoff | None = None) -> None:
        self.node_name = node_name
        self.node_ip = node_ip
        self.client = client
        self.runtime = runtime
        self.volumes = volumes
        self.images = images
        self.probes = probes
        self.source = source
        self.recorder = recorder
        self.crash_backoff = crash_backoff or Backoff()
        self.pods: dict[str, core_pb2.Pod] = {}
        self._workers: dict[str, _Worker] = {}
        self._containers: dict[str, list[ContainerInfo]] = {}  # by pod uid, from relist
        self._snapshot: dict[str, frozenset[tuple[str, str]]] = {}
        self._statuses: dict[str, bytes] = {}
        self._confirmed: set[str] = set()

    # ---- inputs ----

    def pod_updated(self, pod: core_pb2.Pod) -> None:
        self.pods[pod.metadata.uid] = pod
        self.wake(pod.metadata.uid)

    def pod_deleted(self, pod: core_pb2.Pod) -> None:
        self.pods.pop(pod.metadata.uid, None)
        self.wake(pod.metadata.uid)

    def wake(self, uid: str) -> None:
        worker = self._workers.get(uid)
        if worker is None or worker.task.done():
            event = asyncio.Event()
            task = asyncio.create_task(self._work(uid, event), name=f"pod-{uid[:8]}")
            worker = self._workers[uid] = _Worker(task, event)
        worker.wake.set()

    async def relist(self) -> None:
        """One look at the runtime (the kubelet's PLEG): wakes every pod whose containers
        changed state, including pods this kubelet no longer knows (orphans)."""
        infos = await self._own_containers()
        grouped: dict[str, list[ContainerInfo]] = {}
        for info in infos:
            grouped.setdefault(info.pod_uid, []).append(info)
        self._containers = grouped
        for uid in set(grouped) | set(self._snapshot):
            now = frozenset((i.id, i.state.value) for i in grouped.get(uid, ()))
            if now != self._snapshot.get(uid):
                self._snapshot[uid] = now
                self.wake(uid)

    async def stop(self) -> None:
        for worker in self._workers.values():
            worker.task.cancel()
        for worker in self._workers.values():
            with contextlib.suppress(asyncio.CancelledError):
                await worker.task

    # ---- the worker ----

    async def _work(self, uid: str, wake: asyncio.Event) -> None:
        timeout = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout)
            wake.clear()
            try:
                retry, done = await self.sync(uid)
            except (RuntimeError_, errors.ApiError) as err:
                log.warning("pod %s: sync failed: %s", self._describe(uid), err)
                retry, done = 2.0, False
            except Exception:
                log.exception("pod %s: sync failed", self._describe(uid))
                retry, done = 5.0, False
            if done:
                self._workers.pop(uid, None)
                return
            timeout = min(retry if retry is not None else RESYNC, RESYNC)

    def _describe(self, uid: str) -> str:
        pod = self.pods.get(uid)
        return f"{pod.metadata.namespace}/{pod.metadata.name}" if pod else uid

    async def _own_containers(self) -> list[ContainerInfo]:
        return [i for i in await self.runtime.list_containers()
                if i.labels.get(LABEL_NODE) == self.node_name]

    async def _runtime_state(self, uid: str) -> tuple[list[ContainerInfo], list[ContainerInfo]]:
        infos = [i for i in await self._own_containers() if i.pod_uid == uid]
        return [i for i in infos if i.is_sandbox], [i for i in infos if not i.is_sandbox]

    async def sync(self, uid: str) -> tuple[float | None, bool]:
        """Brings one pod one step closer to its spec. Returns (seconds until it wants to
        sync again, whether its worker is done)."""
        pod = self.pods.get(uid)
        sandboxes, containers = await self._runtime_state(uid)
        if pod is None:
            await self._kill_everything(uid, sandboxes + containers, grace=None)
            await self.volumes.teardown(uid)
            self.probes.remove_pod(uid)
            self._forget(uid)
            return None, True
        if pod.metadata.HasField("deletion_timestamp"):
            return await self._terminate(pod, sandboxes, containers)
        actions = planning.plan_pod(pod, sandboxes, containers,
                                    liveness_failed=self.probes.liveness_failed,
                                    backoff_remaining=self.crash_backoff.remaining_since)
        waiting = dict(actions.waiting)
        await self._execute(pod, actions, containers, waiting)
        sandboxes, containers = await self._runtime_state(uid)
        self.probes.update(pod, containers, pod_ip=self._pod_ip(pod, sandboxes))
        await self._write_status(pod, sandboxes, containers, waiting)
        return actions.retry_after, False

    async def _execute(self, pod: core_pb2.Pod, actions: planning.PodActions,
                       containers: list[ContainerInfo],
                       waiting: dict[str, tuple[str, str]]) -> None:
        by_id = {c.id: c for c in containers}
        grace = _grace(pod)
        await asyncio.gather(*(self._kill(pod, by_id[cid], reason, grace)
                               for cid, reason in actions.kill.items() if cid in by_id))
        for cid in actions.remove:
            await self.runtime.remove_container(cid)
        try:
            paths = await self.volumes.setup(pod)
        except (EnvError, VolumeError, OSError) as err:
            for c in [*pod.spec.init_containers, *pod.spec.containers]:
                waiting.setdefault(c.name, ("ContainerCreating", ""))
            self.recorder.event(pod, WARNING, "FailedMount",
                                f"MountVolume.SetUp failed: {err}")
            return
        sandbox_id = actions.sandbox_id
        if actions.create_sandbox:
            try:
                sandbox_id = await self.runtime.run_sandbox(self._sandbox_config(
                    pod, actions.sandbox_attempt))
            except RuntimeError_ as err:
                self.recorder.event(pod, WARNING, "FailedCreatePodSandBox",
                                    f"Failed to create pod sandbox: {err.message}")
                for c in [*pod.spec.init_containers, *pod.spec.containers]:
                    waiting.setdefault(c.name, ("ContainerCreating", ""))
                return
        sandbox = await self.runtime.container_status(sandbox_id)
        pod_ip = self.node_ip if pod.spec.host_network else sandbox.ip
        for container, attempt, init in actions.start:
            await self._start(pod, container, attempt, init, sandbox_id, pod_ip, paths, waiting)
            if init:
                break  # init containers run one at a time

    async def _start(self, pod: core_pb2.Pod, container: core_pb2.Container, attempt: int,
                     init: bool, sandbox_id: str, pod_ip: str, paths: dict[str, str],
                     waiting: dict[str, tuple[str, str]]) -> bool:
        name = container.name
        ref = _container_ref(pod, container, init)
        try:
            pulled = await self.images.ensure(pod, container)
        except RuntimeError_ as err:
            waiting[name] = (err.reason, err.message)
            kind = "BackOff" if err.reason == "ImagePullBackOff" else "Failed"
            self.recorder.event(ref, WARNING if kind == "Failed" else NORMAL, kind, err.message)
            return False
        if pulled.pulled:
            self.recorder.event(ref, NORMAL, "Pulled",
                                f'Successfully pulled image "{container.image}"')
        try:
            env, warnings = build_env(pod, container, self.source, pod_ip=pod_ip,
                                      host_ip=self.node_ip)
            command, args = expand_command(container, dict(env))
            config = self._container_config(pod, container, attempt, init, env, command,
                                            args, paths)
        except (EnvError, VolumeError) as err:
            waiting[name] = ("CreateContainerConfigError", str(err))
            self.recorder.event(ref, WARNING, "Failed", f"Error: {err}")
            return False
        for warning in warnings:
            self.recorder.event(pod, WARNING, "InvalidEnvironmentVariableNames", warning)
        sandbox_config = self._sandbox_config(pod, 0)
        try:
            cid = await self.runtime.create_container(sandbox_id, config, sandbox_config)
        except RuntimeError_ as err:
            waiting[name] = (err.reason, err.message)
            self.recorder.event(ref, WARNING, "Failed", f"Error: {err.message}")
            return False
        self.recorder.event(ref, NORMAL, "Created", f"Created container {name}")
        if attempt > 0:
            self.crash_backoff.next(planning.backoff_key(pod.metadata.uid, name))
        try:
            await self.runtime.start_container(cid)
        except RuntimeError_ as err:
            self.recorder.event(ref, WARNING, "Failed", f"Error: {err.message}")
            return False
        self.recorder.event(ref, NORMAL, "Started", f"Started container {name}")
        return True

    def _sandbox_config(self, pod: core_pb2.Pod, attempt: int) -> SandboxConfig:
        ports = tuple(PortMapping(p.container_port, p.host_port, p.protocol or "TCP", p.host_ip)
                      for c in pod.spec.containers for p in c.ports if p.host_port)
        return SandboxConfig(
            pod_uid=pod.metadata.uid, namespace=pod.metadata.namespace,
            name=pod.metadata.name, attempt=attempt,
            hostname=pod.spec.hostname or pod.metadata.name[:63],
            host_network=pod.spec.host_network, port_mappings=ports,
            labels={**_pod_labels(pod), LABEL_NODE: self.node_name})

    def _container_config(self, pod: core_pb2.Pod, container: core_pb2.Container,
                          attempt: int, init: bool, env: list[tuple[str, str]],
                          command: list[str], args: list[str], paths: dict[str, str]
                          ) -> ContainerConfig:
        limits, requests = container.resources.limits, container.resources.requests
        sc, psc = container.security_context, pod.spec.security_context
        labels = {**_pod_labels(pod), LABEL_NODE: self.node_name,
                  LABEL_CONTAINER_NAME: container.name,
                  LABEL_ATTEMPT: str(attempt), LABEL_SPEC_HASH: planning.spec_hash(container)}
        if init:
            labels[LABEL_INIT] = "true"
        return ContainerConfig(
            name=container.name, image=container.image, command=tuple(command),
            args=tuple(args), env=tuple(env), working_dir=container.working_dir,
            mounts=tuple(self.volumes.mounts_for(pod, container, paths)),
            cpu_limit_millis=_millis(limits.get("cpu")),
            cpu_request_millis=_millis(requests.get("cpu")),
            memory_limit_bytes=_bytes(limits.get("memory")),
            run_as_user=sc.run_as_user if sc.HasField("run_as_user") else
            (psc.run_as_user if psc.HasField("run_as_user") else None),
            run_as_group=sc.run_as_group if sc.HasField("run_as_group") else
            (psc.run_as_group if psc.HasField("run_as_group") else None),
            privileged=sc.privileged, cap_add=tuple(sc.capabilities.add),
            cap_drop=tuple(sc.capabilities.drop),
            read_only_rootfs=sc.read_only_root_filesystem, tty=container.tty,
            stdin=container.stdin, labels=labels)

    # ---- stopping ----

    async def _kill(self, pod: core_pb2.Pod | None, info: ContainerInfo, reason: str,
                    grace: float) -> None:
        if pod is not None and not info.is_sandbox:
            spec = next((c for c in pod.spec.containers if c.name == info.name), None)
            reason = self.probes.kill_reason(info.id) or reason
            self.recorder.event(_container_ref(pod, spec, False) if spec else pod, NORMAL,
                                "Killing", f"Stopping container {info.name}"
                                + (f": {reason}" if reason else ""))
            if spec is not None and spec.lifecycle.pre_stop.HasField("exec") and \
                    info.state == State.RUNNING:
                started = time.monotonic()
                with contextlib.suppress(RuntimeError_):
                    await self.runtime.exec_sync(info.id,
                                                 list(spec.lifecycle.pre_stop.exec.command),
                                                 timeout=grace)
                grace = max(grace - (time.monotonic() - started), 2.0)
        if info.state == State.RUNNING:
            await self.runtime.stop_container(info.id, grace)

    async def _kill_everything(self, uid: str, infos: list[ContainerInfo],
                               grace: float | None) -> None:
        pod = self.pods.get(uid)
        apps = [i for i in infos if not i.is_sandbox]
        await asyncio.gather(*(self._kill(pod, i, "", grace if grace is not None else
                                          float(i.labels.get(LABEL_GRACE, "30") or 30))
                               for i in apps))
        for info in infos:
            if info.is_sandbox:
                await self.runtime.stop_sandbox(info.id)
        for info in apps:
            await self.runtime.remove_container(info.id)
        for info in infos:
            if info.is_sandbox:
                await self.runtime.remove_sandbox(info.id)

    async def _terminate(self, pod: core_pb2.Pod, sandboxes: list[ContainerInfo],
                         containers: list[ContainerInfo]) -> tuple[float | None, bool]:
        """Graceful deletion: preStop, SIGTERM, the grace period, SIGKILL; then the volumes
        go and the apiserver is told the pod is gone."""
        meta = pod.metadata
        remaining = meta.deletion_timestamp.seconds - time.time()
        grace = max(min(remaining, float(meta.deletion_grace_period_seconds)), 0.0)
        await self._kill_everything(meta.uid, sandboxes + containers, grace)
        await self.volumes.teardown(meta.uid)
        self.probes.remove_pod(meta.uid)
        if meta.uid not in self._confirmed:
            with contextlib.suppress(errors.NotFound, errors.FailedPrecondition):
                await self.client.delete(core_pb2.Pod, meta.name, meta.namespace,
                                         grace_period=0, uid=meta.uid)
            self._confirmed.add(meta.uid)
        return RESYNC, False

    def _forget(self, uid: str) -> None:
        self._statuses.pop(uid, None)
        self._snapshot.pop(uid, None)
        self._confirmed.discard(uid)
        self.crash_backoff.forget_prefix(f"{uid}/")

    # ---- status ----

    def _pod_ip(self, pod: core_pb2.Pod, sandboxes: list[ContainerInfo]) -> str:
        if pod.spec.host_network:
            return self.node_ip
        running = [s for s in sandboxes if s.state == State.RUNNING]
        return running[0].ip if running else ""

    async def _write_status(self, pod: core_pb2.Pod, sandboxes: list[ContainerInfo],
                            containers: list[ContainerInfo],
                            waiting: dict[str, tuple[str, str]]) -> None:
        running = [s for s in sandboxes if s.state == State.RUNNING]
        status = build_pod_status(pod, infos=containers, waiting=waiting,
                                  ready=self.probes.ready, started=self.probes.started,
                                  pod_ip=self._pod_ip(pod, sandboxes), host_ip=self.node_ip,
                                  now=int(time.time()), sandbox_ready=bool(running))
        fingerprint = status.SerializeToString(deterministic=True)
        if self._statuses.get(pod.metadata.uid) == fingerprint:
            return
        updated = core_pb2.Pod()
        updated.CopyFrom(pod)
        updated.status.CopyFrom(status)
        updated.metadata.resource_version = ""  # status is ours alone: last write wins
        try:
            await self.client.update_status(updated)
        except errors.NotFound:
            return
        self._statuses[pod.metadata.uid] = fingerprint


def _grace(pod: core_pb2.Pod) -> float:
    spec = pod.spec
    return float(spec.termination_grace_period_seconds
                 if spec.HasField("termination_grace_period_seconds") else 30)


def _pod_labels(pod: core_pb2.Pod) -> dict[str, str]:
    return {LABEL_POD_UID: pod.metadata.uid, LABEL_POD_NAMESPACE: pod.metadata.namespace,
            LABEL_POD_NAME: pod.metadata.name, LABEL_GRACE: str(int(_grace(pod)))}


def _container_ref(pod: core_pb2.Pod, container: core_pb2.Container | None,
                   init: bool) -> meta_pb2.ObjectReference:
    ref = meta_pb2.ObjectReference(kind="Pod", namespace=pod.metadata.namespace,
                                   name=pod.metadata.name, uid=pod.metadata.uid,
                                   api_version="v1")
    if container is not None:
        field = "initContainers" if init else "containers"
        ref.field_path = f"spec.{field}{{{container.name}}}"
    return ref


def _millis(q: Message | None) -> int:
    if q is None or not getattr(q, "value", ""):
        return 0
    try:
        return parse_quantity(q.value).milli_value()  # type: ignore[attr-defined]
    except QuantityError:
        return 0


def _bytes(q: Message | None) -> int:
    if q is None or not getattr(q, "value", ""):
        return 0
    try:
        return parse_quantity(q.value).value()  # type: ignore[attr-defined]
    except QuantityError:
        return 0

