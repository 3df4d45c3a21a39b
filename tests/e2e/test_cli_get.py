"""`skiff get`, `describe`, `api-resources` and `version` as a user runs them: the real CLI
in a subprocess against a real apiserver (over a real etcd).

Every test works in namespaces of its own, so they share one apiserver safely.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import yaml
from fixtures.cli import Cli, Running, create, get

from skiff.api import convert, kinds
from skiff.api.v1 import core_pb2


def namespace(address: str) -> str:
    ns = core_pb2.Namespace()
    ns.metadata.name = f"cli-{uuid.uuid4().hex[:8]}"
    create(address, ns)
    return ns.metadata.name


@pytest.fixture
def ns(apiserver: Any) -> str:
    return namespace(apiserver.address)


def pod(name: str, ns: str, **labels: str) -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.metadata.name, p.metadata.namespace = name, ns
    p.metadata.labels.update(labels)
    p.spec.containers.add(name="app", image="busybox", command=["sleep", "3600"])
    return p


def names(table: str) -> list[str]:
    """The first column of a table's rows (without the header)."""
    return [line.split()[0] for line in table.splitlines()[1:] if line.strip()]


# ---- get ----


def test_get_by_name_and_by_many_names(cli: Cli, apiserver: Any, ns: str) -> None:
    create(apiserver.address, pod("a", ns), pod("b", ns), pod("c", ns))
    out = cli.ok("get", "pods", "a", "-n", ns)
    assert out.splitlines()[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert names(out) == ["a"]
    assert out.splitlines()[1].split()[:3] == ["a", "0/1", "Pending"]
    assert names(cli.ok("get", "po", "c", "a", "-n", ns)) == ["c", "a"]
    assert names(cli.ok("get", "pod/b", "pods/a", "-n", ns)) == ["b", "a"]
    assert names(cli.ok("get", "pods", "-n", ns)) == ["a", "b", "c"]


def test_label_and_field_selectors(cli: Cli, apiserver: Any, ns: str) -> None:
    create(
        apiserver.address,
        pod("web-1", ns, app="web"),
        pod("web-2", ns, app="web"),
        pod("db", ns, app="db"),
    )
    assert names(cli.ok("get", "pods", "-n", ns, "-l", "app=web")) == ["web-1", "web-2"]
    assert names(cli.ok("get", "pods", "-n", ns, "-l", "app!=web")) == ["db"]
    assert names(cli.ok("get", "pods", "-n", ns, "--field-selector", "metadata.name=web-2")) == [
        "web-2"
    ]
    shown = cli.ok("get", "pods", "-n", ns, "-l", "app=db", "--show-labels")
    assert shown.splitlines()[0].split()[-1] == "LABELS"
    assert shown.splitlines()[1].split()[-1] == "app=db"


def test_label_selectors_read_as_kubernetes_reads_them(cli: Cli, apiserver: Any,
                                                      ns: str) -> None:
    create(
        apiserver.address,
        pod("one", ns, replicas="1", tier="a"),
        pod("three", ns, replicas="3", tier=""),
        pod("ten", ns, replicas="10", tier="b"),
        pod("many", ns, replicas="many"),
    )
    # '>' and '<' compare integers; a label that is not one never matches.
    assert names(cli.ok("get", "pods", "-n", ns, "-l", "replicas>2")) == ["ten", "three"]
    assert names(cli.ok("get", "pods", "-n", ns, "-l", "replicas<2")) == ["one"]
    # Empty items in a set mean the empty value.
    assert names(cli.ok("get", "pods", "-n", ns, "-l", "tier in (a,,)")) == ["one", "three"]
    assert "the value must be an integer" in cli.fails("get", "pods", "-n", ns,
                                                       "-l", "replicas>two")


def test_yaml_output_round_trips(cli: Cli, apiserver: Any, ns: str) -> None:
    p = pod("a", ns, app="web")
    p.metadata.annotations["note"] = "two\nlines"
    create(apiserver.address, p)
    data = yaml.safe_load(cli.ok("get", "pod", "a", "-n", ns, "-o", "yaml"))
    assert data["kind"] == "Pod" and data["apiVersion"] == "v1"
    parsed, warnings = convert.from_dict(data)
    assert warnings == []
    assert parsed == get(apiserver.address, "Pod", "a", ns)


def test_json_and_name_output(cli: Cli, apiserver: Any, ns: str) -> None:
    import json

    create(apiserver.address, pod("a", ns), pod("b", ns))
    one = json.loads(cli.ok("get", "pod", "a", "-n", ns, "-o", "json"))
    assert one["kind"] == "Pod" and one["metadata"]["name"] == "a"
    listed = json.loads(cli.ok("get", "pods", "-n", ns, "-o", "json"))
    assert listed["kind"] == "List"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["a", "b"]
    assert cli.ok("get", "pods", "-n", ns, "-o", "name") == "pod/a\npod/b\n"


def test_all_namespaces(cli: Cli, apiserver: Any, ns: str) -> None:
    other = namespace(apiserver.address)
    create(apiserver.address, pod("x", ns), pod("y", other))
    out = cli.ok("get", "pods", "-A")
    assert out.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"]
    rows = {tuple(line.split()[:2]) for line in out.splitlines()[1:]}
    assert {(ns, "x"), (other, "y")} <= rows


def test_several_kinds_print_with_kind_prefixes(cli: Cli, apiserver: Any, ns: str) -> None:
    cm = core_pb2.ConfigMap()
    cm.metadata.name, cm.metadata.namespace = "settings", ns
    cm.data["a"] = "1"
    create(apiserver.address, pod("a", ns), cm)
    out = cli.ok("get", "po,cm", "-n", ns)
    tables = out.split("\n\n")
    assert len(tables) == 2
    assert names(tables[0]) == ["pod/a"]
    assert names(tables[1]) == ["configmap/settings"]


def test_missing_object_is_one_line_and_exit_1(cli: Cli, ns: str) -> None:
    result = cli("get", "pods", "x", "-n", ns)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == 'Error from server (NotFound): pods "x" not found\n'


def test_unknown_type_is_a_clear_error(cli: Cli) -> None:
    result = cli("get", "frobnicators")
    assert result.returncode == 1
    assert 'the server doesn\'t have a resource type "frobnicators"' in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_empty_namespace_says_so(cli: Cli, ns: str) -> None:
    result = cli("get", "deployments", "-n", ns)
    assert result.returncode == 0 and result.stdout == ""
    assert result.stderr == f"No resources found in {ns} namespace.\n"


def test_watch_prints_a_later_change(cli: Cli, apiserver: Any, ns: str,
                                     running: list[Running]) -> None:
    create(apiserver.address, pod("first", ns))
    watch = cli.start("get", "pods", "-n", ns, "-w")
    running.append(watch)
    header = watch.next_line(timeout=20)
    assert header.split()[0] == "NAME"
    assert watch.next_line(timeout=10).split()[0] == "first"
    create(apiserver.address, pod("second", ns))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = watch.next_line(timeout=max(0.1, deadline - time.monotonic()))
        if line.split()[0] == "second":
            assert line.split()[1:3] == ["0/1", "Pending"]
            break
    else:
        pytest.fail("the watch never printed the new pod")
    assert watch.proc.poll() is None  # still watching


# ---- describe ----


def test_describe_shows_the_pod_and_its_events(cli: Cli, apiserver: Any, ns: str) -> None:
    (created,) = create(apiserver.address, pod("web", ns, app="web"))
    ev = core_pb2.Event(
        type="Warning", reason="BackOff", count=3, message="Back-off restarting failed container"
    )
    ev.metadata.name, ev.metadata.namespace = "web.backoff", ns
    ref = ev.involved_object
    ref.kind, ref.name, ref.namespace = "Pod", "web", ns
    ref.uid = created.metadata.uid  # type: ignore[attr-defined]
    ev.source.component = "kubelet"
    now = time.time()
    ev.first_timestamp.FromSeconds(int(now) - 600)
    ev.last_timestamp.FromSeconds(int(now) - 60)
    create(apiserver.address, ev)
    out = cli.ok("describe", "pod", "web", "-n", ns)
    lines = out.splitlines()
    assert lines[0].split() == ["Name:", "web"]
    assert lines[1].split() == ["Namespace:", ns]
    assert "Labels:" in out and "app=web" in out
    assert any(line.split() == ["Image:", "busybox"] for line in lines)
    events = lines[lines.index("Events:") :]
    assert events[1].split() == ["Type", "Reason", "Age", "From", "Message"]
    row = events[3].split()
    assert row[:2] == ["Warning", "BackOff"]
    assert "(x3 over 10m)" in events[3] and "kubelet" in row
    assert events[3].endswith("Back-off restarting failed container")
    # By prefix, as kubectl: `describe pod we` finds `web`.
    assert cli.ok("describe", "pods", "we", "-n", ns).splitlines()[0].split() == ["Name:", "web"]


def test_describe_without_events_and_missing(cli: Cli, apiserver: Any, ns: str) -> None:
    cm = core_pb2.ConfigMap()
    cm.metadata.name, cm.metadata.namespace = "cfg", ns
    cm.data["key"] = "value"
    create(apiserver.address, cm)
    out = cli.ok("describe", "cm", "cfg", "-n", ns)
    assert "key:\n----\nvalue\n" in out
    assert out.splitlines()[-1].split() == ["Events:", "<none>"]
    result = cli("describe", "cm", "nope", "-n", ns)
    assert result.returncode == 1
    assert 'configmaps "nope" not found' in result.stderr


# ---- api-resources and version ----


def test_api_resources_lists_every_kind(cli: Cli) -> None:
    out = cli.ok("api-resources")
    assert out.splitlines()[0].split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    for kind in kinds.KINDS:
        assert kind.plural in rows
        assert rows[kind.plural][-1] == kind.kind
        assert kind.api_version in rows[kind.plural]
    assert rows["deployments"] == ["deployments", "deploy", "apps/v1", "true", "Deployment"]


def test_version(cli: Cli) -> None:
    lines = cli.ok("version").splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "Client Version",
        "Server Version",
        "etcd Version",
    ]
    assert all(line.split(": ", 1)[1] for line in lines)
    offline = Cli("127.0.0.1:1")
    assert offline.ok("version", "--client").startswith("Client Version: v")
