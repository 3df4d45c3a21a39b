"""The pytest plugin as its users meet it (issue 14, part 5).

The first test is a user's test: the session's `skiff_cluster` (two nodes, from the ini
setting in pyproject.toml), an image of this machine loaded into it, a Deployment applied
and waited for. The second runs pytest itself in a subprocess on test files written here, as
a user's project would be run, reusing this session's cluster with --skiff-cluster (which
must outlive the run), and checks what a failing test's report shows.
(test_pytest_skiff_cleanup.py has the sessions that make clusters of their own.)
"""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest
from fixtures.innerpytest import run_pytest

from cluster.multinode import list_clusters
from pytest_skiff.session import SkiffCluster


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
    assert len(skiff_cluster.nodes) == 3  # ini skiff_nodes
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


def test_the_helpers_read_wait_delete_and_an_async_test_has_its_own_client(
        skiff_cluster: SkiffCluster, skiff_namespace: str, loaded_busybox: str) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "one"},
           "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
               "name": "app", "image": loaded_busybox, "imagePullPolicy": "IfNotPresent",
               "command": ["sh", "-c", "echo up; sleep 3600"]}]}}
    assert skiff_cluster.apply(pod, namespace=skiff_namespace) == ["pod/one created"]
    ready = skiff_cluster.wait_for("pod", "one", "Ready", namespace=skiff_namespace)
    assert ready["spec"]["nodeName"] in skiff_cluster.nodes
    assert skiff_cluster.get("po", "one", skiff_namespace)["status"]["phase"] == "Running"
    reasons = {e["reason"] for e in skiff_cluster.events(skiff_namespace)}
    assert {"Scheduled", "Started"} <= reasons, reasons
    assert skiff_cluster.call(lambda c: c.version()).version

    assert skiff_cluster.delete("pod", "one", skiff_namespace, wait=True)
    assert skiff_cluster.list("pods", skiff_namespace) == []
    assert not skiff_cluster.delete("pod", "one", skiff_namespace)

    async def read_namespace() -> str:
        async with skiff_cluster.client() as client:
            namespace = await client.get("Namespace", skiff_namespace)
        return str(namespace.metadata.name)

    assert asyncio.run(read_namespace()) == skiff_namespace


INNER_TESTS = '''
import time

import pytest


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


@pytest.fixture
def app_that_never_comes(skiff_cluster, skiff_namespace):
    skiff_cluster.wait_for("pod", "never-made", "Ready", namespace=skiff_namespace, timeout=1)


def test_setup_fails(app_that_never_comes):
    pass
'''


def test_a_failing_test_reports_its_events_and_pod_logs_and_a_reused_cluster_stays(
        skiff_cluster: SkiffCluster, loaded_busybox: str, tmp_path: Path) -> None:
    (tmp_path / "test_user_app.py").write_text(INNER_TESTS.replace("BUSYBOX", loaded_busybox))
    result = run_pytest(tmp_path, "--skiff-cluster", skiff_cluster.name, "-rA")
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "2 failed, 1 passed, 1 error" in out, out

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

    setup = out.split("ERROR at setup of test_setup_fails", 1)[1].split("= FAILURES =")[0]
    assert "WaitTimeout: Pod never-made in namespace test-setup-fails-" in setup, setup
    assert "- skiff events in namespace test-setup-fails-" in setup, setup
    assert "(no events)" in setup

    assert f"using running cluster {skiff_cluster.name} ({len(skiff_cluster.nodes)} node(s)); "\
        "it is left running" in out
    assert "PASSED test_user_app.py::test_passes" in out
    # --skiff-cluster never deletes: the cluster runs on, the test's namespace is gone
    assert (skiff_cluster.name, len(skiff_cluster.nodes), "Running") in [
        (c.name, c.nodes, c.status) for c in list_clusters()]
    namespaces = [n["metadata"]["name"] for n in skiff_cluster.list("namespaces")]
    assert not [n for n in namespaces if n.startswith("test-talker-fails-")
                and skiff_cluster.get("namespace", n)["status"].get("phase") != "Terminating"]
