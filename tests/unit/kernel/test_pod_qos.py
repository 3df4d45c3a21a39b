"""The QoS class (skiff.api.pods.qos_class) in the cases the kubelet's status relies on:
amounts written differently, missing limits, init containers. The kernel's own table is
in test_facts.py."""

from __future__ import annotations

import pytest

from skiff.api.pods import qos_class
from skiff.api.v1 import core_pb2, meta_pb2


def _resources(container: core_pb2.Container, requests: dict[str, str],
               limits: dict[str, str]) -> None:
    for name, value in requests.items():
        container.resources.requests[name].CopyFrom(meta_pb2.Quantity(value=value))
    for name, value in limits.items():
        container.resources.limits[name].CopyFrom(meta_pb2.Quantity(value=value))


@pytest.mark.parametrize(("resources", "init", "qos"), [
    ([({}, {})], None, "BestEffort"),
    ([({"cpu": "0"}, {})], None, "BestEffort"),  # zero amounts do not count
    ([({"cpu": "100m"}, {})], None, "Burstable"),
    ([({"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})], None, "Guaranteed"),
    ([({"cpu": "1000m", "memory": "1024Mi"}, {"cpu": "1", "memory": "1Gi"})], None,
     "Guaranteed"),  # equal amounts written differently
    ([({"cpu": "500m", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})], None, "Burstable"),
    ([({"cpu": "1"}, {"cpu": "1"})], None, "Burstable"),  # no memory limit
    ([({"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"}), ({}, {})], None,
     "Burstable"),  # a second container without limits
    ([({"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})], ({}, {}),
     "Burstable"),  # init containers count too
    ([({"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})],
     ({"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"}), "Guaranteed"),
])
def test_qos_class(resources: list[tuple[dict[str, str], dict[str, str]]],
                   init: tuple[dict[str, str], dict[str, str]] | None, qos: str) -> None:
    spec = core_pb2.PodSpec()
    for i, (requests, limits) in enumerate(resources):
        _resources(spec.containers.add(name=f"c{i}"), requests, limits)
    if init is not None:
        _resources(spec.init_containers.add(name="init"), *init)
    assert qos_class(spec) == qos
