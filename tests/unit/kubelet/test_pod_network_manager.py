"""The pod network kept converged (kubelet/network/manager.py) over the in-memory runtime
and host: the bridge follows the node's podCIDR, a podCIDR that overlaps a host network is
refused (NetworkUnavailable, an event, pods wait), the rules are put back when Docker moves
its jumps, routes follow the other nodes; and what the pods and the Node see of it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any, cast

from controllers.nodes.nodelifecycle import reconcile_taints
from kubelet.images import ImageManager
from kubelet.network.bridge import network_name
from kubelet.network.fake import FakeHost, address
from kubelet.network.host import ROUTE_PROTOCOL, Route
from kubelet.network.manager import CHANGED, FAILED, INVALID, OVERLAP, READY, PodNetwork
from kubelet.network.rules import chain_rules, jump_rule, skiff_rules
from kubelet.network.state import NetworkNotReady, NetworkState, Phase
from kubelet.node import NodeAgent, NodeConfig
from kubelet.pods.syncer import PodSyncer
from kubelet.probes import ProbeManager
from kubelet.runtime import SandboxConfig, State
from kubelet.runtime.fake import FakeRuntime
from kubelet.volumes import FakeMounter, VolumeManager
from skiff.api.convert import from_dict
from skiff.api.kinds import apply_defaults
from skiff.api.v1 import core_pb2
from skiff.client.client import Client
from skiff.client.clock import FakeClock
from skiff.client.events import FakeRecorder

CLUSTER = IPv4Network("10.244.0.0/16")
IMAGE = "busybox:1"


def node(name: str, pod_cidr: str = "", ip: str = "") -> core_pb2.Node:
    n = core_pb2.Node()
    n.metadata.name = name
    if pod_cidr:
        n.spec.pod_cidr = pod_cidr
        n.spec.pod_cidrs.append(pod_cidr)
    if ip:
        n.status.addresses.add(type="InternalIP", address=ip)
    return n


class World:
    """One node's pod network with everything it talks to in memory."""

    def __init__(self) -> None:
        self.runtime = FakeRuntime(images=[IMAGE])
        self.host = FakeHost([address("lo", "127.0.0.1/8"), address("eth0", "192.168.1.10/24"),
                              address("docker0", "172.17.0.1/16")])
        self.nodes: dict[str, core_pb2.Node] = {"n1": node("n1", ip="192.168.1.10")}
        self.recorder = FakeRecorder()
        self.changes: list[NetworkState] = []
        self.network = PodNetwork(
            node_name="n1", cluster_cidr=CLUSTER, runtime=self.runtime, host=self.host,
            nodes=lambda: list(self.nodes.values()), recorder=self.recorder,
            on_change=self.changes.append)

    def set_pod_cidr(self, cidr: str) -> None:
        self.nodes["n1"] = node("n1", cidr, "192.168.1.10")

    def pods_network(self) -> tuple[str, str] | None:
        found = self.runtime.networks.get(network_name("n1"))
        return (found.subnet, found.gateway) if found else None

    def restores(self) -> int:
        return self.host.calls.count("iptables_restore")


async def test_no_pod_cidr_means_the_runtimes_default_network_and_nothing_on_the_host() -> None:
    w = World()
    state = await w.network.sync()
    assert state.phase is Phase.NONE and w.network.sandbox_network() == ""
    assert w.network.node_condition() is None
    assert w.host.calls == [] and w.runtime.networks == {}


async def test_a_pod_cidr_that_arrives_makes_the_bridge_rules_and_routes() -> None:
    w = World()
    await w.network.sync()
    w.set_pod_cidr("10.244.7.0/24")
    w.nodes["n2"] = node("n2", "10.244.8.0/24", "192.168.1.11")
    state = await w.network.sync()
    assert state.phase is Phase.READY and state.network == "skiff-pods-n1"
    assert w.network.sandbox_network() == "skiff-pods-n1"
    assert w.pods_network() == ("10.244.7.0/24", "10.244.7.1")
    assert w.runtime.networks["skiff-pods-n1"].masquerade is False
    assert w.host.tables["filter"]["FORWARD"][0] == jump_rule("filter")
    assert w.host.tables["filter"]["SKIFF-FORWARD"] == chain_rules(CLUSTER)["filter"]
    assert w.host.tables["nat"]["SKIFF-POSTROUTING"] == chain_rules(CLUSTER)["nat"]
    assert w.host.routes_ == [Route(IPv4Network("10.244.8.0/24"), IPv4Address("192.168.1.11"),
                                    "eth0", ROUTE_PROTOCOL)]
    assert w.network.node_condition() == (
        "False", READY, "pods are on the bridge network skiff-pods-n1 (10.244.7.0/24)")
    assert w.recorder.events == [
        f"Normal {READY} pods are on the bridge network skiff-pods-n1 (10.244.7.0/24)"]
    assert w.recorder.objects[0].kind == "Node" and w.recorder.objects[0].name == "n1"
    assert [s.phase for s in w.changes] == [Phase.READY]
    # Converged: the next sync changes nothing.
    restores = w.restores()
    await w.network.sync()
    assert w.restores() == restores and w.changes[-1].phase is Phase.READY
    assert len(w.changes) == 1


async def test_a_pod_cidr_overlapping_a_host_network_is_refused_and_pods_wait() -> None:
    w = World()
    w.set_pod_cidr("10.244.7.0/24")
    w.host.addresses_.append(address("eth1", "10.244.0.5/20"))  # the LAN is in the range
    state = await w.network.sync()
    assert state.phase is Phase.UNAVAILABLE and state.reason == OVERLAP
    message = ("podCIDR 10.244.7.0/24 overlaps the network 10.244.0.0/20 of interface eth1 "
               "(address 10.244.0.5) on this host, so pods cannot use it and wait; delete "
               "the Node so that it gets another podCIDR when it registers again, or give "
               "the controller manager and the kubelets a --cluster-cidr that overlaps none "
               "of the hosts' networks")
    assert state.message == message
    assert w.network.node_condition() == ("True", OVERLAP, message)
    assert w.recorder.events == [f"Warning {OVERLAP} {message}"]
    try:
        w.network.sandbox_network()
        raise AssertionError("a sandbox was given a network")
    except NetworkNotReady as err:
        assert str(err) == message
    assert w.runtime.networks == {} and skiff_rules(
        {t: await w.host.iptables_save(t) for t in ("filter", "nat")}) == []
    # The colliding network goes away: the pod network comes up.
    w.host.addresses_.pop()
    assert (await w.network.sync()).phase is Phase.READY


async def test_a_pod_cidr_that_cannot_be_used_says_why() -> None:
    w = World()
    w.set_pod_cidr("10.99.0.0/24")
    state = await w.network.sync()
    assert (state.phase, state.reason) == (Phase.UNAVAILABLE, INVALID)
    assert "podCIDR 10.99.0.0/24 is not inside the cluster CIDR 10.244.0.0/16" in state.message
    w.set_pod_cidr("10.244.7.0/24")
    w.host.fail["iptables_save"] = "iptables-save is not installed (apt-get install iptables)"
    state = await w.network.sync()
    assert (state.phase, state.reason) == (Phase.UNAVAILABLE, FAILED)
    assert state.message == ("setting up the pod network for podCIDR 10.244.7.0/24 failed: "
                             "iptables-save is not installed (apt-get install iptables)")


async def test_a_changed_pod_cidr_remakes_the_bridge_once_no_pod_runs_on_it() -> None:
    w = World()
    w.set_pod_cidr("10.244.7.0/24")
    await w.network.sync()
    sandbox = await w.runtime.run_sandbox(SandboxConfig("uid-1", "default", "p", network=(
        "skiff-pods-n1")))
    assert w.runtime.containers[sandbox].ip == "10.244.7.2"
    # The node was deleted and joined again: it has another podCIDR now.
    w.set_pod_cidr("10.244.9.0/24")
    state = await w.network.sync()
    assert (state.phase, state.reason) == (Phase.UNAVAILABLE, CHANGED)
    assert state.message.startswith("the pods network skiff-pods-n1 has subnet "
                                    "10.244.7.0/24, but the podCIDR is now 10.244.9.0/24; "
                                    "1 running container(s) still use it")
    assert w.pods_network() == ("10.244.7.0/24", "10.244.7.1")
    await w.runtime.stop_sandbox(sandbox)
    state = await w.network.sync()
    assert state.phase is Phase.READY and w.pods_network() == ("10.244.9.0/24", "10.244.9.1")


async def test_rules_moved_by_docker_are_put_back_and_rebuilt_at_start() -> None:
    w = World()
    w.set_pod_cidr("10.244.7.0/24")
    await w.network.sync()
    forward = w.host.tables["filter"]["FORWARD"]
    forward.insert(0, "-A FORWARD -j DOCKER-USER")  # Docker made a network
    await w.network.sync()
    assert w.host.tables["filter"]["FORWARD"][0] == jump_rule("filter")
    assert w.host.tables["filter"]["FORWARD"].count(jump_rule("filter")) == 1
    # A restarted kubelet rebuilds everything, even what looks right.
    again = PodNetwork(node_name="n1", cluster_cidr=CLUSTER, runtime=w.runtime, host=w.host,
                       nodes=lambda: list(w.nodes.values()), recorder=w.recorder)
    restores = w.restores()
    await again.sync()
    assert w.restores() == restores + 1


async def test_routes_follow_nodes_joining_changing_address_and_leaving() -> None:
    w = World()
    w.set_pod_cidr("10.244.7.0/24")
    await w.network.sync()
    assert w.host.routes_ == []

    def routes() -> set[tuple[str, str]]:
        return {(str(r.destination), str(r.gateway)) for r in w.host.routes_ if r.is_skiffs}

    w.nodes["n2"] = node("n2", "10.244.8.0/24", "192.168.1.11")
    w.nodes["n3"] = node("n3", "10.244.9.0/24", "192.168.1.12")
    await w.network.sync()
    assert routes() == {("10.244.8.0/24", "192.168.1.11"), ("10.244.9.0/24", "192.168.1.12")}
    w.nodes["n2"] = node("n2", "10.244.8.0/24", "192.168.1.21")
    del w.nodes["n3"]
    await w.network.sync()
    assert routes() == {("10.244.8.0/24", "192.168.1.21")}
    assert w.network.routes == {"n2": "10.244.8.0/24 via 192.168.1.21"}
    # A route that cannot be made does not stop the others.
    w.nodes["n4"] = node("n4", "10.244.10.0/24", "192.168.1.14")
    w.host.fail["replace_route"] = "RTNETLINK answers: Network is unreachable"
    state = await w.network.sync()
    assert state.phase is Phase.READY and "n4" not in w.network.routes


async def test_only_routing_facts_of_nodes_wake_the_sync() -> None:
    w = World()
    on_add, on_update, on_delete = w.network.node_handlers()
    heartbeat = node("n2", "10.244.8.0/24", "192.168.1.11")
    beat = core_pb2.Node()
    beat.CopyFrom(heartbeat)
    beat.status.conditions.add(type="Ready", status="True")
    on_update(heartbeat, beat)
    assert not w.network._wake.is_set()
    moved = node("n2", "10.244.8.0/24", "192.168.1.12")
    on_update(beat, moved)
    assert w.network._wake.is_set()
    for handler in (on_add, on_delete):
        w.network._wake.clear()
        handler(moved)
        assert w.network._wake.is_set()


async def test_the_node_shows_network_unavailable_from_the_pod_network() -> None:
    condition: list[tuple[str, str, str] | None] = [None]
    agent = NodeAgent(cast(Client, None), FakeRuntime(), NodeConfig("n1", address="10.0.0.1"),
                      clock=FakeClock(wall_start=datetime(2024, 5, 1, tzinfo=UTC)),
                      network_conditions=lambda: [("NetworkUnavailable", *condition[0])]
                      if condition[0] else [])
    shown = agent.desired_node("fake://1", True, "KubeletReady", "ready", None)
    assert [c.type for c in shown.status.conditions] == ["Ready"]
    condition[0] = ("True", OVERLAP, "podCIDR 10.244.7.0/24 overlaps ...")
    shown = agent.desired_node("fake://1", True, "KubeletReady", "ready", shown)
    net = next(c for c in shown.status.conditions if c.type == "NetworkUnavailable")
    assert (net.status, net.reason, net.message) == condition[0]
    assert net.last_transition_time.seconds > 0
    # The node lifecycle controller taints such a node, so the scheduler passes it by.
    taints = reconcile_taints(shown, datetime(2024, 5, 1, tzinfo=UTC)) or []
    assert [(t.key, t.effect) for t in taints] == [
        ("node.kubernetes.io/network-unavailable", "NoSchedule")]
    condition[0] = ("False", READY, "pods are on the bridge network skiff-pods-n1")
    ready = agent.desired_node("fake://1", True, "KubeletReady", "ready", shown)
    ready.spec.taints.extend(taints)
    assert reconcile_taints(ready, datetime(2024, 5, 1, tzinfo=UTC)) == []  # taken off


# ---- what pods see ----

def make_pod(name: str, **spec: Any) -> core_pb2.Pod:
    pod, _ = from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
        "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "c", "image": IMAGE}], **spec}})
    assert isinstance(pod, core_pb2.Pod)
    apply_defaults(pod)
    return pod


class StatusSink:
    def __init__(self) -> None:
        self.statuses: dict[str, core_pb2.PodStatus] = {}

    async def update_status(self, pod: core_pb2.Pod) -> core_pb2.Pod:
        self.statuses[pod.metadata.uid] = pod.status
        return pod

    async def delete(self, *args: Any, **kwargs: Any) -> None:
        pass

    async def get(self, *args: Any) -> core_pb2.Pod:
        raise AssertionError("no conflicts here")


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_pods_join_the_bridge_and_wait_while_the_network_is_unavailable(
        tmp_path: Path) -> None:
    w = World()
    client = StatusSink()
    recorder = FakeRecorder()
    syncer = PodSyncer(
        node_name="n1", node_ip="192.168.1.10", client=client, runtime=w.runtime,
        volumes=VolumeManager(tmp_path, cast(Any, None), mounter=FakeMounter()),
        images=ImageManager(w.runtime, cast(Any, None)),
        probes=ProbeManager(w.runtime, on_change=lambda uid: None), source=cast(Any, None),
        recorder=recorder, sandbox_network=w.network.sandbox_network)
    try:
        w.set_pod_cidr("10.244.7.0/24")
        w.host.addresses_.append(address("eth1", "10.244.7.100/24"))
        await w.network.sync()
        syncer.pod_updated(make_pod("web"))
        syncer.pod_updated(make_pod("host", hostNetwork=True))
        await until(lambda: "uid-web" in client.statuses and "uid-host" in client.statuses)
        web = client.statuses["uid-web"]
        assert web.container_statuses[0].state.waiting.reason == "ContainerCreating"
        assert not web.pod_ip
        assert any(e.startswith("Warning NetworkNotReady network is not ready: podCIDR "
                                "10.244.7.0/24 overlaps the network 10.244.7.0/24 of "
                                "interface eth1") for e in recorder.events)
        await until(lambda: client.statuses["uid-host"].pod_ip == "192.168.1.10")

        w.host.addresses_.pop()
        await w.network.sync()
        syncer.wake_all()
        await until(lambda: client.statuses["uid-web"].pod_ip.startswith("10.244.7."))
        [sandbox] = [c for c in w.runtime.containers.values()
                     if c.is_sandbox and c.labels["io.skiff.pod.uid"] == "uid-web"]
        assert isinstance(sandbox.config, SandboxConfig)
        assert sandbox.config.network == "skiff-pods-n1" and sandbox.state is State.RUNNING
    finally:
        await syncer.stop()
