"""CronJob schedules: when a schedule fires, and which run a CronJob owes at a given time.

Kubernetes reads `spec.schedule` with robfig/cron v3's standard parser and runs it with
that library's SpecSchedule.Next; both are reproduced here rather than approximated with a
general cron library, because the differences are what users notice:

- Day of month and day of week: if either field was written as a star (`*`, `?`, or a
  star with step 1 such as `*/1`), a day must match both; if both are restricted, either
  one suffices. So `0 0 */1 * 1` runs on Mondays only, and `0 0 13 * 5` on every 13th and
  every Friday.
- Daylight saving, in the CronJob's `timeZone` (or UTC when it has none): Next walks the
  wall clock as robfig/cron does with Go's time package, so a wall time that does not
  exist (02:30 on a spring-forward night in New York) is skipped that day, an hourly
  schedule goes 01:00 -> 03:00, and a wall time that happens twice (01:30 on a fall-back
  night) runs twice, at two distinct instants (so its Jobs get distinct names).
- Nothing found within five years (`0 0 30 2 *`): an error, where robfig returns the
  zero time.

The grammar lives in skiff.api.validation.cron (the apiserver refuses what the parser
refuses). `most_recent_schedule_time` is the Kubernetes CronJob controller's (v2)
reckoning of the one run owed now, `next_schedule_time` and `requeue_delay` are built on
it. All of it is pure: callers pass `now`.
"""

from __future__ import annotations

import abc
import enum
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

from skiff.api.validation.cron import (
    STAR_BIT,
    ConstantDelay,
    CronFields,
    CronSyntaxError,
    parse_standard,
    validate_time_zone,
)

__all__ = [
    "NEXT_SCHEDULE_DELTA",
    "TOO_MANY_MISSED",
    "CronSchedule",
    "EverySchedule",
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

# robfig/cron gives up (returns the zero time) after this many years without a firing.
_YEAR_LIMIT = 5


class ScheduleError(ValueError):
    """A schedule that cannot be used: bad grammar, an unknown zone, or one that never
    fires (`0 0 30 2 *`)."""


class Schedule(abc.ABC):
    """When a schedule fires. Times in and out are timezone-aware; out in UTC."""

    @abc.abstractmethod
    def next(self, after: datetime) -> datetime:
        """The first firing strictly after `after` (whole seconds, as robfig/cron)."""


class CronSchedule(Schedule):
    """robfig/cron's SpecSchedule: field bit sets evaluated on the wall clock of one zone."""

    def __init__(self, fields: CronFields, zone: tzinfo) -> None:
        self.fields = fields
        self.zone = zone

    def __repr__(self) -> str:
        return f"CronSchedule({self.fields!r}, {self.zone})"

    def next(self, after: datetime) -> datetime:
        """SpecSchedule.Next, step for step, on Go's time arithmetic (_GoClock)."""
        s, clock = self.fields, _GoClock(self.zone)
        # The earliest candidate: the upcoming whole second.
        t = _unix_seconds(_aware(after)) + 1
        added = False
        year_limit = clock.wall(t).year + _YEAR_LIMIT
        while True:  # robfig's WRAP label: a field wrapped, check them all again
            w = clock.wall(t)
            if w.year > year_limit:
                raise ScheduleError("no time matches the schedule within "
                                    f"{_YEAR_LIMIT} years")
            wrapped = False
            while not (1 << w.month) & s.month:
                if not added:
                    added = True
                    t = clock.date(w.year, w.month, 1, 0, 0, 0)
                t = clock.add_date(t, months=1)
                w = clock.wall(t)
                if w.month == 1:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not _day_matches(s, w):
                if not added:
                    added = True
                    t = clock.date(w.year, w.month, w.day, 0, 0, 0)
                t = clock.add_date(t, days=1)
                w = clock.wall(t)
                # Where midnight does not exist (a DST change at 00:00), the day starts at
                # 01:00 or is reached as 23:00 the day before: back to the day's start.
                if w.hour != 0:
                    t += (24 - w.hour) * 3600 if w.hour > 12 else -w.hour * 3600
                    w = clock.wall(t)
                if w.day == 1:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not (1 << w.hour) & s.hour:
                if not added:
                    added = True
                    t = clock.date(w.year, w.month, w.day, w.hour, 0, 0)
                t += 3600
                w = clock.wall(t)
                if w.hour == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not (1 << w.minute) & s.minute:
                if not added:
                    added = True
                    t -= t % 60  # Go's Truncate(time.Minute): on the instant, not the wall
                t += 60
                w = clock.wall(t)
                if w.minute == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            while not (1 << w.second) & s.second:
                added = True  # t is already a whole second
                t += 1
                w = clock.wall(t)
                if w.second == 0:
                    wrapped = True
                    break
            if wrapped:
                continue
            # In UTC: a wall time that happens twice (fold=1) never compares equal to
            # another zone's datetime (PEP 495), and callers compare instants.
            return datetime.fromtimestamp(t, UTC)


def _day_matches(s: CronFields, w: datetime) -> bool:
    """robfig's dayMatches: a star in either day field makes both required."""
    dom_match = bool((1 << w.day) & s.dom)
    dow_match = bool((1 << (w.isoweekday() % 7)) & s.dow)
    if s.dom & STAR_BIT or s.dow & STAR_BIT:
        return dom_match and dow_match
    return dom_match or dow_match


class _GoClock:
    """The few operations of Go's time package that robfig's Next uses, on whole Unix
    seconds shown in one zone. Their behaviour at DST changes is what Next's is."""

    _EPOCH_DAY = date(1970, 1, 1).toordinal()

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone

    def wall(self, unix: int) -> datetime:
        return datetime.fromtimestamp(unix, self.zone)

    def offset(self, unix: int) -> int:
        offset = self.wall(unix).utcoffset()
        assert offset is not None
        return int(offset.total_seconds())

    def date(self, year: int, month: int, day: int, hour: int, minute: int,
             second: int) -> int:
        """Go's time.Date: out-of-range months and days carry over; a wall time that does
        not exist or exists twice takes the offset Go's lookup finds: the offset in force
        at the instant the wall time would be in UTC, then the one in force at the instant
        that offset gives (the earlier of two repeated times; in a gap, the offset after
        it, e.g. 02:30 in New York's spring-forward gap is 01:30 EST)."""
        year += (month - 1) // 12
        month = (month - 1) % 12 + 1
        days = date(year, month, 1).toordinal() - self._EPOCH_DAY + day - 1
        local = days * 86400 + hour * 3600 + minute * 60 + second
        return local - self.offset(local - self.offset(local))

    def add_date(self, unix: int, *, months: int = 0, days: int = 0) -> int:
        """Go's Time.AddDate: the same wall clock, so many months or days later."""
        w = self.wall(unix)
        return self.date(w.year, w.month + months, w.day + days, w.hour, w.minute, w.second)


def _unix_seconds(t: datetime) -> int:
    """Whole seconds since the epoch, rounded down (exact: no float)."""
    return (t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(seconds=1)


class EverySchedule(Schedule):
    """`@every <duration>`: a constant delay after the (whole) second given, which is what
    robfig/cron's ConstantDelaySchedule does; it has no phase of its own."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds

    def __repr__(self) -> str:
        return f"EverySchedule({self.seconds}s)"

    def next(self, after: datetime) -> datetime:
        return _aware(after).replace(microsecond=0) + timedelta(seconds=self.seconds)


def parse_schedule(spec: str, time_zone: str | None = None) -> Schedule:
    """The schedule `spec` in `time_zone` (None: UTC). A `TZ=`/`CRON_TZ=` prefix in the
    spec wins over `time_zone`, as in Kubernetes. Raises ScheduleError."""
    try:
        parsed = parse_standard(spec.strip())
    except CronSyntaxError as err:
        raise ScheduleError(str(err)) from None
    if isinstance(parsed, ConstantDelay):
        return EverySchedule(parsed.seconds)
    return CronSchedule(parsed, _zone(parsed.zone or time_zone))


def _zone(name: str | None) -> tzinfo:
    if name is None:
        return UTC
    problems = validate_time_zone(name, "")
    if problems:
        raise ScheduleError("; ".join(problems))
    return zoneinfo.ZoneInfo(name)


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
