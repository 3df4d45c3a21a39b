"""Where the client finds its apiserver, and how it trusts it and proves itself: --server,
--context, $SKIFF_CONFIG, or ~/.skiff/config.

The file's format is known here only: clients load it, `skiff up` and `skiff join` save it.
It is a kubeconfig, the file kubectl reads (apiVersion v1, kind Config): clusters (the
server, `https://host:port` for TLS, and the cluster CA), users (a client certificate and
key, or a bearer token; PEM as base64 in the `-data` fields), contexts naming one of each,
and the current context. `Kubeconfig` is the file with all its contexts; `ClientConfig` is
what one context resolves to, all a client needs to connect. A file of the flat format of
earlier Skiff versions (`server`, `token` and the `-data` fields at the top) still loads, as
one context named "default"."""

from __future__ import annotations

import base64
import binascii
import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from skiff.client.transport import ClientCredentials

DEFAULT_SERVER = "127.0.0.1:6443"
HTTPS = "https://"
DEFAULT_CONTEXT = "default"  # what a flat (pre-kubeconfig) file's one context is called
# kubeconfig's names for the embedded PEM data
_PEM_FIELDS = {"ca": "certificate-authority-data", "cert": "client-certificate-data",
               "key": "client-key-data"}
_FLAT_KEYS = {"server", "token", *_PEM_FIELDS.values()}


class ConfigError(ValueError):
    """A client config that cannot be used, and what is wrong with it."""


def default_path() -> Path:
    return Path(os.environ.get("SKIFF_CONFIG") or Path.home() / ".skiff" / "config")


@dataclass(frozen=True)
class Context:
    """One row of `skiff config get-contexts`."""

    name: str
    cluster: str
    user: str
    namespace: str | None = None


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

    def save(self, path: Path, context: str = DEFAULT_CONTEXT) -> None:
        """Writes a kubeconfig holding this config alone, as `context`, replacing the file
        whole (a daemon's or an agent's config: nothing else belongs in it)."""
        Kubeconfig().add_context(context, self).save(path)

    @classmethod
    def load(cls, path: str | Path | None = None, server: str | None = None,
             context: str | None = None) -> ClientConfig:
        """What the config file's current context (or `context`) says, with an explicit
        `server` taking precedence. No file at the default path: the local defaults."""
        file = Path(path) if path else default_path()
        if not file.exists():
            if path:
                raise FileNotFoundError(f"client config {file} does not exist")
            if context:
                raise ConfigError(f'no context "{context}": there is no client config '
                                  f"{file}")
            return cls(server=server or DEFAULT_SERVER)
        resolved = Kubeconfig.load(file).resolve(context)
        if server and resolved.server.startswith(HTTPS) and not server.startswith(HTTPS) \
                and resolved.ca is not None:
            server = HTTPS + server  # --server host:port against a TLS cluster's config
        return cls(server=server or resolved.server, token=resolved.token, ca=resolved.ca,
                   cert=resolved.cert, key=resolved.key)


def _named(entries: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((e for e in entries if e.get("name") == name), None)


def _put(entries: list[dict[str, Any]], name: str, key: str, body: dict[str, Any]) -> None:
    """Adds or replaces the entry `name` of a kubeconfig list, where it was."""
    entry = {"name": name, key: body}
    for i, e in enumerate(entries):
        if e.get("name") == name:
            entries[i] = entry
            return
    entries.append(entry)


class Kubeconfig:
    """A kubeconfig file's content. What Skiff does not use (other fields of a cluster or a
    user, preferences, extensions) is kept as it was, so a user's file, shared with kubectl,
    survives Skiff adding its context to it."""

    def __init__(self, document: dict[str, Any] | None = None, source: str = "") -> None:
        self._doc: dict[str, Any] = copy.deepcopy(document) if document else {}
        self._doc["apiVersion"] = self._doc.get("apiVersion") or "v1"
        self._doc["kind"] = self._doc.get("kind") or "Config"
        self._source = source or "client config"
        self.flat = False  # read from the flat format of earlier Skiff versions
        for section in ("clusters", "users", "contexts"):
            entries = self._doc.get(section)
            if entries is None:
                self._doc[section] = []
            elif not isinstance(entries, list) or not all(
                    isinstance(e, dict) for e in entries):
                raise ConfigError(f"{self._source}: `{section}` is not a list of mappings")

    @classmethod
    def load(cls, path: Path) -> Kubeconfig:
        """The file at `path` (it must exist); a flat file reads as one context."""
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a kubeconfig (a mapping with clusters, "
                              "users and contexts)")
        if not loaded.keys() & {"clusters", "users", "contexts", "apiVersion", "kind"} \
                and loaded.keys() & _FLAT_KEYS:
            flat = cls(source=str(path)).add_context(
                DEFAULT_CONTEXT, _from_fields(loaded, loaded, str(path)))
            flat.flat = True
            return flat
        return cls(loaded, source=str(path))

    @classmethod
    def load_or_new(cls, path: Path) -> Kubeconfig:
        """The file at `path` to add a context to, or an empty one in its place when there
        is none, when what is there is no config at all, or when it is of the flat format:
        an earlier Skiff's config of the one cluster the new context is for."""
        try:
            loaded = cls.load(path)
        except (FileNotFoundError, ConfigError, yaml.YAMLError):
            return cls(source=str(path))
        return cls(source=str(path)) if loaded.flat else loaded

    @property
    def document(self) -> dict[str, Any]:
        """The kubeconfig as kubectl reads it (a copy)."""
        return copy.deepcopy(self._doc)

    def view(self, *, raw: bool = False) -> dict[str, Any]:
        """The file as `kubectl config view` shows it: keys and entries sorted, the keys'
        and certificates' data shown as DATA+OMITTED and tokens as REDACTED unless `raw`."""
        doc = self.document
        doc.setdefault("preferences", {})
        for section in ("clusters", "users", "contexts"):
            doc[section].sort(key=lambda e: str(e.get("name", "")))
        if not raw:
            for section, key in (("clusters", "cluster"), ("users", "user")):
                for entry in doc[section]:
                    body = entry.get(key)
                    for field in body if isinstance(body, dict) else {}:
                        if field.endswith("-data") and body[field]:
                            body[field] = "DATA+OMITTED"
                        elif field in ("token", "password") and body[field]:
                            body[field] = "REDACTED"
        return doc

    @property
    def current_context(self) -> str | None:
        return str(self._doc.get("current-context") or "") or None

    def contexts(self) -> list[Context]:
        found = []
        for entry in self._doc["contexts"]:
            body = entry.get("context") or {}
            namespace = body.get("namespace")
            found.append(Context(name=str(entry.get("name", "")),
                                 cluster=str(body.get("cluster", "")),
                                 user=str(body.get("user", "")),
                                 namespace=str(namespace) if namespace else None))
        return found

    def add_context(self, name: str, config: ClientConfig, *,
                    make_current: bool = True) -> Kubeconfig:
        """Adds (or replaces) the cluster, the user and the context called `name`, the
        context naming the two; the others stay."""
        cluster: dict[str, Any] = {"server": config.server}
        if config.ca:
            cluster[_PEM_FIELDS["ca"]] = base64.b64encode(config.ca).decode()
        user: dict[str, Any] = {}
        for attr in ("cert", "key"):
            value = getattr(config, attr)
            if value:
                user[_PEM_FIELDS[attr]] = base64.b64encode(value).decode()
        if config.token:
            user["token"] = config.token
        _put(self._doc["clusters"], name, "cluster", cluster)
        _put(self._doc["users"], name, "user", user)
        _put(self._doc["contexts"], name, "context", {"cluster": name, "user": name})
        if make_current or not self.current_context:
            self._doc["current-context"] = name
        return self

    def remove_context(self, name: str) -> bool:
        """Removes the context `name` and the cluster and user of that name (what
        add_context made); the current context is unset when it was this one. False when
        there was no such context."""
        if not any(c.name == name for c in self.contexts()):
            return False
        for section in ("clusters", "users", "contexts"):
            self._doc[section] = [e for e in self._doc[section] if e.get("name") != name]
        if self.current_context == name:
            self._doc.pop("current-context", None)
        return True

    def use(self, name: str) -> None:
        """Makes `name` the current context."""
        self._context(name)
        self._doc["current-context"] = name

    def resolve(self, name: str | None = None) -> ClientConfig:
        """What the context `name` (by default the current one) gives a client."""
        if name is None:
            name = self.current_context
            if name is None:
                if not self._doc["contexts"]:
                    return ClientConfig()
                raise ConfigError(f"{self._source} has no current-context: choose one with "
                                  f"`skiff config use-context NAME` or --context "
                                  f"({self._known()})")
        context = self._context(name)
        cluster = _named(self._doc["clusters"], context.cluster)
        if cluster is None:
            raise ConfigError(f'{self._source}: context "{name}" names the cluster '
                              f'"{context.cluster}", which is not in the file')
        user = _named(self._doc["users"], context.user) if context.user else None
        if context.user and user is None:
            raise ConfigError(f'{self._source}: context "{name}" names the user '
                              f'"{context.user}", which is not in the file')
        return _from_fields(cluster.get("cluster") or {},
                            (user or {}).get("user") or {}, self._source)

    def save(self, path: Path) -> None:
        """Writes the file to `path` at once (a reader never sees half of it), mode 0600:
        it holds the credentials."""
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(yaml.safe_dump(self._doc, default_flow_style=False, sort_keys=False))
        os.chmod(tmp, 0o600)  # in case tmp already existed with other bits
        os.replace(tmp, path)

    def _context(self, name: str) -> Context:
        for context in self.contexts():
            if context.name == name:
                return context
        raise ConfigError(f'no context "{name}" in {self._source} ({self._known()})')

    def _known(self) -> str:
        names = [c.name for c in self.contexts()]
        return "known: " + ", ".join(names) if names else "it has no contexts"


def _from_fields(cluster: dict[str, Any], user: dict[str, Any], source: str) -> ClientConfig:
    """A ClientConfig from a kubeconfig cluster's and user's fields (in the flat format,
    both are the file's top level)."""
    pems: dict[str, bytes | None] = {}
    for attr, name in _PEM_FIELDS.items():
        value = (cluster if attr == "ca" else user).get(name)
        try:
            pems[attr] = base64.b64decode(str(value), validate=True) if value else None
        except (binascii.Error, ValueError):
            raise ConfigError(f"{source}: {name} is not base64") from None
    token = user.get("token")
    return ClientConfig(server=str(cluster.get("server") or DEFAULT_SERVER),
                        token=str(token) if token else None, **pems)
