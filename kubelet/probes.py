"""Liveness, readiness and startup probes, as the kubelet's prober runs them.

`run_probe` performs one check (exec in the container, an HTTP GET, a TCP connect) and
returns a `ProbeResult` whose message is worded as Kubernetes words it, so `skiff describe`
shows the same `Liveness probe failed: ...` events a Kubernetes user knows.

A `ProbeWorker` probes one container for one probe kind on a timer (initialDelaySeconds,
then every periodSeconds) and publishes a result only once a run of equal outcomes reaches
the threshold. The `ProbeManager` is what the kubelet uses: it keeps one worker per
(container id, kind), so a restarted container gets fresh workers, and answers
`liveness_failed`, `ready` and `started` for the pod worker and the status builder.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from kubelet.runtime import LABEL_INIT, ContainerInfo, ExecResult, RuntimeError_, State
from skiff.api.v1 import core_pb2, meta_pb2
from skiff.client.clock import Clock, RealClock, sleep_or_wake
from skiff.client.events import WARNING, Recorder

log = logging.getLogger(__name__)

USER_AGENT = "skiff-probe/1.0"
# Kubernetes keeps at most this much of an exec probe's output for the event message.
MAX_OUTPUT_BYTES = 10 * 1024
# How long past its timeout an exec may take before the prober stops waiting for it.
EXEC_TIMEOUT_GRACE = 2.0


class ProbeKind(enum.StrEnum):
    LIVENESS = "Liveness"
    READINESS = "Readiness"
    STARTUP = "Startup"

    @property
    def field(self) -> str:
        """The Container field holding this kind's Probe."""
        return f"{self.value.lower()}_probe"


@dataclass(frozen=True)
class ProbeResult:
    success: bool
    message: str = ""
    # The check could not be made at all (no such port name, the runtime failed): like
    # Kubernetes, such a result is reported but not counted towards a threshold.
    error: bool = False


class ExecRuntime(Protocol):
    """The part of `ContainerRuntime` a probe needs."""

    async def exec_sync(self, container_id: str, command: Sequence[str],
                        timeout: float) -> ExecResult: ...


class ProbeError(Exception):
    """The probe is misconfigured for this container (e.g. an unknown port name)."""


# ---------------------------------------------------------------------------------------
# One check
# ---------------------------------------------------------------------------------------

async def run_probe(probe: core_pb2.Probe, *, pod_ip: str, container_id: str,
                    runtime: ExecRuntime, container: core_pb2.Container) -> ProbeResult:
    """Runs `probe` once against the container."""
    timeout = float(probe.timeout_seconds or 1)
    try:
        if probe.HasField("exec"):
            return await exec_probe(probe.exec, container_id=container_id, runtime=runtime,
                                    timeout=timeout)
        if probe.HasField("http_get"):
            return await http_probe(probe.http_get, pod_ip=pod_ip, container=container,
                                    timeout=timeout)
        if probe.HasField("tcp_socket"):
            return await tcp_probe(probe.tcp_socket, pod_ip=pod_ip, container=container,
                                   timeout=timeout)
    except ProbeError as e:
        return ProbeResult(False, str(e), error=True)
    return ProbeResult(False, f"missing probe handler for container {container.name}",
                       error=True)


async def exec_probe(action: core_pb2.ExecAction, *, container_id: str, runtime: ExecRuntime,
                     timeout: float, grace: float | None = None) -> ProbeResult:
    """Exit code 0 is success; the message is the command's output, as in Kubernetes."""
    command = list(action.command)
    try:
        # The runtime enforces the timeout itself (and kills the command); this backstop,
        # a little later, keeps a runtime that does not from stalling the probe loop.
        async with asyncio.timeout(timeout + (EXEC_TIMEOUT_GRACE if grace is None else grace)):
            result = await runtime.exec_sync(container_id, command, timeout)
    except TimeoutError:
        return ProbeResult(False, f"command {_go_quote(' '.join(command))} timed out")
    except RuntimeError_ as e:
        return ProbeResult(False, e.message, error=True)
    output = result.output[:MAX_OUTPUT_BYTES].decode("utf-8", errors="replace")
    return ProbeResult(result.exit_code == 0, output)


def resolve_port(port: meta_pb2.IntOrString, container: core_pb2.Container) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    kind = port.WhichOneof("value")
    if kind == "int_val":
        number = port.int_val
    elif kind == "str_val":
        number = _named_port(port.str_val, container)
    else:
        raise ProbeError("probe port is not set")
    if not 0 < number < 65536:
        raise ProbeError(f"invalid port number: {number}")
    return number


def _named_port(name: str, container: core_pb2.Container) -> int:
    for p in container.ports:
        if p.name == name:
            return p.container_port
    # As Kubernetes: a last try at a number written as a string.
    try:
        return int(name)
    except ValueError:
        raise ProbeError(f"port {name} not found") from None


def _host(host: str, pod_ip: str) -> str:
    if host or pod_ip:
        return host or pod_ip
    # An empty host would reach this node itself, not the pod: never probe that.
    raise ProbeError("the pod has no IP address yet")


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _insecure_tls() -> ssl.SSLContext:
    # Kubernetes probes HTTPS endpoints without verifying the certificate: the pod's
    # serving certificate is rarely issued for its IP, and the probe checks health, not
    # identity. PROTOCOL_TLS_CLIENT without loading CAs is also cheap to build.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


_TLS = _insecure_tls()


async def http_probe(action: core_pb2.HTTPGetAction, *, pod_ip: str,
                     container: core_pb2.Container, timeout: float) -> ProbeResult:
    """GET the URL; 200-399 is success. Redirects are not followed (a 3xx is success)."""
    scheme = (action.scheme or "HTTP").lower()
    host = _host(action.host, pod_ip)
    port = resolve_port(action.port, container)
    path = action.path or "/"
    if not path.startswith("/"):
        path = "/" + path
    url = f"{scheme}://{join_host_port(host, port)}{path}"
    try:
        async with asyncio.timeout(timeout):
            code = await _get_status(host, port, path, action.http_headers,
                                     tls=scheme == "https")
    except TimeoutError:
        return ProbeResult(False, f'Get "{url}": context deadline exceeded '
                                  "(Client.Timeout exceeded while awaiting headers)")
    except _DialError as e:
        return ProbeResult(False, f'Get "{url}": {e}')
    except OSError as e:
        return ProbeResult(False, f'Get "{url}": {_os_error_text(e)}')
    except _HttpError as e:
        return ProbeResult(False, f'Get "{url}": {e}')
    if 200 <= code < 400:
        return ProbeResult(True, "")
    return ProbeResult(False, f"HTTP probe failed with statuscode: {code}")


class _HttpError(Exception):
    pass


class _DialError(Exception):
    pass


async def _dial(host: str, port: int, *, tls: bool = False
                ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        return await asyncio.open_connection(host, port, ssl=_TLS if tls else None)
    except ssl.SSLError as e:
        raise _DialError(f"tls: {e.reason or e}") from e
    except OSError as e:
        raise _DialError(_dial_error_text(host, port, e)) from e


async def _get_status(host: str, port: int, path: str,
                      headers: Iterable[core_pb2.HTTPHeader], *, tls: bool) -> int:
    reader, writer = await _dial(host, port, tls=tls)
    try:
        writer.write(_request(host, port, path, headers))
        await writer.drain()
        return await _read_status(reader)
    finally:
        # Only the status line matters; the body is not read. Not waiting for the close
        # keeps a peer that lingers from costing the probe its timeout.
        writer.close()


def _request(host: str, port: int, path: str, headers: Iterable[core_pb2.HTTPHeader]) -> bytes:
    lines = [f"GET {path} HTTP/1.1"]
    given = {h.name.lower() for h in headers}
    if "host" not in given:
        lines.append(f"Host: {join_host_port(host, port)}")
    if "user-agent" not in given:
        lines.append(f"User-Agent: {USER_AGENT}")
    if "accept" not in given:
        lines.append("Accept: */*")
    lines += [f"{h.name}: {h.value}" for h in headers]
    # One request per connection, as Kubernetes' prober (keep-alives disabled).
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace")


async def _read_status(reader: asyncio.StreamReader) -> int:
    try:
        line = await reader.readline()
    except ValueError as e:  # a status line longer than the stream's limit
        raise _HttpError("net/http: HTTP/1.x transport connection broken: "
                         "malformed HTTP response") from e
    if not line:
        raise _HttpError("EOF")
    text = line.decode("latin-1").rstrip("\r\n")
    parts = text.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise _HttpError("net/http: HTTP/1.x transport connection broken: "
                         f"malformed HTTP response {_go_quote(text[:64])}")
    return int(parts[1])


async def tcp_probe(action: core_pb2.TCPSocketAction, *, pod_ip: str,
                    container: core_pb2.Container, timeout: float) -> ProbeResult:
    """Success when a TCP connection opens within the timeout."""
    host = _host(action.host, pod_ip)
    port = resolve_port(action.port, container)
    try:
        async with asyncio.timeout(timeout):
            _, writer = await _dial(host, port)
    except TimeoutError:
        return ProbeResult(False, f"dial tcp {join_host_port(host, port)}: i/o timeout")
    except _DialError as e:
        return ProbeResult(False, str(e))
    writer.close()
    return ProbeResult(True, "")


def _dial_error_text(host: str, port: int, e: OSError) -> str:
    """An OSError from connecting, in the words of Go's net package."""
    if isinstance(e, socket.gaierror):
        return f"dial tcp: lookup {host}: no such host"
    return f"dial tcp {join_host_port(host, port)}: connect: {_os_error_text(e)}"


def _os_error_text(e: OSError) -> str:
    # Go prints the C library's text in lower case: "connection refused".
    if e.errno:
        return os.strerror(e.errno).lower()
    return str(e)


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------------------------------
# Results and workers
# ---------------------------------------------------------------------------------------

class ProbeResults:
    """The published result of each (container id, probe kind).

    True is success, False failure, None not known yet (a startup probe that has not
    decided); a missing entry is None as well.
    """

    def __init__(self) -> None:
        self._results: dict[tuple[str, ProbeKind], bool | None] = {}

    def get(self, container_id: str, kind: ProbeKind) -> bool | None:
        return self._results.get((container_id, kind))

    def set(self, container_id: str, kind: ProbeKind, value: bool | None) -> bool:
        """Records `value`; True when it differs from what was published before."""
        key = (container_id, kind)
        changed = key not in self._results or self._results[key] != value
        self._results[key] = value
        return changed

    def remove(self, container_id: str) -> None:
        for kind in ProbeKind:
            self._results.pop((container_id, kind), None)


@dataclass(frozen=True)
class ProbeEvent:
    """A failed check, for the pod's events (`Warning Unhealthy`)."""

    pod_uid: str
    container_name: str
    container_id: str
    kind: ProbeKind
    message: str
    reason: str = "Unhealthy"
    type: str = "Warning"


ProbeFn = Callable[..., Awaitable[ProbeResult]]  # run_probe's signature
# What a worker starts out publishing: readiness is not ready until it succeeds, liveness
# is alive until it fails, startup is undecided (not started, but not failed either).
_INITIAL: dict[ProbeKind, bool | None] = {
    ProbeKind.READINESS: False, ProbeKind.LIVENESS: True, ProbeKind.STARTUP: None,
}


@dataclass
class _Run:
    """The current run of equal outcomes."""

    success: bool | None = None
    length: int = 0

    def add(self, success: bool) -> int:
        if success == self.success:
            self.length += 1
        else:
            self.success, self.length = success, 1
        return self.length


class ProbeWorker:
    """Probes one container for one kind of probe until stopped or decided for good."""

    def __init__(self, *, kind: ProbeKind, pod_uid: str, container: core_pb2.Container,
                 container_id: str, started_at: float, runtime: ExecRuntime,
                 results: ProbeResults, on_change: Callable[[str], None],
                 pod_ip: Callable[[], str], clock: Clock | None = None,
                 gate: Callable[[], bool] = lambda: True, prober: ProbeFn = run_probe,
                 on_event: Callable[[ProbeEvent], None] | None = None) -> None:
        self.kind = kind
        self.pod_uid = pod_uid
        self.container = container
        self.container_id = container_id
        self.probe: core_pb2.Probe = getattr(container, kind.field)
        self._started_at = started_at  # unix seconds, as the runtime reports it
        self._runtime = runtime
        self._results = results
        self._on_change = on_change
        self._pod_ip = pod_ip
        self._clock = clock or RealClock()
        self._gate = gate  # closed: skip probing (liveness/readiness before startup)
        self._prober = prober
        self._on_event = on_event
        self._run = _Run()
        self._trigger = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # ---- lifecycle ----

    def start(self) -> None:
        self._results.set(self.container_id, self.kind, _INITIAL[self.kind])
        self._task = asyncio.get_running_loop().create_task(
            self._loop(), name=f"probe {self.kind} {self.container.name} {self.container_id}")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def wait_stopped(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def trigger(self) -> None:
        """Probe now instead of at the next period (e.g. right after startup succeeded)."""
        self._trigger.set()

    # ---- the loop ----

    def _initial_wait(self) -> float:
        delay = float(self.probe.initial_delay_seconds)
        if self._started_at <= 0:
            return delay
        # Counted from the container's start, so a kubelet that restarts and adopts a
        # running container does not delay its probes again.
        elapsed = self._clock.wall().timestamp() - self._started_at
        return min(delay, max(0.0, delay - elapsed))

    async def _loop(self) -> None:
        wait = self._initial_wait()
        if wait > 0:
            await self._clock.sleep(wait)
        period = float(self.probe.period_seconds or 10)
        while True:
            self._trigger.clear()
            if self._gate() and not await self.probe_once():
                return
            await self._wait(period)

    async def _wait(self, seconds: float) -> None:
        await sleep_or_wake(self._clock, seconds, self._trigger)

    async def probe_once(self) -> bool:
        """One check and its bookkeeping; False when this worker has nothing left to do."""
        result = await self._check()
        if not result.success:
            verb = "errored" if result.error else "failed"
            self._event(f"{self.kind} probe {verb}: {result.message}")
        if result.error:
            return True  # not counted, as Kubernetes throws such results away
        threshold = (self.probe.success_threshold if result.success
                     else self.probe.failure_threshold) or 1
        if self._run.add(result.success) < threshold:
            return True
        self._publish(result.success)
        if self.kind is ProbeKind.STARTUP and result.success:
            return False  # started: the startup probe is done for this container
        # A failed liveness or startup probe gets the container killed: no point probing
        # a container on its way out (and exec into a dying container can wedge Docker).
        return result.success or self.kind is ProbeKind.READINESS

    async def _check(self) -> ProbeResult:
        try:
            return await self._prober(self.probe, pod_ip=self._pod_ip(),
                                      container_id=self.container_id, runtime=self._runtime,
                                      container=self.container)
        except Exception as e:  # a bug or an unexpected runtime error: not a verdict
            log.warning("probe %s %s/%s: %r", self.kind, self.pod_uid, self.container.name, e)
            return ProbeResult(False, str(e), error=True)

    def _publish(self, success: bool) -> None:
        if self._results.set(self.container_id, self.kind, success):
            log.info("probe %s %s/%s (%s): %s", self.kind, self.pod_uid, self.container.name,
                     self.container_id[:12], "success" if success else "failure")
            self._on_change(self.pod_uid)

    def _event(self, message: str) -> None:
        if self._on_event is not None:
            self._on_event(ProbeEvent(self.pod_uid, self.container.name, self.container_id,
                                      self.kind, message))


# ---------------------------------------------------------------------------------------
# The manager
# ---------------------------------------------------------------------------------------

@dataclass
class _Tracked:
    """A running container being probed."""

    pod_uid: str
    name: str
    kinds: frozenset[ProbeKind]
    workers: dict[ProbeKind, ProbeWorker] = field(default_factory=dict)


@dataclass
class _PodEntry:
    meta: meta_pb2.ObjectMeta
    pod_ip: str = ""
    containers: set[str] = field(default_factory=set)  # ids of tracked containers


class ProbeManager:
    """Starts and stops probe workers as a pod's containers come and go.

    The pod worker calls `update` after every relist of the runtime and asks
    `liveness_failed` (kill and restart), `ready` and `started` (status). Workers are keyed
    by container id: a restarted container is a new id, so it gets fresh workers, fresh
    results and a fresh initial delay.
    """

    def __init__(self, runtime: ExecRuntime, *, on_change: Callable[[str], None],
                 clock: Clock | None = None, prober: ProbeFn = run_probe,
                 recorder: Recorder | None = None,
                 on_event: Callable[[ProbeEvent], None] | None = None) -> None:
        self.results = ProbeResults()
        self._runtime = runtime
        self._on_change = on_change
        self._clock = clock or RealClock()
        self._prober = prober
        self._recorder = recorder  # failed probes become the pod's Unhealthy events
        self._on_event = on_event
        self._pods: dict[str, _PodEntry] = {}
        self._containers: dict[str, _Tracked] = {}
        self._stopping: set[ProbeWorker] = set()

    # ---- kubelet-facing queries ----

    def liveness_failed(self, container_id: str) -> bool:
        """The container failed its liveness or startup probe and must be restarted."""
        return self.kill_reason(container_id) is not None

    def kill_reason(self, container_id: str) -> str | None:
        """Why a container must be killed, worded as Kubernetes' Killing event."""
        tracked = self._containers.get(container_id)
        name = tracked.name if tracked else container_id
        if self.results.get(container_id, ProbeKind.LIVENESS) is False:
            return f"Container {name} failed liveness probe"
        if self.results.get(container_id, ProbeKind.STARTUP) is False:
            return f"Container {name} failed startup probe"
        return None

    def started(self, container_id: str) -> bool:
        """True once the startup probe succeeded, or at once without a startup probe."""
        tracked = self._containers.get(container_id)
        if tracked is None or ProbeKind.STARTUP not in tracked.kinds:
            return True
        return self.results.get(container_id, ProbeKind.STARTUP) is True

    def ready(self, container_id: str) -> bool:
        """Started, and its readiness probe (if any) has succeeded. Only meaningful for a
        running container: the caller decides that a stopped one is not ready."""
        if not self.started(container_id):
            return False
        tracked = self._containers.get(container_id)
        if tracked is None or ProbeKind.READINESS not in tracked.kinds:
            return True
        return self.results.get(container_id, ProbeKind.READINESS) is True

    # ---- lifecycle ----

    def update(self, pod: core_pb2.Pod, container_infos: Sequence[ContainerInfo], *,
               pod_ip: str | None = None) -> None:
        """Brings the pod's workers in line with its running containers.

        HTTP and TCP probes go to `pod_ip`; by default the IP of the running sandbox among
        `container_infos`, else the one in the pod's status.
        """
        uid = pod.metadata.uid
        entry = self._pods.setdefault(uid, _PodEntry(pod.metadata))
        entry.meta = pod.metadata
        entry.pod_ip = pod_ip if pod_ip is not None else _pod_ip(pod, container_infos)
        running = _running_app_containers(pod, container_infos)
        for cid in list(entry.containers - running.keys()):
            self._forget(entry, cid)
        terminating = pod.metadata.HasField("deletion_timestamp")
        for cid, (spec, info) in running.items():
            if cid not in entry.containers:
                self._track(uid, entry, spec, info)
            if terminating:
                self._quiet_for_shutdown(self._containers[cid])

    def remove_pod(self, uid: str) -> None:
        entry = self._pods.pop(uid, None)
        if entry is None:
            return
        for cid in list(entry.containers):
            self._forget(entry, cid)

    async def close(self) -> None:
        for uid in list(self._pods):
            self.remove_pod(uid)
        await self._reap()

    async def _reap(self) -> None:
        stopping, self._stopping = self._stopping, set()
        for worker in stopping:
            await worker.wait_stopped()

    def workers(self, container_id: str) -> dict[ProbeKind, ProbeWorker]:
        """The live workers of a container (for tests and debugging)."""
        tracked = self._containers.get(container_id)
        if tracked is None:
            return {}
        return {k: w for k, w in tracked.workers.items() if w.running}

    # ---- internals ----

    def _track(self, uid: str, entry: _PodEntry, spec: core_pb2.Container,
               info: ContainerInfo) -> None:
        kinds = frozenset(k for k in ProbeKind if spec.HasField(k.field))
        tracked = _Tracked(uid, spec.name, kinds)
        self._containers[info.id] = tracked
        entry.containers.add(info.id)
        cid = info.id
        for kind in sorted(kinds):  # deterministic start order
            worker = ProbeWorker(
                kind=kind, pod_uid=uid, container=spec, container_id=cid,
                started_at=info.started_at, runtime=self._runtime, results=self.results,
                on_change=self._change_handler(kind, cid),
                pod_ip=lambda: entry.pod_ip, clock=self._clock,
                gate=self._gate(kind, cid), prober=self._prober, on_event=self._event)
            tracked.workers[kind] = worker
            worker.start()

    def _event(self, event: ProbeEvent) -> None:
        entry = self._pods.get(event.pod_uid)
        if self._recorder is not None and entry is not None:
            self._recorder.event(_container_ref(entry.meta, event.container_name), WARNING,
                                 event.reason, event.message)
        if self._on_event is not None:
            self._on_event(event)

    def _gate(self, kind: ProbeKind, container_id: str) -> Callable[[], bool]:
        if kind is ProbeKind.STARTUP:
            return lambda: True
        # Liveness and readiness wait until the startup probe has succeeded.
        return lambda: self.started(container_id)

    def _change_handler(self, kind: ProbeKind, container_id: str) -> Callable[[str], None]:
        def changed(pod_uid: str) -> None:
            if kind is ProbeKind.STARTUP and self.started(container_id):
                self._trigger_after_startup(container_id)
            self._on_change(pod_uid)
        return changed

    def _trigger_after_startup(self, container_id: str) -> None:
        # Just started: run liveness and readiness now rather than a period later.
        tracked = self._containers.get(container_id)
        if tracked is None:
            return
        for kind in (ProbeKind.LIVENESS, ProbeKind.READINESS):
            if kind in tracked.workers:
                tracked.workers[kind].trigger()

    def _quiet_for_shutdown(self, tracked: _Tracked) -> None:
        # A pod being deleted is stopping anyway: as Kubernetes, stop liveness and startup
        # probes and record success, so a failure cannot restart what is being stopped.
        for kind in (ProbeKind.LIVENESS, ProbeKind.STARTUP):
            worker = tracked.workers.get(kind)
            if worker is not None and worker.running:
                worker.stop()
                self._stopping.add(worker)
                self.results.set(worker.container_id, kind, True)

    def _forget(self, entry: _PodEntry, container_id: str) -> None:
        entry.containers.discard(container_id)
        tracked = self._containers.pop(container_id, None)
        if tracked is not None:
            for worker in tracked.workers.values():
                worker.stop()
                self._stopping.add(worker)
        self.results.remove(container_id)
        # Forget finished tasks now and then, so the set does not grow with churn.
        self._stopping = {w for w in self._stopping if w.running}


def _container_ref(meta: meta_pb2.ObjectMeta, container_name: str) -> meta_pb2.ObjectReference:
    # The container's field path, as Kubernetes: `describe` shows it in the From column.
    return meta_pb2.ObjectReference(kind="Pod", api_version="v1", namespace=meta.namespace,
                                    name=meta.name, uid=meta.uid,
                                    field_path=f"spec.containers{{{container_name}}}")


def _pod_ip(pod: core_pb2.Pod, infos: Sequence[ContainerInfo]) -> str:
    for info in infos:
        if info.is_sandbox and info.state == State.RUNNING and info.ip:
            return info.ip
    return pod.status.pod_ip


def _running_app_containers(pod: core_pb2.Pod, infos: Sequence[ContainerInfo]
                            ) -> dict[str, tuple[core_pb2.Container, ContainerInfo]]:
    """Running app containers that have at least one probe, by id."""
    probed = {c.name: c for c in pod.spec.containers
              if any(c.HasField(k.field) for k in ProbeKind)}
    return {info.id: (probed[info.name], info) for info in infos
            if not info.is_sandbox and info.state == State.RUNNING and info.name in probed
            and info.labels.get(LABEL_INIT) != "true"}
