"""The kubelet's status writes against the real apiserver: a condition another component
wrote between the kubelet's read of the pod and its status write is still there after
the write (the write is conditional on the resourceVersion it was built from; on Conflict
the kubelet reads the pod again and builds its status over it)."""

from __future__ import annotations

from datetime import UTC, datetime

from kubelet.pods.status_writer import StatusWriter
from kubelet.runtime import (
    LABEL_CONTAINER_NAME,
    LABEL_POD_UID,
    LABEL_SANDBOX,
    ContainerInfo,
    State,
)
from skiff.api.v1 import core_pb2
from skiff.client.client import Client
from skiff.client.clock import FakeClock


async def test_a_condition_written_in_between_survives(client: Client, ns: str) -> None:
    pod = core_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace = "p", ns
    pod.spec.node_name = "node-status-writes"
    pod.spec.containers.add(name="app", image="busybox")
    created = await client.create(pod)
    uid = created.metadata.uid
    seen = await client.get(core_pb2.Pod, "p", ns)  # the kubelet's informer has this

    # The eviction API (or a readiness gate's controller) writes in between.
    other = await client.get(core_pb2.Pod, "p", ns)
    other.status.conditions.add(type="DisruptionTarget", status="True",
                                reason="EvictionByEvictionAPI",
                                message="Eviction API: evicting")
    await client.update_status(other)

    sandbox = ContainerInfo(id="sb", labels={LABEL_POD_UID: uid, LABEL_SANDBOX: "true"},
                            image="pause", image_id="", state=State.RUNNING, created_at=1.0,
                            ip="10.244.0.5")
    app = ContainerInfo(id="c", labels={LABEL_POD_UID: uid, LABEL_CONTAINER_NAME: "app"},
                        image="busybox", image_id="", state=State.RUNNING, created_at=2.0,
                        started_at=2.0)
    writer = StatusWriter(client, node_ip="127.0.0.1", ready=lambda cid: True,
                          started=lambda cid: True,
                          clock=FakeClock(wall_start=datetime(2024, 5, 1, tzinfo=UTC)))
    await writer.write(seen, [sandbox], [app], {})

    stored = (await client.get(core_pb2.Pod, "p", ns)).status
    by_type = {c.type: c for c in stored.conditions}
    assert by_type["DisruptionTarget"].status == "True"
    assert by_type["DisruptionTarget"].reason == "EvictionByEvictionAPI"
    assert by_type["Ready"].status == "True"  # and the kubelet's status went in
    assert stored.phase == "Running" and stored.pod_ip == "10.244.0.5"
