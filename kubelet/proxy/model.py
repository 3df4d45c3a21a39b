"""What the proxy needs of Services and Endpoints, flattened: one `ServicePortInfo` per
port of every service that has a cluster IP, with its ready endpoints. Pure.

The shape of kube-proxy's ServicePortName (`ns/name:port`) and its endpoints map. Headless
services (`clusterIP: None`) and ExternalName ones have nothing to proxy; an Endpoints
port is matched to a service port by name, as in Kubernetes; only `addresses` (ready, or
published while not ready by publishNotReadyAddresses) receive traffic.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from skiff.api.v1 import core_pb2

DEFAULT_AFFINITY_TIMEOUT = 10800  # seconds: Kubernetes' default for ClientIP affinity


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class ServicePortInfo:
    namespace: str
    name: str
    port_name: str
    protocol: str  # TCP, UDP, SCTP
    cluster_ip: str
    port: int
    node_port: int = 0
    affinity_timeout: int = 0  # seconds; 0: no session affinity
    endpoints: tuple[Endpoint, ...] = field(default=())

    @property
    def key(self) -> str:
        """kube-proxy's ServicePortName: `ns/name:port` (`ns/name` for an unnamed port)."""
        suffix = f":{self.port_name}" if self.port_name else ""
        return f"{self.namespace}/{self.name}{suffix}"


def affinity_timeout(spec: core_pb2.ServiceSpec) -> int:
    """The ClientIP affinity's timeout, 0 without affinity. sessionAffinityConfig may not
    be in this API version's messages yet: then Kubernetes' default applies."""
    if spec.session_affinity != "ClientIP":
        return 0
    if "session_affinity_config" in spec.DESCRIPTOR.fields_by_name:
        config = getattr(spec, "session_affinity_config")  # noqa: B009 (maybe absent)
        seconds = int(getattr(getattr(config, "client_ip", None), "timeout_seconds", 0) or 0)
        if seconds > 0:
            return seconds
    return DEFAULT_AFFINITY_TIMEOUT


def has_cluster_ip(service: core_pb2.Service) -> bool:
    ip = service.spec.cluster_ip
    if not ip or ip == "None" or service.spec.type == "ExternalName":
        return False
    try:
        IPv4Address(ip)
    except ValueError:
        return False
    return True


EndpointsCache = dict[tuple[int, str, str], tuple[core_pb2.Endpoints, tuple[Endpoint, ...]]]


def service_ports(services: Iterable[core_pb2.Service],
                  endpoints: Iterable[core_pb2.Endpoints],
                  cache: EndpointsCache | None = None) -> list[ServicePortInfo]:
    """Every proxied service port with its ready endpoints, sorted by key and protocol.

    `cache`: the ready endpoints found at the previous call, by Endpoints object (an
    informer replaces an object when it changes, and never edits one), replaced by this
    call's: unchanged Endpoints are not read again."""
    previous = dict(cache) if cache is not None else {}
    if cache is not None:
        cache.clear()
    by_key: dict[str, core_pb2.Endpoints] = {
        f"{e.metadata.namespace}/{e.metadata.name}": e for e in endpoints}
    found: list[ServicePortInfo] = []
    for svc in services:
        if not has_cluster_ip(svc):
            continue
        eps = by_key.get(f"{svc.metadata.namespace}/{svc.metadata.name}")
        timeout = affinity_timeout(svc.spec)
        node_ports = svc.spec.type in ("NodePort", "LoadBalancer")
        for port in svc.spec.ports:
            protocol = (port.protocol or "TCP").upper()
            found.append(ServicePortInfo(
                namespace=svc.metadata.namespace, name=svc.metadata.name,
                port_name=port.name, protocol=protocol, cluster_ip=svc.spec.cluster_ip,
                port=port.port, node_port=port.node_port if node_ports else 0,
                affinity_timeout=timeout,
                endpoints=_ready(eps, port.name, protocol, previous, cache) if eps else ()))
    found.sort(key=lambda p: (p.key, p.protocol))
    return found


def _ready(eps: core_pb2.Endpoints, port_name: str, protocol: str,
           previous: EndpointsCache, cache: EndpointsCache | None) -> tuple[Endpoint, ...]:
    key = (id(eps), port_name, protocol)
    hit = previous.get(key)
    found = hit[1] if hit is not None and hit[0] is eps else ready_endpoints(
        eps, port_name, protocol)
    if cache is not None:
        cache[key] = (eps, found)  # the object is kept, so its id is not reused meanwhile
    return found


def ready_endpoints(eps: core_pb2.Endpoints, port_name: str, protocol: str
                    ) -> tuple[Endpoint, ...]:
    seen: set[Endpoint] = set()
    for subset in eps.subsets:
        for port in subset.ports:
            if port.name != port_name or (port.protocol or "TCP").upper() != protocol:
                continue
            if not 0 < port.port < 65536:
                continue
            for address in subset.addresses:
                if _is_ip(address.ip):  # IPv4 only, as the pod network
                    seen.add(Endpoint(address.ip, port.port))
    return tuple(sorted(seen, key=lambda e: (IPv4Address(e.ip), e.port)))


def _is_ip(text: str) -> bool:
    try:
        IPv4Address(text)
    except ValueError:
        return False
    return True
