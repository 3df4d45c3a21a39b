"""How objects are laid out in etcd: keys, values, and the resourceVersion.

Key: /registry/<resource>/<namespace>/<name> (cluster-scoped: /registry/<resource>/<name>).
Value: the serialized message with resourceVersion cleared, because etcd's
mod_revision of the key *is* the resourceVersion.
"""

from __future__ import annotations

from google.protobuf.message import Message

from skiff.api import kinds
from skiff.api.meta import meta

REGISTRY_PREFIX = b"/registry/"
ALLOCATIONS_PREFIX = b"/allocations/"

# Every kind's message has `ObjectMeta metadata = 3`, and ObjectMeta has
# `string resource_version = 5`. Protobuf merges a message field that appears twice,
# so appending this small suffix to stored bytes sets the resourceVersion without
# parsing and re-serializing the whole object.
_METADATA_FIELD_TAG = b"\x1a"  # field 3, wire type 2
_RESOURCE_VERSION_TAG = b"\x2a"  # field 5, wire type 2


def key(kind: kinds.Kind, namespace: str, name: str) -> bytes:
    if kind.namespaced:
        return f"/registry/{kind.plural}/{namespace}/{name}".encode()
    return f"/registry/{kind.plural}/{name}".encode()


def prefix(kind: kinds.Kind, namespace: str = "") -> bytes:
    if kind.namespaced and namespace:
        return f"/registry/{kind.plural}/{namespace}/".encode()
    return f"/registry/{kind.plural}/".encode()


def split_key(raw: bytes) -> tuple[str, str] | None:
    """(resource, "namespace/name" or "name") of a registry key, None for other keys."""
    if not raw.startswith(REGISTRY_PREFIX):
        return None
    rest = raw[len(REGISTRY_PREFIX):].decode()
    resource, _, object_key = rest.partition("/")
    return (resource, object_key) if object_key else None


def object_key(namespace: str, name: str) -> str:
    """The key the watch cache uses for an object (the tail of its etcd key)."""
    return f"{namespace}/{name}" if namespace else name


def with_resource_version(data: bytes, revision: int) -> bytes:
    rv = str(revision).encode()
    meta = _RESOURCE_VERSION_TAG + bytes([len(rv)]) + rv
    return data + _METADATA_FIELD_TAG + bytes([len(meta)]) + meta


def encode(obj: Message) -> bytes:
    """The stored form: resourceVersion cleared."""
    m = meta(obj)
    rv = m.resource_version
    m.resource_version = ""
    try:
        return obj.SerializeToString(deterministic=True)
    finally:
        m.resource_version = rv


def decode(kind: kinds.Kind, data: bytes, revision: int) -> Message:
    obj = kind.message.FromString(with_resource_version(data, revision))
    return obj
