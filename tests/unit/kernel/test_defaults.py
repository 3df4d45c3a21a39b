"""Defaulting: what a manifest looks like once stored, as Kubernetes would store it."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from fixtures.examples import example_documents, project_documents

from skiff.api import convert, defaults, kinds
from skiff.api.v1 import batch_pb2, core_pb2

ABSENT = object()  # the field must not be there at all



def _container(**extra: Any) -> dict[str, Any]:
    return {"name": "app", "image": "nginx:1.25", **extra}


def _pod(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
            "spec": {"containers": [_container()], **spec}}


def _template(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [_container()], **spec}}


def _deployment(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": _template(),
                     **spec}}


def _replica_set(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": _template(),
                     **spec}}


def _daemon_set(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": _template(),
                     **spec}}


def _job(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
            "spec": {"template": _template(restartPolicy="Never"), **spec}}


def _cron_job(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
            "spec": {"schedule": "*/5 * * * *",
                     "jobTemplate": {"spec": {"template": _template(restartPolicy="Never")}},
                     **spec}}


def _service(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}], **spec}}


def _defaulted(manifest: dict[str, Any]) -> dict[str, Any]:
    obj, _ = convert.from_dict(copy.deepcopy(manifest))
    kinds.apply_defaults(obj)
    return convert.to_dict(obj)


def _get(data: Any, path: str) -> Any:
    """`spec.containers[0].image` of a dict; ABSENT when any step is missing."""
    for step in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if step.startswith("["):
            index = int(step[1:-1])
            if not isinstance(data, list) or index >= len(data):
                return ABSENT
            data = data[index]
        elif isinstance(data, dict) and step in data:
            data = data[step]
        else:
            return ABSENT
    return data


CONTAINER = "spec.containers[0]"
TEMPLATE_SPEC = "spec.template.spec"

CASES = [
    # Deployment
    ("deploy-replicas", _deployment(), "spec.replicas", 1),
    ("deploy-replicas-zero-kept", _deployment(replicas=0), "spec.replicas", 0),
    ("deploy-strategy-type", _deployment(), "spec.strategy.type", "RollingUpdate"),
    ("deploy-max-surge", _deployment(), "spec.strategy.rollingUpdate.maxSurge", "25%"),
    ("deploy-max-unavailable", _deployment(), "spec.strategy.rollingUpdate.maxUnavailable",
     "25%"),
    ("deploy-given-int-kept",
     _deployment(strategy={"rollingUpdate": {"maxSurge": 1}}),
     "spec.strategy.rollingUpdate.maxSurge", 1),
    ("deploy-other-bound-defaulted",
     _deployment(strategy={"rollingUpdate": {"maxSurge": 1}}),
     "spec.strategy.rollingUpdate.maxUnavailable", "25%"),
    ("deploy-zero-kept",
     _deployment(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}}),
     "spec.strategy.rollingUpdate.maxUnavailable", 0),
    ("deploy-recreate-no-rolling", _deployment(strategy={"type": "Recreate"}),
     "spec.strategy.rollingUpdate", ABSENT),
    ("deploy-history", _deployment(), "spec.revisionHistoryLimit", 10),
    ("deploy-history-zero-kept", _deployment(revisionHistoryLimit=0),
     "spec.revisionHistoryLimit", 0),
    ("deploy-progress-deadline", _deployment(), "spec.progressDeadlineSeconds", 600),
    ("deploy-template-restart", _deployment(), f"{TEMPLATE_SPEC}.restartPolicy", "Always"),
    ("deploy-template-pull", _deployment(), f"{TEMPLATE_SPEC}.containers[0].imagePullPolicy",
     "IfNotPresent"),
    # ReplicaSet
    ("rs-replicas", _replica_set(), "spec.replicas", 1),
    ("rs-template-dns", _replica_set(), f"{TEMPLATE_SPEC}.dnsPolicy", "ClusterFirst"),
    # DaemonSet
    ("ds-strategy", _daemon_set(), "spec.updateStrategy.type", "RollingUpdate"),
    ("ds-max-unavailable", _daemon_set(), "spec.updateStrategy.rollingUpdate.maxUnavailable", 1),
    ("ds-max-surge", _daemon_set(), "spec.updateStrategy.rollingUpdate.maxSurge", 0),
    ("ds-on-delete", _daemon_set(updateStrategy={"type": "OnDelete"}),
     "spec.updateStrategy.rollingUpdate", ABSENT),
    ("ds-history", _daemon_set(), "spec.revisionHistoryLimit", 10),
    ("ds-template-restart", _daemon_set(), f"{TEMPLATE_SPEC}.restartPolicy", "Always"),
    # Job
    ("job-completions", _job(), "spec.completions", 1),
    ("job-parallelism", _job(), "spec.parallelism", 1),
    ("job-work-queue-completions-unset", _job(parallelism=2), "spec.completions", ABSENT),
    ("job-work-queue-parallelism-kept", _job(parallelism=2), "spec.parallelism", 2),
    ("job-completions-only", _job(completions=5), "spec.parallelism", 1),
    ("job-backoff", _job(), "spec.backoffLimit", 6),
    ("job-backoff-zero-kept", _job(backoffLimit=0), "spec.backoffLimit", 0),
    ("job-completion-mode", _job(), "spec.completionMode", "NonIndexed"),
    ("job-suspend", _job(), "spec.suspend", False),
    ("job-labels-from-template", _job(), "metadata.labels", {"app": "web"}),
    ("job-template-restart-not-defaulted",
     {**_job(), "spec": {"template": _template()}}, f"{TEMPLATE_SPEC}.restartPolicy", ABSENT),
    ("job-template-grace", _job(), f"{TEMPLATE_SPEC}.terminationGracePeriodSeconds", 30),
    # CronJob
    ("cj-concurrency", _cron_job(), "spec.concurrencyPolicy", "Allow"),
    ("cj-suspend", _cron_job(), "spec.suspend", False),
    ("cj-successful", _cron_job(), "spec.successfulJobsHistoryLimit", 3),
    ("cj-failed", _cron_job(), "spec.failedJobsHistoryLimit", 1),
    ("cj-job-spec-left-for-job", _cron_job(), "spec.jobTemplate.spec.backoffLimit", ABSENT),
    ("cj-pod-spec-defaulted", _cron_job(), "spec.jobTemplate.spec.template.spec.dnsPolicy",
     "ClusterFirst"),
    ("cj-pod-restart-not-defaulted",
     {**_cron_job(), "spec": {"schedule": "@hourly",
                              "jobTemplate": {"spec": {"template": _template()}}}},
     "spec.jobTemplate.spec.template.spec.restartPolicy", ABSENT),
    # Pod spec
    ("pod-restart", _pod(), "spec.restartPolicy", "Always"),
    ("pod-restart-kept", _pod(restartPolicy="Never"), "spec.restartPolicy", "Never"),
    ("pod-grace", _pod(), "spec.terminationGracePeriodSeconds", 30),
    ("pod-grace-zero-kept", _pod(terminationGracePeriodSeconds=0),
     "spec.terminationGracePeriodSeconds", 0),
    ("pod-dns", _pod(), "spec.dnsPolicy", "ClusterFirst"),
    ("pod-scheduler", _pod(), "spec.schedulerName", "default-scheduler"),
    ("pod-security-context", _pod(), "spec.securityContext", {}),
    ("pod-termination-path", _pod(), f"{CONTAINER}.terminationMessagePath",
     "/dev/termination-log"),
    ("pod-termination-policy", _pod(), f"{CONTAINER}.terminationMessagePolicy", "File"),
    ("pod-port-protocol", _pod(containers=[_container(ports=[{"containerPort": 80}])]),
     f"{CONTAINER}.ports[0].protocol", "TCP"),
    ("pod-port-udp-kept",
     _pod(containers=[_container(ports=[{"containerPort": 53, "protocol": "UDP"}])]),
     f"{CONTAINER}.ports[0].protocol", "UDP"),
    ("pod-env-field-ref",
     _pod(containers=[_container(env=[{"name": "N", "valueFrom": {
         "fieldRef": {"fieldPath": "metadata.name"}}}])]),
     f"{CONTAINER}.env[0].valueFrom.fieldRef.apiVersion", "v1"),
    ("pod-requests-from-limits",
     _pod(containers=[_container(resources={"limits": {"cpu": "1", "memory": "1Gi"},
                                            "requests": {"cpu": "500m"}})]),
     f"{CONTAINER}.resources.requests", {"cpu": "500m", "memory": "1Gi"}),
    ("template-requests-not-from-limits",
     _deployment(template={**_template(), "spec": {"containers": [
         _container(resources={"limits": {"cpu": "1"}})]}}),
     f"{TEMPLATE_SPEC}.containers[0].resources.requests", ABSENT),
    ("pod-quantity-rounded-to-milli",
     _pod(containers=[_container(resources={"limits": {"cpu": "0.0001"}})]),
     f"{CONTAINER}.resources.limits.cpu", "1m"),
    ("pod-host-network-host-port",
     _pod(hostNetwork=True, containers=[_container(ports=[{"containerPort": 8080}])]),
     f"{CONTAINER}.ports[0].hostPort", 8080),
    # probes
    *[(f"probe-{field}", _pod(containers=[_container(livenessProbe={
        "tcpSocket": {"port": 80}})]), f"{CONTAINER}.livenessProbe.{field}", value)
      for field, value in (("timeoutSeconds", 1), ("periodSeconds", 10),
                           ("successThreshold", 1), ("failureThreshold", 3))],
    ("probe-given-kept", _pod(containers=[_container(readinessProbe={
        "tcpSocket": {"port": 80}, "periodSeconds": 3})]),
     f"{CONTAINER}.readinessProbe.periodSeconds", 3),
    ("probe-unset-stays-unset", _pod(), f"{CONTAINER}.livenessProbe", ABSENT),
    ("probe-http-path", _pod(containers=[_container(livenessProbe={
        "httpGet": {"port": 80}})]), f"{CONTAINER}.livenessProbe.httpGet.path", "/"),
    ("probe-http-scheme", _pod(containers=[_container(livenessProbe={
        "httpGet": {"port": 80, "path": "/healthz"}})]),
     f"{CONTAINER}.livenessProbe.httpGet.scheme", "HTTP"),
    ("lifecycle-http-scheme", _pod(containers=[_container(lifecycle={
        "preStop": {"httpGet": {"port": 80}}})]),
     f"{CONTAINER}.lifecycle.preStop.httpGet.scheme", "HTTP"),
    # volumes
    ("volume-secret-mode", _pod(volumes=[{"name": "s", "secret": {"secretName": "s"}}]),
     "spec.volumes[0].secret.defaultMode", 420),
    ("volume-config-map-mode", _pod(volumes=[{"name": "c", "configMap": {"name": "c"}}]),
     "spec.volumes[0].configMap.defaultMode", 420),
    ("volume-mode-kept",
     _pod(volumes=[{"name": "s", "secret": {"secretName": "s", "defaultMode": 256}}]),
     "spec.volumes[0].secret.defaultMode", 256),
    ("volume-host-path-type", _pod(volumes=[{"name": "h", "hostPath": {"path": "/var/log"}}]),
     "spec.volumes[0].hostPath.type", ""),
    ("volume-empty-dir-nothing", _pod(volumes=[{"name": "e", "emptyDir": {}}]),
     "spec.volumes[0].emptyDir", {}),
    ("volume-no-source-is-empty-dir", _pod(volumes=[{"name": "e"}]),
     "spec.volumes[0].emptyDir", {}),
    # Service
    ("svc-type", _service(), "spec.type", "ClusterIP"),
    ("svc-affinity", _service(), "spec.sessionAffinity", "None"),
    ("svc-affinity-no-config", _service(), "spec.sessionAffinityConfig", ABSENT),
    ("svc-client-ip-timeout", _service(sessionAffinity="ClientIP"),
     "spec.sessionAffinityConfig", {"clientIP": {"timeoutSeconds": 10800}}),
    ("svc-client-ip-timeout-kept",
     _service(sessionAffinity="ClientIP",
              sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}),
     "spec.sessionAffinityConfig", {"clientIP": {"timeoutSeconds": 60}}),
    ("svc-publish-not-ready-kept", _service(publishNotReadyAddresses=True),
     "spec.publishNotReadyAddresses", True),
    ("svc-protocol", _service(), "spec.ports[0].protocol", "TCP"),
    ("svc-target-port", _service(), "spec.ports[0].targetPort", 80),
    ("svc-target-port-zero", _service(ports=[{"port": 80, "targetPort": 0}]),
     "spec.ports[0].targetPort", 80),
    ("svc-named-target-kept", _service(ports=[{"port": 80, "targetPort": "http"}]),
     "spec.ports[0].targetPort", "http"),
    ("svc-internal-policy", _service(), "spec.internalTrafficPolicy", "Cluster"),
    ("svc-no-external-policy", _service(), "spec.externalTrafficPolicy", ABSENT),
    ("svc-node-port-external-policy", _service(type="NodePort"),
     "spec.externalTrafficPolicy", "Cluster"),
    ("svc-lb-external-policy", _service(type="LoadBalancer"),
     "spec.externalTrafficPolicy", "Cluster"),
    ("svc-ip-families", _service(), "spec.ipFamilies", ["IPv4"]),
    ("svc-ip-family-policy", _service(), "spec.ipFamilyPolicy", "SingleStack"),
    ("svc-headless-no-families", _service(clusterIP="None"), "spec.ipFamilies", ABSENT),
    ("svc-headless-no-policy", _service(clusterIP="None"), "spec.ipFamilyPolicy", ABSENT),
    ("svc-no-ip-allocated", _service(), "spec.clusterIP", ABSENT),
    ("svc-external-name-no-internal-policy",
     _service(type="ExternalName", externalName="db.example.com"),
     "spec.internalTrafficPolicy", ABSENT),
    ("svc-external-name-no-families",
     _service(type="ExternalName", externalName="db.example.com"), "spec.ipFamilies", ABSENT),
    # Secret, Namespace, Node
    ("secret-type", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}},
     "type", "Opaque"),
    ("secret-string-data-merged",
     {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
      "data": {"username": "YWRtaW4=", "keep": "a2VlcA=="},
      "stringData": {"username": "administrator"}},
     "data", {"username": "YWRtaW5pc3RyYXRvcg==", "keep": "a2VlcA=="}),
    ("secret-string-data-cleared",
     {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
      "stringData": {"password": "x"}}, "stringData", ABSENT),
    ("namespace-name-label", {"apiVersion": "v1", "kind": "Namespace",
                              "metadata": {"name": "dev"}},
     "metadata.labels", {"kubernetes.io/metadata.name": "dev"}),
    ("namespace-phase", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dev"}},
     "status.phase", "Active"),
    ("node-allocatable-from-capacity",
     {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
      "status": {"capacity": {"cpu": "4", "memory": "8Gi"}}},
     "status.allocatable", {"cpu": "4", "memory": "8Gi"}),
]


@pytest.mark.parametrize(("manifest", "path", "expected"),
                         [pytest.param(m, p, e, id=i) for i, m, p, e in CASES])
def test_defaults(manifest: dict[str, Any], path: str, expected: Any) -> None:
    assert _get(_defaulted(manifest), path) == expected


IMAGES = [
    ("nginx", "Always"),
    ("nginx:latest", "Always"),
    ("nginx:1.25", "IfNotPresent"),
    ("library/nginx:1.25-alpine", "IfNotPresent"),
    ("localhost:5000/app", "Always"),
    ("localhost:5000/app:v1", "IfNotPresent"),
    ("registry.example.com:5000/team/app:latest", "Always"),
    ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
    ("nginx:latest@sha256:" + "a" * 64, "Always"),
    ("localhost:5000/app@sha256:" + "b" * 64, "IfNotPresent"),
    # Kubernetes cannot parse it, ignores the error and does not default to Always.
    ("gcr.io/<project>/job-wq-1", "IfNotPresent"),
]


@pytest.mark.parametrize(("image", "policy"), IMAGES)
def test_image_pull_policy(image: str, policy: str) -> None:
    pod = _defaulted(_pod(containers=[_container(image=image)]))
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == policy


def test_image_pull_policy_given_is_kept() -> None:
    pod = _defaulted(_pod(containers=[_container(image="nginx", imagePullPolicy="Never")]))
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "Never"


def test_init_containers_are_defaulted() -> None:
    pod = _defaulted(_pod(initContainers=[_container(name="init", image="busybox")]))
    assert pod["spec"]["initContainers"][0]["imagePullPolicy"] == "Always"
    assert pod["spec"]["initContainers"][0]["terminationMessagePolicy"] == "File"


def test_kinds_without_defaults_are_left_alone() -> None:
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                "data": {"k": "v"}}
    assert _defaulted(manifest) == {**manifest}


# ---- the create-time steps ----

def _toleration_keys(pod: core_pb2.Pod) -> list[tuple[str, str, int | None]]:
    return [(t.key, t.effect, t.toleration_seconds if t.HasField("toleration_seconds") else None)
            for t in pod.spec.tolerations]


TOLERATION_CASES = [
    ("none-given", [], [("node.kubernetes.io/not-ready", "NoExecute", 300),
                        ("node.kubernetes.io/unreachable", "NoExecute", 300)]),
    ("not-ready-given",
     [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
       "tolerationSeconds": 60}],
     [("node.kubernetes.io/not-ready", "NoExecute", 60),
      ("node.kubernetes.io/unreachable", "NoExecute", 300)]),
    ("wildcard-tolerates-all", [{"operator": "Exists"}], [("", "", None)]),
    ("other-effect-does-not-count",
     [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoSchedule"}],
     [("node.kubernetes.io/unreachable", "NoSchedule", None),
      ("node.kubernetes.io/not-ready", "NoExecute", 300),
      ("node.kubernetes.io/unreachable", "NoExecute", 300)]),
]


@pytest.mark.parametrize(("given", "expected"),
                         [pytest.param(g, e, id=i) for i, g, e in TOLERATION_CASES])
def test_add_default_tolerations(given: list[dict[str, Any]],
                                 expected: list[tuple[str, str, int | None]]) -> None:
    pod, _ = convert.from_dict(_pod(tolerations=given))
    assert isinstance(pod, core_pb2.Pod)
    defaults.add_default_tolerations(pod)
    assert _toleration_keys(pod) == expected
    assert all(t.operator == "Exists" for t in pod.spec.tolerations[len(given):])


def test_namespace_on_create() -> None:
    ns, _ = convert.from_dict({"apiVersion": "v1", "kind": "Namespace",
                               "metadata": {"name": "dev"},
                               "spec": {"finalizers": ["kubernetes"]},
                               "status": {"phase": "Terminating"}})
    assert isinstance(ns, core_pb2.Namespace)
    defaults.namespace_on_create(ns)
    assert ns.status.phase == "Active"
    assert list(ns.spec.finalizers) == ["kubernetes"]
    fresh = core_pb2.Namespace()
    defaults.namespace_on_create(fresh)
    assert list(fresh.spec.finalizers) == ["kubernetes"]


def _job_message(**spec: Any) -> batch_pb2.Job:
    job, _ = convert.from_dict(_job(**spec))
    assert isinstance(job, batch_pb2.Job)
    return job


def test_job_generate_selector() -> None:
    job = _job_message()
    defaults.job_generate_selector(job, "uid-1")
    assert dict(job.spec.selector.match_labels) == {
        "batch.kubernetes.io/controller-uid": "uid-1"}
    assert dict(job.spec.template.metadata.labels) == {
        "app": "web",
        "batch.kubernetes.io/controller-uid": "uid-1",
        "batch.kubernetes.io/job-name": "pi",
        "controller-uid": "uid-1",
        "job-name": "pi",
    }


def test_job_generate_selector_keeps_user_labels() -> None:
    job = _job_message(template=_template(restartPolicy="Never"))
    job.spec.template.metadata.labels["job-name"] = "mine"
    defaults.job_generate_selector(job, "uid-1")
    assert job.spec.template.metadata.labels["job-name"] == "mine"  # validation rejects it


def test_job_manual_selector_is_left_alone() -> None:
    job = _job_message(manualSelector=True, selector={"matchLabels": {"app": "web"}})
    defaults.job_generate_selector(job, "uid-1")
    assert dict(job.spec.selector.match_labels) == {"app": "web"}
    assert dict(job.spec.template.metadata.labels) == {"app": "web"}


# ---- the examples: the documentation's and the project's ----

@pytest.mark.parametrize("doc", example_documents() + project_documents())
def test_defaulting_is_idempotent(doc: dict[str, Any]) -> None:
    try:
        obj, _ = convert.from_dict(doc)
    except kinds.UnknownKindError:
        pytest.skip("kind or apiVersion not served")
    kinds.apply_defaults(obj)
    once = obj.SerializeToString(deterministic=True)
    kinds.apply_defaults(obj)
    assert obj.SerializeToString(deterministic=True) == once
