"""The scheduler's queue of pending pods (Kubernetes' PriorityQueue, simplified).

A pending pod is in exactly one of four places, keyed by its ``namespace/name`` key:

* **active** (Kubernetes' activeQ): ready to be tried now. A heap ordered by the pod's
  ``order`` key, ``(creation timestamp, key)``, so older pods go first and ties break
  deterministically. ``pop`` takes from here.
* **backoff** (backoffQ): the pod failed recently and must wait before its next attempt,
  so that one pod that keeps failing (or a bind error that keeps recurring) cannot
  monopolise the scheduler. A heap ordered by expiry; an expired pod moves to active.
* **unschedulable** (unschedulablePods): the last attempt found no node. Retrying before
  something in the cluster changes would only burn cycles, so the pod waits here until a
  cluster event that may help (``on_event``, which asks the plugins that rejected the pod
  through their registered events, see ``scheduler.events``; or ``move_all`` with a
  predicate of one's own), a change to the pod itself (``update``), or
  ``unschedulable_timeout`` as a safety net against events that were missed or that no
  plugin anticipated.
* **in flight**: popped and being scheduled, until the scheduler reports the outcome with
  ``done`` (bound or assumed), ``requeue_unschedulable`` (no node fits) or
  ``requeue_backoff`` (an error such as a failed bind).

Why the move-request cycle: an event that arrives while a pod is in flight (a node was
added, another pod was deleted) was not seen by that attempt. If the attempt then fails
as unschedulable, parking the pod in the unschedulable set would wait for an event that
has already happened; so every ``pop`` numbers a scheduling cycle, ``move_all`` records
the cycle it happened in, and ``requeue_unschedulable`` sends a pod popped at or before
that cycle to backoff instead. Changes to the in-flight pod itself (``add``/``update``)
are remembered per pod for the same reason.

Backoff after the n-th failed attempt is ``min(initial_backoff * 2**(n-1), max_backoff)``
seconds from the requeue (``skiff.client.backoff.exponential_delay``). Attempts accumulate
across requeues of both kinds and are forgotten by ``done`` or ``delete``.

Timers (backoff expiry, unschedulable timeout) run in ``run()``, which the owner starts
as a task next to its ``pop`` loop and which returns on ``close``. It is an explicit task
rather than one the queue starts behind its owner's back so that its lifetime (and its
cancellation at shutdown) is the scheduler's, visible in one place. Without it nothing
moves out of backoff or the unschedulable set by itself (``pop`` still activates what is
already due when it is called, but a blocked ``pop`` is not woken). All time comes from
the injected ``Clock`` so tests drive it with ``FakeClock``.

All methods must be called from the event loop thread; the queue is not thread-safe.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from scheduler.events import ClusterEvent, EventHints
from skiff.client.backoff import exponential_delay
from skiff.client.clock import Clock, RealClock, sleep_or_wake
from skiff.client.waiters import Waiters

__all__ = ["QueueClosed", "QueuedPod", "SchedulingQueue"]

log = logging.getLogger(__name__)


class QueueClosed(Exception):
    """Raised by ``SchedulingQueue.pop`` once the queue is closed."""


@dataclass(frozen=True, slots=True)
class QueuedPod:
    """A pod handed out by ``pop``; pass it back to ``requeue_*`` unchanged."""

    key: str
    order: tuple[float, str]
    attempts: int
    """How many scheduling attempts of this pod ended in failure so far (0 on first pop)."""
    cycle: int
    """The scheduling cycle this pop started (compared with move requests)."""


class _Where(Enum):
    ACTIVE = "active"
    BACKOFF = "backoff"
    UNSCHEDULABLE = "unschedulable"
    IN_FLIGHT = "in_flight"


@dataclass(slots=True)
class _PodState:
    key: str
    order: tuple[float, str]
    where: _Where
    attempts: int = 0
    # Clock time before which another attempt would be too early (0: never failed).
    backoff_expiry: float = 0.0
    # Sequence number of this pod's live entry in the heap of its current place. Heap
    # entries are never removed in place (heapq has no delete); an entry whose sequence
    # number is not the pod's token is stale and skipped when it surfaces.
    token: int = -1
    rejected_by: frozenset[str] = field(default_factory=frozenset)
    # In-flight bookkeeping, meaningful only while where is IN_FLIGHT.
    cycle: int = 0
    changed: bool = False  # add/update arrived during the attempt
    deleted: bool = False  # delete arrived during the attempt
    readded: bool = False  # ...and then an add: a new pod under the same key


# A heap is compacted when its stale entries outnumber the live ones by this much; keeps
# memory bounded under churn (e.g. many deletes of unschedulable pods) at O(1) amortised.
_COMPACT_SLACK = 64


class SchedulingQueue:
    """Pending pods waiting for the scheduler (see the module docstring for the model).

    ``initial_backoff``/``max_backoff`` bound the per-pod exponential backoff;
    ``unschedulable_timeout`` is the longest a pod stays in the unschedulable set without
    an event moving it. ``hints`` are the events the filter plugins registered, which
    ``on_event`` consults (without them every event moves every unschedulable pod).
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        initial_backoff: float = 1.0,
        max_backoff: float = 10.0,
        unschedulable_timeout: float = 300.0,
        hints: EventHints | None = None,
    ) -> None:
        if initial_backoff < 0 or max_backoff < initial_backoff:
            raise ValueError("need 0 <= initial_backoff <= max_backoff")
        if unschedulable_timeout <= 0:
            raise ValueError("unschedulable_timeout must be positive")
        self._clock: Clock = clock if clock is not None else RealClock()
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._unschedulable_timeout = unschedulable_timeout
        self._hints = hints

        self._pods: dict[str, _PodState] = {}
        self._counts: dict[_Where, int] = dict.fromkeys(_Where, 0)
        self._active: list[tuple[tuple[float, str], int, str]] = []
        self._backoff: list[tuple[float, int, str]] = []
        # Unschedulable pods by the time their timeout flushes them.
        self._unschedulable: list[tuple[float, int, str]] = []
        self._seq = itertools.count()

        self._cycle = 0
        # The cycle in which the latest move_all happened; pods popped in or before it
        # were in flight during the move. -1: never.
        self._move_request_cycle = -1
        self._closed = False
        # pop() calls blocked on an empty active queue, woken one per activated pod.
        self._poppers = Waiters()

        self._running = False
        self._timer_wakeup = asyncio.Event()
        # What run() sleeps until (inf: no deadline); None while it is not sleeping, i.e.
        # not running or about to re-plan anyway. A new deadline only needs to interrupt
        # the sleep when it is earlier than this.
        self._timer_deadline: float | None = None

    # ------------------------------------------------------------------ informer side

    def add(self, key: str, order: tuple[float, str]) -> None:
        """A pending pod was seen: queue it as active unless it is already known.

        A pod already queued stays where it is (in particular an unschedulable pod is not
        retried just because a relist saw it again). A pod in flight is not queued twice;
        the add is remembered like an update (it may have changed) so a failing attempt
        retries it rather than parking it.
        """
        if self._closed:
            return
        st = self._pods.get(key)
        if st is None:
            st = _PodState(key=key, order=order, where=_Where.ACTIVE)
            self._pods[key] = st
            self._counts[_Where.ACTIVE] += 1
            self._push_active(st)
        elif st.where is _Where.IN_FLIGHT:
            self._note_in_flight_change(st, order)

    def update(self, key: str, order: tuple[float, str]) -> None:
        """A pending pod changed in a way that may make it fit: retry it soon.

        Call it for changes to what scheduling looks at (spec, labels), not for
        status-only writes, or unschedulable pods would be retried for nothing.
        An unschedulable pod moves to backoff (if its backoff has not expired) or active;
        a pod in active or backoff keeps its place (taking the new ``order``); an unknown
        pod is added.
        """
        if self._closed:
            return
        st = self._pods.get(key)
        if st is None:
            self.add(key, order)
            return
        if st.where is _Where.IN_FLIGHT:
            self._note_in_flight_change(st, order)
        elif st.where is _Where.UNSCHEDULABLE:
            st.order = order
            self._backoff_or_active(st)
        elif st.where is _Where.ACTIVE:
            if st.order != order:
                st.order = order
                self._push_active(st)  # the old heap entry becomes stale
        else:
            st.order = order  # backoff: the new order applies once it is active

    def delete(self, key: str) -> None:
        """The pod is gone, or was bound by someone else: drop it wherever it is.

        For a pod in flight the attempt's outcome (``done``/``requeue_*``) is ignored.
        """
        st = self._pods.get(key)
        if st is None:
            return
        if st.where is _Where.IN_FLIGHT:
            st.deleted = True
            st.readded = False
            return
        self._forget(st)

    # ------------------------------------------------------------------ scheduler side

    async def pop(self) -> QueuedPod:
        """Wait for the next active pod (lowest ``order``) and mark it in flight.

        Raises ``QueueClosed`` once ``close`` was called, even if pods are still queued:
        a stopping scheduler should not start new attempts.
        """
        while True:
            if self._closed:
                raise QueueClosed
            # Normally the timer task has already done this; doing it here too means an
            # expired deadline is honoured even if the timer has not run yet.
            self._flush_due()
            st = self._take_active()
            if st is not None:
                break
            await self._poppers.wait()
        self._cycle += 1
        self._move(st, _Where.IN_FLIGHT)
        st.cycle = self._cycle
        st.changed = st.deleted = st.readded = False
        return QueuedPod(key=st.key, order=st.order, attempts=st.attempts, cycle=st.cycle)

    def done(self, key: str) -> None:
        """The popped pod was bound or assumed: forget it (and its attempts)."""
        st = self._pods.get(key)
        if st is None or st.where is not _Where.IN_FLIGHT:
            return
        if st.readded and not self._closed:
            # Deleted and recreated during the attempt: the new pod still needs a node.
            self._restart_as_new(st)
        else:
            self._forget(st)

    def requeue_unschedulable(self, pod: QueuedPod, rejected_by: frozenset[str]) -> None:
        """The attempt found no node; ``rejected_by`` names the filters that said no.

        The pod waits in the unschedulable set for an event that ``helps`` it, unless the
        cluster (``move_all``) or the pod (``add``/``update``) changed while it was in
        flight: then that attempt saw stale state, so it only backs off.
        """
        st = self._settle_in_flight(pod)
        if st is None:
            return
        self._count_failure(st)
        if st.changed or self._move_request_cycle >= pod.cycle:
            self._backoff_or_active(st)
            return
        st.rejected_by = rejected_by
        self._move(st, _Where.UNSCHEDULABLE)
        deadline = self._clock.now() + self._unschedulable_timeout
        st.token = next(self._seq)
        heapq.heappush(self._unschedulable, (deadline, st.token, st.key))
        self._maybe_compact(self._unschedulable, _Where.UNSCHEDULABLE)
        self._timer_needed(deadline)

    def requeue_backoff(self, pod: QueuedPod) -> None:
        """The attempt failed for another reason (e.g. the bind failed): back off."""
        st = self._settle_in_flight(pod)
        if st is None:
            return
        self._count_failure(st)
        self._backoff_or_active(st)

    def move_all(self, event: str, helps: Callable[[frozenset[str]], bool] | None = None) -> int:
        """A cluster ``event`` may make unschedulable pods fit: retry those it helps.

        ``helps(rejected_by)`` decides per pod (all pods if ``None``); a predicate that
        raises counts as helping, since a needless retry is cheaper than a stuck pod.
        Moved pods go to backoff if their backoff has not expired, else to active. The
        move is recorded so that pods now in flight back off instead of parking.
        Returns how many pods moved.
        """
        if self._closed:
            return 0
        self._move_request_cycle = self._cycle
        candidates = [st for st in self._pods.values() if st.where is _Where.UNSCHEDULABLE]
        moved = 0
        for st in candidates:
            if helps is not None:
                try:
                    if not helps(st.rejected_by):
                        continue
                except Exception:
                    log.exception(
                        "scheduling queue: helps() failed for %s on %s; retrying it",
                        st.key,
                        event,
                    )
            self._backoff_or_active(st)
            moved += 1
        if moved:
            log.debug("scheduling queue: %s moved %d unschedulable pod(s)", event, moved)
        return moved

    def on_event(self, event: ClusterEvent, old: Any = None, new: Any = None) -> int:
        """A cluster ``event`` happened (``old`` -> ``new``): retry the unschedulable pods
        rejected by a plugin that it may help, per the events the plugins registered.

        A pod that no plugin rejected (there were no nodes) is retried by any event that
        helps some plugin, as in Kubernetes. An event that helps no plugin moves nothing
        and is not a move request. Returns how many pods moved.
        """
        if self._hints is None:
            return self.move_all(event.label)
        helped = self._hints.helped(event, old, new)
        if not helped:
            return 0
        return self.move_all(
            event.label, lambda rejected: not rejected or not rejected.isdisjoint(helped))

    def close(self) -> None:
        """Stop: blocked and future ``pop`` calls raise ``QueueClosed``; ``run`` returns."""
        self._closed = True
        self._timer_wakeup.set()
        self._poppers.wake_all()

    @property
    def hints(self) -> EventHints | None:
        """The events the plugins registered, which ``on_event`` consults."""
        return self._hints

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        """Pods waiting in active, backoff or unschedulable (not those in flight)."""
        c = self._counts
        return c[_Where.ACTIVE] + c[_Where.BACKOFF] + c[_Where.UNSCHEDULABLE]

    def pending(self) -> dict[str, int]:
        """How many pods wait where, for logs and tests."""
        return {
            "active": self._counts[_Where.ACTIVE],
            "backoff": self._counts[_Where.BACKOFF],
            "unschedulable": self._counts[_Where.UNSCHEDULABLE],
        }

    # ------------------------------------------------------------------ placement

    def _move(self, st: _PodState, where: _Where) -> None:
        self._counts[st.where] -= 1
        self._counts[where] += 1
        st.where = where

    def _forget(self, st: _PodState) -> None:
        self._counts[st.where] -= 1
        del self._pods[st.key]
        # Its heap entries, if any, are stale now: a later pod under the same key gets
        # a new state with a new token.

    def _push_active(self, st: _PodState) -> None:
        st.token = next(self._seq)
        heapq.heappush(self._active, (st.order, st.token, st.key))
        self._maybe_compact(self._active, _Where.ACTIVE)
        self._poppers.wake_one()

    def _to_active(self, st: _PodState) -> None:
        self._move(st, _Where.ACTIVE)
        self._push_active(st)

    def _backoff_or_active(self, st: _PodState) -> None:
        """Retry ``st`` as soon as its backoff allows."""
        if st.backoff_expiry <= self._clock.now():
            self._to_active(st)
            return
        self._move(st, _Where.BACKOFF)
        st.token = next(self._seq)
        heapq.heappush(self._backoff, (st.backoff_expiry, st.token, st.key))
        self._maybe_compact(self._backoff, _Where.BACKOFF)
        self._timer_needed(st.backoff_expiry)

    def _take_active(self) -> _PodState | None:
        while self._active:
            _, token, key = heapq.heappop(self._active)
            st = self._live(key, token, _Where.ACTIVE)
            if st is not None:
                return st
        return None

    def _live(self, key: str, token: int, where: _Where) -> _PodState | None:
        """The pod a heap entry refers to, or None if the entry is stale."""
        st = self._pods.get(key)
        if st is None or st.where is not where or st.token != token:
            return None
        return st

    def _maybe_compact(self, heap: list[tuple[Any, int, str]], where: _Where) -> None:
        if len(heap) > 2 * self._counts[where] + _COMPACT_SLACK:
            heap[:] = [e for e in heap if self._live(e[2], e[1], where) is not None]
            heapq.heapify(heap)

    # ------------------------------------------------------------------ in flight

    def _note_in_flight_change(self, st: _PodState, order: tuple[float, str]) -> None:
        st.order = order
        if st.deleted:
            # The old pod is gone and a new one arrived under its key; the attempt's
            # outcome belongs to the old pod and must not decide the new one's fate.
            st.deleted = False
            st.readded = True
        else:
            st.changed = True

    def _settle_in_flight(self, pod: QueuedPod) -> _PodState | None:
        """The in-flight state a requeue applies to, or None if it must be dropped."""
        st = self._pods.get(pod.key)
        # A cycle mismatch means a stale QueuedPod from an earlier pop of the same key.
        if st is None or st.where is not _Where.IN_FLIGHT or st.cycle != pod.cycle:
            return None
        if st.deleted or self._closed:
            self._forget(st)
            return None
        if st.readded:
            self._restart_as_new(st)
            return None
        return st

    def _restart_as_new(self, st: _PodState) -> None:
        st.attempts = 0
        st.backoff_expiry = 0.0
        st.rejected_by = frozenset()
        st.changed = st.deleted = st.readded = False
        self._to_active(st)

    def _count_failure(self, st: _PodState) -> None:
        st.attempts += 1
        st.backoff_expiry = self._clock.now() + self._backoff_duration(st.attempts)

    def _backoff_duration(self, attempts: int) -> float:
        return exponential_delay(attempts, self._initial_backoff, self._max_backoff)

    # ------------------------------------------------------------------ timers

    def _flush_due(self) -> None:
        """Activate expired backoffs; retry pods unschedulable for too long."""
        now = self._clock.now()
        while self._backoff and self._backoff[0][0] <= now:
            _, token, key = heapq.heappop(self._backoff)
            st = self._live(key, token, _Where.BACKOFF)
            if st is not None:
                self._to_active(st)
        while self._unschedulable and self._unschedulable[0][0] <= now:
            _, token, key = heapq.heappop(self._unschedulable)
            st = self._live(key, token, _Where.UNSCHEDULABLE)
            if st is not None:
                # Like move_all for this pod alone, but not a move request: nothing in
                # the cluster changed, so pods in flight have no reason to back off.
                self._backoff_or_active(st)

    def _next_deadline(self) -> float | None:
        """The earliest live timer deadline (dropping stale heap tops on the way)."""
        best = math.inf
        for heap, where in (
            (self._backoff, _Where.BACKOFF),
            (self._unschedulable, _Where.UNSCHEDULABLE),
        ):
            while heap and self._live(heap[0][2], heap[0][1], where) is None:
                heapq.heappop(heap)
            if heap:
                best = min(best, heap[0][0])
        return None if best == math.inf else best

    def _timer_needed(self, deadline: float) -> None:
        """A timed entry with ``deadline`` was queued: interrupt run() if it sleeps longer."""
        if self._timer_deadline is not None and deadline < self._timer_deadline:
            self._timer_wakeup.set()

    async def run(self) -> None:
        """Run the queue's timers until ``close``; start it as a task beside ``pop``.

        Moves pods whose backoff expired to active (waking ``pop``) and retries pods that
        stayed unschedulable for ``unschedulable_timeout``. One sleep covers all
        deadlines: until the earliest, or until an earlier one is queued.
        """
        if self._running:
            raise RuntimeError("SchedulingQueue.run() is already running")
        self._running = True
        try:
            while not self._closed:
                # Deadlines queued from here to the sleep are seen by _next_deadline.
                self._timer_deadline = None
                self._flush_due()
                deadline = self._next_deadline()
                self._timer_wakeup.clear()
                if deadline is None:
                    self._timer_deadline = math.inf
                    await self._timer_wakeup.wait()
                    continue
                self._timer_deadline = deadline
                await sleep_or_wake(self._clock, deadline - self._clock.now(),
                                    self._timer_wakeup)
        finally:
            self._timer_deadline = None
            self._running = False
