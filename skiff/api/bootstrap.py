"""Join tokens: kubeadm's bootstrap tokens, stored so that the cluster never holds one.

A token is `ID.SECRET` (6 and 16 characters of [a-z0-9], kubeadm's format). It lives as a
Secret `kube-system/bootstrap-token-ID` of type `bootstrap.kubernetes.io/token`, as in
Kubernetes, but with the SHA-256 of its secret instead of the secret (`token-secret-sha256`;
Kubernetes keeps `token-secret` in clear): whoever reads the Secret cannot join with it.
`expiration` is RFC 3339; `usage-bootstrap-join` scopes it to joining a host.

Where the cluster is joined is published in the ConfigMap `kube-public/cluster-info`
(kubeadm's): the apiserver's address for certificates and its token port's.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

from skiff.api.v1 import core_pb2

__all__ = [
    "CLUSTER_INFO",
    "JOIN_SERVER_KEY",
    "SECRET_TYPE",
    "SERVER_KEY",
    "TOKEN_NAMESPACE",
    "USAGES",
    "JoinToken",
    "TokenError",
    "secret_name",
    "token_secret",
    "verify",
]

TOKEN_NAMESPACE = "kube-system"
SECRET_TYPE = "bootstrap.kubernetes.io/token"
SECRET_PREFIX = "bootstrap-token-"
USAGES = ("join",)  # what a token may be used for: `usage-bootstrap-<usage>: "true"`
BOOTSTRAP_USER_PREFIX = "system:bootstrap:"
BOOTSTRAPPERS = "system:bootstrappers"
CLUSTER_INFO = ("kube-public", "cluster-info")
SERVER_KEY = "server"  # https://HOST:PORT, for callers with certificates
JOIN_SERVER_KEY = "join-server"  # https://HOST:TOKEN_PORT, for join tokens

_ALPHABET = string.ascii_lowercase + string.digits
_TOKEN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")


class TokenError(ValueError):
    """A token that is not one, or that may not be used."""


@dataclass(frozen=True)
class JoinToken:
    id: str
    secret: str

    def __str__(self) -> str:
        return f"{self.id}.{self.secret}"

    @classmethod
    def generate(cls) -> JoinToken:
        return cls("".join(secrets.choice(_ALPHABET) for _ in range(6)),
                   "".join(secrets.choice(_ALPHABET) for _ in range(16)))

    @classmethod
    def parse(cls, text: str) -> JoinToken:
        match = _TOKEN.match(text.strip())
        if match is None:
            raise TokenError("a join token looks like abcdef.0123456789abcdef (6 and 16 "
                             "characters of a-z and 0-9, joined by a dot)")
        return cls(match.group(1), match.group(2))


def secret_name(token_id: str) -> str:
    return SECRET_PREFIX + token_id


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_secret(token: JoinToken, *, ttl: datetime.timedelta | None,
                 usages: tuple[str, ...] = USAGES, description: str = "",
                 now: datetime.datetime | None = None) -> core_pb2.Secret:
    """The Secret that stands for `token` (without its secret); no expiry with ttl None."""
    unknown = [u for u in usages if u not in USAGES]
    if unknown or not usages:
        raise TokenError(f"unknown usage {', '.join(unknown) or '(none)'}: a token may be "
                         f"used for {', '.join(USAGES)}")
    s = core_pb2.Secret()
    s.metadata.name, s.metadata.namespace = secret_name(token.id), TOKEN_NAMESPACE
    s.type = SECRET_TYPE
    s.data["token-id"] = token.id.encode()
    s.data["token-secret-sha256"] = _digest(token.secret).encode()
    for usage in usages:
        s.data[f"usage-bootstrap-{usage}"] = b"true"
    if description:
        s.data["description"] = description.encode()
    if ttl is not None:
        moment = (now or datetime.datetime.now(datetime.UTC)) + ttl
        s.data["expiration"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    return s


def expiration(secret: core_pb2.Secret) -> datetime.datetime | None:
    raw = secret.data.get("expiration")
    if not raw:
        return None
    try:
        return datetime.datetime.fromisoformat(raw.decode().replace("Z", "+00:00"))
    except ValueError:
        return datetime.datetime.min.replace(tzinfo=datetime.UTC)  # unreadable: expired


def usages(secret: core_pb2.Secret) -> list[str]:
    return [k.removeprefix("usage-bootstrap-") for k, v in sorted(secret.data.items())
            if k.startswith("usage-bootstrap-") and v == b"true"]


def verify(secret: core_pb2.Secret | None, token: JoinToken, usage: str,
           now: datetime.datetime | None = None) -> None:
    """Raises TokenError unless `secret` stands for `token`, has not expired and allows
    `usage`. The secret is compared in constant time."""
    if secret is None or secret.type != SECRET_TYPE:
        raise TokenError(f"no join token {token.id} (it was never made, or was deleted)")
    stored = secret.data.get("token-secret-sha256", b"")
    if not hmac.compare_digest(stored, _digest(token.secret).encode()):
        raise TokenError(f"join token {token.id}: wrong secret")
    expires = expiration(secret)
    if expires is not None and expires <= (now or datetime.datetime.now(datetime.UTC)):
        raise TokenError(f"join token {token.id} expired at "
                         f"{expires.strftime('%Y-%m-%dT%H:%M:%SZ')}: make another with "
                         "skiff token create")
    if usage not in usages(secret):
        raise TokenError(f"join token {token.id} may not be used to {usage}")
