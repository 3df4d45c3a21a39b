"""Which objects a command's arguments name: `TYPE NAME...`, `TYPE/NAME...`, `-f SRC`,
`TYPE -l SELECTOR`, `TYPE --all`, as kubectl reads them. `delete`, `label` and
`annotate` share the flags (`add_flags`) and the resolution (`from_args`, `expand`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from cli import common
from cli.errors import CliError
from cli.manifests import ManifestError, load, target_namespace
from skiff.api import kinds
from skiff.api.meta import meta
from skiff.client import errors
from skiff.client.client import Client


def add_flags(p: argparse.ArgumentParser) -> None:
    """-f/-R, -l, --all and the namespace flags."""
    p.add_argument("-f", "--filename", dest="filenames", action="append", default=[],
                   metavar="SRC", help="the objects of these manifests (repeatable)")
    p.add_argument("-R", "--recursive", action="store_true",
                   help="with -f on a folder, also read its subfolders")
    p.add_argument("-l", "--selector", default="", help="label selector, e.g. app=web")
    p.add_argument("--all", dest="all_objects", action="store_true",
                   help="every object of the types in the namespace")
    common.add_namespace_flags(p)


def from_args(args: argparse.Namespace, resources: Sequence[str]) -> Selection:
    """The selection the flags of `add_flags` and the resource arguments name."""
    if args.all_namespaces and not (args.selector or args.all_objects):
        raise CliError("-A (--all-namespaces) needs -l or --all")
    return select(resources, filenames=args.filenames, recursive=args.recursive,
                  selector=args.selector, all_objects=args.all_objects,
                  namespace=args.namespace, default_namespace=common.namespace(args),
                  all_namespaces=args.all_namespaces)


@dataclass(frozen=True)
class Target:
    kind: kinds.Kind
    namespace: str
    name: str
    source: str = ""  # the -f file that named it

    @property
    def ref(self) -> str:
        """`deployment.apps/web`, as kubectl names an object in its output."""
        return f"{self.kind.qualified}/{self.name}"


@dataclass(frozen=True)
class Selection:
    """What a command's arguments name, before asking the server: objects by name, and kinds
    whose objects are to be listed (with -l or --all)."""

    named: tuple[Target, ...] = ()
    listed: tuple[kinds.Kind, ...] = ()


def _lookup(name: str) -> kinds.Kind:
    try:
        return kinds.lookup(name)
    except kinds.UnknownKindError as err:
        raise CliError(str(err)) from None


def select(
    resources: Sequence[str],
    *,
    filenames: Sequence[str] = (),
    recursive: bool = False,
    selector: str = "",
    all_objects: bool = False,
    namespace: str | None = None,
    default_namespace: str = "default",
    all_namespaces: bool = False,
) -> Selection:
    """Resolves `TYPE NAME...`, `TYPE/NAME...`, `-f SRC` or `TYPE (-l SEL | --all)`, with
    kubectl's rules and messages for the combinations that make no sense."""
    if filenames:
        if resources:
            raise CliError(
                "when paths, URLs, or stdin is provided as input, you may not "
                "specify resource arguments as well"
            )
        if selector or all_objects:
            raise CliError("-l and --all select objects by type; they cannot be used with -f")
        named = []
        for manifest in load(filenames, recursive=recursive):
            if not manifest.name:
                raise ManifestError(
                    f"{manifest.source}: {manifest.describe()}: metadata.name is required"
                )
            named.append(
                Target(
                    manifest.kind,
                    target_namespace(manifest, namespace, default_namespace),
                    manifest.name,
                    manifest.source,
                )
            )
        if not named:
            raise CliError(f"no objects found in {', '.join(filenames)}")
        return Selection(named=tuple(named))
    if not resources:
        raise CliError("You must provide one or more resources by argument or filename.")
    ns = "" if all_namespaces else (namespace or default_namespace)
    if any("/" in r for r in resources):
        if selector or all_objects:
            raise CliError("name cannot be provided when a selector or --all is specified")
        targets = []
        for ref in resources:
            type_name, _, name = ref.partition("/")
            if not type_name or not name or "/" in name:
                raise CliError(
                    f"arguments in resource/name form must have a single resource "
                    f'and name, got "{ref}" (there is no need to specify a '
                    "resource type as a separate argument when passing arguments "
                    "in resource/name form)"
                )
            targets.append(_named(_lookup(type_name), name, ns, all_namespaces))
        return Selection(named=tuple(targets))
    types = [_lookup(t) for t in resources[0].split(",") if t]
    if not types:
        raise CliError(f'"{resources[0]}" names no resource type')
    names = resources[1:]
    if names:
        if selector or all_objects:
            raise CliError("name cannot be provided when a selector or --all is specified")
        return Selection(
            named=tuple(_named(k, n, ns, all_namespaces) for k in types for n in names)
        )
    if selector or all_objects:
        return Selection(listed=tuple(types))
    raise CliError("resource(s) were provided, but no name was specified")


def _named(kind: kinds.Kind, name: str, namespace: str, all_namespaces: bool) -> Target:
    if all_namespaces and kind.namespaced:
        raise CliError("a resource cannot be retrieved by name across all namespaces")
    return Target(kind, namespace if kind.namespaced else "", name)


async def expand(
    client: Client,
    selection: Selection,
    *,
    namespace: str,
    label_selector: str = "",
    field_selector: str = "",
) -> list[Target]:
    """The selection's objects: the named ones, then those listed (`namespace` "" lists every
    namespace)."""
    targets = list(selection.named)
    for kind in selection.listed:
        items, _ = await client.list(
            kind,
            namespace if kind.namespaced else "",
            label_selector=label_selector,
            field_selector=field_selector,
        )
        targets.extend(Target(kind, meta(item).namespace, meta(item).name) for item in items)
    return targets


async def edit_each(targets: Sequence[Target], edit: Callable[[Target], Awaitable[str]]) -> bool:
    """Runs `edit` on each target in turn and prints `REF OUTCOME` (`node/a cordoned`), the
    outcome being what `edit` returns. A failure is printed as one `error:` line and the rest
    still run, as kubectl goes on past one bad object; an unavailable server (or a stalled
    etcd) stops it all, since every other object would fail the same way. Returns whether
    every edit succeeded."""
    if not targets:
        print("No resources found", file=sys.stderr, flush=True)
        return True
    ok = True
    for target in targets:
        try:
            outcome = await edit(target)
        except (errors.Unavailable, errors.Timeout):
            raise
        except (errors.ApiError, CliError) as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            ok = False
            continue
        print(f"{target.ref} {outcome}", flush=True)
    return ok
