"""Objects the server would refuse for their size, refused before anything is sent.

The server reads a request of at most MAX_REQUEST_BYTES, stores an object of at most
MAX_OBJECT_BYTES and caps an object's annotations at MAX_ANNOTATIONS_BYTES
(skiff/api/limits.py says where each number comes from). Checking here first turns a long
upload ending in a transport error into one line naming the object, its size and the limit,
before any object of the command is sent. `apply` records the whole manifest in an
annotation, so what it sends is checked again, annotation included, with Kubernetes' own
message for annotations past the cap.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.message import Message

from cli.errors import CliError
from skiff.api import limits
from skiff.api.meta import meta
from skiff.api.validation.meta import validate_annotations


def check_request(source: str, subject: str, data: dict[str, Any]) -> None:
    """The request that sends `data`: the client sends a manifest as JSON. Cheap next to
    converting the manifest, so a 100 MiB file is refused before that work."""
    size = len(json.dumps(data))  # ASCII (non-ASCII escaped), as Client.*_manifest sends it
    if size > limits.MAX_REQUEST_BYTES:
        raise CliError(f"{source}: {subject} is too large: {size} bytes as JSON, over the "
                       f"limit of {_bytes(limits.MAX_REQUEST_BYTES)} for a request")


def check_object(source: str, subject: str, obj: Message) -> None:
    """The object as the server would store it: its annotations and its encoded size."""
    errors = validate_annotations(meta(obj).annotations, "metadata.annotations")
    if errors:
        raise CliError(f"{source}: {subject} is invalid: " + "; ".join(errors))
    size = obj.ByteSize()
    if size > limits.MAX_OBJECT_BYTES:
        raise CliError(f"{source}: {subject} is too large: {size} bytes, over the limit of "
                       f"{_bytes(limits.MAX_OBJECT_BYTES)} for one object")


def _bytes(limit: int) -> str:
    return f"{limit} bytes ({limit / (1024 * 1024):g} MiB)"
