"""CronJob schedules: firings (macros, time zones, daylight saving), the run owed now and
the requeue delay, as Kubernetes' cronjob controller reckons them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from controllers.common.cron import (
    Missed,
    ScheduleError,
    job_name_for,
    most_recent_schedule_time,
    next_schedule_time,
    parse_schedule,
    requeue_delay,
)

NY = ZoneInfo("America/New_York")


def at(*args: int, tz: object = UTC) -> datetime:
    return datetime(*args, tzinfo=tz)  # type: ignore[arg-type, misc]


def firings(spec: str, start: datetime, n: int, zone: str | None = None) -> list[datetime]:
    schedule = parse_schedule(spec, zone)
    out, t = [], start
    for _ in range(n):
        t = schedule.next(t)
        out.append(t.astimezone(UTC))
    return out


# ---- next firings ----


def test_every_minute_is_strictly_after_and_whole_minutes() -> None:
    assert firings("* * * * *", at(2024, 1, 1, 12, 0), 2) == [at(2024, 1, 1, 12, 1),
                                                            at(2024, 1, 1, 12, 2)]
    start = at(2024, 1, 1, 12, 0, 30) + timedelta(microseconds=500)
    assert firings("* * * * *", start, 1) == [at(2024, 1, 1, 12, 1)]


@pytest.mark.parametrize(("spec", "expected"), [
    ("@hourly", [at(2024, 1, 1, 13), at(2024, 1, 1, 14)]),
    ("@daily", [at(2024, 1, 2), at(2024, 1, 3)]),
    ("@midnight", [at(2024, 1, 2), at(2024, 1, 3)]),
    ("@weekly", [at(2024, 1, 7), at(2024, 1, 14)]),  # Sundays
    ("@monthly", [at(2024, 2, 1), at(2024, 3, 1)]),
    ("@yearly", [at(2025, 1, 1), at(2026, 1, 1)]),
    ("@annually", [at(2025, 1, 1), at(2026, 1, 1)]),
])
def test_macros(spec: str, expected: list[datetime]) -> None:
    assert firings(spec, at(2024, 1, 1, 12, 30), 2) == expected


@pytest.mark.parametrize(("spec", "expected"), [
    ("*/15 9-17 * * mon-fri", [at(2024, 1, 5, 17, 45), at(2024, 1, 8, 9, 0)]),  # Fri->Mon
    ("5/20 * * * *", [at(2024, 1, 5, 17, 45), at(2024, 1, 5, 18, 5)]),  # N/step: N..59
    ("0 0 1,15 jan,feb *", [at(2024, 1, 15), at(2024, 2, 1)]),
    # Both day fields restricted: either matches (the 13th, or any Friday).
    ("0 0 13 * 5", [at(2024, 1, 12), at(2024, 1, 13)]),
    ("0 0 29 2 *", [at(2024, 2, 29), at(2028, 2, 29)]),
    ("? ? * * *", [at(2024, 1, 5, 17, 41), at(2024, 1, 5, 17, 42)]),
])
def test_fields(spec: str, expected: list[datetime]) -> None:
    assert firings(spec, at(2024, 1, 5, 17, 40), 2) == expected


def test_every_duration_is_a_constant_delay_from_the_whole_second() -> None:
    start = at(2024, 1, 1, 12, 0, 7) + timedelta(milliseconds=900)
    assert firings("@every 1m30s", start, 2) == [at(2024, 1, 1, 12, 1, 37),
                                                 at(2024, 1, 1, 12, 3, 7)]
    # Below a second rounds up to one; fractions of a second are dropped.
    assert firings("@every 10ms", at(2024, 1, 1), 1) == [at(2024, 1, 1, 0, 0, 1)]
    assert firings("@every 2.5s", at(2024, 1, 1), 1) == [at(2024, 1, 1, 0, 0, 2)]


def test_previous_firing() -> None:
    schedule = parse_schedule("0 */6 * * *")
    assert schedule.previous(at(2024, 1, 1, 13, 0)) == at(2024, 1, 1, 12, 0)
    assert schedule.previous(at(2024, 1, 1, 12, 0)) == at(2024, 1, 1, 6, 0)


# ---- time zones and daylight saving ----


def test_time_zone_field_shifts_the_wall_clock() -> None:
    # 09:00 in New York is 14:00 UTC in winter and 13:00 UTC in summer.
    assert firings("0 9 * * *", at(2024, 1, 1), 1, "America/New_York") == [at(2024, 1, 1, 14)]
    assert firings("0 9 * * *", at(2024, 7, 1), 1, "America/New_York") == [at(2024, 7, 1, 13)]


def test_tz_prefix_wins_over_the_time_zone_field() -> None:
    assert firings("CRON_TZ=Asia/Tokyo 0 9 * * *", at(2023, 12, 31, 12), 1,
                   "America/New_York") == [
        at(2024, 1, 1, 0)]
    assert firings("TZ=Europe/Paris 30 8 * * *", at(2024, 1, 1), 1) == [at(2024, 1, 1, 7, 30)]


def test_spring_forward_runs_a_skipped_time_once_right_after_the_gap() -> None:
    # 2024-03-10 02:00 EST jumps to 03:00 EDT: 02:30 does not exist that night.
    got = firings("30 2 * * *", at(2024, 3, 9, 12), 3, "America/New_York")
    assert got == [at(2024, 3, 10, 7, 0),  # 03:00 EDT
                   at(2024, 3, 11, 6, 30), at(2024, 3, 12, 6, 30)]  # 02:30 EDT
    hourly = firings("0 * * * *", at(2024, 3, 10, 5, 30), 3, "America/New_York")
    assert hourly == [at(2024, 3, 10, 6), at(2024, 3, 10, 7), at(2024, 3, 10, 8)]
    assert [t.astimezone(NY).hour for t in hourly] == [1, 3, 4]


def test_fall_back_runs_a_repeated_time_twice_at_distinct_instants() -> None:
    # 2024-11-03 02:00 EDT falls back to 01:00 EST: 01:30 happens twice.
    got = firings("30 1 * * *", at(2024, 11, 2, 12), 3, "America/New_York")
    assert got == [at(2024, 11, 3, 5, 30), at(2024, 11, 3, 6, 30), at(2024, 11, 4, 6, 30)]
    names = {job_name_for("backup", t) for t in got}
    assert len(names) == 3


# ---- invalid schedules ----


@pytest.mark.parametrize(("spec", "message"), [
    ("", "empty spec string"),
    ("* * * *", "expected exactly 5 fields, found 4"),
    ("* * * * * *", "expected exactly 5 fields, found 6"),
    ("60 * * * *", "end of range (60) above maximum (59)"),
    ("0 0 L * *", "failed to parse int from L"),
    ("0 0 * * 7", "end of range (7) above maximum (6)"),
    ("@fortnightly", "unrecognized descriptor: @fortnightly"),
    ("@every soon", "failed to parse duration"),
])
def test_invalid_schedules_are_refused_with_the_parsers_reason(spec: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_schedule(spec)


def test_unknown_time_zones_are_refused() -> None:
    with pytest.raises(ScheduleError, match="unknown time zone Mars/Olympus"):
        parse_schedule("* * * * *", "Mars/Olympus")
    with pytest.raises(ScheduleError, match="unknown time zone Nowhere"):
        parse_schedule("TZ=Nowhere * * * * *")


def test_a_schedule_that_never_fires_is_an_error_not_a_hang() -> None:
    schedule = parse_schedule("0 0 30 2 *")  # grammatically fine, no such day
    with pytest.raises(ScheduleError):
        schedule.next(at(2024, 1, 1))


# ---- the run owed now ----

HOURLY = parse_schedule("0 * * * *")
CREATED = at(2024, 1, 1, 9, 10)


def test_nothing_owed_before_the_first_firing() -> None:
    check = most_recent_schedule_time(HOURLY, created=CREATED, last_scheduled=None,
                                      now=at(2024, 1, 1, 9, 59))
    assert check.most_recent is None and check.missed is Missed.NONE
    assert check.earliest == CREATED


def test_the_first_firing_is_owed_once_it_passed() -> None:
    check = most_recent_schedule_time(HOURLY, created=CREATED, last_scheduled=None,
                                      now=at(2024, 1, 1, 10, 0, 5))
    assert check.most_recent == at(2024, 1, 1, 10) and check.missed is Missed.NONE


def test_several_missed_take_the_latest_only() -> None:
    check = most_recent_schedule_time(HOURLY, created=CREATED, last_scheduled=None,
                                      now=at(2024, 1, 1, 13, 20))
    assert check.most_recent == at(2024, 1, 1, 13) and check.missed is Missed.FEW


def test_last_schedule_time_wins_over_creation() -> None:
    check = most_recent_schedule_time(HOURLY, created=CREATED,
                                      last_scheduled=at(2024, 1, 1, 13),
                                      now=at(2024, 1, 1, 13, 20))
    assert check.most_recent is None
    owed, too_many = next_schedule_time(HOURLY, created=CREATED,
                                        last_scheduled=at(2024, 1, 1, 12),
                                        now=at(2024, 1, 1, 13, 20))
    assert owed == at(2024, 1, 1, 13) and not too_many


def test_more_than_100_missed_is_too_many_but_still_gives_the_latest() -> None:
    now = at(2024, 1, 6, 10, 30)  # about 121 hourly runs later
    owed, too_many = next_schedule_time(HOURLY, created=CREATED, last_scheduled=None, now=now)
    assert owed == at(2024, 1, 6, 10) and too_many
    # 100 missed is still "few".
    owed, too_many = next_schedule_time(HOURLY, created=CREATED, last_scheduled=None,
                                        now=at(2024, 1, 5, 13, 30))
    assert owed == at(2024, 1, 5, 13) and not too_many


def test_decades_of_a_one_minute_schedule_cost_no_more_than_a_few_steps() -> None:
    owed, too_many = next_schedule_time(parse_schedule("* * * * *"),
                                        created=at(1990, 1, 1), last_scheduled=None,
                                        now=at(2024, 6, 1, 12, 0, 30))
    assert owed == at(2024, 6, 1, 12, 0) and too_many


def test_starting_deadline_hides_older_firings() -> None:
    now = at(2024, 1, 6, 10, 30)
    # Without it: too many; with 2 hours: only the last two runs are in view.
    owed, too_many = next_schedule_time(HOURLY, created=CREATED, last_scheduled=None, now=now,
                                        starting_deadline_seconds=7200)
    assert owed == at(2024, 1, 6, 10) and not too_many
    # A deadline shorter than the time since the last firing: nothing is owed.
    owed, _ = next_schedule_time(HOURLY, created=CREATED, last_scheduled=None, now=now,
                                 starting_deadline_seconds=600)
    assert owed is None


def test_irregular_schedules_find_the_true_latest_firing() -> None:
    schedule = parse_schedule("30 6-16/4 * * 1-5")  # 06:30, 10:30, 14:30 on weekdays
    owed, _ = next_schedule_time(schedule, created=at(2024, 1, 1), last_scheduled=None,
                                 now=at(2024, 1, 10, 12, 0))
    assert owed == at(2024, 1, 10, 10, 30)


def test_firings_less_than_a_second_apart_are_invalid() -> None:
    class Stuck(type(HOURLY)):  # type: ignore[misc]
        def next(self, after: datetime) -> datetime:
            return at(2024, 1, 1, 10)

    with pytest.raises(ScheduleError, match="less than 1 second"):
        most_recent_schedule_time(Stuck("0 * * * *", UTC), created=CREATED,
                                  last_scheduled=None, now=at(2024, 1, 1, 11))


# ---- when to look again ----


def test_requeue_just_after_the_next_firing() -> None:
    delay = requeue_delay(HOURLY, created=CREATED, last_scheduled=None,
                          now=at(2024, 1, 1, 9, 30))
    assert delay == pytest.approx(30 * 60 + 0.1)
    delay = requeue_delay(HOURLY, created=CREATED, last_scheduled=at(2024, 1, 1, 10),
                          now=at(2024, 1, 1, 10, 0, 2))
    assert delay == pytest.approx(3598.1)
    # Runs missed and not taken (a deadline): aim at the next firing from now.
    delay = requeue_delay(HOURLY, created=CREATED, last_scheduled=None,
                          now=at(2024, 1, 1, 12, 59, 50))
    assert delay == pytest.approx(10.1)


def test_job_names_are_the_minute_since_the_epoch() -> None:
    assert job_name_for("hello", at(2024, 1, 1, 0, 1)) == "hello-28401121"
    assert job_name_for("hello", at(2024, 1, 1, 0, 1, 59)) == "hello-28401121"


def test_the_job_of_a_run_carries_its_scheduled_time_in_the_cronjobs_zone() -> None:
    from controllers.workloads.cronjob import SCHEDULED_TIMESTAMP_ANNOTATION, job_from_template
    from skiff.api.v1 import batch_pb2

    cj = batch_pb2.CronJob()
    cj.metadata.name, cj.metadata.namespace, cj.metadata.uid = "report", "team", "u-1"
    cj.spec.job_template.metadata.labels["app"] = "report"
    cj.spec.job_template.spec.backoff_limit = 1
    scheduled = at(2024, 1, 1, 0, 0)
    job = job_from_template(cj, scheduled)
    assert (job.metadata.name, job.metadata.namespace) == ("report-28401120", "team")
    assert job.metadata.annotations[SCHEDULED_TIMESTAMP_ANNOTATION] == "2024-01-01T00:00:00Z"
    assert dict(job.metadata.labels) == {"app": "report"}
    assert job.spec.backoff_limit == 1
    [ref] = job.metadata.owner_references
    assert (ref.kind, ref.name, ref.uid, ref.controller) == ("CronJob", "report", "u-1", True)

    cj.spec.time_zone = "Asia/Tokyo"
    job = job_from_template(cj, scheduled)
    assert job.metadata.annotations[SCHEDULED_TIMESTAMP_ANNOTATION] == "2024-01-01T09:00:00+09:00"
