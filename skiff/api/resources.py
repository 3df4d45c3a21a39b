"""What a pod asks of a node: its effective requests and limits.

Init containers run one at a time before the app containers, so a pod books, per resource,
the larger of the sum over its containers and the largest single init container (as
Kubernetes computes it for scheduling, quota and `describe node`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from skiff.api.quantity import Quantity, QuantityError, parse_quantity
from skiff.api.v1 import core_pb2, meta_pb2

__all__ = ["pod_limits", "pod_requests"]


def pod_requests(spec: core_pb2.PodSpec) -> dict[str, Quantity]:
    return _effective(spec, "requests")


def pod_limits(spec: core_pb2.PodSpec) -> dict[str, Quantity]:
    return _effective(spec, "limits")


def _effective(spec: core_pb2.PodSpec, attr: str) -> dict[str, Quantity]:
    total: dict[str, Quantity] = {}
    for c in spec.containers:
        for name, amount in _amounts(getattr(c.resources, attr)):
            total[name] = total[name] + amount if name in total else amount
    for c in spec.init_containers:
        for name, amount in _amounts(getattr(c.resources, attr)):
            if name not in total or amount > total[name]:
                total[name] = amount
    return total


def _amounts(quantities: Mapping[str, meta_pb2.Quantity]) -> Iterator[tuple[str, Quantity]]:
    # Stored objects were validated; a value that still does not parse counts as nothing
    # rather than stopping whoever reads it (a scheduler, `describe`).
    for name, q in quantities.items():
        try:
            yield name, parse_quantity(q.value)
        except QuantityError:
            continue
