"""The Job controller's arithmetic: how many pods to run, when a Job is done, the pod
failure back-off, which pods count as failed, its condition bookkeeping, and the
two-phase counting of finished pods through `status.uncountedTerminatedPods`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from controllers.common.jobs import JOB_TRACKING_FINALIZER, finished_condition
from controllers.workloads.job import (
    DEFAULT_BACKOFF_BASE,
    MAX_BACKOFF,
    BackoffRecord,
    count_released,
    is_complete,
    is_pod_failed,
    new_finished_pods,
    next_backoff_record,
    pod_finish_time,
    record_uncounted,
    remaining_backoff,
    set_condition,
    uncounted_total,
    want_active,
)
from controllers.workloads.ttlafterfinished import finish_time
from skiff.api.v1 import batch_pb2, core_pb2
from skiff.client.backoff import exponential_delay

T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


def ts(t: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(t)
    return out


# ---- how many pods ----


@pytest.mark.parametrize(("completions", "parallelism", "succeeded", "active", "want"), [
    (1, 1, 0, 0, 1),  # non-parallel
    (1, 1, 1, 0, 0),
    (5, 2, 0, 0, 2),  # fixed completions: parallelism bounds it...
    (5, 2, 3, 2, 2),
    (5, 2, 4, 1, 1),  # ...and so do the completions still missing
    (5, 2, 5, 0, 0),
    (5, 2, 7, 0, 0),  # more succeeded than asked (never negative)
    (5, 0, 0, 2, 0),  # parallelism 0 stops everything
    (None, 3, 0, 1, 3),  # work queue: parallelism until one succeeds...
    (None, 3, 1, 2, 2),  # ...then let what runs finish, start nothing
    (None, 3, 1, 0, 0),
])
def test_wanted_active(completions: int | None, parallelism: int, succeeded: int,
                       active: int, want: int) -> None:
    assert want_active(completions=completions, parallelism=parallelism, succeeded=succeeded,
                       active=active) == want


@pytest.mark.parametrize(("completions", "succeeded", "active", "done"), [
    (5, 5, 0, True),
    (5, 4, 0, False),
    (5, 5, 1, False),  # a pod still runs
    (None, 1, 0, True),  # work queue: one success and nothing running
    (None, 1, 2, False),
    (None, 0, 0, False),
])
def test_complete(completions: int | None, succeeded: int, active: int, done: bool) -> None:
    assert is_complete(completions=completions, succeeded=succeeded, active=active) is done


# ---- back-off ----


def backoff_delay(failures: int, base: float = DEFAULT_BACKOFF_BASE,
                  cap: float = MAX_BACKOFF) -> float:
    """The Job's wait before replacing a pod after `failures` failures in a row."""
    return exponential_delay(failures, base, cap)


def test_backoff_doubles_from_ten_seconds_to_six_minutes() -> None:
    assert [backoff_delay(n) for n in range(0, 9)] == [0, 10, 20, 40, 80, 160, 320, 360, 360]
    assert backoff_delay(100) == 360
    assert [backoff_delay(n, base=0.5, cap=3) for n in range(1, 6)] == [0.5, 1, 2, 3, 3]


def test_backoff_record_counts_failures_since_the_last_success() -> None:
    record = next_backoff_record(BackoffRecord(), [], [T0, T0 + timedelta(seconds=5)])
    assert record == BackoffRecord(2, T0 + timedelta(seconds=5))
    record = next_backoff_record(record, [], [T0 + timedelta(seconds=30)])
    assert record == BackoffRecord(3, T0 + timedelta(seconds=30))
    # A success resets the count...
    assert next_backoff_record(record, [T0 + timedelta(seconds=40)], []) == BackoffRecord()
    # ...except for failures that came after it.
    later = next_backoff_record(record, [T0 + timedelta(seconds=40)],
                                [T0 + timedelta(seconds=35), T0 + timedelta(seconds=50)])
    assert later == BackoffRecord(1, T0 + timedelta(seconds=50))
    assert next_backoff_record(record, [], []) is record


def test_remaining_backoff_runs_from_the_last_failure() -> None:
    record = BackoffRecord(3, T0)  # 40 s after the third failure in a row
    assert remaining_backoff(record, T0 + timedelta(seconds=15)) == pytest.approx(25)
    assert remaining_backoff(record, T0 + timedelta(seconds=41)) == 0
    assert remaining_backoff(BackoffRecord(), T0) == 0
    assert remaining_backoff(record, T0 + timedelta(seconds=1), base=0.5) == pytest.approx(1)


# ---- pods ----


def pod(phase: str, *, deleting: bool = False) -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.status.phase = phase
    p.metadata.creation_timestamp.CopyFrom(ts(T0))
    if deleting:
        p.metadata.deletion_timestamp.CopyFrom(ts(T0 + timedelta(seconds=30)))
        p.metadata.deletion_grace_period_seconds = 30
    return p


@pytest.mark.parametrize(("phase", "deleting", "failed"), [
    ("Failed", False, True),
    ("Succeeded", False, False),
    ("Running", False, False),
    ("Running", True, True),  # deleted before it could finish: it never will
    ("Pending", True, True),
    ("Succeeded", True, False),
])
def test_which_pods_count_as_failed(phase: str, deleting: bool, failed: bool) -> None:
    assert is_pod_failed(pod(phase, deleting=deleting)) is failed


def test_pod_finish_time_prefers_the_containers_then_readiness_then_deletion() -> None:
    p = pod("Failed")
    for seconds in (3, 7):
        status = p.status.container_statuses.add()
        status.state.terminated.finished_at.CopyFrom(ts(T0 + timedelta(seconds=seconds)))
    p.status.conditions.add(type="Ready", status="False",
                            last_transition_time=ts(T0 + timedelta(seconds=9)))
    assert pod_finish_time(p) == T0 + timedelta(seconds=7)
    del p.status.container_statuses[:]
    assert pod_finish_time(p) == T0 + timedelta(seconds=9)
    deleted = pod("Running", deleting=True)
    assert pod_finish_time(deleted) == T0  # deletion time minus the grace period
    assert pod_finish_time(pod("Pending")) == T0  # creation, as the last resort


# ---- conditions ----


def test_conditions_follow_kubernetes_rules() -> None:
    job = batch_pb2.Job()
    conds = job.status.conditions
    # A False condition that does not exist is not added (a job never suspended).
    assert not set_condition(conds, "Suspended", "False", "JobResumed", "Job resumed", T0)
    assert len(conds) == 0
    assert set_condition(conds, "Suspended", "True", "JobSuspended", "Job suspended", T0)
    assert (conds[0].status, conds[0].reason, conds[0].message) == (
        "True", "JobSuspended", "Job suspended")
    assert conds[0].last_probe_time == conds[0].last_transition_time == ts(T0)
    # Already true: nothing changes, not even the times.
    assert not set_condition(conds, "Suspended", "True", "JobSuspended", "Job suspended",
                             T0 + timedelta(seconds=5))
    later = T0 + timedelta(seconds=10)
    assert set_condition(conds, "Suspended", "False", "JobResumed", "Job resumed", later)
    assert (conds[0].status, conds[0].reason) == ("False", "JobResumed")
    assert conds[0].last_transition_time == ts(later)
    assert finished_condition(job) is None
    set_condition(conds, "Complete", "True", "CompletionsReached",
                  "Reached expected number of succeeded pods", later)
    assert finished_condition(job) == "Complete"
    assert finish_time(job) == later


# ---- counting finished pods: uncountedTerminatedPods ----


def tracked_pod(uid: str, phase: str, *, finalizer: bool = True,
                deleting: bool = False) -> core_pb2.Pod:
    p = pod(phase, deleting=deleting)
    p.metadata.uid = uid
    if finalizer:
        p.metadata.finalizers.append(JOB_TRACKING_FINALIZER)
    return p


def uncounted(status: batch_pb2.JobStatus) -> tuple[list[str], list[str]]:
    u = status.uncounted_terminated_pods
    return list(u.succeeded), list(u.failed)


def uids(pods: list[core_pb2.Pod]) -> list[str]:
    return [p.metadata.uid for p in pods]


def test_new_finished_pods_are_those_neither_counted_nor_uncounted() -> None:
    status = batch_pb2.JobStatus()
    status.uncounted_terminated_pods.succeeded.append("s-uncounted")
    status.uncounted_terminated_pods.failed.append("f-uncounted")
    pods = [
        tracked_pod("s-new", "Succeeded"),
        tracked_pod("s-uncounted", "Succeeded"),
        tracked_pod("s-counted", "Succeeded", finalizer=False),
        tracked_pod("s-removing", "Succeeded"),
        tracked_pod("f-new", "Failed"),
        tracked_pod("f-deleted", "Running", deleting=True),
        tracked_pod("f-uncounted", "Failed"),
        tracked_pod("running", "Running"),
    ]
    succeeded, failed = new_finished_pods(pods, status, {"s-removing"})
    assert uids(succeeded) == ["s-new"]
    assert uids(failed) == ["f-new", "f-deleted"]


def test_finished_pods_enter_uncounted_once_and_are_released_after() -> None:
    status = batch_pb2.JobStatus(succeeded=3, failed=1)
    pods = [tracked_pod("a", "Succeeded"), tracked_pod("b", "Failed"),
            tracked_pod("c", "Running"), tracked_pod("d", "Pending", deleting=True),
            tracked_pod("e", "Succeeded", finalizer=False)]
    release, capped = record_uncounted(status, pods)
    assert uncounted(status) == (["a"], ["b", "d"])
    assert uids(release) == ["a", "b", "d"]  # the running pod keeps its finalizer
    assert not capped
    # The counts do not move in the first phase.
    assert (status.succeeded, status.failed) == (3, 1)
    # Seen again (a retry, a restart): nothing is added twice, the finalizers still go.
    again, _ = record_uncounted(status, pods)
    assert uncounted(status) == (["a"], ["b", "d"])
    assert uids(again) == ["a", "b", "d"]


def test_pods_whose_finalizer_is_on_its_way_out_are_left_alone() -> None:
    status = batch_pb2.JobStatus()
    release, _ = record_uncounted(status, [tracked_pod("a", "Succeeded")], removing={"a"})
    assert release == [] and uncounted(status) == ([], [])


def test_a_finishing_job_counts_every_pod_not_succeeded_as_failed() -> None:
    status = batch_pb2.JobStatus()
    pods = [tracked_pod("ok", "Succeeded"), tracked_pod("run", "Running"),
            tracked_pod("wait", "Pending")]
    release, _ = record_uncounted(status, pods, finishing=True)
    assert uncounted(status) == (["ok"], ["run", "wait"])
    assert uids(release) == ["ok", "run", "wait"]


def test_a_job_being_deleted_lets_running_pods_go_without_counting_them() -> None:
    status = batch_pb2.JobStatus()
    pods = [tracked_pod("ok", "Succeeded"), tracked_pod("run", "Running")]
    release, _ = record_uncounted(status, pods, job_deleting=True)
    assert uncounted(status) == (["ok"], [])
    assert uids(release) == ["ok", "run"]


def test_a_pod_uncounted_as_failed_stays_failed_when_it_succeeds_later() -> None:
    status = batch_pb2.JobStatus()
    status.uncounted_terminated_pods.failed.append("a")
    record_uncounted(status, [tracked_pod("a", "Succeeded")])
    assert uncounted(status) == ([], ["a"])


def test_uncounted_uids_are_capped() -> None:
    status = batch_pb2.JobStatus()
    pods = [tracked_pod(f"p{i}", "Succeeded") for i in range(5)]
    release, capped = record_uncounted(status, pods, limit=3)
    assert capped
    assert uncounted(status) == (["p0", "p1", "p2"], [])
    assert uids(release) == ["p0", "p1", "p2"]  # the others wait for a later sync
    assert uncounted_total(status) == 3


def test_uids_move_to_the_counts_once_their_finalizer_is_gone() -> None:
    status = batch_pb2.JobStatus(succeeded=2, failed=1)
    status.uncounted_terminated_pods.succeeded.extend(["a", "b", "c"])
    status.uncounted_terminated_pods.failed.extend(["x", "y"])
    # "b" and "y" still carry the finalizer; the others lost it or are gone.
    assert count_released(status, {"b", "y", "unrelated"})
    assert (status.succeeded, status.failed) == (4, 2)
    assert uncounted(status) == (["b"], ["y"])
    assert not count_released(status, {"b", "y"})  # nothing more to move
    assert (status.succeeded, status.failed) == (4, 2)


def run_protocol(status: batch_pb2.JobStatus, pods: list[core_pb2.Pod],
                 crash_after: int | None = None) -> batch_pb2.JobStatus:
    """One sync's counting as the controller does it, on a copy of what the apiserver
    holds: phase 1 (record), phase 2 (release), phase 3 (count). With `crash_after` the
    controller dies after that phase: only what was written survives."""
    stored = batch_pb2.JobStatus()
    stored.CopyFrom(status)
    work = batch_pb2.JobStatus()
    work.CopyFrom(status)
    with_finalizer = {p.metadata.uid for p in pods if JOB_TRACKING_FINALIZER in
                      p.metadata.finalizers}
    count_released(work, with_finalizer)
    release, _ = record_uncounted(work, pods)
    stored.CopyFrom(work)  # the first status write
    if crash_after == 1:
        return stored
    for p in release:
        p.metadata.finalizers.remove(JOB_TRACKING_FINALIZER)
        with_finalizer.discard(p.metadata.uid)
    if crash_after == 2:
        return stored
    count_released(work, with_finalizer)
    stored.CopyFrom(work)  # the second status write
    return stored


@pytest.mark.parametrize("crash_after", [None, 1, 2])
def test_a_restart_at_any_point_counts_each_pod_exactly_once(crash_after: int | None) -> None:
    pods = [tracked_pod("a", "Succeeded"), tracked_pod("b", "Succeeded"),
            tracked_pod("c", "Failed"), tracked_pod("d", "Running")]
    status = run_protocol(batch_pb2.JobStatus(), pods, crash_after)
    # A fresh controller with no memory but the stored status, run twice more.
    for _ in range(2):
        status = run_protocol(status, pods)
    assert (status.succeeded, status.failed) == (2, 1)
    assert uncounted_total(status) == 0
    assert [p.metadata.uid for p in pods if p.metadata.finalizers] == ["d"]
