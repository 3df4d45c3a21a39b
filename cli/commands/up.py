"""`skiff up` and `skiff down`: run a whole single-machine cluster from one data directory.

The work is done by the local-cluster package (`cluster.local`: the supervisor, etcd, the
daemons' command lines); this module parses the flags, calls it and prints.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cli.errors import CliError
from cluster import local
from cluster.components import ClusterConfig
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
        default = cfg.data_dir == Path(local.DEFAULT_DATA_DIR).expanduser().absolute()
        say("Stop with: skiff down" + ("" if default else f" --data-dir {cfg.data_dir}"))
    else:
        say("Press Ctrl-C to stop.")


def run_up(args: argparse.Namespace) -> int:
    cfg = ClusterConfig(_data_dir(args), args.port, args.etcd_port, args.kubelet_port,
                        args.node_name)
    try:
        return local.up(cfg, detach=args.detach,
                        started=lambda cfg: _print_started(cfg, detached=args.detach))
    except ClusterError as err:
        raise CliError(str(err)) from err


def run_down(args: argparse.Namespace) -> int:
    try:
        local.down(_data_dir(args))
    except ClusterError as err:
        raise CliError(str(err)) from err
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    up = subparsers.add_parser(
        "up",
        help="start a single-machine cluster (etcd, apiserver, ...)",
        description="Start etcd and the Skiff daemons on this machine, in order, each once the "
        "one before is ready. Foreground by default: Ctrl-C stops everything.",
    )
    up.add_argument(
        "--data-dir",
        default=local.DEFAULT_DATA_DIR,
        help="etcd data, logs, PIDs, token and client config (default %(default)s)",
    )
    up.add_argument("--port", type=int, default=6443, help="apiserver port (default %(default)s)")
    up.add_argument(
        "--etcd-port",
        type=int,
        default=2379,
        help="etcd client port; its peer port is this + 1 (default %(default)s)",
    )
    up.add_argument("--kubelet-port", type=int, default=10250,
                    help="the kubelet's port for logs and exec (default %(default)s)")
    up.add_argument("--node-name", default="",
                    help="this host's Node name (default: the host name)")
    up.add_argument(
        "-d", "--detach", action="store_true", help="start in the background and return"
    )
    up.set_defaults(func=run_up)

    down = subparsers.add_parser(
        "down",
        help="stop what skiff up started",
        description="Stop the processes recorded by skiff up, in reverse order.",
    )
    down.add_argument(
        "--data-dir",
        default=local.DEFAULT_DATA_DIR,
        help="data dir given to skiff up (default %(default)s)",
    )
    down.set_defaults(func=run_down)
