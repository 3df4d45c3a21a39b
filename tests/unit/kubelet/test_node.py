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
