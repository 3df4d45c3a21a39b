"""The node IPAM controller against a real apiserver and etcd: nodes get distinct podCIDRs
from the cluster range and keep them across a restart of skiff-controller-manager (run
as the process users run, with its flags); a deleted node's block goes to a node that
waited in an exhausted range; nodes it must not serve get Warning events that say why;
the apiserver refuses to change a podCIDR once set.

The Nodes are plain objects (no kubelets): what the controller reads of a node is its
spec and its addresses. Each test removes the nodes it made.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from ipaddress import IPv4Network
from pathlib import Path

import pytest
from fixtures.apiserver import REPO, ApiServerProcess
from fixtures.simcluster import until

from cli import describe
from cluster.components import controller_manager_command
from cluster.process import die_with_parent
from controllers.common.context import ComponentConfig, ControllerContext
from controllers.nodes.nodeipam import NodeIpamController
from skiff.api.v1 import core_pb2
from skiff.client import errors
from skiff.client.client import Client

DEFAULT_RANGE = IPv4Network("10.244.0.0/16")


class ControllerManagerProcess:
    """`skiff-controller-manager` running only nodeipam, with the flags given."""

    def __init__(self, server: str, workdir: Path, flags: tuple[str, ...] = ()) -> None:
        self.argv = controller_manager_command(
            server=server, extra=("--controllers", "nodeipam", "--no-leader-elect", *flags))
        self.log_file = workdir / "controller-manager.log"
        # No developer's ~/.skiff/config: the flags say everything.
        self.env = {**os.environ, "SKIFF_CONFIG": str(workdir / "no-config")}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(self.argv, cwd=REPO, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, preexec_fn=die_with_parent)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else ""


@pytest.fixture
async def client(private_apiserver: ApiServerProcess) -> AsyncIterator[Client]:
    c = private_apiserver.client()
    try:
        yield c
    finally:
        await c.close()


class Nodes:
    """Makes this test's Nodes (names with a prefix of its own) and removes them after."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.prefix = f"ipam-{uuid.uuid4().hex[:6]}"
        self.made: list[str] = []

    async def create(self, suffix: str, *, internal_ip: str = "192.168.77.10",
                     pod_cidr: str = "") -> str:
        node = core_pb2.Node()
        node.metadata.name = f"{self.prefix}-{suffix}"
        node.metadata.labels["skiff-test"] = "nodeipam"
        node.status.addresses.add(type="InternalIP", address=internal_ip)
        if pod_cidr:
            node.spec.pod_cidr = pod_cidr
            node.spec.pod_cidrs.append(pod_cidr)
        await self.client.create(node)
        self.made.append(node.metadata.name)
        return node.metadata.name

    async def get(self, name: str) -> core_pb2.Node:
        return await self.client.get(core_pb2.Node, name)

    async def delete(self, name: str) -> None:
        with contextlib.suppress(errors.NotFound):
            await self.client.delete(core_pb2.Node, name)

    async def pod_cidr(self, name: str) -> str:
        node = await self.get(name)
        if node.spec.pod_cidr:
            assert list(node.spec.pod_cidrs) == [node.spec.pod_cidr]
        return node.spec.pod_cidr

    async def wait_pod_cidrs(self, names: list[str], timeout: float = 20.0) -> list[str]:
        async def all_set() -> list[str] | None:
            cidrs = [await self.pod_cidr(n) for n in names]
            return cidrs if all(cidrs) else None
        result: list[str] = await until(all_set, timeout, f"podCIDRs on {names}")
        return result

    async def events(self, name: str, reason: str) -> list[core_pb2.Event]:
        events, _ = await self.client.list(core_pb2.Event, "default")
        return [e for e in events
                if e.involved_object.name == name and e.reason == reason]

    async def wait_event(self, name: str, reason: str, timeout: float = 15.0) -> core_pb2.Event:
        async def found() -> core_pb2.Event | None:
            events = await self.events(name, reason)
            return events[0] if events else None
        event: core_pb2.Event = await until(found, timeout, f"a {reason} event about {name}")
        return event


@pytest.fixture
async def nodes(client: Client) -> AsyncIterator[Nodes]:
    made = Nodes(client)
    try:
        yield made
    finally:
        for name in made.made:
            await made.delete(name)


@contextlib.asynccontextmanager
async def ipam_controller(client: Client, cluster_cidr: str, mask: int = 24
                          ) -> AsyncIterator[NodeIpamController]:
    """The controller in this event loop, as the controller manager builds it."""
    ctx = ControllerContext.create(client, config=ComponentConfig(
        cluster_cidr=cluster_cidr, node_cidr_mask_size=mask))
    controller = NodeIpamController(ctx)
    ctx.factory.start_all()
    task = asyncio.create_task(controller.run(), name="controller-nodeipam")
    try:
        yield controller
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        await ctx.close()


@pytest.fixture
def manager(private_apiserver: ApiServerProcess, tmp_path: Path
            ) -> Iterator[ControllerManagerProcess]:
    process = ControllerManagerProcess(private_apiserver.address, tmp_path)
    try:
        yield process
    finally:
        process.stop()


def assert_distinct_blocks(cidrs: list[str], cluster: IPv4Network, prefix: int) -> None:
    blocks = [IPv4Network(c) for c in cidrs]
    assert all(b.prefixlen == prefix and b.subnet_of(cluster) for b in blocks), cidrs
    assert not any(a.overlaps(b) for i, a in enumerate(blocks) for b in blocks[i + 1:]), cidrs


async def test_nodes_get_distinct_blocks_and_keep_them_across_a_restart(
        nodes: Nodes, manager: ControllerManagerProcess,
        private_apiserver: ApiServerProcess) -> None:
    manager.start()
    first = [await nodes.create(f"{i}") for i in (1, 2, 3)]
    cidrs = await nodes.wait_pod_cidrs(first)
    assert_distinct_blocks(cidrs, DEFAULT_RANGE, 24)

    text = await describe.describe(nodes.client, await nodes.get(first[0]),
                                   now=datetime.now(UTC))
    assert ["PodCIDR:", cidrs[0]] in [line.split() for line in text.splitlines()], text

    # The fourth node arrives while the controller manager is down. Its name sorts first,
    # so once the apiserver has restarted too (and lists nodes from etcd, in key order) the
    # controller sees it before the others: it must mark their blocks before it hands out
    # one, or it would hand out a taken one.
    manager.stop()
    late = await nodes.create("0-late")
    private_apiserver.restart()
    manager.start()
    (late_cidr,) = await nodes.wait_pod_cidrs([late])
    assert [await nodes.pod_cidr(n) for n in first] == cidrs
    assert_distinct_blocks([*cidrs, late_cidr], DEFAULT_RANGE, 24)
    assert "Traceback" not in manager.log(), manager.log()[-3000:]


async def test_an_exhausted_range_gives_the_block_of_a_deleted_node_to_the_next(
        client: Client, nodes: Nodes) -> None:
    small = IPv4Network("10.245.0.0/23")  # two /24 blocks
    async with ipam_controller(client, str(small)):
        a, b = await nodes.create("a"), await nodes.create("b")
        cidrs = await nodes.wait_pod_cidrs([a, b])
        assert sorted(cidrs) == ["10.245.0.0/24", "10.245.1.0/24"]

        c = await nodes.create("c")
        event = await nodes.wait_event(c, "CIDRNotAvailable")
        assert event.type == "Warning"
        assert event.source.component == "cidrAllocator"
        assert f"Node {c} status is now: CIDRNotAvailable" in event.message
        assert "10.245.0.0/23" in event.message
        assert await nodes.pod_cidr(c) == ""

        freed = await nodes.pod_cidr(a)
        await nodes.delete(a)
        assert await nodes.wait_pod_cidrs([c]) == [freed]
        assert await nodes.pod_cidr(b) != freed


async def test_nodes_the_controller_must_not_serve_get_a_warning_that_says_why(
        client: Client, nodes: Nodes) -> None:
    async with ipam_controller(client, "10.244.0.0/16"):
        colliding = await nodes.create("clash", internal_ip="10.244.3.7")
        outside = await nodes.create("outside", pod_cidr="192.168.50.0/24")
        fine = await nodes.create("fine")

        event = await nodes.wait_event(colliding, "NodeAddressInClusterCIDR")
        assert event.type == "Warning"
        for part in ("InternalIP 10.244.3.7", "10.244.0.0/16", "--cluster-cidr"):
            assert part in event.message, event.message
        event = await nodes.wait_event(outside, "PodCIDROutOfRange")
        assert event.type == "Warning"
        assert "192.168.50.0/24" in event.message and "10.244.0.0/16" in event.message

        await nodes.wait_pod_cidrs([fine])
        assert await nodes.pod_cidr(colliding) == ""
        assert await nodes.pod_cidr(outside) == "192.168.50.0/24"


async def test_the_apiserver_refuses_to_change_a_pod_cidr_once_set(nodes: Nodes) -> None:
    name = await nodes.create("fixed", pod_cidr="10.244.200.0/24")
    node = await nodes.get(name)
    node.spec.pod_cidr = "10.244.201.0/24"
    node.spec.pod_cidrs[:] = ["10.244.201.0/24"]
    with pytest.raises(errors.Invalid) as refused:
        await nodes.client.update(node)
    message = str(refused.value)
    assert "spec.podCIDR" in message
    assert 'node updates may not change podCIDR except from "" to valid' in message
    assert await nodes.pod_cidr(name) == "10.244.200.0/24"

    unset = await nodes.get(await nodes.create("unset"))
    unset.spec.pod_cidr = "10.244.300.0/24"
    with pytest.raises(errors.Invalid, match="spec.podCIDR.*must be a valid CIDR value"):
        await nodes.client.update(unset)
