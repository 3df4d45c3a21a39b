"""Unit tests for cli.manifests: reading -f sources, and resolving command targets."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fixtures.examples import EXAMPLES, PROJECT_EXAMPLES, example, needs_examples

from cli.errors import CliError
from cli.manifests import Manifest, ManifestError, load, parse, target_namespace
from cli.selection import select

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n"


def names(manifests: list[Manifest]) -> list[str]:
    return [f"{m.kind.kind}/{m.name}" for m in manifests]


# ---- documents ----

def test_multi_document_yaml_with_markers_and_empty_documents() -> None:
    text = ("---\n" + CM.format(name="a") + "---\n---\n# only a comment\n---\n"
            + CM.format(name="b") + "...\n---\n" + CM.format(name="c"))
    assert names(parse(text, "app.yaml")) == ["ConfigMap/a", "ConfigMap/b", "ConfigMap/c"]


def test_an_empty_file_has_no_objects() -> None:
    assert parse("", "empty.yaml") == []
    assert parse("# nothing\n", "empty.yaml") == []


def test_flow_style_kyaml() -> None:
    text = """{
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {name: "flow", labels: {app.kubernetes.io/name: "x",},},  # comment
      data: {special.how: "very"},
    }"""
    (m,) = parse(text, "flow.yaml")
    assert m.data["metadata"]["labels"] == {"app.kubernetes.io/name": "x"}
    assert m.data["data"] == {"special.how": "very"}


def test_json_file() -> None:
    text = '{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}'
    (m,) = parse(text, "ns.json")
    assert m.kind.kind == "Namespace" and m.name == "n"


def test_malformed_json_names_file_and_line() -> None:
    with pytest.raises(ManifestError, match=r"error parsing ns.json: line 2, column"):
        parse('{"apiVersion": "v1",\n "kind" "Namespace"}', "ns.json")


def test_list_items_are_flattened() -> None:
    text = """apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}
- apiVersion: v1
  kind: List
  items:
  - {apiVersion: v1, kind: Secret, metadata: {name: b}}
"""
    assert names(parse(text, "list.yaml")) == ["ConfigMap/a", "Secret/b"]


def test_typed_lists_are_flattened_too() -> None:
    text = "apiVersion: v1\nkind: ConfigMapList\nitems:\n- " + \
        "{apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n"
    assert names(parse(text, "list.yaml")) == ["ConfigMap/a"]


def test_values_become_json_shaped() -> None:
    text = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"
            "data: {1: one, true: 'yes', when: 2024-01-02T03:04:05Z}\n")
    (m,) = parse(text, "a.yaml")
    assert m.data["data"] == {"1": "one", "true": "yes", "when": "2024-01-02T03:04:05Z"}


# ---- errors name the file and what is wrong ----

def test_malformed_yaml_names_the_file_and_line() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n   bad: indent\n"
    with pytest.raises(ManifestError) as err:
        parse(text, "app.yaml")
    message = str(err.value)
    assert message.startswith("error parsing app.yaml: line 5")
    assert "\n" not in message


def test_unclosed_flow_collection() -> None:
    with pytest.raises(ManifestError, match=r"^error parsing app.yaml: line \d+"):
        parse("apiVersion: v1\nkind: ConfigMap\ndata: {a: b\n", "app.yaml")


def test_duplicate_keys_are_an_error() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n"
    with pytest.raises(ManifestError,
                       match=r'app.yaml: line 5, column 3: mapping key "name" already defined '
                             r"at line 4"):
        parse(text, "app.yaml")


def test_yaml_merge_keys_may_repeat_a_key() -> None:
    text = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"
            "data:\n  <<: {k: '1', j: '2'}\n  k: '3'\n")
    (m,) = parse(text, "app.yaml")
    assert m.data["data"] == {"k": "3", "j": "2"}


@pytest.mark.parametrize(("text", "what"), [
    ("- a\n- b\n", "a list"),
    ("just text\n", "a string"),
    ("42\n", "a number"),
])
def test_a_document_that_is_not_a_mapping(text: str, what: str) -> None:
    with pytest.raises(ManifestError,
                       match=rf"error parsing app.yaml: document 1 \(line 1\) is {what}, not "
                             r"an object"):
        parse(text, "app.yaml")


def test_the_second_document_is_named() -> None:
    text = CM.format(name="a") + "---\n- x\n"
    with pytest.raises(ManifestError, match=r"document 2 \(line 8\)"):
        parse(text, "app.yaml")


def test_missing_api_version() -> None:
    text = "kind: Pod\nmetadata: {name: x}\n"
    with pytest.raises(ManifestError, match=r'^app.yaml: Pod "x": apiVersion not set'):
        parse(text, "app.yaml")


def test_missing_kind() -> None:
    with pytest.raises(ManifestError, match=r"^app.yaml: object \"x\": Object 'Kind' is missing"):
        parse("apiVersion: v1\nmetadata: {name: x}\n", "app.yaml")


def test_unknown_kind() -> None:
    with pytest.raises(ManifestError, match=r'no matches for kind "Ingress"'):
        parse("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: x}\n",
              "app.yaml")


def test_field_of_the_wrong_type() -> None:
    text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: w}\nspec: {replicas: two}\n"
    with pytest.raises(ManifestError, match=r'app.yaml: Deployment "w" is invalid: '
                                            r"spec.replicas: expected an integer"):
        parse(text, "app.yaml")


def test_unknown_fields_are_left_to_the_server_to_warn_about() -> None:
    text = CM.format(name="a") + "extra: 1\n"
    assert parse(text, "app.yaml")[0].data["extra"] == 1


# ---- sources ----

def test_a_folder_reads_manifest_files_sorted(tmp_path: Path) -> None:
    (tmp_path / "b.yml").write_text(CM.format(name="b"))
    (tmp_path / "a.yaml").write_text(CM.format(name="a"))
    (tmp_path / "c.json").write_text(
        '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}')
    (tmp_path / "notes.txt").write_text("not a manifest")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "d.yaml").write_text(CM.format(name="d"))
    assert names(load([str(tmp_path)])) == ["ConfigMap/a", "ConfigMap/b", "ConfigMap/c"]
    assert names(load([str(tmp_path)], recursive=True)) == [
        "ConfigMap/a", "ConfigMap/b", "ConfigMap/c", "ConfigMap/d"]


def test_an_explicit_file_may_have_any_extension(tmp_path: Path) -> None:
    path = tmp_path / "manifest.txt"
    path.write_text(CM.format(name="a"))
    assert names(load([str(path)])) == ["ConfigMap/a"]


def test_a_missing_path() -> None:
    with pytest.raises(ManifestError, match=r'the path "nope.yaml" does not exist'):
        load(["nope.yaml"])


def test_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(CM.format(name="a")))
    (m,) = load(["-"])
    assert m.source == "STDIN" and m.name == "a"


def test_a_bad_file_anywhere_fails_the_whole_load(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(CM.format(name="a"))
    (tmp_path / "z.yaml").write_text("kind: [\n")
    with pytest.raises(ManifestError, match=rf"error parsing {tmp_path}/z.yaml: line"):
        load([str(tmp_path)])


@needs_examples
def test_every_example_manifest_loads() -> None:
    refused = {"application/job/cronjob.yaml", "pods/inject/pod-single-secret-env-variable.yaml"}
    files = sorted(EXAMPLES.rglob("*.yaml"))
    assert len(files) > 70
    for path in files:
        if str(path.relative_to(EXAMPLES)) in refused:
            continue
        manifests = load([str(path)])
        assert manifests, path
        assert all(m.name for m in manifests), path


def test_the_projects_examples_load_and_cover_every_kind_the_readme_names() -> None:
    manifests = load([str(PROJECT_EXAMPLES)])
    assert {m.kind.kind for m in manifests} >= {
        "Pod", "ReplicaSet", "Deployment", "Service", "Secret", "ConfigMap", "DaemonSet",
        "Job", "CronJob", "Namespace"}
    assert manifests[0].kind.kind == "Namespace"  # first, so `-n demo` finds it


def test_kyaml_examples_match_their_block_twins() -> None:
    (flow,) = load([str(example("controllers/replicaset.yaml"))])
    assert flow.kind.kind == "ReplicaSet"
    assert flow.data["spec"]["replicas"] == 3
    two = load([str(example("configmap/configmaps.yaml"))])
    assert names(two) == ["ConfigMap/special-config", "ConfigMap/env-config"]
    assert two[0].data["data"] == {"special.how": "very"}


def test_document_end_markers_in_examples() -> None:
    (m,) = load([str(example("service/access/backend-service.yaml"))])
    assert m.kind.kind == "Service"


def test_removed_cronjob_version_is_refused_with_kinds_message() -> None:
    with pytest.raises(ManifestError, match=r'cronjob.yaml: CronJob "hello": no matches for kind '
                                            r'"CronJob" in version "batch/v1beta1": it was '
                                            r"removed in Kubernetes 1.25; use apiVersion: "
                                            r"batch/v1"):
        load([str(example("application/job/cronjob.yaml"))])


def test_example_without_api_version_is_refused() -> None:
    with pytest.raises(ManifestError, match=r'Pod "secret-envars-test-pod": apiVersion not set'):
        load([str(example("pods/inject/pod-single-secret-env-variable.yaml"))])


# ---- namespaces ----

def test_target_namespace_rules() -> None:
    (own,) = parse(CM.format(name="a").replace("name: a", "name: a\n  namespace: own"), "a")
    (bare,) = parse(CM.format(name="b"), "b")
    (cluster,) = parse("apiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n", "c")
    assert target_namespace(own, None, "default") == "own"
    assert target_namespace(own, "own", "default") == "own"
    assert target_namespace(bare, "flag", "default") == "flag"
    assert target_namespace(bare, None, "default") == "default"
    assert target_namespace(cluster, "flag", "default") == ""
    with pytest.raises(ManifestError, match=r'the namespace from the provided object "own" does '
                                            r'not match the namespace "other". You must pass '
                                            r"'--namespace=own' to perform this operation."):
        target_namespace(own, "other", "default")


# ---- command targets ----

def test_select_type_and_names() -> None:
    selection = select(["po,svc", "a", "b"], namespace="ns")
    assert [(t.kind.kind, t.namespace, t.name) for t in selection.named] == [
        ("Pod", "ns", "a"), ("Pod", "ns", "b"), ("Service", "ns", "a"), ("Service", "ns", "b")]
    assert [t.ref for t in select(["deploy/web", "ns/x"]).named] == [
        "deployment.apps/web", "namespace/x"]
    assert select(["ns/x"], namespace="other").named[0].namespace == ""


def test_select_by_selector_or_all() -> None:
    assert [k.kind for k in select(["pods"], selector="a=b").listed] == ["Pod"]
    assert [k.kind for k in select(["pods,cm"], all_objects=True).listed] == ["Pod", "ConfigMap"]


@pytest.mark.parametrize(("resources", "kwargs", "message"), [
    ([], {}, "You must provide one or more resources"),
    (["pods"], {}, "no name was specified"),
    (["pods", "a"], {"selector": "x=y"}, "name cannot be provided"),
    (["pods/a", "b"], {}, "resource/name form"),
    (["pods", "a"], {"all_namespaces": True}, "across all namespaces"),
    (["nosuchkind", "a"], {}, 'doesn\'t have a resource type "nosuchkind"'),
])
def test_select_errors(resources: list[str], kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(CliError, match=message):
        select(resources, **kwargs)  # type: ignore[arg-type]


def test_select_from_files(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(CM.format(name="a"))
    (target,) = select([], filenames=[str(path)], namespace="ns").named
    assert (target.kind.kind, target.namespace, target.name) == ("ConfigMap", "ns", "a")
    with pytest.raises(CliError, match="may not specify resource arguments"):
        select(["pods"], filenames=[str(path)])
