"""The node lifecycle controller's pure logic (heartbeat observation, Unknown marking,
condition taints, taint-based eviction) and pod GC's verdicts, with Kubernetes' rules."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest

from controllers.nodes.nodelifecycle import (
    NodeHealth,
    eviction_delay,
    mark_unknown,
    observe,
    reconcile_taints,
)
from controllers.nodes.podgc import ORPHANED, OUT_OF_SERVICE, UNSCHEDULED_TERMINATING, gc_reason
from skiff.api.v1 import coordination_pb2, core_pb2

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def make_node(ready: str | None = "True", *, heartbeat: int = 100,
              conditions: dict[str, str] | None = None, taints: Iterable[core_pb2.Taint] = (),
              unschedulable: bool = False) -> core_pb2.Node:
    node = core_pb2.Node()
    node.metadata.name = "n1"
    node.metadata.creation_timestamp.FromDatetime(NOW - timedelta(hours=1))
    if ready is not None:
        cond = node.status.conditions.add(type="Ready", status=ready, reason="KubeletReady")
        cond.last_heartbeat_time.seconds = heartbeat
        cond.last_transition_time.seconds = 50
    for type_, status in (conditions or {}).items():
        node.status.conditions.add(type=type_, status=status)
    node.spec.taints.extend(taints)
    node.spec.unschedulable = unschedulable
    return node


def make_lease(renew: int) -> coordination_pb2.Lease:
    lease = coordination_pb2.Lease()
    lease.metadata.name = "n1"
    lease.spec.renew_time.seconds = renew
    return lease


def taint(key: str, effect: str, value: str = "", added: datetime | None = None
          ) -> core_pb2.Taint:
    t = core_pb2.Taint(key=key, value=value, effect=effect)
    if added is not None:
        t.time_added.FromDatetime(added)
    return t


def toleration(key: str = "", effect: str = "", seconds: int | None = None
               ) -> core_pb2.Toleration:
    t = core_pb2.Toleration(key=key, operator="Exists", effect=effect)
    if seconds is not None:
        t.toleration_seconds = seconds
    return t


UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"


# --------------------------------------------------------------------------- observation


def test_first_sight_starts_the_clock() -> None:
    health = observe(None, make_node(), make_lease(10), now=5.0)
    assert health.probe == 5.0


def test_lease_renewals_and_heartbeats_move_the_probe_time() -> None:
    start = observe(None, make_node(heartbeat=100), make_lease(10), now=0.0)
    same = observe(start, make_node(heartbeat=100), make_lease(10), now=30.0)
    assert same.probe == 0.0  # nothing changed: the node has been silent for 30 s
    renewed = observe(same, make_node(heartbeat=100), make_lease(20), now=31.0)
    assert renewed.probe == 31.0
    older = observe(renewed, make_node(heartbeat=100), make_lease(15), now=40.0)
    assert older.probe == 31.0 and older.lease_renew == renewed.lease_renew
    no_lease = observe(older, make_node(heartbeat=100), None, now=41.0)
    assert no_lease.probe == 31.0
    beat = observe(no_lease, make_node(heartbeat=160), None, now=50.0)
    assert beat.probe == 50.0


def test_the_controllers_own_unknown_write_is_no_heartbeat() -> None:
    node = make_node(heartbeat=100)
    health = NodeHealth(0.0, (100, 0), (10, 0))
    status = mark_unknown(node, NOW)
    assert status is not None
    node.status.CopyFrom(status)
    assert observe(health, node, make_lease(10), now=60.0).probe == 0.0


# --------------------------------------------------------------------------- Unknown


def test_mark_unknown_sets_kubelet_conditions_unknown() -> None:
    node = make_node("True", conditions={"MemoryPressure": "False",
                                         "NetworkUnavailable": "False"})
    status = mark_unknown(node, NOW)
    assert status is not None
    by_type = {c.type: c for c in status.conditions}
    ready = by_type["Ready"]
    assert (ready.status, ready.reason, ready.message) == (
        "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
    assert ready.last_transition_time.ToDatetime(tzinfo=UTC) == NOW
    assert ready.last_heartbeat_time.seconds == 100  # the kubelet's last word, kept
    assert by_type["MemoryPressure"].status == "Unknown"
    assert by_type["NetworkUnavailable"].status == "False"  # not the kubelet's
    assert "DiskPressure" not in by_type and "PIDPressure" not in by_type
    assert mark_unknown(make_node("Unknown"), NOW) is None


def test_mark_unknown_of_a_node_that_never_reported() -> None:
    status = mark_unknown(make_node(None), NOW)
    assert status is not None
    [ready] = status.conditions
    assert (ready.type, ready.status, ready.reason, ready.message) == (
        "Ready", "Unknown", "NodeStatusNeverUpdated", "Kubelet never posted node status.")


# --------------------------------------------------------------------------- taints


def keys(taints: Iterable[core_pb2.Taint] | None) -> set[tuple[str, str]]:
    assert taints is not None
    return {(t.key, t.effect) for t in taints}


def test_taints_follow_the_ready_condition() -> None:
    assert keys(reconcile_taints(make_node("False"), NOW)) == {
        (NOT_READY, "NoExecute"), (NOT_READY, "NoSchedule")}
    unknown = reconcile_taints(make_node("Unknown", taints=[
        taint(NOT_READY, "NoExecute", added=NOW), taint(NOT_READY, "NoSchedule")]), NOW)
    assert keys(unknown) == {(UNREACHABLE, "NoExecute"), (UNREACHABLE, "NoSchedule")}
    assert all(t.time_added.ToDatetime(tzinfo=UTC) == NOW for t in unknown or [])
    back = reconcile_taints(make_node("True", taints=[
        taint(UNREACHABLE, "NoExecute", added=NOW), taint("dedicated", "NoExecute", "db")]),
        NOW)
    assert keys(back) == {("dedicated", "NoExecute")}  # a user's taint stays


def test_taints_for_pressure_and_cordon() -> None:
    node = make_node("True", conditions={"MemoryPressure": "True", "DiskPressure": "False",
                                         "PIDPressure": "True"}, unschedulable=True)
    assert keys(reconcile_taints(node, NOW)) == {
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule")}


def test_taints_unchanged_keep_their_time() -> None:
    earlier = NOW - timedelta(minutes=5)
    node = make_node("Unknown", taints=[taint(UNREACHABLE, "NoExecute", added=earlier),
                                        taint(UNREACHABLE, "NoSchedule", added=earlier)])
    assert reconcile_taints(node, NOW) is None
    assert reconcile_taints(make_node("True"), NOW) is None


# --------------------------------------------------------------------------- eviction

TAINTED_AT = NOW - timedelta(seconds=10)
UNREACHABLE_NOW = [taint(UNREACHABLE, "NoExecute", added=TAINTED_AT),
                   taint(UNREACHABLE, "NoSchedule", added=TAINTED_AT)]

EVICTION_CASES = [
    ("no toleration: at once", [], UNREACHABLE_NOW, 0.0),
    ("tolerated for good", [toleration(UNREACHABLE, "NoExecute")], UNREACHABLE_NOW, None),
    ("wildcard toleration", [toleration()], UNREACHABLE_NOW, None),
    ("300 s from the taint's timeAdded", [toleration(UNREACHABLE, "NoExecute", 300)],
     UNREACHABLE_NOW, 290.0),
    ("time is up", [toleration(UNREACHABLE, "NoExecute", 5)], UNREACHABLE_NOW, 0.0),
    ("NoSchedule taints evict nobody", [], [taint(UNREACHABLE, "NoSchedule")], None),
    ("the earliest deadline wins",
     [toleration(UNREACHABLE, "NoExecute", 300), toleration("maintenance", "", 60)],
     [*UNREACHABLE_NOW, taint("maintenance", "NoExecute", added=NOW)], 60.0),
    ("one untolerated taint is enough", [toleration(UNREACHABLE, "NoExecute")],
     [*UNREACHABLE_NOW, taint("other", "NoExecute", added=NOW)], 0.0),
]


@pytest.mark.parametrize(("tolerations", "taints", "want"), [c[1:] for c in EVICTION_CASES],
                         ids=[c[0] for c in EVICTION_CASES])
def test_eviction_delay(tolerations: list[core_pb2.Toleration],
                        taints: list[core_pb2.Taint], want: float | None) -> None:
    got = eviction_delay(tolerations, taints, NOW)
    assert got == (pytest.approx(want) if want is not None else None)


def test_eviction_of_a_taint_without_time_added_counts_from_first_sight() -> None:
    bare = taint("maintenance", "NoExecute", "x")
    tolerations = [toleration("maintenance", "NoExecute", 30)]
    seen = {("maintenance", "x", "NoExecute"): NOW - timedelta(seconds=20)}
    assert eviction_delay(tolerations, [bare], NOW, seen) == pytest.approx(10.0)
    assert eviction_delay(tolerations, [bare], NOW) == pytest.approx(30.0)


# --------------------------------------------------------------------------- pod GC


def make_pod(node: str = "n1", *, deleting: bool = False) -> core_pb2.Pod:
    pod = core_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace = "p", "ns"
    pod.spec.node_name = node
    if deleting:
        pod.metadata.deletion_timestamp.FromDatetime(NOW)
    return pod


OUT_OF_SERVICE_TAINT = taint("node.kubernetes.io/out-of-service", "NoExecute", "shutdown")

GC_CASES = [
    ("bound to a live node", make_pod(), make_node(), None),
    ("bound to a missing node", make_pod(), None, ORPHANED),
    ("unscheduled", make_pod(""), None, None),
    ("unscheduled, terminating", make_pod("", deleting=True), None, UNSCHEDULED_TERMINATING),
    ("terminating on a ready node", make_pod(deleting=True), make_node(), None),
    ("terminating on a node that is merely down", make_pod(deleting=True),
     make_node("Unknown"), None),
    ("terminating on an out-of-service node", make_pod(deleting=True),
     make_node("Unknown", taints=[OUT_OF_SERVICE_TAINT]), OUT_OF_SERVICE),
    ("running on an out-of-service node", make_pod(),
     make_node("Unknown", taints=[OUT_OF_SERVICE_TAINT]), None),
    ("out-of-service taint on a ready node", make_pod(deleting=True),
     make_node("True", taints=[OUT_OF_SERVICE_TAINT]), None),
]


@pytest.mark.parametrize(("pod", "node", "want"), [c[1:] for c in GC_CASES],
                         ids=[c[0] for c in GC_CASES])
def test_gc_reason(pod: core_pb2.Pod, node: core_pb2.Node | None, want: str | None) -> None:
    assert gc_reason(pod, node) == want
