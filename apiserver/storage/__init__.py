"""Storage of objects: the Store seam, and its etcd implementation (the only package
that imports an etcd client)."""

from apiserver.storage.errors import (
    Compacted,
    Conflict,
    KeyExists,
    KeyNotFound,
    StorageError,
    Timeout,
    Unavailable,
)
from apiserver.storage.etcd import EtcdStore
from apiserver.storage.store import Delete, KeyValue, Put, Store, WatchBatch, WatchEvent

__all__ = [
    "Compacted", "Conflict", "Delete", "EtcdStore", "KeyExists", "KeyNotFound", "KeyValue",
    "Put", "StorageError", "Store", "Timeout", "Unavailable", "WatchBatch", "WatchEvent",
]
