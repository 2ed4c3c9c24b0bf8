"""A brute-force oracle for cron due times, written from cron(5) and the contract's DST
rules without reconciler.schedule: the import tests compare the importer's output, as
reconciler schedules it, with this reading of the original lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
    "@reboot": "0 0 31 2 *",  # never due on the clock: February has no 31st
}
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _value(text: str, names: tuple[str, ...], base: int) -> int:
    low = text.lower()
    return names.index(low) + base if low in names else int(text)


def _field(text: str, lo: int, hi: int, names: tuple[str, ...] = (), base: int = 0) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        span, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            a, b = lo, hi
        elif "-" in span:
            a, b = (_value(x, names, base) for x in span.split("-"))
        else:
            a = _value(span, names, base)
            b = hi if step_text else a
        values.update(range(a, b + 1, step))
    return values


@dataclass
class Cron:
    """cron(5) matching; with `seconds` a leading second field (gotorch's Times)."""

    text: str
    seconds: bool = False
    both_days: bool = False  # gotorch: day-of-month and day-of-week must both match

    def __post_init__(self) -> None:
        fields = MACROS.get(self.text, self.text).split()
        if not self.seconds:
            fields.insert(0, "0")
        sec, minute, hour, dom, mon, dow = fields
        self.sec, self.minute, self.hour = _field(sec, 0, 59), _field(minute, 0, 59), \
            _field(hour, 0, 23)
        self.dom, self.mon = _field(dom, 1, 31), _field(mon, 1, 12, MONTHS, 1)
        self.dow = {d % 7 for d in _field(dow, 0, 7, DAYS)}
        self.star_day = dom.startswith("*") or dow.startswith("*")
        texts = [minute, hour] + ([sec] if self.seconds else [])
        self.wildcard = self.text == "@hourly" or any(t.startswith("*") for t in texts)

    def matches(self, t: datetime) -> bool:
        dom_ok, dow_ok = t.day in self.dom, t.isoweekday() % 7 in self.dow
        day_ok = dom_ok and dow_ok if self.star_day or self.both_days else dom_ok or dow_ok
        return (t.second in self.sec and t.minute in self.minute and t.hour in self.hour
                and t.month in self.mon and day_ok)


def _wall(u: int, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(u, tz).replace(tzinfo=None)


def _instant(wall: datetime, tz: ZoneInfo) -> int:
    """A fixed-time wall clock reading: first occurrence, or the end of a gap."""
    found = [int(wall.replace(tzinfo=tz, fold=f).timestamp()) for f in (0, 1)]
    real = [u for u in found if _wall(u, tz) == wall]
    if real:
        return min(real)
    u = min(found)
    while _wall(u, tz) < wall:
        u += 1
    return u


def oracle(cron: Cron, tz: ZoneInfo, start: int, end: int) -> list[int]:
    """Due epoch seconds in [start, end)."""
    step = 1 if cron.seconds else 60
    if cron.wildcard:  # the wall clock as it runs: gaps skipped, repeats twice
        first = start + (-start % step)
        return [u for u in range(first, end, step) if cron.matches(_wall(u, tz))]
    dues: set[int] = set()
    wall = _wall(start, tz).replace(second=0) - timedelta(hours=3)
    stop = _wall(end, tz) + timedelta(hours=3)
    while wall < stop:
        if cron.matches(wall):
            dues.add(_instant(wall, tz))
        wall += timedelta(seconds=step)
    return sorted(u for u in dues if start <= u < end)


def test_oracle_knows_cron() -> None:
    """The oracle itself, on cases cron(5) spells out."""
    assert Cron("0 0 13 * 0-6").matches(datetime(2026, 3, 2))  # every day
    first_sunday = Cron("0 0 1 * */2")  # the 1st when it is Sun, Tue, Thu or Sat
    assert first_sunday.matches(datetime(2026, 3, 1)) and not first_sunday.matches(
        datetime(2026, 4, 1))
    assert not first_sunday.matches(datetime(2026, 3, 3))
    either = Cron("0 0 1,15 * fri")
    assert all(either.matches(datetime(2026, 5, d)) for d in (1, 8, 15))
    assert Cron("0 0 * * 7").matches(datetime(2026, 3, 1))
    assert Cron("0 0 * JAN-mar MON-fri").matches(datetime(2026, 3, 2))
    assert oracle(Cron("30 2 * * *"), BERLIN, at("2026-03-29T00:00:00Z"),
                  at("2026-03-30T00:00:00Z")) == [at("2026-03-29T03:00:00+02:00")]
    assert oracle(Cron("*/30 2 * * *"), BERLIN, at("2026-10-25T00:00:00Z"),
                  at("2026-10-25T02:00:00Z")) == [
        at("2026-10-25T02:00:00+02:00"), at("2026-10-25T02:30:00+02:00"),
        at("2026-10-25T02:00:00+01:00"), at("2026-10-25T02:30:00+01:00")]
