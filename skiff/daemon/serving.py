"""The one way a Skiff daemon serves gRPC: the apiserver's API and the kubelet's server.

`serve` builds a server whose every call is authenticated (when an authenticator is given,
see skiff.daemon.auth), registers the daemon's handlers, opens its port with the given
ServerCredentials and starts it. A port beyond loopback must be TLS: plaintext is refused
there before anything listens. With a client CA, client certificates that CA signed are
identities (skiff.daemon.auth.CertificateAuthenticator).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from skiff.client.transport import is_loopback
from skiff.daemon.auth import Authentication, Authenticator

__all__ = ["INSECURE", "PlaintextRefused", "ServerCredentials", "add_port", "is_loopback",
           "new_server", "serve"]

ServerOptions = Sequence[tuple[str, Any]]


class PlaintextRefused(ValueError):
    """A port beyond loopback asked to serve without TLS."""


@dataclass(frozen=True, slots=True)
class ServerCredentials:
    """How a port is secured: plaintext (loopback only), or TLS with the server's
    certificate chain and key, and the CA that client certificates are checked against
    (asked for and checked when presented; required with `require_client_cert`)."""

    cert_chain: bytes | None = None  # PEM: the server's certificate, then its CA's
    key: bytes | None = None
    client_ca: bytes | None = None
    require_client_cert: bool = False

    def __post_init__(self) -> None:
        if (self.cert_chain is None) != (self.key is None):
            raise ValueError("a serving certificate needs its key, and a key its certificate")
        if self.client_ca is not None and self.cert_chain is None:
            raise ValueError("client certificates are only checked over TLS: give the "
                             "server's certificate and key too")

    @property
    def tls(self) -> bool:
        return self.cert_chain is not None

    @classmethod
    def from_files(cls, cert_file: str | None, key_file: str | None,
                   client_ca_file: str | None = None, *,
                   require_client_cert: bool = False) -> ServerCredentials:
        """From a daemon's --tls-cert-file, --tls-private-key-file and --client-ca-file
        (none given: plaintext; no client CA: no client certificate asked for)."""
        def read(path: str | None) -> bytes | None:
            return Path(path).read_bytes() if path else None
        return cls(read(cert_file), read(key_file), read(client_ca_file),
                   require_client_cert=require_client_cert and client_ca_file is not None)


INSECURE = ServerCredentials()


def new_server(*, authenticator: Authenticator | None = None, hint: str = "",
               options: ServerOptions = (), interceptors: Sequence[Any] = (),
               transport_identities: bool = False) -> grpc.aio.Server:
    """An aio server; with `authenticator`, every call is authenticated (refusals say
    `<hint>`) before the `interceptors` (grpc.aio.ServerInterceptor) see it, from its
    metadata or, with `transport_identities`, its TLS client certificate. Two servers on
    one port would split the calls between them, so SO_REUSEPORT is off unless `options`
    turn it on."""
    chain = [Authentication(authenticator, hint, transport_identities=transport_identities)
             ] if authenticator else []
    chain += interceptors
    merged = {"grpc.so_reuseport": 0, **dict(options)}
    server: grpc.aio.Server = grpc.aio.server(interceptors=chain,
                                              options=list(merged.items()))
    return server


def add_port(server: grpc.aio.Server, address: str,
             credentials: ServerCredentials = INSECURE) -> int:
    """Listens on `address` (host:port); returns the port (the one picked, for port 0).
    Raises OSError when the address cannot be bound, PlaintextRefused for plaintext beyond
    loopback."""
    if not credentials.tls and not is_loopback(address):
        raise PlaintextRefused(
            f"refusing to serve plaintext on {address}, beyond loopback: give a serving "
            "certificate and key (--tls-cert-file, --tls-private-key-file), or bind to "
            "127.0.0.1")
    try:
        port: int
        if credentials.tls:
            assert credentials.cert_chain is not None and credentials.key is not None
            tls = grpc.ssl_server_credentials(
                [(credentials.key, credentials.cert_chain)],
                root_certificates=credentials.client_ca,
                require_client_auth=credentials.require_client_cert)
            port = server.add_secure_port(address, tls)
        else:
            port = server.add_insecure_port(address)
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
                        interceptors=interceptors,
                        transport_identities=credentials.client_ca is not None)
    register(server)
    add_port(server, address, credentials)
    await server.start()
    return server
