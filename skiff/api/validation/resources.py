"""Containers' compute resources: resource names, quantities, requests within limits."""

from __future__ import annotations

from skiff.api.quantity import Quantity, QuantityError, parse_quantity
from skiff.api.selectors import validate_label_key
from skiff.api.v1 import core_pb2
from skiff.api.validation.errors import Errors, invalid, required
from skiff.api.validation.formats import qualified_name

_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")


def quantity_or_none(text: str) -> Quantity | None:
    try:
        return parse_quantity(text)
    except QuantityError:
        return None


def _is_native_resource(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def _overcommit_allowed(name: str) -> bool:
    """Only native, non-hugepage resources may be requested below their limit."""
    return _is_native_resource(name) and not name.startswith("hugepages-")


def _validate_resource_name(name: str, path: str) -> Errors:
    errs = qualified_name(path, name)
    if errs:
        return errs
    if "/" not in name:
        if name not in _CONTAINER_RESOURCES and not name.startswith("hugepages-"):
            return [invalid(path, name, "must be a standard resource for containers")]
    elif not _is_native_resource(name) and (
            name.startswith("requests.") or validate_label_key(f"requests.{name}")):
        return [invalid(path, name, "doesn't follow extended resource name standard")]
    return []


def validate_quantity(name: str, text: str, path: str) -> Errors:
    quantity = quantity_or_none(text)
    if quantity is None:
        return [invalid(path, text, "must be a valid resource quantity")]
    if quantity.sign() < 0:
        return [invalid(path, text, "must be greater than or equal to 0")]
    # Extended resources (devices) come in whole units.
    if not _is_native_resource(name) and quantity.milli_value() % 1000 != 0:
        return [invalid(path, text, "must be an integer")]
    return []


def validate_resources(resources: core_pb2.ResourceRequirements, path: str) -> Errors:
    errs: Errors = []
    for name, value in sorted(resources.limits.items()):
        r_path = f"{path}.limits[{name}]"
        errs += _validate_resource_name(name, r_path)
        errs += validate_quantity(name, value.value, r_path)
    for name, value in sorted(resources.requests.items()):
        r_path = f"{path}.requests[{name}]"
        errs += _validate_resource_name(name, r_path)
        errs += validate_quantity(name, value.value, r_path)
        errs += _validate_request_within_limit(resources, name, value.value, path)
    return errs


def _validate_request_within_limit(resources: core_pb2.ResourceRequirements, name: str,
                                   request_text: str, path: str) -> Errors:
    if name not in resources.limits:
        if not _overcommit_allowed(name):
            return [required(f"{path}.limits", "Limit must be set for non overcommitable "
                                               "resources")]
        return []
    request = quantity_or_none(request_text)
    limit = quantity_or_none(resources.limits[name].value)
    if request is None or limit is None:
        return []
    if not _overcommit_allowed(name) and request != limit:
        return [invalid(f"{path}.requests", request_text,
                        f"must be equal to {name} limit of {limit}")]
    if request > limit:
        return [invalid(f"{path}.requests", request_text,
                        f"must be less than or equal to {name} limit of {limit}")]
    return []
