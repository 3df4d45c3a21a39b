"""A bound on the requests the apiserver serves at once, as Kubernetes' max-in-flight filter.

Two pools, as `--max-requests-inflight` (400) and `--max-mutating-requests-inflight` (200):
reads (Get, List, Version) and writes (Create, Update, UpdateStatus, Delete, Bind).
Long-running calls (Watch, Logs, Exec, PortForward) hold a connection for minutes and are
not counted, as in Kubernetes. Past its pool's bound a request is refused with RESOURCE_EXHAUSTED,
reason TooManyRequests and retryAfterSeconds 1, before the registry sees it, so a refused
request was never processed and the client may retry a write as safely as a read
(skiff.client.client does). A bound of 0 means none.

A request is refused at once when its pool is full as it arrives (its body never read,
skiff.daemon.refusal); one admitted then takes its place in the pool when its handler
starts, and is refused there if a burst filled the pool in between.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

from apiserver import errors
from skiff.api.status import StatusReason
from skiff.daemon.refusal import refusing_handler

__all__ = ["DEFAULT_MAX_MUTATING_REQUESTS", "DEFAULT_MAX_REQUESTS", "MaxInFlight"]

DEFAULT_MAX_REQUESTS = 400
DEFAULT_MAX_MUTATING_REQUESTS = 200
RETRY_AFTER_SECONDS = 1  # what Kubernetes says

MUTATING = frozenset({"Create", "Update", "UpdateStatus", "Delete", "Bind", "Join"})
LONG_RUNNING = frozenset({"Watch", "Logs", "Exec", "PortForward"})

if TYPE_CHECKING:
    _Interceptor = object  # grpc ships no type information
else:
    _Interceptor = grpc.aio.ServerInterceptor


def too_many_requests() -> errors.ApiError:
    return errors.ApiError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                           "Too many requests, please try again later.",
                           reason=StatusReason.TOO_MANY_REQUESTS,
                           retry_after_seconds=RETRY_AFTER_SECONDS)


@dataclass
class Pool:
    """Requests of one kind in flight, and their bound (0: none)."""

    bound: int
    in_flight: int = 0

    def full(self) -> bool:
        return self.bound > 0 and self.in_flight >= self.bound


class MaxInFlight(_Interceptor):
    def __init__(self, max_requests: int = DEFAULT_MAX_REQUESTS,
                 max_mutating: int = DEFAULT_MAX_MUTATING_REQUESTS) -> None:
        self.reads = Pool(max_requests)
        self.writes = Pool(max_mutating)
        refusal = too_many_requests()
        self._refusal_status = refusal.status()

    def pool(self, method: str) -> Pool | None:
        """The pool of a full method name (`/skiff.api.v1.Api/Create`); None for a
        long-running call."""
        name = method.rpartition("/")[2]
        if name in LONG_RUNNING:
            return None
        return self.writes if name in MUTATING else self.reads

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]],
                                details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        method = getattr(details, "method", "") or ""
        pool = self.pool(method)
        if handler is None or pool is None or pool.bound <= 0 or handler.request_streaming \
                or handler.response_streaming:
            return handler
        if pool.full():
            return refusing_handler(handler, grpc.StatusCode.RESOURCE_EXHAUSTED,
                                    self._refusal_status)
        return handler._replace(unary_unary=_counted(handler.unary_unary, pool))


def _counted(behavior: Callable[..., Any], pool: Pool) -> Callable[..., Any]:
    async def admitted(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if pool.full():
            await errors.abort(context, too_many_requests())
        pool.in_flight += 1
        try:
            result = behavior(request, context)
            return await result if inspect.isawaitable(result) else result
        finally:
            pool.in_flight -= 1
    return admitted
