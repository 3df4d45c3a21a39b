"""Defaulting of objects, as Kubernetes' v1 defaulters (`pkg/apis/*/v1/defaults.go`) do it.

Each kind's defaulter (`default_pod`, ...; declared with the kind in skiff.api.kinds,
applied by `kinds.apply_defaults(obj)`) fills in, in place, every field Kubernetes fills
in when it decodes a v1 object, so that what is stored (and printed by `-o yaml`) is what
a Kubernetes user expects. It is idempotent: defaulting a defaulted object changes nothing.

The few mutations that are not defaulting in Kubernetes but steps of the apiserver's
create path live in their own functions, so the registry calls them where Kubernetes
does: `namespace_on_create` (namespace strategy), `add_default_tolerations` (the
DefaultTolerationSeconds admission plugin) and `job_generate_selector` (job strategy).

Proto3 cannot tell an unset scalar from its zero value, so for plain (non-`optional`)
fields "unset" means "zero", exactly as Kubernetes treats its non-pointer fields.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from google.protobuf.message import Message

from skiff.api.quantity import Quantity, QuantityError, parse_quantity
from skiff.api.v1 import apps_pb2, batch_pb2, core_pb2, meta_pb2

__all__ = [
    "CONTROLLER_UID_LABEL",
    "JOB_NAME_LABEL",
    "LEGACY_CONTROLLER_UID_LABEL",
    "LEGACY_JOB_NAME_LABEL",
    "add_default_tolerations",
    "default_cron_job",
    "default_daemon_set",
    "default_deployment",
    "default_endpoints",
    "default_job",
    "default_namespace",
    "default_node",
    "default_pod",
    "default_replica_set",
    "default_secret",
    "default_service",
    "image_tag",
    "job_generate_selector",
    "namespace_on_create",
]

# Job pod labels: the prefixed ones since Kubernetes 1.27; the bare ones are kept
# because older clients and selectors still use them.
CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
LEGACY_JOB_NAME_LABEL = "job-name"

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
NAMESPACE_FINALIZER = "kubernetes"

DEFAULT_TOLERATION_SECONDS = 300
_NOT_READY_TAINT = "node.kubernetes.io/not-ready"
_UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"

_DEFAULT_FILE_MODE = 0o644  # secret and configMap volumes (420)


# ---- workloads ----

def default_pod(pod: Message) -> None:
    assert isinstance(pod, core_pb2.Pod)
    _default_pod_spec(pod.spec, restart_policy=True)
    # Only on Pods, never on templates (SetDefaults_Pod): a template's missing
    # requests must stay missing so that changing a limit later still applies.
    for container in [*pod.spec.init_containers, *pod.spec.containers]:
        _default_requests_to_limits(container.resources)
    if pod.spec.host_network:
        for container in [*pod.spec.init_containers, *pod.spec.containers]:
            for port in container.ports:
                if port.host_port == 0:
                    port.host_port = port.container_port


def _default_requests_to_limits(resources: core_pb2.ResourceRequirements) -> None:
    for name, limit in resources.limits.items():
        if name not in resources.requests:
            resources.requests[name].CopyFrom(limit)


def _default_template(template: core_pb2.PodTemplateSpec, *, restart_policy: bool) -> None:
    _default_pod_spec(template.spec, restart_policy=restart_policy)


def default_replica_set(rs: Message) -> None:
    assert isinstance(rs, apps_pb2.ReplicaSet)
    if not rs.spec.HasField("replicas"):
        rs.spec.replicas = 1
    _default_template(rs.spec.template, restart_policy=True)


def default_deployment(deploy: Message) -> None:
    assert isinstance(deploy, apps_pb2.Deployment)
    spec = deploy.spec
    if not spec.HasField("replicas"):
        spec.replicas = 1
    strategy = spec.strategy
    if not strategy.type:
        strategy.type = "RollingUpdate"
    if strategy.type == "RollingUpdate":
        rolling = strategy.rolling_update
        # Each unset bound defaults on its own: a manifest giving only maxSurge keeps it.
        if not rolling.HasField("max_unavailable"):
            rolling.max_unavailable.str_val = "25%"
        if not rolling.HasField("max_surge"):
            rolling.max_surge.str_val = "25%"
    if not spec.HasField("revision_history_limit"):
        spec.revision_history_limit = 10
    if not spec.HasField("progress_deadline_seconds"):
        spec.progress_deadline_seconds = 600
    _default_template(spec.template, restart_policy=True)


def default_daemon_set(ds: Message) -> None:
    assert isinstance(ds, apps_pb2.DaemonSet)
    spec = ds.spec
    strategy = spec.update_strategy
    if not strategy.type:
        strategy.type = "RollingUpdate"
    if strategy.type == "RollingUpdate":
        rolling = strategy.rolling_update
        if not rolling.HasField("max_unavailable"):
            rolling.max_unavailable.int_val = 1
        if not rolling.HasField("max_surge"):
            rolling.max_surge.int_val = 0
    if not spec.HasField("revision_history_limit"):
        spec.revision_history_limit = 10
    _default_template(spec.template, restart_policy=True)


def default_job(job: Message) -> None:
    assert isinstance(job, batch_pb2.Job)
    spec = job.spec
    # Both unset: a single-pod job. Only parallelism set: a work-queue job, whose
    # completions stay unset (the job is done when any pod succeeds).
    if not spec.HasField("completions") and not spec.HasField("parallelism"):
        spec.completions = 1
    if not spec.HasField("parallelism"):
        spec.parallelism = 1
    if not spec.HasField("backoff_limit"):
        spec.backoff_limit = 6
    # A job without labels takes its template's (before selector generation adds any).
    if spec.template.metadata.labels and not job.metadata.labels:
        job.metadata.labels.update(spec.template.metadata.labels)
    if not spec.HasField("completion_mode"):
        spec.completion_mode = "NonIndexed"
    if not spec.HasField("suspend"):
        spec.suspend = False
    _default_job_template_pod(spec.template)


def _default_job_template_pod(template: core_pb2.PodTemplateSpec) -> None:
    # No restartPolicy here: a Job's pods must say OnFailure or Never, and leaving it
    # unset lets validation say so (Kubernetes defaults Always, then rejects it).
    _default_template(template, restart_policy=False)


def default_cron_job(cj: Message) -> None:
    assert isinstance(cj, batch_pb2.CronJob)
    spec = cj.spec
    if not spec.concurrency_policy:
        spec.concurrency_policy = "Allow"
    if not spec.HasField("suspend"):
        spec.suspend = False
    if not spec.HasField("successful_jobs_history_limit"):
        spec.successful_jobs_history_limit = 3
    if not spec.HasField("failed_jobs_history_limit"):
        spec.failed_jobs_history_limit = 1
    # The job template's JobSpec is defaulted when the Job is created, not here;
    # only the pod spec inside is (Kubernetes' generated defaulters walk into it).
    _default_job_template_pod(spec.job_template.spec.template)


# ---- pod spec ----

def _default_pod_spec(spec: core_pb2.PodSpec, *, restart_policy: bool) -> None:
    if not spec.dns_policy:
        spec.dns_policy = "ClusterFirst"
    if restart_policy and not spec.restart_policy:
        spec.restart_policy = "Always"
    spec.security_context.SetInParent()
    if not spec.HasField("termination_grace_period_seconds"):
        spec.termination_grace_period_seconds = 30
    if not spec.scheduler_name:
        spec.scheduler_name = "default-scheduler"
    for volume in spec.volumes:
        _default_volume(volume)
    for container in [*spec.init_containers, *spec.containers]:
        _default_container(container)


def _default_container(container: core_pb2.Container) -> None:
    if not container.image_pull_policy:
        # Only a moving tag is pulled every time; a pinned one is pulled once.
        latest = image_tag(container.image) == "latest"
        container.image_pull_policy = "Always" if latest else "IfNotPresent"
    if not container.termination_message_path:
        container.termination_message_path = "/dev/termination-log"
    if not container.termination_message_policy:
        container.termination_message_policy = "File"
    for port in container.ports:
        if not port.protocol:
            port.protocol = "TCP"
    for env in container.env:
        if env.value_from.HasField("field_ref") and not env.value_from.field_ref.api_version:
            env.value_from.field_ref.api_version = "v1"
    for probe_name in ("liveness_probe", "readiness_probe", "startup_probe"):
        if container.HasField(probe_name):
            _default_probe(getattr(container, probe_name))
    if container.HasField("lifecycle"):
        for handler_name in ("post_start", "pre_stop"):
            if container.lifecycle.HasField(handler_name):
                _default_handler(getattr(container.lifecycle, handler_name))
    _round_up_to_milli(container.resources.limits)
    _round_up_to_milli(container.resources.requests)


def _default_probe(probe: core_pb2.Probe) -> None:
    # Only the zero (that is, unset) values: a probe's timings have no pointer fields.
    if probe.timeout_seconds == 0:
        probe.timeout_seconds = 1
    if probe.period_seconds == 0:
        probe.period_seconds = 10
    if probe.success_threshold == 0:
        probe.success_threshold = 1
    if probe.failure_threshold == 0:
        probe.failure_threshold = 3
    _default_handler(probe)


def _default_handler(handler: core_pb2.Probe | core_pb2.LifecycleHandler) -> None:
    if handler.HasField("http_get"):
        if not handler.http_get.path:
            handler.http_get.path = "/"
        if not handler.http_get.scheme:
            handler.http_get.scheme = "HTTP"


def _default_volume(volume: core_pb2.Volume) -> None:
    sources = ("host_path", "empty_dir", "secret", "config_map")
    if not any(volume.HasField(source) for source in sources):
        volume.empty_dir.SetInParent()  # a volume with no source is a scratch directory
    if volume.HasField("secret") and not volume.secret.HasField("default_mode"):
        volume.secret.default_mode = _DEFAULT_FILE_MODE
    if volume.HasField("config_map") and not volume.config_map.HasField("default_mode"):
        volume.config_map.default_mode = _DEFAULT_FILE_MODE
    if volume.HasField("host_path") and not volume.host_path.HasField("type"):
        volume.host_path.type = ""  # HostPathUnset: no check before mounting


def _round_up_to_milli(resources: Any) -> None:
    """Round quantities finer than a milli up to one (SetDefaults_ResourceList)."""
    for quantity in resources.values():
        try:
            parsed = parse_quantity(quantity.value)
            milli = parsed.milli_value()
        except (QuantityError, OverflowError):
            continue  # validation reports it
        if parsed.amount.scaleb(3) != milli:
            quantity.value = Quantity.from_milli(milli, parsed.format).canonical()


# ---- images ----

# The grammar of distribution/reference, which Kubernetes uses to read an image's tag.
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE_RE = re.compile(rf"(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?")


def image_tag(image: str) -> str:
    """The tag Kubernetes reads from an image reference (its `parsers.ParseImageName`).

    `latest` when there is neither tag nor digest; "" when pinned by digest only, and
    also when the reference does not parse (Kubernetes ignores that error here; the
    runtime reports it when it pulls).
    """
    match = _REFERENCE_RE.fullmatch(image)
    if match is None or len(match["name"]) > 255:
        return ""
    if match["tag"]:
        return match["tag"]
    return "" if match["digest"] else "latest"


# ---- services and the core kinds ----

def default_service(svc: Message) -> None:
    assert isinstance(svc, core_pb2.Service)
    spec = svc.spec
    if not spec.session_affinity:
        spec.session_affinity = "None"
    if not spec.type:
        spec.type = "ClusterIP"
    if spec.session_affinity == "ClientIP" and not (
            spec.session_affinity_config.client_ip.HasField("timeout_seconds")):
        # Kubernetes' DefaultClientIPServiceAffinitySeconds: three hours.
        spec.session_affinity_config.client_ip.timeout_seconds = 10800
    for port in spec.ports:
        if not port.protocol:
            port.protocol = "TCP"
        target = port.target_port
        unset = target.WhichOneof("value") is None
        if unset or (target.HasField("int_val") and target.int_val == 0) or (
                target.HasField("str_val") and target.str_val == ""):
            target.int_val = port.port
    externally_accessible = spec.type in ("NodePort", "LoadBalancer") or (
        spec.type == "ClusterIP" and bool(spec.external_ips))
    if externally_accessible and not spec.external_traffic_policy:
        spec.external_traffic_policy = "Cluster"
    if spec.type in ("ClusterIP", "NodePort", "LoadBalancer"):
        if not spec.HasField("internal_traffic_policy"):
            spec.internal_traffic_policy = "Cluster"
        # A headless service has no cluster IP, so no family to pick; the allocator
        # itself (choosing the IP) is the apiserver's job, not defaulting's.
        if spec.cluster_ip != "None":
            if not spec.HasField("ip_family_policy"):
                spec.ip_family_policy = "SingleStack"
            if not spec.ip_families:
                spec.ip_families.append("IPv4")


def default_secret(secret: Message) -> None:
    assert isinstance(secret, core_pb2.Secret)
    if not secret.type:
        secret.type = "Opaque"
    # stringData is write-only: merged into data (winning over it) and never stored,
    # as Kubernetes' v1 -> internal conversion does.
    for key, value in secret.string_data.items():
        secret.data[key] = value.encode()
    secret.ClearField("string_data")


def default_namespace(ns: Message) -> None:
    assert isinstance(ns, core_pb2.Namespace)
    # A name still to be generated cannot be labelled yet.
    if ns.metadata.name:
        ns.metadata.labels[NAMESPACE_NAME_LABEL] = ns.metadata.name
    if not ns.status.phase:
        ns.status.phase = "Active"


def default_node(node: Message) -> None:
    assert isinstance(node, core_pb2.Node)
    status = node.status
    if not status.allocatable and status.capacity:
        for name, quantity in status.capacity.items():
            status.allocatable[name].CopyFrom(quantity)
    _round_up_to_milli(status.capacity)
    _round_up_to_milli(status.allocatable)


def default_endpoints(ep: Message) -> None:
    assert isinstance(ep, core_pb2.Endpoints)
    for subset in ep.subsets:
        for port in subset.ports:
            if not port.protocol:
                port.protocol = "TCP"




# ---- create-time steps of the apiserver ----

def namespace_on_create(ns: core_pb2.Namespace) -> None:
    """What Kubernetes' namespace strategy does on create: status Active, and the
    `kubernetes` finalizer, which the namespace controller removes once it has emptied
    the namespace (it is added here, not by defaulting, so it may later go away)."""
    ns.ClearField("status")
    ns.status.phase = "Active"
    if NAMESPACE_FINALIZER not in ns.spec.finalizers:
        ns.spec.finalizers.append(NAMESPACE_FINALIZER)


def add_default_tolerations(pod: core_pb2.Pod) -> None:
    """Kubernetes' DefaultTolerationSeconds admission: a pod stays 300 s on a node that
    is not ready or unreachable before it is evicted, unless it says otherwise."""
    for taint in (_NOT_READY_TAINT, _UNREACHABLE_TAINT):
        if not _tolerates_no_execute(pod.spec.tolerations, taint):
            pod.spec.tolerations.add(key=taint, operator="Exists", effect="NoExecute",
                                     toleration_seconds=DEFAULT_TOLERATION_SECONDS)


def _tolerates_no_execute(tolerations: Iterable[core_pb2.Toleration], taint: str) -> bool:
    # An empty key or effect is a wildcard, so such a toleration already covers it.
    return any(t.key in ("", taint) and t.effect in ("", "NoExecute") for t in tolerations)


def job_generate_selector(job: batch_pb2.Job, uid: str) -> None:
    """Kubernetes' job strategy: unless `manualSelector` is true, select the job's pods
    by its uid and label the template so that they match (1.27+ labels plus the
    legacy ones). Labels the user already set are kept; validation rejects a conflict."""
    if job.spec.HasField("manual_selector") and job.spec.manual_selector:
        return
    labels = job.spec.template.metadata.labels
    for key, value in ((LEGACY_JOB_NAME_LABEL, job.metadata.name),
                       (JOB_NAME_LABEL, job.metadata.name),
                       (LEGACY_CONTROLLER_UID_LABEL, uid),
                       (CONTROLLER_UID_LABEL, uid)):
        labels.setdefault(key, value)
    selector: meta_pb2.LabelSelector = job.spec.selector
    selector.SetInParent()
    selector.match_labels.setdefault(CONTROLLER_UID_LABEL, uid)
