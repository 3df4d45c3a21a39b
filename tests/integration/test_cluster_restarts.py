"""A cluster survives restarts (issue 14, part 4), as a user of `skiff cluster` sees it.

One 3-node cluster for the module (`skiff cluster create rst-...`), deleted at the end; the
tests share it and run in order, the disruptive ones last. On it: a Deployment `spread` of
3 replicas whose pods leave a lost node after 5 s (tolerations for not-ready and
unreachable), and a DaemonSet `peer`, one web server per node that stays with its node, to
check pod-to-pod traffic across nodes.

- `docker restart` of an agent node, then of the server node: every node Ready again,
  the same pods Running (containers started again by their kubelets), pods reach each
  other across nodes.
- `skiff cluster stop-node`: its Deployment pods are replaced on the other nodes; then
  `start-node`: Ready again.
- An agent node back with another address: its Node's InternalIP follows, the other nodes
  route its pods there, and logs and exec reach its pods (its kubelet's certificate names
  the new address).
- The server node back with another address: its certificate names it, the agents and the
  user's context follow it.
- Every node restarted at once (what a restart of this machine's dockerd does to them, with
  their restart policy): the same pods come back, Running, reachable.
- `test_host_dockerd_restart` restarts this machine's dockerd for real, when it is the one
  deploy/setup.sh started (tests/run.sh, CI; SKIFF_TEST_RESTART_DOCKER=1 forces it): it
  takes down every container of the machine for a while, so this module runs last.

The CLI runs in a subprocess with a client config of the module's own ($SKIFF_CONFIG).
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from fixtures.cli import ConfigCli
from fixtures.nodes import terminal_say

from cluster.dockercli import docker
from cluster.supervisor import Say
from skiff.client.config import Kubeconfig

REPO = Path(__file__).resolve().parents[2]
DOCKER_PIDFILE = Path("/var/run/docker.pid")
SETUP_DOCKERD_PIDFILE = Path("/run/skiff/setup-dockerd.pid")  # deploy/setup.sh writes it


@dataclass(frozen=True)
class Pod:
    name: str
    uid: str
    node: str
    phase: str
    ready: bool
    ip: str
    restarts: int
    deleting: bool


@dataclass
class Cluster:
    name: str
    skiff: ConfigCli
    say: Say

    def node(self, n: int) -> str:
        return f"skiff-{self.name}-{n}"

    @property
    def nodes(self) -> list[str]:
        return [self.node(n) for n in (1, 2, 3)]

    def get(self, *args: str) -> dict[str, Any]:
        result = self.skiff("get", *args, "-o", "json", timeout=30)
        return dict(json.loads(result.stdout)) if result.returncode == 0 else {}

    def pods(self, app: str) -> dict[str, Pod]:
        found = {}
        for p in self.get("pods", "-l", f"app={app}").get("items", []):
            status = p.get("status", {})
            conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
            restarts = sum(c.get("restartCount", 0) for c in status.get("containerStatuses", []))
            meta = p["metadata"]
            found[meta["name"]] = Pod(
                name=meta["name"], uid=meta["uid"], node=p["spec"].get("nodeName", ""),
                phase=status.get("phase", ""), ready=conditions.get("Ready") == "True",
                ip=status.get("podIP", ""), restarts=restarts,
                deleting=bool(meta.get("deletionTimestamp")))
        return found

    def node_status(self) -> dict[str, tuple[str, str]]:
        """Each Node's Ready status and InternalIP."""
        found = {}
        for n in self.get("nodes").get("items", []):
            status = n.get("status", {})
            ready = next((c["status"] for c in status.get("conditions", [])
                          if c["type"] == "Ready"), "")
            ip = next((a["address"] for a in status.get("addresses", [])
                       if a["type"] == "InternalIP"), "")
            found[n["metadata"]["name"]] = (ready, ip)
        return found

    def all_running(self, app: str, count: int) -> bool:
        pods = [p for p in self.pods(app).values() if not p.deleting]
        return len(pods) == count and all(p.phase == "Running" and p.ready and p.ip
                                          for p in pods)

    def all_ready(self) -> bool:
        status = self.node_status()
        return sorted(status) == self.nodes and all(r == "True" for r, _ in status.values())

    def fetch(self, caller: str, ip: str) -> str:
        """What pod `caller` gets from the peer web server at `ip` (its pod's name)."""
        got = self.skiff("exec", caller, "--", "sh", "-c",
                         f"timeout 5 wget -qO- http://{ip}:8080/", timeout=30)
        return got.stdout.strip() if got.returncode == 0 else ""

    def peers_reach_each_other(self) -> None:
        """Every peer pod fetches from every other, across nodes, by pod IP."""
        peers = self.pods("peer")

        def reaches(caller: Pod, callee: Pod) -> Callable[[], bool]:
            # The callee's address as its status says now (a new sandbox may get another).
            return lambda: self.fetch(caller.name, self.pods("peer")[callee.name].ip) \
                == callee.name

        for caller in peers.values():
            for callee in peers.values():
                if caller.node != callee.node:
                    until(f"{caller.name} on {caller.node} to reach {callee.name} on "
                          f"{callee.node} at {callee.ip}", reaches(caller, callee), timeout=60)


def until(what: str, check: Callable[[], object], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"waited {timeout:g} s for {what}"
        time.sleep(1.0)


def settled(cluster: Cluster) -> None:
    """Every node Ready, 3 spread pods and a peer on each node Running."""
    until("every node Ready", cluster.all_ready, timeout=180)
    until("3 spread pods Running", lambda: cluster.all_running("spread", 3), timeout=180)
    until("a peer Running on each node", lambda: cluster.all_running("peer", 3), timeout=180)


SECRET_WORD = "swordfish"
WEB = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"


def manifests(image: str) -> str:
    pod_spec = {"terminationGracePeriodSeconds": 0, "containers": [{
        "name": "web", "image": image, "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", WEB]}]}
    # Kubernetes' 300 s would keep a lost node's pods for 5 minutes.
    short = [{"key": f"node.kubernetes.io/{taint}", "operator": "Exists",
              "effect": "NoExecute", "tolerationSeconds": 5}
             for taint in ("not-ready", "unreachable")]
    spread = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "spread"},
              "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "spread"}},
                       "template": {"metadata": {"labels": {"app": "spread"}},
                                    "spec": {**pod_spec, "tolerations": short}}}}
    # The peers carry a Secret, which the kubelet keeps on a tmpfs: gone after a reboot.
    peer_spec = {**pod_spec,
                 "containers": [{**pod_spec["containers"][0],  # type: ignore[index]
                                 "volumeMounts": [{"name": "word", "mountPath": "/word"}]}],
                 "volumes": [{"name": "word", "secret": {"secretName": "word"}}]}
    peer = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "peer"},
            "spec": {"selector": {"matchLabels": {"app": "peer"}},
                     "template": {"metadata": {"labels": {"app": "peer"}},
                                  "spec": peer_spec}}}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "word"},
              "stringData": {"word": SECRET_WORD}}
    return yaml.safe_dump_all([secret, spread, peer])


@pytest.fixture(scope="module")
def cluster(node_image: str, busybox_image: str, request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    say = terminal_say(request.config)
    skiff = ConfigCli(tmp_path_factory.mktemp("restarts") / "config")
    name = f"rst-{uuid.uuid4().hex[:6]}"
    try:
        created = skiff("cluster", "create", name, "--nodes", "3", timeout=900)
        assert created.returncode == 0, created.stderr + created.stdout
        say("  " + next(line for line in created.stdout.splitlines()
                        if line.startswith("cluster ")))
        skiff.ok("cluster", "load-image", name, busybox_image, timeout=300)
        made = Cluster(name, skiff, say)
        skiff.ok("apply", "-f", "-", stdin=manifests(busybox_image))
        settled(made)
        yield made
    finally:
        deleted = skiff("cluster", "delete", name, timeout=300)
        assert deleted.returncode == 0, deleted.stderr


def timed(cluster: Cluster, what: str) -> Callable[[], None]:
    started = time.monotonic()
    return lambda: cluster.say(f"  {what}: {time.monotonic() - started:.1f} s")


def restart_nodes(*containers: str) -> None:
    """`docker restart` of the node containers, at once."""
    with ThreadPoolExecutor(len(containers)) as pool:
        list(pool.map(lambda c: docker("restart", c, timeout=120), containers))


def check_same_pods_back(cluster: Cluster, before: dict[str, Pod], restarted: list[str],
                         after: Callable[[], None]) -> None:
    """`before`'s pods, the same objects, Running again, those on the `restarted` nodes
    with their containers started again by their kubelets (which is also how the test knows
    their status is no longer the one from before the restart), every peer reaching the
    others across nodes and reading its Secret."""
    def back() -> bool:
        now = {**cluster.pods("spread"), **cluster.pods("peer")}
        return ({n: p.uid for n, p in now.items()} == {n: p.uid for n, p in before.items()}
                and all(p.phase == "Running" and p.ready and p.ip for p in now.values())
                and all(now[n].restarts > p.restarts for n, p in before.items()
                        if p.node in restarted))

    until("the same pods Running again, their containers started again", back, timeout=180)
    after()
    cluster.peers_reach_each_other()
    for peer in cluster.pods("peer"):
        assert cluster.skiff.ok("exec", peer, "--", "cat", "/word/word") == SECRET_WORD


# --- the tests, the disruptive ones last -----------------------------------------------------


def test_wrong_names_are_refused_clearly(cluster: Cluster) -> None:
    skiff = cluster.skiff
    missing = skiff("cluster", "stop-node", "rst-no-such", "2")
    assert missing.returncode == 1
    assert "no cluster named rst-no-such" in missing.stderr
    wrong = skiff("cluster", "stop-node", cluster.name, "7")
    assert wrong.returncode == 1
    assert (f"cluster {cluster.name} has no node 7 (its nodes: {', '.join(cluster.nodes)})"
            in wrong.stderr)
    running = skiff("cluster", "start-node", cluster.name, cluster.node(2))
    assert running.returncode == 1
    assert f"node {cluster.node(2)} is running already" in running.stderr


def test_the_nodes_restart_with_the_engine_and_the_pods_reach_each_other(
        cluster: Cluster) -> None:
    for node in cluster.nodes:
        policy = docker("inspect", "--format", "{{.HostConfig.RestartPolicy.Name}}", node)
        assert policy.stdout.strip() == "unless-stopped"
    assert {p.node for p in cluster.pods("peer").values()} == set(cluster.nodes)
    cluster.peers_reach_each_other()


def test_docker_restart_of_an_agent_node_brings_back_its_pods(cluster: Cluster) -> None:
    settled(cluster)
    node = cluster.node(3)
    before = {**cluster.pods("spread"), **cluster.pods("peer")}
    done = timed(cluster, f"docker restart {node} until its pods run again")
    restart_nodes(node)
    check_same_pods_back(cluster, before, [node], done)
    # Logs and exec reach the node's pods through its kubelet.
    peer = next(p for p in cluster.pods("peer").values() if p.node == node)
    assert cluster.skiff.ok("exec", peer.name, "--", "hostname").strip() == peer.name


def test_docker_restart_of_the_server_node_brings_back_the_cluster(cluster: Cluster) -> None:
    settled(cluster)
    before = {**cluster.pods("spread"), **cluster.pods("peer")}
    done = timed(cluster, f"docker restart {cluster.node(1)} until the pods run again")
    restart_nodes(cluster.node(1))
    until("every node Ready", cluster.all_ready, timeout=180)
    check_same_pods_back(cluster, before, [cluster.node(1)], done)


def test_a_stopped_node_loses_its_pods_to_the_others_and_starts_again(
        cluster: Cluster) -> None:
    settled(cluster)
    skiff = cluster.skiff
    # An agent node with a pod of the Deployment on it (node 2 when there is one there).
    on = {p.node for p in cluster.pods("spread").values()}
    node = next(n for n in (cluster.node(2), cluster.node(3)) if n in on)
    gone = {p.name for p in cluster.pods("spread").values() if p.node == node}
    done = timed(cluster, f"stop-node {node} until its pods run elsewhere")
    stopped = skiff.ok("cluster", "stop-node", cluster.name, node, timeout=120)
    assert f"node {node} stopped" in stopped
    assert docker("inspect", "--format", "{{.State.Status}}", node).stdout.strip() == "exited"

    def replaced() -> bool:
        pods = {n: p for n, p in cluster.pods("spread").items() if not p.deleting}
        return (not gone & set(pods) and len(pods) == 3
                and all(p.node != node and p.phase == "Running" for p in pods.values()))

    # The node lifecycle controller's grace period (40 s) and the 5 s tolerations.
    until(f"the pods of {node} replaced on the other nodes", replaced, timeout=180)
    done()
    assert cluster.node_status()[node][0] != "True"
    done = timed(cluster, f"start-node {node} until Ready")
    started = skiff.ok("cluster", "start-node", cluster.name, node, timeout=300)
    done()
    assert f"node {node} started: Ready in" in started
    assert cluster.node_status()[node][0] == "True"
    settled(cluster)
    # The evicted pods, finished by the node's kubelet, are gone.
    until("the evicted pods gone", lambda: not gone & set(cluster.pods("spread")), timeout=60)


def test_an_agent_node_back_with_another_address_is_reached_there(cluster: Cluster) -> None:
    settled(cluster)
    skiff = cluster.skiff
    node = cluster.node(3)
    network = f"skiff-{cluster.name}"
    old = cluster.node_status()[node][1]
    subnet = ipaddress.ip_network(docker(
        "network", "inspect", "--format", "{{(index .IPAM.Config 0).Subnet}}",
        network).stdout.strip())
    new = str(subnet.network_address + 100)
    skiff.ok("cluster", "stop-node", cluster.name, node, timeout=120)
    docker("network", "disconnect", network, node)
    docker("network", "connect", "--ip", new, network, node)
    done = timed(cluster, f"start-node {node} at its new address {new}")
    skiff.ok("cluster", "start-node", cluster.name, node, timeout=300)
    done()
    assert cluster.node_status()[node] == ("True", new), (old, new)
    settled(cluster)
    # The others route its pod network to the new address.
    cidr = cluster.get("node", node)["spec"]["podCIDR"]
    for other in cluster.nodes[:2]:
        routes = docker("exec", other, "ip", "route", "show", str(cidr)).stdout
        assert f"via {new}" in routes, (other, routes)
    cluster.peers_reach_each_other()
    # The apiserver reaches its kubelet at the new address (logs, exec): the kubelet's
    # serving certificate names it.
    peer = next(p for p in cluster.pods("peer").values() if p.node == node)
    assert skiff.ok("exec", peer.name, "--", "hostname").strip() == peer.name
    skiff.ok("logs", peer.name)


def heartbeats_since(cluster: Cluster, moment: float) -> bool:
    """Every node's kubelet renewed its Lease after `moment` (unix time): it reaches the
    apiserver now."""
    leases = cluster.get("leases", "-n", "kube-node-lease").get("items", [])
    renewed = {lease["metadata"]["name"]: datetime.fromisoformat(
        lease["spec"]["renewTime"].replace("Z", "+00:00")).timestamp() for lease in leases}
    return all(renewed.get(n, 0.0) > moment for n in cluster.nodes)


def test_the_server_node_back_with_another_address_is_followed(cluster: Cluster) -> None:
    """Node 1 back at another address: its apiserver's certificate names it, the agents
    and the user's context are pointed at it (start-node does what a user would do on
    real hosts: install-agent.sh again with the new URL), and the cluster works on."""
    settled(cluster)
    skiff = cluster.skiff
    server = cluster.node(1)
    network = f"skiff-{cluster.name}"
    subnet = ipaddress.ip_network(docker(
        "network", "inspect", "--format", "{{(index .IPAM.Config 0).Subnet}}",
        network).stdout.strip())
    new = str(subnet.network_address + 101)
    skiff.ok("cluster", "stop-node", cluster.name, server, timeout=120)
    docker("network", "disconnect", network, server)
    docker("network", "connect", "--ip", new, network, server)
    moment = time.time()
    done = timed(cluster, f"start-node {server} at its new address {new}")
    skiff.ok("cluster", "start-node", cluster.name, server, timeout=300)
    done()
    # The user's context follows (the CLI's calls below go through it), and get-config.
    context = Kubeconfig.load(skiff.config).resolve(
        f"skiff-{cluster.name}")
    assert context.server == f"https://{new}:6443"
    printed = yaml.safe_load(skiff.ok("cluster", "get-config", cluster.name))
    assert printed["clusters"][0]["cluster"]["server"] == f"https://{new}:6443"
    assert cluster.node_status()[server] == ("True", new)
    until("every kubelet renewing its Lease at the new address",
          lambda: heartbeats_since(cluster, moment + 1), timeout=120)
    settled(cluster)
    cluster.peers_reach_each_other()


def test_every_node_restarted_at_once_comes_back_with_the_same_pods(cluster: Cluster) -> None:
    """What a restart of this machine's dockerd does to the nodes: all go down together
    and come back together (their restart policy), the server among them."""
    settled(cluster)
    before = {**cluster.pods("spread"), **cluster.pods("peer")}
    done = timed(cluster, "every node restarted at once until the pods run again")
    restart_nodes(*cluster.nodes)
    until("every node Ready", cluster.all_ready, timeout=180)
    check_same_pods_back(cluster, before, cluster.nodes, done)


# --- the real restart of this machine's dockerd: only when asked for ---------------------


def dockerd_pid() -> int:
    return int(DOCKER_PIDFILE.read_text().strip())


def restart_host_dockerd(say: Say) -> None:
    """Stops this machine's dockerd (SIGTERM to the pid in /var/run/docker.pid; it stops
    its containers) and starts it again as deploy/setup.sh does (its start alone)."""
    pid = dockerd_pid()
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 120
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, f"dockerd {pid} did not exit in 120 s"
        time.sleep(0.5)
    say(f"  dockerd {pid} stopped; starting it again with deploy/setup.sh --dockerd-only")
    started = subprocess.run(["bash", str(REPO / "deploy" / "setup.sh"), "--dockerd-only"],
                             capture_output=True, text=True, timeout=180, check=False)
    assert started.returncode == 0, started.stderr


def ours_to_restart() -> str | None:
    """Why this machine's dockerd may not be restarted here, or None when it may: it is
    the one deploy/setup.sh started (tests/run.sh, CI), never one its owner runs."""
    if os.environ.get("SKIFF_TEST_RESTART_DOCKER") == "1":
        return None
    try:
        ours = int(SETUP_DOCKERD_PIDFILE.read_text().strip())
        running = dockerd_pid()
    except (OSError, ValueError):
        return ("this machine's dockerd was not started by deploy/setup.sh, so it is not "
                "the tests' to restart (SKIFF_TEST_RESTART_DOCKER=1 forces it)")
    if ours != running:
        return (f"this machine's dockerd (pid {running}) is not the one deploy/setup.sh "
                f"started (pid {ours}); SKIFF_TEST_RESTART_DOCKER=1 forces it")
    return None


@pytest.mark.restarts_docker
def test_host_dockerd_restart(cluster: Cluster) -> None:
    """(This module runs last in the session, tests/conftest.py sees to it: the restart
    stops every container of the machine for a while.)"""
    refused = ours_to_restart()
    if refused:
        pytest.skip(refused)
    settled(cluster)
    before = {**cluster.pods("spread"), **cluster.pods("peer")}
    done = timed(cluster, "this machine's dockerd restarted until the pods run again")
    restart_host_dockerd(cluster.say)
    # The restart policy brings every node back.
    until("every node container running", lambda: all(
        docker("inspect", "--format", "{{.State.Status}}", n).stdout.strip() == "running"
        for n in cluster.nodes), timeout=120)
    until("every node Ready", cluster.all_ready, timeout=240)
    check_same_pods_back(cluster, before, cluster.nodes, done)
