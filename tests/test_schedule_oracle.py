"""Property tests: next_after against a brute-force oracle written from PRODUCT.md.

The oracle shares no code with reconciler.schedule. Schedules are generated as
structures; the text handed to the parser and the sets of allowed values are derived
from the structure independently. The oracle then walks UTC time minute by minute,
reads the wall clock through zoneinfo and applies the DST rules literally:

* wildcard: due at every instant whose wall time matches;
* fixed-time: due at the first occurrence of a matching wall time (fold=0 maps back to
  the instant), and at the first instant after a gap when a matching wall time lies in
  the gap.

Walking minutes (not seconds) is exact here because every offset of the zones used is a
whole number of minutes and their transitions fall on whole minutes (asserted).
"""

from __future__ import annotations

import calendar
import time
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from reconciler.schedule import ScheduleError, parse_schedule

ZONE_NAMES = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "UTC",
    "Asia/Kathmandu",  # +05:45, no DST
]
ZONES = {name: ZoneInfo(name) for name in ZONE_NAMES}
DST_ZONES = ZONE_NAMES[:3]

START_2024 = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
END_2027 = int(datetime(2028, 1, 1, tzinfo=UTC).timestamp())

MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

COMMON = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# --- transitions, found by scanning (independent of the module under test) ----------


def _offset(tz: ZoneInfo, u: int) -> timedelta:
    off = datetime.fromtimestamp(u, tz).utcoffset()
    assert off is not None
    return off


@cache
def transitions(name: str) -> tuple[int, ...]:
    tz = ZONES[name]
    found = []
    prev = _offset(tz, START_2024)
    for u in range(START_2024 + 1800, END_2027, 1800):
        cur = _offset(tz, u)
        if cur != prev:
            lo, hi = u - 1800, u
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _offset(tz, mid) == prev:
                    lo = mid
                else:
                    hi = mid
            found.append(hi)
        prev = cur
    return tuple(found)


def test_transitions_are_found() -> None:
    # Berlin, New York, Lord Howe: two changes a year for 2024-2027.
    for name in DST_ZONES:
        assert len(transitions(name)) == 8, name
    assert transitions("UTC") == ()
    assert transitions("Asia/Kathmandu") == ()


# --- schedule structures -------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    fields: tuple[str, ...]  # six texts
    sets: tuple[frozenset[int], ...]  # sec, min, hour, dom, month, dow (0-6)

    @property
    def text(self) -> str:
        return " ".join(self.fields)

    @property
    def wildcard(self) -> bool:
        return any(f.startswith("*") for f in self.fields[:3])

    @property
    def either_day(self) -> bool:
        return not self.fields[3].startswith("*") and not self.fields[5].startswith("*")

    def day_matches(self, d: date) -> bool:
        dom_ok = d.day in self.sets[3]
        dow_ok = d.isoweekday() % 7 in self.sets[5]
        in_month = d.month in self.sets[4]
        if self.either_day:
            return in_month and (dom_ok or dow_ok)
        return in_month and dom_ok and dow_ok

    def minute_matches(self, wall: datetime) -> bool:
        return (
            wall.minute in self.sets[1]
            and wall.hour in self.sets[2]
            and self.day_matches(wall.date())
        )

    def never_fires(self) -> bool:
        if self.either_day:
            return False
        return not any(
            d <= (29 if m == 2 else calendar.monthrange(2001, m)[1])
            for m in self.sets[4]
            for d in self.sets[3]
        )


def _render(value: int, lo: int, names: list[str] | None, draw: st.DrawFn) -> str:
    if names is not None and value - lo < len(names) and draw(st.booleans()):
        name = names[value - lo]
        style = draw(st.sampled_from(["lower", "upper", "title"]))
        return {"lower": name, "upper": name.upper(), "title": name.title()}[style]
    if value < 10 and draw(st.integers(0, 9)) == 0:
        return f"0{value}"
    return str(value)


@st.composite
def field(
    draw: st.DrawFn,
    lo: int,
    hi: int,
    names: list[str] | None = None,
    values: st.SearchStrategy[int] | None = None,
    star_weight: int = 1,
) -> tuple[str, set[int]]:
    """One field as (text, allowed values); hi is 7 for day-of-week (7 = Sunday)."""
    vals = values if values is not None else st.integers(lo, hi)
    kinds = ["star"] * star_weight + ["star_step", "list", "list"]
    kind = draw(st.sampled_from(kinds if star_weight else ["list"]))
    if kind == "star":
        return "*", set(range(lo, hi + 1))
    if kind == "star_step":
        n = draw(st.integers(1, hi - lo + 2))
        return f"*/{n}", set(range(lo, hi + 1, n))
    texts: list[str] = []
    allowed: set[int] = set()
    for _ in range(draw(st.integers(1, 3))):
        item = draw(st.sampled_from(["value", "range", "range_step", "value_step"]))
        a = draw(vals)
        if item == "value":
            texts.append(_render(a, lo, names, draw))
            allowed.add(a)
            continue
        if item == "value_step":
            n = draw(st.integers(1, hi - lo + 1))
            texts.append(f"{_render(a, lo, names, draw)}/{n}")
            allowed.update(range(a, hi + 1, n))
            continue
        b = draw(st.integers(a, min(hi, a + draw(st.sampled_from([1, 3, 12, 60])))))
        if names is DAYS and b == 7 and draw(st.booleans()):
            end = "sun" if a > 0 else "7"  # "sun" closes a range at 7 unless it starts at 0
        else:
            end = _render(b, lo, names, draw)
        text = f"{_render(a, lo, names, draw)}-{end}"
        if item == "range_step":
            n = draw(st.integers(1, 10))
            text += f"/{n}"
            allowed.update(range(a, b + 1, n))
        else:
            allowed.update(range(a, b + 1))
        texts.append(text)
    return ",".join(texts), allowed


def _dow_set(values: set[int]) -> frozenset[int]:
    return frozenset(v % 7 for v in values)


# Hours near the DST changes (01-03 local) are drawn often so gaps and folds get hit.
HOURS = st.one_of(st.integers(0, 4), st.integers(0, 23))


@st.composite
def daily_spec(draw: st.DrawFn) -> Spec:
    """Schedules that fire at least once a day (day fields all *), half of them fixed-time."""
    stars = draw(st.sampled_from([0, 1]))
    sec = draw(
        st.one_of(
            st.just(("0", {0})),
            field(0, 59, values=st.sampled_from([0, 15, 30, 59]), star_weight=stars),
        )
    )
    minute = draw(
        field(0, 59, values=st.sampled_from([0, 1, 15, 29, 30, 31, 45, 59]), star_weight=stars)
    )
    hour = draw(field(0, 23, values=HOURS, star_weight=2 * stars))
    texts = (sec[0], minute[0], hour[0], "*", "*", "*")
    sets = (
        frozenset(sec[1]),
        frozenset(minute[1]),
        frozenset(hour[1]),
        frozenset(range(1, 32)),
        frozenset(range(1, 13)),
        frozenset(range(7)),
    )
    return Spec(texts, sets)


@st.composite
def any_spec(draw: st.DrawFn) -> Spec:
    """Any schedule, day fields included (may fire rarely)."""
    daily = draw(daily_spec())
    dom = draw(field(1, 31, values=st.one_of(st.integers(1, 31), st.sampled_from([29, 30, 31]))))
    month = draw(field(1, 12, names=MONTHS))
    dow = draw(field(0, 7, names=DAYS))
    texts = (*daily.fields[:3], dom[0], month[0], dow[0])
    sets = (*daily.sets[:3], frozenset(dom[1]), frozenset(month[1]), _dow_set(dow[1]))
    return Spec(texts, sets)


@st.composite
def rare_spec(draw: st.DrawFn) -> Spec:
    """Few times a year or less: a time or two a day on restricted days."""
    sec = draw(st.sampled_from([("0", {0}), ("30", {30}), ("*/30", {0, 30})]))
    minute = draw(st.sampled_from([("0", {0}), ("30", {30}), ("*/30", {0, 30}), ("59", {59})]))
    hour = draw(st.sampled_from([("0", {0}), ("2", {2}), ("1-2", {1, 2}), ("23", {23})]))
    dom = draw(
        st.sampled_from(
            [("29", {29}), ("30", {30}), ("31", {31}), ("1", {1}), ("13", {13}), ("*", None)]
        )
    )
    month = draw(
        st.sampled_from(
            [("2", {2}), ("feb", {2}), ("mar,oct", {3, 10}), ("4,11", {4, 11}), ("*", None)]
        )
    )
    dow = draw(
        st.sampled_from(
            [("*", None), ("*/7", {0}), ("0", {0}), ("mon", {1}), ("fri", {5}), ("*/3", {0, 3, 6})]
        )
    )
    texts = (sec[0], minute[0], hour[0], dom[0], month[0], dow[0])
    sets = (
        frozenset(sec[1]),
        frozenset(minute[1]),
        frozenset(hour[1]),
        frozenset(dom[1] if dom[1] is not None else range(1, 32)),
        frozenset(month[1] if month[1] is not None else range(1, 13)),
        frozenset(dow[1] if dow[1] is not None else range(7)),
    )
    return Spec(texts, sets)


@st.composite
def zone_and_instant(draw: st.DrawFn, zones: list[str] = ZONE_NAMES) -> tuple[str, int]:
    name = draw(st.sampled_from(zones))
    near = transitions(name) or transitions(draw(st.sampled_from(DST_ZONES)))
    t = draw(
        st.one_of(
            st.builds(lambda a, d: a + d, st.sampled_from(near), st.integers(-3 * 3600, 3 * 3600)),
            st.builds(lambda a, d: a + d, st.sampled_from(near), st.integers(-2 * 86400, 86400)),
            st.integers(START_2024, END_2027),
        )
    )
    return name, t


# --- the oracle ----------------------------------------------------------------------


def oracle_next(spec: Spec, t: int, tz: ZoneInfo, window: int) -> int | None:
    """First due instant in (t, t + window], by walking every UTC minute."""
    secs = sorted(spec.sets[0])
    end = t + window
    m = (t + 1) // 60 * 60
    prev_wall = datetime.fromtimestamp(m - 60, tz)
    while m <= end:
        now = datetime.fromtimestamp(m, tz)
        wall = now.replace(tzinfo=None)
        off = now.utcoffset()
        assert off is not None and off.total_seconds() % 60 == 0
        jumped = wall - prev_wall.replace(tzinfo=None) != timedelta(minutes=1)
        if jumped:
            # The offset changed exactly at m, not inside the previous minute.
            assert datetime.fromtimestamp(m - 1, tz).utcoffset() == prev_wall.utcoffset()
        if not spec.wildcard and jumped and t < m:
            gap_start = prev_wall.replace(tzinfo=None) + timedelta(minutes=1)
            w = gap_start
            while w < wall:
                if spec.minute_matches(w):
                    return m  # runs once, at the first second after the gap
                w += timedelta(minutes=1)
        if spec.minute_matches(wall):
            for s in secs:
                u = m + s
                if u <= t or u > end:
                    continue
                if spec.wildcard:
                    return u
                first = (wall + timedelta(seconds=s)).replace(tzinfo=tz, fold=0)
                if int(first.timestamp()) == u:
                    return u
        prev_wall = now
        m += 60
    return None


def coarse_oracle(spec: Spec, t: int, tz: ZoneInfo, years: int = 60) -> int | None:
    """Walk local dates; run the minute oracle only around dates that match."""
    day = datetime.fromtimestamp(t, tz).date() - timedelta(days=2)
    last = day + timedelta(days=366 * years)
    while day <= last:
        if spec.day_matches(day):
            midnight = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
            begin = max(t, midnight - 2 * 86400)
            found = oracle_next(spec, begin, tz, midnight + 2 * 86400 - begin)
            if found is not None:
                return found
        day += timedelta(days=1)
    return None


# --- properties ----------------------------------------------------------------------

WINDOW = 2 * 86400 + 3600


@settings(COMMON, max_examples=250)
@given(spec=daily_spec(), where=zone_and_instant())
def test_daily_schedules_match_oracle(spec: Spec, where: tuple[str, int]) -> None:
    name, t = where
    tz = ZONES[name]
    sched = parse_schedule(spec.text)
    assert sched.wildcard == spec.wildcard
    expected = oracle_next(spec, t, tz, WINDOW)
    assert expected is not None  # daily schedules fire within two days even across DST
    assert sched.next_after(t, tz) == expected


@settings(COMMON, max_examples=150)
@given(spec=any_spec(), where=zone_and_instant())
def test_any_schedule_matches_oracle_in_window(spec: Spec, where: tuple[str, int]) -> None:
    name, t = where
    tz = ZONES[name]
    if spec.never_fires():
        with pytest.raises(ScheduleError, match="never fires"):
            parse_schedule(spec.text)
        return
    sched = parse_schedule(spec.text)
    got = sched.next_after(t, tz)
    expected = oracle_next(spec, t, tz, WINDOW)
    if expected is None:
        assert got is None or got > t + WINDOW
    else:
        assert got == expected


@settings(COMMON, max_examples=40)
@given(spec=rare_spec(), where=zone_and_instant())
def test_rare_schedules_match_coarse_oracle(spec: Spec, where: tuple[str, int]) -> None:
    name, t = where
    tz = ZONES[name]
    if spec.never_fires():
        with pytest.raises(ScheduleError, match="never fires"):
            parse_schedule(spec.text)
        return
    sched = parse_schedule(spec.text)
    assert sched.next_after(t, tz) == coarse_oracle(spec, t, tz)


@pytest.mark.parametrize(
    "text",
    ["0 0 0 29 2 */7", "0 30 2 29 2 *", "0 30 2 29 2 0", "0 0 2 31 3,10 */7", "0 30 1 1 11 0"],
)
@pytest.mark.parametrize("name", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])
def test_fixed_rare_schedules_against_coarse_oracle(text: str, name: str) -> None:
    sched = parse_schedule(text)
    fields = text.split()
    spec_sets = []
    for f, lo, hi in zip(fields, [0, 0, 0, 1, 1, 0], [59, 59, 23, 31, 12, 7], strict=True):
        allowed: set[int] = set()
        for part in f.split(","):
            base, _, step = part.partition("/")
            a, b = (lo, hi) if base == "*" else (int(base), int(base))
            allowed.update(range(a, b + 1, int(step) if step else 1))
        spec_sets.append(frozenset(allowed))
    spec_sets[5] = frozenset(v % 7 for v in spec_sets[5])
    spec = Spec(tuple(fields), tuple(spec_sets))
    tz = ZONES[name]
    t = START_2024
    for _ in range(3):
        got = sched.next_after(t, tz)
        assert got == coarse_oracle(spec, t, tz)
        assert got is not None
        t = got


@settings(COMMON, max_examples=300)
@given(spec=any_spec(), where=zone_and_instant(), step=st.integers(0, 10**6))
def test_next_after_is_strictly_later_and_stable(
    spec: Spec, where: tuple[str, int], step: int
) -> None:
    assume(not spec.never_fires())
    name, t = where
    tz = ZONES[name]
    sched = parse_schedule(spec.text)
    got = sched.next_after(t, tz)
    assert got is not None and got > t
    # Every instant between t and the answer leads to the same answer.
    between = t + step % (got - t)
    assert sched.next_after(between, tz) == got
    assert sched.next_after(got - 1, tz) == got


@settings(COMMON, max_examples=60)
@given(spec=daily_spec(), where=zone_and_instant(DST_ZONES))
def test_iterating_never_stalls(spec: Spec, where: tuple[str, int]) -> None:
    name, t = where
    tz = ZONES[name]
    sched = parse_schedule(spec.text)
    begin = time.perf_counter()
    seen = []
    for u in sched.iter_due(t - 86400, tz):
        seen.append(u)
        if len(seen) == 300 or u > t + 3 * 86400:
            break
    assert seen == sorted(set(seen))
    assert len(seen) >= 2
    assert time.perf_counter() - begin < 2.0


@settings(COMMON, max_examples=100)
@given(
    every=st.integers(1, 10**7),
    anchor=st.integers(START_2024, END_2027),
    delta=st.integers(-(10**8), 10**9),
)
def test_every_is_anchored_property(every: int, anchor: int, delta: int) -> None:
    sched = parse_schedule(f"@every {every}s")
    t = anchor + delta
    got = sched.next_after(t, ZONES["Europe/Berlin"], anchor=anchor)
    assert got is not None
    assert got > t
    assert (got - anchor) % every == 0
    assert got - anchor >= every
    assert got - every <= t or got - every == anchor


@pytest.mark.parametrize("name", DST_ZONES)
def test_every_second_through_each_transition(name: str) -> None:
    # Seconds schedules, walked through all eight transitions: wildcard skips the gap
    # and repeats the fold, so the count of runs is the elapsed seconds.
    tz = ZONES[name]
    sched = parse_schedule("* * * * * *")
    for trans in transitions(name):
        got = list(_take(sched.iter_due(trans - 600, tz), 1200))
        assert got == list(range(trans - 600, trans + 600))


@pytest.mark.parametrize("name", DST_ZONES)
def test_fixed_every_minute_of_night_through_each_transition(name: str) -> None:
    spec_text = "0 0-59 0-4 * * *"
    sched = parse_schedule(spec_text)
    spec = Spec(
        tuple(spec_text.split()),
        (
            frozenset({0}),
            frozenset(range(60)),
            frozenset(range(5)),
            frozenset(range(1, 32)),
            frozenset(range(1, 13)),
            frozenset(range(7)),
        ),
    )
    tz = ZONES[name]
    for trans in transitions(name):
        t = trans - 3 * 3600
        for _ in range(400):
            got = sched.next_after(t, tz)
            assert got == oracle_next(spec, t, tz, WINDOW)
            assert got is not None
            t = got
            if t > trans + 3 * 3600:
                break


def _take(it: Iterator[int], n: int) -> list[int]:
    out = []
    for u in it:
        out.append(u)
        if len(out) == n:
            break
    return out


# --- synthetic zones: arbitrary offsets, transitions on awkward instants ------------


class SteppedZone(tzinfo):
    """A zone whose offset changes at given UTC instants, with PEP 495 folds."""

    def __init__(self, first: int, changes: list[tuple[int, int]]) -> None:
        self.at = [u for u, _ in changes]
        self.offs = [first] + [o for _, o in changes]

    def __repr__(self) -> str:
        return f"SteppedZone({self.offs[0]}, {list(zip(self.at, self.offs[1:], strict=True))})"

    def offset_at(self, u: int) -> int:
        return self.offs[bisect_right(self.at, u)]

    def _instants(self, local: int) -> list[int]:
        return sorted({local - o for o in self.offs if self.offset_at(local - o) == o})

    def utcoffset(self, dt: datetime | None) -> timedelta:
        assert dt is not None
        local = (dt.replace(tzinfo=None) - EPOCH) // timedelta(seconds=1)
        found = self._instants(local)
        if found:
            u = found[0] if dt.fold == 0 else found[-1]
            return timedelta(seconds=self.offset_at(u))
        for i, at in enumerate(self.at):
            before, after = self.offs[i], self.offs[i + 1]
            if at + before <= local < at + after:
                return timedelta(seconds=before if dt.fold == 0 else after)
        raise AssertionError("local time neither exists nor falls in a gap")

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "SYN"

    def fromutc(self, dt: datetime) -> datetime:
        u = (dt.replace(tzinfo=None) - EPOCH) // timedelta(seconds=1)
        off = self.offset_at(u)
        found = self._instants(u + off)
        fold = 1 if len(found) > 1 and u == found[-1] else 0
        return (dt + timedelta(seconds=off)).replace(fold=fold)


EPOCH = datetime(1970, 1, 1)
CHUNK_LIKE = 1 << 22  # instants on powers of two are likely bookkeeping borders


def oracle_next_seconds(spec: Spec, t: int, tz: tzinfo, window: int) -> int | None:
    """First due instant in (t, t + window], by walking every second."""

    def matches(wall: datetime) -> bool:
        return wall.second in spec.sets[0] and spec.minute_matches(wall)

    u = t + 1
    prev_wall = datetime.fromtimestamp(u - 1, tz).replace(tzinfo=None)
    while u <= t + window:
        now = datetime.fromtimestamp(u, tz)
        wall = now.replace(tzinfo=None)
        if not spec.wildcard and wall - prev_wall > timedelta(seconds=1):
            w = prev_wall + timedelta(seconds=1)
            while w < wall:
                if matches(w):
                    return u
                w += timedelta(seconds=1)
        first = spec.wildcard or int(wall.replace(tzinfo=tz, fold=0).timestamp()) == u
        if matches(wall) and first:
            return u
        prev_wall = wall
        u += 1
    return None


@st.composite
def stepped_zone(draw: st.DrawFn) -> tuple[SteppedZone, int]:
    """A zone with one or two offset changes near a power-of-two instant."""
    border = CHUNK_LIKE * draw(st.integers(404, 435))  # 2024-2027
    at = border + draw(st.one_of(st.sampled_from([-1, 0, 1, 2]), st.integers(-7200, 7200)))
    first = draw(st.integers(-12 * 3600, 14 * 3600))
    shift = draw(
        st.one_of(
            st.sampled_from([3600, -3600, 1800, -1800, 7200, -7200, 2700, -2700]),
            st.integers(-3 * 3600, 3 * 3600).filter(lambda s: s != 0),
        )
    )
    changes = [(at, first + shift)]
    if draw(st.booleans()):
        back = draw(st.integers(7 * 3600, 3 * 86400))
        changes.append((at + back, first + shift + draw(st.sampled_from([-shift, 1800, -3600]))))
    return SteppedZone(first, changes), at


@st.composite
def hourly_spec(draw: st.DrawFn) -> Spec:
    """Schedules that fire at least every three hours, wildcard or fixed-time."""
    base = draw(daily_spec())
    hour_text, step = draw(
        st.sampled_from([("*", 1), ("*/2", 2), ("0-23", 1), ("0-23/2", 2), ("*/3", 3)])
    )
    hours = frozenset(range(0, 24, step))
    return Spec(
        (*base.fields[:2], hour_text, *base.fields[3:]), (*base.sets[:2], hours, *base.sets[3:])
    )


@settings(COMMON, max_examples=60)
@given(
    zone=stepped_zone(),
    spec=hourly_spec(),
    delta=st.integers(-3 * 3600, 3600),
)
def test_synthetic_zones_match_second_oracle(
    zone: tuple[SteppedZone, int], spec: Spec, delta: int
) -> None:
    tz, at = zone
    t = at + delta
    window = 4 * 3600
    sched = parse_schedule(spec.text)
    expected = oracle_next_seconds(spec, t, tz, window)
    got = sched.next_after(t, tz)
    if expected is None:
        assert got is not None and got > t + window
    else:
        assert got == expected


def test_synthetic_zone_behaves_like_zoneinfo() -> None:
    # The test zone itself: Berlin's 2026 spring change rebuilt by hand.
    tz = SteppedZone(3600, [(transitions("Europe/Berlin")[4], 7200)])
    berlin = ZONES["Europe/Berlin"]
    at = transitions("Europe/Berlin")[4]
    for u in range(at - 7200, at + 7200, 599):
        assert datetime.fromtimestamp(u, tz).replace(tzinfo=None) == datetime.fromtimestamp(
            u, berlin
        ).replace(tzinfo=None)
    gap = datetime(2026, 3, 29, 2, 30)
    for fold in (0, 1):
        assert (
            gap.replace(tzinfo=tz, fold=fold).timestamp()
            == gap.replace(tzinfo=berlin, fold=fold).timestamp()
        )


def _all_days(fields: tuple[str, ...], sets: tuple[frozenset[int], ...]) -> Spec:
    days = (frozenset(range(1, 32)), frozenset(range(1, 13)), frozenset(range(7)))
    return Spec((*fields, "*", "*", "*"), (*sets, *days))


FIVE_MINUTES_FIXED = _all_days(
    ("0", "0-59/5", "0-23"), (frozenset({0}), frozenset(range(0, 60, 5)), frozenset(range(24)))
)
FIVE_MINUTES_WILD = _all_days(
    ("0", "*/5", "*"), (frozenset({0}), frozenset(range(0, 60, 5)), frozenset(range(24)))
)


@pytest.mark.parametrize("spec", [FIVE_MINUTES_FIXED, FIVE_MINUTES_WILD], ids=["fixed", "wild"])
@pytest.mark.parametrize("shift", [-3600, 3600, -1800, 1799])
@pytest.mark.parametrize("offset_from_border", [-1, 0, 1, -1800, 59])
def test_transition_next_to_a_power_of_two_instant(
    spec: Spec, shift: int, offset_from_border: int
) -> None:
    at = CHUNK_LIKE * 420 + offset_from_border
    tz = SteppedZone(3600 + 17, [(at, 3600 + 17 + shift)])  # odd-second offsets on purpose
    sched = parse_schedule(spec.text)
    t = at - 3600
    while t < at + 5400:
        got = sched.next_after(t, tz)
        assert got == oracle_next_seconds(spec, t, tz, 3 * 3600), t
        assert got is not None
        # also ask from just inside the transition and the border
        for probe in (at - 1, at, CHUNK_LIKE * 420 - 1, CHUNK_LIKE * 420):
            if t < probe < got:
                assert sched.next_after(probe, tz) == got
        t = got
