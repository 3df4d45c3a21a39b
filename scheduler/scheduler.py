"""The scheduler: pending pods in, bindings out.

One loop takes the next pod from the queue and decides (``Algorithm``, synchronous: the
cluster cannot change under a decision), books the pod on its node in the cache at once,
and hands the Bind call to a task, so the next decision does not wait for the apiserver.
A pod that fits nowhere gets condition PodScheduled=False (reason Unschedulable) and a
FailedScheduling event saying why, and waits in the queue until the cluster changes in a
way that can help it.

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
from scheduler.algorithm import Algorithm
from scheduler.cache import SchedulerCache, is_terminal
from scheduler.framework import FilterPlugin, PodInfo, ScorePlugin
from scheduler.queue import QueueClosed, QueuedPod, SchedulingQueue
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

# Which filters a change can turn from "no" into "yes": a pod rejected only by others
# stays where it is when that change happens.
_FREED_ROOM = frozenset({"NodeResourcesFit", "NodePorts"})


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
        self.queue = SchedulingQueue(clock=self.clock)
        default_filters, default_scores = plugins.default_plugins()
        self.algorithm = Algorithm(
            filters if filters is not None else default_filters,
            scores if scores is not None else default_scores,
            percentage_of_nodes_to_score=percentage_of_nodes_to_score)
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
            message = decision.explain()
            log.info("pod %s: unschedulable: %s", queued.key, message)
            self.queue.requeue_unschedulable(queued, decision.rejected_by)
            self._spawn(self._report_unschedulable(queued.key, message), queued.key)
            return
        self.cache.assume(info, decision.node)
        # Wait for a free bind slot here, not in the task: with every slot busy the
        # apiserver is the bottleneck, and deciding further ahead would only pile up.
        await self._bind_slots.acquire()
        self._spawn(self._bind(queued, info, decision.node), queued.key)

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
            self.queue.move_all("AssumedPodForgotten", lambda rejected: bool(
                rejected & _FREED_ROOM))
        else:
            self.bound += 1
            self.queue.done(info.key)
            self.recorder.event(info.pod, "Normal", "Scheduled",
                                f"Successfully assigned {info.key} to {node}")
        finally:
            self._bind_slots.release()

    async def _report_unschedulable(self, key: str, message: str) -> None:
        pod = self.pods.store.get(key)
        if pod is None or not self._wants(pod):
            return
        self.recorder.event(pod, "Warning", "FailedScheduling", message)
        current = next((c for c in pod.status.conditions if c.type == "PodScheduled"), None)
        if (current is not None and current.status == "False"
                and current.reason == "Unschedulable" and current.message == message):
            return
        updated = core_pb2.Pod()
        updated.CopyFrom(pod)
        condition = next((c for c in updated.status.conditions if c.type == "PodScheduled"),
                         None)
        if condition is None:
            condition = updated.status.conditions.add(type="PodScheduled")
        if condition.status != "False" or not condition.HasField("last_transition_time"):
            condition.last_transition_time.FromDatetime(self.clock.wall())
        condition.status, condition.reason, condition.message = "False", "Unschedulable", message
        if not updated.status.phase:
            updated.status.phase = "Pending"
        # A conflict or a vanished pod is fine: the next attempt reports afresh.
        with contextlib.suppress(errors.Conflict, errors.NotFound, errors.Unavailable):
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
                self._room_freed("AssignedPodFinished")
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
            self._room_freed("AssignedPodDeleted")

    def _room_freed(self, event: str) -> None:
        self.queue.move_all(event, lambda rejected: bool(rejected & _FREED_ROOM))

    # ---- nodes ----

    def _node_added(self, node: core_pb2.Node) -> None:
        self.cache.set_node(node)
        self.queue.move_all("NodeAdd")

    def _node_updated(self, old: core_pb2.Node, new: core_pb2.Node) -> None:
        self.cache.set_node(new)
        helped = _node_change_helps(old, new)
        if helped:
            self.queue.move_all("NodeUpdate", lambda rejected: bool(rejected & helped))

    def _node_deleted(self, node: core_pb2.Node) -> None:
        self.cache.remove_node(node.metadata.name)


def _node_change_helps(old: core_pb2.Node, new: core_pb2.Node) -> frozenset[str]:
    """The filters that may accept a pod on `new` that they rejected on `old`. A status
    heartbeat changes nothing here, so it moves no pod."""
    helped = set()
    if (old.status.allocatable != new.status.allocatable
            or old.status.capacity != new.status.capacity):
        helped.add("NodeResourcesFit")
    if old.metadata.labels != new.metadata.labels:
        helped.add("NodeAffinity")
    if list(old.spec.taints) != list(new.spec.taints):
        helped.update(("TaintToleration", "NodeUnschedulable", "NodeReady"))
    if old.spec.unschedulable != new.spec.unschedulable:
        helped.add("NodeUnschedulable")
    if _ready(old) != _ready(new):
        helped.add("NodeReady")
    return frozenset(helped)


def _ready(node: core_pb2.Node) -> str:
    return next((c.status for c in node.status.conditions if c.type == "Ready"), "")
