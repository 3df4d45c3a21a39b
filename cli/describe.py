"""What `skiff describe` prints: kubectl's human layout of one object and its Events.

Rendering is pure (`render(obj, context)`); `gather` does the reads a layout needs
beyond the object itself (its events, the pods of a controller, a deployment's
replica sets, a service's endpoints, a node's pods and lease).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from cli import printers
from cli.printers import NONE, format_label_selector, format_labels, since, timestamp
from skiff.api import convert, kinds
from skiff.api.meta import meta as object_meta
from skiff.api.pods import FAILED, PENDING, RUNNING, SUCCEEDED, is_terminal, qos_class
from skiff.api.quantity import Quantity, QuantityError, parse_quantity
from skiff.api.resources import pod_limits, pod_requests
from skiff.api.rollout import LAST_APPLIED_ANNOTATION
from skiff.api.v1 import apps_pb2, batch_pb2, coordination_pb2, core_pb2, meta_pb2
from skiff.client import errors
from skiff.client.client import Client

# Annotations kubectl leaves out of describe: large and meant for machines.
SKIP_ANNOTATIONS = frozenset({LAST_APPLIED_ANNOTATION})
MAX_ANNOTATION_LEN = 140
NODE_LEASE_NAMESPACE = "kube-node-lease"


@dataclass
class Context:
    """What a layout needs besides the object; empty lists when not gathered."""

    now: dt.datetime
    events: list[core_pb2.Event] | None = None  # None: do not print an Events section
    pods: list[core_pb2.Pod] = field(default_factory=list)
    replica_sets: list[apps_pb2.ReplicaSet] = field(default_factory=list)
    endpoints: core_pb2.Endpoints | None = None
    lease: coordination_pb2.Lease | None = None


class PrefixWriter:
    """kubectl's PrefixWriter: text at an indentation level, aligned by tabwrite at the end."""

    def __init__(self) -> None:
        self._parts: list[str] = []

    def write(self, level: int, text: str) -> None:
        self._parts.append("  " * level + text)

    def line(self, text: str = "") -> None:
        self._parts.append(text + "\n")

    def text(self) -> str:
        return printers.tabwrite("".join(self._parts), min_width=0, padding=2)


# ---- shared pieces ----


def rfc1123(ts: Timestamp) -> str:
    """kubectl's time format in describe (Go's RFC1123Z), in local time."""
    when = timestamp(ts)
    if when is None:
        return "<unset>"
    return when.astimezone().strftime("%a, %d %b %Y %H:%M:%S %z")


def write_labels(w: PrefixWriter, title: str, labels: Mapping[str, str]) -> None:
    w.write(0, f"{title}:\t")
    if not labels:
        w.line(NONE)
        return
    for i, key in enumerate(sorted(labels)):
        if i:
            w.write(0, "\t")
        w.write(0, f"{key}={labels[key]}\n")


def write_annotations(w: PrefixWriter, title: str, annotations: Mapping[str, str]) -> None:
    w.write(0, f"{title}:\t")
    keys = sorted(k for k in annotations if k not in SKIP_ANNOTATIONS)
    if not keys:
        w.line(NONE)
        return
    for i, key in enumerate(keys):
        if i:
            w.write(0, "\t")
        value = annotations[key].removesuffix("\n")
        if len(value) + len(key) + 2 > MAX_ANNOTATION_LEN or "\n" in value:
            w.write(0, f"{key}:\n")
            for part in value.split("\n"):
                w.write(0, f"\t  {_shorten(part, MAX_ANNOTATION_LEN - 2)}\n")
        else:
            w.write(0, f"{key}: {value}\n")


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def write_head(w: PrefixWriter, meta: meta_pb2.ObjectMeta, namespaced: bool = True) -> None:
    w.write(0, f"Name:\t{meta.name}\n")
    if namespaced:
        w.write(0, f"Namespace:\t{meta.namespace}\n")
    write_labels(w, "Labels", meta.labels)
    write_annotations(w, "Annotations", meta.annotations)


def controller_of(meta: meta_pb2.ObjectMeta) -> meta_pb2.OwnerReference | None:
    return next((r for r in meta.owner_references if r.controller), None)


def write_controlled_by(w: PrefixWriter, meta: meta_pb2.ObjectMeta) -> None:
    ref = controller_of(meta)
    if ref is not None:
        w.write(0, f"Controlled By:\t{ref.kind}/{ref.name}\n")


def write_conditions(w: PrefixWriter, conditions: Sequence[meta_pb2.Condition]) -> None:
    if not conditions:
        return
    w.write(0, "Conditions:\n  Type\tStatus\tReason\n")
    w.write(1, "----\t------\t------\n")
    for c in conditions:
        w.write(1, f"{c.type} \t{c.status}\t{c.reason}\n")


def write_events(w: PrefixWriter, events: Sequence[core_pb2.Event], now: dt.datetime) -> None:
    if not events:
        w.write(0, "Events:\t<none>\n")
        return
    w.write(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n")
    w.write(1, "----\t------\t----\t----\t-------\n")
    for ev in sorted(events, key=_event_time):
        first = since(ev.event_time if timestamp(ev.event_time) else ev.first_timestamp, now)
        age = (
            f"{since(ev.last_timestamp, now)} (x{ev.count} over {first})" if ev.count > 1 else first
        )
        source = ev.source.component or ev.reporting_component
        w.write(1, f"{ev.type}\t{ev.reason}\t{age}\t{source}\t{ev.message.strip()}\n")


def _event_time(ev: core_pb2.Event) -> dt.datetime:
    for ts in (ev.last_timestamp, ev.event_time, ev.first_timestamp):
        when = timestamp(ts)
        if when is not None:
            return when
    return dt.datetime.min.replace(tzinfo=dt.UTC)


# ---- containers, volumes, pod templates ----


def _ports(ports: Iterable[core_pb2.ContainerPort], host: bool) -> str:
    return ", ".join(
        f"{p.host_port if host else p.container_port}/{p.protocol or 'TCP'}" for p in ports
    )


def _write_ports(w: PrefixWriter, c: core_pb2.Container) -> None:
    for label, text in (("Port", _ports(c.ports, False)), ("Host Port", _ports(c.ports, True))):
        if "," in text:
            w.write(2, f"{label}s:\t{text}\n")
        else:
            w.write(2, f"{label}:\t{text or NONE}\n")


def _write_lines(w: PrefixWriter, title: str, values: Iterable[str]) -> None:
    items = list(values)
    if items:
        w.write(2, f"{title}:\n")
        for value in items:
            for part in value.split("\n"):
                w.write(3, f"{part}\n")


def _write_state(w: PrefixWriter, title: str, state: core_pb2.ContainerState) -> None:
    if state.HasField("running"):
        w.write(2, f"{title}:\tRunning\n")
        w.write(3, f"Started:\t{rfc1123(state.running.started_at)}\n")
    elif state.HasField("terminated"):
        t = state.terminated
        w.write(2, f"{title}:\tTerminated\n")
        if t.reason:
            w.write(3, f"Reason:\t{t.reason}\n")
        if t.message:
            w.write(3, f"Message:\t{t.message}\n")
        w.write(3, f"Exit Code:\t{t.exit_code}\n")
        if t.signal > 0:
            w.write(3, f"Signal:\t{t.signal}\n")
        w.write(3, f"Started:\t{rfc1123(t.started_at)}\n")
        w.write(3, f"Finished:\t{rfc1123(t.finished_at)}\n")
    else:
        w.write(2, f"{title}:\tWaiting\n")
        if state.waiting.reason:
            w.write(3, f"Reason:\t{state.waiting.reason}\n")


def _write_resources(w: PrefixWriter, resources: core_pb2.ResourceRequirements) -> None:
    for title, values in (("Limits", resources.limits), ("Requests", resources.requests)):
        if values:
            w.write(2, f"{title}:\n")
            for name in sorted(values):
                w.write(3, f"{name}:\t{values[name].value}\n")


def describe_probe(probe: core_pb2.Probe) -> str:
    attrs = (
        f"delay={probe.initial_delay_seconds}s timeout={probe.timeout_seconds}s "
        f"period={probe.period_seconds}s #success={probe.success_threshold} "
        f"#failure={probe.failure_threshold}"
    )
    if probe.HasField("exec"):
        return f"exec [{' '.join(probe.exec.command)}] {attrs}"
    if probe.HasField("http_get"):
        get = probe.http_get
        port = printers.int_or_string(get.port)
        return f"http-get {(get.scheme or 'HTTP').lower()}://{get.host}:{port}{get.path} {attrs}"
    if probe.HasField("tcp_socket"):
        tcp = probe.tcp_socket
        return f"tcp-socket {tcp.host}:{printers.int_or_string(tcp.port)} {attrs}"
    return f"unknown {attrs}"


def _write_probes(w: PrefixWriter, c: core_pb2.Container) -> None:
    for title, name in (
        ("Liveness", "liveness_probe"),
        ("Readiness", "readiness_probe"),
        ("Startup", "startup_probe"),
    ):
        if c.HasField(name):
            w.write(2, f"{title}:\t{describe_probe(getattr(c, name))}\n")


def _write_env_from(w: PrefixWriter, c: core_pb2.Container) -> None:
    if not c.env_from:
        return
    w.write(2, "Environment Variables from:\n")
    for source in c.env_from:
        if source.HasField("config_map_ref"):
            kind, name, optional = (
                "ConfigMap",
                source.config_map_ref.name,
                source.config_map_ref.optional,
            )
        else:
            kind, name, optional = "Secret", source.secret_ref.name, source.secret_ref.optional
        what = f"{kind} with prefix '{source.prefix}'" if source.prefix else kind
        w.write(3, f"{name}\t{what}\tOptional: {str(optional).lower()}\n")


Resolver = Callable[[str], str]


def pod_field(pod: core_pb2.Pod) -> Resolver:
    """The value of a pod's downward-API field path, for Environment lines."""
    simple = {
        "metadata.name": pod.metadata.name,
        "metadata.namespace": pod.metadata.namespace,
        "metadata.uid": pod.metadata.uid,
        "spec.nodeName": pod.spec.node_name,
        "status.hostIP": pod.status.host_ip,
        "status.podIP": pod.status.pod_ip,
    }

    def resolve(path: str) -> str:
        for prefix, values in (
            ("metadata.labels", pod.metadata.labels),
            ("metadata.annotations", pod.metadata.annotations),
        ):
            if path.startswith(prefix + "['") and path.endswith("']"):
                return values.get(path[len(prefix) + 2 : -2], "")
        return simple.get(path, "")

    return resolve


def _write_env(w: PrefixWriter, c: core_pb2.Container, resolve: Resolver | None) -> None:
    w.write(2, "Environment:" + ("\t<none>\n" if not c.env else "\n"))
    for env in c.env:
        if not env.HasField("value_from"):
            for i, part in enumerate(env.value.split("\n")):
                w.write(3, f"{env.name}:\t{part}\n" if i == 0 else f"\t{part}\n")
            continue
        source = env.value_from
        if source.HasField("field_ref"):
            ref = source.field_ref
            value = resolve(ref.field_path) if resolve else ""
            w.write(3, f"{env.name}:\t{value} ({ref.api_version or 'v1'}:{ref.field_path})\n")
        elif source.HasField("secret_key_ref"):
            s = source.secret_key_ref
            w.write(
                3,
                f"{env.name}:\t<set to the key '{s.key}' in secret '{s.name}'>\t"
                f"Optional: {str(s.optional).lower()}\n",
            )
        elif source.HasField("config_map_key_ref"):
            m = source.config_map_key_ref
            w.write(
                3,
                f"{env.name}:\t<set to the key '{m.key}' of config map '{m.name}'>\t"
                f"Optional: {str(m.optional).lower()}\n",
            )


def _write_mounts(w: PrefixWriter, c: core_pb2.Container) -> None:
    w.write(2, "Mounts:" + ("\t<none>\n" if not c.volume_mounts else "\n"))
    for m in sorted(c.volume_mounts, key=lambda m: m.mount_path):
        flags = ["ro" if m.read_only else "rw"]
        if m.sub_path:
            flags.append(f'path="{m.sub_path}"')
        w.write(3, f"{m.mount_path} from {m.name} ({','.join(flags)})\n")


def write_containers(
    w: PrefixWriter,
    title: str,
    containers: Sequence[core_pb2.Container],
    statuses: Sequence[core_pb2.ContainerStatus] = (),
    space: str = "",
    resolve: Resolver | None = None,
) -> None:
    w.write(0, f"{space}{title}:{'' if containers else ' <none>'}\n")
    by_name = {s.name: s for s in statuses}
    for c in containers:
        status = by_name.get(c.name)
        w.write(1, f"{' ' if space else ''}{c.name}:\n")
        if status is not None:
            w.write(2, f"Container ID:\t{status.container_id}\n")
        w.write(2, f"Image:\t{c.image}\n")
        if status is not None:
            w.write(2, f"Image ID:\t{status.image_id}\n")
        _write_ports(w, c)
        _write_lines(w, "Command", c.command)
        _write_lines(w, "Args", c.args)
        if status is not None:
            _write_state(w, "State", status.state)
            if status.last_state.HasField("terminated"):
                _write_state(w, "Last State", status.last_state)
            w.write(2, f"Ready:\t{'True' if status.ready else 'False'}\n")
            w.write(2, f"Restart Count:\t{status.restart_count}\n")
        _write_resources(w, c.resources)
        _write_probes(w, c)
        _write_env_from(w, c)
        _write_env(w, c, resolve)
        _write_mounts(w, c)


def _volume_lines(v: core_pb2.Volume) -> list[str]:
    if v.HasField("host_path"):
        kind = v.host_path.type if v.host_path.HasField("type") else NONE
        return [
            "Type:\tHostPath (bare host directory volume)",
            f"Path:\t{v.host_path.path}",
            f"HostPathType:\t{kind or NONE}",
        ]
    if v.HasField("empty_dir"):
        limit = v.empty_dir.size_limit.value if v.empty_dir.HasField("size_limit") else ""
        return [
            "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)",
            f"Medium:\t{v.empty_dir.medium}",
            f"SizeLimit:\t{limit or '<unset>'}",
        ]
    if v.HasField("secret"):
        return [
            "Type:\tSecret (a volume populated by a Secret)",
            f"SecretName:\t{v.secret.secret_name}",
            f"Optional:\t{str(v.secret.optional).lower()}",
        ]
    if v.HasField("config_map"):
        return [
            "Type:\tConfigMap (a volume populated by a ConfigMap)",
            f"Name:\t{v.config_map.name}",
            f"Optional:\t{str(v.config_map.optional).lower()}",
        ]
    return ["<unknown>"]


def write_volumes(w: PrefixWriter, volumes: Sequence[core_pb2.Volume], space: str = "") -> None:
    if not volumes:
        w.write(0, f"{space}Volumes:\t<none>\n")
        return
    w.write(0, f"{space}Volumes:\n")
    for v in volumes:
        w.write(1, f"{' ' if space else ''}{v.name}:\n")
        for line in _volume_lines(v):
            w.write(2, line + "\n")


def write_tolerations(
    w: PrefixWriter, title: str, tolerations: Sequence[core_pb2.Toleration]
) -> None:
    w.write(0, f"{title}:\t")
    if not tolerations:
        w.line(NONE)
        return
    for i, t in enumerate(sorted(tolerations, key=lambda t: t.key)):
        if i:
            w.write(0, "\t")
        text = t.key + (f"={t.value}" if t.value else "") + (f":{t.effect}" if t.effect else "")
        if t.operator == "Exists" and not t.value:
            text += " op=Exists" if t.key or t.effect else "op=Exists"
        if t.HasField("toleration_seconds"):
            text += f" for {t.toleration_seconds}s"
        w.write(0, text + "\n")


def write_pod_template(w: PrefixWriter, template: core_pb2.PodTemplateSpec) -> None:
    w.write(0, "Pod Template:\n")
    write_labels(w, "  Labels", template.metadata.labels)
    if template.metadata.annotations:
        write_annotations(w, "  Annotations", template.metadata.annotations)
    if template.spec.init_containers:
        write_containers(w, "Init Containers", template.spec.init_containers, space="  ")
    write_containers(w, "Containers", template.spec.containers, space="  ")
    write_volumes(w, template.spec.volumes, space="  ")
    write_labels(w, "  Node-Selectors", template.spec.node_selector)
    write_tolerations(w, "  Tolerations", template.spec.tolerations)


# ---- per kind ----


def _quantity(text: str) -> Quantity:
    try:
        return parse_quantity(text)
    except QuantityError:
        return Quantity.from_int(0)


def _write_pod(w: PrefixWriter, pod: core_pb2.Pod, ctx: Context) -> None:
    meta = pod.metadata
    w.write(0, f"Name:\t{meta.name}\n")
    w.write(0, f"Namespace:\t{meta.namespace}\n")
    node = f"{pod.spec.node_name}/{pod.status.host_ip}" if pod.spec.node_name else NONE
    w.write(0, f"Node:\t{node}\n")
    if timestamp(pod.status.start_time):
        w.write(0, f"Start Time:\t{rfc1123(pod.status.start_time)}\n")
    write_labels(w, "Labels", meta.labels)
    write_annotations(w, "Annotations", meta.annotations)
    if meta.HasField("deletion_timestamp") and not is_terminal(pod):
        w.write(0, f"Status:\tTerminating (lasts {since(meta.deletion_timestamp, ctx.now)})\n")
        w.write(0, f"Termination Grace Period:\t{meta.deletion_grace_period_seconds}s\n")
    else:
        w.write(0, f"Status:\t{pod.status.phase}\n")
    if pod.status.reason:
        w.write(0, f"Reason:\t{pod.status.reason}\n")
    if pod.status.message:
        w.write(0, f"Message:\t{pod.status.message}\n")
    w.write(0, f"IP:\t{pod.status.pod_ip}\n")
    if pod.status.pod_ips:
        w.write(0, "IPs:\n")
        for ip in pod.status.pod_ips:
            w.write(1, f"IP:\t{ip.ip}\n")
    else:
        w.write(0, "IPs:\t<none>\n")
    write_controlled_by(w, meta)
    if pod.spec.init_containers:
        write_containers(
            w,
            "Init Containers",
            pod.spec.init_containers,
            pod.status.init_container_statuses,
            resolve=pod_field(pod),
        )
    write_containers(
        w, "Containers", pod.spec.containers, pod.status.container_statuses, resolve=pod_field(pod)
    )
    if pod.status.conditions:
        w.write(0, "Conditions:\n  Type\tStatus\n")
        for c in pod.status.conditions:
            w.write(1, f"{c.type} \t{c.status} \n")
    write_volumes(w, pod.spec.volumes)
    w.write(0, f"QoS Class:\t{pod.status.qos_class or qos_class(pod.spec)}\n")
    write_labels(w, "Node-Selectors", pod.spec.node_selector)
    write_tolerations(w, "Tolerations", pod.spec.tolerations)


def pod_phase_counts(pods: Iterable[core_pb2.Pod]) -> str:
    """`1 Running / 0 Waiting / 0 Succeeded / 0 Failed` of a controller's pods."""
    counts = {RUNNING: 0, PENDING: 0, SUCCEEDED: 0, FAILED: 0}
    for pod in pods:
        phase = pod.status.phase or PENDING
        if phase in counts:
            counts[phase] += 1
    return (
        f"{counts[RUNNING]} Running / {counts[PENDING]} Waiting / "
        f"{counts[SUCCEEDED]} Succeeded / {counts[FAILED]} Failed"
    )


def _replicas(spec: Any) -> int:
    return spec.replicas if spec.HasField("replicas") else 1


def _rs_summary(sets: Sequence[apps_pb2.ReplicaSet]) -> str:
    if not sets:
        return NONE
    return ", ".join(
        f"{rs.metadata.name} ({rs.status.replicas}/{_replicas(rs.spec)} replicas created)"
        for rs in sets
    )


def _write_deployment(w: PrefixWriter, d: apps_pb2.Deployment, ctx: Context) -> None:
    w.write(0, f"Name:\t{d.metadata.name}\n")
    w.write(0, f"Namespace:\t{d.metadata.namespace}\n")
    w.write(0, f"CreationTimestamp:\t{rfc1123(d.metadata.creation_timestamp)}\n")
    write_labels(w, "Labels", d.metadata.labels)
    write_annotations(w, "Annotations", d.metadata.annotations)
    w.write(0, f"Selector:\t{format_label_selector(d.spec.selector)}\n")
    st = d.status
    w.write(
        0,
        f"Replicas:\t{_replicas(d.spec)} desired | {st.updated_replicas} updated | "
        f"{st.replicas} total | {st.available_replicas} available | "
        f"{st.unavailable_replicas} unavailable\n",
    )
    strategy = d.spec.strategy.type or "RollingUpdate"
    w.write(0, f"StrategyType:\t{strategy}\n")
    w.write(0, f"MinReadySeconds:\t{d.spec.min_ready_seconds}\n")
    if strategy == "RollingUpdate":
        ru = d.spec.strategy.rolling_update
        unavailable = (
            printers.int_or_string(ru.max_unavailable) if ru.HasField("max_unavailable") else "25%"
        )
        surge = printers.int_or_string(ru.max_surge) if ru.HasField("max_surge") else "25%"
        w.write(0, f"RollingUpdateStrategy:\t{unavailable} max unavailable, {surge} max surge\n")
    write_pod_template(w, d.spec.template)
    write_conditions(w, d.status.conditions)
    new, old = split_replica_sets(d, ctx.replica_sets)
    w.write(0, f"OldReplicaSets:\t{_rs_summary(old)}\n")
    w.write(0, f"NewReplicaSet:\t{_rs_summary([new] if new else [])}\n")


def _template_without_hash(template: core_pb2.PodTemplateSpec) -> bytes:
    copy = core_pb2.PodTemplateSpec()
    copy.CopyFrom(template)
    copy.metadata.labels.pop("pod-template-hash", None)
    return copy.SerializeToString(deterministic=True)


def split_replica_sets(
    d: apps_pb2.Deployment, sets: Sequence[apps_pb2.ReplicaSet]
) -> tuple[apps_pb2.ReplicaSet | None, list[apps_pb2.ReplicaSet]]:
    """The deployment's new replica set (its template equals the deployment's, ignoring
    pod-template-hash; the oldest if several) and the old ones that still have replicas."""
    owned = sorted(
        (rs for rs in sets if _controlled_by(rs.metadata, d.metadata.uid)),
        key=lambda rs: (rs.metadata.creation_timestamp.ToNanoseconds(), rs.metadata.name),
    )
    wanted = _template_without_hash(d.spec.template)
    new = next((rs for rs in owned if _template_without_hash(rs.spec.template) == wanted), None)
    old = [rs for rs in owned if rs is not new and _replicas(rs.spec) != 0]
    return new, old


def _controlled_by(meta: meta_pb2.ObjectMeta, uid: str) -> bool:
    ref = controller_of(meta)
    return ref is not None and ref.uid == uid


def _write_replica_set(w: PrefixWriter, rs: apps_pb2.ReplicaSet, ctx: Context) -> None:
    w.write(0, f"Name:\t{rs.metadata.name}\n")
    w.write(0, f"Namespace:\t{rs.metadata.namespace}\n")
    w.write(0, f"Selector:\t{format_label_selector(rs.spec.selector)}\n")
    write_labels(w, "Labels", rs.metadata.labels)
    write_annotations(w, "Annotations", rs.metadata.annotations)
    write_controlled_by(w, rs.metadata)
    w.write(0, f"Replicas:\t{rs.status.replicas} current / {_replicas(rs.spec)} desired\n")
    w.write(0, f"Pods Status:\t{pod_phase_counts(ctx.pods)}\n")
    write_pod_template(w, rs.spec.template)
    write_conditions(w, rs.status.conditions)


def _write_daemon_set(w: PrefixWriter, ds: apps_pb2.DaemonSet, ctx: Context) -> None:
    st = ds.status
    w.write(0, f"Name:\t{ds.metadata.name}\n")
    w.write(0, f"Namespace:\t{ds.metadata.namespace}\n")
    w.write(0, f"Selector:\t{format_label_selector(ds.spec.selector)}\n")
    w.write(0, f"Node-Selector:\t{format_labels(ds.spec.template.spec.node_selector)}\n")
    write_labels(w, "Labels", ds.metadata.labels)
    write_annotations(w, "Annotations", ds.metadata.annotations)
    w.write(0, f"Desired Number of Nodes Scheduled: {st.desired_number_scheduled}\n")
    w.write(0, f"Current Number of Nodes Scheduled: {st.current_number_scheduled}\n")
    w.write(0, f"Number of Nodes Scheduled with Up-to-date Pods: {st.updated_number_scheduled}\n")
    w.write(0, f"Number of Nodes Scheduled with Available Pods: {st.number_available}\n")
    w.write(0, f"Number of Nodes Misscheduled: {st.number_misscheduled}\n")
    w.write(0, f"Pods Status:\t{pod_phase_counts(ctx.pods)}\n")
    write_pod_template(w, ds.spec.template)


def _optional(message: Message, name: str, unit: str = "") -> str:
    return f"{getattr(message, name)}{unit}" if message.HasField(name) else "<unset>"


def _write_job(w: PrefixWriter, job: batch_pb2.Job, ctx: Context) -> None:
    spec, st = job.spec, job.status
    w.write(0, f"Name:\t{job.metadata.name}\n")
    w.write(0, f"Namespace:\t{job.metadata.namespace}\n")
    w.write(0, f"Selector:\t{format_label_selector(spec.selector)}\n")
    write_labels(w, "Labels", job.metadata.labels)
    write_annotations(w, "Annotations", job.metadata.annotations)
    write_controlled_by(w, job.metadata)
    if spec.HasField("parallelism"):
        w.write(0, f"Parallelism:\t{spec.parallelism}\n")
    w.write(0, f"Completions:\t{_optional(spec, 'completions')}\n")
    if spec.HasField("completion_mode"):
        w.write(0, f"Completion Mode:\t{spec.completion_mode}\n")
    if spec.HasField("suspend"):
        w.write(0, f"Suspend:\t{str(spec.suspend).lower()}\n")
    if spec.HasField("backoff_limit"):
        w.write(0, f"Backoff Limit:\t{spec.backoff_limit}\n")
    if spec.HasField("ttl_seconds_after_finished"):
        w.write(0, f"TTL Seconds After Finished:\t{spec.ttl_seconds_after_finished}\n")
    start, end = timestamp(st.start_time), timestamp(st.completion_time)
    if start:
        w.write(0, f"Start Time:\t{rfc1123(st.start_time)}\n")
    if end:
        w.write(0, f"Completed At:\t{rfc1123(st.completion_time)}\n")
    if start and end:
        w.write(0, f"Duration:\t{printers.human_duration((end - start).total_seconds())}\n")
    if spec.HasField("active_deadline_seconds"):
        w.write(0, f"Active Deadline Seconds:\t{spec.active_deadline_seconds}s\n")
    ready = f" ({st.ready} Ready)" if st.HasField("ready") else ""
    w.write(
        0,
        f"Pods Statuses:\t{st.active} Active{ready} / {st.succeeded} Succeeded / "
        f"{st.failed} Failed\n",
    )
    if spec.completion_mode == "Indexed":
        w.write(0, f"Completed Indexes:\t{st.completed_indexes or NONE}\n")
    write_pod_template(w, spec.template)


def _write_cron_job(w: PrefixWriter, cj: batch_pb2.CronJob, ctx: Context) -> None:
    spec = cj.spec
    write_head(w, cj.metadata)
    w.write(0, f"Schedule:\t{spec.schedule}\n")
    if spec.HasField("time_zone"):
        w.write(0, f"Time Zone:\t{spec.time_zone}\n")
    w.write(0, f"Concurrency Policy:\t{spec.concurrency_policy or 'Allow'}\n")
    w.write(0, f"Suspend:\t{printers.bool_ptr(spec, 'suspend', spec.suspend)}\n")
    w.write(
        0, f"Successful Job History Limit:\t{_optional(spec, 'successful_jobs_history_limit')}\n"
    )
    w.write(0, f"Failed Job History Limit:\t{_optional(spec, 'failed_jobs_history_limit')}\n")
    w.write(0, f"Starting Deadline Seconds:\t{_optional(spec, 'starting_deadline_seconds', 's')}\n")
    job = spec.job_template.spec
    selector = format_label_selector(job.selector) if job.HasField("selector") else "<unset>"
    w.write(0, f"Selector:\t{selector}\n")
    w.write(0, f"Parallelism:\t{_optional(job, 'parallelism')}\n")
    w.write(0, f"Completions:\t{_optional(job, 'completions')}\n")
    if job.HasField("active_deadline_seconds"):
        w.write(0, f"Active Deadline Seconds:\t{job.active_deadline_seconds}s\n")
    write_pod_template(w, job.template)
    w.write(0, f"Last Schedule Time:\t{rfc1123(cj.status.last_schedule_time)}\n")
    active = ", ".join(ref.name for ref in cj.status.active)
    w.write(0, f"Active Jobs:\t{active or NONE}\n")


def _write_service(w: PrefixWriter, svc: core_pb2.Service, ctx: Context) -> None:
    spec = svc.spec
    write_head(w, svc.metadata)
    w.write(0, f"Selector:\t{format_labels(spec.selector)}\n")
    w.write(0, f"Type:\t{spec.type or 'ClusterIP'}\n")
    if spec.HasField("ip_family_policy"):
        w.write(0, f"IP Family Policy:\t{spec.ip_family_policy}\n")
    w.write(0, f"IP Families:\t{','.join(spec.ip_families) or NONE}\n")
    w.write(0, f"IP:\t{spec.cluster_ip}\n")
    w.write(0, f"IPs:\t{','.join(spec.cluster_ips) or NONE}\n")
    if spec.external_ips:
        w.write(0, f"External IPs:\t{','.join(spec.external_ips)}\n")
    if spec.load_balancer_ip:
        w.write(0, f"Desired LoadBalancer IP:\t{spec.load_balancer_ip}\n")
    if spec.external_name:
        w.write(0, f"External Name:\t{spec.external_name}\n")
    ingress = [i.ip or i.hostname for i in svc.status.load_balancer.ingress]
    if ingress:
        w.write(0, f"LoadBalancer Ingress:\t{', '.join(ingress)}\n")
    for p in spec.ports:
        name, protocol = p.name or "<unset>", p.protocol or "TCP"
        w.write(0, f"Port:\t{name}\t{p.port}/{protocol}\n")
        w.write(0, f"TargetPort:\t{printers.int_or_string(p.target_port)}/{protocol}\n")
        if p.node_port:
            w.write(0, f"NodePort:\t{name}\t{p.node_port}/{protocol}\n")
        endpoints = (
            printers.format_endpoints(ctx.endpoints, {p.name})
            if ctx.endpoints is not None
            else NONE
        )
        w.write(0, f"Endpoints:\t{endpoints}\n")
    w.write(0, f"Session Affinity:\t{spec.session_affinity or 'None'}\n")
    if spec.external_traffic_policy:
        w.write(0, f"External Traffic Policy:\t{spec.external_traffic_policy}\n")
    if spec.HasField("internal_traffic_policy"):
        w.write(0, f"Internal Traffic Policy:\t{spec.internal_traffic_policy}\n")


def _write_endpoints(w: PrefixWriter, ep: core_pb2.Endpoints, ctx: Context) -> None:
    write_head(w, ep.metadata)
    w.write(0, "Subsets:\n")
    for subset in ep.subsets:
        w.write(1, f"Addresses:\t{','.join(a.ip for a in subset.addresses) or NONE}\n")
        w.write(
            1, f"NotReadyAddresses:\t{','.join(a.ip for a in subset.not_ready_addresses) or NONE}\n"
        )
        if subset.ports:
            w.write(1, "Ports:\n")
            w.write(2, "Name\tPort\tProtocol\n")
            w.write(2, "----\t----\t--------\n")
            for p in subset.ports:
                w.write(2, f"{p.name or '<unset>'}\t{p.port}\t{p.protocol or 'TCP'}\n")
        w.line()


def _write_secret(w: PrefixWriter, secret: core_pb2.Secret, ctx: Context) -> None:
    write_head(w, secret.metadata)
    w.write(0, f"\nType:\t{secret.type or 'Opaque'}\n")
    w.write(0, "\nData\n====\n")
    for key in sorted(secret.data):
        w.write(0, f"{key}:\t{len(secret.data[key])} bytes\n")


def _write_config_map(w: PrefixWriter, cm: core_pb2.ConfigMap, ctx: Context) -> None:
    write_head(w, cm.metadata)
    w.write(0, "\nData\n====\n")
    for i, key in enumerate(sorted(cm.data)):
        w.write(0, f"{'' if i == 0 else chr(10)}{key}:\n----\n{cm.data[key]}\n")
    w.write(0, "\nBinaryData\n====\n")
    for key in sorted(cm.binary_data):
        w.write(0, f"{key}: {len(cm.binary_data[key])} bytes\n")
    w.line()


def _write_namespace(w: PrefixWriter, ns: core_pb2.Namespace, ctx: Context) -> None:
    write_head(w, ns.metadata, namespaced=False)
    w.write(0, f"Status:\t{ns.status.phase or 'Active'}\n")


def _write_taints(w: PrefixWriter, taints: Sequence[core_pb2.Taint]) -> None:
    w.write(0, "Taints:\t")
    if not taints:
        w.line(NONE)
        return
    for i, t in enumerate(taints):
        if i:
            w.write(0, "\t")
        w.write(0, f"{t.key}{'=' + t.value if t.value else ''}:{t.effect}\n")


def _write_lease(w: PrefixWriter, lease: coordination_pb2.Lease | None) -> None:
    if lease is None:
        return
    spec = lease.spec
    w.write(0, "Lease:\n")
    holder = spec.holder_identity if spec.HasField("holder_identity") else "<unset>"
    w.write(1, f"HolderIdentity:\t{holder}\n")
    w.write(1, f"AcquireTime:\t{rfc1123(spec.acquire_time)}\n")
    w.write(1, f"RenewTime:\t{rfc1123(spec.renew_time)}\n")


def _write_node(w: PrefixWriter, node: core_pb2.Node, ctx: Context) -> None:
    w.write(0, f"Name:\t{node.metadata.name}\n")
    w.write(0, f"Roles:\t{','.join(printers.node_roles(node)) or NONE}\n")
    write_labels(w, "Labels", node.metadata.labels)
    write_annotations(w, "Annotations", node.metadata.annotations)
    w.write(0, f"CreationTimestamp:\t{rfc1123(node.metadata.creation_timestamp)}\n")
    _write_taints(w, node.spec.taints)
    w.write(0, f"Unschedulable:\t{str(node.spec.unschedulable).lower()}\n")
    _write_lease(w, ctx.lease)
    st = node.status
    if st.conditions:
        w.write(
            0,
            "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage\n",
        )
        w.write(1, "----\t------\t-----------------\t------------------\t------\t-------\n")
        for c in st.conditions:
            w.write(
                1,
                f"{c.type} \t{c.status} \t{rfc1123(c.last_heartbeat_time)} \t"
                f"{rfc1123(c.last_transition_time)} \t{c.reason} \t{c.message}\n",
            )
    w.write(0, "Addresses:\n")
    for a in st.addresses:
        w.write(1, f"{a.type}:\t{a.address}\n")
    for title, values in (("Capacity", st.capacity), ("Allocatable", st.allocatable)):
        if values:
            w.write(0, f"{title}:\n")
            for name in sorted(values):
                w.write(1, f"{name}:\t{values[name].value}\n")
    info = st.node_info
    w.write(0, "System Info:\n")
    for label, value in (
        ("Machine ID", info.machine_id),
        ("System UUID", info.system_uuid),
        ("Boot ID", info.boot_id),
        ("Kernel Version", info.kernel_version),
        ("OS Image", info.os_image),
        ("Operating System", info.operating_system),
        ("Architecture", info.architecture),
        ("Container Runtime Version", info.container_runtime_version),
        ("Kubelet Version", info.kubelet_version),
        ("Kube-Proxy Version", info.kube_proxy_version),
    ):
        w.write(1, f"{label}:\t{value}\n")
    if node.spec.pod_cidr:
        w.write(0, f"PodCIDR:\t{node.spec.pod_cidr}\n")
    if node.spec.pod_cidrs:
        w.write(0, f"PodCIDRs:\t{','.join(node.spec.pod_cidrs)}\n")
    if node.spec.provider_id:
        w.write(0, f"ProviderID:\t{node.spec.provider_id}\n")
    _write_node_resources(w, node, ctx)


def _fraction(used: Quantity, available: Quantity, milli: bool) -> int:
    total = available.milli_value() if milli else available.value()
    if total == 0:
        return 0
    part = used.milli_value() if milli else used.value()
    return int(part / total * 100)


def _share(values: Mapping[str, Quantity], name: str, allocatable: Mapping[str, Quantity]) -> str:
    used = values.get(name, Quantity.from_int(0))
    available = allocatable.get(name, Quantity.from_int(0))
    return f"{used} ({_fraction(used, available, name == 'cpu')}%)"


def _write_node_resources(w: PrefixWriter, node: core_pb2.Node, ctx: Context) -> None:
    source = node.status.allocatable or node.status.capacity
    allocatable = {name: _quantity(q.value) for name, q in source.items()}
    pods = [p for p in ctx.pods if not is_terminal(p)]
    w.write(0, f"Non-terminated Pods:\t({len(pods)} in total)\n")
    w.write(1, "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge\n")
    w.write(1, "---------\t----\t\t------------\t----------\t---------------\t-------------\t---\n")
    total_requests: dict[str, Quantity] = {}
    total_limits: dict[str, Quantity] = {}
    for pod in pods:
        requests, limits = pod_requests(pod.spec), pod_limits(pod.spec)
        for total, values in ((total_requests, requests), (total_limits, limits)):
            for name, q in values.items():
                total[name] = total.get(name, Quantity.from_int(0)) + q
        w.write(
            1,
            f"{pod.metadata.namespace}\t{pod.metadata.name}\t\t"
            f"{_share(requests, 'cpu', allocatable)}\t"
            f"{_share(limits, 'cpu', allocatable)}\t"
            f"{_share(requests, 'memory', allocatable)}\t"
            f"{_share(limits, 'memory', allocatable)}\t"
            f"{since(pod.metadata.creation_timestamp, ctx.now)}\n",
        )
    w.write(
        0, "Allocated resources:\n  (Total limits may be over 100 percent, i.e., overcommitted.)\n"
    )
    w.write(1, "Resource\tRequests\tLimits\n")
    w.write(1, "--------\t--------\t------\n")
    for name in ("cpu", "memory"):
        w.write(
            1,
            f"{name}\t{_share(total_requests, name, allocatable)}\t"
            f"{_share(total_limits, name, allocatable)}\n",
        )


def _write_generic(w: PrefixWriter, obj: Message, ctx: Context) -> None:
    """Kinds without their own layout: the head, then every other field as YAML."""
    kind = kinds.by_message(obj)
    write_head(w, object_meta(obj), kind.namespaced)
    w.write(0, f"API Version:\t{kind.api_version}\n")
    w.write(0, f"Kind:\t{kind.kind}\n")
    data = convert.to_dict(obj)
    for key, value in data.items():
        if key in ("apiVersion", "kind", "metadata"):
            continue
        title = _title(key)
        if isinstance(value, dict | list):
            w.write(0, f"{title}:\n")
            text = yaml.safe_dump(value, sort_keys=False, default_flow_style=False)
            for line in text.rstrip("\n").split("\n"):
                w.write(1, line + "\n")
        else:
            w.write(0, f"{title}:\t{value}\n")


def _title(key: str) -> str:
    """`involvedObject` -> `Involved Object`, as kubectl's generic describer names fields."""
    words, current = [], ""
    for ch in key:
        if ch.isupper() and current and not current[-1].isupper():
            words.append(current)
            current = ""
        current += ch
    words.append(current)
    return " ".join(word[:1].upper() + word[1:] for word in words)


Writer = Callable[[PrefixWriter, Any, Context], None]

WRITERS: dict[str, Writer] = {
    "Pod": _write_pod,
    "Deployment": _write_deployment,
    "ReplicaSet": _write_replica_set,
    "DaemonSet": _write_daemon_set,
    "Job": _write_job,
    "CronJob": _write_cron_job,
    "Service": _write_service,
    "Endpoints": _write_endpoints,
    "Secret": _write_secret,
    "ConfigMap": _write_config_map,
    "Namespace": _write_namespace,
    "Node": _write_node,
    # kubectl has no describer of its own for these either: fields and events.
    "Event": _write_generic,
    "Lease": _write_generic,
}


def render(obj: Message, ctx: Context) -> str:
    """The describe text of one object, given what `gather` read for it."""
    w = PrefixWriter()
    kind = kinds.by_message(obj)
    WRITERS.get(kind.kind, _write_generic)(w, obj, ctx)
    if ctx.events is not None:
        write_events(w, ctx.events, ctx.now)
    return w.text()


# ---- reads ----


async def _pods_of(client: Client, obj: Any) -> list[core_pb2.Pod]:
    """The pods a controller owns: selected by its selector and controlled by its uid."""
    selector = format_label_selector(obj.spec.selector)
    if selector in (NONE, "<error>"):
        return []
    pods, _ = await client.list(core_pb2.Pod, obj.metadata.namespace, label_selector=selector)
    return [p for p in pods if _controlled_by(p.metadata, obj.metadata.uid)]


async def _events_of(client: Client, obj: Any) -> list[core_pb2.Event]:
    events, _ = await client.list(
        core_pb2.Event,
        obj.metadata.namespace,
        field_selector=f"involvedObject.uid={obj.metadata.uid}",
    )
    return events


async def _endpoints_of(client: Client, svc: core_pb2.Service) -> core_pb2.Endpoints | None:
    try:
        return await client.get(core_pb2.Endpoints, svc.metadata.name, svc.metadata.namespace)
    except errors.NotFound:
        return None


async def _lease_of(client: Client, node: core_pb2.Node) -> coordination_pb2.Lease | None:
    try:
        return await client.get(coordination_pb2.Lease, node.metadata.name, NODE_LEASE_NAMESPACE)
    except errors.NotFound:
        return None


async def gather(
    client: Client, obj: Message, now: dt.datetime | None = None, *, events: bool = True
) -> Context:
    ctx = Context(now=now or printers.utc_now())
    kind = kinds.by_message(obj)
    if events and kind.kind != "Event":
        ctx.events = await _events_of(client, obj)
    if isinstance(obj, apps_pb2.ReplicaSet | apps_pb2.DaemonSet):
        ctx.pods = await _pods_of(client, obj)
    elif isinstance(obj, apps_pb2.Deployment):
        ctx.replica_sets, _ = await client.list(apps_pb2.ReplicaSet, obj.metadata.namespace)
    elif isinstance(obj, core_pb2.Service):
        ctx.endpoints = await _endpoints_of(client, obj)
    elif isinstance(obj, core_pb2.Node):
        ctx.pods, _ = await client.list(
            core_pb2.Pod, "", field_selector=f"spec.nodeName={obj.metadata.name}"
        )
        ctx.lease = await _lease_of(client, obj)
    return ctx


async def describe(client: Client, obj: Message, now: dt.datetime | None = None) -> str:
    return render(obj, await gather(client, obj, now))
