"""What `skiff get` and `skiff describe` print, for hand-built objects and a fixed clock."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import yaml

from cli import describe, printers
from cli.commands.get import parse_targets
from cli.errors import CliError
from skiff.api import convert, kinds
from skiff.api.v1 import apps_pb2, batch_pb2, coordination_pb2, core_pb2

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)


def ago(ts: object, seconds: float) -> None:
    ts.FromDatetime(NOW - dt.timedelta(seconds=seconds))  # type: ignore[attr-defined]


def options(**kw: object) -> printers.PrintOptions:
    return printers.PrintOptions(now=NOW, **kw)  # type: ignore[arg-type]


def cells(obj: object, **kw: object) -> list[str]:
    return printers.row(kinds.by_message(obj), obj, options(**kw))  # type: ignore[arg-type]


# ---- ages ----


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (5, "5s"),
        (119, "119s"),
        (120, "2m"),
        (182, "3m2s"),
        (599, "9m59s"),
        (600, "10m"),
        (3 * 3600 - 1, "179m"),
        (4 * 3600, "4h"),
        (4 * 3600 + 30 * 60, "4h30m"),
        (8 * 3600 + 59, "8h"),
        (47 * 3600, "47h"),
        (5 * 86400, "5d"),
        (5 * 86400 + 3 * 3600, "5d3h"),
        (10 * 86400 + 3600, "10d"),
        (729 * 86400, "729d"),
        (3 * 365 * 86400, "3y"),
        (2 * 365 * 86400 + 5 * 86400, "2y5d"),
        (9 * 365 * 86400 + 40 * 86400, "9y"),
    ],
)
def test_human_duration_matches_kubectl(seconds: float, text: str) -> None:
    assert printers.human_duration(seconds) == text


def test_age_of_unset_time_is_unknown() -> None:
    pod = core_pb2.Pod()
    assert printers.since(pod.metadata.creation_timestamp, NOW) == "<unknown>"


# ---- pods ----


def pod(name: str = "web", phase: str = "Running", *containers: str) -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.metadata.name, p.metadata.namespace = name, "default"
    ago(p.metadata.creation_timestamp, 300)
    for c in containers or ("app",):
        p.spec.containers.add(name=c, image="nginx")
    p.status.phase = phase
    return p


def running(p: core_pb2.Pod, name: str, ready: bool = True) -> core_pb2.ContainerStatus:
    status = p.status.container_statuses.add(name=name, ready=ready)
    ago(status.state.running.started_at, 60)
    return status


def test_running_pod_row() -> None:
    p = pod("web", "Running", "a", "b")
    running(p, "a")
    running(p, "b", ready=False)
    assert cells(p) == ["web", "1/2", "Running", "0", "5m"]


def test_pod_without_phase_is_pending() -> None:
    p = pod(phase="")
    assert printers.pod_status(p) == "Pending"


@pytest.mark.parametrize(
    "reason", ["CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "ContainerCreating"]
)
def test_waiting_reason_is_the_status(reason: str) -> None:
    p = pod(phase="Pending")
    p.status.container_statuses.add(name="app").state.waiting.reason = reason
    assert printers.pod_status(p) == reason


def test_terminated_container_reasons() -> None:
    p = pod(phase="Succeeded")
    st = p.status.container_statuses.add(name="app").state.terminated
    st.reason, st.exit_code = "Completed", 0
    assert printers.pod_status(p) == "Completed"
    st.reason, st.exit_code = "", 3
    assert printers.pod_status(p) == "ExitCode:3"
    st.signal = 9
    assert printers.pod_status(p) == "Signal:9"


def test_first_container_reason_wins() -> None:
    p = pod("web", "Running", "a", "b")
    p.status.container_statuses.add(name="a").state.waiting.reason = "CrashLoopBackOff"
    p.status.container_statuses.add(name="b").state.terminated.reason = "Error"
    assert printers.pod_status(p) == "CrashLoopBackOff"


def test_completed_with_a_running_container_shows_running_or_not_ready() -> None:
    p = pod("web", "Running", "a", "b")
    p.status.container_statuses.add(name="a").state.terminated.reason = "Completed"
    running(p, "b")
    assert printers.pod_status(p) == "NotReady"
    p.status.conditions.add(type="Ready", status="True")
    assert printers.pod_status(p) == "Running"


def test_init_containers() -> None:
    p = pod(phase="Pending")
    p.spec.init_containers.add(name="i1")
    p.spec.init_containers.add(name="i2")
    p.status.init_container_statuses.add(name="i1").state.terminated.exit_code = 0
    second = p.status.init_container_statuses.add(name="i2")
    ago(second.state.running.started_at, 5)
    assert printers.pod_status(p) == "Init:1/2"
    second.state.ClearField("running")
    second.state.waiting.reason = "ErrImagePull"
    assert printers.pod_status(p) == "Init:ErrImagePull"
    second.state.waiting.reason = "PodInitializing"
    assert printers.pod_status(p) == "Init:1/2"
    second.state.ClearField("waiting")
    second.state.terminated.exit_code = 1
    second.state.terminated.reason = "Error"
    assert printers.pod_status(p) == "Init:Error"
    second.state.terminated.reason = ""
    assert printers.pod_status(p) == "Init:ExitCode:1"


def test_pod_being_deleted_is_terminating_unless_finished() -> None:
    p = pod()
    running(p, "app")
    ago(p.metadata.deletion_timestamp, -30)
    assert printers.pod_status(p) == "Terminating"
    p.status.phase = "Succeeded"
    p.status.ClearField("container_statuses")
    assert printers.pod_status(p) == "Succeeded"


def test_pod_reason_overrides_phase() -> None:
    p = pod(phase="Failed")
    p.status.reason = "Evicted"
    assert printers.pod_status(p) == "Evicted"


def test_restarts_show_how_long_ago() -> None:
    p = pod()
    status = running(p, "app")
    status.restart_count = 4
    ago(status.last_state.terminated.finished_at, 125)
    assert cells(p)[3] == "4 (2m5s ago)"


def test_pod_wide_columns() -> None:
    p = pod()
    p.spec.node_name = "node-1"
    p.status.pod_ip = "10.1.0.7"
    assert printers.headers(kinds.by_kind("Pod"), options(output="wide"))[-2:] == ["IP", "NODE"]
    assert cells(p, output="wide")[-2:] == ["10.1.0.7", "node-1"]
    assert cells(pod(), output="wide")[-2:] == ["<none>", "<none>"]


# ---- workloads ----


def test_deployment_row_and_wide() -> None:
    d = apps_pb2.Deployment()
    d.metadata.name = "web"
    ago(d.metadata.creation_timestamp, 4 * 3600)
    d.spec.replicas = 3
    d.spec.selector.match_labels["app"] = "web"
    d.spec.template.spec.containers.add(name="nginx", image="nginx:1.25")
    d.spec.template.spec.containers.add(name="side", image="busybox")
    d.status.ready_replicas, d.status.updated_replicas, d.status.available_replicas = 2, 3, 2
    assert cells(d) == ["web", "2/3", "3", "2", "4h"]
    assert cells(d, output="wide")[-3:] == ["nginx,side", "nginx:1.25,busybox", "app=web"]


def test_replicaset_and_daemonset_rows() -> None:
    rs = apps_pb2.ReplicaSet()
    rs.metadata.name = "web-abc"
    ago(rs.metadata.creation_timestamp, 5)
    rs.spec.replicas = 3
    rs.status.replicas, rs.status.ready_replicas = 3, 1
    assert cells(rs) == ["web-abc", "3", "3", "1", "5s"]
    ds = apps_pb2.DaemonSet()
    ds.metadata.name = "agent"
    ago(ds.metadata.creation_timestamp, 5 * 86400)
    ds.spec.template.spec.node_selector["disk"] = "ssd"
    st = ds.status
    st.desired_number_scheduled = st.current_number_scheduled = st.number_ready = 2
    st.updated_number_scheduled, st.number_available = 2, 1
    assert cells(ds) == ["agent", "2", "2", "2", "2", "1", "disk=ssd", "5d"]


def job(**status: int) -> batch_pb2.Job:
    j = batch_pb2.Job()
    j.metadata.name = "pi"
    ago(j.metadata.creation_timestamp, 600)
    for key, value in status.items():
        setattr(j.status, key, value)
    return j


def test_job_status_column() -> None:
    j = job(active=1)
    assert printers.job_status(j) == "Running"
    j.status.conditions.add(type="Suspended", status="True")
    assert printers.job_status(j) == "Suspended"
    j.status.conditions.add(type="Failed", status="True")
    assert printers.job_status(j) == "Failed"
    j.status.conditions.add(type="Complete", status="True")
    assert printers.job_status(j) == "Complete"
    k = job()
    k.status.conditions.add(type="Complete", status="False")
    assert printers.job_status(k) == "Running"


def test_job_completions_and_duration() -> None:
    j = job(succeeded=2)
    j.spec.completions = 5
    ago(j.status.start_time, 90)
    assert cells(j) == ["pi", "Running", "2/5", "90s", "10m"]
    ago(j.status.completion_time, 30)
    assert cells(j)[3] == "60s"
    k = job(succeeded=0)
    k.spec.parallelism = 3
    assert cells(k)[2:4] == ["0/1 of 3", ""]


def test_cronjob_row() -> None:
    cj = batch_pb2.CronJob()
    cj.metadata.name = "backup"
    ago(cj.metadata.creation_timestamp, 3 * 86400)
    cj.spec.schedule = "*/5 * * * *"
    assert cells(cj) == ["backup", "*/5 * * * *", "<none>", "<unset>", "0", "<none>", "3d"]
    cj.spec.suspend = False
    cj.spec.time_zone = "Etc/UTC"
    cj.status.active.add(name="backup-1")
    ago(cj.status.last_schedule_time, 62)
    assert cells(cj)[2:6] == ["Etc/UTC", "False", "1", "62s"]


# ---- services and endpoints ----


def service(type_: str = "ClusterIP", *ports: tuple[int, int]) -> core_pb2.Service:
    svc = core_pb2.Service()
    svc.metadata.name = "web"
    ago(svc.metadata.creation_timestamp, 60)
    svc.spec.type = type_
    svc.spec.cluster_ip = "10.96.0.10"
    svc.spec.cluster_ips.append("10.96.0.10")
    for port, node_port in ports:
        svc.spec.ports.add(port=port, node_port=node_port, protocol="TCP")
    return svc


def test_service_rows() -> None:
    assert cells(service("ClusterIP", (80, 0), (443, 0))) == [
        "web",
        "ClusterIP",
        "10.96.0.10",
        "<none>",
        "80/TCP,443/TCP",
        "60s",
    ]
    assert cells(service("NodePort", (80, 30007)))[3:5] == ["<none>", "80:30007/TCP"]
    lb = service("LoadBalancer", (80, 30007))
    assert cells(lb)[3] == "<pending>"
    lb.status.load_balancer.ingress.add(ip="203.0.113.9")
    assert cells(lb)[3] == "203.0.113.9"
    headless = service()
    headless.spec.cluster_ip = "None"
    del headless.spec.cluster_ips[:]
    assert cells(headless)[2:5] == ["None", "<none>", "<none>"]
    ext = service("ExternalName")
    ext.spec.external_name = "db.example.com"
    assert cells(ext)[3] == "db.example.com"


def test_service_wide_shows_selector() -> None:
    svc = service("ClusterIP", (80, 0))
    svc.spec.selector["app"] = "web"
    assert cells(svc, output="wide")[-1] == "app=web"


def test_endpoints_list_three_then_count_the_rest() -> None:
    ep = core_pb2.Endpoints()
    ep.metadata.name = "web"
    ago(ep.metadata.creation_timestamp, 60)
    assert cells(ep)[1] == "<none>"
    subset = ep.subsets.add()
    subset.ports.add(port=80, name="http")
    for i in range(1, 6):
        subset.addresses.add(ip=f"10.0.0.{i}")
    assert cells(ep) == ["web", "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more...", "60s"]


def test_endpoints_as_kubectls_format_endpoints() -> None:
    ep = core_pb2.Endpoints()
    ep.metadata.name = "web"
    # Subsets with no ready address print as nothing: `<none>` is for no subsets at all.
    unready = ep.subsets.add()
    unready.not_ready_addresses.add(ip="10.0.0.9")
    unready.ports.add(port=80)
    assert printers.format_endpoints(ep) == ""
    headless = ep.subsets.add()  # no ports: the addresses alone
    headless.addresses.add(ip="10.0.0.1")
    headless.addresses.add(ip="fd00::1")
    assert printers.format_endpoints(ep) == "10.0.0.1,fd00::1"
    ports = ep.subsets.add()
    ports.addresses.add(ip="fd00::2")
    ports.ports.add(port=80, name="http")
    ports.ports.add(port=9090, name="metrics")
    assert printers.format_endpoints(ep) == "10.0.0.1,fd00::1,[fd00::2]:80 + 1 more..."
    # kubectl lists port-less (headless) addresses whatever port is asked for.
    assert printers.format_endpoints(ep, {"metrics"}) == "10.0.0.1,fd00::1,[fd00::2]:9090"


# ---- configuration, namespaces, nodes, events, leases ----


def test_secret_configmap_namespace_rows() -> None:
    s = core_pb2.Secret(type="Opaque")
    s.metadata.name = "db"
    s.data["user"] = b"a"
    s.data["password"] = b"b"
    assert cells(s)[:3] == ["db", "Opaque", "2"]
    cm = core_pb2.ConfigMap()
    cm.metadata.name = "cfg"
    cm.data["a"] = "1"
    cm.binary_data["b"] = b"\0"
    assert cells(cm)[:2] == ["cfg", "2"]
    ns = core_pb2.Namespace()
    ns.metadata.name = "dev"
    ns.status.phase = "Terminating"
    assert cells(ns)[:2] == ["dev", "Terminating"]


def node(ready: str | None = "True") -> core_pb2.Node:
    n = core_pb2.Node()
    n.metadata.name = "node-1"
    ago(n.metadata.creation_timestamp, 86400 * 2)
    if ready is not None:
        n.status.conditions.add(type="Ready", status=ready)
    n.status.node_info.kubelet_version = "v0.1.0"
    return n


def test_node_status_and_roles() -> None:
    assert cells(node()) == ["node-1", "Ready", "<none>", "2d", "v0.1.0"]
    assert printers.node_status(node("False")) == "NotReady"
    assert printers.node_status(node("Unknown")) == "NotReady"
    cordoned = node(None)
    cordoned.spec.unschedulable = True
    assert printers.node_status(cordoned) == "Unknown,SchedulingDisabled"
    n = node()
    n.metadata.labels["node-role.kubernetes.io/control-plane"] = ""
    n.metadata.labels["kubernetes.io/role"] = "edge"
    assert cells(n)[2] == "control-plane,edge"


def test_node_wide() -> None:
    n = node()
    n.status.addresses.add(type="InternalIP", address="192.168.1.10")
    n.status.node_info.os_image = "Debian 12"
    assert cells(n, output="wide")[5:] == [
        "192.168.1.10",
        "<none>",
        "Debian 12",
        "<unknown>",
        "<unknown>",
    ]


def event(count: int = 1) -> core_pb2.Event:
    ev = core_pb2.Event(
        type="Warning", reason="BackOff", message="Back-off restarting ", count=count
    )
    ev.metadata.name, ev.metadata.namespace = "web.1", "default"
    ev.involved_object.kind, ev.involved_object.name = "Pod", "web"
    ev.source.component = "kubelet"
    ago(ev.first_timestamp, 600)
    ago(ev.last_timestamp, 120)
    return ev


def test_event_rows() -> None:
    kind = kinds.by_kind("Event")
    assert printers.headers(kind, options()) == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert cells(event(5)) == ["2m", "Warning", "BackOff", "pod/web", "Back-off restarting"]
    assert cells(event(5), output="wide") == [
        "2m",
        "Warning",
        "BackOff",
        "pod/web",
        "",
        "kubelet",
        "Back-off restarting",
        "10m",
        "5",
        "web.1",
    ]


def test_lease_row() -> None:
    lease = coordination_pb2.Lease()
    lease.metadata.name = "scheduler"
    lease.spec.holder_identity = "host-a"
    ago(lease.metadata.creation_timestamp, 7)
    assert cells(lease) == ["scheduler", "host-a", "7s"]


# ---- tables ----


def test_table_is_aligned_like_kubectl() -> None:
    a, b = pod("web-1"), pod("a-much-longer-name")
    running(a, "app")
    text = printers.format_objects([(kinds.by_kind("Pod"), [a, b])], options())
    assert text == (
        "NAME                 READY   STATUS    RESTARTS   AGE\n"
        "web-1                1/1     Running   0          5m\n"
        "a-much-longer-name   0/1     Running   0          5m\n"
    )


def test_all_namespaces_show_labels_and_kind_prefix() -> None:
    p = pod()
    p.metadata.labels.update({"b": "2", "a": "1"})
    o = options(all_namespaces=True, show_labels=True, with_kind=True)
    kind = kinds.by_kind("Pod")
    assert printers.headers(kind, o) == [
        "NAMESPACE",
        "NAME",
        "READY",
        "STATUS",
        "RESTARTS",
        "AGE",
        "LABELS",
    ]
    assert printers.row(kind, p, o) == [
        "default",
        "pod/web",
        "0/1",
        "Running",
        "0",
        "5m",
        "a=1,b=2",
    ]
    # Cluster-scoped kinds get no NAMESPACE column.
    assert printers.headers(kinds.by_kind("Node"), o)[0] == "NAME"
    d = apps_pb2.Deployment()
    d.metadata.name = "web"
    assert printers.row(kinds.by_kind("Deployment"), d, o)[1] == "deployment.apps/web"


def test_several_kinds_print_one_table_each_with_a_blank_line_between() -> None:
    text = printers.format_objects(
        [
            (kinds.by_kind("Pod"), [pod()]),
            (kinds.by_kind("Service"), []),
            (kinds.by_kind("ConfigMap"), [core_pb2.ConfigMap()]),
        ],
        options(with_kind=True),
    )
    blocks = text.split("\n\n")
    assert len(blocks) == 2
    assert blocks[0].startswith("NAME") and "pod/web" in blocks[0]
    assert blocks[1].splitlines()[1].startswith("configmap/")


def test_table_writer_remembers_widths_for_later_rows() -> None:
    writer = printers.TableWriter()
    writer.render([["NAME", "AGE"], ["a-long-name", "1s"]])
    assert writer.render([["b", "2s"]]) == "b" + " " * 13 + "2s\n"


def test_tabwrite_aligns_column_blocks_like_go() -> None:
    text = "Name:\tx\nNamespace:\tdefault\nIPs:\n  IP:\t10.0.0.1\n"
    assert printers.tabwrite(text) == (
        "Name:       x\nNamespace:  default\nIPs:\n  IP:  10.0.0.1\n"
    )


def test_no_resources_wording() -> None:
    assert printers.no_resources_message("default") == "No resources found in default namespace."
    assert printers.no_resources_message(None) == "No resources found"


# ---- -o yaml | json | name ----


def test_yaml_of_one_object_round_trips() -> None:
    p = pod()
    running(p, "app")
    p.metadata.annotations["note"] = "line one\nline two\n"
    p.api_version, p.kind = "v1", "Pod"  # as the apiserver returns it
    text = printers.format_objects(
        [(kinds.by_kind("Pod"), [p])], options(output="yaml"), single=True
    )
    data = yaml.safe_load(text)
    assert data["kind"] == "Pod" and data["apiVersion"] == "v1"
    back, warnings = convert.from_dict(data)
    assert warnings == []
    assert back == p


def test_several_objects_are_a_list() -> None:
    text = printers.format_objects(
        [(kinds.by_kind("Pod"), [pod("a"), pod("b")])], options(output="yaml")
    )
    data = yaml.safe_load(text)
    assert list(data) == ["apiVersion", "items", "kind", "metadata"]
    assert data["kind"] == "List" and data["apiVersion"] == "v1"
    assert [i["metadata"]["name"] for i in data["items"]] == ["a", "b"]
    # A list query is a List even when it found one object, as in kubectl.
    one = printers.format_objects([(kinds.by_kind("Pod"), [pod("a")])], options(output="yaml"))
    assert yaml.safe_load(one)["kind"] == "List"


def test_json_is_indented_by_four() -> None:
    text = printers.format_objects(
        [(kinds.by_kind("Pod"), [pod()])], options(output="json"), single=True
    )
    assert text.startswith('{\n    "apiVersion": "v1",\n    "kind": "Pod",')
    assert json.loads(text)["metadata"]["name"] == "web"


def test_output_name() -> None:
    d = apps_pb2.Deployment()
    d.metadata.name = "web"
    text = printers.format_objects(
        [(kinds.by_kind("Pod"), [pod()]), (kinds.by_kind("Deployment"), [d])],
        options(output="name"),
    )
    assert text == "pod/web\ndeployment.apps/web\n"


# ---- arguments of get ----


def test_parse_targets_forms() -> None:
    r = parse_targets(["po", "a", "b"])
    assert [(t.kind.kind, t.names) for t in r.targets] == [("Pod", ["a", "b"])]
    assert not r.with_kind and not r.single
    r = parse_targets(["deploy", "web"])
    assert r.single
    r = parse_targets(["po,svc"])
    assert [t.kind.kind for t in r.targets] == ["Pod", "Service"] and r.with_kind
    r = parse_targets(["pod/a", "svc/b", "pods/c"])
    assert [(t.kind.kind, t.names) for t in r.targets] == [("Pod", ["a", "c"]), ("Service", ["b"])]
    assert r.with_kind
    assert parse_targets(["pod/a"]).single
    r = parse_targets(["all"])
    assert [t.kind.kind for t in r.targets] == [
        "Pod",
        "Service",
        "DaemonSet",
        "Deployment",
        "ReplicaSet",
        "CronJob",
        "Job",
    ]
    assert r.with_kind


@pytest.mark.parametrize("args", [[], ["pods", "pod/x"], ["pod/"], ["nosuchkind"], ["po,,svc"]])
def test_parse_targets_errors(args: list[str]) -> None:
    with pytest.raises(CliError):
        parse_targets(args)


# ---- describe ----


def test_describe_pod() -> None:
    p = pod()
    p.metadata.labels.update({"app": "web", "tier": "front"})
    p.spec.node_name = "node-1"
    p.status.host_ip, p.status.pod_ip = "192.168.1.10", "10.1.0.7"
    p.status.pod_ips.add(ip="10.1.0.7")
    p.metadata.owner_references.add(kind="ReplicaSet", name="web-abc", controller=True)
    c = p.spec.containers[0]
    c.ports.add(container_port=80, protocol="TCP")
    c.resources.limits["memory"].value = "128Mi"
    c.env.add(name="MODE", value="prod")
    c.env.add(name="PASSWORD").value_from.secret_key_ref.MergeFrom(
        core_pb2.SecretKeySelector(name="db", key="password")
    )
    c.volume_mounts.add(name="data", mount_path="/data", read_only=True)
    p.spec.volumes.add(name="data").empty_dir.medium = ""
    status = running(p, "app")
    status.restart_count = 2
    p.status.conditions.add(type="Ready", status="True")
    text = describe.render(p, describe.Context(now=NOW, events=[]))
    lines = text.splitlines()
    assert lines[0] == "Name:         web"
    assert "Node:         node-1/192.168.1.10" in lines
    assert "Labels:       app=web" in lines and "              tier=front" in lines
    assert "Controlled By:  ReplicaSet/web-abc" in lines
    for expected in (
        "    Image:          nginx",
        "    Port:           80/TCP",
        "    State:          Running",
        "    Ready:          True",
        "    Restart Count:  2",
        "      memory:  128Mi",
        "      MODE:      prod",
        "      PASSWORD:  <set to the key 'password' in secret 'db'>  Optional: false",
        "      /data from data (ro)",
        "  Ready   True ",
    ):
        assert expected in lines, expected
    assert "QoS Class:" in text and "Burstable" in text
    assert lines[-1] == "Events:          <none>"


def qos_line(p: core_pb2.Pod) -> str:
    text = describe.render(p, describe.Context(now=NOW, events=[]))
    return next(line for line in text.splitlines() if line.startswith("QoS Class:")).split()[-1]


def test_describe_qos_class_counts_only_cpu_and_memory() -> None:
    """As Kubernetes: a pod that asks only for ephemeral-storage is BestEffort."""
    p = pod()
    p.spec.containers[0].resources.requests["ephemeral-storage"].value = "1Gi"
    assert qos_line(p) == "BestEffort"
    p.spec.containers[0].resources.requests["memory"].value = "64Mi"
    assert qos_line(p) == "Burstable"
    for name in ("cpu", "memory"):
        p.spec.containers[0].resources.requests[name].value = "100m" if name == "cpu" else "64Mi"
        p.spec.containers[0].resources.limits[name].value = "100m" if name == "cpu" else "64Mi"
    assert qos_line(p) == "Guaranteed"
    p.status.qos_class = "Burstable"  # what the kubelet recorded wins
    assert qos_line(p) == "Burstable"


def test_describe_events_section() -> None:
    p = pod()
    single = event(1)
    single.reason, single.type = "Scheduled", "Normal"
    ago(single.last_timestamp, 30)
    text = describe.render(p, describe.Context(now=NOW, events=[single, event(5)]))
    tail = text.splitlines()[-5:]
    assert tail[0] == "Events:"
    assert tail[1].split() == ["Type", "Reason", "Age", "From", "Message"]
    assert tail[2].split() == ["----", "------", "----", "----", "-------"]
    # Sorted by last time seen; repeated events show how often over how long.
    assert tail[3].split() == [
        "Warning",
        "BackOff",
        "2m",
        "(x5",
        "over",
        "10m)",
        "kubelet",
        "Back-off",
        "restarting",
    ]
    assert tail[4].split()[:3] == ["Normal", "Scheduled", "10m"]


def test_describe_deployment() -> None:
    d = apps_pb2.Deployment()
    d.metadata.name, d.metadata.namespace, d.metadata.uid = "web", "default", "u1"
    d.spec.replicas = 3
    d.spec.selector.match_labels["app"] = "web"
    d.spec.template.metadata.labels["app"] = "web"
    d.spec.template.spec.containers.add(name="nginx", image="nginx:1.25")
    d.status.updated_replicas = d.status.replicas = d.status.available_replicas = 3
    d.status.conditions.add(type="Available", status="True", reason="MinimumReplicasAvailable")
    new = apps_pb2.ReplicaSet()
    new.metadata.name = "web-new"
    new.metadata.owner_references.add(kind="Deployment", name="web", uid="u1", controller=True)
    new.spec.template.CopyFrom(d.spec.template)
    new.spec.template.metadata.labels["pod-template-hash"] = "abc"
    new.spec.replicas, new.status.replicas = 3, 3
    old = apps_pb2.ReplicaSet()
    old.CopyFrom(new)
    old.metadata.name = "web-old"
    old.spec.template.spec.containers[0].image = "nginx:1.24"
    old.spec.replicas, old.status.replicas = 1, 1
    text = describe.render(d, describe.Context(now=NOW, events=[], replica_sets=[old, new]))
    lines = text.splitlines()
    assert (
        "Replicas:               3 desired | 3 updated | 3 total | 3 available | 0 unavailable"
    ) in lines
    assert "RollingUpdateStrategy:  25% max unavailable, 25% max surge" in lines
    assert "   nginx:" in lines
    assert any(line.split() == ["Available", "True", "MinimumReplicasAvailable"] for line in lines)
    assert "OldReplicaSets:  web-old (1/1 replicas created)" in lines
    assert "NewReplicaSet:   web-new (3/3 replicas created)" in lines


def test_describe_service_with_endpoints() -> None:
    svc = service("NodePort", (80, 30007))
    svc.metadata.namespace = "default"
    svc.spec.ports[0].name = "http"
    svc.spec.ports[0].target_port.int_val = 8080
    ep = core_pb2.Endpoints()
    subset = ep.subsets.add()
    subset.addresses.add(ip="10.1.0.7")
    subset.ports.add(name="http", port=8080)
    lines = describe.render(svc, describe.Context(now=NOW, endpoints=ep)).splitlines()
    assert "Port:              http  80/TCP" in lines
    assert "TargetPort:        8080/TCP" in lines
    assert "NodePort:          http  30007/TCP" in lines
    assert "Endpoints:         10.1.0.7:8080" in lines


def test_describe_service_as_kubectl() -> None:
    # kubectl 1.32 printed exactly this for the same Service (its endpoints from an
    # EndpointSlice holding the same ready addresses), appProtocol and all.
    svc = service("NodePort", (80, 30080), (9090, 0))
    svc.metadata.namespace = "default"
    svc.metadata.labels["app"] = "web"
    svc.spec.selector["app"] = "web"
    svc.spec.ip_family_policy = "SingleStack"
    svc.spec.ip_families.append("IPv4")
    svc.spec.ports[0].name, svc.spec.ports[1].name = "http", "metrics"
    svc.spec.ports[0].target_port.str_val = "http"
    svc.spec.ports[1].target_port.int_val = 9090
    svc.spec.ports[1].app_protocol = "http"
    svc.spec.session_affinity = "ClientIP"
    svc.spec.external_traffic_policy = svc.spec.internal_traffic_policy = "Cluster"
    ep = core_pb2.Endpoints()
    subset = ep.subsets.add()
    for i in range(1, 5):
        subset.addresses.add(ip=f"10.244.0.{i}")
    subset.ports.add(name="http", port=8080)
    subset.ports.add(name="metrics", port=9090)
    text = describe.render(svc, describe.Context(now=NOW, endpoints=ep, events=[]))
    assert text == (
        "Name:                     web\n"
        "Namespace:                default\n"
        "Labels:                   app=web\n"
        "Annotations:              <none>\n"
        "Selector:                 app=web\n"
        "Type:                     NodePort\n"
        "IP Family Policy:         SingleStack\n"
        "IP Families:              IPv4\n"
        "IP:                       10.96.0.10\n"
        "IPs:                      10.96.0.10\n"
        "Port:                     http  80/TCP\n"
        "TargetPort:               http/TCP\n"
        "NodePort:                 http  30080/TCP\n"
        "Endpoints:                10.244.0.1:8080,10.244.0.2:8080,10.244.0.3:8080 + 1 more...\n"
        "Port:                     metrics  9090/TCP\n"
        "TargetPort:               9090/TCP\n"
        "Endpoints:                10.244.0.1:9090,10.244.0.2:9090,10.244.0.3:9090 + 1 more...\n"
        "Session Affinity:         ClientIP\n"
        "External Traffic Policy:  Cluster\n"
        "Internal Traffic Policy:  Cluster\n"
        "Events:                   <none>\n")


def test_describe_falls_back_to_yaml_for_other_kinds() -> None:
    lease = coordination_pb2.Lease()
    lease.metadata.name, lease.metadata.namespace = "scheduler", "kube-system"
    lease.spec.holder_identity = "host-a"
    text = describe.render(lease, describe.Context(now=NOW))
    assert "Kind:         Lease" in text
    assert "Spec:\n  holderIdentity: host-a\n" in text
    assert "Events" not in text  # not gathered: no section
