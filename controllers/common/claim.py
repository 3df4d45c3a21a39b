"""Ownership: which of the objects a selector matches a controller takes as its own.

Kubernetes' rules (its ControllerRefManager): an object owned by this controller stays
owned while the selector matches it and is released (our ownerReference removed) when it
stops matching; an orphan the selector matches is adopted (an ownerReference with
controller=true added), unless the owner or the orphan is being deleted; an object that
another controller owns is never touched. Adoption first reads the owner afresh, so a
controller whose owner was just deleted and recreated under the same name cannot adopt
with a stale uid.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any, TypeVar

from google.protobuf.message import Message

from controllers.common.podcontrol import owner_reference
from skiff.api import kinds
from skiff.api.meta import meta
from skiff.api.selectors import LabelSelector, label_selector_from_proto_like
from skiff.api.v1 import meta_pb2
from skiff.client import errors
from skiff.client.client import Client

__all__ = ["claim", "controller_of", "selector_of"]

M = TypeVar("M", bound=Message)


def selector_of(obj: Any) -> LabelSelector:
    """The parsed spec.selector of a workload (a missing selector matches nothing)."""
    selector = obj.spec.selector
    return label_selector_from_proto_like(selector.match_labels, selector.match_expressions)


def controller_of(obj: Message) -> meta_pb2.OwnerReference | None:
    """The object's ownerReference with controller=true, if any."""
    for ref in meta(obj).owner_references:
        if ref.controller:
            return ref
    return None


async def claim(client: Client, owner: Message, selector: LabelSelector,
                candidates: Iterable[M]) -> list[M]:
    """The objects `owner` controls after adopting and releasing as the rules say.
    Objects adopted or released are written back; a conflict or a vanished object is
    skipped (its informer event brings the owner back to look again)."""
    owner_meta = meta(owner)
    owner_deleting = owner_meta.HasField("deletion_timestamp")
    owned: list[M] = []
    fresh_owner_checked: bool | None = None
    for obj in candidates:
        ref = controller_of(obj)
        obj_meta = meta(obj)
        matches = selector.matches(obj_meta.labels)
        if ref is not None:
            if ref.uid != owner_meta.uid:
                continue  # another controller's
            if matches or owner_deleting:
                owned.append(obj)
                continue
            with contextlib.suppress(errors.Conflict, errors.NotFound):
                await client.update(_without_owner(obj, owner_meta.uid))
            continue
        if not matches or owner_deleting or obj_meta.HasField("deletion_timestamp"):
            continue
        if fresh_owner_checked is None:
            fresh_owner_checked = await _owner_is_current(client, owner)
        if not fresh_owner_checked:
            continue
        try:
            adopted = await client.update(_with_owner(obj, owner))
        except (errors.Conflict, errors.NotFound):
            continue
        owned.append(adopted)
    return owned


async def _owner_is_current(client: Client, owner: Message) -> bool:
    owner_meta = meta(owner)
    try:
        fresh = await client.get(kinds.by_message(owner).kind, owner_meta.name,
                                 owner_meta.namespace)
    except errors.NotFound:
        return False
    fresh_meta = meta(fresh)
    return fresh_meta.uid == owner_meta.uid and not fresh_meta.HasField("deletion_timestamp")


def _with_owner(obj: M, owner: Message) -> M:
    copy = type(obj)()
    copy.CopyFrom(obj)
    meta(copy).owner_references.append(owner_reference(owner))
    return copy


def _without_owner(obj: M, owner_uid: str) -> M:
    copy = type(obj)()
    copy.CopyFrom(obj)
    refs = meta(copy).owner_references
    kept = [r for r in refs if r.uid != owner_uid]
    del refs[:]
    refs.extend(kept)
    return copy
