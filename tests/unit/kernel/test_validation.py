"""Validation: each bad manifest is rejected with an error naming the field Kubernetes names."""

from __future__ import annotations

import base64
import copy
import itertools
import re
from typing import Any

import pytest
from fixtures.examples import example_documents, project_documents
from google.protobuf.message import Message

from skiff.api import convert, defaults, kinds

JOB_UID = "6f1d1d4e-2b6a-4c1e-9a57-6a9c8f0e1b2c"
DELETE = object()  # remove the key from the manifest
Changes = dict[Any, Any]  # path (or tuple of steps) -> new value


# ---- manifests ----

def _container(**extra: Any) -> dict[str, Any]:
    return {"name": "app", "image": "nginx:1.25", "ports": [{"containerPort": 80}], **extra}


def _template(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [_container()], **spec}}


POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
       "spec": {"containers": [_container()]}}
DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
              "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                       "template": _template()}}
REPLICA_SET = {**DEPLOYMENT, "kind": "ReplicaSet"}
DAEMON_SET = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
              "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": _template()}}
JOB = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
       "spec": {"template": _template(restartPolicy="Never")}}
CRON_JOB = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {
                "spec": {"template": _template(restartPolicy="OnFailure")}}}}
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}
SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
          "data": {"password": base64.b64encode(b"s3cret").decode()}}
CONFIG_MAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf"},
              "data": {"app.properties": "a=b"}}
NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dev"}}
NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
        "spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}}
LEASE = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
         "metadata": {"name": "scheduler"},
         "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}
EVENT = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.17a2b3c4d5e6f7a8"},
         "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
         "reason": "Scheduled", "message": "assigned", "type": "Normal"}
ENDPOINTS = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"},
             "subsets": [{"addresses": [{"ip": "10.244.1.5"}], "ports": [{"port": 8080}]}]}

BASES: dict[str, dict[str, Any]] = {"Pod": POD, "Deployment": DEPLOYMENT, "ReplicaSet": REPLICA_SET,
         "DaemonSet": DAEMON_SET, "Job": JOB, "CronJob": CRON_JOB, "Service": SERVICE,
         "Secret": SECRET, "ConfigMap": CONFIG_MAP, "Namespace": NAMESPACE, "Node": NODE,
         "Lease": LEASE, "Event": EVENT, "Endpoints": ENDPOINTS}


def _steps(path: str | tuple[str, ...]) -> list[str | int]:
    """`a.b[0].c`; a tuple of steps for keys that contain dots: `("data", "tls.crt")`."""
    if isinstance(path, tuple):
        return list(path)
    return [int(s[1:-1]) if s.startswith("[") else s
            for s in re.findall(r"[^.\[\]]+|\[\d+\]", path)]


def _patched(base: dict[str, Any], changes: Changes) -> dict[str, Any]:
    """A copy of `base` with `{"spec.containers[0].image": value}` applied."""
    manifest = copy.deepcopy(base)
    for path, value in changes.items():
        steps = _steps(path)
        node: Any = manifest
        for step, following in itertools.pairwise(steps):
            if isinstance(step, int):
                while len(node) <= step:
                    node.append({})
                node = node[step]
            else:
                node = node.setdefault(step, [] if isinstance(following, int) else {})
        last = steps[-1]
        if value is DELETE:
            node.pop(last, None)
        elif isinstance(last, int) and last == len(node):
            node.append(value)
        else:
            node[last] = value
    return manifest


def _prepared(manifest: dict[str, Any]) -> Message:
    """The object as the apiserver validates it: namespaced, defaulted, selector made."""
    obj, _ = convert.from_dict(copy.deepcopy(manifest))
    kind = kinds.by_message(obj)
    meta = obj.metadata  # type: ignore[attr-defined]
    if kind.namespaced and not meta.namespace:
        meta.namespace = "default"
    kinds.apply_defaults(obj)
    if kind.kind == "Job":
        meta.uid = meta.uid or JOB_UID
        defaults.job_generate_selector(obj, meta.uid)  # type: ignore[arg-type]
    return obj


def _errors(manifest: dict[str, Any]) -> list[str]:
    return kinds.validate(_prepared(manifest))


def _assert_error(errors: list[str], path: str, fragment: str) -> None:
    at_path = [e for e in errors if e.startswith(f"{path}: ")]
    assert any(fragment in e for e in at_path), (
        f"expected an error at {path!r} containing {fragment!r}; got {errors}")


# ---- the valid bases ----

@pytest.mark.parametrize("kind", sorted(BASES))
def test_base_manifests_are_valid(kind: str) -> None:
    assert _errors(BASES[kind]) == []


def test_every_kind_has_a_validator() -> None:
    for kind in kinds.KINDS:
        obj = kind.message()
        kinds.apply_defaults(obj)
        assert isinstance(kinds.validate(obj), list)


# ---- exact messages, as Kubernetes prints them ----

EXACT = [
    ("name", POD, {"metadata.name": "Web"},
     'metadata.name: Invalid value: "Web": a lowercase RFC 1123 subdomain must consist of '
     "lower case alphanumeric characters, '-' or '.', and must start and end with an "
     "alphanumeric character (e.g. 'example.com', regex used for validation is "
     "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
    ("replicas", DEPLOYMENT, {"spec.replicas": -1},
     "spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
    ("selector", DEPLOYMENT, {"spec.template.metadata.labels": {"app": "other"}},
     'spec.template.metadata.labels: Invalid value: {"app":"other"}: `selector` does not '
     "match template `labels`"),
    ("container-port", DEPLOYMENT,
     {"spec.template.spec.containers[0].ports[0].containerPort": 70000},
     "spec.template.spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be "
     "between 1 and 65535, inclusive"),
    ("restart-policy", DEPLOYMENT, {"spec.template.spec.restartPolicy": "Sometimes"},
     'spec.template.spec.restartPolicy: Unsupported value: "Sometimes": supported values: '
     '"Always", "OnFailure", "Never"'),
    ("containers", POD, {"spec.containers": []}, "spec.containers: Required value"),
    ("secret-size", SECRET,
     {"data.big": base64.b64encode(b"x" * (1024 * 1024 + 1)).decode()},
     "data: Too long: must have at most 1048576 bytes"),
    ("job-restart", JOB, {"spec.template.spec.restartPolicy": DELETE},
     'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"'),
    # Services: the words of Kubernetes' ValidateService (validation_test.go)
    ("svc-port-range", SERVICE, {"spec.ports[0].port": 65536},
     "spec.ports[0].port: Invalid value: 65536: must be between 1 and 65535, inclusive"),
    ("svc-two-ports-one-name", SERVICE, {"spec.ports": [{"name": "web", "port": 80},
                                                        {"name": "web", "port": 81}]},
     'spec.ports[1].name: Duplicate value: "web"'),
    ("svc-unnamed-ports", SERVICE, {"spec.ports[1]": {"port": 443}},
     "spec.ports[0].name: Required value"),
    ("svc-node-port-out-of-range", SERVICE,
     {"spec.type": "NodePort", "spec.ports[0].nodePort": 40000},
     "spec.ports[0].nodePort: Invalid value: 40000: provided port is not in the valid range. "
     "The range of valid ports is 30000-32767"),
    ("svc-affinity-timeout", SERVICE,
     {"spec.sessionAffinity": "ClientIP",
      "spec.sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86401}}},
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 86401: must be "
     "greater than 0 and less than 86400"),
    ("svc-affinity-timeout-zero", SERVICE,
     {"spec.sessionAffinity": "ClientIP",
      "spec.sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}},
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 0: must be "
     "greater than 0 and less than 86400"),
    ("svc-affinity-config-without-affinity", SERVICE,
     {"spec.sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}},
     "spec.sessionAffinityConfig: Forbidden: must not be set when session affinity is None"),
    ("svc-external-name-dns", SERVICE,
     {"spec.type": "ExternalName", "spec.externalName": "db_1.example.com"},
     'spec.externalName: Invalid value: "db_1.example.com": a lowercase RFC 1123 subdomain '
     "must consist of lower case alphanumeric characters, '-' or '.', and must start and end "
     "with an alphanumeric character (e.g. 'example.com', regex used for validation is "
     "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
]


@pytest.mark.parametrize(("base", "changes", "message"),
                         [pytest.param(b, c, m, id=i) for i, b, c, m in EXACT])
def test_exact_messages(base: dict[str, Any], changes: dict[str, Any], message: str) -> None:
    assert message in _errors(_patched(base, changes))


# ---- one table: what is wrong, where Kubernetes says it is ----

C0 = "spec.containers[0]"
T = "spec.template.spec"
LONG = "x" * 300 * 1024

CASES: list[tuple[str, dict[str, Any], Changes, str, str]] = [
    # metadata
    ("name-missing", POD, {"metadata.name": DELETE}, "metadata.name",
     "Required value: name or generateName is required"),
    ("name-too-long", POD, {"metadata.name": "a" * 254}, "metadata.name",
     "must be no more than 253 characters"),
    ("generate-name-invalid", POD, {"metadata.name": "web-x1", "metadata.generateName": "Web-"},
     "metadata.generateName", "RFC 1123 subdomain"),
    ("namespace-invalid", POD, {"metadata.namespace": "Bad_NS"}, "metadata.namespace",
     "RFC 1123 label"),
    ("namespace-forbidden", NODE, {"metadata.namespace": "default"}, "metadata.namespace",
     "Forbidden: not allowed on this type"),
    ("namespace-name-is-label", NAMESPACE, {"metadata.name": "my_ns"}, "metadata.name",
     "RFC 1123 label"),
    ("service-name-dns1035", SERVICE, {"metadata.name": "1web"}, "metadata.name",
     "a DNS-1035 label must consist of"),
    ("node-name", NODE, {"metadata.name": "Node_1"}, "metadata.name", "RFC 1123 subdomain"),
    ("event-name-path-segment", EVENT, {"metadata.name": "a/b"}, "metadata.name",
     "may not contain '/'"),
    ("label-key", POD, {"metadata.labels": {"-bad": "x"}}, "metadata.labels",
     'Invalid value: "-bad": name part must consist of alphanumeric characters'),
    ("label-value", POD, {"metadata.labels": {"app": "a b"}}, "metadata.labels",
     'Invalid value: "a b": a valid label must be an empty string'),
    ("label-prefix", POD, {"metadata.labels": {"Example.com/app": "x"}}, "metadata.labels",
     "prefix part a lowercase RFC 1123 subdomain"),
    ("annotation-key", POD, {"metadata.annotations": {"bad key": "x"}},
     "metadata.annotations", 'Invalid value: "bad key"'),
    ("annotations-too-big", POD, {"metadata.annotations": {"a": LONG}},
     "metadata.annotations", "Too long: must have at most 262144 bytes"),
    ("owner-uid", POD, {"metadata.ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web"}]},
     "metadata.ownerReferences[0].uid", "must not be empty"),
    ("owner-api-version", POD, {"metadata.ownerReferences": [
        {"kind": "ReplicaSet", "name": "web", "uid": "u"}]},
     "metadata.ownerReferences[0].apiVersion", "version must not be empty"),
    ("owner-two-controllers", POD, {"metadata.ownerReferences": [
        {"apiVersion": "v1", "kind": "A", "name": "a", "uid": "1", "controller": True},
        {"apiVersion": "v1", "kind": "B", "name": "b", "uid": "2", "controller": True}]},
     "metadata.ownerReferences", "Only one reference can have Controller set to true"),
    ("finalizer-unqualified", POD, {"metadata.finalizers": ["cleanup"]},
     "metadata.finalizers[0]", "neither a standard finalizer name nor is it fully qualified"),
    # containers
    ("containers-missing", POD, {"spec.containers": []}, "spec.containers", "Required value"),
    ("container-name-missing", POD, {f"{C0}.name": DELETE}, f"{C0}.name", "Required value"),
    ("container-name-format", POD, {f"{C0}.name": "App"}, f"{C0}.name", "RFC 1123 label"),
    ("container-name-duplicate", POD, {"spec.containers[1]": _container()},
     "spec.containers[1].name", 'Duplicate value: "app"'),
    ("init-container-name-clash", POD, {"spec.initContainers": [_container(ports=[])]},
     "spec.initContainers[0].name", 'Duplicate value: "app"'),
    ("image-missing", POD, {f"{C0}.image": DELETE}, f"{C0}.image", "Required value"),
    ("image-whitespace", POD, {f"{C0}.image": " nginx"}, f"{C0}.image",
     "must not have leading or trailing whitespace"),
    ("pull-policy", POD, {f"{C0}.imagePullPolicy": "Sometimes"}, f"{C0}.imagePullPolicy",
     'Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never"'),
    ("termination-message-policy", POD, {f"{C0}.terminationMessagePolicy": "Logs"},
     f"{C0}.terminationMessagePolicy", "must be 'File' or 'FallbackToLogsOnError'"),
    ("container-port-zero", POD, {f"{C0}.ports[0].containerPort": 0},
     f"{C0}.ports[0].containerPort", "Required value"),
    ("host-port-range", POD, {f"{C0}.ports[0].hostPort": 70000}, f"{C0}.ports[0].hostPort",
     "must be between 1 and 65535, inclusive"),
    ("port-protocol", POD, {f"{C0}.ports[0].protocol": "HTTP"}, f"{C0}.ports[0].protocol",
     'Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"'),
    ("port-name-too-long", POD, {f"{C0}.ports[0].name": "a-very-long-port-name"},
     f"{C0}.ports[0].name", "must be no more than 15 characters"),
    ("port-name-no-letter", POD, {f"{C0}.ports[0].name": "8080"}, f"{C0}.ports[0].name",
     "must contain at least one letter (a-z)"),
    ("port-name-charset", POD, {f"{C0}.ports[0].name": "Web_Port"}, f"{C0}.ports[0].name",
     "must contain only alpha-numeric characters"),
    ("port-name-duplicate", POD, {f"{C0}.ports": [{"containerPort": 80, "name": "web"},
                                                 {"containerPort": 81, "name": "web"}]},
     f"{C0}.ports[1].name", "Duplicate value"),
    ("host-port-conflict", POD, {
        f"{C0}.ports[0].hostPort": 8080,
        "spec.containers[1]": _container(name="side", ports=[{"containerPort": 81,
                                                              "hostPort": 8080}])},
     "spec.containers[1].ports[0].hostPort", 'Duplicate value: "TCP//8080"'),
    ("host-network-port", POD, {"spec.hostNetwork": True, f"{C0}.ports[0].hostPort": 8080},
     f"{C0}.ports[0].hostPort", "must match `containerPort` when `hostNetwork` is true"),
    ("template-host-network-port", DEPLOYMENT, {
        f"{T}.hostNetwork": True, f"{T}.containers[0].ports[0].hostPort": 81},
     f"{T}.containers[0].ports[0].hostPort", "must match `containerPort`"),
    # env
    ("env-name", POD, {f"{C0}.env": [{"name": "1BAD", "value": "x"}]}, f"{C0}.env[0].name",
     "a valid environment variable name must consist of"),
    ("env-name-missing", POD, {f"{C0}.env": [{"value": "x"}]}, f"{C0}.env[0].name",
     "Required value"),
    ("env-value-and-from", POD, {f"{C0}.env": [{"name": "A", "value": "x", "valueFrom": {
        "fieldRef": {"fieldPath": "metadata.name"}}}]}, f"{C0}.env[0].valueFrom",
     "may not be specified when `value` is not empty"),
    ("env-from-nothing", POD, {f"{C0}.env": [{"name": "A", "valueFrom": {}}]},
     f"{C0}.env[0].valueFrom", "must specify one of: `fieldRef`"),
    ("env-from-two", POD, {f"{C0}.env": [{"name": "A", "valueFrom": {
        "fieldRef": {"fieldPath": "metadata.name"},
        "secretKeyRef": {"name": "s", "key": "k"}}}]},
     f"{C0}.env[0].valueFrom", "may not have more than one field specified at a time"),
    ("env-field-path", POD, {f"{C0}.env": [{"name": "A", "valueFrom": {
        "fieldRef": {"fieldPath": "spec.restartPolicy"}}}]},
     f"{C0}.env[0].valueFrom.fieldRef.fieldPath",
     'Unsupported value: "spec.restartPolicy": supported values: "metadata.name"'),
    ("env-field-path-unknown", POD, {f"{C0}.env": [{"name": "A", "valueFrom": {
        "fieldRef": {"fieldPath": "spec.containers"}}}]},
     f"{C0}.env[0].valueFrom.fieldRef.fieldPath", "field label not supported"),
    ("env-field-subscript", POD, {f"{C0}.env": [{"name": "A", "valueFrom": {
        "fieldRef": {"fieldPath": "metadata.name['x']"}}}]},
     f"{C0}.env[0].valueFrom.fieldRef.fieldPath", "does not support subscript"),
    ("env-field-api-version", POD, {f"{C0}.env": [{"name": "A", "valueFrom": {
        "fieldRef": {"apiVersion": "v2", "fieldPath": "metadata.name"}}}]},
     f"{C0}.env[0].valueFrom.fieldRef.fieldPath", "unsupported pod version: v2"),
    ("env-secret-key-missing", POD, {f"{C0}.env": [{"name": "A", "valueFrom": {
        "secretKeyRef": {"name": "s"}}}]}, f"{C0}.env[0].valueFrom.secretKeyRef.key",
     "Required value"),
    ("env-config-map-key", POD, {f"{C0}.env": [{"name": "A", "valueFrom": {
        "configMapKeyRef": {"name": "c", "key": "a/b"}}}]},
     f"{C0}.env[0].valueFrom.configMapKeyRef.key", "a valid config key must consist of"),
    ("env-from-both", POD, {f"{C0}.envFrom": [{"configMapRef": {"name": "c"},
                                               "secretRef": {"name": "s"}}]},
     f"{C0}.envFrom", "may not have more than one field specified at a time"),
    ("env-from-none", POD, {f"{C0}.envFrom": [{"prefix": "A_"}]}, f"{C0}.envFrom",
     "must specify one of: `configMapRef` or `secretRef`"),
    ("env-from-name", POD, {f"{C0}.envFrom": [{"secretRef": {"name": "Bad"}}]},
     f"{C0}.envFrom[0].secretRef.name", "RFC 1123 subdomain"),
    # volumes
    ("volume-name-duplicate", POD, {"spec.volumes": [{"name": "v", "emptyDir": {}},
                                                     {"name": "v", "emptyDir": {}}]},
     "spec.volumes[1].name", 'Duplicate value: "v"'),
    ("volume-name-format", POD, {"spec.volumes": [{"name": "V", "emptyDir": {}}]},
     "spec.volumes[0].name", "RFC 1123 label"),
    ("volume-two-sources", POD, {"spec.volumes": [
        {"name": "v", "emptyDir": {}, "secret": {"secretName": "s"}}]},
     "spec.volumes[0].secret", "Forbidden: may not specify more than 1 volume type"),
    ("volume-secret-name", POD, {"spec.volumes": [{"name": "v", "secret": {}}]},
     "spec.volumes[0].secret.secretName", "Required value"),
    ("volume-mode", POD, {"spec.volumes": [{"name": "v", "configMap": {
        "name": "c", "defaultMode": 1000}}]}, "spec.volumes[0].configMap.defaultMode",
     "must be a number between 0 and 0777 (octal), both inclusive"),
    ("volume-item-path", POD, {"spec.volumes": [{"name": "v", "configMap": {
        "name": "c", "items": [{"key": "k", "path": "../etc/passwd"}]}}]},
     "spec.volumes[0].configMap.items[0].path", "must not contain '..'"),
    ("volume-item-absolute", POD, {"spec.volumes": [{"name": "v", "secret": {
        "secretName": "s", "items": [{"key": "k", "path": "/etc/x"}]}}]},
     "spec.volumes[0].secret.items[0].path", "must be a relative path"),
    ("host-path-missing", POD, {"spec.volumes": [{"name": "v", "hostPath": {"type": "File"}}]},
     "spec.volumes[0].hostPath.path", "Required value"),
    ("host-path-type", POD, {"spec.volumes": [{"name": "v", "hostPath": {
        "path": "/x", "type": "Pipe"}}]}, "spec.volumes[0].hostPath.type", "Unsupported value"),
    ("mount-unknown-volume", POD, {f"{C0}.volumeMounts": [{"name": "nope",
                                                           "mountPath": "/data"}]},
     f"{C0}.volumeMounts[0].name", 'Not found: "nope"'),
    ("mount-path-missing", POD, {"spec.volumes": [{"name": "v", "emptyDir": {}}],
                                 f"{C0}.volumeMounts": [{"name": "v"}]},
     f"{C0}.volumeMounts[0].mountPath", "Required value"),
    ("mount-path-relative", POD, {"spec.volumes": [{"name": "v", "emptyDir": {}}],
                                  f"{C0}.volumeMounts": [{"name": "v", "mountPath": "data"}]},
     f"{C0}.volumeMounts[0].mountPath", "must be an absolute path"),
    ("mount-path-unique", POD, {"spec.volumes": [{"name": "v", "emptyDir": {}},
                                                 {"name": "w", "emptyDir": {}}],
                                f"{C0}.volumeMounts": [{"name": "v", "mountPath": "/d"},
                                                       {"name": "w", "mountPath": "/d"}]},
     f"{C0}.volumeMounts[1].mountPath", "must be unique"),
    ("mount-sub-path", POD, {"spec.volumes": [{"name": "v", "emptyDir": {}}],
                             f"{C0}.volumeMounts": [{"name": "v", "mountPath": "/d",
                                                     "subPath": "../x"}]},
     f"{C0}.volumeMounts[0].subPath", "must not contain '..'"),
    # probes and hooks
    ("probe-two-handlers", POD, {f"{C0}.livenessProbe": {
        "exec": {"command": ["true"]}, "tcpSocket": {"port": 80}}},
     f"{C0}.livenessProbe.tcpSocket", "Forbidden: may not specify more than 1 handler type"),
    ("probe-no-handler", POD, {f"{C0}.readinessProbe": {"periodSeconds": 5}},
     f"{C0}.readinessProbe", "Required value: must specify a handler type"),
    ("probe-exec-command", POD, {f"{C0}.livenessProbe": {"exec": {}}},
     f"{C0}.livenessProbe.exec.command", "Required value"),
    ("probe-liveness-success", POD, {f"{C0}.livenessProbe": {
        "tcpSocket": {"port": 80}, "successThreshold": 2}},
     f"{C0}.livenessProbe.successThreshold", "Invalid value: 2: must be 1"),
    ("probe-startup-success", POD, {f"{C0}.startupProbe": {
        "tcpSocket": {"port": 80}, "successThreshold": 3}},
     f"{C0}.startupProbe.successThreshold", "must be 1"),
    ("probe-negative-delay", POD, {f"{C0}.readinessProbe": {
        "tcpSocket": {"port": 80}, "initialDelaySeconds": -1}},
     f"{C0}.readinessProbe.initialDelaySeconds", "must be greater than or equal to 0"),
    ("probe-negative-failure", POD, {f"{C0}.readinessProbe": {
        "tcpSocket": {"port": 80}, "failureThreshold": -3}},
     f"{C0}.readinessProbe.failureThreshold", "must be greater than or equal to 0"),
    ("probe-port-range", POD, {f"{C0}.livenessProbe": {"httpGet": {"port": 70000}}},
     f"{C0}.livenessProbe.httpGet.port", "must be between 1 and 65535"),
    ("probe-port-name", POD, {f"{C0}.livenessProbe": {"tcpSocket": {"port": "Web_Port"}}},
     f"{C0}.livenessProbe.tcpSocket.port", "must contain only alpha-numeric characters"),
    ("probe-scheme", POD, {f"{C0}.livenessProbe": {"httpGet": {"port": 80, "scheme": "FTP"}}},
     f"{C0}.livenessProbe.httpGet.scheme", 'supported values: "HTTP", "HTTPS"'),
    ("probe-header", POD, {f"{C0}.livenessProbe": {"httpGet": {
        "port": 80, "httpHeaders": [{"name": "Bad Header", "value": "x"}]}}},
     f"{C0}.livenessProbe.httpGet.httpHeaders", "a valid HTTP header must consist of"),
    ("pre-stop-no-handler", POD, {f"{C0}.lifecycle": {"preStop": {}}},
     f"{C0}.lifecycle.preStop", "must specify a handler type"),
    ("init-container-probe", POD, {"spec.initContainers": [
        _container(name="init", ports=[], livenessProbe={"tcpSocket": {"port": 80}})]},
     "spec.initContainers[0].livenessProbe",
     "Forbidden: may not be set for init containers without restartPolicy=Always"),
    # resources
    ("request-over-limit", POD, {f"{C0}.resources": {"limits": {"cpu": "1"},
                                                     "requests": {"cpu": "2"}}},
     f"{C0}.resources.requests", 'Invalid value: "2": must be less than or equal to cpu limit '
                                 "of 1"),
    ("negative-quantity", POD, {f"{C0}.resources": {"limits": {"memory": "-1Gi"}}},
     f"{C0}.resources.limits[memory]", "must be greater than or equal to 0"),
    ("unknown-resource", POD, {f"{C0}.resources": {"limits": {"gpu": "1"}}},
     f"{C0}.resources.limits[gpu]", "must be a standard resource for containers"),
    ("extended-resource-fraction", POD, {f"{C0}.resources": {
        "limits": {"example.com/gpu": "500m"}, "requests": {"example.com/gpu": "500m"}}},
     f"{C0}.resources.limits[example.com/gpu]", "must be an integer"),
    ("extended-resource-no-limit", POD, {f"{C0}.resources": {
        "requests": {"example.com/gpu": "1"}}},
     f"{C0}.resources.limits", "Limit must be set for non overcommitable resources"),
    ("extended-resource-request-differs", POD, {f"{C0}.resources": {
        "limits": {"example.com/gpu": "2"}, "requests": {"example.com/gpu": "1"}}},
     f"{C0}.resources.requests", "must be equal to example.com/gpu limit of 2"),
    # security
    ("run-as-user", POD, {"spec.securityContext": {"runAsUser": -1}},
     "spec.securityContext.runAsUser", "must be between 0 and 2147483647, inclusive"),
    ("container-run-as-group", POD, {f"{C0}.securityContext": {"runAsGroup": -5}},
     f"{C0}.securityContext.runAsGroup", "must be between 0 and 2147483647"),
    ("privileged-no-escalation", POD, {f"{C0}.securityContext": {
        "privileged": True, "allowPrivilegeEscalation": False}},
     f"{C0}.securityContext", "cannot set `allowPrivilegeEscalation` to false and "
                              "`privileged` to true"),
    # pod-level fields
    ("restart-policy", POD, {"spec.restartPolicy": "Sometimes"}, "spec.restartPolicy",
     'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"'),
    ("dns-policy", POD, {"spec.dnsPolicy": "Cluster"}, "spec.dnsPolicy", "Unsupported value"),
    ("dns-policy-none", POD, {"spec.dnsPolicy": "None"}, "spec.dnsConfig",
     "must provide `dnsConfig` when `dnsPolicy` is None"),
    ("dns-none-no-nameserver", POD, {"spec.dnsPolicy": "None",
                                     "spec.dnsConfig": {"searches": ["a.example"]}},
     "spec.dnsConfig.nameservers",
     "Required value: must provide at least one DNS nameserver when `dnsPolicy` is None"),
    ("dns-four-nameservers", POD, {"spec.dnsConfig": {
        "nameservers": ["1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4"]}},
     "spec.dnsConfig.nameservers", "must not have more than 3 nameservers"),
    ("dns-nameserver-ip", POD, {"spec.dnsConfig": {"nameservers": ["dns.example"]}},
     "spec.dnsConfig.nameservers[0]", 'Invalid value: "dns.example": must be a valid IP'),
    ("dns-search", POD, {"spec.dnsConfig": {"searches": ["Bad_Search"]}},
     "spec.dnsConfig.searches[0]", "RFC 1123 subdomain"),
    ("dns-searches", POD, {"spec.dnsConfig": {"searches": [f"s{i}.x" for i in range(33)]}},
     "spec.dnsConfig.searches", "must not have more than 32 search paths"),
    ("dns-option-name", POD, {"spec.dnsConfig": {"options": [{"value": "2"}]}},
     "spec.dnsConfig.options[0]", "Required value: Option.Name must not be empty"),
    ("grace-negative", POD, {"spec.terminationGracePeriodSeconds": -1},
     "spec.terminationGracePeriodSeconds", "must be greater than or equal to 0"),
    ("active-deadline", POD, {"spec.activeDeadlineSeconds": 0}, "spec.activeDeadlineSeconds",
     "must be between 1 and 2147483647, inclusive"),
    ("node-name", POD, {"spec.nodeName": "Node_1"}, "spec.nodeName", "RFC 1123 subdomain"),
    ("hostname", POD, {"spec.hostname": "my.host"}, "spec.hostname", "Invalid value"),
    ("node-selector", POD, {"spec.nodeSelector": {"disktype": "ss d"}}, "spec.nodeSelector",
     "a valid label must be an empty string"),
    ("toleration-operator", POD, {"spec.tolerations": [{"key": "k", "operator": "Maybe"}]},
     "spec.tolerations[0].operator", 'supported values: "Equal", "Exists"'),
    ("toleration-exists-value", POD, {"spec.tolerations": [
        {"key": "k", "operator": "Exists", "value": "v"}]},
     "spec.tolerations[0].operator", "value must be empty when `operator` is 'Exists'"),
    ("toleration-empty-key", POD, {"spec.tolerations": [{"operator": "Equal", "value": "v"}]},
     "spec.tolerations[0].operator", "operator must be Exists when `key` is empty"),
    ("toleration-effect", POD, {"spec.tolerations": [
        {"key": "k", "operator": "Exists", "effect": "NoRun"}]},
     "spec.tolerations[0].effect",
     'supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"'),
    ("toleration-seconds", POD, {"spec.tolerations": [
        {"key": "k", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 5}]},
     "spec.tolerations[0].effect", "effect must be 'NoExecute' when `tolerationSeconds` is set"),
    ("toleration-key", POD, {"spec.tolerations": [{"key": "bad key", "operator": "Exists"}]},
     "spec.tolerations[0].key", "name part must consist of"),
    ("affinity-operator", POD, {"spec.affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "Near", "values": ["a"]}]}]}}}},
     "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution."
     "nodeSelectorTerms[0].matchExpressions[0].operator", "not a valid selector operator"),
    ("affinity-values", POD, {"spec.affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In"}]}]}}}},
     "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution."
     "nodeSelectorTerms[0].matchExpressions[0].values", "must be specified when `operator` is"),
    ("affinity-no-terms", POD, {"spec.affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}}},
     "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution."
     "nodeSelectorTerms", "must have at least one node selector term"),
    ("affinity-weight", POD, {"spec.affinity": {"nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 0, "preference": {
            "matchExpressions": [{"key": "zone", "operator": "Exists"}]}}]}}},
     "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight",
     "must be in the range 1-100"),
    ("affinity-field", POD, {"spec.affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.labels", "operator": "In",
                              "values": ["x"]}]}]}}}},
     "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution."
     "nodeSelectorTerms[0].matchFields[0].key", "not a valid field selector key"),
    # ReplicaSet and Deployment
    ("rs-replicas", REPLICA_SET, {"spec.replicas": -1}, "spec.replicas",
     "must be greater than or equal to 0"),
    ("rs-min-ready", REPLICA_SET, {"spec.minReadySeconds": -1}, "spec.minReadySeconds",
     "must be greater than or equal to 0"),
    ("rs-selector-mismatch", REPLICA_SET, {"spec.selector.matchLabels": {"app": "db"}},
     "spec.template.metadata.labels", "`selector` does not match template `labels`"),
    ("rs-template-restart", REPLICA_SET, {f"{T}.restartPolicy": "OnFailure"},
     f"{T}.restartPolicy", 'Unsupported value: "OnFailure": supported values: "Always"'),
    ("deploy-selector-missing", DEPLOYMENT, {"spec.selector": DELETE}, "spec.selector",
     "Required value"),
    ("deploy-selector-empty", DEPLOYMENT, {"spec.selector": {}}, "spec.selector",
     "empty selector is invalid for deployment"),
    ("deploy-selector-operator", DEPLOYMENT, {"spec.selector.matchExpressions": [
        {"key": "tier", "operator": "Near", "values": ["x"]}]},
     "spec.selector.matchExpressions[0].operator", "not a valid selector operator"),
    ("deploy-selector-values", DEPLOYMENT, {"spec.selector.matchExpressions": [
        {"key": "tier", "operator": "Exists", "values": ["x"]}]},
     "spec.selector.matchExpressions[0].values", "Forbidden: may not be specified when"),
    ("deploy-selector-expression-mismatch", DEPLOYMENT, {"spec.selector.matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["fe"]}]},
     "spec.template.metadata.labels", "`selector` does not match template `labels`"),
    ("deploy-template-label", DEPLOYMENT, {"spec.template.metadata.labels.bad key": "x"},
     "spec.template.metadata.labels", 'Invalid value: "bad key"'),
    ("deploy-template-container", DEPLOYMENT, {f"{T}.containers[0].image": DELETE},
     f"{T}.containers[0].image", "Required value"),
    ("deploy-template-deadline", DEPLOYMENT, {f"{T}.activeDeadlineSeconds": 10},
     f"{T}.activeDeadlineSeconds", "activeDeadlineSeconds in ReplicaSet is not Supported"),
    ("deploy-recreate-rolling", DEPLOYMENT, {"spec.strategy": {
        "type": "Recreate", "rollingUpdate": {"maxSurge": 1}}},
     "spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'"),
    ("deploy-strategy-type", DEPLOYMENT, {"spec.strategy.type": "Canary"}, "spec.strategy",
     'supported values: "Recreate", "RollingUpdate"'),
    ("deploy-both-zero", DEPLOYMENT, {"spec.strategy.rollingUpdate": {
        "maxSurge": 0, "maxUnavailable": "0%"}},
     "spec.strategy.rollingUpdate.maxUnavailable", "may not be 0 when `maxSurge` is 0"),
    ("deploy-unavailable-over-100", DEPLOYMENT, {
        "spec.strategy.rollingUpdate.maxUnavailable": "150%"},
     "spec.strategy.rollingUpdate.maxUnavailable", "must not be greater than 100%"),
    ("deploy-surge-format", DEPLOYMENT, {"spec.strategy.rollingUpdate.maxSurge": "abc"},
     "spec.strategy.rollingUpdate.maxSurge", "a valid percent string must be"),
    ("deploy-surge-negative", DEPLOYMENT, {"spec.strategy.rollingUpdate.maxSurge": -1},
     "spec.strategy.rollingUpdate.maxSurge", "must be greater than or equal to 0"),
    ("deploy-progress-deadline", DEPLOYMENT, {"spec.minReadySeconds": 600},
     "spec.progressDeadlineSeconds", "must be greater than minReadySeconds"),
    ("deploy-history", DEPLOYMENT, {"spec.revisionHistoryLimit": -1},
     "spec.revisionHistoryLimit", "must be greater than or equal to 0"),
    # DaemonSet
    ("ds-selector-missing", DAEMON_SET, {"spec.selector": DELETE}, "spec.selector",
     "Required value"),
    ("ds-selector-empty", DAEMON_SET, {"spec.selector": {}}, "spec.selector",
     "empty selector is invalid for daemonset"),
    ("ds-selector-mismatch", DAEMON_SET, {"spec.template.metadata.labels": {"app": "x"}},
     "spec.template.metadata.labels", "`selector` does not match template `labels`"),
    ("ds-strategy", DAEMON_SET, {"spec.updateStrategy.type": "Sometimes"},
     "spec.updateStrategy", 'supported values: "RollingUpdate", "OnDelete"'),
    ("ds-both-zero", DAEMON_SET, {"spec.updateStrategy.rollingUpdate": {"maxUnavailable": 0}},
     "spec.updateStrategy.rollingUpdate.maxUnavailable", "cannot be 0 when maxSurge is 0"),
    ("ds-both-set", DAEMON_SET, {"spec.updateStrategy.rollingUpdate": {
        "maxUnavailable": 1, "maxSurge": "10%"}},
     "spec.updateStrategy.rollingUpdate.maxSurge",
     "may not be set when maxUnavailable is non-zero"),
    ("ds-template-restart", DAEMON_SET, {f"{T}.restartPolicy": "Never"}, f"{T}.restartPolicy",
     'supported values: "Always"'),
    # Job
    ("job-parallelism", JOB, {"spec.parallelism": -1}, "spec.parallelism",
     "must be greater than or equal to 0"),
    ("job-completions", JOB, {"spec.completions": -1}, "spec.completions",
     "must be greater than or equal to 0"),
    ("job-backoff", JOB, {"spec.backoffLimit": -1}, "spec.backoffLimit",
     "must be greater than or equal to 0"),
    ("job-deadline", JOB, {"spec.activeDeadlineSeconds": -1}, "spec.activeDeadlineSeconds",
     "must be greater than or equal to 0"),
    ("job-restart-missing", JOB, {f"{T}.restartPolicy": DELETE}, f"{T}.restartPolicy",
     'Required value: valid values: "OnFailure", "Never"'),
    ("job-restart-always", JOB, {f"{T}.restartPolicy": "Always"}, f"{T}.restartPolicy",
     'Required value: valid values: "OnFailure", "Never"'),
    ("job-restart-unknown", JOB, {f"{T}.restartPolicy": "Sometimes"}, f"{T}.restartPolicy",
     'Unsupported value: "Sometimes"'),
    ("job-completion-mode", JOB, {"spec.completionMode": "Sorted"}, "spec.completionMode",
     'supported values: "NonIndexed", "Indexed"'),
    ("job-indexed-completions", JOB, {"spec.completionMode": "Indexed", "spec.parallelism": 2},
     "spec.completions", "Required value: when completion mode is Indexed"),
    ("job-manual-no-selector", JOB, {"spec.manualSelector": True}, "spec.selector",
     "Required value"),
    ("job-manual-empty-selector", JOB, {"spec.manualSelector": True, "spec.selector": {}},
     "spec.selector", "empty selector is invalid for job"),
    ("job-manual-mismatch", JOB, {"spec.manualSelector": True,
                                  "spec.selector": {"matchLabels": {"app": "other"}}},
     "spec.template.metadata.labels", "`selector` does not match template `labels`"),
    ("job-generated-label-conflict", JOB, {"spec.template.metadata.labels.job-name": "other"},
     "spec.template.metadata.labels[job-name]", "must be 'pi'"),
    ("job-generated-selector-edited", JOB, {"spec.selector": {"matchLabels": {
        "batch.kubernetes.io/controller-uid": "someone-else"}}},
     "spec.selector", "`selector` not auto-generated"),
    ("job-name-too-long-for-label", JOB, {"metadata.name": "j" * 64},
     "spec.template.metadata.labels", "must be no more than 63 characters"),
    # CronJob
    ("cj-schedule-missing", CRON_JOB, {"spec.schedule": DELETE}, "spec.schedule",
     "Required value"),
    ("cj-concurrency", CRON_JOB, {"spec.concurrencyPolicy": "Sometimes"},
     "spec.concurrencyPolicy", 'supported values: "Allow", "Forbid", "Replace"'),
    ("cj-name-length", CRON_JOB, {"metadata.name": "c" * 53}, "metadata.name",
     "must be no more than 52 characters"),
    ("cj-starting-deadline", CRON_JOB, {"spec.startingDeadlineSeconds": -1},
     "spec.startingDeadlineSeconds", "must be greater than or equal to 0"),
    ("cj-history", CRON_JOB, {"spec.failedJobsHistoryLimit": -1}, "spec.failedJobsHistoryLimit",
     "must be greater than or equal to 0"),
    ("cj-time-zone", CRON_JOB, {"spec.timeZone": "Mars/Olympus_Mons"}, "spec.timeZone",
     "unknown time zone Mars/Olympus_Mons"),
    ("cj-time-zone-local", CRON_JOB, {"spec.timeZone": "Local"}, "spec.timeZone",
     "must be an explicit time zone"),
    ("cj-job-restart", CRON_JOB, {f"spec.jobTemplate.{T}.restartPolicy": DELETE},
     f"spec.jobTemplate.{T}.restartPolicy", 'Required value: valid values: "OnFailure"'),
    ("cj-job-selector", CRON_JOB, {"spec.jobTemplate.spec.selector": {
        "matchLabels": {"app": "web"}}},
     "spec.jobTemplate.spec.selector", "`selector` will be auto-generated"),
    ("cj-job-container", CRON_JOB, {f"spec.jobTemplate.{T}.containers[0].name": "Bad"},
     f"spec.jobTemplate.{T}.containers[0].name", "RFC 1123 label"),
    ("cj-tz-in-schedule", CRON_JOB, {"spec.schedule": "CRON_TZ=UTC 0 * * * *"},
     "spec.schedule", "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"),
    # Service
    ("svc-ports-required", SERVICE, {"spec.ports": []}, "spec.ports", "Required value"),
    ("svc-port-zero", SERVICE, {"spec.ports[0].port": 0}, "spec.ports[0].port",
     "must be between 1 and 65535, inclusive"),
    ("svc-port-names-required", SERVICE, {"spec.ports[1]": {"port": 443}},
     "spec.ports[0].name", "Required value"),
    ("svc-port-name-format", SERVICE, {"spec.ports[0].name": "Web"}, "spec.ports[0].name",
     "RFC 1123 label"),
    ("svc-port-names-unique", SERVICE, {"spec.ports": [{"name": "web", "port": 80},
                                                       {"name": "web", "port": 81}]},
     "spec.ports[1].name", 'Duplicate value: "web"'),
    ("svc-port-duplicate", SERVICE, {"spec.ports": [{"name": "a", "port": 80},
                                                    {"name": "b", "port": 80}]},
     "spec.ports[1]", "Duplicate value"),
    ("svc-protocol", SERVICE, {"spec.ports[0].protocol": "HTTP"}, "spec.ports[0].protocol",
     "Unsupported value"),
    ("svc-target-port", SERVICE, {"spec.ports[0].targetPort": 70000},
     "spec.ports[0].targetPort", "must be between 1 and 65535"),
    ("svc-target-port-name", SERVICE, {"spec.ports[0].targetPort": "Http_Web"},
     "spec.ports[0].targetPort", "must contain only alpha-numeric characters"),
    ("svc-type", SERVICE, {"spec.type": "Internal"}, "spec.type",
     'supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"'),
    ("svc-node-port-cluster-ip", SERVICE, {"spec.ports[0].nodePort": 30080},
     "spec.ports[0].nodePort", "Forbidden: may not be used when `type` is 'ClusterIP'"),
    ("svc-node-port-range", SERVICE, {"spec.type": "NodePort", "spec.ports[0].nodePort": 8080},
     "spec.ports[0].nodePort", "The range of valid ports is 30000-32767"),
    ("svc-cluster-ip", SERVICE, {"spec.clusterIP": "10.0.0.300"}, "spec.clusterIP",
     "must be a valid IP address"),
    ("svc-cluster-ips-mismatch", SERVICE, {"spec.clusterIP": "10.96.0.10",
                                           "spec.clusterIPs": ["10.96.0.11"]},
     "spec.clusterIPs",
     'Invalid value: []string{"10.96.0.11"}: first value must match `clusterIP`'),
    ("svc-headless-load-balancer", SERVICE, {"spec.type": "LoadBalancer",
                                             "spec.clusterIP": "None"},
     "spec.clusterIP", "may not be set to 'None' for LoadBalancer services"),
    ("svc-affinity", SERVICE, {"spec.sessionAffinity": "Sticky"}, "spec.sessionAffinity",
     'supported values: "ClientIP", "None"'),
    ("svc-external-name-missing", SERVICE, {"spec.type": "ExternalName", "spec.ports": []},
     "spec.externalName", "Required value"),
    ("svc-external-name-format", SERVICE, {"spec.type": "ExternalName",
                                           "spec.externalName": "Not_A_Host"},
     "spec.externalName", "RFC 1123 subdomain"),
    ("svc-external-name-cluster-ip", SERVICE, {"spec.type": "ExternalName",
                                               "spec.externalName": "db.example.com",
                                               "spec.clusterIP": "10.96.0.10"},
     "spec.clusterIPs", "Forbidden: may not be set for ExternalName services"),
    ("svc-selector", SERVICE, {"spec.selector": {"app": "a b"}}, "spec.selector",
     "a valid label must be"),
    ("svc-external-policy", SERVICE, {"spec.externalTrafficPolicy": "Local"},
     "spec.externalTrafficPolicy", "may only be set for externally-accessible services"),
    ("svc-internal-policy", SERVICE, {"spec.internalTrafficPolicy": "Node"},
     "spec.internalTrafficPolicy", 'supported values: "Cluster", "Local"'),
    ("svc-ip-family", SERVICE, {"spec.ipFamilies": ["IPv5"]}, "spec.ipFamilies[0]",
     'supported values: "IPv4", "IPv6"'),
    # Secret
    ("secret-key", SECRET, {"data.bad/key": "eA=="}, "data[bad/key]",
     "a valid config key must consist of alphanumeric characters"),
    ("secret-key-dots", SECRET, {("data", "..hidden"): "eA=="}, "data[..hidden]",
     "must not start with '..'"),
    ("secret-docker-json-missing", SECRET, {"type": "kubernetes.io/dockerconfigjson"},
     "data[.dockerconfigjson]", "Required value"),
    ("secret-docker-json-invalid", SECRET, {
        "type": "kubernetes.io/dockerconfigjson",
        ("data", ".dockerconfigjson"): base64.b64encode(b"{not json").decode()},
     "data[.dockerconfigjson]", 'Invalid value: "<secret contents redacted>"'),
    ("secret-basic-auth", SECRET, {"type": "kubernetes.io/basic-auth", "data": {}},
     "data[username]", "Required value"),
    ("secret-tls", SECRET, {"type": "kubernetes.io/tls",
                            ("data", "tls.crt"): base64.b64encode(b"cert").decode()},
     "data[tls.key]", "Required value"),
    # ConfigMap
    ("cm-key", CONFIG_MAP, {"data.a b": "x"}, "data[a b]", "a valid config key"),
    ("cm-key-in-both", CONFIG_MAP, {("binaryData", "app.properties"): "eA=="},
     "data[app.properties]", "duplicate of key present in binaryData"),
    ("cm-binary-key", CONFIG_MAP, {"binaryData.a:b": "eA=="}, "binaryData[a:b]",
     "a valid config key"),
    # Namespace, Node, Lease, Event, Endpoints
    ("ns-finalizer", NAMESPACE, {"spec.finalizers": ["cleanup"]}, "spec.finalizers",
     "neither a standard finalizer name nor is it fully qualified"),
    ("node-taint-effect", NODE, {"spec.taints[0].effect": "NoRun"}, "spec.taints[0].effect",
     "Unsupported value"),
    ("node-taint-effect-missing", NODE, {"spec.taints[0].effect": DELETE},
     "spec.taints[0].effect", "Required value"),
    ("node-taint-key", NODE, {"spec.taints[0].key": "bad key"}, "spec.taints[0].key",
     "name part must consist of"),
    ("node-taint-duplicate", NODE, {"spec.taints[1]": {"key": "dedicated", "value": "web",
                                                       "effect": "NoSchedule"}},
     "spec.taints[1]", "taints must be unique by key and effect pair"),
    ("node-pod-cidr", NODE, {"spec.podCIDRs": ["10.244.1.0/33"]}, "spec.podCIDRs[0]",
     "must be a valid CIDR value"),
    ("node-pod-cidr-single", NODE, {"spec.podCIDR": "10.244.1.0"}, "spec.podCIDR",
     "must be a valid CIDR value"),
    ("node-pod-cidr-not-first", NODE, {"spec.podCIDR": "10.244.1.0/24",
                                       "spec.podCIDRs": ["10.244.2.0/24"]},
     "spec.podCIDR", "must be the first of spec.podCIDRs (10.244.2.0/24)"),
    ("node-capacity", NODE, {"status.capacity": {"cpu": "-1"}}, "status.capacity[cpu]",
     "must be greater than or equal to 0"),
    ("lease-duration", LEASE, {"spec.leaseDurationSeconds": 0}, "spec.leaseDurationSeconds",
     "must be greater than 0"),
    ("lease-transitions", LEASE, {"spec.leaseTransitions": -1}, "spec.leaseTransitions",
     "must be greater than or equal to 0"),
    ("event-namespace", EVENT, {"involvedObject.namespace": "other"},
     "involvedObject.namespace", "does not match event.namespace"),
    ("event-new-style-action", EVENT, {"eventTime": "2024-01-01T00:00:00.000000Z",
                                       "reportingComponent": "skiff/scheduler",
                                       "reportingInstance": "sched-1"},
     "action", "Required value"),
    ("endpoints-ip", ENDPOINTS, {"subsets[0].addresses[0].ip": "10.0.0.256"},
     "subsets[0].addresses[0].ip", "must be a valid IP address"),
    ("endpoints-loopback", ENDPOINTS, {"subsets[0].addresses[0].ip": "127.0.0.1"},
     "subsets[0].addresses[0].ip", "may not be in the loopback range"),
    ("endpoints-no-address", ENDPOINTS, {"subsets[0].addresses": []}, "subsets[0]",
     "must specify `addresses` or `notReadyAddresses`"),
    ("endpoints-port", ENDPOINTS, {"subsets[0].ports[0].port": 0}, "subsets[0].ports[0].port",
     "must be between 1 and 65535"),
]


@pytest.mark.parametrize(("base", "changes", "path", "fragment"),
                         [pytest.param(b, c, p, f, id=i) for i, b, c, p, f in CASES])
def test_invalid(base: dict[str, Any], changes: Changes, path: str,
                 fragment: str) -> None:
    _assert_error(_errors(_patched(base, changes)), path, fragment)


VALID_VARIANTS: list[tuple[str, dict[str, Any], Changes]] = [
    ("generate-name", POD, {"metadata.name": "web-abc12", "metadata.generateName": "web-"}),
    ("event-free-name", EVENT, {"metadata.name": "Web:Pod.Scheduled_1"}),
    ("env-field-labels", POD, {f"{C0}.env": [{"name": "APP", "valueFrom": {
        "fieldRef": {"fieldPath": "metadata.labels['app.kubernetes.io/name']"}}}]}),
    ("env-field-pod-ips", POD, {f"{C0}.env": [{"name": "IPS", "valueFrom": {
        "fieldRef": {"fieldPath": "status.podIPs"}}}]}),
    ("readiness-success-threshold", POD, {f"{C0}.readinessProbe": {
        "tcpSocket": {"port": "web"}, "successThreshold": 3}}),
    ("requests-below-limits", POD, {f"{C0}.resources": {
        "limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "0.5", "memory": "512Mi"}}}),
    ("host-network-matching", POD, {"spec.hostNetwork": True}),
    ("template-host-network-unset", DEPLOYMENT, {f"{T}.hostNetwork": True}),
    ("image-placeholder", POD, {f"{C0}.image": "gcr.io/<project>/job-wq-1"}),
    ("recreate", DEPLOYMENT, {"spec.strategy": {"type": "Recreate"}}),
    ("max-surge-int", DEPLOYMENT, {"spec.strategy.rollingUpdate": {"maxSurge": 1,
                                                                    "maxUnavailable": 0}}),
    ("ds-on-delete", DAEMON_SET, {"spec.updateStrategy": {"type": "OnDelete"}}),
    ("ds-surge", DAEMON_SET, {"spec.updateStrategy.rollingUpdate": {"maxUnavailable": 0,
                                                                    "maxSurge": 1}}),
    ("job-work-queue", JOB, {"spec.parallelism": 3}),
    ("job-indexed", JOB, {"spec.completionMode": "Indexed", "spec.completions": 5}),
    ("job-manual", JOB, {"spec.manualSelector": True,
                         "spec.selector": {"matchLabels": {"app": "web"}}}),
    ("svc-headless-no-ports", SERVICE, {"spec.clusterIP": "None", "spec.ports": []}),
    ("svc-external-name", SERVICE, {"spec.type": "ExternalName", "spec.ports": [],
                                    "spec.externalName": "db.example.com."}),
    ("svc-node-port", SERVICE, {"spec.type": "NodePort", "spec.ports[0].nodePort": 30007}),
    ("svc-ipv6", SERVICE, {"spec.clusterIP": "fd00::10"}),
    ("svc-named-ports", SERVICE, {"spec.ports": [{"name": "http", "port": 80},
                                                 {"name": "https", "port": 443}]}),
    ("secret-dotfile", SECRET, {("data", ".secret-file"): "eA=="}),
    ("secret-tls", SECRET, {"type": "kubernetes.io/tls", ("data", "tls.crt"): "eA==",
                            ("data", "tls.key"): "eA=="}),
    ("secret-docker", SECRET, {"type": "kubernetes.io/dockerconfigjson",
                               ("data", ".dockerconfigjson"): base64.b64encode(b"{}").decode()}),
    ("node-dual-stack", NODE, {"spec.podCIDRs": ["10.244.1.0/24", "fd00:1::/64"]}),
    ("cj-time-zone", CRON_JOB, {"spec.timeZone": "Europe/Amsterdam"}),
    ("svc-client-ip-affinity", SERVICE, {"spec.sessionAffinity": "ClientIP"}),
    ("svc-client-ip-affinity-day", SERVICE,
     {"spec.sessionAffinity": "ClientIP",
      "spec.sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86400}}}),
    ("svc-headless", SERVICE, {"spec.clusterIP": "None", "spec.ports": []}),
    ("svc-named-target-port", SERVICE, {"spec.ports[0].targetPort": "http-web"}),
    ("svc-external-name-dot", SERVICE, {"spec.type": "ExternalName", "spec.selector": {},
                                        "spec.ports": [],
                                        "spec.externalName": "db.example.com."}),
    ("svc-publish-not-ready", SERVICE, {"spec.publishNotReadyAddresses": True}),
    ("qualified-finalizer", POD, {"metadata.finalizers": ["example.com/cleanup"]}),
]


@pytest.mark.parametrize(("base", "changes"),
                         [pytest.param(b, c, id=i) for i, b, c in VALID_VARIANTS])
def test_valid_variants(base: dict[str, Any], changes: Changes) -> None:
    assert _errors(_patched(base, changes)) == []


def test_job_generated_selector_needs_a_uid() -> None:
    job = _prepared(JOB)
    job.metadata.uid = ""  # type: ignore[attr-defined]
    _assert_error(kinds.validate(job), "metadata.uid", "Required value")


# ---- cron schedules ----

GOOD_SCHEDULES = ["* * * * *", "*/15 * * * *", "0 0 1,15 * MON-FRI", "5/15 * * * *",
                  "0 9 * JAN,jul sun", "30 2 * * 0", "0 0 29 2 *", "? * * * ?", "0-59/5 * * * *",
                  "@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly",
                  "@annually", "@every 1h30m", "@every 90s"]
BAD_SCHEDULES = [
    ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
    ("* * * * * *", "expected exactly 5 fields, found 6"),
    ("60 * * * *", "end of range (60) above maximum (59): 60"),
    ("* 24 * * *", "end of range (24) above maximum (23): 24"),
    ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
    ("* * * 13 *", "end of range (13) above maximum (12): 13"),
    ("* * * * 7", "end of range (7) above maximum (6): 7"),
    ("*/0 * * * *", "step of range should be a positive number: */0"),
    ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
    ("a * * * *", "failed to parse int from a"),
    ("* * * * FUNDAY", "failed to parse int from FUNDAY"),
    ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
    ("*/5/2 * * * *", "too many slashes: */5/2"),
    ("@sometimes", "unrecognized descriptor: @sometimes"),
    ("@every soon", "failed to parse duration @every soon"),
]


@pytest.mark.parametrize("schedule", GOOD_SCHEDULES)
def test_good_schedules(schedule: str) -> None:
    assert _errors(_patched(CRON_JOB, {"spec.schedule": schedule})) == []


@pytest.mark.parametrize(("schedule", "problem"), BAD_SCHEDULES)
def test_bad_schedules(schedule: str, problem: str) -> None:
    errors = _errors(_patched(CRON_JOB, {"spec.schedule": schedule}))
    _assert_error(errors, "spec.schedule", f"Invalid value: {_quoted(schedule)}: {problem}")


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '\\"') + '"'


# ---- updates ----

def _update_errors(base: dict[str, Any], changes: Changes,
                   old_changes: Changes | None = None) -> list[str]:
    old = _prepared(_patched(base, old_changes or {}))
    new = _prepared(_patched(base, {**(old_changes or {}), **changes}))
    return kinds.validate_update(new, old)


UPDATE_CASES: list[tuple[str, dict[str, Any], Changes, Changes | None, str, str]] = [
    ("name", POD, {"metadata.name": "other"}, None, "metadata.name",
     'Invalid value: "other": field is immutable'),
    ("namespace", POD, {"metadata.namespace": "other"}, None, "metadata.namespace",
     "field is immutable"),
    ("uid", POD, {"metadata.uid": "b"}, {"metadata.uid": "a"}, "metadata.uid",
     "field is immutable"),
    ("creation-timestamp", POD, {"metadata.creationTimestamp": "2024-01-02T00:00:00Z"},
     {"metadata.creationTimestamp": "2024-01-01T00:00:00Z"}, "metadata.creationTimestamp",
     "field is immutable"),
    ("finalizer-while-deleting", POD, {"metadata.finalizers": ["example.com/hold"]},
     {"metadata.deletionTimestamp": "2024-01-01T00:00:00Z"}, "metadata.finalizers",
     "no new finalizers can be added if the object is being deleted"),
    ("deploy-selector", DEPLOYMENT, {"spec.selector.matchLabels.tier": "fe",
                                     "spec.template.metadata.labels.tier": "fe"}, None,
     "spec.selector", "field is immutable"),
    ("rs-selector", REPLICA_SET, {"spec.selector.matchLabels": {"app": "x"}}, None,
     "spec.selector", "field is immutable"),
    ("ds-selector", DAEMON_SET, {"spec.selector.matchLabels": {"app": "x"}}, None,
     "spec.selector", "field is immutable"),
    ("job-template", JOB, {f"{T}.containers[0].image": "nginx:2"}, None, "spec.template",
     "field is immutable"),
    ("job-selector", JOB, {"spec.manualSelector": True,
                           "spec.selector": {"matchLabels": {"app": "web", "x": "y"}}},
     {"spec.manualSelector": True, "spec.selector": {"matchLabels": {"app": "web"}}},
     "spec.selector", "field is immutable"),
    ("job-completions", JOB, {"spec.completions": 3}, None, "spec.completions",
     "field is immutable"),
    ("job-indexed-completions", JOB, {"spec.completions": 4, "spec.parallelism": 3},
     {"spec.completionMode": "Indexed", "spec.completions": 2, "spec.parallelism": 2},
     "spec.completions", "must be equal to parallelism when updating completions"),
    ("svc-cluster-ip", SERVICE, {"spec.clusterIP": "10.96.0.20"},
     {"spec.clusterIP": "10.96.0.10"}, "spec.clusterIPs[0]",
     'Invalid value: []string{"10.96.0.20"}: may not change once set'),
    ("svc-cluster-ips", SERVICE, {"spec.clusterIP": "10.96.0.20",
                                  "spec.clusterIPs": ["10.96.0.20"]},
     {"spec.clusterIP": "10.96.0.10", "spec.clusterIPs": ["10.96.0.10"]},
     "spec.clusterIPs[0]", 'Invalid value: []string{"10.96.0.20"}: may not change once set'),
    ("svc-headless-to-ip", SERVICE, {"spec.clusterIP": "10.96.0.20"},
     {"spec.clusterIP": "None"}, "spec.clusterIPs[0]", "may not change once set"),
    ("secret-immutable-data", SECRET, {"data.password": "eA=="}, {"immutable": True},
     "data", "Forbidden: field is immutable when `immutable` is set"),
    ("secret-immutable-flag", SECRET, {"immutable": False}, {"immutable": True}, "immutable",
     "Forbidden: field is immutable when `immutable` is set"),
    ("secret-type", SECRET, {"type": "kubernetes.io/basic-auth", "data.username": "eA=="},
     None, "type", "field is immutable"),
    ("cm-immutable-data", CONFIG_MAP, {("data", "app.properties"): "c=d"}, {"immutable": True},
     "data", "field is immutable when `immutable` is set"),
    ("cm-immutable-binary", CONFIG_MAP, {"binaryData.blob": "eA=="}, {"immutable": True},
     "binaryData", "field is immutable when `immutable` is set"),
    ("node-pod-cidr", NODE, {"spec.podCIDR": "10.244.2.0/24"},
     {"spec.podCIDR": "10.244.1.0/24"}, "spec.podCIDR",
     'node updates may not change podCIDR except from "" to valid'),
    ("node-pod-cidrs", NODE, {"spec.podCIDRs": ["10.244.2.0/24"]},
     {"spec.podCIDRs": ["10.244.1.0/24"]}, "spec.podCIDRs",
     'node updates may not change podCIDR except from "" to valid'),
    ("node-pod-cidr-cleared", NODE, {"spec.podCIDR": ""},
     {"spec.podCIDR": "10.244.1.0/24"}, "spec.podCIDR",
     'node updates may not change podCIDR except from "" to valid'),
    ("pod-restart-policy", POD, {"spec.restartPolicy": "Never"}, None, "spec",
     "Forbidden: pod updates may not change fields other than `spec.containers[*].image`"),
    ("pod-add-container", POD, {"spec.containers[1]": _container(name="side", ports=[])}, None,
     "spec.containers", "pod updates may not add or remove containers"),
    ("pod-remove-toleration", POD, {"spec.tolerations": []},
     {"spec.tolerations": [{"key": "k", "operator": "Exists"}]}, "spec.tolerations",
     "existing toleration can not be modified except its tolerationSeconds"),
    ("pod-deadline-increase", POD, {"spec.activeDeadlineSeconds": 60},
     {"spec.activeDeadlineSeconds": 30}, "spec.activeDeadlineSeconds",
     "must be less than or equal to previous value"),
    ("pod-deadline-removed", POD, {"spec.activeDeadlineSeconds": DELETE},
     {"spec.activeDeadlineSeconds": 30}, "spec.activeDeadlineSeconds",
     "must not update from a positive integer to nil value"),
]


@pytest.mark.parametrize(("base", "changes", "old_changes", "path", "fragment"),
                         [pytest.param(b, c, o, p, f, id=i) for i, b, c, o, p, f in UPDATE_CASES])
def test_invalid_updates(base: dict[str, Any], changes: dict[str, Any],
                         old_changes: dict[str, Any] | None, path: str, fragment: str) -> None:
    _assert_error(_update_errors(base, changes, old_changes), path, fragment)


ALLOWED_UPDATES: list[tuple[str, dict[str, Any], Changes, Changes | None]] = [
    ("labels", POD, {"metadata.labels": {"tier": "fe"}}, None),
    ("pod-image", POD, {f"{C0}.image": "nginx:1.26"}, None),
    ("pod-init-image", POD, {"spec.initContainers[0].image": "busybox:2"},
     {"spec.initContainers": [{"name": "init", "image": "busybox:1"}]}),
    ("pod-deadline-set", POD, {"spec.activeDeadlineSeconds": 30}, None),
    ("pod-deadline-decrease", POD, {"spec.activeDeadlineSeconds": 10},
     {"spec.activeDeadlineSeconds": 30}),
    ("pod-add-toleration", POD, {"spec.tolerations[1]": {"key": "b", "operator": "Exists"}},
     {"spec.tolerations": [{"key": "a", "operator": "Exists"}]}),
    ("deploy-template", DEPLOYMENT, {f"{T}.containers[0].image": "nginx:2",
                                     "spec.replicas": 5}, None),
    ("job-suspend", JOB, {"spec.suspend": True}, None),
    ("job-indexed-elastic", JOB, {"spec.completions": 4, "spec.parallelism": 4},
     {"spec.completionMode": "Indexed", "spec.completions": 2, "spec.parallelism": 2}),
    ("svc-ip-allocated", SERVICE, {"spec.clusterIP": "10.96.0.10"}, None),
    ("svc-ip-kept", SERVICE, {"spec.clusterIP": "10.96.0.10"},
     {"spec.clusterIP": "10.96.0.10", "spec.clusterIPs": ["10.96.0.10"]}),
    ("svc-to-external-name", SERVICE, {"spec.type": "ExternalName", "spec.clusterIP": "",
                                       "spec.externalName": "db.example.com"},
     {"spec.clusterIP": "10.96.0.10"}),
    ("secret-data", SECRET, {"data.password": "eA=="}, None),
    ("secret-becomes-immutable", SECRET, {"immutable": True}, None),
    ("cm-data", CONFIG_MAP, {("data", "app.properties"): "c=d"}, None),
    ("node-pod-cidr-set", NODE, {"spec.podCIDR": "10.244.1.0/24"}, None),
    ("node-pod-cidrs-set", NODE, {"spec.podCIDR": "10.244.1.0/24",
                                  "spec.podCIDRs": ["10.244.1.0/24"]}, None),
    ("node-pod-cidr-kept", NODE, {"spec.unschedulable": True},
     {"spec.podCIDR": "10.244.1.0/24", "spec.podCIDRs": ["10.244.1.0/24"]}),
    ("node-taints", NODE, {"spec.taints": []}, None),
]


@pytest.mark.parametrize(("base", "changes", "old_changes"),
                         [pytest.param(b, c, o, id=i) for i, b, c, o in ALLOWED_UPDATES])
def test_allowed_updates(base: dict[str, Any], changes: dict[str, Any],
                         old_changes: dict[str, Any] | None) -> None:
    assert _update_errors(base, changes, old_changes) == []


@pytest.mark.parametrize(("changes", "changed"), [
    ({"spec.restartPolicy": "Never"}, "spec.restartPolicy"),
    ({f"{C0}.command": ["sh"], "spec.dnsPolicy": "Default"},
     "spec.containers[0].command, spec.dnsPolicy"),
    ({f"{C0}.livenessProbe": {"tcpSocket": {"port": 80}}}, "spec.containers[0].livenessProbe"),
    ({"spec.nodeSelector": {"disk": "ssd"}}, "spec.nodeSelector"),
])
def test_update_error_names_what_changed(changes: Changes, changed: str) -> None:
    errors = _update_errors(POD, changes)
    assert len(errors) == 1
    assert errors[0].endswith(f"changed: {changed}")


# ---- the examples (the documentation's and the project's) are valid Kubernetes, so valid here

@pytest.mark.parametrize("doc", example_documents() + project_documents())
def test_examples_are_valid(doc: dict[str, Any]) -> None:
    try:
        obj = _prepared(doc)
    except kinds.UnknownKindError:
        pytest.skip("kind or apiVersion not served (or missing)")
    assert kinds.validate(obj) == []
