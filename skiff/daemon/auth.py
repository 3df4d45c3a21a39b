"""Who is calling: an authenticated caller identity for every call a Skiff server takes.

As Kubernetes' authentication: an Authenticator turns what a call presents (its invocation
metadata today; the TLS peer's certificate when a port serves TLS) into an Identity (user
and groups, Kubernetes' user.Info), or None when it presents nothing it recognises.
Authenticators chain (`Union`): bearer tokens today; client certificates and node
identities join the chain later.

`Authentication` is the server interceptor that runs the chain on every call before its
request is read, refuses a call nobody recognises with UNAUTHENTICATED (and a message
saying what to configure), and makes the identity available to the handler as `caller()`.
A server without an authenticator installs no interceptor; its callers are `ANONYMOUS`.
"""

from __future__ import annotations

import contextlib
import hmac
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import grpc

from skiff import pki
from skiff.api import status
from skiff.api.status import StatusReason
from skiff.daemon.refusal import refusing_handler

__all__ = [
    "ADMIN",
    "ANONYMOUS",
    "APISERVER",
    "CONTROLLER_MANAGER",
    "JOINED",
    "KUBELET_CLIENT",
    "NODES",
    "NODE_PREFIX",
    "SCHEDULER",
    "Authentication",
    "Authenticator",
    "CallCredentials",
    "CertificateAuthenticator",
    "Identity",
    "Refused",
    "TokenAuthenticator",
    "Union",
    "caller",
    "node_identity",
]

MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller: a user name and the groups it belongs to."""

    user: str
    groups: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.user} ({', '.join(self.groups)})" if self.groups else self.user


# The holder of the cluster's token: every permission (Kubernetes' system:masters).
ADMIN = Identity("admin", (MASTERS, AUTHENTICATED))
# The apiserver calling a kubelet (logs, exec) with the kubelet token.
APISERVER = Identity("system:kube-apiserver", (MASTERS, AUTHENTICATED))
# The apiserver calling a kubelet with its client certificate (kubeadm's name for it).
KUBELET_CLIENT = Identity("kube-apiserver-kubelet-client", (MASTERS, AUTHENTICATED))
# The control plane's clients, by certificate (Kubernetes' names).
SCHEDULER = Identity("system:kube-scheduler", (AUTHENTICATED,))
CONTROLLER_MANAGER = Identity("system:kube-controller-manager", (AUTHENTICATED,))
NODES = "system:nodes"
NODE_PREFIX = "system:node:"
# The organizational unit of the certificates a host gets by joining (skiff join): tracked
# by the apiserver, revoked with their Node, renewed by the agent. Not a group.
JOINED = "join"


def node_identity(node_name: str) -> Identity:
    """A kubelet's identity: the user system:node:NAME in the group system:nodes."""
    return Identity(NODE_PREFIX + node_name, (NODES, AUTHENTICATED))


# A caller of a server that authenticates nobody.
ANONYMOUS = Identity("system:anonymous", ("system:unauthenticated",))

_CALLER: ContextVar[Identity] = ContextVar("skiff_caller", default=ANONYMOUS)


def caller() -> Identity:
    """The identity of the call being handled (ANONYMOUS on a server without
    authentication, or outside a call)."""
    return _CALLER.get()


class CallCredentials:
    """What one call presents: its invocation metadata, and its transport's peer once the
    call's handler runs (`context`; without one, as when a call is authenticated from its
    metadata before its request is read, the transport tells nothing)."""

    def __init__(self, metadata: Iterable[tuple[str, str | bytes]],
                 context: grpc.aio.ServicerContext | None = None) -> None:
        self._raw = metadata
        self._metadata: Mapping[str, str] | None = None
        self._context = context

    @classmethod
    def of_call(cls, context: grpc.aio.ServicerContext) -> CallCredentials:
        return cls(context.invocation_metadata() or (), context)

    @property
    def metadata(self) -> Mapping[str, str]:
        """The call's text metadata (keys in lower case, as gRPC sends them); read once,
        when an authenticator first asks (a certificate's never does)."""
        if self._metadata is None:
            self._metadata = {k: v for k, v in self._raw if isinstance(v, str)}
        return self._metadata

    def bearer_token(self) -> str | None:
        value = self.metadata.get("authorization", "")
        scheme, _, token = value.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def auth_context(self) -> Mapping[str, Iterable[bytes]]:
        """The transport's authenticated properties (a TLS peer's certificate names);
        empty on an insecure port, or before the call's handler runs."""
        if self._context is None:
            return {}
        found: Mapping[str, Iterable[bytes]] = self._context.auth_context() or {}
        return found


class Refused(Exception):
    """An authenticator that recognises what a call presents and refuses it, saying why
    (an expired join token): the caller gets this message instead of the generic one."""


class Authenticator(Protocol):
    def authenticate(self, call: CallCredentials) -> Identity | None:
        """The caller's identity, or None when this authenticator does not recognise the
        call (another one in the chain may). May raise Refused."""
        ...


class TokenAuthenticator:
    """Bearer tokens, each standing for one identity (Kubernetes' static token file).
    Every known token is compared in constant time, so timing tells nothing of them."""

    def __init__(self, tokens: Mapping[str, Identity]) -> None:
        if any(not token for token in tokens):
            raise ValueError("a bearer token must not be empty")
        self._tokens = [(token.encode(), identity) for token, identity in tokens.items()]

    @classmethod
    def single(cls, token: str, identity: Identity = ADMIN) -> TokenAuthenticator:
        return cls({token: identity})

    def authenticate(self, call: CallCredentials) -> Identity | None:
        presented = call.bearer_token()
        if presented is None:
            return None
        given = presented.encode()
        found = None
        for token, identity in self._tokens:
            if hmac.compare_digest(given, token) and found is None:
                found = identity
        return found


class CertificateAuthenticator:
    """TLS client certificates, which the handshake has already checked against the
    server's client CA: the common name is the user, each organization a group
    (Kubernetes' x509 authenticator). `accept` may refuse a certificate the CA signed
    (one revoked, or of a node deleted since), by returning False or raising Refused to
    say why."""

    def __init__(self, accept: Callable[[pki.Subject], bool] | None = None) -> None:
        self._accept = accept
        # Parsed once per certificate: every call on a connection presents the same one.
        self._known: dict[bytes, tuple[pki.Subject, Identity | None]] = {}

    def authenticate(self, call: CallCredentials) -> Identity | None:
        pems = call.auth_context().get("x509_pem_cert")
        if not pems:
            return None
        pem = next(iter(pems))
        known = self._known.get(pem)
        if known is None:
            if len(self._known) > 10_000:
                self._known.clear()
            subject = pki.subject_of(pem)
            groups = tuple(dict.fromkeys((*subject.organizations, AUTHENTICATED)))
            known = self._known[pem] = (
                subject, Identity(subject.common_name, groups) if subject.common_name else None)
        subject, identity = known
        if identity is None or (self._accept and not self._accept(subject)):
            return None
        return identity


class Union:
    """The first identity any authenticator of the chain finds."""

    def __init__(self, authenticators: Sequence[Authenticator]) -> None:
        self._chain = list(authenticators)

    def authenticate(self, call: CallCredentials) -> Identity | None:
        for authenticator in self._chain:
            identity = authenticator.authenticate(call)
            if identity is not None:
                return identity
        return None


if TYPE_CHECKING:
    _Interceptor = object  # grpc ships no type information
else:
    _Interceptor = grpc.aio.ServerInterceptor

Behavior = Callable[..., Any]


class Authentication(_Interceptor):
    """Authenticates every call with `authenticator` before its request is read; the
    handler reads the identity with `caller()`.

    The call's metadata (a bearer token) is known before its request arrives: a call it
    does not identify is refused there, with UNAUTHENTICATED `missing or wrong token:
    <hint>` (reason Unauthorized) and its request never read (skiff.daemon.refusal), so an
    unauthenticated caller cannot make the server hold large bodies. A transport's identity
    (a TLS client certificate) is only known to the call's handler: with
    `transport_identities` (a port that serves TLS) a call its metadata did not identify is
    authenticated again there, from CallCredentials.of_call(context), before its request
    is decoded."""

    def __init__(self, authenticator: Authenticator, hint: str, *,
                 transport_identities: bool = False) -> None:
        self.authenticator = authenticator
        self.transport_identities = transport_identities
        what = "client certificate or token" if transport_identities else "token"
        self._refusal = status.failure(StatusReason.UNAUTHORIZED,
                                       f"missing or wrong {what}: {hint}")

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]],
                                details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        metadata = getattr(details, "invocation_metadata", None) or ()
        try:
            identity = self.authenticator.authenticate(CallCredentials(metadata))
        except Refused as why:
            return refusing_handler(handler, grpc.StatusCode.UNAUTHENTICATED,
                                    status.failure(StatusReason.UNAUTHORIZED, str(why)))
        if identity is None and not self.transport_identities:
            return refusing_handler(handler, grpc.StatusCode.UNAUTHENTICATED, self._refusal)
        return self._wrap(handler, identity)

    def _wrap(self, handler: Any, identity: Identity | None) -> Any:
        """`handler` with the caller's identity set around its behavior (found in the
        handler, before the request is decoded, when `identity` is None)."""
        if handler.request_streaming and handler.response_streaming:
            return handler._replace(
                stream_stream=self._streaming(handler.stream_stream, identity))
        if handler.request_streaming:
            return handler._replace(
                stream_unary=self._unary(handler.stream_unary, identity, None))
        decode = handler.request_deserializer if identity is None else None
        if handler.response_streaming:
            return handler._replace(
                request_deserializer=None if decode else handler.request_deserializer,
                unary_stream=self._streaming(handler.unary_stream, identity, decode))
        return handler._replace(
            request_deserializer=None if decode else handler.request_deserializer,
            unary_unary=self._unary(handler.unary_unary, identity, decode))

    async def _identify(self, known: Identity | None,
                        context: grpc.aio.ServicerContext) -> Identity:
        if known is not None:
            return known
        refusal = self._refusal
        try:
            identity = self.authenticator.authenticate(CallCredentials.of_call(context))
        except Refused as why:
            identity, refusal = None, status.failure(StatusReason.UNAUTHORIZED, str(why))
        if identity is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, refusal.message,
                                trailing_metadata=((status.DETAILS_KEY, status.encode(
                                    refusal, grpc.StatusCode.UNAUTHENTICATED.value[0])),))
            raise AssertionError("unreachable")  # context.abort raises
        return identity

    def _unary(self, behavior: Behavior, identity: Identity | None,
               decode: Callable[[bytes], Any] | None) -> Behavior:
        async def authenticated(request: Any, context: grpc.aio.ServicerContext) -> Any:
            token = _CALLER.set(await self._identify(identity, context))
            try:
                result = behavior(decode(request) if decode else request, context)
                return await result if inspect.isawaitable(result) else result
            finally:
                _CALLER.reset(token)
        return authenticated

    def _streaming(self, behavior: Behavior, identity: Identity | None,
                   decode: Callable[[bytes], Any] | None = None) -> Behavior:
        async def authenticated(request: Any, context: grpc.aio.ServicerContext
                                ) -> AsyncIterator[Any]:
            token = _CALLER.set(await self._identify(identity, context))
            try:
                responses = behavior(decode(request) if decode else request, context)
                if inspect.isasyncgen(responses):
                    async for response in responses:
                        yield response
                elif inspect.isawaitable(responses):  # a handler that writes to context
                    await responses
            finally:
                # An abandoned stream may be closed from another context: nothing to undo.
                with contextlib.suppress(ValueError):
                    _CALLER.reset(token)
        return authenticated
