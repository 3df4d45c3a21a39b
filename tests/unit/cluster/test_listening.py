"""Sockets held across a component's restarts (cluster.listening, skiff.daemon.activation):
real sockets and real child processes, on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys

from cluster import listening
from cluster.components import ListenSocket

# The child: what it was handed, then the datagram waiting in the UDP socket's queue.
CHILD = """
import socket
from skiff.daemon import activation
got = activation.listen_sockets()
print([(s.type == socket.SOCK_DGRAM and "udp" or "tcp", s.getsockname()[1]) for s in got])
udp = next(s for s in got if s.type == socket.SOCK_DGRAM)
udp.settimeout(5)
print(udp.recvfrom(100)[0].decode())
print(activation.listen_sockets())  # handed once: not again, nor to a child
"""


def run_child(sockets: list[socket.socket]) -> list[str]:
    env, move = listening.handing_over(sockets)
    out = subprocess.run([sys.executable, "-c", CHILD], env={**env, "PYTHONPATH": "."},
                         preexec_fn=move, pass_fds=listening.kept_fds(sockets),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_a_query_sent_between_two_runs_waits_for_the_next() -> None:
    held = listening.bind([ListenSocket("udp", "127.0.0.1", 0),
                           ListenSocket("tcp", "127.0.0.1", 0)])
    try:
        ports = [("udp", held[0].getsockname()[1]), ("tcp", held[1].getsockname()[1])]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            for i in range(2):  # two runs of the component, the same sockets
                # Sent while no child runs: it waits in the held socket's queue.
                client.sendto(f"query {i}".encode(), ("127.0.0.1", ports[0][1]))
                assert run_child(held) == [repr(ports), f"query {i}", "[]"]
        # TCP connects while nobody accepts: the listening socket's backlog holds it.
        with socket.create_connection(("127.0.0.1", ports[1][1]), timeout=5):
            pass
    finally:
        for sock in held:
            sock.close()


def test_nothing_handed_means_nothing_found() -> None:
    assert listening.handing_over([]) == ({}, None)
    out = subprocess.run([sys.executable, "-c", "from skiff.daemon import activation; "
                          "print(activation.listen_sockets())"],
                         env={"PYTHONPATH": ".", "LISTEN_FDS": "2", "LISTEN_PID": "1"},
                         capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "[]"  # LISTEN_PID names another process: not ours
