"""`FakeRuntime`: the container runtime interface in memory, for unit tests and the
simulated ("hollow") nodes of benchmarks.

It keeps the same rules as `DockerRuntime` where the kubelet can tell: labels, states and
reasons (Completed, Error, OOMKilled, ContainerCannotRun), idempotent stop and remove,
removing a sandbox removes its containers, a pull of an image no registry has fails with
"manifest unknown". Nothing runs and nothing sleeps: a container's life is a `Script`
evaluated against the clock whenever the fake is asked, so a test with a fake clock moves
containers along by moving the clock.

Knobs (plain attributes, changeable at any time):
  images        normalized refs of images on the "node" (`busybox` -> `busybox:latest`)
  pullable      image -> None (anyone may pull) or the Auth the registry demands;
                the key "*" matches every image
  fail_create   key -> message: create raises CreateContainerError(message)
  fail_start    key -> message: start raises StartContainerError(message) and leaves the
                container exited with reason ContainerCannotRun, as Docker does
  scripts       key -> Script: when the container exits by itself, how, and its output
  default_script
                config -> Script for containers no `scripts` key names (default: run until
                stopped); `script_from_command` reads a simple shell command instead
  exec_results  key -> ExecResult, or a callable(command) returning one or an awaitable of
                one (an awaitable past the exec's timeout gives exit code 124)
  unavailable   True: every call raises RuntimeUnavailable (a stopped engine)
  networks      name -> NetworkInfo of the networks made with `create_network` (sandboxes
                naming one get an address of its subnet, others one of `pod_cidr`)
  calls         (method, arguments...) of every call, newest last (a bounded deque)
  port_forwards pod port -> the port on this host's loopback that a port-forward to it
                reaches (default: the same number; a sandbox has no namespace of its own)
A "key" is tried as "<pod name>/<container name>", then the container name, then the image.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import ipaddress
import itertools
import socket
import time
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from kubelet.runtime import (
    LABEL_ATTEMPT,
    LABEL_CONTAINER_NAME,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    LABEL_SANDBOX,
    Auth,
    ContainerConfig,
    ContainerInfo,
    CreateContainerError,
    ExecResult,
    ExecSession,
    ImagePullError,
    NetworkConfig,
    NetworkInfo,
    NotFound,
    PortForwardError,
    RuntimeError_,
    RuntimeUnavailable,
    SandboxConfig,
    StartContainerError,
    State,
)
from kubelet.runtime.netns import ConnectFailed, connect_in_network_namespace
from kubelet.runtime.pause import PAUSE_IMAGE

EXEC_TIMEOUT_EXIT_CODE = 124  # as DockerRuntime: what GNU timeout(1) exits with
_FOLLOW_POLL = 0.05  # seconds between looks at a followed container's log and state

_T = TypeVar("_T")
ExecHook = ExecResult | Callable[[Sequence[str]], ExecResult | Awaitable[ExecResult]]


def normalize_image(image: str) -> str:
    """`busybox` -> `busybox:latest`; a tag or a digest is kept."""
    if "@" in image:
        return image
    return image if ":" in image.rsplit("/", 1)[-1] else image + ":latest"


def fake_image_id(image: str) -> str:
    return "sha256:" + hashlib.sha256(normalize_image(image).encode()).hexdigest()


@dataclass(frozen=True)
class Script:
    """How a fake container behaves once started."""

    exits_after: float | None = None  # seconds after start; None: runs until stopped
    exit_code: int = 0  # when it exits by itself
    oom_killed: bool = False  # it exits by itself as OOMKilled (exit code 137)
    output: bytes = b""  # its log, written at start
    stop_exit_code: int = 143  # when stopped: 143 = died of SIGTERM; 137 = needed SIGKILL


def script_from_command(config: ContainerConfig) -> Script:
    """What a simple shell command would do, for simulated nodes running real manifests:
    `sleep N`, `exit N`, `true`, `false` and `echo ...`, joined by `;` or `&&` (also
    inside `sh -c '...'`). Anything else runs until stopped, like a server would. A
    container started this way behaves in time as it would on Docker, so Jobs complete
    and crash loops crash."""
    words = [*config.command, *config.args]
    if len(words) >= 3 and words[0].rsplit("/", 1)[-1] in ("sh", "bash") and words[1] == "-c":
        words = words[2].replace("&&", ";").replace(";", " ; ").split()
    elapsed, output = 0.0, b""
    step: list[str] = []
    for word in [*words, ";"]:
        if word != ";":
            step.append(word)
            continue
        match step:
            case ["sleep", seconds]:
                try:
                    elapsed += float(seconds)
                except ValueError:
                    return Script(output=output)
            case ["exit", code] if code.isdigit():
                return Script(exits_after=elapsed, exit_code=int(code), output=output)
            case ["true"]:
                pass
            case ["false"]:
                return Script(exits_after=elapsed, exit_code=1, output=output)
            case ["echo", *text]:
                output += " ".join(text).encode() + b"\n"
            case []:
                pass
            case _:
                return Script(output=output)  # a program we cannot imitate: it runs on
        step = []
    return Script(exits_after=elapsed, exit_code=0, output=output) if words else Script()


@dataclass
class FakeContainer:
    """One fake container or sandbox; tests may read (and change) these."""

    id: str
    name: str  # the engine-level name, skiff_<ns>_<pod>_<uid8>_<container>_<attempt>
    labels: dict[str, str]
    image: str
    sandbox_id: str  # "" for a sandbox
    script: Script
    config: ContainerConfig | SandboxConfig
    state: State = State.CREATED
    created_at: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    ip: str = ""
    log: bytearray = field(default_factory=bytearray)

    @property
    def is_sandbox(self) -> bool:
        return not self.sandbox_id


class FakeRuntime:
    """The `ContainerRuntime` protocol in memory; see the module docstring for the knobs."""

    def __init__(self, *, clock: Callable[[], float] = time.time,
                 images: Iterable[str] = (), pullable: Mapping[str, Auth | None] | None = None,
                 pod_cidr: str = "10.244.0.0/16", max_calls: int = 10_000) -> None:
        self.clock = clock
        self.images: set[str] = {normalize_image(i) for i in images}
        self.pullable: dict[str, Auth | None] = dict(pullable or {})
        self.fail_create: dict[str, str] = {}
        self.fail_start: dict[str, str] = {}
        self.scripts: dict[str, Script] = {}
        self.default_script: Callable[[ContainerConfig], Script] = lambda config: Script()
        self.exec_results: dict[str, ExecHook] = {}
        self.unavailable = False
        self.port_forwards: dict[int, int] = {}
        self.calls: deque[tuple[Any, ...]] = deque(maxlen=max_calls)
        self.containers: dict[str, FakeContainer] = {}
        self._ids = itertools.count(1)
        self.networks: dict[str, NetworkInfo] = {}
        self._default_subnet = pod_cidr
        self._next_host: dict[str, int] = {}  # subnet -> the next host number to try
        self._ips_in_use: set[str] = set()

    # ---- helpers for tests ----

    def calls_to(self, method: str) -> list[tuple[Any, ...]]:
        """The arguments of every call of `method`, oldest first."""
        return [c[1:] for c in self.calls if c[0] == method]

    def crash(self, container_id: str, exit_code: int = 1, *, oom_killed: bool = False) -> None:
        """Makes a running container exit now, as if its process died."""
        c = self._get(container_id)
        self._refresh(c)
        if c.state is State.RUNNING:
            self._exit(c, self.clock(), 137 if oom_killed else exit_code, oom_killed)

    def write_log(self, container_id: str, data: bytes) -> None:
        """Appends to a container's output (followers see it)."""
        self._get(container_id).log += data

    # ---- internals ----

    def _enter(self, *call: Any) -> None:
        self.calls.append(call)
        if self.unavailable:
            raise RuntimeUnavailable("fake runtime: engine unavailable")

    def _get(self, container_id: str) -> FakeContainer:
        c = self.containers.get(container_id)
        if c is None:
            raise NotFound(f"No such container: {container_id}")
        return c

    def _new_id(self) -> str:
        return hashlib.sha256(f"fake-{next(self._ids)}".encode()).hexdigest()

    def _lookup(self, table: Mapping[str, _T], pod: str, name: str, image: str) -> _T | None:
        for key in (f"{pod}/{name}", name, image, normalize_image(image)):
            if key in table:
                return table[key]
        return None

    def _allocate_ip(self, subnet: str) -> str:
        network = ipaddress.ip_network(subnet)
        size = network.num_addresses
        for _ in range(size):
            host = self._next_host.get(subnet, 2)  # .0 is the network, .1 the gateway
            self._next_host[subnet] = host + 1 if host + 1 < size - 1 else 2  # no broadcast
            ip = str(network.network_address + host)
            if ip not in self._ips_in_use:
                self._ips_in_use.add(ip)
                return ip
        raise CreateContainerError(f"fake runtime: no free address in {network}",
                                   reason="CreatePodSandboxError")

    def _sandbox_ip(self, config: SandboxConfig) -> str:
        if config.host_network:
            return ""
        if not config.network:
            return self._allocate_ip(self._default_subnet)
        network = self.networks.get(config.network)
        if network is None:
            raise CreateContainerError(f"network {config.network} not found",
                                       reason="CreatePodSandboxError")
        return self._allocate_ip(network.subnet)

    def _exit(self, c: FakeContainer, at: float, exit_code: int, oom_killed: bool) -> None:
        c.state = State.EXITED
        c.finished_at = at
        c.exit_code = exit_code
        c.reason = "OOMKilled" if oom_killed else ("Completed" if exit_code == 0 else "Error")

    def _refresh(self, c: FakeContainer) -> None:
        """Applies the script: a running container whose time is up has exited."""
        s = c.script
        if c.state is State.RUNNING and s.exits_after is not None:
            end = c.started_at + s.exits_after
            if self.clock() >= end:
                self._exit(c, end, 137 if s.oom_killed else s.exit_code, s.oom_killed)

    def _info(self, c: FakeContainer) -> ContainerInfo:
        self._refresh(c)
        return ContainerInfo(
            id=c.id, labels=dict(c.labels), image=c.image, image_id=fake_image_id(c.image),
            state=c.state, created_at=c.created_at, started_at=c.started_at,
            finished_at=c.finished_at, exit_code=c.exit_code, reason=c.reason,
            message=c.message, ip=c.ip,
        )

    def _take_name(self, name: str, pod_uid: str) -> None:
        """Docker refuses a taken name; DockerRuntime replaces a stopped leftover of the
        same pod (a kubelet that died between create and start)."""
        for other in list(self.containers.values()):
            if other.name != name:
                continue
            self._refresh(other)
            if other.labels.get(LABEL_POD_UID) != pod_uid or other.state is State.RUNNING:
                raise CreateContainerError(
                    f'Conflict. The container name "/{name}" is already in use by '
                    f'container "{other.id}"')
            self._drop(other.id)

    def _drop(self, container_id: str) -> None:
        c = self.containers.pop(container_id, None)
        if c is not None and c.ip:
            self._ips_in_use.discard(c.ip)

    # ---- the protocol ----

    async def version(self) -> str:
        self._enter("version")
        return "fake://1.0"

    async def run_sandbox(self, config: SandboxConfig) -> str:
        self._enter("run_sandbox", config.pod_uid)
        name = (f"skiff_{config.namespace}_{config.name}_{config.pod_uid.replace('-', '')[:8]}"
                f"_pause_{config.attempt}")
        self._take_name(name, config.pod_uid)
        ip = self._sandbox_ip(config)
        now = self.clock()
        c = FakeContainer(
            id=self._new_id(), name=name,
            labels={**config.labels, LABEL_POD_UID: config.pod_uid,
                    LABEL_POD_NAMESPACE: config.namespace, LABEL_POD_NAME: config.name,
                    LABEL_SANDBOX: "true", LABEL_ATTEMPT: str(config.attempt)},
            image=PAUSE_IMAGE, sandbox_id="", script=Script(stop_exit_code=137),
            config=config, state=State.RUNNING, created_at=now, started_at=now,
            ip=ip,
        )
        self.containers[c.id] = c
        return c.id

    async def inspect_network(self, name: str) -> NetworkInfo | None:
        self._enter("inspect_network", name)
        network = self.networks.get(name)
        if network is None:
            return None
        users = tuple(sorted(
            c.id for c in self.containers.values()
            if isinstance(c.config, SandboxConfig) and c.config.network == name
            and not c.config.host_network and self._info(c).state is State.RUNNING))
        return replace(network, containers=users)

    async def create_network(self, config: NetworkConfig) -> NetworkInfo:
        self._enter("create_network", config.name, config.subnet)
        if config.name in self.networks:
            raise RuntimeError_(f"network with name {config.name} already exists")
        subnet = ipaddress.ip_network(config.subnet)
        for other in self.networks.values():
            if subnet.overlaps(ipaddress.ip_network(other.subnet)):
                raise RuntimeError_(f"Pool overlaps with other one on this address space "
                                    f"({other.name})")
        network_id = self._new_id()
        self.networks[config.name] = NetworkInfo(
            name=config.name, id=network_id, subnet=str(subnet), gateway=config.gateway,
            interface=f"br-{network_id[:12]}", labels=dict(config.labels),
            masquerade=config.masquerade)
        return self.networks[config.name]

    async def remove_network(self, name: str) -> None:
        self._enter("remove_network", name)
        info = await self.inspect_network(name)
        if info is None:
            return
        if info.containers:
            raise RuntimeError_(f"error while removing network: network {name} id "
                                f"{info.id} has active endpoints")
        del self.networks[name]

    async def stop_sandbox(self, sandbox_id: str) -> None:
        self._enter("stop_sandbox", sandbox_id)
        self._stop(sandbox_id)

    async def remove_sandbox(self, sandbox_id: str) -> None:
        self._enter("remove_sandbox", sandbox_id)
        for c in list(self.containers.values()):
            if c.sandbox_id == sandbox_id:
                self._drop(c.id)
        self._drop(sandbox_id)

    async def create_container(self, sandbox_id: str, config: ContainerConfig,
                               sandbox: SandboxConfig) -> str:
        self._enter("create_container", sandbox_id, config.name)
        if sandbox_id not in self.containers:
            raise CreateContainerError(f"No such container: {sandbox_id}")
        if normalize_image(config.image) not in self.images:
            raise CreateContainerError(f"No such image: {config.image}")
        failure = self._lookup(self.fail_create, sandbox.name, config.name, config.image)
        if failure is not None:
            raise CreateContainerError(failure)
        if config.run_as_group is not None and config.run_as_user is None:
            raise CreateContainerError("runAsGroup is specified without a runAsUser")
        attempt = config.labels.get(LABEL_ATTEMPT, "0")
        name = (f"skiff_{sandbox.namespace}_{sandbox.name}_"
                f"{sandbox.pod_uid.replace('-', '')[:8]}_{config.name}_{attempt}")
        self._take_name(name, sandbox.pod_uid)
        script = self._lookup(self.scripts, sandbox.name, config.name, config.image)
        c = FakeContainer(
            id=self._new_id(), name=name,
            labels={**config.labels, LABEL_POD_UID: sandbox.pod_uid,
                    LABEL_POD_NAMESPACE: sandbox.namespace, LABEL_POD_NAME: sandbox.name,
                    LABEL_CONTAINER_NAME: config.name, LABEL_ATTEMPT: attempt},
            image=config.image, sandbox_id=sandbox_id,
            script=script or self.default_script(config),
            config=config, created_at=self.clock(),
        )
        self.containers[c.id] = c
        return c.id

    async def start_container(self, container_id: str) -> None:
        self._enter("start_container", container_id)
        c = self._get(container_id)
        self._refresh(c)
        if c.state is not State.CREATED:
            return  # Docker starts a running container as a no-op; the kubelet never does
        config = c.config
        assert isinstance(config, ContainerConfig)
        failure = self._lookup(self.fail_start, c.labels[LABEL_POD_NAME], config.name,
                               config.image)
        sandbox = self.containers.get(c.sandbox_id)
        if sandbox is not None:
            self._refresh(sandbox)
        if failure is None and (sandbox is None or sandbox.state is not State.RUNNING):
            failure = "cannot join network of a non running container: " + c.sandbox_id
        if failure is not None:
            # As Docker: the container stays behind, terminated, with the error.
            self._exit(c, 0.0, 128, False)
            c.reason, c.message = "ContainerCannotRun", failure
            raise StartContainerError(failure)
        c.state = State.RUNNING
        c.started_at = self.clock()
        c.log += c.script.output
        self._refresh(c)

    def _stop(self, container_id: str) -> None:
        c = self.containers.get(container_id)
        if c is None:
            return
        self._refresh(c)
        if c.state is State.RUNNING:
            self._exit(c, self.clock(), c.script.stop_exit_code, False)

    async def stop_container(self, container_id: str, timeout: float) -> None:
        self._enter("stop_container", container_id, timeout)
        self._stop(container_id)

    async def remove_container(self, container_id: str) -> None:
        self._enter("remove_container", container_id)
        self._drop(container_id)

    async def list_containers(self) -> list[ContainerInfo]:
        self._enter("list_containers")
        return [self._info(c) for c in self.containers.values()]

    async def container_status(self, container_id: str) -> ContainerInfo:
        self._enter("container_status", container_id)
        return self._info(self._get(container_id))

    async def image_id(self, image: str) -> str | None:
        self._enter("image_id", image)
        return fake_image_id(image) if normalize_image(image) in self.images else None

    async def pull_image(self, image: str, auth: Auth | None = None) -> str:
        self._enter("pull_image", image, auth)
        ref = normalize_image(image)
        for key in (image, ref, "*"):
            if key in self.pullable:
                required = self.pullable[key]
                break
        else:
            raise ImagePullError(f"manifest for {ref} not found: manifest unknown: "
                                 "manifest unknown")
        if required is not None and (
            auth is None or (auth.username, auth.password) != (required.username,
                                                               required.password)):
            raise ImagePullError("unauthorized: authentication required")
        self.images.add(ref)
        return fake_image_id(ref)

    async def _exec_result(self, c: FakeContainer, command: Sequence[str],
                           timeout: float | None) -> ExecResult:
        self._refresh(c)
        if c.state is not State.RUNNING:
            raise RuntimeError_(f"Container {c.id} is not running")
        config = c.config
        name = config.name if isinstance(config, ContainerConfig) else ""
        hook = self._lookup(self.exec_results, c.labels.get(LABEL_POD_NAME, ""), name, c.image)
        if hook is None:
            return ExecResult(0, b"")
        if isinstance(hook, ExecResult):
            return hook
        result = hook(command)
        if inspect.isawaitable(result):
            try:
                return await asyncio.wait_for(result, timeout)
            except TimeoutError:
                return ExecResult(EXEC_TIMEOUT_EXIT_CODE,
                                  f"command timed out after {timeout:g}s".encode())
        return result

    async def exec_sync(self, container_id: str, command: Sequence[str],
                        timeout: float) -> ExecResult:
        self._enter("exec_sync", container_id, tuple(command))
        return await self._exec_result(self._get(container_id), command, timeout)

    async def exec_stream(self, container_id: str, command: Sequence[str], *, tty: bool,
                          stdin: bool) -> ExecSession:
        self._enter("exec_stream", container_id, tuple(command))
        result = await self._exec_result(self._get(container_id), command, None)
        return FakeExecSession(result)

    async def port_forward_socket(self, sandbox_id: str, port: int) -> socket.socket:
        self._enter("port_forward_socket", sandbox_id, port)
        c = self._get(sandbox_id)
        self._refresh(c)
        if not c.is_sandbox or c.state is not State.RUNNING:
            raise RuntimeError_(f"container {sandbox_id} is not running")
        try:
            return await connect_in_network_namespace(
                None, self.port_forwards.get(port, port), namespace_id=sandbox_id)
        except ConnectFailed as err:
            raise PortForwardError(str(err)) from None

    async def logs(self, container_id: str, *, follow: bool = False, tail: int | None = None,
                   timestamps: bool = False) -> AsyncGenerator[bytes, None]:
        self._enter("logs", container_id, follow, tail)
        c = self._get(container_id)
        data = bytes(c.log)
        if tail is not None:
            data = b"".join(data.splitlines(keepends=True)[-tail:] if tail > 0 else [])
        sent = len(c.log)

        def stamp(chunk: bytes) -> bytes:
            if not timestamps:
                return chunk
            ts = datetime.fromtimestamp(c.started_at or c.created_at, UTC).strftime(
                "%Y-%m-%dT%H:%M:%S.%fZ ").encode()
            return b"".join(ts + line for line in chunk.splitlines(keepends=True))

        if data:
            yield stamp(data)
        while follow:
            self._refresh(c)
            if len(c.log) > sent:
                chunk = bytes(c.log[sent:])
                sent += len(chunk)
                yield stamp(chunk)
                continue
            if c.state is not State.RUNNING or self.containers.get(c.id) is not c:
                return
            # Polls, because a scripted exit happens by the clock, not by an event.
            await asyncio.sleep(_FOLLOW_POLL)


class FakeExecSession:
    """An interactive exec whose output and exit code come from `exec_results`; what the
    caller writes is kept in `stdin`."""

    def __init__(self, result: ExecResult) -> None:
        self.result = result
        self.stdin = bytearray()
        self.stdin_closed = False
        self.size: tuple[int, int] | None = None

    async def write(self, data: bytes) -> None:
        self.stdin += data

    async def close_stdin(self) -> None:
        self.stdin_closed = True

    async def output(self) -> AsyncGenerator[tuple[int, bytes], None]:
        if self.result.output:
            yield 1, self.result.output

    async def resize(self, rows: int, columns: int) -> None:
        self.size = (rows, columns)

    async def exit_code(self) -> int:
        return self.result.exit_code


__all__ = ["FakeContainer", "FakeExecSession", "FakeRuntime", "Script", "fake_image_id",
           "normalize_image"]
