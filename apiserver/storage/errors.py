"""What the storage layer can say went wrong, independent of etcd's wire types."""

from __future__ import annotations


class StorageError(Exception):
    pass


class Unavailable(StorageError):
    """etcd could not be reached; the request may be retried."""


class Timeout(StorageError):
    """etcd did not answer within the request's deadline (stalled, or too slow). A write
    that timed out may still have been committed: its outcome is unknown."""


class KeyExists(StorageError):
    """A create found its key (or one of its side keys, named by `key`) present."""

    def __init__(self, key: str) -> None:
        super().__init__(f"{key} exists")
        self.key = key


class KeyNotFound(StorageError):
    pass


class Conflict(StorageError):
    """A compare-and-swap lost: the key changed since the revision the caller read."""


class Compacted(StorageError):
    """A watch asked for history etcd no longer keeps."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"revision compacted; oldest available is {compact_revision}")
        self.compact_revision = compact_revision
