"""`skiff logs`: print the output of a pod's container.

    skiff logs POD [CONTAINER] [-c CONTAINER] [-f] [-p] [--tail N] [--timestamps]

As kubectl: the pod's only container unless one is named; `-f` streams until the container
stops or you press Ctrl-C; `-p` shows the previous attempt of a restarted container. The
bytes go through the apiserver from the kubelet of the pod's node, unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from cli import common
from cli.errors import CliError
from skiff.client import errors
from skiff.client.client import Client


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("logs", help="print the logs of a container in a pod",
                              description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pod", metavar="POD", help="the pod's name (or pod/NAME)")
    p.add_argument("container_arg", nargs="?", metavar="CONTAINER", default="",
                   help="the container (same as -c)")
    p.add_argument("-c", "--container", default="",
                   help="the container (default: the pod's only one)")
    p.add_argument("-f", "--follow", action="store_true",
                   help="keep streaming new output until the container stops")
    p.add_argument("-p", "--previous", action="store_true",
                   help="the previous attempt of the container, before its last restart")
    p.add_argument("--tail", type=int, default=-1,
                   help="only the last N lines (default -1: all)")
    p.add_argument("--timestamps", action="store_true",
                   help="prefix each line with its RFC 3339 timestamp")
    common.add_namespace_flags(p, all_namespaces=False)
    p.set_defaults(func=run)


def pod_name(text: str) -> str:
    """`web`, `pod/web` or `pods/web` -> `web`; other kinds are refused."""
    kind, sep, name = text.rpartition("/")
    if not sep:
        return text
    if kind.lower() not in ("pod", "pods", "po") or not name:
        raise CliError(f"{text}: only pods have logs and exec; name a pod (skiff get pods)")
    return name


def kubelet_error(err: errors.Unavailable) -> CliError | None:
    """A failure to reach the node, said as the apiserver said it (not as a dead apiserver,
    which is what the common error handling would claim): the apiserver answered, so the
    error carries its Status; a connection to it that failed carries none."""
    if err.status is not None:
        return CliError(err.message)
    return None


def run(args: argparse.Namespace) -> int:
    if args.container and args.container_arg and args.container != args.container_arg:
        raise CliError("only one of -c or an inline container name is allowed")
    container = args.container or args.container_arg
    name = pod_name(args.pod)
    out = sys.stdout.buffer

    async def body(client: Client) -> int:
        try:
            async for chunk in client.logs(
                    name, common.namespace(args), container=container, follow=args.follow,
                    previous=args.previous, tail_lines=args.tail if args.tail >= 0 else None,
                    timestamps=args.timestamps):
                out.write(chunk)
                out.flush()  # -f: show each line as it comes
        except errors.Unavailable as err:
            raise (kubelet_error(err) or err) from None
        return 0

    try:
        return common.run(args, body)
    except BrokenPipeError:
        # `skiff logs web | head`: the reader has all it wants. Point stdout at /dev/null
        # so the interpreter's final flush does not fail again.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
