"""Kubernetes' size limits, the one home of these numbers for the CLI and the apiserver.

- MAX_REQUEST_BYTES, 3 MiB: the largest request body the apiserver reads
  (k8s.io/apiserver, server/config.go: `MaxRequestBodyBytes: int64(3 * 1024 * 1024)`, so a
  JSON body that grows when converted still fits what etcd stores).
- MAX_OBJECT_BYTES, 1.5 MiB: the largest object stored. Kubernetes stores each object in one
  etcd request, and etcd refuses a request over its `--max-request-bytes`, 1.5 MiB by default
  (etcd server/embed/config.go: `DefaultMaxRequestBytes = 1.5 * 1024 * 1024`); the apiserver
  answers "etcdserver: request is too large".
- MAX_ANNOTATIONS_BYTES, 256 KiB: the total size of an object's annotations, keys and values
  (k8s.io/apimachinery, api/validation/objectmeta.go: `TotalAnnotationSizeLimitB int =
  256 * (1 << 10)`), which bounds what `apply`'s last-applied annotation can double.
"""

from __future__ import annotations

MAX_REQUEST_BYTES = 3 * 1024 * 1024
MAX_OBJECT_BYTES = 3 * 1024 * 1024 // 2
MAX_ANNOTATIONS_BYTES = 256 * 1024


def describe(limit: int) -> str:
    """A limit as messages name it: `3145728 bytes (3 MiB)`."""
    return f"{limit} bytes ({limit / (1024 * 1024):g} MiB)"
