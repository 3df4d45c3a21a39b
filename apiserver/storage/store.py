"""The storage seam: what the apiserver needs of a key-value store, whatever it is.

The registry, the watch cache, the compactor and the lease manager depend on `Store`
only; EtcdStore implements it over etcd's v3 API, and a second store (an embedded one,
or a test double) is one more class. Keys and values are bytes; every write is one
atomic transaction together with its side keys (`also`), and every key's `mod_revision`
is the store-wide revision of its last write (it is the objects' resourceVersion).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: bytes
    value: bytes
    mod_revision: int
    create_revision: int
    lease: int = 0


@dataclass(frozen=True, slots=True)
class WatchEvent:
    deleted: bool
    kv: KeyValue


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """Events of one revision (one transaction), or a progress note (no events)."""

    revision: int
    events: list[WatchEvent]


@dataclass(frozen=True, slots=True)
class Put:
    key: bytes
    value: bytes
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Delete:
    key: bytes


class Store(Protocol):
    """A revisioned key-value store with compare-and-swap writes and one watch of all keys.
    Failures are the exceptions of apiserver.storage.errors."""

    async def close(self) -> None: ...

    # ---- reads ----

    async def get(self, key: bytes) -> KeyValue | None: ...

    async def list_prefix(self, prefix: bytes) -> tuple[list[KeyValue], int]:
        """Every key under `prefix`, and the revision they were read at (one snapshot)."""
        ...

    async def revision(self) -> int:
        """The store's current revision."""
        ...

    async def version(self) -> str:
        """The store's own version, for `skiff version`."""
        ...

    # ---- writes ----

    async def create(self, key: bytes, value: bytes, *, lease: int = 0,
                     also: Sequence[Put] = ()) -> int:
        """Writes `key` and every `also` key only if all are absent (else KeyExists naming
        the first one present); returns the revision."""
        ...

    async def update(self, key: bytes, value: bytes, expected_revision: int, *,
                     lease: int = 0, also: Sequence[Put | Delete] = ()) -> int:
        """Writes `key` (with `also`; each Put only if absent) only if `key` is still at
        `expected_revision` (else Conflict); returns the new revision."""
        ...

    async def delete(self, key: bytes, expected_revision: int,
                     also: Sequence[Delete] = ()) -> int:
        """Deletes `key` (with `also`) only if it is still at `expected_revision`
        (KeyNotFound when gone, else Conflict); returns the revision."""
        ...

    async def grant_lease(self, ttl: int) -> int:
        """A lease whose keys disappear `ttl` seconds after it is granted."""
        ...

    async def compact(self, revision: int) -> None:
        """Forgets the history before `revision`."""
        ...

    # ---- watch ----

    def watch_all(self, start_revision: int) -> AsyncIterator[WatchBatch]:
        """Every change to any key from `start_revision` on, in revision order. Raises
        Compacted when the start is too old, Unavailable when the stream breaks."""
        ...
