"""CronJob time zones and schedules (robfig/cron's standard parser, which Kubernetes
uses)."""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping

from skiff.api.validation.errors import Errors, invalid


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


_MONTHS = {name: i + 1 for i, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_WEEKDAYS = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_CRON_FIELDS: tuple[tuple[int, int, Mapping[str, int]], ...] = (
    (0, 59, {}),  # minute
    (0, 23, {}),  # hour
    (1, 31, {}),  # day of month
    (1, 12, _MONTHS),
    (0, 6, _WEEKDAYS),
)
_CRON_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight",
                     "@hourly"}
_GO_DURATION_RE = re.compile(r"[-+]?(?:0|(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
                             r"(?:ns|us|µs|μs|ms|s|m|h))+)")
_GO_INT_RE = re.compile(r"[-+]?[0-9]+")


def validate_schedule(schedule: str, path: str) -> Errors:
    errs: Errors = []
    problem = _cron_problem(schedule)
    if problem:
        errs.append(invalid(path, schedule, problem))
    # The time zone has its own field; a TZ in the schedule would silently compete.
    if "TZ" in schedule:
        errs.append(invalid(path, schedule, "cannot use TZ or CRON_TZ in schedule, use "
                                            "timeZone field instead"))
    return errs


def _cron_problem(spec: str) -> str | None:
    """What robfig/cron's ParseStandard says about a schedule; None if it parses."""
    if not spec:
        return "empty spec string"
    if spec.startswith(("TZ=", "CRON_TZ=")):
        space = spec.find(" ")
        zone = spec[spec.find("=") + 1:space if space >= 0 else len(spec)]
        if not _known_time_zone(zone):
            return f"provided bad location {zone}: unknown time zone {zone}"
        spec = spec[space:].strip() if space >= 0 else ""
    if spec.startswith("@"):
        return _cron_descriptor_problem(spec)
    fields = spec.split()
    if len(fields) != 5:
        return f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]"
    for text, (low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for expr in filter(None, text.split(",")):
            problem = _cron_range_problem(expr, low, high, names)
            if problem:
                return problem
    return None


def _cron_descriptor_problem(spec: str) -> str | None:
    if spec in _CRON_DESCRIPTORS:
        return None
    if spec.startswith("@every "):
        duration = spec[len("@every "):]
        if _GO_DURATION_RE.fullmatch(duration):
            return None
        return f'failed to parse duration {spec}: time: invalid duration "{duration}"'
    return f"unrecognized descriptor: {spec}"


def _cron_int(text: str, names: Mapping[str, int]) -> tuple[int, str | None]:
    if text.lower() in names:
        return names[text.lower()], None
    if not _GO_INT_RE.fullmatch(text):
        return 0, f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": invalid syntax'
    value = int(text)
    if value < 0:
        return 0, f"negative number ({value}) not allowed: {text}"
    return value, None


def _cron_range_problem(expr: str, low: int, high: int, names: Mapping[str, int]) -> str | None:
    range_and_step = expr.split("/")
    bounds = range_and_step[0].split("-")
    if bounds[0] in ("*", "?"):
        start, end = low, high
    else:
        if len(bounds) > 2:
            return f"too many hyphens: {expr}"
        start, problem = _cron_int(bounds[0], names)
        if problem:
            return problem
        end = start
        if len(bounds) == 2:
            end, problem = _cron_int(bounds[1], names)
            if problem:
                return problem
    step = 1
    if len(range_and_step) > 2:
        return f"too many slashes: {expr}"
    if len(range_and_step) == 2:
        step, problem = _cron_int(range_and_step[1], {})
        if problem:
            return problem
        if len(bounds) == 1:
            end = high  # "N/step" means N through the maximum
    if start < low:
        return f"beginning of range ({start}) below minimum ({low}): {expr}"
    if end > high:
        return f"end of range ({end}) above maximum ({high}): {expr}"
    if start > end:
        return f"beginning of range ({start}) beyond end of range ({end}): {expr}"
    if step == 0:
        return f"step of range should be a positive number: {expr}"
    return None
