"""The Job controller (and the TTL-after-finished controller) on a simulated cluster: real
apiserver, scheduler and kubelets on the fake runtime, where `sh -c "sleep 1; exit 0"`
really runs a second and succeeds. What is asserted is what a user sees: pods, the Job's
status and conditions, events."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fixtures.simcluster import ControlPlane, SimCluster, control_plane

from controllers.common.context import ControllerContext
from controllers.common.jobs import JOB_TRACKING_FINALIZER
from controllers.workloads.job import JobController
from controllers.workloads.joborphans import JobOrphanPodController
from controllers.workloads.ttlafterfinished import TTLAfterFinishedController
from skiff.api import defaults
from skiff.api.v1 import batch_pb2, core_pb2
from skiff.client import errors

# Replacement pods wait 0.5 s, 1 s, 2 s... instead of 10 s, 20 s, 40 s.
FastJobController = functools.partial(JobController, backoff_base=0.5)


def job_spec(name: str, command: str, *, completions: int | None = None,
             parallelism: int | None = None, backoff_limit: int | None = None,
             restart_policy: str = "Never", deadline: int | None = None,
             suspend: bool | None = None, ttl: int | None = None) -> batch_pb2.Job:
    job = batch_pb2.Job()
    job.metadata.name = name
    spec = job.spec
    if completions is not None:
        spec.completions = completions
    if parallelism is not None:
        spec.parallelism = parallelism
    if backoff_limit is not None:
        spec.backoff_limit = backoff_limit
    if deadline is not None:
        spec.active_deadline_seconds = deadline
    if suspend is not None:
        spec.suspend = suspend
    if ttl is not None:
        spec.ttl_seconds_after_finished = ttl
    spec.template.spec.restart_policy = restart_policy
    spec.template.spec.containers.add(name="main", image="busybox",
                                      command=["sh", "-c", command])
    return job


async def create_job(plane: ControlPlane, job: batch_pb2.Job) -> batch_pb2.Job:
    job.metadata.namespace = plane.namespace
    return await plane.client.create(job)


async def get_job(plane: ControlPlane, name: str) -> batch_pb2.Job:
    return await plane.client.get(batch_pb2.Job, name, plane.namespace)


async def job_pods(plane: ControlPlane, name: str) -> list[core_pb2.Pod]:
    return await plane.pods(f"{defaults.JOB_NAME_LABEL}={name}")


def condition(job: batch_pb2.Job, type_: str) -> tuple[str, str, str] | None:
    for c in job.status.conditions:
        if c.type == type_:
            return c.status, c.reason, c.message
    return None


async def wait_condition(plane: ControlPlane, name: str, type_: str,
                         timeout: float = 30.0) -> batch_pb2.Job:
    async def check() -> batch_pb2.Job | None:
        job = await get_job(plane, name)
        found = condition(job, type_)
        return job if found is not None and found[0] == "True" else None
    result: batch_pb2.Job = await plane.until(check, timeout, f"{name}: {type_}")
    return result


def running(pod: core_pb2.Pod) -> bool:
    return (pod.status.phase not in ("Succeeded", "Failed")
            and not pod.metadata.HasField("deletion_timestamp"))


@contextlib.asynccontextmanager
async def sample_active(plane: ControlPlane, name: str) -> AsyncIterator[list[int]]:
    """Counts the Job's running pods every 50 ms while the block runs."""
    samples: list[int] = []

    async def sample() -> None:
        while True:
            samples.append(sum(1 for p in await job_pods(plane, name) if running(p)))
            await asyncio.sleep(0.05)

    task = asyncio.create_task(sample())
    try:
        yield samples
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def update_job(plane: ControlPlane, name: str, change: functools.partial[None]) -> None:
    while True:
        job = await get_job(plane, name)
        change(job)
        try:
            await plane.client.update(job)
            return
        except errors.Conflict:
            continue  # the controller wrote status meanwhile


def set_suspend(value: bool, job: batch_pb2.Job) -> None:
    job.spec.suspend = value


# --------------------------------------------------------------------------- tests


async def test_parallel_job_completes_never_running_more_than_parallelism(
        sim_cluster: SimCluster) -> None:
    async with control_plane(sim_cluster, JobController) as plane:
        created = await create_job(plane, job_spec("batch", "sleep 1; exit 0", completions=5,
                                                   parallelism=2))
        async with sample_active(plane, "batch") as samples:
            job = await wait_condition(plane, "batch", "Complete", timeout=40)
        assert max(samples) == 2  # it did run two at once, never three
        assert condition(job, "Complete") == ("True", "CompletionsReached",
                                              "Reached expected number of succeeded pods")
        s = job.status
        assert (s.succeeded, s.failed, s.active, s.ready) == (5, 0, 0, 0)
        assert s.HasField("start_time") and s.HasField("completion_time")
        assert s.completion_time.seconds >= s.start_time.seconds + 2  # three waves of 1 s
        cond = next(c for c in s.conditions if c.type == "Complete")
        assert cond.HasField("last_probe_time") and cond.HasField("last_transition_time")

        pods = await job_pods(plane, "batch")
        assert len(pods) == 5
        assert all(p.status.phase == "Succeeded" for p in pods)
        assert all(p.metadata.name.startswith("batch-") for p in pods)
        for p in pods:
            labels = p.metadata.labels
            assert labels[defaults.CONTROLLER_UID_LABEL] == created.metadata.uid
            assert labels[defaults.LEGACY_JOB_NAME_LABEL] == "batch"
            assert [r.kind for r in p.metadata.owner_references] == ["Job"]
            # Counted, so let go: nothing keeps a finished pod from being deleted.
            assert JOB_TRACKING_FINALIZER not in p.metadata.finalizers

        created_msgs = await plane.wait_events("SuccessfulCreate", "batch", 5)
        assert sorted(created_msgs) == sorted(f"Created pod: {p.metadata.name}" for p in pods)
        assert await plane.wait_events("Completed", "batch") == ["Job completed"]


async def test_pods_carry_the_tracking_finalizer_while_they_run(sim_cluster: SimCluster) -> None:
    async with control_plane(sim_cluster, FastJobController) as plane:
        await create_job(plane, job_spec("hold", "sleep 3600"))

        async def one_running() -> list[core_pb2.Pod]:
            return [p for p in await job_pods(plane, "hold") if p.status.phase == "Running"]
        [pod] = await plane.until(one_running, 15, "a running pod")
        assert JOB_TRACKING_FINALIZER in pod.metadata.finalizers

        async def active_ready() -> batch_pb2.Job | None:
            job = await get_job(plane, "hold")
            return job if (job.status.active, job.status.ready) == (1, 1) else None
        await plane.until(active_ready, 10, "active 1, ready 1")

        # Deleted by hand before it could finish: counted as a failure, then let go, and
        # replaced after the back-off (the default backoffLimit is 6).
        await plane.client.delete(core_pb2.Pod, pod.metadata.name, plane.namespace)

        async def counted_and_replaced() -> batch_pb2.Job | None:
            job = await get_job(plane, "hold")
            return job if (job.status.failed, job.status.active) == (1, 1) else None
        await plane.until(counted_and_replaced, 20, "failed 1 and a replacement")

        async def first_gone() -> bool:
            names = {p.metadata.name for p in await job_pods(plane, "hold")}
            return pod.metadata.name not in names
        await plane.until(first_gone, 40, "the deleted pod gone")


async def test_failing_job_stops_after_the_backoff_limit(sim_cluster: SimCluster) -> None:
    async with control_plane(sim_cluster, FastJobController) as plane:
        await create_job(plane, job_spec("flaky", "exit 1", backoff_limit=2))
        job = await wait_condition(plane, "flaky", "Failed", timeout=40)
        assert condition(job, "Failed") == ("True", "BackoffLimitExceeded",
                                            "Job has reached the specified backoff limit")
        assert (job.status.failed, job.status.succeeded, job.status.active) == (3, 0, 0)
        assert not job.status.HasField("completion_time")
        assert condition(job, "Complete") is None

        await asyncio.sleep(1.5)  # longer than the next back-off: no fourth pod comes
        pods = await job_pods(plane, "flaky")
        assert len(pods) == 3
        assert all(p.status.phase == "Failed" for p in pods)
        assert all(JOB_TRACKING_FINALIZER not in p.metadata.finalizers for p in pods)
        # Each replacement waited longer than the one before (0.5 s, then 1 s).
        created = sorted(p.metadata.creation_timestamp.seconds for p in pods)
        assert created[2] - created[0] >= 1
        assert await plane.wait_events("BackoffLimitExceeded", "flaky") == [
            "Job has reached the specified backoff limit"]
        [warning] = [e for e in await plane.events("BackoffLimitExceeded")]
        assert warning.type == "Warning"


async def test_restarts_count_against_the_backoff_limit_with_on_failure(
        sim_cluster: SimCluster) -> None:
    async with control_plane(sim_cluster, FastJobController) as plane:
        await create_job(plane, job_spec("crashy", "exit 1", backoff_limit=1,
                                         restart_policy="OnFailure"))
        job = await wait_condition(plane, "crashy", "Failed", timeout=30)
        assert condition(job, "Failed")[1] == "BackoffLimitExceeded"  # type: ignore[index]
        # The one pod restarted in place; stopping it made it the Job's one failure.
        assert (job.status.failed, job.status.active) == (1, 0)
        assert not any(running(p) for p in await job_pods(plane, "crashy"))
        [deleted] = await plane.wait_events("SuccessfulDelete", "crashy")
        assert deleted.startswith("Deleted pod: crashy-")
        assert len(await plane.event_messages("SuccessfulCreate", "crashy")) == 1


async def test_active_deadline_fails_the_job_and_stops_its_pods(sim_cluster: SimCluster) -> None:
    async with control_plane(sim_cluster, JobController) as plane:
        await create_job(plane, job_spec("slow", "sleep 3600", parallelism=2, completions=2,
                                         deadline=2))
        job = await wait_condition(plane, "slow", "Failed", timeout=15)
        assert condition(job, "Failed") == ("True", "DeadlineExceeded",
                                            "Job was active longer than specified deadline")
        assert job.status.active == 0 and job.status.failed == 2
        # Failed within a second or two of the deadline, not at some later resync.
        failed_at = next(c for c in job.status.conditions if c.type == "Failed")
        assert failed_at.last_transition_time.seconds - job.status.start_time.seconds <= 4

        async def pods_stopped() -> bool:
            return not any(running(p) for p in await job_pods(plane, "slow"))
        await plane.until(pods_stopped, 10, "the pods stopped")
        deleted = await plane.wait_events("SuccessfulDelete", "slow", 2)
        assert all(m.startswith("Deleted pod: slow-") for m in deleted)
        assert await plane.wait_events("DeadlineExceeded", "slow") == [
            "Job was active longer than specified deadline"]

        async def pods_gone() -> bool:
            return not await job_pods(plane, "slow")
        await plane.until(pods_gone, 40, "the pods gone (finalizers removed)")


async def test_suspend_stops_pods_and_resume_restarts_the_clock(sim_cluster: SimCluster) -> None:
    async with control_plane(sim_cluster, JobController) as plane:
        await create_job(plane, job_spec("pausable", "sleep 3600", completions=2,
                                         parallelism=2))

        async def two_active() -> batch_pb2.Job | None:
            job = await get_job(plane, "pausable")
            return job if job.status.active == 2 else None
        first = await plane.until(two_active, 15, "two active pods")
        started = first.status.start_time.seconds
        await asyncio.sleep(1.1)  # whole-second timestamps: make the restart measurable

        await update_job(plane, "pausable", functools.partial(set_suspend, True))
        job = await wait_condition(plane, "pausable", "Suspended", timeout=15)
        assert condition(job, "Suspended") == ("True", "JobSuspended", "Job suspended")

        async def stopped() -> batch_pb2.Job | None:
            job = await get_job(plane, "pausable")
            pods = await job_pods(plane, "pausable")
            return job if job.status.active == 0 and not any(running(p) for p in pods) else None
        job = await plane.until(stopped, 15, "no pod running")
        # Stopped on purpose: not failures.
        assert job.status.failed == 0 and job.status.succeeded == 0
        assert await plane.wait_events("Suspended", "pausable") == ["Job suspended"]
        await asyncio.sleep(0.5)
        assert not any(running(p) for p in await job_pods(plane, "pausable"))

        await update_job(plane, "pausable", functools.partial(set_suspend, False))
        job = await plane.until(two_active, 15, "two active pods again")
        assert condition(job, "Suspended") == ("False", "JobResumed", "Job resumed")
        assert job.status.start_time.seconds > started
        assert await plane.wait_events("Resumed", "pausable") == ["Job resumed"]


async def test_job_created_suspended_has_no_pods_and_no_start_time(
        sim_cluster: SimCluster) -> None:
    async with control_plane(sim_cluster, JobController) as plane:
        await create_job(plane, job_spec("later", "sleep 1; exit 0", suspend=True))
        job = await wait_condition(plane, "later", "Suspended", timeout=10)
        assert not job.status.HasField("start_time")
        await asyncio.sleep(0.5)
        assert not await job_pods(plane, "later")

        await update_job(plane, "later", functools.partial(set_suspend, False))
        job = await wait_condition(plane, "later", "Complete", timeout=20)
        assert job.status.succeeded == 1 and job.status.HasField("start_time")


async def test_work_queue_job_is_done_when_one_succeeded_and_all_ended(
        sim_cluster: SimCluster) -> None:
    async with control_plane(sim_cluster, JobController) as plane:
        job = job_spec("queue", "sleep 1; exit 0", parallelism=3)
        created = await create_job(plane, job)
        assert not created.spec.HasField("completions")
        job = await wait_condition(plane, "queue", "Complete", timeout=30)
        # Three workers, and no new one once the first had succeeded.
        assert (job.status.succeeded, job.status.active) == (3, 0)
        await asyncio.sleep(0.5)
        assert len(await job_pods(plane, "queue")) == 3


async def test_parallelism_zero_runs_nothing(sim_cluster: SimCluster) -> None:
    async with control_plane(sim_cluster, JobController) as plane:
        await create_job(plane, job_spec("idle", "sleep 1; exit 0", parallelism=0,
                                         completions=1))

        async def started() -> bool:
            return (await get_job(plane, "idle")).status.HasField("start_time")
        await plane.until(started, 10, "the job seen")
        await asyncio.sleep(0.5)
        assert not await job_pods(plane, "idle")
        assert condition(await get_job(plane, "idle"), "Complete") is None


async def test_ttl_after_finished_removes_the_job_and_its_pods(sim_cluster: SimCluster) -> None:
    from controllers.gc.garbagecollector import GarbageCollector

    async with control_plane(sim_cluster, JobController, TTLAfterFinishedController,
                             GarbageCollector) as plane:
        await create_job(plane, job_spec("brief", "exit 0", ttl=2))
        job = await wait_condition(plane, "brief", "Complete", timeout=20)
        finished = next(c for c in job.status.conditions if c.type == "Complete")
        assert [p.metadata.name for p in await job_pods(plane, "brief")]

        async def job_gone() -> float | None:
            try:
                await get_job(plane, "brief")
            except errors.NotFound:
                return time.time()
            return None
        gone_at = await plane.until(job_gone, 10, "the job deleted", interval=0.05)
        # Not before its time to live had passed since it finished.
        assert gone_at >= finished.last_transition_time.seconds + 2

        async def pods_gone() -> bool:
            return not await job_pods(plane, "brief")
        await plane.until(pods_gone, 15, "its pods deleted")


@pytest.mark.parametrize("propagation", ["Background", "Foreground"])
async def test_a_job_deleted_while_running_lets_its_pods_go(sim_cluster: SimCluster,
                                                           propagation: str) -> None:
    from controllers.gc.garbagecollector import GarbageCollector

    async with control_plane(sim_cluster, JobController, GarbageCollector) as plane:
        await create_job(plane, job_spec("doomed", "sleep 3600", parallelism=2, completions=2))

        async def two_running() -> bool:
            pods = await job_pods(plane, "doomed")
            return sum(1 for p in pods if p.status.phase == "Running") == 2
        await plane.until(two_running, 15, "two running pods")
        await plane.client.delete(batch_pb2.Job, "doomed", plane.namespace,
                                  propagation=propagation)

        # Nobody will count them any more, so the tracking finalizer goes and nothing
        # keeps the pods once the garbage collector deletes them (and, in the
        # foreground, nothing then keeps the Job).
        async def all_gone() -> bool:
            if await job_pods(plane, "doomed"):
                return False
            try:
                await get_job(plane, "doomed")
            except errors.NotFound:
                return True
            return False
        await plane.until(all_gone, 45, "the job and its pods gone")


class StopsMidCount(JobController):
    """A Job controller that "crashes" in the middle of counting finished pods of the
    Jobs in `namespace`: after the status write that put their uids into
    uncountedTerminatedPods, and either before removing their finalizers ("recorded") or
    right after ("released"), before the write that counts them. It then hangs until
    cancelled, which is the crash."""

    def __init__(self, ctx: ControllerContext, *, namespace: str, stop_after: str,
                 **kwargs: Any) -> None:
        super().__init__(ctx, **kwargs)
        self.namespace = namespace
        self.stop_after = stop_after
        self.stopped = asyncio.Event()

    async def _release_counted(self, key: str, pods: list[core_pb2.Pod]
                               ) -> tuple[set[str], BaseException | None]:
        mine = bool(pods) and key.startswith(f"{self.namespace}/")
        if mine and self.stop_after == "recorded":
            await self._crash()
        result = await super()._release_counted(key, pods)
        if mine and self.stop_after == "released":
            await self._crash()
        return result

    async def _crash(self) -> None:
        self.stopped.set()
        await asyncio.Event().wait()


@contextlib.asynccontextmanager
async def run_controller(plane: ControlPlane, controller_class: Any) -> AsyncIterator[Any]:
    """Runs one controller on a context of its own (its own caches, no memory of any
    earlier controller) until the block ends, as a controller manager's term does."""
    ctx = ControllerContext.create(plane.client)
    controller = controller_class(ctx)
    task = asyncio.create_task(controller.run(), name=f"controller-{controller.name}")
    ctx.factory.start_all()
    try:
        yield controller
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await ctx.close()


@pytest.mark.parametrize("stop_after", ["recorded", "released"])
async def test_a_restart_between_the_counting_writes_counts_each_pod_once(
        sim_cluster: SimCluster, stop_after: str) -> None:
    async with control_plane(sim_cluster) as plane:  # the scheduler only
        await create_job(plane, job_spec("twice", "sleep 1; exit 0", completions=2,
                                         parallelism=2))
        crashing = functools.partial(StopsMidCount, namespace=plane.namespace,
                                     stop_after=stop_after)
        async with run_controller(plane, crashing) as first:
            await asyncio.wait_for(first.stopped.wait(), 20)

            async def both_succeeded() -> list[core_pb2.Pod]:
                pods = await job_pods(plane, "twice")
                done = [p for p in pods if p.status.phase == "Succeeded"]
                return pods if len(done) == len(pods) == 2 else []
            pods = await plane.until(both_succeeded, 15, "both pods succeeded")
            # What the crash leaves: uids in uncountedTerminatedPods, nothing counted yet,
            # and their finalizers still on (or already gone, after "released").
            job = await get_job(plane, "twice")
            uncounted = set(job.status.uncounted_terminated_pods.succeeded)
            assert uncounted and uncounted <= {p.metadata.uid for p in pods}
            assert not job.status.uncounted_terminated_pods.failed
            assert (job.status.succeeded, job.status.failed) == (0, 0)
            assert condition(job, "Complete") is None
            for p in pods:
                if p.metadata.uid in uncounted:
                    has_finalizer = JOB_TRACKING_FINALIZER in p.metadata.finalizers
                    assert has_finalizer == (stop_after == "recorded")

        async with run_controller(plane, JobController):  # a fresh controller, no memory
            job = await wait_condition(plane, "twice", "Complete", timeout=20)
        assert (job.status.succeeded, job.status.failed, job.status.active) == (2, 0, 0)
        assert not job.status.uncounted_terminated_pods.succeeded
        assert not job.status.uncounted_terminated_pods.failed
        pods = await job_pods(plane, "twice")
        assert len(pods) == 2
        assert all(JOB_TRACKING_FINALIZER not in p.metadata.finalizers for p in pods)
        assert await plane.wait_events("Completed", "twice") == ["Job completed"]
        assert not await plane.event_messages("TooManySucceededPods", "twice")


async def test_an_orphan_pod_with_the_tracking_finalizer_is_released(
        sim_cluster: SimCluster) -> None:
    async with control_plane(sim_cluster, JobController, JobOrphanPodController,
                             scheduler=False) as plane:
        # A pod no Job controls or may adopt (as after a Job deleted with orphan
        # propagation) would keep its finalizer forever.
        pod = core_pb2.Pod()
        pod.metadata.name, pod.metadata.namespace = "lost", plane.namespace
        pod.metadata.labels["app"] = "nobody"
        pod.metadata.finalizers.append(JOB_TRACKING_FINALIZER)
        pod.spec.containers.add(name="main", image="busybox")
        await plane.client.create(pod)

        async def released() -> bool:
            found = await plane.client.get(core_pb2.Pod, "lost", plane.namespace)
            return JOB_TRACKING_FINALIZER not in found.metadata.finalizers
        await plane.until(released, 10, "the orphan's finalizer removed")
        with contextlib.suppress(errors.NotFound):
            await plane.client.delete(core_pb2.Pod, "lost", plane.namespace, grace_period=0)
