"""Explicit cases for reconciler.schedule: grammar, errors, macros, @every and DST days."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC as FIXED_UTC
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from reconciler.schedule import Schedule, ScheduleError, parse_schedule

UTC = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")


def ts(iso: str) -> int:
    """Epoch seconds of an RFC 3339 time with an explicit offset."""
    dt = datetime.fromisoformat(iso)
    assert dt.tzinfo is not None
    return int(dt.timestamp())


def due(text: str, start: str, n: int, tz: ZoneInfo = UTC) -> list[str]:
    """The first n due times at or after start, rendered in tz with offsets."""
    sched = parse_schedule(text)
    out: list[str] = []
    for u in sched.iter_due(ts(start), tz):
        out.append(datetime.fromtimestamp(u, tz).isoformat())
        if len(out) == n:
            break
    return out


# --- grammar ------------------------------------------------------------------------


def test_five_fields_mean_second_zero() -> None:
    assert due("*/20 * * * *", "2026-01-01T00:00:01+00:00", 3) == [
        "2026-01-01T00:20:00+00:00",
        "2026-01-01T00:40:00+00:00",
        "2026-01-01T01:00:00+00:00",
    ]


def test_six_fields_have_seconds() -> None:
    assert due("10,40 * * * * *", "2026-01-01T00:00:00+00:00", 3) == [
        "2026-01-01T00:00:10+00:00",
        "2026-01-01T00:00:40+00:00",
        "2026-01-01T00:01:10+00:00",
    ]


def test_tabs_and_extra_spaces_separate_fields() -> None:
    assert due("  0\t30   4 * * *  ", "2026-01-01T00:00:00+00:00", 1) == [
        "2026-01-01T04:30:00+00:00"
    ]


def test_range_with_step() -> None:
    assert due("0 10-30/10 8 * * *", "2026-01-01T00:00:00+00:00", 4) == [
        "2026-01-01T08:10:00+00:00",
        "2026-01-01T08:20:00+00:00",
        "2026-01-01T08:30:00+00:00",
        "2026-01-02T08:10:00+00:00",
    ]


def test_value_with_step_runs_to_field_maximum() -> None:
    # 5/20 in minutes is 5-59/20: 5, 25, 45
    assert due("5/20 9 * * *", "2026-01-01T00:00:00+00:00", 4) == [
        "2026-01-01T09:05:00+00:00",
        "2026-01-01T09:25:00+00:00",
        "2026-01-01T09:45:00+00:00",
        "2026-01-02T09:05:00+00:00",
    ]


def test_step_larger_than_span_keeps_start() -> None:
    assert due("*/90 * * * *", "2026-01-01T00:00:01+00:00", 2) == [
        "2026-01-01T01:00:00+00:00",
        "2026-01-01T02:00:00+00:00",
    ]


def test_lists_mix_ranges_and_values() -> None:
    assert due("0 0 1-2,5,22-23 * * *", "2026-01-01T00:00:00+00:00", 6) == [
        "2026-01-01T01:00:00+00:00",
        "2026-01-01T02:00:00+00:00",
        "2026-01-01T05:00:00+00:00",
        "2026-01-01T22:00:00+00:00",
        "2026-01-01T23:00:00+00:00",
        "2026-01-02T01:00:00+00:00",
    ]


def test_month_names_any_case_in_lists_and_ranges() -> None:
    a = due("0 0 1 JAN,jul *", "2026-01-02T00:00:00+00:00", 3)
    assert a == [
        "2026-07-01T00:00:00+00:00",
        "2027-01-01T00:00:00+00:00",
        "2027-07-01T00:00:00+00:00",
    ]


def test_month_name_ranges() -> None:
    assert due("0 0 1 mar-May *", "2026-01-01T00:00:00+00:00", 4) == [
        "2026-03-01T00:00:00+00:00",
        "2026-04-01T00:00:00+00:00",
        "2026-05-01T00:00:00+00:00",
        "2027-03-01T00:00:00+00:00",
    ]


def test_weekday_names_and_ranges() -> None:
    # 2026-01-05 is a Monday.
    assert due("0 9 * * mon-FRI", "2026-01-02T10:00:00+00:00", 6) == [
        "2026-01-05T09:00:00+00:00",
        "2026-01-06T09:00:00+00:00",
        "2026-01-07T09:00:00+00:00",
        "2026-01-08T09:00:00+00:00",
        "2026-01-09T09:00:00+00:00",
        "2026-01-12T09:00:00+00:00",
    ]


@pytest.mark.parametrize("dow", ["0", "7", "sun", "SUN", "7-7", "0,7", "sun-sun", "0-0", "7/7"])
def test_sunday_is_0_and_7(dow: str) -> None:
    # 2026-01-04 and 2026-01-11 are Sundays.
    assert due(f"0 12 * * {dow}", "2026-01-01T00:00:00+00:00", 2) == [
        "2026-01-04T12:00:00+00:00",
        "2026-01-11T12:00:00+00:00",
    ]


@pytest.mark.parametrize("dow", ["5-7", "fri-sun", "FRI-SUN", "fri-7", "5-sun", "5,6,0"])
def test_weekday_range_may_end_at_sunday(dow: str) -> None:
    # 2026-01-02 Friday, 03 Saturday, 04 Sunday.
    assert due(f"0 12 * * {dow}", "2026-01-01T00:00:00+00:00", 4) == [
        "2026-01-02T12:00:00+00:00",
        "2026-01-03T12:00:00+00:00",
        "2026-01-04T12:00:00+00:00",
        "2026-01-09T12:00:00+00:00",
    ]


def test_weekend_6_7_advances() -> None:
    # supercronic once spun on `6-7`; it must step Saturday, Sunday, next Saturday.
    assert due("0 0 * * 6-7", "2026-01-01T00:00:00+00:00", 3) == [
        "2026-01-03T00:00:00+00:00",
        "2026-01-04T00:00:00+00:00",
        "2026-01-10T00:00:00+00:00",
    ]


def test_weekday_value_with_step_runs_to_7() -> None:
    # As cronie: 1/2 is 1-7/2 = Monday, Wednesday, Friday and Sunday (7).
    assert due("0 0 * * 1/2", "2026-01-01T00:00:00+00:00", 4) == [
        "2026-01-02T00:00:00+00:00",  # Friday
        "2026-01-04T00:00:00+00:00",  # Sunday
        "2026-01-05T00:00:00+00:00",  # Monday
        "2026-01-07T00:00:00+00:00",  # Wednesday
    ]


def test_star_step_weekday() -> None:
    # */2 = 0,2,4,6: Sunday, Tuesday, Thursday, Saturday
    assert due("0 0 * * */2", "2026-01-01T00:00:01+00:00", 4) == [
        "2026-01-03T00:00:00+00:00",
        "2026-01-04T00:00:00+00:00",
        "2026-01-06T00:00:00+00:00",
        "2026-01-08T00:00:00+00:00",
    ]


# --- day-of-month / day-of-week -----------------------------------------------------


def test_both_restricted_either_matches_every_day() -> None:
    # 0 0 13 * 0-6: both restricted, the weekday range covers every day.
    assert due("0 0 13 * 0-6", "2026-01-01T00:00:01+00:00", 3) == [
        "2026-01-02T00:00:00+00:00",
        "2026-01-03T00:00:00+00:00",
        "2026-01-04T00:00:00+00:00",
    ]


def test_dow_star_step_means_both_must_match() -> None:
    # 0 0 1 * */2: the 1st, only when Sunday, Tuesday, Thursday or Saturday.
    # 2026: Feb 1 Sun, Mar 1 Sun, Apr 1 Wed, May 1 Fri, Jun 1 Mon, Jul 1 Wed, Aug 1 Sat.
    assert due("0 0 1 * */2", "2026-01-02T00:00:00+00:00", 3) == [
        "2026-02-01T00:00:00+00:00",
        "2026-03-01T00:00:00+00:00",
        "2026-08-01T00:00:00+00:00",
    ]


def test_friday_or_the_13th() -> None:
    # 2026-02-13 is a Friday; 2026-03-13 too. Either rule fires.
    assert due("0 0 13 * fri", "2026-02-01T00:00:00+00:00", 5) == [
        "2026-02-06T00:00:00+00:00",
        "2026-02-13T00:00:00+00:00",
        "2026-02-20T00:00:00+00:00",
        "2026-02-27T00:00:00+00:00",
        "2026-03-06T00:00:00+00:00",
    ]


def test_dom_star_step_and_weekday_exact() -> None:
    # Days 1, 11, 21, 31 that are Mondays: 2026-05-11, 06-01, 08-31, 09-21.
    assert due("0 0 */10 * mon", "2026-03-01T00:00:00+00:00", 4) == [
        "2026-05-11T00:00:00+00:00",
        "2026-06-01T00:00:00+00:00",
        "2026-08-31T00:00:00+00:00",
        "2026-09-21T00:00:00+00:00",
    ]


def test_feb_29_or_monday_in_february() -> None:
    # Both restricted: Feb 29 or any Monday of February.
    assert due("0 0 0 29 2 1", "2027-02-20T00:00:00+00:00", 6) == [
        "2027-02-22T00:00:00+00:00",
        "2028-02-07T00:00:00+00:00",
        "2028-02-14T00:00:00+00:00",
        "2028-02-21T00:00:00+00:00",
        "2028-02-28T00:00:00+00:00",
        "2028-02-29T00:00:00+00:00",
    ]


# --- leap years and rare schedules --------------------------------------------------


def test_leap_day() -> None:
    assert due("0 0 0 29 2 *", "2024-03-01T00:00:00+00:00", 2) == [
        "2028-02-29T00:00:00+00:00",
        "2032-02-29T00:00:00+00:00",
    ]


def test_leap_day_skips_2100() -> None:
    assert due("0 0 0 29 2 *", "2096-03-01T00:00:00+00:00", 1) == ["2104-02-29T00:00:00+00:00"]


def test_leap_day_on_sunday_40_years_apart() -> None:
    # Feb 29 falls on a Sunday in 2032, 2060, 2088, then not again until 2128.
    assert due("0 0 0 29 2 */7", "2089-01-01T00:00:00+00:00", 1) == ["2128-02-29T00:00:00+00:00"]


def test_31st_only_in_long_months() -> None:
    assert due("0 0 0 31 * *", "2026-01-31T00:00:01+00:00", 3) == [
        "2026-03-31T00:00:00+00:00",
        "2026-05-31T00:00:00+00:00",
        "2026-07-31T00:00:00+00:00",
    ]


def test_rare_schedules_are_fast() -> None:
    t = ts("2026-01-01T00:00:00+00:00")
    for text in ("0 0 0 29 2 */7", "59 59 23 31 12 *", "0 0 0 29 2 1", "0 0 0 29 2 *"):
        sched = parse_schedule(text)
        for tz in (UTC, BERLIN, LORD_HOWE):
            sched.next_after(t, tz)  # zone data warm-up
            begin = time.perf_counter()
            sched.next_after(t, tz)
            assert time.perf_counter() - begin < 0.05, (text, tz)


def test_nothing_after_year_9999() -> None:
    sched = parse_schedule("0 0 0 29 2 *")
    assert sched.next_after(ts("9996-03-01T00:00:00+00:00"), UTC) is None
    assert list(sched.iter_due(ts("9996-03-01T00:00:00+00:00"), UTC)) == []


# --- strictness and iteration -------------------------------------------------------


def test_next_after_is_strictly_later() -> None:
    sched = parse_schedule("0 * * * * *")
    t = ts("2026-01-01T00:05:00+00:00")
    assert sched.next_after(t, UTC) == t + 60
    assert sched.next_after(t - 1, UTC) == t


def test_next_after_accepts_float() -> None:
    sched = parse_schedule("* * * * * *")
    assert sched.next_after(100.5, UTC) == 101  # type: ignore[arg-type]
    assert sched.next_after(-1.5, UTC) == -1  # type: ignore[arg-type]


def test_iter_due_includes_start() -> None:
    sched = parse_schedule("0 0 * * * *")
    start = ts("2026-01-01T05:00:00+00:00")
    it = sched.iter_due(start, UTC)
    assert [next(it), next(it)] == [start, start + 3600]


def test_every_second_across_a_year_boundary() -> None:
    assert due("* * * * * *", "2026-12-31T23:59:58+00:00", 4) == [
        "2026-12-31T23:59:58+00:00",
        "2026-12-31T23:59:59+00:00",
        "2027-01-01T00:00:00+00:00",
        "2027-01-01T00:00:01+00:00",
    ]


# --- macros -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("macro", "expected"),
    [
        ("@yearly", ["2027-01-01T00:00:00+00:00", "2028-01-01T00:00:00+00:00"]),
        ("@annually", ["2027-01-01T00:00:00+00:00", "2028-01-01T00:00:00+00:00"]),
        ("@monthly", ["2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00"]),
        # 2026-01-04 is a Sunday
        ("@weekly", ["2026-01-04T00:00:00+00:00", "2026-01-11T00:00:00+00:00"]),
        ("@daily", ["2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00"]),
        ("@midnight", ["2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00"]),
        ("@hourly", ["2026-01-01T01:00:00+00:00", "2026-01-01T02:00:00+00:00"]),
    ],
)
def test_macros(macro: str, expected: list[str]) -> None:
    assert due(macro, "2026-01-01T00:00:01+00:00", 2) == expected
    sched = parse_schedule(macro)
    assert sched.kind == "cron"
    assert sched.every_seconds is None
    assert sched.wildcard == (macro == "@hourly")


def test_reboot() -> None:
    sched = parse_schedule("@reboot")
    assert sched.kind == "reboot"
    assert sched.every_seconds is None
    assert not sched.wildcard
    assert sched.next_after(0, UTC) is None
    assert list(sched.iter_due(0, UTC)) == []


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("@every 10s", 10),
        ("@every 1m30s", 90),
        ("@every 2h", 7200),
        ("@every 1h1m1s", 3661),
        ("@every 1.5m", 90),
        ("@every 1000ms", 1),
        ("@every   5m", 300),
        ("@every 36h", 129600),
        ("@every +10s", 10),
        ("@every 30s1m", 90),
        ("@every .5m", 30),
        ("@every 1500000us", None),
    ],
)
def test_every_durations(text: str, seconds: int | None) -> None:
    if seconds is None:
        with pytest.raises(ScheduleError, match="not a whole number of seconds"):
            parse_schedule(text)
        return
    sched = parse_schedule(text)
    assert sched.kind == "every"
    assert sched.every_seconds == seconds
    assert sched.wildcard


def test_every_is_anchored() -> None:
    sched = parse_schedule("@every 1m30s")
    anchor = 1_000_000
    assert sched.next_after(anchor, UTC, anchor=anchor) == anchor + 90
    assert sched.next_after(anchor - 500, UTC, anchor=anchor) == anchor + 90
    assert sched.next_after(anchor + 89, UTC, anchor=anchor) == anchor + 90
    assert sched.next_after(anchor + 90, UTC, anchor=anchor) == anchor + 180
    assert sched.next_after(anchor + 91, UTC, anchor=anchor) == anchor + 180
    it = sched.iter_due(anchor, BERLIN, anchor=anchor)
    assert [next(it) for _ in range(3)] == [anchor + 90, anchor + 180, anchor + 270]
    # start at a due time: included
    it = sched.iter_due(anchor + 180, UTC, anchor=anchor)
    assert next(it) == anchor + 180


def test_every_ignores_dst() -> None:
    sched = parse_schedule("@every 1h")
    anchor = ts("2026-03-29T01:30:00+01:00")
    nxt = sched.next_after(anchor, BERLIN, anchor=anchor)
    assert nxt is not None
    assert datetime.fromtimestamp(nxt, BERLIN).isoformat() == "2026-03-29T03:30:00+02:00"


def test_every_needs_anchor() -> None:
    sched = parse_schedule("@every 10s")
    with pytest.raises(ValueError):
        sched.next_after(0, UTC)
    with pytest.raises(ValueError):
        sched.iter_due(0, UTC)


# --- errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 61 * * * *", "minute: 61 is out of range 0-59"),
        ("0 0 24 * * *", "hour: 24 is out of range 0-23"),
        ("0 61 * * *", "hour: 61 is out of range 0-23"),
        ("60 * * * * *", "second: 60 is out of range 0-59"),
        ("0 0 0 0 * *", "day-of-month: 0 is out of range 1-31"),
        ("0 0 0 32 * *", "day-of-month: 32 is out of range 1-31"),
        ("0 0 0 * 13 *", "month: 13 is out of range 1-12"),
        ("0 0 0 * 0 *", "month: 0 is out of range 1-12"),
        ("0 0 0 * * 8", "day-of-week: 8 is out of range 0-7"),
        ("*/0 * * * * *", "second: step of 0"),
        ("0 1-5/0 * * *", "hour: step of 0"),
        ("0 0 5-1 * *", "day-of-month: reversed range 5-1"),
        ("0 0 * * fri-mon", "day-of-week: reversed range fri-mon"),
        ("0 0 1 nov-feb *", "month: reversed range nov-feb"),
        ("*,5 * * * *", "minute: * inside a list '*,5'"),
        ("5,*/2 * * * *", "minute: * inside a list '5,*/2'"),
        ("* * * * * * *", "expected 5 or 6 fields, got 7"),
        ("* * * *", "expected 5 or 6 fields, got 4"),
        ("", "empty schedule"),
        ("   ", "empty schedule"),
        ("@foo", "unknown macro @foo"),
        ("@DAILY", "unknown macro @DAILY (macros are lower case)"),
        ("@daily 5", "@daily takes no arguments"),
        ("@reboot now", "@reboot takes no arguments"),
        ("0 0 0 30 2 *", "never fires (day 30 of month 2 does not exist)"),
        ("0 0 0 31 4,6,9,11 *", "never fires (day 31 of months 4, 6, 9, 11 does not exist)"),
        ("0 0 0 30-31 feb *", "never fires (days 30, 31 of month 2 do not exist)"),
        ("0 0 0 31 2 */2", "never fires (day 31 of month 2 does not exist)"),
        ("x * * * *", "minute: 'x' is not a number"),
        ("0 0 * * mon-xyz", "day-of-week: 'xyz' is not a number or weekday name"),
        ("0 0 foo * *", "day-of-month: 'foo' is not a number"),
        ("0 0 1 janu *", "month: 'janu' is not a number or month name"),
        ("0 mon * * *", "hour: 'mon' is not a number"),
        ("1,,2 * * * *", "minute: empty item in list '1,,2'"),
        ("1, * * * *", "minute: empty item in list '1,'"),
        ("-5 * * * *", "minute: missing value"),
        ("5- * * * *", "minute: missing value"),
        ("1-2-3 * * * *", "minute: '2-3' is not a number"),
        ("*/ * * * *", "minute: missing step after /"),
        ("*/x * * * *", "minute: step 'x' is not a number"),
        ("1/2/3 * * * *", "minute: step '2/3' is not a number"),
        ("? * * * *", "minute: ? is only for day-of-month and day-of-week"),
        ("L * * * *", "minute: 'L' is not a number"),
        ("１ * * * *", "minute: '１' is not a number"),
        ("0 0 0 1 * 1#6", "day-of-week: the week after # in '1#6' must be a number 1-5"),
        ("99999999999999999999 * * * *", "minute: 99999999999999999999 is out of range 0-59"),
        ("@every", "@every: missing duration"),
        ("@every 0s", "@every: duration must be positive, got '0s'"),
        ("@every 0", "@every: duration must be positive, got 0"),
        ("@every -5s", "@every: duration must be positive, got '-5s'"),
        ("@every 1.5s", "@every: '1.5s' is not a whole number of seconds"),
        ("@every 500ms", "@every: '500ms' is not a whole number of seconds"),
        ("@every 10", "@every: invalid duration '10' (use units h, m, s, e.g. 1m30s)"),
        ("@every 10x", "@every: invalid duration '10x' (use units h, m, s, e.g. 1m30s)"),
        ("@every 1d", "@every: invalid duration '1d' (use units h, m, s, e.g. 1m30s)"),
        ("@every 10S", "@every: invalid duration '10S' (use units h, m, s, e.g. 1m30s)"),
        ("@every 1h-5m", "@every: invalid duration '1h-5m' (use units h, m, s, e.g. 1m30s)"),
        ("@every .", "@every: invalid duration '.' (use units h, m, s, e.g. 1m30s)"),
        ("@every -0s", "@every: duration must be positive, got '-0s'"),
        ("@every ٣s", "@every: invalid duration '٣s' (use units h, m, s, e.g. 1m30s)"),
        ("@every 10s 5s", "@every: unexpected text after the duration '@every 10s 5s'"),
        ("@every 3000000h", "@every: '3000000h' is too long"),
    ],
)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(ScheduleError) as info:
        parse_schedule(text)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


def test_error_quotes_at_most_200_characters() -> None:
    long_item = "x" * 5000
    with pytest.raises(ScheduleError) as info:
        parse_schedule(f"{long_item} * * * *")
    message = str(info.value)
    assert "x" * 200 in message
    assert "x" * 201 not in message
    assert len(message) < 300


def test_error_escapes_control_characters() -> None:
    with pytest.raises(ScheduleError) as info:
        parse_schedule("0 0 1\x1b[2J * *")
    assert "\x1b" not in str(info.value)
    assert "\\x1b" in str(info.value)


def test_long_runs_of_zeros() -> None:
    zeros = "0" * 10_000
    assert parse_schedule(f"{zeros}5 * * * *").next_after(0, UTC) == 300
    with pytest.raises(ScheduleError, match="^minute: step of 0$"):
        parse_schedule(f"*/{zeros} * * * *")


def test_non_string_is_an_error() -> None:
    with pytest.raises(ScheduleError):
        parse_schedule(5)  # type: ignore[arg-type]


def test_long_valid_list_parses() -> None:
    text = ",".join(str(i % 60) for i in range(20000)) + " * * * * *"
    sched = parse_schedule(text)
    assert sched.next_after(0, UTC) == 1


# --- schedule object ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "wildcard"),
    [
        ("* * * * *", True),
        ("*/5 * * * *", True),
        ("0 * * * *", True),
        ("0 0 * * * *", True),
        ("* 30 2 * * *", True),
        ("0 */15 * * * *", True),
        ("0 0 2 * * *", False),
        ("30 2 * * *", False),
        ("0 0,30 2 * * *", False),
        ("0 0-59 2 * * *", False),
        ("0 0 2 */2 * *", False),
        ("0 0 0 * * */2", False),
        ("@daily", False),
        ("@hourly", True),
        ("@every 5m", True),
    ],
)
def test_wildcard_class(text: str, wildcard: bool) -> None:
    assert parse_schedule(text).wildcard is wildcard


def test_schedule_is_frozen_hashable_and_keeps_text() -> None:
    a = parse_schedule("0 0 * * *")
    b = parse_schedule("0 0 * * *")
    assert isinstance(a, Schedule)
    assert a.text == "0 0 * * *"
    assert str(a) == "0 0 * * *"
    assert a == b
    assert hash(a) == hash(b)
    assert a != parse_schedule("0 1 * * *")
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.text = "x"  # type: ignore[misc]


# --- daylight saving: UTC -----------------------------------------------------------


def test_utc_has_no_transitions() -> None:
    assert due("0 30 2 * * *", "2026-03-29T00:00:00+00:00", 2, UTC) == [
        "2026-03-29T02:30:00+00:00",
        "2026-03-30T02:30:00+00:00",
    ]


def test_fixed_offset_timezone_object() -> None:
    sched = parse_schedule("0 0 12 * * *")
    t = ts("2026-01-01T00:00:00+00:00")
    assert sched.next_after(t, FIXED_UTC) == ts("2026-01-01T12:00:00+00:00")


# --- daylight saving: Europe/Berlin (02:00 -> 03:00 on 2026-03-29, 03:00 -> 02:00 on
# 2026-10-25) -------------------------------------------------------------------------


def test_berlin_spring_wildcard_skips_gap() -> None:
    assert due("0 */15 * * * *", "2026-03-29T01:30:00+01:00", 5, BERLIN) == [
        "2026-03-29T01:30:00+01:00",
        "2026-03-29T01:45:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T03:15:00+02:00",
        "2026-03-29T03:30:00+02:00",
    ]


def test_berlin_spring_wildcard_hour_in_gap_is_skipped() -> None:
    # Every minute of hour 2 only: nothing on the spring day.
    assert due("0 * 2 * * *", "2026-03-29T00:00:00+01:00", 1, BERLIN) == [
        "2026-03-30T02:00:00+02:00"
    ]


def test_berlin_spring_every_second() -> None:
    assert due("* * * * * *", "2026-03-29T01:59:58+01:00", 3, BERLIN) == [
        "2026-03-29T01:59:58+01:00",
        "2026-03-29T01:59:59+01:00",
        "2026-03-29T03:00:00+02:00",
    ]


def test_berlin_spring_fixed_runs_once_after_gap() -> None:
    assert due("0 0,30 2 * * *", "2026-03-28T12:00:00+01:00", 3, BERLIN) == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]


def test_berlin_spring_fixed_gap_and_gap_end_run_once() -> None:
    assert due("0 0 2,3 * * *", "2026-03-29T00:00:00+01:00", 3, BERLIN) == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:00:00+02:00",
        "2026-03-30T03:00:00+02:00",
    ]


def test_berlin_spring_fixed_gap_then_later_time() -> None:
    assert due("0 30 2,3 * * *", "2026-03-29T00:00:00+01:00", 3, BERLIN) == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T03:30:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]


def test_berlin_spring_fixed_every_minute_of_gap_hour_runs_once() -> None:
    assert due("0 0-59 2 * * *", "2026-03-29T00:00:00+01:00", 2, BERLIN) == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:00:00+02:00",
    ]


def test_berlin_spring_fixed_from_inside_the_transition() -> None:
    # Asking strictly after the transition instant: the gap run is over.
    sched = parse_schedule("0 30 2 * * *")
    t = ts("2026-03-29T03:00:00+02:00")
    assert sched.next_after(t - 1, BERLIN) == t
    assert sched.next_after(t, BERLIN) == ts("2026-03-30T02:30:00+02:00")


def test_berlin_autumn_wildcard_fires_in_both_passes() -> None:
    assert due("0 */15 * * * *", "2026-10-25T01:50:00+02:00", 10, BERLIN) == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:15:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:45:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T02:15:00+01:00",
        "2026-10-25T02:30:00+01:00",
        "2026-10-25T02:45:00+01:00",
        "2026-10-25T03:00:00+01:00",
        "2026-10-25T03:15:00+01:00",
    ]


def test_berlin_autumn_hourly_twice_in_repeated_hour() -> None:
    assert due("@hourly", "2026-10-25T01:00:01+02:00", 3, BERLIN) == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]


def test_berlin_autumn_fixed_runs_at_first_occurrence_only() -> None:
    assert due("0 30 2 * * *", "2026-10-25T00:00:00+02:00", 2, BERLIN) == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
    ]


def test_berlin_autumn_fixed_asked_during_second_pass() -> None:
    sched = parse_schedule("0 0,30 2 * * *")
    t = ts("2026-10-25T02:10:00+01:00")  # second pass; 02:30 already ran at +02:00
    assert sched.next_after(t, BERLIN) == ts("2026-10-26T02:00:00+01:00")
    t = ts("2026-10-25T02:10:00+02:00")  # first pass
    assert sched.next_after(t, BERLIN) == ts("2026-10-25T02:30:00+02:00")


def test_berlin_autumn_fixed_minutes_of_repeated_hour() -> None:
    assert due("0 0-59/20 2 * * *", "2026-10-25T01:59:00+02:00", 4, BERLIN) == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:20:00+02:00",
        "2026-10-25T02:40:00+02:00",
        "2026-10-26T02:00:00+01:00",
    ]


def test_berlin_midnight_unaffected() -> None:
    assert due("@daily", "2026-03-28T12:00:00+01:00", 3, BERLIN) == [
        "2026-03-29T00:00:00+01:00",
        "2026-03-30T00:00:00+02:00",
        "2026-03-31T00:00:00+02:00",
    ]


# --- daylight saving: America/New_York (02:00 -> 03:00 on 2026-03-08, 02:00 -> 01:00 on
# 2026-11-01) -------------------------------------------------------------------------


def test_new_york_spring_wildcard() -> None:
    assert due("0 0,30 * * * *", "2026-03-08T01:00:00-05:00", 4, NEW_YORK) == [
        "2026-03-08T01:00:00-05:00",
        "2026-03-08T01:30:00-05:00",
        "2026-03-08T03:00:00-04:00",
        "2026-03-08T03:30:00-04:00",
    ]


def test_new_york_spring_fixed() -> None:
    assert due("30 2 * * *", "2026-03-07T12:00:00-05:00", 3, NEW_YORK) == [
        "2026-03-08T03:00:00-04:00",
        "2026-03-09T02:30:00-04:00",
        "2026-03-10T02:30:00-04:00",
    ]


def test_new_york_autumn_wildcard() -> None:
    assert due("0 30 * * * *", "2026-11-01T00:45:00-04:00", 4, NEW_YORK) == [
        "2026-11-01T01:30:00-04:00",
        "2026-11-01T01:30:00-05:00",
        "2026-11-01T02:30:00-05:00",
        "2026-11-01T03:30:00-05:00",
    ]


def test_new_york_autumn_fixed() -> None:
    assert due("30 1 * * *", "2026-10-31T12:00:00-04:00", 2, NEW_YORK) == [
        "2026-11-01T01:30:00-04:00",
        "2026-11-02T01:30:00-05:00",
    ]
    # 02:00 exists once (after the repeat): normal.
    assert due("0 2 * * *", "2026-10-31T12:00:00-04:00", 2, NEW_YORK) == [
        "2026-11-01T02:00:00-05:00",
        "2026-11-02T02:00:00-05:00",
    ]


def test_new_york_wildcard_seconds_in_fixed_minute() -> None:
    # Second field starts with *: wildcard, so 01:59:xx runs in both passes.
    assert due("*/30 59 1 * * *", "2026-11-01T01:00:00-04:00", 5, NEW_YORK) == [
        "2026-11-01T01:59:00-04:00",
        "2026-11-01T01:59:30-04:00",
        "2026-11-01T01:59:00-05:00",
        "2026-11-01T01:59:30-05:00",
        "2026-11-02T01:59:00-05:00",
    ]


# --- daylight saving: Australia/Lord_Howe (30-minute shift: 02:00 -> 02:30 on
# 2026-10-04, 02:00 -> 01:30 on 2026-04-05) ------------------------------------------


def test_lord_howe_spring_wildcard() -> None:
    assert due("0 */10 * * * *", "2026-10-04T01:50:00+10:30", 3, LORD_HOWE) == [
        "2026-10-04T01:50:00+10:30",
        "2026-10-04T02:30:00+11:00",
        "2026-10-04T02:40:00+11:00",
    ]


def test_lord_howe_spring_fixed() -> None:
    assert due("0 0,15 2 * * *", "2026-10-03T12:00:00+10:30", 3, LORD_HOWE) == [
        "2026-10-04T02:30:00+11:00",
        "2026-10-05T02:00:00+11:00",
        "2026-10-05T02:15:00+11:00",
    ]
    # 02:30 is the first time after the gap: the gap run and 02:30 coincide.
    assert due("0 15,30 2 * * *", "2026-10-03T12:00:00+10:30", 3, LORD_HOWE) == [
        "2026-10-04T02:30:00+11:00",
        "2026-10-05T02:15:00+11:00",
        "2026-10-05T02:30:00+11:00",
    ]


def test_lord_howe_autumn_wildcard() -> None:
    assert due("0 */20 * * * *", "2026-04-05T01:30:00+11:00", 6, LORD_HOWE) == [
        "2026-04-05T01:40:00+11:00",
        "2026-04-05T01:40:00+10:30",
        "2026-04-05T02:00:00+10:30",
        "2026-04-05T02:20:00+10:30",
        "2026-04-05T02:40:00+10:30",
        "2026-04-05T03:00:00+10:30",
    ]


def test_lord_howe_autumn_fixed() -> None:
    assert due("0 45 1 * * *", "2026-04-04T12:00:00+11:00", 2, LORD_HOWE) == [
        "2026-04-05T01:45:00+11:00",
        "2026-04-06T01:45:00+10:30",
    ]
    assert due("0 15 1 * * *", "2026-04-04T12:00:00+11:00", 2, LORD_HOWE) == [
        "2026-04-05T01:15:00+11:00",
        "2026-04-06T01:15:00+10:30",
    ]
