"""The kubelet's plan for a pod, by table: restart policies, init containers, back-off,
liveness, spec changes, sandboxes and clean-up; and the plan that stops a pod."""

from __future__ import annotations

from kubelet.plan import PodActions, plan_pod, plan_stop, spec_hash
from kubelet.runtime import (
    LABEL_ATTEMPT,
    LABEL_CONTAINER_NAME,
    LABEL_GRACE,
    LABEL_POD_UID,
    LABEL_SANDBOX,
    LABEL_SPEC_HASH,
    ContainerInfo,
    State,
)
from skiff.api.v1 import core_pb2

UID = "uid-1"


def pod(policy: str = "Always", init: tuple[str, ...] = (), apps: tuple[str, ...] = ("app",)
        ) -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.metadata.name, p.metadata.namespace, p.metadata.uid = "p", "default", UID
    p.spec.restart_policy = policy
    for name in init:
        p.spec.init_containers.add(name=name, image="busybox")
    for name in apps:
        p.spec.containers.add(name=name, image="busybox")
    return p


def sandbox(attempt: int = 0, state: State = State.RUNNING, created: float = 100.0
            ) -> ContainerInfo:
    return ContainerInfo(id=f"sb{attempt}", labels={LABEL_POD_UID: UID, LABEL_SANDBOX: "true",
                                                    LABEL_ATTEMPT: str(attempt)},
                         image="skiff/pause:1", image_id="", state=state, created_at=created)


def container(name: str, state: State, *, attempt: int = 0, exit_code: int = 0,
              created: float = 200.0, finished: float = 0.0, spec: core_pb2.Pod | None = None
              ) -> ContainerInfo:
    labels = {LABEL_POD_UID: UID, LABEL_CONTAINER_NAME: name, LABEL_ATTEMPT: str(attempt)}
    if spec is not None:
        c = next(c for c in [*spec.spec.containers, *spec.spec.init_containers] if c.name == name)
        labels[LABEL_SPEC_HASH] = spec_hash(c)
    return ContainerInfo(id=f"{name}-{attempt}", labels=labels, image="busybox", image_id="",
                         state=state, exit_code=exit_code, created_at=created + attempt,
                         finished_at=finished or created + attempt + 1)


def plan(p: core_pb2.Pod, sandboxes: list[ContainerInfo], containers: list[ContainerInfo], *,
         live_failed: tuple[str, ...] = (), backoff: float = 0.0) -> PodActions:
    return plan_pod(p, sandboxes, containers, liveness_failed=lambda cid: cid in live_failed,
                    backoff_remaining=lambda key, since: backoff)


def started(actions: PodActions) -> list[tuple[str, int]]:
    return [(c.name, attempt) for c, attempt, _ in actions.start]


def test_new_pod_gets_a_sandbox_and_its_first_init_container_only() -> None:
    a = plan(pod(init=("i1", "i2"), apps=("a", "b")), [], [])
    assert a.create_sandbox and a.sandbox_attempt == 0
    assert started(a) == [("i1", 0)]


def test_without_init_containers_every_app_container_starts() -> None:
    a = plan(pod(apps=("a", "b")), [sandbox()], [])
    assert not a.create_sandbox and a.sandbox_id == "sb0"
    assert started(a) == [("a", 0), ("b", 0)]


def test_init_containers_run_one_at_a_time_in_order() -> None:
    p = pod(init=("i1", "i2"), apps=("a",))
    assert started(plan(p, [sandbox()], [container("i1", State.RUNNING)])) == []
    done = container("i1", State.EXITED, exit_code=0)
    assert started(plan(p, [sandbox()], [done])) == [("i2", 0)]
    both = [done, container("i2", State.EXITED, exit_code=0)]
    assert started(plan(p, [sandbox()], both)) == [("a", 0)]


def test_failed_init_container_fails_the_pod_under_never() -> None:
    p = pod("Never", init=("i1",))
    a = plan(p, [sandbox()], [container("i1", State.EXITED, exit_code=1)])
    assert a.start == [] and not a.create_sandbox


def test_failed_init_container_is_retried_with_back_off_otherwise() -> None:
    p = pod("OnFailure", init=("i1",))
    failed = [container("i1", State.EXITED, exit_code=1)]
    assert started(plan(p, [sandbox()], failed)) == [("i1", 1)]
    waiting = plan(p, [sandbox()], failed, backoff=20)
    assert waiting.start == []
    assert waiting.waiting["i1"][0] == "CrashLoopBackOff"
    assert "back-off 20s restarting failed container=i1" in waiting.waiting["i1"][1]


def test_restart_policies() -> None:
    ok, bad = (container("app", State.EXITED, exit_code=0),
               container("app", State.EXITED, exit_code=2))
    assert started(plan(pod("Always"), [sandbox()], [ok])) == [("app", 1)]
    assert started(plan(pod("OnFailure"), [sandbox()], [ok])) == []
    assert started(plan(pod("OnFailure"), [sandbox()], [bad])) == [("app", 1)]
    assert started(plan(pod("Never"), [sandbox()], [bad])) == []


def test_crash_loop_back_off_waits_and_says_when() -> None:
    crashed = [container("app", State.EXITED, exit_code=1, attempt=3)]
    a = plan(pod(), [sandbox()], crashed, backoff=80)
    assert a.start == [] and a.retry_after == 80
    assert a.waiting["app"] == ("CrashLoopBackOff", "back-off 1m20s restarting failed "
                                "container=app pod=p_default(uid-1)")
    assert started(plan(pod(), [sandbox()], crashed)) == [("app", 4)]


def test_a_container_whose_start_failed_counts_as_failed() -> None:
    failed = container("app", State.CREATED, exit_code=128)
    assert started(plan(pod("OnFailure"), [sandbox()], [failed])) == [("app", 1)]


def test_a_container_created_but_never_started_is_no_attempt() -> None:
    # A kubelet died between creating it and starting it: it goes, and the same attempt
    # is created afresh, whatever the restart policy.
    for policy in ("Always", "OnFailure", "Never"):
        half_done = container("app", State.CREATED)
        a = plan(pod(policy), [sandbox()], [half_done])
        assert a.remove == ["app-0"] and started(a) == [("app", 0)], policy
    exited = container("app", State.EXITED, exit_code=1)
    half_done = container("app", State.CREATED, attempt=1)
    a = plan(pod("OnFailure"), [sandbox()], [exited, half_done])
    assert a.remove == ["app-1"] and started(a) == [("app", 1)]  # one real exit: attempt 1
    init = container("setup", State.CREATED)
    a = plan(pod("Never", init=("setup",)), [sandbox()], [init])
    assert a.remove == ["setup-0"] and started(a) == [("setup", 0)]


def test_liveness_failure_kills_and_the_next_sync_restarts() -> None:
    running = container("app", State.RUNNING)
    a = plan(pod(), [sandbox()], [running], live_failed=("app-0",))
    assert a.kill == {"app-0": "failed liveness probe"} and a.start == []


def test_a_changed_spec_replaces_the_running_container() -> None:
    old = pod()
    running = container("app", State.RUNNING, spec=old)
    assert plan(old, [sandbox()], [running]).kill == {}
    new = pod()
    new.spec.containers[0].image = "busybox:2"
    a = plan(new, [sandbox()], [running])
    assert a.kill == {"app-0": "its spec changed"} and started(a) == [("app", 1)]


def test_a_dead_sandbox_is_replaced_and_everything_restarts() -> None:
    running = container("app", State.RUNNING)
    a = plan(pod(), [sandbox(0, State.EXITED)], [running])
    assert a.create_sandbox and a.sandbox_attempt == 1
    assert a.kill == {"app-0": "the pod sandbox changed"}
    assert started(a) == [("app", 1)]


def test_a_finished_pod_gets_no_new_sandbox() -> None:
    done = container("app", State.EXITED, exit_code=0)
    a = plan(pod("Never"), [sandbox(0, State.EXITED)], [done])
    assert not a.create_sandbox and a.start == []


def test_containers_of_an_older_sandbox_do_not_count_as_current() -> None:
    # Init containers ran in sandbox 0; sandbox 1 is new, so they run again.
    p = pod(init=("i1",))
    old_init = container("i1", State.EXITED, exit_code=0, created=50)
    a = plan(p, [sandbox(1, created=100), sandbox(0, State.EXITED, created=10)], [old_init])
    assert started(a) == [("i1", 1)]
    assert "sb0" in a.remove


def test_old_attempts_are_garbage_collected_keeping_the_last_two() -> None:
    history = [container("app", State.EXITED, exit_code=1, attempt=n) for n in range(4)]
    a = plan(pod(), [sandbox()], history, backoff=10)
    assert sorted(a.remove) == ["app-0", "app-1"]


def test_containers_not_in_the_spec_are_removed() -> None:
    stray = container("ghost", State.RUNNING)
    a = plan(pod(), [sandbox()], [stray, container("app", State.RUNNING)])
    assert a.kill == {"ghost-0": "not in the pod's spec"}


def test_a_kill_gets_the_pods_grace_period_and_a_sync_at_once() -> None:
    p = pod()
    p.spec.termination_grace_period_seconds = 12
    a = plan(p, [sandbox()], [container("app", State.RUNNING)], live_failed=("app-0",))
    assert a.grace == {"app-0": 12.0} and a.retry_after == 0.0
    default = plan(pod(), [sandbox()], [container("app", State.RUNNING)],
                   live_failed=("app-0",))
    assert default.grace == {"app-0": 30.0}


def test_stopping_a_deleted_pod_kills_everything_within_what_is_left_of_its_grace() -> None:
    p = pod()
    p.metadata.deletion_timestamp.seconds = 1_000
    p.metadata.deletion_grace_period_seconds = 30
    infos = [container("app", State.RUNNING), container("app", State.EXITED, attempt=1)]
    a = plan_stop(p, [sandbox(0, State.EXITED), sandbox(1)], infos, now=990.0)
    assert a.kill == {"app-0": "", "app-1": ""}
    assert a.grace == {"app-0": 10.0, "app-1": 10.0}
    assert a.stop_sandboxes == ["sb0", "sb1"] and a.remove_sandboxes == ["sb0", "sb1"]
    assert a.remove == ["app-0", "app-1"]
    assert a.teardown_volumes and a.confirm_deletion
    assert a.start == [] and not a.create_sandbox
    # Past the deadline: no grace left; never more than the deletion's grace period.
    assert plan_stop(p, [], infos, now=1_005.0).grace["app-0"] == 0.0
    assert plan_stop(p, [], infos, now=900.0).grace["app-0"] == 30.0


def test_stopping_an_orphan_gives_each_container_the_grace_it_started_with() -> None:
    labelled = container("app", State.RUNNING)
    labelled = ContainerInfo(id=labelled.id, labels={**labelled.labels, LABEL_GRACE: "7"},
                             image=labelled.image, image_id="", state=State.RUNNING)
    a = plan_stop(None, [sandbox()], [labelled, container("old", State.RUNNING)], now=0.0)
    assert a.grace == {"app-0": 7.0, "old-0": 30.0}
    assert a.teardown_volumes and not a.confirm_deletion


def test_stopping_a_pod_with_nothing_left_only_tears_down() -> None:
    a = plan_stop(None, [], [], now=0.0)
    assert (a.kill, a.stop_sandboxes, a.remove, a.remove_sandboxes) == ({}, [], [], [])
    assert a.teardown_volumes
