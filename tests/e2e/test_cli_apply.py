"""`skiff apply`, `delete`, `create`, `label` and `annotate`, run as a user runs them: the real
CLI in a subprocess against a real apiserver over a real etcd. Each test works in a namespace
of its own."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message

from skiff.api import convert
from skiff.api.v1 import apps_pb2
from skiff.client import errors
from skiff.client.client import Client

REPO = Path(__file__).resolve().parents[2]
from fixtures.examples import example  # noqa: E402

Skiff = Callable[..., subprocess.CompletedProcess[str]]

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {labels}
spec:
{replicas}  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: {image}
        ports: [{{containerPort: 80}}]
"""


def deployment(image: str = "nginx:1.25", labels: str = "{app: web, tier: front}",
               replicas: int | None = 2) -> str:
    return DEPLOYMENT.format(image=image, labels=labels,
                             replicas=f"  replicas: {replicas}\n" if replicas is not None else "")


def configmap(name: str, **data: str) -> str:
    body = "".join(f"\n  {k}: {v!r}" for k, v in data.items()) or " {}"
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:{body}\n"


@pytest.fixture
def skiff(apiserver: Any, tmp_path: Path) -> Skiff:
    """Runs the CLI; returns the finished process (text stdout and stderr)."""
    env = {"SKIFF_CONFIG": str(tmp_path / "no-config"), "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(REPO)}

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli.main", "--server", apiserver.address, *args],
            cwd=tmp_path, env=env, input=input, capture_output=True, text=True, timeout=120)
    return run


@pytest.fixture
def ns(skiff: Skiff) -> str:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    result = skiff("create", "namespace", name)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"namespace/{name} created\n"
    return name


@pytest.fixture
def server(apiserver: Any) -> Callable[..., Any]:
    """Calls one async client method against the apiserver: server("get", kind, name, ns)."""
    def call(method: str, *args: Any, **kwargs: Any) -> Any:
        async def go() -> Any:
            async with Client(apiserver.address) as client:
                return await getattr(client, method)(*args, **kwargs)
        return asyncio.run(go())
    return call


def get_dict(server: Callable[..., Any], kind: str, name: str, ns: str) -> dict[str, Any]:
    obj: Message = server("get", kind, name, ns)
    return convert.to_dict(obj)


def exists(server: Callable[..., Any], kind: str, name: str, ns: str) -> bool:
    try:
        server("get", kind, name, ns)
    except errors.NotFound:
        return False
    return True


def write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


# ---- apply ----

def test_apply_create_unchanged_configured(skiff: Skiff, server: Any, ns: str,
                                           tmp_path: Path) -> None:
    app = write(tmp_path / "app.yaml", deployment())
    first = skiff("apply", "-f", app, "-n", ns)
    assert (first.returncode, first.stdout, first.stderr) == (
        0, "deployment.apps/web created\n", "")
    live = get_dict(server, "deploy", "web", ns)
    assert "kubectl.kubernetes.io/last-applied-configuration" in live["metadata"]["annotations"]

    again = skiff("apply", "-f", app, "-n", ns)
    assert (again.returncode, again.stdout) == (0, "deployment.apps/web unchanged\n")
    assert get_dict(server, "deploy", "web", ns)["metadata"]["resourceVersion"] == \
        live["metadata"]["resourceVersion"]

    write(tmp_path / "app.yaml", deployment(image="nginx:1.26"))
    changed = skiff("apply", "-f", app, "-n", ns)
    assert (changed.returncode, changed.stdout) == (0, "deployment.apps/web configured\n")
    live = get_dict(server, "deploy", "web", ns)
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    assert skiff("apply", "-f", app, "-n", ns).stdout == "deployment.apps/web unchanged\n"


def test_a_label_removed_from_the_manifest_goes(skiff: Skiff, server: Any, ns: str,
                                                tmp_path: Path) -> None:
    app = write(tmp_path / "app.yaml", deployment())
    assert skiff("apply", "-f", app, "-n", ns).returncode == 0
    assert skiff("label", "deploy", "web", "owner=ops", "-n", ns).returncode == 0
    write(tmp_path / "app.yaml", deployment(labels="{app: web}"))
    result = skiff("apply", "-f", app, "-n", ns)
    assert result.stdout == "deployment.apps/web configured\n"
    # tier was in the last manifest and is gone; owner never was in one and stays.
    assert get_dict(server, "deploy", "web", ns)["metadata"]["labels"] == {
        "app": "web", "owner": "ops"}


def test_scaled_replicas_survive_an_apply_that_leaves_them_out(skiff: Skiff, server: Any,
                                                               ns: str, tmp_path: Path) -> None:
    app = write(tmp_path / "app.yaml", deployment(replicas=None))
    assert skiff("apply", "-f", app, "-n", ns).returncode == 0
    live = server("get", apps_pb2.Deployment, "web", ns)
    live.spec.replicas = 5  # what `skiff scale` does
    server("update", live)
    write(tmp_path / "app.yaml", deployment(replicas=None, image="nginx:1.26"))
    assert skiff("apply", "-f", app, "-n", ns).stdout == "deployment.apps/web configured\n"
    spec = get_dict(server, "deploy", "web", ns)["spec"]
    assert spec["replicas"] == 5
    assert spec["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"


def test_replicas_removed_from_the_manifest_return_to_the_default(
        skiff: Skiff, server: Any, ns: str, tmp_path: Path) -> None:
    app = write(tmp_path / "app.yaml", deployment(replicas=3))
    assert skiff("apply", "-f", app, "-n", ns).returncode == 0
    write(tmp_path / "app.yaml", deployment(replicas=None))
    assert skiff("apply", "-f", app, "-n", ns).returncode == 0
    assert get_dict(server, "deploy", "web", ns)["spec"]["replicas"] == 1


def test_service_keeps_its_cluster_ip_and_is_unchanged_on_reapply(
        skiff: Skiff, server: Any, ns: str) -> None:
    path = str(example("service/nginx-service.yaml"))
    assert skiff("apply", "-f", path, "-n", ns).stdout == "service/nginx-service created\n"
    ip = get_dict(server, "svc", "nginx-service", ns)["spec"]["clusterIP"]
    assert skiff("apply", "-f", path, "-n", ns).stdout == "service/nginx-service unchanged\n"
    assert get_dict(server, "svc", "nginx-service", ns)["spec"]["clusterIP"] == ip


def test_apply_a_folder_and_a_multi_document_file(skiff: Skiff, server: Any, ns: str,
                                                  tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    write(folder / "b.yaml", configmap("b1", k="v") + "---\n" + configmap("b2", k="v"))
    write(folder / "a.yml", configmap("a", k="v"))
    write(folder / "c.json",
          '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}')
    write(folder / "README.md", "not a manifest")
    write(folder / "sub" / "d.yaml", configmap("d", k="v"))
    result = skiff("apply", "-f", str(folder), "-n", ns)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "configmap/a created", "configmap/b1 created", "configmap/b2 created",
        "configmap/c created"]
    assert not exists(server, "cm", "d", ns)
    recursive = skiff("apply", "-R", "-f", str(folder), "-n", ns)
    assert recursive.stdout.splitlines()[-1] == "configmap/d created"


def test_apply_kyaml_examples_with_their_own_namespace_and_markers(
        skiff: Skiff, server: Any, ns: str) -> None:
    files = ["configmap/configmaps.yaml", "service/access/backend-deployment.yaml",
             "pods/pod-rs.yaml", "secret/basicauth-secret.yaml"]
    # configmaps.yaml names namespace "default": with -n another one, apply refuses it.
    refused = skiff("apply", "-f", str(example(files[0])), "-n", ns)
    assert refused.returncode == 1
    assert refused.stderr.strip().endswith(
        "You must pass '--namespace=default' to perform this operation.")
    result = skiff("apply", *[a for f in files[1:] for a in ("-f", str(example(f)))],
                   "-n", ns)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "deployment.apps/backend created", "pod/pod1 created", "pod/pod2 created",
        "secret/secret-basic-auth created"]
    again = skiff("apply", *[a for f in files[1:] for a in ("-f", str(example(f)))],
                  "-n", ns)
    assert all(line.endswith(" unchanged") for line in again.stdout.splitlines()), again.stdout


def test_apply_over_an_object_made_by_create_warns_and_records_the_manifest(
        skiff: Skiff, server: Any, ns: str) -> None:
    assert skiff("create", "cm", "made", "-n", ns, "--from-literal", "k=old").returncode == 0
    result = skiff("apply", "-f", "-", "-n", ns, input=configmap("made", k="new"))
    assert (result.returncode, result.stdout) == (0, "configmap/made configured\n")
    assert result.stderr.startswith("Warning: resource configmaps/made is missing the "
                                    "kubectl.kubernetes.io/last-applied-configuration")
    live = get_dict(server, "cm", "made", ns)
    assert live["data"] == {"k": "new"}
    assert "kubectl.kubernetes.io/last-applied-configuration" in live["metadata"]["annotations"]
    again = skiff("apply", "-f", "-", "-n", ns, input=configmap("made", k="new"))
    assert (again.stdout, again.stderr) == ("configmap/made unchanged\n", "")


def test_apply_from_stdin(skiff: Skiff, server: Any, ns: str) -> None:
    result = skiff("apply", "-f", "-", "-n", ns, input=configmap("piped", k="v"))
    assert (result.returncode, result.stdout) == (0, "configmap/piped created\n")


def test_malformed_yaml_fails_with_one_line_and_creates_nothing(
        skiff: Skiff, server: Any, ns: str, tmp_path: Path) -> None:
    folder = tmp_path / "m"
    write(folder / "a.yaml", configmap("first", k="v"))
    write(folder / "b.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"
                             "data:\n  k: [unclosed\n")
    result = skiff("apply", "-f", str(folder), "-n", ns)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: error parsing {folder}/b.yaml: line ")
    assert not exists(server, "cm", "first", ns)


def test_removed_api_version_is_refused(skiff: Skiff, ns: str) -> None:
    result = skiff("apply", "-f", str(example("application/job/cronjob.yaml")), "-n", ns)
    assert result.returncode == 1
    assert 'no matches for kind "CronJob" in version "batch/v1beta1"' in result.stderr
    assert "use apiVersion: batch/v1" in result.stderr


def test_unsupported_field_prints_a_warning_naming_its_path(
        skiff: Skiff, server: Any, ns: str, tmp_path: Path) -> None:
    app = write(tmp_path / "app.yaml", deployment().replace(
        "        image:", "        fancyFeature: true\n        image:"))
    result = skiff("apply", "-f", app, "-n", ns)
    assert result.returncode == 0
    assert result.stdout == "deployment.apps/web created\n"
    assert result.stderr.startswith("Warning: ")
    assert "spec.template.spec.containers[0].fancyFeature" in result.stderr


def test_one_failing_object_does_not_stop_the_others(skiff: Skiff, server: Any, ns: str,
                                                     tmp_path: Path) -> None:
    bad = configmap("ok-before", k="v") + "---\n" + """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: invalid}
spec: {replicas: -1, selector: {matchLabels: {a: b}},
       template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}}
---
""" + configmap("ok-after", k="v")
    result = skiff("apply", "-f", write(tmp_path / "mixed.yaml", bad), "-n", ns)
    assert result.returncode == 1
    assert result.stdout.splitlines() == ["configmap/ok-before created",
                                          "configmap/ok-after created"]
    assert result.stderr.startswith("error: ")
    assert "spec.replicas" in result.stderr


def test_server_dry_run_stores_nothing(skiff: Skiff, server: Any, ns: str,
                                       tmp_path: Path) -> None:
    app = write(tmp_path / "app.yaml", configmap("dry", k="v"))
    result = skiff("apply", "-f", app, "-n", ns, "--dry-run=server")
    assert result.stdout == "configmap/dry created (server dry run)\n"
    assert not exists(server, "cm", "dry", ns)


# ---- delete ----

def test_delete_by_name_file_selector_and_all(skiff: Skiff, server: Any, ns: str,
                                              tmp_path: Path) -> None:
    many = "---\n".join(configmap(n, k="v") for n in ("a", "b", "c", "d", "e"))
    assert skiff("apply", "-f", write(tmp_path / "cms.yaml", many), "-n", ns).returncode == 0
    for name in ("c", "d"):
        assert skiff("label", "cm", name, "group=x", "-n", ns).returncode == 0

    by_name = skiff("delete", "cm", "a", "-n", ns)
    assert (by_name.returncode, by_name.stdout) == (0, 'configmap "a" deleted\n')
    assert not exists(server, "cm", "a", ns)

    write(tmp_path / "b.yaml", configmap("b"))
    by_file = skiff("delete", "-f", str(tmp_path / "b.yaml"), "-n", ns)
    assert by_file.stdout == 'configmap "b" deleted\n'

    by_label = skiff("delete", "configmaps", "-l", "group=x", "-n", ns)
    assert sorted(by_label.stdout.splitlines()) == ['configmap "c" deleted',
                                                    'configmap "d" deleted']

    everything = skiff("delete", "cm", "--all", "-n", ns)
    assert everything.stdout == 'configmap "e" deleted\n'
    nothing = skiff("delete", "cm", "--all", "-n", ns)
    assert nothing.returncode == 0
    assert "No resources found" in nothing.stderr


def test_delete_of_a_missing_object(skiff: Skiff, ns: str) -> None:
    missing = skiff("delete", "cm", "nope", "-n", ns)
    assert missing.returncode == 1
    assert missing.stderr == 'error: configmaps "nope" not found\n'
    ignored = skiff("delete", "cm", "nope", "-n", ns, "--ignore-not-found")
    assert (ignored.returncode, ignored.stdout, ignored.stderr) == (0, "", "")


def test_delete_type_slash_name_and_waits_for_a_namespace(skiff: Skiff, server: Any,
                                                          tmp_path: Path) -> None:
    name = f"gone-{uuid.uuid4().hex[:6]}"
    assert skiff("create", "ns", name).returncode == 0
    assert skiff("create", "cm", "inside", "-n", name, "--from-literal", "a=b").returncode == 0
    result = skiff("delete", f"namespace/{name}", "--timeout", "60s")
    assert (result.returncode, result.stdout) == (0, f'namespace "{name}" deleted\n')
    # --wait (the default) returned only once the namespace itself was gone.
    assert not exists(server, "ns", name, "")


# ---- create ----

def test_create_secret_and_configmap_from_literals_and_files(
        skiff: Skiff, server: Any, ns: str, tmp_path: Path) -> None:
    files = tmp_path / "conf"
    write(files / "app.properties", "color=blue\n")
    write(files / "logo.bin", "")
    (files / "logo.bin").write_bytes(b"\xff\xfe\x00")
    (files / "subdir").mkdir()
    write(tmp_path / "token.txt", "s3cr3t")

    secret = skiff("create", "secret", "generic", "creds", "-n", ns, "--from-literal",
                   "user=admin", "--from-file", f"token={tmp_path / 'token.txt'}")
    assert (secret.returncode, secret.stdout) == (0, "secret/creds created\n")
    data = server("get", "secret", "creds", ns)
    assert dict(data.data) == {"user": b"admin", "token": b"s3cr3t"}
    assert data.type == "Opaque"

    cm = skiff("create", "-n", ns, "configmap", "conf", "--from-file", str(files),
               "--from-literal", "mode=fast")
    assert (cm.returncode, cm.stdout) == (0, "configmap/conf created\n")
    live = server("get", "cm", "conf", ns)
    assert dict(live.data) == {"app.properties": "color=blue\n", "mode": "fast"}
    assert dict(live.binary_data) == {"logo.bin": b"\xff\xfe\x00"}

    again = skiff("create", "configmap", "conf", "-n", ns, "--from-literal", "a=b")
    assert again.returncode == 1
    assert again.stderr == 'error: configmaps "conf" already exists\n'
    bad = skiff("create", "secret", "generic", "x", "-n", ns, "--from-literal", "novalue")
    assert bad.returncode == 1
    assert "expected key=value" in bad.stderr


# ---- label and annotate ----

def test_label_overwrite_rules(skiff: Skiff, server: Any, ns: str) -> None:
    assert skiff("create", "cm", "c", "-n", ns, "--from-literal", "a=b").returncode == 0
    assert skiff("label", "cm", "c", "env=prod", "-n", ns).stdout == "configmap/c labeled\n"
    refused = skiff("label", "cm", "c", "env=dev", "-n", ns)
    assert refused.returncode == 1
    assert refused.stderr == ("error: 'env' already has a value (prod), and --overwrite is "
                              "false\n")
    same = skiff("label", "cm", "c", "env=prod", "-n", ns)
    assert (same.returncode, same.stdout) == (0, "configmap/c not labeled\n")
    forced = skiff("label", "cm/c", "env=dev", "--overwrite", "-n", ns)
    assert forced.stdout == "configmap/c labeled\n"
    assert dict(server("get", "cm", "c", ns).metadata.labels) == {"env": "dev"}
    removed = skiff("label", "cm", "c", "env-", "-n", ns)
    assert removed.stdout == "configmap/c unlabeled\n"
    assert dict(server("get", "cm", "c", ns).metadata.labels) == {}
    invalid = skiff("label", "cm", "c", "bad=no spaces", "-n", ns)
    assert invalid.returncode == 1
    assert invalid.stderr.startswith('error: invalid label value: "bad=no spaces"')


def test_annotate_overwrite_rules(skiff: Skiff, server: Any, ns: str) -> None:
    assert skiff("create", "cm", "c", "-n", ns, "--from-literal", "a=b").returncode == 0
    first = skiff("annotate", "cm", "c", "note=free text, any value", "-n", ns)
    assert first.stdout == "configmap/c annotated\n"
    refused = skiff("annotate", "cm", "c", "note=other", "-n", ns)
    assert refused.returncode == 1
    assert "'note' already has a value (free text, any value)" in refused.stderr
    assert skiff("annotate", "cm", "c", "note=other", "--overwrite", "-n", ns).returncode == 0
    assert server("get", "cm", "c", ns).metadata.annotations["note"] == "other"
    assert skiff("annotate", "cm", "c", "note-", "-n", ns).returncode == 0
    assert "note" not in server("get", "cm", "c", ns).metadata.annotations


def test_the_projects_examples_apply_as_the_readme_says(skiff: Skiff, server: Any) -> None:
    examples = str(REPO / "examples")
    result = skiff("apply", "-f", examples, "-n", "demo")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "namespace/demo created", "cronjob.batch/tick created", "daemonset.apps/node-load created",
        "job.batch/count created", "pod/greeter created", "replicaset.apps/sleepers created",
        "secret/greeting created", "configmap/web-page created", "deployment.apps/web created",
        "service/web created"]
    again = skiff("apply", "-f", examples, "-n", "demo")
    assert all(line.endswith(" unchanged") for line in again.stdout.splitlines()), again.stdout
    assert skiff("delete", "namespace", "demo").returncode == 0
