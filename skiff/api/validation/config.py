"""Secret and ConfigMap."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from google.protobuf.message import Message

from skiff.api.v1 import core_pb2
from skiff.api.validation.errors import Errors, forbidden, immutable, invalid, required, too_long
from skiff.api.validation.formats import byte_len, config_map_key

MAX_SECRET_SIZE = 1024 * 1024  # Secrets and ConfigMaps: 1 MiB of data


_SECRET_REQUIRED_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}
_SECRET_JSON_KEYS = {"kubernetes.io/dockercfg": ".dockercfg",
                     "kubernetes.io/dockerconfigjson": ".dockerconfigjson"}


def validate_secret(obj: Message) -> Errors:
    assert isinstance(obj, core_pb2.Secret)
    errs: Errors = []
    size = 0
    for key, value in sorted(obj.data.items()):
        errs += [invalid(f"data[{key}]", key, msg) for msg in config_map_key(key)]
        size += len(value)
    if size > MAX_SECRET_SIZE:
        errs.append(too_long("data", MAX_SECRET_SIZE))
    return errs + _validate_secret_type(obj)


def _validate_secret_type(secret: core_pb2.Secret) -> Errors:
    kind, data = secret.type, secret.data
    if kind == "kubernetes.io/service-account-token":
        key = "kubernetes.io/service-account.name"
        if not secret.metadata.annotations.get(key):
            return [required(f"metadata.annotations[{key}]")]
        return []
    if kind == "kubernetes.io/basic-auth":
        # Either may be empty, but one of them must be there.
        if "username" not in data and "password" not in data:
            return [required("data[username]"), required("data[password]")]
        return []
    if kind == "kubernetes.io/ssh-auth":
        return [] if data.get("ssh-privatekey") else [required("data[ssh-privatekey]")]
    missing = [k for k in _SECRET_REQUIRED_KEYS.get(kind, ()) if k not in data]
    if missing:
        return [required(f"data[{k}]") for k in missing]
    json_key = _SECRET_JSON_KEYS.get(kind)
    if json_key:
        try:
            parsed = json.loads(data[json_key])
        except ValueError as err:
            return [invalid(f"data[{json_key}]", "<secret contents redacted>", str(err))]
        if not isinstance(parsed, dict):
            return [invalid(f"data[{json_key}]", "<secret contents redacted>",
                            "must be a JSON object")]
    return []


def _validate_immutable_data(new: Any, old: Any, fields: Sequence[tuple[str, str]]) -> Errors:
    """Secrets and ConfigMaps marked immutable keep their data, and stay immutable."""
    if not (old.HasField("immutable") and old.immutable):
        return []
    errs: Errors = []
    if not (new.HasField("immutable") and new.immutable):
        errs.append(forbidden("immutable", "field is immutable when `immutable` is set"))
    for attr, name in fields:
        if getattr(new, attr) != getattr(old, attr):
            errs.append(forbidden(name, "field is immutable when `immutable` is set"))
    return errs


def validate_secret_update(new: Message, old: Message) -> Errors:
    assert isinstance(new, core_pb2.Secret) and isinstance(old, core_pb2.Secret)
    errs = [immutable("type", new.type)] if new.type != old.type else []
    return errs + _validate_immutable_data(new, old, (("data", "data"),))


def validate_config_map(obj: Message) -> Errors:
    assert isinstance(obj, core_pb2.ConfigMap)
    errs: Errors = []
    size = 0
    for key, text in sorted(obj.data.items()):
        errs += [invalid(f"data[{key}]", key, msg) for msg in config_map_key(key)]
        # One key, one file: it cannot be both text and binary.
        if key in obj.binary_data:
            errs.append(invalid(f"data[{key}]", key, "duplicate of key present in binaryData"))
        size += byte_len(text)
    for key, blob in sorted(obj.binary_data.items()):
        errs += [invalid(f"binaryData[{key}]", key, msg) for msg in config_map_key(key)]
        size += len(blob)
    if size > MAX_SECRET_SIZE:
        errs.append(too_long("", MAX_SECRET_SIZE))
    return errs


def validate_config_map_update(new: Message, old: Message) -> Errors:
    return _validate_immutable_data(new, old, (("data", "data"), ("binary_data", "binaryData")))
