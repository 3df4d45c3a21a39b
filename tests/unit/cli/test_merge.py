"""Unit tests for cli.merge: the three-way merge of client-side apply."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cli.merge import list_rule, three_way_merge


def deployment(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1"}]},
            },
        },
    }
    base["spec"].update(spec)
    return base


def live_of(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the server would hold after creating `manifest`: defaults and system fields."""
    live = copy.deepcopy(manifest)
    live["metadata"].update(uid="u-1", resourceVersion="7", generation=1,
                            creationTimestamp="2026-01-01T00:00:00Z")
    spec = live["spec"]
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("strategy", {"type": "RollingUpdate",
                                 "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    for c in spec["template"]["spec"]["containers"]:
        c.setdefault("imagePullPolicy", "IfNotPresent")
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        for port in c.get("ports", []):
            port.setdefault("protocol", "TCP")
    spec["template"]["spec"].setdefault("restartPolicy", "Always")
    live["status"] = {"replicas": 1, "readyReplicas": 1}
    return live


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["spec"]["template"]["spec"]["containers"]  # type: ignore[no-any-return]


# ---- the basics ----

def test_applying_the_same_manifest_gives_the_live_object_back() -> None:
    manifest = deployment(replicas=3)
    live = live_of(manifest)
    assert three_way_merge(manifest, manifest, live) == live


def test_fields_set_in_the_manifest_win() -> None:
    old = deployment(replicas=3)
    live = live_of(old)
    live["spec"]["replicas"] = 5  # changed by someone else
    new = deployment(replicas=3)
    containers(new)[0]["image"] = "nginx:2"
    merged = three_way_merge(old, new, live)
    assert merged["spec"]["replicas"] == 3
    assert containers(merged)[0]["image"] == "nginx:2"


def test_server_defaults_and_system_fields_are_kept() -> None:
    manifest = deployment()
    live = live_of(manifest)
    merged = three_way_merge(manifest, manifest, live)
    assert merged["spec"]["revisionHistoryLimit"] == 10
    assert merged["spec"]["strategy"]["type"] == "RollingUpdate"
    assert containers(merged)[0]["terminationMessagePath"] == "/dev/termination-log"
    assert merged["metadata"]["uid"] == "u-1"
    assert merged["metadata"]["resourceVersion"] == "7"
    assert merged["status"] == {"replicas": 1, "readyReplicas": 1}


def test_scaled_replicas_are_kept_when_the_manifest_never_set_them() -> None:
    manifest = deployment()  # no replicas
    live = live_of(manifest)
    live["spec"]["replicas"] = 4  # skiff scale
    assert three_way_merge(manifest, manifest, live)["spec"]["replicas"] == 4


def test_replicas_removed_from_the_manifest_are_removed_so_the_default_comes_back() -> None:
    old = deployment(replicas=3)
    live = live_of(old)
    merged = three_way_merge(old, deployment(), live)
    assert "replicas" not in merged["spec"]


def test_fields_removed_since_the_last_apply_are_removed() -> None:
    old = deployment(minReadySeconds=5, paused=True)
    live = live_of(old)
    merged = three_way_merge(old, deployment(), live)
    assert "minReadySeconds" not in merged["spec"]
    assert "paused" not in merged["spec"]


def test_a_removed_label_goes_and_labels_others_added_stay() -> None:
    old = deployment()
    old["metadata"]["labels"] = {"app": "web", "tier": "front"}
    live = live_of(old)
    live["metadata"]["labels"]["owner"] = "ops"  # skiff label
    new = deployment()
    new["metadata"]["labels"] = {"app": "web"}
    merged = three_way_merge(old, new, live)
    assert merged["metadata"]["labels"] == {"app": "web", "owner": "ops"}


def test_removing_a_whole_map_removes_it() -> None:
    old = deployment()
    old["metadata"]["annotations"] = {"a": "1"}
    live = live_of(old)
    new = deployment()
    merged = three_way_merge(old, new, live)
    assert "annotations" not in merged["metadata"]


def test_null_in_the_manifest_deletes() -> None:
    manifest = deployment()
    live = live_of(manifest)
    live["metadata"]["labels"]["owner"] = "ops"
    new = deployment(revisionHistoryLimit=None)
    new["metadata"]["labels"]["owner"] = None
    merged = three_way_merge(manifest, new, live)
    assert "revisionHistoryLimit" not in merged["spec"]
    assert merged["metadata"]["labels"] == {"app": "web"}


def test_null_for_a_field_the_live_object_lacks_is_dropped() -> None:
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    new = {**manifest, "data": {"a": "1", "b": None}}
    merged = three_way_merge(manifest, new, manifest)
    assert merged["data"] == {"a": "1"}


def test_nested_maps_merge_recursively() -> None:
    old = {"spec": {"a": {"b": {"c": 1, "d": 2}}}}
    live = {"spec": {"a": {"b": {"c": 1, "d": 2, "e": 3}, "f": 4}}}
    new = {"spec": {"a": {"b": {"c": 10}}}}
    assert three_way_merge(old, new, live) == {"spec": {"a": {"b": {"c": 10, "e": 3}, "f": 4}}}


def test_without_a_last_applied_configuration_nothing_is_removed() -> None:
    live = live_of(deployment(minReadySeconds=5))
    merged = three_way_merge(None, deployment(), live)
    assert merged["spec"]["minReadySeconds"] == 5


def test_inputs_are_not_modified() -> None:
    old, new = deployment(replicas=2), deployment(replicas=3)
    live = live_of(old)
    snapshots = copy.deepcopy((old, new, live))
    merged = three_way_merge(old, new, live)
    merged["spec"]["template"]["spec"]["containers"][0]["image"] = "changed"
    merged["metadata"]["labels"]["x"] = "y"
    assert (old, new, live) == snapshots


def test_a_scalar_replaced_by_a_map_and_back() -> None:
    assert three_way_merge({"a": 1}, {"a": {"b": 2}}, {"a": 1}) == {"a": {"b": 2}}
    assert three_way_merge({"a": {"b": 2}}, {"a": 3}, {"a": {"b": 2, "c": 1}}) == {"a": 3}


# ---- lists merged by key ----

def test_containers_merge_by_name_keeping_server_defaults() -> None:
    old = deployment()
    containers(old).append({"name": "sidecar", "image": "busybox"})
    live = live_of(old)
    new = copy.deepcopy(old)
    containers(new)[0]["image"] = "nginx:2"
    merged = three_way_merge(old, new, live)
    web, sidecar = containers(merged)
    assert web["image"] == "nginx:2"
    assert web["terminationMessagePath"] == "/dev/termination-log"
    assert sidecar == containers(live)[1]


def test_a_container_removed_from_the_manifest_is_removed() -> None:
    old = deployment()
    containers(old).append({"name": "sidecar", "image": "busybox"})
    live = live_of(old)
    merged = three_way_merge(old, deployment(), live)
    assert [c["name"] for c in containers(merged)] == ["web"]


def test_a_container_no_manifest_listed_is_kept() -> None:
    manifest = deployment()
    live = live_of(manifest)
    containers(live).append({"name": "injected", "image": "proxy"})
    merged = three_way_merge(manifest, manifest, live)
    assert [c["name"] for c in containers(merged)] == ["web", "injected"]


def test_containers_follow_the_manifest_order() -> None:
    old = deployment()
    containers(old).append({"name": "b", "image": "b"})
    live = live_of(old)
    new = copy.deepcopy(old)
    containers(new).reverse()
    assert [c["name"] for c in containers(three_way_merge(old, new, live))] == ["b", "web"]


def test_env_merges_by_name() -> None:
    old = deployment()
    containers(old)[0]["env"] = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    live = live_of(old)
    containers(live)[0]["env"].append({"name": "INJECTED", "value": "x"})
    new = deployment()
    containers(new)[0]["env"] = [{"name": "A", "value": "10"}]
    merged = three_way_merge(old, new, live)
    assert containers(merged)[0]["env"] == [{"name": "A", "value": "10"},
                                            {"name": "INJECTED", "value": "x"}]


def test_container_ports_merge_by_port_and_protocol_with_the_default_protocol() -> None:
    old = deployment()
    containers(old)[0]["ports"] = [{"containerPort": 53}, {"containerPort": 53,
                                                           "protocol": "UDP"}]
    live = live_of(old)  # the first port got protocol TCP
    new = copy.deepcopy(old)
    containers(new)[0]["ports"][0]["name"] = "dns-tcp"
    merged = three_way_merge(old, new, live)
    assert containers(merged)[0]["ports"] == [
        {"containerPort": 53, "protocol": "TCP", "name": "dns-tcp"},
        {"containerPort": 53, "protocol": "UDP"}]


def test_service_ports_merge_by_port_keeping_allocated_node_ports() -> None:
    old: dict[str, Any] = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"type": "NodePort", "selector": {"app": "web"},
                    "ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}
    live = copy.deepcopy(old)
    live["spec"]["clusterIP"] = "10.96.0.10"
    live["spec"]["ports"] = [
        {"port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30080},
        {"port": 443, "targetPort": 443, "protocol": "TCP", "nodePort": 30443}]
    new = copy.deepcopy(old)
    new["spec"]["ports"] = [{"port": 80, "targetPort": 9090}]
    merged = three_way_merge(old, new, live)
    assert merged["spec"]["clusterIP"] == "10.96.0.10"
    assert merged["spec"]["ports"] == [
        {"port": 80, "targetPort": 9090, "protocol": "TCP", "nodePort": 30080}]


def test_volumes_keep_only_the_source_the_manifest_names() -> None:
    old = deployment()
    old["spec"]["template"]["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    live = live_of(old)
    new = deployment()
    new["spec"]["template"]["spec"]["volumes"] = [
        {"name": "data", "hostPath": {"path": "/srv"}}]
    merged = three_way_merge(old, new, live)
    assert merged["spec"]["template"]["spec"]["volumes"] == [
        {"name": "data", "hostPath": {"path": "/srv"}}]


def test_volume_mounts_merge_by_mount_path() -> None:
    old = deployment()
    containers(old)[0]["volumeMounts"] = [{"name": "a", "mountPath": "/a"},
                                          {"name": "b", "mountPath": "/b"}]
    live = live_of(old)
    new = deployment()
    containers(new)[0]["volumeMounts"] = [{"name": "a", "mountPath": "/a", "readOnly": True}]
    merged = three_way_merge(old, new, live)
    assert containers(merged)[0]["volumeMounts"] == [
        {"name": "a", "mountPath": "/a", "readOnly": True}]


def test_deployment_strategy_switch_drops_the_defaulted_rolling_update() -> None:
    manifest = deployment()
    live = live_of(manifest)
    new = deployment(strategy={"type": "Recreate"})
    assert three_way_merge(manifest, new, live)["spec"]["strategy"] == {"type": "Recreate"}


def test_deployment_strategy_keeps_defaults_inside_the_fields_it_names() -> None:
    manifest = deployment(strategy={"rollingUpdate": {"maxSurge": "30%"}})
    live = live_of(deployment())
    merged = three_way_merge(None, manifest, live)
    # type goes (the server defaults it again); maxUnavailable inside rollingUpdate stays.
    assert merged["spec"]["strategy"] == {
        "rollingUpdate": {"maxSurge": "30%", "maxUnavailable": "25%"}}


def test_items_without_their_key_replace_the_list() -> None:
    old = deployment()
    live = live_of(old)
    new = deployment()
    new["spec"]["template"]["spec"]["containers"] = [{"image": "nameless"}]
    assert containers(three_way_merge(old, new, live)) == [{"image": "nameless"}]


# ---- lists replaced whole ----

def test_other_lists_are_replaced() -> None:
    old = deployment()
    containers(old)[0]["args"] = ["--a", "--b"]
    old["spec"]["template"]["spec"]["tolerations"] = [{"key": "k", "operator": "Exists"}]
    live = live_of(old)
    new = deployment()
    containers(new)[0]["args"] = ["--c"]
    new["spec"]["template"]["spec"]["tolerations"] = [{"key": "x", "operator": "Exists"}]
    merged = three_way_merge(old, new, live)
    assert containers(merged)[0]["args"] == ["--c"]
    assert merged["spec"]["template"]["spec"]["tolerations"] == [
        {"key": "x", "operator": "Exists"}]


def test_an_empty_list_in_the_manifest_empties_it() -> None:
    old = {"metadata": {"name": "x", "finalizers": ["a"]}}
    live = {"metadata": {"name": "x", "finalizers": ["a", "b"]}}
    assert three_way_merge(old, {"metadata": {"name": "x", "finalizers": []}},
                           live)["metadata"]["finalizers"] == []


def test_finalizers_merge_as_a_set() -> None:
    old = {"metadata": {"finalizers": ["a", "b"]}}
    live = {"metadata": {"finalizers": ["a", "b", "system"]}}
    new = {"metadata": {"finalizers": ["a", "c"]}}
    assert three_way_merge(old, new, live)["metadata"]["finalizers"] == ["a", "c", "system"]


@pytest.mark.parametrize(("path", "keys"), [
    (("spec", "template", "spec", "containers"), ("name",)),
    (("spec", "template", "spec", "containers", "ports"), ("containerPort", "protocol")),
    (("spec", "initContainers", "ports"), ("containerPort", "protocol")),
    (("spec", "ports"), ("port", "protocol")),
    (("spec", "containers", "volumeMounts"), ("mountPath",)),
    (("spec", "jobTemplate", "spec", "template", "spec", "volumes"), ("name",)),
    (("spec", "template", "spec", "containers", "env"), ("name",)),
    (("spec", "template", "spec", "imagePullSecrets"), ("name",)),
])
def test_list_rules_by_path(path: tuple[str, ...], keys: tuple[str, ...]) -> None:
    rule = list_rule(path)
    assert rule is not None
    assert tuple(k for k, _ in rule.keys) == keys


@pytest.mark.parametrize("path", [
    ("spec", "template", "spec", "tolerations"),
    ("spec", "template", "spec", "containers", "args"),
    ("spec", "selector", "matchExpressions"),
    ("spec", "template", "spec", "containers", "envFrom"),
])
def test_lists_without_a_rule_are_replaced(path: tuple[str, ...]) -> None:
    assert list_rule(path) is None
