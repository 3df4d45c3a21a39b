"""`skiff describe`: show details of an object, or of every object of a type, with events.

skiff describe pod web-1            skiff describe deploy/web
skiff describe pods -l app=web      skiff describe nodes
"""

from __future__ import annotations

import argparse
import sys

from google.protobuf.message import Message

from cli import common, describe
from cli.commands.get import (
    Request,
    Target,
    emit,
    list_namespace,
    no_resources,
    not_found_line,
    parse_targets,
    sort_key,
)
from cli.errors import CliError
from skiff.client import errors
from skiff.client.client import Client


async def _by_name(client: Client, target: Target, name: str, namespace: str) -> list[Message]:
    """The named object; failing that, as kubectl does, every object whose name starts with
    `name` (so `describe pod web` finds `web-7d4f9`)."""
    try:
        return [await client.get(target.kind, name, namespace)]
    except errors.NotFound:
        items, _ = await client.list(target.kind, namespace)
        matches = [o for o in items if sort_key(o)[1].startswith(name)]
        if not matches:
            raise
        return sorted(matches, key=sort_key)


async def _objects(
    client: Client, request: Request, args: argparse.Namespace
) -> tuple[list[Message], list[str]]:
    found: list[Message] = []
    missing: list[str] = []
    for target in request.targets:
        namespace = list_namespace(target.kind, args)
        if not target.names:
            items, _ = await client.list(target.kind, namespace, label_selector=args.selector)
            found += sorted(items, key=sort_key)
            continue
        for name in target.names:
            try:
                found += await _by_name(client, target, name, namespace)
            except errors.NotFound as err:
                missing.append(not_found_line(err))
    return found, missing


async def _describe(client: Client, request: Request, args: argparse.Namespace) -> int:
    found, missing = await _objects(client, request, args)
    texts = []
    for obj in found:
        ctx = await describe.gather(client, obj, events=args.show_events)
        texts.append(describe.render(obj, ctx))
    # kubectl puts two blank lines between objects.
    emit("\n\n".join(texts))
    for line in missing:
        emit(line + "\n", sys.stderr)
    if not found and not missing:
        emit(no_resources(request, args) + "\n", sys.stderr)
    return 1 if missing else 0


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered not in ("true", "false", "1", "0"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return lowered in ("true", "1")


def run_describe(args: argparse.Namespace) -> int:
    request = parse_targets(args.resources, "describe")
    if request.by_name and args.all_namespaces:
        raise CliError("a resource cannot be retrieved by name across all namespaces")
    if request.by_name and args.selector:
        raise CliError("name cannot be provided when a selector is specified")
    return common.run(args, lambda client: _describe(client, request, args))


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "describe",
        help="show details of a resource or group of resources",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "resources",
        nargs="*",
        metavar="TYPE [NAME_PREFIX...] | TYPE/NAME",
        help="what to describe; a name that matches nothing exactly describes "
        "every object whose name starts with it",
    )
    common.add_namespace_flags(p)
    p.add_argument("-l", "--selector", default="", help="label selector, e.g. app=web")
    p.add_argument(
        "--show-events",
        type=_bool,
        default=True,
        metavar="BOOL",
        help="list the object's events (default true)",
    )
    p.set_defaults(func=run_describe)
