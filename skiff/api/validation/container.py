"""Containers and init containers: names, images, ports, probes and lifecycle hooks."""

from __future__ import annotations

from collections.abc import Sequence

from skiff.api.selectors import validate_dns1123_label
from skiff.api.v1 import core_pb2
from skiff.api.validation.env import validate_env, validate_env_from
from skiff.api.validation.errors import (
    Errors,
    duplicate,
    exactly_one,
    forbidden,
    invalid,
    nonnegative,
    required,
    unsupported,
)
from skiff.api.validation.formats import (
    http_header_name,
    port_name,
    port_number,
    validate_port_num_or_name,
    validate_protocol,
)
from skiff.api.validation.resources import validate_resources
from skiff.api.validation.rules import PodRules
from skiff.api.validation.security import validate_security_context
from skiff.api.validation.volumes import validate_volume_mounts

_PULL_POLICIES = ("Always", "IfNotPresent", "Never")


_INIT_ONLY_ERR = "may not be set for init containers without restartPolicy=Always"
_PROBES = (("liveness_probe", "livenessProbe"), ("readiness_probe", "readinessProbe"),
           ("startup_probe", "startupProbe"))


def validate_containers(containers: Sequence[core_pb2.Container], volumes: set[str],
                        path: str, rules: PodRules) -> Errors:
    if not containers:
        return [required(path)]
    errs: Errors = []
    names: set[str] = set()
    for i, container in enumerate(containers):
        c_path = f"{path}[{i}]"
        errs += _validate_container(container, volumes, c_path, rules)
        if container.name in names:
            errs.append(duplicate(f"{c_path}.name", container.name))
        names.add(container.name)
        errs += _validate_probes(container, c_path)
        if container.HasField("lifecycle"):
            errs += _validate_lifecycle(container.lifecycle, f"{c_path}.lifecycle")
    errs += _validate_host_port_conflicts(containers, path)
    return errs


def validate_init_containers(containers: Sequence[core_pb2.Container],
                             app_containers: Sequence[core_pb2.Container], volumes: set[str],
                             path: str, rules: PodRules) -> Errors:
    errs: Errors = []
    # One namespace of names for all of a pod's containers: logs and exec pick by name.
    names = {c.name for c in app_containers}
    for i, container in enumerate(containers):
        c_path = f"{path}[{i}]"
        errs += _validate_container(container, volumes, c_path, rules)
        if container.name in names:
            errs.append(duplicate(f"{c_path}.name", container.name))
        if container.name:
            names.add(container.name)
        # Init containers run to completion one by one: nothing to probe or hook.
        for field, name in (("lifecycle", "lifecycle"), *_PROBES):
            if container.HasField(field):
                errs.append(forbidden(f"{c_path}.{name}", _INIT_ONLY_ERR))
    errs += _validate_host_port_conflicts(containers, path)
    return errs


def _validate_container(c: core_pb2.Container, volumes: set[str], path: str,
                        rules: PodRules) -> Errors:
    errs: Errors = []
    if not c.name:
        errs.append(required(f"{path}.name"))
    else:
        errs += [invalid(f"{path}.name", c.name, msg) for msg in validate_dns1123_label(c.name)]
    # The image's format is the runtime's business, as in Kubernetes; only presence here.
    if not c.image:
        errs.append(required(f"{path}.image"))
    elif rules.is_pod and c.image != c.image.strip():
        errs.append(invalid(f"{path}.image", c.image,
                            "must not have leading or trailing whitespace"))
    errs += _validate_termination_message_policy(c.termination_message_policy, path)
    errs += _validate_container_ports(c.ports, f"{path}.ports")
    errs += validate_env(c.env, f"{path}.env")
    errs += validate_env_from(c.env_from, f"{path}.envFrom")
    errs += validate_volume_mounts(c.volume_mounts, volumes, f"{path}.volumeMounts")
    errs += _validate_pull_policy(c.image_pull_policy, f"{path}.imagePullPolicy")
    errs += validate_resources(c.resources, f"{path}.resources")
    errs += validate_security_context(c, f"{path}.securityContext")
    return errs


def _validate_termination_message_policy(policy: str, path: str) -> Errors:
    policy_path = f"{path}.terminationMessagePolicy"
    if not policy:
        return [required(policy_path, "must be 'File' or 'FallbackToLogsOnError'")]
    if policy not in ("File", "FallbackToLogsOnError"):
        return [invalid(policy_path, policy, "must be 'File' or 'FallbackToLogsOnError'")]
    return []


def _validate_pull_policy(policy: str, path: str) -> Errors:
    if not policy:
        return [required(path)]
    if policy not in _PULL_POLICIES:
        return [unsupported(path, policy, _PULL_POLICIES)]
    return []


def _validate_container_ports(ports: Sequence[core_pb2.ContainerPort], path: str) -> Errors:
    errs: Errors = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        p_path = f"{path}[{i}]"
        if port.name:
            problems = port_name(port.name)
            errs += [invalid(f"{p_path}.name", port.name, msg) for msg in problems]
            if not problems and port.name in names:
                errs.append(duplicate(f"{p_path}.name", port.name))
            names.add(port.name)
        if port.container_port == 0:
            errs.append(required(f"{p_path}.containerPort"))
        else:
            errs += [invalid(f"{p_path}.containerPort", port.container_port, msg)
                     for msg in port_number(port.container_port)]
        if port.host_port != 0:
            errs += [invalid(f"{p_path}.hostPort", port.host_port, msg)
                     for msg in port_number(port.host_port)]
        errs += validate_protocol(port.protocol, f"{p_path}.protocol")
    return errs


def _validate_host_port_conflicts(containers: Sequence[core_pb2.Container], path: str) -> Errors:
    errs: Errors = []
    seen: set[str] = set()
    for i, container in enumerate(containers):
        for j, port in enumerate(container.ports):
            if port.host_port == 0:
                continue
            key = f"{port.protocol}/{port.host_ip}/{port.host_port}"
            if key in seen:
                errs.append(duplicate(f"{path}[{i}].ports[{j}].hostPort", key))
            seen.add(key)
    return errs


def _validate_probes(container: core_pb2.Container, container_path: str) -> Errors:
    errs: Errors = []
    for field, name in _PROBES:
        if container.HasField(field):
            # Liveness and startup are pass/fail: one success is all there is.
            errs += _validate_probe(getattr(container, field), f"{container_path}.{name}",
                                    single_success=name != "readinessProbe")
    return errs


def _validate_probe(probe: core_pb2.Probe, path: str, *, single_success: bool) -> Errors:
    errs = _validate_handler(probe, path)
    for attr, json_name in (("initial_delay_seconds", "initialDelaySeconds"),
                            ("timeout_seconds", "timeoutSeconds"),
                            ("period_seconds", "periodSeconds"),
                            ("success_threshold", "successThreshold"),
                            ("failure_threshold", "failureThreshold")):
        errs += nonnegative(f"{path}.{json_name}", getattr(probe, attr))
    if single_success and probe.success_threshold != 1:
        errs.append(invalid(f"{path}.successThreshold", probe.success_threshold, "must be 1"))
    return errs


def _validate_lifecycle(lifecycle: core_pb2.Lifecycle, path: str) -> Errors:
    errs: Errors = []
    if lifecycle.HasField("post_start"):
        errs += _validate_handler(lifecycle.post_start, f"{path}.postStart")
    if lifecycle.HasField("pre_stop"):
        errs += _validate_handler(lifecycle.pre_stop, f"{path}.preStop")
    return errs


def _validate_handler(handler: core_pb2.Probe | core_pb2.LifecycleHandler, path: str) -> Errors:
    return exactly_one(handler, path, "handler type", (
        ("exec", "exec", _validate_exec),
        ("http_get", "httpGet", _validate_http_get),
        ("tcp_socket", "tcpSocket", _validate_tcp_socket),
    ))


def _validate_exec(action: core_pb2.ExecAction, path: str) -> Errors:
    return [] if action.command else [required(f"{path}.command")]


def _validate_http_get(action: core_pb2.HTTPGetAction, path: str) -> Errors:
    errs = [] if action.path else [required(f"{path}.path")]
    errs += validate_port_num_or_name(action.port, f"{path}.port")
    if action.scheme not in ("HTTP", "HTTPS"):
        errs.append(unsupported(f"{path}.scheme", action.scheme, ("HTTP", "HTTPS")))
    for header in action.http_headers:
        errs += [invalid(f"{path}.httpHeaders", header.name, msg)
                 for msg in http_header_name(header.name)]
    return errs


def _validate_tcp_socket(action: core_pb2.TCPSocketAction, path: str) -> Errors:
    return validate_port_num_or_name(action.port, f"{path}.port")
