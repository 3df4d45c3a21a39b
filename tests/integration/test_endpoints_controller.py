"""The Endpoints controller against a real apiserver and etcd. There are no kubelets: the
test creates pods bound to a node and writes their status itself (IP, Ready condition),
as a kubelet would, and reads the Endpoints a user would read."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from controllers.common.context import ComponentConfig, ControllerContext
from controllers.services.endpoints import EndpointsController
from skiff.api.v1 import core_pb2
from skiff.client import errors
from skiff.client.client import Client

BATCH_PERIOD = 0.5


@pytest.fixture
async def controller(client: Client) -> AsyncIterator[EndpointsController]:
    ctx = ControllerContext.create(
        client, config=ComponentConfig(endpoint_updates_batch_period=BATCH_PERIOD))
    ctrl = EndpointsController(ctx)
    task = asyncio.create_task(ctrl.run(), name="controller-endpoint")
    ctx.factory.start_all()
    try:
        yield ctrl
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await ctx.close()


async def until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


async def make_pod(client: Client, ns: str, name: str, *, labels: dict[str, str] | None = None,
                   ports: dict[str, int] | None = None) -> core_pb2.Pod:
    pod = core_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace = name, ns
    pod.metadata.labels.update(labels if labels is not None else {"app": "web"})
    pod.spec.node_name = "skiff-ep-node"
    container = pod.spec.containers.add(name="c", image="busybox", command=["sleep", "3600"])
    for port_name, number in (ports or {}).items():
        container.ports.add(name=port_name, container_port=number)
    return await client.create(pod)


async def set_status(client: Client, ns: str, name: str, ip: str, ready: bool) -> None:
    """What a kubelet reports: Running, the pod's IP, whether it is Ready."""
    while True:
        pod = await client.get(core_pb2.Pod, name, ns)
        pod.status.phase = "Running"
        pod.status.pod_ip = ip
        del pod.status.conditions[:]
        pod.status.conditions.add(type="Ready", status="True" if ready else "False")
        try:
            await client.update_status(pod)
            return
        except errors.Conflict:
            continue


async def make_service(client: Client, ns: str, name: str = "web", *,
                       selector: dict[str, str] | None = None,
                       ports: list[tuple[str, int, int | str]] | None = None
                       ) -> core_pb2.Service:
    svc = core_pb2.Service()
    svc.metadata.name, svc.metadata.namespace = name, ns
    svc.metadata.labels["team"] = "skiff-ep"
    svc.spec.selector.update({"app": "web"} if selector is None else selector)
    for port_name, number, target in (ports if ports is not None else [("", 80, 8080)]):
        port = svc.spec.ports.add(name=port_name, port=number, protocol="TCP")
        if isinstance(target, str):
            port.target_port.str_val = target
        else:
            port.target_port.int_val = target
    return await client.create(svc)


def summary(ep: core_pb2.Endpoints) -> list[tuple[list[str], list[str], list[tuple[str, int]]]]:
    return sorted((sorted(a.ip for a in s.addresses),
                   sorted(a.ip for a in s.not_ready_addresses),
                   sorted((p.name, p.port) for p in s.ports)) for s in ep.subsets)


async def endpoints_become(client: Client, ns: str, name: str, want: Any,
                           timeout: float = 10.0) -> core_pb2.Endpoints:
    async def check() -> core_pb2.Endpoints | None:
        try:
            ep = await client.get(core_pb2.Endpoints, name, ns)
        except errors.NotFound:
            return None
        return ep if summary(ep) == want else None
    found: core_pb2.Endpoints = await until(check, f"endpoints {name} = {want}", timeout)
    return found


async def test_ready_addresses_follow_readiness(client: Client, ns: str,
                                                controller: EndpointsController) -> None:
    await make_service(client, ns)
    for i in (1, 2):
        await make_pod(client, ns, f"web-{i}")
        await set_status(client, ns, f"web-{i}", f"10.244.9.{i}", ready=True)
    await make_pod(client, ns, "db", labels={"app": "db"})
    await set_status(client, ns, "db", "10.244.9.9", ready=True)
    ep = await endpoints_become(client, ns, "web", [(["10.244.9.1", "10.244.9.2"], [],
                                                     [("", 8080)])])
    assert ep.metadata.labels["team"] == "skiff-ep"
    assert "endpoints.kubernetes.io/last-change-trigger-time" in ep.metadata.annotations
    address = next(a for a in ep.subsets[0].addresses if a.ip == "10.244.9.1")
    assert (address.node_name, address.target_ref.kind, address.target_ref.name) == (
        "skiff-ep-node", "Pod", "web-1")

    await set_status(client, ns, "web-2", "10.244.9.2", ready=False)
    await endpoints_become(client, ns, "web", [(["10.244.9.1"], ["10.244.9.2"], [("", 8080)])])
    await set_status(client, ns, "web-2", "10.244.9.2", ready=True)
    await endpoints_become(client, ns, "web", [(["10.244.9.1", "10.244.9.2"], [],
                                                [("", 8080)])])
    # A sync that finds nothing new writes nothing (what the apiserver stores compares
    # equal to what the controller computes).
    ep = await client.get(core_pb2.Endpoints, "web", ns)
    svc = await client.get(core_pb2.Service, "web", ns)
    svc.metadata.annotations["touched"] = "yes"
    await client.update(svc)
    await set_status(client, ns, "web-1", "10.244.9.1", ready=True)  # the same again
    await asyncio.sleep(3 * BATCH_PERIOD)
    again = await client.get(core_pb2.Endpoints, "web", ns)
    assert again.metadata.resource_version == ep.metadata.resource_version

    await client.delete(core_pb2.Pod, "web-1", ns, grace_period=0)
    await endpoints_become(client, ns, "web", [(["10.244.9.2"], [], [("", 8080)])])

    await client.delete(core_pb2.Service, "web", ns)

    async def gone() -> bool:
        try:
            await client.get(core_pb2.Endpoints, "web", ns)
        except errors.NotFound:
            return True
        return False
    await until(gone, "the Endpoints of the deleted service to go")


async def test_a_named_port_with_different_numbers_per_pod(
        client: Client, ns: str, controller: EndpointsController) -> None:
    await make_service(client, ns, ports=[("http", 80, "web")])
    await make_pod(client, ns, "old", ports={"web": 8080})
    await make_pod(client, ns, "new", ports={"web": 9090})
    await make_pod(client, ns, "bare")  # no port of that name
    for name, ip in (("old", "10.244.8.1"), ("new", "10.244.8.2"), ("bare", "10.244.8.3")):
        await set_status(client, ns, name, ip, ready=True)
    await endpoints_become(client, ns, "web", [
        (["10.244.8.1"], [], [("http", 8080)]), (["10.244.8.2"], [], [("http", 9090)])])


async def test_a_service_without_selector_keeps_the_users_endpoints(
        client: Client, ns: str, controller: EndpointsController) -> None:
    await make_service(client, ns, "external", selector={})
    mine = core_pb2.Endpoints()
    mine.metadata.name, mine.metadata.namespace = "external", ns
    subset = mine.subsets.add()
    subset.addresses.add(ip="192.0.2.10")
    subset.ports.add(port=5432)
    await client.create(mine)
    await make_pod(client, ns, "web-1")
    await set_status(client, ns, "web-1", "10.244.7.1", ready=True)
    # A managed service in the same namespace shows the controller has seen the pod.
    await make_service(client, ns, "web")
    await endpoints_become(client, ns, "web", [(["10.244.7.1"], [], [("", 8080)])])
    await asyncio.sleep(2 * BATCH_PERIOD)
    ep = await client.get(core_pb2.Endpoints, "external", ns)
    assert summary(ep) == [(["192.0.2.10"], [], [("", 5432)])]


async def test_a_burst_of_pod_changes_is_written_a_bounded_number_of_times(
        client: Client, ns: str, controller: EndpointsController) -> None:
    await make_service(client, ns)
    pods = 100
    await asyncio.gather(*(make_pod(client, ns, f"web-{i}") for i in range(pods)))
    await endpoints_become(client, ns, "web", [])  # created, empty: no pod has an IP yet

    writes = 0

    async def count() -> None:
        nonlocal writes
        async for event in client.watch(core_pb2.Endpoints, ns):
            if event.type == "MODIFIED":
                writes += 1

    watcher = asyncio.create_task(count())
    try:
        await asyncio.sleep(0.2)  # the watch's initial ADDED event is not a write
        started = time.monotonic()
        # A rollout's pace: five pods become ready every 0.1 s, for two seconds.
        for first in range(0, pods, 5):
            await asyncio.gather(*(set_status(client, ns, f"web-{i}", f"10.244.6.{i + 1}",
                                              True) for i in range(first, first + 5)))
            await asyncio.sleep(0.1)
        every = sorted(f"10.244.6.{i + 1}" for i in range(pods))
        await endpoints_become(client, ns, "web", [(every, [], [("", 8080)])], timeout=30)
        elapsed = time.monotonic() - started
        await asyncio.sleep(2 * BATCH_PERIOD)  # anything still pending has been written
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    # One write at once, then at most one per batch period while the burst lasts.
    bound = 2 + elapsed / BATCH_PERIOD
    assert 1 <= writes <= bound, f"{writes} writes in {elapsed:.1f}s (bound {bound:.0f})"
