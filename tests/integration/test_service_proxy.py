"""The service proxy on this host, with a real kubelet, the real Docker engine and the real
iptables: a Service's cluster IP spreads a client pod's requests over all three of its
ready endpoints, a service without endpoints refuses at once, a NodePort answers on the
node's address, a restarted agent rebuilds the rules, and a deleted service leaves no
rule behind (iptables-save).

The Endpoints are written by the test (what the Endpoints controller will do), pointing
at the pods' addresses. Traffic goes only to the pods started here and to this host's
own pods bridge address. The rules go with `--cleanup-pod-network` (host_network).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import urllib.request
from collections.abc import Callable

import pytest
from fixtures.kubelet import KubeletProcess
from test_kubelet_pods import container, create_pod, eventually, running_and_ready, wait_pod
from test_pod_network import host_network, pod_network_node

from skiff.api.v1 import core_pb2
from skiff.client.client import Client

__all__ = ["host_network"]  # a fixture, used by name

POD_CIDR = "10.244.121.0/24"
GATEWAY = "10.244.121.1"  # the node's own address on its pods bridge
FAST_PROXY = ("--proxy-sync-period", "2")
SERVERS = ("web-a", "web-b", "web-c")


def nat_and_filter() -> str:
    return "".join(subprocess.run(["iptables-save", "-t", t], capture_output=True, text=True,
                                  check=True).stdout for t in ("nat", "filter"))


def server(name: str, image: str) -> dict[str, object]:
    return container("web", f"mkdir -p /www && echo {name} > /www/index.html && "
                     "exec httpd -f -p 8080 -h /www", image)


async def make_service(client: Client, ns: str, name: str, type_: str = "ClusterIP",
                       affinity: str = "") -> core_pb2.Service:
    svc = core_pb2.Service()
    svc.metadata.namespace, svc.metadata.name = ns, name
    svc.spec.type = type_
    svc.spec.session_affinity = affinity
    svc.spec.ports.add(name="http", port=80, protocol="TCP")
    return await client.create(svc)


async def make_endpoints(client: Client, ns: str, name: str, ips: list[str]) -> None:
    eps = core_pb2.Endpoints()
    eps.metadata.namespace, eps.metadata.name = ns, name
    subset = eps.subsets.add()
    for ip in ips:
        subset.addresses.add(ip=ip)
    subset.ports.add(name="http", port=8080, protocol="TCP")
    await client.create(eps)


def in_pod(container_id: str, script: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "exec", container_id, "sh", "-c", script],
                          capture_output=True, text=True, timeout=timeout)


async def test_cluster_ip_node_port_no_endpoints_restart_and_delete(
        host_network: None, kubelet_factory: Callable[..., KubeletProcess], client: Client,
        ns: str, busybox_image: str) -> None:
    node = await pod_network_node(kubelet_factory, client, POD_CIDR, *FAST_PROXY)
    for name in SERVERS:
        await create_pod(client, ns, node.node_name, name, [server(name, busybox_image)])
    await create_pod(client, ns, node.node_name, "client",
                     [container("c", "exec sleep 3600", busybox_image)])
    pods = {name: await wait_pod(client, ns, name, running_and_ready, "Running")
            for name in (*SERVERS, "client")}
    client_id = pods["client"].status.container_statuses[0].container_id.removeprefix(
        "docker://")

    web = await make_service(client, ns, "web", "NodePort")
    await make_endpoints(client, ns, "web", [pods[n].status.pod_ip for n in SERVERS])
    empty = await make_service(client, ns, "empty")
    sticky = await make_service(client, ns, "sticky", affinity="ClientIP")
    await make_endpoints(client, ns, "sticky", [pods[n].status.pod_ip for n in SERVERS])
    own = await make_service(client, ns, "own")
    await make_endpoints(client, ns, "own", [pods["web-a"].status.pod_ip])
    cluster_ip, node_port = web.spec.cluster_ip, web.spec.ports[0].node_port
    assert cluster_ip and node_port, web

    # 30 requests to the cluster IP from a pod reach all three endpoints.
    async def all_three() -> set[str] | None:
        done = await asyncio.to_thread(in_pod, client_id, (
            f"for i in $(seq 30); do timeout 3 wget -qO- http://{cluster_ip}/; done"))
        seen = set(done.stdout.split())
        return seen if seen == set(SERVERS) else None

    assert await eventually(all_three, timeout=20, what="all three endpoints answering")

    # ClientIP affinity: every request of one client reaches the same endpoint.
    repeated = in_pod(client_id, f"for i in $(seq 12); do timeout 3 wget -qO- "
                      f"http://{sticky.spec.cluster_ip}/; done")
    assert len(repeated.stdout.split()) == 12 and len(set(repeated.stdout.split())) == 1, (
        repeated.stdout, repeated.stderr)

    # Hairpin: a pod reaches a service that lands on itself (masqueraded, else it would
    # drop a packet from its own address).
    web_a = pods["web-a"].status.container_statuses[0].container_id.removeprefix("docker://")
    hairpin = in_pod(web_a, f"timeout 3 wget -qO- http://{own.spec.cluster_ip}/")
    assert hairpin.stdout.strip() == "web-a", hairpin.stderr

    # A service without endpoints refuses at once: no timeout.
    started = time.monotonic()
    refused = in_pod(client_id, f"timeout 5 wget -qO- http://{empty.spec.cluster_ip}/")
    assert refused.returncode != 0
    assert "refused" in refused.stderr.lower(), refused.stderr
    assert time.monotonic() - started < 3

    # The NodePort answers on the node's address (its pods bridge's, from the host).
    def node_port_answer() -> str:
        with urllib.request.urlopen(f"http://{GATEWAY}:{node_port}/", timeout=3) as r:
            return str(r.read().decode().strip())

    assert await asyncio.to_thread(node_port_answer) in SERVERS

    # The agent restarts: the rules are rebuilt, even after they were removed meanwhile.
    node.stop()
    subprocess.run(["iptables-restore", "--noflush"], input=_flush_services(), text=True,
                   check=True)
    assert not [r for r in nat_and_filter().splitlines()
                if r.startswith("-A SKIFF-SERVICES") and f"{ns}/web:http" in r]
    node.start().wait_running()
    assert await eventually(all_three, timeout=20, what="the rules rebuilt after a restart")

    # Deleting the service removes every rule it had.
    await client.delete(core_pb2.Service, "web", ns)
    await client.delete(core_pb2.Endpoints, "web", ns)

    async def no_rules_left() -> bool:
        return f"{ns}/web:http" not in nat_and_filter()

    await eventually(no_rules_left, timeout=10, what="the service's rules gone")
    assert f"{ns}/empty:http has no endpoints" in nat_and_filter()


def _flush_services() -> str:
    """Empties the proxy's dispatch chain, as if its rules had been lost while the agent was
    down (the per-service chains stay, now unreferenced: stale)."""
    return "*nat\n:SKIFF-SERVICES - [0:0]\nCOMMIT\n"


def udp_flows(cluster_ip: str) -> str:
    """`conntrack -L` of UDP flows to the cluster IP (their DNATed endpoint included)."""
    return subprocess.run(["conntrack", "-L", "-p", "udp", "--orig-dst", cluster_ip],
                          capture_output=True, text=True).stdout


async def test_udp_flows_to_a_gone_endpoint_are_removed(
        host_network: None, kubelet_factory: Callable[..., KubeletProcess], client: Client,
        ns: str, busybox_image: str) -> None:
    """DNS through a dead endpoint would blackhole until its conntrack entry times out."""
    if subprocess.run(["conntrack", "-L", "-p", "udp"], capture_output=True).returncode:
        pytest.skip("conntrack is not installed (apt-get install conntrack)")
    node = await pod_network_node(kubelet_factory, client, POD_CIDR, *FAST_PROXY)
    for name in ("old", "new", "client"):
        await create_pod(client, ns, node.node_name, name,
                         [container("c", "exec sleep 3600", busybox_image)])
    pods = {name: await wait_pod(client, ns, name, running_and_ready, "Running")
            for name in ("old", "new", "client")}
    client_id = pods["client"].status.container_statuses[0].container_id.removeprefix(
        "docker://")
    svc = core_pb2.Service()
    svc.metadata.namespace, svc.metadata.name = ns, "dns"
    svc.spec.ports.add(name="dns", port=53, protocol="UDP")
    svc = await client.create(svc)
    ip = svc.spec.cluster_ip
    eps = core_pb2.Endpoints()
    eps.metadata.namespace, eps.metadata.name = ns, "dns"
    subset = eps.subsets.add()
    subset.addresses.add(ip=pods["old"].status.pod_ip)
    subset.ports.add(name="dns", port=53, protocol="UDP")
    await client.create(eps)
    old_ip, new_ip = pods["old"].status.pod_ip, pods["new"].status.pod_ip

    # Queries (nothing answers them: the flows stay, unreplied) are DNATed to "old".
    async def flows_to_old() -> bool:
        await asyncio.to_thread(in_pod, client_id, f"timeout 2 nslookup skiff.test {ip}")
        return f"src={old_ip} " in udp_flows(ip)  # the reply direction: from the endpoint

    await eventually(flows_to_old, timeout=20, what=f"UDP flows to {ip} DNATed to {old_ip}")

    eps = await client.get(core_pb2.Endpoints, "dns", ns)
    eps.subsets[0].addresses[0].ip = new_ip
    await client.update(eps)

    async def old_flows_gone() -> bool:
        return f"src={old_ip} " not in udp_flows(ip)

    await eventually(old_flows_gone, timeout=10, what=f"the flows to {old_ip} removed")
