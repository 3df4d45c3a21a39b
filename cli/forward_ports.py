"""`skiff port-forward`'s arguments, as kubectl reads them: the ports, the addresses, the
pod chosen for an object, and a Service's ports translated to the pod's.

Ports: `8080:80` (local 8080 to the pod's 80), `:80` (a free local port, chosen when
listening), `80` (the same number on both sides). The remote side may name a port: a
container port's name for a pod, a Service port's name for a service.

A Service's port is not the pod's: `svc/web 8080:80` reaches the pod on the service port
80's targetPort (a number, or a name looked up in the pod's container ports; absent: the
same number). A bare `80` keeps 80 as the local port. The messages are kubectl's.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cli.errors import CliError
from skiff.api.v1 import core_pb2

LOCALHOST = "localhost"


@dataclass(frozen=True)
class ForwardedPort:
    local: int  # 0: a free port, chosen when listening
    remote: int


@dataclass(frozen=True)
class ListenAddress:
    address: str  # an IP address
    # "all": an error only when every address of its kind fails (localhost: 127.0.0.1
    # and ::1, either may be missing); "any": each must work (addresses the user named).
    failure_mode: str


def split_port(port: str) -> tuple[str, str]:
    """`8080:80` -> ("8080", "80"); `80` -> ("80", "80"); `:80` -> ("", "80")."""
    parts = port.split(":")
    if len(parts) > 2:  # checked before names are looked up, not after (as kubectl)
        raise CliError(f"invalid port format '{port}'")
    if len(parts) == 2:
        return parts[0], parts[1]
    return parts[0], parts[0]


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


def parse_ports(ports: Iterable[str]) -> list[ForwardedPort]:
    """kubectl's parsePorts: numbers only (names are translated before)."""
    forwards: list[ForwardedPort] = []
    for port in ports:
        parts = port.split(":")
        if len(parts) == 1:
            local_text = remote_text = parts[0]
        elif len(parts) == 2:
            local_text, remote_text = parts[0] or "0", parts[1]
        else:
            raise CliError(f"invalid port format '{port}'")
        local = _port_number(local_text)
        if local is None:
            raise CliError(f"error parsing local port '{local_text}': it must be a number "
                           "from 0 to 65535")
        remote = _port_number(remote_text)
        if remote is None:
            raise CliError(f"error parsing remote port '{remote_text}': it must be a number "
                           "from 1 to 65535")
        if remote == 0:
            raise CliError("remote port must be > 0")
        forwards.append(ForwardedPort(local, remote))
    return forwards


def _port_number(text: str) -> int | None:
    if not _is_number(text) or int(text) > 65535:
        return None
    return int(text)


def parse_addresses(values: Sequence[str]) -> list[ListenAddress]:
    """--address values (each may be a comma-separated list): `localhost` or IP addresses."""
    addresses: list[ListenAddress] = []
    seen: set[str] = set()
    for value in values:
        for item in (part.strip() for part in value.split(",")):
            if item == LOCALHOST:
                found = [ListenAddress("127.0.0.1", "all"), ListenAddress("::1", "all")]
            else:
                try:
                    found = [ListenAddress(str(ipaddress.ip_address(item)), "any")]
                except ValueError:
                    raise CliError(f"{item} is not a valid IP") from None
            for address in found:
                if address.address not in seen:
                    seen.add(address.address)
                    addresses.append(address)
    return addresses


def container_port_by_name(pod: core_pb2.Pod, name: str) -> int:
    for container in pod.spec.containers:
        for port in container.ports:
            if port.name == name:
                return port.container_port
    raise CliError(f"Pod '{pod.metadata.name}' does not have a named port '{name}'")


def convert_pod_named_ports(ports: Iterable[str], pod: core_pb2.Pod) -> list[str]:
    """A pod's named remote ports as numbers: `8080:http` -> `8080:80`, `http` -> `80`."""
    converted: list[str] = []
    for port in ports:
        local, remote = split_port(port)
        number = remote if _is_number(remote) else str(container_port_by_name(pod, remote))
        converted.append(f"{local}:{number}" if local != remote else number)
    return converted


def _service_port_by_name(service: core_pb2.Service, name: str) -> int:
    for port in service.spec.ports:
        if port.name == name:
            return port.port
    raise CliError(f"Service '{service.metadata.name}' does not have a named port '{name}'")


def container_port_for_service_port(service: core_pb2.Service, pod: core_pb2.Pod,
                                    port: int) -> int:
    """kubectl's LookupContainerPortNumberByServicePort."""
    for spec in service.spec.ports:
        if spec.port != port:
            continue
        if service.spec.cluster_ip == "None":  # headless: the service port is the pod's
            return port
        target = spec.target_port
        kind = target.WhichOneof("value")
        if kind == "str_val" and target.str_val:
            if _is_number(target.str_val):
                return int(target.str_val)
            return container_port_by_name(pod, target.str_val)
        if kind == "int_val" and target.int_val:
            return target.int_val
        return spec.port  # targetPort omitted: the same number
    raise CliError(f"Service {service.metadata.name} does not have a service port {port}")


def translate_service_ports(ports: Iterable[str], service: core_pb2.Service,
                            pod: core_pb2.Pod) -> list[str]:
    """kubectl's translateServicePortToTargetPort: `8080:80` -> `8080:<targetPort>`,
    `80` -> `80:<targetPort>`, `:80` -> `:<targetPort>`; a named remote port is a
    Service port's name."""
    translated: list[str] = []
    for port in ports:
        local, remote = split_port(port)
        if _is_number(remote):
            number = int(remote)
        else:
            number = _service_port_by_name(service, remote)
            if local == remote:
                local = str(number)
        container_port = container_port_for_service_port(service, pod, number)
        translated.append(f"{local}:{container_port}" if local != str(container_port)
                          else str(container_port))
    return translated


def _ready(pod: core_pb2.Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def _ready_since(pod: core_pb2.Pod) -> float:
    for c in pod.status.conditions:
        if c.type == "Ready" and c.status == "True":
            return c.last_transition_time.seconds + c.last_transition_time.nanos / 1e9
    return 0.0


_PHASE_ORDER = {"Running": 0, "Unknown": 1, "Pending": 2}


def first_pod(pods: Sequence[core_pb2.Pod]) -> core_pb2.Pod | None:
    """The pod kubectl picks among an object's (its ByLogging order): scheduled before
    unscheduled, Running before Unknown before Pending, ready before not, ready for longer,
    more restarts, then older."""
    def key(pod: core_pb2.Pod) -> tuple[int, int, int, float, int, float]:
        restarts = sum(c.restart_count for c in pod.status.container_statuses)
        created = (pod.metadata.creation_timestamp.seconds
                   + pod.metadata.creation_timestamp.nanos / 1e9)
        return (0 if pod.spec.node_name else 1,
                _PHASE_ORDER.get(pod.status.phase, 3),
                0 if _ready(pod) else 1,
                _ready_since(pod) if _ready(pod) else 0.0,
                -restarts,
                created)

    active = [p for p in pods if not p.metadata.deletion_timestamp.seconds]
    return min(active or pods, key=key) if pods else None
