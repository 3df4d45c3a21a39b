"""A stalled etcd (SIGSTOP: alive, connected, silent) under a real apiserver.

Every request ends within its deadline: the caller's, capped by the server's
--request-timeout. Writes end in Kubernetes' Timeout (their outcome unknown, so nothing
repeats them blindly), reads that accept the watch cache's answer are served all along,
and when etcd resumes (SIGCONT) everything carries on by itself with no object made
twice. etcd is stopped and resumed by the PID of the process this test started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fixtures.apiserver import ApiServerProcess
from fixtures.cli import Cli
from fixtures.simcluster import until

from cluster.etcd import EtcdProcess
from controllers.common.context import ControllerContext
from controllers.workloads.replicaset import ReplicaSetController
from skiff.api.v1 import apps_pb2, core_pb2
from skiff.client import errors
from skiff.client.client import Client, RequestTimeouts
from skiff.client.informer import Informer

SERVER_CAP = 3.0  # the apiserver's --request-timeout here
TIMEOUTS = RequestTimeouts(get=1.5, list=1.5, write=1.5)  # the test clients' own deadlines
SLACK = 0.8  # scheduling on a shared, busy host
KUBERNETES_TIMEOUT = ("Timeout: request did not complete within requested timeout - "
                      "context deadline exceeded")


@contextlib.contextmanager
def stalled(etcd: EtcdProcess) -> Iterator[None]:
    """etcd stopped (not killed) for the block, resumed however the block ends."""
    os.kill(etcd.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(etcd.pid, signal.SIGCONT)


@pytest.fixture
def cluster(etcd_factory: Callable[..., EtcdProcess],
            apiserver_factory: Callable[..., ApiServerProcess]
            ) -> tuple[EtcdProcess, ApiServerProcess]:
    etcd = etcd_factory()
    api = apiserver_factory(etcd.endpoint,
                            extra_args=("--request-timeout", str(SERVER_CAP)))
    return etcd, api


@pytest.fixture
async def client(cluster: tuple[EtcdProcess, ApiServerProcess]) -> Any:
    c = Client(cluster[1].address, timeouts=TIMEOUTS)
    await until(lambda: _answers(c), what="the apiserver to serve")
    yield c
    await c.close()


@pytest.fixture
async def tasks() -> Any:
    """Tasks a test starts, cancelled when it ends however it ends."""
    started: list[asyncio.Task[Any]] = []
    yield started
    for task in started:
        task.cancel()
    await asyncio.gather(*started, return_exceptions=True)


async def _answers(c: Client) -> bool:
    try:
        await c.get(core_pb2.Namespace, "default")
    except errors.ApiError:
        return False
    return True


def config_map(name: str = "", generate_name: str = "", namespace: str = ""
               ) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap()
    cm.metadata.name, cm.metadata.generate_name = name, generate_name
    cm.metadata.namespace = namespace
    cm.data["k"] = "v"
    return cm


def event(name: str, namespace: str) -> core_pb2.Event:
    ev = core_pb2.Event(reason="Stalled", message="etcd", type="Normal")
    ev.metadata.name, ev.metadata.namespace = name, namespace
    ev.involved_object.kind, ev.involved_object.name = "ConfigMap", "before"
    ev.involved_object.namespace = namespace
    return ev


async def new_namespace(c: Client) -> str:
    ns = core_pb2.Namespace()
    ns.metadata.name = f"stall-{uuid.uuid4().hex[:8]}"
    await c.create(ns)
    return ns.metadata.name


async def timed(call: Any) -> tuple[Any, float]:
    """(what `call` returned or raised, seconds it took)."""
    started = time.monotonic()
    try:
        result = await call
    except Exception as err:  # the test inspects it
        result = err
    return result, time.monotonic() - started


async def test_every_request_ends_within_its_deadline_and_cached_reads_go_on(
        cluster: tuple[EtcdProcess, ApiServerProcess], client: Client,
        tasks: list[asyncio.Task[Any]]) -> None:
    etcd, _ = cluster
    ns = await new_namespace(client)
    await client.create(config_map("before", namespace=ns))
    await until(lambda: _cached(client, ns, "before"), what="the watch cache to hold it")

    with stalled(etcd):
        # A write: Kubernetes' Timeout within the caller's deadline, saying it may have
        # been stored; not UNAVAILABLE, which callers would take as "not done, retry".
        err, took = await timed(client.create(config_map(generate_name="during-",
                                                         namespace=ns)))
        assert isinstance(err, errors.Timeout), err
        assert not isinstance(err, errors.DeadlineExceeded), "the server must answer first"
        assert took < TIMEOUTS.write + SLACK
        assert err.message.startswith(KUBERNETES_TIMEOUT), err.message
        assert "etcd" in err.message and "may have been stored" in err.message

        # So does a write that needs an etcd lease first (an Event's).
        err, took = await timed(client.create(event("during", ns)))
        assert isinstance(err, errors.Timeout), err
        assert took < TIMEOUTS.write + SLACK

        # A read of the latest version needs etcd: Timeout too, within the deadline.
        err, took = await timed(client.get(core_pb2.ConfigMap, "before", ns))
        assert isinstance(err, errors.Timeout), err
        assert took < TIMEOUTS.get + SLACK
        err, took = await timed(client.list(core_pb2.ConfigMap, ns))
        assert isinstance(err, errors.Timeout), err

        # The caller may wait longer, but not longer than the server's --request-timeout.
        err, took = await timed(client.get(core_pb2.ConfigMap, "before", ns, timeout=30))
        assert isinstance(err, errors.Timeout), err
        assert SERVER_CAP - 0.5 < took < SERVER_CAP + SLACK

        # What accepts the watch cache's answer is served all along.
        cached, took = await timed(client.get(core_pb2.ConfigMap, "before", ns,
                                              resource_version="0"))
        assert isinstance(cached, core_pb2.ConfigMap) and cached.data["k"] == "v"
        assert took < 0.5
        items, _ = await client.list(core_pb2.ConfigMap, ns, resource_version="0")
        assert [i.metadata.name for i in items] == ["before"]
        informer: Informer[core_pb2.ConfigMap] = Informer(client, core_pb2.ConfigMap, ns)
        tasks.append(informer.start())
        await asyncio.wait_for(informer.wait_synced(), TIMEOUTS.list)
        assert informer.store.get_by_name(ns, "before") is not None

        # The CLI says the storage is the cause, and --cached reads the cache.
        cli = Cli(cluster[1].address)
        result = await asyncio.to_thread(cli, "get", "configmap", "before", "-n", ns)
        assert result.returncode == 1, result.stdout
        [line] = result.stderr.splitlines()
        assert line.startswith("error: " + KUBERNETES_TIMEOUT), line
        assert "the apiserver's storage (etcd) did not answer" in line
        out = await asyncio.to_thread(cli.ok, "get", "configmap", "before", "-n", ns,
                                      "--cached")
        assert "before" in out

    # etcd is back: writes go through, the informer's watch carries on by itself, and
    # the write that timed out was not repeated by anyone.
    await until(lambda: _answers(client), timeout=20, what="etcd to answer again")
    after = await client.create(config_map("after", namespace=ns))
    await until(lambda: _in_store(informer, ns, "after"), timeout=10,
                what="the informer to see a write made after the stall")
    await client.create(event("after", ns))  # a lease is granted again
    names = [i.metadata.name for i in (await client.list(core_pb2.ConfigMap, ns))[0]]
    assert len([n for n in names if n.startswith("during-")]) <= 1, names
    assert after.metadata.name in names


async def _cached(c: Client, ns: str, name: str) -> bool:
    try:
        await c.get(core_pb2.ConfigMap, name, ns, resource_version="0")
    except errors.NotFound:
        return False
    return True


async def _in_store(informer: Informer[core_pb2.ConfigMap], ns: str, name: str) -> bool:
    return informer.store.get_by_name(ns, name) is not None


async def test_replica_set_started_during_a_stall_converges_without_duplicates(
        cluster: tuple[EtcdProcess, ApiServerProcess], client: Client,
        caplog: pytest.LogCaptureFixture) -> None:
    etcd, _ = cluster
    ns = await new_namespace(client)
    rs = apps_pb2.ReplicaSet()
    rs.metadata.name, rs.metadata.namespace = "web", ns
    rs.spec.replicas = 3
    rs.spec.selector.match_labels["app"] = "web"
    rs.spec.template.metadata.labels["app"] = "web"
    rs.spec.template.spec.containers.add(name="main", image="busybox")
    rs = await client.create(rs)
    await until(lambda: _rs_cached(client, ns), what="the watch cache to hold the set")

    # Every pod ever added, as a watcher of the apiserver sees them.
    added: set[str] = set()

    async def watch_pods() -> None:
        async for event in client.watch(core_pb2.Pod, ns):
            if event.type == "ADDED" and event.object is not None:
                added.add(event.object.metadata.name)  # type: ignore[attr-defined]

    watcher = asyncio.create_task(watch_pods())
    ctx = ControllerContext.create(client)
    controller = ReplicaSetController(ctx)
    run = asyncio.create_task(controller.run())
    caplog.set_level(logging.INFO, logger="controllers.common.podcontrol")
    try:
        with stalled(etcd):
            # The controller starts while etcd is silent: its informers list from the
            # watch cache, and its first creates time out (their outcome unknown).
            ctx.factory.start_all()
            await ctx.factory.wait_for_sync(timeout=TIMEOUTS.list + SLACK)
            await until(lambda: _resent(caplog), timeout=TIMEOUTS.write + 3 * SLACK,
                        what="a create to time out and be sent again")
            await asyncio.sleep(2.0)
        pods = await until(lambda: _pods_if(client, ns, 3), timeout=30,
                           what="three pods once etcd resumed")
        await asyncio.sleep(1.5)  # a second create, were there one, would show by now
        pods = (await client.list(core_pb2.Pod, ns))[0]
        assert len(pods) == 3, [p.metadata.name for p in pods]
        assert added == {p.metadata.name for p in pods}, "a pod was created and removed"
        assert all(p.metadata.owner_references[0].uid == rs.metadata.uid for p in pods)
    finally:
        for task in (run, watcher):
            task.cancel()
        await asyncio.gather(run, watcher, return_exceptions=True)
        await ctx.close()


async def _rs_cached(c: Client, ns: str) -> bool:
    try:
        await c.get(apps_pb2.ReplicaSet, "web", ns, resource_version="0")
    except errors.NotFound:
        return False
    return True


async def _resent(caplog: pytest.LogCaptureFixture) -> bool:
    return any("sending it again" in r.getMessage() for r in caplog.records)


async def _pods_if(c: Client, ns: str, count: int) -> list[Any] | None:
    try:
        pods, _ = await c.list(core_pb2.Pod, ns)
    except (errors.Timeout, errors.Unavailable):
        return None
    return pods if len(pods) >= count else None
