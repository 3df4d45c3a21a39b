"""`skiff config get-contexts|use-context|current-context|view` and `--context`, on the
files Skiff writes; where kubectl is on PATH, it reads the same files and sees the same."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cli import main as cli_main
from cluster.certs import ClusterPki
from skiff.client.config import ClientConfig, Kubeconfig

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not on PATH")


def skiff(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli_main.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def kubectl(config: Path, *argv: str) -> str:
    assert KUBECTL is not None
    done = subprocess.run([KUBECTL, "config", *argv, "--kubeconfig", str(config)],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def two_clusters(tmp_path: Path) -> Path:
    """A user's kubeconfig with a cluster of their own, then a Skiff cluster's admin config
    added by `skiff up`'s own code (with real certificates)."""
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "prod", "cluster": {"server": "https://prod.example:6443"}}],
        "users": [{"name": "me", "user": {"token": "s3cret"}}],
        "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "me",
                                                  "namespace": "web"}}],
        "current-context": "prod"}))
    ClusterPki(tmp_path / "pki").ensure_local_cluster(
        node_name="n1", node_ips=[], server="127.0.0.1:7443", configs={"admin": path})
    return path


def test_skiff_up_adds_its_context_and_keeps_the_users_others(two_clusters: Path) -> None:
    config = Kubeconfig.load(two_clusters)
    assert [c.name for c in config.contexts()] == ["prod", "skiff"]
    assert config.current_context == "skiff"
    assert ClientConfig.load(two_clusters).server == "https://127.0.0.1:7443"
    assert ClientConfig.load(two_clusters, context="prod").token == "s3cret"


def test_get_contexts_marks_the_current_one_and_use_context_switches(
        two_clusters: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = ["--config", str(two_clusters)]
    code, out, _ = skiff(capsys, *cfg, "config", "get-contexts")
    assert code == 0
    assert out.splitlines() == [
        "CURRENT   NAME    CLUSTER   AUTHINFO   NAMESPACE",
        "          prod    prod      me         web",
        "*         skiff   skiff     skiff"]
    assert skiff(capsys, *cfg, "config", "use-context", "prod") == (
        0, 'Switched to context "prod".\n', "")
    assert skiff(capsys, *cfg, "config", "current-context") == (0, "prod\n", "")
    assert skiff(capsys, *cfg, "config", "get-contexts", "-o", "name")[1] == "prod\nskiff\n"
    assert ClientConfig.load(two_clusters).server == "https://prod.example:6443"
    code, _, err = skiff(capsys, *cfg, "config", "use-context", "nope")
    assert code == 1
    assert err == f'error: no context "nope" in {two_clusters} (known: prod, skiff)\n'


def test_context_flag_picks_the_cluster_a_command_talks_to(
        two_clusters: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Nothing listens on the cluster of the context: the error names the server it chose.
    cfg = ["--config", str(two_clusters)]
    code, _, err = skiff(capsys, *cfg, "--context", "nope", "get", "ns")
    assert (code, err) == (1, "error: cannot read client config: no context \"nope\" in "
                              f"{two_clusters} (known: prod, skiff)\n")


def test_view_omits_the_secrets(two_clusters: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = skiff(capsys, "--config", str(two_clusters), "config", "view")
    assert code == 0
    view = yaml.safe_load(out)
    assert view["users"][0]["user"] == {"token": "REDACTED"}
    assert view["users"][1]["user"] == {"client-certificate-data": "DATA+OMITTED",
                                        "client-key-data": "DATA+OMITTED"}
    assert "BEGIN" not in out and "s3cret" not in out


@needs_kubectl
def test_kubectl_reads_the_file_and_sees_the_same_contexts(
        two_clusters: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = ["--config", str(two_clusters)]
    for argv in (["get-contexts"], ["current-context"], ["view"], ["view", "--raw"]):
        ours = skiff(capsys, *cfg, "config", *argv)[1]
        theirs = kubectl(two_clusters, *argv)
        if argv[0] == "view":
            assert yaml.safe_load(ours) == yaml.safe_load(theirs), argv
        else:
            assert [line.rstrip() for line in ours.splitlines()] == \
                [line.rstrip() for line in theirs.splitlines()], argv
    skiff(capsys, *cfg, "config", "use-context", "prod")
    assert kubectl(two_clusters, "current-context") == "prod\n"
    kubectl(two_clusters, "use-context", "skiff")  # and a file kubectl wrote, Skiff reads
    assert ClientConfig.load(two_clusters).server == "https://127.0.0.1:7443"


@needs_kubectl
def test_kubectl_reads_a_daemons_config_and_a_converted_flat_one(tmp_path: Path) -> None:
    daemon = tmp_path / "kubelet.conf"
    ClientConfig(server="https://127.0.0.1:1", ca=b"CA", cert=b"C", key=b"K").save(daemon)
    assert kubectl(daemon, "current-context") == "default\n"
    flat = tmp_path / "flat"
    flat.write_text("server: 127.0.0.1:6443\ntoken: t\n")
    Kubeconfig.load(flat).save(flat)
    assert "default" in kubectl(flat, "get-contexts")
