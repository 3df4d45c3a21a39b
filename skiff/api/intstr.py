"""IntOrString values (`maxSurge: 25%`, `maxUnavailable: 1`) resolved to numbers."""

from __future__ import annotations

from skiff.api.v1 import meta_pb2

__all__ = ["IntOrStringLike", "scaled_value"]

IntOrStringLike = meta_pb2.IntOrString | int | str | None


def scaled_value(value: IntOrStringLike, total: int, *, round_up: bool) -> int:
    """Kubernetes' GetScaledValueFromIntOrPercent: an int as is, "N%" as N percent of
    `total` rounded up or down; unset is 0. Any other string is a ValueError."""
    if isinstance(value, meta_pb2.IntOrString):
        which = value.WhichOneof("value")
        value = value.str_val if which == "str_val" else value.int_val
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    if not value.endswith("%"):
        raise ValueError(f"invalid value for IntOrString: invalid type: string is not a "
                         f"percentage: {value!r}")
    try:
        percent = int(value[:-1])
    except ValueError:
        raise ValueError(f"invalid value for IntOrString: {value!r}") from None
    scaled = percent * total
    return -(-scaled // 100) if round_up else scaled // 100
