"""The arithmetic and bookkeeping of Deployment rollouts, free of I/O.

Everything here is a pure function of Deployments and ReplicaSets (and, where time
matters, a `now` passed in), as Kubernetes' `pkg/controller/deployment/util` is: the
deployment controller decides with these and then writes, and the CLI (`rollout status`,
`rollout history`, `rollout undo`) reads the same answers from the same objects.

The rules are Kubernetes':

* One ReplicaSet per pod template, named `<deployment>-<hash>`, its template and selector
  carrying `pod-template-hash=<hash>`. Which ReplicaSet is "new" is decided by template
  equality ignoring that label, never by the hash, so a hash function change cannot
  orphan a rollout.
* maxSurge rounds up, maxUnavailable rounds down, and if both come to 0 one pod may be
  unavailable, so that a rollout always has room to move.
* Each ReplicaSet remembers the deployment size it was scaled for (desired-replicas) and
  the pod budget of that time (max-replicas); a resize in the middle of a rollout is
  spread over the active ReplicaSets in those proportions, so that it neither hastens
  nor reverses the rollout.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from skiff.api import conditions
from skiff.api import rollout as shared
from skiff.api.intstr import IntOrStringLike, scaled_value
from skiff.api.pods import is_terminal
from skiff.api.rollout import (
    CHANGE_CAUSE_ANNOTATION,
    DEPRECATED_ROLLBACK_TO_ANNOTATION,
    DESIRED_REPLICAS_ANNOTATION,
    LAST_APPLIED_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    POD_TEMPLATE_HASH_LABEL,
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    TIMED_OUT_REASON,
    equal_ignoring_hash,
    template_without_hash,
)
from skiff.api.v1 import apps_pb2, core_pb2, meta_pb2

__all__ = [
    "AVAILABLE",
    "CHANGE_CAUSE_ANNOTATION",
    "DESIRED_REPLICAS_ANNOTATION",
    "FAILED_RS_CREATE_REASON",
    "FOUND_NEW_RS_REASON",
    "LAST_APPLIED_ANNOTATION",
    "MAX_REPLICAS_ANNOTATION",
    "MINIMUM_REPLICAS_AVAILABLE",
    "MINIMUM_REPLICAS_UNAVAILABLE",
    "NEW_RS_AVAILABLE_REASON",
    "NEW_RS_REASON",
    "PAUSED_REASON",
    "POD_TEMPLATE_HASH_LABEL",
    "PROGRESSING",
    "RECREATE",
    "REPLICA_FAILURE",
    "REPLICA_SET_UPDATED_REASON",
    "RESUMED_REASON",
    "REVISION_ANNOTATION",
    "REVISION_HISTORY_ANNOTATION",
    "ROLLING_UPDATE",
    "TIMED_OUT_REASON",
    "Scaling",
    "by_creation",
    "by_revision",
    "calculate_status",
    "cleanup_candidates",
    "deployment_complete",
    "deployment_progressing",
    "deployment_timed_out",
    "equal_ignoring_hash",
    "filter_active",
    "find_active_or_latest",
    "find_new_replica_set",
    "find_old_replica_sets",
    "get_condition",
    "get_proportion",
    "has_progress_deadline",
    "is_saturated",
    "is_scaling_event",
    "last_revision",
    "max_revision",
    "max_surge",
    "max_unavailable",
    "new_condition",
    "new_replica_set",
    "new_rs_annotations",
    "new_rs_new_replicas",
    "old_pods_running",
    "old_replica_sets_scale_down",
    "pod_template_hash",
    "progress_recheck_after",
    "reconcile_new_replica_set",
    "remove_condition",
    "replicas_annotations",
    "resolve_fenceposts",
    "revision_of",
    "rollout_status",
    "safe_encode",
    "scale_plan",
    "set_condition",
    "set_paused_condition",
]

# ---------------------------------------------------------------------------- names

# Deployment annotations that describe the deployment itself, not its template, and so
# stay off its ReplicaSets.
_ANNOTATIONS_NOT_COPIED = frozenset({
    LAST_APPLIED_ANNOTATION, REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION,
    DESIRED_REPLICAS_ANNOTATION, MAX_REPLICAS_ANNOTATION, DEPRECATED_ROLLBACK_TO_ANNOTATION,
})

# Kubernetes caps revision-history at about 100 entries.
REVISION_HISTORY_MAX_CHARS = 2000

ROLLING_UPDATE = "RollingUpdate"
RECREATE = "Recreate"

# Condition types and reasons.
PROGRESSING = "Progressing"
AVAILABLE = "Available"
REPLICA_FAILURE = "ReplicaFailure"
REPLICA_SET_UPDATED_REASON = "ReplicaSetUpdated"
FAILED_RS_CREATE_REASON = "ReplicaSetCreateError"
NEW_RS_REASON = "NewReplicaSetCreated"
FOUND_NEW_RS_REASON = "FoundNewReplicaSet"
NEW_RS_AVAILABLE_REASON = "NewReplicaSetAvailable"
PAUSED_REASON = "DeploymentPaused"
RESUMED_REASON = "DeploymentResumed"
MINIMUM_REPLICAS_AVAILABLE = "MinimumReplicasAvailable"
MINIMUM_REPLICAS_UNAVAILABLE = "MinimumReplicasUnavailable"

# progressDeadlineSeconds / revisionHistoryLimit at MaxInt32 mean "never" / "keep all".
_MAX_INT32 = 2**31 - 1

# ---------------------------------------------------------------------------- fenceposts


def resolve_fenceposts(max_surge: IntOrStringLike, max_unavailable: IntOrStringLike,
                       replicas: int) -> tuple[int, int]:
    """(surge, unavailable) for `replicas` desired: surge rounds up, unavailable down,
    and when both come to 0 one pod may be unavailable (surge might be refused by a
    quota; a rollout that can move neither way would never finish)."""
    surge = scaled_value(max_surge, replicas, round_up=True)
    unavailable = scaled_value(max_unavailable, replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _is_rolling(d: apps_pb2.Deployment) -> bool:
    return d.spec.strategy.type == ROLLING_UPDATE


def max_surge(d: apps_pb2.Deployment) -> int:
    """How many pods above spec.replicas a rollout may run (0 unless RollingUpdate)."""
    if not _is_rolling(d):
        return 0
    rolling = d.spec.strategy.rolling_update
    surge, _ = resolve_fenceposts(rolling.max_surge, rolling.max_unavailable, d.spec.replicas)
    return surge


def max_unavailable(d: apps_pb2.Deployment) -> int:
    """How many of spec.replicas may be unavailable during a rollout (0 unless
    RollingUpdate), never more than spec.replicas."""
    if not _is_rolling(d) or d.spec.replicas == 0:
        return 0
    rolling = d.spec.strategy.rolling_update
    _, unavailable = resolve_fenceposts(rolling.max_surge, rolling.max_unavailable,
                                        d.spec.replicas)
    return min(unavailable, d.spec.replicas)


def has_progress_deadline(d: apps_pb2.Deployment) -> bool:
    return (d.spec.HasField("progress_deadline_seconds")
            and d.spec.progress_deadline_seconds != _MAX_INT32)


# ---------------------------------------------------------------------------- templates


_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def safe_encode(text: str) -> str:
    """Kubernetes' rand.SafeEncodeString: each character mapped into an alphabet without
    vowels (no words) and without 0/1/3 (no look-alikes)."""
    return "".join(_SAFE_ALPHABET[ord(ch) % len(_SAFE_ALPHABET)] for ch in text)


def _fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def pod_template_hash(template: core_pb2.PodTemplateSpec,
                      collision_count: int | None = None) -> str:
    """The stable name suffix of the ReplicaSet for `template`: FNV-32a of the template
    (its pod-template-hash label left out) and, when set, of the collision count, so a
    bumped count gives a fresh name after a collision. Up to 10 safe characters."""
    hashed = _fnv32a(template_without_hash(template).SerializeToString(deterministic=True)
                     + (collision_count.to_bytes(4, "little", signed=False)
                        if collision_count is not None else b""))
    return safe_encode(str(hashed))


def new_replica_set(d: apps_pb2.Deployment, replicas: int = 0) -> apps_pb2.ReplicaSet:
    """The ReplicaSet `d` would create for its current template (no owner reference, no
    annotations yet): name, labels, template and selector with the template hash."""
    collision = d.status.collision_count if d.status.HasField("collision_count") else None
    template_hash = pod_template_hash(d.spec.template, collision)
    rs = apps_pb2.ReplicaSet()
    rs.metadata.name = f"{d.metadata.name}-{template_hash}"
    rs.metadata.namespace = d.metadata.namespace
    rs.spec.template.CopyFrom(d.spec.template)
    rs.spec.template.metadata.labels[POD_TEMPLATE_HASH_LABEL] = template_hash
    rs.metadata.labels.update(rs.spec.template.metadata.labels)
    rs.spec.selector.CopyFrom(d.spec.selector)
    rs.spec.selector.match_labels[POD_TEMPLATE_HASH_LABEL] = template_hash
    rs.spec.replicas = replicas
    rs.spec.min_ready_seconds = d.spec.min_ready_seconds
    return rs


# ---------------------------------------------------------------------------- revisions


def revision_of(obj: apps_pb2.ReplicaSet | apps_pb2.Deployment) -> int:
    """The revision annotation as a number; 0 when missing or not a number (Kubernetes
    skips such ReplicaSets when it looks for the highest revision)."""
    try:
        return shared.revision_of(obj)
    except ValueError:
        return 0


def max_revision(rss: Iterable[apps_pb2.ReplicaSet]) -> int:
    return max((revision_of(rs) for rs in rss), default=0)


def last_revision(rss: Iterable[apps_pb2.ReplicaSet]) -> int:
    """The second highest revision: where `rollout undo` goes back to."""
    revisions = sorted({revision_of(rs) for rs in rss}, reverse=True)
    return revisions[1] if len(revisions) > 1 else 0


def by_creation(rs: apps_pb2.ReplicaSet) -> tuple[int, int, str]:
    """Sort key: oldest first, name breaking ties (Kubernetes' ReplicaSetsByCreationTimestamp)."""
    created = rs.metadata.creation_timestamp
    return (created.seconds, created.nanos, rs.metadata.name)


def by_revision(rs: apps_pb2.ReplicaSet) -> tuple[int, int, int, str]:
    """Sort key: lowest revision first, then oldest."""
    return (revision_of(rs), *by_creation(rs))


def replicas_annotations(d: apps_pb2.Deployment) -> dict[str, str]:
    """The desired-replicas and max-replicas annotations for `d`'s ReplicaSets now."""
    return {DESIRED_REPLICAS_ANNOTATION: str(d.spec.replicas),
            MAX_REPLICAS_ANNOTATION: str(d.spec.replicas + max_surge(d))}


def new_rs_annotations(d: apps_pb2.Deployment, current: Mapping[str, str],
                       new_revision: int, *, exists: bool) -> dict[str, str]:
    """The annotations the new ReplicaSet should carry, given its `current` ones: the
    deployment's own (but for those about the deployment itself), the revision raised to
    `new_revision` if lower (an old ReplicaSet that becomes new again remembers its
    former revision in revision-history), and, for one about to be created, the replicas
    annotations."""
    result = dict(current)
    for key, value in d.metadata.annotations.items():
        if key not in _ANNOTATIONS_NOT_COPIED:
            result[key] = value
    old_text = current.get(REVISION_ANNOTATION)
    try:
        old_revision = int(old_text) if old_text else 0
    except ValueError:
        return result  # a revision we cannot read is left to the user, as Kubernetes does
    if old_revision < new_revision:
        result[REVISION_ANNOTATION] = str(new_revision)
        if old_text is not None:
            history = _append_history(current.get(REVISION_HISTORY_ANNOTATION, ""), old_text)
            if history is not None:
                result[REVISION_HISTORY_ANNOTATION] = history
    if not exists:
        result.update(replicas_annotations(d))
    return result


def _append_history(history: str, revision: str) -> str | None:
    """`history` with `revision` appended, dropping the oldest entries to stay within
    REVISION_HISTORY_MAX_CHARS (None if even that cannot make it fit)."""
    if not history:
        return revision
    entries = history.split(",")
    total = len(history) + len(revision) + 1
    start = 0
    while total > REVISION_HISTORY_MAX_CHARS and start < len(entries):
        total -= len(entries[start]) + 1
        start += 1
    if total > REVISION_HISTORY_MAX_CHARS:
        return None
    return ",".join([*entries[start:], revision])


# ---------------------------------------------------------------------------- new and old


def find_new_replica_set(d: apps_pb2.Deployment, rss: Sequence[apps_pb2.ReplicaSet]
                         ) -> apps_pb2.ReplicaSet | None:
    """The ReplicaSet whose template is the deployment's (the oldest, should there be
    several), or None."""
    for rs in sorted(rss, key=by_creation):
        if equal_ignoring_hash(rs.spec.template, d.spec.template):
            return rs
    return None


def find_old_replica_sets(d: apps_pb2.Deployment, rss: Sequence[apps_pb2.ReplicaSet]
                          ) -> list[apps_pb2.ReplicaSet]:
    """Every ReplicaSet of `d` but the new one (with or without replicas)."""
    new = find_new_replica_set(d, rss)
    return [rs for rs in rss if new is None or rs.metadata.uid != new.metadata.uid]


def filter_active(rss: Iterable[apps_pb2.ReplicaSet | None]) -> list[apps_pb2.ReplicaSet]:
    """Those asked to run pods (spec.replicas > 0)."""
    return [rs for rs in rss if rs is not None and rs.spec.replicas > 0]


def _spec_total(rss: Iterable[apps_pb2.ReplicaSet | None]) -> int:
    return sum(rs.spec.replicas for rs in rss if rs is not None)


def _available_total(rss: Iterable[apps_pb2.ReplicaSet | None]) -> int:
    return sum(rs.status.available_replicas for rs in rss if rs is not None)


def old_pods_running(new_rs: apps_pb2.ReplicaSet | None, old_rss: Sequence[apps_pb2.ReplicaSet],
                     pods_by_rs_uid: Mapping[str, Sequence[core_pb2.Pod]]) -> bool:
    """Whether any old pod may still run: an old ReplicaSet still counts one, or a pod of
    one is not finished (a pod being deleted still runs until its kubelet says not)."""
    if sum(rs.status.replicas for rs in old_rss) > 0:
        return True
    new_uid = new_rs.metadata.uid if new_rs is not None else None
    return any(not is_terminal(pod)
               for uid, pods in pods_by_rs_uid.items() if uid != new_uid
               for pod in pods)


# ---------------------------------------------------------------------------- rolling


@dataclass(frozen=True)
class Scaling:
    """One step of a plan: resize `replica_set` to `replicas`; `operation` ("up",
    "down") is the direction the event reports."""

    replica_set: apps_pb2.ReplicaSet
    replicas: int
    operation: str

    @property
    def name(self) -> str:
        return self.replica_set.metadata.name


def _step(rs: apps_pb2.ReplicaSet, replicas: int) -> Scaling:
    return Scaling(rs, replicas, "up" if replicas > rs.spec.replicas else "down")


def new_rs_new_replicas(d: apps_pb2.Deployment, all_rss: Sequence[apps_pb2.ReplicaSet | None],
                        new_rs: apps_pb2.ReplicaSet) -> int:
    """How big the new ReplicaSet may be now: RollingUpdate lets it grow while all pods
    stay within replicas + maxSurge, never beyond replicas; Recreate, all at once."""
    if d.spec.strategy.type == RECREATE:
        return d.spec.replicas
    if d.spec.strategy.type != ROLLING_UPDATE:
        raise ValueError(f"deployment type {d.spec.strategy.type!r} isn't supported")
    surge = scaled_value(d.spec.strategy.rolling_update.max_surge, d.spec.replicas,
                         round_up=True)
    current = _spec_total(all_rss)
    max_total = d.spec.replicas + surge
    if current >= max_total:
        return new_rs.spec.replicas
    grow = min(max_total - current, d.spec.replicas - new_rs.spec.replicas)
    return new_rs.spec.replicas + grow


def reconcile_new_replica_set(d: apps_pb2.Deployment,
                              all_rss: Sequence[apps_pb2.ReplicaSet | None],
                              new_rs: apps_pb2.ReplicaSet) -> Scaling | None:
    """The rolling step for the new ReplicaSet: None if it is at spec.replicas; down to
    spec.replicas if above; otherwise as far up as the surge allows (which may be no
    change, also returned, as Kubernetes then writes nothing)."""
    if new_rs.spec.replicas == d.spec.replicas:
        return None
    if new_rs.spec.replicas > d.spec.replicas:
        return _step(new_rs, d.spec.replicas)
    return _step(new_rs, new_rs_new_replicas(d, all_rss, new_rs))


def old_replica_sets_scale_down(d: apps_pb2.Deployment,
                                all_rss: Sequence[apps_pb2.ReplicaSet | None],
                                old_rss: Sequence[apps_pb2.ReplicaSet],
                                new_rs: apps_pb2.ReplicaSet) -> list[Scaling]:
    """The rolling steps for the old ReplicaSets, in order: first shed their unhealthy
    replicas (losing them costs no availability, and keeping them could block the
    rollout), oldest ReplicaSet first; then scale down as far as availability allows:
    while available pods stay at least replicas - maxUnavailable. Pods the new
    ReplicaSet has not made available yet count against the room to scale down, so a
    broken new template never eats into the old pods."""
    old_active = filter_active(old_rss)
    if _spec_total(old_active) == 0:
        return []
    min_available = d.spec.replicas - max_unavailable(d)
    new_unavailable = new_rs.spec.replicas - new_rs.status.available_replicas
    max_scaled_down = _spec_total(all_rss) - min_available - new_unavailable
    if max_scaled_down <= 0:
        return []
    cleanup, sizes = _cleanup_unhealthy(old_active, max_scaled_down)
    if cleanup is None:
        return []  # Kubernetes gives up on this sync when a count looks inconsistent
    steps = list(cleanup)
    # Cleanup only removed unavailable replicas, so what is available is unchanged.
    available = _available_total([*old_active, new_rs])
    to_scale_down = available - min_available
    if to_scale_down <= 0:
        return steps
    done = 0
    for rs in sorted(old_active, key=by_creation):
        if done >= to_scale_down:
            break
        size = sizes[rs.metadata.name]
        if size == 0:
            continue
        count = min(size, to_scale_down - done)
        steps.append(Scaling(rs, size - count, "down"))
        done += count
    return steps


def _cleanup_unhealthy(old_rss: Sequence[apps_pb2.ReplicaSet], max_cleanup: int
                       ) -> tuple[list[Scaling] | None, dict[str, int]]:
    sizes = {rs.metadata.name: rs.spec.replicas for rs in old_rss}
    steps: list[Scaling] = []
    total = 0
    for rs in sorted(old_rss, key=by_creation):
        if total >= max_cleanup:
            break
        replicas, available = rs.spec.replicas, rs.status.available_replicas
        if replicas == 0 or replicas == available:
            continue
        count = min(max_cleanup - total, replicas - available)
        if count < 0:
            return None, sizes
        steps.append(Scaling(rs, replicas - count, "down"))
        sizes[rs.metadata.name] = replicas - count
        total += count
    return steps, sizes


# ---------------------------------------------------------------------------- scaling


def is_scaling_event(d: apps_pb2.Deployment, rss: Iterable[apps_pb2.ReplicaSet | None]) -> bool:
    """Whether spec.replicas changed since the active ReplicaSets were last sized (their
    desired-replicas annotation says another number)."""
    for rs in filter_active(rss):
        desired = _int_annotation(rs, DESIRED_REPLICAS_ANNOTATION)
        if desired is not None and desired != d.spec.replicas:
            return True
    return False


def _int_annotation(rs: apps_pb2.ReplicaSet, key: str) -> int | None:
    try:
        return int(rs.metadata.annotations[key])
    except (KeyError, ValueError):
        return None


def is_saturated(d: apps_pb2.Deployment, rs: apps_pb2.ReplicaSet | None) -> bool:
    """The ReplicaSet runs all of the deployment's replicas, available, and was sized for
    exactly this deployment size."""
    if rs is None:
        return False
    desired = _int_annotation(rs, DESIRED_REPLICAS_ANNOTATION)
    return (desired is not None and rs.spec.replicas == d.spec.replicas
            and desired == d.spec.replicas
            and rs.status.available_replicas == d.spec.replicas)


def find_active_or_latest(new_rs: apps_pb2.ReplicaSet | None,
                          old_rss: Sequence[apps_pb2.ReplicaSet]) -> apps_pb2.ReplicaSet | None:
    """The one active ReplicaSet, or the newest if none is active; None when several
    are active (those are scaled proportionally)."""
    if new_rs is None and not old_rss:
        return None
    newest_first = sorted(old_rss, key=by_creation, reverse=True)
    active = filter_active([*newest_first, new_rs])
    if not active:
        return new_rs if new_rs is not None else newest_first[0]
    return active[0] if len(active) == 1 else None


def _round_half_away(x: float) -> int:
    """Go's math.Round: halves away from zero (Python's round() goes to even)."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def _replica_set_fraction(rs: apps_pb2.ReplicaSet, d: apps_pb2.Deployment) -> int:
    if d.spec.replicas == 0:
        return -rs.spec.replicas
    deployment_replicas = d.spec.replicas + max_surge(d)
    annotated = _int_annotation(rs, MAX_REPLICAS_ANNOTATION)
    if annotated is None:
        # Without the annotation the current size is the best guess; the min/max in
        # get_proportion still keeps the total within bounds.
        annotated = d.status.replicas
    if annotated == 0:
        return 0
    size = rs.spec.replicas * deployment_replicas / annotated
    return _round_half_away(size) - rs.spec.replicas


def get_proportion(rs: apps_pb2.ReplicaSet | None, d: apps_pb2.Deployment, to_add: int,
                   added: int) -> int:
    """How many of `to_add` replicas (negative: to remove) this ReplicaSet takes, given
    that `added` were already handed out: its share by its max-replicas annotation,
    never beyond what is left."""
    if rs is None or rs.spec.replicas == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = _replica_set_fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def scale_plan(d: apps_pb2.Deployment, new_rs: apps_pb2.ReplicaSet | None,
               old_rss: Sequence[apps_pb2.ReplicaSet]) -> list[Scaling]:
    """What a resize (or a paused deployment's sync) does, as Kubernetes' `scale`:

    * one active ReplicaSet (or none: then the newest) takes spec.replicas;
    * a saturated new ReplicaSet: the old ones go to 0;
    * RollingUpdate with several active: the change of the pod budget (replicas +
      maxSurge) is spread over them by their max-replicas annotations, the leftover to
      the first of them (the largest; when growing the newest of equals, when shrinking
      the oldest). Every active one is listed, even if its size stays, because its
      replicas annotations must follow;
    * Recreate with several active: nothing (the rollout settles it).
    """
    only = find_active_or_latest(new_rs, old_rss)
    if only is not None:
        if only.spec.replicas == d.spec.replicas:
            return []
        return [_step(only, d.spec.replicas)]
    if is_saturated(d, new_rs):
        return [_step(rs, 0) for rs in filter_active(old_rss)]
    if not _is_rolling(d):
        return []
    active = filter_active([*old_rss, new_rs])
    allowed = d.spec.replicas + max_surge(d) if d.spec.replicas > 0 else 0
    to_add = allowed - _spec_total(active)
    if to_add > 0:
        # Larger first; among equals the newer first.
        active.sort(key=by_creation, reverse=True)
        active.sort(key=lambda rs: rs.spec.replicas, reverse=True)
        operation = "up"
    elif to_add < 0:
        # Larger first; among equals the older first.
        active.sort(key=by_creation)
        active.sort(key=lambda rs: rs.spec.replicas, reverse=True)
        operation = "down"
    else:
        operation = ""
    sizes: list[int] = []
    added = 0
    for rs in active:
        share = get_proportion(rs, d, to_add, added) if to_add else 0
        sizes.append(rs.spec.replicas + share)
        added += share
    if to_add and sizes:
        sizes[0] = max(0, sizes[0] + to_add - added)
    return [Scaling(rs, size, operation) for rs, size in zip(active, sizes, strict=True)]


# ---------------------------------------------------------------------------- history


def cleanup_candidates(d: apps_pb2.Deployment, old_rss: Sequence[apps_pb2.ReplicaSet]
                       ) -> list[apps_pb2.ReplicaSet]:
    """The old ReplicaSets beyond revisionHistoryLimit to delete, lowest revision first;
    only those scaled to 0, with no pods left, whose controller has seen that, and not
    already being deleted."""
    if not d.spec.HasField("revision_history_limit"):
        return []
    limit = d.spec.revision_history_limit
    if limit == _MAX_INT32:
        return []
    alive = [rs for rs in old_rss if not rs.metadata.HasField("deletion_timestamp")]
    excess = len(alive) - limit
    if excess <= 0:
        return []
    return [rs for rs in sorted(alive, key=by_revision)[:excess]
            if rs.status.replicas == 0 and rs.spec.replicas == 0
            and rs.metadata.generation <= rs.status.observed_generation]


# ---------------------------------------------------------------------------- conditions


def new_condition(type_: str, status: str, reason: str, message: str,
                  now: datetime) -> meta_pb2.Condition:
    cond = meta_pb2.Condition(type=type_, status=status, reason=reason, message=message)
    cond.last_update_time.FromDatetime(now)
    cond.last_transition_time.FromDatetime(now)
    return cond


def get_condition(status: apps_pb2.DeploymentStatus, type_: str) -> meta_pb2.Condition | None:
    return conditions.find(status.conditions, type_)


def remove_condition(status: apps_pb2.DeploymentStatus, type_: str) -> None:
    kept = [c for c in status.conditions if c.type != type_]
    del status.conditions[:]
    status.conditions.extend(kept)


def set_condition(status: apps_pb2.DeploymentStatus, cond: meta_pb2.Condition) -> None:
    """Kubernetes' SetDeploymentCondition: sets `cond` unless one of its type has the
    same status and reason already (then nothing changes, timestamps included); a
    condition whose status stays keeps its lastTransitionTime. The condition set moves to
    the end of the list, as in Kubernetes."""
    current = get_condition(status, cond.type)
    if current is not None and current.status == cond.status and current.reason == cond.reason:
        return
    if current is not None:
        kept = _copy_condition(current)
        remove_condition(status, cond.type)
        status.conditions.append(kept)
    updated, _ = conditions.set_condition(
        status.conditions, cond.type, cond.status,
        cond.last_transition_time.ToDatetime(tzinfo=UTC), reason=cond.reason,
        message=cond.message)
    updated.last_update_time.CopyFrom(cond.last_update_time)


def _copy_condition(cond: meta_pb2.Condition) -> meta_pb2.Condition:
    copy = meta_pb2.Condition()
    copy.CopyFrom(cond)
    return copy


def set_paused_condition(d: apps_pb2.Deployment, now: datetime) -> bool:
    """Marks a pause (or a resume) in d.status as Progressing Unknown, so that time spent
    paused never counts against the progress deadline. Returns whether it changed."""
    if not has_progress_deadline(d):
        return False
    cond = get_condition(d.status, PROGRESSING)
    if cond is not None and cond.reason == TIMED_OUT_REASON:
        return False  # a reported failure stays until progress is made
    paused_noted = cond is not None and cond.reason == PAUSED_REASON
    if d.spec.paused and not paused_noted:
        set_condition(d.status, new_condition(PROGRESSING, "Unknown", PAUSED_REASON,
                                              "Deployment is paused", now))
        return True
    if not d.spec.paused and paused_noted:
        set_condition(d.status, new_condition(PROGRESSING, "Unknown", RESUMED_REASON,
                                              "Deployment is resumed", now))
        return True
    return False


# ---------------------------------------------------------------------------- status


def calculate_status(all_rss: Sequence[apps_pb2.ReplicaSet | None],
                     new_rs: apps_pb2.ReplicaSet | None, d: apps_pb2.Deployment,
                     now: datetime) -> apps_pb2.DeploymentStatus:
    """The counts from the ReplicaSets, the conditions carried over, and Available set
    by whether replicas - maxUnavailable pods are available."""
    rss = [rs for rs in all_rss if rs is not None]
    available = _available_total(rss)
    status = apps_pb2.DeploymentStatus(
        observed_generation=d.metadata.generation,
        replicas=sum(rs.status.replicas for rs in rss),
        updated_replicas=new_rs.status.replicas if new_rs is not None else 0,
        ready_replicas=sum(rs.status.ready_replicas for rs in rss),
        available_replicas=available,
        unavailable_replicas=max(0, _spec_total(rss) - available),
    )
    if d.status.HasField("collision_count"):
        status.collision_count = d.status.collision_count
    status.conditions.extend(d.status.conditions)
    if available >= d.spec.replicas - max_unavailable(d):
        set_condition(status, new_condition(AVAILABLE, "True", MINIMUM_REPLICAS_AVAILABLE,
                                            "Deployment has minimum availability.", now))
    else:
        set_condition(status, new_condition(AVAILABLE, "False", MINIMUM_REPLICAS_UNAVAILABLE,
                                            "Deployment does not have minimum availability.",
                                            now))
    return status


def deployment_complete(d: apps_pb2.Deployment, status: apps_pb2.DeploymentStatus) -> bool:
    """All replicas updated and available, no old ones left, this generation observed."""
    return (status.updated_replicas == d.spec.replicas
            and status.replicas == d.spec.replicas
            and status.available_replicas == d.spec.replicas
            and status.observed_generation >= d.metadata.generation)


def deployment_progressing(d: apps_pb2.Deployment, status: apps_pb2.DeploymentStatus) -> bool:
    """Progress since d.status: more updated, ready or available pods, or fewer old."""
    old = d.status
    return (status.updated_replicas > old.updated_replicas
            or status.replicas - status.updated_replicas < old.replicas - old.updated_replicas
            or status.ready_replicas > old.ready_replicas
            or status.available_replicas > old.available_replicas)


def _progress_deadline(d: apps_pb2.Deployment, cond: meta_pb2.Condition) -> datetime:
    since: datetime = cond.last_update_time.ToDatetime(tzinfo=UTC)
    return since + timedelta(seconds=d.spec.progress_deadline_seconds)


def deployment_timed_out(d: apps_pb2.Deployment, status: apps_pb2.DeploymentStatus,
                         now: datetime) -> bool:
    """No progress reported for progressDeadlineSeconds (by the Progressing condition's
    lastUpdateTime), unless the last rollout finished."""
    if not has_progress_deadline(d):
        return False
    cond = get_condition(status, PROGRESSING)
    if cond is None or cond.reason == NEW_RS_AVAILABLE_REASON:
        return False
    if cond.reason == TIMED_OUT_REASON:
        return True
    return _progress_deadline(d, cond) < now


def rollout_status(all_rss: Sequence[apps_pb2.ReplicaSet | None],
                   new_rs: apps_pb2.ReplicaSet | None, d: apps_pb2.Deployment,
                   now: datetime) -> apps_pb2.DeploymentStatus:
    """The status during a rollout (Kubernetes' syncRolloutStatus): calculate_status plus
    the Progressing condition (complete, progressing, or timed out) and the first
    ReplicaFailure condition of the ReplicaSets (the new one's first)."""
    status = calculate_status(all_rss, new_rs, d, now)
    if not has_progress_deadline(d):
        remove_condition(status, PROGRESSING)
    current = get_condition(d.status, PROGRESSING)
    complete_before = (status.replicas == status.updated_replicas and current is not None
                       and current.reason == NEW_RS_AVAILABLE_REASON)
    if has_progress_deadline(d) and not complete_before:
        _set_progress(status, current, new_rs, d, now)
    failure = _replica_failure(all_rss, new_rs)
    if failure is not None:
        set_condition(status, failure)
    else:
        remove_condition(status, REPLICA_FAILURE)
    return status


def _set_progress(status: apps_pb2.DeploymentStatus, current: meta_pb2.Condition | None,
                  new_rs: apps_pb2.ReplicaSet | None, d: apps_pb2.Deployment,
                  now: datetime) -> None:
    subject = (f'ReplicaSet "{new_rs.metadata.name}"' if new_rs is not None
               else f'Deployment "{d.metadata.name}"')
    if deployment_complete(d, status):
        set_condition(status, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE_REASON,
                                            f"{subject} has successfully progressed.", now))
    elif deployment_progressing(d, status):
        # Unlike set_condition, progress refreshes lastUpdateTime even when the reason
        # stays: that timestamp is what the deadline is measured from.
        cond = new_condition(PROGRESSING, "True", REPLICA_SET_UPDATED_REASON,
                             f"{subject} is progressing.", now)
        if current is not None:
            conditions.stamp_transition(cond, current, now)
            remove_condition(status, PROGRESSING)
        set_condition(status, cond)
    elif deployment_timed_out(d, status, now):
        set_condition(status, new_condition(PROGRESSING, "False", TIMED_OUT_REASON,
                                            f"{subject} has timed out progressing.", now))


def _replica_failure(all_rss: Sequence[apps_pb2.ReplicaSet | None],
                     new_rs: apps_pb2.ReplicaSet | None) -> meta_pb2.Condition | None:
    ordered = [new_rs, *all_rss] if new_rs is not None else list(all_rss)
    for rs in ordered:
        if rs is None:
            continue
        for c in rs.status.conditions:
            if c.type == REPLICA_FAILURE:
                cond = _copy_condition(c)
                cond.last_update_time.CopyFrom(c.last_transition_time)
                return cond
    return None


def progress_recheck_after(d: apps_pb2.Deployment, status: apps_pb2.DeploymentStatus,
                           now: datetime) -> float | None:
    """Seconds until the progress deadline of an unfinished rollout passes (0 if it has),
    so the controller looks again then without waiting for an event; None when there is
    nothing to check."""
    current = get_condition(d.status, PROGRESSING)
    if not has_progress_deadline(d) or current is None:
        return None
    if deployment_complete(d, status) or current.reason == TIMED_OUT_REASON:
        return None
    return max(0.0, (_progress_deadline(d, current) - now).total_seconds())

