"""A pod's status, by table: what `skiff get`/`describe` show for a pod in each situation
(phase, container states, conditions), then the finer rules one by one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from kubelet.runtime import (
    LABEL_ATTEMPT,
    LABEL_CONTAINER_NAME,
    LABEL_INIT,
    LABEL_POD_UID,
    LABEL_SANDBOX,
    ContainerInfo,
    State,
)
from kubelet.status import (
    build_pod_status,
    container_status,
    pod_conditions,
    pod_phase,
)
from skiff.api.v1 import core_pb2

UID = "uid-1"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
T0 = NOW.timestamp() - 600  # containers start before "now"


def make_pod(policy: str = "Always", *, init: tuple[str, ...] = (),
             apps: tuple[str, ...] = ("app",)) -> core_pb2.Pod:
    pod = core_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace, pod.metadata.uid = "web", "default", UID
    pod.spec.restart_policy = policy
    for name in init:
        pod.spec.init_containers.add(name=name, image="busybox:1.36")
    for name in apps:
        pod.spec.containers.add(name=name, image="nginx:1.25")
    return pod


def info(name: str, state: State, *, attempt: int = 0, exit_code: int = 0, reason: str = "",
         message: str = "", init: bool = False) -> ContainerInfo:
    labels = {LABEL_POD_UID: UID, LABEL_CONTAINER_NAME: name, LABEL_ATTEMPT: str(attempt)}
    if init:
        labels[LABEL_INIT] = "true"
    start = T0 + 100 * attempt
    return ContainerInfo(
        id=f"{name}-{attempt}", labels=labels, image="nginx:1.25", image_id=f"sha256:{name}",
        state=state, created_at=start, started_at=0.0 if state == State.CREATED else start,
        finished_at=start + 50 if state == State.EXITED else 0.0, exit_code=exit_code,
        reason=reason, message=message)


def sandbox(state: State = State.RUNNING) -> ContainerInfo:
    return ContainerInfo(id="sb", labels={LABEL_POD_UID: UID, LABEL_SANDBOX: "true"},
                         image="pause", image_id="", state=state, ip="10.0.0.5",
                         created_at=T0 - 10)


def summary(status: core_pb2.ContainerStatus) -> str:
    """What `skiff get pods` would say of one container."""
    state = status.state
    if state.HasField("running"):
        return "running"
    if state.HasField("terminated"):
        return f"terminated:{state.terminated.reason}"
    return f"waiting:{state.waiting.reason}"


@dataclass
class Scenario:
    name: str
    pod: core_pb2.Pod
    infos: list[ContainerInfo]
    phase: str
    init: list[str]  # summaries of the init containers
    apps: list[str]  # summaries of the app containers
    conditions: dict[str, str]  # type -> status
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)
    ready: Callable[[str], bool] = lambda cid: True


READY_ALL = {"Initialized": "True", "Ready": "True", "ContainersReady": "True",
             "PodScheduled": "True", "PodReadyToStartContainers": "True"}
NOT_READY = {**READY_ALL, "Ready": "False", "ContainersReady": "False"}
NOT_INIT = {**NOT_READY, "Initialized": "False"}

SCENARIOS = [
    Scenario("fresh pod, nothing created yet", make_pod(), [], "Pending", [],
             ["waiting:ContainerCreating"],  # no sandbox known: that condition is left out
             {k: v for k, v in NOT_READY.items() if k != "PodReadyToStartContainers"}),
    Scenario("sandbox up, image pulling failed", make_pod(), [sandbox()], "Pending", [],
             ["waiting:ErrImagePull"], NOT_READY,
             waiting={"app": ("ErrImagePull", "manifest unknown")}),
    Scenario("image pull backing off", make_pod(), [sandbox()], "Pending", [],
             ["waiting:ImagePullBackOff"], NOT_READY,
             waiting={"app": ("ImagePullBackOff", 'Back-off pulling image "nginx:1.25"')}),
    Scenario("missing secret", make_pod(), [sandbox()], "Pending", [],
             ["waiting:CreateContainerConfigError"], NOT_READY,
             waiting={"app": ("CreateContainerConfigError", 'secret "db" not found')}),
    Scenario("running and ready", make_pod(), [sandbox(), info("app", State.RUNNING)],
             "Running", [], ["running"], READY_ALL),
    Scenario("running, readiness probe failing", make_pod(),
             [sandbox(), info("app", State.RUNNING)], "Running", [], ["running"], NOT_READY,
             ready=lambda cid: False),
    Scenario("one running, one still creating", make_pod(apps=("a", "b")),
             [sandbox(), info("a", State.RUNNING)], "Pending", [],
             ["running", "waiting:ContainerCreating"], NOT_READY),
    Scenario("crash looping (Always)", make_pod(),
             [sandbox(), info("app", State.EXITED, attempt=1, exit_code=1),
              info("app", State.EXITED, attempt=0, exit_code=1)], "Running", [],
             ["waiting:CrashLoopBackOff"], NOT_READY,
             waiting={"app": ("CrashLoopBackOff", "back-off 10s restarting failed ...")}),
    Scenario("Always, all exited, about to restart", make_pod(),
             [sandbox(), info("app", State.EXITED, exit_code=0)], "Running", [],
             ["terminated:Completed"], NOT_READY),
    Scenario("start failed (RunContainerError)", make_pod(),
             [sandbox(), info("app", State.CREATED)], "Running", [],
             ["waiting:RunContainerError"], NOT_READY,
             waiting={"app": ("RunContainerError", 'exec: "nope": not found')}),
    Scenario("init container running", make_pod(init=("migrate",)),
             [sandbox(), info("migrate", State.RUNNING, init=True)], "Pending",
             ["running"], ["waiting:PodInitializing"], NOT_INIT),
    Scenario("init container failed, Never", make_pod("Never", init=("migrate",)),
             [sandbox(), info("migrate", State.EXITED, exit_code=2, init=True)], "Failed",
             ["terminated:Error"], ["waiting:PodInitializing"], NOT_INIT),
    Scenario("init container crash looping, Always", make_pod(init=("migrate",)),
             [sandbox(), info("migrate", State.EXITED, exit_code=2, init=True)], "Pending",
             ["waiting:CrashLoopBackOff"], ["waiting:PodInitializing"], NOT_INIT,
             waiting={"migrate": ("CrashLoopBackOff", "back-off 10s ...")}),
    Scenario("init done, app running", make_pod(init=("migrate",)),
             [sandbox(), info("migrate", State.EXITED, init=True),
              info("app", State.RUNNING)], "Running", ["terminated:Completed"], ["running"],
             READY_ALL),
    Scenario("init done, app image pulling", make_pod(init=("migrate",)),
             [sandbox(), info("migrate", State.EXITED, init=True)], "Pending",
             ["terminated:Completed"], ["waiting:PodInitializing"], NOT_READY),
    Scenario("Never, exit 0: Succeeded", make_pod("Never"),
             [sandbox(State.EXITED), info("app", State.EXITED)], "Succeeded", [],
             ["terminated:Completed"],
             {**NOT_READY, "PodReadyToStartContainers": "False"}),
    Scenario("Never, exit 1: Failed", make_pod("Never"),
             [sandbox(), info("app", State.EXITED, exit_code=1)], "Failed", [],
             ["terminated:Error"], NOT_READY),
    Scenario("Never, one of two failed: Failed", make_pod("Never", apps=("a", "b")),
             [sandbox(), info("a", State.EXITED), info("b", State.EXITED, exit_code=3)],
             "Failed", [], ["terminated:Completed", "terminated:Error"], NOT_READY),
    Scenario("Never, one still running", make_pod("Never", apps=("a", "b")),
             [sandbox(), info("a", State.EXITED), info("b", State.RUNNING)], "Running", [],
             ["terminated:Completed", "running"], NOT_READY),
    Scenario("OnFailure, exit 0: Succeeded", make_pod("OnFailure"),
             [sandbox(), info("app", State.EXITED)], "Succeeded", [],
             ["terminated:Completed"], NOT_READY),
    Scenario("OnFailure, failed and backing off: Running", make_pod("OnFailure"),
             [sandbox(), info("app", State.EXITED, exit_code=1)], "Running", [],
             ["waiting:CrashLoopBackOff"], NOT_READY,
             waiting={"app": ("CrashLoopBackOff", "back-off 10s ...")}),
    Scenario("OOMKilled, Never", make_pod("Never"),
             [sandbox(), info("app", State.EXITED, exit_code=137, reason="OOMKilled")],
             "Failed", [], ["terminated:OOMKilled"], NOT_READY),
]


@pytest.mark.parametrize("s", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenarios(s: Scenario) -> None:
    status = build_pod_status(s.pod, infos=s.infos, waiting=s.waiting, ready=s.ready,
                              pod_ip="10.0.0.5", host_ip="192.168.1.10", now=NOW)
    assert status.phase == s.phase
    assert [summary(c) for c in status.init_container_statuses] == s.init
    assert [summary(c) for c in status.container_statuses] == s.apps
    assert {c.type: c.status for c in status.conditions} == s.conditions
    for c in status.container_statuses:
        assert c.ready == (c.state.HasField("running") and s.ready(c.container_id))


# ---- container statuses in detail ----

def test_crash_loop_shows_the_last_attempt_and_counts_restarts() -> None:
    spec = core_pb2.Container(name="app", image="nginx:1.25")
    status = container_status(
        spec, [info("app", State.EXITED, attempt=3, exit_code=1),
               info("app", State.EXITED, attempt=2, exit_code=1)],
        waiting_reason="CrashLoopBackOff", waiting_message="back-off 40s restarting")
    assert status.state.waiting.reason == "CrashLoopBackOff"
    assert status.state.waiting.message == "back-off 40s restarting"
    last = status.last_state.terminated
    assert (last.exit_code, last.reason, last.container_id) == (1, "Error", "docker://app-3")
    assert last.started_at.ToSeconds() == int(T0 + 300)
    assert last.finished_at.ToSeconds() == int(T0 + 350)
    assert status.restart_count == 3
    assert (status.image, status.image_id, status.container_id) == (
        "nginx:1.25", "sha256:app", "docker://app-3")
    assert not status.ready


def test_running_after_a_restart_keeps_the_previous_run_as_last_state() -> None:
    spec = core_pb2.Container(name="app", image="nginx:1.25")
    status = container_status(
        spec, [info("app", State.RUNNING, attempt=1),
               info("app", State.EXITED, attempt=0, exit_code=137, reason="OOMKilled")],
        ready=True, started=True, waiting_reason="CrashLoopBackOff")
    assert status.state.running.started_at.ToSeconds() == int(T0 + 100)
    assert status.last_state.terminated.reason == "OOMKilled"
    assert status.last_state.terminated.exit_code == 137
    assert status.restart_count == 1
    assert status.ready and status.started


def test_terminated_carries_the_exit_and_times() -> None:
    spec = core_pb2.Container(name="job", image="busybox")
    status = container_status(spec, [info("job", State.EXITED, exit_code=0,
                                           message="done")], started=True)
    t = status.state.terminated
    assert (t.exit_code, t.reason, t.message, t.container_id) == (
        0, "Completed", "done", "docker://job-0")
    assert t.finished_at.ToSeconds() == int(T0 + 50)
    assert not status.HasField("last_state") or not status.last_state.HasField("terminated")
    assert status.HasField("started") and status.started is False  # not running


def test_start_failure_is_a_failed_last_state() -> None:
    spec = core_pb2.Container(name="app", image="busybox")
    status = container_status(spec, [info("app", State.CREATED, message="exec: not found")],
                              waiting_reason="RunContainerError", waiting_message="boom")
    assert status.state.waiting.reason == "RunContainerError"
    assert status.last_state.terminated.exit_code == 128
    assert status.last_state.terminated.reason == "ContainerCannotRun"


def test_no_container_yet_waits_and_leaves_started_unset() -> None:
    status = container_status(core_pb2.Container(name="app", image="x"), [])
    assert status.state.waiting.reason == "ContainerCreating"
    assert status.restart_count == 0 and status.container_id == ""
    assert not status.HasField("started")


# ---- phase, directly ----

def _cs(name: str, *, running: bool = False, exit_code: int | None = None,
        waiting: str = "", last_exit: int | None = None) -> core_pb2.ContainerStatus:
    status = core_pb2.ContainerStatus(name=name)
    if running:
        status.state.running.SetInParent()
    elif exit_code is not None:
        status.state.terminated.exit_code = exit_code
    else:
        status.state.waiting.reason = waiting or "ContainerCreating"
    if last_exit is not None:
        status.last_state.terminated.exit_code = last_exit
    return status


@pytest.mark.parametrize(("policy", "statuses", "terminal", "phase"), [
    ("Always", [], False, "Pending"),  # unknown containers
    ("Always", [_cs("a", exit_code=1)], True, "Failed"),  # e.g. deleted: no more restarts
    ("Always", [_cs("a", exit_code=0)], True, "Succeeded"),
    ("Always", [_cs("a", waiting="CrashLoopBackOff", last_exit=1)], False, "Running"),
    ("OnFailure", [_cs("a", exit_code=0), _cs("b", exit_code=1)], False, "Running"),
    ("Never", [_cs("a", running=True), _cs("b", exit_code=1)], False, "Running"),
])
def test_pod_phase(policy: str, statuses: list[core_pb2.ContainerStatus], terminal: bool,
                   phase: str) -> None:
    spec = make_pod(policy, apps=tuple(s.name for s in statuses) or ("a",)).spec
    assert pod_phase(spec, [], statuses, pod_is_terminal=terminal) == phase


def test_init_failure_under_on_failure_is_pending_not_failed() -> None:
    spec = make_pod("OnFailure", init=("i",)).spec
    init = [_cs("i", waiting="CrashLoopBackOff", last_exit=1)]
    assert pod_phase(spec, init, [_cs("app", waiting="PodInitializing")]) == "Pending"


# ---- conditions ----

def test_not_ready_message_names_the_containers_as_kubernetes() -> None:
    pod = make_pod(apps=("a", "b", "c"))
    statuses = [_cs("a", running=True), _cs("b"), _cs("c")]
    statuses[0].ready = True
    conditions = {c.type: c for c in pod_conditions(pod, "Running", [], statuses, [], NOW)}
    for kind in ("Ready", "ContainersReady"):
        assert conditions[kind].status == "False"
        assert conditions[kind].reason == "ContainersNotReady"
        assert conditions[kind].message == "containers with unready status: [b c]"


def test_initialized_message_names_the_incomplete_init_containers() -> None:
    pod = make_pod(init=("one", "two"))
    conditions = {c.type: c for c in pod_conditions(pod, "Pending", [_cs("one")], [], [], NOW)}
    assert conditions["Initialized"].reason == "ContainersNotInitialized"
    assert conditions["Initialized"].message == (
        "containers with unknown status: [two], containers with incomplete status: [one]")


def test_succeeded_pods_say_pod_completed() -> None:
    pod = make_pod("Never")
    statuses = [_cs("app", exit_code=0)]
    conditions = {c.type: c for c in pod_conditions(pod, "Succeeded", [], statuses, [], NOW)}
    assert (conditions["Ready"].status, conditions["Ready"].reason) == ("False", "PodCompleted")
    assert conditions["Initialized"].reason == "PodCompleted"


def test_last_transition_time_moves_only_when_the_status_changes() -> None:
    pod = make_pod()
    ready = _cs("app", running=True)
    ready.ready = True
    earlier = NOW - timedelta(minutes=5)
    first = pod_conditions(pod, "Running", [], [ready], [], earlier)
    same = pod_conditions(pod, "Running", [], [ready], first, NOW)
    assert [c.last_transition_time.ToDatetime(UTC) for c in same] == [earlier] * len(same)

    unready = _cs("app", running=True)
    flipped = {c.type: c for c in pod_conditions(pod, "Running", [], [unready], first, NOW)}
    assert flipped["Ready"].last_transition_time.ToDatetime(UTC) == NOW
    assert flipped["ContainersReady"].last_transition_time.ToDatetime(UTC) == NOW
    assert flipped["Initialized"].last_transition_time.ToDatetime(UTC) == earlier


def test_conditions_of_others_are_kept() -> None:
    pod = make_pod()
    scheduled = core_pb2.PodCondition(type="PodScheduled", status="True")
    scheduled.last_transition_time.FromDatetime(NOW - timedelta(hours=1))
    foreign = core_pb2.PodCondition(type="DisruptionTarget", status="True",
                                    reason="EvictionByEvictionAPI")
    out = pod_conditions(pod, "Running", [], [_cs("app", running=True)],
                         [scheduled, foreign], NOW)
    by_type = {c.type: c for c in out}
    assert by_type["PodScheduled"] == scheduled
    assert by_type["DisruptionTarget"].reason == "EvictionByEvictionAPI"
    assert [c.type for c in out] == ["DisruptionTarget", "Initialized", "Ready",
                                     "ContainersReady", "PodScheduled"]


# ---- the whole status ----

def test_addresses_start_time_and_qos() -> None:
    pod = make_pod()
    status = build_pod_status(pod, infos=[info("app", State.RUNNING)], pod_ip="10.0.0.5",
                              host_ip="192.168.1.10", now=NOW)
    assert (status.pod_ip, [p.ip for p in status.pod_ips], status.host_ip) == (
        "10.0.0.5", ["10.0.0.5"], "192.168.1.10")
    assert status.start_time.ToDatetime(UTC) == NOW
    assert status.qos_class == "BestEffort"
    # No sandbox among the infos and none said: the condition is left out, not guessed.
    assert "PodReadyToStartContainers" not in {c.type for c in status.conditions}

    pod.status.CopyFrom(status)
    later = build_pod_status(pod, infos=[info("app", State.RUNNING)], pod_ip="10.0.0.5",
                             host_ip="192.168.1.10", now=NOW.timestamp() + 60)
    assert later.start_time.ToDatetime(UTC) == NOW  # set once


def test_host_network_pods_have_the_node_address() -> None:
    pod = make_pod()
    pod.spec.host_network = True
    status = build_pod_status(pod, infos=[], host_ip="192.168.1.10", now=NOW)
    assert status.pod_ip == "192.168.1.10"


def test_terminal_phase_is_never_left() -> None:
    pod = make_pod("Never")
    pod.status.phase, pod.status.reason = "Failed", "DeadlineExceeded"
    status = build_pod_status(pod, infos=[], now=NOW)  # containers removed since
    assert (status.phase, status.reason) == ("Failed", "DeadlineExceeded")


def test_probe_answers_are_asked_by_container_id() -> None:
    asked: list[str] = []

    def ready(cid: str) -> bool:
        asked.append(cid)
        return True

    build_pod_status(make_pod(), infos=[info("app", State.RUNNING, attempt=2)], ready=ready,
                     started=lambda cid: cid == "app-2", now=NOW)
    assert asked == ["app-2"]


def test_started_comes_from_the_startup_probe() -> None:
    status = build_pod_status(make_pod(), infos=[info("app", State.RUNNING)],
                              started=lambda cid: False, ready=lambda cid: False, now=NOW)
    assert status.container_statuses[0].started is False
