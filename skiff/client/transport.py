"""The one way a Skiff component opens a gRPC channel to a server: the apiserver, a
kubelet, or (for the apiserver's storage) etcd.

The caller passes its credentials; calls on the channel carry `credentials.metadata`
(the bearer token). Today every channel is plaintext; TLS (a CA to trust the server by,
and a client certificate to be known by) plugs in here, in `open_channel`, so that no
caller changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc

__all__ = ["INSECURE", "ChannelOptions", "ClientCredentials", "Metadata", "open_channel"]

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
    """How a client proves who it is (and, with TLS, checks who it talks to)."""

    token: str | None = None  # sent as `authorization: Bearer <token>` on every call

    @property
    def metadata(self) -> Metadata:
        """The metadata every call on a channel of these credentials carries."""
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()


INSECURE = ClientCredentials()


def open_channel(address: str, credentials: ClientCredentials = INSECURE, *,
                 options: ChannelOptions = RECONNECT_OPTIONS) -> grpc.aio.Channel:
    """A channel to `address` (host:port, or any gRPC target such as `ipv4:a:1,b:2`)."""
    channel: grpc.aio.Channel = grpc.aio.insecure_channel(address, options=list(options))
    return channel
