"""Rollout arithmetic and bookkeeping (controllers.common.rollout), against Kubernetes' rules and
the cases of Kubernetes' own deployment controller tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controllers.common import rollout
from controllers.common.rollout import (
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    POD_TEMPLATE_HASH_LABEL,
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
)
from skiff.api.v1 import apps_pb2, core_pb2, meta_pb2

NOW = datetime(2024, 5, 20, 12, 0, 0, tzinfo=UTC)


def deployment(replicas: int = 10, surge: int | str | None = 0,
               unavailable: int | str | None = 0, *, strategy: str = "RollingUpdate",
               image: str = "nginx:1", history: int | None = None,
               deadline: int | None = None) -> apps_pb2.Deployment:
    """As Kubernetes' test helper newDeployment: RollingUpdate 0/0 unless told."""
    d = apps_pb2.Deployment()
    d.metadata.name, d.metadata.namespace, d.metadata.uid = "web", "ns", "uid-web"
    d.metadata.generation = 1
    d.spec.replicas = replicas
    d.spec.selector.match_labels["app"] = "web"
    d.spec.template.metadata.labels["app"] = "web"
    d.spec.template.spec.containers.add(name="web", image=image)
    d.spec.strategy.type = strategy
    if strategy == "RollingUpdate":
        for field, value in (("max_surge", surge), ("max_unavailable", unavailable)):
            target = getattr(d.spec.strategy.rolling_update, field)
            if isinstance(value, int):
                target.int_val = value
            elif isinstance(value, str):
                target.str_val = value
    if history is not None:
        d.spec.revision_history_limit = history
    if deadline is not None:
        d.spec.progress_deadline_seconds = deadline
    return d


def replica_set(name: str, replicas: int, created: int = 0, *, available: int | None = None,
                revision: int | None = None, status_replicas: int | None = None,
                image: str = "nginx:1") -> apps_pb2.ReplicaSet:
    """As Kubernetes' test helper rs(): all its replicas available unless told."""
    rs = apps_pb2.ReplicaSet()
    rs.metadata.name, rs.metadata.namespace, rs.metadata.uid = name, "ns", f"uid-{name}"
    rs.metadata.creation_timestamp.FromDatetime(NOW + timedelta(hours=created))
    rs.spec.replicas = replicas
    rs.spec.template.metadata.labels.update({"app": "web", POD_TEMPLATE_HASH_LABEL: name})
    rs.spec.template.spec.containers.add(name="web", image=image)
    rs.status.replicas = replicas if status_replicas is None else status_replicas
    rs.status.available_replicas = replicas if available is None else available
    if revision is not None:
        rs.metadata.annotations[REVISION_ANNOTATION] = str(revision)
    return rs


def sized_for(rs: apps_pb2.ReplicaSet, d: apps_pb2.Deployment) -> apps_pb2.ReplicaSet:
    rs.metadata.annotations.update(rollout.replicas_annotations(d))
    return rs


def sizes(steps: list[rollout.Scaling]) -> dict[str, int]:
    return {step.name: step.replicas for step in steps}


# ---------------------------------------------------------------------------- fenceposts


@pytest.mark.parametrize(("surge", "unavailable", "replicas", "expected"), [
    ("25%", "25%", 10, (3, 2)),     # surge rounds up, unavailable down
    ("25%", "25%", 1, (1, 0)),
    ("25%", "25%", 4, (1, 1)),
    (0, 0, 10, (0, 1)),             # both zero: one may be unavailable
    ("0%", "0%", 0, (0, 1)),
    ("25%", "25%", 0, (0, 1)),      # replicas 0: everything rounds to 0
    ("39%", "39%", 10, (4, 3)),
    (None, "39%", 10, (0, 3)),      # unset counts as 0
    ("39%", None, 10, (4, 0)),
    (None, None, 10, (0, 1)),
    (2, 1, 10, (2, 1)),             # ints are taken as they are
    ("1%", "1%", 3, (1, 0)),
    ("150%", "0%", 4, (6, 0)),      # a surge above 100% is allowed
    ("200%", "200%", 10, (20, 20)),
])
def test_resolve_fenceposts(surge: int | str | None, unavailable: int | str | None,
                            replicas: int, expected: tuple[int, int]) -> None:
    assert rollout.resolve_fenceposts(surge, unavailable, replicas) == expected


def test_resolve_fenceposts_reads_int_or_string_messages() -> None:
    assert rollout.resolve_fenceposts(meta_pb2.IntOrString(str_val="25%"),
                                      meta_pb2.IntOrString(int_val=2), 10) == (3, 2)
    assert rollout.resolve_fenceposts(meta_pb2.IntOrString(), meta_pb2.IntOrString(),
                                      10) == (0, 1)


@pytest.mark.parametrize(("surge", "unavailable"), [("oops", 1), ("55%", "urg"),
                                                    ("x%", 0)])
def test_resolve_fenceposts_refuses_what_is_not_a_percentage(surge: str | int,
                                                             unavailable: str | int) -> None:
    with pytest.raises(ValueError, match="IntOrString"):
        rollout.resolve_fenceposts(surge, unavailable, 10)


def test_max_unavailable_is_capped_at_replicas_and_zero_for_recreate() -> None:
    assert rollout.max_unavailable(deployment(10, 0, "200%")) == 10
    assert rollout.max_unavailable(deployment(0, "25%", "25%")) == 0
    assert rollout.max_unavailable(deployment(10, strategy="Recreate")) == 0
    assert rollout.max_surge(deployment(10, strategy="Recreate")) == 0
    assert rollout.max_surge(deployment(10, "25%", "25%")) == 3


# ---------------------------------------------------------------------------- hash


def test_safe_encode_uses_kubernetes_alphabet() -> None:
    assert rollout.safe_encode("0123456789") == "456789bcdf"


def test_hash_is_stable_short_and_safe() -> None:
    template = deployment().spec.template
    first = rollout.pod_template_hash(template)
    assert first == rollout.pod_template_hash(deployment().spec.template)
    assert 1 <= len(first) <= 10
    assert set(first) <= set("bcdfghjklmnpqrstvwxz2456789")
    # Pinned: ReplicaSet names must not change between releases for the same template.
    assert first == rollout.pod_template_hash(template)
    assert first == "556b85679c"


def test_hash_ignores_the_hash_label_but_not_the_template() -> None:
    template = deployment().spec.template
    labelled = core_pb2.PodTemplateSpec()
    labelled.CopyFrom(template)
    labelled.metadata.labels[POD_TEMPLATE_HASH_LABEL] = "abc"
    assert rollout.pod_template_hash(labelled) == rollout.pod_template_hash(template)
    assert (rollout.pod_template_hash(deployment(image="nginx:2").spec.template)
            != rollout.pod_template_hash(template))


def test_collision_count_changes_the_hash() -> None:
    template = deployment().spec.template
    hashes = {rollout.pod_template_hash(template, None),
              rollout.pod_template_hash(template, 0),
              rollout.pod_template_hash(template, 1)}
    assert len(hashes) == 3


def test_equal_ignoring_hash() -> None:
    rs = replica_set("web-abc", 1)
    assert rollout.equal_ignoring_hash(rs.spec.template, deployment().spec.template)
    assert not rollout.equal_ignoring_hash(replica_set("web-abc", 1, image="nginx:2")
                                           .spec.template, deployment().spec.template)


def test_new_replica_set_carries_the_hash_in_name_labels_and_selector() -> None:
    d = deployment(3)
    d.spec.min_ready_seconds = 3
    rs = rollout.new_replica_set(d, 2)
    h = rollout.pod_template_hash(d.spec.template)
    assert rs.metadata.name == f"web-{h}"
    assert rs.spec.template.metadata.labels == {"app": "web", POD_TEMPLATE_HASH_LABEL: h}
    assert rs.metadata.labels == rs.spec.template.metadata.labels
    assert rs.spec.selector.match_labels == {"app": "web", POD_TEMPLATE_HASH_LABEL: h}
    assert (rs.spec.replicas, rs.spec.min_ready_seconds) == (2, 3)
    assert rollout.equal_ignoring_hash(rs.spec.template, d.spec.template)
    d.status.collision_count = 1
    assert rollout.new_replica_set(d).metadata.name != rs.metadata.name


# ---------------------------------------------------------------------------- revisions


def test_revision_of_reads_the_annotation() -> None:
    assert rollout.revision_of(replica_set("a", 1)) == 0
    assert rollout.revision_of(replica_set("a", 1, revision=7)) == 7
    broken = replica_set("a", 1)
    broken.metadata.annotations[REVISION_ANNOTATION] = "seven"
    assert rollout.revision_of(broken) == 0
    rss = [replica_set("a", 0, revision=1), replica_set("b", 0, revision=4),
           replica_set("c", 1, revision=3)]
    assert (rollout.max_revision(rss), rollout.last_revision(rss)) == (4, 3)
    assert (rollout.max_revision([]), rollout.last_revision(rss[:1])) == (0, 0)


def test_annotations_of_a_new_replica_set() -> None:
    d = deployment(4, 1, 0)
    d.metadata.annotations.update({
        "kubernetes.io/change-cause": "kubectl set image",
        "team": "blue",
        rollout.LAST_APPLIED_ANNOTATION: "{}",
        REVISION_ANNOTATION: "9",
    })
    got = rollout.new_rs_annotations(d, {}, 3, exists=False)
    assert got == {"kubernetes.io/change-cause": "kubectl set image", "team": "blue",
                   REVISION_ANNOTATION: "3", DESIRED_REPLICAS_ANNOTATION: "4",
                   MAX_REPLICAS_ANNOTATION: "5"}


def test_an_old_replica_set_becoming_new_again_gets_a_new_revision_and_history() -> None:
    d = deployment()
    current = {REVISION_ANNOTATION: "1", DESIRED_REPLICAS_ANNOTATION: "10"}
    got = rollout.new_rs_annotations(d, current, 3, exists=True)
    assert got[REVISION_ANNOTATION] == "3"
    assert got[REVISION_HISTORY_ANNOTATION] == "1"
    assert got[DESIRED_REPLICAS_ANNOTATION] == "10"  # an existing set's are left alone
    again = rollout.new_rs_annotations(d, {**got, REVISION_ANNOTATION: "3"}, 5, exists=True)
    assert again[REVISION_HISTORY_ANNOTATION] == "1,3"


def test_revision_is_never_lowered_and_unchanged_annotations_stay_equal() -> None:
    d = deployment()
    current = {REVISION_ANNOTATION: "5"}
    assert rollout.new_rs_annotations(d, current, 3, exists=True) == current


def test_revision_history_is_capped_dropping_the_oldest() -> None:
    long_history = ",".join(str(n) for n in range(1000, 1400))  # 2000 characters + commas
    current = {REVISION_ANNOTATION: "1400", REVISION_HISTORY_ANNOTATION: long_history}
    got = rollout.new_rs_annotations(deployment(), current, 1401, exists=True)
    history = got[REVISION_HISTORY_ANNOTATION]
    assert len(history) <= rollout.REVISION_HISTORY_MAX_CHARS
    assert history.endswith(",1399,1400")
    assert not history.startswith("1000,")


def test_find_new_and_old_replica_sets() -> None:
    d = deployment(image="nginx:2")
    old = replica_set("web-1", 0, 0, image="nginx:1")
    newer_twin = replica_set("web-3", 1, 2, image="nginx:2")
    new = replica_set("web-2", 1, 1, image="nginx:2")
    rss = [old, newer_twin, new]
    assert rollout.find_new_replica_set(d, rss) is new  # the oldest with the template
    assert [rs.metadata.name for rs in rollout.find_old_replica_sets(d, rss)] == [
        "web-1", "web-3"]
    assert rollout.find_new_replica_set(deployment(image="nginx:9"), rss) is None
    assert len(rollout.find_old_replica_sets(deployment(image="nginx:9"), rss)) == 3


# ---------------------------------------------------------------------------- rolling steps


@pytest.mark.parametrize(("replicas", "surge", "old", "new", "expected"), [
    (10, 0, 10, 0, None),    # no room to surge: stays (reported as no change)
    (10, 2, 10, 0, 2),
    (10, 2, 5, 0, 7),        # room left by scaled-down old pods
    (10, 2, 10, 2, None),
    (10, 3, 2, 8, 10),       # never beyond spec.replicas
    (2, 0, 2, 3, 2),         # above spec.replicas: down
])
def test_reconcile_new_replica_set(replicas: int, surge: int, old: int, new: int,
                                   expected: int | None) -> None:
    d = deployment(replicas, surge, 0)
    new_rs = replica_set("new", new, 1)
    step = rollout.reconcile_new_replica_set(d, [replica_set("old", old, 0), new_rs], new_rs)
    got = None if step is None or step.replicas == new else step.replicas
    assert got == expected


def test_new_replica_set_at_full_size_needs_no_step_and_recreate_takes_all() -> None:
    d = deployment(3)
    new_rs = replica_set("new", 3, 1)
    assert rollout.reconcile_new_replica_set(d, [new_rs], new_rs) is None
    recreate = deployment(5, strategy="Recreate")
    assert rollout.new_rs_new_replicas(recreate, [replica_set("new", 0)],
                                       replica_set("new", 0)) == 5


def test_rolling_steps_of_a_default_deployment() -> None:
    # replicas 10, 25%/25%: surge 3, unavailable 2, so 8 must stay available.
    d = deployment(10, "25%", "25%")
    old = replica_set("old", 10, 0)
    new = replica_set("new", 0, 1, available=0)
    step = rollout.reconcile_new_replica_set(d, [old, new], new)
    assert step is not None and (step.replicas, step.operation) == (3, "up")
    # The 3 new pods are not available yet: old may only lose maxUnavailable.
    new = replica_set("new", 3, 1, available=0)
    assert sizes(rollout.old_replica_sets_scale_down(d, [old, new], [old], new)) == {"old": 8}
    # Once they are, 11 are available: old goes down to 5 (8 still available).
    old = replica_set("old", 8, 0)
    new = replica_set("new", 3, 1, available=3)
    assert sizes(rollout.old_replica_sets_scale_down(d, [old, new], [old], new)) == {"old": 5}
    step = rollout.reconcile_new_replica_set(d, [old, new], new)
    assert step is not None and step.replicas == 5  # 8 old + 5 new = 10 + surge 3


@pytest.mark.parametrize(("replicas", "unavailable", "old", "new", "old_ready", "new_ready",
                          "expected"), [
    (10, 0, 10, 0, 10, 0, 9),   # 0/0 resolves to 1 unavailable
    (10, 2, 10, 0, 10, 0, 8),
    (10, 2, 10, 0, 8, 0, 8),    # the 2 unhealthy ones go first, nothing more
    (10, 2, 10, 0, 9, 0, 8),    # 1 unhealthy, then 1 healthy
    (10, 2, 8, 2, 8, 0, None),  # unavailable new pods block further scale-down
])
def test_old_replica_sets_scale_down(replicas: int, unavailable: int, old: int, new: int,
                                     old_ready: int, new_ready: int,
                                     expected: int | None) -> None:
    d = deployment(replicas, 0, unavailable)
    old_rs = replica_set("old", old, 0, available=old_ready)
    new_rs = replica_set("new", new, 1, available=new_ready)
    steps = rollout.old_replica_sets_scale_down(d, [old_rs, new_rs], [old_rs], new_rs)
    assert (steps[-1].replicas if steps else None) == expected


def test_unhealthy_old_replicas_are_cleaned_up_before_healthy_ones() -> None:
    d = deployment(10, 0, 2)
    old_rs = replica_set("old", 10, 0, available=9)
    new_rs = replica_set("new", 0, 1)
    steps = rollout.old_replica_sets_scale_down(d, [old_rs, new_rs], [old_rs], new_rs)
    # Two writes, as Kubernetes makes them: shed the unhealthy one, then one more.
    assert [(s.name, s.replicas, s.operation) for s in steps] == [
        ("old", 9, "down"), ("old", 8, "down")]


@pytest.mark.parametrize(("surge", "unavailable", "expected"), [
    (0, 1, [9]),         # room for 1: only 1 of the 2 unhealthy goes
    (0, 3, [8, 7]),      # both unhealthy go, then 1 healthy (8 available, 7 needed)
    (1, 0, []),          # no unavailability allowed: nothing goes
])
def test_unhealthy_clean_up_is_bounded_by_availability(surge: int, unavailable: int,
                                                       expected: list[int]) -> None:
    d = deployment(10, surge, unavailable)
    old_rs = replica_set("old", 10, 0, available=8)
    new_rs = replica_set("new", 0, 1)
    steps = rollout.old_replica_sets_scale_down(d, [old_rs, new_rs], [old_rs], new_rs)
    assert [s.replicas for s in steps] == expected


def test_scale_down_takes_the_oldest_replica_sets_first() -> None:
    d = deployment(6, 0, 3)
    oldest = replica_set("oldest", 2, 0)
    older = replica_set("older", 4, 1)
    new_rs = replica_set("new", 0, 2)
    steps = rollout.old_replica_sets_scale_down(d, [oldest, older, new_rs], [older, oldest],
                                                new_rs)
    assert [(s.name, s.replicas) for s in steps] == [("oldest", 0), ("older", 3)]


# ---------------------------------------------------------------------------- scaling


def scale_case(replicas: int, old_replicas: int, new: apps_pb2.ReplicaSet | None,
               olds: list[apps_pb2.ReplicaSet], *, surge: int = 0, old_surge: int | None = None,
               unavailable: int = 0) -> dict[str, int]:
    """Kubernetes' TestScale: the sets were sized for `old_replicas`; the deployment now
    wants `replicas`. Returns every set's size after the plan."""
    d = deployment(replicas, surge, unavailable)
    before = deployment(old_replicas, surge if old_surge is None else old_surge, unavailable)
    for rs in [new, *olds]:
        if rs is not None:
            sized_for(rs, before)
    result = {rs.metadata.name: rs.spec.replicas for rs in [new, *olds] if rs is not None}
    result.update(sizes(rollout.scale_plan(d, new, olds)))
    return result


@pytest.mark.parametrize(("replicas", "old_replicas", "new", "olds", "expected"), [
    (12, 10, ("foo-v1", 10), [], {"foo-v1": 12}),
    (5, 10, ("foo-v1", 10), [], {"foo-v1": 5}),
    (10, 5, ("foo-v2", 2), [("foo-v1", 3)], {"foo-v2": 4, "foo-v1": 6}),
    (3, 5, ("foo-v2", 2), [("foo-v1", 3)], {"foo-v2": 1, "foo-v1": 2}),
    (4, 9, ("foo-v2", 8), [("foo-v1", 1)], {"foo-v2": 4, "foo-v1": 0}),
    (10, 7, ("foo-v3", 2), [("foo-v2", 3), ("foo-v1", 2)],
     {"foo-v3": 3, "foo-v2": 4, "foo-v1": 3}),
    (8, 13, ("foo-v3", 2), [("foo-v2", 8), ("foo-v1", 3)],
     {"foo-v3": 1, "foo-v2": 5, "foo-v1": 2}),
    # leftover: growing, the newest of equals; shrinking, the oldest of equals
    (4, 3, ("foo-v3", 1), [("foo-v2", 1), ("foo-v1", 1)],
     {"foo-v3": 2, "foo-v2": 1, "foo-v1": 1}),
    (2, 3, ("foo-v3", 1), [("foo-v2", 1), ("foo-v1", 1)],
     {"foo-v3": 1, "foo-v2": 1, "foo-v1": 0}),
    (5, 4, None, [("foo-v2", 2), ("foo-v1", 2)], {"foo-v2": 3, "foo-v1": 2}),
    (0, 6, ("foo-v3", 3), [("foo-v2", 2), ("foo-v1", 1)],
     {"foo-v3": 0, "foo-v2": 0, "foo-v1": 0}),
    (6, 6, ("foo-v3", 0), [("foo-v2", 0), ("foo-v1", 0)],
     {"foo-v3": 6, "foo-v2": 0, "foo-v1": 0}),
])
def test_proportional_scaling(replicas: int, old_replicas: int, new: tuple[str, int] | None,
                              olds: list[tuple[str, int]], expected: dict[str, int]) -> None:
    # Creation order: foo-v1 oldest; the tuples give (name, replicas).
    def make(spec: tuple[str, int]) -> apps_pb2.ReplicaSet:
        return replica_set(spec[0], spec[1], int(spec[0][-1]))
    got = scale_case(replicas, old_replicas, make(new) if new else None,
                     [make(o) for o in olds])
    assert got == expected


def test_proportional_scaling_with_surge() -> None:
    got = scale_case(20, 10, replica_set("foo-v2", 6, 2), [replica_set("foo-v1", 6, 1)],
                     surge=2)
    assert got == {"foo-v2": 11, "foo-v1": 11}
    got = scale_case(50, 10, replica_set("foo-v2", 5, 2), [replica_set("foo-v1", 8, 1)],
                     surge=6, old_surge=3)
    assert got == {"foo-v2": 22, "foo-v1": 34}


def test_proportional_scaling_sizes_every_active_set_for_the_new_size() -> None:
    d = deployment(8, 0, 0)
    before = deployment(4, 0, 0)
    new = sized_for(replica_set("new", 2, 2, available=0), before)
    old = sized_for(replica_set("old", 2, 1), before)
    plan = rollout.scale_plan(d, new, [old])
    assert sizes(plan) == {"new": 4, "old": 4}
    assert {s.operation for s in plan} == {"up"}
    assert rollout.is_scaling_event(d, [old, new])
    assert not rollout.is_scaling_event(before, [old, new])


def test_saturated_new_replica_set_scales_old_ones_to_zero() -> None:
    d = deployment(3, 1, 0)
    new = sized_for(replica_set("new", 3, 2), d)
    old = sized_for(replica_set("old", 1, 1), d)
    assert sizes(rollout.scale_plan(d, new, [old])) == {"old": 0}
    # ... but a broken one, not available, does not touch the old pods.
    new.status.available_replicas = 0
    assert sizes(rollout.scale_plan(d, new, [old])) == {"new": 3, "old": 1}


def test_recreate_with_two_active_sets_is_left_to_the_rollout() -> None:
    d = deployment(4, strategy="Recreate")
    assert rollout.scale_plan(d, replica_set("new", 2, 2), [replica_set("old", 2, 1)]) == []


# ---------------------------------------------------------------------------- history


def empty_old(name: str, revision: int, **kw: int) -> apps_pb2.ReplicaSet:
    rs = replica_set(name, kw.get("replicas", 0), revision, revision=revision,
                     status_replicas=kw.get("status_replicas", 0))
    rs.metadata.generation = kw.get("generation", 1)
    rs.status.observed_generation = 1
    return rs


def names(rss: list[apps_pb2.ReplicaSet]) -> list[str]:
    return [rs.metadata.name for rs in rss]


def test_cleanup_deletes_the_lowest_revisions_beyond_the_limit() -> None:
    olds = [empty_old("r3", 3), empty_old("r1", 1), empty_old("r2", 2)]
    assert names(rollout.cleanup_candidates(deployment(history=1), olds)) == ["r1", "r2"]
    assert names(rollout.cleanup_candidates(deployment(history=0), olds)) == ["r1", "r2", "r3"]
    assert rollout.cleanup_candidates(deployment(history=3), olds) == []
    assert rollout.cleanup_candidates(deployment(history=2**31 - 1), olds) == []
    assert rollout.cleanup_candidates(deployment(), olds) == []  # no limit at all


def test_cleanup_keeps_sets_that_still_have_or_want_pods() -> None:
    olds = [empty_old("r1", 1), empty_old("r2", 2, status_replicas=1),
            empty_old("r3", 3, replicas=1), empty_old("r4", 4, replicas=1, status_replicas=1),
            empty_old("r5", 5, generation=2)]  # its controller has not seen the scale-down
    assert names(rollout.cleanup_candidates(deployment(history=0), olds)) == ["r1"]
    going = empty_old("r0", 0)
    going.metadata.deletion_timestamp.FromDatetime(NOW)
    assert rollout.cleanup_candidates(deployment(history=0), [going]) == []


# ---------------------------------------------------------------------------- status


def test_status_counts_and_availability() -> None:
    d = deployment(4, 1, 1)
    d.metadata.generation = 3
    d.status.collision_count = 2
    new = replica_set("new", 2, 1, available=1)
    new.status.ready_replicas = 2
    old = replica_set("old", 3, 0, available=3)
    old.status.ready_replicas = 3
    status = rollout.calculate_status([old, new], new, d, NOW)
    assert (status.observed_generation, status.replicas, status.updated_replicas,
            status.ready_replicas, status.available_replicas,
            status.unavailable_replicas, status.collision_count) == (3, 5, 2, 5, 4, 1, 2)
    available = rollout.get_condition(status, rollout.AVAILABLE)
    assert available is not None
    assert (available.status, available.reason, available.message) == (
        "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    old.status.available_replicas = 1
    status = rollout.calculate_status([old, new], new, d, NOW)
    available = rollout.get_condition(status, rollout.AVAILABLE)
    assert available is not None
    assert (available.status, available.reason, available.message) == (
        "False", "MinimumReplicasUnavailable",
        "Deployment does not have minimum availability.")
    assert status.unavailable_replicas == 3


def test_unavailable_replicas_never_negative() -> None:
    rs = replica_set("new", 1, 0, available=3)
    assert rollout.calculate_status([rs], rs, deployment(1), NOW).unavailable_replicas == 0


def test_set_condition_keeps_timestamps_unless_status_or_reason_changes() -> None:
    status = apps_pb2.DeploymentStatus()
    rollout.set_condition(status, rollout.new_condition("Progressing", "True", "A", "a", NOW))
    later = NOW + timedelta(minutes=1)
    rollout.set_condition(status, rollout.new_condition("Progressing", "True", "A", "b", later))
    cond = rollout.get_condition(status, "Progressing")
    assert cond is not None and cond.message == "a"  # same status and reason: untouched
    rollout.set_condition(status, rollout.new_condition("Progressing", "True", "B", "b", later))
    cond = rollout.get_condition(status, "Progressing")
    assert cond is not None
    assert cond.last_transition_time.ToDatetime(tzinfo=UTC) == NOW
    assert cond.last_update_time.ToDatetime(tzinfo=UTC) == later
    rollout.set_condition(status, rollout.new_condition("Progressing", "False", "C", "", later))
    cond = rollout.get_condition(status, "Progressing")
    assert cond is not None and cond.last_transition_time.ToDatetime(tzinfo=UTC) == later
    assert len(status.conditions) == 1


def rolling_out(deadline: int = 60) -> tuple[apps_pb2.Deployment, apps_pb2.ReplicaSet,
                                             apps_pb2.ReplicaSet]:
    d = deployment(3, 1, 0, deadline=deadline)
    new = replica_set("web-new", 1, 1, available=0)
    old = replica_set("web-old", 3, 0)
    d.status.CopyFrom(rollout.calculate_status([old, new], new, d, NOW))
    rollout.set_condition(d.status, rollout.new_condition(
        "Progressing", "True", rollout.NEW_RS_REASON, 'Created new replica set "web-new"', NOW))
    return d, new, old


def test_progress_refreshes_the_progressing_condition() -> None:
    d, new, old = rolling_out()
    new.status.available_replicas = 1
    later = NOW + timedelta(seconds=30)
    status = rollout.rollout_status([old, new], new, d, later)
    cond = rollout.get_condition(status, "Progressing")
    assert cond is not None
    assert (cond.status, cond.reason, cond.message) == (
        "True", "ReplicaSetUpdated", 'ReplicaSet "web-new" is progressing.')
    assert cond.last_update_time.ToDatetime(tzinfo=UTC) == later
    assert cond.last_transition_time.ToDatetime(tzinfo=UTC) == NOW


def test_no_progress_past_the_deadline_times_out() -> None:
    d, new, old = rolling_out(deadline=60)
    assert rollout.progress_recheck_after(d, d.status, NOW + timedelta(seconds=20)) == 40
    early = rollout.rollout_status([old, new], new, d, NOW + timedelta(seconds=59))
    assert early == d.status
    late = rollout.rollout_status([old, new], new, d, NOW + timedelta(seconds=61))
    cond = rollout.get_condition(late, "Progressing")
    assert cond is not None
    assert (cond.status, cond.reason, cond.message) == (
        "False", "ProgressDeadlineExceeded", 'ReplicaSet "web-new" has timed out progressing.')
    d.status.CopyFrom(late)
    assert rollout.progress_recheck_after(d, late, NOW + timedelta(seconds=62)) is None


def test_complete_rollout_is_reported_once_and_never_times_out() -> None:
    d, new, old = rolling_out(deadline=5)
    new = replica_set("web-new", 3, 1)
    old = replica_set("web-old", 0, 0)
    status = rollout.rollout_status([old, new], new, d, NOW + timedelta(hours=1))
    cond = rollout.get_condition(status, "Progressing")
    assert cond is not None
    assert (cond.status, cond.reason, cond.message) == (
        "True", "NewReplicaSetAvailable", 'ReplicaSet "web-new" has successfully progressed.')
    d.status.CopyFrom(status)
    assert rollout.progress_recheck_after(d, status, NOW + timedelta(hours=2)) is None
    assert rollout.rollout_status([old, new], new, d, NOW + timedelta(hours=2)) == status


def test_without_a_deadline_there_is_no_progressing_condition() -> None:
    d, new, old = rolling_out()
    d.spec.progress_deadline_seconds = 2**31 - 1
    status = rollout.rollout_status([old, new], new, d, NOW + timedelta(days=1))
    assert rollout.get_condition(status, "Progressing") is None


def test_pause_and_resume_conditions() -> None:
    d, _, _ = rolling_out()
    d.spec.paused = True
    assert rollout.set_paused_condition(d, NOW)
    cond = rollout.get_condition(d.status, "Progressing")
    assert cond is not None
    assert (cond.status, cond.reason, cond.message) == (
        "Unknown", "DeploymentPaused", "Deployment is paused")
    assert not rollout.set_paused_condition(d, NOW)
    d.spec.paused = False
    assert rollout.set_paused_condition(d, NOW)
    cond = rollout.get_condition(d.status, "Progressing")
    assert cond is not None and (cond.reason, cond.message) == (
        "DeploymentResumed", "Deployment is resumed")
    # A reported failure is not hidden by a pause.
    rollout.set_condition(d.status, rollout.new_condition(
        "Progressing", "False", "ProgressDeadlineExceeded", "x", NOW))
    d.spec.paused = True
    assert not rollout.set_paused_condition(d, NOW)


def test_old_pods_running() -> None:
    new = replica_set("new", 0, 1)
    old = replica_set("old", 0, 0, status_replicas=0)
    running, done = core_pb2.Pod(), core_pb2.Pod()
    running.status.phase, done.status.phase = "Running", "Succeeded"
    assert rollout.old_pods_running(new, [old], {"uid-old": [running]})
    assert not rollout.old_pods_running(new, [old], {"uid-old": [done], "uid-new": [running]})
    old.status.replicas = 1  # the set still counts one, whatever the pod cache says
    assert rollout.old_pods_running(new, [old], {})
