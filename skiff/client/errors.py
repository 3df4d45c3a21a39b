"""Errors of the API, by gRPC status, so callers catch what they mean."""

from __future__ import annotations

import grpc


class ApiError(Exception):
    code = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotFound(ApiError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ApiError):
    code = grpc.StatusCode.ALREADY_EXISTS


class Conflict(ApiError):
    """Optimistic concurrency lost: read the object again and retry."""

    code = grpc.StatusCode.ABORTED


class Invalid(ApiError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class FailedPrecondition(ApiError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Forbidden(ApiError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(ApiError):
    code = grpc.StatusCode.UNAUTHENTICATED


class Expired(ApiError):
    """A watch's resourceVersion is too old: relist."""

    code = grpc.StatusCode.OUT_OF_RANGE


class Unavailable(ApiError):
    code = grpc.StatusCode.UNAVAILABLE


class Timeout(ApiError):
    """The request did not complete in time (Kubernetes' reason Timeout): the apiserver's
    storage (etcd) did not answer within the request's deadline. A write that timed out
    may have been stored all the same: read before trying again, never repeat it blindly
    (a create with a generated name would make a second object)."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class DeadlineExceeded(Timeout):
    """The caller's own deadline passed before the apiserver answered at all (it is
    overloaded, hung or unreachable mid-call). A write may have been applied."""


_BY_CODE: dict[grpc.StatusCode, type[ApiError]] = {
    cls.code: cls for cls in (NotFound, AlreadyExists, Conflict, Invalid, FailedPrecondition,
                              Forbidden, Unauthenticated, Expired, Unavailable, Timeout)
}


def from_rpc_error(err: grpc.aio.AioRpcError) -> ApiError:
    code = err.code()
    cls = _BY_CODE.get(code, ApiError)
    return cls(err.details() or code.name, code)
