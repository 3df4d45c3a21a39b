"""The Job controller.

A Job runs pods from its template until enough of them succeed (Kubernetes' job
controller, NonIndexed completion mode):

* non-parallel (completions and parallelism unset: 1 and 1), fixed completions (at most
  `parallelism` pods at once, never more than the completions still missing), or a work
  queue (`completions` unset: `parallelism` pods; once one has succeeded no new pods start,
  and the Job is complete when all have ended);
* `parallelism: 0` or `suspend: true` stops the pods and starts none; a suspended Job has
  the condition Suspended=True, and resuming restarts its clock (`startTime`);
* failures: more failed pods than `backoffLimit` (with restartPolicy OnFailure, container
  restarts count too) fail the Job with BackoffLimitExceeded; running longer than
  `activeDeadlineSeconds` fails it with DeadlineExceeded; either way its pods are stopped.
  A replacement for a failed pod waits 10 s, doubling with each failure in a row, at most
  6 minutes (the base is a constructor argument so tests can be quick).

Counting survives pods that disappear, and controller restarts, with Kubernetes'
two-phase protocol. Every pod carries the finalizer `batch.kubernetes.io/job-tracking`,
so a finished or deleted pod stays until it has been accounted for. A finished pod's uid
is first written to `status.uncountedTerminatedPods` (succeeded or failed); only then is
its finalizer removed; a later status write moves the uids whose pods lost the finalizer
(or are gone) into `status.succeeded`/`status.failed`. The status is the only memory:
a restart between any two steps finds each pod either uncounted with its finalizer, or
uncounted without it, or counted without it, and counts it exactly once. A Job is
declared Complete or Failed only once nothing is left uncounted.
Three guards keep a lagging cache from causing double work: expectations, as in the
ReplicaSet controller, for pod creations and deletions; the resourceVersion of the
controller's own last status write, which a cached Job must have reached before it is
acted on again; and, as Kubernetes' finalizer expectations, the uids whose finalizer
removal was asked for and is not yet in the pod cache (such a pod is not counted again).

Pod events reach the controller as they reach the ReplicaSet's (``PodOwnerEvents``): they
tick off expectations and enqueue the owning Job, or the Jobs that may adopt an orphan.
Pods whose Job is gone altogether are released by ``controllers.workloads.joborphans``.
Finished Jobs are deleted by ``controllers.workloads.ttlafterfinished``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from controllers.common.claim import claim, controller_of, selector_of
from controllers.common.context import ControllerContext
from controllers.common.expectations import Expectations
from controllers.common.jobs import (
    COMPLETE,
    FAILED,
    JOB_TRACKING_FINALIZER,
    finished_condition,
    has_tracking_finalizer,
    remove_tracking_finalizer,
)
from controllers.common.podcontrol import PodControl
from controllers.common.podowners import PodOwnerEvents
from controllers.common.replicas import deletion_order
from skiff.api import conditions
from skiff.api.pods import FAILED as POD_FAILED
from skiff.api.pods import PENDING, RUNNING, SUCCEEDED, is_active, is_ready, is_terminal
from skiff.api.v1 import batch_pb2, core_pb2, meta_pb2
from skiff.client.backoff import exponential_delay
from skiff.client.controller import Controller
from skiff.client.informer import INDEX_NAMESPACE, object_key, split_key

__all__ = [
    "DEFAULT_BACKOFF_BASE",
    "MAX_BACKOFF",
    "MAX_UNCOUNTED_PODS",
    "BackoffRecord",
    "JobController",
    "count_released",
    "is_complete",
    "is_pod_failed",
    "new_finished_pods",
    "next_backoff_record",
    "pod_finish_time",
    "record_uncounted",
    "remaining_backoff",
    "set_condition",
    "uncounted_total",
    "want_active",
]

log = logging.getLogger(__name__)

DEFAULT_BACKOFF_BASE = 10.0  # Kubernetes' DefaultJobPodFailureBackOff
MAX_BACKOFF = 360.0  # MaxJobPodFailureBackOff
MAX_POD_CREATE_DELETE_PER_SYNC = 500
MAX_UNCOUNTED_PODS = 500  # Kubernetes' MaxUncountedPods

SUSPENDED = "Suspended"


# --------------------------------------------------------------------------- pure logic


def want_active(*, completions: int | None, parallelism: int, succeeded: int,
                active: int) -> int:
    """How many pods should run: never more than `parallelism`, nor than the completions
    still missing; a work queue (no completions) keeps `parallelism` until one pod has
    succeeded, then lets what runs finish and starts nothing."""
    if completions is None:
        return active if succeeded > 0 else parallelism
    return max(0, min(completions - succeeded, parallelism))


def is_complete(*, completions: int | None, succeeded: int, active: int) -> bool:
    """Done: no pod runs and enough succeeded (a work queue: any one)."""
    if active > 0:
        return False
    if completions is None:
        return succeeded > 0
    return succeeded >= completions


@dataclass(frozen=True)
class BackoffRecord:
    """Failures since the last success, and when the latest of them happened."""

    failures_after_last_success: int = 0
    last_failure: datetime | None = None


def next_backoff_record(record: BackoffRecord, succeeded: Iterable[datetime],
                        failed: Iterable[datetime]) -> BackoffRecord:
    """The record after newly finished pods (their finish times): a success resets the
    count, except for failures that came after it."""
    successes = sorted(succeeded)
    failures = sorted(failed)
    if not successes:
        if not failures:
            return record
        return BackoffRecord(record.failures_after_last_success + len(failures), failures[-1])
    last_success = successes[-1]
    after = [t for t in failures if t > last_success]
    return BackoffRecord(len(after), after[-1] if after else None)


def remaining_backoff(record: BackoffRecord, now: datetime, base: float = DEFAULT_BACKOFF_BASE,
                      cap: float = MAX_BACKOFF) -> float:
    """Seconds left before a new pod may be created."""
    if record.failures_after_last_success <= 0 or record.last_failure is None:
        return 0.0
    delay = exponential_delay(record.failures_after_last_success, base, cap)
    elapsed = (now - record.last_failure).total_seconds()
    return max(0.0, delay - elapsed)


def _dt(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def pod_finish_time(pod: core_pb2.Pod) -> datetime:
    """When a pod ended: its containers' latest finish, else when it stopped being Ready,
    else its deletion (minus the grace period), else its creation."""
    statuses = pod.status.container_statuses
    if statuses and all(s.state.HasField("terminated")
                        and s.state.terminated.HasField("finished_at") for s in statuses):
        return max(_dt(s.state.terminated.finished_at) for s in statuses)
    for cond in pod.status.conditions:
        if (cond.type == "Ready" and cond.status == "False"
                and cond.HasField("last_transition_time")):
            return _dt(cond.last_transition_time)
    meta = pod.metadata
    if meta.HasField("deletion_timestamp"):
        return _dt(meta.deletion_timestamp) - timedelta(
            seconds=meta.deletion_grace_period_seconds)
    return _dt(meta.creation_timestamp)


def is_pod_failed(pod: core_pb2.Pod) -> bool:
    """Failed, or deleted before it succeeded (it may never reach a phase of its own)."""
    if pod.status.phase == POD_FAILED:
        return True
    return pod.metadata.HasField("deletion_timestamp") and pod.status.phase != SUCCEEDED


def set_condition(conds: conditions.Conditions[meta_pb2.Condition], type_: str,
                  status: str, reason: str, message: str, now: datetime) -> bool:
    """Kubernetes' ensureJobConditionStatus on a repeated field (changed in place):
    nothing to do when the condition is already as true as asked; a False condition
    that does not exist is not added. Otherwise the status changes, so its times are
    stamped (in whole seconds, as Kubernetes' object times). Returns whether anything
    changed."""
    if conditions.is_true(conds, type_) == (status == "True"):
        return False
    if status == "False" and conditions.find(conds, type_) is None:
        return False
    cond, _ = conditions.set_condition(conds, type_, status, now.replace(microsecond=0),
                                       reason=reason, message=message)
    cond.last_probe_time.CopyFrom(cond.last_transition_time)
    return True


def _timestamp(t: datetime) -> Timestamp:
    # Kubernetes' object times have whole seconds; so do the apiserver's.
    ts = Timestamp()
    ts.FromDatetime(t.replace(microsecond=0))
    return ts


def _copy_job(job: batch_pb2.Job) -> batch_pb2.Job:
    copy = batch_pb2.Job()
    copy.CopyFrom(job)
    return copy


# --------------------------------------------------------------------------- counting pods


def _tracked(pod: core_pb2.Pod, removing: AbstractSet[str]) -> bool:
    """Still to be accounted for: it carries the finalizer, and its removal was not asked
    for already (the cache may not show that yet)."""
    return has_tracking_finalizer(pod) and pod.metadata.uid not in removing


def uncounted_total(status: batch_pb2.JobStatus) -> int:
    """How many finished pods the status holds but has not counted yet."""
    uncounted = status.uncounted_terminated_pods
    return len(uncounted.succeeded) + len(uncounted.failed)


def new_finished_pods(pods: Iterable[core_pb2.Pod], status: batch_pb2.JobStatus,
                      removing: AbstractSet[str] = frozenset()
                      ) -> tuple[list[core_pb2.Pod], list[core_pb2.Pod]]:
    """Kubernetes' getNewFinishedPods: the (succeeded, failed) pods this sync sees finished
    for the first time. A pod without the finalizer has been counted already (or never
    will be); one in `uncountedTerminatedPods` is on its way to its count."""
    uncounted = status.uncounted_terminated_pods
    known = {*uncounted.succeeded, *uncounted.failed}
    fresh = [p for p in pods if _tracked(p, removing) and p.metadata.uid not in known]
    return ([p for p in fresh if p.status.phase == SUCCEEDED],
            [p for p in fresh if is_pod_failed(p)])


def count_released(status: batch_pb2.JobStatus, with_finalizer: AbstractSet[str]) -> bool:
    """Kubernetes' cleanUncountedPodsWithoutFinalizers: the last phase. A uid in
    `uncountedTerminatedPods` whose pod no longer has the finalizer (or is gone) moves
    into its count; the finalizer kept the pod from being counted by anyone else, and
    leaving the list in the same write as the count grows is what makes it count once.
    Returns whether the status changed."""
    uncounted = status.uncounted_terminated_pods
    changed = False
    for uids, field in ((uncounted.succeeded, "succeeded"), (uncounted.failed, "failed")):
        kept = [u for u in uids if u in with_finalizer]
        if len(kept) == len(uids):
            continue
        setattr(status, field, getattr(status, field) + len(uids) - len(kept))
        del uids[:]
        uids.extend(kept)
        changed = True
    return changed


def record_uncounted(status: batch_pb2.JobStatus, pods: Iterable[core_pb2.Pod], *,
                     removing: AbstractSet[str] = frozenset(), finishing: bool = False,
                     job_deleting: bool = False, limit: int = MAX_UNCOUNTED_PODS
                     ) -> tuple[list[core_pb2.Pod], bool]:
    """The first phase of Kubernetes' trackJobStatusAndRemoveFinalizers: every finished
    pod that still carries the finalizer joins `uncountedTerminatedPods` (once), before
    any finalizer goes. Once the Job is finishing, every pod not succeeded counts as
    failed; a Job being deleted lets all its pods go. Pods in `removing` are on their
    way out already (counted, or stopped on purpose): they are left alone.

    Returns the pods whose finalizer may go once the status is written, and whether
    `limit` uids were reached (the rest waits for a later sync, which keeps the status
    small; the Job may not finish before)."""
    uncounted = status.uncounted_terminated_pods
    succeeded, failed = set(uncounted.succeeded), set(uncounted.failed)
    release: list[core_pb2.Pod] = []
    for pod in pods:
        uid = pod.metadata.uid
        if not _tracked(pod, removing):
            continue
        stopped = pod.metadata.HasField("deletion_timestamp") or finishing
        if is_terminal(pod) or stopped or job_deleting:
            release.append(pod)
        if pod.status.phase == SUCCEEDED and uid not in failed:
            if uid not in succeeded:
                uncounted.succeeded.append(uid)
                succeeded.add(uid)
        elif (pod.status.phase == POD_FAILED or stopped) and uid not in failed:
            uncounted.failed.append(uid)
            failed.add(uid)
        if uncounted_total(status) >= limit:
            return release, True
    return release, False


class JobController(Controller):
    """Runs each Job's pods to completion; see the module docstring."""

    def __init__(self, ctx: ControllerContext, *, workers: int = 5,
                 backoff_base: float = DEFAULT_BACKOFF_BASE,
                 backoff_max: float = MAX_BACKOFF) -> None:
        self.jobs = ctx.factory.informer(batch_pb2.Job)
        self.pods = ctx.factory.informer(core_pb2.Pod)
        super().__init__("job", informers=[self.jobs, self.pods], workers=workers,
                         clock=ctx.clock)
        self.client = ctx.client
        self.clock = ctx.clock
        self.recorder = ctx.recorder("job-controller")
        self.pod_control = PodControl(ctx.client, self.recorder, clock=ctx.clock)
        self.expectations = Expectations(ctx.clock)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        # job key -> uids whose finalizer removal was asked for and not yet seen in the
        # cache (Kubernetes' finalizerExpectations). Not a memory of what was counted
        # (the status is), only a guard against a pod cache that lags the Job's.
        self._removing: dict[str, set[str]] = {}
        # job key -> resourceVersion of our last status write
        self._written: dict[str, int] = {}
        self._backoff: dict[str, BackoffRecord] = {}
        self._warned_indexed: set[str] = set()
        self.enqueue_from(self.jobs)
        # Pods tick off expectations and bring back their Job, or the Jobs that may
        # adopt them. A finalizer removal the cache has not shown yet is pruned from
        # `_removing` at the start of each sync (`_still_removing`).
        self.pod_events = PodOwnerEvents(self, self.jobs, self.pods, self.expectations)

    # ---- sync ----

    async def sync(self, key: str) -> None:
        job = self.jobs.store.get(key)
        if job is None:
            self._forget(key)
            await self._release_pods_of_gone_job(key, live_uid=None)
            return
        written = self._written.get(key)
        if written is not None and int(job.metadata.resource_version or 0) < written:
            return  # our own status write has not reached the cache yet; its event will
        await self._release_pods_of_gone_job(key, live_uid=job.metadata.uid)
        pods = await self._pods_of(job)
        if finished_condition(job) is not None:
            # Finished (so nothing is left uncounted): count nothing more, but let every
            # pod go.
            self._backoff.pop(key, None)
            await self._remove_finalizers(key, [p for p in pods if has_tracking_finalizer(p)])
            return
        if job.spec.completion_mode == "Indexed":
            self._warn_indexed(job)
            return
        await self._sync_job(key, job, pods)

    async def _sync_job(self, key: str, job: batch_pb2.Job,
                        pods: list[core_pb2.Pod]) -> None:
        now = self.clock.wall()
        spec = job.spec
        satisfied = self.expectations.satisfied(key)
        status = batch_pb2.JobStatus()
        status.CopyFrom(job.status)
        status.uncounted_terminated_pods.SetInParent()
        removing = self._still_removing(key, pods)
        new_succeeded, new_failed = new_finished_pods(pods, status, removing)
        active_pods = [p for p in pods if is_active(p)]
        uncounted = status.uncounted_terminated_pods
        succeeded = status.succeeded + len(new_succeeded) + len(uncounted.succeeded)
        failed = status.failed + len(new_failed) + len(uncounted.failed)
        suspended = spec.HasField("suspend") and spec.suspend
        if not suspended and (not status.HasField("start_time")
                              or conditions.is_true(status.conditions, SUSPENDED)):
            # First start, or resuming: activeDeadlineSeconds counts the time a Job is
            # continuously active, so the clock starts again.
            status.start_time.CopyFrom(_timestamp(now))
        backoff = next_backoff_record(self._backoff.get(key, BackoffRecord()),
                                      [pod_finish_time(p) for p in new_succeeded],
                                      [pod_finish_time(p) for p in new_failed])
        events: list[tuple[str, str, str]] = []
        stopped: set[str] = set()  # stopped on purpose (scaled down): not failures

        failure = self._failure(job, status, pods, failed, now)
        finished: tuple[str, str, str] | None = None  # (type, reason, message)
        if failure is not None:
            await self._delete_pods(key, job, active_pods, keep_finalizers=True)
            active, ready = 0, 0
            # A pod being created may not be in the cache yet: it would outlive a Job
            # declared failed now.
            if satisfied:
                finished = (FAILED, *failure)
        else:
            active = len(active_pods)
            ready = sum(1 for p in active_pods if is_ready(p))
            managed = False
            if not job.metadata.HasField("deletion_timestamp"):
                active, ready, stopped = await self._manage(key, job, active_pods, succeeded,
                                                            backoff, now)
                managed = True
            completions = spec.completions if spec.HasField("completions") else None
            if is_complete(completions=completions, succeeded=succeeded, active=active):
                finished = (COMPLETE, "CompletionsReached",
                            "Reached expected number of succeeded pods")
            elif managed:
                events += self._suspension(status, suspended, now)

        status.active = active
        status.ready = ready
        await self._track_and_release(key, job, status, pods, removing=removing | stopped,
                                      finished=finished, backoff=backoff, events=events)

    async def _track_and_release(self, key: str, job: batch_pb2.Job,
                                 status: batch_pb2.JobStatus, pods: list[core_pb2.Pod], *,
                                 removing: set[str], finished: tuple[str, str, str] | None,
                                 backoff: BackoffRecord,
                                 events: list[tuple[str, str, str]]) -> None:
        """Kubernetes' trackJobStatusAndRemoveFinalizers. Finished pods enter
        `uncountedTerminatedPods` in one status write; only then do their finalizers go;
        a later write moves the uids whose finalizer is gone into the counts. A restart
        between any two steps finds the uids in the status and neither loses nor
        repeats a count. The Job finishes only once nothing is left uncounted."""
        with_finalizer = {p.metadata.uid for p in pods if has_tracking_finalizer(p)} | removing
        count_released(status, with_finalizer)
        release, capped = record_uncounted(
            status, pods, removing=removing, finishing=finished is not None,
            job_deleting=job.metadata.HasField("deletion_timestamp"))
        job = await self._write_status(key, job, status)
        self._backoff[key] = backoff
        for type_, reason, message in events:
            self.recorder.event(job, type_, reason, message)

        released, err = await self._release_counted(key, release)
        count_released(status, with_finalizer - released)
        if err is not None:
            await self._write_status(key, job, status)  # keep what did get counted
            raise err
        # Kubernetes' enactJobFinished: not while a pod is left to count.
        if capped or uncounted_total(status) > 0:
            finished = None
        if finished is not None:
            now = self.clock.wall()
            set_condition(status.conditions, finished[0], "True", finished[1], finished[2], now)
            if finished[0] == COMPLETE:
                status.completion_time.CopyFrom(_timestamp(now))
        job = await self._write_status(key, job, status)
        if finished is not None:
            self._record_finished(job, status, finished)

    def _record_finished(self, job: batch_pb2.Job, status: batch_pb2.JobStatus,
                         finished: tuple[str, str, str]) -> None:
        if finished[0] != COMPLETE:
            self.recorder.event(job, "Warning", finished[1], finished[2])
            return
        if job.spec.HasField("completions") and status.succeeded > job.spec.completions:
            self.recorder.event(job, "Warning", "TooManySucceededPods",
                                "Too many succeeded pods running after completion count "
                                "reached")
        self.recorder.event(job, "Normal", "Completed", "Job completed")

    def _still_removing(self, key: str, pods: list[core_pb2.Pod]) -> set[str]:
        """The uids whose finalizer removal the cache has not shown yet; a pod the cache
        shows without the finalizer, or no longer has, is done."""
        removing = self._removing.get(key)
        if not removing:
            return set()
        removing.intersection_update(p.metadata.uid for p in pods if has_tracking_finalizer(p))
        return set(removing)

    async def _release_counted(self, key: str, pods: list[core_pb2.Pod]
                               ) -> tuple[set[str], BaseException | None]:
        """Removes the finalizer of pods the status now holds; returns the uids released
        (or gone) and the first error."""
        if not pods:
            return set(), None
        removing = self._removing.setdefault(key, set())
        removing.update(p.metadata.uid for p in pods)
        results = await asyncio.gather(
            *(remove_tracking_finalizer(self.client, p) for p in pods), return_exceptions=True)
        released: set[str] = set()
        err: BaseException | None = None
        for pod, result in zip(pods, results, strict=True):
            if isinstance(result, BaseException):
                removing.discard(pod.metadata.uid)  # no cache update will come for it
                err = err or result
            else:
                released.add(pod.metadata.uid)
        return released, err

    def _failure(self, job: batch_pb2.Job, status: batch_pb2.JobStatus,
                 pods: list[core_pb2.Pod], failed: int, now: datetime
                 ) -> tuple[str, str] | None:
        """(reason, message) if the Job has failed; else None, after asking to look
        again at its deadline."""
        spec = job.spec
        if failed > spec.backoff_limit or self._past_backoff_limit_on_failure(job, pods):
            return "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        suspended = spec.HasField("suspend") and spec.suspend
        if not spec.HasField("active_deadline_seconds") or suspended:
            return None
        if not status.HasField("start_time"):
            return None
        left = (_dt(status.start_time) + timedelta(seconds=spec.active_deadline_seconds)
                - now).total_seconds()
        if left <= 0:
            return "DeadlineExceeded", "Job was active longer than specified deadline"
        self.enqueue_after(job, left)
        return None

    @staticmethod
    def _past_backoff_limit_on_failure(job: batch_pb2.Job, pods: list[core_pb2.Pod]) -> bool:
        """With restartPolicy OnFailure a failing container restarts in place, so its
        restarts (in pods still running or pending) count as failures."""
        if job.spec.template.spec.restart_policy != "OnFailure":
            return False
        restarts = sum(s.restart_count
                       for p in pods if p.status.phase in (RUNNING, PENDING)
                       for s in [*p.status.init_container_statuses,
                                 *p.status.container_statuses])
        limit = job.spec.backoff_limit
        return restarts > 0 if limit == 0 else restarts >= limit

    @staticmethod
    def _suspension(status: batch_pb2.JobStatus, suspended: bool, now: datetime
                    ) -> list[tuple[str, str, str]]:
        """Sets the Suspended condition; returns the event to record once it is written."""
        if suspended:
            if set_condition(status.conditions, SUSPENDED, "True", "JobSuspended",
                             "Job suspended", now):
                return [("Normal", "Suspended", "Job suspended")]
        elif set_condition(status.conditions, SUSPENDED, "False", "JobResumed",
                           "Job resumed", now):
            return [("Normal", "Resumed", "Job resumed")]
        return []

    async def _manage(self, key: str, job: batch_pb2.Job, active_pods: list[core_pb2.Pod],
                      succeeded: int, backoff: BackoffRecord, now: datetime
                      ) -> tuple[int, int, set[str]]:
        """Creates or deletes pods towards the wanted number; returns (active, ready, the
        uids of the pods stopped)."""
        active = len(active_pods)
        ready = sum(1 for p in active_pods if is_ready(p))
        if not self.expectations.satisfied(key):
            return active, ready, set()
        spec = job.spec
        if spec.HasField("suspend") and spec.suspend:
            return await self._scale_down(key, job, active_pods, active)
        completions = spec.completions if spec.HasField("completions") else None
        want = want_active(completions=completions, parallelism=spec.parallelism,
                           succeeded=succeeded, active=active)
        if active > want:
            return await self._scale_down(key, job, active_pods, active - want)
        diff = min(want - active, MAX_POD_CREATE_DELETE_PER_SYNC)
        if diff <= 0:
            return active, ready, set()
        wait = remaining_backoff(backoff, now, self.backoff_base, self.backoff_max)
        if wait > 0:
            log.info("job %s: delaying pod creation %.1fs for back-off", key, wait)
            self.enqueue_after(key, wait)
            return active, ready, set()
        created = await self._create_pods(key, job, diff)
        return active + created, ready, set()

    async def _scale_down(self, key: str, job: batch_pb2.Job,
                          active_pods: list[core_pb2.Pod], count: int
                          ) -> tuple[int, int, set[str]]:
        victims = sorted(active_pods, key=deletion_order)[:min(count,
                                                             MAX_POD_CREATE_DELETE_PER_SYNC)]
        # Pods stopped on purpose are not failures: their finalizer goes first, so they
        # are never counted.
        await self._delete_pods(key, job, victims, keep_finalizers=False)
        deleted = {p.metadata.uid for p in victims}
        survivors = [p for p in active_pods if p.metadata.uid not in deleted]
        return len(survivors), sum(1 for p in survivors if is_ready(p)), deleted

    async def _create_pods(self, key: str, job: batch_pb2.Job, count: int) -> int:
        """Creates `count` pods from the template, each with the tracking finalizer;
        returns how many were asked for (a refusal by a terminating namespace is no
        error, as in Kubernetes). Raises the first error."""
        self.expectations.expect(key, creations=count)
        pods = []
        for _ in range(count):
            pod = self.pod_control.pod_from_template(job, job.spec.template)
            if JOB_TRACKING_FINALIZER not in pod.metadata.finalizers:
                pod.metadata.finalizers.append(JOB_TRACKING_FINALIZER)
            pods.append(pod)
        err = await self.pod_control.create_all(job, pods, self.expectations, key)
        if err is not None:
            raise err
        return count

    async def _delete_pods(self, key: str, job: batch_pb2.Job, pods: list[core_pb2.Pod], *,
                           keep_finalizers: bool) -> None:
        """Deletes `pods` (without `keep_finalizers`, their finalizer goes first, so that
        they are never counted). Raises the first error after trying them all."""
        if not pods:
            return
        self.expectations.expect(key, deletions=[object_key(p) for p in pods])
        error: BaseException | None = None
        if not keep_finalizers:
            pods, error = await self._release_before_deleting(key, pods)
        delete_error = await self.pod_control.delete_all(job, pods, self.expectations, key)
        error = error or delete_error
        if error is not None:
            raise error

    async def _release_before_deleting(self, key: str, pods: list[core_pb2.Pod]
                                       ) -> tuple[list[core_pb2.Pod], BaseException | None]:
        """Removes the finalizer of the `pods` about to be deleted; returns those that
        may now be deleted and the first error (a pod whose finalizer stayed is not
        deleted, and no event will come for it)."""
        removing = self._removing.setdefault(key, set())

        async def release(pod: core_pb2.Pod) -> None:
            if not has_tracking_finalizer(pod):
                return
            # Until the cache shows the finalizer gone, the pod is not to be counted,
            # even when the Job finishes meanwhile.
            removing.add(pod.metadata.uid)
            try:
                await remove_tracking_finalizer(self.client, pod)
            except BaseException:
                removing.discard(pod.metadata.uid)
                self.expectations.deleted(key, object_key(pod))
                raise

        results = await asyncio.gather(*(release(p) for p in pods), return_exceptions=True)
        released = [p for p, r in zip(pods, results, strict=True)
                    if not isinstance(r, BaseException)]
        error = next((r for r in results if isinstance(r, BaseException)), None)
        return released, error

    async def _write_status(self, key: str, job: batch_pb2.Job,
                            status: batch_pb2.JobStatus) -> batch_pb2.Job:
        """Writes `status` if it differs from `job`'s; returns the Job as now stored, on
        which a second write in the same sync is based."""
        if status == job.status:
            return job
        updated = _copy_job(job)
        updated.status.CopyFrom(status)
        written: batch_pb2.Job = await self.client.update_status(updated)
        self._written[key] = int(written.metadata.resource_version or 0)
        return written

    # ---- pods: ownership and finalizers ----

    async def _pods_of(self, job: batch_pb2.Job) -> list[core_pb2.Pod]:
        """The Job's pods after adopting orphans its selector matches and releasing its
        pods that no longer match (their finalizer goes with them)."""
        selector = selector_of(job)
        uid = job.metadata.uid
        candidates = []
        owned_before: dict[str, core_pb2.Pod] = {}
        for pod in self.pods.store.by_index(INDEX_NAMESPACE, job.metadata.namespace):
            ref = controller_of(pod)
            if ref is not None and ref.uid == uid:
                owned_before[pod.metadata.uid] = pod
                candidates.append(pod)
            elif ref is None and selector.matches(pod.metadata.labels):
                candidates.append(pod)
        pods = await claim(self.client, job, selector, candidates)
        kept = {p.metadata.uid for p in pods}
        released = [p for u, p in owned_before.items()
                    if u not in kept and has_tracking_finalizer(p)]
        for pod in released:
            await remove_tracking_finalizer(self.client, pod)
        return pods

    async def _remove_finalizers(self, key: str, pods: list[core_pb2.Pod]) -> None:
        if not pods:
            return
        results = await asyncio.gather(
            *(remove_tracking_finalizer(self.client, p) for p in pods), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]

    async def _release_pods_of_gone_job(self, key: str, live_uid: str | None) -> None:
        """Pods whose Job (by this name) is gone, or was replaced by a new one of the same
        name, have nobody left to count them: let them go."""
        namespace, name = split_key(key)
        orphans = []
        for pod in self.pods.store.by_index(INDEX_NAMESPACE, namespace):
            ref = controller_of(pod)
            if (ref is not None and ref.kind == "Job" and ref.name == name
                    and ref.uid != live_uid and has_tracking_finalizer(pod)):
                orphans.append(pod)
        await self._remove_finalizers(key, orphans)

    def _warn_indexed(self, job: batch_pb2.Job) -> None:
        if job.metadata.uid in self._warned_indexed:
            return
        self._warned_indexed.add(job.metadata.uid)
        self.recorder.event(job, "Warning", "UnsupportedCompletionMode",
                            "Skipped Job sync because completion mode Indexed is not "
                            "supported (only NonIndexed)")

    def _forget(self, key: str) -> None:
        self.expectations.forget(key)
        self._removing.pop(key, None)
        self._written.pop(key, None)
        self._backoff.pop(key, None)
