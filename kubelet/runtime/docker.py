"""`DockerRuntime`: the container runtime interface on a Docker engine (the only module
that imports `docker`).

A pod is a pause container (the sandbox: it owns the network and IPC namespaces, and the
pod IP is its address) plus app containers that join it with `network_mode` and `ipc_mode`
`container:<sandbox id>`, as dockershim did.

Blocking SDK calls run in a small thread pool of this runtime's own, never on the event
loop. Streams that may last (followed logs, execs) get a thread each, so that a hung exec or
a log follower cannot starve the pool the relist depends on. Interactive execs
(`exec_stream`) are kubelet/runtime/docker_exec.py's.

Costs, because `list_containers` runs every second on every node: one list request per call;
an inspect of a container only when the list shows it in a state not seen before (created,
running, exited), cached by (id, state); one image inspect per image id, ever.

Errors: an engine that cannot be reached (socket missing, daemon stopped or not answering)
raises `RuntimeUnavailable` from every call; the engine's own explanations are passed on in
`CreateContainerError`, `StartContainerError` (with the runc noise stripped: `exec:
"nosuchcmd": executable file not found in $PATH`), `ImagePullError` and `NotFound`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import math
import os
import re
import signal
import socket
import threading
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar

import docker
import docker.errors
import docker.types
import requests.exceptions

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
    DnsConfig,
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
from kubelet.runtime.docker_exec import docker_exec_stream
from kubelet.runtime.netns import ConnectFailed, connect_in_network_namespace
from kubelet.runtime.pause import PAUSE_IMAGE, ensure_pause_image

# The image as the user wrote it: the engine reports a sha256 instead once the tag moves.
LABEL_IMAGE = "io.skiff.container.image"
# On app containers: the sandbox they joined, so removing a sandbox removes its containers
# (CRI's RemovePodSandbox) with one filtered list.
LABEL_SANDBOX_ID = "io.skiff.sandbox.id"

# `exec_sync` past its timeout: the exit code GNU timeout(1) uses, and a message as output.
EXEC_TIMEOUT_EXIT_CODE = 124

_T = TypeVar("_T")

_STATES = {
    "created": State.CREATED,
    "running": State.RUNNING,
    "paused": State.RUNNING,
    "restarting": State.RUNNING,
    "exited": State.EXITED,
    "dead": State.EXITED,
    "removing": State.EXITED,
}

# Layers of wrapping that containerd and runc put around the reason a process did not start.
_NOISE = re.compile(
    r"^(?:failed to create shim task|failed to create task for container|"
    r"OCI runtime (?:create|start|exec) failed|runc (?:create|exec) failed|"
    r"container_linux\.go:\d+|unable to start container process|"
    r"starting container process caused|error during container init|exec failed)"
    r"\s*:\s*"
)
_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|([+-])(\d\d):(\d\d))$"
)
_EXITED_STATUS = re.compile(r"^Exited \((-?\d+)\)")


def clean_engine_error(message: str) -> str:
    """The cause of an engine error without containerd's and runc's prefixes.

    `failed to create shim task: OCI runtime create failed: runc create failed: unable to
    start container process: exec: "x": executable file not found in $PATH: unknown`
    becomes `exec: "x": executable file not found in $PATH`.
    """
    text = message.strip()
    while True:
        m = _NOISE.match(text)
        if not m:
            break
        text = text[m.end():]
    text = text.removesuffix(": unknown")
    return text or message.strip()


def parse_timestamp(value: str | None) -> float:
    """Docker's RFC 3339 times (nanoseconds, `Z` or an offset) as unix seconds; the zero
    time (`0001-01-01T00:00:00Z`, "never") and anything unparsable as 0.0."""
    if not value:
        return 0.0
    m = _TIMESTAMP.match(value)
    if not m or m.group(1) == "0001":
        return 0.0
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    dt = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    if m.group(9):
        offset = timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
        dt -= offset if m.group(9) == "+" else -offset
    fraction = float("0." + m.group(7)) if m.group(7) else 0.0
    return dt.timestamp() + fraction


def normalize_image(image: str) -> str:
    """`busybox` -> `busybox:latest`; a tag or a digest is kept. (The engine itself maps
    `busybox` and `docker.io/library/busybox` to the same image.)"""
    if "@" in image:
        return image
    last = image.rsplit("/", 1)[-1]
    return image if ":" in last else image + ":latest"


def cpu_shares(request_millis: int) -> int:
    """Kubernetes' MilliCPUToShares: 1 CPU = 1024 shares, at least 2 (also with no request,
    so best-effort containers yield to everything with a request)."""
    return max(2, request_millis * 1024 // 1000)


_MASQUERADE_OPTION = "com.docker.network.bridge.enable_ip_masquerade"
_BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"


def _network_info(data: dict[str, Any]) -> NetworkInfo:
    """A network as the engine's inspect shows it. Its bridge on the host is named by an
    option, else `br-` and the first 12 digits of its id (the engine's rule)."""
    options = data.get("Options") or {}
    configs = (data.get("IPAM") or {}).get("Config") or []
    first = configs[0] if configs else {}
    network_id = str(data.get("Id", ""))
    return NetworkInfo(
        name=str(data.get("Name", "")), id=network_id,
        subnet=str(first.get("Subnet") or ""), gateway=str(first.get("Gateway") or ""),
        interface=str(options.get(_BRIDGE_NAME_OPTION) or f"br-{network_id[:12]}"),
        labels=dict(data.get("Labels") or {}),
        masquerade=str(options.get(_MASQUERADE_OPTION, "true")).lower() != "false",
        containers=tuple(sorted((data.get("Containers") or {}).keys())))


def _short(uid: str) -> str:
    return uid.replace("-", "")[:8]


class DockerRuntime:
    """The `ContainerRuntime` protocol on a Docker engine.

    `client`: a `docker.DockerClient` or `docker.APIClient`; by default one from the
    environment (DOCKER_HOST, else /var/run/docker.sock) is made at the first call, and made
    again at the next call if the engine did not answer.
    """

    def __init__(self, client: Any = None, *, pause_image: str = PAUSE_IMAGE,
                 max_workers: int = 8) -> None:
        self._client = client
        self._api: Any = None
        self._api_lock = threading.Lock()
        self.pause_image = pause_image
        self._pause_ready = False
        self._pause_lock = threading.Lock()
        # Fewer workers than the SDK's 10 pooled connections, so none is ever thrown away.
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="skiff-docker"
        )
        # id -> ((state, exit code seen in the list), info): see list_containers.
        self._inspected: dict[str, tuple[tuple[str, int | None], ContainerInfo]] = {}
        self._image_refs: dict[tuple[str, str], str] = {}

    def close(self) -> None:
        """Frees the threads (and the client, when this runtime made it)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._client is None and self._api is not None:
            with contextlib.suppress(Exception):
                self._api.close()

    # ---- plumbing ----

    def _api_client(self) -> Any:
        """The low-level `docker.APIClient`, made on first use. Blocking."""
        if self._api is not None:
            return self._api
        with self._api_lock:
            if self._api is None:
                if self._client is None:
                    try:
                        self._api = docker.from_env(version="auto").api
                    except docker.errors.DockerException as e:
                        raise RuntimeUnavailable(f"docker engine unreachable: {e}") from e
                else:
                    self._api = getattr(self._client, "api", self._client)
        return self._api

    def _call(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Runs `fn(api, *args)` in this thread, turning a dead engine into
        RuntimeUnavailable, and any engine error `fn` did not map into the runtime's own
        (callers of the protocol never see the SDK's exceptions)."""
        try:
            return fn(self._api_client(), *args)
        except requests.exceptions.ConnectionError as e:
            raise RuntimeUnavailable(f"docker engine unreachable: {e}") from e
        except requests.exceptions.Timeout as e:
            raise RuntimeUnavailable(f"docker engine did not answer: {e}") from e
        except docker.errors.NotFound as e:
            raise NotFound(str(e.explanation or e)) from e
        except docker.errors.APIError as e:
            raise RuntimeError_(clean_engine_error(str(e.explanation or e))) from e
        except docker.errors.DockerException as e:
            raise RuntimeError_(str(e)) from e

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(self._call, fn, *args)
        )

    # ---- version ----

    async def version(self) -> str:
        info = await self._run(lambda api: api.version())
        return f"docker://{info.get('Version', 'unknown')}"

    # ---- networks ----

    async def inspect_network(self, name: str) -> NetworkInfo | None:
        return await self._run(self._inspect_network, name)

    @staticmethod
    def _inspect_network(api: Any, name: str) -> NetworkInfo | None:
        try:
            data = api.inspect_network(name)
        except docker.errors.NotFound:
            return None
        # The engine also answers to an id prefix: only the network of that name counts.
        return _network_info(data) if data.get("Name") == name else None

    async def create_network(self, config: NetworkConfig) -> NetworkInfo:
        return await self._run(self._create_network, config)

    def _create_network(self, api: Any, config: NetworkConfig) -> NetworkInfo:
        ipam = docker.types.IPAMConfig(pool_configs=[
            docker.types.IPAMPool(subnet=config.subnet, gateway=config.gateway)])
        options = {_MASQUERADE_OPTION: "true" if config.masquerade else "false"}
        try:
            api.create_network(config.name, driver="bridge", ipam=ipam, options=options,
                               labels=dict(config.labels), check_duplicate=True)
        except docker.errors.APIError as e:
            raise RuntimeError_(
                f"creating network {config.name} ({config.subnet}): "
                f"{clean_engine_error(str(e.explanation or e))}") from e
        info = self._inspect_network(api, config.name)
        if info is None:
            raise RuntimeError_(f"network {config.name} vanished right after it was made")
        return info

    async def remove_network(self, name: str) -> None:
        await self._run(self._remove_network, name)

    @staticmethod
    def _remove_network(api: Any, name: str) -> None:
        try:
            api.remove_network(name)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as e:
            raise RuntimeError_(
                f"removing network {name}: {clean_engine_error(str(e.explanation or e))}"
            ) from e

    # ---- sandboxes ----

    def _ensure_pause(self, api: Any) -> None:
        if self._pause_ready:
            return
        with self._pause_lock:
            if not self._pause_ready:
                try:
                    ensure_pause_image(api, self.pause_image)
                except docker.errors.APIError as e:
                    raise CreateContainerError(
                        f"building {self.pause_image}: {e.explanation or e}",
                        reason="CreatePodSandboxError",
                    ) from e
                self._pause_ready = True

    async def run_sandbox(self, config: SandboxConfig) -> str:
        return await self._run(self._run_sandbox, config)

    def _run_sandbox(self, api: Any, config: SandboxConfig) -> str:
        self._ensure_pause(api)
        labels = {
            **config.labels,
            LABEL_POD_UID: config.pod_uid,
            LABEL_POD_NAMESPACE: config.namespace,
            LABEL_POD_NAME: config.name,
            LABEL_SANDBOX: "true",
            LABEL_ATTEMPT: str(config.attempt),
            LABEL_IMAGE: self.pause_image,
        }
        name = (f"skiff_{config.namespace}_{config.name}_{_short(config.pod_uid)}"
                f"_pause_{config.attempt}")
        host_kwargs: dict[str, Any] = {
            "ipc_mode": "shareable",
            "restart_policy": {"Name": "no"},
            "init": False,
        }
        create_kwargs: dict[str, Any] = {}
        if config.host_network:
            # The engine refuses hostname, DNS and published ports with the host's network:
            # the pod has the node's.
            host_kwargs["network_mode"] = "host"
        else:
            host_kwargs["network_mode"] = config.network or "bridge"
            if config.hostname:
                create_kwargs["hostname"] = config.hostname
            bindings: dict[str, list[Any]] = {}
            for pm in config.port_mappings:
                if pm.host_port <= 0:  # as in Kubernetes: only hostPorts are published
                    continue
                key = f"{pm.container_port}/{pm.protocol.lower()}"
                bindings.setdefault(key, []).append(
                    (pm.host_ip, pm.host_port) if pm.host_ip else pm.host_port
                )
            if bindings:
                host_kwargs["port_bindings"] = bindings
                create_kwargs["ports"] = [tuple(k.split("/")) for k in bindings]

        def create() -> str:
            host_config = api.create_host_config(**host_kwargs)
            created = api.create_container(
                self.pause_image, name=name, labels=labels, host_config=host_config,
                **create_kwargs,
            )
            return str(created["Id"])

        try:
            try:
                sandbox_id = self._create_retrying(api, name, config.pod_uid, create)
            except docker.errors.ImageNotFound:
                # Someone removed the pause image since we made it: make it again, once.
                self._pause_ready = False
                self._ensure_pause(api)
                sandbox_id = self._create_retrying(api, name, config.pod_uid, create)
        except docker.errors.APIError as e:
            raise CreateContainerError(
                clean_engine_error(str(e.explanation or e)), reason="CreatePodSandboxError"
            ) from e
        try:
            api.start(sandbox_id)
            if config.dns is not None:
                _write_resolv_conf(api, sandbox_id, config.dns)
        except (docker.errors.APIError, OSError) as e:
            # e.g. "Bind for 0.0.0.0:80 failed: port is already allocated": leave nothing
            # behind, so the kubelet's retry with the same name finds the name free.
            with contextlib.suppress(docker.errors.APIError):
                api.remove_container(sandbox_id, force=True, v=True)
            message = (str(e.explanation or e) if isinstance(e, docker.errors.APIError)
                       else f"writing the pod's resolv.conf: {e}")
            raise CreateContainerError(
                clean_engine_error(message), reason="CreatePodSandboxError") from e
        return sandbox_id

    def _create_retrying(self, api: Any, name: str, pod_uid: str,
                         create: Callable[[], str]) -> str:
        """`create()`, and if the name is taken by a leftover of the same pod that is not
        running (a kubelet that died between create and start, then restarted), removes
        the leftover and tries once more. Anything else keeps the conflict error."""
        try:
            return create()
        except docker.errors.APIError as e:
            if e.status_code != 409:
                raise
            try:
                other = api.inspect_container(name)
            except docker.errors.NotFound:
                return create()
            labels = other.get("Config", {}).get("Labels") or {}
            if labels.get(LABEL_POD_UID) != pod_uid or other["State"].get("Running"):
                raise
            api.remove_container(other["Id"], force=True, v=True)
            return create()

    async def stop_sandbox(self, sandbox_id: str) -> None:
        # The pause process ignores SIGTERM (PID 1, no handlers): kill it at once.
        await self.stop_container(sandbox_id, 0)

    async def remove_sandbox(self, sandbox_id: str) -> None:
        members = await self._run(
            lambda api: api.containers(
                all=True, filters={"label": f"{LABEL_SANDBOX_ID}={sandbox_id}"}
            )
        )
        for c in members:
            await self.remove_container(c["Id"])
        await self.remove_container(sandbox_id)

    # ---- containers ----

    async def create_container(self, sandbox_id: str, config: ContainerConfig,
                               sandbox: SandboxConfig) -> str:
        return await self._run(self._create_container, sandbox_id, config, sandbox)

    def _create_container(self, api: Any, sandbox_id: str, config: ContainerConfig,
                          sandbox: SandboxConfig) -> str:
        if config.run_as_group is not None and config.run_as_user is None:
            # Docker's --user cannot name a group without a user (dockershim said the same).
            raise CreateContainerError("runAsGroup is specified without a runAsUser")
        attempt = config.labels.get(LABEL_ATTEMPT, "0")
        labels = {
            **config.labels,
            LABEL_POD_UID: sandbox.pod_uid,
            LABEL_POD_NAMESPACE: sandbox.namespace,
            LABEL_POD_NAME: sandbox.name,
            LABEL_CONTAINER_NAME: config.name,
            LABEL_ATTEMPT: attempt,
            LABEL_IMAGE: config.image,
            LABEL_SANDBOX_ID: sandbox_id,
        }
        name = (f"skiff_{sandbox.namespace}_{sandbox.name}_{_short(sandbox.pod_uid)}"
                f"_{config.name}_{attempt}")
        # Kubernetes semantics: `command` replaces ENTRYPOINT and, given one, the engine
        # drops the image's CMD too, so `args` (or nothing) is the whole CMD; `args` alone
        # keeps ENTRYPOINT and replaces CMD.
        entrypoint = list(config.command) if config.command else None
        cmd = list(config.args) if config.args else None
        host_kwargs: dict[str, Any] = {
            "network_mode": f"container:{sandbox_id}",
            "ipc_mode": f"container:{sandbox_id}",
            "restart_policy": {"Name": "no"},  # the kubelet restarts, with back-off
            "init": False,
            "privileged": config.privileged,
            "binds": [
                f"{m.host_path}:{m.container_path}:{'ro' if m.read_only else 'rw'}"
                for m in config.mounts
            ],
            "cpu_shares": cpu_shares(config.cpu_request_millis),
        }
        if config.cpu_limit_millis > 0:
            host_kwargs["nano_cpus"] = config.cpu_limit_millis * 1_000_000
        if config.memory_limit_bytes > 0:
            # Swap limited to the same value: no swap, as in Kubernetes, so the limit holds.
            host_kwargs["mem_limit"] = config.memory_limit_bytes
            host_kwargs["memswap_limit"] = config.memory_limit_bytes
        if config.cap_add:
            host_kwargs["cap_add"] = list(config.cap_add)
        if config.cap_drop:
            host_kwargs["cap_drop"] = list(config.cap_drop)
        if config.read_only_rootfs:
            host_kwargs["read_only"] = True
        if config.log_max_bytes > 0:
            host_kwargs["log_config"] = docker.types.LogConfig(
                type="json-file",
                config={"max-size": str(config.log_max_bytes),
                        "max-file": str(max(1, config.log_max_files))},
            )
        user = None
        if config.run_as_user is not None:
            user = str(config.run_as_user)
            if config.run_as_group is not None:
                user += f":{config.run_as_group}"

        def create() -> str:
            created = api.create_container(
                config.image,
                command=cmd,
                entrypoint=entrypoint,
                name=name,
                environment=[f"{k}={v}" for k, v in config.env],
                working_dir=config.working_dir or None,
                user=user,
                tty=config.tty,
                stdin_open=config.stdin,
                labels=labels,
                host_config=api.create_host_config(**host_kwargs),
            )
            return str(created["Id"])

        try:
            return self._create_retrying(api, name, sandbox.pod_uid, create)
        except docker.errors.APIError as e:
            raise CreateContainerError(clean_engine_error(str(e.explanation or e))) from e

    async def start_container(self, container_id: str) -> None:
        await self._run(self._start_container, container_id)

    def _start_container(self, api: Any, container_id: str) -> None:
        self._inspected.pop(container_id, None)
        try:
            api.start(container_id)
        except docker.errors.NotFound as e:
            raise NotFound(str(e.explanation or e)) from e
        except docker.errors.APIError as e:
            raise StartContainerError(clean_engine_error(str(e.explanation or e))) from e
        finally:
            # The failed start's error, or the new state, must show in the next list.
            self._inspected.pop(container_id, None)

    async def stop_container(self, container_id: str, timeout: float) -> None:
        await self._run(self._stop_container, container_id, timeout)

    def _stop_container(self, api: Any, container_id: str, timeout: float) -> None:
        try:
            # The engine takes whole seconds; round up so a grace period is never cut short.
            # A stopped container answers 304, which the SDK does not raise: idempotent.
            api.stop(container_id, timeout=max(0, math.ceil(timeout)))
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            raise RuntimeError_(str(e.explanation or e)) from e

    async def remove_container(self, container_id: str) -> None:
        await self._run(self._remove_container, container_id)

    def _remove_container(self, api: Any, container_id: str) -> None:
        self._inspected.pop(container_id, None)
        try:
            api.remove_container(container_id, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            if e.status_code == 409 and "already in progress" in str(e.explanation):
                return
            raise RuntimeError_(str(e.explanation or e)) from e

    async def list_containers(self) -> list[ContainerInfo]:
        entries = await self._run(
            lambda api: api.containers(all=True, filters={"label": LABEL_POD_UID})
        )
        seen: set[str] = set()
        infos: dict[str, ContainerInfo] = {}
        misses: list[tuple[str, tuple[str, int | None]]] = []
        for entry in entries:
            cid = entry["Id"]
            seen.add(cid)
            state = entry.get("State", "")
            exited = _EXITED_STATUS.match(entry.get("Status", ""))
            # The exit code is part of the key so that a container restarted and exited
            # again between two lists is still inspected anew.
            key = (state, int(exited.group(1)) if exited else None)
            cached = self._inspected.get(cid)
            if cached is not None and cached[0] == key:
                infos[cid] = cached[1]
            else:
                misses.append((cid, key))
        if misses:
            results = await asyncio.gather(
                *(self._run(self._inspect, cid) for cid, _ in misses), return_exceptions=True
            )
            for (cid, key), result in zip(misses, results, strict=True):
                if isinstance(result, NotFound):
                    continue  # removed since the list
                if isinstance(result, BaseException):
                    raise result
                infos[cid] = result
                # A created container may still start or fail: only its failure is final.
                if result.state is not State.CREATED:
                    self._inspected[cid] = (key, result)
        for cid in list(self._inspected):
            if cid not in seen:
                del self._inspected[cid]
        return [infos[e["Id"]] for e in entries if e["Id"] in infos]

    async def container_status(self, container_id: str) -> ContainerInfo:
        return await self._run(self._inspect, container_id)

    def _inspect(self, api: Any, container_id: str) -> ContainerInfo:
        try:
            data = api.inspect_container(container_id)
        except docker.errors.NotFound as e:
            raise NotFound(str(e.explanation or e)) from e
        return self._info(api, data)

    def _info(self, api: Any, data: dict[str, Any]) -> ContainerInfo:
        st = data.get("State") or {}
        config = data.get("Config") or {}
        labels = dict(config.get("Labels") or {})
        status = st.get("Status", "")
        state = _STATES.get(status, State.UNKNOWN)
        error = clean_engine_error(st["Error"]) if st.get("Error") else ""
        exit_code = 0
        reason = ""
        if state is State.CREATED and error:
            # The start failed (e.g. no such executable): the engine leaves the container
            # "created" with the error; to the kubelet it is a terminated attempt.
            state = State.EXITED
            exit_code = int(st.get("ExitCode") or 128)
            reason = "ContainerCannotRun"
        elif state is State.EXITED:
            exit_code = int(st.get("ExitCode") or 0)
            if st.get("OOMKilled"):
                reason = "OOMKilled"
            else:
                reason = "Completed" if exit_code == 0 else "Error"
        started_at = parse_timestamp(st.get("StartedAt"))
        finished_at = parse_timestamp(st.get("FinishedAt"))
        if finished_at and started_at > finished_at:
            # The engine stamps StartedAt after runc returns; a process that exits at once
            # can be "finished" before that. It cannot have started after it finished.
            started_at = finished_at
        image = labels.get(LABEL_IMAGE) or config.get("Image", "")
        ip = ""
        if labels.get(LABEL_SANDBOX) == "true":
            networks = (data.get("NetworkSettings") or {}).get("Networks") or {}
            ip = next((n["IPAddress"] for n in networks.values() if n.get("IPAddress")), "")
        return ContainerInfo(
            id=data["Id"],
            labels=labels,
            image=image,
            image_id=self._image_ref(api, data.get("Image", ""), image),
            state=state,
            created_at=parse_timestamp(data.get("Created")),
            started_at=started_at,
            finished_at=finished_at,
            exit_code=exit_code,
            reason=reason,
            message=error,
            ip=ip,
        )

    def _image_ref(self, api: Any, image_id: str, image: str) -> str:
        """`docker-pullable://repo@sha256:...` for an image that came from a registry (its
        repo digest, preferring the repository the user named), else the id `sha256:...`.
        Images never change under an id, so each is inspected once."""
        if not image_id:
            return ""
        cached = self._image_refs.get((image_id, image))
        if cached is not None:
            return cached
        ref = image_id
        try:
            digests = api.inspect_image(image_id).get("RepoDigests") or []
        except docker.errors.NotFound:
            digests = []
        if digests:
            # RepoDigests read "repo@sha256:...": prefer the repository the user named.
            named = normalize_image(image)
            repo = named.split("@", 1)[0] if "@" in named else named.rsplit(":", 1)[0]
            chosen = next((d for d in digests if d.split("@", 1)[0] == repo), digests[0])
            ref = f"docker-pullable://{chosen}"
        self._image_refs[(image_id, image)] = ref
        return ref

    # ---- images ----

    async def image_id(self, image: str) -> str | None:
        return await self._run(self._image_id, image)

    @staticmethod
    def _image_id(api: Any, image: str) -> str | None:
        try:
            return str(api.inspect_image(normalize_image(image))["Id"])
        except docker.errors.NotFound:
            return None

    async def pull_image(self, image: str, auth: Auth | None = None) -> str:
        return await self._run(self._pull_image, image, auth)

    def _pull_image(self, api: Any, image: str, auth: Auth | None) -> str:
        auth_config = None
        if auth is not None:
            auth_config = {"username": auth.username, "password": auth.password}
            if auth.server:
                auth_config["serveraddress"] = auth.server
        ref = normalize_image(image)
        try:
            # Streamed: the engine reports most failures (unauthorized, manifest unknown)
            # inside a 200 response, which the unstreamed call would not raise.
            for message in api.pull(ref, stream=True, decode=True, auth_config=auth_config):
                if isinstance(message, dict) and message.get("error"):
                    detail = (message.get("errorDetail") or {}).get("message")
                    raise ImagePullError(detail or str(message["error"]))
        except docker.errors.APIError as e:
            raise ImagePullError(str(e.explanation or e)) from e
        found = self._image_id(api, ref)
        if found is None:
            raise ImagePullError(f"pulled {image} but the engine does not have it")
        return found

    # ---- exec and logs ----

    async def exec_sync(self, container_id: str, command: Sequence[str],
                        timeout: float) -> ExecResult:
        """Runs `command` in the container; output is stdout and stderr interleaved.

        Past `timeout` seconds: ExecResult(EXEC_TIMEOUT_EXIT_CODE (124), a message), and the
        exec'd process is killed (SIGKILL) if this process can see it and /proc says it is
        in that container's cgroup; its children may outlive it, and the thread reading the
        exec's output ends when they do. Raises NotFound for a missing container and
        RuntimeError_ (the engine's message) for one that is not running.
        """
        exec_id = await self._run(self._exec_create, container_id, list(command))
        loop = asyncio.get_running_loop()
        # None: the engine's HTTP read timed out first (the command still runs).
        done: asyncio.Future[tuple[bytes, int | None] | None] = loop.create_future()

        def settle(fn: Callable[[], None]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                loop.call_soon_threadsafe(lambda: None if done.done() else fn())

        def work() -> None:
            try:
                result = self._call(self._exec_run, exec_id)
            except BaseException as e:
                settle(functools.partial(done.set_exception, e))
            else:
                settle(functools.partial(done.set_result, result))

        # A thread of its own rather than the pool: a command that never ends (and
        # outlives the kill below) must not take a worker that relists need.
        threading.Thread(target=work, name="skiff-docker-exec", daemon=True).start()
        try:
            result = await asyncio.wait_for(asyncio.shield(done), timeout)
        except TimeoutError:
            result = None
        if result is None:
            done.cancel()
            await self._run(self._exec_kill, container_id, exec_id)
            return ExecResult(
                EXEC_TIMEOUT_EXIT_CODE, f"command timed out after {timeout:g}s".encode()
            )
        output, code = result
        return ExecResult(code if code is not None else -1, output)

    @staticmethod
    def _exec_create(api: Any, container_id: str, command: list[str]) -> str:
        try:
            return str(api.exec_create(container_id, command, stdout=True, stderr=True)["Id"])
        except docker.errors.NotFound as e:
            raise NotFound(str(e.explanation or e)) from e
        except docker.errors.APIError as e:
            raise RuntimeError_(str(e.explanation or e)) from e

    @staticmethod
    def _exec_run(api: Any, exec_id: str) -> tuple[bytes, int | None] | None:
        try:
            output = api.exec_start(exec_id)
        except (requests.exceptions.ReadTimeout, TimeoutError):
            # Should the client's HTTP timeout reach the exec's socket (with docker 7.2 it
            # does not: a 4 s exec under a 2 s client timeout completes), it timed out.
            return None
        # The output ends when the process closes it, which can be a moment before the
        # engine has recorded the exit code.
        deadline = time.monotonic() + 2.0
        while True:
            info = api.exec_inspect(exec_id)
            if info.get("ExitCode") is not None or time.monotonic() > deadline:
                return bytes(output or b""), info.get("ExitCode")
            time.sleep(0.01)

    @staticmethod
    def _exec_kill(api: Any, container_id: str, exec_id: str) -> None:
        try:
            info = api.exec_inspect(exec_id)
        except docker.errors.APIError:
            return
        pid, owner = int(info.get("Pid") or 0), str(info.get("ContainerID") or container_id)
        if pid <= 0 or not info.get("Running"):
            return
        # The Pid is the engine's view: only kill it when this process sees the same PID
        # namespace, which the container's id in the process's cgroup path confirms.
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                if owner not in f.read():
                    return
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass

    async def logs(self, container_id: str, *, follow: bool = False, tail: int | None = None,
                   timestamps: bool = False) -> AsyncGenerator[bytes, None]:
        """Chunks of the container's output as the engine sends them. With `follow`, ends
        when the container stops; a consumer that stops iterating (or closes the
        generator) closes the stream, which ends the reading thread."""
        feed: _Feed[bytes] = _Feed(asyncio.get_running_loop())

        def pump(api: Any) -> None:
            try:
                s = api.logs(container_id, stdout=True, stderr=True, stream=True,
                             follow=follow, timestamps=timestamps,
                             tail="all" if tail is None else max(0, tail))
            except docker.errors.NotFound as e:
                raise NotFound(str(e.explanation or e)) from e
            if not feed.on_close(s.close):
                return
            for chunk in s:
                if not feed.put(bytes(chunk)):
                    return

        feed.start(lambda: self._call(pump), "skiff-docker-logs")
        try:
            while (item := await feed.get()) is not None:
                yield item
        finally:
            feed.close()

    async def exec_stream(self, container_id: str, command: Sequence[str], *, tty: bool,
                          stdin: bool) -> ExecSession:
        """Starts `command` with its streams attached (`skiff exec -it`); the session is
        kubelet/runtime/docker_exec.py's."""
        api = await self._run(lambda api: api)  # made here, so a dead engine is reported
        return await docker_exec_stream(api, container_id, command, tty=tty, stdin=stdin)

    # ---- port-forward ----

    async def port_forward_socket(self, sandbox_id: str, port: int) -> socket.socket:
        netns = await self._run(self._sandbox_netns, sandbox_id)
        try:
            return await connect_in_network_namespace(netns, port, namespace_id=sandbox_id)
        except ConnectFailed as err:
            raise PortForwardError(str(err)) from None

    @staticmethod
    def _sandbox_netns(api: Any, sandbox_id: str) -> str | None:
        """/proc/PID/ns/net of the sandbox's process (the engine and the kubelet share the
        node's pid namespace); None when the sandbox has the node's network."""
        data = api.inspect_container(sandbox_id)
        if (data.get("HostConfig") or {}).get("NetworkMode") == "host":
            return None
        state = data.get("State") or {}
        pid = int(state.get("Pid") or 0)
        if not state.get("Running") or pid <= 0:
            raise RuntimeError_(f"container {sandbox_id} is not running")
        return f"/proc/{pid}/ns/net"


class _Feed(Generic[_T]):
    """Items made by a blocking thread, read by a coroutine; None ends the feed.

    The thread blocks while the queue is full (back-pressure on a chatty stream) and gives up
    once the reader closes the feed or the loop is gone, so no thread outlives its reader for
    longer than a blocking read of its stream, which `on_close` callbacks interrupt.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, maxsize: int = 64) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[_T | BaseException | None] = asyncio.Queue(maxsize)
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._closers: list[Callable[[], None]] = []

    def start(self, work: Callable[[], None], name: str) -> None:
        """Runs `work` in a daemon thread; its end (or its error) ends the feed."""

        def run() -> None:
            try:
                work()
            except BaseException as e:
                self.put(e if isinstance(e, RuntimeError_) else RuntimeError_(str(e)))
            else:
                self.put(None)

        threading.Thread(target=run, name=name, daemon=True).start()

    def on_close(self, closer: Callable[[], None]) -> bool:
        """Registers how to interrupt the thread's blocking read (e.g. close the socket);
        False (after calling it) if the reader has gone already."""
        with self._lock:
            if not self._closed.is_set():
                self._closers.append(closer)
                return True
        with contextlib.suppress(Exception):
            closer()
        return False

    def put(self, item: _T | BaseException | None) -> bool:
        if self._closed.is_set():
            return False
        try:
            fut = asyncio.run_coroutine_threadsafe(self._queue.put(item), self._loop)
        except RuntimeError:  # the loop is closed
            return False
        while True:
            try:
                fut.result(timeout=0.5)
                return True
            except concurrent.futures.TimeoutError:
                if self._closed.is_set() or self._loop.is_closed():
                    fut.cancel()
                    return False
            except (concurrent.futures.CancelledError, RuntimeError):
                return False

    async def get(self) -> _T | None:
        item = await self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        with self._lock:
            self._closed.set()
            closers, self._closers = self._closers, []
        for closer in closers:
            with contextlib.suppress(Exception):
                closer()


def _write_resolv_conf(api: Any, sandbox_id: str, dns: DnsConfig) -> None:
    """The pod's resolv.conf, written over the one the engine made for its sandbox, as
    Kubernetes' dockershim did: every container of the pod shares the sandbox's (they join
    its network namespace). Not the engine's --dns: on a network of its own (the pod
    network's bridge) the engine points resolv.conf at its embedded resolver, 127.0.0.11,
    and the pod would not see the nameserver it was given."""
    path = Path(api.inspect_container(sandbox_id)["ResolvConfPath"])
    temporary = path.with_name(path.name + ".skiff")
    temporary.write_text(dns.resolv_conf())
    temporary.chmod(0o644)
    os.replace(temporary, path)
