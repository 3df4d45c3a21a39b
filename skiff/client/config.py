"""Where the client finds its apiserver: --server, $SKIFF_CONFIG, or ~/.skiff/config."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from skiff.client.transport import ClientCredentials

DEFAULT_SERVER = "127.0.0.1:6443"


def default_path() -> Path:
    return Path(os.environ.get("SKIFF_CONFIG") or Path.home() / ".skiff" / "config")


@dataclass(frozen=True)
class ClientConfig:
    server: str = DEFAULT_SERVER
    token: str | None = None

    def credentials(self) -> ClientCredentials:
        return ClientCredentials(token=self.token)

    @classmethod
    def load(cls, path: str | Path | None = None, server: str | None = None) -> ClientConfig:
        """The config file's settings, with an explicit `server` taking precedence."""
        file = Path(path) if path else default_path()
        data: dict[str, object] = {}
        if file.exists():
            loaded = yaml.safe_load(file.read_text()) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{file}: expected a mapping with `server` and `token`")
            data = loaded
        elif path:
            raise FileNotFoundError(f"client config {file} does not exist")
        token = data.get("token")
        return cls(server=server or str(data.get("server") or DEFAULT_SERVER),
                   token=str(token) if token else None)
