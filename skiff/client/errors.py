"""Errors of the API, one class per Kubernetes StatusReason, so callers catch what they mean.

The apiserver sends every error with its Status (skiff/api/status.py) in the gRPC status
details; `from_rpc_error` picks the class by the Status's reason, and by the gRPC code
when there is none (a status made by gRPC itself: a dropped connection, a deadline, a
message over the size limit). Callers decide on the class, `reason`, `has_cause()` and
`retry_after`, never on the English of `message`.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from skiff.api import status
from skiff.api.status import CauseType, StatusReason
from skiff.api.v1 import meta_pb2


class ApiError(Exception):
    code = grpc.StatusCode.UNKNOWN
    reason = StatusReason.UNKNOWN

    def __init__(self, message: str, code: grpc.StatusCode | None = None, *,
                 status: meta_pb2.Status | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        # What the server said, when it said more than a gRPC code (None otherwise).
        self.status = status
        if status is not None and status.reason:
            self.reason = StatusReason(status.reason) if status.reason in _REASONS \
                else StatusReason.UNKNOWN

    @property
    def causes(self) -> Sequence[meta_pb2.StatusCause]:
        return list(self.status.details.causes) if self.status is not None else []

    def has_cause(self, cause: CauseType | str) -> bool:
        return any(c.reason == cause for c in self.causes)

    @property
    def retry_after(self) -> float | None:
        """Seconds the server asks to wait before trying again, when it says."""
        if self.status is None or self.status.details.retry_after_seconds <= 0:
            return None
        return float(self.status.details.retry_after_seconds)


class NotFound(ApiError):
    code = grpc.StatusCode.NOT_FOUND
    reason = StatusReason.NOT_FOUND


class AlreadyExists(ApiError):
    code = grpc.StatusCode.ALREADY_EXISTS
    reason = StatusReason.ALREADY_EXISTS


class Conflict(ApiError):
    """Optimistic concurrency lost: read the object again and retry."""

    code = grpc.StatusCode.ABORTED
    reason = StatusReason.CONFLICT


class FailedPrecondition(ApiError):
    """The object's state does not allow the request: a precondition (a uid, a
    resourceVersion, a pod not yet bound) no longer holds, reason Conflict as in
    Kubernetes; or the request makes no sense for it now (the logs of a pod not yet
    scheduled), reason BadRequest."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = StatusReason.CONFLICT


class Invalid(ApiError):
    """Field errors: `causes` name each field and what is wrong with it."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = StatusReason.INVALID


class BadRequest(Invalid):
    """A request the server cannot make sense of (an unknown kind, a bad selector); an
    Invalid too, as both say: fix the request."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = StatusReason.BAD_REQUEST


class Forbidden(ApiError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = StatusReason.FORBIDDEN


class Unauthenticated(ApiError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = StatusReason.UNAUTHORIZED


class Expired(ApiError):
    """A watch's resourceVersion is too old: relist."""

    code = grpc.StatusCode.OUT_OF_RANGE
    reason = StatusReason.EXPIRED


class Unavailable(ApiError):
    code = grpc.StatusCode.UNAVAILABLE
    reason = StatusReason.SERVICE_UNAVAILABLE


class Timeout(ApiError):
    """The request did not complete in time (Kubernetes' reason Timeout): the apiserver's
    storage (etcd) did not answer within the request's deadline, or the server is still
    catching up. A write that timed out may have been stored all the same: read before
    trying again, never repeat it blindly (a create with a generated name would make a
    second object). Not an Unavailable for that reason: nothing retries it as undone."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED
    reason = StatusReason.TIMEOUT


class DeadlineExceeded(Timeout):
    """The caller's own deadline passed before the apiserver answered at all (it is
    overloaded, hung or unreachable mid-call). A write may have been applied."""


class TooManyRequests(ApiError):
    """The server is at its bound of requests in flight: try again after `retry_after`
    (the client's calls do so on their own)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = StatusReason.TOO_MANY_REQUESTS


class RequestEntityTooLarge(ApiError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = StatusReason.REQUEST_ENTITY_TOO_LARGE


class InternalError(ApiError):
    code = grpc.StatusCode.INTERNAL
    reason = StatusReason.INTERNAL_ERROR


_REASONS = frozenset(r.value for r in StatusReason)

_BY_REASON: dict[str, type[ApiError]] = {
    cls.reason: cls for cls in (NotFound, AlreadyExists, Conflict, Invalid, BadRequest,
                                Forbidden, Unauthenticated, Expired, Unavailable, Timeout,
                                TooManyRequests, RequestEntityTooLarge, InternalError)
}
_BY_REASON[StatusReason.GONE] = Expired
_BY_REASON[StatusReason.SERVER_TIMEOUT] = Timeout

# Without a Status: gRPC's own statuses. A message over gRPC's size limit is the one
# RESOURCE_EXHAUSTED gRPC makes itself.
_BY_CODE: dict[grpc.StatusCode, type[ApiError]] = {
    cls.code: cls for cls in (NotFound, AlreadyExists, Conflict, FailedPrecondition, Invalid,
                              Forbidden, Unauthenticated, Expired, Unavailable, Timeout,
                              RequestEntityTooLarge, InternalError)
}


def error_class(reason: str, code: grpc.StatusCode) -> type[ApiError]:
    """The class for a reason (narrowed to a subclass the code names), else for the code
    alone. FAILED_PRECONDITION keeps its class whatever the reason: Kubernetes has no
    reason of its own for it (see FailedPrecondition)."""
    by_code = _BY_CODE.get(code, ApiError)
    by_reason = _BY_REASON.get(reason)
    if by_reason is None or by_code is FailedPrecondition:
        return by_code
    return by_code if issubclass(by_code, by_reason) else by_reason


def status_of(err: grpc.aio.AioRpcError) -> meta_pb2.Status | None:
    """The Status a failed call's trailers carry, if any."""
    for key, value in err.trailing_metadata() or ():
        if key == status.DETAILS_KEY and isinstance(value, bytes):
            return status.decode(value)
    return None


class TransportSecurity(ApiError):
    """The TLS handshake failed for a reason a retry will not change (a certificate from
    another CA, a server name the certificate does not carry, TLS against plaintext):
    what to configure, not a server that is down."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = StatusReason.UNAUTHORIZED


# gRPC's words for a handshake that failed, and what the user should check.
_TLS_FAILURES = (
    ("certificate is not yet valid", "the server's certificate is not valid yet by this "
     "host's clock: set the time (timedatectl set-ntp true, or chrony)"),
    ("certificate has expired", "the server's certificate has expired by this host's clock: "
     "check the time (timedatectl), or renew the cluster's certificates (skiff up does)"),
    ("CERTIFICATE_VERIFY_FAILED", "the server's certificate is not signed by the CA the "
     "client trusts (certificate-authority-data of the client config): is the config for "
     "this cluster?"),
    ("Hostname Verification", "the server's certificate does not name the address dialled: "
     "use the address the cluster was set up with (its certificate lists them)"),
    ("WRONG_VERSION_NUMBER", "the server does not speak TLS: drop https:// and the CA "
     "from the client config, or point it at the cluster's TLS port"),
)
# How a TLS server ends a plaintext connection or a certificate it refuses: it just closes.
TLS_HINT = ("if the server speaks TLS it needs a client config with https://, the cluster's "
            "CA and a client certificate it signed (skiff up writes one)")


def from_rpc_error(err: grpc.aio.AioRpcError) -> ApiError:
    code = err.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        details = err.details() or ""
        for words, advice in _TLS_FAILURES:
            if words in details:
                return TransportSecurity(f"TLS handshake failed: {advice}", code)
    found = status_of(err)
    cls = error_class(found.reason if found is not None else "", code)
    message = err.details() or code.name
    if found is None and cls is RequestEntityTooLarge:
        message = f"Request entity too large: {message}"
    if cls is Unavailable and message.endswith("Socket closed"):
        message += f" ({TLS_HINT})"
    return cls(message, code, status=found)
