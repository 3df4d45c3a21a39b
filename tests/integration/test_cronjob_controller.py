"""The CronJob controller (with the Job controller) on a simulated cluster. Schedules are
minutes apart, so the CronJob controller gets a clock of its own: one whose wall time is
ahead of the real one (a run is due at once) or runs faster (a minute every two seconds).
What is asserted is what a user sees: Jobs, the CronJob's status, events."""

from __future__ import annotations

import asyncio
import functools
from datetime import UTC, datetime, timedelta

from fixtures.simcluster import ControlPlane, SimCluster, control_plane

from controllers.workloads.cronjob import SCHEDULED_TIMESTAMP_ANNOTATION, CronJobController
from controllers.workloads.job import JobController
from skiff.api.v1 import batch_pb2
from skiff.client import errors


class ShiftedClock:
    """Real time, except that the wall clock starts `offset` seconds ahead and runs
    `speed` times as fast; sleeps are in this clock's seconds."""

    def __init__(self, *, offset: float = 0.0, speed: float = 1.0) -> None:
        self.speed = speed
        self._t0 = asyncio.get_running_loop().time()
        self._wall0 = datetime.now(UTC) + timedelta(seconds=offset)

    def now(self) -> float:
        return (asyncio.get_running_loop().time() - self._t0) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)

    def wall(self) -> datetime:
        return self._wall0 + timedelta(seconds=self.now())


def offset_to(second: float, *, at_least: float) -> float:
    """A wall-clock offset of at least `at_least` seconds after which the shifted clock
    reads `second` seconds past a minute, so a test knows how far the next firing is."""
    now = datetime.now(UTC).timestamp()
    return at_least + (second - (now + at_least) % 60) % 60


def cron_controller(clock: ShiftedClock) -> functools.partial[CronJobController]:
    return functools.partial(CronJobController, clock=clock)


def cronjob_spec(name: str, command: str, *, schedule: str = "* * * * *",
                 policy: str | None = None, suspend: bool | None = None,
                 deadline: int | None = None, successful_limit: int | None = None,
                 failed_limit: int | None = None) -> batch_pb2.CronJob:
    cj = batch_pb2.CronJob()
    cj.metadata.name = name
    spec = cj.spec
    spec.schedule = schedule
    if policy is not None:
        spec.concurrency_policy = policy
    if suspend is not None:
        spec.suspend = suspend
    if deadline is not None:
        spec.starting_deadline_seconds = deadline
    if successful_limit is not None:
        spec.successful_jobs_history_limit = successful_limit
    if failed_limit is not None:
        spec.failed_jobs_history_limit = failed_limit
    template = spec.job_template
    template.metadata.labels["team"] = "data"
    template.metadata.annotations["note"] = "nightly"
    template.spec.backoff_limit = 0
    pod = template.spec.template
    pod.spec.restart_policy = "Never"
    pod.spec.containers.add(name="main", image="busybox", command=["sh", "-c", command])
    return cj


async def create_cronjob(plane: ControlPlane, cj: batch_pb2.CronJob) -> batch_pb2.CronJob:
    cj.metadata.namespace = plane.namespace
    return await plane.client.create(cj)


async def get_cronjob(plane: ControlPlane, name: str) -> batch_pb2.CronJob:
    return await plane.client.get(batch_pb2.CronJob, name, plane.namespace)


async def jobs_of(plane: ControlPlane, cj: batch_pb2.CronJob) -> list[batch_pb2.Job]:
    jobs, _ = await plane.client.list(batch_pb2.Job, plane.namespace)
    return sorted((j for j in jobs
                   if any(r.uid == cj.metadata.uid for r in j.metadata.owner_references)),
                  key=lambda j: j.metadata.name)


def finished(job: batch_pb2.Job) -> str | None:
    return next((c.type for c in job.status.conditions
                 if c.type in ("Complete", "Failed") and c.status == "True"), None)


async def wait_jobs(plane: ControlPlane, cj: batch_pb2.CronJob, count: int,
                    timeout: float = 15.0) -> list[batch_pb2.Job]:
    async def check() -> list[batch_pb2.Job] | None:
        jobs = await jobs_of(plane, cj)
        return jobs if len(jobs) >= count else None
    result: list[batch_pb2.Job] = await plane.until(check, timeout, f"{count} job(s)")
    return result


def minute_of(job: batch_pb2.Job) -> int:
    return int(job.metadata.name.rsplit("-", 1)[1])


# --------------------------------------------------------------------------- tests


async def test_a_due_run_starts_a_job_that_is_then_seen_completed(
        sim_cluster: SimCluster) -> None:
    # The first firing after the creation has passed; the next is ~55 s away.
    clock = ShiftedClock(offset=offset_to(5, at_least=61))
    async with control_plane(sim_cluster, cron_controller(clock), JobController) as plane:
        cj = await create_cronjob(plane, cronjob_spec("hello", "sleep 1; exit 0"))
        [job] = await wait_jobs(plane, cj, 1)

        scheduled = datetime.fromtimestamp(minute_of(job) * 60, UTC)
        assert cj.metadata.creation_timestamp.seconds < scheduled.timestamp() <= (
            clock.wall().timestamp())
        assert job.metadata.annotations[SCHEDULED_TIMESTAMP_ANNOTATION] == (
            scheduled.strftime("%Y-%m-%dT%H:%M:%SZ"))
        assert job.metadata.annotations["note"] == "nightly"
        assert job.metadata.labels["team"] == "data"
        [ref] = job.metadata.owner_references
        assert (ref.kind, ref.name, ref.uid, ref.controller) == (
            "CronJob", "hello", cj.metadata.uid, True)
        assert job.spec.template.spec.containers[0].command == ["sh", "-c", "sleep 1; exit 0"]

        async def recorded() -> batch_pb2.CronJob | None:
            got = await get_cronjob(plane, "hello")
            return got if got.status.active else None
        status = (await plane.until(recorded, 10, "status.active")).status
        assert [(r.kind, r.name, r.uid) for r in status.active] == [
            ("Job", job.metadata.name, job.metadata.uid)]
        assert status.last_schedule_time.seconds == scheduled.timestamp()
        assert await plane.wait_events("SuccessfulCreate", "hello") == [
            f"Created job {job.metadata.name}"]

        async def done() -> batch_pb2.CronJob | None:
            got = await get_cronjob(plane, "hello")
            return got if not got.status.active and got.status.HasField(
                "last_successful_time") else None
        status = (await plane.until(done, 20, "the job seen completed")).status
        finished_job = await plane.client.get(batch_pb2.Job, job.metadata.name, plane.namespace)
        assert status.last_successful_time == finished_job.status.completion_time
        assert await plane.wait_events("SawCompletedJob", "hello") == [
            f"Saw completed job: {job.metadata.name}, status: Complete"]
        # The next run is a minute away: nothing else was started.
        assert len(await jobs_of(plane, cj)) == 1
        # Its own Job was never taken for someone else's, however the caches lagged.
        assert not await plane.event_messages("UnexpectedJob", "hello")
        assert not await plane.event_messages("MissingJob", "hello")


async def test_a_job_created_by_hand_from_the_cronjob_is_reported(
        sim_cluster: SimCluster) -> None:
    clock = ShiftedClock()
    async with control_plane(sim_cluster, cron_controller(clock)) as plane:
        cj = await create_cronjob(plane, cronjob_spec("manual", "sleep 3600",
                                                      schedule="0 0 1 1 *"))
        job = batch_pb2.Job()
        job.metadata.name, job.metadata.namespace = "manual-run", plane.namespace
        job.metadata.owner_references.add(api_version="batch/v1", kind="CronJob",
                                          name="manual", uid=cj.metadata.uid, controller=True)
        job.spec.CopyFrom(cj.spec.job_template.spec)
        await plane.client.create(job)
        assert await plane.wait_events("UnexpectedJob", "manual") == [
            "Saw a job that the controller did not create or forgot: manual-run"]
        assert not (await get_cronjob(plane, "manual")).status.active


async def test_too_many_missed_runs_start_only_the_latest_with_a_warning(
        sim_cluster: SimCluster) -> None:
    clock = ShiftedClock(offset=offset_to(5, at_least=200 * 60))
    async with control_plane(sim_cluster, cron_controller(clock), JobController) as plane:
        cj = await create_cronjob(plane, cronjob_spec("late", "exit 0"))
        [job] = await wait_jobs(plane, cj, 1)
        assert minute_of(job) == int(clock.wall().timestamp()) // 60
        [warning] = await plane.wait_events("TooManyMissedTimes", "late")
        assert warning == ("too many missed start times. Set or decrease "
                           ".spec.startingDeadlineSeconds or check clock skew")
        await asyncio.sleep(1)
        assert len(await jobs_of(plane, cj)) == 1


async def test_starting_deadline_skips_a_run_that_is_too_late(sim_cluster: SimCluster) -> None:
    # "Now" is 30 s past a minute and well after the creation: the latest run is 30 s old.
    clock = ShiftedClock(offset=offset_to(30, at_least=180))
    async with control_plane(sim_cluster, cron_controller(clock), JobController) as plane:
        strict = await create_cronjob(plane, cronjob_spec("strict", "exit 0", deadline=10))
        lenient = await create_cronjob(plane, cronjob_spec("lenient", "exit 0"))
        await wait_jobs(plane, lenient, 1)
        await asyncio.sleep(1)
        assert not await jobs_of(plane, strict)
        assert not (await get_cronjob(plane, "strict")).status.HasField("last_schedule_time")


async def test_forbid_skips_runs_while_a_job_is_active(sim_cluster: SimCluster) -> None:
    clock = ShiftedClock(offset=61, speed=30)  # a minute every two seconds
    async with control_plane(sim_cluster, cron_controller(clock), JobController) as plane:
        cj = await create_cronjob(plane, cronjob_spec("single", "sleep 3600", policy="Forbid"))
        [first] = await wait_jobs(plane, cj, 1)
        [skipped] = await plane.wait_events("JobAlreadyActive", "single", timeout=10)
        assert skipped == ("Not starting job because prior execution is running and "
                           "concurrency policy is Forbid")
        jobs = await jobs_of(plane, cj)
        assert [j.metadata.name for j in jobs] == [first.metadata.name]
        status = (await get_cronjob(plane, "single")).status
        assert [r.name for r in status.active] == [first.metadata.name]


async def test_replace_deletes_the_active_job_and_starts_a_new_one(
        sim_cluster: SimCluster) -> None:
    clock = ShiftedClock(offset=61, speed=30)
    async with control_plane(sim_cluster, cron_controller(clock), JobController) as plane:
        cj = await create_cronjob(plane, cronjob_spec("fresh", "sleep 3600", policy="Replace"))
        created = await plane.wait_events("SuccessfulCreate", "fresh", 2)
        first = min(m.removeprefix("Created job ") for m in created)
        deleted = await plane.wait_events("SuccessfulDelete", "fresh")
        assert f"Deleted job {first}" in deleted

        async def replaced() -> batch_pb2.CronJob | None:
            got = await get_cronjob(plane, "fresh")
            names = [r.name for r in got.status.active]
            return got if len(names) == 1 and names[0] != first else None
        status = (await plane.until(replaced, 10, "a new active job")).status
        remaining = [j.metadata.name for j in await jobs_of(plane, cj)]
        assert first not in remaining
        assert status.active[0].name in remaining
        # Never two at once: each run deleted the one before it started.
        assert len(await jobs_of(plane, cj)) <= 1


async def test_history_limits_keep_the_newest_finished_jobs(sim_cluster: SimCluster) -> None:
    clock = ShiftedClock(offset=61, speed=30)
    async with control_plane(sim_cluster, cron_controller(clock), JobController) as plane:
        good = await create_cronjob(plane, cronjob_spec("good", "exit 0", successful_limit=2))
        bad = await create_cronjob(plane, cronjob_spec("bad", "exit 1", failed_limit=1))
        deleted_good = await plane.wait_events("SuccessfulDelete", "good", 2, timeout=20)
        deleted_bad = await plane.wait_events("SuccessfulDelete", "bad", 2, timeout=20)

        # Oldest first: the names carry the scheduled minute.
        good_deleted = [int(m.rsplit("-", 1)[1]) for m in deleted_good]
        assert good_deleted == sorted(good_deleted)
        bad_deleted = [int(m.rsplit("-", 1)[1]) for m in deleted_bad]
        assert bad_deleted == sorted(bad_deleted)

        async def settled(cj: batch_pb2.CronJob, outcome: str, limit: int) -> bool:
            done = [j for j in await jobs_of(plane, cj) if finished(j) == outcome]
            deleted = [int(m.rsplit("-", 1)[1]) for m in await plane.event_messages(
                "SuccessfulDelete", cj.metadata.name)]
            # What is kept is newer than anything deleted.
            return 0 < len(done) <= limit and all(minute_of(j) > max(deleted) for j in done)
        await plane.until(functools.partial(settled, good, "Complete", 2), 10, "2 kept")
        await plane.until(functools.partial(settled, bad, "Failed", 1), 10, "1 kept")
        assert (await get_cronjob(plane, "good")).status.HasField("last_successful_time")
        assert not (await get_cronjob(plane, "bad")).status.HasField("last_successful_time")


async def test_suspended_cronjob_starts_nothing_until_resumed(sim_cluster: SimCluster) -> None:
    clock = ShiftedClock(offset=offset_to(5, at_least=61))
    async with control_plane(sim_cluster, cron_controller(clock), JobController) as plane:
        cj = await create_cronjob(plane, cronjob_spec("napping", "exit 0", suspend=True))
        await asyncio.sleep(1.5)
        assert not await jobs_of(plane, cj)
        while True:
            current = await get_cronjob(plane, "napping")
            current.spec.suspend = False
            try:
                await plane.client.update(current)
                break
            except errors.Conflict:
                continue
        await wait_jobs(plane, cj, 1, timeout=10)
