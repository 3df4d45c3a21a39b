"""The kubelet's container runtime interface, shaped like Kubernetes' CRI.

The kubelet speaks only this protocol; `DockerRuntime` (kubelet/runtime/docker.py, the
only module that imports `docker`) implements it on a Docker engine, `FakeRuntime`
(kubelet/runtime/fake.py) in memory for unit tests and the simulated nodes of benchmarks.

A pod is a sandbox (a pause container owning the network and IPC namespaces) plus its
containers, which join the sandbox's namespaces. Everything the runtime creates carries
labels (LABEL_* below) from which a restarted kubelet rebuilds its picture of what runs.
Stop and remove are idempotent: stopping a stopped container or removing a missing one
is not an error.

Networks: the pod network's bridge on this node (kubelet/network/) is a network of the
runtime's, made with `create_network` and joined by sandboxes whose config names it.
"""

from __future__ import annotations

import enum
import socket
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

LABEL_PREFIX = "io.skiff."
LABEL_POD_UID = "io.skiff.pod.uid"
LABEL_POD_NAMESPACE = "io.skiff.pod.namespace"
LABEL_POD_NAME = "io.skiff.pod.name"
LABEL_CONTAINER_NAME = "io.skiff.container.name"
LABEL_ATTEMPT = "io.skiff.container.attempt"  # restarts of this container before this one
LABEL_SANDBOX = "io.skiff.sandbox"  # "true" on the pause container
LABEL_SPEC_HASH = "io.skiff.container.hash"  # of the container's spec: a change recreates
LABEL_INIT = "io.skiff.container.init"  # "true" on init containers
LABEL_GRACE = "io.skiff.pod.grace-period"  # seconds, for stops of orphans after a restart
# The node whose kubelet made it: several kubelets may share one engine (tests, simulated
# nodes), and each must only ever touch its own containers.
LABEL_NODE = "io.skiff.node"


class RuntimeError_(Exception):
    """The runtime failed; `reason` is what a user sees in the pod's status."""

    reason = "RuntimeError"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason:
            self.reason = reason


class RuntimeUnavailable(RuntimeError_):
    reason = "RuntimeUnavailable"


class ImagePullError(RuntimeError_):
    """Pulling failed: the engine's message, e.g. unauthorized or manifest unknown."""

    reason = "ErrImagePull"


class ImageNotPresent(RuntimeError_):
    """imagePullPolicy Never and the image is not on the node."""

    reason = "ErrImageNeverPull"


class CreateContainerError(RuntimeError_):
    reason = "CreateContainerError"


class StartContainerError(RuntimeError_):
    """The container could not start, e.g. its command does not exist."""

    reason = "RunContainerError"


class NotFound(RuntimeError_):
    reason = "NotFound"


class PortForwardError(RuntimeError_):
    """Nothing in the pod accepted a port-forward connection (or its network namespace
    could not be entered); the message says why, in the kubelet's words."""

    reason = "PortForwardError"


@dataclass(frozen=True)
class PortMapping:
    container_port: int
    host_port: int
    protocol: str = "TCP"
    host_ip: str = ""


@dataclass(frozen=True)
class DnsConfig:
    servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def resolv_conf(self) -> str:
        """The pod's /etc/resolv.conf."""
        lines = [f"nameserver {server}" for server in self.servers]
        if self.searches:
            lines.append(f"search {' '.join(self.searches)}")
        if self.options:
            lines.append(f"options {' '.join(self.options)}")
        return "".join(f"{line}\n" for line in lines)


@dataclass(frozen=True)
class SandboxConfig:
    pod_uid: str
    namespace: str
    name: str
    attempt: int = 0
    hostname: str = ""
    host_network: bool = False
    port_mappings: tuple[PortMapping, ...] = ()
    dns: DnsConfig | None = None
    network: str = ""  # a runtime network to attach to ("" = the runtime's default)
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NetworkConfig:
    """A bridge network on the node for pods: `subnet` (a CIDR) with `gateway` (the
    bridge's own address) on the host's side."""

    name: str
    subnet: str
    gateway: str
    labels: Mapping[str, str] = field(default_factory=dict)
    # The runtime's own masquerading of traffic that leaves the bridge. The pod network
    # turns it off and masquerades in its own chain, after the rule that lets pod-to-pod
    # traffic keep its source (kubelet/network/rules.py says why).
    masquerade: bool = True


@dataclass(frozen=True)
class NetworkInfo:
    name: str
    id: str
    subnet: str  # "" when the runtime chose none
    gateway: str
    interface: str  # the bridge's interface on the host, e.g. br-0123456789ab
    labels: Mapping[str, str] = field(default_factory=dict)
    masquerade: bool = True
    containers: tuple[str, ...] = ()  # ids of the running containers attached to it


@dataclass(frozen=True)
class Mount:
    host_path: str
    container_path: str
    read_only: bool = False


@dataclass(frozen=True)
class Auth:
    """Registry credentials for one pull (from an imagePullSecret)."""

    username: str
    password: str
    server: str = ""


@dataclass(frozen=True)
class ContainerConfig:
    name: str
    image: str
    command: tuple[str, ...] = ()  # replaces the image's entrypoint when set
    args: tuple[str, ...] = ()  # replaces the image's cmd when set (or command is set)
    env: tuple[tuple[str, str], ...] = ()
    working_dir: str = ""
    mounts: tuple[Mount, ...] = ()
    cpu_limit_millis: int = 0  # 0: unlimited
    cpu_request_millis: int = 0  # becomes CPU shares
    memory_limit_bytes: int = 0  # 0: unlimited
    run_as_user: int | None = None
    run_as_group: int | None = None
    privileged: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    read_only_rootfs: bool = False
    tty: bool = False
    stdin: bool = False
    log_max_bytes: int = 10 * 1024 * 1024  # rotated by size, so logs cannot fill the disk
    log_max_files: int = 3
    labels: Mapping[str, str] = field(default_factory=dict)


class State(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ContainerInfo:
    """What the runtime knows of one container (app, init or sandbox)."""

    id: str
    labels: Mapping[str, str]
    image: str
    image_id: str
    state: State
    created_at: float = 0.0  # unix seconds
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    reason: str = ""  # e.g. OOMKilled, Error, Completed
    message: str = ""
    ip: str = ""  # sandboxes: the pod IP

    @property
    def pod_uid(self) -> str:
        return self.labels.get(LABEL_POD_UID, "")

    @property
    def name(self) -> str:
        return self.labels.get(LABEL_CONTAINER_NAME, "")

    @property
    def attempt(self) -> int:
        return int(self.labels.get(LABEL_ATTEMPT, "0") or 0)

    @property
    def is_sandbox(self) -> bool:
        return self.labels.get(LABEL_SANDBOX) == "true"


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: bytes


class ExecSession(Protocol):
    """An interactive command in a container (`skiff exec -it`)."""

    async def write(self, data: bytes) -> None:
        """Sends to the command's stdin."""

    async def close_stdin(self) -> None: ...

    def output(self) -> AsyncGenerator[tuple[int, bytes], None]:
        """(stream, bytes) chunks: stream 1 is stdout, 2 is stderr (with a TTY all is 1)."""

    async def resize(self, rows: int, columns: int) -> None: ...

    async def exit_code(self) -> int:
        """Waits for the command to end."""


class ContainerRuntime(Protocol):
    async def version(self) -> str:
        """The engine's name and version, e.g. `docker://20.10.24`."""

    # ---- sandboxes ----
    async def run_sandbox(self, config: SandboxConfig) -> str:
        """Creates and starts the pod's pause container; returns its id."""

    async def stop_sandbox(self, sandbox_id: str) -> None: ...

    async def remove_sandbox(self, sandbox_id: str) -> None: ...

    # ---- networks ----
    async def inspect_network(self, name: str) -> NetworkInfo | None:
        """The network called `name`, None when there is none."""

    async def create_network(self, config: NetworkConfig) -> NetworkInfo:
        """Creates a bridge network; RuntimeError_ with the engine's reason when it cannot
        (a subnet that overlaps another network, a name taken)."""

    async def remove_network(self, name: str) -> None:
        """Idempotent; RuntimeError_ when running containers still use it."""

    # ---- containers ----
    async def create_container(self, sandbox_id: str, config: ContainerConfig,
                               sandbox: SandboxConfig) -> str:
        """Creates a container joined to the sandbox's namespaces; returns its id."""

    async def start_container(self, container_id: str) -> None: ...

    async def stop_container(self, container_id: str, timeout: float) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds. Idempotent."""

    async def remove_container(self, container_id: str) -> None:
        """Idempotent."""

    async def list_containers(self) -> list[ContainerInfo]:
        """Every container (sandboxes included) that carries Skiff's labels."""

    async def container_status(self, container_id: str) -> ContainerInfo: ...

    # ---- images ----
    async def image_id(self, image: str) -> str | None:
        """The id of `image` if it is on the node, else None."""

    async def pull_image(self, image: str, auth: Auth | None = None) -> str:
        """Pulls `image`; returns its id. Raises ImagePullError with the engine's message."""

    # ---- exec and logs ----
    async def exec_sync(self, container_id: str, command: Sequence[str],
                        timeout: float) -> ExecResult: ...

    def logs(self, container_id: str, *, follow: bool = False, tail: int | None = None,
             timestamps: bool = False) -> AsyncGenerator[bytes, None]:
        """The container's output (stdout and stderr, interleaved as written)."""

    async def exec_stream(self, container_id: str, command: Sequence[str], *, tty: bool,
                          stdin: bool) -> ExecSession:
        """Starts `command` in the container with its streams attached."""

    # ---- port-forward ----
    async def port_forward_socket(self, sandbox_id: str, port: int) -> socket.socket:
        """A TCP connection to localhost:port inside the sandbox's network namespace (the
        node's own for a hostNetwork sandbox), connected and non-blocking, for asyncio.
        PortForwardError when nothing accepts it; NotFound or RuntimeError_ when the
        sandbox is gone or not running."""
