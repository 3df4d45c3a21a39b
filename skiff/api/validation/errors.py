"""Error strings, in the format of k8s.io/apimachinery/pkg/util/validation/field.

Each problem is one string, `"<field.path>: <problem>"`; `Errors` is a list of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from google.protobuf.message import Message

from skiff.api.jsonform import message_to_dict

Errors = list[str]


def render(value: Any) -> str:
    """A bad value as Kubernetes prints it: simple values as Go's %v/%q, others as JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(_plain(value), ensure_ascii=False, separators=(",", ":"))


def _plain(value: Any) -> Any:
    if isinstance(value, Message):
        return message_to_dict(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple) or (
            hasattr(value, "__iter__") and not isinstance(value, str | bytes)):
        return [_plain(v) for v in value]
    return value


def at(path: str, body: str) -> str:
    return f"{path}: {body}" if path else body


def invalid(path: str, value: Any, detail: str) -> str:
    return at(path, f"Invalid value: {render(value)}: {detail}")


def required(path: str, detail: str = "") -> str:
    return at(path, f"Required value: {detail}" if detail else "Required value")


def forbidden(path: str, detail: str) -> str:
    return at(path, f"Forbidden: {detail}")


def unsupported(path: str, value: Any, supported: Iterable[str]) -> str:
    quoted = ", ".join(json.dumps(s) for s in supported)
    return at(path, f"Unsupported value: {render(value)}: supported values: {quoted}")


def duplicate(path: str, value: Any) -> str:
    return at(path, f"Duplicate value: {render(value)}")


def not_found(path: str, value: Any) -> str:
    return at(path, f"Not found: {render(value)}")


def too_long(path: str, limit: int) -> str:
    return at(path, f"Too long: must have at most {limit} bytes")


def immutable(path: str, new_value: Any) -> str:
    return invalid(path, new_value, "field is immutable")


def nonnegative(path: str, value: int) -> Errors:
    return [] if value >= 0 else [invalid(path, value, "must be greater than or equal to 0")]


def range_error(low: int, high: int) -> str:
    return f"must be between {low} and {high}, inclusive"


def exactly_one(message: Any, path: str, noun: str,
                choices: tuple[tuple[str, str, Callable[[Any, str], Errors]], ...]) -> Errors:
    """Kubernetes' one-of rule (a volume's source, a probe's handler): exactly one of
    `choices` (proto field, JSON name, validator) is set; the set one is validated."""
    errs: Errors = []
    count = 0
    for field, name, check in choices:
        if not message.HasField(field):
            continue
        if count > 0:
            errs.append(forbidden(f"{path}.{name}", f"may not specify more than 1 {noun}"))
            continue
        count += 1
        errs += check(getattr(message, field), f"{path}.{name}")
    if count == 0:
        errs.append(required(path, f"must specify a {noun}"))
    return errs
