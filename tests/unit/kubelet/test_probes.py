"""Probes: the checks against real servers on 127.0.0.1, and the workers' Kubernetes
semantics (initial delay, thresholds, startup gating, readiness default) on a fake clock
with a fake runtime whose exec results the test sets."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kubelet.probes import (
    USER_AGENT,
    ProbeEvent,
    ProbeKind,
    ProbeManager,
    ProbeResult,
    exec_probe,
    http_probe,
    run_probe,
    tcp_probe,
)
from kubelet.runtime import (
    LABEL_ATTEMPT,
    LABEL_CONTAINER_NAME,
    LABEL_POD_UID,
    LABEL_SANDBOX,
    ContainerInfo,
    ExecResult,
    RuntimeError_,
    State,
)
from skiff.api.v1 import core_pb2, meta_pb2
from skiff.client.clock import FakeClock
from skiff.client.events import FakeRecorder

UID = "pod-uid-1"


# ---------------------------------------------------------------------------------------
# Fakes and builders
# ---------------------------------------------------------------------------------------

@dataclass
class FakeRuntime:
    """exec_sync answers with the exit code the test set for the command (default 0)."""

    exit_codes: dict[str, int] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)  # (container id, command)
    hang: bool = False
    error: RuntimeError_ | None = None

    async def exec_sync(self, container_id: str, command: Sequence[str],
                        timeout: float) -> ExecResult:
        cmd = " ".join(command)
        self.calls.append((container_id, cmd))
        if self.error is not None:
            raise self.error
        if self.hang:
            await asyncio.sleep(3600)
        code = self.exit_codes.get(cmd, 0)
        return ExecResult(code, b"ok\n" if code == 0 else f"{cmd}: boom\n".encode())

    def count(self, cmd: str, container_id: str | None = None) -> int:
        return sum(1 for cid, c in self.calls
                   if c == cmd and (container_id is None or cid == container_id))


def exec_spec(cmd: str, *, delay: int = 0, period: int = 10, success: int = 1,
              failure: int = 3) -> core_pb2.Probe:
    return core_pb2.Probe(exec=core_pb2.ExecAction(command=[cmd]), initial_delay_seconds=delay,
                          period_seconds=period, timeout_seconds=1, success_threshold=success,
                          failure_threshold=failure)


def pod_with(*, liveness: core_pb2.Probe | None = None,
             readiness: core_pb2.Probe | None = None,
             startup: core_pb2.Probe | None = None) -> core_pb2.Pod:
    pod = core_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace, pod.metadata.uid = "web", "default", UID
    c = pod.spec.containers.add(name="app", image="nginx")
    for name, probe in (("liveness_probe", liveness), ("readiness_probe", readiness),
                        ("startup_probe", startup)):
        if probe is not None:
            getattr(c, name).CopyFrom(probe)
    return pod


def running(cid: str, started_at: float, *, attempt: int = 0,
            state: State = State.RUNNING) -> ContainerInfo:
    labels = {LABEL_POD_UID: UID, LABEL_CONTAINER_NAME: "app", LABEL_ATTEMPT: str(attempt)}
    return ContainerInfo(id=cid, labels=labels, image="nginx", image_id="sha256:1",
                         state=state, created_at=started_at, started_at=started_at)


def sandbox(ip: str = "10.0.0.5") -> ContainerInfo:
    return ContainerInfo(id="sb", labels={LABEL_POD_UID: UID, LABEL_SANDBOX: "true"},
                         image="pause", image_id="", state=State.RUNNING, ip=ip)


@dataclass
class Harness:
    clock: FakeClock
    runtime: FakeRuntime
    manager: ProbeManager
    changes: list[str]
    events: list[ProbeEvent]

    def now(self) -> float:
        return self.clock.wall().timestamp()


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    clock = FakeClock()
    runtime = FakeRuntime()
    changes: list[str] = []
    events: list[ProbeEvent] = []
    manager = ProbeManager(runtime, on_change=changes.append, clock=clock,
                           on_event=events.append)
    yield Harness(clock, runtime, manager, changes, events)
    await manager.close()


# ---------------------------------------------------------------------------------------
# Workers on a fake clock
# ---------------------------------------------------------------------------------------

async def test_readiness_is_false_until_the_first_success_after_the_initial_delay(
        h: Harness) -> None:
    h.manager.update(pod_with(readiness=exec_spec("ready", delay=5)), [running("c1", h.now())])
    await h.clock.settle()
    assert h.manager.ready("c1") is False
    assert h.manager.started("c1") is True  # no startup probe: started at once
    await h.clock.advance(4.9)
    assert h.runtime.count("ready") == 0
    assert h.manager.ready("c1") is False
    await h.clock.advance(0.1)
    assert h.runtime.count("ready") == 1
    assert h.manager.ready("c1") is True
    assert h.changes == [UID]
    await h.clock.advance(25)  # then every periodSeconds
    assert h.runtime.count("ready") == 3


async def test_initial_delay_counts_from_the_container_start(h: Harness) -> None:
    # A kubelet restarted 20 s after the container started waits only the rest.
    h.manager.update(pod_with(liveness=exec_spec("live", delay=30)),
                     [running("c1", h.now() - 20)])
    await h.clock.advance(9.9)
    assert h.runtime.count("live") == 0
    await h.clock.advance(0.1)
    assert h.runtime.count("live") == 1


async def test_no_probe_no_worker(h: Harness) -> None:
    h.manager.update(pod_with(), [running("c1", h.now())])
    await h.clock.advance(60)
    assert h.runtime.calls == []
    assert h.manager.ready("c1") and h.manager.started("c1")
    assert not h.manager.liveness_failed("c1")


async def test_liveness_fails_only_after_failure_threshold_in_a_row(h: Harness) -> None:
    h.runtime.exit_codes["live"] = 1
    h.manager.update(pod_with(liveness=exec_spec("live", failure=3)), [running("c1", h.now())])
    await h.clock.settle()
    assert h.runtime.count("live") == 1
    assert h.manager.liveness_failed("c1") is False  # alive until proven otherwise
    await h.clock.advance(10)
    assert h.manager.liveness_failed("c1") is False
    assert h.changes == []
    await h.clock.advance(10)
    assert h.manager.liveness_failed("c1") is True
    assert h.manager.kill_reason("c1") == "Container app failed liveness probe"
    assert h.changes == [UID]
    # On hold: a container about to be killed is not probed again.
    await h.clock.advance(60)
    assert h.runtime.count("live") == 3
    assert [e.message for e in h.events] == ["Liveness probe failed: live: boom\n"] * 3
    assert {(e.reason, e.type, e.kind) for e in h.events} == {
        ("Unhealthy", "Warning", ProbeKind.LIVENESS)}


async def test_a_success_breaks_a_run_of_failures(h: Harness) -> None:
    h.runtime.exit_codes["live"] = 1
    h.manager.update(pod_with(liveness=exec_spec("live", failure=3)), [running("c1", h.now())])
    await h.clock.advance(10)  # two failures
    h.runtime.exit_codes["live"] = 0
    await h.clock.advance(10)  # a success
    h.runtime.exit_codes["live"] = 1
    await h.clock.advance(20)  # two more failures
    assert h.manager.liveness_failed("c1") is False
    await h.clock.advance(10)
    assert h.manager.liveness_failed("c1") is True


async def test_readiness_needs_success_threshold_and_keeps_probing(h: Harness) -> None:
    h.manager.update(pod_with(readiness=exec_spec("ready", success=2, failure=1)),
                     [running("c1", h.now())])
    await h.clock.settle()
    assert h.manager.ready("c1") is False
    await h.clock.advance(10)
    assert h.manager.ready("c1") is True
    h.runtime.exit_codes["ready"] = 1
    await h.clock.advance(10)
    assert h.manager.ready("c1") is False
    assert h.changes == [UID, UID]
    h.runtime.exit_codes["ready"] = 0
    await h.clock.advance(20)
    assert h.manager.ready("c1") is True


async def test_startup_gates_liveness_and_readiness_then_stops(h: Harness) -> None:
    h.runtime.exit_codes["start"] = 1
    pod = pod_with(startup=exec_spec("start", period=5, failure=30),
                   liveness=exec_spec("live"), readiness=exec_spec("ready"))
    h.manager.update(pod, [running("c1", h.now())])
    await h.clock.advance(20)
    assert h.runtime.count("start") == 5
    assert h.runtime.count("live") == h.runtime.count("ready") == 0
    assert h.manager.started("c1") is False
    assert h.manager.ready("c1") is False
    assert h.manager.liveness_failed("c1") is False  # undecided is not failed

    h.runtime.exit_codes["start"] = 0
    await h.clock.advance(5)
    assert h.manager.started("c1") is True
    # Liveness and readiness run at once, not a period later.
    assert h.runtime.count("live") == 1 and h.runtime.count("ready") == 1
    assert h.manager.ready("c1") is True
    await h.clock.advance(60)
    assert h.runtime.count("start") == 6  # the startup worker stopped after its success
    assert set(h.manager.workers("c1")) == {ProbeKind.LIVENESS, ProbeKind.READINESS}


async def test_startup_failure_kills_the_container(h: Harness) -> None:
    h.runtime.exit_codes["start"] = 1
    h.manager.update(pod_with(startup=exec_spec("start", period=1, failure=3),
                              liveness=exec_spec("live")), [running("c1", h.now())])
    await h.clock.advance(1.5)
    assert not h.manager.liveness_failed("c1")
    await h.clock.advance(1)
    assert h.manager.liveness_failed("c1") is True
    assert h.manager.kill_reason("c1") == "Container app failed startup probe"
    assert h.runtime.count("live") == 0


async def test_a_restarted_container_gets_fresh_workers_and_delay(h: Harness) -> None:
    h.runtime.exit_codes["live"] = 1
    pod = pod_with(liveness=exec_spec("live", delay=5, failure=1))
    h.manager.update(pod, [running("c1", h.now())])
    await h.clock.advance(5)
    assert h.manager.liveness_failed("c1")

    # The kubelet killed it and started attempt 1.
    h.runtime.exit_codes["live"] = 0
    h.manager.update(pod, [running("c1", h.now() - 5, state=State.EXITED),
                           running("c2", h.now(), attempt=1)])
    await h.clock.settle()
    assert h.manager.liveness_failed("c1") is False  # forgotten with its container
    assert h.manager.liveness_failed("c2") is False
    assert h.manager.workers("c1") == {}
    await h.clock.advance(4.9)
    assert h.runtime.count("live", "c2") == 0
    await h.clock.advance(0.1)
    assert h.runtime.count("live", "c2") == 1


async def test_remove_pod_stops_every_worker(h: Harness) -> None:
    h.manager.update(pod_with(liveness=exec_spec("live"), readiness=exec_spec("ready")),
                     [running("c1", h.now())])
    await h.clock.advance(10)
    before = len(h.runtime.calls)
    h.manager.remove_pod(UID)
    await h.clock.advance(60)
    assert len(h.runtime.calls) == before
    assert h.manager.workers("c1") == {}
    assert h.manager.results.get("c1", ProbeKind.READINESS) is None


async def test_a_deleted_pod_stops_liveness_quietly(h: Harness) -> None:
    pod = pod_with(liveness=exec_spec("live", failure=1), readiness=exec_spec("ready"))
    h.manager.update(pod, [running("c1", h.now())])
    await h.clock.advance(10)
    pod.metadata.deletion_timestamp.GetCurrentTime()
    h.runtime.exit_codes["live"] = 1
    h.manager.update(pod, [running("c1", h.now())])
    await h.clock.advance(30)
    assert h.manager.liveness_failed("c1") is False
    assert set(h.manager.workers("c1")) == {ProbeKind.READINESS}


async def test_runtime_errors_are_reported_but_not_counted(h: Harness) -> None:
    h.runtime.error = RuntimeError_("container c1 is not running")
    h.manager.update(pod_with(liveness=exec_spec("live", failure=1)), [running("c1", h.now())])
    await h.clock.advance(30)
    assert h.manager.liveness_failed("c1") is False
    assert h.events[0].message == "Liveness probe errored: container c1 is not running"


async def test_init_containers_and_exited_containers_are_not_probed(h: Harness) -> None:
    pod = pod_with(liveness=exec_spec("live"))
    h.manager.update(pod, [running("c1", h.now(), state=State.EXITED)])
    await h.clock.advance(30)
    assert h.runtime.calls == []


async def test_failures_become_unhealthy_events_on_the_container() -> None:
    clock, runtime, recorder = FakeClock(), FakeRuntime(exit_codes={"ready": 1}), FakeRecorder()
    manager = ProbeManager(runtime, on_change=lambda uid: None, clock=clock, recorder=recorder)
    manager.update(pod_with(readiness=exec_spec("ready")),
                   [running("c1", clock.wall().timestamp())])
    await clock.advance(10)
    await manager.close()
    assert recorder.events == ["Warning Unhealthy Readiness probe failed: ready: boom\n"] * 2
    ref = recorder.objects[0]
    assert (ref.kind, ref.namespace, ref.name, ref.uid, ref.field_path) == (
        "Pod", "default", "web", UID, "spec.containers{app}")


async def test_pod_ip_comes_from_the_sandbox() -> None:
    seen: list[str] = []

    async def prober(probe: core_pb2.Probe, *, pod_ip: str, **_: object) -> ProbeResult:
        seen.append(pod_ip)
        return ProbeResult(True)

    clock = FakeClock()
    manager = ProbeManager(FakeRuntime(), on_change=lambda uid: None, clock=clock,
                           prober=prober)
    manager.update(pod_with(readiness=exec_spec("ready")),
                   [sandbox("10.0.0.7"), running("c1", clock.wall().timestamp())])
    await clock.settle()
    manager.update(pod_with(readiness=exec_spec("ready")),
                   [running("c1", clock.wall().timestamp())], pod_ip="10.0.0.8")
    await clock.advance(10)
    await manager.close()
    assert seen == ["10.0.0.7", "10.0.0.8"]


async def test_no_pod_ip_is_an_error_not_a_probe_of_the_node() -> None:
    probe = core_pb2.Probe(tcp_socket=core_pb2.TCPSocketAction(
        port=meta_pb2.IntOrString(int_val=22)), timeout_seconds=1)
    result = await run_probe(probe, pod_ip="", container_id="c1", runtime=FakeRuntime(),
                             container=APP)
    assert result == ProbeResult(False, "the pod has no IP address yet", error=True)


# ---------------------------------------------------------------------------------------
# Exec
# ---------------------------------------------------------------------------------------

async def test_exec_success_and_failure_carry_the_output() -> None:
    runtime = FakeRuntime(exit_codes={"cat /tmp/healthy": 1})
    container = core_pb2.Container(name="app")
    probe = exec_spec("cat /tmp/healthy")
    failed = await run_probe(probe, pod_ip="", container_id="c1", runtime=runtime,
                             container=container)
    assert failed == ProbeResult(False, "cat /tmp/healthy: boom\n")
    runtime.exit_codes.clear()
    ok = await run_probe(probe, pod_ip="", container_id="c1", runtime=runtime,
                         container=container)
    assert ok == ProbeResult(True, "ok\n")
    assert runtime.calls == [("c1", "cat /tmp/healthy")] * 2


async def test_exec_timeout_is_a_failure() -> None:
    action = core_pb2.ExecAction(command=["sleep", "10"])
    result = await exec_probe(action, container_id="c1", runtime=FakeRuntime(hang=True),
                              timeout=0.05, grace=0)
    assert result == ProbeResult(False, 'command "sleep 10" timed out')


async def test_missing_handler_is_an_error() -> None:
    result = await run_probe(core_pb2.Probe(), pod_ip="", container_id="c1",
                             runtime=FakeRuntime(), container=core_pb2.Container(name="app"))
    assert result.error and not result.success


# ---------------------------------------------------------------------------------------
# HTTP and TCP against real servers
# ---------------------------------------------------------------------------------------

@dataclass
class Server:
    port: int
    requests: list[list[str]]  # each request's head, one line per item


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  requests: list[list[str]]) -> None:
    head: list[str] = []
    while (line := (await reader.readline()).decode().rstrip("\r\n")):
        head.append(line)
    requests.append(head)
    path = head[0].split(" ")[1] if head else ""
    if path == "/hang":
        await reader.read()  # until the prober gives up and closes
    elif path == "/garbage":
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n")
    else:
        code = {"/fail": "500 Internal Server Error",
                "/redirect": "301 Moved Permanently\r\nLocation: http://elsewhere.invalid/"
                }.get(path, "200 OK")
        writer.write(f"HTTP/1.1 {code}\r\nContent-Length: 2\r\n\r\nok".encode())
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def serve(tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    requests: list[list[str]] = []
    server = await asyncio.start_server(lambda r, w: _handle(r, w, requests), "127.0.0.1", 0,
                                        ssl=tls)
    try:
        yield Server(server.sockets[0].getsockname()[1], requests)
    finally:
        server.close()


@pytest.fixture
async def http_server() -> AsyncIterator[Server]:
    async with serve() as server:
        yield server


def http_get(path: str, port: int | str, *, scheme: str = "HTTP", host: str = "",
             headers: dict[str, str] | None = None) -> core_pb2.HTTPGetAction:
    action = core_pb2.HTTPGetAction(path=path, scheme=scheme, host=host)
    if isinstance(port, int):
        action.port.CopyFrom(meta_pb2.IntOrString(int_val=port))
    else:
        action.port.CopyFrom(meta_pb2.IntOrString(str_val=port))
    for name, value in (headers or {}).items():
        action.http_headers.add(name=name, value=value)
    return action


APP = core_pb2.Container(name="app")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_http_200_is_success_with_headers(http_server: Server) -> None:
    action = http_get("/healthz?full=1", http_server.port, headers={"X-Custom": "yes"})
    result = await http_probe(action, pod_ip="127.0.0.1", container=APP, timeout=2)
    assert result == ProbeResult(True, "")
    head = http_server.requests[0]
    assert head[0] == "GET /healthz?full=1 HTTP/1.1"
    assert f"User-Agent: {USER_AGENT}" in head
    assert f"Host: 127.0.0.1:{http_server.port}" in head
    assert "X-Custom: yes" in head


async def test_http_headers_override_the_defaults(http_server: Server) -> None:
    action = http_get("/", http_server.port, headers={"Host": "example.com",
                                                      "User-Agent": "mine"})
    await http_probe(action, pod_ip="127.0.0.1", container=APP, timeout=2)
    head = http_server.requests[0]
    assert "Host: example.com" in head and "User-Agent: mine" in head
    assert f"User-Agent: {USER_AGENT}" not in head


async def test_http_500_is_failure(http_server: Server) -> None:
    result = await http_probe(http_get("/fail", http_server.port), pod_ip="127.0.0.1",
                              container=APP, timeout=2)
    assert result == ProbeResult(False, "HTTP probe failed with statuscode: 500")


async def test_http_redirect_is_not_followed_and_counts_as_success(http_server: Server
                                                                   ) -> None:
    result = await http_probe(http_get("/redirect", http_server.port), pod_ip="127.0.0.1",
                              container=APP, timeout=2)
    assert result.success
    assert len(http_server.requests) == 1


async def test_http_named_port_and_explicit_host(http_server: Server) -> None:
    container = core_pb2.Container(name="app")
    container.ports.add(name="http", container_port=http_server.port)
    action = http_get("/", "http", host="127.0.0.1")
    result = await http_probe(action, pod_ip="10.255.255.1", container=container, timeout=2)
    assert result.success


async def test_http_unknown_port_name_is_an_error() -> None:
    probe = core_pb2.Probe(http_get=http_get("/", "metrics"), timeout_seconds=1)
    result = await run_probe(probe, pod_ip="127.0.0.1", container_id="c1",
                             runtime=FakeRuntime(), container=APP)
    assert result == ProbeResult(False, "port metrics not found", error=True)


async def test_http_connection_refused() -> None:
    port = closed_port()
    result = await http_probe(http_get("/healthz", port), pod_ip="127.0.0.1", container=APP,
                              timeout=2)
    assert result == ProbeResult(
        False, f'Get "http://127.0.0.1:{port}/healthz": dial tcp 127.0.0.1:{port}: '
               "connect: connection refused")


async def test_http_timeout(http_server: Server) -> None:
    result = await http_probe(http_get("/hang", http_server.port), pod_ip="127.0.0.1",
                              container=APP, timeout=0.2)
    assert not result.success
    assert result.message == (f'Get "http://127.0.0.1:{http_server.port}/hang": context '
                              "deadline exceeded (Client.Timeout exceeded while awaiting "
                              "headers)")


async def test_http_timeout_through_run_probe_uses_timeout_seconds(http_server: Server
                                                                   ) -> None:
    probe = core_pb2.Probe(http_get=http_get("/hang", http_server.port), timeout_seconds=1)
    loop = asyncio.get_running_loop()
    began = loop.time()
    result = await run_probe(probe, pod_ip="127.0.0.1", container_id="c1",
                             runtime=FakeRuntime(), container=APP)
    assert not result.success and "context deadline exceeded" in result.message
    assert 0.9 < loop.time() - began < 3


async def test_http_not_http_is_a_failure(http_server: Server) -> None:
    result = await http_probe(http_get("/garbage", http_server.port), pod_ip="127.0.0.1",
                              container=APP, timeout=2)
    assert not result.success
    assert "malformed HTTP response" in result.message


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ssl.SSLContext]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    d: Path = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=not-the-pod", "-keyout", str(d / "key.pem"),
                    "-out", str(d / "cert.pem")], check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(d / "cert.pem", d / "key.pem")
    yield context


async def test_https_does_not_verify_the_certificate(self_signed: ssl.SSLContext) -> None:
    async with serve(tls=self_signed) as server:
        result = await http_probe(http_get("/healthz", server.port, scheme="HTTPS"),
                                  pod_ip="127.0.0.1", container=APP, timeout=2)
    assert result == ProbeResult(True, "")


async def test_tcp_open_and_closed_ports(http_server: Server) -> None:
    action = core_pb2.TCPSocketAction(port=meta_pb2.IntOrString(int_val=http_server.port))
    assert (await tcp_probe(action, pod_ip="127.0.0.1", container=APP, timeout=2)).success
    port = closed_port()
    action = core_pb2.TCPSocketAction(port=meta_pb2.IntOrString(int_val=port))
    result = await tcp_probe(action, pod_ip="127.0.0.1", container=APP, timeout=2)
    assert result == ProbeResult(
        False, f"dial tcp 127.0.0.1:{port}: connect: connection refused")


async def test_manager_with_a_real_http_readiness_probe(http_server: Server) -> None:
    clock = FakeClock()
    changes: list[str] = []
    manager = ProbeManager(FakeRuntime(), on_change=changes.append, clock=clock)
    probe = core_pb2.Probe(http_get=http_get("/healthz", http_server.port), period_seconds=10,
                           timeout_seconds=1, success_threshold=1, failure_threshold=3)
    try:
        manager.update(pod_with(readiness=probe),
                       [sandbox("127.0.0.1"), running("c1", clock.wall().timestamp())])
        for _ in range(200):  # real I/O: wait in real time for the first probe
            if manager.ready("c1"):
                break
            await asyncio.sleep(0.01)
        assert manager.ready("c1")
        assert changes == [UID]
    finally:
        await manager.close()
