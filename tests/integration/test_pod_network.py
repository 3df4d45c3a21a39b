"""The pod network on this host, with real kubelets, the real Docker engine and the real
iptables and routing table: pods get addresses in their node's podCIDR and reach pods of
another node by pod IP with their source address kept, hostNetwork pods keep the node's
address, Skiff's rules are in its own chains and go with `--cleanup-pod-network`, an
overlapping podCIDR is refused, and routes follow the other nodes.

Two kubelets on one host, each with its own podCIDR and so its own bridge, stand in for
two hosts: traffic between their pods is routed by the host between two Docker bridges,
through FORWARD (where Docker's isolation chains drop it unless Skiff's chain lets it
through first) and nat POSTROUTING (where it must not be masqueraded). Routes to other
hosts cannot be proven on one host: they are checked against fake Nodes whose
InternalIPs are on a bridge interface with no ports, `skiff-pn-dummy`, in TEST-NET-2
(198.51.100.0/24: this host's own LAN is TEST-NET-1), and no packet is sent to them.

The podCIDRs are given by the test, as the controller manager's nodeipam would. Traffic
goes only to the pods started here. Every test removes its containers, networks, routes
and chains (`skiff-kubelet --cleanup-pod-network`), and its fake Nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import docker
import docker.errors
import pytest
from fixtures.docker import DockerPods
from fixtures.kubelet import REPO, KubeletProcess
from test_kubelet_pods import (
    FAST_KUBELET,
    container,
    create_pod,
    eventually,
    pod_events,
    running_and_ready,
    wait_pod,
)

from cluster import purge
from cluster.components import kubelet_cleanup_command
from kubelet.network.host import ROUTE_PROTOCOL
from kubelet.runtime import NetworkConfig, RuntimeError_, SandboxConfig
from kubelet.runtime.docker import DockerRuntime
from skiff.api.v1 import core_pb2
from skiff.client import errors
from skiff.client.client import Client

FAST_NETWORK = ("--pod-network-resync-period", "1")
DUMMY = "skiff-pn-dummy"  # a bridge with no ports: a segment that leads nowhere
DUMMY_ADDRESS = "198.51.100.1/24"
CGI_SERVER = ("mkdir -p /www/cgi-bin; printf '#!/bin/sh\\necho Content-Type: text/plain\\n"
              "echo\\necho peer=$REMOTE_ADDR\\n' > /www/cgi-bin/peer; "
              "chmod +x /www/cgi-bin/peer; exec httpd -f -p 8080 -h /www")


# ---- the host ----

def run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def skiff_iptables() -> list[str]:
    """Every line of iptables-save (filter and nat) that names a chain of Skiff's."""
    return [line for table in ("filter", "nat") for line in run("iptables-save", "-t", table)
            .splitlines() if "SKIFF-" in line]


def first_rule(table: str, chain: str) -> str:
    rules = [r for r in run("iptables", "-t", table, "-S", chain).splitlines()
             if r.startswith("-A")]
    return rules[0] if rules else ""


def skiff_routes() -> list[dict[str, Any]]:
    routes: list[dict[str, Any]] = json.loads(
        run("ip", "-j", "-4", "route", "show", "table", "main", "proto", ROUTE_PROTOCOL)
        or "[]")
    return routes


def cleanup_pod_network(node_name: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(kubelet_cleanup_command(node_name=node_name), cwd=REPO,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def host_network() -> Iterator[None]:
    """Requested first, so that it is torn down last: after the kubelets have stopped and
    their containers and bridges are gone, Skiff's chains and routes go too."""
    if subprocess.run(["iptables-save", "-t", "filter"], capture_output=True).returncode:
        pytest.skip("iptables cannot be read here (not root, or not installed)")
    yield
    done = cleanup_pod_network()
    assert done.returncode == 0, done.stderr
    assert skiff_iptables() == []


@pytest.fixture
def dummy_segment() -> Iterator[str]:
    made = subprocess.run(["ip", "link", "add", DUMMY, "type", "bridge"], capture_output=True,
                          text=True)
    if made.returncode:
        pytest.skip(f"cannot make interface {DUMMY}: {made.stderr.strip()}")
    try:
        run("ip", "addr", "add", DUMMY_ADDRESS, "dev", DUMMY)
        run("ip", "link", "set", DUMMY, "up")
        yield DUMMY
    finally:
        subprocess.run(["ip", "link", "del", DUMMY], capture_output=True)


# ---- the apiserver ----

async def give_pod_cidr(client: Client, node_name: str, cidr: str) -> None:
    """What the controller manager's nodeipam does."""
    for _ in range(5):
        node = await client.get(core_pb2.Node, node_name)
        node.spec.pod_cidr = cidr
        del node.spec.pod_cidrs[:]
        node.spec.pod_cidrs.append(cidr)
        try:
            await client.update(node)
            return
        except errors.Conflict:
            continue
    raise AssertionError(f"could not give {node_name} its podCIDR")


async def network_condition(client: Client, node_name: str, status: str
                            ) -> core_pb2.NodeCondition:
    async def probe() -> core_pb2.NodeCondition | None:
        node = await client.get(core_pb2.Node, node_name)
        cond = next((c for c in node.status.conditions if c.type == "NetworkUnavailable"),
                    None)
        return cond if cond is not None and cond.status == status else None

    return await eventually(probe, timeout=20,
                            what=f"NetworkUnavailable={status} on node {node_name}")


async def pod_network_node(kubelet_factory: Callable[..., KubeletProcess], client: Client,
                           cidr: str, *extra: str) -> KubeletProcess:
    kubelet = kubelet_factory(extra_args=(*FAST_KUBELET, *FAST_NETWORK, *extra))
    kubelet.wait_running()
    await give_pod_cidr(client, kubelet.node_name, cidr)
    cond = await network_condition(client, kubelet.node_name, "False")
    assert cond.reason == "PodNetworkReady", cond
    return kubelet


async def fake_node(client: Client, name: str, pod_cidr: str, internal_ip: str) -> None:
    node = core_pb2.Node()
    node.metadata.name = name
    node.spec.pod_cidr = pod_cidr
    node.spec.pod_cidrs.append(pod_cidr)
    node = await client.create(node)
    await set_internal_ip(client, name, internal_ip)


async def set_internal_ip(client: Client, name: str, ip: str) -> None:
    node = await client.get(core_pb2.Node, name)
    del node.status.addresses[:]
    node.status.addresses.add(type="InternalIP", address=ip)
    await client.update_status(node)


def in_cidr(ip: str, cidr: str) -> bool:
    return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr)


# ---- the runtime's networks ----

async def test_the_docker_runtime_makes_joins_and_removes_a_pods_network(
        docker_client: docker.DockerClient, docker_pods: DockerPods) -> None:
    runtime = DockerRuntime(docker_client)
    name = f"skiff-pn-{uuid.uuid4().hex[:8]}"
    try:
        assert await runtime.inspect_network(name) is None
        made = await runtime.create_network(NetworkConfig(
            name, "10.244.127.0/24", "10.244.127.1", labels={"io.skiff.test": "pod-network"},
            masquerade=False))
        assert (made.subnet, made.gateway, made.masquerade, made.containers) == (
            "10.244.127.0/24", "10.244.127.1", False, ())
        assert made.interface == f"br-{made.id[:12]}"
        assert "inet 10.244.127.1/24" in run("ip", "-4", "-o", "addr", "show", "dev",
                                               made.interface)
        with pytest.raises(RuntimeError_, match=r"\(10.244.127.0/25\): Pool overlaps"):
            await runtime.create_network(NetworkConfig(
                f"{name}-2", "10.244.127.0/25", "10.244.127.1"))
        sandbox = await runtime.run_sandbox(SandboxConfig(
            pod_uid=docker_pods.new_uid(), namespace="skiff-test", name="p", network=name))
        info = await runtime.container_status(sandbox)
        assert in_cidr(info.ip, "10.244.127.0/24") and info.ip != "10.244.127.1"
        joined = await runtime.inspect_network(name)
        assert joined is not None and joined.containers == (sandbox,)
        with pytest.raises(RuntimeError_, match="active endpoints"):
            await runtime.remove_network(name)
        await runtime.stop_sandbox(sandbox)
        await runtime.remove_network(name)
        assert await runtime.inspect_network(name) is None
        await runtime.remove_network(name)  # gone already: no error
    finally:
        docker_pods.cleanup()
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.api.remove_network(name)
        runtime.close()


# ---- pods ----

async def test_pods_of_two_nodes_reach_each_other_by_pod_ip_with_their_source_kept(
        host_network: None, kubelet_factory: Callable[..., KubeletProcess], client: Client,
        ns: str, busybox_image: str) -> None:
    a = await pod_network_node(kubelet_factory, client, "10.244.123.0/24")
    b = await pod_network_node(kubelet_factory, client, "10.244.124.0/24")
    sleeper = "exec sleep 3600"
    await create_pod(client, ns, a.node_name, "server",
                     [container("web", CGI_SERVER, busybox_image)])
    await create_pod(client, ns, a.node_name, "neighbour",
                     [container("c", sleeper, busybox_image)])
    await create_pod(client, ns, b.node_name, "visitor",
                     [container("c", sleeper, busybox_image)])
    await create_pod(client, ns, a.node_name, "hostnet",
                     [container("c", sleeper, busybox_image)], hostNetwork=True)
    ips = {name: (await wait_pod(client, ns, name, running_and_ready, "Running")).status
           for name in ("server", "neighbour", "visitor", "hostnet")}
    assert in_cidr(ips["server"].pod_ip, "10.244.123.0/24"), ips["server"]
    assert in_cidr(ips["neighbour"].pod_ip, "10.244.123.0/24"), ips["neighbour"]
    assert in_cidr(ips["visitor"].pod_ip, "10.244.124.0/24"), ips["visitor"]
    assert ips["hostnet"].pod_ip == ips["hostnet"].host_ip == "127.0.0.1"
    assert [p.ip for p in ips["visitor"].pod_ips] == [ips["visitor"].pod_ip]

    url = f"http://{ips['server'].pod_ip}:8080/cgi-bin/peer"
    # Through the engine, as one would on the node: the kubelets are stopped below.
    container_ids = {name: ips[name].container_statuses[0].container_id.removeprefix(
        "docker://") for name in ("neighbour", "visitor")}

    async def fetch(pod: str) -> tuple[int, str]:
        done = await asyncio.to_thread(
            subprocess.run, ["docker", "exec", container_ids[pod], "sh", "-c",
                             f"timeout 3 wget -qO- {url}"], capture_output=True, text=True)
        return done.returncode, done.stdout

    async def server_sees(pod: str) -> str:
        async def probe() -> str | None:
            code, out = await fetch(pod)
            return out.strip() if code == 0 else None

        return await eventually(probe, timeout=20, what=f"{pod} to fetch {url}")

    # busybox httpd shows an IPv4 peer as IPv4-mapped IPv6.
    for pod in ("neighbour", "visitor"):
        seen = await server_sees(pod)
        assert seen in (f"peer={ips[pod].pod_ip}", f"peer=[::ffff:{ips[pod].pod_ip}]"), seen

    # Skiff's chain is what lets the visitor across: without its jump, Docker's isolation
    # drops traffic between two bridges. A kubelet that starts rebuilds it.
    jump = '-A FORWARD -m comment --comment "skiff pod network" -j SKIFF-FORWARD'
    assert first_rule("filter", "FORWARD") == jump
    a.stop()
    b.stop()
    run("iptables", "-D", "FORWARD", "-m", "comment", "--comment", "skiff pod network",
        "-j", "SKIFF-FORWARD")
    code, _ = await fetch("visitor")
    assert code != 0, "reached the server with Skiff's FORWARD jump removed"
    a.start().wait_running()
    assert await server_sees("visitor") in (f"peer={ips['visitor'].pod_ip}",
                                            f"peer=[::ffff:{ips['visitor'].pod_ip}]")
    assert first_rule("filter", "FORWARD") == jump


async def test_the_pods_bridge_and_skiffs_chains_and_the_cleanup_that_removes_them(
        host_network: None, kubelet_factory: Callable[..., KubeletProcess], client: Client,
        docker_client: docker.DockerClient) -> None:
    docker_rules = [r for r in run("iptables", "-S", "FORWARD").splitlines() if "SKIFF" not in r]
    kubelet = await pod_network_node(kubelet_factory, client, "10.244.125.0/24")
    network = docker_client.api.inspect_network(f"skiff-pods-{kubelet.node_name}")
    assert network["IPAM"]["Config"] == [{"Subnet": "10.244.125.0/24",
                                          "Gateway": "10.244.125.1"}]
    assert network["Labels"] == {"io.skiff.node": kubelet.node_name, "io.skiff.network": "pods"}
    assert network["Options"]["com.docker.network.bridge.enable_ip_masquerade"] == "false"

    assert first_rule("filter", "FORWARD") == (
        '-A FORWARD -m comment --comment "skiff pod network" -j SKIFF-FORWARD')
    assert first_rule("nat", "POSTROUTING") == (
        '-A POSTROUTING -m comment --comment "skiff pod network" -j SKIFF-POSTROUTING')
    assert run("iptables", "-S", "SKIFF-FORWARD").splitlines() == [
        "-N SKIFF-FORWARD",
        '-A SKIFF-FORWARD -d 10.244.0.0/16 -m comment --comment "skiff: forwarded to pods" '
        "-j ACCEPT"]
    assert run("iptables", "-t", "nat", "-S", "SKIFF-POSTROUTING").splitlines() == [
        "-N SKIFF-POSTROUTING",
        '-A SKIFF-POSTROUTING -m comment --comment "skiff: service traffic requiring SNAT" '
        "-m mark --mark 0x4000/0x4000 -j MASQUERADE",
        "-A SKIFF-POSTROUTING -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment "
        '"skiff: pod to pod keeps its source address" -j RETURN',
        "-A SKIFF-POSTROUTING -s 10.244.0.0/16 ! -d 10.244.0.0/16 -m comment --comment "
        '"skiff: pods to elsewhere leave as the node" -j MASQUERADE']

    # Docker puts its own jumps first when it makes a network; the kubelet puts Skiff's
    # back at its next resync.
    other = docker_client.networks.create(f"skiff-pn-{uuid.uuid4().hex[:8]}",
                                          labels={"io.skiff.test": "pod-network"})
    try:
        assert first_rule("filter", "FORWARD") != (
            '-A FORWARD -m comment --comment "skiff pod network" -j SKIFF-FORWARD')

        async def put_back() -> bool:
            return first_rule("filter", "FORWARD") == (
                '-A FORWARD -m comment --comment "skiff pod network" -j SKIFF-FORWARD')

        await eventually(put_back, timeout=10, what="Skiff's jump to be first again")
        assert sum("SKIFF-FORWARD" in r for r in run("iptables", "-S", "FORWARD")
                   .splitlines()) == 1
    finally:
        other.remove()
    assert "put back" in kubelet.log()

    # What `skiff down --purge` runs after removing the node's containers.
    kubelet.stop()
    said: list[str] = []
    purge.cleanup_pod_network(kubelet.node_name, said.append)
    assert said == ["removed the service proxy's iptables chains (SKIFF-SERVICES, "
                    "SKIFF-NODEPORTS, SKIFF-MARK-MASQ, SKIFF-SVC-*, SKIFF-SEP-*) and the jumps "
                    "to them",
                    "removed the iptables chains SKIFF-FORWARD and SKIFF-POSTROUTING and the "
                    "jumps to them",
                    f"removed the pods network skiff-pods-{kubelet.node_name}"]
    assert skiff_iptables() == []
    # Docker's own rules are all still there (other tests on this host may have added
    # networks of their own since: only what was there before is compared).
    after = run("iptables", "-S", "FORWARD").splitlines()
    assert [r for r in docker_rules if r not in after] == []
    with pytest.raises(docker.errors.NotFound):
        docker_client.api.inspect_network(f"skiff-pods-{kubelet.node_name}")
    again = cleanup_pod_network(kubelet.node_name)
    assert again.returncode == 0 and "nothing of the pod network's" in again.stdout


async def test_a_pod_cidr_overlapping_a_host_network_is_refused(
        host_network: None, kubelet_factory: Callable[..., KubeletProcess], client: Client,
        ns: str, busybox_image: str, docker_client: docker.DockerClient) -> None:
    # A range inside docker0's network, and a cluster range that holds it.
    [link] = json.loads(run("ip", "-j", "-4", "addr", "show", "dev", "docker0"))
    info = link["addr_info"][0]
    docker0 = ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}").network
    pod_cidr = next(docker0.subnets(new_prefix=24)) if docker0.prefixlen < 24 else docker0
    cluster = pod_cidr.supernet(new_prefix=8)
    kubelet = kubelet_factory(extra_args=(*FAST_KUBELET, *FAST_NETWORK,
                                          "--cluster-cidr", str(cluster)))
    kubelet.wait_running()
    await give_pod_cidr(client, kubelet.node_name, str(pod_cidr))

    cond = await network_condition(client, kubelet.node_name, "True")
    collision = f"the network {docker0} of interface docker0"
    assert cond.reason == "PodCIDROverlapsHostNetwork"
    assert cond.message.startswith(f"podCIDR {pod_cidr} overlaps {collision}"), cond.message
    events, _ = await client.list(core_pb2.Event, "default")
    [event] = [e for e in events if e.involved_object.kind == "Node"
               and e.involved_object.name == kubelet.node_name]
    assert (event.type, event.reason, event.message) == ("Warning", cond.reason, cond.message)
    assert (f"pod network unavailable (PodCIDROverlapsHostNetwork): podCIDR {pod_cidr} "
            f"overlaps {collision}") in kubelet.log()

    # Pods that need the pod network wait; a hostNetwork pod runs.
    await create_pod(client, ns, kubelet.node_name, "waits",
                     [container("c", "exec sleep 3600", busybox_image)])
    await create_pod(client, ns, kubelet.node_name, "hostnet",
                     [container("c", "exec sleep 3600", busybox_image)], hostNetwork=True)
    await wait_pod(client, ns, "hostnet", running_and_ready, "Running")

    async def waiting() -> list[core_pb2.Event] | None:
        found = [e for e in await pod_events(client, ns, "waits")
                 if e.reason == "NetworkNotReady"]
        return found or None

    [not_ready] = await eventually(waiting, timeout=20, what="a NetworkNotReady event")
    assert not_ready.message == f"network is not ready: {cond.message}"
    pod = await client.get(core_pb2.Pod, "waits", ns)
    assert pod.status.phase == "Pending" and not pod.status.pod_ip
    assert pod.status.container_statuses[0].state.waiting.reason == "ContainerCreating"
    with pytest.raises(docker.errors.NotFound):
        docker_client.api.inspect_network(f"skiff-pods-{kubelet.node_name}")
    assert skiff_iptables() == []


# ---- routes ----

async def test_routes_to_other_nodes_pods_follow_the_nodes(
        host_network: None, dummy_segment: str, kubelet_factory: Callable[..., KubeletProcess],
        client: Client) -> None:
    kubelet = await pod_network_node(kubelet_factory, client, "10.244.126.0/24")
    suffix = uuid.uuid4().hex[:6]
    near, far = f"skiff-pn-near-{suffix}", f"skiff-pn-far-{suffix}"
    # A route of Skiff's protocol outside the cluster range: never Skiff's to touch.
    run("ip", "route", "add", "10.250.0.0/24", "via", "198.51.100.9", "proto", ROUTE_PROTOCOL)

    def routes() -> set[tuple[str, str, str]]:
        return {(r["dst"], r.get("gateway", ""), r.get("dev", "")) for r in skiff_routes()}

    async def routes_are(expected: set[tuple[str, str, str]], what: str) -> None:
        async def probe() -> bool:
            return routes() == expected

        await eventually(probe, timeout=15, what=what)

    outside = ("10.250.0.0/24", "198.51.100.9", dummy_segment)
    try:
        await fake_node(client, near, "10.244.201.0/24", "198.51.100.2")
        await fake_node(client, far, "10.244.202.0/24", "203.0.113.9")
        await routes_are({("10.244.201.0/24", "198.51.100.2", dummy_segment), outside},
                         "a route to the near node's pods")
        reported = (f"no route to node {far}'s pods: its InternalIP 203.0.113.9 is on none "
                    "of this host's networks")

        async def far_reported() -> bool:
            return reported in kubelet.log()

        await eventually(far_reported, timeout=10, what="the far node to be reported")

        await set_internal_ip(client, near, "198.51.100.3")
        await routes_are({("10.244.201.0/24", "198.51.100.3", dummy_segment), outside},
                         "the route to follow the node's new address")

        # A kubelet that starts rebuilds the routes: one removed meanwhile comes back.
        kubelet.stop()
        run("ip", "route", "del", "10.244.201.0/24", "proto", ROUTE_PROTOCOL)
        kubelet.start().wait_running()
        await routes_are({("10.244.201.0/24", "198.51.100.3", dummy_segment), outside},
                         "the route to be made again at the kubelet's start")

        await client.delete(core_pb2.Node, near)
        await routes_are({outside}, "the route to go with its node")
    finally:
        for name in (near, far):
            with contextlib.suppress(errors.NotFound):
                await client.delete(core_pb2.Node, name)
        kubelet.stop()
        done = cleanup_pod_network(kubelet.node_name)
        assert done.returncode == 0, done.stderr
        assert routes() == {outside}  # the cleanup keeps it too
        run("ip", "route", "del", "10.250.0.0/24", "proto", ROUTE_PROTOCOL)

