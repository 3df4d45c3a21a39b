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


def test_spring_forward_skips_a_time_that_does_not_exist_as_robfig_does() -> None:
    # 2024-03-10 02:00 EST jumps to 03:00 EDT: 02:30 does not exist that night, and
    # robfig/cron (so Kubernetes) skips it that day rather than running it late.
    got = firings("30 2 * * *", at(2024, 3, 9, 12), 3, "America/New_York")
    assert got == [at(2024, 3, 11, 6, 30), at(2024, 3, 12, 6, 30),  # 02:30 EDT
                   at(2024, 3, 13, 6, 30)]
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
        most_recent_schedule_time(Stuck(HOURLY.fields, UTC), created=CREATED,
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


# ---- robfig/cron v3's own cases (spec_test.go), which Kubernetes' CronJobs follow ----


def go_time(value: str, zone: str | None = None) -> datetime:
    """robfig's getTime: its layouts, in `zone` (the tests' Local is UTC here)."""
    tz = ZoneInfo(zone) if zone else UTC
    for layout in ("%a %b %d %H:%M %Y", "%a %b %d %H:%M:%S %Y"):
        try:
            return datetime.strptime(value, layout).replace(tzinfo=tz)
        except ValueError:
            pass
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z")


# TestActivation: whether a schedule fires at the given minute.
ACTIVATION = [
    ("Mon Jul 9 15:00 2012", "0/15 * * * *", True),
    ("Mon Jul 9 15:45 2012", "0/15 * * * *", True),
    ("Mon Jul 9 15:40 2012", "0/15 * * * *", False),
    ("Mon Jul 9 15:05 2012", "5/15 * * * *", True),
    ("Mon Jul 9 15:20 2012", "5/15 * * * *", True),
    ("Mon Jul 9 15:50 2012", "5/15 * * * *", True),
    ("Sun Jul 15 15:00 2012", "0/15 * * Jul *", True),
    ("Sun Jul 15 15:00 2012", "0/15 * * Jun *", False),
    ("Sun Jul 15 08:30 2012", "30 08 ? Jul Sun", True),
    ("Sun Jul 15 08:30 2012", "30 08 15 Jul ?", True),
    ("Mon Jul 16 08:30 2012", "30 08 ? Jul Sun", False),
    ("Mon Jul 16 08:30 2012", "30 08 15 Jul ?", False),
    ("Mon Jul 9 15:00 2012", "@hourly", True),
    ("Mon Jul 9 15:04 2012", "@hourly", False),
    ("Mon Jul 9 15:00 2012", "@daily", False),
    ("Mon Jul 9 00:00 2012", "@daily", True),
    ("Mon Jul 9 00:00 2012", "@weekly", False),
    ("Sun Jul 8 00:00 2012", "@weekly", True),
    ("Sun Jul 8 01:00 2012", "@weekly", False),
    ("Sun Jul 8 00:00 2012", "@monthly", False),
    ("Sun Jul 1 00:00 2012", "@monthly", True),
    # Both day fields restricted: either one needs to match.
    ("Sun Jul 15 00:00 2012", "* * 1,15 * Sun", True),
    ("Fri Jun 15 00:00 2012", "* * 1,15 * Sun", True),
    ("Wed Aug 1 00:00 2012", "* * 1,15 * Sun", True),
    ("Sun Jul 15 00:00 2012", "* * */10 * Sun", True),
    # One of them a star: both need to match.
    ("Sun Jul 15 00:00 2012", "* * * * Mon", False),
    ("Mon Jul 9 00:00 2012", "* * 1,15 * *", False),
    ("Sun Jul 15 00:00 2012", "* * 1,15 * *", True),
    ("Sun Jul 15 00:00 2012", "* * */2 * Sun", True),
    # A star with step 1 is still a star (robfig's star bit): Mondays only.
    ("Tue Jul 10 00:00 2012", "0 0 */1 * 1", False),
    ("Mon Jul 9 00:00 2012", "0 0 */1 * 1", True),
    ("Mon Jul 9 00:00 2012", "0 0 1 * */1", False),
    ("Sun Jul 1 00:00 2012", "0 0 1 * */1", True),
    ("Tue Jul 10 00:00 2012", "0 0 ?/1 * mon", False),
    # A star with step 2 restricts: either field may match.
    ("Tue Jul 10 00:00 2012", "0 0 */2 * 1", False),
    ("Wed Jul 11 00:00 2012", "0 0 */2 * 1", True),
    ("Mon Jul 16 00:00 2012", "0 0 */2 * 1", True),
]


@pytest.mark.parametrize(("time", "spec", "fires"), ACTIVATION)
def test_robfig_activation(time: str, spec: str, fires: bool) -> None:
    at_time = go_time(time)
    got = parse_schedule(spec).next(at_time - timedelta(seconds=1))
    assert (got == at_time) is fires


def test_star_step_one_in_day_of_month_keeps_a_weekday_schedule_weekly() -> None:
    # Kubernetes runs `0 0 */1 * 1` on Mondays only (2024-01-01 is a Monday).
    assert firings("0 0 */1 * 1", at(2024, 1, 1, 12), 3) == [
        at(2024, 1, 8), at(2024, 1, 15), at(2024, 1, 22)]


# TestNext, with the seconds field robfig's tests use dropped where it is "0" (the standard
# parser fires at second 0); "TZ=<zone> <time>" times are in that zone, as are schedules
# without a zone of their own (robfig's Local).
NEXT = [
    ("Mon Jul 9 14:45 2012", "0/15 * * * *", "Mon Jul 9 15:00 2012"),
    ("Mon Jul 9 14:59 2012", "0/15 * * * *", "Mon Jul 9 15:00 2012"),
    ("Mon Jul 9 14:59:59 2012", "0/15 * * * *", "Mon Jul 9 15:00 2012"),
    ("Mon Jul 9 15:45 2012", "20-35/15 * * * *", "Mon Jul 9 16:20 2012"),
    ("Mon Jul 9 23:46 2012", "*/15 * * * *", "Tue Jul 10 00:00 2012"),
    ("Mon Jul 9 23:45 2012", "20-35/15 * * * *", "Tue Jul 10 00:20 2012"),
    ("Mon Jul 9 23:35 2012", "0 0 9 Apr-Oct ?", "Thu Aug 9 00:00 2012"),
    ("Mon Jul 9 23:35 2012", "0 0 */5 Apr,Aug,Oct Mon", "Tue Aug 1 00:00 2012"),
    ("Mon Jul 9 23:35 2012", "0 0 */5 Oct Mon", "Mon Oct 1 00:00 2012"),
    ("Mon Jul 9 23:35 2012", "0 0 * Feb Mon", "Mon Feb 4 00:00 2013"),
    ("Mon Jul 9 23:35 2012", "0 0 * Feb Mon/2", "Fri Feb 1 00:00 2013"),
    ("Mon Dec 31 23:59:45 2012", "* * * * *", "Tue Jan 1 00:00:00 2013"),
    ("Mon Jul 9 23:35 2012", "0 0 29 Feb ?", "Mon Feb 29 00:00 2016"),
    # Daylight saving 2am EST (-5) -> 3am EDT (-4): a time in the gap is skipped.
    ("2012-03-11T00:00:00-0500", "TZ=America/New_York 30 2 11 Mar ?",
     "2013-03-11T02:30:00-0400"),
    ("2012-03-11T00:00:00-0500", "TZ=America/New_York 0 * * * ?", "2012-03-11T01:00:00-0500"),
    ("2012-03-11T01:00:00-0500", "TZ=America/New_York 0 * * * ?", "2012-03-11T03:00:00-0400"),
    ("2012-03-11T03:00:00-0400", "TZ=America/New_York 0 * * * ?", "2012-03-11T04:00:00-0400"),
    ("2012-03-11T04:00:00-0400", "TZ=America/New_York 0 * * * ?", "2012-03-11T05:00:00-0400"),
    ("2012-03-11T00:00:00-0500", "CRON_TZ=America/New_York 0 * * * ?",
     "2012-03-11T01:00:00-0500"),
    ("2012-03-11T01:00:00-0500", "CRON_TZ=America/New_York 0 * * * ?",
     "2012-03-11T03:00:00-0400"),
    ("2012-03-11T03:00:00-0400", "CRON_TZ=America/New_York 0 * * * ?",
     "2012-03-11T04:00:00-0400"),
    ("2012-03-11T04:00:00-0400", "CRON_TZ=America/New_York 0 * * * ?",
     "2012-03-11T05:00:00-0400"),
    ("2012-03-11T00:00:00-0500", "TZ=America/New_York 0 1 * * ?", "2012-03-11T01:00:00-0500"),
    ("2012-03-11T01:00:00-0500", "TZ=America/New_York 0 1 * * ?", "2012-03-12T01:00:00-0400"),
    ("2012-03-11T00:00:00-0500", "TZ=America/New_York 0 2 * * ?", "2012-03-12T02:00:00-0400"),
    # Daylight saving 2am EDT (-4) -> 1am EST (-5): a repeated hour runs twice.
    ("2012-11-04T00:00:00-0400", "TZ=America/New_York 30 2 04 Nov ?",
     "2012-11-04T02:30:00-0500"),
    ("2012-11-04T01:45:00-0400", "TZ=America/New_York 30 1 04 Nov ?",
     "2012-11-04T01:30:00-0500"),
    ("2012-11-04T00:00:00-0400", "TZ=America/New_York 0 * * * ?", "2012-11-04T01:00:00-0400"),
    ("2012-11-04T01:00:00-0400", "TZ=America/New_York 0 * * * ?", "2012-11-04T01:00:00-0500"),
    ("2012-11-04T01:00:00-0500", "TZ=America/New_York 0 * * * ?", "2012-11-04T02:00:00-0500"),
    ("2012-11-04T00:00:00-0400", "TZ=America/New_York 0 1 * * ?", "2012-11-04T01:00:00-0400"),
    ("2012-11-04T01:00:00-0400", "TZ=America/New_York 0 1 * * ?", "2012-11-04T01:00:00-0500"),
    ("2012-11-04T01:00:00-0500", "TZ=America/New_York 0 1 * * ?", "2012-11-05T01:00:00-0500"),
    ("2012-11-04T00:00:00-0400", "TZ=America/New_York 0 2 * * ?", "2012-11-04T02:00:00-0500"),
    ("2012-11-04T02:00:00-0500", "TZ=America/New_York 0 2 * * ?", "2012-11-05T02:00:00-0500"),
    ("2012-11-04T00:00:00-0400", "TZ=America/New_York 0 3 * * ?", "2012-11-04T03:00:00-0500"),
    ("2012-11-04T03:00:00-0500", "TZ=America/New_York 0 3 * * ?", "2012-11-05T03:00:00-0500"),
    ("TZ=America/New_York 2012-11-04T00:00:00-0400", "0 * * * ?", "2012-11-04T01:00:00-0400"),
    ("TZ=America/New_York 2012-11-04T01:00:00-0400", "0 * * * ?", "2012-11-04T01:00:00-0500"),
    ("TZ=America/New_York 2012-11-04T01:00:00-0500", "0 * * * ?", "2012-11-04T02:00:00-0500"),
    ("TZ=America/New_York 2012-11-04T00:00:00-0400", "0 1 * * ?", "2012-11-04T01:00:00-0400"),
    ("TZ=America/New_York 2012-11-04T01:00:00-0400", "0 1 * * ?", "2012-11-04T01:00:00-0500"),
    ("TZ=America/New_York 2012-11-04T01:00:00-0500", "0 1 * * ?", "2012-11-05T01:00:00-0500"),
    ("TZ=America/New_York 2012-11-04T00:00:00-0400", "0 2 * * ?", "2012-11-04T02:00:00-0500"),
    ("TZ=America/New_York 2012-11-04T02:00:00-0500", "0 2 * * ?", "2012-11-05T02:00:00-0500"),
    ("TZ=America/New_York 2012-11-04T00:00:00-0400", "0 3 * * ?", "2012-11-04T03:00:00-0500"),
    ("TZ=America/New_York 2012-11-04T03:00:00-0500", "0 3 * * ?", "2012-11-05T03:00:00-0500"),
    # Unsatisfiable: robfig returns the zero time, here an error.
    ("Mon Jul 9 23:35 2012", "0 0 30 Feb ?", ""),
    ("Mon Jul 9 23:35 2012", "0 0 31 Apr ?", ""),
    ("TZ=America/New_York 2012-11-04T00:00:00-0400", "0 3 3 * ?", "2012-12-03T03:00:00-0500"),
    # Midnight that does not exist (Sao Paulo's DST started at 00:00).
    ("2018-10-17T05:00:00-0400", "TZ=America/Sao_Paulo 0 9 10 * ?", "2018-11-10T06:00:00-0500"),
    ("2018-02-14T05:00:00-0500", "TZ=America/Sao_Paulo 0 9 22 * ?", "2018-02-22T07:00:00-0500"),
]


def _split_zone(text: str) -> tuple[str | None, str]:
    if text.startswith("TZ="):
        prefix, _, rest = text.partition(" ")
        return prefix[len("TZ="):], rest
    return None, text


@pytest.mark.parametrize(("time", "spec", "expected"), NEXT)
def test_robfig_next(time: str, spec: str, expected: str) -> None:
    zone, time = _split_zone(time)
    schedule = parse_schedule(spec, zone)
    start = go_time(time, zone)
    if not expected:
        with pytest.raises(ScheduleError):
            schedule.next(start)
        return
    assert schedule.next(start) == go_time(expected)


# TestNext's cases with a seconds field (robfig's seconds parser): the same Next, with the
# seconds set built by hand.
NEXT_WITH_SECONDS = [
    ("Mon Jul 9 23:35:51 2012", "15/35 20-35/15 * * * *", "Tue Jul 10 00:20:15 2012"),
    ("Mon Jul 9 23:35:51 2012", "15/35 20-35/15 1/2 * * *", "Tue Jul 10 01:20:15 2012"),
    ("Mon Jul 9 23:35:51 2012", "15/35 20-35/15 10-12 * * *", "Tue Jul 10 10:20:15 2012"),
    ("Mon Jul 9 23:35:51 2012", "15/35 20-35/15 1/2 */2 * *", "Thu Jul 11 01:20:15 2012"),
    ("Mon Jul 9 23:35:51 2012", "15/35 20-35/15 * 9-20 * *", "Wed Jul 10 00:20:15 2012"),
    ("Mon Jul 9 23:35:51 2012", "15/35 20-35/15 * 9-20 Jul *", "Wed Jul 10 00:20:15 2012"),
]


@pytest.mark.parametrize(("time", "spec", "expected"), NEXT_WITH_SECONDS)
def test_robfig_next_with_seconds(time: str, spec: str, expected: str) -> None:
    from dataclasses import replace

    from controllers.common.cron import CronSchedule
    from skiff.api.validation.cron import SECONDS, CronFields, field_bits, parse_standard

    second, rest = spec.split(" ", 1)
    fields = parse_standard(rest)
    assert isinstance(fields, CronFields)
    schedule = CronSchedule(replace(fields, second=field_bits(second, SECONDS)), UTC)
    assert schedule.next(go_time(time)) == go_time(expected)


# TestNextWithTz: a schedule without a zone runs on the wall clock of the time it is given
# (here a fixed +05:30).
@pytest.mark.parametrize(("time", "spec", "expected"), [
    ("2016-01-03T13:09:03+0530", "14 14 * * *", "2016-01-03T14:14:00+0530"),
    ("2016-01-03T04:09:03+0530", "14 14 * * ?", "2016-01-03T14:14:00+0530"),
    ("2016-01-03T14:09:03+0530", "14 14 * * *", "2016-01-03T14:14:00+0530"),
    ("2016-01-03T14:00:00+0530", "14 14 * * ?", "2016-01-03T14:14:00+0530"),
])
def test_robfig_next_with_tz(time: str, spec: str, expected: str) -> None:
    from controllers.common.cron import CronSchedule

    schedule = parse_schedule(spec)
    assert isinstance(schedule, CronSchedule)
    start = go_time(time)
    on_its_clock = CronSchedule(schedule.fields, start.tzinfo)  # type: ignore[arg-type]
    assert on_its_clock.next(start) == go_time(expected)
