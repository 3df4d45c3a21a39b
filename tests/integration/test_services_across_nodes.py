"""Services and cluster DNS on a docker-in-docker cluster (issue 15), on the session's
`skiff_cluster` (three nodes, shared with the plugin's tests), every part real: the
Endpoints controller, each node's service proxy (iptables in the node), skiff-dns on every
node at the cluster DNS address, and pods' resolv.conf naming it.

One app for the module: a Deployment of HTTP servers that answer with their pod's name,
spread over the nodes, behind a ClusterIP Service, a headless one and an ExternalName
alias; a client pod on an agent node (not the server's) asks by cluster IP and by name.
"""

from __future__ import annotations

import re
import signal
import subprocess
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from pytest_skiff.session import SkiffCluster

# Each pod answers with its own name on the port its container calls "http", and is ready
# while /www/ready exists. As PID 1 without a handler, httpd ignores SIGTERM: a deleted pod
# serves until its grace period ends, while the proxies catch up (graceful termination).
SERVE = ("mkdir -p /www && hostname > /www/index.html && touch /www/ready && "
         "exec httpd -f -p 8080 -h /www")
DOMAIN = "cluster.local"


@dataclass
class App:
    cluster: SkiffCluster
    ns: str
    image: str

    def client(self, script: str, timeout: float = 180) -> str:
        return self.cluster.run("exec", "client", "-n", self.ns, "--", "sh", "-c", script,
                                timeout=timeout).stdout

    def requests(self, target: str, count: int, pause: str = "0") -> list[str]:
        """The answers to `count` HTTP requests from the client pod (FAILED for a failed
        one). (timeout, not wget -T: this busybox's wget crashes on -T.)"""
        out = self.client(f"for i in $(seq {count}); do timeout 3 wget -qO- http://{target}/"
                          f" || echo FAILED; sleep {pause}; done")
        return out.split()

    def cluster_ip(self) -> str:
        """The cluster IP of the Service `web`."""
        return str(self.cluster.get("Service", "web", self.ns)["spec"]["clusterIP"])

    def pods(self) -> dict[str, dict[str, Any]]:
        return {p["metadata"]["name"]: p for p in
                self.cluster.list("Pod", self.ns, label_selector="app=web")
                if not p["metadata"].get("deletionTimestamp")}

    def nslookup(self, *args: str) -> str:
        return self.client("nslookup " + " ".join(args), timeout=60)

    def wait_ready_endpoints(self, count: int, timeout: float = 90) -> dict[str, Any]:
        return self.cluster.wait_for("Endpoints", "web",
                                     lambda e: len(addresses(e)) == count,
                                     namespace=self.ns, timeout=timeout)


def addresses(endpoints: dict[str, Any], key: str = "addresses") -> list[dict[str, Any]]:
    return [a for subset in endpoints.get("subsets") or [] for a in subset.get(key) or []]


def looked_up(output: str) -> list[str]:
    """The addresses busybox nslookup printed (not its server's, which has a port)."""
    return re.findall(r"^Address:\s*([0-9.]+)\s*$", output, re.MULTILINE)


@pytest.fixture(scope="module")
def app(skiff_cluster: SkiffCluster, busybox_image: str) -> Iterator[App]:
    skiff_cluster.load_image(busybox_image)
    ns = f"svc-{uuid.uuid4().hex[:6]}"
    skiff_cluster.create_namespace(ns)
    agent = skiff_cluster.nodes[1]
    skiff_cluster.apply(textwrap.dedent(f"""\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: web}}
        spec:
          replicas: 3
          selector: {{matchLabels: {{app: web}}}}
          template:
            metadata: {{labels: {{app: web}}}}
            spec:
              terminationGracePeriodSeconds: 5
              containers:
              - name: web
                image: {busybox_image}
                imagePullPolicy: IfNotPresent
                command: ["sh", "-c", "{SERVE}"]
                ports: [{{name: http, containerPort: 8080}}]
                readinessProbe:
                  httpGet: {{path: /ready, port: http}}
                  periodSeconds: 1
                  failureThreshold: 1
        ---
        apiVersion: v1
        kind: Service
        metadata: {{name: web}}
        spec:
          selector: {{app: web}}
          ports: [{{name: http, port: 80, targetPort: http}}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {{name: web-headless}}
        spec:
          clusterIP: None
          selector: {{app: web}}
          ports: [{{name: http, port: 8080, targetPort: http}}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {{name: alias}}
        spec:
          type: ExternalName
          externalName: web.{ns}.svc.{DOMAIN}
        """), namespace=ns)
    # The client on an agent node; another on the server's node.
    for client, node in (("client", agent), ("client-on-server", skiff_cluster.nodes[0])):
        skiff_cluster.apply(textwrap.dedent(f"""\
            apiVersion: v1
            kind: Pod
            metadata: {{name: {client}}}
            spec:
              nodeName: {node}
              terminationGracePeriodSeconds: 0
              containers:
              - name: client
                image: {busybox_image}
                imagePullPolicy: IfNotPresent
                command: ["sleep", "3600"]
            """), namespace=ns)
    skiff_cluster.wait_for("Deployment", "web", "Available", namespace=ns, timeout=120)
    for client in ("client", "client-on-server"):
        skiff_cluster.wait_for("Pod", client, "Ready", namespace=ns, timeout=120)
    made = App(skiff_cluster, ns, busybox_image)
    made.wait_ready_endpoints(3)
    yield made
    skiff_cluster.delete("Namespace", ns)


def test_pods_use_the_cluster_dns(app: App) -> None:
    resolv = app.client("cat /etc/resolv.conf")
    assert "nameserver 10.96.0.10" in resolv
    assert f"search {app.ns}.svc.{DOMAIN} svc.{DOMAIN} {DOMAIN}" in resolv
    assert "options ndots:5" in resolv
    kube_dns = app.cluster.get("Service", "kube-dns", "kube-system")
    assert kube_dns["spec"]["clusterIP"] == "10.96.0.10"


def test_every_nodes_dns_answers_its_pods(app: App) -> None:
    """skiff-dns runs on the server node (skiff up) and on the agents (skiff-dns.service)."""
    cluster_ip = app.cluster_ip()
    by_node = {p["spec"]["nodeName"]: name for name, p in app.pods().items()}
    assert set(by_node) == set(app.cluster.nodes)
    for node, pod in by_node.items():
        out = app.cluster.run("exec", pod, "-n", app.ns, "--", "nslookup",
                              f"web.{app.ns}.svc.{DOMAIN}").stdout
        assert looked_up(out) == [cluster_ip], (node, out)


def test_a_client_on_one_node_reaches_pods_on_the_others_by_cluster_ip_and_by_name(
        app: App) -> None:
    pods = app.pods()
    nodes = {p["spec"]["nodeName"] for p in pods.values()}
    client_node = app.cluster.nodes[1]
    assert nodes == set(app.cluster.nodes)  # one on each node, the client's too
    cluster_ip = app.cluster_ip()

    by_ip = app.requests(cluster_ip, 30)
    by_name = app.requests("web", 60)  # the search path: web.NS.svc.cluster.local
    for answered in (by_ip, by_name):
        assert "FAILED" not in answered, answered
        assert set(answered) == set(pods), answered  # all three, chosen at random
    others = {pods[name]["spec"]["nodeName"] for name in by_name} - {client_node}
    assert len(others) == 2
    # The full name, and the ExternalName alias (a CNAME to it), reach the same pods.
    assert set(app.requests(f"web.{app.ns}.svc.{DOMAIN}", 6)) <= set(pods)
    assert set(app.requests(f"alias.{app.ns}.svc.{DOMAIN}", 6)) <= set(pods)


def test_a_headless_service_resolves_to_every_ready_pod(app: App) -> None:
    out = app.nslookup(f"web-headless.{app.ns}.svc.{DOMAIN}")
    assert sorted(looked_up(out)) == sorted(p["status"]["podIP"]
                                            for p in app.pods().values()), out


def test_srv_records_for_a_named_port(app: App) -> None:
    out = app.nslookup("-type=srv", f"_http._tcp.web.{app.ns}.svc.{DOMAIN}")
    assert f"service = 0 100 80 web.{app.ns}.svc.{DOMAIN}" in out, out
    headless = app.nslookup("-type=srv", f"_http._tcp.web-headless.{app.ns}.svc.{DOMAIN}")
    assert headless.count(" 8080 ") == 3, headless  # one per ready pod


def test_an_external_name_resolves_through_a_cname(app: App) -> None:
    out = app.nslookup(f"alias.{app.ns}.svc.{DOMAIN}")
    assert f"canonical name = web.{app.ns}.svc.{DOMAIN}" in out, out
    cluster_ip = app.cluster_ip()
    assert cluster_ip in looked_up(out)


def test_a_pod_failing_readiness_stops_receiving_traffic(app: App) -> None:
    pods = app.pods()
    unready = sorted(pods)[0]
    app.cluster.run("exec", unready, "-n", app.ns, "--", "rm", "/www/ready")
    endpoints = app.wait_ready_endpoints(2, timeout=30)
    assert [a["targetRef"]["name"] for a in addresses(endpoints, "notReadyAddresses")] == \
        [unready]
    # The proxies follow the Endpoints within their sync period.
    deadline = time.monotonic() + 10
    while True:
        answered = app.requests("web", 20)
        if unready not in answered or time.monotonic() > deadline:
            break
    assert "FAILED" not in answered
    assert unready not in answered and set(answered) == set(pods) - {unready}, answered
    app.cluster.run("exec", unready, "-n", app.ns, "--", "touch", "/www/ready")
    app.wait_ready_endpoints(3, timeout=30)


def test_after_scaling_to_one_no_request_fails(app: App) -> None:
    app.cluster.run("scale", "deployment/web", "--replicas=1", "-n", app.ns)
    endpoints = app.wait_ready_endpoints(1, timeout=60)
    left = endpoints["subsets"][0]["addresses"][0]["targetRef"]["name"]
    # From the moment Endpoints show one address: the removed pods are still serving out
    # their grace period, and the proxies drop them within their sync period.
    answered = app.requests("web", 30, pause="0.1")
    assert "FAILED" not in answered, answered
    assert answered[-10:] == [left] * 10, answered
    app.cluster.run("scale", "deployment/web", "--replicas=3", "-n", app.ns)
    app.wait_ready_endpoints(3)


def test_a_named_target_port_with_a_different_number_per_pod(app: App) -> None:
    pods = []
    for i, port in enumerate((8081, 9091)):
        serve = SERVE.replace("8080", str(port))
        node = app.cluster.nodes[i + 1]
        pods.append(textwrap.dedent(f"""\
            apiVersion: v1
            kind: Pod
            metadata: {{name: multi-{port}, labels: {{app: multi}}}}
            spec:
              nodeName: {node}
              terminationGracePeriodSeconds: 0
              containers:
              - name: web
                image: {app.image}
                imagePullPolicy: IfNotPresent
                command: ["sh", "-c", "{serve}"]
                ports: [{{name: http, containerPort: {port}}}]
                readinessProbe: {{tcpSocket: {{port: http}}, periodSeconds: 1}}
            """))
    app.cluster.apply("---\n".join([*pods, textwrap.dedent("""\
        apiVersion: v1
        kind: Service
        metadata: {name: multi}
        spec:
          selector: {app: multi}
          ports: [{port: 80, targetPort: http}]
        """)]), namespace=app.ns)
    endpoints = app.cluster.wait_for(
        "Endpoints", "multi", lambda e: len(addresses(e)) == 2, namespace=app.ns, timeout=90)
    assert sorted(p["port"] for s in endpoints["subsets"] for p in s["ports"]) == [8081, 9091]
    answered = app.requests("multi", 30)
    assert "FAILED" not in answered, answered
    assert set(answered) == {"multi-8081", "multi-9091"}, answered


@pytest.mark.parametrize("node_index", [0, 1], ids=["server-node", "agent-node"])
def test_lookups_do_not_fail_while_a_nodes_dns_restarts(app: App, node_index: int) -> None:
    """The node's skiff-dns restarts (the server node's killed, its supervisor starting it
    again after a second; an agent's restarted by systemd) while a pod there asks by name:
    its sockets are held across the restart (skiff up's supervisor, skiff-dns.socket), so
    the queries wait for the new process and none fails."""
    node = app.cluster.nodes[node_index]
    pod = "client-on-server" if node_index == 0 else "client"
    loop = app.cluster.popen(
        "exec", pod, "-n", app.ns, "--", "sh", "-c",
        "for i in $(seq 50); do timeout 10 wget -qO- http://web/ >/dev/null && echo ok "
        "|| echo FAILED; sleep 0.1; done")
    try:
        time.sleep(1.5)
        restart = ("kill $(cat /var/lib/skiff/server/run/dns.pid)" if node_index == 0
                   else "systemctl restart skiff-dns.service")
        done = subprocess.run(["docker", "exec", node, "sh", "-c", restart],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        out, err = loop.communicate(timeout=240)
    finally:
        if loop.poll() is None:
            loop.kill()
    answers = out.split()
    assert answers == ["ok"] * 50, (answers, err)
    # It did restart: a new process answers, and it was handed the held sockets.
    log = ("tail -n 50 /var/lib/skiff/server/logs/dns.log" if node_index == 0
           else "journalctl -u skiff-dns.service -n 50 --no-pager")
    shown = subprocess.run(["docker", "exec", node, "sh", "-c", log], capture_output=True,
                           text=True, timeout=60).stdout
    assert shown.count("(udp, tcp; sockets handed over)") >= 2, shown


def test_port_forward_from_this_machine_to_a_service_in_the_cluster(app: App) -> None:
    """`skiff port-forward svc/web` on the admin's machine (this one): through the
    apiserver on the server node to the kubelet of the pod's node, which connects inside
    the pod's network namespace (its dockerd's pids, inside the node)."""
    forward = app.cluster.popen("port-forward", "-n", app.ns, "svc/web", ":80")
    try:
        assert forward.stdout is not None and forward.stderr is not None
        line = forward.stdout.readline().strip()  # the first: 127.0.0.1 (then [::1])
        found = re.fullmatch(r"Forwarding from 127\.0\.0\.1:(\d+) -> 8080", line)
        assert found, (line, forward.stderr.read() if forward.poll() is not None else "")
        pages = set()
        for _ in range(3):
            with urllib.request.urlopen(f"http://127.0.0.1:{found.group(1)}/",
                                        timeout=20) as response:
                pages.add(response.read().decode().strip())
        assert len(pages) == 1 and pages <= set(app.pods()), pages  # one pod, as kubectl
        forward.send_signal(signal.SIGTERM)
        assert forward.wait(15) == 0
    finally:
        if forward.poll() is None:
            forward.kill()
            forward.wait()
