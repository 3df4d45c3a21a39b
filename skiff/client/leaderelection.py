"""Leader election through a Lease object, with client-go's rules.

Candidates share one Lease (coordination.k8s.io/v1, by default in ``kube-system``):

* A candidate takes the lease when it is absent, released (no holder), held by itself,
  or expired. Expiry is judged by the *candidate's own clock*: it remembers when it last
  saw the lease record change, and the lease is expired once ``leaseDurationSeconds``
  have passed since then without a change. The holder's timestamps are never compared
  with the candidate's clock, so skewed clocks cannot make two leaders.
* Every write carries the resourceVersion that was read: two candidates racing for an
  expired lease cannot both win, the loser gets a Conflict and simply tries again later.
* The leader renews every ``retry_period``. If it has not managed to renew for
  ``renew_deadline`` seconds, it stops leading: its work is cancelled, before the lease
  can expire for the others (``renew_deadline < lease_duration``).
* A change of holder increments ``leaseTransitions`` and sets ``acquireTime``.
* On a graceful stop (cancellation) the leader releases the lease by clearing the holder,
  so a standby takes over at its next retry instead of after a full lease duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from skiff.api.v1 import coordination_pb2
from skiff.client import errors
from skiff.client.client import Client
from skiff.client.clock import Clock, RealClock

__all__ = ["LeaderElector"]

log = logging.getLogger(__name__)

R = TypeVar("R")
Lease = coordination_pb2.Lease

# Sleeps between attempts are stretched by up to this fraction, so that candidates
# started together do not keep colliding.
_JITTER = 0.2
_RELEASE_TIMEOUT = 5.0


class LeaderElector:
    def __init__(self, client: Client, lease_name: str, identity: str,
                 namespace: str = "kube-system", lease_duration: float = 15.0,
                 renew_deadline: float = 10.0, retry_period: float = 2.0,
                 clock: Clock | None = None, *, release_on_cancel: bool = True) -> None:
        if not identity:
            raise ValueError("leader election needs a non-empty identity")
        if not 0 < retry_period < renew_deadline < lease_duration:
            raise ValueError("need 0 < retry_period < renew_deadline < lease_duration "
                             f"(got {retry_period}, {renew_deadline}, {lease_duration})")
        self.client = client
        self.lease_name = lease_name
        self.identity = identity
        self.namespace = namespace
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.release_on_cancel = release_on_cancel
        self._clock: Clock = clock if clock is not None else RealClock()
        # The last lease we read or wrote, and when (by our clock) its record last
        # changed: the observed-time rule.
        self._observed: Lease | None = None
        self._observed_spec = b""
        self._observed_time = 0.0
        self._leading = False

    # ---- state ----

    def is_leader(self) -> bool:
        """True while this candidate holds the lease and its work runs."""
        return self._leading

    def leader(self) -> str:
        """The holder identity last observed ("" if none or not yet read)."""
        if self._observed is None:
            return ""
        return self._observed.spec.holder_identity

    # ---- the loop ----

    async def run(self, on_started_leading: Callable[[], Awaitable[None]],
                  on_stopped_leading: Callable[[], None] | None = None) -> None:
        """Waits to become leader, then runs `on_started_leading()` as a task while
        renewing the lease. Returns when leadership is lost (after cancelling the work)
        or the work returns; re-raises if the work raises. Cancelling `run` cancels the
        work and, if `release_on_cancel`, releases the lease.

        `on_stopped_leading` is called once the work has stopped, if it ever started.
        Callers usually exit the process when `run` returns: a lost leader cannot know
        what its successor has already done.
        """
        try:
            await self._acquire()
        except asyncio.CancelledError:
            # A write in flight when we were cancelled may have made us the holder.
            if self.release_on_cancel:
                await _to_the_end(self._release(reread=True))
            raise
        self._leading = True
        log.info("%s: became leader of lease %s/%s", self.identity, self.namespace,
                 self.lease_name)
        work = asyncio.ensure_future(on_started_leading())
        renew = asyncio.ensure_future(self._renew_until_lost())
        lost = False
        try:
            await asyncio.wait({work, renew}, return_when=asyncio.FIRST_COMPLETED)
            lost = renew.done()
        finally:
            # Stop the leader's work first: it must not act once we may have lost.
            for task in (work, renew):
                task.cancel()
            interrupted = await _to_the_end(asyncio.gather(work, renew, return_exceptions=True))
            self._leading = False
            if lost:
                log.warning("%s: lost lease %s/%s (not renewed within %.1fs)",
                            self.identity, self.namespace, self.lease_name,
                            self.renew_deadline)
            if not lost and self.release_on_cancel:
                # Graceful end (cancelled, or the work finished): hand over at once.
                interrupted |= await _to_the_end(self._release())
            if on_stopped_leading is not None:
                try:
                    on_stopped_leading()
                except Exception:
                    log.exception("%s: on_stopped_leading failed", self.identity)
            if interrupted:
                raise asyncio.CancelledError
        failure = None if work.cancelled() else work.exception()
        if failure is not None:
            raise failure

    async def lead_forever(self, work: Callable[[], Awaitable[None]]) -> None:
        """Campaigns, runs `work()` while leading, and campaigns again whenever leadership
        is lost, until cancelled. Each term calls `work()` afresh, so a leader that lost
        the lease starts its next term from new state rather than from what it knew then
        (its successor may have changed everything since)."""
        while True:
            log.info("%s: waiting to lead %s/%s", self.identity, self.namespace,
                     self.lease_name)
            await self.run(work)

    async def _acquire(self) -> None:
        while True:
            if await self._try(self._try_acquire_or_renew()):
                return
            await self._sleep_retry()

    async def _renew_until_lost(self) -> None:
        """Renews every retry_period; returns once renewals have failed for longer than
        renew_deadline."""
        last_renewed = self._clock.now()
        while True:
            await self._sleep_retry()
            started = self._clock.now()
            remaining = last_renewed + self.renew_deadline - started
            if remaining <= 0:
                return
            if await self._with_deadline(self._try(self._try_acquire_or_renew()), remaining):
                # Measured from before the request: the lease's real renewal time is
                # no earlier than that.
                last_renewed = started
            elif self._clock.now() - last_renewed >= self.renew_deadline:
                return

    async def _sleep_retry(self) -> None:
        await self._clock.sleep(self.retry_period * (1 + _JITTER * random.random()))

    async def _with_deadline(self, aw: Awaitable[bool], seconds: float) -> bool:
        """`aw`'s result, or False if it takes longer than `seconds` (by our clock, so
        that tests with a fake clock stay deterministic)."""
        task = asyncio.ensure_future(aw)
        timer = asyncio.ensure_future(self._clock.sleep(seconds))
        try:
            await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            if not task.done():
                task.cancel()
            await asyncio.gather(task, timer, return_exceptions=True)
        if task.cancelled() or task.exception() is not None:
            return False
        return task.result()

    async def _try(self, aw: Awaitable[bool]) -> bool:
        try:
            return await aw
        except errors.ApiError as err:
            log.warning("%s: lease %s/%s: %s", self.identity, self.namespace,
                        self.lease_name, err.message)
            return False

    # ---- one attempt ----

    def _observe(self, lease: Lease) -> None:
        spec = lease.spec.SerializeToString(deterministic=True)
        if spec != self._observed_spec:
            self._observed_spec = spec
            self._observed_time = self._clock.now()
        self._observed = lease

    def _stamp(self, lease: Lease, acquired: bool) -> None:
        now: datetime = self._clock.wall()
        spec = lease.spec
        spec.holder_identity = self.identity
        # Whole seconds on the wire; rounding up only makes the others wait longer.
        spec.lease_duration_seconds = math.ceil(self.lease_duration)
        spec.renew_time.FromDatetime(now)
        if acquired:
            spec.acquire_time.FromDatetime(now)

    async def _try_acquire_or_renew(self) -> bool:
        # Fast path: while leading, renew from the lease we last wrote, without a read.
        # A Conflict means someone else wrote it: fall through to a full read.
        if self._leading and self._observed is not None:
            lease = Lease()
            lease.CopyFrom(self._observed)
            self._stamp(lease, acquired=False)
            try:
                written = await self.client.update(lease)
                self._observe(written)
                return True
            except errors.Conflict:
                pass
            except errors.ApiError as err:
                log.warning("%s: renewing lease %s/%s failed: %s", self.identity,
                            self.namespace, self.lease_name, err.message)
                return False

        try:
            current = await self.client.get(Lease, self.lease_name, self.namespace)
        except errors.NotFound:
            lease = Lease()
            lease.metadata.name = self.lease_name
            lease.metadata.namespace = self.namespace
            lease.spec.lease_transitions = 0
            self._stamp(lease, acquired=True)
            try:
                created = await self.client.create(lease)
            except (errors.AlreadyExists, errors.Conflict):
                return False  # another candidate created it first
            self._observe(created)
            return True

        self._observe(current)
        spec = current.spec
        holder = spec.holder_identity
        mine = holder == self.identity
        duration = spec.lease_duration_seconds or self.lease_duration
        if holder and not mine and self._observed_time + duration > self._clock.now():
            return False  # held by someone else, and they renewed recently (to our eyes)

        lease = Lease()
        lease.CopyFrom(current)
        if not mine:
            lease.spec.lease_transitions = spec.lease_transitions + 1
        self._stamp(lease, acquired=not mine)
        try:
            # `current` carries its resourceVersion: the write fails if anyone wrote since.
            written = await self.client.update(lease)
        except errors.Conflict:
            return False
        if not mine:
            log.info("%s: took lease %s/%s from %r", self.identity, self.namespace,
                     self.lease_name, holder or "(nobody)")
        self._observe(written)
        return True

    async def _release(self, *, reread: bool = False) -> None:
        """Clears the holder, if we still hold the lease as last observed. With `reread`,
        reads it first: a write cancelled in flight may have made us the holder without
        our seeing its reply."""
        if reread:
            with contextlib.suppress(errors.ApiError, TimeoutError):
                self._observe(await asyncio.wait_for(
                    self.client.get(Lease, self.lease_name, self.namespace), _RELEASE_TIMEOUT))
        if self._observed is None or self._observed.spec.holder_identity != self.identity:
            return
        lease = Lease()
        lease.CopyFrom(self._observed)
        now = self._clock.wall()
        lease.spec.holder_identity = ""
        # As client-go: a 1 s duration and fresh times, so even a candidate that misses
        # the empty holder treats it as expiring almost at once.
        lease.spec.lease_duration_seconds = 1
        lease.spec.renew_time.FromDatetime(now)
        lease.spec.acquire_time.FromDatetime(now)
        try:
            written = await asyncio.wait_for(self.client.update(lease), _RELEASE_TIMEOUT)
        except (errors.ApiError, TimeoutError) as err:
            log.warning("%s: could not release lease %s/%s: %s", self.identity,
                        self.namespace, self.lease_name, err)
            return
        self._observe(written)
        log.info("%s: released lease %s/%s", self.identity, self.namespace, self.lease_name)


async def _to_the_end(aw: Awaitable[object]) -> bool:
    """Awaits `aw` to its end even if cancelled meanwhile (what is awaited here is bounded:
    a release has its own timeout, cancelled tasks end promptly), so that whoever
    cancelled us finds the work stopped and the lease released. Returns whether a
    cancellation arrived, for the caller to re-raise; an error is logged."""
    future = asyncio.ensure_future(aw)
    interrupted = False
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            interrupted = True
        except Exception:
            log.exception("leader election: clean-up failed")
    return interrupted
