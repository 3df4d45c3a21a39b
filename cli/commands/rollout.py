"""`skiff rollout`: follow, inspect and steer the rollouts of deployments and daemon sets.

    skiff rollout status  (TYPE NAME | TYPE/NAME) [--watch=true|false] [--timeout=D] [--revision=N]
    skiff rollout history TYPE NAME... [--revision=N]
    skiff rollout undo    TYPE NAME... [--to-revision=N]
    skiff rollout pause|resume|restart TYPE NAME...

As kubectl does it, from the client side:

* `status` watches the one object (a watch with the field selector metadata.name=NAME)
  and prints kubectl's progress line whenever it changes (`Waiting for deployment "web"
  rollout to finish: 1 of 3 updated replicas are available...`) until the rollout is
  done (exit 0), the deployment exceeded its progress deadline (exit 1), or --timeout.
* A deployment's history is its ReplicaSets: each records its revision in the
  `deployment.kubernetes.io/revision` annotation and keeps that revision's pod template.
  `history` lists them with their change-cause; `undo` copies a revision's template (the
  previous one by default) back into the deployment, without `pod-template-hash`, with
  the ReplicaSet's annotations, and the deployment controller rolls it out.
* `pause`/`resume` set spec.paused; `restart` stamps the pod template with
  `kubectl.kubernetes.io/restartedAt`, so every pod is replaced by the usual rollout.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from google.protobuf.message import Message

from cli import common, describe, printers, selection
from cli.commands.delete import parse_bool, parse_duration
from cli.errors import CliError
from cli.selection import Target
from skiff.api import kinds, rollout
from skiff.api.meta import meta
from skiff.api.selectors import label_selector_from_proto_like
from skiff.api.v1 import apps_pb2, core_pb2
from skiff.client import errors
from skiff.client.client import Client
from skiff.client.retry import update_with_retries

# Pod problems kubectl appends to a waiting line, since they explain why it waits.
WAITING_REASONS = ("ImagePullBackOff", "ErrImagePull", "CrashLoopBackOff",
                   "CreateContainerConfigError", "CreateContainerError")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "rollout",
        help="manage the rollout of deployments and daemon sets",
        description="Manage the rollout of deployments and daemon sets: status, history, "
        "undo, pause, resume, restart.",
    )
    sub = p.add_subparsers(dest="rollout_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda args: _usage(p))

    s = _subcommand(sub, "status", "show the status of a rollout, waiting until it is done")
    s.add_argument("--watch", type=parse_bool, default=True, metavar="true|false",
                   help="watch until the rollout is done (default true)")
    s.add_argument("--timeout", type=parse_duration, default=0.0,
                   help="how long to watch, e.g. 5m; 0 (default) means no limit")
    s.add_argument("--revision", type=int, default=0,
                   help="the revision to expect (default 0: the latest)")
    s.set_defaults(func=run_status)

    h = _subcommand(sub, "history", "list a deployment's revisions, or show one")
    h.add_argument("--revision", type=int, default=0,
                   help="show the pod template of this revision")
    h.set_defaults(func=run_history)

    u = _subcommand(sub, "undo", "roll a deployment back to an earlier revision")
    u.add_argument("--to-revision", type=int, default=0,
                   help="the revision to roll back to (default 0: the previous one)")
    u.set_defaults(func=run_undo)

    for command, help_text, edit in (
        ("pause", "pause a deployment: template changes are not rolled out", pause),
        ("resume", "resume a paused deployment", resume),
        ("restart", "replace every pod of a deployment or daemon set", restart),
    ):
        _subcommand(sub, command, help_text).set_defaults(func=_editor(edit))


def _subcommand(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
                help_text: str) -> argparse.ArgumentParser:
    p = common.take_intermixed(sub.add_parser(
        name, help=help_text,
        description=f"{help_text.capitalize()}. Name the objects as TYPE NAME..., "
        "TYPE/NAME..., -f SRC or TYPE -l SELECTOR."))
    p.add_argument("resources", nargs="*", metavar="TYPE[/NAME] [NAME...]")
    selection.add_flags(p)
    return p


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 1


def _selection(args: argparse.Namespace) -> selection.Selection:
    if not args.resources and not args.filenames:
        raise CliError("required resource not specified")
    return selection.from_args(args, args.resources)


async def _targets(client: Client, args: argparse.Namespace,
                   chosen: selection.Selection) -> list[Target]:
    return await selection.expand(
        client, chosen, namespace="" if args.all_namespaces else common.namespace(args),
        label_selector=args.selector)


def group_kind(kind: kinds.Kind) -> str:
    """Go's schema.GroupKind string, which kubectl's messages use: `Deployment.apps`."""
    return f"{kind.kind}.{kind.group}" if kind.group else kind.kind


def resource_string(kind: kinds.Kind) -> str:
    """`deployments.apps`, as kubectl names a resource in its errors."""
    return f"{kind.plural}.{kind.group}" if kind.group else kind.plural


# --------------------------------------------------------------------------- status


def deployment_status(d: apps_pb2.Deployment, revision: int = 0) -> tuple[str, bool]:
    """kubectl's progress line for a deployment and whether the rollout is done. Raises
    CliError when it can never be done (its progress deadline passed)."""
    name = d.metadata.name
    if revision > 0:
        try:
            current = rollout.revision_of(d)
        except ValueError as err:
            raise CliError(f'cannot get the revision of deployment "{name}": {err}') from None
        if current != revision:
            raise CliError(f"desired revision ({revision}) is different from the running "
                           f"revision ({current})")
    if d.metadata.generation > d.status.observed_generation:
        return "Waiting for deployment spec update to be observed...", False
    progressing = next((c for c in d.status.conditions if c.type == "Progressing"), None)
    if progressing is not None and progressing.reason == rollout.TIMED_OUT_REASON:
        raise CliError(f'deployment "{name}" exceeded its progress deadline')
    status = d.status
    waiting = f'Waiting for deployment "{name}" rollout to finish: '
    if d.spec.HasField("replicas") and status.updated_replicas < d.spec.replicas:
        return (waiting + f"{status.updated_replicas} out of {d.spec.replicas} new replicas "
                "have been updated..."), False
    if status.replicas > status.updated_replicas:
        return (waiting + f"{status.replicas - status.updated_replicas} old replicas are "
                "pending termination..."), False
    if status.available_replicas < status.updated_replicas:
        return (waiting + f"{status.available_replicas} of {status.updated_replicas} updated "
                "replicas are available..."), False
    return f'deployment "{name}" successfully rolled out', True


def daemon_set_status(ds: apps_pb2.DaemonSet, revision: int = 0) -> tuple[str, bool]:
    """kubectl's progress line for a daemon set (which ignores --revision)."""
    if ds.spec.update_strategy.type != "RollingUpdate":
        raise CliError("rollout status is only available for RollingUpdate strategy type")
    name = ds.metadata.name
    if ds.metadata.generation > ds.status.observed_generation:
        return "Waiting for daemon set spec update to be observed...", False
    status = ds.status
    waiting = f'Waiting for daemon set "{name}" rollout to finish: '
    if status.updated_number_scheduled < status.desired_number_scheduled:
        return (waiting + f"{status.updated_number_scheduled} out of "
                f"{status.desired_number_scheduled} new pods have been updated..."), False
    if status.number_available < status.desired_number_scheduled:
        return (waiting + f"{status.number_available} of {status.desired_number_scheduled} "
                "updated pods are available..."), False
    return f'daemon set "{name}" successfully rolled out', True


StatusViewer = Callable[[Any, int], tuple[str, bool]]
STATUS_VIEWERS: dict[str, StatusViewer] = {
    "Deployment": deployment_status,
    "DaemonSet": daemon_set_status,
}


def status_viewer(kind: kinds.Kind) -> StatusViewer:
    viewer = STATUS_VIEWERS.get(kind.kind)
    if viewer is None:
        raise CliError(f"no status viewer has been implemented for {group_kind(kind)}")
    return viewer


def pod_warning(pods: Iterable[core_pb2.Pod]) -> str | None:
    """What kubectl appends to a deployment's waiting line when one of its pods cannot be
    scheduled or its containers cannot start: `(Warning: CrashLoopBackOff - ...)`."""
    for pod in pods:
        for cond in pod.status.conditions:
            if cond.type == "PodScheduled" and cond.status == "False" and (
                    cond.reason == "Unschedulable"):
                return f"Warning: {cond.message}"
        for cs in pod.status.container_statuses:
            waiting = cs.state.waiting if cs.state.HasField("waiting") else None
            if waiting is not None and waiting.reason in WAITING_REASONS:
                return f"Warning: {waiting.reason} - {waiting.message}"
    return None


async def _with_warning(client: Client, obj: Message, line: str, done: bool) -> str:
    if done or not isinstance(obj, apps_pb2.Deployment):
        return line
    selector = label_selector_from_proto_like(obj.spec.selector.match_labels,
                                              obj.spec.selector.match_expressions)
    pods, _ = await client.list(core_pb2.Pod, obj.metadata.namespace,
                                label_selector=str(selector))
    warning = pod_warning(pods)
    return f"{line} ({warning})" if warning else line


def run_status(args: argparse.Namespace) -> int:
    if args.revision < 0:
        raise CliError(f"revision must be a positive integer: {args.revision}")
    chosen = _selection(args)

    async def body(client: Client) -> bool:
        targets = await _targets(client, args, chosen)
        if len(targets) != 1:
            raise CliError("rollout status is only supported on individual resources and "
                           f"resource collections - {len(targets)} resources were found")
        target = targets[0]
        viewer = status_viewer(target.kind)
        try:
            async with asyncio.timeout(args.timeout or None):
                await follow_status(client, target, viewer, watch=args.watch,
                                    revision=args.revision)
        except TimeoutError:
            raise CliError("timed out waiting for the condition") from None
        return True

    return 0 if common.run(args, body) else 1


async def follow_status(client: Client, target: Target, viewer: StatusViewer, *,
                        watch: bool, revision: int = 0) -> None:
    """Prints the progress line of the one object now and on each change, until done
    (or once, without `watch`). Only a line that differs from the last one is printed:
    kubectl repeats itself on every status write, which says nothing new."""
    field_selector = f"metadata.name={target.name}"
    last = ""

    async def show(obj: Message) -> bool:
        nonlocal last
        line, done = viewer(obj, revision)
        line = await _with_warning(client, obj, line, done)
        if line != last:
            print(line, flush=True)
            last = line
        return done

    async def current() -> tuple[Message, str]:
        items, version = await client.list(target.kind, target.namespace,
                                           field_selector=field_selector)
        if not items:
            raise errors.NotFound(f'{resource_string(target.kind)} "{target.name}" not found')
        return items[0], version

    obj, version = await current()
    uid = meta(obj).uid
    if await show(obj) or not watch:
        return
    while True:
        try:
            async for event in client.watch(target.kind, target.namespace,
                                            field_selector=field_selector,
                                            resource_version=version):
                version = event.resource_version or version
                if event.type == "BOOKMARK" or event.object is None:
                    continue
                # A deleted object, or a new one of that name, is not the rollout we follow.
                if event.type == "DELETED" or meta(event.object).uid != uid:
                    raise CliError("object has been deleted")
                if await show(event.object):
                    return
        except errors.Expired:
            obj, version = await current()
            if meta(obj).uid != uid:
                raise CliError("object has been deleted") from None
            if await show(obj):
                return


# --------------------------------------------------------------------------- history


def owned_replica_sets(d: apps_pb2.Deployment, sets: Iterable[apps_pb2.ReplicaSet]
                       ) -> list[apps_pb2.ReplicaSet]:
    """The ReplicaSets the deployment controls (its controller reference names it)."""
    return [rs for rs in sets if rollout.controlled_by(rs, d.metadata.uid)]


def history_of(sets: Iterable[apps_pb2.ReplicaSet]) -> dict[int, core_pb2.PodTemplateSpec]:
    """Revision -> that revision's pod template, which carries the ReplicaSet's
    change-cause as an annotation (as kubectl shows it)."""
    history: dict[int, core_pb2.PodTemplateSpec] = {}
    for revision, rs in rollout.by_revision(sets).items():
        template = core_pb2.PodTemplateSpec()
        template.CopyFrom(rs.spec.template)
        cause = rs.metadata.annotations.get(rollout.CHANGE_CAUSE_ANNOTATION, "")
        if cause:
            template.metadata.annotations[rollout.CHANGE_CAUSE_ANNOTATION] = cause
        history[revision] = template
    return history


def history_table(history: dict[int, core_pb2.PodTemplateSpec]) -> str:
    if not history:
        return "No rollout history found."
    rows = ["REVISION\tCHANGE-CAUSE\n"]
    for revision in sorted(history):
        cause = history[revision].metadata.annotations.get(rollout.CHANGE_CAUSE_ANNOTATION)
        rows.append(f"{revision}\t{cause or '<none>'}\n")
    return printers.tabwrite("".join(rows), min_width=0, padding=2)


def template_text(template: core_pb2.PodTemplateSpec) -> str:
    """A pod template as `kubectl describe` (and `rollout history --revision`) shows it."""
    w = describe.PrefixWriter()
    describe.write_pod_template(w, template)
    return w.text()


def history_text(history: dict[int, core_pb2.PodTemplateSpec], revision: int) -> str:
    if revision > 0 and history:
        template = history.get(revision)
        if template is None:
            raise CliError("unable to find the specified revision")
        return template_text(template)
    return history_table(history)


async def _deployment_and_sets(client: Client, target: Target
                               ) -> tuple[apps_pb2.Deployment, list[apps_pb2.ReplicaSet]]:
    d = await client.get(apps_pb2.Deployment, target.name, target.namespace)
    sets, _ = await client.list(apps_pb2.ReplicaSet, target.namespace)
    return d, owned_replica_sets(d, sets)


def run_history(args: argparse.Namespace) -> int:
    if args.revision < 0:
        raise CliError(f"revision must be a positive integer: {args.revision}")
    chosen = _selection(args)

    async def body(client: Client) -> bool:
        for target in await _targets(client, args, chosen):
            if target.kind.kind != "Deployment":
                raise CliError("no history viewer has been implemented for "
                               f'"{group_kind(target.kind)}"')
            _, sets = await _deployment_and_sets(client, target)
            text = history_text(history_of(sets), args.revision)
            heading = f"with revision #{args.revision}" if args.revision > 0 else ""
            # kubectl's name printer with the history as its "operation".
            sys.stdout.write(f"{target.ref} {heading}\n{text}\n")
            sys.stdout.flush()
        return True

    return 0 if common.run(args, body) else 1


# --------------------------------------------------------------------------- undo


def replica_set_for_revision(d: apps_pb2.Deployment, sets: Sequence[apps_pb2.ReplicaSet],
                             to_revision: int) -> apps_pb2.ReplicaSet:
    """The ReplicaSet of `to_revision`, or of the revision before the latest for 0."""
    if to_revision < 0:
        raise CliError(f"unable to find specified revision {to_revision} in history")
    history: dict[int, apps_pb2.ReplicaSet] = rollout.by_revision(sets)
    if to_revision > 0:
        found = history.get(to_revision)
        if found is None:
            raise CliError(f"unable to find specified revision {to_revision} in history")
        return found
    revisions = sorted(history)
    if len(revisions) < 2:
        raise CliError(f'no rollout history found for deployment "{d.metadata.name}"')
    return history[revisions[-2]]


def roll_back(d: apps_pb2.Deployment, rs: apps_pb2.ReplicaSet, to_revision: int) -> str:
    """Puts the ReplicaSet's template and annotations into the deployment, as kubectl's
    rollback does; returns kubectl's word for what happened."""
    if d.spec.paused:
        raise CliError("you cannot rollback a paused deployment; resume it first with "
                       f"'skiff rollout resume deployment/{d.metadata.name}' and try again")
    if rollout.equal_ignoring_hash(rs.spec.template, d.spec.template):
        return f"skipped rollback (current template already matches revision {to_revision})"
    d.spec.template.CopyFrom(rollout.template_without_hash(rs.spec.template))
    annotations = rollout.rollback_annotations(d.metadata.annotations, rs.metadata.annotations)
    d.metadata.annotations.clear()
    d.metadata.annotations.update(annotations)
    return "rolled back"


def run_undo(args: argparse.Namespace) -> int:
    chosen = _selection(args)

    async def body(client: Client) -> bool:
        targets = await _targets(client, args, chosen)

        async def one(target: Target) -> str:
            if target.kind.kind != "Deployment":
                raise CliError("no rollbacker has been implemented for "
                               f'"{group_kind(target.kind)}"')
            _, all_sets = await _deployment_and_sets(client, target)

            def change(d: apps_pb2.Deployment) -> str:
                sets = owned_replica_sets(d, all_sets)
                return roll_back(d, replica_set_for_revision(d, sets, args.to_revision),
                                 args.to_revision)

            return await update_with_retries(client, apps_pb2.Deployment, target.name,
                                                    target.namespace, change)

        return await selection.edit_each(targets, one)

    return 0 if common.run(args, body) else 1


# --------------------------------------------------------------------------- pause, resume, restart


def _refuse(obj: Message, what: str) -> CliError:
    """kubectl's way of naming the object in these errors: `deployments.apps "web" ...`."""
    kind = kinds.by_message(obj)
    return CliError(f'{resource_string(kind)} "{meta(obj).name}" {what}')


def pause(obj: Message) -> str:
    if not isinstance(obj, apps_pb2.Deployment):
        raise _refuse(obj, "pausing is not supported")
    if obj.spec.paused:
        raise _refuse(obj, "is already paused")
    obj.spec.paused = True
    return "paused"


def resume(obj: Message) -> str:
    if not isinstance(obj, apps_pb2.Deployment):
        raise _refuse(obj, "resuming is not supported")
    if not obj.spec.paused:
        raise _refuse(obj, "is not paused")
    obj.spec.paused = False
    return "resumed"


def rfc3339(when: dt.datetime) -> str:
    """Go's time.RFC3339 in local time: `2024-05-01T12:00:00+02:00`, `...Z` for UTC."""
    text = when.astimezone().isoformat(timespec="seconds")
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


def restart(obj: Message, now: dt.datetime | None = None) -> str:
    if isinstance(obj, apps_pb2.Deployment):
        if obj.spec.paused:
            raise _refuse(obj, "can't restart paused deployment (run rollout resume first)")
    elif not isinstance(obj, apps_pb2.DaemonSet):
        raise _refuse(obj, "restarting is not supported")
    stamp = rfc3339(now or dt.datetime.now(dt.UTC))
    annotations = obj.spec.template.metadata.annotations
    if annotations.get(rollout.RESTARTED_AT_ANNOTATION) == stamp:
        # Within the same second as the last restart: the stamp cannot change.
        raise CliError(f"failed to create patch for {obj.metadata.name}: empty patch")
    annotations[rollout.RESTARTED_AT_ANNOTATION] = stamp
    return "restarted"


def _editor(edit: Callable[[Any], str]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        chosen = _selection(args)

        async def body(client: Client) -> bool:
            targets = await _targets(client, args, chosen)

            def one(target: Target) -> Awaitable[str]:
                return update_with_retries(client, target.kind.message, target.name,
                                                  target.namespace, edit)

            return await selection.edit_each(targets, one)

        return 0 if common.run(args, body) else 1

    return run
