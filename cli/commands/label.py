"""`skiff label` and `skiff annotate`: set or remove labels or annotations of objects.

    skiff label TYPE NAME... KEY=VALUE... KEY-... [--overwrite]
    skiff label TYPE/NAME... | -f SRC | TYPE -l SELECTOR | TYPE --all  KEY=VALUE... KEY-...

With kubectl's rules: `KEY-` removes a key; giving an existing key another value needs
--overwrite (`'app' already has a value (web), and --overwrite is false`); setting and removing
one key in the same command is an error. Each object is read, changed and written back with its
resourceVersion; a conflict (someone wrote in between) reads it again and retries.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass

from cli import common, selection
from cli.errors import CliError
from cli.selection import Target
from skiff.api.meta import meta
from skiff.api.selectors import validate_label_key, validate_label_value
from skiff.client import errors
from skiff.client.client import Client

CONFLICT_RETRIES = 5


@dataclass(frozen=True)
class Field:
    """Which map of metadata a command edits, and how it talks about it."""

    command: str  # label / annotate
    attribute: str  # the ObjectMeta field
    noun: str  # label / annotation
    verb: str  # labeled / annotated
    values_are_labels: bool  # label values have a syntax; annotation values are free text


LABELS = Field("label", "labels", "label", "labeled", values_are_labels=True)
ANNOTATIONS = Field("annotate", "annotations", "annotation", "annotated", values_are_labels=False)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for field, help_text in (
        (LABELS, "set or remove labels of objects"),
        (ANNOTATIONS, "set or remove annotations of objects"),
    ):
        p = common.take_intermixed(subparsers.add_parser(
            field.command,
            help=help_text,
            description=f"{help_text.capitalize()}: KEY=VALUE sets, KEY- removes. Name the "
            "objects as TYPE NAME..., TYPE/NAME..., -f SRC, TYPE -l SELECTOR or "
            f"TYPE --all, before the {field.noun} changes.",
        ))
        p.add_argument("arguments", nargs="*", metavar="TYPE[/NAME] [NAME...] KEY=VALUE|KEY-")
        p.add_argument(
            "--overwrite",
            action="store_true",
            help=f"allow changing the value of an existing {field.noun}",
        )
        selection.add_flags(p)
        p.set_defaults(func=_runner(field))


@dataclass(frozen=True)
class Changes:
    set: dict[str, str]
    remove: tuple[str, ...]


def split_arguments(arguments: Sequence[str]) -> tuple[list[str], list[str]]:
    """(resource arguments, key changes): the changes are the trailing `KEY=VALUE` and `KEY-`
    arguments, which must all come after the resources."""
    resources: list[str] = []
    changes: list[str] = []
    for arg in arguments:
        if "=" in arg or (arg.endswith("-") and len(arg) > 1):
            changes.append(arg)
        elif changes:
            raise CliError(
                f'all resources must be specified before label changes: "{arg}" comes after one'
            )
        else:
            resources.append(arg)
    return resources, changes


def parse_changes(specs: Sequence[str], field: Field) -> Changes:
    """The keys to set and to remove; raises CliError naming a malformed key or value."""
    if not specs:
        raise CliError(f"at least one {field.noun} update is required")
    to_set: dict[str, str] = {}
    remove: list[str] = []
    for spec in specs:
        if "=" in spec:
            key, _, value = spec.partition("=")
            _check_key(key, spec, field)
            if field.values_are_labels:
                problems = validate_label_value(value)
                if problems:
                    raise CliError(f'invalid label value: "{spec}": {"; ".join(problems)}')
            to_set[key] = value
        else:
            key = spec[:-1]
            _check_key(key, spec, field)
            remove.append(key)
    both = [key for key in remove if key in to_set]
    if both:
        raise CliError(
            f'can not both modify and remove the {field.noun} "{both[0]}" in the same command'
        )
    return Changes(to_set, tuple(remove))


def _check_key(key: str, spec: str, field: Field) -> None:
    problems = validate_label_key(key)
    if problems:
        raise CliError(f'invalid {field.noun} key: "{spec}": {"; ".join(problems)}')


def change(
    current: MutableMapping[str, str], changes: Changes, overwrite: bool, field: Field
) -> tuple[bool, list[str]]:
    """Applies the changes to a label or annotation map in place; returns whether it changed
    and the keys asked to be removed that were not there. Raises CliError, changing nothing,
    when a key would change value without --overwrite."""
    if not overwrite:
        for key, value in changes.set.items():
            if key in current and current[key] != value:
                raise CliError(
                    f"'{key}' already has a value ({current[key]}), and --overwrite is false"
                )
    changed = False
    missing = []
    for key in changes.remove:
        if key in current:
            del current[key]
            changed = True
        else:
            missing.append(key)
    for key, value in changes.set.items():
        if current.get(key) != value:
            current[key] = value
            changed = True
    return changed, missing


def _runner(field: Field) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        resources, specs = split_arguments(args.arguments)
        changes = parse_changes(specs, field)
        chosen = selection.from_args(args, resources)

        async def body(client: Client) -> bool:
            targets = await selection.expand(
                client,
                chosen,
                namespace="" if args.all_namespaces else common.namespace(args),
                label_selector=args.selector,
            )
            return await selection.edit_each(
                targets, lambda target: edit(client, target, changes, args.overwrite, field))

        return 0 if common.run(args, body) else 1

    return run


async def edit(
    client: Client, target: Target, changes: Changes, overwrite: bool, field: Field
) -> str:
    """Reads, changes and writes one object; returns what to print after its name."""
    for attempt in range(CONFLICT_RETRIES + 1):
        obj = await client.get(target.kind, target.name, target.namespace)
        current: MutableMapping[str, str] = getattr(meta(obj), field.attribute)
        before = len(current)
        changed, missing = change(current, changes, overwrite, field)
        if attempt == 0:
            for key in missing:
                print(f'{field.noun} "{key}" not found.', file=sys.stderr, flush=True)
        if not changed:
            return field.verb if field is ANNOTATIONS else f"not {field.verb}"
        try:
            await client.update(obj)
        except errors.Conflict:
            if attempt == CONFLICT_RETRIES:
                raise
            continue
        if field is LABELS and not changes.set and len(current) < before:
            return "unlabeled"
        return field.verb
    raise AssertionError("unreachable")
