"""Installing Skiff on Linux hosts as a user does (issue 13, part 3): three hosts made as
node containers (Debian 12, systemd as PID 1, a dockerd of their own) on one Docker network,
driven only through deploy/install-server.sh, deploy/install-agent.sh, deploy/uninstall.sh
and the `skiff` command inside them.

One cluster serves the module (booting hosts and installing take a while), so its tests
run in file order and build on each other: the server is installed; bad joins are refused
on the third host before it joins; two agents join with the command `skiff token create`
printed; installing again changes nothing; a Deployment spreads over the three; the agent
restarts (systemctl, SIGKILL) without touching its pods; a deleted node joins again; and
uninstalling leaves each host as it was before the install. Each phase's time is printed.
Pod-to-pod traffic across hosts is the pod network's (tests of its own).
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
import yaml
from fixtures.installhosts import CHECKOUT, PREFIX, REPO, Host, ReadyWatch, hosts
from fixtures.nodes import terminal_say

from cluster.nodehost import load_image
from cluster.supervisor import Say

TOKEN_PORT = "9345"
STATE = "/var/lib/skiff"
AGENT_CONFIG = f"{STATE}/agent/kubelet.conf"
# Made on one host before the install: an install and an uninstall must leave them be.
NOT_SKIFFS = ("iptables -N KEEP-ME && iptables -A INPUT -j KEEP-ME && "
              "docker run -d --name keep-me --label io.skiff.test=1 {image} sleep 100000")


@dataclass
class Cluster:
    server: Host
    agents: list[Host]
    say: Say
    baseline: dict[str, dict[str, list[str]]]  # each host before the install
    join: list[str] = field(default_factory=list)  # the join command's arguments

    @property
    def hosts(self) -> list[Host]:
        return [self.server, *self.agents]


@contextmanager
def phase(say: Say, what: str) -> Iterator[None]:
    start = time.monotonic()
    yield
    say(f"  {what}: {time.monotonic() - start:.1f} s")


@pytest.fixture(scope="module")
def cluster(node_image: str, busybox_image: str,
            request: pytest.FixtureRequest) -> Iterator[Cluster]:
    say = terminal_say(request.config)
    with hosts(node_image, say=lambda m: say(f"  {m}")) as made:
        with phase(say, "3 hosts booted, each with a copy of the checkout"):
            server, first, second = made.new(), made.new(), made.new()
        with phase(say, f"{busybox_image} loaded into each host"):
            for host in (server, first, second):
                load_image(host.name, busybox_image)
        first.out(NOT_SKIFFS.format(image=busybox_image))
        baseline = {h.name: h.snapshot() for h in (server, first, second)}
        yield Cluster(server, [first, second], say, baseline)


def systemd_properties(host: Host, unit: str, *names: str) -> dict[str, str]:
    shown = host.out(f"systemctl show --property {','.join(names)} {unit}")
    return dict(line.split("=", 1) for line in shown.splitlines())


def mode_and_owner(host: Host, path: str) -> str:
    return host.out(f"stat -c '%a %U' {path}").strip()


def pod_containers(host: Host) -> list[str]:
    """IDs of the running containers of Skiff's pods on `host`."""
    return sorted(host.out("docker ps --quiet --no-trunc --filter label=io.skiff.node")
                  .split())


def until(what: str, check: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


# --- refusals that need no cluster ----------------------------------------------------------


def test_a_host_without_systemd_or_root_and_missing_arguments_are_refused_clearly(
        node_image: str) -> None:
    def run(*command: str, user: str = "0") -> subprocess.CompletedProcess[str]:
        # A plain container of the node image: Debian 12 with its tools, but its PID 1 is
        # bash, not systemd. The checkout is mounted read-only: nothing is installed.
        return subprocess.run(
            ["docker", "run", "--rm", "--network", "none", "--user", user,
             "--name", f"{PREFIX}plain-{uuid.uuid4().hex[:6]}", "--label", "io.skiff.test=1",
             "--volume", f"{REPO}:/srv/skiff:ro", "--entrypoint", "bash", node_image,
             *command], capture_output=True, text=True, timeout=120, check=False)

    no_systemd = run("/srv/skiff/deploy/install-server.sh")
    assert no_systemd.returncode == 1
    assert "install-server: error: systemd is not running on this host (PID 1 is bash)" \
        in no_systemd.stderr
    not_root = run("/srv/skiff/deploy/uninstall.sh", user="65534")
    assert not_root.returncode == 1
    assert "uninstall: error: must run as root" in not_root.stderr
    missing = run("/srv/skiff/deploy/install-agent.sh", "--node-name", "x")
    assert missing.returncode == 2
    assert ("install-agent: error: missing the server's https://SERVER:PORT, --token, "
            "--ca-cert-hash") in missing.stderr
    assert "usage:" in missing.stderr
    no_value = run("/srv/skiff/deploy/install-server.sh", "--token-port")
    assert no_value.returncode == 2 and "--token-port needs a value" in no_value.stderr


# --- one cluster, in order ------------------------------------------------------------------


def test_the_server_installs_and_its_own_node_is_ready(cluster: Cluster) -> None:
    server = cluster.server
    with phase(cluster.say, "install-server.sh, to the apiserver answering and its node Ready"):
        installed = server.install_server("--token-port", TOKEN_PORT)
    assert installed.returncode == 0, installed.stderr + installed.stdout
    assert f"node {server.name} Ready" in installed.stdout
    assert "install-server: changed: Skiff v" in installed.stdout
    assert server.out("systemctl is-enabled skiff-server.service").strip() == "enabled"
    assert systemd_properties(server, "skiff-server.service", "ActiveState", "KillMode",
                              "Delegate", "Restart") == {
        "ActiveState": "active", "KillMode": "process", "Delegate": "yes",
        "Restart": "always"}
    verify = server.sh("systemd-analyze verify /etc/systemd/system/skiff-server.service")
    assert verify.returncode == 0, verify.stderr
    assert mode_and_owner(server, "/etc/skiff/server.env") == "600 root"
    assert mode_and_owner(server, f"{STATE}/server/config") == "600 root"
    assert server.node_rows()[server.name][1] == "Ready"


def test_a_wrong_token_a_wrong_ca_hash_and_an_expired_token_are_refused(
        cluster: Cluster) -> None:
    host = cluster.agents[1]  # not joined yet
    url, _, token, _, ca_hash = cluster.server.join_command()
    token_id = token.split(".")[0]

    def refused(*args: str) -> str:
        result = host.install_agent(*args)
        assert result.returncode == 1, result.stdout
        assert f"install-agent: error: this host did not join the cluster at {url}" \
            in result.stderr
        return result.stderr

    assert f"join token {token_id}: wrong secret" in refused(
        url, "--token", f"{token_id}.0123456789abcdef", "--ca-cert-hash", ca_hash)
    assert "is not the cluster you meant: its CA does not match --ca-cert-hash" in refused(
        url, "--token", token, "--ca-cert-hash", "sha256:" + "0" * 64)
    short_url, _, short, _, _ = cluster.server.join_command("--ttl", "1s")
    time.sleep(1.5)
    assert f"join token {short.split('.')[0]} expired at" in refused(
        short_url, "--token", short, "--ca-cert-hash", ca_hash)
    # Nothing but Skiff itself was installed (in its venv): no unit, no settings, no
    # credentials, nothing on PATH.
    left = host.sh("ls /etc/systemd/system/skiff-agent.service /etc/skiff /usr/local/bin/skiff "
                   f"/usr/local/bin/skiff-uninstall.sh {STATE} 2>&1")
    assert left.stdout.count("No such file or directory") == 5, left.stdout


def test_two_agents_join_with_the_printed_command_and_all_three_are_ready(
        cluster: Cluster) -> None:
    server = cluster.server
    cluster.join = server.join_command()
    for agent in cluster.agents:
        watch = ReadyWatch(server, agent.name)
        try:
            assert watch.started(), "skiff get nodes -w listed nothing"
            start = time.monotonic()
            installed = agent.install_agent(*cluster.join)
            script = time.monotonic() - start
            assert installed.returncode == 0, installed.stderr + installed.stdout
            ready = watch.wait() - start
        finally:
            watch.stop()
        cluster.say(f"  {agent.name}: install-agent.sh to its node Ready {ready:.1f} s "
                    f"(the script itself {script:.1f} s)")
        assert f"as node {agent.name}" in installed.stdout
        assert "install-agent: changed:" in installed.stdout
        assert systemd_properties(agent, "skiff-agent.service", "ActiveState", "KillMode",
                                  "Delegate", "Restart") == {
            "ActiveState": "active", "KillMode": "process", "Delegate": "yes",
            "Restart": "always"}
        for unit in ("skiff-agent.service", "skiff-dns.service"):
            verify = agent.sh(f"systemd-analyze verify /etc/systemd/system/{unit}")
            assert verify.returncode == 0, verify.stderr
        # The cluster DNS of the host's pods: skiff-dns on the address the kubelet gives them.
        assert systemd_properties(agent, "skiff-dns.service", "ActiveState") == {
            "ActiveState": "active"}
        assert "10.96.0.10/32" in agent.out("ip -4 -o addr show dev lo label lo:skiff-dns")
        for secret in ("/etc/skiff/agent.env", AGENT_CONFIG, f"{STATE}/agent/pki/kubelet.key"):
            assert mode_and_owner(agent, secret) == "600 root"
        # The token is in the env file, not on a command line anyone can read.
        assert cluster.join[2] not in agent.out("ps -eo args")
    server.wait_nodes_ready([h.name for h in cluster.hosts])


def test_running_an_install_again_changes_nothing_and_says_so(cluster: Cluster) -> None:
    for host, install, args, unit in (
            (cluster.server, Host.install_server, ["--token-port", TOKEN_PORT],
             "skiff-server.service"),
            (cluster.agents[0], Host.install_agent, cluster.join, "skiff-agent.service")):
        before = systemd_properties(host, unit, "MainPID", "NRestarts")
        with phase(cluster.say, f"{unit} installed again"):
            again = install(host, *args)
        assert again.returncode == 0, again.stderr
        assert "nothing changed" in again.stdout.splitlines()[-1], again.stdout
        assert "Skiff in /opt/skiff/venv is this checkout's: unchanged" in again.stdout
        assert systemd_properties(host, unit, "MainPID", "NRestarts") == before


def test_a_host_keeps_its_role_and_its_name(cluster: Cluster) -> None:
    server, agent = cluster.server, cluster.agents[0]
    before = systemd_properties(agent, "skiff-agent.service", "MainPID")
    renamed = agent.install_agent(*cluster.join, "--node-name", "another-name")
    assert renamed.returncode == 1
    assert f"this host already joined as node {agent.name}" in renamed.stderr
    assert "run deploy/uninstall.sh first" in renamed.stderr
    assert systemd_properties(agent, "skiff-agent.service", "MainPID") == before
    both = server.install_agent(*cluster.join)
    assert both.returncode == 1
    assert "install-agent: error: this host already runs the Skiff server " \
        "(skiff-server.service)" in both.stderr


DEPLOYMENT = """\
apiVersion: v1
kind: Secret
metadata: {name: spread-secret}
stringData: {word: hello}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: spread}
spec:
  replicas: 6
  selector: {matchLabels: {app: spread}}
  template:
    metadata: {labels: {app: spread}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: app
        image: IMAGE
        imagePullPolicy: Never
        command: [sh, -c, "cat /secret/word; sleep 100000"]
        volumeMounts: [{name: secret, mountPath: /secret}]
      volumes: [{name: secret, secret: {secretName: spread-secret}}]
"""


def spread_pods(server: Host) -> list[list[str]]:
    """Rows of `skiff get pods -l app=spread -o wide`: NAME READY STATUS RESTARTS AGE IP
    NODE."""
    listed = server.skiff("get", "pods", "-l", "app=spread", "-o", "wide", "--no-headers")
    return [line.split() for line in listed.stdout.splitlines() if line.strip()]


def test_a_deployment_of_six_spreads_over_the_three_hosts(cluster: Cluster,
                                                          busybox_image: str) -> None:
    server = cluster.server
    applied = server.skiff("apply", "-f", "-", input=DEPLOYMENT.replace("IMAGE", busybox_image))
    assert applied.returncode == 0, applied.stderr

    def all_running() -> bool:
        rows = spread_pods(server)
        return len(rows) == 6 and all(r[2] == "Running" and r[1] == "1/1" for r in rows)

    with phase(cluster.say, "6 replicas Running"):
        until("6 replicas Running", all_running, timeout=120)
    per_node: dict[str, int] = {}
    for row in spread_pods(server):
        per_node[row[6]] = per_node.get(row[6], 0) + 1
    cluster.say(f"  replicas per host: {per_node}")
    assert set(per_node) == {h.name for h in cluster.hosts}
    for host in cluster.hosts:
        # A pod is two containers on its host: the sandbox and the app.
        assert len(pod_containers(host)) == 2 * per_node[host.name]
        # Each pod's Secret is on a tmpfs under the host's Skiff state directory.
        tmpfs = host.out("findmnt -rn -t tmpfs -o TARGET").split()
        assert any(m.startswith(f"{STATE}/") for m in tmpfs), tmpfs


# Serves /cgi-bin/peer, which answers with the address the request came from.
PEER_SERVER = ("mkdir -p /www/cgi-bin; printf '#!/bin/sh\\necho Content-Type: text/plain\\n"
               "echo\\necho peer=$REMOTE_ADDR\\n' > /www/cgi-bin/peer; "
               "chmod +x /www/cgi-bin/peer; exec httpd -f -p 8080 -h /www")


def test_pods_on_different_hosts_reach_each_other_by_pod_ip_with_the_source_kept(
        cluster: Cluster, busybox_image: str) -> None:
    """Each host's pods are on a bridge in its podCIDR; the hosts route each other's
    podCIDRs; pod-to-pod traffic is not masqueraded, both ways."""
    server = cluster.server
    a, b = cluster.agents[0], cluster.agents[1]
    pods = {f"peer-{i}": host.name for i, host in enumerate((a, b))}
    for name, node in pods.items():
        manifest = yaml.safe_dump({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0, "containers": [{
                "name": "web", "image": busybox_image, "imagePullPolicy": "Never",
                "command": ["sh", "-c", PEER_SERVER]}]}})
        applied = server.skiff("apply", "-f", "-", input=manifest)
        assert applied.returncode == 0, applied.stderr
    try:
        def pod_ips() -> dict[str, str]:
            shown = server.skiff("get", "pods", "-o", "json")
            items = json.loads(shown.stdout)["items"] if shown.returncode == 0 else []
            return {p["metadata"]["name"]: p["status"].get("podIP", "") for p in items
                    if p["metadata"]["name"] in pods and p["status"].get("phase") == "Running"}

        until("both peers Running with an IP", lambda: all(pod_ips().get(n) for n in pods))
        ips = pod_ips()
        for name, node in pods.items():
            cidr = json.loads(server.skiff("get", "node", node, "-o", "json").stdout
                              )["spec"]["podCIDR"]
            prefix = cidr.rsplit(".", 1)[0] + "."
            assert ips[name].startswith(prefix), (name, ips[name], cidr)

        def seen_by(caller: str, callee: str) -> str:
            fetched = server.skiff("exec", caller, "--", "sh", "-c",
                                   f"timeout 5 wget -qO- http://{ips[callee]}:8080/cgi-bin/peer")
            return fetched.stdout.strip() if fetched.returncode == 0 else ""

        for caller, callee in (("peer-0", "peer-1"), ("peer-1", "peer-0")):
            with phase(cluster.say, f"{caller} reaches {callee} across hosts"):
                until(f"{caller} to reach {callee}",
                      lambda c=caller, d=callee: bool(seen_by(c, d)))  # type: ignore[misc]
            # busybox httpd shows an IPv4 peer as IPv4-mapped IPv6.
            assert seen_by(caller, callee) in (f"peer={ips[caller]}",
                                               f"peer=[::ffff:{ips[caller]}]")
    finally:
        for name in pods:
            server.skiff("delete", "pod", name, "--grace-period", "0")


def reachable(server: Host, node: str) -> tuple[str, str]:
    """The node's PodNetworkReachable condition: (status, message)."""
    shown = server.skiff("get", "node", node, "-o", "json")
    conditions = json.loads(shown.stdout)["status"]["conditions"] if shown.returncode == 0 \
        else []
    found = next((c for c in conditions if c["type"] == "PodNetworkReachable"), None)
    return (found["status"], found.get("message", "")) if found else ("", "")


def test_the_agents_probe_each_others_pod_networks_and_doctor_says_so(
        cluster: Cluster) -> None:
    server = cluster.server
    a, b = cluster.agents
    with phase(cluster.say, "every node reaches the others' pod networks"):
        until("every node's PodNetworkReachable", lambda: all(
            reachable(server, h.name)[0] == "True" for h in cluster.hosts))
    assert reachable(server, a.name)[1].startswith("reaches the pod networks of 2 node(s)")
    doctor = a.run("skiff", "doctor", "--state-dir", f"{STATE}/agent")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "[ok] pod network: reaches the pod networks of 2 node(s)" in doctor.stdout
    assert "[ok] cluster DNS: 10.96.0.10:53 answers on this node" in doctor.stdout
    # A firewall on b that drops what comes to its pods' side: a's probes see it.
    rule = "INPUT -p tcp --dport 10262 -j DROP"
    b.out(f"iptables -I {rule}")
    try:
        with phase(cluster.say, f"{a.name} finds {b.name}'s pod network unreachable"):
            until(f"{a.name} to report {b.name} unreachable",
                  lambda: reachable(server, a.name)[0] == "False", timeout=60)
        assert f"cannot reach the pod networks of: {b.name} (no answer from" in \
            reachable(server, a.name)[1]
        doctor = a.run("skiff", "doctor", "--state-dir", f"{STATE}/agent")
        assert doctor.returncode == 1
        assert f"[FAIL] pod network: cannot reach the pod networks of: {b.name}" in \
            doctor.stdout
        assert "fix: pods reach other nodes through the routes above" in doctor.stdout
    finally:
        b.out(f"iptables -D {rule}")
    until(f"{a.name} to reach {b.name} again",
          lambda: reachable(server, a.name)[0] == "True", timeout=60)


def lease_renewed(server: Host, node: str) -> datetime:
    shown = server.skiff("get", "lease", node, "-n", "kube-node-lease", "-o", "json")
    assert shown.returncode == 0, shown.stderr
    renew = json.loads(shown.stdout)["spec"]["renewTime"]
    return datetime.fromisoformat(renew.replace("Z", "+00:00"))


def test_restarting_the_agent_leaves_its_pods_running(cluster: Cluster) -> None:
    agent, server = cluster.agents[0], cluster.server
    containers = pod_containers(agent)
    assert containers
    unit = "skiff-agent.service"

    def back_since(moment: datetime, old_pid: str) -> None:
        """The agent runs again (a new main process, its port open) and its node is Ready
        with a heartbeat after `moment`."""
        def back() -> bool:
            now = systemd_properties(agent, unit, "MainPID", "ActiveState")
            return now["ActiveState"] == "active" and now["MainPID"] not in ("0", old_pid) \
                and agent.sh("exec 3<>/dev/tcp/127.0.0.1/10250").returncode == 0
        until(f"{unit} running again", back, timeout=60)
        until("the node's Lease renewed by the new agent",
              lambda: lease_renewed(server, agent.name) > moment, timeout=60)
        assert server.node_rows()[agent.name][1] == "Ready"

    for how in ("systemctl restart", "kill -9 of its main process",
                "an upgrade: install-agent.sh from a changed checkout"):
        before = systemd_properties(agent, unit, "MainPID", "NRestarts")
        moment = datetime.now(UTC)
        with phase(cluster.say, f"agent back after {how}"):
            if how == "systemctl restart":
                agent.out(f"systemctl restart {unit}")
            elif how.startswith("kill"):
                agent.out(f"kill -KILL {before['MainPID']}")
            else:
                agent.out(f"echo '# a newer Skiff' >>{CHECKOUT}/kubelet/__init__.py")
                upgraded = agent.install_agent(*cluster.join)
                assert upgraded.returncode == 0, upgraded.stderr + upgraded.stdout
                assert "install-agent: installing Skiff into /opt/skiff/venv" \
                    in upgraded.stdout
                assert "changed: Skiff v" in upgraded.stdout
            back_since(moment, before["MainPID"])
        if how.startswith("kill"):
            assert int(systemd_properties(agent, unit, "NRestarts")["NRestarts"]) == \
                int(before["NRestarts"]) + 1
        # The very same containers run on: the pods were never stopped.
        assert pod_containers(agent) == containers, how
    rows = [r for r in spread_pods(server) if r[6] == agent.name]
    assert rows and all(r[2] == "Running" and r[3] == "0" for r in rows)


def test_a_deleted_node_joins_again_under_its_name(cluster: Cluster) -> None:
    agent, server = cluster.agents[1], cluster.server
    deleted = server.skiff("delete", "node", agent.name)
    assert deleted.returncode == 0, deleted.stderr
    until("the node gone", lambda: agent.name not in server.node_rows(), timeout=30)
    revoked = agent.run("skiff", "--config", AGENT_CONFIG, "auth", "whoami")
    assert revoked.returncode == 1
    assert f"the certificate of node {agent.name} was revoked" in revoked.stderr

    with phase(cluster.say, "install-agent.sh again after skiff delete node, to Ready"):
        again = agent.install_agent(*cluster.join)
        assert again.returncode == 0, again.stderr + again.stdout
        server.wait_nodes_ready([agent.name])
    assert "the cluster refuses its certificate now" in again.stdout
    assert f"changed: joined as node {agent.name}" in again.stdout
    who = yaml.safe_load(agent.out(f"skiff --config {AGENT_CONFIG} auth whoami -o yaml"))
    assert who["status"]["userInfo"]["username"] == f"system:node:{agent.name}"


def test_uninstall_leaves_each_host_as_it_was(cluster: Cluster) -> None:
    # What the pod network added (Skiff's chains, the jumps to them, routes to the other
    # hosts' pods, the pods' bridge) is there now and must go too.
    for host in cluster.hosts:
        assert "SKIFF-FORWARD" in host.out("iptables -S"), host.name
    for host in [*cluster.agents, cluster.server]:  # the server last: its agents first
        with phase(cluster.say, f"uninstall.sh on {host.name}"):
            # On the server, the copy the install left on the host, which needs no checkout.
            removed = host.run("skiff-uninstall.sh") if host is cluster.server \
                else host.uninstall()
        assert removed.returncode == 0, removed.stderr + removed.stdout
        assert "uninstall: removed: " in removed.stdout
        after = host.snapshot()
        before = cluster.baseline[host.name]
        differs = {what: (before[what], after[what]) for what in before
                   if before[what] != after[what]}
        assert not differs, f"{host.name} is not as it was: {differs}"
        again = host.uninstall()
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == \
            "uninstall: nothing of Skiff's is on this host: nothing to remove"
