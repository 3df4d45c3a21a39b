"""`skiff port-forward`'s arguments as kubectl reads them: ports, addresses, durations, the
pod chosen for an object and a Service's ports translated to the pod's."""

from __future__ import annotations

import argparse

import pytest

from cli.commands.port_forward import parse_duration, split_target
from cli.errors import CliError
from cli.forward_ports import (
    ForwardedPort,
    ListenAddress,
    convert_pod_named_ports,
    first_pod,
    parse_addresses,
    parse_ports,
    translate_service_ports,
)
from skiff.api.v1 import core_pb2


def pod(name: str = "web", **ports: int) -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.metadata.name = name
    c = p.spec.containers.add(name="app")
    for port_name, number in ports.items():
        c.ports.add(name=port_name, container_port=number)
    return p


def service(*ports: tuple[str, int, int | str | None], headless: bool = False
            ) -> core_pb2.Service:
    s = core_pb2.Service()
    s.metadata.name = "web"
    if headless:
        s.spec.cluster_ip = "None"
    for name, port, target in ports:
        p = s.spec.ports.add(name=name, port=port)
        if isinstance(target, int):
            p.target_port.int_val = target
        elif isinstance(target, str):
            p.target_port.str_val = target
    return s


def test_ports() -> None:
    assert parse_ports(["8080:80", ":80", "80", "0:1"]) == [
        ForwardedPort(8080, 80), ForwardedPort(0, 80), ForwardedPort(80, 80),
        ForwardedPort(0, 1)]


@pytest.mark.parametrize(("ports", "message"), [
    (["1:2:3"], "invalid port format '1:2:3'"),
    (["x:80"], "error parsing local port 'x'"),
    (["70000:80"], "error parsing local port '70000'"),
    (["8080:"], "error parsing remote port ''"),
    (["8080:-1"], "error parsing remote port '-1'"),
    (["8080:0"], "remote port must be > 0"),
    (["0"], "remote port must be > 0"),
])
def test_bad_ports(ports: list[str], message: str) -> None:
    with pytest.raises(CliError, match=message):
        parse_ports(ports)


def test_addresses() -> None:
    assert parse_addresses(["localhost"]) == [ListenAddress("127.0.0.1", "all"),
                                              ListenAddress("::1", "all")]
    assert parse_addresses(["127.0.0.1,::1", "0.0.0.0", "127.0.0.1"]) == [
        ListenAddress("127.0.0.1", "any"), ListenAddress("::1", "any"),
        ListenAddress("0.0.0.0", "any")]
    with pytest.raises(CliError, match="example.com is not a valid IP"):
        parse_addresses(["example.com"])


def test_pod_named_ports() -> None:
    p = pod(http=8080, metrics=9090)
    assert convert_pod_named_ports(["http", "1234:metrics", ":http", "80", "81:82"], p) == [
        "8080", "1234:9090", ":8080", "80", "81:82"]
    with pytest.raises(CliError, match="Pod 'web' does not have a named port 'nope'"):
        convert_pod_named_ports(["8080:nope"], p)


def test_service_ports_become_the_pods() -> None:
    p = pod(http=8080)
    s = service(("web", 80, "http"), ("num", 81, 9000), ("same", 82, None),
                ("digits", 83, "9001"))
    # A bare service port stays the local port; `:PORT` stays a free one.
    assert translate_service_ports(["80", ":80", "8000:80", "81", "82", "83"], s, p) == [
        "80:8080", ":8080", "8000:8080", "81:9000", "82", "83:9001"]
    # A name is a service port's name; alone, its number is the local port.
    assert translate_service_ports(["web", "7000:num"], s, p) == ["80:8080", "7000:9000"]
    assert translate_service_ports(["8080:80"], s, p) == ["8080"]


def test_service_port_errors() -> None:
    p = pod(http=8080)
    s = service(("web", 80, "metrics"))
    with pytest.raises(CliError, match="Service web does not have a service port 81"):
        translate_service_ports(["81"], s, p)
    with pytest.raises(CliError, match="Service 'web' does not have a named port 'nope'"):
        translate_service_ports(["nope"], s, p)
    with pytest.raises(CliError, match="Pod 'web' does not have a named port 'metrics'"):
        translate_service_ports(["80"], s, p)


def test_headless_service_port_is_the_pods() -> None:
    s = service(("web", 80, 8080), headless=True)
    assert translate_service_ports(["80"], s, pod()) == ["80"]


def test_first_pod_prefers_running_ready_scheduled() -> None:
    def make(name: str, phase: str, *, node: str = "n1", ready: bool = False,
             created: int = 0, restarts: int = 0) -> core_pb2.Pod:
        p = pod(name)
        p.spec.node_name = node
        p.status.phase = phase
        p.metadata.creation_timestamp.seconds = created
        if ready:
            p.status.conditions.add(type="Ready", status="True")
        p.status.container_statuses.add(name="app", restart_count=restarts)
        return p

    pending = make("pending", "Pending")
    running = make("running", "Running", created=5)
    ready = make("ready", "Running", ready=True, created=9)
    unscheduled = make("unscheduled", "Running", node="", ready=True)
    older = make("older", "Running", created=1)
    restarted = make("restarted", "Running", created=7, restarts=3)
    assert first_pod([]) is None
    assert first_pod([pending, running, unscheduled, ready]) is ready
    assert first_pod([pending, running, unscheduled]) is running
    assert first_pod([running, older]) is older
    assert first_pod([running, older, restarted]) is restarted
    assert first_pod([pending, unscheduled]) is pending


def test_targets_and_durations() -> None:
    assert split_target("web")[0].kind == "Pod"
    assert [split_target(t)[0].kind for t in ("pod/web", "svc/web", "service/web",
                                               "deployment/web", "deploy/web", "rs/web")] == [
        "Pod", "Service", "Service", "Deployment", "Deployment", "ReplicaSet"]
    with pytest.raises(CliError, match="doesn't have a resource type \"nope\""):
        split_target("nope/web")
    assert parse_duration("1m0s") == 60
    assert parse_duration("1m30s") == 90
    assert parse_duration("500ms") == 0.5
    assert parse_duration("2") == 2
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration("soon")
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration("0s")
