"""Leader election through a Lease: against a real apiserver (two candidates, failover,
release, losing the apiserver), and against an in-memory lease with a fake clock for the
observed-time rule."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from skiff.api.v1 import coordination_pb2
from skiff.client import errors
from skiff.client.client import Client
from skiff.client.clock import FakeClock
from skiff.client.leaderelection import LeaderElector

LEASE_DURATION = 2.0
RENEW_DEADLINE = 1.5
RETRY_PERIOD = 0.25
# A standby measures expiry from when it last saw the lease change, which can be up to
# one (jittered) retry period after the leader's last renewal; it then notices expiry at
# its next retry. Plus slack for a loaded machine.
TAKEOVER_BOUND = LEASE_DURATION + 2 * 1.2 * RETRY_PERIOD + 1.0


class Candidate:
    """One elector running in a task, with a record of when it led."""

    def __init__(self, client: Client, identity: str, ns: str, lease: str = "lock",
                 **kwargs: Any) -> None:
        self.elector = LeaderElector(client, lease, identity, namespace=ns,
                                     lease_duration=LEASE_DURATION,
                                     renew_deadline=RENEW_DEADLINE,
                                     retry_period=RETRY_PERIOD, **kwargs)
        self.identity = identity
        self.leading = False
        self.started = 0
        self.stopped = 0
        self.task: asyncio.Task[None] | None = None

    async def _work(self) -> None:
        self.leading = True
        self.started += 1
        try:
            await asyncio.Event().wait()
        finally:
            self.leading = False

    def _on_stopped(self) -> None:
        self.stopped += 1

    def start(self) -> None:
        self.task = asyncio.create_task(self.elector.run(self._work, self._on_stopped))

    async def cancel(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@contextlib.asynccontextmanager
async def candidates(client: Client, ns: str, n: int = 2, **kwargs: Any
                     ) -> AsyncIterator[list[Candidate]]:
    cs = [Candidate(client, f"candidate-{i}", ns, **kwargs) for i in range(n)]
    for c in cs:
        c.start()
    try:
        yield cs
    finally:
        for c in cs:
            if c.task is not None and not c.task.done():
                await c.cancel()


async def eventually(predicate: Callable[[], bool], timeout: float) -> float:
    """Waits for `predicate`; returns how long it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not predicate():
        if loop.time() - start > timeout:
            raise AssertionError(f"not true within {timeout}s")
        await asyncio.sleep(0.01)
    return loop.time() - start


def leaders(cs: list[Candidate]) -> list[Candidate]:
    return [c for c in cs if c.leading]


async def get_lease(client: Client, ns: str, name: str = "lock") -> coordination_pb2.Lease:
    return await client.get(coordination_pb2.Lease, name, ns)


# ---- against the real apiserver ----


async def test_exactly_one_of_two_candidates_leads(client: Client, ns: str) -> None:
    async with candidates(client, ns) as cs:
        await eventually(lambda: len(leaders(cs)) == 1, timeout=5)
        [leader] = leaders(cs)
        # Over several lease durations the leader renews and nobody else ever leads.
        loop = asyncio.get_running_loop()
        end = loop.time() + 2 * LEASE_DURATION
        while loop.time() < end:
            assert leaders(cs) == [leader]
            assert [c.elector.is_leader() for c in cs].count(True) == 1
            await asyncio.sleep(0.02)
        lease = await get_lease(client, ns)
        assert lease.spec.holder_identity == leader.identity
        assert lease.spec.lease_duration_seconds == int(LEASE_DURATION)
        assert lease.spec.lease_transitions == 0
        assert lease.spec.renew_time.ToDatetime() > lease.spec.acquire_time.ToDatetime()
        standby = next(c for c in cs if c is not leader)
        assert standby.elector.leader() == leader.identity


async def test_a_standby_takes_over_once_a_dead_leaders_lease_expires(
        client: Client, ns: str) -> None:
    # No release: the leader vanishes as if its process were killed.
    async with candidates(client, ns, release_on_cancel=False) as cs:
        await eventually(lambda: len(leaders(cs)) == 1, timeout=5)
        [old] = leaders(cs)
        before = await get_lease(client, ns)
        await old.cancel()
        assert old.stopped == 1 and not old.leading
        took = await eventually(lambda: len(leaders(cs)) == 1, timeout=TAKEOVER_BOUND)
        # It waited for the lease to expire rather than stealing it from a live holder.
        assert took >= LEASE_DURATION - 2 * RETRY_PERIOD
        [new] = leaders(cs)
        assert new is not old
        after = await get_lease(client, ns)
        assert after.spec.holder_identity == new.identity
        assert after.spec.lease_transitions == before.spec.lease_transitions + 1
        assert after.spec.acquire_time.ToDatetime() > before.spec.acquire_time.ToDatetime()


async def test_a_graceful_stop_releases_the_lease_for_a_fast_handover(
        client: Client, ns: str) -> None:
    async with candidates(client, ns) as cs:
        await eventually(lambda: len(leaders(cs)) == 1, timeout=5)
        [old] = leaders(cs)
        await old.cancel()
        assert old.stopped == 1
        took = await eventually(lambda: len(leaders(cs)) == 1, timeout=TAKEOVER_BOUND)
        assert took < LEASE_DURATION  # no waiting for expiry
        lease = await get_lease(client, ns)
        assert lease.spec.holder_identity == leaders(cs)[0].identity


async def test_a_leader_that_cannot_renew_stops_leading(
        apiserver_factory: Callable[..., Any]) -> None:
    server = apiserver_factory()
    async with server.client() as c:
        candidate = Candidate(c, "lonely", "kube-system")
        candidate.start()
        await eventually(lambda: candidate.leading, timeout=5)
        server.stop()  # blocks the loop for a moment: renewals are already overdue after
        loop = asyncio.get_running_loop()
        stopped_at = loop.time()
        assert candidate.task is not None
        await asyncio.wait_for(asyncio.shield(candidate.task),
                               RENEW_DEADLINE + 2 * RETRY_PERIOD + 1)
        # run() returned (leadership lost), after stopping the work and telling us.
        assert not candidate.leading and candidate.stopped == 1
        assert loop.time() - stopped_at <= RENEW_DEADLINE + 2 * RETRY_PERIOD + 1


# ---- the observed-time rule, with a fake clock and an in-memory lease ----


class MemoryLeases:
    """Get/create/update of Leases with resourceVersion checks, in memory."""

    def __init__(self) -> None:
        self.leases: dict[tuple[str, str], coordination_pb2.Lease] = {}
        self.revision = 0

    def _stored(self, lease: coordination_pb2.Lease) -> coordination_pb2.Lease:
        self.revision += 1
        copy = coordination_pb2.Lease()
        copy.CopyFrom(lease)
        copy.metadata.resource_version = str(self.revision)
        self.leases[(copy.metadata.namespace, copy.metadata.name)] = copy
        out = coordination_pb2.Lease()
        out.CopyFrom(copy)
        return out

    async def get(self, kind: object, name: str, namespace: str = "") -> Any:
        found = self.leases.get((namespace, name))
        if found is None:
            raise errors.NotFound(f'leases "{name}" not found')
        out = coordination_pb2.Lease()
        out.CopyFrom(found)
        return out

    async def create(self, lease: coordination_pb2.Lease) -> coordination_pb2.Lease:
        if (lease.metadata.namespace, lease.metadata.name) in self.leases:
            raise errors.AlreadyExists("exists")
        return self._stored(lease)

    async def update(self, lease: coordination_pb2.Lease) -> coordination_pb2.Lease:
        current = self.leases[(lease.metadata.namespace, lease.metadata.name)]
        if lease.metadata.resource_version != current.metadata.resource_version:
            raise errors.Conflict("the object has been modified")
        return self._stored(lease)

    def renew_as(self, holder: str, wall: dt.datetime) -> None:
        """Another process renews the lease, stamping times from its own clock."""
        lease = self.leases[("kube-system", "lock")]
        lease.spec.holder_identity = holder
        lease.spec.lease_duration_seconds = 10
        lease.spec.renew_time.FromDatetime(wall)
        self._stored(lease)


async def run_until(clock: FakeClock, t: float, step: float = 0.25,
                    each: Callable[[float], Awaitable[None] | None] | None = None) -> None:
    while clock.now() < t:
        if each is not None:
            result = each(clock.now())
            if result is not None:
                await result
        await clock.advance(step)


@pytest.mark.parametrize("skew_hours", [-1, +1])
async def test_expiry_is_judged_by_the_candidates_clock_not_the_holders(
        skew_hours: int) -> None:
    """The holder's clock is an hour off (behind: its renewTime looks long expired;
    ahead: it looks valid for an hour). Neither fools the candidate: it takes over
    exactly when the record has not changed for leaseDurationSeconds of its own time."""
    clock = FakeClock()
    leases = MemoryLeases()
    holder_wall = clock.wall() + dt.timedelta(hours=skew_hours)
    seed = coordination_pb2.Lease()
    seed.metadata.name, seed.metadata.namespace = "lock", "kube-system"
    seed.spec.holder_identity = "other"
    seed.spec.lease_duration_seconds = 10
    seed.spec.renew_time.FromDatetime(holder_wall)
    await leases.create(seed)

    elector = LeaderElector(leases, "lock", "me", lease_duration=10,  # type: ignore[arg-type]
                            renew_deadline=8, retry_period=1, clock=clock)
    led_at: list[float] = []

    async def work() -> None:
        led_at.append(clock.now())
        await asyncio.Event().wait()

    task = asyncio.create_task(elector.run(work))
    try:
        # The other holder renews every 2 s for 30 s: the candidate never takes over.
        def renew(now: float) -> None:
            if now % 2 == 0:
                leases.renew_as("other", holder_wall + dt.timedelta(seconds=now))

        await run_until(clock, 30.0, each=renew)
        assert led_at == []
        assert elector.leader() == "other"
        # Then the holder dies (last renewal at t=28). The candidate last saw a change at
        # t=28 or up to one jittered retry later; expiry is 10 s after that.
        await run_until(clock, 37.5)
        assert led_at == []
        await run_until(clock, 42.0)
        assert len(led_at) == 1 and 38.0 <= led_at[0] <= 28.0 + 1.2 + 10 + 1.2
        lease = leases.leases[("kube-system", "lock")]
        assert lease.spec.holder_identity == "me"
        assert lease.spec.lease_transitions == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_renewal_failures_past_the_deadline_stop_the_leader() -> None:
    clock = FakeClock()
    leases = MemoryLeases()
    elector = LeaderElector(leases, "lock", "me", lease_duration=10,  # type: ignore[arg-type]
                            renew_deadline=8, retry_period=1, clock=clock)
    events: list[tuple[str, float]] = []

    async def work() -> None:
        events.append(("started", clock.now()))
        try:
            await asyncio.Event().wait()
        finally:
            events.append(("work cancelled", clock.now()))

    task = asyncio.create_task(elector.run(work, lambda: events.append(("stopped",
                                                                        clock.now()))))
    await run_until(clock, 5.0)
    assert events == [("started", 0.0)]

    async def broken(lease: object) -> object:
        raise errors.Unavailable("apiserver unreachable")

    leases.update = broken  # type: ignore[assignment, method-assign]
    leases.get = broken  # type: ignore[assignment, method-assign]
    broke_at = clock.now()
    await run_until(clock, broke_at + 12.0)
    assert task.done() and task.exception() is None
    assert [e for e, _ in events] == ["started", "work cancelled", "stopped"]
    # Stopped after renew_deadline without a renewal (the last one was up to a jittered
    # retry period before the break), and before the lease could expire for others.
    last_renewal_earliest = broke_at - 1.2
    assert last_renewal_earliest + 8 <= events[1][1] <= broke_at + 8 + 1.2
    assert not elector.is_leader()


async def test_lead_forever_starts_a_new_term_after_each_one_ends() -> None:
    leases = MemoryLeases()
    elector = LeaderElector(leases, "lock", "me", lease_duration=LEASE_DURATION,  # type: ignore[arg-type]
                            renew_deadline=RENEW_DEADLINE, retry_period=RETRY_PERIOD)
    terms = 0

    async def short_term() -> None:
        nonlocal terms
        terms += 1
        assert elector.is_leader()

    task = asyncio.create_task(elector.lead_forever(short_term))
    try:
        await eventually(lambda: terms >= 3, timeout=5)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert leases.leases[("kube-system", "lock")].spec.holder_identity == ""  # released
