"""The cluster DNS address on this node: skiff-dns serves every node's pods on the same
address (the kube-dns Service's cluster IP), held by the node itself.

NodeLocal DNSCache puts that address on a dummy interface; these hosts' kernels have no
`dummy` module (and a node made as a container cannot load one), so it goes on the
loopback interface instead, under a label of its own (`lo:skiff-dns`) by which it is found
again and removed. A pod's packet to it leaves through the pod's bridge gateway and is
delivered locally, as to any address of the node; the node proxy leaves addresses the node
holds alone (kubelet/proxy/rules.py), so the kube-dns Service needs no endpoints.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import subprocess

__all__ = ["LABEL", "AddressError", "hold_address", "holds_address", "release_addresses"]

log = logging.getLogger(__name__)

INTERFACE = "lo"
LABEL = "lo:skiff-dns"  # an address label: the interface's name, ":", at most 15 chars


class AddressError(Exception):
    pass


def _ip(*args: str) -> str:
    try:
        done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise AddressError(f"ip {' '.join(args)}: {err}") from None
    if done.returncode != 0:
        raise AddressError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def _addresses() -> list[tuple[str, str, str]]:
    """(interface, address, label) of every IPv4 address of the host."""
    found = []
    for link in json.loads(_ip("-j", "-4", "addr", "show") or "[]"):
        for info in link.get("addr_info", []):
            found.append((str(link.get("ifname", "")), str(info.get("local", "")),
                          str(info.get("label", ""))))
    return found


def holds_address(address: str) -> bool:
    """Whether this node delivers packets to `address` to itself (an interface's address,
    or one of a local range such as 127/8)."""
    try:
        routes = json.loads(_ip("-j", "route", "get", address) or "[]")
    except AddressError:  # no route to it at all: not ours either
        return False
    return any(route.get("type") == "local" for route in routes)


def hold_address(address: str) -> bool:
    """Puts `address` on this node (labelled LABEL) unless an interface holds it already;
    True when it was added."""
    ipaddress.IPv4Address(address)  # ValueError for anything else
    if holds_address(address):
        return False
    _ip("addr", "add", f"{address}/32", "dev", INTERFACE, "label", LABEL)
    log.info("holding the cluster DNS address %s on %s (label %s)", address, INTERFACE, LABEL)
    return True


def release_addresses(only: str | None = None) -> list[str]:
    """Removes the addresses labelled LABEL (what hold_address added, and only that): all
    of them, or `only` that one."""
    released = []
    for interface, local, label in _addresses():
        if label == LABEL and only in (None, local):
            _ip("addr", "del", f"{local}/32", "dev", interface, "label", LABEL)
            released.append(local)
    return released
