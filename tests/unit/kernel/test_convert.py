"""Manifests to messages and back: the Kubernetes examples, conversions, errors."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml
from fixtures.examples import example_documents, project_documents

from skiff.api import convert, kinds
from skiff.api.v1 import apps_pb2, core_pb2

REFUSED = {"application/job/cronjob.yaml#0": "removed in Kubernetes 1.25",
           "pods/inject/pod-single-secret-env-variable.yaml#0": "apiVersion not set"}


@pytest.mark.parametrize("doc", example_documents() + project_documents())
def test_every_example_converts_and_round_trips_through_yaml(doc: dict,
                                                             request: pytest.FixtureRequest
                                                             ) -> None:
    name = request.node.callspec.id
    if name in REFUSED:
        with pytest.raises(kinds.UnknownKindError, match=REFUSED[name]):
            convert.from_dict(doc)
        return
    message, warnings = convert.from_dict(doc)
    assert warnings == []
    printed = yaml.safe_dump(convert.to_dict(message), sort_keys=False)
    again, _ = convert.from_dict(yaml.safe_load(printed))
    assert again == message
    assert yaml.safe_load(printed)["metadata"]["name"] == doc["metadata"]["name"]


def test_int_or_string_and_quantities_print_as_kubernetes_does() -> None:
    doc = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"},
           "spec": {"strategy": {"rollingUpdate": {"maxSurge": 2, "maxUnavailable": "10%"}},
                    "template": {"spec": {"containers": [{
                        "name": "c", "image": "i",
                        "resources": {"limits": {"cpu": 0.5, "memory": "1024Mi"}},
                        "livenessProbe": {"httpGet": {"port": "http"}}}]}}}}
    message, _ = convert.from_dict(doc)
    assert isinstance(message, apps_pb2.Deployment)
    assert message.spec.strategy.rolling_update.max_surge.int_val == 2
    out = convert.to_dict(message)
    assert out["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": "10%", "maxSurge": 2}
    container = out["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "1Gi"}
    assert container["livenessProbe"]["httpGet"]["port"] == "http"


@pytest.mark.parametrize(("written", "stored"), [
    ("1E3", "1E3"), ("+1k", "+1k"), ("1.", "1."), ("100.035k", "100.035k"),  # kept
    ("1000", "1k"), ("1.5Gi", "1536Mi"), ("0.5", "500m"),  # canonicalised
    (" 1", "1"), ("1 ", "1"), (1000, "1k"), (-1, "-1"),  # JSON's whitespace and numbers
])
def test_a_quantity_is_stored_as_kubernetes_prints_it(written: object, stored: str) -> None:
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "i",
                                    "resources": {"requests": {"cpu": written}}}]}}
    message, _ = convert.from_dict(doc)
    out = convert.to_dict(message)
    assert out["spec"]["containers"][0]["resources"]["requests"] == {"cpu": stored}


def test_int64_fields_print_as_numbers_and_times_as_rfc3339() -> None:
    pod = core_pb2.Pod()
    pod.metadata.name = "p"
    pod.metadata.generation = 3
    pod.metadata.creation_timestamp.FromDatetime(dt.datetime(2026, 1, 2, 3, 4, 5))
    pod.spec.termination_grace_period_seconds = 30
    out = convert.to_dict(pod)
    assert out["apiVersion"] == "v1" and out["kind"] == "Pod"
    assert out["metadata"]["generation"] == 3
    assert out["metadata"]["creationTimestamp"] == "2026-01-02T03:04:05Z"
    assert out["spec"]["terminationGracePeriodSeconds"] == 30


def test_yaml_timestamps_and_ip_names() -> None:
    doc = yaml.safe_load("""
apiVersion: v1
kind: Pod
metadata: {name: p, creationTimestamp: 2026-01-02T03:04:05Z}
spec:
  hostNetwork: true
  containers: [{name: c, image: i, ports: [{containerPort: 80, hostIP: 127.0.0.1}]}]
status: {podIP: 10.0.0.1, hostIP: 192.0.2.1}
""")
    pod, _ = convert.from_dict(doc)
    assert isinstance(pod, core_pb2.Pod)
    assert pod.status.pod_ip == "10.0.0.1"
    assert pod.spec.containers[0].ports[0].host_ip == "127.0.0.1"
    assert pod.metadata.creation_timestamp.seconds > 0


def test_secret_data_is_base64_and_checked() -> None:
    ok, _ = convert.from_dict({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                               "data": {"k": "aGVsbG8="}})
    assert isinstance(ok, core_pb2.Secret) and ok.data["k"] == b"hello"
    assert convert.to_dict(ok)["data"] == {"k": "aGVsbG8="}
    with pytest.raises(convert.ConversionError, match=r"data\[k\]: illegal base64"):
        convert.from_dict({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                           "data": {"k": "not base64!"}})


@pytest.mark.parametrize("doc,expected", [
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": "x"}},
     "spec.containers: expected a list, got string"),
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": 1}}},
     r"metadata.labels\[a\]: expected a string, got integer"),
    ({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
      "spec": {"replicas": "three"}}, "spec.replicas: expected an integer, got string"),
    ({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
      "spec": {"paused": "yes"}}, "spec.paused: expected a boolean"),
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "c", "resources": {"requests": {"memory": "12 parsecs"}}}]}},
     r"spec.containers\[0\].resources.requests\[memory\]: .*quantit"),
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
      "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 2**40}]}]}},
     r"containerPort: 1099511627776 is out of range"),
])
def test_type_errors_name_the_field(doc: dict, expected: str) -> None:
    with pytest.raises(convert.ConversionError, match=expected) as info:
        convert.from_dict(doc)
    assert str(info.value).startswith(f'{doc["kind"]} "{doc["metadata"]["name"]}": ')


def test_unknown_fields_are_warnings_with_paths() -> None:
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "selfLink": "x"},
           "spec": {"containers": [{"name": "c", "image": "i", "resizePolicy": []}],
                    "priorityClassName": "high"}}
    pod, warnings = convert.from_dict(doc)
    assert pod.metadata.name == "p"  # type: ignore[attr-defined]
    assert sorted(warnings) == sorted([
        'unknown field "metadata.selfLink": not supported by Skiff, ignored',
        'unknown field "spec.containers[0].resizePolicy": not supported by Skiff, ignored',
        'unknown field "spec.priorityClassName": not supported by Skiff, ignored'])


@pytest.mark.parametrize("doc,expected", [
    ({"kind": "Pod", "metadata": {"name": "p"}}, "apiVersion not set"),
    ({"apiVersion": "v1", "metadata": {"name": "p"}}, "Kind' is missing"),
    ({"apiVersion": "v1", "kind": "Deployment"},
     'no matches for kind "Deployment" in version "v1"'),
    ({"apiVersion": "extensions/v1beta1", "kind": "Deployment"}, "removed in Kubernetes 1.16"),
    ({"apiVersion": "v1", "kind": "Gizmo"}, 'no matches for kind "Gizmo"'),
])
def test_missing_unknown_and_removed_kinds_are_refused(doc: dict, expected: str) -> None:
    with pytest.raises(kinds.UnknownKindError, match=expected):
        convert.from_dict(doc)
