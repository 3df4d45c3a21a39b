"""Service and Endpoints."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from google.protobuf.message import Message

from skiff.api.selectors import validate_dns1123_label, validate_dns1123_subdomain
from skiff.api.v1 import core_pb2
from skiff.api.validation.errors import (
    Errors,
    at,
    duplicate,
    forbidden,
    invalid,
    required,
    unsupported,
)
from skiff.api.validation.formats import (
    ip_errors,
    port_number,
    qualified_name,
    validate_port_num_or_name,
    validate_protocol,
)
from skiff.api.validation.meta import validate_labels

NODE_PORT_RANGE = (30000, 32767)


_SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")


def go_strings(values: Iterable[str]) -> str:
    """A []string as Kubernetes' field errors print it (Go's %#v)."""
    return "[]string{" + ", ".join(f'"{v}"' for v in values) + "}"


def invalid_cluster_ips(path: str, ips: Iterable[str], detail: str) -> str:
    return at(path, f"Invalid value: {go_strings(ips)}: {detail}")


def validate_service(obj: Message) -> Errors:
    assert isinstance(obj, core_pb2.Service)
    spec = obj.spec
    headless = spec.cluster_ip == "None"
    errs: Errors = []
    if not spec.ports and not headless and spec.type != "ExternalName":
        errs.append(required("spec.ports"))
    errs += _validate_service_type_rules(spec)
    names: set[str] = set()
    for i, port in enumerate(spec.ports):
        errs += _validate_service_port(port, len(spec.ports) > 1, names, f"spec.ports[{i}]")
    errs += validate_labels(spec.selector, "spec.selector")
    errs += _validate_session_affinity(spec)
    errs += _validate_cluster_ips(spec)
    for i, ip in enumerate(spec.external_ips):
        errs += [invalid(f"spec.externalIPs[{i}]", ip, msg) for msg in ip_errors(ip)]
    if not spec.type:
        errs.append(required("spec.type"))
    elif spec.type not in _SERVICE_TYPES:
        errs.append(unsupported("spec.type", spec.type, _SERVICE_TYPES))
    errs += _validate_node_ports(spec)
    errs += _validate_duplicate_service_ports(spec)
    errs += _validate_traffic_policies(spec)
    return errs


def _validate_service_type_rules(spec: core_pb2.ServiceSpec) -> Errors:
    errs: Errors = []
    headless = spec.cluster_ip == "None"
    if spec.type in ("LoadBalancer", "NodePort") and headless:
        errs.append(invalid("spec.clusterIP", spec.cluster_ip,
                            f"may not be set to 'None' for {spec.type} services"))
    if spec.type == "LoadBalancer":
        errs += [invalid(f"spec.ports[{i}]", port.port, "may not expose port 10250 externally "
                                                        "since it is used by kubelet")
                 for i, port in enumerate(spec.ports) if port.port == 10250]
    if spec.type == "ExternalName":
        # Kubernetes' strategy copies clusterIP into clusterIPs before this check.
        if spec.cluster_ip or spec.cluster_ips:
            errs.append(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
        if spec.ip_families:
            errs.append(forbidden("spec.ipFamilies", "may not be set for ExternalName services"))
        if spec.HasField("ip_family_policy"):
            errs.append(forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName "
                                                         "services"))
        # A CNAME may end with a dot to say it is fully qualified.
        cname = spec.external_name.removesuffix(".")
        if not cname:
            errs.append(required("spec.externalName"))
        else:
            errs += [invalid("spec.externalName", cname, msg)
                     for msg in validate_dns1123_subdomain(cname)]
    return errs


def _validate_service_port(port: core_pb2.ServicePort, require_name: bool, names: set[str],
                           path: str) -> Errors:
    errs: Errors = []
    # With several ports, Endpoints and DNS SRV records tell them apart by name.
    if require_name and not port.name:
        errs.append(required(f"{path}.name"))
    elif port.name:
        errs += [invalid(f"{path}.name", port.name, msg)
                 for msg in validate_dns1123_label(port.name)]
        if port.name in names:
            errs.append(duplicate(f"{path}.name", port.name))
        names.add(port.name)
    errs += [invalid(f"{path}.port", port.port, msg) for msg in port_number(port.port)]
    errs += validate_protocol(port.protocol, f"{path}.protocol")
    errs += validate_port_num_or_name(port.target_port, f"{path}.targetPort")
    if port.app_protocol:
        errs += qualified_name(f"{path}.appProtocol", port.app_protocol)
    return errs


# A client sticks to one endpoint for at most a day (Kubernetes' MaxClientIPServiceAffinitySeconds).
MAX_CLIENT_IP_AFFINITY_SECONDS = 86400


def _validate_session_affinity(spec: core_pb2.ServiceSpec) -> Errors:
    affinity = spec.session_affinity
    if not affinity:
        return [required("spec.sessionAffinity")]
    if affinity not in ("ClientIP", "None"):
        return [unsupported("spec.sessionAffinity", affinity, ("ClientIP", "None"))]
    path = "spec.sessionAffinityConfig"
    if affinity == "None":
        if spec.HasField("session_affinity_config"):
            return [forbidden(path, "must not be set when session affinity is None")]
        return []
    why = "when session affinity type is ClientIP"
    if not spec.HasField("session_affinity_config"):
        return [required(path, why)]
    if not spec.session_affinity_config.HasField("client_ip"):
        return [required(f"{path}.clientIP", why)]
    client_ip = spec.session_affinity_config.client_ip
    if not client_ip.HasField("timeout_seconds"):
        return [required(f"{path}.clientIP.timeoutSeconds", why)]
    if not 0 < client_ip.timeout_seconds <= MAX_CLIENT_IP_AFFINITY_SECONDS:
        return [invalid(f"{path}.clientIP.timeoutSeconds", client_ip.timeout_seconds,
                        "must be greater than 0 and less than "
                        f"{MAX_CLIENT_IP_AFFINITY_SECONDS}")]
    return []


def _validate_cluster_ips(spec: core_pb2.ServiceSpec) -> Errors:
    if spec.type == "ExternalName":
        return []
    errs: Errors = []
    if spec.cluster_ip and spec.cluster_ip != "None":
        errs += [invalid("spec.clusterIP", spec.cluster_ip, msg)
                 for msg in ip_errors(spec.cluster_ip)]
    ips = list(spec.cluster_ips)
    for i, ip in enumerate(ips):
        if i == 0 and ip == "None":
            if len(ips) > 1:
                errs.append(invalid_cluster_ips("spec.clusterIPs", ips,
                                                "'None' must be the first and only value"))
            continue
        errs += [invalid(f"spec.clusterIPs[{i}]", ip, msg) for msg in ip_errors(ip)]
    if len(ips) > 2:
        errs.append(invalid_cluster_ips("spec.clusterIPs", ips, "may only hold up to 2 values"))
    if ips and spec.cluster_ip and ips[0] != spec.cluster_ip:
        errs.append(invalid_cluster_ips("spec.clusterIPs", ips,
                                        "first value must match `clusterIP`"))
    if spec.HasField("ip_family_policy") and spec.ip_family_policy not in (
            "SingleStack", "PreferDualStack", "RequireDualStack"):
        errs.append(unsupported("spec.ipFamilyPolicy", spec.ip_family_policy,
                                ("SingleStack", "PreferDualStack", "RequireDualStack")))
    for i, family in enumerate(spec.ip_families):
        if family not in ("IPv4", "IPv6"):
            errs.append(unsupported(f"spec.ipFamilies[{i}]", family, ("IPv4", "IPv6")))
    return errs


def _validate_node_ports(spec: core_pb2.ServiceSpec) -> Errors:
    errs: Errors = []
    seen: set[tuple[str, int]] = set()
    low, high = NODE_PORT_RANGE
    for i, port in enumerate(spec.ports):
        if port.node_port == 0:
            continue
        path = f"spec.ports[{i}].nodePort"
        if spec.type == "ClusterIP":
            errs.append(forbidden(path, "may not be used when `type` is 'ClusterIP'"))
        elif spec.type in ("NodePort", "LoadBalancer") and not low <= port.node_port <= high:
            errs.append(invalid(path, port.node_port, "provided port is not in the valid "
                                f"range. The range of valid ports is {low}-{high}"))
        key = (port.protocol, port.node_port)
        if key in seen:
            errs.append(duplicate(path, port.node_port))
        seen.add(key)
    return errs


def _validate_duplicate_service_ports(spec: core_pb2.ServiceSpec) -> Errors:
    errs: Errors = []
    seen: set[tuple[str, int]] = set()
    for i, port in enumerate(spec.ports):
        key = (port.protocol, port.port)
        if key in seen:
            errs.append(duplicate(f"spec.ports[{i}]", {"port": port.port,
                                                       "protocol": port.protocol}))
        seen.add(key)
    return errs


def _validate_traffic_policies(spec: core_pb2.ServiceSpec) -> Errors:
    errs: Errors = []
    external = spec.type in ("NodePort", "LoadBalancer") or (
        spec.type == "ClusterIP" and bool(spec.external_ips))
    policy = spec.external_traffic_policy
    if not external:
        if policy:
            errs.append(invalid("spec.externalTrafficPolicy", policy,
                                "may only be set for externally-accessible services"))
    elif not policy:
        errs.append(required("spec.externalTrafficPolicy"))
    elif policy not in ("Cluster", "Local"):
        errs.append(unsupported("spec.externalTrafficPolicy", policy, ("Cluster", "Local")))
    if not spec.HasField("internal_traffic_policy"):
        if spec.type in ("ClusterIP", "NodePort", "LoadBalancer"):
            errs.append(required("spec.internalTrafficPolicy"))
    elif spec.internal_traffic_policy not in ("Cluster", "Local"):
        errs.append(unsupported("spec.internalTrafficPolicy", spec.internal_traffic_policy,
                                ("Cluster", "Local")))
    return errs


def validate_service_update(new_obj: Message, old_obj: Message) -> Errors:
    assert isinstance(new_obj, core_pb2.Service) and isinstance(old_obj, core_pb2.Service)
    new, old = new_obj.spec, old_obj.spec
    # Moving to or from ExternalName drops or allocates the IP; otherwise, once
    # allocated, clients and DNS have it, so it stays (Kubernetes'
    # validateUpgradeDowngradeClusterIPs, single-stack: the primary IP only).
    if "ExternalName" in (new.type, old.type):
        return []
    if new.cluster_ip == "None" and old.cluster_ip == "None":
        return []
    new_ips = list(new.cluster_ips) or ([new.cluster_ip] if new.cluster_ip else [])
    old_ips = list(old.cluster_ips) or ([old.cluster_ip] if old.cluster_ip else [])
    if old_ips and not new_ips:
        return [invalid_cluster_ips("spec.clusterIPs[0]", new_ips,
                                    "primary clusterIP can not be unset")]
    if old_ips and new_ips[0] != old_ips[0]:
        return [invalid_cluster_ips("spec.clusterIPs[0]", new_ips, "may not change once set")]
    return []


def validate_endpoints(obj: Message) -> Errors:
    assert isinstance(obj, core_pb2.Endpoints)
    errs: Errors = []
    for i, subset in enumerate(obj.subsets):
        s_path = f"subsets[{i}]"
        if not subset.addresses and not subset.not_ready_addresses:
            errs.append(required(s_path, "must specify `addresses` or `notReadyAddresses`"))
        for field, name in (("addresses", "addresses"),
                            ("not_ready_addresses", "notReadyAddresses")):
            for j, address in enumerate(getattr(subset, field)):
                errs += _validate_endpoint_address(address, f"{s_path}.{name}[{j}]")
        for j, port in enumerate(subset.ports):
            errs += _validate_endpoint_port(port, len(subset.ports) > 1, f"{s_path}.ports[{j}]")
    return errs


def _validate_endpoint_address(address: core_pb2.EndpointAddress, path: str) -> Errors:
    errs = [invalid(f"{path}.ip", address.ip, msg) for msg in ip_errors(address.ip)]
    if address.hostname:
        errs += [invalid(f"{path}.hostname", address.hostname, msg)
                 for msg in validate_dns1123_label(address.hostname)]
    if address.HasField("node_name"):
        errs += [invalid(f"{path}.nodeName", address.node_name, msg)
                 for msg in validate_dns1123_subdomain(address.node_name)]
    if not errs:
        errs += _special_ip(address.ip, f"{path}.ip")
    return errs


def _special_ip(text: str, path: str) -> Errors:
    """Addresses that would send a service's traffic to the node itself."""
    ip = ipaddress.ip_address(text)
    if ip.is_unspecified:
        return [invalid(path, text, f"may not be unspecified ({text})")]
    if ip.is_loopback:
        return [invalid(path, text, "may not be in the loopback range (127.0.0.0/8, ::1/128)")]
    if ip.is_link_local:
        return [invalid(path, text, "may not be in the link-local range (169.254.0.0/16, "
                                    "fe80::/10)")]
    if ip in ipaddress.ip_network("224.0.0.0/24") or (
            ip.version == 6 and ip in ipaddress.ip_network("ff02::/10")):
        return [invalid(path, text, "may not be in the link-local multicast range "
                                    "(224.0.0.0/24, ff02::/10)")]
    return []


def _validate_endpoint_port(port: core_pb2.EndpointPort, require_name: bool,
                            path: str) -> Errors:
    errs: Errors = []
    if require_name and not port.name:
        errs.append(required(f"{path}.name"))
    elif port.name:
        errs += [invalid(f"{path}.name", port.name, msg)
                 for msg in validate_dns1123_label(port.name)]
    errs += [invalid(f"{path}.port", port.port, msg) for msg in port_number(port.port)]
    errs += validate_protocol(port.protocol, f"{path}.protocol")
    if port.HasField("app_protocol"):
        errs += qualified_name(f"{path}.appProtocol", port.app_protocol)
    return errs
