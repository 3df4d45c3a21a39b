"""The node lifecycle controller: notices nodes that stopped reporting, taints nodes by
their condition, and evicts the pods a NoExecute taint no longer lets stay.

Kubernetes' semantics (pkg/controller/nodelifecycle and its taint eviction controller):

* Health. A kubelet proves it is alive by renewing its Lease in ``kube-node-lease`` (every
  10 s) and by writing its Ready condition's heartbeat. The controller notes, on its own
  clock, when it last *saw* either change; when that is longer ago than the grace period
  (40 s; 60 s for a node that never posted a Ready condition), it sets Ready, and
  MemoryPressure/DiskPressure/PIDPressure where present, to Unknown (reason
  NodeStatusUnknown, "Kubelet stopped posting node status."). Clocks are never compared
  across machines: only the controller's own observation times count, as in leader
  election. A kubelet that comes back writes Ready=True itself.
* Taints. NoExecute: ``node.kubernetes.io/not-ready`` while Ready is False,
  ``node.kubernetes.io/unreachable`` while it is Unknown (mutually exclusive), neither when
  it is True. NoSchedule (Kubernetes' TaintNodesByCondition): not-ready/unreachable by the
  same rule, memory-, disk-, pid-pressure and network-unavailable while those conditions
  are True, unschedulable while ``spec.unschedulable``. Added taints carry ``timeAdded``.
* Pods on a node that is not Ready are marked not ready (their Ready condition False,
  with a NodeNotReady event), so Services stop sending them traffic.
* Eviction (Kubernetes' taint manager), for every NoExecute taint, whoever set it: a pod
  that does not tolerate one is deleted at once; a pod whose tolerations carry
  ``tolerationSeconds`` is deleted that long after the taint's ``timeAdded`` (the earliest
  such deadline counts); a pod that tolerates every such taint without a limit stays. The
  pod gets a DisruptionTarget condition and a TaintManagerEviction event first. Deletion
  is graceful, so on a dead node the pod stays Terminating until its kubelet returns or
  the node is deleted (then pod GC collects it), as in Kubernetes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from controllers.common.context import ControllerContext
from skiff.api import conditions
from skiff.api.pods import condition
from skiff.api.scheduling import (
    NO_EXECUTE,
    NO_SCHEDULE,
    TAINT_DISK_PRESSURE,
    TAINT_MEMORY_PRESSURE,
    TAINT_NETWORK_UNAVAILABLE,
    TAINT_NOT_READY,
    TAINT_PID_PRESSURE,
    TAINT_UNREACHABLE,
    TAINT_UNSCHEDULABLE,
    tolerates,
)
from skiff.api.v1 import coordination_pb2, core_pb2
from skiff.client import errors
from skiff.client.controller import Controller
from skiff.client.informer import INDEX_NODE_NAME, object_key

__all__ = [
    "LEASE_NAMESPACE",
    "NODE_MONITOR_GRACE_PERIOD",
    "NODE_STARTUP_GRACE_PERIOD",
    "NodeHealth",
    "NodeLifecycleController",
    "eviction_delay",
    "mark_unknown",
    "observe",
    "ready_status",
    "reconcile_taints",
]

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
NODE_MONITOR_GRACE_PERIOD = 40.0
NODE_STARTUP_GRACE_PERIOD = 60.0

READY = "Ready"
# The conditions a kubelet owns; NetworkUnavailable belongs to the network plugin.
_KUBELET_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")

# condition type -> status -> the NoSchedule taint it implies
_CONDITION_TAINTS: dict[str, dict[str, str]] = {
    "Ready": {"False": TAINT_NOT_READY, "Unknown": TAINT_UNREACHABLE},
    "MemoryPressure": {"True": TAINT_MEMORY_PRESSURE},
    "DiskPressure": {"True": TAINT_DISK_PRESSURE},
    "PIDPressure": {"True": TAINT_PID_PRESSURE},
    "NetworkUnavailable": {"True": TAINT_NETWORK_UNAVAILABLE},
}
_NO_SCHEDULE_KEYS = frozenset(
    {key for by_status in _CONDITION_TAINTS.values() for key in by_status.values()}
    | {TAINT_UNSCHEDULABLE})
_NO_EXECUTE_KEYS = frozenset({TAINT_NOT_READY, TAINT_UNREACHABLE})

# Looked at again this much after a deadline, so the recheck never lands a hair early.
_SLACK = 0.05


# --------------------------------------------------------------------------- health


@dataclass(frozen=True)
class NodeHealth:
    """What the controller last saw of a node's heartbeats, and when (its own clock)."""

    probe: float  # when a heartbeat was last seen to change
    ready_heartbeat: tuple[int, int] | None  # the Ready condition's lastHeartbeatTime
    lease_renew: tuple[int, int] | None  # the Lease's renewTime


def _ready(node: core_pb2.Node) -> core_pb2.NodeCondition | None:
    return conditions.find(node.status.conditions, READY)


def ready_status(node: core_pb2.Node) -> str:
    """The Ready condition's status ("True", "False", "Unknown"), "" if it has none."""
    cond = _ready(node)
    return cond.status if cond is not None else ""


def _stamp(ts: Timestamp) -> tuple[int, int]:
    return ts.seconds, ts.nanos


def observe(previous: NodeHealth | None, node: core_pb2.Node,
            lease: coordination_pb2.Lease | None, now: float) -> NodeHealth:
    """The health record after looking at `node` and its `lease` at `now`: the probe time
    moves to now when the Ready heartbeat changed or the Lease was renewed since last
    seen (or when the node is seen for the first time)."""
    ready = _ready(node)
    heartbeat = _stamp(ready.last_heartbeat_time) if ready is not None else None
    renew = (_stamp(lease.spec.renew_time)
             if lease is not None and lease.spec.HasField("renew_time") else None)
    if previous is None:
        return NodeHealth(now, heartbeat, renew)
    probe = previous.probe
    if heartbeat != previous.ready_heartbeat:
        probe = now
    newest_renew = previous.lease_renew
    if renew is not None and (newest_renew is None or renew > newest_renew):
        probe, newest_renew = now, renew
    return NodeHealth(probe, heartbeat, newest_renew)


def mark_unknown(node: core_pb2.Node, now: datetime) -> core_pb2.NodeStatus | None:
    """The status of a node whose kubelet stopped posting: Ready (and the pressure
    conditions it has) Unknown; None when that is already so."""
    status = core_pb2.NodeStatus()
    status.CopyFrom(node.status)
    changed = False
    if _ready(node) is None:
        added, _ = conditions.set_condition(status.conditions, READY, "Unknown", now,
                                            reason="NodeStatusNeverUpdated",
                                            message="Kubelet never posted node status.")
        added.last_heartbeat_time.CopyFrom(node.metadata.creation_timestamp)
        changed = True
    for type_ in _KUBELET_CONDITIONS:
        found = conditions.find(status.conditions, type_)
        if found is not None and found.status != "Unknown":
            conditions.set_condition(status.conditions, type_, "Unknown", now,
                                     reason="NodeStatusUnknown",
                                     message="Kubelet stopped posting node status.")
            changed = True
    return status if changed else None


# --------------------------------------------------------------------------- taints


def _desired_taints(node: core_pb2.Node) -> set[tuple[str, str]]:
    """(key, effect) of the taints the node's conditions and spec call for."""
    wanted: set[tuple[str, str]] = set()
    for cond in node.status.conditions:
        key = _CONDITION_TAINTS.get(cond.type, {}).get(cond.status)
        if key is not None:
            wanted.add((key, NO_SCHEDULE))
    if node.spec.unschedulable:
        wanted.add((TAINT_UNSCHEDULABLE, NO_SCHEDULE))
    ready = ready_status(node)
    if ready == "False":
        wanted.add((TAINT_NOT_READY, NO_EXECUTE))
    elif ready == "Unknown":
        wanted.add((TAINT_UNREACHABLE, NO_EXECUTE))
    return wanted


def _managed(taint: core_pb2.Taint) -> bool:
    return ((taint.effect == NO_SCHEDULE and taint.key in _NO_SCHEDULE_KEYS)
            or (taint.effect == NO_EXECUTE and taint.key in _NO_EXECUTE_KEYS))


def reconcile_taints(node: core_pb2.Node, now: datetime) -> list[core_pb2.Taint] | None:
    """The node's taints with the controller's own brought in line with its conditions
    (others' untouched, existing ones kept with their timeAdded); None if unchanged."""
    wanted = _desired_taints(node)
    kept = [t for t in node.spec.taints if not _managed(t) or (t.key, t.effect) in wanted]
    have = {(t.key, t.effect) for t in kept}
    added = []
    for key, effect in sorted(wanted - have):
        taint = core_pb2.Taint(key=key, effect=effect)
        taint.time_added.FromDatetime(now)
        added.append(taint)
    if not added and len(kept) == len(node.spec.taints):
        return None
    return kept + added


# --------------------------------------------------------------------------- eviction


def eviction_delay(tolerations: Sequence[core_pb2.Toleration],
                   taints: Iterable[core_pb2.Taint], now: datetime,
                   first_seen: dict[tuple[str, str, str], datetime] | None = None
                   ) -> float | None:
    """Seconds until a pod with `tolerations` must leave a node with `taints` (0: now);
    None if its NoExecute taints let it stay for good. A taint without timeAdded counts
    from when the controller first saw it (`first_seen`, else now)."""
    deadline: datetime | None = None
    for taint in taints:
        if taint.effect != NO_EXECUTE:
            continue
        toleration = next((t for t in tolerations if tolerates(t, taint)), None)
        if toleration is None:
            return 0.0
        if not toleration.HasField("toleration_seconds"):
            continue
        if taint.HasField("time_added"):
            start = taint.time_added.ToDatetime(tzinfo=now.tzinfo)
        else:
            start = (first_seen or {}).get((taint.key, taint.value, taint.effect), now)
        due = start + timedelta(seconds=max(0, toleration.toleration_seconds))
        deadline = due if deadline is None else min(deadline, due)
    if deadline is None:
        return None
    return max(0.0, (deadline - now).total_seconds())


# --------------------------------------------------------------------------- controller


class NodeLifecycleController(Controller):
    def __init__(self, ctx: ControllerContext, *, workers: int = 2,
                 node_monitor_grace_period: float = NODE_MONITOR_GRACE_PERIOD,
                 node_startup_grace_period: float = NODE_STARTUP_GRACE_PERIOD) -> None:
        self.client = ctx.client
        self.clock = ctx.clock
        self.grace_period = node_monitor_grace_period
        self.startup_grace_period = node_startup_grace_period
        self.nodes = ctx.factory.informer(core_pb2.Node)
        self.leases = ctx.factory.informer(coordination_pb2.Lease, LEASE_NAMESPACE)
        self.pods = ctx.factory.informer(core_pb2.Pod)
        super().__init__("nodelifecycle", informers=[self.nodes, self.leases, self.pods],
                         workers=workers, clock=ctx.clock)
        self.recorder = ctx.recorder("node-controller")
        # Since Kubernetes 1.29 evictions are the taint eviction controller's events.
        self.eviction_recorder = ctx.recorder("taint-eviction-controller")
        self._health: dict[str, NodeHealth] = {}
        # node -> (taint key, value, effect) -> when first seen, for taints lacking timeAdded
        self._taints_seen: dict[str, dict[tuple[str, str, str], datetime]] = {}

        self.enqueue_from(self.nodes)
        self.leases.add_handlers(on_add=self._lease_changed,
                                 on_update=lambda old, new: self._lease_changed(new))
        self.pods.add_handlers(on_add=self._pod_changed,
                               on_update=lambda old, new: self._pod_changed(new))

    # ---- handlers ----

    def _lease_changed(self, lease: coordination_pb2.Lease) -> None:
        self.enqueue_key(lease.metadata.name)

    def _pod_changed(self, pod: core_pb2.Pod) -> None:
        """A pod that lands on (or changes on) a troubled node may need marking or
        evicting; pods on healthy, untainted nodes cost nothing."""
        name = pod.spec.node_name
        if not name or pod.metadata.HasField("deletion_timestamp"):
            return
        node = self.nodes.store.get(name)
        if node is None:
            return
        if ready_status(node) != "True" or any(t.effect == NO_EXECUTE
                                                for t in node.spec.taints):
            self.enqueue_key(name)

    # ---- sync ----

    async def sync(self, key: str) -> None:
        node = self.nodes.store.get(key)
        if node is None:
            self._health.pop(key, None)
            self._taints_seen.pop(key, None)
            return
        node = await self._check_health(key, node)
        node = await self._update_taints(node)
        if ready_status(node) != "True":
            await self._mark_pods_not_ready(node)
        await self._evict(node)

    async def _check_health(self, key: str, node: core_pb2.Node) -> core_pb2.Node:
        """Marks the node Unknown once it has been silent for the grace period."""
        now = self.clock.now()
        lease = self.leases.store.get_by_name(LEASE_NAMESPACE, key)
        health = observe(self._health.get(key), node, lease, now)
        self._health[key] = health
        grace = self.grace_period if _ready(node) is not None else self.startup_grace_period
        silent_for = now - health.probe
        if silent_for <= grace:
            self.enqueue_after(key, grace - silent_for + _SLACK)
            return node
        status = mark_unknown(node, self.clock.wall())
        if status is None:
            return node
        was_ready = ready_status(node) == "True"
        log.info("node %s: no heartbeat for %.0fs; marking it Unknown", key, silent_for)
        updated = core_pb2.Node()
        updated.CopyFrom(node)
        updated.status.CopyFrom(status)
        node = await self.client.update_status(updated)
        if was_ready:
            self.recorder.event(node, "Normal", "NodeNotReady",
                                f"Node {key} status is now: NodeNotReady")
        return node

    async def _update_taints(self, node: core_pb2.Node) -> core_pb2.Node:
        taints = reconcile_taints(node, self.clock.wall())
        if taints is None:
            return node
        updated = core_pb2.Node()
        updated.CopyFrom(node)
        del updated.spec.taints[:]
        updated.spec.taints.extend(taints)
        log.info("node %s: taints now %s", node.metadata.name,
                 [f"{t.key}:{t.effect}" for t in taints])
        return await self.client.update(updated)

    async def _mark_pods_not_ready(self, node: core_pb2.Node) -> None:
        """Kubernetes' MarkPodsNotReady: Ready=False on every pod of the node."""
        now = self.clock.wall()
        for pod in self.pods.store.by_index(INDEX_NODE_NAME, node.metadata.name):
            ready = condition(pod, READY)
            if ready is None or ready.status != "True":
                continue
            updated = core_pb2.Pod()
            updated.CopyFrom(pod)
            # Only the status changes (its reason and message stay), as in Kubernetes.
            conditions.set_condition(updated.status.conditions, READY, "False", now,
                                     reason=ready.reason, message=ready.message)
            try:
                await self.client.update_status(updated)
            except errors.NotFound:
                continue
            self.recorder.event(pod, "Warning", "NodeNotReady", "Node is not ready")

    def _first_seen(self, node: core_pb2.Node) -> dict[tuple[str, str, str], datetime]:
        """When each of the node's NoExecute taints without timeAdded was first seen."""
        now = self.clock.wall()
        seen = self._taints_seen.setdefault(node.metadata.name, {})
        current = {(t.key, t.value, t.effect) for t in node.spec.taints
                   if t.effect == NO_EXECUTE and not t.HasField("time_added")}
        for gone in set(seen) - current:
            del seen[gone]
        for taint in current:
            seen.setdefault(taint, now)
        return seen

    async def _evict(self, node: core_pb2.Node) -> None:
        """Deletes the pods the node's NoExecute taints no longer tolerate; looks again
        when the next toleration runs out."""
        if not any(t.effect == NO_EXECUTE for t in node.spec.taints):
            self._taints_seen.pop(node.metadata.name, None)
            return
        now = self.clock.wall()
        first_seen = self._first_seen(node)
        soonest: float | None = None
        for pod in self.pods.store.by_index(INDEX_NODE_NAME, node.metadata.name):
            if pod.metadata.HasField("deletion_timestamp"):
                continue
            delay = eviction_delay(pod.spec.tolerations, node.spec.taints, now, first_seen)
            if delay is None:
                continue
            if delay > 0:
                soonest = delay if soonest is None else min(soonest, delay)
                continue
            await self._evict_pod(pod)
        if soonest is not None:
            self.enqueue_after(node.metadata.name, soonest + _SLACK)

    async def _evict_pod(self, pod: core_pb2.Pod) -> None:
        updated = core_pb2.Pod()
        updated.CopyFrom(pod)
        if _set_disruption_target(updated, self.clock.wall()):
            try:
                await self.client.update_status(updated)
            except errors.NotFound:
                return
        self.eviction_recorder.event(pod, "Normal", "TaintManagerEviction",
                                     f"Marking for deletion Pod {object_key(pod)}")
        log.info("evicting pod %s from node %s", object_key(pod), pod.spec.node_name)
        try:
            await self.client.delete(core_pb2.Pod, pod.metadata.name, pod.metadata.namespace,
                                     uid=pod.metadata.uid)
        except errors.NotFound:
            return


def _set_disruption_target(pod: core_pb2.Pod, now: datetime) -> bool:
    """Adds (or sets) the DisruptionTarget condition saying why the pod goes; False if
    it already says so."""
    _, changed = conditions.set_condition(
        pod.status.conditions, "DisruptionTarget", "True", now,
        reason="DeletionByTaintManager",
        message="Taint manager: deleting due to NoExecute taint")
    return changed
