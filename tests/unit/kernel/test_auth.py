"""The kernel's transport and identity seam: token authentication, the caller's identity
reaching request handlers, and refusals of every call shape."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest

from skiff.api.status import StatusReason
from skiff.client import errors
from skiff.client.transport import ClientCredentials, open_channel
from skiff.daemon import auth, serving
from skiff.daemon.auth import ADMIN, ANONYMOUS, Identity, TokenAuthenticator, Union, caller

BOB = Identity("bob", ("developers",))


def presenting(metadata: dict[str, str]) -> auth.CallCredentials:
    return auth.CallCredentials(tuple(metadata.items()))


def test_the_cluster_token_is_the_admin_and_others_are_nobody() -> None:
    tokens = TokenAuthenticator.single("s3cret")
    assert tokens.authenticate(presenting({"authorization": "Bearer s3cret"})) == ADMIN
    assert ADMIN.user == "admin" and "system:masters" in ADMIN.groups
    assert tokens.authenticate(presenting({"authorization": "Bearer s3cret2"})) is None
    assert tokens.authenticate(presenting({"authorization": "Bearer "})) is None
    assert tokens.authenticate(presenting({"authorization": "Basic s3cret"})) is None
    assert tokens.authenticate(presenting({})) is None
    with pytest.raises(ValueError):
        TokenAuthenticator.single("")


def test_tokens_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = auth.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    tokens = TokenAuthenticator({"one": ADMIN, "two": BOB})
    assert tokens.authenticate(presenting({"authorization": "Bearer one"})) == ADMIN
    # Every known token is compared, also after a match: timing tells nothing.
    assert compared == [(b"one", b"one"), (b"one", b"two")]
    compared.clear()
    assert tokens.authenticate(presenting({"authorization": "Bearer three"})) is None
    assert compared == [(b"three", b"one"), (b"three", b"two")]


def test_a_chain_answers_with_the_first_authenticator_that_knows_the_caller() -> None:
    chain = Union([TokenAuthenticator.single("a", ADMIN), TokenAuthenticator.single("b", BOB)])
    assert chain.authenticate(presenting({"authorization": "Bearer b"})) == BOB
    assert chain.authenticate(presenting({"authorization": "Bearer c"})) is None


def test_the_client_credentials_carry_the_token() -> None:
    assert ClientCredentials(token="t").metadata == (("authorization", "Bearer t"),)
    assert ClientCredentials().metadata == ()


# ---- through a real server ----

SERVICE = "test.Who"


def _who_handlers(decoded: list[bytes]) -> grpc.GenericRpcHandler:
    def decode(raw: bytes) -> bytes:
        decoded.append(raw)
        return raw

    async def unary(request: bytes, context: Any) -> bytes:
        return f"{caller().user}:{request.decode()}".encode()

    async def unary_stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
        for group in caller().groups:
            yield group.encode()

    async def stream_stream(requests: AsyncIterator[bytes], context: Any
                            ) -> AsyncIterator[bytes]:
        async for request in requests:
            yield f"{caller().user}:{request.decode()}".encode()

    async def stream_unary(requests: AsyncIterator[bytes], context: Any) -> bytes:
        return f"{caller().user}:{len([r async for r in requests])}".encode()

    return grpc.method_handlers_generic_handler(SERVICE, {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, request_deserializer=decode),
        "UnaryStream": grpc.unary_stream_rpc_method_handler(unary_stream,
                                                            request_deserializer=decode),
        "StreamStream": grpc.stream_stream_rpc_method_handler(stream_stream),
        "StreamUnary": grpc.stream_unary_rpc_method_handler(stream_unary),
    })


@pytest.fixture
def decoded() -> list[bytes]:
    return []


MAX_REQUEST = 64 * 1024


@pytest.fixture(params=["metadata", "transport"])
async def address(request: pytest.FixtureRequest, decoded: list[bytes]) -> AsyncIterator[str]:
    """A server authenticating from the call's metadata before its request is read, or
    (as a port serving TLS will) again in the handler, from CallCredentials.of_call."""
    authentication = auth.Authentication(TokenAuthenticator({"s3cret": ADMIN, "b": BOB}),
                                         "set the token",
                                         transport_identities=request.param == "transport")
    server = grpc.aio.server(interceptors=[authentication],
                             options=[("grpc.max_receive_message_length", MAX_REQUEST)])
    server.add_generic_rpc_handlers([_who_handlers(decoded)])
    port = serving.add_port(server, "127.0.0.1:0", serving.INSECURE)
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=0)


async def _calls(address: str, token: str | None, *, stream: tuple[bytes, ...] = (b"x", b"y")
                 ) -> dict[str, object]:
    """Every call shape's answer (bytes or lists of bytes), or its status code; the
    client-streaming calls send `stream`."""
    credentials = ClientCredentials(token=token)
    channel = open_channel(address, credentials)
    md = credentials.metadata

    def requests() -> Iterator[bytes]:
        yield from stream

    results: dict[str, object] = {}
    try:
        for name, call in {
            "Unary": lambda: channel.unary_unary(f"/{SERVICE}/Unary")(b"hi", metadata=md),
            "UnaryStream": lambda: _collect(channel.unary_stream(
                f"/{SERVICE}/UnaryStream")(b"hi", metadata=md)),
            "StreamStream": lambda: _collect(channel.stream_stream(
                f"/{SERVICE}/StreamStream")(requests(), metadata=md)),
            "StreamUnary": lambda: channel.stream_unary(f"/{SERVICE}/StreamUnary")(
                requests(), metadata=md),
        }.items():
            try:
                results[name] = await call()
            except grpc.aio.AioRpcError as err:
                results[name] = (err.code(), err.details())
    finally:
        await channel.close()
    return results


async def _collect(call: Any) -> list[bytes]:
    return [item async for item in call]


async def test_the_identity_reaches_the_handler_of_every_call_shape(
        address: str, decoded: list[bytes]) -> None:
    assert await _calls(address, "s3cret") == {
        "Unary": b"admin:hi",
        "UnaryStream": [g.encode() for g in ADMIN.groups],
        "StreamStream": [b"admin:x", b"admin:y"],
        "StreamUnary": b"admin:2",
    }
    assert (await _calls(address, "b"))["Unary"] == b"bob:hi"
    assert decoded == [b"hi"] * 4  # two unary requests per round, decoded once each


@pytest.mark.parametrize("token", [None, "wrong"])
async def test_a_call_without_the_right_token_is_refused_before_its_request_is_decoded(
        address: str, decoded: list[bytes], token: str | None,
        request: pytest.FixtureRequest) -> None:
    # A server that also takes certificates asks for either.
    what = "client certificate or token" if "transport" in request.node.name else "token"
    refused = (grpc.StatusCode.UNAUTHENTICATED, f"missing or wrong {what}: set the token")
    # No request stream: a client still writing when the refusal arrives reads INTERNAL
    # now and then (a race in gRPC's core, with any server-side refusal).
    assert await _calls(address, token, stream=()) == {
        "Unary": refused, "UnaryStream": refused, "StreamStream": refused,
        "StreamUnary": refused}
    assert decoded == []


async def test_a_server_without_authentication_serves_anonymous_callers() -> None:
    server = serving.new_server()
    server.add_generic_rpc_handlers([_who_handlers([])])
    port = serving.add_port(server, "127.0.0.1:0")
    await server.start()
    try:
        results = await _calls(f"127.0.0.1:{port}", None)
        assert results["Unary"] == f"{ANONYMOUS.user}:hi".encode()
    finally:
        await server.stop(grace=0)
    assert caller() == ANONYMOUS  # outside a call


async def test_a_refusal_says_unauthorized_in_its_status(address: str) -> None:
    channel = open_channel(address)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await channel.unary_unary(f"/{SERVICE}/Unary")(b"hi")
    finally:
        await channel.close()
    err = errors.from_rpc_error(refused.value)
    assert isinstance(err, errors.Unauthenticated)
    assert err.reason == StatusReason.UNAUTHORIZED
    assert err.status is not None and err.status.code == 401


@pytest.mark.parametrize("method", ["Unary", "UnaryStream"])
async def test_an_unauthenticated_request_is_refused_without_reading_its_body(
        method: str) -> None:
    """A body over the server's size limit: had the server read it, the caller would
    read RESOURCE_EXHAUSTED; refused from its metadata, it reads UNAUTHENTICATED."""
    server = serving.new_server(authenticator=TokenAuthenticator.single("s3cret"),
                                hint="set the token",
                                options=[("grpc.max_receive_message_length", MAX_REQUEST)])
    server.add_generic_rpc_handlers([_who_handlers([])])
    port = serving.add_port(server, "127.0.0.1:0")
    await server.start()
    channel = open_channel(f"127.0.0.1:{port}")
    try:
        call = (channel.unary_unary if method == "Unary" else channel.unary_stream)(
            f"/{SERVICE}/{method}")(b"x" * (4 * MAX_REQUEST), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await (call if method == "Unary" else _collect(call))
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await channel.close()
        await server.stop(grace=0)
