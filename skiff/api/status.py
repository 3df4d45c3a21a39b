"""Why a request failed, in words programs decide on: Kubernetes' StatusReason and CauseType.

Every error the apiserver returns carries a `Status` (proto/skiff/api/v1/meta.proto, as
Kubernetes' metav1.Status): its reason, the object it is about, the causes (the fields at
fault) and a retry hint. It travels in the gRPC status details, the way gRPC's
richer error model does: trailing metadata `grpc-status-details-bin` holds a
google.rpc.Status whose `details` hold the packed Status. `encode` and `decode` are that
wrapping, on both sides; what a status says is never read from its English message.
"""

from __future__ import annotations

from enum import StrEnum

from google.protobuf.message import DecodeError
from google.rpc import status_pb2 as rpc_status_pb2

from skiff.api.v1 import meta_pb2

__all__ = [
    "DETAILS_KEY",
    "HTTP_CODES",
    "CauseType",
    "StatusReason",
    "cause_of_field_error",
    "decode",
    "encode",
    "failure",
]

# The trailing metadata key of gRPC's rich error model (grpcio-status uses the same).
DETAILS_KEY = "grpc-status-details-bin"
FAILURE = "Failure"


class StatusReason(StrEnum):
    """k8s.io/apimachinery/pkg/apis/meta/v1 StatusReason."""

    UNKNOWN = ""
    UNAUTHORIZED = "Unauthorized"
    FORBIDDEN = "Forbidden"
    NOT_FOUND = "NotFound"
    ALREADY_EXISTS = "AlreadyExists"
    CONFLICT = "Conflict"
    GONE = "Gone"
    INVALID = "Invalid"
    SERVER_TIMEOUT = "ServerTimeout"
    STORE_READ_ERROR = "StorageReadError"
    TIMEOUT = "Timeout"
    TOO_MANY_REQUESTS = "TooManyRequests"
    BAD_REQUEST = "BadRequest"
    METHOD_NOT_ALLOWED = "MethodNotAllowed"
    NOT_ACCEPTABLE = "NotAcceptable"
    REQUEST_ENTITY_TOO_LARGE = "RequestEntityTooLarge"
    UNSUPPORTED_MEDIA_TYPE = "UnsupportedMediaType"
    INTERNAL_ERROR = "InternalError"
    EXPIRED = "Expired"
    SERVICE_UNAVAILABLE = "ServiceUnavailable"


# The HTTP code Kubernetes answers each reason with (Status.code).
HTTP_CODES: dict[StatusReason, int] = {
    StatusReason.UNKNOWN: 500,
    StatusReason.UNAUTHORIZED: 401,
    StatusReason.FORBIDDEN: 403,
    StatusReason.NOT_FOUND: 404,
    StatusReason.ALREADY_EXISTS: 409,
    StatusReason.CONFLICT: 409,
    StatusReason.GONE: 410,
    StatusReason.INVALID: 422,
    StatusReason.SERVER_TIMEOUT: 500,
    StatusReason.STORE_READ_ERROR: 500,
    StatusReason.TIMEOUT: 504,
    StatusReason.TOO_MANY_REQUESTS: 429,
    StatusReason.BAD_REQUEST: 400,
    StatusReason.METHOD_NOT_ALLOWED: 405,
    StatusReason.NOT_ACCEPTABLE: 406,
    StatusReason.REQUEST_ENTITY_TOO_LARGE: 413,
    StatusReason.UNSUPPORTED_MEDIA_TYPE: 415,
    StatusReason.INTERNAL_ERROR: 500,
    StatusReason.EXPIRED: 410,
    StatusReason.SERVICE_UNAVAILABLE: 503,
}


class CauseType(StrEnum):
    """k8s.io/apimachinery/pkg/apis/meta/v1 CauseType: what a StatusCause says."""

    FIELD_VALUE_NOT_FOUND = "FieldValueNotFound"
    FIELD_VALUE_REQUIRED = "FieldValueRequired"
    FIELD_VALUE_DUPLICATE = "FieldValueDuplicate"
    FIELD_VALUE_INVALID = "FieldValueInvalid"
    FIELD_VALUE_NOT_SUPPORTED = "FieldValueNotSupported"
    FIELD_VALUE_FORBIDDEN = "FieldValueForbidden"
    FIELD_VALUE_TOO_LONG = "FieldValueTooLong"
    FIELD_VALUE_TOO_MANY = "FieldValueTooMany"
    INTERNAL = "InternalError"
    TYPE_INVALID = "FieldValueTypeInvalid"
    UNEXPECTED_SERVER_RESPONSE = "UnexpectedServerResponse"
    RESOURCE_VERSION_TOO_LARGE = "ResourceVersionTooLarge"
    # A create refused because its namespace is being deleted.
    NAMESPACE_TERMINATING = "NamespaceTerminating"


# The words a field error (skiff/api/validation/errors.py) puts after its path, and the
# cause each stands for (field.ErrorType's String() and its CauseType).
_FIELD_ERROR_TYPES: tuple[tuple[str, CauseType], ...] = (
    ("Invalid value", CauseType.FIELD_VALUE_INVALID),
    ("Required value", CauseType.FIELD_VALUE_REQUIRED),
    ("Unsupported value", CauseType.FIELD_VALUE_NOT_SUPPORTED),
    ("Duplicate value", CauseType.FIELD_VALUE_DUPLICATE),
    ("Not found", CauseType.FIELD_VALUE_NOT_FOUND),
    ("Forbidden", CauseType.FIELD_VALUE_FORBIDDEN),
    ("Too long", CauseType.FIELD_VALUE_TOO_LONG),
    ("Too many", CauseType.FIELD_VALUE_TOO_MANY),
    ("Internal error", CauseType.INTERNAL),
)


def cause_of_field_error(error: str) -> meta_pb2.StatusCause:
    """The cause a field error string (`<path>: <Type>: <detail>`) stands for, as
    Kubernetes' NewInvalid builds it: the path as `field`, the rest as `message`."""
    best: tuple[int, CauseType] | None = None
    for words, cause in _FIELD_ERROR_TYPES:
        if error.startswith(words):
            found = 0
        else:
            found = error.find(f": {words}")
            if found < 0:
                continue
            found += 2
        if best is None or found < best[0]:
            best = (found, cause)
    if best is None:
        return meta_pb2.StatusCause(reason=CauseType.FIELD_VALUE_INVALID, message=error)
    start, cause = best
    return meta_pb2.StatusCause(reason=cause, message=error[start:],
                                field=error[:start - 2] if start else "")


def failure(reason: StatusReason, message: str,
            details: meta_pb2.StatusDetails | None = None) -> meta_pb2.Status:
    """The Status of an error: `reason`, its HTTP code, and `details` about the object."""
    return meta_pb2.Status(status=FAILURE, message=message, reason=reason,
                           details=details or meta_pb2.StatusDetails(),
                           code=HTTP_CODES[reason])


def encode(status: meta_pb2.Status, grpc_code: int) -> bytes:
    """The value of the DETAILS_KEY trailer for `status`, sent with gRPC code `grpc_code`
    (its number, as google.rpc.Status keeps it)."""
    wrapper = rpc_status_pb2.Status(code=grpc_code, message=status.message)
    wrapper.details.add().Pack(status)
    encoded: bytes = wrapper.SerializeToString()  # google.rpc ships no type information
    return encoded


def decode(value: bytes) -> meta_pb2.Status | None:
    """The Status a DETAILS_KEY trailer holds; None when it holds none (a status made by
    gRPC itself, or by a server that is not Skiff's)."""
    try:
        wrapper = rpc_status_pb2.Status.FromString(value)
    except DecodeError:
        return None
    for detail in wrapper.details:
        if detail.Is(meta_pb2.Status.DESCRIPTOR):
            status = meta_pb2.Status()
            detail.Unpack(status)
            return status
    return None
