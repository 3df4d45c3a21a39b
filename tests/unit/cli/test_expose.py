"""`skiff expose`: the Service built from an object and the flags, as kubectl expose builds it."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from cli.commands.expose import parse_target, service_for
from cli.errors import CliError
from skiff.api import convert
from skiff.api.v1 import apps_pb2, core_pb2


def flags(**given: Any) -> argparse.Namespace:
    values = {"port": "", "target_port": "", "protocol": "", "type": "", "name": "",
              "selector": "", "labels": "", "cluster_ip": "", "external_ip": "",
              "session_affinity": ""}
    return argparse.Namespace(**{**values, **given})


def deployment(*ports: tuple[int, str]) -> apps_pb2.Deployment:
    d = apps_pb2.Deployment()
    d.metadata.name, d.metadata.namespace = "web", "shop"
    d.metadata.labels["team"] = "a"
    d.spec.selector.match_labels["app"] = "web"
    d.spec.template.metadata.labels["app"] = "web"
    container = d.spec.template.spec.containers.add(name="app", image="nginx")
    for number, protocol in ports:
        container.ports.add(container_port=number, protocol=protocol)
    return d


def spec_of(svc: core_pb2.Service) -> dict[str, Any]:
    return dict(convert.to_dict(svc)["spec"])


def test_deployment_with_one_container_port() -> None:
    svc = service_for(deployment((8080, "TCP")), flags())
    assert svc.metadata.name == "web" and svc.metadata.namespace == "shop"
    assert dict(svc.metadata.labels) == {"team": "a"}
    assert spec_of(svc) == {"selector": {"app": "web"},
                            "ports": [{"protocol": "TCP", "port": 8080, "targetPort": 8080}]}


def test_port_target_port_type_and_name_flags() -> None:
    svc = service_for(deployment((8080, "TCP")), flags(
        port="80", target_port="http", type="NodePort", name="front", protocol="UDP"))
    assert svc.metadata.name == "front"
    assert spec_of(svc) == {"selector": {"app": "web"}, "type": "NodePort",
                            "ports": [{"protocol": "UDP", "port": 80, "targetPort": "http"}]}
    numbered = service_for(deployment(), flags(port="80", target_port="8080"))
    assert numbered.spec.ports[0].target_port.int_val == 8080


def test_several_ports_are_named_port_n() -> None:
    svc = service_for(deployment((8080, "TCP"), (53, "UDP")), flags())
    assert [(p.name, p.port, p.protocol) for p in svc.spec.ports] == [
        ("port-1", 8080, "TCP"), ("port-2", 53, "UDP")]
    given = service_for(deployment(), flags(port="80,443"))
    assert [p.name for p in given.spec.ports] == ["port-1", "port-2"]


def test_no_port_is_an_error_unless_headless() -> None:
    with pytest.raises(CliError, match="couldn't find port via --port flag or introspection"):
        service_for(deployment(), flags())
    headless = service_for(deployment(), flags(cluster_ip="None"))
    assert headless.spec.cluster_ip == "None" and not headless.spec.ports
    with pytest.raises(CliError, match='parsing "http": invalid syntax'):
        service_for(deployment(), flags(port="http"))


def test_selector_of_a_pod_a_service_and_a_replica_set() -> None:
    pod = core_pb2.Pod()
    pod.metadata.name = "one"
    pod.metadata.labels["run"] = "one"
    pod.spec.containers.add(name="app").ports.add(container_port=80)
    assert dict(service_for(pod, flags()).spec.selector) == {"run": "one"}
    del pod.metadata.labels["run"]
    with pytest.raises(CliError, match=(
            "^couldn't retrieve selectors via --selector flag or introspection: the pod has "
            "no labels and cannot be exposed$")):
        service_for(pod, flags())
    svc = core_pb2.Service()
    svc.metadata.name = "old"
    svc.spec.selector["app"] = "web"
    svc.spec.ports.add(port=80, protocol="TCP").target_port.int_val = 8080
    copy = service_for(svc, flags(name="new"))
    assert dict(copy.spec.selector) == {"app": "web"}
    # As kubectl: the target port is the port, not the exposed service's targetPort.
    assert copy.spec.ports[0].port == 80 and copy.spec.ports[0].target_port.int_val == 80
    svc.spec.ClearField("selector")
    with pytest.raises(CliError, match="the service has no pod selector set"):
        service_for(svc, flags())
    rs = apps_pb2.ReplicaSet()
    rs.spec.selector.match_labels["app"] = "web"
    rs.spec.selector.match_expressions.add(key="tier", operator="In", values=["web"])
    with pytest.raises(CliError, match=r"couldn't convert expressions - "
                                       r'"\[\{Key:tier Operator:In Values:\[web\]\}\]" '
                                       "to map-based selector format"):
        service_for(rs, flags(port="80"))


def test_selector_and_labels_flags_win() -> None:
    svc = service_for(deployment((80, "TCP")), flags(selector="app=other,tier=web",
                                                     labels="svc=yes"))
    assert dict(svc.spec.selector) == {"app": "other", "tier": "web"}
    assert dict(svc.metadata.labels) == {"svc": "yes"}
    with pytest.raises(CliError, match="^unexpected label spec: app$"):
        service_for(deployment((80, "TCP")), flags(selector="app"))
    with pytest.raises(CliError, match="^unexpected empty label key$"):
        service_for(deployment((80, "TCP")), flags(labels="=x"))


def test_protocols_come_from_the_object() -> None:
    # --port names a number the containers serve on UDP: the service port is UDP too.
    dns = service_for(deployment((53, "UDP")), flags(port="53"))
    assert [(p.port, p.protocol) for p in dns.spec.ports] == [(53, "UDP")]
    both = service_for(deployment((53, "UDP"), (53, "TCP")), flags())
    assert [(p.name, p.port, p.protocol, p.target_port.int_val) for p in both.spec.ports] == [
        ("port-1-udp", 53, "UDP", 53), ("port-1-tcp", 53, "TCP", 53)]
    stomped = service_for(deployment((53, "UDP"), (53, "TCP")), flags(protocol="TCP"))
    assert [(p.name, p.protocol) for p in stomped.spec.ports] == [("", "TCP")]


def test_session_affinity_and_long_names() -> None:
    sticky = service_for(deployment((80, "TCP")), flags(session_affinity="ClientIP"))
    assert sticky.spec.session_affinity == "ClientIP"
    with pytest.raises(CliError, match="^unknown session affinity: Sticky$"):
        service_for(deployment((80, "TCP")), flags(session_affinity="Sticky"))
    long = deployment((80, "TCP"))
    long.metadata.name = "a" * 70
    assert service_for(long, flags()).metadata.name == "a" * 63


def test_a_deployment_without_match_labels() -> None:
    d = deployment((80, "TCP"))
    d.spec.selector.ClearField("match_labels")
    with pytest.raises(CliError, match=(
            "^couldn't retrieve selectors via --selector flag or introspection: invalid "
            "deployment: no selectors, therefore cannot be exposed$")):
        service_for(d, flags())


@pytest.mark.parametrize(("words", "kind", "name"), [
    (["deployment", "web"], "Deployment", "web"),
    (["deploy/web"], "Deployment", "web"),
    (["po", "one"], "Pod", "one"),
    (["svc/old"], "Service", "old"),
    (["rs", "web-1"], "ReplicaSet", "web-1"),
])
def test_targets(words: list[str], kind: str, name: str) -> None:
    found, found_name = parse_target(words)
    assert (found.kind, found_name) == (kind, name)


@pytest.mark.parametrize(("words", "message"), [
    (["job", "x"], "cannot expose a Job.batch"),
    (["configmap/x"], "cannot expose a ConfigMap"),
    (["deployment"], "you must provide one resource"),
    (["deployment", "a", "b"], "you must provide one resource"),
    (["deployment/"], "must have a single resource and name"),
])
def test_bad_targets(words: list[str], message: str) -> None:
    with pytest.raises(CliError, match=message):
        parse_target(words)


# What kubectl 1.32 printed for `kubectl expose -f FILE --dry-run=client -o json FLAGS`
# (against a stub serving only discovery), for the objects below.
def _kubectl_deployment() -> apps_pb2.Deployment:
    d = deployment((53, "UDP"), (53, "TCP"), (8080, "TCP"))
    d.metadata.labels.clear()
    d.metadata.labels["team"] = "shop"
    return d


def _kubectl_service() -> core_pb2.Service:
    svc = core_pb2.Service()
    svc.metadata.name = "old"
    svc.metadata.labels["a"] = "b"
    svc.spec.selector["app"] = "web"
    svc.spec.ports.add(name="http", port=80, protocol="TCP").target_port.int_val = 8080
    svc.spec.ports.add(name="dns", port=53, protocol="UDP")
    return svc


def _kubectl_pod() -> core_pb2.Pod:
    pod = core_pb2.Pod()
    pod.metadata.name = "lone"
    pod.metadata.labels["run"] = "lone"
    pod.spec.containers.add(name="app", image="nginx").ports.add(container_port=8080,
                                                                  protocol="UDP")
    return pod


MULTI = [{"name": "port-1-udp", "protocol": "UDP", "port": 53, "targetPort": 53},
         {"name": "port-1-tcp", "protocol": "TCP", "port": 53, "targetPort": 53},
         {"name": "port-2", "protocol": "TCP", "port": 8080, "targetPort": 8080}]

KUBECTL_RECORDED: list[tuple[str, Any, dict[str, Any], dict[str, Any]]] = [
    ("deploy-multi", _kubectl_deployment, {}, {"ports": MULTI, "selector": {"app": "web"}}),
    ("deploy-flags", _kubectl_deployment,
     {"port": "80", "target_port": "http", "type": "NodePort", "name": "front",
      "session_affinity": "ClientIP"},
     {"ports": [{"port": 80, "protocol": "TCP", "targetPort": "http"}],
      "selector": {"app": "web"}, "sessionAffinity": "ClientIP", "type": "NodePort"}),
    ("deploy-port-53", _kubectl_deployment, {"port": "53"},
     {"ports": MULTI[:2], "selector": {"app": "web"}}),
    ("deploy-ports", _kubectl_deployment, {"port": "53,8080"},
     {"ports": MULTI, "selector": {"app": "web"}}),
    ("deploy-headless", _kubectl_deployment, {"cluster_ip": "None"},
     {"ports": MULTI, "selector": {"app": "web"}, "clusterIP": "None"}),
    ("service", _kubectl_service, {"name": "new"},
     {"ports": [{"name": "port-1", "protocol": "TCP", "port": 80, "targetPort": 80},
                {"name": "port-2", "protocol": "UDP", "port": 53, "targetPort": 53}],
      "selector": {"app": "web"}}),
    ("pod-other-port", _kubectl_pod, {"port": "9000"},
     {"ports": [{"protocol": "TCP", "port": 9000, "targetPort": 9000}],
      "selector": {"run": "lone"}}),
    ("pod-own-port", _kubectl_pod, {},
     {"ports": [{"protocol": "UDP", "port": 8080, "targetPort": 8080}],
      "selector": {"run": "lone"}}),
]


@pytest.mark.parametrize(("make", "given", "spec"),
                         [pytest.param(m, g, s, id=i) for i, m, g, s in KUBECTL_RECORDED])
def test_as_kubectl_printed_it(make: Any, given: dict[str, Any], spec: dict[str, Any]) -> None:
    obj = make()
    assert spec_of(service_for(obj, flags(**given))) == spec
