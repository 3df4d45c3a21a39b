"""Writes a pod's status (kubelet/status.py builds it) to the apiserver, only when it
changed: the kubelet's status manager.

A pod's status is not the kubelet's alone: others write conditions into it (the
DisruptionTarget of an eviction, a readiness gate's condition), and an eviction its phase's
reason. So a write is conditional on the resourceVersion of the pod the status was built
from; when someone wrote in between (Conflict), the pod is read afresh and the status
built over what they wrote (build_pod_status keeps what the kubelet does not own), and
written again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from kubelet.runtime import ContainerInfo, State
from kubelet.status import build_pod_status
from skiff.api.pods import is_terminal_phase
from skiff.api.v1 import core_pb2
from skiff.client import errors
from skiff.client.clock import Clock

# Writes that meet a Conflict before one goes through: past them, the sync fails and
# its worker tries again.
CONFLICT_RETRIES = 3


class StatusClient(Protocol):
    """The part of the apiserver's client a status write needs."""

    async def get(self, kind: type[core_pb2.Pod], name: str, namespace: str = ...
                  ) -> core_pb2.Pod: ...

    async def update_status(self, obj: core_pb2.Pod, /) -> core_pb2.Pod: ...


def pod_ip(pod: core_pb2.Pod, sandboxes: Sequence[ContainerInfo], node_ip: str) -> str:
    """The pod's address: the node's for a host-network pod, else its running sandbox's."""
    if pod.spec.host_network:
        return node_ip
    running = [s for s in sandboxes if s.state == State.RUNNING]
    return running[0].ip if running else ""


class StatusWriter:
    def __init__(self, client: StatusClient, *, node_ip: str, ready: Callable[[str], bool],
                 started: Callable[[str], bool], clock: Clock) -> None:
        self._client = client
        self._node_ip = node_ip
        self._ready = ready  # the probes' answers, by container id
        self._started = started
        self._clock = clock
        self._written: dict[str, bytes] = {}  # pod uid -> the status last written

    async def write(self, pod: core_pb2.Pod, sandboxes: Sequence[ContainerInfo],
                    containers: Sequence[ContainerInfo],
                    waiting: Mapping[str, tuple[str, str]]) -> None:
        uid = pod.metadata.uid
        status = self._build(pod, sandboxes, containers, waiting)
        fingerprint = status.SerializeToString(deterministic=True)
        if self._written.get(uid) == fingerprint:
            return
        for attempt in range(1, CONFLICT_RETRIES + 1):
            updated = core_pb2.Pod()
            updated.CopyFrom(pod)  # with the resourceVersion the status was built from
            updated.status.CopyFrom(status)
            try:
                await self._client.update_status(updated)
            except errors.NotFound:
                return
            except errors.Conflict:
                if attempt == CONFLICT_RETRIES:
                    raise
                try:
                    pod = await self._client.get(core_pb2.Pod, pod.metadata.name,
                                                 pod.metadata.namespace)
                except errors.NotFound:
                    return
                if pod.metadata.uid != uid:
                    return  # another pod under the same name: not ours to write
                status = self._build(pod, sandboxes, containers, waiting)
                continue
            self._written[uid] = status.SerializeToString(deterministic=True)
            return

    def _build(self, pod: core_pb2.Pod, sandboxes: Sequence[ContainerInfo],
               containers: Sequence[ContainerInfo],
               waiting: Mapping[str, tuple[str, str]]) -> core_pb2.PodStatus:
        running = [s for s in sandboxes if s.state == State.RUNNING]
        ip = pod_ip(pod, sandboxes, self._node_ip)
        status = build_pod_status(pod, infos=containers, waiting=waiting,
                                  ready=self._ready, started=self._started,
                                  pod_ip=ip, host_ip=self._node_ip,
                                  now=int(self._clock.wall().timestamp()),
                                  sandbox_ready=bool(running))
        if not ip and is_terminal_phase(status.phase) and pod.status.pod_ip:
            # A finished pod's sandbox is stopped; it keeps the IP it had, as in Kubernetes.
            status.pod_ip = pod.status.pod_ip
            status.pod_ips.extend(pod.status.pod_ips)
        return status

    def forget(self, uid: str) -> None:
        self._written.pop(uid, None)
