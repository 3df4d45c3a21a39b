"""The ReplicaSet controller: keeps `spec.replicas` pods of a template running.

Kubernetes' semantics (pkg/controller/replicaset): a sync claims the active pods of the
set's namespace that its selector matches (adopting orphans, releasing pods that no
longer match), then creates the missing pods in slow-start batches or deletes the
surplus, the pods it costs least to lose first, at most 500 either way per sync. What it
asked for is recorded as expectations before asking, and ticked off by the pod handlers,
so a sync that runs before the informer caught up with its own writes makes nothing
twice. Status (replicas, fullyLabeledReplicas, readyReplicas, availableReplicas,
observedGeneration and the ReplicaFailure condition) is written on every sync that
changes it, even while expectations are pending.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from controllers.common.claim import claim
from controllers.common.context import ControllerContext
from controllers.common.expectations import Expectations
from controllers.common.podcontrol import PodControl
from controllers.common.podowners import PodOwnerEvents, usable_selector
from controllers.common.replicas import deletion_order, is_available
from skiff.api.pods import condition, is_active, is_ready
from skiff.api.v1 import apps_pb2, core_pb2, meta_pb2
from skiff.client import errors
from skiff.client.controller import Controller
from skiff.client.informer import INDEX_NAMESPACE, object_key

__all__ = [
    "BURST_REPLICAS",
    "REPLICA_FAILURE",
    "ReplicaSetController",
    "calculate_status",
    "is_fully_labeled",
    "pods_to_delete",
    "seconds_until_available",
]

log = logging.getLogger(__name__)

# Kubernetes' burstReplicas: the most pods one sync creates or deletes, so one huge
# scale does not monopolise a worker or flood the apiserver; the next sync does the rest.
BURST_REPLICAS = 500

REPLICA_FAILURE = "ReplicaFailure"

# Looked at again this much after a pod should have become available, so that the
# recheck never lands a hair before the boundary and finds it still unavailable.
_AVAILABILITY_SLACK = 0.1


class ReplicaSetController(Controller):
    """Reconciles every ReplicaSet with the pods it owns (see the module docstring)."""

    def __init__(self, ctx: ControllerContext, *, workers: int = 5) -> None:
        self.client = ctx.client
        self.clock = ctx.clock
        self.replica_sets = ctx.factory.informer(apps_pb2.ReplicaSet)
        self.pods = ctx.factory.informer(core_pb2.Pod)
        super().__init__("replicaset", informers=[self.replica_sets, self.pods],
                         workers=workers, clock=ctx.clock)
        self.recorder = ctx.recorder("replicaset-controller")
        self.pod_control = PodControl(ctx.client, self.recorder, clock=ctx.clock)
        self.expectations = Expectations(ctx.clock)

        self.enqueue_from(self.replica_sets)
        self.pod_events = PodOwnerEvents(self, self.replica_sets, self.pods, self.expectations)

    # ---- sync ----

    async def sync(self, key: str) -> None:
        rs = self.replica_sets.store.get(key)
        if rs is None:
            self.expectations.forget(key)
            return
        selector = usable_selector(rs)
        if selector is None:
            log.warning("replicaset %s: invalid or empty selector; not syncing", key)
            return
        # Read before listing: if they are met now, the list below holds every pod
        # this controller made or deleted, so counting it cannot double anything.
        expectations_met = self.expectations.satisfied(key)
        candidates = [pod for pod in self.pods.store.by_index(INDEX_NAMESPACE,
                                                                rs.metadata.namespace)
                      if is_active(pod)]
        owned = await claim(self.client, rs, selector, candidates)

        manage_error: BaseException | None = None
        if expectations_met and not rs.metadata.HasField("deletion_timestamp"):
            manage_error = await self._manage_replicas(key, rs, owned)

        now = self.clock.wall()
        status = calculate_status(rs, owned, manage_error, now)
        if status != rs.status:
            updated = apps_pb2.ReplicaSet()
            updated.CopyFrom(rs)
            updated.status.CopyFrom(status)
            await self.client.update_status(updated)

        wait = seconds_until_available(rs, owned, now)
        if wait is not None:
            self.enqueue_after(key, wait)
        if manage_error is not None:
            raise manage_error

    async def _manage_replicas(self, key: str, rs: apps_pb2.ReplicaSet,
                               owned: Sequence[core_pb2.Pod]) -> BaseException | None:
        """Creates or deletes pods towards spec.replicas; returns the first failure."""
        desired = desired_replicas(rs)
        diff = len(owned) - desired
        if diff < 0:
            count = min(-diff, BURST_REPLICAS)
            log.info("replicaset %s: too few replicas (need %d, have %d): creating %d",
                     key, desired, len(owned), count)
            return await self._create_pods(key, rs, count)
        if diff > 0:
            victims = pods_to_delete(owned, diff)
            log.info("replicaset %s: too many replicas (need %d, have %d): deleting %d",
                     key, desired, len(owned), len(victims))
            return await self._delete_pods(key, rs, victims)
        return None

    async def _create_pods(self, key: str, rs: apps_pb2.ReplicaSet, count: int
                           ) -> BaseException | None:
        self.expectations.expect(key, creations=count)
        pods = [self.pod_control.pod_from_template(rs, rs.spec.template) for _ in range(count)]
        return await self.pod_control.create_all(rs, pods, self.expectations, key)

    async def _delete_pods(self, key: str, rs: apps_pb2.ReplicaSet,
                           victims: Sequence[core_pb2.Pod]) -> BaseException | None:
        self.expectations.expect(key, deletions=[object_key(pod) for pod in victims])
        return await self.pod_control.delete_all(rs, victims, self.expectations, key)


# --------------------------------------------------------------------------- pure logic


def desired_replicas(rs: apps_pb2.ReplicaSet) -> int:
    """spec.replicas; 1 when unset (the apiserver defaults it, but a set read from
    elsewhere may lack it)."""
    return rs.spec.replicas if rs.spec.HasField("replicas") else 1


def pods_to_delete(pods: Iterable[core_pb2.Pod], count: int) -> list[core_pb2.Pod]:
    """The `count` (at most BURST_REPLICAS) pods whose loss hurts least, in
    Kubernetes' order: unscheduled, pending, not ready, recently ready, restarting,
    newest."""
    return sorted(pods, key=deletion_order)[:min(count, BURST_REPLICAS)]


def is_fully_labeled(pod: core_pb2.Pod, template_labels: Mapping[str, str]) -> bool:
    """Whether the pod carries every label of the template, with the template's value
    (a pod adopted by selector may carry only some of them)."""
    labels = pod.metadata.labels
    return all(k in labels and labels[k] == v for k, v in template_labels.items())


def calculate_status(rs: apps_pb2.ReplicaSet, pods: Sequence[core_pb2.Pod],
                     manage_error: BaseException | None, now: datetime
                     ) -> apps_pb2.ReplicaSetStatus:
    """The status `rs` should have, given the active pods it owns and how the last
    attempt to create or delete went."""
    status = apps_pb2.ReplicaSetStatus()
    status.CopyFrom(rs.status)
    min_ready = rs.spec.min_ready_seconds
    template_labels = rs.spec.template.metadata.labels
    status.replicas = len(pods)
    status.fully_labeled_replicas = sum(1 for p in pods if is_fully_labeled(p, template_labels))
    status.ready_replicas = sum(1 for p in pods if is_ready(p))
    status.available_replicas = sum(1 for p in pods if is_available(p, min_ready, now))
    status.observed_generation = rs.metadata.generation

    failure = next((c for c in status.conditions if c.type == REPLICA_FAILURE), None)
    if manage_error is not None and failure is None:
        diff = len(pods) - desired_replicas(rs)
        reason = "FailedCreate" if diff < 0 else "FailedDelete" if diff > 0 else ""
        transition = Timestamp()
        transition.FromDatetime(now)
        status.conditions.append(meta_pb2.Condition(
            type=REPLICA_FAILURE, status="True", reason=reason,
            message=_error_message(manage_error), last_transition_time=transition))
    elif manage_error is None and failure is not None:
        kept = [c for c in status.conditions if c.type != REPLICA_FAILURE]
        del status.conditions[:]
        status.conditions.extend(kept)
    return status


def seconds_until_available(rs: apps_pb2.ReplicaSet, pods: Iterable[core_pb2.Pod],
                            now: datetime) -> float | None:
    """How long until the first ready-but-not-yet-available pod becomes available (plus
    a little slack); None if there is nothing to wait for. No event marks that moment,
    so the controller has to come back by itself for availableReplicas to move."""
    min_ready = rs.spec.min_ready_seconds
    if min_ready <= 0:
        return None
    waits: list[float] = []
    for pod in pods:
        ready = condition(pod, "Ready")
        if (ready is None or ready.status != "True"
                or not ready.HasField("last_transition_time")
                or is_available(pod, min_ready, now)):
            continue
        since = ready.last_transition_time.ToDatetime(tzinfo=UTC)
        waits.append((since + timedelta(seconds=min_ready) - now).total_seconds())
    if not waits:
        return None
    return max(0.0, min(waits)) + _AVAILABILITY_SLACK


def _error_message(error: BaseException) -> str:
    return error.message if isinstance(error, errors.ApiError) else str(error)
