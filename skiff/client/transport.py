"""The one way a Skiff component opens a gRPC channel to a server: the apiserver, a
kubelet, or (for the apiserver's storage) etcd.

The caller passes its credentials: with a CA, the channel is TLS and the server must
prove itself by a certificate that CA signed (for the name or address dialled, or for
`server_name`); with a certificate and key, the client is known by them. Calls carry
`credentials.metadata` (a bearer token), over TLS or, on loopback, plaintext.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc

__all__ = ["INSECURE", "ChannelOptions", "ClientCredentials", "Metadata", "is_loopback",
           "open_channel"]

ChannelOptions = Sequence[tuple[str, Any]]
Metadata = tuple[tuple[str, str], ...]

# A restarted server is reachable again within a second, not after gRPC's long backoff.
RECONNECT_OPTIONS: ChannelOptions = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """How a client proves who it is and, with TLS, checks who it talks to."""

    token: str | None = None  # sent as `authorization: Bearer <token>` on every call
    ca: bytes | None = None  # PEM: TLS, trusting only servers this CA signed
    cert: bytes | None = None  # PEM: the client certificate (needs `ca`)
    key: bytes | None = None  # PEM: its private key
    server_name: str | None = None  # the name the server's certificate must carry,
    # when it is not the host dialled (a kubelet dialled by an address it does not list)

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ValueError("a client certificate needs its key, and a key its certificate")
        if self.cert is not None and self.ca is None:
            raise ValueError("a client certificate is only sent over TLS: give the CA too")

    @property
    def tls(self) -> bool:
        return self.ca is not None

    @property
    def metadata(self) -> Metadata:
        """The metadata every call on a channel of these credentials carries."""
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()


INSECURE = ClientCredentials()


def is_loopback(address: str) -> bool:
    """Whether host:port (or [v6]:port) names a loopback address; names other than
    `localhost` count as beyond loopback."""
    host = address.rpartition(":")[0].strip("[]") if ":" in address else address
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def open_channel(address: str, credentials: ClientCredentials = INSECURE, *,
                 options: ChannelOptions = RECONNECT_OPTIONS) -> grpc.aio.Channel:
    """A channel to `address` (host:port, or any gRPC target such as `ipv4:a:1,b:2`)."""
    channel: grpc.aio.Channel
    if not credentials.tls:
        channel = grpc.aio.insecure_channel(address, options=list(options))
        return channel
    tls = grpc.ssl_channel_credentials(root_certificates=credentials.ca,
                                       private_key=credentials.key,
                                       certificate_chain=credentials.cert)
    extra = [("grpc.ssl_target_name_override", credentials.server_name)] \
        if credentials.server_name else []
    channel = grpc.aio.secure_channel(address, tls, options=[*options, *extra])
    return channel
