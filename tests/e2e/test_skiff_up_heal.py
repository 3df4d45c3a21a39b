"""A `skiff up -d` cluster heals itself, and `skiff down --purge` leaves the host clean.

Real processes throughout: the detached supervisor, etcd, the daemons, a kubelet on this
host's Docker engine. The tests run in order on one cluster: every daemon SIGKILLed in turn
mid-rollout is back within seconds and the rollout completes; a cluster whose supervisor
and one daemon died is completed by the next `skiff up`; `skiff down` says what it leaves;
`--purge` removes it (and only it), and a new `skiff up` starts clean.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fixtures.cli import until
from test_skiff_up import cluster_args, cluster_dns, node_name, skiff

DAEMONS = ["etcd", "apiserver", "scheduler", "controller-manager", "kubelet", "dns"]
REPLICAS = 3


def status(data: Path) -> tuple[int, dict[str, dict[str, str]]]:
    """`skiff status`'s exit code and its table: component -> column -> cell."""
    out = skiff("status", "--data-dir", str(data), "-n", "0")
    lines = out.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("COMPONENT"))
    columns = re.split(r"\s{2,}", lines[header].strip())
    rows = {}
    for line in lines[header + 1:]:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) != len(columns):
            break
        rows[cells[0]] = dict(zip(columns, cells, strict=True))
    return out.returncode, rows


def pid_of(data: Path, name: str) -> int:
    return int((data / "run" / f"{name}.pid").read_text())


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def manifest(version: str) -> str:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web-secret"},
              "stringData": {"password": "s3cret"}}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {
            "replicas": REPLICAS, "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{
                    "name": "app", "image": "skiff.test/busybox:1.0",
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", 'trap "exit 0" TERM; sleep 3600 & wait'],
                    "env": [{"name": "VERSION", "value": version}],
                    "volumeMounts": [{"name": "secret", "mountPath": "/secret"}]}],
                "volumes": [{"name": "secret", "secret": {"secretName": "web-secret"}}]}}}}
    return yaml.safe_dump_all([secret, deployment])


def versions(config: Path) -> list[str]:
    out = skiff("get", "pods", "-l", "app=web", "-o", "json", config=config)
    assert out.returncode == 0, out.stderr
    return sorted(
        next(e["value"] for e in p["spec"]["containers"][0]["env"] if e["name"] == "VERSION")
        for p in json.loads(out.stdout)["items"])


def containers(node: str, running_only: bool = False) -> list[str]:
    return subprocess.run(["docker", "ps", "-q" if running_only else "-aq", "--filter",
                           f"label=io.skiff.node={node}"],
                          capture_output=True, text=True, check=True).stdout.split()


def mounts_under(data: Path) -> list[str]:
    root = str(data.resolve())
    return [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[1].startswith(root + "/")]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, busybox_image: str) -> Iterator[Path]:
    data = tmp_path_factory.mktemp("skiff-heal")
    try:
        started = skiff("up", "-d", *cluster_args(data))
        assert started.returncode == 0, started.stderr
        yield data
    finally:
        if data.exists():
            purged = skiff("down", "--purge", "--data-dir", str(data), timeout=180)
            if purged.returncode != 0:  # e.g. no --purge: at least stop the processes
                skiff("down", "--data-dir", str(data), timeout=120)
            assert purged.returncode == 0, purged.stderr
        leftover = containers(node_name(data))
        if leftover:  # only if the purge itself failed: leave nothing behind regardless
            subprocess.run(["docker", "rm", "-f", *leftover], capture_output=True)


def test_every_daemon_killed_mid_rollout_comes_back_and_the_rollout_completes(
        data: Path) -> None:
    config = data / "config"
    code, rows = status(data)
    assert code == 0 and set(rows) == {"skiff-up", *DAEMONS}, rows
    assert all(r["STATE"] == "running" and r["RESTARTS"] == "0" for r in rows.values()), rows

    assert skiff("apply", "-f", "-", config=config, stdin=manifest("1")).returncode == 0
    done = skiff("rollout", "status", "deployment/web", "--timeout", "120s", config=config,
                 timeout=130)
    assert done.returncode == 0, done.stdout + done.stderr
    assert skiff("apply", "-f", "-", config=config, stdin=manifest("2")).returncode == 0

    for name in DAEMONS:
        old = pid_of(data, name)
        os.kill(old, signal.SIGKILL)  # a process this test's `skiff up` started

        def back(name: str = name, old: int = old) -> bool:
            _, rows = status(data)
            row = rows.get(name, {})
            return row.get("STATE") == "running" and row.get("PID") != str(old)

        until(back, 20, f"{name} to be started again")
        _, rows = status(data)
        assert rows[name]["RESTARTS"] == "1", rows[name]
        assert rows[name]["LAST EXIT"].startswith("killed by signal 9 at"), rows[name]

    done = skiff("rollout", "status", "deployment/web", "--timeout", "180s", config=config,
                 timeout=190)
    assert done.returncode == 0, done.stdout + done.stderr
    until(lambda: versions(config) == ["2"] * REPLICAS, 60,
          f"exactly {REPLICAS} pods, all of version 2")

    code, rows = status(data)
    assert code == 0 and all(rows[n]["RESTARTS"] == "1" for n in DAEMONS), rows
    full = skiff("status", "--data-dir", str(data), "-n", "20").stdout
    for name in DAEMONS:
        assert re.search(rf"{name} \(pid \d+\) was killed by signal 9; starting it again", full)
        assert re.search(rf"started {name} again \(pid \d+, restart 1\)", full)


def test_up_on_a_partly_running_cluster_starts_what_is_missing(data: Path) -> None:
    supervisor, scheduler = pid_of(data, "skiff-up"), pid_of(data, "scheduler")
    kept = {name: pid_of(data, name) for name in DAEMONS if name != "scheduler"}
    os.kill(supervisor, signal.SIGKILL)
    until(lambda: not alive(supervisor), 10, "the supervisor to die")
    os.kill(scheduler, signal.SIGKILL)
    until(lambda: not alive(scheduler), 10, "the scheduler to die")
    code, rows = status(data)
    assert code == 1 and rows["scheduler"]["STATE"] == "not running", rows

    # No flags but the data dir: the cluster's ports and node are the saved ones.
    again = skiff("up", "-d", "--data-dir", str(data))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "starting scheduler" in again.stdout and "kubelet is running" in again.stdout
    code, rows = status(data)
    assert code == 0, rows
    assert {name: int(rows[name]["PID"]) for name in kept} == kept
    assert rows["scheduler"]["PID"] != str(scheduler)
    assert skiff("get", "deployment", "web", config=data / "config").returncode == 0

    refused = skiff("up", "-d", "--data-dir", str(data))
    assert refused.returncode == 1 and "already running" in refused.stderr


def test_down_stops_everything_and_says_what_stays(data: Path) -> None:
    pids = [pid_of(data, name) for name in ("skiff-up", *DAEMONS)]
    node = node_name(data)
    stopped = skiff("down", "--data-dir", str(data), timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert not any(alive(pid) for pid in pids)
    assert not list((data / "run").glob("*.pid"))
    running = containers(node, running_only=True)
    assert len(running) == 2 * REPLICAS  # each pod: its pause container and its app
    assert len(mounts_under(data)) == REPLICAS  # each pod's secret volume, on tmpfs
    assert f"{2 * REPLICAS} container(s) of node {node}'s pods ({2 * REPLICAS} running)" \
        in stopped.stdout, stopped.stdout
    assert f"{REPLICAS} volume mount(s)" in stopped.stdout
    assert f"skiff down --purge --data-dir {data}" in stopped.stdout


def test_purge_removes_this_clusters_containers_mounts_and_data_and_nothing_else(
        data: Path) -> None:
    node = node_name(data)
    other = subprocess.run(
        ["docker", "create", "--label", f"io.skiff.node={node}-other", "--label",
         "io.skiff.test=heal", "skiff.test/busybox:1.0", "true"],
        capture_output=True, text=True, check=True).stdout.strip()
    try:
        purged = skiff("down", "--purge", "--data-dir", str(data), timeout=180)
        assert purged.returncode == 0, purged.stderr
        assert containers(node) == []
        assert mounts_under(data) == []
        lo = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", "lo"],
                            capture_output=True, text=True, check=True).stdout
        assert f" {cluster_dns(data)}/32 " not in lo  # its DNS address, skiff-dns's label
        assert not data.exists()
        assert subprocess.run(["docker", "network", "ls", "-q", "--filter",
                               f"label=io.skiff.node={node}"], capture_output=True, text=True,
                              check=True).stdout.split() == []
        assert containers(f"{node}-other"), "another cluster's container was removed"
    finally:
        subprocess.run(["docker", "rm", "-f", other], capture_output=True)

    # A new cluster in the same place starts clean: no objects, no pods, no containers.
    started = skiff("up", "-d", *cluster_args(data))
    assert started.returncode == 0, started.stderr
    config = data / "config"
    until(lambda: "Ready" in skiff("get", "nodes", config=config).stdout, 30, "a Ready node")
    assert skiff("get", "deployment", "web", config=config).returncode == 1
    assert versions(config) == []
    assert containers(node) == []


def test_a_detached_up_that_cannot_start_says_why_and_leaves_nothing_running(
        tmp_path: Path) -> None:
    (tmp_path / "etcd").write_text("")  # etcd's data dir is a file: etcd exits at once
    out = skiff("up", "-d", *cluster_args(tmp_path))
    assert out.returncode == 1
    assert "error: etcd exited with code 1; see its log" in out.stderr, out.stderr
    assert not list((tmp_path / "run").glob("*.pid"))
    assert "error: etcd exited with code 1" in (tmp_path / "logs" / "skiff-up.log").read_text()
