"""`skiff doctor`: checks this host's part of the cluster and says how to fix what fails.

    skiff doctor                     on the admin's machine: the apiserver, clocks, nodes
    skiff doctor --state-dir DIR     on a joined host (skiff join's state)
    skiff doctor --data-dir DIR      on a `skiff up` host

Exit 1 when any check fails.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cli.errors import CliError
from cluster.certs import LOCAL_CONTEXT
from cluster.doctor import diagnose, node_of
from cluster.join import AgentState
from cluster.local import DEFAULT_DATA_DIR
from skiff.client.config import ClientConfig, Kubeconfig


def _local_admin(path: Path) -> ClientConfig:
    """The admin config of the cluster in this data dir: its file's context of `skiff up`,
    whichever context the user made current (a flat file of an earlier Skiff: its one)."""
    kubeconfig = Kubeconfig.load(path)
    ours = LOCAL_CONTEXT if any(c.name == LOCAL_CONTEXT for c in kubeconfig.contexts()) \
        else None
    return kubeconfig.resolve(ours)


def run_doctor(args: argparse.Namespace) -> int:
    try:
        if args.state_dir:
            state = AgentState(Path(args.state_dir))
            config = ClientConfig.load(state.client_config)
            node, on_node = node_of(state.client_config), True
        elif args.data_dir:
            data = Path(args.data_dir).expanduser()
            config = _local_admin(data / "config")
            saved = json.loads((data / "cluster.json").read_text())
            node, on_node = saved.get("node_name") or None, True
        else:
            config = ClientConfig.load(args.config, args.server, args.context)
            node, on_node = None, False
    except (OSError, ValueError) as err:
        raise CliError(f"cannot read the cluster's files: {err}") from None
    checks = diagnose(config, node_name=node, on_node=on_node)
    for check in checks:
        print(check.line())
    failed = [c for c in checks if not c.ok]
    print(f"{len(checks) - len(failed)} of {len(checks)} checks passed")
    return 1 if failed else 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    d = subparsers.add_parser("doctor", help="check this host's part of the cluster",
                              description="Check the apiserver, clocks, Docker, the node's "
                              "pod network and versions; say how to fix what fails.")
    where = d.add_mutually_exclusive_group()
    where.add_argument("--state-dir", help="a joined host's state (skiff join --state-dir)")
    where.add_argument("--data-dir", nargs="?", const=DEFAULT_DATA_DIR,
                       help=f"a skiff up host's data directory (default {DEFAULT_DATA_DIR})")
    d.set_defaults(func=run_doctor)
