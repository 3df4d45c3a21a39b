"""Unit tests for skiff.client.workqueue and skiff.client.clock (no real sleeping)."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from skiff.client.clock import FakeClock, RealClock
from skiff.client.workqueue import (
    ItemExponentialFailureRateLimiter,
    QueueShutDown,
    WorkQueue,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def queue(clock: FakeClock) -> AsyncIterator[WorkQueue]:
    q = WorkQueue("test", clock=clock)
    yield q
    q.shutdown()


async def drain(q: WorkQueue) -> list[str]:
    """Take every currently queued key (marking each done)."""
    keys = []
    while len(q):
        key = await q.get()
        q.done(key)
        keys.append(key)
    return keys


# ---------------------------------------------------------------- basic queue


async def test_add_deduplicates_waiting_keys(queue: WorkQueue) -> None:
    queue.add("a")
    queue.add("b")
    queue.add("a")
    assert len(queue) == 2
    assert queue.len() == 2
    assert await drain(queue) == ["a", "b"]


async def test_readd_while_processing_is_deferred_until_done(queue: WorkQueue) -> None:
    queue.add("a")
    key = await queue.get()
    assert key == "a"
    queue.add("a")
    queue.add("a")
    # Not handed out while the first holder still processes it...
    assert len(queue) == 0
    queue.done("a")
    # ...but queued exactly once afterwards.
    assert len(queue) == 1
    assert await queue.get() == "a"
    queue.done("a")
    assert len(queue) == 0


async def test_done_without_readd_does_not_requeue(queue: WorkQueue) -> None:
    queue.add("a")
    await queue.get()
    queue.done("a")
    assert len(queue) == 0


async def test_get_waits_for_add(queue: WorkQueue, clock: FakeClock) -> None:
    getter = asyncio.ensure_future(queue.get())
    await clock.settle()
    assert not getter.done()
    queue.add("x")
    await clock.settle()
    assert getter.result() == "x"


async def test_cancelled_woken_getter_passes_wakeup_on(queue: WorkQueue, clock: FakeClock) -> None:
    g1 = asyncio.ensure_future(queue.get())
    g2 = asyncio.ensure_future(queue.get())
    await clock.settle()
    queue.add("x")  # wakes g1 ...
    g1.cancel()  # ... which is cancelled before it can take the key
    await clock.settle()
    assert g1.cancelled()
    assert g2.done() and g2.result() == "x"


async def test_key_never_processed_concurrently(queue: WorkQueue, clock: FakeClock) -> None:
    active: dict[str, int] = defaultdict(int)
    max_active: dict[str, int] = defaultdict(int)
    calls: list[str] = []
    release = asyncio.Event()

    async def sync(key: str) -> None:
        active[key] += 1
        max_active[key] = max(max_active[key], active[key])
        calls.append(key)
        try:
            if len(calls) == 1:
                # Hold the first run open while the key is re-added repeatedly; with
                # idle workers available, a broken queue would start it again now.
                await release.wait()
        finally:
            active[key] -= 1

    runner = asyncio.ensure_future(queue.run_workers(4, sync))
    queue.add("k")
    await clock.settle()
    assert calls == ["k"]
    for _ in range(3):
        queue.add("k")
        await clock.settle()
    assert calls == ["k"]  # still only the first, blocked, run
    release.set()
    await clock.settle()
    # The re-adds collapse into exactly one more run, after the first finished.
    assert calls == ["k", "k"]
    assert max_active["k"] == 1
    queue.shutdown()
    await asyncio.wait_for(runner, 1)


# ---------------------------------------------------------------- delaying


async def test_add_after_fires_in_ready_order(queue: WorkQueue, clock: FakeClock) -> None:
    queue.add_after("a", 3)
    queue.add_after("b", 1)
    queue.add_after("c", 2)
    await clock.advance(0.5)
    assert len(queue) == 0
    await clock.advance(0.5)
    assert await drain(queue) == ["b"]
    await clock.advance(1)
    assert await drain(queue) == ["c"]
    await clock.advance(0.999)
    assert len(queue) == 0
    await clock.advance(0.001)
    assert await drain(queue) == ["a"]


async def test_add_after_single_advance_preserves_order(queue: WorkQueue, clock: FakeClock) -> None:
    for key, delay in [("a", 3), ("b", 1), ("c", 2)]:
        queue.add_after(key, delay)
    await clock.advance(10)
    assert await drain(queue) == ["b", "c", "a"]


async def test_add_after_earlier_time_wins(queue: WorkQueue, clock: FakeClock) -> None:
    queue.add_after("a", 10)
    queue.add_after("a", 2)  # earlier: replaces the 10 s entry
    await clock.advance(2)
    assert await drain(queue) == ["a"]
    await clock.advance(20)
    assert len(queue) == 0  # the superseded 10 s entry must not fire

    queue.add_after("b", 2)
    queue.add_after("b", 10)  # later: ignored
    await clock.advance(2)
    assert await drain(queue) == ["b"]
    await clock.advance(20)
    assert len(queue) == 0


async def test_add_after_earlier_entry_interrupts_timer_sleep(
    queue: WorkQueue, clock: FakeClock
) -> None:
    queue.add_after("late", 100)
    await clock.advance(1)  # timer is now sleeping until t=100
    queue.add_after("early", 1)
    await clock.advance(1)
    assert await drain(queue) == ["early"]


async def test_add_after_nonpositive_adds_immediately(queue: WorkQueue) -> None:
    queue.add_after("a", 0)
    queue.add_after("b", -1)
    assert await drain(queue) == ["a", "b"]


async def test_add_after_while_processing_marks_dirty(queue: WorkQueue, clock: FakeClock) -> None:
    queue.add("a")
    await queue.get()
    queue.add_after("a", 1)
    await clock.advance(1)
    assert len(queue) == 0
    queue.done("a")
    assert await drain(queue) == ["a"]


# ---------------------------------------------------------------- rate limiting


def test_exponential_backoff_doubles_and_forget_resets() -> None:
    rl = ItemExponentialFailureRateLimiter()
    assert [rl.when("a") for _ in range(4)] == pytest.approx([0.005, 0.01, 0.02, 0.04])
    assert rl.num_requeues("a") == 4
    assert rl.when("b") == pytest.approx(0.005)  # per key
    rl.forget("a")
    assert rl.num_requeues("a") == 0
    assert rl.when("a") == pytest.approx(0.005)
    assert rl.num_requeues("b") == 1


def test_exponential_backoff_is_capped() -> None:
    rl = ItemExponentialFailureRateLimiter(base_delay=1, max_delay=10)
    assert [rl.when("a") for _ in range(6)] == [1, 2, 4, 8, 10, 10]
    for _ in range(5000):  # exponent far beyond float range must not raise
        assert rl.when("a") == 10


def test_default_max_delay_is_1000_seconds() -> None:
    rl = ItemExponentialFailureRateLimiter()
    delays = [rl.when("a") for _ in range(30)]
    assert max(delays) == 1000.0


async def test_add_rate_limited_waits_for_backoff(queue: WorkQueue, clock: FakeClock) -> None:
    queue.add_rate_limited("a")
    await clock.advance(0.004)
    assert len(queue) == 0
    await clock.advance(0.001)
    assert await drain(queue) == ["a"]

    queue.add_rate_limited("a")  # second failure: 10 ms
    await clock.advance(0.009)
    assert len(queue) == 0
    await clock.advance(0.001)
    assert await drain(queue) == ["a"]
    assert queue.num_requeues("a") == 2

    queue.forget("a")
    assert queue.num_requeues("a") == 0
    queue.add_rate_limited("a")  # back to 5 ms
    await clock.advance(0.005)
    assert await drain(queue) == ["a"]


async def test_run_workers_requeues_failures_with_backoff_and_forgets_success(
    queue: WorkQueue, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: dict[str, list[float]] = defaultdict(list)
    requeues_seen: list[int] = []

    async def sync(key: str) -> None:
        attempts[key].append(clock.now())
        if key == "bad":
            requeues_seen.append(queue.num_requeues(key))
            if len(attempts[key]) <= 3:
                raise RuntimeError("boom")

    caplog.set_level(logging.ERROR, logger="skiff.client.workqueue")
    runner = asyncio.ensure_future(queue.run_workers(2, sync))
    queue.add("bad")
    queue.add("good")
    await clock.settle()
    assert attempts["good"] == [0.0]
    assert queue.num_requeues("good") == 0
    assert attempts["bad"] == [0.0]

    # Retries at +5 ms, +10 ms, +20 ms after each failure.
    for _ in range(10):
        await clock.advance(0.005)
    assert attempts["bad"] == pytest.approx([0.0, 0.005, 0.015, 0.035])
    assert requeues_seen == [0, 1, 2, 3]
    # The fourth attempt succeeded, so its failure count was forgotten.
    assert queue.num_requeues("bad") == 0
    assert attempts["good"] == [0.0]  # successes are not retried

    failures = [r for r in caplog.records if "'bad'" in r.getMessage()]
    assert len(failures) == 3
    assert all(r.exc_info is not None for r in failures)

    queue.shutdown()
    await asyncio.wait_for(runner, 1)


async def test_run_workers_returns_on_shutdown(queue: WorkQueue, clock: FakeClock) -> None:
    async def sync(key: str) -> None:
        pass

    runner = asyncio.ensure_future(queue.run_workers(3, sync))
    await clock.settle()
    assert not runner.done()
    queue.shutdown()
    await clock.settle()
    assert runner.done() and runner.exception() is None


# ---------------------------------------------------------------- shutdown


async def test_shutdown_wakes_all_getters(queue: WorkQueue, clock: FakeClock) -> None:
    getters = [asyncio.ensure_future(queue.get()) for _ in range(3)]
    await clock.settle()
    assert not any(g.done() for g in getters)
    queue.shutdown()
    await clock.settle()
    for g in getters:
        assert g.done()
        assert isinstance(g.exception(), QueueShutDown)


async def test_shutdown_hands_out_remaining_keys_then_raises(queue: WorkQueue) -> None:
    queue.add("a")
    queue.shutdown()
    queue.add("b")  # ignored after shutdown
    assert queue.shutting_down()
    assert await queue.get() == "a"
    queue.done("a")
    with pytest.raises(QueueShutDown):
        await queue.get()


async def test_shutdown_drops_delayed_keys(queue: WorkQueue, clock: FakeClock) -> None:
    queue.add_after("a", 1)
    queue.shutdown()
    await clock.advance(5)
    assert len(queue) == 0


async def test_shutdown_with_drain_waits_for_processing(queue: WorkQueue, clock: FakeClock) -> None:
    queue.add("a")
    await queue.get()
    drainer = asyncio.ensure_future(queue.shutdown_with_drain())
    await clock.settle()
    assert not drainer.done()
    queue.done("a")
    await clock.settle()
    assert drainer.done()


# ---------------------------------------------------------------- clocks


async def test_fake_clock_wakes_sleepers_in_deadline_order(clock: FakeClock) -> None:
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now()))

    tasks = [asyncio.ensure_future(sleeper(n, s)) for n, s in [("c", 3), ("a", 1), ("b", 2)]]
    await clock.advance(1.5)
    assert woke == [("a", 1.0)]
    assert clock.pending_sleepers() == 2
    await clock.advance(10)
    assert woke == [("a", 1.0), ("b", 2.0), ("c", 3.0)]
    assert clock.now() == 11.5
    await asyncio.gather(*tasks)


async def test_fake_clock_wall_tracks_now() -> None:
    start = datetime(2030, 5, 1, tzinfo=UTC)
    clock = FakeClock(start=100.0, wall_start=start)
    await clock.set_time(160.0)
    assert clock.wall() == start + timedelta(minutes=1)
    with pytest.raises(ValueError):
        await clock.advance(-1)


async def test_real_clock() -> None:
    clock = RealClock()
    t0 = clock.now()
    await clock.sleep(0.002)
    assert clock.now() - t0 >= 0.001
    assert clock.wall().tzinfo is UTC
