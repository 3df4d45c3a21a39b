"""The kubelet's own server (logs, exec: a root shell on the node) listens on the address
the node registers (its --node-ip, or --address), and on loopback for tools on the node,
not on every interface."""

from __future__ import annotations

import ipaddress
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures.kubelet import KubeletProcess

LISTEN = "0A"  # the TCP state LISTEN in /proc/net/tcp


def listening_addresses(port: int) -> list[str]:
    """The local addresses of this network namespace's listening TCP sockets on `port`."""
    found = []
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state != LISTEN or int(hex_port, 16) != port:
                continue
            # The kernel prints the address as 32-bit words in host (little-endian) order.
            raw = b"".join(bytes.fromhex(address[i:i + 8])[::-1]
                           for i in range(0, len(address), 8))
            ip = ipaddress.ip_address(raw[:width])
            # A server may take an IPv4 address as an IPv6 socket (gRPC does).
            mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
            found.append(str(mapped or ip))
    return found


def another_local_address() -> str | None:
    """An IPv4 address of this host other than loopback (docker0's bridge, say)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True,
                         check=False).stdout
    for line in out.splitlines():
        address = line.split()[3].split("/")[0]
        if not ipaddress.ip_address(address).is_loopback:
            return address
    return None


def test_the_kubelet_server_listens_on_the_node_address_only(
        kubelet_factory: Callable[..., KubeletProcess]) -> None:
    kubelet = kubelet_factory(fake=True).wait_running()  # --node-ip 127.0.0.1
    assert listening_addresses(kubelet.port) == ["127.0.0.1"]
    with socket.create_connection(("127.0.0.1", kubelet.port), timeout=5):
        pass
    other = another_local_address()
    if other is None:
        pytest.skip("this host has no address but loopback to try the server on")
    with pytest.raises(ConnectionRefusedError), \
            socket.create_connection((other, kubelet.port), timeout=5):
        pass


def test_address_sets_where_the_kubelet_server_listens(
        kubelet_factory: Callable[..., KubeletProcess]) -> None:
    kubelet = kubelet_factory(fake=True, extra_args=("--address", "127.0.0.2")).wait_running()
    assert listening_addresses(kubelet.port) == ["127.0.0.2"]  # loopback already
