"""`skiff get`: display one or many objects, as kubectl get does.

skiff get pods                      skiff get deploy web -o yaml
skiff get po,svc -l app=web         skiff get pod/a service/b
skiff get all -A                    skiff get pods -w
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from google.protobuf.message import Message

from cli import common, printers
from cli.errors import CliError
from skiff.api import convert, kinds
from skiff.api.meta import meta
from skiff.client import errors
from skiff.client.client import Client, WatchEvent

# What `get all` means, in kubectl's order (its "all" category, for the kinds Skiff has).
ALL = ("pods", "services", "daemonsets", "deployments", "replicasets", "cronjobs", "jobs")


@dataclass
class Target:
    kind: kinds.Kind
    names: list[str] = field(default_factory=list)


@dataclass
class Request:
    """What the positional arguments ask for."""

    targets: list[Target]
    with_kind: bool  # several kinds asked for: names print as `pod/x`
    single: bool  # exactly one object named: -o yaml prints it, not a List

    @property
    def by_name(self) -> bool:
        return any(t.names for t in self.targets)


def _kinds_of(text: str) -> list[kinds.Kind]:
    found: list[kinds.Kind] = []
    for part in text.split(","):
        if not part:
            raise CliError(f'invalid resource type list "{text}"')
        for name in ALL if part == "all" else (part,):
            kind = common.resolve_kind(name)
            if kind not in found:
                found.append(kind)
    return found


def _add(targets: list[Target], kind: kinds.Kind, name: str) -> None:
    for target in targets:
        if target.kind == kind:
            target.names.append(name)
            return
    targets.append(Target(kind, [name]))


def parse_targets(args: Sequence[str], command: str = "get") -> Request:
    """`TYPE[,TYPE...] [NAME...]` or `TYPE/NAME...` (kubectl's two forms)."""
    if not args:
        raise CliError(
            f'You must specify the type of resource to {command}. Use "skiff '
            'api-resources" for a complete list of supported resources.'
        )
    if any("/" in a for a in args):
        if not all("/" in a for a in args):
            raise CliError(
                "there is no need to specify a resource type as a separate argument "
                "when passing arguments in resource/name form (e.g. 'skiff "
                f"{command} resource/<resource_name>' instead of 'skiff {command} "
                "resource resource/<resource_name>')"
            )
        targets: list[Target] = []
        for arg in args:
            type_, _, name = arg.partition("/")
            if not type_ or not name or "/" in name or "," in type_:
                raise CliError(
                    "arguments in resource/name form must have a single resource "
                    f"and name, got {arg!r}"
                )
            _add(targets, common.resolve_kind(type_), name)
        return Request(
            targets,
            with_kind=len(targets) > 1,
            single=len(targets) == 1 and len(targets[0].names) == 1,
        )
    found = _kinds_of(args[0])
    names = list(dict.fromkeys(args[1:]))
    several = "," in args[0] or args[0] == "all"
    return Request(
        [Target(k, list(names)) for k in found],
        with_kind=several,
        single=not several and len(names) == 1,
    )


# ---- reading ----


def list_namespace(kind: kinds.Kind, args: argparse.Namespace) -> str:
    """The namespace to list in: "" (every namespace) for -A and for cluster kinds."""
    if not kind.namespaced or getattr(args, "all_namespaces", False):
        return ""
    return common.namespace(args)


def not_found_line(err: errors.ApiError) -> str:
    return f"Error from server (NotFound): {err.message}"


def sort_key(obj: Message) -> tuple[str, str]:
    metadata = meta(obj)
    return metadata.namespace, metadata.name


def _sorted(objects: Sequence[Message]) -> list[Message]:
    return sorted(objects, key=sort_key)


def cache_version(args: argparse.Namespace) -> str:
    """The resourceVersion to read at: "0" (anything the apiserver's watch cache holds,
    which it can answer while etcd is stalled) with --cached, else the latest."""
    return "0" if args.cached else ""


async def fetch(
    client: Client, request: Request, args: argparse.Namespace
) -> tuple[list[tuple[kinds.Kind, list[Message]]], list[str]]:
    """The objects of each target, in the order asked, and a NotFound line per name that
    does not exist (kubectl prints what it found and reports the rest)."""
    groups: list[tuple[kinds.Kind, list[Message]]] = []
    missing: list[str] = []
    for target in request.targets:
        namespace = list_namespace(target.kind, args)
        if not target.names:
            items, _ = await client.list(
                target.kind,
                namespace,
                label_selector=args.selector,
                field_selector=args.field_selector,
                resource_version=cache_version(args),
            )
            groups.append((target.kind, _sorted(items)))
            continue
        found = []
        for name in target.names:
            try:
                found.append(await client.get(target.kind, name, namespace,
                                              resource_version=cache_version(args)))
            except errors.NotFound as err:
                if not args.ignore_not_found:
                    missing.append(not_found_line(err))
        groups.append((target.kind, found))
    return groups, missing


# ---- printing ----


def emit(text: str, stream: TextIO | None = None) -> None:
    """Writes and flushes at once: a watch's rows must reach a pipe as they happen."""
    out = stream or sys.stdout
    out.write(text)
    out.flush()


def no_resources(request: Request, args: argparse.Namespace) -> str:
    namespaced = all(t.kind.namespaced for t in request.targets)
    if namespaced and not args.all_namespaces:
        return printers.no_resources_message(common.namespace(args))
    return printers.no_resources_message(None)


@dataclass
class WatchPrinter:
    """Prints what a watch sees, one object at a time, lined up with what came before."""

    kind: kinds.Kind
    options: printers.PrintOptions
    show_event_type: bool = False
    writer: printers.TableWriter = field(default_factory=printers.TableWriter)
    header_done: bool = False
    documents: int = 0

    def render(self, obj: Message, event_type: str = "ADDED") -> str:
        output = self.options.output
        if output == "name":
            return printers.name_of(obj) + "\n"
        if output in ("yaml", "json"):
            return self._document(obj, event_type)
        rows = []
        if not self.header_done and not self.options.no_headers:
            rows.append(self._with_event("EVENT", printers.headers(self.kind, self.options)))
        self.header_done = True
        rows.append(self._with_event(event_type, printers.row(self.kind, obj, self.options)))
        return self.writer.render(rows)

    def _with_event(self, event_type: str, cells: list[str]) -> list[str]:
        return [event_type, *cells] if self.show_event_type else cells

    def _document(self, obj: Message, event_type: str) -> str:
        data = convert.to_dict(obj)
        if self.show_event_type:
            data = {"type": event_type, "object": data}
        text = printers.dump(data, self.options.output)
        # kubectl's YAML printer separates the documents of a stream with ---.
        if self.options.output == "yaml" and self.documents:
            text = "---\n" + text
        self.documents += 1
        return text


async def changes(
    client: Client,
    kind: kinds.Kind,
    namespace: str,
    label_selector: str,
    field_selector: str,
    resource_version: str,
) -> AsyncIterator[WatchEvent]:
    """Every change after `resource_version`, reconnecting from the last version seen when
    the server ends a stream (bookmarks keep that version fresh while nothing changes)."""
    version = resource_version
    while True:
        try:
            async for event in client.watch(
                kind,
                namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                resource_version=version,
                bookmarks=True,
            ):
                if event.resource_version:
                    version = event.resource_version
                if event.type != "BOOKMARK":
                    yield event
        except errors.Expired as err:
            raise CliError(f"the watch stopped: {err.message}; run the command again") from None


def _and(selector: str, term: str) -> str:
    return f"{selector},{term}" if selector else term


async def watch(
    client: Client, request: Request, args: argparse.Namespace, options: printers.PrintOptions
) -> int:
    if len(request.targets) != 1:
        raise CliError("you may only specify a single resource type when watching")
    target = request.targets[0]
    if len(target.names) > 1:
        raise CliError(
            "watch is only supported on individual resources and resource "
            f"collections, but {len(target.names)} resources were found"
        )
    field_selector = args.field_selector
    if target.names:
        field_selector = _and(field_selector, f"metadata.name={target.names[0]}")
    namespace = list_namespace(target.kind, args)
    items, version = await client.list(
        target.kind,
        namespace,
        label_selector=args.selector,
        field_selector=field_selector,
        resource_version=cache_version(args),
    )
    if target.names and not items and not args.ignore_not_found:
        qualified = (
            f"{target.kind.plural}.{target.kind.group}" if target.kind.group else target.kind.plural
        )
        emit(
            f'Error from server (NotFound): {qualified} "{target.names[0]}" not found\n', sys.stderr
        )
        return 1
    printer = WatchPrinter(target.kind, options, args.output_watch_events)
    if not args.watch_only:
        for obj in _sorted(items):
            emit(printer.render(obj))
        if not items and options.output in ("", "wide"):
            emit(no_resources(request, args) + "\n", sys.stderr)
    async for event in changes(
        client, target.kind, namespace, args.selector, field_selector, version
    ):
        if event.object is not None:
            emit(printer.render(event.object, event.type))
    return 0


async def get(
    client: Client, request: Request, args: argparse.Namespace, options: printers.PrintOptions
) -> int:
    if args.watch or args.watch_only:
        return await watch(client, request, args, options)
    groups, missing = await fetch(client, request, args)
    nothing = not any(objs for _, objs in groups)
    if not (nothing and request.by_name):  # not an empty List for names that do not exist
        emit(printers.format_objects(groups, options, single=request.single))
    for line in missing:
        emit(line + "\n", sys.stderr)
    if nothing and not missing and not request.by_name and options.output in ("", "wide"):
        emit(no_resources(request, args) + "\n", sys.stderr)
    return 1 if missing else 0


def check_output(output: str) -> str:
    if output and output not in printers.OUTPUT_FORMATS:
        raise CliError(
            f'unable to match a printer suitable for the output format "{output}", '
            f"allowed formats are: {','.join(printers.OUTPUT_FORMATS)}"
        )
    return output


def run_get(args: argparse.Namespace) -> int:
    request = parse_targets(args.resources)
    if request.by_name and args.all_namespaces:
        raise CliError("a resource cannot be retrieved by name across all namespaces")
    if request.by_name and args.selector:
        raise CliError("name cannot be provided when a selector is specified")
    options = printers.PrintOptions(
        output=check_output(args.output),
        all_namespaces=args.all_namespaces,
        show_labels=args.show_labels,
        with_kind=request.with_kind or args.show_kind,
        no_headers=args.no_headers,
    )
    return common.run(args, lambda client: get(client, request, args, options))


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "get",
        help="display one or many resources",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "resources",
        nargs="*",
        metavar="TYPE[,TYPE...] [NAME...] | TYPE/NAME",
        help="what to show; `skiff api-resources` lists the types",
    )
    common.add_namespace_flags(p)
    p.add_argument("-l", "--selector", default="", help="label selector, e.g. app=web,tier!=db")
    p.add_argument("--field-selector", default="", help="field selector, e.g. status.phase=Running")
    p.add_argument("-o", "--output", default="", metavar="FORMAT", help="wide, yaml, json or name")
    p.add_argument(
        "-w", "--watch", action="store_true", help="after listing, print a row for every change"
    )
    p.add_argument(
        "--watch-only", action="store_true", help="print changes only, without listing first"
    )
    p.add_argument(
        "--output-watch-events",
        action="store_true",
        help="with --watch, show the event type (ADDED, MODIFIED, DELETED)",
    )
    p.add_argument("--show-labels", action="store_true", help="add a LABELS column")
    p.add_argument("--show-kind", action="store_true", help="print names as TYPE/NAME")
    p.add_argument("--no-headers", action="store_true", help="omit the header row")
    p.add_argument(
        "--ignore-not-found", action="store_true", help="no error for names that do not exist"
    )
    p.add_argument(
        "--cached",
        action="store_true",
        help="read from the apiserver's watch cache (resourceVersion 0): possibly a moment "
        "old, but answered while etcd is slow or stalled",
    )
    p.set_defaults(func=run_get)
