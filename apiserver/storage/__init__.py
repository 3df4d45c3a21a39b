"""Storage of objects in etcd: the only package that imports an etcd client."""

from apiserver.storage.errors import (
    Compacted,
    Conflict,
    KeyExists,
    KeyNotFound,
    StorageError,
    Unavailable,
)
from apiserver.storage.etcd import Delete, EtcdStore, KeyValue, Put, WatchBatch, WatchEvent

__all__ = [
    "Compacted", "Conflict", "Delete", "EtcdStore", "KeyExists", "KeyNotFound", "KeyValue",
    "Put", "StorageError", "Unavailable", "WatchBatch", "WatchEvent",
]
