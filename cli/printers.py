"""What `skiff get` prints: kubectl's tables for every kind, and -o wide|yaml|json|name.

The columns and the computed cells (a pod's STATUS, a job's COMPLETIONS, a service's
PORT(S)) follow kubectl's printers, so a Kubernetes user reads them without
thinking. Everything here is pure: objects in, text out, with `now` injectable so
ages are testable.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from skiff.api import convert, kinds
from skiff.api.conditions import is_true
from skiff.api.meta import meta
from skiff.api.pods import PENDING, is_terminal
from skiff.api.selectors import SelectorError, label_selector_from_proto_like
from skiff.api.v1 import apps_pb2, batch_pb2, coordination_pb2, core_pb2, meta_pb2

OUTPUT_FORMATS = ("wide", "yaml", "json", "name")
NONE = "<none>"

# kubectl's table writer: Go tabwriter with minwidth 6 and padding 3.
TABLE_MIN_WIDTH = 6
TABLE_PADDING = 3

Cells = list[str]


# ---- time ----


def human_duration(seconds: float) -> str:
    """kubectl's HumanDuration: precise when short, coarser as durations grow."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{hours // 24 // 365}y"


def timestamp(ts: Timestamp) -> dt.datetime | None:
    """A message's time, or None when unset (proto3 reads an unset time as the epoch)."""
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime(tzinfo=dt.UTC)


def since(ts: Timestamp, now: dt.datetime) -> str:
    """kubectl's translateTimestampSince: the age of a time, `<unknown>` when unset."""
    when = timestamp(ts)
    if when is None:
        return "<unknown>"
    return human_duration((now - when).total_seconds())


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ---- small shared formatters ----


def format_labels(labels: Mapping[str, str]) -> str:
    """kubectl's labels.FormatLabels: `a=b,c=d` sorted by key, `<none>` when empty."""
    if not labels:
        return NONE
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def format_label_selector(selector: meta_pb2.LabelSelector | None) -> str:
    """kubectl's FormatLabelSelector: `app=web,tier in (a,b)`, `<none>` when empty."""
    if selector is None:
        return NONE
    try:
        text = str(
            label_selector_from_proto_like(selector.match_labels, selector.match_expressions)
        )
    except SelectorError:
        return "<error>"
    return text or NONE


def int_or_string(value: meta_pb2.IntOrString) -> str:
    return value.str_val if value.WhichOneof("value") == "str_val" else str(value.int_val)


def bool_ptr(message: Message, field_name: str, value: bool) -> str:
    """kubectl's printBoolPtr for an optional bool: `<unset>`, `True` or `False`."""
    if not message.HasField(field_name):
        return "<unset>"
    return "True" if value else "False"


def container_cells(containers: Iterable[core_pb2.Container]) -> Cells:
    """The CONTAINERS and IMAGES cells of the workload kinds' wide output."""
    items = list(containers)
    return [",".join(c.name for c in items), ",".join(c.image for c in items)]


# ---- pods ----


def _terminated_reason(state: core_pb2.ContainerStateTerminated, prefix: str = "") -> str:
    if state.reason:
        return prefix + state.reason
    if state.signal:
        return f"{prefix}Signal:{state.signal}"
    return f"{prefix}ExitCode:{state.exit_code}"


def _init_status(pod: core_pb2.Pod) -> str | None:
    """The Init:... reason while init containers run or failed; None once all succeeded."""
    total = len(pod.spec.init_containers)
    for i, status in enumerate(pod.status.init_container_statuses):
        state = status.state
        if state.HasField("terminated") and state.terminated.exit_code == 0:
            continue
        if state.HasField("terminated"):
            return _terminated_reason(state.terminated, "Init:")
        if state.HasField("waiting") and state.waiting.reason not in ("", "PodInitializing"):
            return "Init:" + state.waiting.reason
        return f"Init:{i}/{total}"
    return None


@dataclass
class PodSummary:
    """The READY, STATUS and RESTARTS of a pod as kubectl computes them."""

    ready: int
    total: int
    status: str
    restarts: int
    last_restart: dt.datetime | None


def _later(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    if a is None:
        return b
    return a if b is None or a >= b else b


def summarize_pod(pod: core_pb2.Pod) -> PodSummary:
    reason = pod.status.reason or pod.status.phase or PENDING
    restarts = 0
    last_restart: dt.datetime | None = None
    for status in pod.status.init_container_statuses:
        restarts += status.restart_count
        if status.last_state.HasField("terminated"):
            last_restart = _later(last_restart, timestamp(status.last_state.terminated.finished_at))
    init_reason = _init_status(pod)
    ready = 0
    initialized = is_true(pod.status.conditions, "Initialized")
    if init_reason is not None:
        reason = init_reason
    if init_reason is None or initialized:
        # Once initialized, only the app containers count, as in kubectl.
        restarts, last_restart = 0, None
        has_running = False
        # kubectl walks backwards, so the first container's reason wins.
        for status in reversed(pod.status.container_statuses):
            restarts += status.restart_count
            if status.last_state.HasField("terminated"):
                last_restart = _later(
                    last_restart, timestamp(status.last_state.terminated.finished_at)
                )
            state = status.state
            if state.HasField("waiting") and state.waiting.reason:
                reason = state.waiting.reason
            elif state.HasField("terminated"):
                reason = _terminated_reason(state.terminated)
            elif status.ready and state.HasField("running"):
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if is_true(pod.status.conditions, "Ready") else "NotReady"
    terminal = is_terminal(pod)
    if pod.metadata.HasField("deletion_timestamp"):
        if pod.status.reason == "NodeLost":
            reason = "Unknown"
        elif not terminal:
            reason = "Terminating"
    return PodSummary(ready, len(pod.spec.containers), reason, restarts, last_restart)


def pod_status(pod: core_pb2.Pod) -> str:
    """The STATUS column of `get pods`: CrashLoopBackOff, Init:0/1, Terminating, ..."""
    return summarize_pod(pod).status


def _pod_cells(pod: core_pb2.Pod, now: dt.datetime) -> Cells:
    s = summarize_pod(pod)
    restarts = str(s.restarts)
    if s.restarts and s.last_restart is not None:
        restarts = f"{s.restarts} ({human_duration((now - s.last_restart).total_seconds())} ago)"
    return [
        pod.metadata.name,
        f"{s.ready}/{s.total}",
        s.status,
        restarts,
        since(pod.metadata.creation_timestamp, now),
    ]


def _pod_wide(pod: core_pb2.Pod, now: dt.datetime) -> Cells:
    ip = pod.status.pod_ips[0].ip if pod.status.pod_ips else pod.status.pod_ip
    return [ip or NONE, pod.spec.node_name or NONE]


# ---- workloads ----


def _deployment_cells(d: apps_pb2.Deployment, now: dt.datetime) -> Cells:
    desired = d.spec.replicas if d.spec.HasField("replicas") else 1
    return [
        d.metadata.name,
        f"{d.status.ready_replicas}/{desired}",
        str(d.status.updated_replicas),
        str(d.status.available_replicas),
        since(d.metadata.creation_timestamp, now),
    ]


def _deployment_wide(d: apps_pb2.Deployment, now: dt.datetime) -> Cells:
    return [
        *container_cells(d.spec.template.spec.containers),
        format_label_selector(d.spec.selector),
    ]


def _replicaset_cells(rs: apps_pb2.ReplicaSet, now: dt.datetime) -> Cells:
    desired = rs.spec.replicas if rs.spec.HasField("replicas") else 1
    return [
        rs.metadata.name,
        str(desired),
        str(rs.status.replicas),
        str(rs.status.ready_replicas),
        since(rs.metadata.creation_timestamp, now),
    ]


def _replicaset_wide(rs: apps_pb2.ReplicaSet, now: dt.datetime) -> Cells:
    return [
        *container_cells(rs.spec.template.spec.containers),
        format_label_selector(rs.spec.selector),
    ]


def _daemonset_cells(ds: apps_pb2.DaemonSet, now: dt.datetime) -> Cells:
    st = ds.status
    return [
        ds.metadata.name,
        str(st.desired_number_scheduled),
        str(st.current_number_scheduled),
        str(st.number_ready),
        str(st.updated_number_scheduled),
        str(st.number_available),
        format_labels(ds.spec.template.spec.node_selector),
        since(ds.metadata.creation_timestamp, now),
    ]


def _daemonset_wide(ds: apps_pb2.DaemonSet, now: dt.datetime) -> Cells:
    return [
        *container_cells(ds.spec.template.spec.containers),
        format_label_selector(ds.spec.selector),
    ]


def job_status(job: batch_pb2.Job) -> str:
    """The STATUS column of `get jobs`, in recent kubectl's order of precedence."""
    conditions = job.status.conditions
    if is_true(conditions, "Complete"):
        return "Complete"
    if is_true(conditions, "Failed"):
        return "Failed"
    if job.metadata.HasField("deletion_timestamp"):
        return "Terminating"
    for type_ in ("Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if is_true(conditions, type_):
            return type_
    return "Running"


def _job_completions(job: batch_pb2.Job) -> str:
    succeeded = job.status.succeeded
    if job.spec.HasField("completions"):
        return f"{succeeded}/{job.spec.completions}"
    parallelism = job.spec.parallelism if job.spec.HasField("parallelism") else 0
    if parallelism > 1:
        return f"{succeeded}/1 of {parallelism}"
    return f"{succeeded}/1"


def _job_duration(job: batch_pb2.Job, now: dt.datetime) -> str:
    start = timestamp(job.status.start_time)
    if start is None:
        return ""
    end = timestamp(job.status.completion_time) or now
    return human_duration((end - start).total_seconds())


def _job_cells(job: batch_pb2.Job, now: dt.datetime) -> Cells:
    return [
        job.metadata.name,
        job_status(job),
        _job_completions(job),
        _job_duration(job, now),
        since(job.metadata.creation_timestamp, now),
    ]


def _job_wide(job: batch_pb2.Job, now: dt.datetime) -> Cells:
    return [
        *container_cells(job.spec.template.spec.containers),
        format_label_selector(job.spec.selector),
    ]


def _cronjob_cells(cj: batch_pb2.CronJob, now: dt.datetime) -> Cells:
    last = (
        since(cj.status.last_schedule_time, now)
        if timestamp(cj.status.last_schedule_time)
        else NONE
    )
    zone = cj.spec.time_zone if cj.spec.HasField("time_zone") else NONE
    return [
        cj.metadata.name,
        cj.spec.schedule,
        zone,
        bool_ptr(cj.spec, "suspend", cj.spec.suspend),
        str(len(cj.status.active)),
        last,
        since(cj.metadata.creation_timestamp, now),
    ]


def _cronjob_wide(cj: batch_pb2.CronJob, now: dt.datetime) -> Cells:
    job_spec = cj.spec.job_template.spec
    selector = job_spec.selector if job_spec.HasField("selector") else None
    return [*container_cells(job_spec.template.spec.containers), format_label_selector(selector)]


# ---- services and endpoints ----


def service_ports(ports: Iterable[core_pb2.ServicePort]) -> str:
    """`80/TCP`, or `80:30007/TCP` with a node port, comma-joined."""
    pieces = []
    for p in ports:
        protocol = p.protocol or "TCP"
        pieces.append(
            f"{p.port}:{p.node_port}/{protocol}" if p.node_port else f"{p.port}/{protocol}"
        )
    return ",".join(pieces)


def _load_balancer_ips(svc: core_pb2.Service, wide: bool) -> str:
    ips = [i.ip or i.hostname for i in svc.status.load_balancer.ingress if i.ip or i.hostname]
    text = ",".join(ips)
    if not wide and len(text) > 16:  # kubectl shortens long ingress lists in narrow output
        text = text[:13] + "..."
    return text


def service_external_ip(svc: core_pb2.Service, wide: bool = False) -> str:
    kind = svc.spec.type or "ClusterIP"
    external = list(svc.spec.external_ips)
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or NONE
    if kind == "LoadBalancer":
        lb = _load_balancer_ips(svc, wide)
        if external:
            return ",".join([*(lb.split(",") if lb else []), *external])
        return lb or "<pending>"
    if kind == "ExternalName":
        return svc.spec.external_name
    return "<unknown>"


def _service_cells(svc: core_pb2.Service, now: dt.datetime, wide: bool = False) -> Cells:
    cluster_ip = svc.spec.cluster_ips[0] if svc.spec.cluster_ips else svc.spec.cluster_ip
    return [
        svc.metadata.name,
        svc.spec.type or "ClusterIP",
        cluster_ip or NONE,
        service_external_ip(svc, wide),
        service_ports(svc.spec.ports) or NONE,
        since(svc.metadata.creation_timestamp, now),
    ]


def _service_wide(svc: core_pb2.Service, now: dt.datetime) -> Cells:
    return [format_labels(svc.spec.selector)]


def format_endpoints(
    ep: core_pb2.Endpoints, port_names: set[str] | None = None, limit: int = 3
) -> str:
    """`ip:port,...` of the ready addresses, the first `limit` then `+ N more...`; as
    kubectl's formatEndpoints, `<none>` only without subsets (subsets holding no ready
    address print as nothing)."""
    if not ep.subsets:
        return NONE
    shown: list[str] = []
    count = 0
    for subset in ep.subsets:
        addresses = [a.ip for a in subset.addresses]
        if not subset.ports:  # headless services may have no ports
            targets = addresses
        else:
            targets = [
                _host_port(ip, p.port)
                for p in subset.ports
                if port_names is None or p.name in port_names
                for ip in addresses
            ]
        count += len(targets)
        shown.extend(targets[: max(0, limit - len(shown))])
    text = ",".join(shown)
    if count > limit:
        return f"{text} + {count - limit} more..."
    return text


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _endpoints_cells(ep: core_pb2.Endpoints, now: dt.datetime) -> Cells:
    return [ep.metadata.name, format_endpoints(ep), since(ep.metadata.creation_timestamp, now)]


# ---- configuration, namespaces, nodes, events, leases ----


def _secret_cells(s: core_pb2.Secret, now: dt.datetime) -> Cells:
    return [
        s.metadata.name,
        s.type or "Opaque",
        str(len(s.data)),
        since(s.metadata.creation_timestamp, now),
    ]


def _configmap_cells(cm: core_pb2.ConfigMap, now: dt.datetime) -> Cells:
    return [
        cm.metadata.name,
        str(len(cm.data) + len(cm.binary_data)),
        since(cm.metadata.creation_timestamp, now),
    ]


def _namespace_cells(ns: core_pb2.Namespace, now: dt.datetime) -> Cells:
    return [
        ns.metadata.name,
        ns.status.phase or "Active",
        since(ns.metadata.creation_timestamp, now),
    ]


def node_status(node: core_pb2.Node) -> str:
    """`Ready`, `NotReady` or `Unknown` (no Ready condition), plus `,SchedulingDisabled`."""
    parts = [
        ("Ready" if c.status == "True" else "NotReady")
        for c in node.status.conditions
        if c.type == "Ready"
    ][:1] or ["Unknown"]
    if node.spec.unschedulable:
        parts.append("SchedulingDisabled")
    return ",".join(parts)


def node_roles(node: core_pb2.Node) -> list[str]:
    roles = set()
    for key, value in node.metadata.labels.items():
        if key.startswith("node-role.kubernetes.io/") and key.split("/", 1)[1]:
            roles.add(key.split("/", 1)[1])
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return sorted(roles)


def node_address(node: core_pb2.Node, type_: str) -> str:
    return next((a.address for a in node.status.addresses if a.type == type_), NONE)


def _node_cells(node: core_pb2.Node, now: dt.datetime) -> Cells:
    return [
        node.metadata.name,
        node_status(node),
        ",".join(node_roles(node)) or NONE,
        since(node.metadata.creation_timestamp, now),
        node.status.node_info.kubelet_version,
    ]


def _node_wide(node: core_pb2.Node, now: dt.datetime) -> Cells:
    info = node.status.node_info
    return [
        node_address(node, "InternalIP"),
        node_address(node, "ExternalIP"),
        info.os_image or "<unknown>",
        info.kernel_version or "<unknown>",
        info.container_runtime_version or "<unknown>",
    ]


def event_times(ev: core_pb2.Event, now: dt.datetime) -> tuple[str, str]:
    """(last seen, first seen) ages of an event, falling back as kubectl does."""
    first = since(ev.first_timestamp, now)
    if timestamp(ev.first_timestamp) is None:
        first = since(ev.event_time, now)
    last = since(ev.last_timestamp, now) if timestamp(ev.last_timestamp) else first
    return last, first


def event_source(ev: core_pb2.Event) -> str:
    component, host = ev.source.component, ev.source.host
    if not component:
        component, host = ev.reporting_component, ev.reporting_instance
    return f"{component}, {host}" if host else component


def event_object(ev: core_pb2.Event) -> str:
    ref = ev.involved_object
    kind = ref.kind.lower()
    return f"{kind}/{ref.name}" if ref.name else kind


def _event_cells(ev: core_pb2.Event, now: dt.datetime) -> Cells:
    last, _ = event_times(ev, now)
    return [last, ev.type, ev.reason, event_object(ev), ev.message.strip()]


def _event_wide_cells(ev: core_pb2.Event, now: dt.datetime) -> Cells:
    last, first = event_times(ev, now)
    return [
        last,
        ev.type,
        ev.reason,
        event_object(ev),
        ev.involved_object.field_path,
        event_source(ev),
        ev.message.strip(),
        first,
        str(ev.count or 1),
        ev.metadata.name,
    ]


def _lease_cells(lease: coordination_pb2.Lease, now: dt.datetime) -> Cells:
    return [
        lease.metadata.name,
        lease.spec.holder_identity,
        since(lease.metadata.creation_timestamp, now),
    ]


# ---- the table of tables ----

RowFn = Callable[[Any, dt.datetime], Cells]


@dataclass(frozen=True)
class TableSpec:
    headers: tuple[str, ...]
    cells: RowFn
    wide_headers: tuple[str, ...] = ()
    wide_cells: RowFn | None = None
    # The wide table may differ from the narrow one beyond appended columns (events).
    wide_replaces: bool = False
    name_column: str | None = "NAME"


_WORKLOAD_WIDE = ("CONTAINERS", "IMAGES", "SELECTOR")

TABLES: dict[str, TableSpec] = {
    "Pod": TableSpec(
        ("NAME", "READY", "STATUS", "RESTARTS", "AGE"), _pod_cells, ("IP", "NODE"), _pod_wide
    ),
    "Deployment": TableSpec(
        ("NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"),
        _deployment_cells,
        _WORKLOAD_WIDE,
        _deployment_wide,
    ),
    "ReplicaSet": TableSpec(
        ("NAME", "DESIRED", "CURRENT", "READY", "AGE"),
        _replicaset_cells,
        _WORKLOAD_WIDE,
        _replicaset_wide,
    ),
    "DaemonSet": TableSpec(
        ("NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"),
        _daemonset_cells,
        _WORKLOAD_WIDE,
        _daemonset_wide,
    ),
    "Job": TableSpec(
        ("NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"), _job_cells, _WORKLOAD_WIDE, _job_wide
    ),
    "CronJob": TableSpec(
        ("NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"),
        _cronjob_cells,
        _WORKLOAD_WIDE,
        _cronjob_wide,
    ),
    "Service": TableSpec(
        ("NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"),
        _service_cells,
        ("SELECTOR",),
        _service_wide,
    ),
    "Endpoints": TableSpec(("NAME", "ENDPOINTS", "AGE"), _endpoints_cells),
    "Secret": TableSpec(("NAME", "TYPE", "DATA", "AGE"), _secret_cells),
    "ConfigMap": TableSpec(("NAME", "DATA", "AGE"), _configmap_cells),
    "Namespace": TableSpec(("NAME", "STATUS", "AGE"), _namespace_cells),
    "Node": TableSpec(
        ("NAME", "STATUS", "ROLES", "AGE", "VERSION"),
        _node_cells,
        ("INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"),
        _node_wide,
    ),
    "Event": TableSpec(
        ("LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"),
        _event_cells,
        (
            "LAST SEEN",
            "TYPE",
            "REASON",
            "OBJECT",
            "SUBOBJECT",
            "SOURCE",
            "MESSAGE",
            "FIRST SEEN",
            "COUNT",
            "NAME",
        ),
        _event_wide_cells,
        wide_replaces=True,
        name_column=None,
    ),
    "Lease": TableSpec(("NAME", "HOLDER", "AGE"), _lease_cells),
}


def _generic_cells(obj: Any, now: dt.datetime) -> Cells:
    return [obj.metadata.name, since(obj.metadata.creation_timestamp, now)]


def table_spec(kind: kinds.Kind) -> TableSpec:
    return TABLES.get(kind.kind) or TableSpec(("NAME", "AGE"), _generic_cells)


@dataclass
class PrintOptions:
    """How `get` prints: the -o format and the flags that add or change columns."""

    output: str = ""  # "" (table), "wide", "yaml", "json" or "name"
    all_namespaces: bool = False  # a NAMESPACE column for namespaced kinds
    show_labels: bool = False
    with_kind: bool = False  # NAME cells as `pod/x`, when several kinds are printed
    no_headers: bool = False
    now: dt.datetime | None = None

    def time(self) -> dt.datetime:
        return self.now or utc_now()


def headers(kind: kinds.Kind, options: PrintOptions) -> list[str]:
    spec = table_spec(kind)
    wide = options.output == "wide"
    cols = list(spec.headers)
    if wide and spec.wide_cells:
        cols = list(spec.wide_headers) if spec.wide_replaces else cols + list(spec.wide_headers)
    if options.all_namespaces and kind.namespaced:
        cols.insert(0, "NAMESPACE")
    if options.show_labels:
        cols.append("LABELS")
    return cols


def row(kind: kinds.Kind, obj: Message, options: PrintOptions) -> Cells:
    """The cells of one object's row, matching `headers(kind, options)`."""
    spec = table_spec(kind)
    now = options.time()
    wide = options.output == "wide"
    # Services are the one kind whose narrow cells depend on wide (EXTERNAL-IP's length).
    cells = (
        _service_cells(obj, now, wide)
        if isinstance(obj, core_pb2.Service)
        else spec.cells(obj, now)
    )
    if wide and spec.wide_cells:
        extra = spec.wide_cells(obj, now)
        cells = extra if spec.wide_replaces else cells + extra
    metadata = meta(obj)
    if options.with_kind and spec.name_column:
        index = headers(kind, PrintOptions(output=options.output)).index(spec.name_column)
        cells[index] = f"{kind.qualified}/{cells[index]}"
    if options.all_namespaces and kind.namespaced:
        cells.insert(0, metadata.namespace)
    if options.show_labels:
        cells.append(format_labels(metadata.labels))
    return cells


# ---- text tables (Go's tabwriter) ----


def tabwrite(text: str, *, min_width: int = 0, padding: int = 2) -> str:
    """Aligns tab-separated cells as Go's text/tabwriter does, which kubectl uses.

    A column block is a run of consecutive lines that all have a cell in that column
    (a cell is text ended by a tab; what follows a line's last tab is not a cell);
    the block is as wide as its widest cell plus `padding`. Reproducing this exactly
    is what makes `describe` line up like kubectl's, including its quirks.
    """
    lines = [line.split("\t") for line in text.split("\n")]
    widths: list[list[int]] = [[0] * (len(cells) - 1) for cells in lines]

    def layout(first: int, last: int, column: int) -> None:
        i = first
        while i < last:
            if len(lines[i]) - 1 <= column:
                i += 1
                continue
            j = i
            while j < last and len(lines[j]) - 1 > column:
                j += 1
            width = max(min_width, *(len(lines[k][column]) + padding for k in range(i, j)))
            for k in range(i, j):
                widths[k][column] = width
            layout(i, j, column + 1)
            i = j

    layout(0, len(lines), 0)
    out = []
    for cells, line_widths in zip(lines, widths, strict=True):
        out.append(
            "".join(c.ljust(w) for c, w in zip(cells, line_widths, strict=False)) + cells[-1]
        )
    return "\n".join(out)


def columns(rows: Sequence[Sequence[str]]) -> str:
    """Rows of cells as plain aligned columns, three spaces apart (the small tables of
    `token list`, `config get-contexts`, `cluster list`, `auth whoami`)."""
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                   + "\n" for r in rows)


@dataclass
class TableWriter:
    """Renders rows of cells as kubectl's tables; remembers column widths across calls so
    that rows printed later (by `get --watch`) line up with the first table."""

    widths: list[int] = field(default_factory=list)

    def render(self, rows: Sequence[Sequence[str]]) -> str:
        if not rows:
            return ""
        columns = max(len(r) for r in rows)
        widths = self.widths + [0] * (columns - len(self.widths))
        for r in rows:
            for i, cell in enumerate(r[:-1]):
                widths[i] = max(widths[i], TABLE_MIN_WIDTH, len(cell) + TABLE_PADDING)
        self.widths = widths
        lines = [
            "".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=False)) + r[-1] for r in rows
        ]
        return "\n".join(lines) + "\n"


def table(
    kind: kinds.Kind,
    objects: Iterable[Message],
    options: PrintOptions,
    writer: TableWriter | None = None,
) -> str:
    rows = [] if options.no_headers else [headers(kind, options)]
    rows += [row(kind, obj, options) for obj in objects]
    return (writer or TableWriter()).render(rows)


# ---- -o name, yaml, json ----


def name_of(obj: Message) -> str:
    """`-o name`: `pod/x`, `deployment.apps/web`."""
    return f"{kinds.by_message(obj).qualified}/{meta(obj).name}"


def as_list(objects: Iterable[Message]) -> dict[str, Any]:
    """Several objects as kubectl prints them: one `kind: List`."""
    return {
        "apiVersion": "v1",
        "items": [convert.to_dict(o) for o in objects],
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    }


def document(objects: Sequence[Message], single: bool) -> dict[str, Any]:
    """The one object itself when a single object was asked for by name, else a List."""
    if single and len(objects) == 1:
        return convert.to_dict(objects[0])
    return as_list(objects)


class _Dumper(yaml.SafeDumper):
    """SafeDumper that writes multi-line strings as `|` blocks, as kubectl does (a
    last-applied-configuration annotation or a config file in a ConfigMap stays readable)."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(data: dict[str, Any], output: str) -> str:
    if output == "json":
        return json.dumps(data, indent=4, ensure_ascii=False) + "\n"
    # Never fold long lines: kubectl prints each value on one line.
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=2**31 - 1)


def format_objects(
    groups: Sequence[tuple[kinds.Kind, Sequence[Message]]],
    options: PrintOptions,
    *,
    single: bool = False,
) -> str:
    """Everything `get` prints on stdout for these objects, grouped by kind in the order
    asked; tables of several kinds are separated by a blank line."""
    if options.output in ("yaml", "json"):
        objects = [o for _, objs in groups for o in objs]
        return dump(document(objects, single), options.output)
    if options.output == "name":
        return "".join(f"{name_of(o)}\n" for _, objs in groups for o in objs)
    tables = [table(kind, objs, options) for kind, objs in groups if objs]
    return "\n".join(tables)


def no_resources_message(namespace: str | None) -> str:
    """kubectl's wording when nothing matched; `namespace` None for cluster-wide reads."""
    if namespace:
        return f"No resources found in {namespace} namespace."
    return "No resources found"
