"""Workloads end to end on real Docker: `skiff up` (apiserver, scheduler, controller
manager, a kubelet on this host's engine) and the real CLI, as a user drives them.

A CronJob is created first, so that by the last test its minute has come.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fixtures.cli import until
from test_skiff_up import cluster_args, down, skiff

SERVE = ["sh", "-c", 'trap "exit 0" TERM; sleep 3600 & wait']


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory, busybox_image: str) -> Iterator[Path]:
    data = tmp_path_factory.mktemp("workloads")
    started = skiff("up", "-d", *cluster_args(data))
    assert started.returncode == 0, started.stderr
    try:
        yield data / "config"
    finally:
        down(data)


def ok(config: Path, *args: str, stdin: str | None = None, timeout: float = 60) -> str:
    out = skiff(*args, config=config, stdin=stdin, timeout=timeout)
    assert out.returncode == 0, f"skiff {' '.join(args)}: {out.stderr}"
    return out.stdout


def get(config: Path, *args: str) -> Any:
    return json.loads(ok(config, "get", *args, "-o", "json"))


def deployment(name: str, version: str, *, replicas: int = 5, command: list[str] = SERVE,
               deadline: int = 600, min_ready: int = 0) -> str:
    return yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {
            "replicas": replicas, "progressDeadlineSeconds": deadline,
            "minReadySeconds": min_ready,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {
                "terminationGracePeriodSeconds": 5,
                "containers": [{"name": "app", "image": "skiff.test/busybox:1.0",
                                "imagePullPolicy": "Never", "command": command,
                                "env": [{"name": "VERSION", "value": version}]}]}}}})


def pods(config: Path, selector: str) -> list[dict[str, Any]]:
    return get(config, "pods", "-l", selector)["items"]  # type: ignore[no-any-return]


def version_of(pod: dict[str, Any]) -> str:
    env = pod["spec"]["containers"][0].get("env", [])
    return next((e["value"] for e in env if e["name"] == "VERSION"), "")


def is_ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in pod.get("status", {}).get("conditions", []))


def test_a_cronjob_is_created_first(up: Path) -> None:
    ok(up, "apply", "-f", "-", stdin=yaml.safe_dump({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
        "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "tick", "image": "skiff.test/busybox:1.0",
                            "imagePullPolicy": "Never",
                            "command": ["sh", "-c", "echo tick"]}]}}}}}}))


def test_a_rolling_update_keeps_availability_and_undo_restores(up: Path) -> None:
    ok(up, "apply", "-f", "-", stdin=deployment("web", "1"))
    ok(up, "rollout", "status", "deployment/web", "--timeout", "120s", timeout=130)
    samples: list[tuple[int, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            current = pods(up, "app=web")
            alive = [p for p in current if not p["metadata"].get("deletionTimestamp")]
            ready = [p for p in alive if is_ready(p)]
            samples.append((len(ready), len(alive)))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        ok(up, "apply", "-f", "-", stdin=deployment("web", "2"))
        out = ok(up, "rollout", "status", "deployment/web", "--timeout", "120s", timeout=130)
        assert 'deployment "web" successfully rolled out' in out
    finally:
        stop.set()
        sampler.join()
    assert samples
    # maxUnavailable 1 and maxSurge 1 of 5: never fewer than 4 ready, never more than 6.
    assert min(ready for ready, _ in samples) >= 4, samples
    assert max(alive for _, alive in samples) <= 6, samples
    assert {version_of(p) for p in pods(up, "app=web")} == {"2"}

    history = ok(up, "rollout", "history", "deployment/web")
    assert "1" in history and "2" in history
    assert "rolled back" in ok(up, "rollout", "undo", "deployment/web")
    ok(up, "rollout", "status", "deployment/web", "--timeout", "120s", timeout=130)
    until(lambda: {version_of(p) for p in pods(up, "app=web")
                   if not p["metadata"].get("deletionTimestamp")} == {"1"}, 60,
          "the old template back")


def test_a_crash_looping_version_stops_at_its_deadline_while_the_old_pods_serve(
        up: Path) -> None:
    # As in Kubernetes, a container without a readiness probe is ready the moment it
    # runs, so one that dies a moment later would count as available for that moment:
    # minReadySeconds is what makes a rollout wait for pods that stay up.
    ok(up, "apply", "-f", "-", stdin=deployment("api", "1", replicas=3, deadline=15,
                                                  min_ready=3))
    ok(up, "rollout", "status", "deployment/api", "--timeout", "120s", timeout=130)
    ok(up, "apply", "-f", "-", stdin=deployment("api", "2", replicas=3, deadline=15,
                                                  min_ready=3, command=["sh", "-c", "exit 1"]))
    status = skiff("rollout", "status", "deployment/api", "--timeout", "120s", config=up,
                   timeout=130)
    assert status.returncode == 1
    assert 'deployment "api" exceeded its progress deadline' in status.stderr
    progressing = next(c for c in get(up, "deployment", "api")["status"]["conditions"]
                       if c["type"] == "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False",
                                                              "ProgressDeadlineExceeded")
    old_ready = [p for p in pods(up, "app=api") if version_of(p) == "1" and is_ready(p)]
    assert len(old_ready) >= 2, ok(up, "get", "rs,pods", "-l", "app=api", "-o", "wide") + \
        ok(up, "describe", "deployment", "api")  # maxUnavailable 1 of 3
    ok(up, "delete", "deployment", "api")


def test_a_job_runs_five_completions_two_at_a_time(up: Path) -> None:
    ok(up, "apply", "-f", "-", stdin=yaml.safe_dump({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "five"},
        "spec": {"completions": 5, "parallelism": 2, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "work", "image": "skiff.test/busybox:1.0",
                            "imagePullPolicy": "Never",
                            "command": ["sh", "-c", "sleep 1"]}]}}}}))
    most_running = 0

    def complete() -> bool:
        nonlocal most_running
        running = [p for p in pods(up, "job-name=five")
                   if p.get("status", {}).get("phase") in ("Pending", "Running")
                   and not p["metadata"].get("deletionTimestamp")]
        most_running = max(most_running, len(running))
        job = get(up, "job", "five")
        return any(c["type"] == "Complete" and c["status"] == "True"
                   for c in job.get("status", {}).get("conditions", []))

    until(complete, 90, "the job to complete")
    job = get(up, "job", "five")
    assert job["status"]["succeeded"] == 5
    assert most_running <= 2
    succeeded = [p for p in pods(up, "job-name=five") if p["status"]["phase"] == "Succeeded"]
    assert len(succeeded) == 5


def test_killed_containers_and_deleted_pods_are_replaced(up: Path) -> None:
    ok(up, "apply", "-f", "-", stdin=deployment("keep", "1", replicas=2))
    ok(up, "rollout", "status", "deployment/keep", "--timeout", "120s", timeout=130)
    victim = pods(up, "app=keep")[0]
    uid = victim["metadata"]["uid"]
    containers = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=io.skiff.pod.uid={uid}"],
        capture_output=True, text=True, check=True).stdout.split()
    subprocess.run(["docker", "kill", *containers], check=True, capture_output=True)
    until(lambda: len([p for p in pods(up, "app=keep") if is_ready(p)]) == 2
          and any(p["metadata"]["uid"] == uid and p["status"]["containerStatuses"][0]
                  .get("restartCount", 0) >= 1 for p in pods(up, "app=keep")),
          60, "the killed pod restarted")

    ok(up, "delete", "pod", victim["metadata"]["name"])
    until(lambda: len([p for p in pods(up, "app=keep") if is_ready(p)
                       and p["metadata"]["uid"] != uid]) == 2, 60, "a replacement pod")


def test_deleting_a_deployment_removes_its_replica_sets_and_pods(up: Path) -> None:
    assert get(up, "replicasets", "-l", "app=keep")["items"]
    ok(up, "delete", "deployment", "keep")
    until(lambda: not get(up, "replicasets", "-l", "app=keep")["items"]
          and not pods(up, "app=keep"), 60, "replica sets and pods gone")


def test_the_cronjob_ran_on_schedule(up: Path) -> None:
    def ran() -> Any:
        jobs = [j for j in get(up, "jobs")["items"]
                if any(r["name"] == "tick" for r in j["metadata"].get("ownerReferences", []))]
        return [j for j in jobs if j.get("status", {}).get("succeeded", 0) >= 1]

    done = until(ran, 75, "a job of the cronjob to succeed")
    cronjob = get(up, "cronjob", "tick")
    assert cronjob["status"].get("lastScheduleTime")
    annotations = done[0]["metadata"]["annotations"]
    scheduled = annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"]
    assert scheduled.endswith(":00Z")  # on a minute boundary
    ok(up, "delete", "cronjob", "tick")
