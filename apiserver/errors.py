"""Errors the apiserver returns: a gRPC status code and a message naming the object.

Messages follow kubectl's wording, so users see what they know:
`deployments.apps "web" not found`, `Deployment.apps "web" is invalid: spec.replicas: ...`.
"""

from __future__ import annotations

import grpc

from skiff.api.kinds import Kind


class ApiError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def resource(kind: Kind) -> str:
    return f"{kind.plural}.{kind.group}" if kind.group else kind.plural


def kind_name(kind: Kind) -> str:
    return f"{kind.kind}.{kind.group}" if kind.group else kind.kind


def not_found(kind: Kind, name: str) -> ApiError:
    return ApiError(grpc.StatusCode.NOT_FOUND, f'{resource(kind)} "{name}" not found')


def already_exists(kind: Kind, name: str) -> ApiError:
    return ApiError(grpc.StatusCode.ALREADY_EXISTS, f'{resource(kind)} "{name}" already exists')


def conflict(kind: Kind, name: str) -> ApiError:
    return ApiError(grpc.StatusCode.ABORTED,
                    f'Operation cannot be fulfilled on {resource(kind)} "{name}": the object '
                    "has been modified; please apply your changes to the latest version and "
                    "try again")


def invalid(kind: Kind, name: str, errors: list[str]) -> ApiError:
    subject = f'{kind_name(kind)} "{name}"' if name else kind_name(kind)
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT,
                    f"{subject} is invalid: " + "; ".join(errors))


def bad_request(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, message)


def failed_precondition(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.FAILED_PRECONDITION, message)


def forbidden(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.PERMISSION_DENIED, message)


def unavailable(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.UNAVAILABLE, message)


# Kubernetes' words for a request its handler gave up on (the timeout filter's and the
# REST finisher's NewTimeoutError), kept verbatim so users and tools recognise them.
REQUEST_TIMED_OUT = "request did not complete within requested timeout - context deadline exceeded"


def timeout(message: str) -> ApiError:
    """Kubernetes' NewTimeoutError (reason Timeout): `Timeout: <message>`."""
    return ApiError(grpc.StatusCode.DEADLINE_EXCEEDED, f"Timeout: {message}")


def storage_timeout(verb: str, seconds: float, *, write: bool) -> ApiError:
    """A request that etcd did not let finish within its deadline. A write may have been
    committed all the same (etcd may apply it after the apiserver stopped waiting), so
    the caller must read before it tries again rather than repeat it blindly."""
    detail = f"the apiserver's storage (etcd) did not answer within {seconds:.3g}s"
    if write:
        detail += f"; the {verb} may have been stored: read the object before retrying"
    return timeout(f"{REQUEST_TIMED_OUT}: {detail}")
