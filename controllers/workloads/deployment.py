"""The Deployment controller: rolls a pod template out through ReplicaSets.

Kubernetes' semantics (pkg/controller/deployment). A sync claims the ReplicaSets of the
deployment's namespace its selector matches (adopting orphans, releasing those that no
longer match), then, in Kubernetes' order of precedence:

* a deployment being deleted only gets its status refreshed;
* a paused one, or one whose spec.replicas changed since its active ReplicaSets were
  sized (a scaling event), is only scaled: proportionally across the active ReplicaSets
  if a rollout is under way, so a resize neither hastens nor reverses it;
* otherwise it rolls out: RollingUpdate makes the new ReplicaSet (one per template,
  `<name>-<hash>`) grow while all pods stay within replicas + maxSurge, and the old ones
  shrink while available pods stay at least replicas - maxUnavailable; Recreate scales
  the old ones to 0, waits until none of their pods runs, then scales the new one up.

Progress is reported in the Progressing condition, which turns False
(ProgressDeadlineExceeded) once no progress was made for progressDeadlineSeconds; the
controller looks again when that deadline passes, without waiting for an event. Old
ReplicaSets beyond revisionHistoryLimit are deleted once they are empty. All arithmetic
lives in controllers.common.rollout; this module reads the caches and writes.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

from controllers.common import rollout
from controllers.common.claim import claim, controller_of, selector_of
from controllers.common.context import ControllerContext
from controllers.common.podcontrol import namespace_terminating, owner_reference
from controllers.common.rollout import Scaling
from skiff.api.v1 import apps_pb2, core_pb2, meta_pb2
from skiff.client import errors
from skiff.client.controller import Controller
from skiff.client.informer import INDEX_NAMESPACE, INDEX_OWNER_UID, object_key

__all__ = ["DeploymentController"]

log = logging.getLogger(__name__)

# Looked at again this long after the progress deadline passes, so the recheck never
# lands a hair before it and finds the deployment not yet late.
_DEADLINE_SLACK = 0.25


@dataclass
class _Sync:
    """One sync's view: a private copy of the deployment (its status is what was last
    written) and its ReplicaSets, replaced by what each write returns, so that one sync
    never writes twice from the same stale version."""

    d: apps_pb2.Deployment
    rss: list[apps_pb2.ReplicaSet] = field(default_factory=list)

    def latest(self, rs: apps_pb2.ReplicaSet) -> apps_pb2.ReplicaSet:
        return next((r for r in self.rss if r.metadata.uid == rs.metadata.uid), rs)

    def put(self, rs: apps_pb2.ReplicaSet) -> None:
        self.rss = [r for r in self.rss if r.metadata.uid != rs.metadata.uid] + [rs]


class DeploymentController(Controller):
    def __init__(self, ctx: ControllerContext, *, workers: int = 5) -> None:
        self.client = ctx.client
        self.clock = ctx.clock
        self.deployments = ctx.factory.informer(apps_pb2.Deployment)
        self.replica_sets = ctx.factory.informer(apps_pb2.ReplicaSet)
        self.pods = ctx.factory.informer(core_pb2.Pod)
        super().__init__("deployment",
                         informers=[self.deployments, self.replica_sets, self.pods],
                         workers=workers, clock=ctx.clock)
        self.recorder = ctx.recorder("deployment-controller")

        self.enqueue_from(self.deployments)
        self.replica_sets.add_handlers(on_add=self._replica_set_added,
                                       on_update=self._replica_set_updated,
                                       on_delete=self._replica_set_deleted)
        self.pods.add_handlers(on_delete=self._pod_deleted)

    # ---- handlers: which deployment to look at ----

    def _replica_set_added(self, rs: apps_pb2.ReplicaSet) -> None:
        if rs.metadata.HasField("deletion_timestamp"):
            self._replica_set_deleted(rs)
            return
        ref = controller_of(rs)
        if ref is not None:
            self._enqueue_controller(rs.metadata.namespace, ref)
            return
        for d in self._deployments_selecting(rs):  # an orphan: someone may adopt it
            self.enqueue(d)

    def _replica_set_updated(self, old: apps_pb2.ReplicaSet, new: apps_pb2.ReplicaSet) -> None:
        if old.metadata.resource_version == new.metadata.resource_version:
            return  # a resync: nothing changed
        old_ref, new_ref = controller_of(old), controller_of(new)
        ref_changed = old_ref != new_ref
        if ref_changed and old_ref is not None:
            self._enqueue_controller(old.metadata.namespace, old_ref)
        if new_ref is not None:
            self._enqueue_controller(new.metadata.namespace, new_ref)
            return
        if ref_changed or old.metadata.labels != new.metadata.labels:
            for d in self._deployments_selecting(new):
                self.enqueue(d)

    def _replica_set_deleted(self, rs: apps_pb2.ReplicaSet) -> None:
        ref = controller_of(rs)
        if ref is not None:
            self._enqueue_controller(rs.metadata.namespace, ref)

    def _pod_deleted(self, pod: core_pb2.Pod) -> None:
        """A Recreate rollout waits for the old pods to be gone: look again when the
        last pod of the deployment goes."""
        d = self._deployment_of_pod(pod)
        if d is None or d.spec.strategy.type != rollout.RECREATE:
            return
        owned = self.replica_sets.store.by_index(INDEX_OWNER_UID, d.metadata.uid)
        if not any(self._pods_of(rs) for rs in owned):
            self.enqueue(d)

    def _enqueue_controller(self, namespace: str, ref: meta_pb2.OwnerReference) -> None:
        d = self._resolve(namespace, ref)
        if d is not None:
            self.enqueue(d)

    def _resolve(self, namespace: str, ref: meta_pb2.OwnerReference
                 ) -> apps_pb2.Deployment | None:
        """The deployment a controller reference names, if it is that very one (not a
        namesake made after it was deleted)."""
        if ref.kind != "Deployment":
            return None
        d = self.deployments.store.get_by_name(namespace, ref.name)
        if d is None or d.metadata.uid != ref.uid:
            return None
        return d

    def _deployments_selecting(self, rs: apps_pb2.ReplicaSet) -> list[apps_pb2.Deployment]:
        if not rs.metadata.labels:
            return []
        found = []
        for d in self.deployments.store.by_index(INDEX_NAMESPACE, rs.metadata.namespace):
            selector = selector_of(d)
            # An empty selector would select everything: it selects nothing here.
            if not selector.is_empty() and selector.matches(rs.metadata.labels):
                found.append(d)
        return found

    def _deployment_of_pod(self, pod: core_pb2.Pod) -> apps_pb2.Deployment | None:
        ref = controller_of(pod)
        if ref is None or ref.kind != "ReplicaSet":
            return None
        rs = self.replica_sets.store.get_by_name(pod.metadata.namespace, ref.name)
        if rs is None or rs.metadata.uid != ref.uid:
            return None
        rs_ref = controller_of(rs)
        return self._resolve(rs.metadata.namespace, rs_ref) if rs_ref is not None else None

    def _pods_of(self, rs: apps_pb2.ReplicaSet) -> list[core_pb2.Pod]:
        """The pods `rs` controls, in any phase (Recreate must see the finishing ones)."""
        return [pod for pod in self.pods.store.by_index(INDEX_OWNER_UID, rs.metadata.uid)
                if (ref := controller_of(pod)) is not None and ref.uid == rs.metadata.uid]

    # ---- sync ----

    async def sync(self, key: str) -> None:
        cached = self.deployments.store.get(key)
        if cached is None:
            return  # deleted: its ReplicaSets go with it (garbage collection)
        d = apps_pb2.Deployment()
        d.CopyFrom(cached)
        selector = selector_of(d)
        if selector.is_empty():
            await self._refuse_select_all(d)
            return
        candidates = self.replica_sets.store.by_index(INDEX_NAMESPACE, d.metadata.namespace)
        st = _Sync(d, list(await claim(self.client, d, selector, candidates)))

        if d.metadata.HasField("deletion_timestamp"):
            await self._sync_status_only(st)
            return
        if rollout.set_paused_condition(st.d, self.clock.wall()):
            await self._write_status(st)
        if d.spec.paused or await self._is_scaling_event(st):
            await self._sync_scale(st)
            return
        if d.spec.strategy.type == rollout.RECREATE:
            await self._rollout_recreate(st)
        elif d.spec.strategy.type == rollout.ROLLING_UPDATE:
            await self._rollout_rolling(st)
        else:
            raise ValueError(f"unexpected deployment strategy type: {d.spec.strategy.type}")

    async def _refuse_select_all(self, d: apps_pb2.Deployment) -> None:
        self.recorder.event(d, "Warning", "SelectingAll",
                            "This deployment is selecting all pods. A non-empty selector "
                            "is required.")
        if d.status.observed_generation < d.metadata.generation:
            d.status.observed_generation = d.metadata.generation
            await self.client.update_status(d)

    async def _is_scaling_event(self, st: _Sync) -> bool:
        new_rs, old_rss = await self._all_replica_sets(st, create=False)
        return rollout.is_scaling_event(st.d, [*old_rss, new_rs])

    async def _sync_status_only(self, st: _Sync) -> None:
        new_rs, old_rss = await self._all_replica_sets(st, create=False)
        await self._sync_status(st, new_rs, old_rss)

    async def _sync_scale(self, st: _Sync) -> None:
        """Kubernetes' `sync`: scaling events and paused deployments; no rollout."""
        new_rs, old_rss = await self._all_replica_sets(st, create=False)
        for step in rollout.scale_plan(st.d, new_rs, old_rss):
            await self._scale(st, step, refresh_annotations=True)
        new_rs, old_rss = self._latest(st, new_rs, old_rss)
        if st.d.spec.paused:
            await self._cleanup(st, old_rss)
        await self._sync_status(st, new_rs, old_rss)

    async def _rollout_rolling(self, st: _Sync) -> None:
        new_rs, old_rss = await self._all_replica_sets(st, create=True)
        if new_rs is None:
            return  # its namespace is going away
        step = rollout.reconcile_new_replica_set(st.d, [*old_rss, new_rs], new_rs)
        if step is not None and await self._scale(st, step):
            await self._sync_rollout_status(st, *self._latest(st, new_rs, old_rss))
            return
        scaled_down = False
        for step in rollout.old_replica_sets_scale_down(st.d, [*old_rss, new_rs], old_rss,
                                                        new_rs):
            scaled_down = await self._scale(st, step) or scaled_down
        new_rs, old_rss = self._latest(st, new_rs, old_rss)
        if not scaled_down and rollout.deployment_complete(st.d, st.d.status):
            await self._cleanup(st, old_rss)
        await self._sync_rollout_status(st, new_rs, old_rss)

    async def _rollout_recreate(self, st: _Sync) -> None:
        # The new ReplicaSet is not made before the old pods are gone, so that the new
        # pods never run next to the old ones.
        new_rs, old_rss = await self._all_replica_sets(st, create=False)
        scaled_down = False
        for rs in rollout.filter_active(old_rss):
            scaled_down = await self._scale(st, Scaling(rs, 0, "down")) or scaled_down
        new_rs, old_rss = self._latest(st, new_rs, old_rss)
        if scaled_down:
            await self._sync_rollout_status(st, new_rs, old_rss)
            return
        pods = {rs.metadata.uid: self._pods_of(rs) for rs in st.rss}
        if rollout.old_pods_running(new_rs, old_rss, pods):
            await self._sync_rollout_status(st, new_rs, old_rss)
            return
        if new_rs is None:
            new_rs, old_rss = await self._all_replica_sets(st, create=True)
            if new_rs is None:
                return  # its namespace is going away
        await self._scale(st, Scaling(new_rs, st.d.spec.replicas, "up"))
        new_rs, old_rss = self._latest(st, new_rs, old_rss)
        if rollout.deployment_complete(st.d, st.d.status):
            await self._cleanup(st, old_rss)
        await self._sync_rollout_status(st, new_rs, old_rss)

    @staticmethod
    def _latest(st: _Sync, new_rs: apps_pb2.ReplicaSet | None,
                old_rss: list[apps_pb2.ReplicaSet]
                ) -> tuple[apps_pb2.ReplicaSet | None, list[apps_pb2.ReplicaSet]]:
        return (st.latest(new_rs) if new_rs is not None else None,
                [st.latest(rs) for rs in old_rss])

    # ---- the new ReplicaSet and revisions ----

    async def _all_replica_sets(self, st: _Sync, *, create: bool
                                ) -> tuple[apps_pb2.ReplicaSet | None,
                                           list[apps_pb2.ReplicaSet]]:
        """The new ReplicaSet (made if `create` and missing; its revision and the
        deployment's brought up to date) and all the old ones."""
        old_rss = rollout.find_old_replica_sets(st.d, st.rss)
        new_rs = await self._new_replica_set(st, old_rss, create=create)
        return new_rs, [st.latest(rs) for rs in old_rss]

    async def _new_replica_set(self, st: _Sync, old_rss: list[apps_pb2.ReplicaSet], *,
                               create: bool) -> apps_pb2.ReplicaSet | None:
        d = st.d
        new_revision = rollout.max_revision(old_rss) + 1
        existing = rollout.find_new_replica_set(d, st.rss)
        if existing is not None:
            return await self._sync_existing_new(st, existing, new_revision)
        if not create:
            return None
        rs = rollout.new_replica_set(d)
        rs.metadata.owner_references.append(owner_reference(d))
        rs.spec.replicas = rollout.new_rs_new_replicas(d, [*old_rss, rs], rs)
        rs.metadata.annotations.update(rollout.new_rs_annotations(d, {}, new_revision,
                                                                  exists=False))
        created, already_existed = await self._create_replica_set(st, rs)
        if created is None:
            return None
        st.put(created)
        if not already_existed and rs.spec.replicas > 0:
            self.recorder.event(d, "Normal", "ScalingReplicaSet",
                                f"Scaled up replica set {created.metadata.name} to "
                                f"{rs.spec.replicas}")
        annotated = self._set_revision(d, str(new_revision))
        status_changed = False
        if not already_existed and rollout.has_progress_deadline(d):
            rollout.set_condition(d.status, rollout.new_condition(
                rollout.PROGRESSING, "True", rollout.NEW_RS_REASON,
                f'Created new replica set "{created.metadata.name}"', self.clock.wall()))
            status_changed = True
        await self._write(st, metadata=annotated, status=status_changed)
        return created

    async def _sync_existing_new(self, st: _Sync, rs: apps_pb2.ReplicaSet,
                                 new_revision: int) -> apps_pb2.ReplicaSet:
        d = st.d
        annotations = rollout.new_rs_annotations(d, rs.metadata.annotations, new_revision,
                                                 exists=True)
        if (annotations != dict(rs.metadata.annotations)
                or rs.spec.min_ready_seconds != d.spec.min_ready_seconds):
            # The deployment's revision follows on the next sync, which this write
            # triggers, as in Kubernetes.
            copy = apps_pb2.ReplicaSet()
            copy.CopyFrom(rs)
            copy.metadata.annotations.clear()
            copy.metadata.annotations.update(annotations)
            copy.spec.min_ready_seconds = d.spec.min_ready_seconds
            updated = await self.client.update(copy)
            st.put(updated)
            return updated
        annotated = self._set_revision(
            d, rs.metadata.annotations.get(rollout.REVISION_ANNOTATION, ""))
        status_changed = False
        if (rollout.has_progress_deadline(d)
                and rollout.get_condition(d.status, rollout.PROGRESSING) is None):
            # Progress was not tracked before: count from when the new set was found.
            rollout.set_condition(d.status, rollout.new_condition(
                rollout.PROGRESSING, "True", rollout.FOUND_NEW_RS_REASON,
                f'Found new replica set "{rs.metadata.name}"', self.clock.wall()))
            status_changed = True
        await self._write(st, metadata=annotated, status=status_changed)
        return rs

    async def _create_replica_set(self, st: _Sync, rs: apps_pb2.ReplicaSet
                                  ) -> tuple[apps_pb2.ReplicaSet | None, bool]:
        """Creates `rs`; (the set, whether it existed already). One of that name with
        another template is a hash collision: collisionCount goes up (a new name next
        time) and the error is raised so the sync is retried."""
        d = st.d
        try:
            return await self.client.create(rs), False
        except errors.AlreadyExists:
            found = self.replica_sets.store.get_by_name(rs.metadata.namespace,
                                                        rs.metadata.name)
            if found is None:
                raise  # not in the cache yet: retry once it is
            ref = controller_of(found)
            if (ref is not None and ref.uid == d.metadata.uid
                    and rollout.equal_ignoring_hash(d.spec.template, found.spec.template)):
                return found, True
            previous = d.status.collision_count if d.status.HasField("collision_count") else 0
            d.status.collision_count = previous + 1
            await self._write_status(st)
            log.info("deployment %s: hash collision on %s; collisionCount %d -> %d",
                     object_key(d), rs.metadata.name, previous, previous + 1)
            raise
        except errors.Forbidden as err:
            if namespace_terminating(err):
                return None, False
            await self._report_create_failure(st, rs, err)
            raise
        except errors.ApiError as err:
            await self._report_create_failure(st, rs, err)
            raise

    async def _report_create_failure(self, st: _Sync, rs: apps_pb2.ReplicaSet,
                                     err: errors.ApiError) -> None:
        msg = f'Failed to create new replica set "{rs.metadata.name}": {err.message}'
        if rollout.has_progress_deadline(st.d):
            rollout.set_condition(st.d.status, rollout.new_condition(
                rollout.PROGRESSING, "False", rollout.FAILED_RS_CREATE_REASON, msg,
                self.clock.wall()))
            # The creation failure is the news; the retried sync writes the status again.
            with contextlib.suppress(errors.ApiError):
                await self._write_status(st)
        self.recorder.event(st.d, "Warning", rollout.FAILED_RS_CREATE_REASON, msg)

    @staticmethod
    def _set_revision(d: apps_pb2.Deployment, revision: str) -> bool:
        if d.metadata.annotations.get(rollout.REVISION_ANNOTATION) == revision:
            return False
        d.metadata.annotations[rollout.REVISION_ANNOTATION] = revision
        return True

    # ---- writes ----

    async def _scale(self, st: _Sync, step: Scaling, *, refresh_annotations: bool = False
                     ) -> bool:
        """Resizes a ReplicaSet (with its replicas annotations) and reports it; True if
        its size changed. With `refresh_annotations` (proportional scaling) a set whose
        size stays is still written when its annotations are behind."""
        rs = st.latest(step.replica_set)
        old = rs.spec.replicas
        resize = old != step.replicas
        if not resize and not refresh_annotations:
            return False
        wanted = rollout.replicas_annotations(st.d)
        stale = any(rs.metadata.annotations.get(k) != v for k, v in wanted.items())
        if not resize and not stale:
            return False
        copy = apps_pb2.ReplicaSet()
        copy.CopyFrom(rs)
        copy.spec.replicas = step.replicas
        copy.metadata.annotations.update(wanted)
        st.put(await self.client.update(copy))
        if resize:
            operation = step.operation or ("up" if step.replicas > old else "down")
            self.recorder.event(st.d, "Normal", "ScalingReplicaSet",
                                f"Scaled {operation} replica set {rs.metadata.name} to "
                                f"{step.replicas} from {old}")
        return resize

    async def _cleanup(self, st: _Sync, old_rss: list[apps_pb2.ReplicaSet]) -> None:
        """Deletes the empty old ReplicaSets beyond revisionHistoryLimit."""
        for rs in rollout.cleanup_candidates(st.d, old_rss):
            try:
                await self.client.delete(apps_pb2.ReplicaSet, rs.metadata.name,
                                         rs.metadata.namespace, uid=rs.metadata.uid)
            except errors.NotFound:
                continue
            log.info("deployment %s: deleted old replica set %s (revision %d)",
                     object_key(st.d), rs.metadata.name, rollout.revision_of(rs))

    async def _sync_status(self, st: _Sync, new_rs: apps_pb2.ReplicaSet | None,
                           old_rss: list[apps_pb2.ReplicaSet]) -> None:
        status = rollout.calculate_status([*old_rss, new_rs], new_rs, st.d, self.clock.wall())
        if status != st.d.status:
            st.d.status.CopyFrom(status)
            await self._write_status(st)

    async def _sync_rollout_status(self, st: _Sync, new_rs: apps_pb2.ReplicaSet | None,
                                   old_rss: list[apps_pb2.ReplicaSet]) -> None:
        now = self.clock.wall()
        status = rollout.rollout_status([*old_rss, new_rs], new_rs, st.d, now)
        if status != st.d.status:
            st.d.status.CopyFrom(status)
            await self._write_status(st)
            return  # the write comes back as an event, and that sync checks the deadline
        after = rollout.progress_recheck_after(st.d, status, now)
        if after is not None:
            self.enqueue_after(st.d, after + _DEADLINE_SLACK)

    async def _write(self, st: _Sync, *, metadata: bool, status: bool) -> None:
        if metadata:
            # Annotations are metadata: Update, as UpdateStatus writes only status.
            updated = await self.client.update(st.d)
            st.d.metadata.CopyFrom(updated.metadata)
        if status:
            await self._write_status(st)

    async def _write_status(self, st: _Sync) -> None:
        updated = await self.client.update_status(st.d)
        st.d.metadata.resource_version = updated.metadata.resource_version
