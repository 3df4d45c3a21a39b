"""`skiff doctor`: what is wrong with this host's part of a cluster, and how to fix it.

Each check says ok or what failed and what to do. Run on a node (with the agent's state, or
a `skiff up` data directory) or from the admin's machine (with a client config): the
checks that need the host (Docker, routes) run only where a node lives.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dnslib import QTYPE, RCODE, DNSError, DNSRecord

from skiff import pki
from skiff.api.v1 import core_pb2
from skiff.client import errors
from skiff.client.client import Client
from skiff.client.config import ClientConfig
from skiff.version import skew_problem

__all__ = ["Check", "diagnose"]

PROBE_CONDITION = "PodNetworkReachable"  # kubelet/network/probe.py's, which cluster may not import
MAX_CLOCK_SKEW = 300.0  # seconds: what the apiserver accepts at join (apiserver/join.py)
DOCKER_SOCKET = "/var/run/docker.sock"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"[{'ok' if self.ok else 'FAIL'}] {self.name}: {self.detail}"
        return text + (f"\n       fix: {self.fix}" if self.fix and not self.ok else "")


def docker_check(socket_path: str = DOCKER_SOCKET) -> Check:
    """Docker answers /_ping on its socket (no SDK: the CLI talks to Docker through nothing
    but this)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(socket_path)
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            answer = s.recv(256).decode(errors="replace")
    except OSError as err:
        return Check("docker", False, f"cannot reach dockerd at {socket_path}: {err}",
                     "start Docker (systemctl start docker) and check `docker info`")
    if " 200 " not in answer.split("\r\n", 1)[0]:
        return Check("docker", False, f"dockerd answered: {answer.splitlines()[0]}",
                     "see `journalctl -u docker` for why Docker is unhealthy")
    return Check("docker", True, "dockerd answers")


def routes_check(node: core_pb2.Node, others: list[core_pb2.Node]) -> Check:
    """This host routes every other node's podCIDR through that node's address."""
    try:
        table = subprocess.run(["ip", "-j", "route", "show"], capture_output=True, text=True,
                               timeout=10, check=True).stdout
        routes = {r.get("dst"): r.get("gateway") for r in json.loads(table)}
    except (OSError, subprocess.SubprocessError, ValueError) as err:
        return Check("routes", False, f"cannot read the routing table: {err}",
                     "install iproute2")
    missing = []
    for other in others:
        cidr = other.spec.pod_cidr
        address = _internal_ip(other)
        if not cidr or not address:
            continue
        if routes.get(cidr) != address and not _local(cidr, routes):
            missing.append(f"{cidr} via {address} (node {other.metadata.name})")
    if missing:
        return Check("routes", False, "no route to " + "; ".join(missing),
                     "the agent writes these routes: check its log (journalctl -u "
                     "skiff-agent) and that the nodes share a network segment")
    return Check("routes", True, f"routes to the pod networks of {len(others)} other node(s)")


def _local(cidr: str, routes: dict[str | None, str | None]) -> bool:
    return cidr in routes and routes[cidr] is None  # this node's own bridge


def _internal_ip(node: core_pb2.Node) -> str:
    return next((a.address for a in node.status.addresses if a.type == "InternalIP"), "")


async def _cluster_checks(config: ClientConfig, node_name: str | None) -> list[Check]:
    checks: list[Check] = []
    ca_note = (f", its CA is the pinned one ({pki.ca_cert_hash(config.ca)[:19]}...)"
               if config.ca else " (plaintext: loopback only)")
    try:
        async with Client(config.address, credentials=config.credentials()) as client:
            version = await client.version(timeout=10)
            checks.append(Check("apiserver", True, f"{config.server} answers{ca_note}"))
            skew = version.unix_time - time.time() if version.unix_time else 0.0
            checks.append(Check(
                "clock", abs(skew) <= MAX_CLOCK_SKEW,
                f"{abs(skew):.1f}s {'behind' if skew > 0 else 'ahead of'} the apiserver's",
                "set the time (timedatectl set-ntp true, or chrony): certificates and "
                "tokens need clocks within 5 minutes"))
            nodes, _ = await client.list(core_pb2.Node)
            checks += _node_checks(nodes, node_name, version.version)
            if node_name:
                checks.append(await _cluster_dns_check(client))
    except errors.ApiError as err:
        checks.append(Check("apiserver", False, f"{config.server}: {err.message}",
                            "check the client config (server, certificate-authority-data, "
                            "client certificate) and that the apiserver runs"))
    return checks


def _node_checks(nodes: list[core_pb2.Node], node_name: str | None,
                 server_version: str) -> list[Check]:
    checks: list[Check] = []
    mine = [n for n in nodes if n.metadata.name == node_name] if node_name else nodes
    if node_name and not mine:
        return [Check("node", False, f"no node {node_name} in the cluster",
                      "start the agent (systemctl start skiff-agent), or join this host "
                      "again if its node was deleted")]
    for node in mine:
        name = node.metadata.name
        cidr = node.spec.pod_cidr
        checks.append(Check(f"node {name}: podCIDR", bool(cidr),
                            cidr or "none assigned",
                            "the controller manager assigns it (nodeipam): check its log "
                            "and that --cluster-cidr has room"))
        agent = node.status.node_info.kubelet_version
        problem = skew_problem(agent, server_version) if agent else "it reported no version"
        checks.append(Check(f"node {name}: version", problem is None,
                            problem or f"agent {agent}, apiserver {server_version}",
                            "install the agent of the apiserver's version"))
    if node_name:
        others = [n for n in nodes if n.metadata.name != node_name]
        checks.append(routes_check(mine[0], others))
        checks.append(pod_network_check(mine[0], others))
    return checks


async def _cluster_dns_check(client: Client) -> Check:
    try:
        service = await client.get(core_pb2.Service, "kube-dns", "kube-system")
    except errors.NotFound:
        return Check("cluster DNS", True, "none (no kube-system/kube-dns Service): pods get "
                     "the host's DNS")
    return await asyncio.to_thread(dns_check, service.spec.cluster_ip)


def dns_check(address: str, *, port: int = 53, domain: str = "cluster.local",
              timeout: float = 2.0) -> Check:
    """This node's skiff-dns answers on the cluster DNS address what pods ask it."""
    name = f"kube-dns.kube-system.svc.{domain}"
    fix = ("skiff-dns answers there on every node: see `systemctl status skiff-dns` on an "
           "agent, `skiff status` on the server")
    try:
        reply = DNSRecord.parse(DNSRecord.question(name, "A").send(address, port,
                                                                    timeout=timeout))
    except (OSError, DNSError) as err:
        return Check("cluster DNS", False, f"no answer from {address}:{port} for {name}: "
                     f"{err or 'timed out'}", fix)
    got = sorted(str(r.rdata) for r in reply.rr if r.rtype == QTYPE.A)
    if got != [address]:
        return Check("cluster DNS", False, f"{address}:{port} answered {name} with "
                     f"{got or RCODE.get(reply.header.rcode)}, not {address}", fix)
    return Check("cluster DNS", True, f"{address}:{port} answers on this node")


def pod_network_check(node: core_pb2.Node, others: list[core_pb2.Node]) -> Check:
    """What the agent found probing the other nodes' pod networks from this one's (the
    Node's PodNetworkReachable condition, kubelet/network/probe.py)."""
    peers = [n for n in others if n.spec.pod_cidr]
    cond = next((c for c in node.status.conditions if c.type == PROBE_CONDITION), None)
    if not peers:
        return Check("pod network", True, "no other node to reach")
    if cond is None:
        return Check("pod network", False, "the agent has not probed the other nodes' pod "
                     "networks yet", "wait a few seconds, or check that this node's pod "
                     "network is ready (NetworkUnavailable in skiff describe node)")
    if cond.status == "True":
        return Check("pod network", True, cond.message)
    return Check("pod network", False, cond.message,
                 "pods reach other nodes through the routes above and each host's "
                 "forwarding: check the firewall between the hosts (TCP to the other "
                 "nodes' pod addresses, and their probe port) and `iptables -S SKIFF-FORWARD`")


def diagnose(config: ClientConfig, *, node_name: str | None, on_node: bool,
             docker: Callable[[], Check] = docker_check) -> list[Check]:
    """Every check, in the order a user fixes them."""
    checks = [docker()] if on_node else []
    checks += asyncio.run(_cluster_checks(config, node_name if on_node else None))
    return checks


def node_of(state_config: Path) -> str | None:
    """The node a client config's certificate belongs to (a kubelet.conf), if any."""
    config = ClientConfig.load(state_config)
    if config.cert is None:
        return None
    name = pki.subject_of(config.cert).common_name
    return name.removeprefix("system:node:") if name.startswith("system:node:") else None

