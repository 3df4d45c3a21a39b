"""The Job controller's arithmetic: how many pods to run, when a Job is done, the pod
failure back-off, which pods count as failed, and its condition bookkeeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from controllers.job import (
    BackoffRecord,
    backoff_delay,
    finish_time,
    finished_condition,
    is_complete,
    is_pod_failed,
    next_backoff_record,
    pod_finish_time,
    remaining_backoff,
    set_condition,
    want_active,
)
from skiff.api.v1 import batch_pb2, core_pb2

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
