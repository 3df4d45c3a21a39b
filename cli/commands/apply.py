"""`skiff apply -f SRC`: make the cluster match manifests (kubectl's client-side apply).

Each object is created when it does not exist. When it does, the three-way merge of
`cli.merge` combines the configuration applied last time (the annotation
`kubectl.kubernetes.io/last-applied-configuration`), the manifest and the live object, and the
result is written with the live object's resourceVersion, so a concurrent writer is never
overwritten blindly: on a conflict the object is read again and the merge redone.

When the merge changes nothing, nothing is sent (`unchanged`); otherwise the server has the
last word, since a manifest may spell a value differently from how it is stored (`cpu: 0.5`
and `500m`): an update that changes nothing keeps the resourceVersion, and that is
`unchanged` too.

Every manifest is read and checked before anything is sent. Objects are then applied in the
order given; one that fails is reported and the others still go (exit 1 at the end), as kubectl
does. Prints `<kind>/<name> created|configured|unchanged` per object.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from cli import common
from cli.errors import CliError, one_line
from cli.manifests import (
    Manifest,
    ManifestError,
    check_outgoing,
    load,
    print_warnings,
    target_namespace,
)
from cli.merge import three_way_merge
from skiff.api import convert
from skiff.api.meta import meta
from skiff.api.rollout import LAST_APPLIED_ANNOTATION
from skiff.client import errors
from skiff.client.client import Client

CONFLICT_RETRIES = 5


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "apply",
        help="create or update objects from manifests",
        description="Create objects from manifests, or update them to match: fields removed "
        "from a manifest since the last apply are removed from the object; fields "
        "the server set (defaults, allocated addresses, a scaled replica count the "
        "manifest leaves out) are kept.",
    )
    p.add_argument(
        "-f",
        "--filename",
        dest="filenames",
        action="append",
        required=True,
        metavar="SRC",
        help="a manifest file, a folder of them, or - for stdin (repeatable)",
    )
    p.add_argument(
        "-R",
        "--recursive",
        action="store_true",
        help="also read the manifests in subfolders of a folder",
    )
    common.add_namespace_flags(p, all_namespaces=False)
    p.add_argument(
        "--dry-run",
        choices=("none", "server"),
        default="none",
        help="server: the server checks and merges everything but stores nothing",
    )
    p.set_defaults(func=run_apply)


@dataclass(frozen=True)
class Planned:
    """A manifest ready to send: where it goes, and what to write."""

    manifest: Manifest
    namespace: str
    desired: dict[str, Any]  # the manifest with namespace and last-applied annotation

    @property
    def ref(self) -> str:
        return f"{self.manifest.kind.qualified}/{self.manifest.name}"


def plan(manifest: Manifest, explicit_namespace: str | None, default_namespace: str) -> Planned:
    """What to write for a manifest; raises ManifestError for what apply cannot do with it."""
    if not manifest.name:
        raise ManifestError(
            f"{manifest.source}: {manifest.describe()}: metadata.name is "
            "required (apply finds the object by name, so generateName "
            "cannot be used)"
        )
    namespace = target_namespace(manifest, explicit_namespace, default_namespace)
    desired = desired_object(manifest.data, namespace)
    check_outgoing(manifest, desired)  # the annotation doubles it
    return Planned(manifest, namespace, desired)


def desired_object(manifest: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The manifest with its namespace set and, as kubectl records it, the annotation holding
    the manifest itself as JSON (without that annotation): the next apply's "last applied"."""
    desired = copy.deepcopy(manifest)
    if not isinstance(desired.get("metadata"), dict):
        desired["metadata"] = {}
    metadata = desired["metadata"]
    if namespace:
        metadata["namespace"] = namespace
    annotations = metadata.get("annotations")
    if isinstance(annotations, dict):
        annotations.pop(LAST_APPLIED_ANNOTATION, None)
    # Sorted keys, compact, and a final newline: Go's JSON encoder writes kubectl's value so,
    # and a stable text keeps an unchanged manifest from looking changed.
    last_applied = json.dumps(desired, sort_keys=True, separators=(",", ":")) + "\n"
    if not isinstance(annotations, dict):
        annotations = metadata["annotations"] = {}
    annotations[LAST_APPLIED_ANNOTATION] = last_applied
    return desired


def last_applied_of(live: dict[str, Any]) -> dict[str, Any] | None:
    text = live.get("metadata", {}).get("annotations", {}).get(LAST_APPLIED_ANNOTATION)
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None  # someone else wrote it: treat the object as never applied
    return value if isinstance(value, dict) else None


def run_apply(args: argparse.Namespace) -> int:
    manifests = load(args.filenames, recursive=args.recursive)
    if not manifests:
        raise CliError("no objects passed to apply")
    plans = [plan(m, args.namespace, common.namespace(args)) for m in manifests]
    dry_run = args.dry_run == "server"

    async def body(client: Client) -> bool:
        ok = True
        for planned in plans:
            try:
                outcome = await apply_one(client, planned, dry_run=dry_run)
            except (errors.Unavailable, errors.Timeout):
                raise  # the next objects would fail the same way: stop here
            except errors.ApiError as err:
                print(
                    f"error: {planned.manifest.source}: {one_line(err.message)}",
                    file=sys.stderr,
                    flush=True,
                )
                ok = False
                continue
            suffix = " (server dry run)" if dry_run else ""
            print(f"{planned.ref} {outcome}{suffix}", flush=True)
        return ok

    return 0 if common.run(args, body) else 1


async def apply_one(client: Client, planned: Planned, *, dry_run: bool = False) -> str:
    """Creates or updates one object; returns "created", "configured" or "unchanged"."""
    kind, name = planned.manifest.kind, planned.manifest.name
    warned_missing = False
    for attempt in range(CONFLICT_RETRIES + 1):
        try:
            live = await client.get(kind, name, planned.namespace)
        except errors.NotFound:
            try:
                _, warnings = await client.create_manifest(planned.desired, dry_run=dry_run)
            except errors.AlreadyExists:
                if attempt == CONFLICT_RETRIES:
                    raise
                continue  # created a moment ago by someone else: merge with it instead
            print_warnings(warnings)
            return "created"
        live_dict = convert.to_dict(live)
        last_applied = last_applied_of(live_dict)
        if last_applied is None and not warned_missing:
            warned_missing = True
            print_warnings(
                [
                    f"resource {kind.plural}/{name} is missing the {LAST_APPLIED_ANNOTATION} "
                    "annotation, which apply uses to find the fields removed from a manifest. "
                    "apply should only be used on objects created by apply; the annotation will "
                    "be added now."
                ]
            )
        merged = three_way_merge(last_applied, planned.desired, live_dict)
        # Status is the system's: Update ignores it, and leaving it out keeps the request to
        # what apply means to change.
        merged.pop("status", None)
        live_dict.pop("status", None)
        if merged == live_dict:
            return "unchanged"  # as kubectl with an empty patch: nothing to send
        merged.setdefault("metadata", {})["resourceVersion"] = meta(live).resource_version
        try:
            updated, warnings = await client.update_manifest(merged, dry_run=dry_run)
        except errors.Conflict:
            if attempt == CONFLICT_RETRIES:
                raise
            continue  # changed since we read it: read again and merge again
        print_warnings(warnings)
        return "unchanged" if _same(live, updated, dry_run) else "configured"
    raise AssertionError("unreachable")


def _same(live: Message, updated: Message, dry_run: bool) -> bool:
    if dry_run:
        # A dry run keeps the resourceVersion either way; the object says what would change.
        return live.SerializeToString(deterministic=True) == updated.SerializeToString(
            deterministic=True
        )
    # The server skips an update that changes nothing, so the version stays.
    return bool(meta(live).resource_version == meta(updated).resource_version)
