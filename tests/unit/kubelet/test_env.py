"""The container environment, as the Kubernetes kubelet builds it (kubelet/env.py)."""

from __future__ import annotations

from collections import ChainMap
from typing import Any

import pytest
import yaml
from fixtures.examples import example

from kubelet.env import (
    MissingReference,
    UnsupportedFieldPath,
    build_env,
    expand,
    expand_command,
    is_env_var_name,
)
from skiff.api.convert import from_dict
from skiff.api.v1 import core_pb2


class Objects:
    """An ObjectSource over dicts that counts reads."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], core_pb2.Secret] = {}
        self.config_maps: dict[tuple[str, str], core_pb2.ConfigMap] = {}
        self.reads: list[tuple[str, str, str]] = []

    def secret(self, name: str, namespace: str = "default", **data: bytes) -> None:
        self.secrets[namespace, name] = core_pb2.Secret(data=data)

    def config_map(self, name: str, namespace: str = "default", **data: str) -> None:
        self.config_maps[namespace, name] = core_pb2.ConfigMap(data=data)

    def get_secret(self, namespace: str, name: str) -> core_pb2.Secret | None:
        self.reads.append(("secret", namespace, name))
        return self.secrets.get((namespace, name))

    def get_config_map(self, namespace: str, name: str) -> core_pb2.ConfigMap | None:
        self.reads.append(("configmap", namespace, name))
        return self.config_maps.get((namespace, name))


def make_pod(container: dict[str, Any], **spec: Any) -> core_pb2.Pod:
    manifest = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "default", "uid": "u-123",
                     "labels": {"app": "web"}, "annotations": {"team": "blue"}},
        "spec": {"containers": [{"name": "app", "image": "busybox", **container}], **spec},
    }
    pod, warnings = from_dict(manifest)
    assert warnings == []
    assert isinstance(pod, core_pb2.Pod)
    return pod


def env_of(pod: core_pb2.Pod, objects: Objects | None = None, **kwargs: Any
           ) -> list[tuple[str, str]]:
    env, warnings = build(pod, objects, **kwargs)
    assert warnings == []
    return env


def build(pod: core_pb2.Pod, objects: Objects | None = None, **kwargs: Any
          ) -> tuple[list[tuple[str, str]], list[str]]:
    kwargs.setdefault("pod_ip", "10.1.0.5")
    kwargs.setdefault("host_ip", "192.168.0.10")
    return build_env(pod, pod.spec.containers[0], objects or Objects(), **kwargs)


# ---- expand: Kubernetes' own expansion cases (third_party/forked/golang/expansion) ----

CONTEXT = {"VAR_A": "A", "VAR_B": "B", "VAR_C": "C", "VAR_REF": "$(VAR_A)", "VAR_EMPTY": ""}

EXPANSION_CASES = [
    ("whole string", "$(VAR_A)", "A"),
    ("repeat", "$(VAR_A)-$(VAR_A)", "A-A"),
    ("beginning", "$(VAR_A)-1", "A-1"),
    ("middle", "___$(VAR_B)___", "___B___"),
    ("end", "___$(VAR_C)", "___C"),
    ("compound", "$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
    ("escape & expand", "$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),
    ("compound escape", "$$(VAR_A)_$$(VAR_B)", "$(VAR_A)_$(VAR_B)"),
    ("mixed in escapes", "f000-$$VAR_A", "f000-$VAR_A"),
    ("backslash escape ignored", "foo\\$(VAR_C)bar", "foo\\Cbar"),
    ("backslash escape ignored 2", "foo\\\\$(VAR_C)bar", "foo\\\\Cbar"),
    ("lots of backslashes", "foo\\\\\\\\$(VAR_A)bar", "foo\\\\\\\\Abar"),
    ("nested var references", "$(VAR_A$(VAR_B))", "$(VAR_A$(VAR_B))"),
    ("nested var references second type", "$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"),
    ("value is a reference", "$(VAR_REF)", "$(VAR_A)"),
    ("value is a reference x 2", "%%$(VAR_REF)--$(VAR_REF)%%", "%%$(VAR_A)--$(VAR_A)%%"),
    ("empty var", "foo$(VAR_EMPTY)bar", "foobar"),
    ("unterminated expression", "foo$(VAR_Awhoops!", "foo$(VAR_Awhoops!"),
    ("expression without operator", "f00__(VAR_A)__", "f00__(VAR_A)__"),
    ("shell special vars pass through", "$?_boo_$!", "$?_boo_$!"),
    ("bare operators are ignored", "$VAR_A", "$VAR_A"),
    ("undefined vars are passed through", "$(VAR_DNE)", "$(VAR_DNE)"),
    ("multiple (even) operators, var undefined", "$$$$$$(BIG_MONEY)", "$$$(BIG_MONEY)"),
    ("multiple (even) operators, var defined", "$$$$$$(VAR_A)", "$$$(VAR_A)"),
    ("multiple (odd) operators, var undefined", "$$$$$$$(GOOD_ODDS)", "$$$$(GOOD_ODDS)"),
    ("multiple (odd) operators, var defined", "$$$$$$$(VAR_A)", "$$$A"),
    ("missing open expression", "$VAR_A)", "$VAR_A)"),
    ("shell syntax ignored", "${VAR_A}", "${VAR_A}"),
    ("trailing incomplete expression not consumed", "$(VAR_B)_______$(A", "B_______$(A"),
    ("trailing incomplete expression, no content", "$(VAR_C)_______$(", "C_______$("),
    ("operator at end of input string is preserved", "$(VAR_A)foobarzab$", "Afoobarzab$"),
    ("shell escaped incomplete expr", "foo-\\$(VAR_A", "foo-\\$(VAR_A"),
    ("lots of $( in middle", "--$($($($($--", "--$($($($($--"),
    ("lots of $( in beginning", "$($($($($--foo$(", "$($($($($--foo$("),
    ("lots of $( at end", "foo0--$($($($(", "foo0--$($($($("),
    ("escaped operators in variable names are not escaped", "$(foo$$var)", "$(foo$$var)"),
    ("newline not expanded", "\n", "\n"),
    ("empty input", "", ""),
    ("lone operator", "$", "$"),
    ("empty name is undefined", "$()", "$()"),
    ("non-ascii around a reference", "é$(VAR_A)ü$ü", "éAü$ü"),
]


@pytest.mark.parametrize(("text", "expected"),
                         [pytest.param(t, e, id=name) for name, t, e in EXPANSION_CASES])
def test_expand_matches_kubernetes(text: str, expected: str) -> None:
    assert expand(text, CONTEXT) == expected


@pytest.mark.parametrize(("text", "expected"),
                         [pytest.param(t, e, id=name) for name, t, e in EXPANSION_CASES])
def test_expand_with_two_contexts_matches_kubernetes(text: str, expected: str) -> None:
    # Kubernetes' TestMappingDual: the same results when the variables are split over two
    # maps searched in order.
    first = {"VAR_A": "A", "VAR_EMPTY": ""}
    second = {"VAR_B": "B", "VAR_C": "C", "VAR_REF": "$(VAR_A)"}
    assert expand(text, ChainMap(first, second)) == expected


def test_expand_command_and_args() -> None:
    container = core_pb2.Container(command=["/bin/$(TOOL)", "$$(TOOL)"],
                                   args=["--port=$(PORT)", "$(UNDEFINED)", "$(PORT"])
    command, args = expand_command(container, [("TOOL", "serve"), ("PORT", "8080")])
    assert command == ["/bin/serve", "$(TOOL)"]
    assert args == ["--port=8080", "$(UNDEFINED)", "$(PORT"]
    assert expand_command(container, {"TOOL": "x"})[0] == ["/bin/x", "$(TOOL)"]
    assert expand_command(core_pb2.Container(), {}) == ([], [])


@pytest.mark.parametrize(("name", "valid"), [
    ("MY_VAR", True), ("my.env-name", True), ("_x", True), ("-x", True), (".x", True),
    ("MyEnvName1", True), ("1BAD", False), ("", False), ("A B", False), ("A=B", False),
    (".", False), ("..", False), ("..x", False), ("é", False),
])
def test_env_var_names(name: str, valid: bool) -> None:
    assert is_env_var_name(name) is valid


# ---- build_env ----

def test_dependent_envars_example() -> None:
    path = example("pods/inject/dependent-envars.yaml")
    pod, _ = from_dict(yaml.safe_load(path.read_text()))
    assert isinstance(pod, core_pb2.Pod)
    env = env_of(pod)
    assert env == [
        ("SERVICE_PORT", "80"),
        ("SERVICE_IP", "172.17.0.1"),
        # PROTOCOL is defined after this entry: a forward reference stays as written.
        ("UNCHANGED_REFERENCE", "$(PROTOCOL)://172.17.0.1:80"),
        ("PROTOCOL", "https"),
        ("SERVICE_ADDRESS", "https://172.17.0.1:80"),
        # $$ escapes the reference.
        ("ESCAPED_REFERENCE", "$(PROTOCOL)://172.17.0.1:80"),
    ]
    command, args = expand_command(pod.spec.containers[0], env)
    assert command == ["sh", "-c"]
    assert args == [pod.spec.containers[0].args[0]]  # nothing in it to expand


def test_plain_values_and_empty_value() -> None:
    pod = make_pod({"env": [{"name": "A", "value": "1"}, {"name": "EMPTY"}]})
    assert env_of(pod) == [("A", "1"), ("EMPTY", "")]


def test_later_env_entry_wins_and_sees_the_earlier_value() -> None:
    pod = make_pod({"env": [
        {"name": "PATHS", "value": "/a"},
        {"name": "OTHER", "value": "x"},
        {"name": "PATHS", "value": "$(PATHS):/b"},
    ]})
    assert env_of(pod) == [("PATHS", "/a:/b"), ("OTHER", "x")]


def test_a_variable_does_not_see_itself_before_it_is_defined() -> None:
    pod = make_pod({"env": [{"name": "SELF", "value": "<$(SELF)>"}]})
    assert env_of(pod) == [("SELF", "<$(SELF)>")]


def test_env_from_config_map_with_prefix_then_env_overrides() -> None:
    objects = Objects()
    objects.config_map("settings", LOG_LEVEL="debug", MODE="fast")
    pod = make_pod({
        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "APP_"}],
        "env": [{"name": "APP_MODE", "value": "slow"},
                {"name": "SUMMARY", "value": "$(APP_LOG_LEVEL)/$(APP_MODE)"}],
    })
    assert env_of(pod, objects) == [
        ("APP_LOG_LEVEL", "debug"),
        ("APP_MODE", "slow"),  # env replaces envFrom, at the envFrom key's place
        ("SUMMARY", "debug/slow"),
    ]


def test_env_from_values_are_not_expanded() -> None:
    objects = Objects()
    objects.config_map("c", RAW="$(HOME)", HOME="/root")
    pod = make_pod({"envFrom": [{"configMapRef": {"name": "c"}}]})
    assert env_of(pod, objects) == [("HOME", "/root"), ("RAW", "$(HOME)")]


def test_env_from_sources_in_order_later_source_wins() -> None:
    objects = Objects()
    objects.config_map("first", SHARED="from-config", ONLY_CM="1")
    objects.secret("second", SHARED=b"from-secret", TOKEN=b"t0k")
    pod = make_pod({"envFrom": [{"configMapRef": {"name": "first"}},
                                {"secretRef": {"name": "second"}}]})
    assert env_of(pod, objects) == [
        ("ONLY_CM", "1"), ("SHARED", "from-secret"), ("TOKEN", "t0k")]


def test_env_from_invalid_names_are_skipped_with_kubernetes_event_text() -> None:
    objects = Objects()
    objects.config_map("c", GOOD="1", **{"1BAD": "x", "has space": "y"})
    objects.secrets["default", "s"] = core_pb2.Secret(data={"ok": b"1", "no=pe": b"2"})
    pod = make_pod({"envFrom": [{"configMapRef": {"name": "c"}},
                                {"secretRef": {"name": "s"}, "prefix": "S_"}]})
    env, warnings = build(pod, objects)
    assert env == [("GOOD", "1"), ("S_ok", "1")]
    assert warnings == [
        "Keys [1BAD, has space] from the EnvFrom configMap default/c were skipped since they "
        "are considered invalid environment variable names.",
        "Keys [S_no=pe] from the EnvFrom secret default/s were skipped since they are "
        "considered invalid environment variable names.",
    ]


def test_prefix_can_make_an_invalid_key_valid() -> None:
    objects = Objects()
    objects.config_map("c", **{"1ST": "one"})
    pod = make_pod({"envFrom": [{"configMapRef": {"name": "c"}, "prefix": "N_"}]})
    assert env_of(pod, objects) == [("N_1ST", "one")]


def test_env_from_ignores_config_map_binary_data() -> None:
    objects = Objects()
    objects.config_maps["default", "c"] = core_pb2.ConfigMap(data={"A": "1"},
                                                             binary_data={"B": b"\x00"})
    pod = make_pod({"envFrom": [{"configMapRef": {"name": "c"}}]})
    assert env_of(pod, objects) == [("A", "1")]


def test_secret_and_config_map_key_refs() -> None:
    objects = Objects()
    objects.secret("db-pass", password="s3cr\u00e9t".encode())
    objects.config_map("db", host="db.default.svc")
    pod = make_pod({"env": [
        {"name": "DB_PASSWORD",
         "valueFrom": {"secretKeyRef": {"name": "db-pass", "key": "password"}}},
        {"name": "DB_HOST", "valueFrom": {"configMapKeyRef": {"name": "db", "key": "host"}}},
        {"name": "DSN", "value": "postgres://app:$(DB_PASSWORD)@$(DB_HOST)"},
    ]})
    assert env_of(pod, objects) == [
        ("DB_PASSWORD", "s3cr\u00e9t"),
        ("DB_HOST", "db.default.svc"),
        ("DSN", "postgres://app:s3cr\u00e9t@db.default.svc"),
    ]


def test_secret_bytes_that_are_not_utf8_do_not_fail_the_pod() -> None:
    objects = Objects()
    objects.secret("bin", blob=b"ok\xff")
    pod = make_pod({"env": [
        {"name": "BLOB", "valueFrom": {"secretKeyRef": {"name": "bin", "key": "blob"}}}]})
    assert env_of(pod, objects) == [("BLOB", "ok\ufffd")]


def test_each_object_is_read_once_per_build() -> None:
    objects = Objects()
    objects.secret("s", a=b"1", b=b"2")
    pod = make_pod({
        "envFrom": [{"secretRef": {"name": "s"}, "prefix": "X_"}],
        "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "a"}}},
                {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "b"}}}],
    })
    assert env_of(pod, objects) == [("X_a", "1"), ("X_b", "2"), ("A", "1"), ("B", "2")]
    assert objects.reads == [("secret", "default", "s")]


@pytest.mark.parametrize(("env_var", "message"), [
    ({"name": "P", "valueFrom": {"secretKeyRef": {"name": "db-pass", "key": "password"}}},
     'secret "db-pass" not found'),
    ({"name": "P", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "k"}}},
     'configmap "x" not found'),
    ({"name": "P", "valueFrom": {"secretKeyRef": {"name": "present", "key": "password"}}},
     "couldn't find key password in Secret default/present"),
    ({"name": "P", "valueFrom": {"configMapKeyRef": {"name": "present", "key": "k"}}},
     "couldn't find key k in ConfigMap default/present"),
])
def test_missing_required_references(env_var: dict[str, Any], message: str) -> None:
    objects = Objects()
    objects.secret("present", other=b"1")
    objects.config_map("present", other="1")
    pod = make_pod({"env": [env_var]})
    with pytest.raises(MissingReference) as caught:
        build(pod, objects)
    assert str(caught.value) == message


@pytest.mark.parametrize("env_from", [
    {"secretRef": {"name": "db-pass"}}, {"configMapRef": {"name": "x"}}])
def test_missing_required_env_from(env_from: dict[str, Any]) -> None:
    pod = make_pod({"envFrom": [env_from]})
    with pytest.raises(MissingReference, match="not found"):
        build(pod)


def test_optional_references_are_skipped_silently() -> None:
    objects = Objects()
    objects.secret("present", other=b"1")
    objects.config_map("present", other="1")
    pod = make_pod({
        "envFrom": [{"secretRef": {"name": "gone", "optional": True}},
                    {"configMapRef": {"name": "gone", "optional": True}}],
        "env": [
            {"name": "A", "value": "kept"},
            {"name": "B", "valueFrom": {"secretKeyRef": {
                "name": "gone", "key": "k", "optional": True}}},
            {"name": "C", "valueFrom": {"secretKeyRef": {
                "name": "present", "key": "k", "optional": True}}},
            {"name": "D", "valueFrom": {"configMapKeyRef": {
                "name": "gone", "key": "k", "optional": True}}},
            {"name": "E", "valueFrom": {"configMapKeyRef": {
                "name": "present", "key": "k", "optional": True}}},
            {"name": "F", "value": "[$(B)]"},
        ],
    })
    assert env_of(pod, objects) == [("A", "kept"), ("F", "[$(B)]")]


def test_field_refs() -> None:
    fields = {
        "NAME": "metadata.name", "NS": "metadata.namespace", "UID": "metadata.uid",
        "APP": "metadata.labels['app']", "TEAM": "metadata.annotations['team']",
        "NO_LABEL": "metadata.labels['missing']", "NODE": "spec.nodeName",
        "SA": "spec.serviceAccountName", "POD_IP": "status.podIP", "POD_IPS": "status.podIPs",
        "HOST_IP": "status.hostIP", "HOST_IPS": "status.hostIPs",
    }
    pod = make_pod({"env": [{"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}
                            for name, path in fields.items()]},
                   nodeName="node-a")
    assert dict(env_of(pod)) == {
        "NAME": "web-1", "NS": "default", "UID": "u-123", "APP": "web", "TEAM": "blue",
        "NO_LABEL": "", "NODE": "node-a", "SA": "default", "POD_IP": "10.1.0.5",
        "POD_IPS": "10.1.0.5", "HOST_IP": "192.168.0.10", "HOST_IPS": "192.168.0.10",
    }
    dual = dict(env_of(pod, pod_ips=["10.1.0.5", "fd00::5"],
                       host_ips=["192.168.0.10", "fd00::10"]))
    assert dual["POD_IPS"] == "10.1.0.5,fd00::5"
    assert dual["HOST_IPS"] == "192.168.0.10,fd00::10"
    assert dual["POD_IP"] == "10.1.0.5"


def test_field_ref_with_api_version_and_expansion_of_a_field() -> None:
    pod = make_pod({"env": [
        {"name": "MY_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                     "fieldPath": "status.podIP"}}},
        {"name": "URL", "value": "http://$(MY_IP):8080"},
    ]})
    assert env_of(pod, pod_ip="10.9.9.9") == [("MY_IP", "10.9.9.9"),
                                              ("URL", "http://10.9.9.9:8080")]


def test_pod_ip_unknown_yet_is_empty() -> None:
    pod = make_pod({"env": [{"name": "IP", "valueFrom": {"fieldRef": {
        "fieldPath": "status.podIP"}}}]})
    assert env_of(pod, pod_ip="") == [("IP", "")]


@pytest.mark.parametrize(("field_path", "api_version"), [
    ("spec.restartPolicy", "v1"), ("metadata.spam['x']", "v1"), ("status.podIP", "v2")])
def test_unsupported_field_refs(field_path: str, api_version: str) -> None:
    pod = make_pod({})
    pod.spec.containers[0].env.add(name="X").value_from.field_ref.CopyFrom(
        core_pb2.ObjectFieldSelector(api_version=api_version, field_path=field_path))
    with pytest.raises(UnsupportedFieldPath):
        build(pod)


def test_service_env_is_appended_and_usable_in_expansion() -> None:
    services = [("REDIS_SERVICE_HOST", "10.0.0.7"), ("REDIS_SERVICE_PORT", "6379"),
                ("KUBERNETES_SERVICE_HOST", "10.0.0.1")]
    pod = make_pod({"env": [
        {"name": "REDIS_URL", "value": "redis://$(REDIS_SERVICE_HOST):$(REDIS_SERVICE_PORT)"},
        {"name": "KUBERNETES_SERVICE_HOST", "value": "override"},
    ]})
    assert env_of(pod, service_env=services) == [
        ("REDIS_URL", "redis://10.0.0.7:6379"),
        ("KUBERNETES_SERVICE_HOST", "override"),  # the container's definition, once
        ("REDIS_SERVICE_HOST", "10.0.0.7"),
        ("REDIS_SERVICE_PORT", "6379"),
    ]


def test_container_variables_shadow_service_variables_in_expansion() -> None:
    pod = make_pod({"env": [{"name": "DB_SERVICE_HOST", "value": "mine"},
                            {"name": "USE", "value": "$(DB_SERVICE_HOST)"}]})
    env = env_of(pod, service_env={"DB_SERVICE_HOST": "10.0.0.9"})
    assert env == [("DB_SERVICE_HOST", "mine"), ("USE", "mine")]


def test_env_from_is_read_in_the_pods_namespace() -> None:
    objects = Objects()
    objects.config_map("c", namespace="other", A="1")
    pod = make_pod({"envFrom": [{"configMapRef": {"name": "c"}}]})
    pod.metadata.namespace = "other"
    assert env_of(pod, objects) == [("A", "1")]
    assert objects.reads == [("configmap", "other", "c")]
