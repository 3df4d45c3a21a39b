"""FakeRuntime: the in-memory runtime keeps DockerRuntime's rules, driven by a fake clock."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence
from typing import Any

import pytest

from kubelet.runtime import (
    LABEL_ATTEMPT,
    LABEL_CONTAINER_NAME,
    LABEL_POD_UID,
    Auth,
    ContainerConfig,
    ContainerRuntime,
    CreateContainerError,
    ExecResult,
    ImagePullError,
    NotFound,
    RuntimeError_,
    RuntimeUnavailable,
    SandboxConfig,
    StartContainerError,
    State,
)
from kubelet.runtime.fake import (
    EXEC_TIMEOUT_EXIT_CODE,
    FakeRuntime,
    Script,
    fake_image_id,
    script_from_command,
)

IMAGE = "busybox:1.36"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rt(clock: Clock) -> FakeRuntime:
    return FakeRuntime(clock=clock, images=[IMAGE])


def sandbox(uid: str = "uid-1", name: str = "web", **kwargs: Any) -> SandboxConfig:
    return SandboxConfig(pod_uid=uid, namespace="default", name=name, **kwargs)


async def start(rt: FakeRuntime, sb: SandboxConfig, name: str = "app", image: str = IMAGE,
                **kwargs: Any) -> tuple[str, str]:
    """Starts a container in the pod's sandbox (made on first use)."""
    sid = next((c.id for c in rt.containers.values()
                if c.is_sandbox and c.labels[LABEL_POD_UID] == sb.pod_uid), None)
    if sid is None:
        sid = await rt.run_sandbox(sb)
    cid = await rt.create_container(
        sid, ContainerConfig(name=name, image=image, **kwargs), sb)
    await rt.start_container(cid)
    return sid, cid


def test_is_a_container_runtime() -> None:
    runtime: ContainerRuntime = FakeRuntime()  # checked by mypy
    assert runtime is not None


async def test_sandboxes_get_pod_ips(rt: FakeRuntime) -> None:
    a = await rt.run_sandbox(sandbox("a"))
    b = await rt.run_sandbox(sandbox("b"))
    host = await rt.run_sandbox(sandbox("c", host_network=True))
    ips = {i.id: i.ip for i in await rt.list_containers()}
    assert ips[a] != ips[b]
    for ip in (ips[a], ips[b]):
        assert ipaddress.ip_address(ip) in ipaddress.ip_network("10.244.0.0/16")
    assert ips[host] == ""
    await rt.remove_sandbox(a)
    assert ips[a] not in {i.ip for i in await rt.list_containers()}


async def test_ips_wrap_around_and_skip_those_in_use(clock: Clock) -> None:
    rt = FakeRuntime(clock=clock, pod_cidr="10.244.7.0/29")  # hosts .2 to .6
    ids = [await rt.run_sandbox(sandbox(f"u{i}")) for i in range(5)]
    with pytest.raises(CreateContainerError):
        await rt.run_sandbox(sandbox("full"))
    first_ip = rt.containers[ids[0]].ip
    assert first_ip == "10.244.7.2"
    await rt.remove_sandbox(ids[0])
    again = await rt.run_sandbox(sandbox("again"))
    assert rt.containers[again].ip == first_ip


async def test_lifecycle_and_labels(rt: FakeRuntime, clock: Clock) -> None:
    sb = sandbox()
    sid = await rt.run_sandbox(sb)
    cid = await rt.create_container(sid, ContainerConfig(
        name="app", image=IMAGE, labels={LABEL_ATTEMPT: "2", "x": "y"}), sb)
    info = await rt.container_status(cid)
    assert info.state is State.CREATED
    assert (info.pod_uid, info.name, info.attempt, info.labels["x"]) == ("uid-1", "app", 2, "y")
    assert info.image == IMAGE and info.image_id == fake_image_id(IMAGE)
    assert rt.containers[cid].name == "skiff_default_web_uid1_app_2"
    clock.now += 1
    await rt.start_container(cid)
    info = await rt.container_status(cid)
    assert (info.state, info.created_at, info.started_at) == (State.RUNNING, 1000.0, 1001.0)
    clock.now += 1
    await rt.stop_container(cid, 30)
    info = await rt.container_status(cid)
    assert (info.state, info.exit_code, info.reason, info.finished_at) == (
        State.EXITED, 143, "Error", 1002.0)
    sandbox_info = await rt.container_status(sid)
    assert sandbox_info.is_sandbox and sandbox_info.labels[LABEL_POD_UID] == "uid-1"


async def test_scripted_exits_follow_the_clock(rt: FakeRuntime, clock: Clock) -> None:
    rt.scripts["crasher"] = Script(exits_after=5, exit_code=2)
    rt.scripts["web/job"] = Script(exits_after=1)
    rt.scripts[IMAGE] = Script(exits_after=3, oom_killed=True)
    sb = sandbox()
    _, crasher = await start(rt, sb, "crasher")
    _, job = await start(rt, sb, "job")
    _, hog = await start(rt, sb, "hog")
    states = {i.id: i.state for i in await rt.list_containers()}
    assert states[crasher] is states[job] is states[hog] is State.RUNNING
    clock.now += 10
    infos = {i.id: i for i in await rt.list_containers()}
    assert (infos[crasher].exit_code, infos[crasher].reason,
            infos[crasher].finished_at) == (2, "Error", 1005.0)
    assert (infos[job].exit_code, infos[job].reason) == (0, "Completed")
    assert (infos[hog].exit_code, infos[hog].reason) == (137, "OOMKilled")


async def test_crash_helper(rt: FakeRuntime) -> None:
    _, cid = await start(rt, sandbox())
    rt.crash(cid, 3)
    info = await rt.container_status(cid)
    assert (info.state, info.exit_code, info.reason) == (State.EXITED, 3, "Error")


async def test_start_failures_leave_an_exited_container(rt: FakeRuntime) -> None:
    rt.fail_start["app"] = 'exec: "nosuchcmd": executable file not found in $PATH'
    sb = sandbox()
    sid = await rt.run_sandbox(sb)
    cid = await rt.create_container(sid, ContainerConfig(name="app", image=IMAGE), sb)
    with pytest.raises(StartContainerError, match="nosuchcmd"):
        await rt.start_container(cid)
    info = await rt.container_status(cid)
    assert (info.state, info.reason, info.exit_code) == (State.EXITED, "ContainerCannotRun", 128)
    assert "nosuchcmd" in info.message


async def test_start_needs_a_running_sandbox(rt: FakeRuntime) -> None:
    sb = sandbox()
    sid = await rt.run_sandbox(sb)
    cid = await rt.create_container(sid, ContainerConfig(name="app", image=IMAGE), sb)
    await rt.stop_sandbox(sid)
    with pytest.raises(StartContainerError, match="non running"):
        await rt.start_container(cid)


async def test_create_failures(rt: FakeRuntime) -> None:
    sb = sandbox()
    sid = await rt.run_sandbox(sb)
    with pytest.raises(CreateContainerError, match="No such image"):
        await rt.create_container(sid, ContainerConfig(name="a", image="nginx"), sb)
    with pytest.raises(CreateContainerError, match="No such container"):
        await rt.create_container("nope", ContainerConfig(name="a", image=IMAGE), sb)
    with pytest.raises(CreateContainerError, match="runAsGroup"):
        await rt.create_container(sid, ContainerConfig(name="a", image=IMAGE, run_as_group=5),
                                  sb)
    rt.fail_create["a"] = "boom"
    with pytest.raises(CreateContainerError, match="boom"):
        await rt.create_container(sid, ContainerConfig(name="a", image=IMAGE), sb)


async def test_same_name_replaces_a_stopped_leftover_only(rt: FakeRuntime) -> None:
    sb = sandbox()
    sid = await rt.run_sandbox(sb)
    config = ContainerConfig(name="app", image=IMAGE)
    first = await rt.create_container(sid, config, sb)
    second = await rt.create_container(sid, config, sb)
    assert first not in rt.containers and second in rt.containers
    await rt.start_container(second)
    with pytest.raises(CreateContainerError, match="already in use"):
        await rt.create_container(sid, config, sb)


async def test_stop_and_remove_are_idempotent(rt: FakeRuntime) -> None:
    sb = sandbox()
    sid, cid = await start(rt, sb)
    for _ in range(2):
        await rt.stop_container(cid, 1)
        await rt.stop_container("missing", 1)
    await rt.remove_container(cid)
    await rt.remove_container(cid)
    with pytest.raises(NotFound):
        await rt.container_status(cid)
    await start(rt, sb, "other")  # removed with its sandbox below
    await rt.stop_sandbox(sid)
    assert (await rt.container_status(sid)).exit_code == 137  # pause needs the SIGKILL
    await rt.remove_sandbox(sid)
    await rt.remove_sandbox(sid)
    assert await rt.list_containers() == []


async def test_images_and_pulls(rt: FakeRuntime) -> None:
    assert await rt.image_id(IMAGE) == fake_image_id(IMAGE)
    assert await rt.image_id("nginx") is None
    with pytest.raises(ImagePullError, match="manifest unknown"):
        await rt.pull_image("nginx")
    rt.pullable["nginx"] = None
    assert await rt.pull_image("nginx") == fake_image_id("nginx:latest")
    assert await rt.image_id("nginx:latest") == fake_image_id("nginx")

    secret = Auth("user", "pass")
    rt.pullable["private/app:1"] = secret
    with pytest.raises(ImagePullError, match="unauthorized"):
        await rt.pull_image("private/app:1")
    with pytest.raises(ImagePullError, match="unauthorized"):
        await rt.pull_image("private/app:1", Auth("user", "wrong"))
    assert await rt.pull_image("private/app:1", Auth("user", "pass", "registry:5000"))

    rt.pullable["*"] = None
    assert await rt.pull_image("anything/at:all")
    assert rt.calls_to("pull_image")[-1] == ("anything/at:all", None)


async def test_exec_results(rt: FakeRuntime) -> None:
    _, cid = await start(rt, sandbox())
    assert await rt.exec_sync(cid, ["true"], 1) == ExecResult(0, b"")
    rt.exec_results["app"] = ExecResult(1, b"not ready")
    assert (await rt.exec_sync(cid, ["cat", "/ready"], 1)).exit_code == 1

    def by_command(command: Sequence[str]) -> ExecResult:
        return ExecResult(0 if command[-1] == "/ok" else 2, b"")

    rt.exec_results["app"] = by_command
    assert (await rt.exec_sync(cid, ["cat", "/ok"], 1)).exit_code == 0
    assert (await rt.exec_sync(cid, ["cat", "/no"], 1)).exit_code == 2

    async def hangs(command: Sequence[str]) -> ExecResult:
        await asyncio.sleep(10)
        return ExecResult(0, b"")

    rt.exec_results["app"] = hangs
    result = await rt.exec_sync(cid, ["sleep", "10"], 0.05)
    assert result.exit_code == EXEC_TIMEOUT_EXIT_CODE
    assert rt.calls_to("exec_sync")[-1] == (cid, ("sleep", "10"))

    await rt.stop_container(cid, 0)
    with pytest.raises(RuntimeError_, match="not running"):
        await rt.exec_sync(cid, ["true"], 1)
    with pytest.raises(NotFound):
        await rt.exec_sync("missing", ["true"], 1)


async def test_exec_stream(rt: FakeRuntime) -> None:
    _, cid = await start(rt, sandbox())
    rt.exec_results["app"] = ExecResult(3, b"hi\n")
    session = await rt.exec_stream(cid, ["sh"], tty=True, stdin=True)
    await session.write(b"echo hi\n")
    await session.close_stdin()
    await session.resize(24, 80)
    assert [c async for c in session.output()] == [(1, b"hi\n")]
    assert await session.exit_code() == 3


async def test_logs(rt: FakeRuntime, clock: Clock) -> None:
    rt.scripts["app"] = Script(output=b"one\ntwo\nthree\n")
    _, cid = await start(rt, sandbox())
    assert b"".join([c async for c in rt.logs(cid)]) == b"one\ntwo\nthree\n"
    assert b"".join([c async for c in rt.logs(cid, tail=1)]) == b"three\n"
    stamped = b"".join([c async for c in rt.logs(cid, tail=1, timestamps=True)])
    assert stamped == b"1970-01-01T00:16:40.000000Z three\n"
    with pytest.raises(NotFound):
        _ = [c async for c in rt.logs("missing")]

    async def follow() -> bytes:
        return b"".join([c async for c in rt.logs(cid, follow=True, tail=0)])

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.1)
    rt.write_log(cid, b"four\n")
    await asyncio.sleep(0.1)
    assert not task.done()
    await rt.stop_container(cid, 1)  # the follow ends with the container
    assert await asyncio.wait_for(task, 1) == b"four\n"


async def test_unavailable_engine_and_call_log(rt: FakeRuntime) -> None:
    assert await rt.version() == "fake://1.0"
    rt.unavailable = True
    with pytest.raises(RuntimeUnavailable):
        await rt.list_containers()
    with pytest.raises(RuntimeUnavailable):
        await rt.run_sandbox(sandbox())
    rt.unavailable = False
    assert [c[0] for c in rt.calls] == ["version", "list_containers", "run_sandbox"]


async def test_container_name_label_only_on_app_containers(rt: FakeRuntime) -> None:
    sid, cid = await start(rt, sandbox())
    infos = {i.id: i for i in await rt.list_containers()}
    assert LABEL_CONTAINER_NAME not in infos[sid].labels
    assert infos[cid].labels[LABEL_CONTAINER_NAME] == "app"


@pytest.mark.parametrize("command,args,expected", [
    ((), (), Script()),
    (("sleep", "3600"), (), Script(exits_after=3600.0, exit_code=0)),
    (("sh", "-c", "sleep 2; exit 3"), (), Script(exits_after=2.0, exit_code=3)),
    (("/bin/sh", "-c", "echo hi && sleep 0.5 && false"), (),
     Script(exits_after=0.5, exit_code=1, output=b"hi\n")),
    (("true",), (), Script(exits_after=0.0, exit_code=0)),
    ((), ("nginx", "-g", "daemon off;"), Script()),
    (("sh", "-c", "sleep 1; httpd -f"), (), Script()),
])
def test_a_simple_command_becomes_a_script(command: tuple[str, ...], args: tuple[str, ...],
                                           expected: Script) -> None:
    config = ContainerConfig(name="c", image="busybox", command=command, args=args)
    assert script_from_command(config) == expected
