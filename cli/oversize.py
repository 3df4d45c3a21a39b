"""A request the server would refuse for its size, refused before anything is sent.

The server reads a request of at most MAX_REQUEST_BYTES (skiff/api/limits.py says where the
number comes from), as Kubernetes' apiserver does before it decodes anything. Checking here
first turns a long upload ending in a transport error into one line naming the object, its
size and the limit, before any object of the command is sent; `apply` checks what it sends,
its last-applied annotation included.

The other limits are the server's to apply, in Kubernetes' order: validation (annotations at
most 256 KiB, a Secret's data at most 1 MiB, ... every error of an object in one message),
then the stored object's size.
"""

from __future__ import annotations

import json
from typing import Any

from cli.errors import CliError
from skiff.api import limits


def check_request(source: str, subject: str, data: dict[str, Any]) -> None:
    """The request that sends `data`: the client sends a manifest as JSON. Cheap next to
    converting the manifest, so a 100 MiB file is refused before that work."""
    size = len(json.dumps(data))  # ASCII (non-ASCII escaped), as Client.*_manifest sends it
    if size > limits.MAX_REQUEST_BYTES:
        raise CliError(f"{source}: {subject} is too large: {size} bytes as JSON, over the "
                       f"limit of {limits.describe(limits.MAX_REQUEST_BYTES)} for a request")
