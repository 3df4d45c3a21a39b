"""The one way a Skiff daemon serves gRPC: the apiserver's API and the kubelet's server.

`serve` builds a server whose every call is authenticated (when an authenticator is given,
see skiff.daemon.auth), registers the daemon's handlers, opens its port with the given
ServerCredentials and starts it. Ports are plaintext today; TLS (a certificate and key,
and a CA to check client certificates by) plugs in here, in `add_port`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from skiff.daemon.auth import Authentication, Authenticator

__all__ = ["INSECURE", "ServerCredentials", "add_port", "new_server", "serve"]

ServerOptions = Sequence[tuple[str, Any]]


@dataclass(frozen=True, slots=True)
class ServerCredentials:
    """How a port is secured: plaintext today."""


INSECURE = ServerCredentials()


def new_server(*, authenticator: Authenticator | None = None, hint: str = "",
               options: ServerOptions = (), interceptors: Sequence[Any] = ()
               ) -> grpc.aio.Server:
    """An aio server; with `authenticator`, every call is authenticated (refusals say
    `missing or wrong token: <hint>`) before the `interceptors` (grpc.aio.ServerInterceptor)
    see it. Two servers on one port would split the calls between them, so SO_REUSEPORT is
    off unless `options` turn it on."""
    chain = [Authentication(authenticator, hint)] if authenticator else []
    chain += interceptors
    merged = {"grpc.so_reuseport": 0, **dict(options)}
    server: grpc.aio.Server = grpc.aio.server(interceptors=chain,
                                              options=list(merged.items()))
    return server


def add_port(server: grpc.aio.Server, address: str,
             credentials: ServerCredentials = INSECURE) -> int:
    """Listens on `address` (host:port); returns the port (the one picked, for port 0).
    Raises OSError when the address cannot be bound."""
    try:
        port: int = server.add_insecure_port(address)
    except RuntimeError as err:
        raise OSError(f"cannot listen on {address} (is the port taken?): {err}") from None
    return port


async def serve(address: str, register: Callable[[grpc.aio.Server], None], *,
                credentials: ServerCredentials = INSECURE,
                authenticator: Authenticator | None = None, hint: str = "",
                options: ServerOptions = (), interceptors: Sequence[Any] = ()
                ) -> grpc.aio.Server:
    """A started server on `address` with the handlers `register` adds; stop it with
    `.stop(grace)`."""
    server = new_server(authenticator=authenticator, hint=hint, options=options,
                        interceptors=interceptors)
    register(server)
    add_port(server, address, credentials)
    await server.start()
    return server
