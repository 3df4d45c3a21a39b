"""The plugin's cleanup, in pytest sessions (subprocesses) that make clusters of their own:
interrupted while a test runs (Ctrl-C, SIGTERM; twice, impatiently) or while the cluster is
being made, nothing of the cluster remains; with --skiff-keep it stays, and the printed way
to reach it works.

This module's name sorts before test_pytest_skiff_fixture.py, whose tests start this
session's own cluster: run in that order, no two clusters are up at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from fixtures.innerpytest import delete_leftover, labelled, skiff_cli, start_pytest

from cluster.multinode import list_clusters

SLEEPER = '''
import os
from pathlib import Path


def test_sleeps(skiff_cluster):
    Path(os.environ["SKIFF_TEST_MARKER"]).write_text(skiff_cluster.name)
    import time
    time.sleep(600)
'''


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
        time.sleep(0.3)  # the cluster is being deleted (that takes a second or two) ...
        inner.send_signal(sig)  # ... and an impatient second signal must not stop that
        out, _ = inner.communicate(timeout=300)
    finally:
        if inner.poll() is None:
            inner.kill()
            inner.wait()
        delete_leftover(name)
    assert inner.returncode == pytest.ExitCode.INTERRUPTED, out
    assert f"skiff: {sig.name}: removing cluster {name} first" in out, out
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
        listed = skiff_cli("get", "namespaces", "--no-headers", config=config)
        assert listed.returncode == 0, listed.stderr
        assert "test-uses-it-" in listed.stdout
        assert f"skiff cluster delete {name}" in out
        assert (name, 1, "Running") in [(c.name, c.nodes, c.status) for c in list_clusters()]
        deleted = skiff_cli("cluster", "delete", name)
        assert deleted.returncode == 0, deleted.stderr
    finally:
        if inner.poll() is None:
            inner.kill()
            inner.wait()
        delete_leftover(name)
    assert labelled(name) == []
