"""The pytest plugin as its users meet it (issue 14, part 5).

The first test is a user's test: the session's `skiff_cluster` (two nodes, from the ini
setting in pyproject.toml), an image of this machine loaded into it, a Deployment applied
and waited for. The others run pytest itself in a subprocess on test files written here,
as a user's project would be run: one reuses this session's cluster with --skiff-cluster
(which must outlive the run) and checks what a failing test's report shows; the last makes
a cluster of its own and is interrupted while a test sleeps, and nothing of that cluster
may remain.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cluster.dockercli import docker
from cluster.multinode import CLUSTER_LABEL, list_clusters
from pytest_skiff.session import SkiffCluster

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def loaded_busybox(skiff_cluster: SkiffCluster, busybox_image: str) -> str:
    skiff_cluster.load_image(busybox_image)
    return busybox_image


def deployment(name: str, image: str, replicas: int) -> str:
    return textwrap.dedent(f"""\
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: {name}
        spec:
          replicas: {replicas}
          selector:
            matchLabels: {{app: {name}}}
          template:
            metadata:
              labels: {{app: {name}}}
            spec:
              terminationGracePeriodSeconds: 0
              containers:
              - name: app
                image: {image}
                imagePullPolicy: IfNotPresent
                command: ["sleep", "3600"]
        """)


def test_a_deployment_of_a_loaded_image_becomes_available_on_every_node(
        skiff_cluster: SkiffCluster, skiff_namespace: str, loaded_busybox: str) -> None:
    assert len(skiff_cluster.nodes) == 2
    replicas = 2 * len(skiff_cluster.nodes)
    applied = skiff_cluster.apply(deployment("web", loaded_busybox, replicas),
                                  namespace=skiff_namespace)
    assert applied == ["deployment.apps/web created"]

    web = skiff_cluster.wait_for("deployment", "web", "Available", namespace=skiff_namespace,
                                 timeout=180)
    web = skiff_cluster.wait_for(
        "deployment", "web", lambda d: d["status"].get("availableReplicas") == replicas,
        namespace=skiff_namespace, timeout=60)
    assert web["spec"]["replicas"] == replicas

    pods = skiff_cluster.list("pods", skiff_namespace, label_selector="app=web")
    assert len(pods) == replicas
    assert {p["status"]["phase"] for p in pods} == {"Running"}
    assert {p["spec"]["nodeName"] for p in pods} == set(skiff_cluster.nodes)

    # apply again: nothing changed; the CLI sees the same objects through the same config
    assert skiff_cluster.apply(deployment("web", loaded_busybox, replicas),
                               namespace=skiff_namespace) == ["deployment.apps/web unchanged"]
    listed = skiff_cluster.run("get", "pods", "-n", skiff_namespace, "--no-headers").stdout
    assert sorted(line.split()[0] for line in listed.splitlines()) == sorted(
        p["metadata"]["name"] for p in pods)


INNER_TESTS = '''
import time


def test_talker_fails(skiff_cluster, skiff_namespace):
    skiff_cluster.apply("""
apiVersion: v1
kind: Pod
metadata:
  name: talker
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: speaker
    image: BUSYBOX
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo hello-from-the-talker; echo second-line; sleep 3600"]
""", namespace=skiff_namespace)
    skiff_cluster.wait_for("pod", "talker", "Ready", namespace=skiff_namespace, timeout=120)
    deadline = time.monotonic() + 30
    while "second-line" not in skiff_cluster.logs("talker", skiff_namespace):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert 1 + 1 == 3, "deliberately failing"


def test_waiting_for_nothing_times_out(skiff_cluster):
    skiff_cluster.wait_for("deployment", "nowhere", "Available", timeout=1)


def test_passes(skiff_cluster):
    assert skiff_cluster.nodes
'''


def run_pytest(folder: Path, *args: str, timeout: float = 600
               ) -> subprocess.CompletedProcess[str]:
    """pytest on `folder` in a subprocess, as a user's project runs it (this checkout's
    packages first on the path; `-p` loads the plugin also where skiff is not installed)."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "pytest_skiff.plugin", "-p", "no:cacheprovider",
         "--rootdir", str(folder), *args, str(folder)], cwd=folder, env=inner_env(),
        capture_output=True, text=True, timeout=timeout, check=False)


def inner_env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path}


def test_a_failing_test_reports_its_events_and_pod_logs_and_a_reused_cluster_stays(
        skiff_cluster: SkiffCluster, loaded_busybox: str, tmp_path: Path) -> None:
    (tmp_path / "test_user_app.py").write_text(INNER_TESTS.replace("BUSYBOX", loaded_busybox))
    result = run_pytest(tmp_path, "--skiff-cluster", skiff_cluster.name, "-rA")
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "2 failed, 1 passed" in out, out

    failure = out.split("_ test_talker_fails _", 1)[1].split("_ test_waiting_for_nothing", 1)[0]
    assert "deliberately failing" in failure
    assert "- skiff events in namespace test-talker-fails-" in failure, failure
    assert "Scheduled Pod/talker: Successfully assigned" in failure, failure
    assert "Started Pod/talker: Started container speaker" in failure, failure
    assert "- skiff logs of pod test-talker-fails-" in failure
    assert "/talker (Running, on skiff-" in failure, failure
    assert "--- container speaker (last 50 lines) ---\nhello-from-the-talker\nsecond-line" \
        in failure, failure

    timeout = out.split("_ test_waiting_for_nothing_times_out _", 1)[1]
    assert "WaitTimeout: Deployment nowhere in namespace default: not Available within " \
           "1 s; it does not exist" in timeout, timeout
    assert "- skiff events in namespace default" in timeout

    assert f"using running cluster {skiff_cluster.name} (2 node(s)); it is left running" in out
    assert "PASSED test_user_app.py::test_passes" in out
    # --skiff-cluster never deletes: the cluster runs on, the test's namespace is gone
    assert (skiff_cluster.name, 2, "Running") in [
        (c.name, c.nodes, c.status) for c in list_clusters()]
    namespaces = [n["metadata"]["name"] for n in skiff_cluster.list("namespaces")]
    assert not [n for n in namespaces if n.startswith("test-talker-fails-")
                and skiff_cluster.get("namespace", n)["status"].get("phase") != "Terminating"]


SLEEPER = '''
import os
from pathlib import Path


def test_sleeps(skiff_cluster):
    Path(os.environ["SKIFF_TEST_MARKER"]).write_text(skiff_cluster.name)
    import time
    time.sleep(600)
'''


def labelled(name: str) -> list[str]:
    label = f"label={CLUSTER_LABEL}={name}"
    return (docker("container", "ls", "-aq", "--filter", label).stdout.split()
            + docker("volume", "ls", "-q", "--filter", label).stdout.split()
            + docker("network", "ls", "-q", "--filter", label).stdout.split())


def delete_leftover(name: str) -> None:
    """What a failed test left of a cluster (the test fails either way)."""
    if name and labelled(name):
        subprocess.run([sys.executable, "-m", "cli.main", "cluster", "delete", name],
                       env=inner_env(), capture_output=True, timeout=300, check=False)


def start_pytest(folder: Path, prefix: str, *args: str) -> subprocess.Popen[str]:
    """pytest on `folder` in the background, in a session of its own (signals reach it
    only when sent to it), making a 1-node cluster named PREFIX-xxxxxx."""
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "pytest_skiff.plugin", "-p", "no:cacheprovider",
         "--rootdir", str(folder), "-o", f"skiff_name_prefix={prefix}", "--skiff-nodes", "1",
         "-s", *args, str(folder)],
        cwd=folder, env={**inner_env(), "SKIFF_TEST_MARKER": str(folder / "cluster-name")},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def wait_for_marker(inner: subprocess.Popen[str], marker: Path) -> str:
    deadline = time.monotonic() + 400
    while not marker.exists() or not marker.read_text():
        assert inner.poll() is None, inner.communicate()[0]
        assert time.monotonic() < deadline, "no cluster within 400 s"
        time.sleep(0.5)
    return marker.read_text()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_session_deletes_the_cluster_it_made(
        sig: signal.Signals, node_image: str, tmp_path: Path,
        request: pytest.FixtureRequest) -> None:
    (tmp_path / "test_sleeper.py").write_text(SLEEPER)
    prefix = f"{request.config.getini('skiff_name_prefix')}-int"
    inner = start_pytest(tmp_path, prefix)
    name = ""
    try:
        name = wait_for_marker(inner, tmp_path / "cluster-name")
        assert name.startswith(prefix) and labelled(name)
        inner.send_signal(sig)
        out, _ = inner.communicate(timeout=300)
    finally:
        if inner.poll() is None:
            inner.kill()
            inner.wait()
        delete_leftover(name)
    assert inner.returncode == pytest.ExitCode.INTERRUPTED, out
    assert f"skiff: cluster {name} deleted" in out, out
    assert labelled(name) == []


def test_ctrl_c_while_the_cluster_is_being_made_leaves_nothing(
        node_image: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    (tmp_path / "test_sleeper.py").write_text(SLEEPER)
    prefix = f"{request.config.getini('skiff_name_prefix')}-mid-{os.getpid()}"
    inner = start_pytest(tmp_path, prefix)
    name = ""
    try:
        deadline = time.monotonic() + 120
        while not name:  # its node container is up: the install has yet to run
            assert inner.poll() is None, inner.communicate()[0]
            assert time.monotonic() < deadline, "no node container within 120 s"
            name = next((c.name for c in list_clusters()
                         if c.name.startswith(prefix) and c.status == "Running"), "")
            time.sleep(0.2)
        inner.send_signal(signal.SIGINT)
        out, _ = inner.communicate(timeout=300)
    finally:
        if inner.poll() is None:
            inner.kill()
            inner.wait()
        delete_leftover(name)
    assert inner.returncode == pytest.ExitCode.INTERRUPTED, out
    assert not (tmp_path / "cluster-name").exists(), out  # the test never ran
    assert labelled(name) == [], out


KEPT = '''
import os
from pathlib import Path


def test_uses_it(skiff_cluster, skiff_namespace):
    Path(os.environ["SKIFF_TEST_MARKER"]).write_text(skiff_cluster.name)
    assert skiff_cluster.get("namespace", skiff_namespace)["metadata"]["name"] == skiff_namespace
'''


def test_skiff_keep_keeps_the_cluster_and_says_how_to_reach_and_delete_it(
        node_image: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    (tmp_path / "test_kept.py").write_text(KEPT)
    prefix = f"{request.config.getini('skiff_name_prefix')}-keep"
    inner = start_pytest(tmp_path, prefix, "--skiff-keep")
    name = ""
    try:
        out, _ = inner.communicate(timeout=600)
        name = (tmp_path / "cluster-name").read_text()
        assert inner.returncode == 0, out
        assert f"skiff: cluster {name} kept (--skiff-keep). Reach it with" in out, out
        # The config it names works, and the test's namespace is still there to look at.
        config = out.split("SKIFF_CONFIG=", 1)[1].split()[0]
        listed = subprocess.run([sys.executable, "-m", "cli.main", "get", "namespaces",
                                 "--no-headers"], env={**inner_env(), "SKIFF_CONFIG": config},
                                capture_output=True, text=True, timeout=60, check=True).stdout
        assert "test-uses-it-" in listed
        assert f"skiff cluster delete {name}" in out
        assert (name, 1, "Running") in [(c.name, c.nodes, c.status) for c in list_clusters()]
        deleted = subprocess.run([sys.executable, "-m", "cli.main", "cluster", "delete", name],
                                 env=inner_env(), capture_output=True, text=True, timeout=300,
                                 check=False)
        assert deleted.returncode == 0, deleted.stderr
    finally:
        if inner.poll() is None:
            inner.kill()
            inner.wait()
        delete_leftover(name)
    assert labelled(name) == []
