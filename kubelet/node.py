"""The node: register it, report its capacity and health, and renew its Lease.

The Node's status says what this host offers (cpu, memory, pods: 110) and whether it is
Ready (the container runtime answers). Its heartbeat is a Lease in kube-node-lease renewed
every quarter of its duration (10 s of 40 s), as in Kubernetes, so the node status itself is
written only when it changes or once a minute.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import socket
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kubelet.runtime import ContainerRuntime, RuntimeError_
from skiff.api.conditions import set_condition
from skiff.api.v1 import coordination_pb2, core_pb2
from skiff.client import errors
from skiff.client.client import Client
from skiff.client.clock import Clock, RealClock, sleep_or_wake
from skiff.version import VERSION as SKIFF_VERSION

log = logging.getLogger(__name__)

VERSION = f"v{SKIFF_VERSION}-skiff"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION = 40
STATUS_FORCE_INTERVAL = 60.0
MAX_PODS = 110
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}


@dataclass
class NodeConfig:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    address: str = ""  # InternalIP; detected when empty
    kubelet_port: int = 10250
    lease_duration: int = LEASE_DURATION  # seconds; renewed every quarter of it

    @property
    def renew_interval(self) -> float:
        return self.lease_duration / 4


def host_memory_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def detect_address() -> str:
    """The IPv4 address of the interface that carries the default route (read from the
    kernel's tables; nothing is sent), else loopback."""
    try:
        with open("/proc/net/route") as f:
            iface = next((cols[0] for cols in (line.split() for line in f.readlines()[1:])
                          if cols[1] == "00000000"), "")
        if iface:
            out = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", iface],
                                 capture_output=True, text=True, timeout=5).stdout
            for word in out.split():
                if "/" in word and word.count(".") == 3:
                    return word.split("/")[0]
    except (OSError, subprocess.SubprocessError):
        pass
    return "127.0.0.1"


def os_image() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


# status, reason, message of a condition, or None when the Node should not show it
ConditionSource = Callable[[], list[tuple[str, str, str, str]]]  # type, status, reason, msg


class NodeAgent:
    """Keeps this node's Node object and Lease current.

    `network_conditions` gives the Node's conditions the pod network owns
    (NetworkUnavailable, PodNetworkReachable: kubelet/network/); `wake` writes the status at
    once rather than at the next beat."""

    def __init__(self, client: Client, runtime: ContainerRuntime, config: NodeConfig, *,
                 clock: Clock | None = None,
                 network_conditions: ConditionSource | None = None) -> None:
        self.client = client
        self.runtime = runtime
        self.config = config
        self.clock = clock or RealClock()
        self.address = config.address or detect_address()
        self.ready = False
        # Set once the first heartbeat (registration, Lease) has been tried.
        self.first_beat = asyncio.Event()
        self._last_status: bytes = b""
        self._last_write = -1e9
        self._network_conditions = network_conditions or (lambda: [])
        self._wake = asyncio.Event()

    def desired_node(self, runtime_version: str, ready: bool, reason: str, message: str,
                     current: core_pb2.Node | None) -> core_pb2.Node:
        node = core_pb2.Node()
        if current is not None:
            node.CopyFrom(current)
        node.metadata.name = self.config.name
        arch = _ARCH.get(platform.machine(), platform.machine())
        node.metadata.labels.update({"kubernetes.io/hostname": self.config.name,
                                     "kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
                                     **self.config.labels})
        status = node.status
        cpu, memory = str(os.cpu_count() or 1), f"{host_memory_bytes() // 1024}Ki"
        for resources in (status.capacity, status.allocatable):
            resources["cpu"].value = cpu
            resources["memory"].value = memory
            resources["pods"].value = str(MAX_PODS)
        del status.addresses[:]
        status.addresses.add(type="InternalIP", address=self.address)
        status.addresses.add(type="Hostname", address=socket.gethostname())
        info = status.node_info
        info.kernel_version, info.os_image = platform.release(), os_image()
        info.operating_system, info.architecture = "linux", arch
        info.container_runtime_version, info.kubelet_version = runtime_version, VERSION
        info.kube_proxy_version = VERSION
        status.daemon_endpoints.kubelet_endpoint.port = self.config.kubelet_port
        self._set_ready(status, ready, reason, message)
        for kind, state, why, text in self._network_conditions():
            now = datetime.fromtimestamp(int(self.clock.wall().timestamp()), UTC)
            cond, _ = set_condition(status.conditions, kind, state, now, reason=why,
                                    message=text)
            cond.last_heartbeat_time.FromDatetime(now)
        return node

    def _set_ready(self, status: core_pb2.NodeStatus, ready: bool, reason: str,
                   message: str) -> None:
        now = datetime.fromtimestamp(int(self.clock.wall().timestamp()), UTC)
        cond, _ = set_condition(status.conditions, "Ready", "True" if ready else "False", now,
                                reason=reason, message=message)
        cond.last_heartbeat_time.FromDatetime(now)

    async def runtime_health(self) -> tuple[str, bool, str, str]:
        try:
            version = await self.runtime.version()
        except RuntimeError_ as err:
            return "", False, "KubeletNotReady", f"container runtime is down: {err.message}"
        return version, True, "KubeletReady", "kubelet is posting ready status"

    async def sync_status(self) -> None:
        """Registers the node, or updates its status when it changed (or once a minute)."""
        version, ready, reason, message = await self.runtime_health()
        self.ready = ready
        try:
            current = await self.client.get(core_pb2.Node, self.config.name)
        except errors.NotFound:
            node = self.desired_node(version, ready, reason, message, None)
            await self.client.create(node)
            log.info("registered node %s (%s)", self.config.name, self.address)
            return
        node = self.desired_node(version or current.status.node_info.container_runtime_version,
                                 ready, reason, message, current)
        if node.metadata.labels != current.metadata.labels:
            # Update writes the spec and metadata only and returns the status as stored
            # (empty for a Node that `skiff join` made): keep the one to write below.
            updated = await self.client.update(node)
            updated.status.CopyFrom(node.status)
            node = updated
        fingerprint = _status_fingerprint(node)
        due = self.clock.now() - self._last_write >= STATUS_FORCE_INTERVAL
        if fingerprint != self._last_status or due:
            await self.client.update_status(node)
            self._last_status, self._last_write = fingerprint, self.clock.now()

    async def renew_lease(self) -> None:
        now = int(self.clock.wall().timestamp())
        try:
            lease = await self.client.get(coordination_pb2.Lease, self.config.name,
                                          LEASE_NAMESPACE)
        except errors.NotFound:
            lease = coordination_pb2.Lease()
            lease.metadata.name, lease.metadata.namespace = self.config.name, LEASE_NAMESPACE
            lease.spec.holder_identity = self.config.name
            lease.spec.lease_duration_seconds = self.config.lease_duration
            lease.spec.renew_time.seconds = now
            await self.client.create(lease)
            return
        lease.spec.holder_identity = self.config.name
        lease.spec.lease_duration_seconds = self.config.lease_duration
        lease.spec.renew_time.seconds = now
        await self.client.update(lease)

    async def run(self) -> None:
        """Heartbeats forever; failures are logged and retried at the next beat."""
        while True:
            for step in (self.sync_status, self.renew_lease):
                try:
                    await step()
                except (errors.ApiError, RuntimeError_) as err:
                    log.warning("node %s: %s failed: %s", self.config.name, step.__name__, err)
            self.first_beat.set()
            await sleep_or_wake(self.clock, self.config.renew_interval, self._wake)
            self._wake.clear()

    def wake(self) -> None:
        """Writes the status now (a condition changed), not at the next beat."""
        self._wake.set()


def _status_fingerprint(node: core_pb2.Node) -> bytes:
    """The status without heartbeat times, which change on every beat."""
    copy = core_pb2.Node()
    copy.status.CopyFrom(node.status)
    for cond in copy.status.conditions:
        cond.ClearField("last_heartbeat_time")
    return copy.status.SerializeToString(deterministic=True)
