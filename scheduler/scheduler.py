"""The scheduler: pending pods in, bindings out.

One loop takes the next pod from the queue and decides (``Algorithm``, synchronous: the
cluster cannot change under a decision), books the pod on its node in the cache at once,
and hands the Bind call to a task, so the next decision does not wait for the apiserver.
A pod that fits nowhere gets condition PodScheduled=False (reason Unschedulable) and a
FailedScheduling event saying why, and waits in the queue until the cluster changes in a
way that can help it: each informer event becomes a ``ClusterEvent`` that the queue
offers to the plugins that rejected the pod (``scheduler.events``). A filter that fails
(Error) gets the pod PodScheduled=False with reason SchedulerError, and a retry after a
back-off.

Everything the scheduler knows comes from two informers (pods and nodes); it writes only
bindings, pod status conditions and events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Coroutine, Sequence
from typing import Any

from scheduler import plugins
from scheduler.algorithm import Algorithm, Decision
from scheduler.cache import SchedulerCache
from scheduler.events import (
    ASSIGNED_POD_DELETE,
    ASSIGNED_POD_FINISHED,
    ASSUMED_POD_FORGOTTEN,
    NODE_ADD,
    EventHints,
    node_update_event,
)
from scheduler.framework import FilterPlugin, PodInfo, ScorePlugin
from scheduler.queue import QueueClosed, QueuedPod, SchedulingQueue
from skiff.api.conditions import set_condition
from skiff.api.pods import PENDING, is_terminal
from skiff.api.v1 import core_pb2
from skiff.client import errors
from skiff.client.client import Client
from skiff.client.clock import Clock, RealClock
from skiff.client.events import EventRecorder, Recorder
from skiff.client.informer import SharedInformerFactory, object_key

__all__ = ["DEFAULT_SCHEDULER_NAME", "Scheduler"]

log = logging.getLogger(__name__)

DEFAULT_SCHEDULER_NAME = "default-scheduler"
BIND_CONCURRENCY = 64

# PodScheduled=False reasons, as Kubernetes' PodReasonUnschedulable and
# PodReasonSchedulerError.
REASON_UNSCHEDULABLE = "Unschedulable"
REASON_SCHEDULER_ERROR = "SchedulerError"


class Scheduler:
    def __init__(self, client: Client, *, name: str = DEFAULT_SCHEDULER_NAME,
                 filters: Sequence[FilterPlugin] | None = None,
                 scores: Sequence[ScorePlugin] | None = None,
                 percentage_of_nodes_to_score: int = 0,
                 bind_concurrency: int = BIND_CONCURRENCY,
                 recorder: Recorder | None = None, clock: Clock | None = None) -> None:
        self.client = client
        self.name = name
        self.clock: Clock = clock if clock is not None else RealClock()
        self.factory = SharedInformerFactory(client)
        self.pods = self.factory.informer(core_pb2.Pod)
        self.nodes = self.factory.informer(core_pb2.Node)
        self.cache = SchedulerCache()
        default_filters, default_scores = plugins.default_plugins()
        self.algorithm = Algorithm(
            filters if filters is not None else default_filters,
            scores if scores is not None else default_scores,
            percentage_of_nodes_to_score=percentage_of_nodes_to_score)
        self.queue = SchedulingQueue(clock=self.clock,
                                     hints=EventHints(self.algorithm.filters))
        self._own_recorder = recorder is None
        self.recorder: Recorder = (recorder if recorder is not None
                                   else EventRecorder(client, name))
        self._bind_slots = asyncio.Semaphore(bind_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        # Seconds per decision (filter + score), the most recent ones: for the periodic log
        # line and for benchmarks.
        self.decision_seconds: deque[float] = deque(maxlen=100_000)
        self.decisions = 0
        self.bound = 0
        self.pods.add_handlers(self._pod_added, self._pod_updated, self._pod_deleted)
        self.nodes.add_handlers(self._node_added, self._node_updated, self._node_deleted)

    # ---- running ----

    async def run(self) -> None:
        """Schedules until cancelled."""
        self.factory.start_all()
        queue_timers = asyncio.create_task(self.queue.run(), name="scheduling-queue")
        try:
            await self.factory.wait_for_sync()
            log.info("scheduler %s: caches synced: %d nodes, %d pods booked, %d pending",
                     self.name, len(self.cache.candidates()), len(self.cache), len(self.queue))
            while True:
                try:
                    queued = await self.queue.pop()
                except QueueClosed:
                    return
                await self._schedule_one(queued)
        finally:
            self.queue.close()
            queue_timers.cancel()
            tasks = [*self._tasks, queue_timers]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.factory.stop_all()
            if self._own_recorder and isinstance(self.recorder, EventRecorder):
                await self.recorder.close()

    async def _schedule_one(self, queued: QueuedPod) -> None:
        pod = self.pods.store.get(queued.key)
        if pod is None or not self._wants(pod):
            self.queue.done(queued.key)
            return
        info = PodInfo(pod)
        started = time.perf_counter()
        decision = self.algorithm.schedule(info, self.cache.candidates())
        self.decision_seconds.append(time.perf_counter() - started)
        self.decisions += 1
        if decision.node is None:
            self._not_scheduled(queued, decision)
            return
        self.cache.assume(info, decision.node)
        # Wait for a free bind slot here, not in the task: with every slot busy the
        # apiserver is the bottleneck, and deciding further ahead would only pile up.
        await self._bind_slots.acquire()
        self._spawn(self._bind(queued, info, decision.node), queued.key)

    def _not_scheduled(self, queued: QueuedPod, decision: Decision) -> None:
        if decision.error is not None:
            message = decision.error.message()
            log.warning("pod %s: scheduling failed: %s", queued.key, message)
            self.queue.requeue_backoff(queued)
            reason = REASON_SCHEDULER_ERROR
        else:
            message = decision.explain()
            log.info("pod %s: unschedulable (%d of %d nodes unresolvable): %s", queued.key,
                     decision.unresolvable, decision.nodes, message)
            self.queue.requeue_unschedulable(queued, decision.rejected_by)
            reason = REASON_UNSCHEDULABLE
        self._spawn(self._report_not_scheduled(queued.key, reason, message), queued.key)

    def _spawn(self, coro: Coroutine[Any, Any, None], key: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"scheduler-{key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- writing ----

    async def _bind(self, queued: QueuedPod, info: PodInfo, node: str) -> None:
        namespace, name = info.namespace, info.pod.metadata.name
        try:
            await self.client.bind(namespace, name, node, info.uid)
        except (errors.NotFound, errors.FailedPrecondition) as err:
            # Deleted, being deleted, or bound by someone else meanwhile: nothing to retry;
            # the informer brings whatever is true now.
            log.info("pod %s: not bound to %s: %s", info.key, node, err.message)
            self.cache.forget(info.key)
            self.queue.done(info.key)
        except Exception as err:
            message = err.message if isinstance(err, errors.ApiError) else repr(err)
            log.warning("pod %s: binding to %s failed: %s", info.key, node, message)
            self.cache.forget(info.key)
            self.queue.requeue_backoff(queued)
            self.recorder.event(info.pod, "Warning", "FailedScheduling",
                                f"Binding rejected: {message}")
            # The room it held is free again.
            self.queue.on_event(ASSUMED_POD_FORGOTTEN, info.pod, None)
        else:
            self.bound += 1
            self.queue.done(info.key)
            self.recorder.event(info.pod, "Normal", "Scheduled",
                                f"Successfully assigned {info.key} to {node}")
        finally:
            self._bind_slots.release()

    async def _report_not_scheduled(self, key: str, reason: str, message: str) -> None:
        pod = self.pods.store.get(key)
        if pod is None or not self._wants(pod):
            return
        self.recorder.event(pod, "Warning", "FailedScheduling", message)
        updated = core_pb2.Pod()
        updated.CopyFrom(pod)
        _, changed = set_condition(updated.status.conditions, "PodScheduled", "False",
                                   self.clock.wall(), reason=reason, message=message)
        if not changed:
            return
        if not updated.status.phase:
            updated.status.phase = PENDING
        # A conflict or a vanished pod is fine: the next attempt reports afresh.
        with contextlib.suppress(errors.Conflict, errors.NotFound, errors.Unavailable,
                                 errors.Timeout):
            await self.client.update_status(updated)

    # ---- pods ----

    def _wants(self, pod: core_pb2.Pod) -> bool:
        """A pod this scheduler should place: ours, unassigned, alive and not finished."""
        return (not pod.spec.node_name and pod.spec.scheduler_name == self.name
                and not pod.metadata.HasField("deletion_timestamp") and not is_terminal(pod))

    @staticmethod
    def _order(pod: core_pb2.Pod) -> tuple[float, str]:
        created = pod.metadata.creation_timestamp
        return (created.seconds + created.nanos / 1e9, object_key(pod))

    def _pod_added(self, pod: core_pb2.Pod) -> None:
        if pod.spec.node_name:
            self.cache.add_pod(pod)
        elif self._wants(pod):
            self.queue.add(object_key(pod), self._order(pod))

    def _pod_updated(self, old: core_pb2.Pod, new: core_pb2.Pod) -> None:
        key = object_key(new)
        if new.spec.node_name:
            self.queue.delete(key)
            self.cache.add_pod(new)
            if is_terminal(new) and not is_terminal(old):
                self.queue.on_event(ASSIGNED_POD_FINISHED, old, new)
        elif not self._wants(new):
            self.queue.delete(key)
        elif (old.spec != new.spec or old.metadata.labels != new.metadata.labels
              or old.metadata.annotations != new.metadata.annotations):
            # Only a change the user made can make it fit; our own status writes cannot.
            self.queue.update(key, self._order(new))

    def _pod_deleted(self, pod: core_pb2.Pod) -> None:
        key = object_key(pod)
        self.queue.delete(key)
        if self.cache.remove_pod(key) is not None:
            self.queue.on_event(ASSIGNED_POD_DELETE, pod, None)

    # ---- nodes ----

    def _node_added(self, node: core_pb2.Node) -> None:
        self.cache.set_node(node)
        self.queue.on_event(NODE_ADD, None, node)

    def _node_updated(self, old: core_pb2.Node, new: core_pb2.Node) -> None:
        self.cache.set_node(new)
        event = node_update_event(old, new)
        if event is not None:  # a status heartbeat is no event
            self.queue.on_event(event, old, new)

    def _node_deleted(self, node: core_pb2.Node) -> None:
        self.cache.remove_node(node.metadata.name)

