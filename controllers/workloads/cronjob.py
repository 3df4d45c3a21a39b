"""The CronJob controller: a Job for each time a CronJob's schedule fires (Kubernetes'
cronjob controller v2).

Each sync of a CronJob:

1. reconciles `status.active` with the Jobs it controls (finished ones leave the list with
   a SawCompletedJob event; one it did not start is reported as UnexpectedJob; one that
   vanished as MissingJob) and advances `lastSuccessfulTime`;
2. deletes the oldest finished Jobs beyond `successfulJobsHistoryLimit` (3) and
   `failedJobsHistoryLimit` (1);
3. unless suspended, finds the most recent run owed since `lastScheduleTime` (or the
   creation) and starts it: a Job named `<cronjob>-<minutes since the epoch>` (the name is
   the lock that keeps a run from starting twice) from the job template, owned by the
   CronJob, annotated with its scheduled time. A run later than `startingDeadlineSeconds`
   is skipped (MissSchedule); more than 100 missed runs start only the latest
   (TooManyMissedTimes); `concurrencyPolicy` Forbid skips a run while a Job is active
   (JobAlreadyActive) and Replace deletes the active Jobs first;
4. looks again just after the next firing (`enqueue_after`).

"Now" is `clock.wall()`; the clock can be given to the constructor, so tests can move time.
"""

from __future__ import annotations

import logging
import zoneinfo
from datetime import UTC, datetime, tzinfo

from google.protobuf.timestamp_pb2 import Timestamp

from controllers.common.claim import controller_of
from controllers.common.context import ControllerContext
from controllers.common.cron import (
    ScheduleError,
    job_name_for,
    next_schedule_time,
    parse_schedule,
    requeue_delay,
)
from controllers.common.jobs import COMPLETE, FAILED, finished_condition
from controllers.common.podcontrol import owner_reference
from skiff.api.v1 import batch_pb2
from skiff.api.validation.cron import validate_time_zone
from skiff.client import errors
from skiff.client.clock import Clock
from skiff.client.controller import Controller
from skiff.client.events import object_reference
from skiff.client.informer import INDEX_OWNER_UID

__all__ = ["SCHEDULED_TIMESTAMP_ANNOTATION", "CronJobController", "job_from_template"]

log = logging.getLogger(__name__)

SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"


def _dt(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def _timestamp(t: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(t.replace(microsecond=0))
    return ts


def _rfc3339(t: datetime) -> str:
    """Go's time.RFC3339 ("2006-01-02T15:04:05Z07:00"): `Z` for UTC, else the offset."""
    text = t.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def job_from_template(cronjob: batch_pb2.CronJob, scheduled: datetime) -> batch_pb2.Job:
    """The Job of the run scheduled at `scheduled`: the template's labels, annotations and
    spec, the scheduled time (RFC 3339, in the CronJob's time zone) as an annotation, and
    the CronJob as its controller."""
    template = cronjob.spec.job_template
    job = batch_pb2.Job()
    job.metadata.name = job_name_for(cronjob.metadata.name, scheduled)
    job.metadata.namespace = cronjob.metadata.namespace
    job.metadata.labels.update(template.metadata.labels)
    job.metadata.annotations.update(template.metadata.annotations)
    zone = cronjob.spec.time_zone if cronjob.spec.HasField("time_zone") else None
    local = scheduled.astimezone(_zone_or_utc(zone))
    job.metadata.annotations[SCHEDULED_TIMESTAMP_ANNOTATION] = _rfc3339(local)
    job.metadata.owner_references.append(owner_reference(cronjob))
    job.spec.CopyFrom(template.spec)
    return job


def _zone_or_utc(name: str | None) -> tzinfo:
    if not name:
        return UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return UTC


def _start_time_key(job: batch_pb2.Job) -> tuple[int, float, str]:
    # Oldest first; Jobs never started sort last; the name breaks ties.
    if not job.status.HasField("start_time"):
        return (1, 0.0, job.metadata.name)
    return (0, _dt(job.status.start_time).timestamp(), job.metadata.name)


class CronJobController(Controller):
    """Starts each CronJob's Jobs on schedule; see the module docstring."""

    def __init__(self, ctx: ControllerContext, *, workers: int = 5,
                 clock: Clock | None = None) -> None:
        self.cronjobs = ctx.factory.informer(batch_pb2.CronJob)
        self.jobs = ctx.factory.informer(batch_pb2.Job)
        self.clock = clock if clock is not None else ctx.clock
        super().__init__("cronjob", informers=[self.cronjobs, self.jobs], workers=workers,
                         clock=self.clock)
        self.client = ctx.client
        self.recorder = ctx.recorder("cronjob-controller")
        # cronjob key -> resourceVersion of our last status write
        self._written: dict[str, int] = {}
        self.enqueue_from(self.cronjobs)
        self.enqueue_owners_from(self.jobs, batch_pb2.CronJob)

    async def sync(self, key: str) -> None:
        cronjob = self.cronjobs.store.get(key)
        if cronjob is None:
            self._written.pop(key, None)
            return
        written = self._written.get(key)
        if written is not None and int(cronjob.metadata.resource_version or 0) < written:
            return  # our own status write has not reached the cache yet; its event will
        jobs = self._jobs_of(cronjob)
        status = batch_pb2.CronJobStatus()
        status.CopyFrom(cronjob.status)
        await self._cleanup_finished(cronjob, status, jobs)
        delay: float | None = None
        try:
            delay = await self._sync_cronjob(cronjob, status, jobs)
        finally:
            # Whatever was done before a failure (a Job deleted, one created) is recorded.
            if status != cronjob.status:
                updated = batch_pb2.CronJob()
                updated.CopyFrom(cronjob)
                updated.status.CopyFrom(status)
                result = await self.client.update_status(updated)
                self._written[key] = int(result.metadata.resource_version or 0)
        if delay is not None:
            self.enqueue_after(key, delay)

    def _jobs_of(self, cronjob: batch_pb2.CronJob) -> list[batch_pb2.Job]:
        uid = cronjob.metadata.uid
        return [j for j in self.jobs.store.by_index(INDEX_OWNER_UID, uid)
                if (ref := controller_of(j)) is not None and ref.uid == uid]

    # ---- step 1: what the Jobs say ----

    async def _reconcile_active(self, cronjob: batch_pb2.CronJob,
                                status: batch_pb2.CronJobStatus,
                                jobs: list[batch_pb2.Job]) -> None:
        children = {j.metadata.uid for j in jobs}
        for job in jobs:
            active = any(ref.uid == job.metadata.uid for ref in status.active)
            finished = finished_condition(job)
            if not active and finished is None:
                self.recorder.event(cronjob, "Warning", "UnexpectedJob",
                                    "Saw a job that the controller did not create or "
                                    f"forgot: {job.metadata.name}")
            elif active and finished is not None:
                _remove_active(status, job.metadata.uid)
                self.recorder.event(cronjob, "Normal", "SawCompletedJob",
                                    f"Saw completed job: {job.metadata.name}, "
                                    f"status: {finished}")
            if finished == COMPLETE and job.status.HasField("completion_time"):
                done = job.status.completion_time
                if (not status.HasField("last_successful_time")
                        or _dt(done) > _dt(status.last_successful_time)):
                    status.last_successful_time.CopyFrom(done)
        for ref in list(status.active):
            if ref.uid in children:
                continue
            # The cache may not have a Job we created a moment ago: ask before forgetting.
            try:
                await self.client.get(batch_pb2.Job, ref.name, ref.namespace)
            except errors.NotFound:
                self.recorder.event(cronjob, "Normal", "MissingJob",
                                    f"Active job went missing: {ref.name}")
                _remove_active(status, ref.uid)

    # ---- step 2: history ----

    async def _cleanup_finished(self, cronjob: batch_pb2.CronJob,
                                status: batch_pb2.CronJobStatus,
                                jobs: list[batch_pb2.Job]) -> None:
        spec = cronjob.spec
        limits = ((COMPLETE, spec.successful_jobs_history_limit
                   if spec.HasField("successful_jobs_history_limit") else None),
                  (FAILED, spec.failed_jobs_history_limit
                   if spec.HasField("failed_jobs_history_limit") else None))
        for outcome, limit in limits:
            if limit is None:
                continue
            finished = sorted((j for j in jobs if finished_condition(j) == outcome),
                              key=_start_time_key)
            for job in finished[:max(0, len(finished) - limit)]:
                await self._delete_job(cronjob, status, job)

    async def _delete_job(self, cronjob: batch_pb2.CronJob, status: batch_pb2.CronJobStatus,
                          job: batch_pb2.Job) -> None:
        try:
            await self.client.delete(batch_pb2.Job, job.metadata.name, job.metadata.namespace,
                                     propagation="Background")
        except errors.NotFound:
            pass
        except errors.ApiError as err:
            self.recorder.event(cronjob, "Warning", "FailedDelete", f"Deleted job: {err}")
            raise
        else:
            self.recorder.event(cronjob, "Normal", "SuccessfulDelete",
                                f"Deleted job {job.metadata.name}")
        _remove_active(status, job.metadata.uid)

    # ---- step 3: the run owed now ----

    async def _sync_cronjob(self, cronjob: batch_pb2.CronJob, status: batch_pb2.CronJobStatus,
                            jobs: list[batch_pb2.Job]) -> float | None:
        """Starts the run owed now, if any; returns when to look again (None: only when
        the CronJob changes)."""
        await self._reconcile_active(cronjob, status, jobs)
        spec = cronjob.spec
        if cronjob.metadata.HasField("deletion_timestamp"):
            return None
        zone = spec.time_zone if spec.HasField("time_zone") else None
        if zone is not None:
            problems = validate_time_zone(zone, "")
            if problems:
                self.recorder.event(cronjob, "Warning", "UnknownTimeZone",
                                    f'invalid timeZone: "{zone}": {"; ".join(problems)}')
                return None
        if spec.HasField("suspend") and spec.suspend:
            return None
        if "TZ" in spec.schedule:
            self.recorder.event(cronjob, "Warning", "UnsupportedSchedule",
                                f'CRON_TZ or TZ used in schedule "{spec.schedule}" is not '
                                "officially supported, see https://kubernetes.io/docs/"
                                "concepts/workloads/controllers/cron-jobs/ for more details")
        try:
            schedule = parse_schedule(spec.schedule, zone)
        except ScheduleError as err:
            self.recorder.event(cronjob, "Warning", "UnparseableSchedule",
                                f'unparseable schedule: "{spec.schedule}" : {err}')
            return None
        now = self.clock.wall()
        created = _dt(cronjob.metadata.creation_timestamp)
        last = _dt(status.last_schedule_time) if status.HasField("last_schedule_time") else None
        deadline = (spec.starting_deadline_seconds
                    if spec.HasField("starting_deadline_seconds") else None)
        try:
            scheduled, too_many = next_schedule_time(schedule, created=created,
                                                     last_scheduled=last, now=now,
                                                     starting_deadline_seconds=deadline)
        except ScheduleError as err:
            self.recorder.event(cronjob, "Warning", "InvalidSchedule",
                                f"invalid schedule: {spec.schedule} : {err}")
            return None
        if too_many:
            self.recorder.event(cronjob, "Warning", "TooManyMissedTimes",
                                "too many missed start times. Set or decrease "
                                ".spec.startingDeadlineSeconds or check clock skew")

        def again() -> float:
            return requeue_delay(schedule, created=created, now=now,
                                 last_scheduled=_dt(status.last_schedule_time)
                                 if status.HasField("last_schedule_time") else None)

        if scheduled is None:
            return again()
        if deadline is not None and (now - scheduled).total_seconds() > deadline:
            self.recorder.event(cronjob, "Warning", "MissSchedule",
                                "Missed scheduled time to start a job: "
                                f"{scheduled.astimezone(UTC).strftime('%a, %d %b %Y %H:%M:%S %z')}")
            return again()
        name = job_name_for(cronjob.metadata.name, scheduled)
        if any(ref.name == name for ref in status.active) or (
                last is not None and last == scheduled):
            return again()  # this run was started already
        if spec.concurrency_policy == "Forbid" and status.active:
            self.recorder.event(cronjob, "Normal", "JobAlreadyActive",
                                "Not starting job because prior execution is running and "
                                "concurrency policy is Forbid")
            return again()
        if spec.concurrency_policy == "Replace":
            await self._replace_active(cronjob, status)
        job = await self._create_job(cronjob, scheduled)
        if job is None:
            return again()
        if not any(ref.uid == job.metadata.uid for ref in status.active):
            status.active.append(object_reference(job))
        status.last_schedule_time.CopyFrom(_timestamp(scheduled))
        return again()

    async def _replace_active(self, cronjob: batch_pb2.CronJob,
                              status: batch_pb2.CronJobStatus) -> None:
        for ref in list(status.active):
            job = self.jobs.store.get_by_name(ref.namespace, ref.name)
            if job is None or job.metadata.uid != ref.uid:
                try:
                    job = await self.client.get(batch_pb2.Job, ref.name, ref.namespace)
                except errors.NotFound:
                    _remove_active(status, ref.uid)
                    continue
                except errors.ApiError as err:
                    self.recorder.event(cronjob, "Warning", "FailedGet", f"Get job: {err}")
                    raise
            await self._delete_job(cronjob, status, job)

    async def _create_job(self, cronjob: batch_pb2.CronJob,
                          scheduled: datetime) -> batch_pb2.Job | None:
        """The Job of this run, created now or found already there (the name is the lock);
        None if a Job of that name belongs to someone else."""
        wanted = job_from_template(cronjob, scheduled)
        try:
            job = await self.client.create(wanted)
        except errors.AlreadyExists:
            job = await self.client.get(batch_pb2.Job, wanted.metadata.name,
                                        wanted.metadata.namespace)
            ref = controller_of(job)
            if ref is None or ref.uid != cronjob.metadata.uid:
                return None
            return job
        except errors.ApiError as err:
            self.recorder.event(cronjob, "Warning", "FailedCreate", f"Error creating job: {err}")
            raise
        self.recorder.event(cronjob, "Normal", "SuccessfulCreate",
                            f"Created job {job.metadata.name}")
        return job


def _remove_active(status: batch_pb2.CronJobStatus, uid: str) -> None:
    kept = [ref for ref in status.active if ref.uid != uid]
    if len(kept) != len(status.active):
        del status.active[:]
        status.active.extend(kept)
