"""`skiff join` (this host into a cluster) and `skiff agent` (run the joined host's agent).

    skiff join https://SERVER:PORT --token ID.SECRET --ca-cert-hash sha256:HEX
               [--node-name NAME] [--node-ip IP] [--state-dir DIR] [--force]
    (the token may come from $SKIFF_JOIN_TOKEN instead, off the command line that every
    user of the host can read: the agent's systemd unit passes it so)
    skiff agent [--state-dir DIR] [--port PORT] [--node-ip IP] [-- KUBELET-FLAGS...]
"""

from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path

from cli.commands.delete import parse_duration
from cli.errors import CliError
from cluster.components import DEFAULT_CLUSTER_DNS, kubelet_command
from cluster.errors import ClusterError
from cluster.join import DEFAULT_STATE_DIR, AgentState, join, reissue_if_moved, renew_if_due

TOKEN_ENV = "SKIFF_JOIN_TOKEN"


def run_join(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get(TOKEN_ENV, "")
    if not token:
        raise CliError(f"a join token is needed: --token ID.SECRET, or ${TOKEN_ENV} (skiff "
                       "token create on the server prints the join command)")
    try:
        print(join(args.url, token, args.ca_cert_hash, node_name=args.node_name,
                   state=AgentState(Path(args.state_dir)), node_ip=args.node_ip,
                   force=args.force))
    except ClusterError as err:
        raise CliError(str(err)) from None
    return 0


def run_agent(args: argparse.Namespace) -> int:
    state = AgentState(Path(args.state_dir))
    name = state.node_name()
    if name is None:
        raise CliError(f"{state.dir} holds no joined host: run skiff join first")
    try:
        renewed = renew_if_due(state, args.renew_before)
    except ClusterError as err:
        raise CliError(str(err)) from None
    if renewed:
        print(renewed, flush=True)
    moved = reissue_if_moved(state, args.node_ip)
    if moved:
        print(moved, flush=True)
    extra = args.kubelet_flags
    extra = extra[1:] if extra[:1] == ["--"] else extra
    argv = kubelet_command(config=state.client_config, root_dir=state.dir / "kubelet",
                           port=args.port, node_name=name,
                           node_ip=args.node_ip or state.node_ip(),
                           tls=(state.serving_cert, state.serving_key, state.ca),
                           cluster_dns=args.cluster_dns, extra=extra)
    os.execv(argv[0], argv)  # the agent is the kubelet: its supervisor sees one process


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    j = subparsers.add_parser("join", help="join this host to a cluster",
                              description="Join this host to a cluster with a token from "
                              "skiff token create.")
    j.add_argument("url", metavar="https://SERVER:PORT")
    j.add_argument("--token", help=f"ID.SECRET (default ${TOKEN_ENV})")
    j.add_argument("--ca-cert-hash", required=True, metavar="sha256:HEX",
                   help="the cluster CA's pin: nothing is sent to a server without it")
    j.add_argument("--node-name", default=socket.gethostname().lower())
    j.add_argument("--node-ip", help="this node's address (default: the default route's)")
    j.add_argument("--state-dir", default=DEFAULT_STATE_DIR)
    j.add_argument("--force", action="store_true", help="join again over existing state")
    j.set_defaults(func=run_join)
    a = subparsers.add_parser("agent", help="run the agent of a joined host",
                              description="Run this host's agent (the kubelet) with the "
                              "credentials skiff join left in its state directory.")
    a.add_argument("--state-dir", default=DEFAULT_STATE_DIR)
    a.add_argument("--port", type=int, default=10250, help="the agent's server (logs, exec)")
    a.add_argument("--node-ip", help="this node's address (default: skiff join's --node-ip, "
                   "else detected)")
    a.add_argument("--cluster-dns", default=DEFAULT_CLUSTER_DNS, metavar="IP",
                   help="the cluster DNS address for pods' resolv.conf, where this host's "
                   "skiff-dns answers (skiff-dns.service; default %(default)s, as skiff up's "
                   "--cluster-dns); \"\" for none")
    a.add_argument("--renew-before", type=parse_duration, default=None, metavar="DURATION",
                   help="renew the node's certificates when they expire within this "
                   "(default: when a third of their lifetime is left)")
    a.add_argument("kubelet_flags", nargs=argparse.REMAINDER,
                   help="more flags for the kubelet, after --")
    a.set_defaults(func=run_agent)
