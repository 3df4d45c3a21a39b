"""The kernel's one home for facts every component asks: pod phases and QoS, conditions,
IntOrString percentages, back-off."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from skiff.api import pods
from skiff.api.conditions import set_condition, stamp_transition
from skiff.api.intstr import scaled_value
from skiff.api.meta import meta
from skiff.api.v1 import apps_pb2, core_pb2, meta_pb2
from skiff.client.backoff import Backoff, exponential_delay
from skiff.client.clock import FakeClock, sleep_or_wake

NOW = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("phase", "terminal"), [
    ("Pending", False), ("Running", False), ("Unknown", False), ("", False),
    ("Succeeded", True), ("Failed", True)])
def test_terminal_phases(phase: str, terminal: bool) -> None:
    pod = core_pb2.Pod(status=core_pb2.PodStatus(phase=phase))
    assert pods.is_terminal(pod) is terminal
    assert pods.is_active(pod) is not terminal


def test_a_pod_being_deleted_is_not_active() -> None:
    pod = core_pb2.Pod(status=core_pb2.PodStatus(phase="Running"))
    pod.metadata.deletion_timestamp.seconds = 1
    assert not pods.is_active(pod)


def _spec(*resources: tuple[dict[str, str], dict[str, str]]) -> core_pb2.PodSpec:
    spec = core_pb2.PodSpec()
    for requests, limits in resources:
        c = spec.containers.add(name=f"c{len(spec.containers)}")
        for name, value in requests.items():
            c.resources.requests[name].value = value
        for name, value in limits.items():
            c.resources.limits[name].value = value
    return spec


@pytest.mark.parametrize(("resources", "qos"), [
    ([({}, {})], "BestEffort"),
    # Only cpu and memory decide (Kubernetes' supportedQoSComputeResources).
    ([({"ephemeral-storage": "1Gi"}, {})], "BestEffort"),
    ([({"cpu": "0"}, {})], "BestEffort"),
    ([({"cpu": "100m"}, {})], "Burstable"),
    # Undefaulted limits alone: requests (empty) differ from limits, as in ComputePodQOS.
    ([({}, {"cpu": "1", "memory": "1Gi"})], "Burstable"),
    ([({"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})], "Guaranteed"),
    ([({"cpu": "500m", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})], "Burstable"),
    ([({}, {"cpu": "1", "memory": "1Gi"}), ({}, {"cpu": "1"})], "Burstable"),
    ([({}, {"cpu": "1", "memory": "1Gi"}), ({}, {})], "Burstable"),
])
def test_qos_class(resources: list[tuple[dict[str, str], dict[str, str]]], qos: str) -> None:
    assert pods.qos_class(_spec(*resources)) == qos


def test_set_condition_stamps_only_a_status_change() -> None:
    pod = core_pb2.Pod()
    cond, changed = set_condition(pod.status.conditions, "Ready", "False", NOW, reason="A")
    assert changed and cond.last_transition_time.ToDatetime(tzinfo=UTC) == NOW
    later = NOW + timedelta(seconds=5)
    _, changed = set_condition(pod.status.conditions, "Ready", "False", later, reason="B")
    assert changed and pod.status.conditions[0].reason == "B"
    assert pod.status.conditions[0].last_transition_time.ToDatetime(tzinfo=UTC) == NOW
    _, changed = set_condition(pod.status.conditions, "Ready", "False", later, reason="B")
    assert not changed
    _, changed = set_condition(pod.status.conditions, "Ready", "True", later)
    assert changed and len(pod.status.conditions) == 1
    assert pod.status.conditions[0].last_transition_time.ToDatetime(tzinfo=UTC) == later
    # Every kind's conditions share the shape.
    d = apps_pb2.Deployment()
    set_condition(d.status.conditions, "Available", "True", NOW)
    assert d.status.conditions[0].status == "True"


def test_a_condition_built_afresh_keeps_its_transition_while_its_status_stays() -> None:
    previous = core_pb2.PodCondition(type="Ready", status="True")
    previous.last_transition_time.FromDatetime(NOW)
    later = NOW + timedelta(seconds=9)
    same = core_pb2.PodCondition(type="Ready", status="True", reason="changed")
    stamp_transition(same, previous, later)
    assert same.last_transition_time.ToDatetime(tzinfo=UTC) == NOW
    flipped = core_pb2.PodCondition(type="Ready", status="False")
    stamp_transition(flipped, previous, later)
    assert flipped.last_transition_time.ToDatetime(tzinfo=UTC) == later
    new = core_pb2.PodCondition(type="Ready", status="True")
    stamp_transition(new, None, later)
    assert new.last_transition_time.ToDatetime(tzinfo=UTC) == later


@pytest.mark.parametrize(("value", "total", "up", "want"), [
    (meta_pb2.IntOrString(int_val=3), 10, True, 3),
    (meta_pb2.IntOrString(str_val="25%"), 10, True, 3),
    (meta_pb2.IntOrString(str_val="25%"), 10, False, 2),
    ("50%", 5, True, 3), (4, 10, False, 4), (None, 10, True, 0),
    (meta_pb2.IntOrString(), 10, True, 0),
])
def test_scaled_value(value: object, total: int, up: bool, want: int) -> None:
    assert scaled_value(value, total, round_up=up) == want  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["5", "x%", "abc"])
def test_scaled_value_refuses_a_string_that_is_not_a_percentage(value: str) -> None:
    with pytest.raises(ValueError, match="IntOrString"):
        scaled_value(value, 10, round_up=True)


def test_meta_is_typed_for_any_kind() -> None:
    for obj in (core_pb2.Pod(), apps_pb2.Deployment(), core_pb2.Node()):
        meta(obj).name = "x"
        assert meta(obj).name == "x"


@pytest.mark.parametrize(("failures", "want"), [(0, 0), (1, 1), (2, 2), (3, 4), (5, 10),
                                                (40, 10)])
def test_exponential_delay(failures: int, want: float) -> None:
    assert exponential_delay(failures, 1.0, 10.0) == want


async def test_backoff_doubles_per_key_and_starts_over_after_quiet() -> None:
    clock = FakeClock()
    backoff = Backoff(10, 300, clock=clock)
    assert backoff.remaining("a") == 0
    assert [backoff.next("a") for _ in range(7)] == [10, 20, 40, 80, 160, 300, 300]
    assert backoff.next("b") == 10
    assert backoff.remaining("a") == 300
    await clock.advance(100)
    assert backoff.remaining("a") == 200
    await clock.advance(600)  # quiet for more than twice the maximum
    assert backoff.next("a") == 10
    backoff.reset("a")
    assert backoff.remaining("a") == 0


async def test_backoff_on_wall_time_counts_from_a_given_moment() -> None:
    clock = FakeClock()
    backoff = Backoff(10, 300, clock=clock, wall=True)
    backoff.next("c")
    finished = clock.wall().timestamp() - 4
    assert backoff.remaining_since("c", finished) == 6


async def test_sleep_or_wake() -> None:
    clock = FakeClock()
    wake = asyncio.Event()
    task = asyncio.ensure_future(sleep_or_wake(clock, 5, wake))
    await clock.advance(5)
    assert await task is False
    task = asyncio.ensure_future(sleep_or_wake(clock, 5, wake))
    await clock.settle()
    wake.set()
    assert await task is True
    assert await sleep_or_wake(clock, 5, wake) is True  # set already: no wait
