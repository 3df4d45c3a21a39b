"""The Job controller, and the TTL-after-finished controller that removes finished Jobs.

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

`TTLAfterFinishedController` deletes a finished Job `ttlSecondsAfterFinished` seconds
after its Complete/Failed condition, with background propagation (the garbage collector
removes its pods). Kubernetes deletes with foreground propagation, which keeps the Job
until every pod is gone; background does not depend on the collector's foreground support
and the user sees the same end state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from controllers.common.claim import claim, controller_of, selector_of
from controllers.common.context import ControllerContext
from controllers.common.expectations import Expectations
from controllers.common.podcontrol import PodControl, slow_start_batch
from controllers.common.replicas import deletion_order
from skiff.api.pods import is_active, is_ready
from skiff.api.v1 import batch_pb2, core_pb2, meta_pb2
from skiff.client import errors
from skiff.client.controller import Controller, controller_owner_key
from skiff.client.informer import INDEX_NAMESPACE, object_key, split_key

__all__ = [
    "DEFAULT_BACKOFF_BASE",
    "JOB_TRACKING_FINALIZER",
    "MAX_BACKOFF",
    "MAX_UNCOUNTED_PODS",
    "BackoffRecord",
    "JobController",
    "TTLAfterFinishedController",
    "backoff_delay",
    "count_released",
    "finish_time",
    "finished_condition",
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

JOB_TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
DEFAULT_BACKOFF_BASE = 10.0  # Kubernetes' DefaultJobPodFailureBackOff
MAX_BACKOFF = 360.0  # MaxJobPodFailureBackOff
MAX_POD_CREATE_DELETE_PER_SYNC = 500
MAX_UNCOUNTED_PODS = 500  # Kubernetes' MaxUncountedPods

COMPLETE = "Complete"
FAILED = "Failed"
SUSPENDED = "Suspended"

# Work-queue keys for pods that carry our finalizer but have no Job to release them.
_ORPHAN_POD_PREFIX = "orphan-pod:"
_FINALIZER_RETRIES = 5


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


def backoff_delay(failures: int, base: float = DEFAULT_BACKOFF_BASE,
                  cap: float = MAX_BACKOFF) -> float:
    """The wait before replacing a pod after `failures` failures in a row: `base`,
    doubling with each, at most `cap`; none without failures."""
    if failures <= 0:
        return 0.0
    delay = base
    for _ in range(1, failures):
        delay *= 2
        if delay >= cap:
            return cap
    return delay


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
    delay = backoff_delay(record.failures_after_last_success, base, cap)
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
    if pod.status.phase == "Failed":
        return True
    return pod.metadata.HasField("deletion_timestamp") and pod.status.phase != "Succeeded"


def finished_condition(job: batch_pb2.Job) -> str | None:
    """"Complete" or "Failed" once the Job has finished, else None."""
    for cond in job.status.conditions:
        if cond.type in (COMPLETE, FAILED) and cond.status == "True":
            return cond.type  # type: ignore[no-any-return]
    return None


def set_condition(conditions: Sequence[meta_pb2.Condition], type_: str, status: str,
                  reason: str, message: str, now: datetime) -> bool:
    """Kubernetes' ensureJobConditionStatus on a repeated field (changed in place):
    nothing to do when the condition is already as true as asked; a False condition
    that does not exist is not added. Returns whether anything changed."""
    existing = next((c for c in conditions if c.type == type_), None)
    is_true = existing is not None and existing.status == "True"
    if is_true == (status == "True"):
        return False
    stamp = _timestamp(now)
    if existing is not None:
        existing.status, existing.reason, existing.message = status, reason, message
        existing.last_transition_time.CopyFrom(stamp)
        existing.last_probe_time.CopyFrom(stamp)
        return True
    if status == "False":
        return False
    conditions.add(type=type_, status=status, reason=reason,  # type: ignore[attr-defined]
                   message=message, last_transition_time=stamp, last_probe_time=stamp)
    return True


def _is_true(conditions: Iterable[meta_pb2.Condition], type_: str) -> bool:
    return any(c.type == type_ and c.status == "True" for c in conditions)


def _timestamp(t: datetime) -> Timestamp:
    # Kubernetes' object times have whole seconds; so do the apiserver's.
    ts = Timestamp()
    ts.FromDatetime(t.replace(microsecond=0))
    return ts


def _has_finalizer(pod: core_pb2.Pod) -> bool:
    return JOB_TRACKING_FINALIZER in pod.metadata.finalizers


def _copy_job(job: batch_pb2.Job) -> batch_pb2.Job:
    copy = batch_pb2.Job()
    copy.CopyFrom(job)
    return copy


# --------------------------------------------------------------------------- counting pods


def _tracked(pod: core_pb2.Pod, removing: AbstractSet[str]) -> bool:
    """Still to be accounted for: it carries the finalizer, and its removal was not asked
    for already (the cache may not show that yet)."""
    return _has_finalizer(pod) and pod.metadata.uid not in removing


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
    return ([p for p in fresh if p.status.phase == "Succeeded"],
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
        if pod.status.phase in ("Succeeded", "Failed") or stopped or job_deleting:
            release.append(pod)
        if pod.status.phase == "Succeeded" and uid not in failed:
            if uid not in succeeded:
                uncounted.succeeded.append(uid)
                succeeded.add(uid)
        elif (pod.status.phase == "Failed" or stopped) and uid not in failed:
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
        self.pod_control = PodControl(ctx.client, self.recorder)
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
        self.pods.add_handlers(on_add=self._pod_added, on_update=self._pod_updated,
                               on_delete=self._pod_deleted)

    # ---- events -> keys ----

    def _pod_added(self, pod: core_pb2.Pod) -> None:
        key = controller_owner_key(pod, batch_pb2.Job)
        if key is None:
            self._maybe_orphan(pod)
            return
        if pod.metadata.HasField("deletion_timestamp"):
            # A restarted informer may first see a pod already being deleted.
            self.expectations.deleted(key, object_key(pod))
        else:
            self.expectations.created(key)
        self.enqueue_key(key)

    def _pod_updated(self, old: core_pb2.Pod, new: core_pb2.Pod) -> None:
        new_key = controller_owner_key(new, batch_pb2.Job)
        old_key = controller_owner_key(old, batch_pb2.Job)
        if new_key is not None:
            if (new.metadata.HasField("deletion_timestamp")
                    and not old.metadata.HasField("deletion_timestamp")):
                self.expectations.deleted(new_key, object_key(new))
            if not _has_finalizer(new):
                self._removing.get(new_key, set()).discard(new.metadata.uid)
            self.enqueue_key(new_key)
        else:
            self._maybe_orphan(new)
        if old_key is not None and old_key != new_key:
            self._removing.get(old_key, set()).discard(new.metadata.uid)
            self.enqueue_key(old_key)

    def _pod_deleted(self, pod: core_pb2.Pod) -> None:
        key = controller_owner_key(pod, batch_pb2.Job)
        if key is None:
            return
        self.expectations.deleted(key, object_key(pod))
        self._removing.get(key, set()).discard(pod.metadata.uid)
        self.enqueue_key(key)

    def _maybe_orphan(self, pod: core_pb2.Pod) -> None:
        if _has_finalizer(pod):
            self.enqueue_key(_ORPHAN_POD_PREFIX + object_key(pod))

    # ---- sync ----

    async def sync(self, key: str) -> None:
        if key.startswith(_ORPHAN_POD_PREFIX):
            await self._sync_orphan_pod(key[len(_ORPHAN_POD_PREFIX):])
            return
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
            await self._remove_finalizers(key, [p for p in pods if _has_finalizer(p)])
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
                              or _is_true(status.conditions, SUSPENDED)):
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
        with_finalizer = {p.metadata.uid for p in pods if _has_finalizer(p)} | removing
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
        removing.intersection_update(p.metadata.uid for p in pods if _has_finalizer(p))
        return set(removing)

    async def _release_counted(self, key: str, pods: list[core_pb2.Pod]
                               ) -> tuple[set[str], BaseException | None]:
        """Removes the finalizer of pods the status now holds; returns the uids released
        (or gone) and the first error."""
        if not pods:
            return set(), None
        removing = self._removing.setdefault(key, set())
        removing.update(p.metadata.uid for p in pods)
        results = await asyncio.gather(*(self._remove_finalizer(p) for p in pods),
                                       return_exceptions=True)
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
                       for p in pods if p.status.phase in ("Running", "Pending")
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
        deleted = await self._delete_pods(key, job, victims, keep_finalizers=False)
        survivors = [p for p in active_pods if p.metadata.uid not in deleted]
        return len(survivors), sum(1 for p in survivors if is_ready(p)), deleted

    async def _create_pods(self, key: str, job: batch_pb2.Job, count: int) -> int:
        template = job.spec.template
        self.expectations.expect(key, creations=count)
        attempts = 0

        async def create_one() -> core_pb2.Pod:
            nonlocal attempts
            attempts += 1
            pod = self.pod_control.pod_from_template(job, template)
            if JOB_TRACKING_FINALIZER not in pod.metadata.finalizers:
                pod.metadata.finalizers.append(JOB_TRACKING_FINALIZER)
            try:
                return await self.pod_control.create(job, pod)
            except BaseException:
                self.expectations.created(key)  # no pod will arrive for this one
                raise

        done, err = await slow_start_batch(count, create_one)
        # Slow start gave up after a failure: the pods it never asked for will not come.
        self.expectations.created(key, count - attempts)
        if err is not None:
            raise err
        return len(done)

    async def _delete_pods(self, key: str, job: batch_pb2.Job, pods: list[core_pb2.Pod], *,
                           keep_finalizers: bool) -> set[str]:
        """Deletes `pods`; returns the uids deleted (or already gone). Raises the first
        error after trying them all."""
        if not pods:
            return set()
        self.expectations.expect(key, deletions=[object_key(p) for p in pods])

        removing = self._removing.setdefault(key, set())

        async def delete_one(pod: core_pb2.Pod) -> str:
            uid: str = pod.metadata.uid
            try:
                if not keep_finalizers and _has_finalizer(pod):
                    # Until the cache shows the finalizer gone, the pod is not to be
                    # counted, even when the Job finishes meanwhile.
                    removing.add(uid)
                    try:
                        await self._remove_finalizer(pod)
                    except BaseException:
                        removing.discard(uid)
                        raise
                await self.pod_control.delete(job, pod)
            except BaseException:
                self.expectations.deleted(key, object_key(pod))
                raise
            return uid

        results = await asyncio.gather(*(delete_one(p) for p in pods), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]
        return {r for r in results if isinstance(r, str)}

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
        released = [p for u, p in owned_before.items() if u not in kept and _has_finalizer(p)]
        for pod in released:
            await self._remove_finalizer(pod)
        return pods

    async def _remove_finalizers(self, key: str, pods: list[core_pb2.Pod]) -> None:
        if not pods:
            return
        results = await asyncio.gather(*(self._remove_finalizer(p) for p in pods),
                                       return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]

    async def _remove_finalizer(self, pod: core_pb2.Pod) -> None:
        """Removes the tracking finalizer (read-modify-write: the kubelet writes the pod
        often, so a conflict is read again and retried)."""
        current = pod
        for _ in range(_FINALIZER_RETRIES):
            if not _has_finalizer(current):
                return
            updated = core_pb2.Pod()
            updated.CopyFrom(current)
            kept = [f for f in updated.metadata.finalizers if f != JOB_TRACKING_FINALIZER]
            del updated.metadata.finalizers[:]
            updated.metadata.finalizers.extend(kept)
            try:
                await self.client.update(updated)
                return
            except errors.NotFound:
                return
            except errors.Conflict:
                try:
                    current = await self.client.get(core_pb2.Pod, pod.metadata.name,
                                                    pod.metadata.namespace)
                except errors.NotFound:
                    return
                if current.metadata.uid != pod.metadata.uid:
                    return
        raise errors.Conflict(f"pod {pod.metadata.namespace}/{pod.metadata.name}: could not "
                              f"remove finalizer {JOB_TRACKING_FINALIZER}")

    async def _release_pods_of_gone_job(self, key: str, live_uid: str | None) -> None:
        """Pods whose Job (by this name) is gone, or was replaced by a new one of the same
        name, have nobody left to count them: let them go."""
        namespace, name = split_key(key)
        orphans = []
        for pod in self.pods.store.by_index(INDEX_NAMESPACE, namespace):
            ref = controller_of(pod)
            if (ref is not None and ref.kind == "Job" and ref.name == name
                    and ref.uid != live_uid and _has_finalizer(pod)):
                orphans.append(pod)
        await self._remove_finalizers(key, orphans)

    async def _sync_orphan_pod(self, pod_key: str) -> None:
        """A pod with our finalizer and no Job controlling it is released, unless a Job
        whose selector matches it may still adopt it."""
        pod = self.pods.store.get(pod_key)
        if pod is None or not _has_finalizer(pod) or controller_of(pod) is not None:
            return
        for job in self.jobs.store.by_index(INDEX_NAMESPACE, pod.metadata.namespace):
            if (finished_condition(job) is None
                    and not job.metadata.HasField("deletion_timestamp")
                    and selector_of(job).matches(pod.metadata.labels)):
                return
        await self._remove_finalizer(pod)

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


# --------------------------------------------------------------------------- TTL


def finish_time(job: batch_pb2.Job) -> datetime | None:
    """When the Job finished: its Complete or Failed condition's transition."""
    for cond in job.status.conditions:
        if (cond.type in (COMPLETE, FAILED) and cond.status == "True"
                and cond.HasField("last_transition_time")):
            return _dt(cond.last_transition_time)
    return None


class TTLAfterFinishedController(Controller):
    """Deletes each finished Job `ttlSecondsAfterFinished` seconds after it finished."""

    def __init__(self, ctx: ControllerContext, *, workers: int = 1) -> None:
        self.jobs = ctx.factory.informer(batch_pb2.Job)
        super().__init__("ttl-after-finished", informers=[self.jobs], workers=workers,
                         clock=ctx.clock)
        self.client = ctx.client
        self.clock = ctx.clock
        self.enqueue_from(self.jobs)

    async def sync(self, key: str) -> None:
        job = self.jobs.store.get(key)
        if job is None or job.metadata.HasField("deletion_timestamp"):
            return
        if not job.spec.HasField("ttl_seconds_after_finished"):
            return
        finished = finish_time(job)
        if finished is None:
            return
        expires = finished + timedelta(seconds=job.spec.ttl_seconds_after_finished)
        left = (expires - self.clock.wall()).total_seconds()
        if left > 0:
            self.enqueue_after(key, left)
            return
        log.info("job %s: deleting, finished at %s with ttlSecondsAfterFinished %d", key,
                 finished.isoformat(), job.spec.ttl_seconds_after_finished)
        try:
            # Only the very Job judged here: a changed one (a new TTL) comes back through
            # the informer and is judged again.
            await self.client.delete(batch_pb2.Job, job.metadata.name, job.metadata.namespace,
                                     propagation="Background", uid=job.metadata.uid,
                                     resource_version=job.metadata.resource_version)
        except (errors.NotFound, errors.FailedPrecondition):
            return
