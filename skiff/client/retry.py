"""Read, change, write back, and on a conflict do it again on a fresh read (client-go's
retry.RetryOnConflict around a get and an update)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from google.protobuf.message import Message

from skiff.client import errors
from skiff.client.client import Client

__all__ = ["CONFLICT_RETRIES", "update_with_retries"]

R = TypeVar("R")
M = TypeVar("M", bound=Message)

CONFLICT_RETRIES = 5


async def update_with_retries(
    client: Client,
    kind: type[M],
    name: str,
    namespace: str,
    change: Callable[[M], R],
    retries: int = CONFLICT_RETRIES,
) -> R:
    """Reads one object, lets `change` edit it in place, writes it back if it changed and
    returns what `change` returned.

    The write carries the resourceVersion that was read, so someone writing in between makes
    it fail (Conflict) instead of being silently undone; then the object is read again and
    `change` runs again on the fresh copy, so it must decide from the object alone. `change`
    raises to leave the object as it is."""
    for attempt in range(retries + 1):
        obj = await client.get(kind, name, namespace)
        original = type(obj)()
        original.CopyFrom(obj)
        result = change(obj)
        if obj == original:
            return result  # nothing to write: no needless resourceVersion bump or event
        try:
            await client.update(obj)
        except errors.Conflict:
            if attempt == retries:
                raise
            continue
        return result
    raise AssertionError("unreachable")
