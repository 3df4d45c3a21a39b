"""The DaemonSet controller: one pod of a template on every eligible node.

Kubernetes' semantics (pkg/controller/daemon), in the shape it has had since 1.12: the
controller decides *which nodes* should run a daemon pod, and the default scheduler places
it. Each pod is created with a required node affinity ``matchFields metadata.name In
[node]`` (which replaces the template's required node affinity terms, as Kubernetes'
``ReplaceDaemonSetPodNodeNameNodeAffinity`` does: the controller has already checked that
the node matches them) and with the tolerations every daemon pod gets, so that node
trouble does not evict it (not-ready and unreachable NoExecute without tolerationSeconds;
disk-, memory-, pid-pressure and unschedulable NoSchedule; network-unavailable NoSchedule
for hostNetwork pods).

A node is eligible when the template's nodeSelector and required node affinity match it
and it has no NoSchedule or NoExecute taint the pod does not tolerate. A pod already there
may stay while only NoSchedule taints are untolerated (they keep new pods off, they evict
nobody). Each sync, per node: create the missing pod; delete pods on nodes that should not
run one; keep the oldest of several; delete failed pods (with a per-node back-off, and a
FailedDaemonPod event) so that a new one is made. Pods the scheduler has not yet bound
whose node is gone are deleted here; pods bound to a deleted node are pod GC's.

Updates: RollingUpdate deletes old pods while at most maxUnavailable (int or percent of
the desired number, rounded up) nodes lack an available pod, and the per-node loop
recreates them; with maxSurge (maxUnavailable 0) a new pod starts next to the old one, and
the old one goes once the new one is available. OnDelete replaces only pods users delete.

Revisions: Kubernetes snapshots each template in a ControllerRevision and labels pods with
its ``controller-revision-hash``. Skiff has no ControllerRevision kind, so the label is a
stable hash of the template itself (``template_hash``): a pod is "updated" when its label
equals the current template's hash. There is no revision history (so no rollback by
revision number, and ``revisionHistoryLimit`` and ``collisionCount`` are not used).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from controllers.common.claim import claim
from controllers.common.context import ControllerContext
from controllers.common.expectations import Expectations
from controllers.common.podcontrol import PodControl
from controllers.common.podowners import PodOwnerEvents, usable_selector
from controllers.common.replicas import is_available
from skiff.api.intstr import scaled_value
from skiff.api.pods import FAILED, SUCCEEDED, is_ready
from skiff.api.scheduling import (
    NO_EXECUTE,
    NO_SCHEDULE,
    NODE_NAME_FIELD,
    TAINT_DISK_PRESSURE,
    TAINT_MEMORY_PRESSURE,
    TAINT_NETWORK_UNAVAILABLE,
    TAINT_NOT_READY,
    TAINT_PID_PRESSURE,
    TAINT_UNREACHABLE,
    TAINT_UNSCHEDULABLE,
    CompiledAffinity,
    find_untolerated,
)
from skiff.api.selectors import LabelSelector
from skiff.api.v1 import apps_pb2, core_pb2, meta_pb2
from skiff.client import errors
from skiff.client.backoff import Backoff
from skiff.client.controller import Controller
from skiff.client.informer import INDEX_NAMESPACE, object_key

__all__ = [
    "BURST_REPLICAS",
    "REVISION_HASH_LABEL",
    "DaemonSetController",
    "DaemonSetCounts",
    "NodeFit",
    "NodePlan",
    "add_daemon_tolerations",
    "daemon_set_counts",
    "max_surge",
    "max_unavailable",
    "plan_node",
    "rolling_update",
    "set_node_affinity",
    "target_node_name",
    "template_hash",
]

log = logging.getLogger(__name__)

REVISION_HASH_LABEL = "controller-revision-hash"

# Kubernetes' BurstReplicas for daemon sets: the most pods one sync creates or deletes.
BURST_REPLICAS = 250

# Kubernetes' failedPodsBackoff: 1 s, doubling, at most 15 minutes, per (set, node).
FAILED_POD_BACKOFF_INITIAL = 1.0
FAILED_POD_BACKOFF_MAX = 15 * 60.0

ROLLING_UPDATE = "RollingUpdate"
ON_DELETE = "OnDelete"

# Looked at again this much after a pod should have become available, so that the
# recheck never lands a hair before the boundary.
_AVAILABILITY_SLACK = 0.1


# --------------------------------------------------------------------------- pod shape


def _toleration(key: str, effect: str) -> core_pb2.Toleration:
    return core_pb2.Toleration(key=key, operator="Exists", effect=effect)


_DAEMON_TOLERATIONS = (
    # Node trouble must not evict daemons: no tolerationSeconds on the NoExecute ones.
    _toleration(TAINT_NOT_READY, NO_EXECUTE),
    _toleration(TAINT_UNREACHABLE, NO_EXECUTE),
    _toleration(TAINT_DISK_PRESSURE, NO_SCHEDULE),
    _toleration(TAINT_MEMORY_PRESSURE, NO_SCHEDULE),
    _toleration(TAINT_PID_PRESSURE, NO_SCHEDULE),
    _toleration(TAINT_UNSCHEDULABLE, NO_SCHEDULE),
)
_HOST_NETWORK_TOLERATION = _toleration(TAINT_NETWORK_UNAVAILABLE, NO_SCHEDULE)


def _add_or_update_toleration(spec: core_pb2.PodSpec, toleration: core_pb2.Toleration) -> None:
    """Kubernetes' AddOrUpdateTolerationInPodSpec: a toleration with the same key,
    operator, value and effect is replaced (dropping, e.g., its tolerationSeconds);
    otherwise the toleration is appended."""
    for existing in spec.tolerations:
        if (existing.key, existing.operator or "Equal", existing.value, existing.effect) == (
                toleration.key, toleration.operator or "Equal", toleration.value,
                toleration.effect):
            existing.CopyFrom(toleration)
            return
    spec.tolerations.append(toleration)


def add_daemon_tolerations(spec: core_pb2.PodSpec) -> None:
    """Adds, in place, the tolerations every daemon pod gets."""
    for toleration in _DAEMON_TOLERATIONS:
        _add_or_update_toleration(spec, toleration)
    if spec.host_network:
        _add_or_update_toleration(spec, _HOST_NETWORK_TOLERATION)


def set_node_affinity(spec: core_pb2.PodSpec, node_name: str) -> None:
    """Pins the pod to `node_name` through the scheduler: its required node affinity
    becomes the single term ``matchFields metadata.name In [node_name]`` (preferred
    terms are kept)."""
    required = spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    del required.node_selector_terms[:]
    required.node_selector_terms.add().match_fields.add(
        key=NODE_NAME_FIELD, operator="In", values=[node_name])


def target_node_name(pod: core_pb2.Pod) -> str | None:
    """The node a daemon pod is for: its nodeName once bound, before that the node its
    required affinity pins it to (Kubernetes' GetTargetNodeName); None if neither."""
    if pod.spec.node_name:
        return pod.spec.node_name
    affinity = pod.spec.affinity.node_affinity
    for term in affinity.required_during_scheduling_ignored_during_execution.node_selector_terms:
        for requirement in term.match_fields:
            if requirement.key == NODE_NAME_FIELD and requirement.operator == "In":
                return requirement.values[0] if len(requirement.values) == 1 else None
    return None


def _fnv32a(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


# rand.SafeEncodeString's alphabet: no vowels (no words) and no look-alike characters.
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def template_hash(template: core_pb2.PodTemplateSpec) -> str:
    """A stable name for a template's content, like Kubernetes' ControllerRevision hash:
    FNV-32a of the deterministic serialization, its decimal digits spelled in the safe
    alphabet. Equal templates give equal hashes in every process."""
    digits = str(_fnv32a(template.SerializeToString(deterministic=True)))
    return "".join(_SAFE_ALPHABET[ord(d) % len(_SAFE_ALPHABET)] for d in digits)


# --------------------------------------------------------------------------- eligibility


@dataclass(frozen=True)
class NodeFit:
    """Which nodes one DaemonSet's pods belong on (Kubernetes' NodeShouldRunDaemonPod),
    compiled once per sync from the template plus the daemon tolerations."""

    node_name: str
    affinity: CompiledAffinity
    tolerations: tuple[core_pb2.Toleration, ...]

    @classmethod
    def of(cls, ds: apps_pb2.DaemonSet) -> NodeFit:
        spec = core_pb2.PodSpec()
        spec.CopyFrom(ds.spec.template.spec)
        add_daemon_tolerations(spec)
        return cls(spec.node_name, CompiledAffinity.of(spec), tuple(spec.tolerations))

    def check(self, node: core_pb2.Node) -> tuple[bool, bool]:
        """(should run, should continue running): whether a pod should be made for
        `node`, and whether one already there may stay. An untolerated NoSchedule taint
        only keeps new pods off; an untolerated NoExecute taint removes them too."""
        if self.node_name and self.node_name != node.metadata.name:
            return False, False
        if not self.affinity.matches_node(node):
            return False, False
        taints = node.spec.taints
        if find_untolerated(taints, self.tolerations) is None:
            return True, True
        return False, find_untolerated(taints, self.tolerations, (NO_EXECUTE,)) is None


# --------------------------------------------------------------------------- counting


def _scaled(value: meta_pb2.IntOrString, total: int) -> int:
    """An IntOrString resolved against `total`, rounded up; a value that is not a number
    or a percentage (validation refuses those) counts as 0."""
    try:
        return scaled_value(value, total, round_up=True)
    except ValueError:
        return 0


def _rolling(ds: apps_pb2.DaemonSet) -> apps_pb2.RollingUpdateDaemonSet | None:
    strategy = ds.spec.update_strategy
    if strategy.type not in ("", ROLLING_UPDATE):
        return None
    return strategy.rolling_update


def max_surge(ds: apps_pb2.DaemonSet, desired: int) -> int:
    """How many nodes may run an extra new pod next to an old one during an update."""
    rolling = _rolling(ds)
    if rolling is None or not rolling.HasField("max_surge"):
        return 0
    return max(0, _scaled(rolling.max_surge, desired))


def max_unavailable(ds: apps_pb2.DaemonSet, desired: int) -> int:
    """How many nodes may lack an available pod during an update. A set that allows
    neither surge nor unavailability gets 1, as Kubernetes does, so it can progress."""
    rolling = _rolling(ds)
    if rolling is None:
        return 0
    unavailable = (_scaled(rolling.max_unavailable, desired)
                   if rolling.HasField("max_unavailable") else 1)
    if desired > 0 and unavailable <= 0 and max_surge(ds, desired) == 0:
        return 1
    return max(0, unavailable)


def _oldest_first(pod: core_pb2.Pod) -> tuple[int, int, int, str]:
    """Kubernetes' podByCreationTimestampAndPhase: bound pods first, then oldest first."""
    created = pod.metadata.creation_timestamp
    return (0 if pod.spec.node_name else 1, created.seconds, created.nanos, pod.metadata.name)


def _is_updated(pod: core_pb2.Pod, hash_: str) -> bool:
    return pod.metadata.labels.get(REVISION_HASH_LABEL) == hash_


@dataclass
class NodePlan:
    """What the per-node loop decided for one node."""

    create: bool = False
    delete: list[core_pb2.Pod] = field(default_factory=list)
    failed: list[core_pb2.Pod] = field(default_factory=list)  # to delete, with a back-off
    succeeded: list[core_pb2.Pod] = field(default_factory=list)  # to delete


def plan_node(should_run: bool, should_continue: bool, pods: Sequence[core_pb2.Pod],
              hash_: str, *, surge: bool, min_ready_seconds: int, now: datetime) -> NodePlan:
    """Kubernetes' podsShouldBeOnNode for one node and the set's pods targeting it."""
    plan = NodePlan()
    if should_run and not pods:
        plan.create = True
        return plan
    if not should_continue:
        plan.delete = [p for p in pods if not p.metadata.HasField("deletion_timestamp")]
        return plan
    running = []
    for pod in pods:
        if pod.metadata.HasField("deletion_timestamp"):
            continue
        if pod.status.phase == FAILED:
            plan.failed.append(pod)
        elif pod.status.phase == SUCCEEDED:
            plan.succeeded.append(pod)
        else:
            running.append(pod)
    running.sort(key=_oldest_first)
    if not surge:
        plan.delete = running[1:]  # duplicates: keep the oldest
        return plan
    if not running:
        plan.create = should_run
        return plan
    # With surge, one old and one new pod may share the node while the new one starts:
    # keep the oldest of each, and drop the old one once it is not ready or the new one
    # is available. If neither is ready, the new one wins.
    oldest_new = next((p for p in running if _is_updated(p, hash_)), None)
    oldest_old = next((p for p in running if not _is_updated(p, hash_)), None)
    plan.delete = [p for p in running if p is not oldest_new and p is not oldest_old]
    if oldest_new is not None and oldest_old is not None and (
            not is_ready(oldest_old)
            or is_available(oldest_new, min_ready_seconds, now)):
        plan.delete.append(oldest_old)
    return plan


def _new_and_old(pods: Iterable[core_pb2.Pod], hash_: str
                 ) -> tuple[core_pb2.Pod | None, core_pb2.Pod | None, bool]:
    """Kubernetes' findUpdatedPodsOnNode: the node's one new and one old pod (not being
    deleted), and False when it has several of either (the per-node loop prunes those
    first)."""
    new = old = None
    for pod in pods:
        if pod.metadata.HasField("deletion_timestamp"):
            continue
        if _is_updated(pod, hash_):
            if new is not None:
                return None, None, False
            new = pod
        else:
            if old is not None:
                return None, None, False
            old = pod
    return new, old, True


def rolling_update(node_to_pods: Mapping[str, Sequence[core_pb2.Pod]],
                   should_run: Callable[[str], bool], hash_: str, *, max_surge: int,
                   max_unavailable: int, min_ready_seconds: int, now: datetime
                   ) -> tuple[list[core_pb2.Pod], list[str]]:
    """Kubernetes' rollingUpdate: (old pods to delete, nodes to start a new pod on).

    `node_to_pods` holds every node that should run a pod (with no pods if it has none)
    and every node the set has pods for.
    """
    def available(pod: core_pb2.Pod) -> bool:
        return is_available(pod, min_ready_seconds, now)

    if max_surge == 0:
        unavailable = 0
        replace_now: list[core_pb2.Pod] = []
        candidates: list[core_pb2.Pod] = []
        for pods in node_to_pods.values():
            new, old, single = _new_and_old(pods, hash_)
            if not single or (new is None) == (old is None):
                unavailable += 1  # the per-node loop is still creating or pruning here
            elif new is not None:
                if not available(new):
                    unavailable += 1
            elif old is not None:
                if not available(old):
                    replace_now.append(old)  # already down: replace it, and count it
                    unavailable += 1
                elif unavailable < max_unavailable:
                    candidates.append(old)
        room = max(0, min(max_unavailable - unavailable, len(candidates)))
        return replace_now + candidates[:room], []

    surged = 0
    to_delete: list[core_pb2.Pod] = []
    allowed_nodes: list[str] = []
    candidate_nodes: list[str] = []
    for node_name, pods in node_to_pods.items():
        new, old, single = _new_and_old(pods, hash_)
        if not single:
            surged += 1
            continue
        if old is None:
            continue  # nothing to replace; the per-node loop creates what is missing
        if new is None:
            if not available(old):
                if should_run(node_name):
                    allowed_nodes.append(node_name)
                else:
                    to_delete.append(old)
            elif should_run(node_name):
                candidate_nodes.append(node_name)
            continue
        if not available(new):
            surged += 1  # waiting for the new pod
        else:
            to_delete.append(old)
    room = max(0, min(max_surge - surged, len(candidate_nodes)))
    return to_delete, allowed_nodes + candidate_nodes[:room]


@dataclass(frozen=True)
class DaemonSetCounts:
    desired: int = 0
    current: int = 0
    misscheduled: int = 0
    ready: int = 0
    updated: int = 0
    available: int = 0

    @property
    def unavailable(self) -> int:
        return self.desired - self.available


def daemon_set_counts(nodes: Iterable[core_pb2.Node], fit: NodeFit,
                      node_to_pods: Mapping[str, Sequence[core_pb2.Pod]], hash_: str,
                      min_ready_seconds: int, now: datetime) -> DaemonSetCounts:
    """The numbers of DaemonSetStatus, as Kubernetes counts them: per eligible node, its
    oldest pod decides ready, available and updated; a pod on a node that should not
    run one is misscheduled."""
    desired = current = misscheduled = ready = updated = available = 0
    for node in nodes:
        should_run, _ = fit.check(node)
        pods = node_to_pods.get(node.metadata.name, ())
        if not should_run:
            misscheduled += 1 if pods else 0
            continue
        desired += 1
        if not pods:
            continue
        current += 1
        pod = min(pods, key=_oldest_first)
        if is_ready(pod):
            ready += 1
            if is_available(pod, min_ready_seconds, now):
                available += 1
        if _is_updated(pod, hash_):
            updated += 1
    return DaemonSetCounts(desired, current, misscheduled, ready, updated, available)


# --------------------------------------------------------------------------- controller


class DaemonSetController(Controller):
    def __init__(self, ctx: ControllerContext, *, workers: int = 2,
                 failed_pod_backoff: float = FAILED_POD_BACKOFF_INITIAL) -> None:
        self.client = ctx.client
        self.clock = ctx.clock
        self.daemon_sets = ctx.factory.informer(apps_pb2.DaemonSet)
        self.pods = ctx.factory.informer(core_pb2.Pod)
        self.nodes = ctx.factory.informer(core_pb2.Node)
        super().__init__("daemonset",
                         informers=[self.daemon_sets, self.pods, self.nodes],
                         workers=workers, clock=ctx.clock)
        self.recorder = ctx.recorder("daemonset-controller")
        self.pod_control = PodControl(ctx.client, self.recorder, clock=ctx.clock)
        self.expectations = Expectations(ctx.clock)
        # Kubernetes' failedPodsBackoff, per (set, generation, node).
        self.failed_backoff = Backoff(failed_pod_backoff, FAILED_POD_BACKOFF_MAX,
                                      clock=ctx.clock)

        self.enqueue_from(self.daemon_sets)
        self.pod_events = PodOwnerEvents(self, self.daemon_sets, self.pods, self.expectations)
        self.nodes.add_handlers(on_add=self._node_added, on_update=self._node_updated,
                                on_delete=lambda node: self._enqueue_all())

    # ---- handlers ----

    def _enqueue_all(self) -> None:
        for ds in self.daemon_sets.store.list():
            self.enqueue(ds)

    def _node_added(self, node: core_pb2.Node) -> None:
        for ds in self.daemon_sets.store.list():
            if NodeFit.of(ds).check(node)[0]:
                self.enqueue(ds)

    def _node_updated(self, old: core_pb2.Node, new: core_pb2.Node) -> None:
        # Only labels, taints and the name decide eligibility; heartbeats change neither.
        if (old.metadata.labels == new.metadata.labels
                and list(old.spec.taints) == list(new.spec.taints)):
            return
        for ds in self.daemon_sets.store.list():
            fit = NodeFit.of(ds)
            if fit.check(old) != fit.check(new):
                self.enqueue(ds)

    # ---- sync ----

    async def sync(self, key: str) -> None:
        ds = self.daemon_sets.store.get(key)
        if ds is None:
            self.expectations.forget(key)
            return
        selector = usable_selector(ds)
        if selector is None:
            log.warning("daemonset %s: invalid or empty selector; not syncing", key)
            return
        if ds.metadata.HasField("deletion_timestamp"):
            return  # its pods go with it (garbage collection); status no longer matters
        hash_ = template_hash(ds.spec.template)
        nodes = self.nodes.store.list()
        fit = NodeFit.of(ds)
        # Read before listing: if they are met now, the list holds all our own writes.
        expectations_met = self.expectations.satisfied(key)
        node_to_pods = await self._node_to_pods(ds, selector)

        error: BaseException | None = None
        if expectations_met:
            error = await self._manage(key, ds, nodes, fit, node_to_pods, hash_)
            if error is None and self.expectations.satisfied(key):
                error = await self._update(key, ds, nodes, fit, node_to_pods, hash_)
        try:
            await self._update_status(ds, nodes, fit, node_to_pods, hash_,
                                      observed=expectations_met)
        except errors.ApiError:
            if error is None:
                raise
            log.exception("daemonset %s: status update failed", key)
        if error is not None:
            raise error

    async def _node_to_pods(self, ds: apps_pb2.DaemonSet, selector: LabelSelector
                            ) -> dict[str, list[core_pb2.Pod]]:
        """The set's pods (after adoption and release) by the node they are for."""
        candidates = self.pods.store.by_index(INDEX_NAMESPACE, ds.metadata.namespace)
        owned = await claim(self.client, ds, selector, candidates)
        node_to_pods: dict[str, list[core_pb2.Pod]] = {}
        for pod in owned:
            node_name = target_node_name(pod)
            if node_name is None:
                log.info("daemonset %s: pod %s has no target node; ignoring it",
                         object_key(ds), object_key(pod))
                continue
            node_to_pods.setdefault(node_name, []).append(pod)
        return node_to_pods

    async def _manage(self, key: str, ds: apps_pb2.DaemonSet, nodes: Sequence[core_pb2.Node],
                      fit: NodeFit, node_to_pods: Mapping[str, Sequence[core_pb2.Pod]],
                      hash_: str) -> BaseException | None:
        """Creates the missing daemon pods and deletes those that should go."""
        surge = max_surge(ds, 1) > 0
        now = self.clock.wall()
        to_create: list[str] = []
        to_delete: list[core_pb2.Pod] = []
        for node in nodes:
            name = node.metadata.name
            should_run, should_continue = fit.check(node)
            plan = plan_node(should_run, should_continue, node_to_pods.get(name, ()), hash_,
                             surge=surge, min_ready_seconds=ds.spec.min_ready_seconds,
                             now=now)
            if plan.create:
                to_create.append(name)
            to_delete += plan.delete
            to_delete += self._failed_to_delete(ds, name, plan.failed)
            for pod in plan.succeeded:
                self.recorder.event(
                    ds, "Normal", "SucceededDaemonPod",
                    f"Found succeeded daemon pod {object_key(pod)} on node {name}, "
                    "will try to delete it")
                to_delete.append(pod)
        # Unbound pods for nodes that are gone would never be scheduled, and pod GC only
        # collects bound ones.
        names = {node.metadata.name for node in nodes}
        to_delete += [pod for node_name, pods in node_to_pods.items() if node_name not in names
                      for pod in pods
                      if not pod.spec.node_name and not pod.metadata.HasField("deletion_timestamp")]
        return await self._sync_nodes(key, ds, to_delete, to_create, hash_)

    def _failed_to_delete(self, ds: apps_pb2.DaemonSet, node_name: str,
                          failed: Sequence[core_pb2.Pod]) -> list[core_pb2.Pod]:
        chosen = []
        backoff_key = f"{ds.metadata.uid}/{ds.status.observed_generation}/{node_name}"
        for pod in failed:
            wait = self.failed_backoff.remaining(backoff_key)
            if wait > 0:
                self.enqueue_after(ds, wait)
                continue
            self.failed_backoff.next(backoff_key)
            self.recorder.event(
                ds, "Warning", "FailedDaemonPod",
                f"Found failed daemon pod {object_key(pod)} on node {node_name}, "
                "will try to kill it")
            chosen.append(pod)
        return chosen

    async def _update(self, key: str, ds: apps_pb2.DaemonSet, nodes: Sequence[core_pb2.Node],
                      fit: NodeFit, node_to_pods: Mapping[str, Sequence[core_pb2.Pod]],
                      hash_: str) -> BaseException | None:
        """One step of a RollingUpdate (OnDelete leaves old pods alone)."""
        if ds.spec.update_strategy.type == ON_DELETE:
            return None
        should_run = {node.metadata.name: fit.check(node)[0] for node in nodes}
        desired = sum(should_run.values())
        by_node = {name: list(pods) for name, pods in node_to_pods.items()}
        for name, runs in should_run.items():
            if runs:
                by_node.setdefault(name, [])
        to_delete, to_create = rolling_update(
            by_node, lambda name: should_run.get(name, False), hash_,
            max_surge=max_surge(ds, desired), max_unavailable=max_unavailable(ds, desired),
            min_ready_seconds=ds.spec.min_ready_seconds, now=self.clock.wall())
        if not to_delete and not to_create:
            return None
        return await self._sync_nodes(key, ds, to_delete, to_create, hash_)

    async def _sync_nodes(self, key: str, ds: apps_pb2.DaemonSet,
                          to_delete: Sequence[core_pb2.Pod], to_create: Sequence[str],
                          hash_: str) -> BaseException | None:
        """Deletes and creates (at most BURST_REPLICAS each), expectations first."""
        to_create = list(to_create)[:BURST_REPLICAS]
        to_delete = list({object_key(p): p for p in to_delete}.values())[:BURST_REPLICAS]
        if not to_create and not to_delete:
            return None
        self.expectations.expect(key, creations=len(to_create),
                                 deletions=[object_key(pod) for pod in to_delete])
        create_error = await self._create_pods(key, ds, to_create, hash_)
        delete_error = await self._delete_pods(key, ds, to_delete)
        return create_error or delete_error

    async def _create_pods(self, key: str, ds: apps_pb2.DaemonSet, node_names: Sequence[str],
                           hash_: str) -> BaseException | None:
        if not node_names:
            return None
        template = core_pb2.PodTemplateSpec()
        template.CopyFrom(ds.spec.template)
        add_daemon_tolerations(template.spec)
        template.metadata.labels[REVISION_HASH_LABEL] = hash_
        pods = []
        for node_name in node_names:
            pod = self.pod_control.pod_from_template(ds, template)
            set_node_affinity(pod.spec, node_name)
            pods.append(pod)
        return await self.pod_control.create_all(ds, pods, self.expectations, key)

    async def _delete_pods(self, key: str, ds: apps_pb2.DaemonSet,
                           victims: Sequence[core_pb2.Pod]) -> BaseException | None:
        return await self.pod_control.delete_all(ds, victims, self.expectations, key)

    async def _update_status(self, ds: apps_pb2.DaemonSet, nodes: Sequence[core_pb2.Node],
                             fit: NodeFit, node_to_pods: Mapping[str, Sequence[core_pb2.Pod]],
                             hash_: str, *, observed: bool) -> None:
        now = self.clock.wall()
        min_ready = ds.spec.min_ready_seconds
        counts = daemon_set_counts(nodes, fit, node_to_pods, hash_, min_ready, now)
        status = apps_pb2.DaemonSetStatus()
        status.CopyFrom(ds.status)
        status.desired_number_scheduled = counts.desired
        status.current_number_scheduled = counts.current
        status.number_misscheduled = counts.misscheduled
        status.number_ready = counts.ready
        status.updated_number_scheduled = counts.updated
        status.number_available = counts.available
        status.number_unavailable = counts.unavailable
        if observed:
            # Only a sync that acted on this generation may say it has seen it.
            status.observed_generation = max(status.observed_generation,
                                             ds.metadata.generation)
        if status != ds.status:
            updated = apps_pb2.DaemonSet()
            updated.CopyFrom(ds)
            updated.status.CopyFrom(status)
            await self.client.update_status(updated)
        if min_ready > 0 and counts.ready != counts.available:
            self.enqueue_after(ds, min_ready + _AVAILABILITY_SLACK)
