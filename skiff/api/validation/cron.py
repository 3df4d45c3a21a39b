"""CronJob time zones and schedules, read as robfig/cron v3's standard parser reads them
(`cron.ParseStandard`, what Kubernetes validates `spec.schedule` with and what its CronJob
controller runs).

A schedule is five fields (minute, hour, day of month, month, day of week), each a comma
list of ranges `*`, `?`, `N`, `N-M`, with an optional `/step` (`N/step` means N through the
field's maximum); months and weekdays may be named (`jan`, `mon`). Each field becomes a bit
set, as in robfig/cron, plus robfig's *star bit* when the field was written as `*` or `?`
with no step or a step of 1: `*/1` is unrestricted just like `*`, and that bit alone
decides how day of month and day of week combine (skiff's controllers/common/cron.py).
Descriptors: `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight`,
`@hourly`, and `@every <Go duration>`. A `TZ=`/`CRON_TZ=` prefix names a zone.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field

from skiff.api.validation.errors import Errors, invalid

__all__ = [
    "DAYS_OF_MONTH",
    "DAYS_OF_WEEK",
    "HOURS",
    "MINUTES",
    "MONTHS",
    "SECONDS",
    "STAR_BIT",
    "Bounds",
    "ConstantDelay",
    "CronFields",
    "CronSyntaxError",
    "field_bits",
    "go_duration_nanos",
    "parse_standard",
    "validate_schedule",
    "validate_time_zone",
]


def validate_time_zone(zone: str, path: str) -> Errors:
    if not zone:
        return [invalid(path, zone, "timeZone must be nil or non-empty string")]
    if zone.lower() == "local":
        return [invalid(path, zone, "timeZone must be an explicit time zone as defined in "
                                    "https://www.iana.org/time-zones")]
    if not _known_time_zone(zone):
        return [invalid(path, zone, f"unknown time zone {zone}")]
    return []


def _known_time_zone(zone: str) -> bool:
    if any(part in (".", "..") or part.startswith("-") for part in zone.split("/")):
        return False
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def validate_schedule(schedule: str, path: str) -> Errors:
    errs: Errors = []
    try:
        parse_standard(schedule)
    except CronSyntaxError as err:
        errs.append(invalid(path, schedule, str(err)))
    # The time zone has its own field; a TZ in the schedule would silently compete.
    if "TZ" in schedule:
        errs.append(invalid(path, schedule, "cannot use TZ or CRON_TZ in schedule, use "
                                            "timeZone field instead"))
    return errs


# --------------------------------------------------------------------------- the parser


class CronSyntaxError(ValueError):
    """What robfig/cron's parser says about a schedule it refuses (its own wording)."""


STAR_BIT = 1 << 63
"""Set in a field written as `*` or `?` (with no step, or a step of 1)."""


@dataclass(frozen=True)
class Bounds:
    low: int
    high: int
    names: Mapping[str, int] = field(default_factory=dict)


SECONDS = Bounds(0, 59)
MINUTES = Bounds(0, 59)
HOURS = Bounds(0, 23)
DAYS_OF_MONTH = Bounds(1, 31)
MONTHS = Bounds(1, 12, {name: i + 1 for i, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))})
DAYS_OF_WEEK = Bounds(0, 6, {name: i for i, name in enumerate(
    ("sun", "mon", "tue", "wed", "thu", "fri", "sat"))})
_STANDARD_FIELDS = (MINUTES, HOURS, DAYS_OF_MONTH, MONTHS, DAYS_OF_WEEK)


def _all(bounds: Bounds) -> int:
    return _bits(bounds.low, bounds.high, 1) | STAR_BIT


@dataclass(frozen=True)
class CronFields:
    """robfig/cron's SpecSchedule: one bit set per field (bit n: value n), in `zone`
    (None: the schedule names none). The standard parser always fires at second 0."""

    minute: int
    hour: int
    dom: int
    month: int
    dow: int
    second: int = 1 << 0
    zone: str | None = None


@dataclass(frozen=True)
class ConstantDelay:
    """`@every <duration>`, as robfig/cron's Every keeps it: whole seconds, at least one."""

    seconds: int
    zone: str | None = None


_MAX_INT64 = 2**63 - 1
_GO_INT_RE = re.compile(r"[-+]?[0-9]+")


def parse_standard(spec: str) -> CronFields | ConstantDelay:
    """The schedule `spec` as robfig/cron's ParseStandard reads it; raises CronSyntaxError
    with its message."""
    if not spec:
        raise CronSyntaxError("empty spec string")
    zone: str | None = None
    if spec.startswith(("TZ=", "CRON_TZ=")):
        space = spec.find(" ")
        zone = spec[spec.find("=") + 1:space if space >= 0 else len(spec)]
        if not _known_time_zone(zone):
            raise CronSyntaxError(f"provided bad location {zone}: unknown time zone {zone}")
        spec = spec[space:].strip() if space >= 0 else ""
    if spec.startswith("@"):
        return _descriptor(spec, zone)
    fields = spec.split()
    if len(fields) != 5:
        raise CronSyntaxError(
            f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    minute, hour, dom, month, dow = (field_bits(text, bounds)
                                     for text, bounds in zip(fields, _STANDARD_FIELDS,
                                                             strict=True))
    return CronFields(minute, hour, dom, month, dow, zone=zone)


def field_bits(text: str, bounds: Bounds) -> int:
    """The bits of one field: the union of its comma-separated ranges (robfig's getField;
    empty items are skipped)."""
    bits = 0
    for expr in filter(None, text.split(",")):
        bits |= _range_bits(expr, bounds)
    return bits


def _range_bits(expr: str, bounds: Bounds) -> int:
    """robfig's getRange: `*`, `?`, `N`, `N-M`, each with an optional `/step`."""
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    extra = 0
    if low_and_high[0] in ("*", "?"):
        start, end, extra = bounds.low, bounds.high, STAR_BIT
    else:
        start = _int_or_name(low_and_high[0], bounds.names)
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = _int_or_name(low_and_high[1], bounds.names)
        else:
            raise CronSyntaxError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _non_negative_int(range_and_step[1])
        if len(low_and_high) == 1:
            end = bounds.high  # "N/step" means "N-max/step"
        if step > 1:
            extra = 0  # "*/2" restricts; "*/1" stays a star
    else:
        raise CronSyntaxError(f"too many slashes: {expr}")
    if start < bounds.low:
        raise CronSyntaxError(f"beginning of range ({start}) below minimum ({bounds.low}): {expr}")
    if end > bounds.high:
        raise CronSyntaxError(f"end of range ({end}) above maximum ({bounds.high}): {expr}")
    if start > end:
        raise CronSyntaxError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronSyntaxError(f"step of range should be a positive number: {expr}")
    return _bits(start, end, step) | extra


def _bits(low: int, high: int, step: int) -> int:
    bits = 0
    for value in range(low, high + 1, step):
        bits |= 1 << value
    return bits


def _int_or_name(text: str, names: Mapping[str, int]) -> int:
    named = names.get(text.lower())
    return named if named is not None else _non_negative_int(text)


def _non_negative_int(text: str) -> int:
    """Go's strconv.Atoi, then robfig's refusal of negatives."""
    if not _GO_INT_RE.fullmatch(text):
        raise CronSyntaxError(f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": '
                              "invalid syntax")
    value = int(text)
    if not -_MAX_INT64 - 1 <= value <= _MAX_INT64:
        raise CronSyntaxError(f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": '
                              "value out of range")
    if value < 0:
        raise CronSyntaxError(f"negative number ({value}) not allowed: {text}")
    return value


_DESCRIPTORS = {
    "@yearly": ("0", "0", "1", "1", "*"),
    "@annually": ("0", "0", "1", "1", "*"),
    "@monthly": ("0", "0", "1", "*", "*"),
    "@weekly": ("0", "0", "*", "*", "0"),
    "@daily": ("0", "0", "*", "*", "*"),
    "@midnight": ("0", "0", "*", "*", "*"),
    "@hourly": ("0", "*", "*", "*", "*"),
}


def _descriptor(spec: str, zone: str | None) -> CronFields | ConstantDelay:
    fields = _DESCRIPTORS.get(spec)
    if fields is not None:
        minute, hour, dom, month, dow = (field_bits(text, bounds)
                                         for text, bounds in zip(fields, _STANDARD_FIELDS,
                                                                 strict=True))
        return CronFields(minute, hour, dom, month, dow, zone=zone)
    if spec.startswith("@every "):
        try:
            nanos = go_duration_nanos(spec[len("@every "):])
        except ValueError as err:
            raise CronSyntaxError(f"failed to parse duration {spec}: {err}") from None
        # robfig's Every: below a second is a second; otherwise the fraction is dropped.
        return ConstantDelay(nanos // 10**9 if nanos >= 10**9 else 1, zone)
    raise CronSyntaxError(f"unrecognized descriptor: {spec}")


# --------------------------------------------------------------------------- Go durations

_GO_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9,
             "m": 60 * 10**9, "h": 3600 * 10**9}
_GO_COMPONENT = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")


def go_duration_nanos(text: str) -> int:
    """Go's time.ParseDuration in nanoseconds; ValueError with Go's message."""
    bad = ValueError(f'time: invalid duration "{text}"')
    rest, negative = text, False
    if rest[:1] in ("+", "-"):
        negative, rest = rest[0] == "-", rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise bad
    total = 0
    while rest:
        match = _GO_COMPONENT.match(rest)
        assert match is not None  # every part of the pattern may be empty
        whole, fraction, unit = match.groups()
        if not whole and not fraction:
            raise bad
        if not unit:
            raise ValueError(f'time: missing unit in duration "{text}"')
        if unit not in _GO_UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{text}"')
        scale = _GO_UNITS[unit]
        total += int(whole or "0") * scale
        if fraction and int(fraction):
            # Go scales the fraction in float64 and truncates, as here.
            total += int(float(int(fraction)) * (scale / 10 ** len(fraction)))
        if total > 2**63:
            raise bad
        rest = rest[match.end():]
    if not negative and total > _MAX_INT64:
        raise bad
    return -total if negative else total
