"""Where the client finds its apiserver, and how it trusts it and proves itself: --server,
$SKIFF_CONFIG, or ~/.skiff/config.

The file's format is known here only: clients load it, `skiff up` saves it. As a
kubeconfig's cluster and user, it holds the server (`https://host:port` for TLS), the
cluster CA and a client certificate and key (base64 PEM, kubeconfig's `-data` fields), or
a bearer token."""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from skiff.client.transport import ClientCredentials

DEFAULT_SERVER = "127.0.0.1:6443"
HTTPS = "https://"
# kubeconfig's names for the embedded PEM data
_PEM_FIELDS = {"ca": "certificate-authority-data", "cert": "client-certificate-data",
               "key": "client-key-data"}


class ConfigError(ValueError):
    """A client config that cannot be used, and what is wrong with it."""


def default_path() -> Path:
    return Path(os.environ.get("SKIFF_CONFIG") or Path.home() / ".skiff" / "config")


@dataclass(frozen=True)
class ClientConfig:
    server: str = DEFAULT_SERVER  # host:port (plaintext, loopback) or https://host:port
    token: str | None = None
    ca: bytes | None = None  # PEM
    cert: bytes | None = None  # PEM
    key: bytes | None = None  # PEM

    @property
    def address(self) -> str:
        """The gRPC target: the server without its scheme."""
        return self.server.removeprefix(HTTPS)

    def credentials(self) -> ClientCredentials:
        if self.server.startswith(HTTPS) and self.ca is None:
            raise ConfigError(f"the server {self.server} speaks TLS but the client config "
                              f"holds no {_PEM_FIELDS['ca']} to trust it by")
        try:
            return ClientCredentials(token=self.token, ca=self.ca, cert=self.cert,
                                     key=self.key)
        except ValueError as err:
            raise ConfigError(f"client config: {err}") from None

    def save(self, path: Path) -> None:
        """Writes the config to `path` at once (a reader never sees half of it), mode
        0600: it holds the credentials."""
        data: dict[str, str] = {"server": self.server}
        if self.token:
            data["token"] = self.token
        for attr, name in _PEM_FIELDS.items():
            value = getattr(self, attr)
            if value:
                data[name] = base64.b64encode(value).decode()
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(yaml.safe_dump(data, default_flow_style=False))
        os.chmod(tmp, 0o600)  # in case tmp already existed with other bits
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path | None = None, server: str | None = None) -> ClientConfig:
        """The config file's settings, with an explicit `server` taking precedence."""
        file = Path(path) if path else default_path()
        data: dict[str, object] = {}
        if file.exists():
            loaded = yaml.safe_load(file.read_text()) or {}
            if not isinstance(loaded, dict):
                raise ConfigError(f"{file}: expected a mapping with `server` and `token`")
            data = loaded
        elif path:
            raise FileNotFoundError(f"client config {file} does not exist")
        token = data.get("token")
        pems: dict[str, bytes | None] = {}
        for attr, name in _PEM_FIELDS.items():
            value = data.get(name)
            try:
                pems[attr] = base64.b64decode(str(value), validate=True) if value else None
            except (binascii.Error, ValueError):
                raise ConfigError(f"{file}: {name} is not base64") from None
        saved_server = str(data.get("server") or DEFAULT_SERVER)
        if server and saved_server.startswith(HTTPS) and not server.startswith(HTTPS) \
                and pems["ca"] is not None:
            server = HTTPS + server  # --server host:port against a TLS cluster's config
        return cls(server=server or saved_server, token=str(token) if token else None,
                   **pems)
