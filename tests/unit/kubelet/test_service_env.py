"""Service variables: Kubernetes' own cases (pkg/kubelet/envvars/envvars_test.go
TestFromServices) and the kubelet's choice of services (getServiceEnvVarMap)."""

from __future__ import annotations

from kubelet.env import build_env
from kubelet.serviceenv import from_services, service_env
from skiff.api.v1 import core_pb2


def service(name: str, ip: str, *ports: tuple[str, int, str], namespace: str = "default"
            ) -> core_pb2.Service:
    svc = core_pb2.Service()
    svc.metadata.name, svc.metadata.namespace = name, namespace
    svc.spec.selector["bar"] = "baz"
    svc.spec.cluster_ip = ip
    for port_name, port, protocol in ports:
        svc.spec.ports.add(name=port_name, port=port, protocol=protocol)
    return svc


def test_from_services_as_kubernetes() -> None:
    services = [
        service("foo-bar", "1.2.3.4", ("", 8080, "TCP")),
        service("abc-123", "5.6.7.8", ("u-d-p", 8081, "UDP"), ("t-c-p", 8081, "TCP")),
        service("q-u-u-x", "9.8.7.6", ("", 8082, "TCP"), ("8083", 8083, "TCP")),
        service("svrc-clusterip-none", "None", ("", 8082, "TCP")),
        service("svrc-clusterip-empty", "", ("", 8082, "TCP")),
    ]
    assert from_services(services) == [
        ("FOO_BAR_SERVICE_HOST", "1.2.3.4"),
        ("FOO_BAR_SERVICE_PORT", "8080"),
        ("FOO_BAR_PORT", "tcp://1.2.3.4:8080"),
        ("FOO_BAR_PORT_8080_TCP", "tcp://1.2.3.4:8080"),
        ("FOO_BAR_PORT_8080_TCP_PROTO", "tcp"),
        ("FOO_BAR_PORT_8080_TCP_PORT", "8080"),
        ("FOO_BAR_PORT_8080_TCP_ADDR", "1.2.3.4"),
        ("ABC_123_SERVICE_HOST", "5.6.7.8"),
        ("ABC_123_SERVICE_PORT", "8081"),
        ("ABC_123_SERVICE_PORT_U_D_P", "8081"),
        ("ABC_123_SERVICE_PORT_T_C_P", "8081"),
        ("ABC_123_PORT", "udp://5.6.7.8:8081"),
        ("ABC_123_PORT_8081_UDP", "udp://5.6.7.8:8081"),
        ("ABC_123_PORT_8081_UDP_PROTO", "udp"),
        ("ABC_123_PORT_8081_UDP_PORT", "8081"),
        ("ABC_123_PORT_8081_UDP_ADDR", "5.6.7.8"),
        ("ABC_123_PORT_8081_TCP", "tcp://5.6.7.8:8081"),
        ("ABC_123_PORT_8081_TCP_PROTO", "tcp"),
        ("ABC_123_PORT_8081_TCP_PORT", "8081"),
        ("ABC_123_PORT_8081_TCP_ADDR", "5.6.7.8"),
        ("Q_U_U_X_SERVICE_HOST", "9.8.7.6"),
        ("Q_U_U_X_SERVICE_PORT", "8082"),
        ("Q_U_U_X_SERVICE_PORT_8083", "8083"),
        ("Q_U_U_X_PORT", "tcp://9.8.7.6:8082"),
        ("Q_U_U_X_PORT_8082_TCP", "tcp://9.8.7.6:8082"),
        ("Q_U_U_X_PORT_8082_TCP_PROTO", "tcp"),
        ("Q_U_U_X_PORT_8082_TCP_PORT", "8082"),
        ("Q_U_U_X_PORT_8082_TCP_ADDR", "9.8.7.6"),
        ("Q_U_U_X_PORT_8083_TCP", "tcp://9.8.7.6:8083"),
        ("Q_U_U_X_PORT_8083_TCP_PROTO", "tcp"),
        ("Q_U_U_X_PORT_8083_TCP_PORT", "8083"),
        ("Q_U_U_X_PORT_8083_TCP_ADDR", "9.8.7.6"),
    ]


def test_an_unset_protocol_is_tcp() -> None:
    env = dict(from_services([service("web", "10.96.0.5", ("", 80, ""))]))
    assert env["WEB_PORT"] == "tcp://10.96.0.5:80"
    assert env["WEB_PORT_80_TCP_PROTO"] == "tcp"


MASTER = service("kubernetes", "10.96.0.1", ("https", 443, "TCP"))
OTHERS = [
    MASTER,
    service("db", "10.96.0.7", ("", 5432, "TCP"), namespace="shop"),
    service("cache", "10.96.0.8", ("", 6379, "TCP"), namespace="other"),
    service("headless", "None", ("", 80, "TCP"), namespace="shop"),
]


def names(env: list[tuple[str, str]]) -> set[str]:
    return {name.split("_", 1)[0] for name, _ in env}


def test_the_pods_namespace_and_the_master_service() -> None:
    assert names(service_env("shop", OTHERS)) == {"DB", "KUBERNETES"}
    assert names(service_env("other", OTHERS)) == {"CACHE", "KUBERNETES"}


def test_without_service_links_only_the_master_service() -> None:
    env = service_env("shop", OTHERS, enable_service_links=False)
    assert names(env) == {"KUBERNETES"}
    assert ("KUBERNETES_SERVICE_PORT_HTTPS", "443") in env


def test_a_namespaces_own_kubernetes_service_replaces_the_masters() -> None:
    own = service("kubernetes", "10.96.0.99", ("", 80, "TCP"), namespace="shop")
    for order in ([MASTER, own], [own, MASTER]):
        assert ("KUBERNETES_SERVICE_HOST", "10.96.0.99") in service_env("shop", order)
        assert ("KUBERNETES_SERVICE_HOST", "10.96.0.1") in service_env(
            "shop", order, enable_service_links=False)


class NoObjects:
    def get_secret(self, namespace: str, name: str) -> core_pb2.Secret | None:
        return None

    def get_config_map(self, namespace: str, name: str) -> core_pb2.ConfigMap | None:
        return None


def test_the_containers_own_env_wins_and_may_refer_to_service_variables() -> None:
    pod = core_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace = "p", "shop"
    container = pod.spec.containers.add(name="c")
    container.env.add(name="DB_SERVICE_HOST", value="db.example")
    container.env.add(name="DB_URL", value="postgres://$(DB_SERVICE_HOST):$(DB_SERVICE_PORT)")
    env, _ = build_env(pod, container, NoObjects(), pod_ip="", host_ip="",
                       service_env=service_env("shop", OTHERS))
    values = dict(env)
    assert values["DB_SERVICE_HOST"] == "db.example"
    assert values["DB_URL"] == "postgres://db.example:5432"
    assert [name for name, _ in env].count("DB_SERVICE_HOST") == 1
