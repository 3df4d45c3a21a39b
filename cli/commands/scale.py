"""`skiff scale`: set the replicas of deployments and replica sets.

    skiff scale TYPE NAME... | TYPE/NAME... | -f SRC | TYPE -l SELECTOR | TYPE --all
                --replicas=N [--current-replicas=M] [--resource-version=V]

Prints `deployment.apps/web scaled` for each, as kubectl does. The preconditions are
kubectl's: with --current-replicas the object must have that many replicas now (`error:
Expected replicas to be 2, was 3`), with --resource-version that version; a failed
precondition leaves the object as it was. Each object is read, changed and written back
with its resourceVersion, so a concurrent writer is never silently undone.
"""

from __future__ import annotations

import argparse
from typing import Protocol, cast

from google.protobuf.message import Message

from cli import common, selection
from cli.errors import CliError
from cli.selection import Target
from skiff.api.meta import meta
from skiff.client.client import Client
from skiff.client.retry import update_with_retries

SCALABLE = ("Deployment", "ReplicaSet")


class _ReplicasSpec(Protocol):
    replicas: int

    def HasField(self, field_name: str) -> bool: ...


class _Scalable(Protocol):
    """A Deployment or a ReplicaSet: a spec with an optional replicas field."""

    @property
    def spec(self) -> _ReplicasSpec: ...


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = common.take_intermixed(subparsers.add_parser(
        "scale",
        help="set the number of replicas of deployments and replica sets",
        description="Set a new size for deployments or replica sets, named as TYPE NAME..., "
        "TYPE/NAME..., -f SRC, TYPE -l SELECTOR or TYPE --all.",
    ))
    p.add_argument("resources", nargs="*", metavar="TYPE[/NAME] [NAME...]")
    p.add_argument("--replicas", type=int, required=True,
                   help="the new number of replicas")
    p.add_argument("--current-replicas", type=int, default=-1,
                   help="precondition: the current number of replicas; -1 (default) for none")
    p.add_argument("--resource-version", default="",
                   help="precondition: the current resourceVersion")
    selection.add_flags(p)
    p.set_defaults(func=run_scale)


def check_flags(replicas: int, current_replicas: int) -> None:
    if replicas < 0:
        raise CliError("The --replicas=COUNT flag is required, and COUNT must be greater than "
                       "or equal to 0")
    if current_replicas < -1:
        raise CliError("The --current-replicas must specify an integer of -1 or greater")


def scale(obj: Message, replicas: int, current_replicas: int = -1,
          resource_version: str = "") -> str:
    """Sets spec.replicas after checking the preconditions; returns kubectl's word."""
    spec = cast(_Scalable, obj).spec
    # An unset replicas field means 1, as the apiserver defaults it.
    current = spec.replicas if spec.HasField("replicas") else 1
    if current_replicas >= 0 and current != current_replicas:
        raise CliError(f"Expected replicas to be {current_replicas}, was {current}")
    actual_version = meta(obj).resource_version
    if resource_version and actual_version != resource_version:
        raise CliError(f"Expected resource version to be {resource_version}, "
                       f"was {actual_version}")
    spec.replicas = replicas
    return "scaled"


def run_scale(args: argparse.Namespace) -> int:
    check_flags(args.replicas, args.current_replicas)
    chosen = selection.from_args(args, args.resources)
    for kind in {t.kind for t in chosen.named} | set(chosen.listed):
        if kind.kind not in SCALABLE:
            raise CliError(f"cannot scale {kind.plural}: only deployments and replicasets "
                           "have a number of replicas")

    async def body(client: Client) -> bool:
        targets = await selection.expand(
            client, chosen, namespace="" if args.all_namespaces else common.namespace(args),
            label_selector=args.selector)
        if not targets:
            raise CliError("no objects passed to scale")
        if args.resource_version and len(targets) > 1:
            raise CliError("cannot use --resource-version with multiple resources")

        async def one(target: Target) -> str:
            return await update_with_retries(
                client, target.kind.message, target.name, target.namespace,
                lambda obj: scale(obj, args.replicas, args.current_replicas,
                                  args.resource_version))

        return await selection.edit_each(targets, one)

    return 0 if common.run(args, body) else 1

