"""Typed access to the parts every Skiff object shares.

Protobuf's `Message` type knows nothing of `metadata`; every kind Skiff serves has one, an
ObjectMeta. `meta(obj)` gives it typed, so code that handles objects of any kind reads and
changes their metadata with the type checker's blessing, not by silencing it.
"""

from __future__ import annotations

import random
from typing import Protocol, cast

from google.protobuf.message import Message

from skiff.api.v1.meta_pb2 import ObjectMeta

__all__ = ["HasMetadata", "ObjectMeta", "generated_name", "meta"]

# As Kubernetes' names.SimpleNameGenerator: five characters, no vowels (no words) and no
# 0, 1 or 3 (no look-alikes of letters).
_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_NAME_SUFFIX_LENGTH = 5


class HasMetadata(Protocol):
    @property
    def metadata(self) -> ObjectMeta: ...


def meta(obj: Message | HasMetadata) -> ObjectMeta:
    """The object's metadata (every kind's metadata is an ObjectMeta)."""
    return cast(HasMetadata, obj).metadata



def generated_name(prefix: str) -> str:
    """A name made from `metadata.generateName`: the prefix and a random suffix. The
    apiserver makes them; so does a controller that must be able to send the same create
    again (skiff.client.errors.Timeout), which only a name it knows makes safe."""
    return prefix + "".join(random.choices(_NAME_SUFFIX_ALPHABET, k=_NAME_SUFFIX_LENGTH))
