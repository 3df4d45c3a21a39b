"""Messages in Kubernetes' JSON shapes (dicts from YAML or JSON), in and out, for any
message, whatever its kind (skiff.api.convert adds what a whole manifest needs).

Proto3's JSON names equal Kubernetes' JSON names, so most of a manifest maps onto
the messages as it is. This module does the rest in one walk over the message
descriptors:
- IntOrString and Quantity are bare scalars in YAML and small messages here;
- a field Skiff does not know becomes a warning that names its path, never an
  error and never silently dropped;
- a value of the wrong type is an error that names its path and what is wrong;
- int64 fields, which proto3 JSON renders as strings, print as numbers again.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from skiff.api.quantity import QuantityError, parse_quantity

INT_OR_STRING = "skiff.api.v1.IntOrString"
QUANTITY = "skiff.api.v1.Quantity"
TIMESTAMP = "google.protobuf.Timestamp"

_INT_TYPES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
}
_FLOAT_TYPES = {FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT}


class ConversionError(ValueError):
    """A manifest that cannot become an object; `errors` name each bad field."""

    def __init__(self, subject: str, errors: list[str]) -> None:
        self.subject = subject
        self.errors = errors
        super().__init__(f"{subject}: " + "; ".join(errors) if subject else "; ".join(errors))


@dataclass
class _Walk:
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def parse(data: Any, message_type: type[Message], *, path: str = "", subject: str = ""
          ) -> tuple[Message, list[str]]:
    """`data` as a `message_type`, plus warnings for the fields Skiff ignores. Raises
    ConversionError naming `subject` and each bad field (paths start at `path`)."""
    walk = _Walk()
    clean = _message_in(data, message_type.DESCRIPTOR, path, walk)
    if walk.errors:
        raise ConversionError(subject, walk.errors)
    message = message_type()
    try:
        json_format.ParseDict(clean, message)
    except json_format.ParseError as err:  # the walk should have caught it; be safe
        raise ConversionError(subject, [str(err)]) from None
    return message, walk.warnings


def message_from_dict(data: Any, message_type: type[Message], path: str = "") -> Message:
    """`data` as a `message_type`, ignoring unknown fields."""
    return parse(data, message_type, path=path)[0]


def message_to_dict(message: Message) -> dict[str, Any]:
    """The Kubernetes-shaped dict of a message."""
    raw = json_format.MessageToDict(message, preserving_proto_field_name=False)
    return _message_out(raw, message.DESCRIPTOR)


# ---- input ----

def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def _message_in(data: Any, desc: Any, path: str, walk: _Walk) -> dict[str, Any]:
    if not isinstance(data, dict):
        walk.errors.append(f"{path or 'object'}: expected a mapping, got {type_name(data)}")
        return {}
    out: dict[str, Any] = {}
    for key, value in data.items():
        fd = _fields(desc).get(key) if isinstance(key, str) else None
        if fd is None:
            walk.warnings.append(f'unknown field "{_join(path, str(key))}": not supported by '
                                 "Skiff, ignored")
            continue
        if value is None:  # YAML `field:` or `field: null`: unset, as in Kubernetes
            continue
        converted = _field_in(value, fd, _join(path, key), walk)
        if converted is not None:
            out[fd.json_name] = converted
    return out


@functools.cache
def _fields(desc: Any) -> dict[str, FieldDescriptor]:
    """A message's fields by their JSON (that is, Kubernetes) name."""
    return {fd.json_name: fd for fd in desc.fields}


def _field_in(value: Any, fd: FieldDescriptor, path: str, walk: _Walk) -> Any:
    if _is_map(fd):
        if not isinstance(value, dict):
            walk.errors.append(f"{path}: expected a mapping, got {type_name(value)}")
            return None
        value_fd = _type(fd).fields_by_name["value"]
        result = {}
        for k, v in value.items():
            # YAML may read a key such as `1` or `true` as a non-string; JSON keys are
            # strings, so take its text as kubectl's YAML-to-JSON step does.
            key = k if isinstance(k, str) else _scalar_text(k)
            if v is None:
                v = ""
                if value_fd.type != FieldDescriptor.TYPE_STRING:
                    continue
            converted = _single_in(v, value_fd, f"{path}[{key}]", walk)
            if converted is not None:
                result[key] = converted
        return result
    if fd.is_repeated:
        if not isinstance(value, list):
            walk.errors.append(f"{path}: expected a list, got {type_name(value)}")
            return None
        items = [_single_in(v, fd, f"{path}[{i}]", walk) for i, v in enumerate(value)]
        return [i for i in items if i is not None]
    return _single_in(value, fd, path, walk)


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _type(fd: FieldDescriptor) -> Any:
    """The message type of a message field (never None for one)."""
    assert fd.message_type is not None
    return fd.message_type


def _is_map(fd: FieldDescriptor) -> bool:
    return (fd.type == FieldDescriptor.TYPE_MESSAGE and _type(fd).has_options
            and _type(fd).GetOptions().map_entry)


def _single_in(value: Any, fd: FieldDescriptor, path: str, walk: _Walk) -> Any:
    t = fd.type
    if t == FieldDescriptor.TYPE_MESSAGE:
        name = _type(fd).full_name
        if name == INT_OR_STRING:
            return _int_or_string_in(value, path, walk)
        if name == QUANTITY:
            return _quantity_in(value, path, walk)
        if name == TIMESTAMP:
            return _timestamp_in(value, path, walk)
        return _message_in(value, _type(fd), path, walk)
    if t == FieldDescriptor.TYPE_STRING:
        if isinstance(value, str):
            return value
        walk.errors.append(f"{path}: expected a string, got {type_name(value)} {value!r}"
                           f" (quote it in YAML)")
        return None
    if t == FieldDescriptor.TYPE_BOOL:
        if isinstance(value, bool):
            return value
        walk.errors.append(f"{path}: expected a boolean, got {type_name(value)} {value!r}")
        return None
    if t in _INT_TYPES:
        return _int_in(value, t, path, walk)
    if t in _FLOAT_TYPES:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        walk.errors.append(f"{path}: expected a number, got {type_name(value)} {value!r}")
        return None
    if t == FieldDescriptor.TYPE_BYTES:
        if not isinstance(value, str):
            walk.errors.append(f"{path}: expected a base64 string, got {type_name(value)}")
            return None
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            walk.errors.append(f"{path}: illegal base64 data")
            return None
        return value
    walk.errors.append(f"{path}: unsupported field type")
    return None


def _int_in(value: Any, t: int, path: str, walk: _Walk) -> int | None:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        walk.errors.append(f"{path}: expected an integer, got {type_name(value)} {value!r}")
        return None
    low, high = _INT_TYPES[t]
    if not low <= value <= high:
        walk.errors.append(f"{path}: {value} is out of range [{low}, {high}]")
        return None
    return value


def _int_or_string_in(value: Any, path: str, walk: _Walk) -> dict[str, Any] | None:
    if isinstance(value, bool) or not isinstance(value, int | str):
        walk.errors.append(f"{path}: expected an integer or a string, got {type_name(value)}")
        return None
    if isinstance(value, int):
        if not -(2**31) <= value < 2**31:
            walk.errors.append(f"{path}: {value} is out of range")
            return None
        return {"intVal": value}
    return {"strVal": value}


def _quantity_in(value: Any, path: str, walk: _Walk) -> dict[str, Any] | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        walk.errors.append(f"{path}: expected a quantity such as 500m or 128Mi, got "
                           f"{type_name(value)}")
        return None
    if isinstance(value, str):
        value = value.strip()  # as Kubernetes' Quantity.UnmarshalJSON (TrimSpace)
    try:
        # Stored as Kubernetes' String(): the user's text when it is already canonical.
        return {"value": str(parse_quantity(value))}
    except QuantityError as err:
        walk.errors.append(f"{path}: {err}")
        return None


def _timestamp_in(value: Any, path: str, walk: _Walk) -> str | None:
    if isinstance(value, dt.datetime):  # YAML reads unquoted timestamps as datetimes
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return str(value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    if isinstance(value, str):
        try:
            dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            walk.errors.append(f"{path}: {value!r} is not an RFC 3339 time")
            return None
        return value
    walk.errors.append(f"{path}: expected an RFC 3339 time, got {type_name(value)}")
    return None


# ---- output ----

def _message_out(data: dict[str, Any], desc: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        fd = _fields(desc).get(key)
        out[key] = value if fd is None else _field_out(value, fd)
    return out


def _field_out(value: Any, fd: FieldDescriptor) -> Any:
    if _is_map(fd):
        value_fd = _type(fd).fields_by_name["value"]
        return {k: _single_out(v, value_fd) for k, v in value.items()}
    if fd.is_repeated:
        return [_single_out(v, fd) for v in value]
    return _single_out(value, fd)


def _single_out(value: Any, fd: FieldDescriptor) -> Any:
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        name = _type(fd).full_name
        if name == INT_OR_STRING:
            return value.get("intVal", value.get("strVal", 0))
        if name == QUANTITY:
            return value.get("value", "0")
        if name == TIMESTAMP:
            return _timestamp_out(value)
        return _message_out(value, _type(fd))
    if fd.type in _INT_TYPES and isinstance(value, str):
        return int(value)
    return value


def _timestamp_out(value: str) -> str:
    # Kubernetes prints whole seconds for its Time fields; keep sub-second digits
    # only where they carry information (MicroTime fields such as eventTime).
    if value.endswith(".000Z"):
        return value[:-5] + "Z"
    return value
