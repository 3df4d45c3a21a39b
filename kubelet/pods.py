"""Pod workers: one serialized worker per pod carries out its plan (kubelet/plan.py).

Every pod bound to this node gets a worker task. A worker wakes when the pod's spec or
metadata changes (informer; a status-only update, such as the echo of our own status
write, does not count), when its containers change (the relist, `relist`), when a probe
result changes, when a Secret or ConfigMap it uses changes, when a back-off ends, and at
least every RESYNC seconds; each wake runs `sync` once, so the latest state always wins
and one pod is never synced twice at once.

The runtime's state comes from a cache that every list of the runtime refreshes (the
kubelet's PLEG cache): a sync reads it when the list behind it started after this pod's
last change to the runtime, and lists afresh otherwise, so a sync never acts on a picture
older than what it did itself, and a quiet pod costs no runtime call at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass

from google.protobuf.message import Message

from kubelet import plan as planning
from kubelet.backoff import Backoff
from kubelet.env import EnvError, MissingReference, ObjectSource, build_env, expand_command
from kubelet.images import ImageBackOff, ImageManager
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
    ImagePullError,
    PortMapping,
    RuntimeError_,
    SandboxConfig,
    State,
)
from kubelet.status import TERMINAL_PHASES, build_pod_status
from kubelet.volumes import VolumeError, VolumeManager
from skiff.api.quantity import QuantityError, parse_quantity
from skiff.api.v1 import core_pb2, meta_pb2
from skiff.client import errors
from skiff.client.client import Client
from skiff.client.events import Recorder

log = logging.getLogger(__name__)

RESYNC = 10.0
NORMAL, WARNING = "Normal", "Warning"
# After a container starts, and while init containers run, the relist looks every
# HOT_RELIST_PERIOD seconds for HOT_WINDOW seconds: what exits soon after starting (init
# containers, short jobs, crash loops) is noticed at once, not up to a relist period later.
HOT_RELIST_PERIOD = 0.2
HOT_WINDOW = 3.0
# A failed pull shows ErrImagePull; the pod is synced again this soon to show that it
# waits (ImagePullBackOff), and again when the back-off ends.
IMAGE_BACKOFF_REPORT_DELAY = 1.0
# How many pods may be starting containers at once. The engine does the work of a start
# (a sandbox's network, a container's namespaces and cgroups) at a rate of its own: with
# every pod of a burst starting at once, all of them finish near the end; a few at a time,
# in arrival order, they finish one after another, in about the same total time.
START_CONCURRENCY = 4


@dataclass
class _Worker:
    task: asyncio.Task[None]
    wake: asyncio.Event


class PodSyncer:
    """Runs pods on this node: the kubelet's sync loop."""

    def __init__(self, *, node_name: str, node_ip: str, client: Client,
                 runtime: ContainerRuntime, volumes: VolumeManager, images: ImageManager,
                 probes: ProbeManager, source: ObjectSource, recorder: Recorder,
                 crash_backoff: Backoff | None = None,
                 start_concurrency: int = START_CONCURRENCY) -> None:
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
        # The runtime's containers by pod uid, from the newest list, which started at
        # monotonic time _listed_at; _changed[uid]: when this kubelet last changed the
        # pod's containers (a list must start after that to be current for the pod).
        self._containers: dict[str, list[ContainerInfo]] = {}
        self._listed_at = -math.inf
        self._changed: dict[str, float] = {}
        self._snapshot: dict[str, frozenset[tuple[str, str]]] = {}
        self._hot_until = -math.inf
        self._start_slots = asyncio.Semaphore(start_concurrency)
        self._statuses: dict[str, bytes] = {}
        self._confirmed: set[str] = set()
        # (kind, namespace, name) of a Secret or ConfigMap -> uids of the pods using it.
        self._users: dict[tuple[str, str, str], set[str]] = {}
        self._uses: dict[str, set[tuple[str, str, str]]] = {}

    # ---- inputs ----

    def pod_updated(self, pod: core_pb2.Pod) -> None:
        uid = pod.metadata.uid
        old = self.pods.get(uid)
        self.pods[uid] = pod
        if old is not None and _desired(old) == _desired(pod):
            # Only the status changed (mostly the echo of our own write): the kubelet owns
            # the status, and nothing it must do changed (Kubernetes ignores these too).
            return
        self._index_references(uid, referenced_objects(pod))
        self.wake(uid)

    def pod_deleted(self, pod: core_pb2.Pod) -> None:
        self.pods.pop(pod.metadata.uid, None)
        self._index_references(pod.metadata.uid, set())
        self.wake(pod.metadata.uid)

    def object_changed(self, kind: str, namespace: str, name: str) -> None:
        """A Secret or ConfigMap was added, changed or deleted: the pods that use it sync
        now (their volume files follow; one waiting for it starts)."""
        for uid in list(self._users.get((kind, namespace, name), ())):
            self.wake(uid)

    def _index_references(self, uid: str, refs: set[tuple[str, str, str]]) -> None:
        old = self._uses.get(uid, set())
        if old == refs:
            return
        for ref in old - refs:
            users = self._users.get(ref)
            if users is not None:
                users.discard(uid)
                if not users:
                    del self._users[ref]
        for ref in refs - old:
            self._users.setdefault(ref, set()).add(uid)
        if refs:
            self._uses[uid] = refs
        else:
            self._uses.pop(uid, None)

    async def prime(self) -> None:
        """Fills the runtime cache, so the first syncs after a start share one list."""
        await self._list(wake=False)

    async def clean_orphaned_volumes(self) -> None:
        """Tears down the volume directories of pods this node no longer runs and that
        have no containers left (a kubelet that died half-way through a teardown). Pods
        with containers are the relist's: it stops them first, then tears down. Call
        after `prime` and once the pods are known."""
        if self._listed_at == -math.inf:
            return  # the runtime did not answer: which pods have containers is unknown
        for uid in self.volumes.orphaned_pod_dirs(set(self.pods) | set(self._containers)):
            try:
                await self.volumes.teardown(uid)
            except (VolumeError, OSError) as err:
                log.warning("pod %s: cannot clean up orphaned volumes: %s", uid, err)

    def wake(self, uid: str) -> None:
        worker = self._workers.get(uid)
        if worker is None or worker.task.done():
            event = asyncio.Event()
            task = asyncio.create_task(self._work(uid, event), name=f"pod-{uid[:8]}")
            worker = self._workers[uid] = _Worker(task, event)
        worker.wake.set()

    async def relist(self) -> None:
        """One look at the runtime (the kubelet's PLEG): wakes every pod whose containers
        changed state since the last relist, including pods this kubelet no longer knows
        (orphans)."""
        await self._list(wake=True)

    def relist_delay(self, period: float) -> float:
        """Seconds until the next relist: `period`, or HOT_RELIST_PERIOD soon after a
        container was started or stopped and while an init container runs."""
        if time.monotonic() < self._hot_until or any(
                i.state == State.RUNNING and i.labels.get(LABEL_INIT) == "true"
                for infos in self._containers.values() for i in infos):
            return min(HOT_RELIST_PERIOD, period)
        return period

    async def _list(self, *, wake: bool) -> None:
        """Lists the runtime into the cache; with `wake`, wakes the pods whose containers
        changed since the last such list."""
        started = time.monotonic()
        infos = await self._own_containers()
        grouped: dict[str, list[ContainerInfo]] = {}
        for info in infos:
            grouped.setdefault(info.pod_uid, []).append(info)
        if started > self._listed_at:  # else a list that started later has landed already
            self._containers, self._listed_at = grouped, started
        if not wake:
            return
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
        """The pod's sandboxes and containers, from the cache when it is current for the
        pod (listed after our last change to them), else from a new list."""
        if self._listed_at <= self._changed.get(uid, -math.inf) or self._listed_at == -math.inf:
            await self._list(wake=False)
        infos = self._containers.get(uid, [])
        return [i for i in infos if i.is_sandbox], [i for i in infos if not i.is_sandbox]

    def _mark_changed(self, uid: str) -> None:
        """This kubelet has just changed the pod's containers (call it once the change is
        done, whether it worked or not): only a list that starts after now shows them as
        they are, and the relist watches closely for a while."""
        now = time.monotonic()
        self._changed[uid] = now
        self._hot_until = now + HOT_WINDOW

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
        self._report_back_offs(pod, waiting)
        retry = await self._execute(pod, actions, sandboxes, containers, waiting)
        sandboxes, containers = await self._runtime_state(uid)  # lists if _execute acted
        self.probes.update(pod, containers, pod_ip=self._pod_ip(pod, sandboxes))
        await self._write_status(pod, sandboxes, containers, waiting)
        return _earliest(actions.retry_after, retry), False

    def _report_back_offs(self, pod: core_pb2.Pod, waiting: dict[str, tuple[str, str]]) -> None:
        """Kubernetes' BackOff event for each container held back by its crash loop (the
        recorder folds the repeats into a count)."""
        init = {c.name for c in pod.spec.init_containers}
        for name, (reason, _) in waiting.items():
            if reason != "CrashLoopBackOff":
                continue
            spec = next((c for c in [*pod.spec.init_containers, *pod.spec.containers]
                         if c.name == name), None)
            meta = pod.metadata
            self.recorder.event(
                _container_ref(pod, spec, name in init), WARNING, "BackOff",
                f"Back-off restarting failed container {name} in pod "
                f"{meta.name}_{meta.namespace}({meta.uid})")

    async def _execute(self, pod: core_pb2.Pod, actions: planning.PodActions,
                       sandboxes: list[ContainerInfo], containers: list[ContainerInfo],
                       waiting: dict[str, tuple[str, str]]) -> float | None:
        """Carries out the plan; returns when the pod wants a sync again (None: no
        particular time)."""
        uid = pod.metadata.uid
        retry: float | None = None
        by_id = {c.id: c for c in containers}
        kills = [(by_id[cid], reason) for cid, reason in actions.kill.items() if cid in by_id]
        if kills or actions.remove or actions.stop_sandboxes:
            grace = _grace(pod)
            try:
                await asyncio.gather(*(self._kill(pod, info, reason, grace)
                                       for info, reason in kills))
                for cid in actions.remove:
                    await self.runtime.remove_container(cid)
                for sid in actions.stop_sandboxes:
                    await self.runtime.stop_sandbox(sid)
            finally:
                self._mark_changed(uid)
            if kills:
                retry = 0.0  # what was stopped may have to start again: see at once
        if not actions.start and not actions.create_sandbox:
            # Nothing to start: only keep secret and configMap files current.
            await self._refresh_volumes(pod)
            return retry
        try:
            paths = await self.volumes.setup(pod)
        except (EnvError, VolumeError, OSError) as err:
            for c in [*pod.spec.init_containers, *pod.spec.containers]:
                waiting.setdefault(c.name, ("ContainerCreating", ""))
            volume = err.volume if isinstance(err, MissingReference) else None
            where = f' for volume "{volume}"' if volume else ""
            # Kubernetes' wording, space before the colon included.
            self.recorder.event(pod, WARNING, "FailedMount",
                                f"MountVolume.SetUp failed{where} : {err}")
            return retry
        async with _Slot(self._start_slots) as slot:
            return _earliest(retry, await self._start_all(pod, actions, sandboxes,
                                                          containers, waiting, paths, slot))

    async def _start_all(self, pod: core_pb2.Pod, actions: planning.PodActions,
                         sandboxes: list[ContainerInfo], containers: list[ContainerInfo],
                         waiting: dict[str, tuple[str, str]], paths: dict[str, str],
                         slot: _Slot) -> float | None:
        """The sandbox (when the plan needs a new one), the images, then the containers."""
        uid = pod.metadata.uid
        retry: float | None = None
        sandbox_id = actions.sandbox_id
        if actions.create_sandbox:
            try:
                sandbox_id = await self.runtime.run_sandbox(self._sandbox_config(
                    pod, actions.sandbox_attempt))
            except RuntimeError_ as err:
                self._mark_changed(uid)
                self.recorder.event(pod, WARNING, "FailedCreatePodSandBox",
                                    f"Failed to create pod sandbox: {err.message}")
                for c in [*pod.spec.init_containers, *pod.spec.containers]:
                    waiting.setdefault(c.name, ("ContainerCreating", ""))
                return None
            self._mark_changed(uid)
            sandbox = await self.runtime.container_status(sandbox_id)
        else:
            sandbox = next(s for s in sandboxes if s.id == sandbox_id)
        pod_ip = self.node_ip if pod.spec.host_network else sandbox.ip
        starts = actions.start[:1] if actions.start and actions.start[0][2] else actions.start
        # Images first, all at once (checks are cheap but not free; a pull is slow and
        # gives up the start slot meanwhile); then the containers, in order.
        pulling = _PullStatus(self, pod, sandbox, containers, waiting, slot)
        images = await asyncio.gather(*(self._ensure_image(pod, c, init, waiting, pulling)
                                        for c, _, init in starts))
        await slot.acquire()
        for (container, attempt, init), image_retry in zip(starts, images, strict=True):
            if image_retry is None:
                try:
                    await self._start(pod, container, attempt, init, sandbox_id, pod_ip,
                                      paths, waiting)
                finally:
                    self._mark_changed(uid)
            else:
                retry = _earliest(retry, image_retry)
        return retry

    async def _refresh_volumes(self, pod: core_pb2.Pod) -> None:
        if not any(v.HasField("secret") or v.HasField("config_map") for v in pod.spec.volumes):
            return
        try:
            await self.volumes.refresh(pod)
        except (VolumeError, OSError) as err:
            log.warning("pod %s: volume refresh failed: %s", self._describe(pod.metadata.uid),
                        err)

    async def _ensure_image(self, pod: core_pb2.Pod, container: core_pb2.Container,
                            init: bool, waiting: dict[str, tuple[str, str]],
                            pulling: _PullStatus) -> float | None:
        """Gets the container's image onto the node. None when it is there; else (the
        container cannot start now, its waiting reason is set) the seconds until the pod
        should be synced again."""
        ref = _container_ref(pod, container, init)

        async def on_pull() -> None:
            self.recorder.event(ref, NORMAL, "Pulling", f'Pulling image "{container.image}"')
            await pulling.report()

        try:
            pulled = await self.images.ensure(pod, container, on_pull=on_pull)
        except ImageBackOff as err:
            waiting[container.name] = (err.reason, err.message)
            self.recorder.event(ref, NORMAL, "BackOff", f'Back-off pulling image '
                                f'"{container.image}"')
            self.recorder.event(ref, WARNING, "Failed", f"Error: {err.reason}")
            return max(err.remaining, 0.0)
        except RuntimeError_ as err:
            waiting[container.name] = (err.reason, err.message)
            self.recorder.event(ref, WARNING, "Failed", err.message)
            self.recorder.event(ref, WARNING, "Failed", f"Error: {err.reason}")
            # After a failed pull: show ErrImagePull for a moment, then that it waits
            # (ImagePullBackOff). Anything else (ErrImageNeverPull, the engine failing) is
            # tried again at the next resync.
            return IMAGE_BACKOFF_REPORT_DELAY if isinstance(err, ImagePullError) else RESYNC
        if pulled.pulled:
            self.recorder.event(ref, NORMAL, "Pulled",
                                f'Successfully pulled image "{container.image}"')
        return None

    async def _start(self, pod: core_pb2.Pod, container: core_pb2.Container, attempt: int,
                     init: bool, sandbox_id: str, pod_ip: str, paths: dict[str, str],
                     waiting: dict[str, tuple[str, str]]) -> bool:
        name = container.name
        ref = _container_ref(pod, container, init)
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
            # The attempt counts (the engine keeps it as exited: lastState says how); until
            # it is tried again, the container waits with the reason (RunContainerError).
            waiting[name] = (err.reason, err.message)
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
        if not infos:
            return
        try:
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
        finally:
            self._mark_changed(uid)

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
        self._changed.pop(uid, None)
        self._confirmed.discard(uid)
        self.crash_backoff.forget_prefix(f"{uid}/")
        self.images.forget_pod(uid)

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
        pod_ip = self._pod_ip(pod, sandboxes)
        status = build_pod_status(pod, infos=containers, waiting=waiting,
                                  ready=self.probes.ready, started=self.probes.started,
                                  pod_ip=pod_ip, host_ip=self.node_ip,
                                  now=int(time.time()), sandbox_ready=bool(running))
        if not pod_ip and status.phase in TERMINAL_PHASES and pod.status.pod_ip:
            # A finished pod's sandbox is stopped; it keeps the IP it had, as in Kubernetes.
            status.pod_ip = pod.status.pod_ip
            status.pod_ips.extend(pod.status.pod_ips)
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


class _Slot:
    """One of the start slots, held for a pod's start; `release` gives it up while the pod
    waits for something slow (a pull), `acquire` takes it again (both idempotent)."""

    def __init__(self, slots: asyncio.Semaphore) -> None:
        self._slots = slots
        self._held = False

    async def acquire(self) -> None:
        if not self._held:
            await self._slots.acquire()
            self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots.release()

    async def __aenter__(self) -> _Slot:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class _PullStatus:
    """Before the first pull of a sync: gives up the start slot, and writes the pod's
    status, so that while images come (which can take minutes) other pods start and this
    one shows ContainerCreating and its IP, not nothing."""

    def __init__(self, syncer: PodSyncer, pod: core_pb2.Pod, sandbox: ContainerInfo,
                 containers: list[ContainerInfo], waiting: dict[str, tuple[str, str]],
                 slot: _Slot) -> None:
        self._syncer = syncer
        self._pod = pod
        self._sandbox = sandbox
        self._containers = containers
        self._waiting = waiting
        self._slot = slot
        self._reported = False

    async def report(self) -> None:
        self._slot.release()
        if self._reported:
            return
        self._reported = True
        try:
            await self._syncer._write_status(self._pod, [self._sandbox], self._containers,
                                             self._waiting)
        except errors.ApiError as err:
            log.warning("pod %s: status update failed: %s",
                        self._syncer._describe(self._pod.metadata.uid), err)


def _earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


def _desired(pod: core_pb2.Pod) -> bytes:
    """What the kubelet acts on: the pod without its status and resourceVersion."""
    copy = core_pb2.Pod()
    copy.metadata.CopyFrom(pod.metadata)
    copy.metadata.resource_version = ""
    copy.spec.CopyFrom(pod.spec)
    return copy.SerializeToString(deterministic=True)


def referenced_objects(pod: core_pb2.Pod) -> set[tuple[str, str, str]]:
    """The Secrets and ConfigMaps the pod uses (volumes, env, envFrom, image pull
    secrets), as (kind, namespace, name)."""
    ns = pod.metadata.namespace
    refs: set[tuple[str, str, str]] = set()
    for volume in pod.spec.volumes:
        if volume.HasField("secret"):
            refs.add(("Secret", ns, volume.secret.secret_name))
        elif volume.HasField("config_map"):
            refs.add(("ConfigMap", ns, volume.config_map.name))
    for ref in pod.spec.image_pull_secrets:
        refs.add(("Secret", ns, ref.name))
    for container in [*pod.spec.init_containers, *pod.spec.containers]:
        for source in container.env_from:
            if source.HasField("secret_ref"):
                refs.add(("Secret", ns, source.secret_ref.name))
            if source.HasField("config_map_ref"):
                refs.add(("ConfigMap", ns, source.config_map_ref.name))
        for var in container.env:
            if var.value_from.HasField("secret_key_ref"):
                refs.add(("Secret", ns, var.value_from.secret_key_ref.name))
            if var.value_from.HasField("config_map_key_ref"):
                refs.add(("ConfigMap", ns, var.value_from.config_map_key_ref.name))
    return refs


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

