"""Refusing a call before its request is read: the one way a server interceptor says no.

gRPC's server reads a unary request whole before it calls the handler, however the
handler ends. A handler that takes a request *stream* is called at once and reads only
what it asks for, and on the wire a unary call is a stream of one, so a refusal is served
as such a handler: it ends the call with the status and the body is never read (an
unauthenticated 60 MiB request costs the server nothing). The handler answers in the
shape the caller expects (one response or a stream), so every caller reads a clean status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from skiff.api import status
from skiff.api.v1 import meta_pb2

__all__ = ["refusing_handler"]


def refusing_handler(handler: grpc.RpcMethodHandler, code: grpc.StatusCode,
                     refusal: meta_pb2.Status) -> grpc.RpcMethodHandler:
    """A handler for the method `handler` serves that ends every call with `code`,
    `refusal.message` and `refusal` in the status details, reading nothing."""
    trailers = ((status.DETAILS_KEY, status.encode(refusal, code.value[0])),)
    message = refusal.message

    async def refuse_unary(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
                           ) -> None:
        await context.abort(code, message, trailing_metadata=trailers)

    async def refuse_streaming(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
                               ) -> AsyncIterator[Any]:
        await context.abort(code, message, trailing_metadata=trailers)
        yield  # never reached: makes this an async generator, the streaming shape

    if handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(
            refuse_streaming, response_serializer=handler.response_serializer)
    return grpc.stream_unary_rpc_method_handler(
        refuse_unary, response_serializer=handler.response_serializer)
