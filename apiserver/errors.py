"""Errors the apiserver returns: a gRPC status code, a message naming the object, and the
machine-readable Status (Kubernetes' metav1.Status: reason, details, causes) that travels
in the gRPC status details (skiff/api/status.py) for programs to decide on.

Messages follow kubectl's wording, so users see what they know:
`deployments.apps "web" not found`, `Deployment.apps "web" is invalid: spec.replicas: ...`.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from skiff.api import limits, status
from skiff.api.kinds import Kind
from skiff.api.limits import MAX_OBJECT_BYTES
from skiff.api.status import CauseType, StatusReason
from skiff.api.v1 import meta_pb2

# The reason of an error built from a gRPC code alone (a kubelet's status passed on).
_REASON_OF_CODE: dict[grpc.StatusCode, StatusReason] = {
    grpc.StatusCode.NOT_FOUND: StatusReason.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: StatusReason.ALREADY_EXISTS,
    grpc.StatusCode.ABORTED: StatusReason.CONFLICT,
    grpc.StatusCode.FAILED_PRECONDITION: StatusReason.BAD_REQUEST,
    grpc.StatusCode.INVALID_ARGUMENT: StatusReason.BAD_REQUEST,
    grpc.StatusCode.OUT_OF_RANGE: StatusReason.EXPIRED,
    grpc.StatusCode.PERMISSION_DENIED: StatusReason.FORBIDDEN,
    grpc.StatusCode.UNAUTHENTICATED: StatusReason.UNAUTHORIZED,
    grpc.StatusCode.RESOURCE_EXHAUSTED: StatusReason.TOO_MANY_REQUESTS,
    grpc.StatusCode.UNAVAILABLE: StatusReason.SERVICE_UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: StatusReason.TIMEOUT,
    grpc.StatusCode.UNIMPLEMENTED: StatusReason.METHOD_NOT_ALLOWED,
}


class ApiError(Exception):
    """A refusal: `code` and `message` for gRPC, `status()` for programs."""

    def __init__(self, code: grpc.StatusCode, message: str, *,
                 reason: StatusReason | None = None, kind: Kind | None = None,
                 name: str = "", causes: Sequence[meta_pb2.StatusCause] = (),
                 retry_after_seconds: int = 0, details_kind: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = (reason if reason is not None
                       else _REASON_OF_CODE.get(code, StatusReason.INTERNAL_ERROR))
        self.details = meta_pb2.StatusDetails(
            name=name, group=kind.group if kind else "",
            kind=details_kind or (kind.plural if kind else ""),
            causes=list(causes), retry_after_seconds=retry_after_seconds)

    def status(self) -> meta_pb2.Status:
        return status.failure(self.reason, self.message, self.details)

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        """The gRPC trailers that carry `status()`."""
        return ((status.DETAILS_KEY, status.encode(self.status(), self.code.value[0])),)


async def abort(context: grpc.aio.ServicerContext, err: ApiError) -> None:
    """Ends the call with `err`: its code and message, and its Status in the details.
    Raises (as context.abort does)."""
    await context.abort(err.code, err.message, trailing_metadata=err.trailing_metadata())


def resource(kind: Kind) -> str:
    return f"{kind.plural}.{kind.group}" if kind.group else kind.plural


def kind_name(kind: Kind) -> str:
    return f"{kind.kind}.{kind.group}" if kind.group else kind.kind


def not_found(kind: Kind, name: str) -> ApiError:
    return ApiError(grpc.StatusCode.NOT_FOUND, f'{resource(kind)} "{name}" not found',
                    reason=StatusReason.NOT_FOUND, kind=kind, name=name)


def already_exists(kind: Kind, name: str) -> ApiError:
    return ApiError(grpc.StatusCode.ALREADY_EXISTS,
                    f'{resource(kind)} "{name}" already exists',
                    reason=StatusReason.ALREADY_EXISTS, kind=kind, name=name)


def conflict(kind: Kind, name: str) -> ApiError:
    return ApiError(grpc.StatusCode.ABORTED,
                    f'Operation cannot be fulfilled on {resource(kind)} "{name}": the object '
                    "has been modified; please apply your changes to the latest version and "
                    "try again", reason=StatusReason.CONFLICT, kind=kind, name=name)


def invalid(kind: Kind, name: str, errors: list[str]) -> ApiError:
    """Field errors (skiff/api/validation/errors.py strings), each a cause naming its field."""
    subject = f'{kind_name(kind)} "{name}"' if name else kind_name(kind)
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT,
                    f"{subject} is invalid: " + "; ".join(errors),
                    reason=StatusReason.INVALID, kind=kind, name=name, details_kind=kind.kind,
                    causes=[status.cause_of_field_error(e) for e in errors])


def bad_request(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, message, reason=StatusReason.BAD_REQUEST)


def failed_precondition(message: str, *, reason: StatusReason = StatusReason.CONFLICT
                        ) -> ApiError:
    """A request that cannot apply to the object as it is now. A precondition that no
    longer holds (a uid, a resourceVersion, a pod already bound) is a Conflict, as in
    Kubernetes; a request that makes no sense for the object's state says BadRequest."""
    return ApiError(grpc.StatusCode.FAILED_PRECONDITION, message, reason=reason)


def forbidden(message: str, *, causes: Sequence[meta_pb2.StatusCause] = ()) -> ApiError:
    return ApiError(grpc.StatusCode.PERMISSION_DENIED, message,
                    reason=StatusReason.FORBIDDEN, causes=causes)


def namespace_terminating(namespace: str) -> ApiError:
    """A create in a namespace being deleted (Kubernetes' NamespaceLifecycle admission):
    Forbidden, with the NamespaceTerminating cause controllers decide on."""
    message = (f"unable to create new content in namespace {namespace} because it is being "
               "terminated")
    return forbidden(message, causes=[meta_pb2.StatusCause(
        reason=CauseType.NAMESPACE_TERMINATING, message=message, field="metadata.namespace")])


def unavailable(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.UNAVAILABLE, message,
                    reason=StatusReason.SERVICE_UNAVAILABLE)


def internal_error(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.INTERNAL, f"Internal error occurred: {message}",
                    reason=StatusReason.INTERNAL_ERROR)


def expired(message: str) -> ApiError:
    """A watch from a resourceVersion older than the history kept: relist."""
    return ApiError(grpc.StatusCode.OUT_OF_RANGE, message, reason=StatusReason.EXPIRED)


def resource_version_too_large(requested: str, detail: str) -> ApiError:
    """A read at a resourceVersion the cache has not reached (Kubernetes'
    NewTooLargeResourceVersionError: Timeout, a ResourceVersionTooLarge cause, retry in 1s)."""
    message = f"Too large resource version: {requested} ({detail})"
    return ApiError(grpc.StatusCode.UNAVAILABLE, message, reason=StatusReason.TIMEOUT,
                    retry_after_seconds=1, causes=[meta_pb2.StatusCause(
                        reason=CauseType.RESOURCE_VERSION_TOO_LARGE,
                        message="Too large resource version")])


def object_too_large(kind: Kind, name: str, size: int) -> ApiError:
    """An object whose stored form is over MAX_OBJECT_BYTES: etcd takes no more in one
    request."""
    return ApiError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f'{kind_name(kind)} "{name}" is too large to store: {size} bytes, the '
                    f"limit is {limits.describe(MAX_OBJECT_BYTES)}",
                    reason=StatusReason.REQUEST_ENTITY_TOO_LARGE, kind=kind, name=name)


# Kubernetes' words for a request its handler gave up on (the timeout filter's and the
# REST finisher's NewTimeoutError), kept verbatim so users and tools recognise them.
REQUEST_TIMED_OUT = "request did not complete within requested timeout - context deadline exceeded"


def timeout(message: str) -> ApiError:
    """Kubernetes' NewTimeoutError (reason Timeout): `Timeout: <message>`."""
    return ApiError(grpc.StatusCode.DEADLINE_EXCEEDED, f"Timeout: {message}",
                    reason=StatusReason.TIMEOUT)


def storage_timeout(verb: str, seconds: float, *, write: bool) -> ApiError:
    """A request that etcd did not let finish within its deadline. A write may have been
    committed all the same (etcd may apply it after the apiserver stopped waiting), so
    the caller must read before it tries again rather than repeat it blindly."""
    detail = f"the apiserver's storage (etcd) did not answer within {seconds:.3g}s"
    if write:
        detail += f"; the {verb} may have been stored: read the object before retrying"
    return timeout(f"{REQUEST_TIMED_OUT}: {detail}")
