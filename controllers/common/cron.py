"""CronJob schedules: when a schedule fires, and which run a CronJob owes at a given time.

Kubernetes reads `spec.schedule` with robfig/cron's standard parser: five fields (minute,
hour, day of month, month, day of week; names like `jan` and `mon`; `*`, `?`, ranges,
lists, steps), the macros `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/
`@midnight`, `@hourly` and `@every <duration>`, and an optional `TZ=`/`CRON_TZ=` prefix.
The apiserver already rejects what that parser rejects (skiff.api.validation.cron) and,
since Kubernetes 1.25, any `TZ` in the schedule (the `timeZone` field says it instead);
this module checks the grammar again with the same rules, because croniter, which does the
date arithmetic here, accepts more (seconds fields, `L`, `#`, `7` for Sunday) than a
Kubernetes user may write.

Times are computed in the CronJob's `timeZone` (IANA, through zoneinfo), or in UTC when it
has none (kube-controller-manager uses its host's zone, which is UTC on most clusters).
Across daylight-saving changes croniter runs a wall time that does not exist (02:30 on a
spring-forward night) at the first instant after the gap, and a wall time that happens
twice (01:30 on a fall-back night) twice; each run is a distinct instant, so the Jobs
get distinct names.

`most_recent_schedule_time` is the Kubernetes CronJob controller's (v2) reckoning of the
one run owed now, `next_schedule_time` and `requeue_delay` are built on it. All of it is
pure: callers pass `now`.
"""

from __future__ import annotations

import abc
import enum
import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from croniter import CroniterError, croniter

from skiff.api.validation.cron import validate_schedule, validate_time_zone

__all__ = [
    "NEXT_SCHEDULE_DELTA",
    "TOO_MANY_MISSED",
    "Missed",
    "Schedule",
    "ScheduleCheck",
    "ScheduleError",
    "job_name_for",
    "most_recent_schedule_time",
    "next_schedule_time",
    "parse_schedule",
    "requeue_delay",
]

# More missed runs than this is taken for a clock skew or a wedged controller: only the
# latest is run, with a warning (Kubernetes' "somewhat arbitrarily picked 100").
TOO_MANY_MISSED = 100

# Requeue a little after the scheduled second so clock drift never makes a sync early.
NEXT_SCHEDULE_DELTA = 0.1

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_GO_DURATION_PART = re.compile(r"((?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
             "m": 60.0, "h": 3600.0}


class ScheduleError(ValueError):
    """A schedule that cannot be used: bad grammar, an unknown zone, or one that never
    fires (`0 0 30 2 *`)."""


class Schedule(abc.ABC):
    """When a schedule fires. Times in and out are timezone-aware."""

    @abc.abstractmethod
    def next(self, after: datetime) -> datetime:
        """The first firing strictly after `after` (whole seconds, as robfig/cron)."""

    @abc.abstractmethod
    def previous(self, before: datetime) -> datetime:
        """The last firing strictly before `before`."""


class CronSchedule(Schedule):
    """Five cron fields evaluated in one time zone."""

    def __init__(self, fields: str, zone: tzinfo) -> None:
        self.fields = fields
        self.zone = zone

    def __repr__(self) -> str:
        return f"CronSchedule({self.fields!r}, {self.zone})"

    def next(self, after: datetime) -> datetime:
        return self._step(after, backwards=False)

    def previous(self, before: datetime) -> datetime:
        return self._step(before, backwards=True)

    def _step(self, start: datetime, *, backwards: bool) -> datetime:
        local = _aware(start).astimezone(self.zone)
        try:
            it = croniter(self.fields, local)
            found: datetime = (it.get_prev(datetime) if backwards
                               else it.get_next(datetime))
        except CroniterError as err:
            raise ScheduleError(f"no time matches the schedule {self.fields!r}: {err}") from None
        return found


class EverySchedule(Schedule):
    """`@every <duration>`: a constant delay after the (whole) second given, which is what
    robfig/cron's ConstantDelaySchedule does; it has no phase of its own."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds

    def __repr__(self) -> str:
        return f"EverySchedule({self.seconds}s)"

    def next(self, after: datetime) -> datetime:
        return _aware(after).replace(microsecond=0) + timedelta(seconds=self.seconds)

    def previous(self, before: datetime) -> datetime:
        """One delay back (whole seconds): a constant delay has no phase to look back to."""
        return _aware(before).replace(microsecond=0) - timedelta(seconds=self.seconds)


def parse_schedule(spec: str, time_zone: str | None = None) -> Schedule:
    """The schedule `spec` in `time_zone` (None: UTC). A `TZ=`/`CRON_TZ=` prefix in the
    spec wins over `time_zone`, as in Kubernetes. Raises ScheduleError."""
    spec = spec.strip()
    zone_name = time_zone
    if spec.startswith(("TZ=", "CRON_TZ=")):
        prefix, _, spec = spec.partition(" ")
        zone_name = prefix.partition("=")[2]
        spec = spec.strip()
    zone = _zone(zone_name)
    problems = validate_schedule(spec, "")
    if problems:
        raise ScheduleError("; ".join(problems))
    if spec.startswith("@every "):
        return EverySchedule(_every_seconds(spec[len("@every "):]))
    fields = _MACROS.get(spec, spec)
    # robfig/cron takes `?` for `*` in every field; croniter only in the day fields.
    fields = " ".join("*" if f == "?" else f.replace("?", "*") for f in fields.split())
    return CronSchedule(fields, zone)


def _zone(name: str | None) -> tzinfo:
    if name is None:
        return UTC
    problems = validate_time_zone(name, "")
    if problems:
        raise ScheduleError("; ".join(problems))
    return zoneinfo.ZoneInfo(name)


def _every_seconds(duration: str) -> int:
    """A Go duration rounded as robfig/cron's Every does: below a second is a second,
    otherwise whole seconds (the fraction dropped)."""
    text = duration.strip()
    sign = -1 if text.startswith("-") else 1
    text = text.lstrip("+-")
    total, pos = 0.0, 0
    if text == "0":
        return 1
    for match in _GO_DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ScheduleError(f"invalid duration {duration!r}")
    seconds = sign * total
    return 1 if seconds < 1 else int(seconds)


def _aware(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError(f"a naive datetime has no instant: {t!r}")
    return t


# --------------------------------------------------------------------------- runs owed


class Missed(enum.Enum):
    """How many runs were missed before the most recent one (Kubernetes' missedSchedules)."""

    NONE = "none"
    FEW = "few"
    MANY = "many"


@dataclass(frozen=True)
class ScheduleCheck:
    earliest: datetime  # the last scheduled run, else the creation (or the deadline's edge)
    most_recent: datetime | None  # the latest firing in (earliest, now], if any
    missed: Missed


def most_recent_schedule_time(schedule: Schedule, *, created: datetime,
                              last_scheduled: datetime | None, now: datetime,
                              starting_deadline_seconds: int | None = None) -> ScheduleCheck:
    """The latest firing after the last run (or the creation) and at most `now`, and how
    many were missed, reckoned as Kubernetes does: from the gap between the next two
    firings, so that decades of a one-minute schedule cost two steps, not millions.

    With `starting_deadline_seconds`, firings older than that are not considered at all.
    Raises ScheduleError for a schedule whose firings are less than a second apart or
    that never fires."""
    earliest = last_scheduled if last_scheduled is not None else created
    if starting_deadline_seconds is not None:
        deadline_edge = now - timedelta(seconds=starting_deadline_seconds)
        earliest = max(earliest, deadline_edge)
    t1 = schedule.next(earliest)
    if now < t1:
        return ScheduleCheck(earliest, None, Missed.NONE)
    t2 = schedule.next(t1)
    if now < t2:
        return ScheduleCheck(earliest, t1, Missed.NONE)
    between = round((t2 - t1).total_seconds())
    if between < 1:
        raise ScheduleError("time difference between two schedules is less than 1 second")
    elapsed = int((now - t1).total_seconds())
    missed_count = elapsed // between + 1
    # One interval further back than the estimate, and let the schedule itself find the
    # firings from there: irregular schedules (`30 6-16/4 * * 1-5`) are not evenly spaced.
    t = schedule.next(t1 + timedelta(seconds=(missed_count - 2) * between))
    most_recent: datetime | None = None
    while t <= now:
        most_recent = t
        t = schedule.next(t)
    missed = Missed.MANY if missed_count > TOO_MANY_MISSED else Missed.FEW
    return ScheduleCheck(earliest, most_recent, missed)


def next_schedule_time(schedule: Schedule, *, created: datetime,
                       last_scheduled: datetime | None, now: datetime,
                       starting_deadline_seconds: int | None = None
                       ) -> tuple[datetime | None, bool]:
    """The run owed now (None: nothing is due), and whether so many were missed that the
    user should hear of it (Kubernetes' TooManyMissedTimes)."""
    check = most_recent_schedule_time(schedule, created=created, last_scheduled=last_scheduled,
                                      now=now, starting_deadline_seconds=starting_deadline_seconds)
    if check.most_recent is None or check.most_recent > now:
        return None, False
    return check.most_recent, check.missed is Missed.MANY


def requeue_delay(schedule: Schedule, *, created: datetime, last_scheduled: datetime | None,
                  now: datetime) -> float:
    """Seconds until the controller should look at the CronJob again: just after the next
    firing. A schedule that cannot be reckoned aims at the next firing from now."""
    try:
        check = most_recent_schedule_time(schedule, created=created,
                                          last_scheduled=last_scheduled, now=now)
        base = check.most_recent
        if base is None:
            base = check.earliest if check.missed is Missed.NONE else now
    except ScheduleError:
        base = now
    return (schedule.next(base) - now).total_seconds() + NEXT_SCHEDULE_DELTA


def job_name_for(cronjob_name: str, scheduled: datetime) -> str:
    """The Job of one run: the CronJob's name and the run's minute since the epoch, so that
    a run is created once however often the controller looks (the name is the lock)."""
    return f"{cronjob_name}-{int(scheduled.timestamp()) // 60}"
