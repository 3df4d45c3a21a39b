"""`skiff set image`: change container images of pods and of workloads' pod templates.

    skiff set image TYPE NAME... | TYPE/NAME... | -f SRC | TYPE -l SELECTOR | TYPE --all
                    CONTAINER=IMAGE... [*=IMAGE]

As kubectl: works on pods and on the pod template of deployments, replica sets, daemon
sets, jobs and cron jobs; `*` names every container (init containers included). Prints
`deployment.apps/web image updated` for each object that changed and nothing for one
already running those images. A container name an object does not have is an error
(`error: unable to find container named "x"`, exit 1), after the images it does have are
updated. A change to a workload's template is what starts its rollout.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from google.protobuf.message import Message

from cli import common, selection
from cli.errors import CliError
from cli.selection import Target
from skiff.api.v1 import apps_pb2, batch_pb2, core_pb2
from skiff.client import errors
from skiff.client.client import Client
from skiff.client.retry import update_with_retries


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "set", help="set specific features on objects",
        description="Set specific features on objects: `set image`.")
    sub = p.add_subparsers(dest="set_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda args: _usage(p))
    image = common.take_intermixed(sub.add_parser(
        "image",
        help="update the container images of pods or pod templates",
        description="Update container images: CONTAINER=IMAGE for one container, *=IMAGE "
        "for all. Name the objects as TYPE NAME..., TYPE/NAME..., -f SRC, TYPE -l SELECTOR "
        "or TYPE --all, before the image changes.",
    ))
    image.add_argument("arguments", nargs="*", metavar="TYPE[/NAME] [NAME...] CONTAINER=IMAGE")
    selection.add_flags(image)
    image.set_defaults(func=run_set_image)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 1


def split_arguments(arguments: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """(resource arguments, container -> image): the `NAME=IMAGE` pairs come last."""
    resources: list[str] = []
    images: dict[str, str] = {}
    for arg in arguments:
        if "=" in arg:
            name, _, image = arg.partition("=")
            if not name or not image:
                raise CliError(f'invalid image update: "{arg}" (use CONTAINER=IMAGE)')
            images[name] = image
        elif images:
            raise CliError(f"all resources must be specified before image changes: {arg}")
        else:
            resources.append(arg)
    if not images:
        raise CliError("at least one image update is required")
    return resources, images


def pod_spec_of(obj: Message) -> core_pb2.PodSpec | None:
    """The pod spec an object runs: a pod's own, or its workload's template's."""
    if isinstance(obj, core_pb2.Pod):
        return obj.spec
    if isinstance(obj, apps_pb2.Deployment | apps_pb2.ReplicaSet | apps_pb2.DaemonSet
                  | batch_pb2.Job):
        return obj.spec.template.spec
    if isinstance(obj, batch_pb2.CronJob):
        return obj.spec.job_template.spec.template.spec
    return None


def set_images(spec: core_pb2.PodSpec, images: dict[str, str]) -> list[str]:
    """Sets the images in place; returns the container names (not `*`) not found."""
    missing = []
    for name, image in images.items():
        found = False
        for container in [*spec.init_containers, *spec.containers]:
            if name in ("*", container.name):
                container.image = image
                found = True
        if not found:
            missing.append(name)
    return missing


def run_set_image(args: argparse.Namespace) -> int:
    resources, images = split_arguments(args.arguments)
    chosen = selection.from_args(args, resources)

    async def body(client: Client) -> bool:
        targets = await selection.expand(
            client, chosen, namespace="" if args.all_namespaces else common.namespace(args),
            label_selector=args.selector)
        if not targets:
            print("No resources found", file=sys.stderr, flush=True)
            return True
        problems: list[str] = []
        for target in targets:

            def change(obj: Any, target: Target = target) -> tuple[bool, list[str]]:
                return _change(obj, target, images)

            try:
                changed, missing = await update_with_retries(
                    client, target.kind.message, target.name, target.namespace, change)
            except (errors.Unavailable, errors.Timeout):
                raise
            except (errors.ApiError, CliError) as err:
                problems.append(str(err))
                continue
            problems += [f'unable to find container named "{name}"' for name in missing]
            if changed:
                print(f"{target.ref} image updated", flush=True)
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr, flush=True)
        return not problems

    return 0 if common.run(args, body) else 1


def _change(obj: Any, target: Target, images: dict[str, str]) -> tuple[bool, list[str]]:
    spec = pod_spec_of(obj)
    if spec is None:
        raise CliError(f"{target.kind.plural}/{target.name} the object is not a pod or does "
                       "not have a pod template")
    before = core_pb2.PodSpec()
    before.CopyFrom(spec)
    missing = set_images(spec, images)
    return spec != before, missing
