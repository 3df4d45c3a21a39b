"""`skiff delete`: delete objects by name, by manifest, by label selector, or all of a type.

    skiff delete TYPE NAME... | TYPE/NAME... | -f SRC | TYPE -l SELECTOR | TYPE --all

Prints `<kind> "<name>" deleted` for each, as kubectl does, then (unless --wait=false) waits
until each is really gone: a Pod on a node lives on through its grace period until the kubelet
confirms, and an object with finalizers until they are done. A name that does not exist is an
error unless --ignore-not-found; the other objects are still deleted, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from cli import common, selection
from cli.errors import CliError
from cli.selection import Target
from skiff.api import duration
from skiff.api.meta import meta
from skiff.client import errors
from skiff.client.client import Client

POLL_SECONDS = 0.2
_PROPAGATION = {
    "background": "Background",
    "foreground": "Foreground",
    "orphan": "Orphan",
    "true": "Background",
    "false": "Orphan",
}  # true/false: kubectl's old spelling


def parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f'invalid boolean "{text}" (use true or false)')


def parse_duration(text: str) -> float:
    """A duration flag's seconds (skiff.api.duration), as argparse wants its errors."""
    try:
        return duration.parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "delete",
        help="delete objects",
        description="Delete objects by TYPE NAME..., TYPE/NAME..., -f SRC, TYPE -l SELECTOR "
        "or TYPE --all (TYPE may be a comma-separated list), and wait until they "
        "are gone.",
    )
    p.add_argument("resources", nargs="*", metavar="TYPE[/NAME] [NAME...]")
    selection.add_flags(p)
    p.add_argument("--field-selector", default="", help="field selector, e.g. spec.nodeName=node-1")
    # A value is required (`--wait=false`): an optional one would swallow a TYPE after it.
    p.add_argument(
        "--wait",
        type=parse_bool,
        default=True,
        metavar="true|false",
        help="wait until the objects are gone (default true)",
    )
    p.add_argument(
        "--timeout",
        type=parse_duration,
        default=60.0,
        help="how long to wait, e.g. 60s (default 60s)",
    )
    p.add_argument(
        "--grace-period",
        type=int,
        default=-1,
        help="seconds a pod gets to stop; -1: the pod's own (default)",
    )
    p.add_argument("--now", action="store_true", help="a grace period of 1 second")
    p.add_argument(
        "--force",
        action="store_true",
        help="remove pods at once, without waiting for their node to stop them",
    )
    p.add_argument(
        "--cascade",
        choices=sorted(_PROPAGATION),
        default="background",
        help="what happens to dependents: background (default), foreground (they "
        "go first), orphan (they stay)",
    )
    p.add_argument(
        "--ignore-not-found",
        action="store_true",
        help="an object that does not exist is not an error",
    )
    p.set_defaults(func=run_delete)


def grace_period(args: argparse.Namespace) -> int | None:
    """The grace period to send, with kubectl's rules: --now is 1 s; 0 means "at once" only
    with --force (else 1, as kubectl keeps for compatibility); --force alone means 0."""
    if args.now:
        if args.grace_period >= 0:
            raise CliError("--now and --grace-period cannot be specified together")
        return 1
    if args.force:
        return max(int(args.grace_period), 0)
    if args.grace_period == 0:
        return 1
    return args.grace_period if args.grace_period > 0 else None


def run_delete(args: argparse.Namespace) -> int:
    chosen = selection.from_args(args, args.resources)
    grace = grace_period(args)
    propagation = _PROPAGATION[args.cascade]
    if args.force:
        print(
            "Warning: Immediate deletion does not wait for confirmation that the running "
            "resource has been terminated. The resource may continue to run on the cluster "
            "indefinitely.",
            file=sys.stderr,
            flush=True,
        )

    async def body(client: Client) -> bool:
        targets = await selection.expand(
            client,
            chosen,
            namespace="" if args.all_namespaces else common.namespace(args),
            label_selector=args.selector,
            field_selector=args.field_selector,
        )
        if not targets:
            print("No resources found", file=sys.stderr, flush=True)
            return True
        ok = True
        deleted: list[tuple[Target, str]] = []
        for target in targets:
            try:
                obj = await client.delete(
                    target.kind,
                    target.name,
                    target.namespace,
                    grace_period=grace,
                    propagation=propagation,
                )
            except errors.NotFound as err:
                if args.ignore_not_found or chosen.listed:
                    continue  # listed a moment ago and gone since: what we wanted
                _error(err.message)
                ok = False
                continue
            except (errors.Unavailable, errors.Timeout):
                raise
            except errors.ApiError as err:
                _error(err.message)
                ok = False
                continue
            print(f'{target.kind.qualified} "{target.name}" deleted', flush=True)
            deleted.append((target, meta(obj).uid))
        if args.wait and deleted:
            ok = await wait_gone(client, deleted, timeout=args.timeout) and ok
        return ok

    return 0 if common.run(args, body) else 1


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


async def wait_gone(client: Client, deleted: list[tuple[Target, str]], *, timeout: float) -> bool:
    """Waits until every object is gone (or replaced by a new one of the same name, which
    means the one deleted is gone); reports each still there after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pending = list(deleted)
    while pending:
        still = []
        for target, uid in pending:
            try:
                obj = await client.get(target.kind, target.name, target.namespace)
            except errors.NotFound:
                continue
            if meta(obj).uid == uid:
                still.append((target, uid))
        pending = still
        if not pending:
            break
        if loop.time() >= deadline:
            for target, _ in pending:
                _error(f"timed out waiting for the condition on {target.kind.plural}/{target.name}")
            return False
        await asyncio.sleep(POLL_SECONDS)
    return True
