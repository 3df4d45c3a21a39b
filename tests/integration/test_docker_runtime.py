"""DockerRuntime against the real local Docker engine.

Every test makes its pods under uids from `docker_pods.new_uid()`; the fixture removes the
containers labelled with those uids when the test ends, pass or fail. Nothing is pulled from
the internet: images are the offline busybox (tests/fixtures/docker.py), the pause image made
here, a registry on loopback (tests/fixtures/registry.py), or a loopback port nobody serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import tarfile
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import pytest
from fixtures.docker import DockerPods
from fixtures.registry import Registry, auth_registry  # noqa: F401  (a fixture)

from kubelet.runtime import (
    LABEL_ATTEMPT,
    LABEL_CONTAINER_NAME,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    Auth,
    ContainerConfig,
    ContainerInfo,
    DnsConfig,
    ImagePullError,
    Mount,
    NotFound,
    PortMapping,
    RuntimeUnavailable,
    SandboxConfig,
    StartContainerError,
    State,
)
from kubelet.runtime.docker import (
    EXEC_TIMEOUT_EXIT_CODE,
    DockerRuntime,
    clean_engine_error,
    parse_timestamp,
)
from kubelet.runtime.pause import (
    PAUSE_IMAGE,
    PauseImageError,
    ensure_pause_image,
    find_static_busybox,
    pause_elf_x86_64,
    pause_image_tar,
)

_T = TypeVar("_T")
SLEEP = ("sleep", "3600")


@pytest.fixture
async def runtime(docker_client: docker.DockerClient) -> AsyncIterator[DockerRuntime]:
    rt = DockerRuntime(docker_client)
    try:
        yield rt
    finally:
        rt.close()


def sandbox_config(pods: DockerPods, name: str = "p", **kwargs: Any) -> SandboxConfig:
    return SandboxConfig(pod_uid=pods.new_uid(), namespace="skiff-test", name=name,
                         hostname=name, **kwargs)


async def eventually(fn: Callable[[], Awaitable[_T | None]], timeout: float = 20.0,
                     what: str = "condition") -> _T:
    deadline = time.monotonic() + timeout
    while True:
        value = await fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def wait_exited(rt: DockerRuntime, cid: str, timeout: float = 20.0) -> ContainerInfo:
    async def check() -> ContainerInfo | None:
        info = await rt.container_status(cid)
        return info if info.state is State.EXITED else None

    return await eventually(check, timeout, f"{cid[:12]} to exit")


async def run(rt: DockerRuntime, sandbox_id: str, sb: SandboxConfig, name: str, image: str,
              **kwargs: Any) -> str:
    cid = await rt.create_container(sandbox_id, ContainerConfig(name=name, image=image,
                                                                **kwargs), sb)
    await rt.start_container(cid)
    return cid


async def logs_of(rt: DockerRuntime, cid: str, **kwargs: Any) -> bytes:
    return b"".join([chunk async for chunk in rt.logs(cid, **kwargs)])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_dir(tmp_path: Path, body: str) -> Mount:
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text(body)
    return Mount(str(www), "/www", read_only=True)


# ---- the pause image and the sandbox ----


def test_pause_binary_is_a_tiny_static_elf() -> None:
    elf = pause_elf_x86_64()
    assert len(elf) == 129
    assert elf[:4] == b"\x7fELF" and elf[4] == 2  # 64-bit
    assert elf[-9:] == bytes.fromhex("b8220000000f05ebf7")  # pause(); jmp back


def test_pause_falls_back_to_static_busybox_elsewhere() -> None:
    _, changes = pause_image_tar("x86_64")
    assert changes == ['ENTRYPOINT ["/pause"]']
    if find_static_busybox() is None:
        with pytest.raises(PauseImageError, match="busybox-static"):
            pause_image_tar("aarch64")
    else:
        data, changes = pause_image_tar("aarch64")
        assert changes == ['ENTRYPOINT ["/bin/busybox", "sleep", "2147483647"]']
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            assert tar.getmember("bin/busybox").mode == 0o755


def test_engine_errors_are_cleaned() -> None:
    old_runc = ('OCI runtime create failed: container_linux.go:380: starting container '
                'process caused: exec: "x": executable file not found in $PATH: unknown')
    assert clean_engine_error(old_runc) == 'exec: "x": executable file not found in $PATH'
    assert clean_engine_error("port is already allocated") == "port is already allocated"
    assert parse_timestamp("0001-01-01T00:00:00Z") == 0.0
    assert parse_timestamp("2026-01-02T03:04:05.123456789Z") == pytest.approx(
        1767323045.123456789)
    assert parse_timestamp("2026-01-02T04:04:05+01:00") == 1767323045.0


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_pause_image_builds_offline_and_runs(docker_client: docker.DockerClient,
                                             docker_pods: DockerPods, machine: str) -> None:
    # A private tag, so that the node's own skiff/pause:1 is never removed under a kubelet.
    # "aarch64" builds the busybox fallback, which runs here because busybox is native.
    if machine != "x86_64" and find_static_busybox() is None:
        pytest.skip("no static busybox for the fallback")
    tag = f"skiff.test/pause:{docker_pods.new_uid()[:8]}"
    api = docker_client.api
    try:
        image_id = ensure_pause_image(api, tag, machine)
        assert ensure_pause_image(api, tag, machine) == image_id  # idempotent
        if machine == "x86_64":
            assert api.inspect_image(tag)["Size"] < 1024
        c = api.create_container(tag, labels={LABEL_POD_UID: docker_pods.uids[-1]})
        api.start(c["Id"])
        time.sleep(0.3)
        assert api.inspect_container(c["Id"])["State"]["Running"]
        started = time.monotonic()
        api.stop(c["Id"], timeout=0)
        assert time.monotonic() - started < 5
        assert api.inspect_container(c["Id"])["State"]["ExitCode"] == 137
        api.remove_container(c["Id"], force=True)
    finally:
        with contextlib.suppress(docker.errors.APIError):
            api.remove_image(tag, force=True)


async def test_sandbox_runs_pause_and_has_an_ip(runtime: DockerRuntime,
                                                docker_client: docker.DockerClient,
                                                docker_pods: DockerPods) -> None:
    sb = sandbox_config(docker_pods, labels={"team": "blue"})
    sid = await runtime.run_sandbox(sb)
    data = docker_client.api.inspect_container(sid)
    assert data["Config"]["Image"] == PAUSE_IMAGE
    assert data["Path"] == "/pause"
    assert data["State"]["Running"]
    assert data["HostConfig"]["IpcMode"] == "shareable"
    assert data["HostConfig"]["RestartPolicy"]["Name"] in ("no", "")
    assert data["Config"]["Hostname"] == "p"
    assert data["Name"].startswith(f"/skiff_skiff-test_p_{sb.pod_uid.replace('-', '')[:8]}_pause")
    info = await runtime.container_status(sid)
    assert info.is_sandbox and info.state is State.RUNNING
    assert info.ip and info.ip.count(".") == 3
    assert info.labels["team"] == "blue"
    assert (info.pod_uid, info.labels[LABEL_POD_NAME], info.labels[LABEL_POD_NAMESPACE]) == (
        sb.pod_uid, "p", "skiff-test")
    started = time.monotonic()
    await runtime.stop_sandbox(sid)
    assert time.monotonic() - started < 5  # killed, not a 10 s wait on an ignored SIGTERM
    await runtime.remove_sandbox(sid)
    await runtime.remove_sandbox(sid)  # idempotent
    assert docker_pods.containers(sb.pod_uid) == []


async def test_host_network_sandbox_reports_no_ip(runtime: DockerRuntime,
                                                  docker_client: docker.DockerClient,
                                                  docker_pods: DockerPods) -> None:
    sb = sandbox_config(docker_pods, host_network=True,
                        port_mappings=(PortMapping(80, 80),), dns=DnsConfig(("10.9.9.9",)))
    sid = await runtime.run_sandbox(sb)
    assert docker_client.api.inspect_container(sid)["HostConfig"]["NetworkMode"] == "host"
    assert (await runtime.container_status(sid)).ip == ""


# ---- a pod: shared network, ports, DNS ----


async def test_pod_containers_share_ip_and_localhost(runtime: DockerRuntime,
                                                     busybox_image: str,
                                                     docker_pods: DockerPods,
                                                     tmp_path: Path) -> None:
    sb = sandbox_config(docker_pods, name="web")
    sid = await runtime.run_sandbox(sb)
    server = await run(runtime, sid, sb, "server", busybox_image,
                       command=("httpd", "-f", "-p", "8080", "-h", "/www"),
                       mounts=(serve_dir(tmp_path, "hello from the pod\n"),))
    client = await run(runtime, sid, sb, "client", busybox_image, command=SLEEP)
    pod_ip = (await runtime.container_status(sid)).ip

    async def fetched() -> bytes | None:
        r = await runtime.exec_sync(client, ["wget", "-qO-", "http://localhost:8080/"], 5)
        return r.output if r.exit_code == 0 else None

    assert await eventually(fetched, what="httpd on localhost") == b"hello from the pod\n"
    for cid in (server, client):
        r = await runtime.exec_sync(cid, ["ip", "-o", "-4", "addr", "show", "eth0"], 5)
        assert r.exit_code == 0 and f" {pod_ip}/" in r.output.decode(), r.output
        r = await runtime.exec_sync(cid, ["hostname"], 5)
        assert r.output.strip() == b"web"


async def test_host_port_reaches_the_pod(runtime: DockerRuntime, busybox_image: str,
                                         docker_pods: DockerPods, tmp_path: Path) -> None:
    port = free_port()
    sb = sandbox_config(docker_pods, port_mappings=(
        PortMapping(8080, port, "TCP", "127.0.0.1"), PortMapping(9090, 0)))
    sid = await runtime.run_sandbox(sb)
    await run(runtime, sid, sb, "server", busybox_image,
              command=("httpd", "-f", "-p", "8080", "-h", "/www"),
              mounts=(serve_dir(tmp_path, "via the host port\n"),))

    def get() -> bytes | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                return bytes(resp.read())
        except OSError:
            return None

    async def fetched() -> bytes | None:
        return await asyncio.to_thread(get)

    assert await eventually(fetched, what="the host port") == b"via the host port\n"


async def test_dns_config_reaches_resolv_conf(runtime: DockerRuntime, busybox_image: str,
                                              docker_pods: DockerPods) -> None:
    sb = sandbox_config(docker_pods, dns=DnsConfig(
        servers=("10.96.0.10",), searches=("skiff-test.svc.cluster.local",),
        options=("ndots:5",)))
    sid = await runtime.run_sandbox(sb)
    cid = await run(runtime, sid, sb, "app", busybox_image, command=SLEEP)
    conf = (await runtime.exec_sync(cid, ["cat", "/etc/resolv.conf"], 5)).output.decode()
    assert "nameserver 10.96.0.10" in conf
    assert "search skiff-test.svc.cluster.local" in conf
    assert "options ndots:5" in conf


# ---- container configuration ----


@pytest.fixture(scope="module")
def entrypoint_image(docker_client: docker.DockerClient, busybox_image: str) -> str:
    """busybox with ENTRYPOINT ["echo", "ep"] and CMD ["default"], committed locally."""
    tag = "skiff.test/busybox-entrypoint:1.0"
    base = docker_client.api.inspect_image(busybox_image)["Id"]
    with contextlib.suppress(docker.errors.ImageNotFound):
        if docker_client.api.inspect_image(tag)["Parent"] == base:
            return tag  # made by an earlier run from the same busybox
    c = docker_client.api.create_container(busybox_image, command=["true"])
    try:
        docker_client.api.commit(c["Id"], repository=tag.split(":")[0], tag="1.0", changes=[
            'ENTRYPOINT ["echo", "ep"]', 'CMD ["default"]'])
    finally:
        docker_client.api.remove_container(c["Id"], force=True)
    return tag


@pytest.mark.parametrize(("command", "args", "expected"), [
    ((), (), b"ep default\n"),  # the image's ENTRYPOINT and CMD
    ((), ("a1", "a2"), b"ep a1 a2\n"),  # args replace CMD only
    (("echo", "cmd"), (), b"cmd\n"),  # command replaces ENTRYPOINT, and CMD goes too
    (("echo", "cmd"), ("x",), b"cmd x\n"),
])
async def test_command_and_args_follow_kubernetes(runtime: DockerRuntime, entrypoint_image: str,
                                                  docker_pods: DockerPods,
                                                  command: tuple[str, ...],
                                                  args: tuple[str, ...],
                                                  expected: bytes) -> None:
    sb = sandbox_config(docker_pods)
    sid = await runtime.run_sandbox(sb)
    cid = await run(runtime, sid, sb, "app", entrypoint_image, command=command, args=args)
    info = await wait_exited(runtime, cid)
    assert (info.exit_code, info.reason) == (0, "Completed")
    assert await logs_of(runtime, cid) == expected


async def test_env_and_working_dir(runtime: DockerRuntime, busybox_image: str,
                                   docker_pods: DockerPods) -> None:
    sb = sandbox_config(docker_pods)
    sid = await runtime.run_sandbox(sb)
    cid = await run(runtime, sid, sb, "app", busybox_image,
                    command=("sh", "-c", 'echo "$A|$B"; pwd'),
                    env=(("A", "1"), ("B", "with space=and equals")), working_dir="/tmp")
    await wait_exited(runtime, cid)
    assert await logs_of(runtime, cid) == b"1|with space=and equals\n/tmp\n"


async def test_resources_and_log_rotation_reach_the_engine(
        runtime: DockerRuntime, docker_client: docker.DockerClient, busybox_image: str,
        docker_pods: DockerPods) -> None:
    sb = sandbox_config(docker_pods)
    sid = await runtime.run_sandbox(sb)
    cid = await runtime.create_container(sid, ContainerConfig(
        name="app", image=busybox_image, command=SLEEP, cpu_limit_millis=500,
        cpu_request_millis=250, memory_limit_bytes=64 * 1024 * 1024,
        log_max_bytes=1024 * 1024, log_max_files=2), sb)
    best_effort = await runtime.create_container(sid, ContainerConfig(
        name="be", image=busybox_image, command=SLEEP), sb)
    host = docker_client.api.inspect_container(cid)["HostConfig"]
    assert host["NanoCpus"] == 500_000_000
    assert host["CpuShares"] == 256
    assert host["Memory"] == 64 * 1024 * 1024
    assert host["MemorySwap"] == 64 * 1024 * 1024  # no swap beyond the limit
    assert host["LogConfig"] == {"Type": "json-file",
                                 "Config": {"max-size": "1048576", "max-file": "2"}}
    assert host["NetworkMode"] == f"container:{sid}"
    assert host["IpcMode"] == f"container:{sid}"
    assert host["Init"] in (False, None)
    be = docker_client.api.inspect_container(best_effort)["HostConfig"]
    assert (be["NanoCpus"], be["CpuShares"], be["Memory"]) == (0, 2, 0)


async def test_memory_limit_is_enforced(runtime: DockerRuntime, busybox_image: str,
                                        docker_pods: DockerPods) -> None:
    # Reliable on this cgroups v1 host: memory and memory+swap are both limited.
    sb = sandbox_config(docker_pods)
    sid = await runtime.run_sandbox(sb)
    cid = await run(runtime, sid, sb, "hog", busybox_image, memory_limit_bytes=20 * 1024 * 1024,
                    command=("sh", "-c", 'x=$(head -c 100000000 /dev/zero | tr "\\0" x)'))
    info = await wait_exited(runtime, cid, timeout=60)
    assert (info.reason, info.exit_code) == ("OOMKilled", 137)
    listed = {i.id: i for i in await runtime.list_containers()}
    assert listed[cid].reason == "OOMKilled"


async def test_security_settings(runtime: DockerRuntime, busybox_image: str,
                                 docker_pods: DockerPods) -> None:
    sb = sandbox_config(docker_pods)
    sid = await runtime.run_sandbox(sb)
    user = await run(runtime, sid, sb, "user", busybox_image, command=SLEEP,
                     run_as_user=1000, run_as_group=2000)
    readonly = await run(runtime, sid, sb, "ro", busybox_image, command=SLEEP,
                         read_only_rootfs=True)
    nochown = await run(runtime, sid, sb, "nochown", busybox_image, command=SLEEP,
                        cap_drop=("CHOWN",))
    root = await run(runtime, sid, sb, "root", busybox_image, command=SLEEP)

    async def sh(cid: str, script: str) -> tuple[int, bytes]:
        r = await runtime.exec_sync(cid, ["sh", "-c", script], 10)
        return r.exit_code, r.output

    assert await sh(user, "id -u; id -g") == (0, b"1000\n2000\n")
    code, out = await sh(readonly, "touch /x")
    assert code != 0 and b"Read-only file system" in out
    assert (await sh(readonly, "touch /tmp/x"))[0] != 0  # /tmp is on the rootfs too
    code, out = await sh(nochown, "touch /tmp/f && chown 1000 /tmp/f")
    assert code != 0 and b"Operation not permitted" in out
    assert await sh(root, "touch /tmp/f && chown 1000 /tmp/f") == (0, b"")


# ---- failures ----


async def test_missing_command_is_a_start_error(runtime: DockerRuntime, busybox_image: str,
                                                docker_pods: DockerPods) -> None:
    sb = sandbox_config(docker_pods)
    sid = await runtime.run_sandbox(sb)
    cid = await runtime.create_container(sid, ContainerConfig(
        name="app", image=busybox_image, command=("nosuchcmd", "--flag")), sb)
    with pytest.raises(StartContainerError) as e:
        await runtime.start_container(cid)
    assert e.value.message == 'exec: "nosuchcmd": executable file not found in $PATH'
    assert e.value.reason == "RunContainerError"
    info = {i.id: i for i in await runtime.list_containers()}[cid]
    assert info.state is State.EXITED
    assert info.reason == "ContainerCannotRun"
    assert info.exit_code != 0
    assert "nosuchcmd" in info.message


async def test_pull_from_a_registry_that_is_not_there(runtime: DockerRuntime) -> None:
    with pytest.raises(ImagePullError) as e:
        await runtime.pull_image("127.0.0.1:1/nope:1")
    assert "connection refused" in e.value.message
    assert e.value.reason == "ErrImagePull"
    assert await runtime.image_id("127.0.0.1:1/nope:1") is None


async def test_pull_with_credentials(runtime: DockerRuntime, docker_client: docker.DockerClient,
                                     docker_pods: DockerPods,
                                     auth_registry: Registry) -> None:  # noqa: F811
    reg = auth_registry
    try:
        with pytest.raises(ImagePullError) as e:
            await runtime.pull_image(reg.image)
        assert "no basic auth credentials" in e.value.message or "unauthorized" in e.value.message
        with pytest.raises(ImagePullError) as e:
            await runtime.pull_image(reg.host + "/private/nothing:1",
                                     Auth(reg.username, reg.password, reg.host))
        assert "manifest unknown" in e.value.message or "not found" in e.value.message
        image_id = await runtime.pull_image(reg.image, Auth(reg.username, reg.password))
        assert image_id.startswith("sha256:")
        assert await runtime.image_id(reg.image) == image_id
        # A container of a pulled image reports the registry's digest, as Kubernetes does.
        sb = sandbox_config(docker_pods)
        sid = await runtime.run_sandbox(sb)
        cid = await run(runtime, sid, sb, "app", reg.image, command=SLEEP)
        info = await runtime.container_status(cid)
        assert info.image == reg.image
        assert info.image_id.startswith(f"docker-pullable://{reg.host}/private/busybox@sha256:")
    finally:
        # The session's registry image must stay only in the registry for other tests.
        docker_pods.cleanup()
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(reg.image)


async def test_image_id_normalizes_names(runtime: DockerRuntime, busybox_image: str,
                                         docker_client: docker.DockerClient,
                                         docker_pods: DockerPods) -> None:
    image_id = await runtime.image_id(busybox_image)
    assert image_id is not None and image_id.startswith("sha256:")
    assert await runtime.image_id("skiff.test/busybox") is None  # means :latest
    assert await runtime.image_id("skiff.test/never-built:1") is None
    # A Docker Hub style name under a tag of our own (a unique one: never `busybox`).
    name = f"skiff-test-{docker_pods.new_uid()[:8]}"
    docker_client.api.tag(busybox_image, name, "latest")
    try:
        for ref in (name, f"{name}:latest", f"docker.io/library/{name}",
                    f"docker.io/library/{name}:latest"):
            assert await runtime.image_id(ref) == image_id, ref
    finally:
        docker_client.api.remove_image(f"{name}:latest")


async def test_engine_unreachable_is_runtime_unavailable(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    rt = DockerRuntime()
    try:
        with pytest.raises(RuntimeUnavailable):
            await rt.version()
        with pytest.raises(RuntimeUnavailable):
            await rt.list_containers()
    finally:
        rt.close()
    client = docker.APIClient(base_url=f"unix://{tmp_path}/no-docker.sock", version="1.41")
    rt = DockerRuntime(client)
    try:
        with pytest.raises(RuntimeUnavailable):
            await rt.stop_container("abc", 1)
        with pytest.raises(RuntimeUnavailable):
            await logs_of(rt, "abc")
    finally:
        rt.close()


# ---- list, status, stop, remove ----


async def test_list_reports_labels_states_and_exit_codes(runtime: DockerRuntime,
                                                         busybox_image: str,
                                                         docker_pods: DockerPods) -> None:
    sb = sandbox_config(docker_pods)
    before = time.time()
    sid = await runtime.run_sandbox(sb)
    failing = await run(runtime, sid, sb, "failing", busybox_image,
                        command=("sh", "-c", "exit 7"),
                        labels={LABEL_ATTEMPT: "3", "io.skiff.container.hash": "h1"})
    done = await run(runtime, sid, sb, "done", busybox_image, command=("true",))
    running = await run(runtime, sid, sb, "running", busybox_image, command=SLEEP)
    created = await runtime.create_container(sid, ContainerConfig(
        name="created", image=busybox_image, command=SLEEP), sb)
    await wait_exited(runtime, failing)
    await wait_exited(runtime, done)

    infos = {i.id: i for i in await runtime.list_containers() if i.pod_uid == sb.pod_uid}
    assert set(infos) == {sid, failing, done, running, created}
    f = infos[failing]
    assert (f.state, f.exit_code, f.reason, f.attempt, f.name) == (
        State.EXITED, 7, "Error", 3, "failing")
    assert f.labels["io.skiff.container.hash"] == "h1"
    assert f.labels[LABEL_CONTAINER_NAME] == "failing"
    assert f.image == busybox_image and f.image_id.startswith("sha256:")
    assert before - 1 < f.created_at <= f.started_at <= f.finished_at < time.time() + 1
    assert (infos[done].exit_code, infos[done].reason) == (0, "Completed")
    r = infos[running]
    assert (r.state, r.reason, r.finished_at) == (State.RUNNING, "", 0.0)
    assert r.started_at > 0
    assert infos[created].state is State.CREATED and infos[created].started_at == 0.0
    assert infos[sid].is_sandbox and infos[sid].ip
    assert await runtime.container_status(failing) == f


async def test_list_inspects_only_on_changes(runtime: DockerRuntime, busybox_image: str,
                                             docker_pods: DockerPods) -> None:
    sb = sandbox_config(docker_pods)
    sid = await runtime.run_sandbox(sb)
    cid = await run(runtime, sid, sb, "app", busybox_image, command=SLEEP)
    await runtime.list_containers()  # warms the cache
    api = runtime._api_client()
    # Other tests (and developers' clusters) may change their containers on this engine
    # meanwhile: only this pod's inspects count.
    calls: list[tuple[str, str]] = []
    originals = {name: getattr(api, name)
                 for name in ("containers", "inspect_container", "inspect_image")}

    def counting(name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append((name, str(args[0]) if args else ""))
            return originals[name](*args, **kwargs)
        return call

    for name in originals:
        setattr(api, name, counting(name))
    try:
        await runtime.list_containers()
        await runtime.list_containers()
        assert [name for name, _ in calls if name == "containers"] == ["containers"] * 2
        assert not [c for c in calls if c[1] in (sid, cid)]
        await runtime.stop_container(cid, 0)
        calls.clear()
        infos = {i.id: i for i in await runtime.list_containers()}
        assert infos[cid].state is State.EXITED and infos[cid].exit_code == 137
        assert [c for c in calls if c[1] in (sid, cid)] == [("inspect_container", cid)]
    finally:
        for name, fn in originals.items():
            setattr(api, name, fn)


async def test_stop_and_remove_are_idempotent(runtime: DockerRuntime, busybox_image: str,
                                              docker_pods: DockerPods) -> None:
    sb = sandbox_config(docker_pods)
    sid = await runtime.run_sandbox(sb)
    term = await run(runtime, sid, sb, "term", busybox_image,
                     command=("sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"))
    stubborn = await run(runtime, sid, sb, "stubborn", busybox_image, command=SLEEP)
    await asyncio.sleep(0.5)  # let the shell install its trap

    started = time.monotonic()
    await runtime.stop_container(term, 10)
    assert time.monotonic() - started < 5  # SIGTERM was enough
    assert (await runtime.container_status(term)).reason == "Completed"
    started = time.monotonic()
    await runtime.stop_container(stubborn, 1)  # PID 1 sleep ignores SIGTERM: SIGKILL at 1 s
    assert 0.9 < time.monotonic() - started < 5
    assert (await runtime.container_status(stubborn)).exit_code == 137

    await runtime.stop_container(stubborn, 1)  # stopped already
    await runtime.stop_container("0" * 64, 1)  # never existed
    await runtime.remove_container(stubborn)
    await runtime.remove_container(stubborn)
    with pytest.raises(NotFound):
        await runtime.container_status(stubborn)
    await runtime.stop_sandbox(sid)
    await runtime.stop_sandbox(sid)
    await runtime.remove_sandbox(sid)  # takes its remaining container along
    await runtime.remove_sandbox(sid)
    assert docker_pods.containers(sb.pod_uid) == []


async def test_recreate_after_a_leftover_with_the_same_name(runtime: DockerRuntime,
                                                            busybox_image: str,
                                                            docker_pods: DockerPods) -> None:
    # A kubelet that died between create and start leaves a created container; its
    # successor creates the same attempt again.
    sb = sandbox_config(docker_pods)
    sid = await runtime.run_sandbox(sb)
    config = ContainerConfig(name="app", image=busybox_image, command=SLEEP)
    first = await runtime.create_container(sid, config, sb)
    second = await runtime.create_container(sid, config, sb)
    assert second != first
    with pytest.raises(NotFound):
        await runtime.container_status(first)


# ---- exec and logs ----


async def test_exec_output_exit_code_and_timeout(runtime: DockerRuntime, busybox_image: str,
                                                 docker_pods: DockerPods) -> None:
    sb = sandbox_config(docker_pods)
    sid = await runtime.run_sandbox(sb)
    cid = await run(runtime, sid, sb, "app", busybox_image, command=SLEEP)
    r = await runtime.exec_sync(cid, ["sh", "-c", "echo out; echo err >&2; exit 3"], 5)
    assert r.exit_code == 3
    assert sorted(r.output.splitlines()) == [b"err", b"out"]
    r = await runtime.exec_sync(cid, ["nosuchcmd"], 5)
    assert r.exit_code in (126, 127) and b"nosuchcmd" in r.output

    started = time.monotonic()
    r = await runtime.exec_sync(cid, ["sleep", "77"], 0.5)
    assert time.monotonic() - started < 3
    assert r.exit_code == EXEC_TIMEOUT_EXIT_CODE and b"timed out" in r.output

    async def killed() -> bool:
        ps = await runtime.exec_sync(cid, ["ps"], 5)
        return b"sleep 77" not in ps.output

    assert await eventually(killed, 5, "the timed-out command to be killed")

    await runtime.stop_container(cid, 0)
    with pytest.raises(Exception, match="is not running"):
        await runtime.exec_sync(cid, ["true"], 5)
    with pytest.raises(NotFound):
        await runtime.exec_sync("0" * 64, ["true"], 5)


async def test_logs_tail_and_follow(runtime: DockerRuntime, busybox_image: str,
                                    docker_pods: DockerPods) -> None:
    sb = sandbox_config(docker_pods)
    sid = await runtime.run_sandbox(sb)
    cid = await run(runtime, sid, sb, "app", busybox_image, command=(
        "sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.3; done; echo oops >&2"))

    followed: list[bytes] = []
    async for chunk in runtime.logs(cid, follow=True):
        followed.append(chunk)
    # It ended by itself when the container exited; the chunks came as they were written.
    assert b"".join(followed) == b"line1\nline2\nline3\noops\n"
    assert len(followed) >= 3
    assert (await runtime.container_status(cid)).state is State.EXITED

    assert await logs_of(runtime, cid) == b"line1\nline2\nline3\noops\n"
    assert await logs_of(runtime, cid, tail=2) == b"line3\noops\n"
    stamped = (await logs_of(runtime, cid, tail=1, timestamps=True)).decode()
    assert stamped.startswith("20") and stamped.endswith("Z oops\n")
    with pytest.raises(NotFound):
        await logs_of(runtime, "0" * 64)


async def test_follow_stops_when_the_reader_does(runtime: DockerRuntime, busybox_image: str,
                                                 docker_pods: DockerPods) -> None:
    sb = sandbox_config(docker_pods)
    sid = await runtime.run_sandbox(sb)
    cid = await run(runtime, sid, sb, "chatty", busybox_image,
                    command=("sh", "-c", "while true; do echo tick; sleep 0.05; done"))
    stream = runtime.logs(cid, follow=True)
    got = b""
    async for chunk in stream:
        got += chunk
        if got.count(b"tick") >= 3:
            break
    await stream.aclose()

    async def no_reader_left() -> bool:
        return not any(t.name == "skiff-docker-logs" for t in threading.enumerate())

    assert await eventually(no_reader_left, 5, "the log thread to end")


async def test_exec_stream_with_stdin(runtime: DockerRuntime, busybox_image: str,
                                      docker_pods: DockerPods) -> None:
    sb = sandbox_config(docker_pods)
    sid = await runtime.run_sandbox(sb)
    cid = await run(runtime, sid, sb, "app", busybox_image, command=SLEEP)

    session = await runtime.exec_stream(cid, ["sh", "-c", "cat; echo bye >&2; exit 4"],
                                        tty=False, stdin=True)
    await session.write(b"hello\n")
    await session.close_stdin()
    chunks = [c async for c in session.output()]
    assert (1, b"hello\n") in chunks and (2, b"bye\n") in chunks
    assert await session.exit_code() == 4

    session = await runtime.exec_stream(cid, ["sh", "-c", "read x; stty size"],
                                        tty=True, stdin=True)
    await session.resize(40, 100)
    await session.write(b"go\n")
    out = b"".join([c async for _, c in session.output()])
    assert b"40 100" in out  # one stream (1) with a TTY, echo included
    assert await session.exit_code() == 0
    await session.resize(10, 10)  # after the end: harmless
