"""`skiff cordon`, `skiff uncordon` and `skiff taint`: the node commands.

    skiff cordon NODE... | -l SELECTOR
    skiff uncordon NODE... | -l SELECTOR
    skiff taint nodes NODE... | node/NAME... | nodes -l SELECTOR | nodes --all
                KEY[=VALUE]:EFFECT... KEY:EFFECT-... KEY-... [--overwrite]

With kubectl's rules and words. `cordon` sets spec.unschedulable (`node/a cordoned`, or
`node/a already cordoned` when it was), `uncordon` clears it. `taint` adds taints, with the
effect NoSchedule, PreferNoSchedule or NoExecute; `KEY:EFFECT-` removes one and `KEY-` every
effect of a key. A taint whose key and effect the node already has needs --overwrite, and a
removal that matches nothing is an error; either leaves that node unchanged. It prints
`tainted` (only additions), `untainted` (only removals) or `modified` (both, or --overwrite).
Each node is read, changed and written back with its resourceVersion; a conflict reads it
again and retries.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cli import common, selection
from cli.errors import CliError
from cli.selection import Selection, Target
from skiff.api import kinds
from skiff.api.selectors import validate_label_key, validate_label_value
from skiff.api.v1 import core_pb2
from skiff.client.client import Client
from skiff.client.retry import update_with_retries

EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
NODE = kinds.lookup("nodes")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for command, unschedulable, help_text in (
        ("cordon", True, "mark nodes as unschedulable"),
        ("uncordon", False, "mark nodes as schedulable"),
    ):
        p = common.take_intermixed(subparsers.add_parser(
            command,
            help=help_text,
            description=f"{help_text.capitalize()}, by name or with -l SELECTOR.",
        ))
        p.add_argument("nodes", nargs="*", metavar="NODE")
        p.add_argument("-l", "--selector", default="", help="label selector, e.g. pool=gpu")
        p.set_defaults(func=_cordon_runner(command, unschedulable))

    p = common.take_intermixed(subparsers.add_parser(
        "taint",
        help="add or remove taints of nodes",
        description="Add or remove taints of nodes: KEY[=VALUE]:EFFECT adds, KEY:EFFECT- "
        "removes one, KEY- removes every effect of KEY. EFFECT is NoSchedule, "
        "PreferNoSchedule or NoExecute. Name the nodes as nodes NAME..., node/NAME..., "
        "nodes -l SELECTOR or nodes --all, before the taint changes.",
    ))
    p.add_argument("arguments", nargs="*", metavar="nodes NAME... KEY[=VALUE]:EFFECT|KEY-")
    p.add_argument("--overwrite", action="store_true",
                   help="allow replacing a taint that has the same key and effect")
    p.add_argument("-l", "--selector", default="", help="label selector, e.g. pool=gpu")
    p.add_argument("--all", dest="all_objects", action="store_true", help="every node")
    p.set_defaults(func=_taint)


def node_selection(resources: Sequence[str], selector: str = "",
                   all_objects: bool = False) -> Selection:
    """`nodes NAME...`, `node/NAME...` or `nodes` with -l/--all, refusing any other kind."""
    chosen = selection.select(resources, selector=selector, all_objects=all_objects)
    for kind in {t.kind for t in chosen.named} | set(chosen.listed):
        if kind is not NODE:
            raise CliError(f"invalid resource type {kind.plural}, only node types are supported")
    return chosen


def _run_on_nodes(args: argparse.Namespace, chosen: Selection,
                  edit: Callable[[core_pb2.Node], str]) -> int:
    """Applies `edit` to each chosen node (see update_with_retries) and prints
    `node/NAME OUTCOME` for each; 1 when any of them failed."""

    async def body(client: Client) -> bool:
        targets = await selection.expand(client, chosen, namespace="",
                                         label_selector=args.selector)

        async def one(target: Target) -> str:
            return await update_with_retries(client, core_pb2.Node, target.name, "", edit)

        return await selection.edit_each(targets, one)

    return 0 if common.run(args, body) else 1


# ---- cordon, uncordon ----


def _cordon_runner(command: str, unschedulable: bool) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        if args.nodes and args.selector:
            raise CliError("cannot specify both a node name and a --selector option")
        if not args.nodes and not args.selector:
            raise CliError(f"USAGE: skiff {command} NODE... or skiff {command} -l SELECTOR")
        # Plain names are node names; `node/NAME` is accepted too, as kubectl does.
        named = args.nodes if any("/" in n for n in args.nodes) else ["nodes", *args.nodes]
        chosen = node_selection(named, args.selector)
        return _run_on_nodes(args, chosen, lambda node: set_unschedulable(node, unschedulable))

    return run


def set_unschedulable(node: core_pb2.Node, unschedulable: bool) -> str:
    """Sets spec.unschedulable; returns kubectl's word for what happened."""
    verb = "cordoned" if unschedulable else "uncordoned"
    if node.spec.unschedulable == unschedulable:
        return f"already {verb}"
    node.spec.unschedulable = unschedulable
    return verb


# ---- taint ----


@dataclass(frozen=True)
class TaintSpec:
    key: str
    value: str = ""
    effect: str = ""  # "" only in a removal: every effect of the key

    def __str__(self) -> str:
        """As kubectl writes a taint: `key=value:effect`, `key:effect` or `key`."""
        text = f"{self.key}={self.value}" if self.value else self.key
        return f"{text}:{self.effect}" if self.effect else text

    def matches(self, taint: core_pb2.Taint) -> bool:
        """Whether a removal takes `taint` away (an empty effect takes every effect)."""
        return taint.key == self.key and self.effect in ("", taint.effect)


@dataclass(frozen=True)
class TaintChanges:
    add: tuple[TaintSpec, ...]
    remove: tuple[TaintSpec, ...]


def _taint(args: argparse.Namespace) -> int:
    resources, specs = split_arguments(args.arguments)
    if not resources:
        raise CliError("one or more resources must be specified as <resource> <name>")
    if not specs:
        raise CliError("at least one taint update is required")
    changes = parse_changes(specs)
    if args.all_objects and args.selector:
        raise CliError("setting 'all' parameter with a non empty selector is prohibited")
    if len(resources) < 2 and "/" not in resources[0] and not (
        args.all_objects or args.selector
    ):
        raise CliError(
            "at least one resource name must be specified since 'all' parameter is not set"
        )
    chosen = node_selection(resources, args.selector, args.all_objects)
    return _run_on_nodes(args, chosen, lambda node: change_taints(node, changes, args.overwrite))


def split_arguments(arguments: Sequence[str]) -> tuple[list[str], list[str]]:
    """(resource arguments, taint changes): a change has `=` or `:` or ends in `-`, and every
    change comes after every resource."""
    resources: list[str] = []
    changes: list[str] = []
    for arg in arguments:
        if "=" in arg or ":" in arg or arg.endswith("-"):
            changes.append(arg)
        elif changes:
            raise CliError(f"all resources must be specified before taint changes: {arg}")
        else:
            resources.append(arg)
    return resources, changes


def parse_taint(spec: str) -> TaintSpec:
    """`KEY=VALUE:EFFECT`, `KEY:EFFECT` or `KEY` (the last only to remove)."""
    parts = spec.split(":")
    if len(parts) > 2:
        raise CliError(f"invalid taint spec: {spec}")
    key, value, effect = parts[0], "", ""
    if len(parts) == 2:
        effect = parts[1]
        if effect not in EFFECTS:
            raise CliError(f"invalid taint effect: {effect}, unsupported taint effect")
        key_value = parts[0].split("=")
        if len(key_value) > 2:
            raise CliError(f"invalid taint spec: {spec}")
        key = key_value[0]
        if len(key_value) == 2:
            value = key_value[1]
            _check(spec, validate_label_value(value))
    _check(spec, validate_label_key(key))
    return TaintSpec(key, value, effect)


def _check(spec: str, problems: list[str]) -> None:
    if problems:
        raise CliError(f"invalid taint spec: {spec}, {'; '.join(problems)}")


def parse_changes(specs: Sequence[str]) -> TaintChanges:
    """The taints to add and to remove, refusing what kubectl refuses: an addition without an
    effect, two additions with one key and effect, adding and removing one taint."""
    add: list[TaintSpec] = []
    remove: list[TaintSpec] = []
    for spec in specs:
        if spec.endswith("-"):
            taint = parse_taint(spec[:-1])
            remove.append(TaintSpec(taint.key, effect=taint.effect))  # a value says nothing
            continue
        taint = parse_taint(spec)
        if not taint.effect:
            raise CliError(f"invalid taint spec: {spec}")
        if any((t.key, t.effect) == (taint.key, taint.effect) for t in add):
            raise CliError(f"duplicated taints with the same key and effect: {taint}")
        add.append(taint)
    both = [f"{r.key}={r.effect}" for a in add for r in remove
            if a.key == r.key and r.effect in ("", a.effect)]
    if both:
        raise CliError("can not both modify and remove the following taint(s) in the same "
                       f"command: {', '.join(both)}")
    return TaintChanges(tuple(add), tuple(remove))


def change_taints(node: core_pb2.Node, changes: TaintChanges, overwrite: bool) -> str:
    """Applies the changes to the node's taints in place and returns kubectl's word for it;
    raises CliError, changing nothing, when a taint exists without --overwrite or a removal
    matches nothing."""
    taints = node.spec.taints
    if not overwrite:
        clashing = [a.key for a in changes.add for t in taints
                    if (t.key, t.effect) == (a.key, a.effect)]
        if clashing:
            raise CliError(f"node {node.metadata.name} already has {','.join(clashing)} "
                           "taint(s) with same effect(s) and --overwrite is false")
    missing = [f'taint "{r}" not found' for r in changes.remove
               if not any(r.matches(t) for t in taints)]
    if missing:
        # kubectl reports every miss at once, bracketed when there are several.
        raise CliError(missing[0] if len(missing) == 1 else f"[{', '.join(missing)}]")
    kept = [_copy(t) for t in taints if not any(r.matches(t) for r in changes.remove)]
    for add in changes.add:
        _put(kept, add)
    del taints[:]
    taints.extend(kept)
    if overwrite or (changes.add and changes.remove):
        return "modified"
    return "tainted" if changes.add else "untainted"


def _put(taints: list[core_pb2.Taint], add: TaintSpec) -> None:
    """Adds a taint, replacing the one with its key and effect in its place."""
    new = core_pb2.Taint(key=add.key, value=add.value, effect=add.effect)
    for i, old in enumerate(taints):
        if (old.key, old.effect) != (add.key, add.effect):
            continue
        if old.value == add.value:
            return  # the same taint: keep it, and the time it was first added
        taints[i] = new
        break
    else:
        taints.append(new)
    # A NoExecute toleration's tolerationSeconds count from when the taint came: record it.
    if add.effect == "NoExecute":
        new.time_added.GetCurrentTime()


def _copy(taint: core_pb2.Taint) -> core_pb2.Taint:
    # Detached from the repeated field, so clearing it (in change_taints) cannot touch this.
    copy = core_pb2.Taint()
    copy.CopyFrom(taint)
    return copy
