"""The DaemonSet controller's pure logic: which nodes run a daemon pod, what a daemon pod
looks like, what the per-node loop and a rolling update decide, status counts and the
failed-pod back-off. Expected behaviour is Kubernetes' (pkg/controller/daemon)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest

from controllers.workloads.daemonset import (
    REVISION_HASH_LABEL,
    NodeFit,
    add_daemon_tolerations,
    daemon_set_counts,
    max_surge,
    max_unavailable,
    plan_node,
    rolling_update,
    set_node_affinity,
    target_node_name,
    template_hash,
)
from skiff.api.intstr import scaled_value
from skiff.api.scheduling import CompiledAffinity
from skiff.api.v1 import apps_pb2, core_pb2, meta_pb2
from skiff.client.backoff import Backoff
from skiff.client.clock import FakeClock

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
NEW, OLD = "newhash", "oldhash"


# --------------------------------------------------------------------------- builders


def make_ds(*, node_selector: dict[str, str] | None = None,
            tolerations: Iterable[core_pb2.Toleration] = (), node_name: str = "",
            strategy: str = "RollingUpdate", unavailable: int | str | None = None,
            surge: int | str | None = None) -> apps_pb2.DaemonSet:
    ds = apps_pb2.DaemonSet()
    ds.metadata.name, ds.metadata.namespace = "agent", "ns1"
    ds.spec.selector.match_labels["app"] = "agent"
    ds.spec.template.metadata.labels["app"] = "agent"
    spec = ds.spec.template.spec
    spec.containers.add(name="c", image="busybox", command=["sleep", "3600"])
    spec.node_selector.update(node_selector or {})
    spec.tolerations.extend(tolerations)
    spec.node_name = node_name
    ds.spec.update_strategy.type = strategy
    rolling = ds.spec.update_strategy.rolling_update
    for field, value in (("max_unavailable", unavailable), ("max_surge", surge)):
        if isinstance(value, int):
            getattr(rolling, field).int_val = value
        elif isinstance(value, str):
            getattr(rolling, field).str_val = value
    return ds


def make_node(name: str = "n1", *, labels: dict[str, str] | None = None,
              taints: Iterable[str] = ()) -> core_pb2.Node:
    node = core_pb2.Node()
    node.metadata.name = name
    node.metadata.labels.update(labels or {})
    for taint in taints:  # key=value:Effect
        key_value, _, effect = taint.partition(":")
        key, _, value = key_value.partition("=")
        node.spec.taints.add(key=key, value=value, effect=effect)
    return node


def make_pod(name: str, *, node: str = "n1", hash_: str = NEW, phase: str = "Running",
             ready: bool = True, ready_for: float = 3600, age: float = 3600,
             deleting: bool = False) -> core_pb2.Pod:
    pod = core_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace = name, "ns1"
    pod.metadata.labels[REVISION_HASH_LABEL] = hash_
    pod.metadata.creation_timestamp.FromDatetime(NOW - timedelta(seconds=age))
    if deleting:
        pod.metadata.deletion_timestamp.FromDatetime(NOW)
    pod.spec.node_name = node
    pod.status.phase = phase
    cond = pod.status.conditions.add(type="Ready", status="True" if ready else "False")
    cond.last_transition_time.FromDatetime(NOW - timedelta(seconds=ready_for))
    return pod


def toleration(key: str, effect: str = "", operator: str = "Exists", value: str = "",
               seconds: int | None = None) -> core_pb2.Toleration:
    t = core_pb2.Toleration(key=key, operator=operator, value=value, effect=effect)
    if seconds is not None:
        t.toleration_seconds = seconds
    return t


# --------------------------------------------------------------------------- pod shape


def test_daemon_tolerations_are_kubernetes_set() -> None:
    spec = core_pb2.PodSpec()
    add_daemon_tolerations(spec)
    got = {(t.key, t.operator, t.effect, t.HasField("toleration_seconds"))
           for t in spec.tolerations}
    assert got == {
        ("node.kubernetes.io/not-ready", "Exists", "NoExecute", False),
        ("node.kubernetes.io/unreachable", "Exists", "NoExecute", False),
        ("node.kubernetes.io/disk-pressure", "Exists", "NoSchedule", False),
        ("node.kubernetes.io/memory-pressure", "Exists", "NoSchedule", False),
        ("node.kubernetes.io/pid-pressure", "Exists", "NoSchedule", False),
        ("node.kubernetes.io/unschedulable", "Exists", "NoSchedule", False),
    }


def test_daemon_tolerations_replace_a_limited_one_and_keep_others() -> None:
    spec = core_pb2.PodSpec(host_network=True)
    spec.tolerations.extend([
        toleration("node.kubernetes.io/unreachable", "NoExecute", seconds=300),
        toleration("dedicated", "NoSchedule", operator="Equal", value="infra")])
    add_daemon_tolerations(spec)
    unreachable = [t for t in spec.tolerations if t.key == "node.kubernetes.io/unreachable"]
    assert len(unreachable) == 1 and not unreachable[0].HasField("toleration_seconds")
    keys = [t.key for t in spec.tolerations]
    assert "dedicated" in keys
    assert "node.kubernetes.io/network-unavailable" in keys  # hostNetwork pods only
    add_daemon_tolerations(spec)
    assert [t.key for t in spec.tolerations] == keys  # idempotent


def test_node_affinity_replaces_required_terms_and_keeps_preferred() -> None:
    spec = core_pb2.PodSpec()
    affinity = spec.affinity.node_affinity
    required = affinity.required_during_scheduling_ignored_during_execution
    required.node_selector_terms.add().match_expressions.add(
        key="zone", operator="In", values=["a"])
    required.node_selector_terms.add().match_fields.add(
        key="metadata.name", operator="In", values=["elsewhere"])
    affinity.preferred_during_scheduling_ignored_during_execution.add(weight=5)
    set_node_affinity(spec, "n7")
    terms = required.node_selector_terms
    assert len(terms) == 1 and not terms[0].match_expressions
    assert [(f.key, f.operator, list(f.values)) for f in terms[0].match_fields] == [
        ("metadata.name", "In", ["n7"])]
    assert len(affinity.preferred_during_scheduling_ignored_during_execution) == 1
    compiled = CompiledAffinity.of(spec)
    assert compiled.matches({}, "n7") and not compiled.matches({"zone": "a"}, "n8")


def test_target_node_name() -> None:
    pod = core_pb2.Pod()
    assert target_node_name(pod) is None
    set_node_affinity(pod.spec, "n2")
    assert target_node_name(pod) == "n2"
    pod.spec.node_name = "n3"  # bound: the binding wins
    assert target_node_name(pod) == "n3"


def test_template_hash_is_stable_and_tracks_content() -> None:
    a, b = make_ds(), make_ds()
    assert template_hash(a.spec.template) == template_hash(b.spec.template)
    assert template_hash(a.spec.template) == template_hash(a.spec.template)
    b.spec.template.spec.containers[0].image = "busybox:2"
    assert template_hash(a.spec.template) != template_hash(b.spec.template)
    hashed = template_hash(a.spec.template)
    assert hashed and all(c in "bcdfghjklmnpqrstvwxz2456789" for c in hashed)
    c = make_ds(strategy="OnDelete")  # the strategy is not part of the template
    assert template_hash(c.spec.template) == hashed


# --------------------------------------------------------------------------- eligibility

FIT_CASES = [
    ("plain node", make_ds(), make_node(), (True, True)),
    ("nodeSelector matches", make_ds(node_selector={"role": "edge"}),
     make_node(labels={"role": "edge"}), (True, True)),
    ("nodeSelector does not match", make_ds(node_selector={"role": "edge"}),
     make_node(labels={"role": "core"}), (False, False)),
    ("untolerated NoSchedule: no new pod, the old one stays", make_ds(),
     make_node(taints=["dedicated=db:NoSchedule"]), (False, True)),
    ("untolerated NoExecute: no pod at all", make_ds(),
     make_node(taints=["dedicated=db:NoExecute"]), (False, False)),
    ("tolerated NoExecute", make_ds(tolerations=[toleration("dedicated")]),
     make_node(taints=["dedicated=db:NoExecute"]), (True, True)),
    ("PreferNoSchedule does not matter", make_ds(),
     make_node(taints=["x:PreferNoSchedule"]), (True, True)),
    ("cordoned nodes still run daemons", make_ds(),
     make_node(taints=["node.kubernetes.io/unschedulable:NoSchedule"]), (True, True)),
    ("unreachable nodes keep daemons", make_ds(),
     make_node(taints=["node.kubernetes.io/unreachable:NoExecute",
                       "node.kubernetes.io/unreachable:NoSchedule"]), (False, True)),
    ("template nodeName elsewhere", make_ds(node_name="n2"), make_node("n1"), (False, False)),
    ("template nodeName here", make_ds(node_name="n1"), make_node("n1"), (True, True)),
]


@pytest.mark.parametrize(("ds", "node", "want"), [c[1:] for c in FIT_CASES],
                         ids=[c[0] for c in FIT_CASES])
def test_node_fit(ds: apps_pb2.DaemonSet, node: core_pb2.Node, want: tuple[bool, bool]
                  ) -> None:
    assert NodeFit.of(ds).check(node) == want


def test_node_fit_uses_required_affinity() -> None:
    ds = make_ds()
    ds.spec.template.spec.affinity.node_affinity \
        .required_during_scheduling_ignored_during_execution.node_selector_terms.add() \
        .match_expressions.add(key="disk", operator="Exists")
    fit = NodeFit.of(ds)
    assert fit.check(make_node(labels={"disk": "ssd"})) == (True, True)
    assert fit.check(make_node()) == (False, False)


# --------------------------------------------------------------------------- counting


def int_or_string(value: int | str) -> meta_pb2.IntOrString:
    return (meta_pb2.IntOrString(int_val=value) if isinstance(value, int)
            else meta_pb2.IntOrString(str_val=value))


@pytest.mark.parametrize(("value", "total", "round_up", "want"), [
    (2, 10, True, 2), ("25%", 10, True, 3), ("25%", 10, False, 2), ("100%", 3, True, 3),
    ("0%", 5, True, 0)])
def test_scaled_value(value: int | str, total: int, round_up: bool, want: int) -> None:
    assert scaled_value(int_or_string(value), total, round_up=round_up) == want


@pytest.mark.parametrize("bad", ["bad%", "5"])
def test_a_malformed_bound_counts_as_zero(bad: str) -> None:
    # Validation refuses these; a DaemonSet that has one anyway is not a crash.
    assert max_surge(make_ds(unavailable=0, surge=bad), 5) == 0
    assert max_unavailable(make_ds(unavailable=bad, surge=1), 5) == 0
    assert max_unavailable(make_ds(unavailable=bad, surge=0), 5) == 1  # must progress


def test_update_bounds() -> None:
    assert max_unavailable(make_ds(unavailable=1, surge=0), 10) == 1
    assert max_unavailable(make_ds(unavailable="30%", surge=0), 10) == 3
    assert max_surge(make_ds(unavailable=0, surge="20%"), 9) == 2
    assert max_unavailable(make_ds(unavailable=0, surge=0), 4) == 1  # must progress
    assert max_unavailable(make_ds(), 4) == 1  # unset: the default
    assert max_surge(make_ds(strategy="OnDelete", surge=3), 4) == 0


# --------------------------------------------------------------------------- per-node loop


def plan(should: tuple[bool, bool], pods: list[core_pb2.Pod], *, surge: bool = False,
         min_ready: int = 0) -> tuple[bool, list[str], list[str], list[str]]:
    p = plan_node(*should, pods, NEW, surge=surge, min_ready_seconds=min_ready, now=NOW)
    return (p.create, [x.metadata.name for x in p.delete], [x.metadata.name for x in p.failed],
            [x.metadata.name for x in p.succeeded])


def test_plan_creates_on_a_node_without_a_pod() -> None:
    assert plan((True, True), []) == (True, [], [], [])
    assert plan((False, True), []) == (False, [], [], [])


def test_plan_keeps_the_oldest_of_duplicates() -> None:
    pods = [make_pod("young", age=10), make_pod("old", age=100), make_pod("mid", age=50)]
    assert plan((True, True), pods) == (False, ["mid", "young"], [], [])


def test_plan_prefers_bound_pods_when_keeping_one() -> None:
    pods = [make_pod("bound", age=10), make_pod("unbound", node="", age=100)]
    assert plan((True, True), pods)[1] == ["unbound"]


def test_plan_removes_pods_from_nodes_that_should_not_run_them() -> None:
    pods = [make_pod("a"), make_pod("going", deleting=True)]
    assert plan((False, False), pods) == (False, ["a"], [], [])


def test_plan_hands_failed_and_succeeded_pods_back() -> None:
    pods = [make_pod("f", phase="Failed"), make_pod("s", phase="Succeeded")]
    assert plan((True, True), pods) == (False, [], ["f"], ["s"])


def test_plan_waits_while_the_only_pod_terminates() -> None:
    # Without surge the replacement waits until the old pod is gone (host ports!).
    assert plan((True, True), [make_pod("old", deleting=True)]) == (False, [], [], [])
    # With surge a terminating pod does not hold the node back.
    assert plan((True, True), [make_pod("old", deleting=True)], surge=True)[0] is True


def test_plan_with_surge_keeps_old_until_new_is_available() -> None:
    old = make_pod("old", hash_=OLD, age=100)
    starting = make_pod("new", hash_=NEW, age=5, ready=False)
    assert plan((True, True), [old, starting], surge=True)[1] == []
    available = make_pod("new", hash_=NEW, age=5, ready_for=60)
    assert plan((True, True), [old, available], surge=True, min_ready=10)[1] == ["old"]
    not_yet = make_pod("new", hash_=NEW, age=5, ready_for=5)
    assert plan((True, True), [old, not_yet], surge=True, min_ready=10)[1] == []
    broken_old = make_pod("old", hash_=OLD, age=100, ready=False)
    assert plan((True, True), [broken_old, starting], surge=True)[1] == ["old"]


# --------------------------------------------------------------------------- rolling update


def run_update(node_to_pods: dict[str, list[core_pb2.Pod]], *, surge: int = 0,
               unavailable: int = 1, min_ready: int = 0,
               runs: Iterable[str] | None = None) -> tuple[list[str], list[str]]:
    should = set(node_to_pods if runs is None else runs)
    delete, create = rolling_update(node_to_pods, should.__contains__, NEW,
                                    max_surge=surge, max_unavailable=unavailable,
                                    min_ready_seconds=min_ready, now=NOW)
    return sorted(p.metadata.name for p in delete), sorted(create)


def test_rolling_update_deletes_up_to_max_unavailable() -> None:
    nodes = {f"n{i}": [make_pod(f"p{i}", node=f"n{i}", hash_=OLD)] for i in range(4)}
    delete, create = run_update(nodes, unavailable=1)
    assert len(delete) == 1 and create == []
    assert len(run_update(nodes, unavailable=3)[0]) == 3


def test_rolling_update_waits_for_the_replaced_node() -> None:
    nodes = {"n0": [make_pod("p0", node="n0", hash_=OLD)],
             "n1": [make_pod("p1", node="n1", hash_=NEW, ready=False)],  # starting
             "n2": [make_pod("p2", node="n2", hash_=OLD)]}
    assert run_update(nodes, unavailable=1) == ([], [])
    nodes["n1"] = [make_pod("p1", node="n1", hash_=NEW, ready_for=1)]
    assert run_update(nodes, unavailable=1, min_ready=5) == ([], [])  # not available yet
    nodes["n1"] = [make_pod("p1", node="n1", hash_=NEW, ready_for=10)]
    assert len(run_update(nodes, unavailable=1, min_ready=5)[0]) == 1


def test_rolling_update_counts_empty_and_terminating_nodes_as_unavailable() -> None:
    nodes = {"n0": [make_pod("p0", node="n0", hash_=OLD)],
             "n1": [make_pod("p1", node="n1", hash_=OLD, deleting=True)],
             "n2": []}
    assert run_update(nodes, unavailable=2) == ([], [])
    assert run_update(nodes, unavailable=3) == (["p0"], [])


def test_rolling_update_replaces_unavailable_old_pods_regardless() -> None:
    nodes = {"n0": [make_pod("p0", node="n0", hash_=OLD, ready=False)],
             "n1": [make_pod("p1", node="n1", hash_=OLD, ready=False)],
             "n2": [make_pod("p2", node="n2", hash_=OLD)]}
    assert run_update(nodes, unavailable=1) == (["p0", "p1"], [])


def test_rolling_update_with_surge_starts_new_pods_beside_old_ones() -> None:
    nodes = {f"n{i}": [make_pod(f"p{i}", node=f"n{i}", hash_=OLD)] for i in range(3)}
    delete, create = run_update(nodes, surge=1, unavailable=0)
    assert delete == [] and len(create) == 1
    # One new pod is starting: the surge budget is used up.
    nodes["n0"].append(make_pod("q0", node="n0", hash_=NEW, ready=False, age=1))
    assert run_update(nodes, surge=1, unavailable=0) == ([], [])
    # Once it is available the old pod on its node goes, and the next node surges.
    nodes["n0"][1] = make_pod("q0", node="n0", hash_=NEW, ready_for=30, age=40)
    delete, create = run_update(nodes, surge=1, unavailable=0)
    assert delete == ["p0"] and len(create) == 1 and create[0] != "n0"


def test_rolling_update_with_surge_replaces_unavailable_old_pods_at_once() -> None:
    nodes = {"n0": [make_pod("p0", node="n0", hash_=OLD, ready=False)],
             "n1": [make_pod("p1", node="n1", hash_=OLD)]}
    assert run_update(nodes, surge=1, unavailable=0) == ([], ["n0", "n1"])
    # ...but an unavailable old pod on a node that should not run one just goes.
    assert run_update(nodes, surge=1, unavailable=0, runs=["n1"]) == (["p0"], ["n1"])


# --------------------------------------------------------------------------- status


def test_counts() -> None:
    ds = make_ds(node_selector={"run": "yes"})
    fit = NodeFit.of(ds)
    nodes = [make_node("a", labels={"run": "yes"}), make_node("b", labels={"run": "yes"}),
             make_node("c", labels={"run": "yes"}), make_node("d"),
             make_node("e", labels={"run": "yes"})]
    node_to_pods = {
        "a": [make_pod("pa", node="a", ready_for=60)],
        "b": [make_pod("pb", node="b", hash_=OLD, ready_for=5)],  # ready, not available
        "c": [make_pod("pc", node="c", ready=False)],
        "d": [make_pod("pd", node="d")],  # misscheduled
        "gone": [make_pod("px", node="gone")],  # not counted at all
    }
    counts = daemon_set_counts(nodes, fit, node_to_pods, NEW, 10, NOW)
    assert (counts.desired, counts.current, counts.misscheduled, counts.ready,
            counts.updated, counts.available, counts.unavailable) == (4, 3, 1, 2, 2, 1, 3)


def test_counts_look_at_the_oldest_pod_of_a_node() -> None:
    fit = NodeFit.of(make_ds())
    pods = {"a": [make_pod("young", node="a", ready=False, age=1),
                  make_pod("old", node="a", hash_=OLD, age=100)]}
    counts = daemon_set_counts([make_node("a")], fit, pods, NEW, 0, NOW)
    assert (counts.current, counts.ready, counts.updated) == (1, 1, 0)


# --------------------------------------------------------------------------- back-off


async def test_failed_pod_backoff_doubles_and_resets() -> None:
    clock = FakeClock()
    backoff = Backoff(1.0, 8.0, clock=clock)  # as the controller builds it
    assert backoff.remaining("k") == 0
    backoff.next("k")
    assert backoff.remaining("k") == pytest.approx(1.0)
    await clock.advance(1.0)
    assert backoff.remaining("k") == 0
    backoff.next("k")
    assert backoff.remaining("k") == pytest.approx(2.0)
    for want in (4.0, 8.0, 8.0):  # doubling, up to the maximum
        await clock.advance(5.0)
        backoff.next("k")
        assert backoff.remaining("k") == pytest.approx(want)
    await clock.advance(17.0)  # idle for longer than twice the maximum: starts over
    backoff.next("k")
    assert backoff.remaining("k") == pytest.approx(1.0)
    assert backoff.remaining("other") == 0
