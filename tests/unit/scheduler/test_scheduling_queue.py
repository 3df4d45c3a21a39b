"""Unit tests for scheduler.queue.SchedulingQueue (FakeClock; no real sleeping)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from scheduler.queue import QueueClosed, QueuedPod, SchedulingQueue
from skiff.client.clock import FakeClock

FIT = frozenset({"NodeResourcesFit"})
TAINT = frozenset({"TaintToleration"})


def order(t: float, key: str) -> tuple[float, str]:
    return (t, key)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def queue(clock: FakeClock) -> AsyncIterator[SchedulingQueue]:
    q = SchedulingQueue(clock=clock)
    timers = asyncio.ensure_future(q.run())
    yield q
    q.close()
    # run() must return by itself on close, not need cancelling.
    await asyncio.wait_for(timers, timeout=1.0)


async def pop_now(q: SchedulingQueue, clock: FakeClock) -> QueuedPod:
    """Pop, asserting a pod is ready without time moving."""
    task = asyncio.ensure_future(q.pop())
    await clock.settle()
    assert task.done(), "pop() blocked but a pod should be active"
    return task.result()


async def assert_pop_blocks(q: SchedulingQueue, clock: FakeClock) -> None:
    task = asyncio.ensure_future(q.pop())
    await clock.settle()
    assert not task.done(), f"pop() returned {task.result()!r} but nothing should be active"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def add_and_park(
    q: SchedulingQueue, clock: FakeClock, key: str, rejected_by: frozenset[str] = FIT
) -> QueuedPod:
    """Add ``key``, pop it and report it unschedulable (one failed attempt)."""
    q.add(key, order(0, key))
    pod = await pop_now(q, clock)
    assert pod.key == key
    q.requeue_unschedulable(pod, rejected_by)
    return pod


# ---------------------------------------------------------------- ordering and dedup


async def test_pops_in_creation_order_with_key_as_tiebreak(
    queue: SchedulingQueue, clock: FakeClock
) -> None:
    queue.add("ns/c", order(3, "ns/c"))
    queue.add("ns/a", order(1, "ns/a"))
    queue.add("ns/d", order(1, "ns/d"))
    queue.add("ns/b", order(2, "ns/b"))
    got = [(await pop_now(queue, clock)).key for _ in range(4)]
    assert got == ["ns/a", "ns/d", "ns/b", "ns/c"]
    await assert_pop_blocks(queue, clock)


async def test_first_pop_has_zero_attempts_and_increasing_cycles(
    queue: SchedulingQueue, clock: FakeClock
) -> None:
    queue.add("a", order(1, "a"))
    queue.add("b", order(2, "b"))
    a = await pop_now(queue, clock)
    b = await pop_now(queue, clock)
    assert (a.key, a.order, a.attempts) == ("a", (1, "a"), 0)
    assert b.attempts == 0
    assert b.cycle > a.cycle


async def test_add_deduplicates_everywhere(queue: SchedulingQueue, clock: FakeClock) -> None:
    queue.add("a", order(1, "a"))
    queue.add("a", order(1, "a"))
    assert len(queue) == 1

    pod = await pop_now(queue, clock)
    queue.add("a", order(1, "a"))  # in flight: no second copy
    assert len(queue) == 0
    await assert_pop_blocks(queue, clock)

    queue.requeue_backoff(pod)
    queue.add("a", order(1, "a"))  # in backoff: stays there
    assert queue.pending() == {"active": 0, "backoff": 1, "unschedulable": 0}

    await clock.advance(1)
    pod = await pop_now(queue, clock)
    queue.requeue_unschedulable(pod, FIT)
    queue.add("a", order(1, "a"))  # unschedulable: a relist is no reason to retry
    assert queue.pending() == {"active": 0, "backoff": 0, "unschedulable": 1}


async def test_delete_then_add_in_active_yields_one_copy(
    queue: SchedulingQueue, clock: FakeClock
) -> None:
    queue.add("a", order(1, "a"))
    queue.delete("a")
    queue.add("a", order(2, "a"))
    assert len(queue) == 1
    pod = await pop_now(queue, clock)
    assert pod.order == (2, "a")
    await assert_pop_blocks(queue, clock)


# ---------------------------------------------------------------- update


async def test_update_unschedulable_pod_goes_to_backoff_then_active(
    queue: SchedulingQueue, clock: FakeClock
) -> None:
    await add_and_park(queue, clock, "a")  # 1 failure at t=0: backoff until t=1
    assert queue.pending() == {"active": 0, "backoff": 0, "unschedulable": 1}

    queue.update("a", order(0, "a"))
    assert queue.pending() == {"active": 0, "backoff": 1, "unschedulable": 0}
    await clock.advance(0.5)
    assert queue.pending()["backoff"] == 1
    await clock.advance(0.5)
    assert queue.pending() == {"active": 1, "backoff": 0, "unschedulable": 0}
    pod = await pop_now(queue, clock)
    assert pod.attempts == 1


async def test_update_unschedulable_pod_after_backoff_expired_goes_active(
    queue: SchedulingQueue, clock: FakeClock
) -> None:
    await add_and_park(queue, clock, "a")
    await clock.advance(5)
    queue.update("a", order(0, "a"))
    assert queue.pending() == {"active": 1, "backoff": 0, "unschedulable": 0}


async def test_update_unknown_pod_adds_it(queue: SchedulingQueue, clock: FakeClock) -> None:
    queue.update("a", order(1, "a"))
    assert queue.pending() == {"active": 1, "backoff": 0, "unschedulable": 0}
    assert (await pop_now(queue, clock)).key == "a"


async def test_update_active_pod_reorders_without_duplicating(
    queue: SchedulingQueue, clock: FakeClock
) -> None:
    queue.add("a", order(5, "a"))
    queue.add("b", order(3, "b"))
    queue.update("a", order(1, "a"))
    assert len(queue) == 2
    assert [(await pop_now(queue, clock)).key for _ in range(2)] == ["a", "b"]
    await assert_pop_blocks(queue, clock)


async def test_update_backoff_pod_keeps_it_in_backoff(
    queue: SchedulingQueue, clock: FakeClock
) -> None:
    queue.add("a", order(1, "a"))
    queue.requeue_backoff(await pop_now(queue, clock))
    queue.update("a", order(1, "a"))
    assert queue.pending() == {"active": 0, "backoff": 1, "unschedulable": 0}


# ---------------------------------------------------------------- backoff


async def test_backoff_doubles_up_to_the_cap(queue: SchedulingQueue, clock: FakeClock) -> None:
    queue.add("a", order(1, "a"))
    pod = await pop_now(queue, clock)
    for failures, expected in enumerate([1, 2, 4, 8, 10, 10], start=1):
        queue.requeue_backoff(pod)
        await clock.advance(expected - 0.5)
        assert queue.pending()["backoff"] == 1, f"left backoff early after failure {failures}"
        await clock.advance(0.5)
        assert queue.pending()["active"] == 1, f"still in backoff after {expected}s"
        pod = await pop_now(queue, clock)
        assert pod.attempts == failures


async def test_unschedulable_attempts_count_towards_backoff(
    queue: SchedulingQueue, clock: FakeClock
) -> None:
    queue.add("a", order(1, "a"))
    pod = await pop_now(queue, clock)
    queue.requeue_unschedulable(pod, FIT)  # failure 1
    queue.update("a", order(1, "a"))
    await clock.advance(1)
    pod = await pop_now(queue, clock)
    queue.requeue_backoff(pod)  # failure 2: 2 s
    await clock.advance(1.5)
    assert queue.pending()["backoff"] == 1
    await clock.advance(0.5)
    assert (await pop_now(queue, clock)).attempts == 2


async def test_blocked_pop_wakes_when_backoff_expires(
    queue: SchedulingQueue, clock: FakeClock
) -> None:
    queue.add("a", order(1, "a"))
    queue.requeue_backoff(await pop_now(queue, clock))
    popper = asyncio.ensure_future(queue.pop())
    await clock.advance(0.5)
    assert not popper.done()
    await clock.advance(0.5)
    assert popper.done()
    assert popper.result().key == "a"


async def test_earlier_deadline_interrupts_the_timer_sleep(
    queue: SchedulingQueue, clock: FakeClock
) -> None:
    # The timer sleeps until the 300 s unschedulable timeout of "a"...
    await add_and_park(queue, clock, "a")
    await clock.settle()
    # ...and a 1 s backoff queued afterwards must not wait for that.
    queue.add("b", order(2, "b"))
    queue.requeue_backoff(await pop_now(queue, clock))
    await clock.advance(1)
    assert queue.pending() == {"active": 1, "backoff": 0, "unschedulable": 1}


async def test_done_forgets_attempts(queue: SchedulingQueue, clock: FakeClock) -> None:
    queue.add("a", order(1, "a"))
    queue.requeue_backoff(await pop_now(queue, clock))
    await clock.advance(1)
    pod = await pop_now(queue, clock)
    assert pod.attempts == 1
    queue.done("a")
    assert len(queue) == 0
    queue.add("a", order(1, "a"))
    assert (await pop_now(queue, clock)).attempts == 0


async def test_pop_activates_due_backoff_even_without_run(clock: FakeClock) -> None:
    q = SchedulingQueue(clock=clock)
    q.add("a", order(1, "a"))
    q.requeue_backoff(await pop_now(q, clock))
    await clock.advance(1)
    assert q.pending()["backoff"] == 1  # nobody ran the timers...
    assert (await pop_now(q, clock)).key == "a"  # ...but pop honours the expired backoff
    q.close()


# ---------------------------------------------------------------- move_all


async def test_move_all_without_filter_moves_every_unschedulable_pod(
    queue: SchedulingQueue, clock: FakeClock
) -> None:
    await add_and_park(queue, clock, "a", FIT)
    await clock.advance(5)  # a's backoff (1 s) has expired
    await add_and_park(queue, clock, "b", TAINT)  # b's has not
    queue.add("c", order(9, "c"))  # active pods are not counted as moved

    assert queue.move_all("NodeAdd") == 2
    assert queue.pending() == {"active": 2, "backoff": 1, "unschedulable": 0}
    await clock.advance(1)
    assert queue.pending() == {"active": 3, "backoff": 0, "unschedulable": 0}
    assert queue.move_all("NodeAdd") == 0


async def test_move_all_with_filter_moves_only_helped_pods(
    queue: SchedulingQueue, clock: FakeClock
) -> None:
    await add_and_park(queue, clock, "a", FIT)
    await add_and_park(queue, clock, "b", TAINT)
    await add_and_park(queue, clock, "c", FIT | TAINT)
    await clock.advance(5)

    seen: list[frozenset[str]] = []

    def frees_resources(rejected: frozenset[str]) -> bool:
        seen.append(rejected)
        return "NodeResourcesFit" in rejected

    assert queue.move_all("PodDelete", frees_resources) == 2
    assert sorted(seen, key=sorted) == sorted([FIT, TAINT, FIT | TAINT], key=sorted)
    assert queue.pending() == {"active": 2, "backoff": 0, "unschedulable": 1}
    assert {(await pop_now(queue, clock)).key for _ in range(2)} == {"a", "c"}


async def test_move_all_treats_a_failing_predicate_as_helping(
    queue: SchedulingQueue, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    await add_and_park(queue, clock, "a")

    def broken(rejected: frozenset[str]) -> bool:
        raise KeyError("boom")

    assert queue.move_all("NodeUpdate", broken) == 1
    assert queue.pending()["unschedulable"] == 0
    assert "helps() failed" in caplog.text


async def test_move_during_flight_sends_pod_to_backoff_not_unschedulable(
    queue: SchedulingQueue, clock: FakeClock
) -> None:
    queue.add("a", order(1, "a"))
    pod = await pop_now(queue, clock)
    # A node is added while "a" is being scheduled: its attempt did not see the node.
    assert queue.move_all("NodeAdd") == 0
    queue.requeue_unschedulable(pod, FIT)
    assert queue.pending() == {"active": 0, "backoff": 1, "unschedulable": 0}
    await clock.advance(1)
    assert (await pop_now(queue, clock)).attempts == 1


async def test_move_before_pop_does_not_spare_the_next_attempt(
    queue: SchedulingQueue, clock: FakeClock
) -> None:
    queue.move_all("NodeAdd")
    queue.add("a", order(1, "a"))
    queue.requeue_unschedulable(await pop_now(queue, clock), FIT)
    assert queue.pending() == {"active": 0, "backoff": 0, "unschedulable": 1}

    # Nor does a move during an earlier pod's cycle affect a later pod's.
    queue.add("b", order(2, "b"))
    b = await pop_now(queue, clock)
    queue.move_all("NodeAdd")  # moves "a"
    queue.add("c", order(3, "c"))
    queue.requeue_unschedulable(b, FIT)  # b was in flight: backoff
    c = await pop_now(queue, clock)
    assert c.key == "c"
    queue.requeue_unschedulable(c, FIT)  # popped after the move: parks
    assert queue.pending()["unschedulable"] == 1


async def test_update_during_flight_sends_pod_to_backoff(
    queue: SchedulingQueue, clock: FakeClock
) -> None:
    queue.add("a", order(1, "a"))
    pod = await pop_now(queue, clock)
    queue.update("a", order(1, "a"))
    assert len(queue) == 0  # no second copy while in flight
    queue.requeue_unschedulable(pod, FIT)
    assert queue.pending() == {"active": 0, "backoff": 1, "unschedulable": 0}


async def test_in_flight_change_is_forgotten_after_the_attempt(
    queue: SchedulingQueue, clock: FakeClock
) -> None:
    queue.add("a", order(1, "a"))
    pod = await pop_now(queue, clock)
    queue.update("a", order(1, "a"))
    queue.requeue_unschedulable(pod, FIT)  # backoff because of the update
    await clock.advance(1)
    queue.requeue_unschedulable(await pop_now(queue, clock), FIT)  # nothing changed now
    assert queue.pending() == {"active": 0, "backoff": 0, "unschedulable": 1}


# ---------------------------------------------------------------- delete


async def test_delete_while_in_flight_drops_the_outcome(
    queue: SchedulingQueue, clock: FakeClock
) -> None:
    for requeue in ("unschedulable", "backoff", "done"):
        queue.add("a", order(1, "a"))
        pod = await pop_now(queue, clock)
        queue.delete("a")
        if requeue == "unschedulable":
            queue.requeue_unschedulable(pod, FIT)
        elif requeue == "backoff":
            queue.requeue_backoff(pod)
        else:
            queue.done("a")
        assert len(queue) == 0
        assert queue.pending() == {"active": 0, "backoff": 0, "unschedulable": 0}
    await clock.advance(400)
    assert len(queue) == 0
    # The key is fully forgotten: a new pod under it starts from scratch.
    queue.add("a", order(2, "a"))
    assert (await pop_now(queue, clock)).attempts == 0


async def test_recreated_while_in_flight_is_scheduled_as_a_new_pod(
    queue: SchedulingQueue, clock: FakeClock
) -> None:
    queue.add("a", order(1, "a"))
    queue.requeue_backoff(await pop_now(queue, clock))
    await clock.advance(1)
    pod = await pop_now(queue, clock)
    queue.delete("a")
    queue.add("a", order(7, "a"))  # same name, new pod
    assert len(queue) == 0
    queue.requeue_unschedulable(pod, FIT)  # the old pod's failure: not the new one's
    assert queue.pending() == {"active": 1, "backoff": 0, "unschedulable": 0}
    new = await pop_now(queue, clock)
    assert (new.order, new.attempts) == ((7, "a"), 0)

    # Likewise when the old attempt ends with done() (e.g. a bind that raced the delete).
    queue.delete("a")
    queue.add("a", order(8, "a"))
    queue.done("a")
    assert (await pop_now(queue, clock)).order == (8, "a")


async def test_delete_drops_pod_from_every_place(queue: SchedulingQueue, clock: FakeClock) -> None:
    await add_and_park(queue, clock, "u")
    queue.add("b", order(1, "b"))
    queue.requeue_backoff(await pop_now(queue, clock))
    queue.add("a", order(2, "a"))
    assert queue.pending() == {"active": 1, "backoff": 1, "unschedulable": 1}
    for key in ("u", "b", "a", "missing"):
        queue.delete(key)
    assert queue.pending() == {"active": 0, "backoff": 0, "unschedulable": 0}
    await clock.advance(400)  # stale timer entries must not resurrect anything
    assert len(queue) == 0
    await assert_pop_blocks(queue, clock)


async def test_stale_queued_pod_is_ignored(queue: SchedulingQueue, clock: FakeClock) -> None:
    queue.add("a", order(1, "a"))
    old = await pop_now(queue, clock)
    queue.done("a")
    queue.add("a", order(1, "a"))
    current = await pop_now(queue, clock)
    queue.requeue_unschedulable(old, FIT)  # from a finished cycle: no effect
    queue.requeue_backoff(old)
    assert len(queue) == 0
    queue.requeue_backoff(current)
    assert queue.pending()["backoff"] == 1


# ---------------------------------------------------------------- unschedulable timeout


async def test_unschedulable_pod_is_retried_after_timeout(
    queue: SchedulingQueue, clock: FakeClock
) -> None:
    await add_and_park(queue, clock, "a")
    popper = asyncio.ensure_future(queue.pop())
    await clock.advance(299.5)
    assert queue.pending()["unschedulable"] == 1
    assert not popper.done()
    await clock.advance(0.5)
    assert popper.done()
    pod = popper.result()
    assert (pod.key, pod.attempts) == ("a", 1)


async def test_unschedulable_timeout_restarts_when_pod_parks_again(
    queue: SchedulingQueue, clock: FakeClock
) -> None:
    await add_and_park(queue, clock, "a")  # parked at t=0
    await clock.advance(100)
    queue.update("a", order(0, "a"))
    queue.requeue_unschedulable(await pop_now(queue, clock), FIT)  # parked again at t=100
    await clock.advance(250)  # t=350: past the first park's timeout
    assert queue.pending()["unschedulable"] == 1
    await clock.advance(50)  # t=400
    assert queue.pending() == {"active": 1, "backoff": 0, "unschedulable": 0}


async def test_timeout_flush_is_not_a_move_request(
    queue: SchedulingQueue, clock: FakeClock
) -> None:
    await add_and_park(queue, clock, "a")
    await clock.advance(10)
    queue.add("b", order(1, "b"))
    b = await pop_now(queue, clock)
    await clock.advance(290)  # "a" times out while "b" is in flight
    assert queue.pending()["active"] == 1
    queue.requeue_unschedulable(b, FIT)
    assert queue.pending()["unschedulable"] == 1


async def test_short_timeout_with_unexpired_backoff_goes_through_backoff(
    clock: FakeClock,
) -> None:
    q = SchedulingQueue(clock=clock, initial_backoff=5, max_backoff=5, unschedulable_timeout=2)
    timers = asyncio.ensure_future(q.run())
    await add_and_park(q, clock, "a")
    await clock.advance(2)
    assert q.pending() == {"active": 0, "backoff": 1, "unschedulable": 0}
    await clock.advance(3)
    assert q.pending() == {"active": 1, "backoff": 0, "unschedulable": 0}
    q.close()
    await timers


# ---------------------------------------------------------------- pop, close, counts


async def test_pop_waits_for_add(queue: SchedulingQueue, clock: FakeClock) -> None:
    popper = asyncio.ensure_future(queue.pop())
    await clock.settle()
    assert not popper.done()
    queue.add("a", order(1, "a"))
    await clock.settle()
    assert popper.result().key == "a"


async def test_concurrent_poppers_get_different_pods(
    queue: SchedulingQueue, clock: FakeClock
) -> None:
    poppers = [asyncio.ensure_future(queue.pop()) for _ in range(3)]
    await clock.settle()
    queue.add("a", order(1, "a"))
    queue.add("b", order(2, "b"))
    await clock.settle()
    done = [p for p in poppers if p.done()]
    assert sorted(p.result().key for p in done) == ["a", "b"]
    (waiting,) = [p for p in poppers if not p.done()]
    queue.close()
    with pytest.raises(QueueClosed):
        await waiting


async def test_cancelled_popper_passes_its_wakeup_on(
    queue: SchedulingQueue, clock: FakeClock
) -> None:
    first = asyncio.ensure_future(queue.pop())
    await clock.settle()
    second = asyncio.ensure_future(queue.pop())
    await clock.settle()
    queue.add("a", order(1, "a"))  # wakes `first`...
    first.cancel()  # ...which is cancelled before it runs
    await clock.settle()
    assert first.cancelled()
    assert second.result().key == "a"


async def test_close_wakes_poppers_with_queue_closed(
    queue: SchedulingQueue, clock: FakeClock
) -> None:
    poppers = [asyncio.ensure_future(queue.pop()) for _ in range(2)]
    await clock.settle()
    queue.close()
    assert queue.closed
    for p in poppers:
        with pytest.raises(QueueClosed):
            await p
    queue.add("a", order(1, "a"))
    with pytest.raises(QueueClosed):
        await queue.pop()


async def test_pop_after_close_raises_even_with_pods_queued(
    queue: SchedulingQueue, clock: FakeClock
) -> None:
    queue.add("a", order(1, "a"))
    queue.close()
    with pytest.raises(QueueClosed):
        await queue.pop()


async def test_run_returns_on_close_and_refuses_a_second_runner(clock: FakeClock) -> None:
    q = SchedulingQueue(clock=clock)
    timers = asyncio.ensure_future(q.run())
    await clock.settle()
    with pytest.raises(RuntimeError):
        await q.run()
    await add_and_park(q, clock, "a")  # the runner is now sleeping on a deadline
    await clock.settle()
    q.close()
    await asyncio.wait_for(timers, timeout=1.0)
    assert clock.pending_sleepers() == 0


async def test_pending_and_len(queue: SchedulingQueue, clock: FakeClock) -> None:
    assert len(queue) == 0
    assert queue.pending() == {"active": 0, "backoff": 0, "unschedulable": 0}
    await add_and_park(queue, clock, "u1")
    await add_and_park(queue, clock, "u2")
    queue.add("b", order(1, "b"))
    queue.requeue_backoff(await pop_now(queue, clock))
    queue.add("f", order(1, "f"))
    await pop_now(queue, clock)  # in flight: not counted
    queue.add("a1", order(1, "a1"))
    queue.add("a2", order(2, "a2"))
    queue.add("a3", order(3, "a3"))
    assert queue.pending() == {"active": 3, "backoff": 1, "unschedulable": 2}
    assert len(queue) == 6


async def test_heaps_stay_bounded_under_churn(queue: SchedulingQueue, clock: FakeClock) -> None:
    queue.add("a", order(0, "a"))
    for i in range(1000):
        queue.update("a", order(i + 1, "a"))  # each reorder leaves a stale entry
    assert len(queue._active) < 100
    assert len(queue) == 1
    assert (await pop_now(queue, clock)).order == (1000, "a")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial_backoff": -1.0}, "initial_backoff"),
        ({"initial_backoff": 5.0, "max_backoff": 1.0}, "initial_backoff"),
        ({"unschedulable_timeout": 0.0}, "unschedulable_timeout"),
    ],
)
def test_rejects_bad_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SchedulingQueue(**kwargs)  # type: ignore[arg-type]
