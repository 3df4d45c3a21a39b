"""The Node's Ready condition (kubelet/node.py) on the kubelet's clock: its transition
time moves only when its status does, its heartbeat on every write."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from kubelet.node import NodeAgent, NodeConfig
from kubelet.runtime.fake import FakeRuntime
from skiff.api.v1 import core_pb2
from skiff.client.client import Client
from skiff.client.clock import FakeClock

START = datetime(2024, 5, 1, tzinfo=UTC)


def ready_times(node: core_pb2.Node) -> tuple[str, int, int]:
    [cond] = [c for c in node.status.conditions if c.type == "Ready"]
    return cond.status, cond.last_transition_time.seconds, cond.last_heartbeat_time.seconds


async def test_ready_moves_its_transition_time_only_when_it_changes() -> None:
    clock = FakeClock(wall_start=START)
    agent = NodeAgent(cast(Client, None), FakeRuntime(), NodeConfig("n1", address="10.0.0.1"),
                      clock=clock)
    t0 = int(START.timestamp())
    node = agent.desired_node("fake://1", True, "KubeletReady", "ready", None)
    assert ready_times(node) == ("True", t0, t0)
    await clock.advance(10)
    node = agent.desired_node("fake://1", True, "KubeletReady", "ready", node)
    assert ready_times(node) == ("True", t0, t0 + 10)
    await clock.advance(10)
    node = agent.desired_node("fake://1", False, "KubeletNotReady", "down", node)
    assert ready_times(node) == ("False", t0 + 20, t0 + 20)
    assert [(c.reason, c.message) for c in node.status.conditions] == [
        ("KubeletNotReady", "down")]


class NodeStore:
    """The apiserver's side of a Node, as the NodeAgent meets it: Update keeps the stored
    status, UpdateStatus keeps the stored spec and metadata."""

    def __init__(self, node: core_pb2.Node) -> None:
        self.node = node
        self.status_writes: list[core_pb2.Node] = []

    async def get(self, kind: type, name: str, namespace: str = "") -> core_pb2.Node:
        found = core_pb2.Node()
        found.CopyFrom(self.node)
        return found

    async def update(self, obj: core_pb2.Node) -> core_pb2.Node:
        stored = core_pb2.Node()
        stored.CopyFrom(obj)
        stored.status.CopyFrom(self.node.status)
        self.node = stored
        return await self.get(core_pb2.Node, obj.metadata.name)

    async def update_status(self, obj: core_pb2.Node) -> core_pb2.Node:
        self.status_writes.append(obj)
        self.node.status.CopyFrom(obj.status)
        return await self.get(core_pb2.Node, obj.metadata.name)


async def test_a_node_that_join_made_is_ready_at_the_first_beat() -> None:
    # `skiff join` creates the Node bare (a name and its credential's annotation): the
    # first sync adds the labels and must write the status in the same beat, not the next.
    bare = core_pb2.Node()
    bare.metadata.name = "joined"
    bare.metadata.annotations["skiff.io/node-credential"] = "1f"
    store = NodeStore(bare)
    agent = NodeAgent(cast(Client, store), FakeRuntime(), NodeConfig("joined",
                                                                     address="10.0.0.2"),
                      clock=FakeClock(wall_start=START))
    await agent.sync_status()
    assert store.node.metadata.labels["kubernetes.io/hostname"] == "joined"
    assert store.node.metadata.annotations["skiff.io/node-credential"] == "1f"
    assert ready_times(store.node)[0] == "True"
    assert [a.address for a in store.node.status.addresses][:1] == ["10.0.0.2"]
