"""The deadline of the request a storage call serves, so etcd is asked to answer within
what is left of it (as Kubernetes passes the request's context down to etcd).

The apiserver's handlers set it (`within`) around a request; the store asks for the time a
call may take (`call_timeout`). Calls made outside any request (the watch cache's list,
the compactor) keep the store's own per-call timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

__all__ = ["call_timeout", "within"]

# The loop time by which the current request must be answered; None outside requests.
_deadline: ContextVar[float | None] = ContextVar("request_deadline", default=None)

# What a call still gets once the request's deadline has passed: enough for gRPC to fail
# it at once with DEADLINE_EXCEEDED rather than refuse a non-positive timeout.
_EXPIRED = 0.001


@contextlib.contextmanager
def within(seconds: float) -> Iterator[None]:
    """Storage calls made inside this block must finish within `seconds` from now."""
    token = _deadline.set(asyncio.get_running_loop().time() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def call_timeout(default: float) -> float:
    """How long a storage call may take: what is left of the current request's deadline,
    or `default` outside a request."""
    deadline = _deadline.get()
    if deadline is None:
        return default
    return max(_EXPIRED, deadline - asyncio.get_running_loop().time())
