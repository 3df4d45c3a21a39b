"""Runs the pods bound to this node: the kubelet's sync loop.

Every pod gets a worker (kubelet/pods/workers.py). A worker wakes when the pod's spec or
metadata changes (informer; a status-only update, such as the echo of our own status
write, does not count), when its containers change (the relist, `relist`), when a probe
result changes, when a Secret or ConfigMap it uses changes, when a back-off ends, and at
least every RESYNC seconds; each wake runs `sync` once:

    the runtime's state (kubelet/pods/runtime_cache.py)
    -> the plan: start or stop (kubelet/plan.py, pure)
    -> carried out (kubelet/pods/executor.py)
    -> the probes follow the containers, the status is written (status_writer.py).

A pod deleted (or gone) while its sync starts it makes that start give up at its next
cancellation point (kubelet/pods/stop_request.py); the sync that follows at once stops it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from kubelet import plan as planning
from kubelet.dns import ClusterDns
from kubelet.env import ObjectSource
from kubelet.images import ImageManager
from kubelet.pods.executor import START_CONCURRENCY, DeletionClient, Executor
from kubelet.pods.references import ReferenceIndex, referenced_objects
from kubelet.pods.runtime_cache import RuntimeCache
from kubelet.pods.status_writer import StatusClient, StatusWriter, pod_ip
from kubelet.pods.stop_request import StartAbandoned, StartingPods, StopRequest
from kubelet.pods.workers import RESYNC, PodWorkers
from kubelet.probes import ProbeManager
from kubelet.runtime import ContainerRuntime
from kubelet.volumes import VolumeError, VolumeManager
from skiff.api.v1 import core_pb2
from skiff.client.backoff import Backoff
from skiff.client.clock import Clock, RealClock
from skiff.client.events import Recorder

log = logging.getLogger(__name__)

# The crash-loop back-off: 10 s doubling to 5 minutes, counted from the container's exit.
CRASH_BACKOFF_INITIAL = 10.0
CRASH_BACKOFF_MAX = 300.0


class PodClient(StatusClient, DeletionClient, Protocol):
    """What the pods need of the apiserver: status writes and final deletes."""


class PodSyncer:
    def __init__(self, *, node_name: str, node_ip: str, client: PodClient,
                 runtime: ContainerRuntime, volumes: VolumeManager, images: ImageManager,
                 source: ObjectSource, recorder: Recorder,
                 probes: ProbeManager | None = None, crash_backoff: Backoff | None = None,
                 clock: Clock | None = None,
                 start_concurrency: int = START_CONCURRENCY,
                 sandbox_network: Callable[[], str] = lambda: "",
                 dns: ClusterDns | None = None,
                 services: Callable[[], Sequence[core_pb2.Service]] = lambda: ()) -> None:
        clock = clock or RealClock()
        self.client = client
        self.volumes = volumes
        self.pods: dict[str, core_pb2.Pod] = {}
        # The syncer's prober wakes the pod whose probe result changed.
        self.probes = probes or ProbeManager(runtime, on_change=self.wake, clock=clock,
                                             recorder=recorder)
        self.crash_backoff = crash_backoff or Backoff(
            CRASH_BACKOFF_INITIAL, CRASH_BACKOFF_MAX, clock=clock, wall=True)
        self.images = images
        self.cache = RuntimeCache(runtime, node_name, clock=clock)
        self.status = StatusWriter(client, node_ip=node_ip, ready=self.probes.ready,
                                   started=self.probes.started, clock=clock)
        self.executor = Executor(
            node_name=node_name, node_ip=node_ip, client=client, runtime=runtime,
            cache=self.cache, volumes=volumes, images=images, probes=self.probes,
            source=source, recorder=recorder, status=self.status,
            crash_backoff=self.crash_backoff, clock=clock,
            start_concurrency=start_concurrency, sandbox_network=sandbox_network, dns=dns,
            services=services)
        self.workers = PodWorkers(lambda uid: self.sync(uid), clock=clock,
                                  describe=self._describe)
        self._references = ReferenceIndex()
        self._starting = StartingPods()
        self._node_ip = node_ip
        self._clock = clock

    # ---- inputs ----

    def pod_updated(self, pod: core_pb2.Pod) -> None:
        uid = pod.metadata.uid
        old = self.pods.get(uid)
        self.pods[uid] = pod
        if old is not None and _desired(old) == _desired(pod):
            # Only the status changed (mostly the echo of our own write): the kubelet owns
            # the status, and nothing it must do changed (Kubernetes ignores these too).
            return
        self._references.set(uid, referenced_objects(pod))
        if pod.metadata.HasField("deletion_timestamp"):
            self._starting.stop(uid)
        self.wake(uid)

    def pod_deleted(self, pod: core_pb2.Pod) -> None:
        self.pods.pop(pod.metadata.uid, None)
        self._references.set(pod.metadata.uid, set())
        self._starting.stop(pod.metadata.uid)
        self.wake(pod.metadata.uid)

    def object_changed(self, kind: str, namespace: str, name: str) -> None:
        """A Secret or ConfigMap was added, changed or deleted: the pods that use it sync
        now (their volume files follow; one waiting for it starts)."""
        for uid in self._references.users((kind, namespace, name)):
            self.wake(uid)

    def wake(self, uid: str) -> None:
        self.workers.wake(uid)

    def wake_all(self) -> None:
        """Every pod syncs now (the pod network became ready, or unavailable)."""
        for uid in list(self.pods):
            self.wake(uid)

    async def relist(self) -> None:
        """One look at the runtime (the kubelet's PLEG): wakes every pod whose containers
        changed state since the last relist, including pods this kubelet no longer knows
        (orphans)."""
        for uid in await self.cache.relist():
            self.wake(uid)

    def relist_delay(self, period: float) -> float:
        return self.cache.relist_delay(period)

    async def prime(self) -> None:
        """Fills the runtime cache, so the first syncs after a start share one list."""
        await self.cache.refresh()

    async def clean_orphaned_volumes(self) -> None:
        """Tears down the volume directories of pods this node no longer runs and that
        have no containers left (a kubelet that died half-way through a teardown). Pods
        with containers are the relist's: it stops them first, then tears down. Call
        after `prime` and once the pods are known."""
        if not self.cache.listed:
            return  # the runtime did not answer: which pods have containers is unknown
        for uid in self.volumes.orphaned_pod_dirs(set(self.pods) | self.cache.pods()):
            try:
                await self.volumes.teardown(uid)
            except (VolumeError, OSError) as err:
                log.warning("pod %s: cannot clean up orphaned volumes: %s", uid, err)

    async def stop(self) -> None:
        await self.workers.stop()

    # ---- one sync ----

    async def sync(self, uid: str) -> tuple[float | None, bool]:
        """Brings one pod one step closer to its spec, or stops it when it is being
        deleted or is gone. Returns (seconds until it wants to sync again, whether its
        worker is done)."""
        stop = self._starting.begin(uid)  # before the pod is read: no deletion slips by
        try:
            return await self._sync(uid, stop)
        except StartAbandoned:
            return 0.0, False  # at once: the next sync stops the pod
        finally:
            self._starting.end(uid, stop)

    async def _sync(self, uid: str, stop: StopRequest) -> tuple[float | None, bool]:
        pod = self.pods.get(uid)
        sandboxes, containers = await self.cache.state(uid)
        if pod is None or pod.metadata.HasField("deletion_timestamp"):
            stopping = planning.plan_stop(pod, sandboxes, containers,
                                          now=self._clock.wall().timestamp())
            await self.executor.execute(uid, pod, stopping, sandboxes, containers, {})
            self.probes.remove_pod(uid)
            if pod is not None:
                return RESYNC, False
            self._forget(uid)
            return None, True
        actions = planning.plan_pod(pod, sandboxes, containers,
                                    liveness_failed=self.probes.liveness_failed,
                                    backoff_remaining=self.crash_backoff.remaining_since)
        waiting = dict(actions.waiting)
        retry = await self.executor.execute(uid, pod, actions, sandboxes, containers, waiting,
                                            stop)
        sandboxes, containers = await self.cache.state(uid)  # lists if it acted
        self.probes.update(pod, containers, pod_ip=pod_ip(pod, sandboxes, self._node_ip))
        await self.status.write(pod, sandboxes, containers, waiting)
        return _earliest(actions.retry_after, retry), False

    def _forget(self, uid: str) -> None:
        self.status.forget(uid)
        self.cache.forget(uid)
        self.executor.forget(uid)
        self.crash_backoff.forget_prefix(f"{uid}/")
        self.images.forget_pod(uid)

    def _describe(self, uid: str) -> str:
        pod = self.pods.get(uid)
        return f"{pod.metadata.namespace}/{pod.metadata.name}" if pod else uid


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
