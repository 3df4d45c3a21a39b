"""Service variables in a container started by a real `skiff-kubelet` on the real Docker
engine: a pod started after a Service sees Kubernetes' variables for it; its own `env`
wins; `enableServiceLinks: false` turns them off; a headless service has none."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from fixtures.kubelet import KubeletProcess

from skiff.api.v1 import core_pb2
from skiff.client import errors
from skiff.client.client import Client


@pytest.fixture
def kubelet(kubelet_factory: Callable[..., KubeletProcess], busybox_image: str
            ) -> KubeletProcess:
    return kubelet_factory().wait_running()


async def make_service(client: Client, ns: str, name: str, cluster_ip: str = ""
                       ) -> core_pb2.Service:
    svc = core_pb2.Service()
    svc.metadata.name, svc.metadata.namespace = name, ns
    svc.spec.selector["app"] = name
    if cluster_ip:
        svc.spec.cluster_ip = cluster_ip
    svc.spec.ports.add(name="http", port=80, protocol="TCP").target_port.int_val = 8080
    svc.spec.ports.add(name="metrics", port=9100, protocol="TCP").target_port.int_val = 9100
    return await client.create(svc)


async def start_pod(client: Client, ns: str, node: str, name: str, image: str,
                    **spec: Any) -> None:
    manifest = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, **spec,
                 "containers": [{
                     "name": "app", "image": image, "imagePullPolicy": "IfNotPresent",
                     "command": ["sh", "-c", "env | sort; echo END; exec sleep 3600"],
                     "env": [{"name": "MY_DB_SERVICE_PORT", "value": "mine"}]}]},
    }
    await client.create_manifest(manifest)


async def env_of(client: Client, ns: str, name: str, timeout: float = 30.0) -> dict[str, str]:
    """The variables the pod's container printed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            out = b"".join([c async for c in client.logs(name, ns)]).decode()
        except errors.ApiError:
            out = ""
        if "END" in out:
            lines = out.split("END")[0].splitlines()
            return dict(line.split("=", 1) for line in lines if "=" in line)
        if time.monotonic() > deadline:
            raise AssertionError(f"pod {name} printed no environment: {out!r}")
        await asyncio.sleep(0.2)


async def test_a_pod_started_after_a_service_sees_its_variables(
        kubelet: KubeletProcess, client: Client, ns: str, busybox_image: str) -> None:
    db = await make_service(client, ns, "my-db")
    ip = db.spec.cluster_ip
    assert ip and ip != "None", "the apiserver gives a Service a cluster IP"
    await make_service(client, ns, "skiff-headless", cluster_ip="None")

    await start_pod(client, ns, kubelet.node_name, "app", busybox_image)
    env = await env_of(client, ns, "app")
    mine = {k: v for k, v in env.items() if k.startswith("MY_DB_")}
    assert mine == {
        "MY_DB_SERVICE_HOST": ip,
        "MY_DB_SERVICE_PORT": "mine",  # the container's own env wins
        "MY_DB_SERVICE_PORT_HTTP": "80",
        "MY_DB_SERVICE_PORT_METRICS": "9100",
        "MY_DB_PORT": f"tcp://{ip}:80",
        "MY_DB_PORT_80_TCP": f"tcp://{ip}:80",
        "MY_DB_PORT_80_TCP_PROTO": "tcp",
        "MY_DB_PORT_80_TCP_PORT": "80",
        "MY_DB_PORT_80_TCP_ADDR": ip,
        "MY_DB_PORT_9100_TCP": f"tcp://{ip}:9100",
        "MY_DB_PORT_9100_TCP_PROTO": "tcp",
        "MY_DB_PORT_9100_TCP_PORT": "9100",
        "MY_DB_PORT_9100_TCP_ADDR": ip,
    }
    assert not [k for k in env if k.startswith("SKIFF_HEADLESS_")]

    await start_pod(client, ns, kubelet.node_name, "unlinked", busybox_image,
                    enableServiceLinks=False)
    env = await env_of(client, ns, "unlinked")
    assert {k: v for k, v in env.items() if k.startswith("MY_DB_")} == {
        "MY_DB_SERVICE_PORT": "mine"}
