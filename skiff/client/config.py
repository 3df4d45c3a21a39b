"""Where the client finds its apiserver: --server, $SKIFF_CONFIG, or ~/.skiff/config.

The file's format is known here only: clients load it, `skiff up` saves it."""

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

    def save(self, path: Path) -> None:
        """Writes the config to `path` at once (a reader never sees half of it), mode
        0600: it holds the credentials."""
        data: dict[str, str] = {"server": self.server}
        if self.token:
            data["token"] = self.token
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
                raise ValueError(f"{file}: expected a mapping with `server` and `token`")
            data = loaded
        elif path:
            raise FileNotFoundError(f"client config {file} does not exist")
        token = data.get("token")
        return cls(server=server or str(data.get("server") or DEFAULT_SERVER),
                   token=str(token) if token else None)
