"""CronJob schedule grammar: robfig/cron v3's standard parser (parser_test.go's tables),
which Kubernetes validates `spec.schedule` with."""

from __future__ import annotations

import pytest

from skiff.api.validation.cron import (
    DAYS_OF_MONTH,
    DAYS_OF_WEEK,
    HOURS,
    MINUTES,
    MONTHS,
    STAR_BIT,
    Bounds,
    ConstantDelay,
    CronFields,
    CronSyntaxError,
    field_bits,
    go_duration_nanos,
    parse_standard,
)


def _all(bounds: Bounds) -> int:
    return sum(1 << v for v in range(bounds.low, bounds.high + 1)) | STAR_BIT


# TestRange
@pytest.mark.parametrize(("expr", "low", "high", "expected", "error"), [
    ("5", 0, 7, 1 << 5, ""),
    ("0", 0, 7, 1 << 0, ""),
    ("7", 0, 7, 1 << 7, ""),
    ("5-5", 0, 7, 1 << 5, ""),
    ("5-6", 0, 7, 1 << 5 | 1 << 6, ""),
    ("5-7", 0, 7, 1 << 5 | 1 << 6 | 1 << 7, ""),
    ("5-6/2", 0, 7, 1 << 5, ""),
    ("5-7/2", 0, 7, 1 << 5 | 1 << 7, ""),
    ("5-7/1", 0, 7, 1 << 5 | 1 << 6 | 1 << 7, ""),
    ("*", 1, 3, 1 << 1 | 1 << 2 | 1 << 3 | STAR_BIT, ""),
    ("*/2", 1, 3, 1 << 1 | 1 << 3, ""),
    # A step of one keeps the star bit: "*/1" is as unrestricted as "*".
    ("*/1", 1, 3, 1 << 1 | 1 << 2 | 1 << 3 | STAR_BIT, ""),
    ("?/1", 1, 3, 1 << 1 | 1 << 2 | 1 << 3 | STAR_BIT, ""),
    ("5--5", 0, 0, 0, "too many hyphens"),
    ("jan-x", 0, 0, 0, "failed to parse int from"),
    ("2-x", 1, 5, 0, "failed to parse int from"),
    ("*/-12", 0, 0, 0, "negative number"),
    ("*//2", 0, 0, 0, "too many slashes"),
    ("1", 3, 5, 0, "below minimum"),
    ("6", 3, 5, 0, "above maximum"),
    ("5-3", 3, 5, 0, "beyond end of range"),
    ("*/0", 0, 0, 0, "should be a positive number"),
])
def test_range(expr: str, low: int, high: int, expected: int, error: str) -> None:
    if error:
        with pytest.raises(CronSyntaxError, match=error):
            field_bits(expr, Bounds(low, high))
    else:
        assert field_bits(expr, Bounds(low, high)) == expected


# TestField
@pytest.mark.parametrize(("expr", "expected"), [
    ("5", 1 << 5),
    ("5,6", 1 << 5 | 1 << 6),
    ("5,6,7", 1 << 5 | 1 << 6 | 1 << 7),
    ("1,5-7/2,3", 1 << 1 | 1 << 5 | 1 << 7 | 1 << 3),
])
def test_field(expr: str, expected: int) -> None:
    assert field_bits(expr, Bounds(1, 7)) == expected


# TestAll
@pytest.mark.parametrize(("bounds", "expected"), [
    (MINUTES, 0xfffffffffffffff),
    (HOURS, 0xffffff),
    (DAYS_OF_MONTH, 0xfffffffe),
    (MONTHS, 0x1ffe),
    (DAYS_OF_WEEK, 0x7f),
])
def test_all(bounds: Bounds, expected: int) -> None:
    assert field_bits("*", bounds) == expected | STAR_BIT


# TestBits (getBits through a range with a step)
@pytest.mark.parametrize(("expr", "expected"), [
    ("0-0", 0x1), ("1-1", 0x2), ("1-5/2", 0x2a), ("1-4/2", 0xa),
])
def test_bits(expr: str, expected: int) -> None:
    assert field_bits(expr, Bounds(0, 7)) == expected


def _every5min(zone: str | None = None) -> CronFields:
    return CronFields(1 << 5, _all(HOURS), _all(DAYS_OF_MONTH), _all(MONTHS),
                      _all(DAYS_OF_WEEK), zone=zone)


def _midnight(zone: str | None = None) -> CronFields:
    return CronFields(1, 1, _all(DAYS_OF_MONTH), _all(MONTHS), _all(DAYS_OF_WEEK), zone=zone)


# TestParseSchedule and TestStandardSpecSchedule (the standard parser's cases)
@pytest.mark.parametrize(("spec", "expected"), [
    ("5 * * * *", _every5min()),
    ("CRON_TZ=UTC  5 * * * *", _every5min("UTC")),
    ("CRON_TZ=Asia/Tokyo 5 * * * *", _every5min("Asia/Tokyo")),
    ("@every 5m", ConstantDelay(300)),
    ("@midnight", _midnight()),
    ("TZ=UTC  @midnight", _midnight("UTC")),
    ("TZ=Asia/Tokyo @midnight", _midnight("Asia/Tokyo")),
    ("@yearly", CronFields(1, 1, 1 << 1, 1 << 1, _all(DAYS_OF_WEEK))),
    ("@annually", CronFields(1, 1, 1 << 1, 1 << 1, _all(DAYS_OF_WEEK))),
    ("@monthly", CronFields(1, 1, 1 << 1, _all(MONTHS), _all(DAYS_OF_WEEK))),
    ("@weekly", CronFields(1, 1, _all(DAYS_OF_MONTH), _all(MONTHS), 1)),
    ("@daily", _midnight()),
    ("@hourly", CronFields(1, _all(HOURS), _all(DAYS_OF_MONTH), _all(MONTHS),
                           _all(DAYS_OF_WEEK))),
    ("* 5 * * *", CronFields(_all(MINUTES), 1 << 5, _all(DAYS_OF_MONTH), _all(MONTHS),
                             _all(DAYS_OF_WEEK))),
    ("0 0 */1 * 1", CronFields(1, 1, _all(DAYS_OF_MONTH), _all(MONTHS), 1 << 1)),
])
def test_parse_standard(spec: str, expected: CronFields | ConstantDelay) -> None:
    assert parse_standard(spec) == expected


# TestParseScheduleErrors, TestStandardSpecSchedule's errors, TestErrors, TestSlash0NoHang
@pytest.mark.parametrize(("spec", "error"), [
    ("5 j * * *", "failed to parse int from"),
    ("* 5 j * *", "failed to parse int from"),
    ("@every Xm", "failed to parse duration"),
    ("@unrecognized", "unrecognized descriptor"),
    ("* * * *", "expected exactly 5 fields"),
    ("", "empty spec string"),
    ("xyz", "expected exactly 5 fields"),
    ("60 0 * * *", "above maximum"),
    ("0 60 * * *", "above maximum"),
    ("0 0 * * XYZ", "failed to parse int from XYZ"),
    ("TZ=America/New_York 15/0 * * * *", "should be a positive number"),
    ("99999999999999999999 * * * *", "value out of range"),
])
def test_parse_errors(spec: str, error: str) -> None:
    with pytest.raises(CronSyntaxError, match=error):
        parse_standard(spec)


# @every through Go's time.ParseDuration, kept as robfig's Every keeps it.
@pytest.mark.parametrize(("duration", "seconds"), [
    ("1h30m", 5400), ("90s", 90), ("1.5h", 5400), ("2.5s", 2), ("10ms", 1), ("0", 1),
    ("-1m", 1), (".5m", 30), ("1m.5s", 60), ("1µs", 1), ("1h1m1s1ms", 3661),
])
def test_every_is_whole_seconds_of_a_go_duration(duration: str, seconds: int) -> None:
    assert parse_standard(f"@every {duration}") == ConstantDelay(seconds)


@pytest.mark.parametrize(("duration", "error"), [
    ("", 'time: invalid duration ""'),
    ("1", 'time: missing unit in duration "1"'),
    ("1d", 'time: unknown unit "d" in duration "1d"'),
    (".", 'time: invalid duration "."'),
    ("1 m", 'time: unknown unit " m" in duration "1 m"'),
    ("3000000h", 'time: invalid duration "3000000h"'),
])
def test_go_duration_errors(duration: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        go_duration_nanos(duration)
