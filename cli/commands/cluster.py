"""`skiff cluster create|list|delete|get-config|load-image|stop-node|start-node`:
clusters of node containers on this machine, each node with its own dockerd and Skiff
installed as on a real host (the logic is cluster/multinode.py)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cli import printers
from cli.commands.get import emit
from cli.errors import CliError
from cluster import multinode, nodeimage
from cluster.errors import ClusterError
from cluster.supervisor import say
from skiff.client.config import default_path


def _config_path(args: argparse.Namespace) -> Path:
    return Path(args.config) if args.config else default_path()


def _fail(err: ClusterError) -> CliError:
    """The first line as the error; the rest (a script's last words) before it."""
    first, _, rest = str(err).partition("\n")
    if rest:
        print(rest, file=sys.stderr)
    return CliError(first)


def run_create(args: argparse.Namespace) -> int:
    path = _config_path(args)
    try:
        made = multinode.create(args.name, args.nodes, image=args.image, config_path=path,
                                say=say)
    except ClusterError as err:
        raise _fail(err) from None
    emit(f"cluster {made.name} created: {len(made.nodes)} node(s) Ready in "
         f"{made.seconds:.1f} s; apiserver {made.server}\n"
         f'context "{made.context}" added to {path} and made current:\n'
         f"  skiff get nodes\n"
         f"  skiff --context {made.context} get nodes\n"
         f"delete it with: skiff cluster delete {made.name}\n")
    return 0


def run_list(args: argparse.Namespace) -> int:
    rows = [("NAME", "NODES", "STATUS")]
    rows += [(c.name, str(c.nodes), c.status) for c in multinode.list_clusters()]
    emit(printers.columns(rows))
    return 0


def run_delete(args: argparse.Namespace) -> int:
    if args.all == bool(args.names):
        raise CliError("name the clusters to delete, or --all", exit_code=2)
    names = [c.name for c in multinode.list_clusters()] if args.all else args.names
    missing = []
    for name in names:
        try:
            removed = multinode.delete(name, config_path=_config_path(args))
        except ClusterError as err:
            raise _fail(err) from None
        if removed:
            emit(f"cluster {name} deleted\n")
        else:
            missing.append(name)
    if missing:
        raise CliError(f"no cluster named {', '.join(missing)}")
    return 0


def run_get_config(args: argparse.Namespace) -> int:
    try:
        emit(multinode.get_config(args.name))
    except ClusterError as err:
        raise _fail(err) from None
    return 0


def run_load_image(args: argparse.Namespace) -> int:
    try:
        multinode.load_images(args.name, args.images, say=lambda m: emit(m + "\n"))
    except ClusterError as err:
        raise _fail(err) from None
    return 0


def run_build_image(args: argparse.Namespace) -> int:
    try:
        # Progress to stderr: stdout is the tag alone, for IMAGE=$(skiff cluster build-image).
        built = nodeimage.build_image(force=True, say=lambda m, err=False: say(m, err=True))
    except ClusterError as err:
        raise _fail(err) from None
    emit(f"{built.tag}\n")
    return 0


def run_stop_node(args: argparse.Namespace) -> int:
    try:
        node = multinode.stop_node(args.name, args.node)
    except ClusterError as err:
        raise _fail(err) from None
    emit(f"node {node} stopped (it stays down until: skiff cluster start-node {args.name} "
         f"{args.node})\n")
    return 0


def run_start_node(args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        node = multinode.start_node(args.name, args.node, config_path=_config_path(args),
                                    timeout=args.timeout)
    except ClusterError as err:
        raise _fail(err) from None
    emit(f"node {node} started: Ready in {time.monotonic() - started:.1f} s\n")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("cluster", help="clusters of node containers on this machine",
                              description="Multi-node clusters in containers (each node "
                                          "with its own dockerd), for tests and trying out.")
    sub = p.add_subparsers(dest="cluster_command", metavar="COMMAND", required=True)
    c = sub.add_parser("create", help="create a cluster and make its context current")
    c.add_argument("name", nargs="?", metavar="NAME",
                   help=f"the cluster's name (default {multinode.DEFAULT_NAME})")
    c.add_argument("--nodes", type=int, default=1, help="how many nodes (default 1)")
    c.add_argument("--image", help="the node image (default this checkout's skiff-node tag, "
                   "built first if missing)")
    c.set_defaults(func=run_create)
    ls = sub.add_parser("list", help="list the clusters: NAME, NODES, STATUS")
    ls.set_defaults(func=run_list)
    d = sub.add_parser("delete", help="delete clusters and their contexts")
    d.add_argument("names", nargs="*", metavar="NAME")
    d.add_argument("--all", action="store_true", help="every cluster")
    d.set_defaults(func=run_delete)
    li = sub.add_parser("load-image", help="copy images from this machine into every node",
                        description="Copy images from this machine's engine into every "
                        "node of a cluster (saved once, loaded everywhere at once; no "
                        "registry): pods with imagePullPolicy IfNotPresent or Never use "
                        "them.")
    li.add_argument("name", metavar="NAME")
    li.add_argument("images", nargs="+", metavar="IMAGE")
    li.set_defaults(func=run_load_image)
    b = sub.add_parser("build-image", help="rebuild the node image",
                       description="Rebuild this checkout's node image, skiff-node:VERSION-HASH "
                       "(Debian packages and Skiff's dependencies, offline afterwards; create "
                       "builds it when missing and reuses it after). Prints its tag.")
    b.set_defaults(func=run_build_image)
    so = sub.add_parser("stop-node", help="stop a node (it stays down until start-node)",
                        description="Stop a node's container as a host is shut down: its "
                        "pods stop, its Node turns NotReady after the node lifecycle "
                        "controller's grace period, and its pods are evicted as their "
                        "tolerations say. It stays down, even across a restart of this "
                        "machine's dockerd, until start-node.")
    so.add_argument("name", metavar="NAME")
    so.add_argument("node", metavar="NODE", help="the node: skiff-NAME-N, or N")
    so.set_defaults(func=run_stop_node)
    sa = sub.add_parser("start-node", help="start a stopped node and wait until it is Ready",
                        description="Start a stopped node's container and wait until its "
                        "dockerd answers and its Node is Ready again.")
    sa.add_argument("name", metavar="NAME")
    sa.add_argument("node", metavar="NODE", help="the node: skiff-NAME-N, or N")
    sa.add_argument("--timeout", type=float, default=240.0, metavar="SECONDS",
                    help="how long to wait for Ready (default 240)")
    sa.set_defaults(func=run_start_node)
    g = sub.add_parser("get-config", help="print a cluster's kubeconfig")
    g.add_argument("name", metavar="NAME")
    g.set_defaults(func=run_get_config)
