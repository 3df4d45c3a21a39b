"""Seconds from running deploy/install-agent.sh to that node Ready: the median of 3 joins.

Two hosts made as node containers (Debian 12, systemd as PID 1, their own dockerd; the
project's launcher, cluster/nodehost.py, through tests/fixtures/installhosts.py) on a Docker
network of their own. The server is installed with deploy/install-server.sh; then, each
round, on the other host: `skiff token create` on the server, install-agent.sh with the
arguments it printed, timed until `skiff get nodes -w` on the server shows the node Ready
(a watch: no polling interval in the figure); then deploy/uninstall.sh on that host and
`skiff delete node` on the server, so that the next round starts from a host as it was
(each round installs Skiff's venv again, offline from the node image's wheelhouse).
Prints every round, with the script's own time, and the median.

Everything made here (the hosts, their volumes and network) is removed on exit, also on
error or Ctrl-C.

Then the apiserver's create rate with mTLS against plaintext, in the same run
(bench/apiserver_tls.py).

Usage: python bench/join.py [--rounds N] [--no-tls-rate]
Needs root and a Docker engine; the node image is built when missing (about a minute).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from fixtures.installhosts import Host, ReadyWatch, hosts  # noqa: E402

from bench import apiserver_tls  # noqa: E402
from cluster.nodeimage import build_image  # noqa: E402


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def check(result: object, what: str) -> None:
    returncode = getattr(result, "returncode", 1)
    if returncode != 0:
        raise SystemExit(f"{what} failed (exit {returncode}):\n"
                         f"{getattr(result, 'stdout', '')}{getattr(result, 'stderr', '')}")


def one_join(server: Host, agent: Host) -> tuple[float, float]:
    """(install-agent.sh to Ready, the script's own time) in seconds."""
    join = server.join_command()
    watch = ReadyWatch(server, agent.name)
    try:
        if not watch.started():
            raise SystemExit("skiff get nodes -w on the server listed nothing")
        start = time.monotonic()
        installed = agent.install_agent(*join)
        script = time.monotonic() - start
        check(installed, "install-agent.sh")
        ready = watch.wait() - start
    finally:
        watch.stop()
    check(agent.uninstall(), "uninstall.sh")
    check(server.skiff("delete", "node", agent.name), "skiff delete node")
    return ready, script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-tls-rate", action="store_true",
                        help="skip the mTLS against plaintext create rate")
    args = parser.parse_args()
    image = build_image(say=lambda m, **_: say(f"# {m}")).tag
    with hosts(image, say=lambda m: say(f"# {m}")) as made:
        server, agent = made.new(), made.new()
        start = time.monotonic()
        check(server.install_server("--token-port", "9345"), "install-server.sh")
        say(f"# server installed and its node Ready in {time.monotonic() - start:.1f} s")
        rounds = []
        for n in range(1, args.rounds + 1):
            ready, script = one_join(server, agent)
            rounds.append(ready)
            print(f"join {n}: install-agent.sh to node Ready {ready:.1f} s "
                  f"(the script itself {script:.1f} s)", flush=True)
    print(f"median of {len(rounds)} joins: {statistics.median(rounds):.1f} s from "
          "install-agent.sh to the node Ready")
    if not args.no_tls_rate:
        # The other figure the issue asks of this bench, on this machine in this run.
        print("\n# what TLS costs the apiserver (bench/apiserver_tls.py):", flush=True)
        apiserver_tls.main([])


if __name__ == "__main__":
    main()
