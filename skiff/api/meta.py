"""Typed access to the parts every Skiff object shares.

Protobuf's `Message` type knows nothing of `metadata`; every kind Skiff serves has one, an
ObjectMeta. `meta(obj)` gives it typed, so code that handles objects of any kind reads and
changes their metadata with the type checker's blessing, not by silencing it.
"""

from __future__ import annotations

from typing import Protocol, cast

from google.protobuf.message import Message

from skiff.api.v1.meta_pb2 import ObjectMeta

__all__ = ["HasMetadata", "ObjectMeta", "meta"]


class HasMetadata(Protocol):
    @property
    def metadata(self) -> ObjectMeta: ...


def meta(obj: Message | HasMetadata) -> ObjectMeta:
    """The object's metadata (every kind's metadata is an ObjectMeta)."""
    return cast(HasMetadata, obj).metadata

