"""The agents probe each other's pod networks: real sockets, on loopback addresses that
stand for the nodes' bridge gateways."""

from __future__ import annotations

from cluster.process import free_ports
from kubelet.network.probe import PeerProbes


async def test_a_node_reaches_a_peer_that_answers_as_itself_and_names_one_that_does_not(
        ) -> None:
    port = free_ports(1)[0]
    a, b, impostor = (PeerProbes("node-a", port), PeerProbes("node-b", port),
                      PeerProbes("node-x", port))
    await a.listen("127.0.0.2")
    await b.listen("127.0.0.3")
    await impostor.listen("127.0.0.5")
    try:
        assert await a.probe("127.0.0.2", {"node-b": "127.0.0.3"}) == {"node-b": ""}
        assert a.condition() == ("True", "PeersReachable",
                                 "reaches the pod networks of 1 node(s): node-b")
        found = await a.probe("127.0.0.2", {"node-b": "127.0.0.3", "node-c": "127.0.0.4",
                                            "node-d": "127.0.0.5"})
        assert found["node-b"] == ""
        assert found["node-c"] == f"127.0.0.4:{port}: Connection refused"
        assert found["node-d"] == f"127.0.0.5:{port} answered as node-x"
        status, reason, message = a.condition()  # type: ignore[misc]
        assert (status, reason) == ("False", "PeersUnreachable")
        assert message == ("cannot reach the pod networks of: node-c (127.0.0.4:"
                           f"{port}: Connection refused); node-d (127.0.0.5:{port} "
                           "answered as node-x)")
    finally:
        for p in (a, b, impostor):
            await p.close()


async def test_nothing_is_said_before_any_peer_was_probed() -> None:
    assert PeerProbes("alone", 1).condition() is None
