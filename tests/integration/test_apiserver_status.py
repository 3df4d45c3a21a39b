"""The real apiserver's errors carry Kubernetes' Status (reason, details, causes) in the gRPC
status details, and the client library decides on it, not on the message's words."""

from __future__ import annotations

import pytest

from skiff.api.status import CauseType, StatusReason
from skiff.api.v1 import core_pb2
from skiff.client import errors
from skiff.client.client import Client


def config_map(name: str, ns: str) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap()
    cm.metadata.name, cm.metadata.namespace = name, ns
    cm.data["k"] = "v"
    return cm


async def test_not_found_conflict_and_invalid_carry_their_reason(client: Client,
                                                                 ns: str) -> None:
    with pytest.raises(errors.NotFound) as not_found:
        await client.get(core_pb2.ConfigMap, "absent", ns)
    assert not_found.value.reason == StatusReason.NOT_FOUND
    status = not_found.value.status
    assert status is not None and status.code == 404
    assert (status.details.kind, status.details.name) == ("configmaps", "absent")

    created = await client.create(config_map("cfg", ns))
    with pytest.raises(errors.AlreadyExists) as exists:
        await client.create(config_map("cfg", ns))
    assert exists.value.reason == StatusReason.ALREADY_EXISTS

    stale = core_pb2.ConfigMap()
    stale.CopyFrom(created)
    created.data["k"] = "v2"
    await client.update(created)
    stale.data["k"] = "v3"
    with pytest.raises(errors.Conflict) as conflict:
        await client.update(stale)
    assert conflict.value.reason == StatusReason.CONFLICT
    assert conflict.value.status is not None and conflict.value.status.code == 409

    with pytest.raises(errors.Invalid) as invalid:
        await client.create(config_map("Bad_Name", ns))
    assert invalid.value.reason == StatusReason.INVALID
    assert [(c.reason, c.field) for c in invalid.value.causes] == [
        (CauseType.FIELD_VALUE_INVALID, "metadata.name")]

    with pytest.raises(errors.BadRequest) as bad:
        await client.list(core_pb2.Pod, ns, field_selector="spec.bogus=1")
    assert bad.value.reason == StatusReason.BAD_REQUEST


async def test_a_create_in_a_terminating_namespace_says_so_in_a_cause(client: Client,
                                                                       ns: str) -> None:
    held = config_map("held", ns)
    held.metadata.finalizers.append("example.com/hold")
    await client.create(held)
    await client.delete(core_pb2.Namespace, ns)
    try:
        with pytest.raises(errors.Forbidden) as refused:
            await client.create(config_map("late", ns))
        assert refused.value.has_cause(CauseType.NAMESPACE_TERMINATING)
    finally:
        live = await client.get(core_pb2.ConfigMap, "held", ns)
        del live.metadata.finalizers[:]
        await client.update(live)
