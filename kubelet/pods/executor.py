"""Carries out a pod's plan (kubelet/plan.py) on the runtime: the one path by which the
kubelet changes what runs, whether it starts a pod or stops it.

In order: report what waits (the crash-loop back-offs), kill containers (preStop,
SIGTERM, the grace period, SIGKILL), stop sandboxes, remove containers and sandboxes,
then, for a pod that stops, tear down its volumes and confirm its deletion; for a pod that
runs, set up its volumes, then the sandbox when the plan needs a new one, the images,
and the containers, in order. A few pods start at a time (START_CONCURRENCY).

A start gives way to a stop: when the pod is deleted meanwhile, its StopRequest
(kubelet/pods/stop_request.py) makes the start give up before its next action and while
it waits for a start slot or an image, and `execute` raises StartAbandoned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from kubelet.dns import ClusterDns, host_dns, pod_dns
from kubelet.env import EnvError, MissingReference, ObjectSource, build_env, expand_command
from kubelet.images import ImageBackOff, ImageManager, always_pull_warning
from kubelet.network.state import NETWORK_NOT_READY, NETWORK_NOT_READY_MESSAGE, NetworkNotReady
from kubelet.plan import DEFAULT_GRACE, PodActions, backoff_key
from kubelet.pods.configs import container_config, container_ref, sandbox_config
from kubelet.pods.runtime_cache import RuntimeCache
from kubelet.pods.status_writer import StatusWriter
from kubelet.pods.stop_request import StopRequest
from kubelet.pods.workers import RESYNC
from kubelet.probes import ProbeManager
from kubelet.runtime import (
    ContainerInfo,
    ContainerRuntime,
    ImagePullError,
    RuntimeError_,
    State,
)
from kubelet.serviceenv import service_env
from kubelet.volumes import VolumeError, VolumeManager
from skiff.api.v1 import core_pb2
from skiff.client import errors
from skiff.client.backoff import Backoff
from skiff.client.clock import Clock
from skiff.client.events import NORMAL, WARNING, Recorder

log = logging.getLogger(__name__)

# A failed pull shows ErrImagePull; the pod is synced again this soon to show that it
# waits (ImagePullBackOff), and again when the back-off ends.
IMAGE_BACKOFF_REPORT_DELAY = 1.0
# How many pods may be starting containers at once. The engine does the work of a start
# (a sandbox's network, a container's namespaces and cgroups) at a rate of its own: with
# every pod of a burst starting at once, all of them finish near the end; a few at a time,
# in arrival order, they finish one after another, in about the same total time.
START_CONCURRENCY = 4
# However long a preStop hook took, a container gets at least this long to stop.
MIN_GRACE_AFTER_PRE_STOP = 2.0

Waiting = dict[str, tuple[str, str]]  # container name -> (reason, message)


class DeletionClient(Protocol):
    """The part of the apiserver's client that confirms a pod's deletion."""

    async def delete(self, kind: type[core_pb2.Pod], name: str, namespace: str = ..., *,
                     grace_period: int | None = ..., uid: str = ...) -> object: ...


class Executor:
    def __init__(self, *, node_name: str, node_ip: str, client: DeletionClient,
                 runtime: ContainerRuntime, cache: RuntimeCache, volumes: VolumeManager,
                 images: ImageManager, probes: ProbeManager, source: ObjectSource,
                 recorder: Recorder, status: StatusWriter, crash_backoff: Backoff,
                 clock: Clock, start_concurrency: int = START_CONCURRENCY,
                 sandbox_network: Callable[[], str] = lambda: "",
                 dns: ClusterDns | None = None,
                 services: Callable[[], Sequence[core_pb2.Service]] = lambda: ()) -> None:
        self._node_name = node_name
        self._node_ip = node_ip
        self._client = client
        self._runtime = runtime
        self._cache = cache
        self._volumes = volumes
        self._images = images
        self._probes = probes
        self._source = source
        self._recorder = recorder
        self._status = status
        self._crash_backoff = crash_backoff
        self._clock = clock
        self._start_slots = asyncio.Semaphore(start_concurrency)
        self._confirmed: set[str] = set()  # pods whose deletion was confirmed
        # The runtime network a new sandbox joins (kubelet/network/); raises
        # NetworkNotReady while the pod network is unavailable.
        self._sandbox_network = sandbox_network
        self._dns = dns or ClusterDns()
        # Every Service the kubelet knows (its informer cache), for the service variables.
        self._services = services

    async def execute(self, uid: str, pod: core_pb2.Pod | None, actions: PodActions,
                      sandboxes: list[ContainerInfo], containers: list[ContainerInfo],
                      waiting: Waiting, stop: StopRequest | None = None) -> float | None:
        """Carries out the plan of pod `uid` (`pod` None: gone from the apiserver). Sets
        `waiting` for the containers that could not start; returns when the pod wants a
        sync again (None: no particular time). Raises StartAbandoned when `stop` is
        requested before the start is done."""
        stop = stop or StopRequest()
        if pod is not None:
            self._report_back_offs(pod, waiting)
        await self._stop(uid, pod, actions, containers)
        if actions.teardown_volumes:
            await self._volumes.teardown(uid)
        if actions.confirm_deletion and pod is not None:
            await self._confirm_deletion(pod)
        if pod is None or actions.teardown_volumes:
            return None
        if not actions.start and not actions.create_sandbox:
            # Nothing to start: only keep secret and configMap files current.
            await self._refresh_volumes(pod)
            return None
        stop.check()
        try:
            paths = await self._volumes.setup(pod)
        except (EnvError, VolumeError, OSError) as err:
            for c in [*pod.spec.init_containers, *pod.spec.containers]:
                waiting.setdefault(c.name, ("ContainerCreating", ""))
            volume = err.volume if isinstance(err, MissingReference) else None
            where = f' for volume "{volume}"' if volume else ""
            # Kubernetes' wording, space before the colon included.
            self._recorder.event(pod, WARNING, "FailedMount",
                                 f"MountVolume.SetUp failed{where} : {err}")
            return None
        async with _Slot(self._start_slots, stop) as slot:
            return await self._start_all(pod, actions, sandboxes, containers, waiting, paths,
                                         slot, stop)

    def forget(self, uid: str) -> None:
        self._confirmed.discard(uid)

    def _report_back_offs(self, pod: core_pb2.Pod, waiting: Waiting) -> None:
        """Kubernetes' BackOff event for each container held back by its crash loop (the
        recorder folds the repeats into a count)."""
        init = {c.name for c in pod.spec.init_containers}
        for name, (reason, _) in waiting.items():
            if reason != "CrashLoopBackOff":
                continue
            spec = next((c for c in [*pod.spec.init_containers, *pod.spec.containers]
                         if c.name == name), None)
            meta = pod.metadata
            self._recorder.event(
                container_ref(pod, spec, name in init), WARNING, "BackOff",
                f"Back-off restarting failed container {name} in pod "
                f"{meta.name}_{meta.namespace}({meta.uid})")

    # ---- stopping ----

    async def _stop(self, uid: str, pod: core_pb2.Pod | None, actions: PodActions,
                    containers: Sequence[ContainerInfo]) -> None:
        by_id = {c.id: c for c in containers}
        kills = [(by_id[cid], reason) for cid, reason in actions.kill.items() if cid in by_id]
        if not (kills or actions.stop_sandboxes or actions.remove or actions.remove_sandboxes):
            return
        try:
            await asyncio.gather(*(self._kill(pod, info, reason,
                                              actions.grace.get(info.id, DEFAULT_GRACE))
                                   for info, reason in kills))
            for sid in actions.stop_sandboxes:
                await self._runtime.stop_sandbox(sid)
            for cid in actions.remove:
                await self._runtime.remove_container(cid)
            for sid in actions.remove_sandboxes:
                await self._runtime.remove_sandbox(sid)
        finally:
            self._cache.mark_changed(uid)

    async def _kill(self, pod: core_pb2.Pod | None, info: ContainerInfo, reason: str,
                    grace: float) -> None:
        if pod is not None:
            spec = next((c for c in pod.spec.containers if c.name == info.name), None)
            reason = self._probes.kill_reason(info.id) or reason
            self._recorder.event(container_ref(pod, spec, False) if spec else pod, NORMAL,
                                 "Killing", f"Stopping container {info.name}"
                                 + (f": {reason}" if reason else ""))
            if spec is not None and spec.lifecycle.pre_stop.HasField("exec") and \
                    info.state == State.RUNNING:
                started = self._clock.now()
                with contextlib.suppress(RuntimeError_):
                    await self._runtime.exec_sync(info.id,
                                                  list(spec.lifecycle.pre_stop.exec.command),
                                                  timeout=grace)
                grace = max(grace - (self._clock.now() - started), MIN_GRACE_AFTER_PRE_STOP)
        if info.state == State.RUNNING:
            await self._runtime.stop_container(info.id, grace)

    async def _confirm_deletion(self, pod: core_pb2.Pod) -> None:
        """Tells the apiserver that the pod's containers are gone, once: the final delete
        of its graceful deletion."""
        meta = pod.metadata
        if meta.uid in self._confirmed:
            return
        with contextlib.suppress(errors.NotFound, errors.FailedPrecondition):
            await self._client.delete(core_pb2.Pod, meta.name, meta.namespace,
                                      grace_period=0, uid=meta.uid)
        self._confirmed.add(meta.uid)

    # ---- starting ----

    async def _refresh_volumes(self, pod: core_pb2.Pod) -> None:
        if not any(v.HasField("secret") or v.HasField("config_map") for v in pod.spec.volumes):
            return
        try:
            await self._volumes.refresh(pod)
        except (VolumeError, OSError) as err:
            log.warning("pod %s/%s: volume refresh failed: %s", pod.metadata.namespace,
                        pod.metadata.name, err)

    async def _start_all(self, pod: core_pb2.Pod, actions: PodActions,
                         sandboxes: list[ContainerInfo], containers: list[ContainerInfo],
                         waiting: Waiting, paths: Mapping[str, str], slot: _Slot,
                         stop: StopRequest) -> float | None:
        """The sandbox (when the plan needs a new one), the images, then the containers;
        with a cancellation point before each of them."""
        uid = pod.metadata.uid
        stop.check()
        retry: float | None = None
        sandbox_id = actions.sandbox_id
        if actions.create_sandbox:
            try:
                network = "" if pod.spec.host_network else self._sandbox_network()
            except NetworkNotReady as err:
                # Kubernetes' wording; the pod waits, and is synced again when the
                # network changes (and at every resync).
                self._recorder.event(pod, WARNING, NETWORK_NOT_READY,
                                     f"{NETWORK_NOT_READY_MESSAGE}: {err}")
                for c in [*pod.spec.init_containers, *pod.spec.containers]:
                    waiting.setdefault(c.name, ("ContainerCreating", ""))
                return RESYNC
            planned = pod_dns(pod, self._dns, host_dns(self._dns.resolv_conf))
            for reason, message in planned.warnings:
                self._recorder.event(pod, WARNING, reason, message)
            try:
                sandbox_id = await self._runtime.run_sandbox(sandbox_config(
                    pod, actions.sandbox_attempt, self._node_name, network=network,
                    dns=planned.config if planned.custom else None))
            except RuntimeError_ as err:
                self._cache.mark_changed(uid)
                self._recorder.event(pod, WARNING, "FailedCreatePodSandBox",
                                     f"Failed to create pod sandbox: {err.message}")
                for c in [*pod.spec.init_containers, *pod.spec.containers]:
                    waiting.setdefault(c.name, ("ContainerCreating", ""))
                return None
            self._cache.mark_changed(uid)
            sandbox = await self._runtime.container_status(sandbox_id)
        else:
            sandbox = next(s for s in sandboxes if s.id == sandbox_id)
        pod_ip = self._node_ip if pod.spec.host_network else sandbox.ip
        starts = actions.start[:1] if actions.start and actions.start[0][2] else actions.start
        # Images first, all at once (checks are cheap but not free; a pull is slow and
        # gives up the start slot meanwhile); then the containers, in order.
        pulling = _PullStatus(self._status, pod, sandbox, containers, waiting, slot)
        images = await stop.race(asyncio.gather(
            *(self._ensure_image(pod, c, init, waiting, pulling) for c, _, init in starts)))
        await slot.acquire()
        for (container, attempt, init), image_retry in zip(starts, images, strict=True):
            if image_retry is None:
                stop.check()
                try:
                    await self._start(pod, container, attempt, init, sandbox_id, pod_ip,
                                      paths, waiting)
                finally:
                    self._cache.mark_changed(uid)
            else:
                retry = image_retry if retry is None else min(retry, image_retry)
        return retry

    async def _ensure_image(self, pod: core_pb2.Pod, container: core_pb2.Container,
                            init: bool, waiting: Waiting, pulling: _PullStatus
                            ) -> float | None:
        """Gets the container's image onto the node. None when it is there; else (the
        container cannot start now, its waiting reason is set) the seconds until the pod
        should be synced again."""
        ref = container_ref(pod, container, init)

        async def on_pull(present: bool) -> None:
            warning = always_pull_warning(container, present)
            if warning is not None:
                self._recorder.event(ref, WARNING, "AlwaysPull", warning)
            self._recorder.event(ref, NORMAL, "Pulling", f'Pulling image "{container.image}"')
            await pulling.report()

        try:
            pulled = await self._images.ensure(pod, container, on_pull=on_pull)
        except ImageBackOff as err:
            waiting[container.name] = (err.reason, err.message)
            self._recorder.event(ref, NORMAL, "BackOff", f'Back-off pulling image '
                                 f'"{container.image}"')
            self._recorder.event(ref, WARNING, "Failed", f"Error: {err.reason}")
            return max(err.remaining, 0.0)
        except RuntimeError_ as err:
            waiting[container.name] = (err.reason, err.message)
            self._recorder.event(ref, WARNING, "Failed", err.message)
            self._recorder.event(ref, WARNING, "Failed", f"Error: {err.reason}")
            # After a failed pull: show ErrImagePull for a moment, then that it waits
            # (ImagePullBackOff). Anything else (ErrImageNeverPull, the engine failing) is
            # tried again at the next resync.
            return IMAGE_BACKOFF_REPORT_DELAY if isinstance(err, ImagePullError) else RESYNC
        if pulled.pulled:
            self._recorder.event(ref, NORMAL, "Pulled",
                                 f'Successfully pulled image "{container.image}"')
        return None

    async def _start(self, pod: core_pb2.Pod, container: core_pb2.Container, attempt: int,
                     init: bool, sandbox_id: str, pod_ip: str, paths: Mapping[str, str],
                     waiting: Waiting) -> bool:
        name = container.name
        ref = container_ref(pod, container, init)
        try:
            links = pod.spec.enable_service_links if pod.spec.HasField(
                "enable_service_links") else True
            services = service_env(pod.metadata.namespace, self._services(),
                                   enable_service_links=links)
            env, warnings = build_env(pod, container, self._source, pod_ip=pod_ip,
                                      host_ip=self._node_ip, service_env=services)
            command, args = expand_command(container, dict(env))
            config = container_config(
                pod, container, attempt=attempt, init=init, env=env, command=command,
                args=args, mounts=self._volumes.mounts_for(pod, container, paths),
                node_name=self._node_name)
        except (EnvError, VolumeError) as err:
            waiting[name] = ("CreateContainerConfigError", str(err))
            self._recorder.event(ref, WARNING, "Failed", f"Error: {err}")
            return False
        for warning in warnings:
            self._recorder.event(pod, WARNING, "InvalidEnvironmentVariableNames", warning)
        try:
            cid = await self._runtime.create_container(
                sandbox_id, config, sandbox_config(pod, 0, self._node_name))
        except RuntimeError_ as err:
            waiting[name] = (err.reason, err.message)
            self._recorder.event(ref, WARNING, "Failed", f"Error: {err.message}")
            return False
        self._recorder.event(ref, NORMAL, "Created", f"Created container {name}")
        if attempt > 0:
            self._crash_backoff.next(backoff_key(pod.metadata.uid, name))
        try:
            await self._runtime.start_container(cid)
        except RuntimeError_ as err:
            # The attempt counts (the engine keeps it as exited: lastState says how); until
            # it is tried again, the container waits with the reason (RunContainerError).
            waiting[name] = (err.reason, err.message)
            self._recorder.event(ref, WARNING, "Failed", f"Error: {err.message}")
            return False
        self._recorder.event(ref, NORMAL, "Started", f"Started container {name}")
        return True


class _Slot:
    """One of the start slots, held for a pod's start; `release` gives it up while the pod
    waits for something slow (a pull), `acquire` takes it again (both idempotent). A pod
    to stop gives up waiting for one (StartAbandoned)."""

    def __init__(self, slots: asyncio.Semaphore, stop: StopRequest) -> None:
        self._slots = slots
        self._stop = stop
        self._held = False

    async def acquire(self) -> None:
        if not self._held:
            await self._stop.race(self._slots.acquire())
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

    def __init__(self, status: StatusWriter, pod: core_pb2.Pod, sandbox: ContainerInfo,
                 containers: list[ContainerInfo], waiting: Waiting, slot: _Slot) -> None:
        self._status = status
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
            await self._status.write(self._pod, [self._sandbox], self._containers,
                                     self._waiting)
        except errors.ApiError as err:
            log.warning("pod %s/%s: status update failed: %s", self._pod.metadata.namespace,
                        self._pod.metadata.name, err)
