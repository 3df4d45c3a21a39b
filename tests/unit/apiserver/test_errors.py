"""Every error the apiserver builds reaches a client with its machine-readable Status
(reason, details, causes, retry hint) through a real gRPC server and client, and the
client library picks the error class by that reason."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import grpc
import pytest

from apiserver import errors as server_errors
from skiff.api import kinds
from skiff.api.status import CauseType, StatusReason
from skiff.client import errors
from skiff.client.transport import open_channel
from skiff.daemon import serving

DEPLOYMENT = kinds.lookup("Deployment")
POD = kinds.lookup("Pod")
METHOD = "/test.Errors/Fail"

BUILDERS: dict[str, Callable[[], server_errors.ApiError]] = {
    "not_found": lambda: server_errors.not_found(DEPLOYMENT, "web"),
    "already_exists": lambda: server_errors.already_exists(POD, "web"),
    "conflict": lambda: server_errors.conflict(DEPLOYMENT, "web"),
    "invalid": lambda: server_errors.invalid(DEPLOYMENT, "web", [
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        "spec.template.spec.containers[0].image: Required value"]),
    "bad_request": lambda: server_errors.bad_request('no matches for kind "Gadget"'),
    "precondition": lambda: server_errors.failed_precondition("Precondition failed: UID"),
    "not_scheduled": lambda: server_errors.failed_precondition(
        'pod "p" is not scheduled yet', reason=StatusReason.BAD_REQUEST),
    "forbidden": lambda: server_errors.forbidden('pods "p" is forbidden: no'),
    "namespace_terminating": lambda: server_errors.namespace_terminating("doomed"),
    "unavailable": lambda: server_errors.unavailable("etcd is unavailable"),
    "internal_error": lambda: server_errors.internal_error("boom"),
    "expired": lambda: server_errors.expired("too old resource version: 1 (5)"),
    "resource_version_too_large": lambda: server_errors.resource_version_too_large(
        "99", "current: 5"),
    "passed_on": lambda: server_errors.ApiError(grpc.StatusCode.NOT_FOUND, "no container"),
}

# builder: (client class, reason, HTTP code)
EXPECTED: dict[str, tuple[type[errors.ApiError], StatusReason, int]] = {
    "not_found": (errors.NotFound, StatusReason.NOT_FOUND, 404),
    "already_exists": (errors.AlreadyExists, StatusReason.ALREADY_EXISTS, 409),
    "conflict": (errors.Conflict, StatusReason.CONFLICT, 409),
    "invalid": (errors.Invalid, StatusReason.INVALID, 422),
    "bad_request": (errors.BadRequest, StatusReason.BAD_REQUEST, 400),
    "precondition": (errors.FailedPrecondition, StatusReason.CONFLICT, 409),
    "not_scheduled": (errors.FailedPrecondition, StatusReason.BAD_REQUEST, 400),
    "forbidden": (errors.Forbidden, StatusReason.FORBIDDEN, 403),
    "namespace_terminating": (errors.Forbidden, StatusReason.FORBIDDEN, 403),
    "unavailable": (errors.Unavailable, StatusReason.SERVICE_UNAVAILABLE, 503),
    "internal_error": (errors.InternalError, StatusReason.INTERNAL_ERROR, 500),
    "expired": (errors.Expired, StatusReason.EXPIRED, 410),
    "resource_version_too_large": (errors.Timeout, StatusReason.TIMEOUT, 504),
    "passed_on": (errors.NotFound, StatusReason.NOT_FOUND, 404),
}


@pytest.fixture
async def address() -> AsyncIterator[str]:
    async def fail(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await server_errors.abort(context, BUILDERS[request.decode()]())
        raise AssertionError("unreachable")

    server = serving.new_server()
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "test.Errors", {"Fail": grpc.unary_unary_rpc_method_handler(fail)})])
    port = serving.add_port(server, "127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=0)


async def _raised(address: str, builder: str) -> errors.ApiError:
    channel = open_channel(address)
    try:
        await channel.unary_unary(METHOD)(builder.encode(), timeout=10)
    except grpc.aio.AioRpcError as err:
        return errors.from_rpc_error(err)
    finally:
        await channel.close()
    raise AssertionError("the call succeeded")


@pytest.mark.parametrize("builder", sorted(BUILDERS))
async def test_the_reason_of_every_builder_reaches_the_client(address: str,
                                                               builder: str) -> None:
    sent = BUILDERS[builder]()
    err = await _raised(address, builder)
    cls, reason, http = EXPECTED[builder]
    assert type(err) is cls
    assert err.reason == reason
    assert err.code == sent.code
    assert err.message == sent.message
    assert err.status is not None
    assert (err.status.status, err.status.reason, err.status.code) == ("Failure", reason, http)
    assert err.status.message == sent.message


async def test_details_name_the_object_and_causes_name_the_fields(address: str) -> None:
    err = await _raised(address, "not_found")
    assert err.status is not None
    assert (err.status.details.name, err.status.details.group, err.status.details.kind) == (
        "web", "apps", "deployments")

    err = await _raised(address, "invalid")
    assert err.status is not None
    assert err.status.details.kind == "Deployment"
    assert [(c.reason, c.field, c.message) for c in err.causes] == [
        ("FieldValueInvalid", "spec.replicas",
         "Invalid value: -1: must be greater than or equal to 0"),
        ("FieldValueRequired", "spec.template.spec.containers[0].image", "Required value")]
    assert err.has_cause(CauseType.FIELD_VALUE_REQUIRED)


async def test_a_terminating_namespace_is_a_cause_and_a_too_new_version_a_retry_hint(
        address: str) -> None:
    err = await _raised(address, "namespace_terminating")
    assert err.has_cause(CauseType.NAMESPACE_TERMINATING)
    assert err.causes[0].field == "metadata.namespace"
    assert not (await _raised(address, "forbidden")).has_cause(CauseType.NAMESPACE_TERMINATING)

    err = await _raised(address, "resource_version_too_large")
    assert err.retry_after == 1.0
    assert err.has_cause(CauseType.RESOURCE_VERSION_TOO_LARGE)
    # Kubernetes' reason Timeout, on gRPC's UNAVAILABLE: reads are retried on that code.
    assert isinstance(err, errors.Timeout) and err.code == grpc.StatusCode.UNAVAILABLE
    assert (await _raised(address, "not_found")).retry_after is None


def test_without_a_status_the_class_comes_from_the_code() -> None:
    assert errors.error_class("", grpc.StatusCode.NOT_FOUND) is errors.NotFound
    assert errors.error_class("", grpc.StatusCode.DEADLINE_EXCEEDED) is errors.Timeout
    assert errors.error_class("", grpc.StatusCode.RESOURCE_EXHAUSTED) is \
        errors.RequestEntityTooLarge
    assert errors.error_class("", grpc.StatusCode.DATA_LOSS) is errors.ApiError
    # A reason the client does not know falls back to the code too.
    assert errors.error_class("SomethingNew", grpc.StatusCode.ABORTED) is errors.Conflict
    assert errors.error_class(StatusReason.TOO_MANY_REQUESTS,
                              grpc.StatusCode.RESOURCE_EXHAUSTED) is errors.TooManyRequests

