"""A Service across the nodes of a docker-in-docker cluster (issue 15), on the session's
`skiff_cluster` (two nodes, shared with the plugin's tests): the Endpoints controller lists
the pods of both nodes, each node's service proxy sends a client's connections to the
cluster IP to pods on either node, and a named targetPort is resolved per pod.
"""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from pytest_skiff.session import SkiffCluster

# Each pod answers with its own name, on the port its container calls "http".
SERVE = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"


@pytest.fixture(scope="module")
def loaded(skiff_cluster: SkiffCluster, busybox_image: str) -> str:
    skiff_cluster.load_image(busybox_image)
    return busybox_image


def ready_addresses(endpoints: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for subset in endpoints.get("subsets") or []
            for a in subset.get("addresses") or []]


def test_a_cluster_ip_reaches_pods_on_every_node(
        skiff_cluster: SkiffCluster, skiff_namespace: str, loaded: str) -> None:
    ns, nodes = skiff_namespace, skiff_cluster.nodes
    skiff_cluster.apply(textwrap.dedent(f"""\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: web}}
        spec:
          replicas: 4
          selector: {{matchLabels: {{app: web}}}}
          template:
            metadata: {{labels: {{app: web}}}}
            spec:
              terminationGracePeriodSeconds: 0
              containers:
              - name: web
                image: {loaded}
                imagePullPolicy: IfNotPresent
                command: ["sh", "-c", "{SERVE}"]
                ports: [{{name: http, containerPort: 8080}}]
                readinessProbe: {{tcpSocket: {{port: http}}, periodSeconds: 1}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {{name: web}}
        spec:
          selector: {{app: web}}
          ports: [{{port: 80, targetPort: http}}]
        ---
        apiVersion: v1
        kind: Pod
        metadata: {{name: client}}
        spec:
          nodeName: {nodes[0]}
          terminationGracePeriodSeconds: 0
          containers:
          - name: client
            image: {loaded}
            imagePullPolicy: IfNotPresent
            command: ["sleep", "3600"]
        """), namespace=ns)
    skiff_cluster.wait_for("Deployment", "web", "Available", namespace=ns, timeout=120)
    skiff_cluster.wait_for("Pod", "client", "Ready", namespace=ns, timeout=120)
    pods = {p["metadata"]["name"]: p for p in
            skiff_cluster.list("Pod", ns, label_selector="app=web")}
    assert {p["spec"]["nodeName"] for p in pods.values()} == set(nodes)  # spread

    endpoints = skiff_cluster.wait_for(
        "Endpoints", "web", lambda e: len(ready_addresses(e)) == 4, namespace=ns, timeout=60)
    assert {a["ip"] for a in ready_addresses(endpoints)} == \
        {p["status"]["podIP"] for p in pods.values()}
    assert [p["port"] for s in endpoints["subsets"] for p in s["ports"]] == [8080]

    cluster_ip = skiff_cluster.get("Service", "web", ns)["spec"]["clusterIP"]
    # (timeout, not wget -T: this busybox's wget crashes on -T.)
    script = (f"for i in $(seq 40); do timeout 3 wget -qO- http://{cluster_ip}/ || echo FAILED; "
              "done")
    answered = skiff_cluster.run("exec", "client", "-n", ns, "--", "sh", "-c", script,
                                 timeout=180).stdout.split()
    assert "FAILED" not in answered, answered
    assert len(answered) == 40
    by_node = {pods[name]["spec"]["nodeName"] for name in answered}
    assert by_node == set(nodes), (answered, {n: p["spec"]["nodeName"] for n, p in pods.items()})
    assert set(answered) == set(pods)  # all four, at random with equal weight
