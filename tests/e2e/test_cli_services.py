"""Services through the real CLI and apiserver: `skiff expose`, `get svc`/`get ep` with
kubectl's columns, `describe svc` with its endpoints, and bad Services refused with
Kubernetes' words, a non-zero exit and nothing stored."""

from __future__ import annotations

import json
import random
import re

from fixtures.cli import Cli

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {team: shop}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: app, image: nginx:1.25, ports: [{containerPort: 8080}]}
"""

PORTLESS_POD = """\
apiVersion: v1
kind: Pod
metadata: {name: lone, labels: {run: lone}}
spec:
  containers: [{name: app, image: nginx:1.25}]
"""

# A Service without a selector, whose Endpoints the user writes.
BY_HAND = """\
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  ports: [{name: sql, port: 5432}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: db}
subsets:
- addresses: [{ip: 10.0.0.1}, {ip: 10.0.0.2}, {ip: 10.0.0.3}, {ip: 10.0.0.4}]
  ports: [{name: sql, port: 5432}]
"""


def rows(table: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in table.splitlines()]


def test_expose_a_deployment_and_read_it_back(cli: Cli, ns: str) -> None:
    assert cli("apply", "-n", ns, "-f", "-", stdin=DEPLOYMENT).returncode == 0
    assert cli.ok("expose", "-n", ns, "deployment", "web", "--port", "80",
                  "--target-port", "8080") == "service/web exposed\n"
    assert cli.ok("expose", "-n", ns, "deploy/web", "--name", "web-np",
                  "--type", "NodePort") == "service/web-np exposed\n"
    svc = json.loads(cli.ok("get", "svc", "web", "-n", ns, "-o", "json"))
    assert svc["metadata"]["labels"] == {"team": "shop"}
    assert svc["spec"]["selector"] == {"app": "web"}
    assert svc["spec"]["ports"] == [{"protocol": "TCP", "port": 80, "targetPort": 8080}]
    table = rows(cli.ok("get", "svc", "-n", ns, "-o", "wide"))
    assert table[0] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE",
                        "SELECTOR"]
    by_name = {r[0]: r for r in table[1:]}
    assert by_name["web"][1:5] == ["ClusterIP", svc["spec"]["clusterIP"], "<none>", "80/TCP"]
    assert by_name["web"][6] == "app=web"
    node_port = by_name["web-np"][4]
    assert re.fullmatch(r"8080:3\d{4}/TCP", node_port), node_port
    # Exposing what cannot be exposed, or with no port to find, says why.
    assert "cannot expose a ConfigMap" in cli.fails("expose", "-n", ns, "configmap", "x")
    assert cli("apply", "-n", ns, "-f", "-", stdin=PORTLESS_POD).returncode == 0
    assert "couldn't find port via --port flag or introspection" in cli.fails(
        "expose", "-n", ns, "pod", "lone")
    assert "not found" in cli.fails("expose", "-n", ns, "pod", "missing", "--port", "80")


def test_get_ep_and_describe_svc_list_the_endpoints(cli: Cli, ns: str) -> None:
    assert cli("apply", "-n", ns, "-f", "-", stdin=BY_HAND).returncode == 0
    table = rows(cli.ok("get", "ep", "-n", ns))
    assert table[0] == ["NAME", "ENDPOINTS", "AGE"]
    assert table[1][:2] == ["db", "10.0.0.1:5432,10.0.0.2:5432,10.0.0.3:5432 + 1 more..."]
    text = cli.ok("describe", "svc", "db", "-n", ns)
    assert re.search(r"^Endpoints: +10\.0\.0\.1:5432,10\.0\.0\.2:5432,10\.0\.0\.3:5432 "
                     r"\+ 1 more\.\.\.$", text, re.M), text
    assert re.search(r"^Port: +sql  5432/TCP$", text, re.M), text
    assert re.search(r"^Events: +<none>$", text, re.M), text


def _service(name: str, spec: str) -> str:
    return f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {spec}\n"


def test_bad_services_are_refused_and_nothing_stored(cli: Cli, ns: str) -> None:
    ip = f"10.{random.randint(100, 110)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    assert cli("apply", "-n", ns, "-f", "-", stdin=_service(
        "first", f"{{clusterIP: {ip}, ports: [{{port: 80}}]}}")).returncode == 0
    cases = {
        "taken": (f"{{clusterIP: {ip}, ports: [{{port: 80}}]}}",
                  f'spec.clusterIPs: Invalid value: []string{{"{ip}"}}: failed to allocate '
                  f"IP {ip}: provided IP is already allocated"),
        "outside": ("{clusterIP: 192.168.0.1, ports: [{port: 80}]}",
                    "the provided IP (192.168.0.1) is not in the valid range. The range of "
                    "valid IPs is 10.96.0.0/12"),
        "port": ("{ports: [{port: 70000}]}",
                 "spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, "
                 "inclusive"),
        "node-port": ("{type: NodePort, ports: [{port: 80, nodePort: 8080}]}",
                      "spec.ports[0].nodePort: Invalid value: 8080: provided port is not in "
                      "the valid range. The range of valid ports is 30000-32767"),
        "names": ("{ports: [{name: web, port: 80}, {name: web, port: 81}]}",
                  'spec.ports[1].name: Duplicate value: "web"'),
    }
    for name, (spec, message) in cases.items():
        for verb in ("create", "apply"):
            result = cli(verb, "-n", ns, "-f", "-", stdin=_service(name, spec))
            assert result.returncode == 1 and message in result.stderr, (name, result.stderr)
        assert "not found" in cli.fails("get", "svc", name, "-n", ns)
