"""The service variables a container starts with, as Kubernetes' kubelet sets them.

This follows pkg/kubelet/envvars (FromServices) and the kubelet's getServiceEnvVarMap: for
every Service with a cluster IP (not headless, not empty) in the pod's namespace that
exists when the container starts, `NAME_SERVICE_HOST`, `NAME_SERVICE_PORT` (the first
port), `NAME_SERVICE_PORT_PORTNAME` for each named port, and Docker's link variables
(`NAME_PORT` for the first port, then `NAME_PORT_<port>_<PROTO>` with `_PROTO`, `_PORT`
and `_ADDR` for every port). NAME is the service's name upper-cased with '-' as '_'.

`enableServiceLinks: false` leaves out the namespace's services but not the master
service: `kubernetes` in `default` is always there (a same-named service of the pod's own
namespace replaces it when links are on). Services are taken in name order (Kubernetes'
order is Go's map order, random), so a container's environment is stable.
"""

from __future__ import annotations

from collections.abc import Iterable

from skiff.api.v1 import core_pb2

__all__ = ["MASTER_SERVICES", "from_services", "service_env"]

Env = list[tuple[str, str]]

MASTER_NAMESPACE = "default"
MASTER_SERVICES = frozenset({"kubernetes"})


def _has_cluster_ip(service: core_pb2.Service) -> bool:
    """Kubernetes' IsServiceIPSet: neither headless ("None") nor without an address."""
    return service.spec.cluster_ip not in ("", "None")


def _variable_name(name: str) -> str:
    return name.replace("-", "_").upper()


def from_services(services: Iterable[core_pb2.Service]) -> Env:
    """Kubernetes' envvars.FromServices, in the order of `services`."""
    env: Env = []
    for service in services:
        if not _has_cluster_ip(service):
            continue
        prefix = _variable_name(service.metadata.name)
        ip = service.spec.cluster_ip
        env.append((f"{prefix}_SERVICE_HOST", ip))
        ports = service.spec.ports
        if not ports:  # validation refuses it for a service with an IP; never crash on it
            continue
        env.append((f"{prefix}_SERVICE_PORT", str(ports[0].port)))
        env += [(f"{prefix}_SERVICE_PORT_{_variable_name(p.name)}", str(p.port))
                for p in ports if p.name]
        env += _link_variables(prefix, ip, ports)
    return env


def _link_variables(prefix: str, ip: str, ports: Iterable[core_pb2.ServicePort]) -> Env:
    """Docker's link variables; Docker gives the first port the bare `NAME_PORT`."""
    env: Env = []
    for index, port in enumerate(ports):
        protocol = port.protocol or "TCP"
        host_port = f"[{ip}]:{port.port}" if ":" in ip else f"{ip}:{port.port}"
        url = f"{protocol.lower()}://{host_port}"
        if index == 0:
            env.append((f"{prefix}_PORT", url))
        port_prefix = f"{prefix}_PORT_{port.port}_{protocol.upper()}"
        env += [(port_prefix, url), (f"{port_prefix}_PROTO", protocol.lower()),
                (f"{port_prefix}_PORT", str(port.port)), (f"{port_prefix}_ADDR", ip)]
    return env


def service_env(namespace: str, services: Iterable[core_pb2.Service], *,
                enable_service_links: bool = True) -> Env:
    """The service variables of a pod in `namespace`, from every Service the kubelet
    knows (getServiceEnvVarMap)."""
    chosen: dict[str, core_pb2.Service] = {}
    for service in services:
        if not _has_cluster_ip(service):
            continue
        name = service.metadata.name
        if service.metadata.namespace == MASTER_NAMESPACE and name in MASTER_SERVICES:
            chosen.setdefault(name, service)
        elif service.metadata.namespace == namespace and enable_service_links:
            chosen[name] = service
    return from_services(chosen[name] for name in sorted(chosen))
