"""`skiff up` and `skiff down`: run a whole single-machine cluster from one data directory.

The work is done by the local-cluster package (`cluster.local`: the supervisor, etcd, the
daemons' command lines, the purge); this module parses the flags, calls it and prints.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cli.errors import CliError
from cluster import local
from cluster.components import (
    DEFAULT_CLUSTER_DNS,
    DEFAULT_ETCD_PORT,
    DEFAULT_KUBELET_PORT,
    DEFAULT_PORT,
    ClusterConfig,
)
from cluster.errors import ClusterError
from cluster.supervisor import say


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir).expanduser().absolute()


def _config_hint(cfg: ClusterConfig) -> str | None:
    """The `export` a user needs when clients would not find this config by default."""
    where = os.environ.get("SKIFF_CONFIG") or local.DEFAULT_CLIENT_CONFIG
    if Path(where).expanduser().resolve() == cfg.client_config.resolve():
        return None
    return f"export SKIFF_CONFIG={cfg.client_config}"


def _print_started(cfg: ClusterConfig, *, detached: bool) -> None:
    say(f"\nSkiff is up: apiserver {cfg.server}, data in {cfg.data_dir}")
    say(f"Logs: {cfg.logs}/<component>.log")
    hint = _config_hint(cfg)
    if hint:
        say(f"Client config: {cfg.client_config}; to use it:\n  {hint}")
    if detached:
        where = local.data_dir_flag(cfg.data_dir)
        say(f"Supervised in the background; see it with: skiff status{where}")
        say(f"Stop with: skiff down{where}")
    else:
        say("Press Ctrl-C to stop.")


def run_up(args: argparse.Namespace) -> int:
    # A flag not given: as the last `skiff up` of this data dir had it, else the default.
    cfg = ClusterConfig.load(_data_dir(args), port=args.port, etcd_port=args.etcd_port,
                             kubelet_port=args.kubelet_port, node_name=args.node_name,
                             token_port=args.token_port, bind_address=args.bind_address,
                             cluster_dns=args.cluster_dns)
    try:
        return local.up(cfg, detach=args.detach,
                        started=lambda cfg: _print_started(cfg, detached=args.detach))
    except ClusterError as err:
        raise CliError(str(err)) from err


def run_down(args: argparse.Namespace) -> int:
    try:
        local.down(_data_dir(args), purge=args.purge)
    except ClusterError as err:
        raise CliError(str(err)) from err
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    up = subparsers.add_parser(
        "up",
        help="start a single-machine cluster (etcd, apiserver, ...)",
        description="Start etcd and the Skiff daemons on this machine, in order, each once the "
        "one before is ready, and keep them running: a daemon that dies is started again "
        "(after 1 s, doubling to 30 s). Foreground by default: Ctrl-C stops everything. On a "
        "partly running cluster, start what is missing. Flags not given keep the values the "
        "last skiff up of the data dir had.",
    )
    up.add_argument(
        "--data-dir",
        default=local.DEFAULT_DATA_DIR,
        help="etcd data, logs, PIDs, token and client config (default %(default)s)",
    )
    up.add_argument("--port", type=int, help=f"apiserver port (default {DEFAULT_PORT})")
    up.add_argument(
        "--etcd-port",
        type=int,
        help=f"etcd client port; its peer port is this + 1 (default {DEFAULT_ETCD_PORT})",
    )
    up.add_argument("--kubelet-port", type=int,
                    help=f"the kubelet's port for logs and exec (default {DEFAULT_KUBELET_PORT})")
    up.add_argument("--node-name", help="this host's Node name (default: the host name)")
    up.add_argument("--token-port", type=int,
                    help="a port where hosts join with tokens (skiff token create); "
                    "default none: this host only")
    up.add_argument("--bind-address",
                    help="where the apiserver listens (default 127.0.0.1; 0.0.0.0 for "
                    "other hosts to join)")
    up.add_argument("--cluster-dns", metavar="IP",
                    help=f"the cluster DNS address (default {DEFAULT_CLUSTER_DNS}): skiff-dns "
                    "answers there, the kube-dns Service holds it, pods' resolv.conf names "
                    "it; \"\" for none (pods get the host's DNS)")
    up.add_argument(
        "-d", "--detach", action="store_true",
        help="start in the background, supervised there, and return",
    )
    up.set_defaults(func=run_up)

    down = subparsers.add_parser(
        "down",
        help="stop what skiff up started",
        description="Stop the processes recorded by skiff up, in reverse order. The pods' "
        "containers and their volume mounts keep running (the next skiff up adopts them); "
        "--purge removes them too.",
    )
    down.add_argument(
        "--data-dir",
        default=local.DEFAULT_DATA_DIR,
        help="data dir given to skiff up (default %(default)s)",
    )
    down.add_argument(
        "--purge", action="store_true",
        help="also remove this cluster's pod containers and networks, unmount its volumes "
        "and delete the data dir (its etcd data, logs and token included)",
    )
    down.set_defaults(func=run_down)
