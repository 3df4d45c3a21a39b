"""The kubelet's status writes never overwrite what another component wrote in between:
each is conditional on the resourceVersion the status was built from, and a Conflict
makes the kubelet read the pod afresh and build its status over it.

The client here keeps one pod as the apiserver does: a resourceVersion that moves with
every write, and an UpdateStatus with another (non-empty) version refused as a Conflict.
tests/integration/test_kubelet_status_writes.py does the same against the real apiserver.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kubelet.pods.status_writer import CONFLICT_RETRIES, StatusWriter
from kubelet.runtime import (
    LABEL_CONTAINER_NAME,
    LABEL_POD_UID,
    LABEL_SANDBOX,
    ContainerInfo,
    State,
)
from skiff.api.v1 import core_pb2
from skiff.client import errors
from skiff.client.clock import FakeClock

UID = "uid-1"


class VersionedClient:
    """One pod, stored as the apiserver stores it (status writes replace the status)."""

    def __init__(self, pod: core_pb2.Pod) -> None:
        self.pod = core_pb2.Pod()
        self.pod.CopyFrom(pod)
        self.pod.metadata.resource_version = "1"
        self.writes = 0
        self.conflicts = 0
        self.always_conflict = False

    def copy(self) -> core_pb2.Pod:
        out = core_pb2.Pod()
        out.CopyFrom(self.pod)
        return out

    async def get(self, kind: type[core_pb2.Pod], name: str, namespace: str = "",
                  ) -> core_pb2.Pod:
        if name != self.pod.metadata.name:
            raise errors.NotFound(f'pods "{name}" not found')
        return self.copy()

    async def update_status(self, pod: core_pb2.Pod) -> core_pb2.Pod:
        wanted = pod.metadata.resource_version
        if self.always_conflict or (wanted and wanted != self.pod.metadata.resource_version):
            self.conflicts += 1
            raise errors.Conflict("the object has been modified; please apply your changes "
                                  "to the latest version and try again")
        self.writes += 1
        self.pod.status.CopyFrom(pod.status)
        self.pod.metadata.resource_version = str(int(self.pod.metadata.resource_version) + 1)
        return self.copy()

    def other_writer_adds(self, condition: core_pb2.PodCondition) -> None:
        """Another component (an eviction, a readiness gate's controller) writes."""
        self.pod.status.conditions.append(condition)
        self.pod.metadata.resource_version = str(int(self.pod.metadata.resource_version) + 1)


def make_pod() -> core_pb2.Pod:
    pod = core_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace, pod.metadata.uid = "p", "default", UID
    pod.spec.containers.add(name="app", image="busybox")
    pod.spec.restart_policy = "Always"
    return pod


def runtime_state() -> tuple[list[ContainerInfo], list[ContainerInfo]]:
    sandbox = ContainerInfo(id="sb", labels={LABEL_POD_UID: UID, LABEL_SANDBOX: "true"},
                            image="pause", image_id="", state=State.RUNNING, created_at=1.0,
                            ip="10.244.0.5")
    app = ContainerInfo(id="c", labels={LABEL_POD_UID: UID, LABEL_CONTAINER_NAME: "app"},
                        image="busybox", image_id="", state=State.RUNNING, created_at=2.0,
                        started_at=2.0)
    return [sandbox], [app]


def writer(client: VersionedClient) -> StatusWriter:
    return StatusWriter(client, node_ip="10.0.0.1", ready=lambda cid: True,
                        started=lambda cid: True,
                        clock=FakeClock(wall_start=datetime(2024, 5, 1, tzinfo=UTC)))


DISRUPTION = core_pb2.PodCondition(type="DisruptionTarget", status="True",
                                   reason="EvictionByEvictionAPI",
                                   message="Eviction API: evicting")
CUSTOM = core_pb2.PodCondition(type="example.com/gate", status="True")


async def test_a_condition_written_in_between_survives_the_kubelets_write() -> None:
    client = VersionedClient(make_pod())
    seen = client.copy()  # what the kubelet's informer holds
    client.other_writer_adds(DISRUPTION)
    client.other_writer_adds(CUSTOM)
    sandboxes, containers = runtime_state()
    await writer(client).write(seen, sandboxes, containers, {})
    stored = client.pod.status
    types = [c.type for c in stored.conditions]
    assert "DisruptionTarget" in types and "example.com/gate" in types
    assert next(c for c in stored.conditions if c.type == "DisruptionTarget") == DISRUPTION
    # And the kubelet's own fields went in.
    assert stored.phase == "Running" and stored.pod_ip == "10.244.0.5"
    assert next(c for c in stored.conditions if c.type == "Ready").status == "True"
    assert client.conflicts == 1 and client.writes == 1


async def test_an_unchanged_status_is_not_written_again() -> None:
    client = VersionedClient(make_pod())
    status_writer = writer(client)
    sandboxes, containers = runtime_state()
    await status_writer.write(client.copy(), sandboxes, containers, {})
    await status_writer.write(client.copy(), sandboxes, containers, {})
    assert client.writes == 1 and client.conflicts == 0


async def test_conflicts_without_end_fail_the_write() -> None:
    client = VersionedClient(make_pod())
    client.always_conflict = True
    sandboxes, containers = runtime_state()
    with pytest.raises(errors.Conflict):
        await writer(client).write(client.copy(), sandboxes, containers, {})
    assert client.conflicts == CONFLICT_RETRIES


async def test_a_pod_gone_or_replaced_meanwhile_is_not_written() -> None:
    client = VersionedClient(make_pod())
    seen = client.copy()
    client.pod.metadata.uid = "uid-2"  # deleted and created again under the same name
    client.pod.metadata.resource_version = "7"
    sandboxes, containers = runtime_state()
    await writer(client).write(seen, sandboxes, containers, {})
    assert client.writes == 0 and not client.pod.status.conditions
