"""Kubernetes manifests to objects of their kind and back: apiVersion and kind resolved
through the registry of kinds, every other field in the shapes of skiff.api.jsonform."""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message

from skiff.api import kinds
from skiff.api.jsonform import ConversionError, message_to_dict, parse, type_name

__all__ = ["ConversionError", "describe", "from_dict", "to_dict"]


def describe(data: dict[str, Any]) -> str:
    """How messages name a manifest: `Deployment "web"` (or just the kind)."""
    kind = data.get("kind") if isinstance(data, dict) else None
    meta = data.get("metadata") if isinstance(data, dict) else None
    name = meta.get("name") or meta.get("generateName") if isinstance(meta, dict) else None
    kind_text = kind if isinstance(kind, str) and kind else "object"
    return f'{kind_text} "{name}"' if name else kind_text


def from_dict(data: Any) -> tuple[Message, list[str]]:
    """A manifest as a message of its kind, plus warnings for fields Skiff ignores.

    Raises ConversionError naming the object and each bad field, or
    kinds.UnknownKindError for a missing/unknown/removed apiVersion or kind.
    """
    if not isinstance(data, dict):
        raise ConversionError("", [f"a manifest must be a mapping, got {type_name(data)}"])
    api_version, kind_name = data.get("apiVersion", ""), data.get("kind", "")
    if not isinstance(api_version, str) or not isinstance(kind_name, str):
        raise ConversionError(describe(data), ["apiVersion and kind must be strings"])
    kind = kinds.for_manifest(api_version, kind_name)
    return parse(data, kind.message, subject=describe(data))


def to_dict(message: Message) -> dict[str, Any]:
    """The Kubernetes-shaped dict of a message: what `-o yaml` and `-o json` print; an
    object of a kind starts with its apiVersion and kind, as Kubernetes prints them."""
    out = message_to_dict(message)
    try:
        kind = kinds.by_message(message)
    except kinds.UnknownKindError:
        return out
    head = {"apiVersion": out.pop("apiVersion", None) or kind.api_version,
            "kind": out.pop("kind", None) or kind.kind}
    return {**head, **out}
