"""What the runtime is asked to create for a pod: its sandbox's and its containers'
configurations (labels included, from which a restarted kubelet rebuilds its picture),
and the object references its events point at. Pure functions of the pod's spec.
"""

from __future__ import annotations

from collections.abc import Sequence

from kubelet.plan import spec_hash, termination_grace
from kubelet.runtime import (
    LABEL_ATTEMPT,
    LABEL_CONTAINER_NAME,
    LABEL_GRACE,
    LABEL_INIT,
    LABEL_NODE,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    LABEL_SPEC_HASH,
    ContainerConfig,
    DnsConfig,
    Mount,
    PortMapping,
    SandboxConfig,
)
from skiff.api.quantity import QuantityError, parse_quantity
from skiff.api.v1 import core_pb2, meta_pb2


def pod_labels(pod: core_pb2.Pod) -> dict[str, str]:
    return {LABEL_POD_UID: pod.metadata.uid, LABEL_POD_NAMESPACE: pod.metadata.namespace,
            LABEL_POD_NAME: pod.metadata.name,
            LABEL_GRACE: str(int(termination_grace(pod)))}


def sandbox_config(pod: core_pb2.Pod, attempt: int, node_name: str, *, network: str = "",
                   dns: DnsConfig | None = None) -> SandboxConfig:
    """`network`: the runtime network the sandbox joins (the pod network's bridge; "" for
    the runtime's default). A hostNetwork pod has the node's. `dns`: its resolv.conf (None:
    the runtime's own, from the node's)."""
    ports = tuple(PortMapping(p.container_port, p.host_port, p.protocol or "TCP", p.host_ip)
                  for c in pod.spec.containers for p in c.ports if p.host_port)
    return SandboxConfig(
        pod_uid=pod.metadata.uid, namespace=pod.metadata.namespace,
        name=pod.metadata.name, attempt=attempt,
        hostname=pod.spec.hostname or pod.metadata.name[:63],
        host_network=pod.spec.host_network, port_mappings=ports, dns=dns,
        network="" if pod.spec.host_network else network,
        labels={**pod_labels(pod), LABEL_NODE: node_name})


def container_config(pod: core_pb2.Pod, container: core_pb2.Container, *, attempt: int,
                     init: bool, env: list[tuple[str, str]], command: list[str],
                     args: list[str], mounts: Sequence[Mount], node_name: str
                     ) -> ContainerConfig:
    limits, requests = container.resources.limits, container.resources.requests
    sc, psc = container.security_context, pod.spec.security_context
    labels = {**pod_labels(pod), LABEL_NODE: node_name,
              LABEL_CONTAINER_NAME: container.name,
              LABEL_ATTEMPT: str(attempt), LABEL_SPEC_HASH: spec_hash(container)}
    if init:
        labels[LABEL_INIT] = "true"
    return ContainerConfig(
        name=container.name, image=container.image, command=tuple(command),
        args=tuple(args), env=tuple(env), working_dir=container.working_dir,
        mounts=tuple(mounts),
        cpu_limit_millis=_millis(limits.get("cpu")),
        cpu_request_millis=_millis(requests.get("cpu")),
        memory_limit_bytes=_bytes(limits.get("memory")),
        run_as_user=sc.run_as_user if sc.HasField("run_as_user") else
        (psc.run_as_user if psc.HasField("run_as_user") else None),
        run_as_group=sc.run_as_group if sc.HasField("run_as_group") else
        (psc.run_as_group if psc.HasField("run_as_group") else None),
        privileged=sc.privileged, cap_add=tuple(sc.capabilities.add),
        cap_drop=tuple(sc.capabilities.drop),
        read_only_rootfs=sc.read_only_root_filesystem, tty=container.tty,
        stdin=container.stdin, labels=labels)


def container_ref(pod: core_pb2.Pod, container: core_pb2.Container | None,
                  init: bool) -> meta_pb2.ObjectReference:
    """The pod, or one of its containers (by field path), as an event's subject."""
    ref = meta_pb2.ObjectReference(kind="Pod", namespace=pod.metadata.namespace,
                                   name=pod.metadata.name, uid=pod.metadata.uid,
                                   api_version="v1")
    if container is not None:
        field = "initContainers" if init else "containers"
        ref.field_path = f"spec.{field}{{{container.name}}}"
    return ref


def _millis(q: meta_pb2.Quantity | None) -> int:
    if q is None or not q.value:
        return 0
    try:
        return parse_quantity(q.value).milli_value()
    except QuantityError:
        return 0


def _bytes(q: meta_pb2.Quantity | None) -> int:
    if q is None or not q.value:
        return 0
    try:
        return parse_quantity(q.value).value()
    except QuantityError:
        return 0
