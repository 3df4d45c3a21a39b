"""Where the kubelet's own server (kubelet/server.py) listens: the node's address, and
loopback for tools on the node; never every interface unless asked to."""

from __future__ import annotations

from kubelet.server import listen_addresses


def test_the_kubelet_server_listens_on_the_node_address_and_loopback() -> None:
    assert listen_addresses("10.0.0.9", local=True) == ["10.0.0.9", "127.0.0.1"]
    assert listen_addresses("10.0.0.9", local=False) == ["10.0.0.9"]
    assert listen_addresses("127.0.0.1", local=True) == ["127.0.0.1"]
    assert listen_addresses("0.0.0.0", local=True) == ["0.0.0.0"]  # asked for every one
    assert listen_addresses("fd00::9", local=True) == ["fd00::9", "::1"]
