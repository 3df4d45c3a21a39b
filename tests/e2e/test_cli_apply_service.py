"""`skiff apply` of a Service whose type changes, as Kubernetes handles it: the fields only
the old type used go with it (dropTypeDependentFields), so re-applying the ClusterIP form
of a NodePort manifest works."""

from __future__ import annotations

import json

from fixtures.cli import Cli

NODE_PORT = """\
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  type: {type}
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
"""


def apply(cli: Cli, ns: str, manifest: str) -> str:
    result = cli("apply", "-n", ns, "-f", "-", stdin=manifest)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_reapplying_the_cluster_ip_form_of_a_node_port_service(cli: Cli, ns: str) -> None:
    apply(cli, ns, NODE_PORT.format(type="NodePort"))
    svc = json.loads(cli.ok("get", "svc", "web", "-n", ns, "-o", "json"))
    node_port = svc["spec"]["ports"][0]["nodePort"]
    assert 30000 <= node_port <= 32767
    assert svc["spec"]["externalTrafficPolicy"] == "Cluster"

    assert apply(cli, ns, NODE_PORT.format(type="ClusterIP")) == "service/web configured\n"
    svc = json.loads(cli.ok("get", "svc", "web", "-n", ns, "-o", "json"))
    assert svc["spec"]["type"] == "ClusterIP"
    assert "nodePort" not in svc["spec"]["ports"][0]
    assert "externalTrafficPolicy" not in svc["spec"]
    # And back: a NodePort again, with a node port of its own.
    apply(cli, ns, NODE_PORT.format(type="NodePort"))
    svc = json.loads(cli.ok("get", "svc", "web", "-n", ns, "-o", "json"))
    assert 30000 <= svc["spec"]["ports"][0].get("nodePort", 0) <= 32767
