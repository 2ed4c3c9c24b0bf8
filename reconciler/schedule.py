"""Cron schedules: the grammar, the next due time, and the daylight-saving rules.

Grammar (PRODUCT.md, "Schedules")
---------------------------------
* Six fields ``second minute hour day-of-month month day-of-week``, or five (classic
  crontab, second 0). Fields are separated by spaces or tabs.
* Per field: ``*``, ``n``, ``a-b``, lists ``a,b``, steps ``*/n``, ``a-b/n`` and ``a/n``
  (``a/n`` is ``a-max/n``, as cronie). Month names ``JAN``..``DEC`` and weekday names
  ``SUN``..``SAT``, any case, anywhere a number may stand.
* Day-of-week 0 and 7 are Sunday. ``a/n`` runs to 7 there, as in cronie (``1/2`` is
  Monday, Wednesday, Friday and Sunday). ``SUN`` closing a range that starts
  later in the week means 7, so ``fri-sun`` is Friday to Sunday like ``5-7``.
* A step larger than the field's span is accepted (``*/90`` in the minute field is minute
  0), as cron does; only a step of 0 is an error.
* Month and weekday names: three letters or the full English name (``monday``,
  ``january``).
* Day-of-month ``L`` (last day), ``L-n`` (n = 0..30 days before it), ``nW`` (the Monday to
  Friday day nearest day n, within the month: a Saturday 1st gives Monday 3rd, a Sunday
  last day the Friday before; no day n, no run) and ``LW`` (the last Monday to Friday);
  day-of-week ``d#n`` (the n-th weekday d, n = 1..5) and ``dL`` (the last weekday d).
  These stand alone or in lists (``1,L``), never in ranges or steps; L and W in any case.
  ``?`` alone means ``*`` in the two day fields (and counts as ``*`` below).
* ``H`` (Jenkins): ``H``, ``H(a-b)``, ``H/n``, ``H(a-b)/n``, alone or in lists, in any
  field. With h = ``hash_value(task name, field name)``: ``H`` is lo + h % size over the
  field's range (day-of-month 1-28 and day-of-week 0-6 for a bare ``H``, as Jenkins) or
  a-b; ``H/n`` starts at lo + h % min(n, size) and steps by n to the range's end.
* Day-of-month and day-of-week combine as cron(5): when the text of both fields starts
  with something other than ``*`` (or ``?``) either may match, otherwise both must.
* Macros (lower case only): ``@yearly``/``@annually`` = ``0 0 0 1 1 *``,
  ``@monthly`` = ``0 0 0 1 * *``, ``@weekly`` = ``0 0 0 * * 0``,
  ``@daily``/``@midnight`` = ``0 0 0 * * *``, ``@hourly`` = ``0 0 * * * *``,
  ``@every <duration>`` and ``@reboot``.
* ``@every`` takes a Go duration (``10s``, ``1m30s``, ``2h``; units ``h m s ms us ns``,
  decimals allowed as in Go). The total must be a positive whole number of seconds:
  ``1.5m`` (90 s) is accepted, ``1.5s``, ``500ms`` and ``0s`` are errors.
* A schedule that can never fire (``0 0 0 30 2 *``, ``0 0 0 L-30 2 *``) is an error. With
  day-of-month and day-of-week OR-ed the weekday always matches some day, so only the AND
  case can be empty, and it is empty exactly when no listed day (or rule) exists in any
  listed month (every existing date falls on every weekday within the 400-year Gregorian
  cycle, and a leap February starts on each weekday, so ``d#5`` exists too).

Daylight saving
---------------
The schedule is read in the wall clock of the zone given to ``next_after``. A schedule
is *wildcard* when the text of its second, minute or hour field starts with ``*`` or is
an ``H`` step (``H/n``, ``H(a-b)/n``), and for ``@hourly`` and ``@every``; all others are
*fixed-time*.

* Wildcard: due at every UTC instant whose local wall time matches. Local times in a
  gap do not exist and never fire; local times in a repeated stretch fire in both
  passes (``0 */15 * * * *`` fires 02:00..02:45 at +02:00 and again at +01:00 on
  Berlin's autumn day).
* Fixed-time: a matching local time that exists fires at its first occurrence only.
  If one or more matching local times fall in a gap, the schedule fires once at the
  transition instant (the first second after the gap, e.g. 03:00:00+02:00 in Berlin);
  when the gap's end (03:00:00) matches as well, that is the same instant and it still
  fires once.

Offsets and transitions may be any number of seconds (Australia/Lord_Howe moves by 30
minutes); the zone is only queried through ``zoneinfo``. Transitions are found by
sampling the offset every 6 hours and bisecting to the exact second, cached per zone
in chunks of about 48 days; a zone whose offset changed and changed back within 6
hours would be seen as unchanged (no such zone exists in current tz data).

Termination and speed
---------------------
Days are looked up per month shape (28 to 31 days, the weekday of the 1st): a table
of the next matching day, built the first time a schedule's day fields meet that shape.
``next_after`` jumps field by field (month, day, hour, minute, second) in local time
inside each stretch of constant offset, and skips empty stretches by a calendar search
ahead of them. The search is bounded: nothing more than 400 years after ``t`` (or past
the year 9999) is returned; ``None`` is returned instead.
"""

from __future__ import annotations

import hashlib
import math
import re
import weakref
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from fractions import Fraction
from functools import lru_cache
from typing import Literal

__all__ = ["Schedule", "ScheduleError", "parse_schedule"]


class ScheduleError(ValueError):
    """A schedule that does not parse or can never fire; the message names the field."""


_QUOTE_MAX = 200


def _q(text: str) -> str:
    """At most 200 characters of user input, control characters escaped for logs."""
    cut = text if len(text) <= _QUOTE_MAX else text[:_QUOTE_MAX] + "..."
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in cut)


# --- fields -------------------------------------------------------------------------

_MONTH_FULL = (
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
)  # fmt: skip
_DOW_FULL = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
# Three letters or the full English name, any case.
_MONTH_NAMES = {n: i + 1 for i, full in enumerate(_MONTH_FULL) for n in (full[:3], full)}
_DOW_NAMES = {n: i for i, full in enumerate(_DOW_FULL) for n in (full[:3], full)}


@dataclass(frozen=True, eq=False)
class _FieldDef:
    name: str
    lo: int
    hi: int
    names: dict[str, int] = field(default_factory=dict)


_SECOND = _FieldDef("second", 0, 59)
_MINUTE = _FieldDef("minute", 0, 59)
_HOUR = _FieldDef("hour", 0, 23)
_DOM = _FieldDef("day-of-month", 1, 31)
_MONTH = _FieldDef("month", 1, 12, _MONTH_NAMES)
_DOW = _FieldDef("day-of-week", 0, 7, _DOW_NAMES)
_FIELDS = (_SECOND, _MINUTE, _HOUR, _DOM, _MONTH, _DOW)

# Longer digit strings are out of range anyway; the cap keeps int() cheap and in bounds.
_MAX_DIGITS = 9


def _parse_value(text: str, fd: _FieldDef) -> int:
    if text.isascii() and text.isdigit():
        if len(text.lstrip("0")) > _MAX_DIGITS:
            raise ScheduleError(f"{fd.name}: {_q(text)} is out of range {fd.lo}-{fd.hi}")
        value = int(text.lstrip("0") or "0")  # int() refuses very long digit strings
        if not fd.lo <= value <= fd.hi:
            raise ScheduleError(f"{fd.name}: {value} is out of range {fd.lo}-{fd.hi}")
        return value
    if fd.names:
        value_or_none = fd.names.get(text.lower())
        if value_or_none is not None:
            return value_or_none
        kind = "month" if fd is _MONTH else "weekday"
        if not text:
            raise ScheduleError(f"{fd.name}: missing value")
        raise ScheduleError(f"{fd.name}: '{_q(text)}' is not a number or {kind} name")
    if not text:
        raise ScheduleError(f"{fd.name}: missing value")
    raise ScheduleError(f"{fd.name}: '{_q(text)}' is not a number")


def _parse_step(text: str, fd: _FieldDef) -> int:
    if not (text.isascii() and text.isdigit()):
        if not text:
            raise ScheduleError(f"{fd.name}: missing step after /")
        raise ScheduleError(f"{fd.name}: step '{_q(text)}' is not a number")
    if len(text.lstrip("0")) > _MAX_DIGITS:
        raise ScheduleError(f"{fd.name}: step {_q(text)} is too large")
    step = int(text.lstrip("0") or "0")
    if step == 0:
        raise ScheduleError(f"{fd.name}: step of 0")
    return step


# Fleets write the same few field texts (`0`, `*/5`, `1-5`, `17`) across thousands of
# distinct schedules: each (text, field) is parsed once. Errors are not cached.
@lru_cache(maxsize=8192)
def _parse_field(text: str, fd: _FieldDef, hashed: int | None = None) -> frozenset[int]:
    """`hashed`: the field's hash of the task name (see `hash_value`) when it uses `H`."""
    items = text.split(",")
    if len(items) > 1 and any(item.startswith("*") for item in items):
        raise ScheduleError(f"{fd.name}: * inside a list '{_q(text)}'")
    values: set[int] = set()
    for item in items:
        if not item:
            raise ScheduleError(f"{fd.name}: empty item in list '{_q(text)}'")
        if item[0] == "H":
            values.update(_parse_hashed(item, fd, hashed))
            continue
        base, slash, step_text = item.partition("/")
        step = _parse_step(step_text, fd) if slash else 1
        if base == "*":
            a, b = fd.lo, fd.hi
        else:
            first, dash, last = base.partition("-")
            a = _parse_value(first, fd)
            if dash:
                b = _parse_value(last, fd)
                if fd is _DOW and b == 0 and a > 0 and not last.isdigit():
                    b = 7  # "fri-sun" closes at Sunday like 5-7; "sun-sun" stays Sunday
                if b < a:
                    raise ScheduleError(f"{fd.name}: reversed range {_q(base)}")
            elif slash:
                b = fd.hi
            else:
                b = a
        values.update(range(a, b + 1, step))
    if fd is _DOW and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


# --- H (hashed, as Jenkins) -----------------------------------------------------------

_HASHED_ITEM = re.compile(r"H(?:\(([^()]*)-([^()]*)\))?(?:/(.*))?", re.S)
_USES_HASH = re.compile(r"(?:^|[\s,])H")
# Jenkins' ranges for a bare H: day-of-month 1-28 (a day every month has), weekday 0-6.
_HASH_HI = {"day-of-month": 28, "day-of-week": 6}


def hash_value(name: str, key: str) -> int:
    """The first 8 bytes of SHA-256 of ``name + "\\n" + key`` (UTF-8), big-endian.

    `H` uses key = the field's name (``minute``, ``day-of-week``, ...), `jitterSeconds`
    the host's name: the same on every host, every start and every version.
    """
    digest = hashlib.sha256(f"{name}\n{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _parse_hashed(item: str, fd: _FieldDef, hashed: int | None) -> range:
    """`H`, `H(a-b)`, `H/n`, `H(a-b)/n`: one value of the range (a step from it with /n)."""
    m = _HASHED_ITEM.fullmatch(item)
    if m is None:
        raise ScheduleError(f"{fd.name}: '{_q(item)}' is not H, H(a-b), H/n or H(a-b)/n")
    if hashed is None:
        raise ScheduleError(f"{fd.name}: H needs the task's name")
    if m.group(1) is None:
        a, b = fd.lo, _HASH_HI.get(fd.name, fd.hi)
    else:
        a, b = _parse_value(m.group(1), fd), _parse_value(m.group(2), fd)
        if b < a:
            raise ScheduleError(f"{fd.name}: reversed range in {_q(item)}")
    size = b - a + 1
    if m.group(3) is None:
        start = a + hashed % size
        return range(start, start + 1)
    step = _parse_step(m.group(3), fd)
    return range(a + hashed % min(step, size), b + 1, step)


# --- L, W, # (day fields) -------------------------------------------------------------

# Rules beyond plain day numbers, as tuples (kind, ...), evaluated per month shape:
_LAST = 0  # (0, n): day-of-month L-n (n days before the last day; L is L-0)
_NEAREST = 1  # (1, n): nW, the weekday nearest day n within the month
_LAST_WEEKDAY = 2  # (2,): LW, the last Monday-to-Friday day
_NTH = 3  # (3, weekday, n): weekday#n, the n-th such weekday of the month
_LAST_OF = 4  # (4, weekday): weekdayL, the last such weekday of the month
_Rule = tuple[int, ...]
_Day = tuple[frozenset[int], frozenset[_Rule]]


def _digits(text: str, item: str, fd: _FieldDef, what: str, lo: int, hi: int) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 3 or not lo <= int(text) <= hi:
        raise ScheduleError(f"{fd.name}: {what} in '{_q(item)}' must be a number {lo}-{hi}")
    return int(text)


@lru_cache(maxsize=4096)
def _parse_days(text: str, fd: _FieldDef, hashed: int | None = None) -> _Day:
    """A day field: plain values as `_parse_field`, plus the L/W/# rules."""
    if text == "?":
        text = "*"
    elif "?" in text:
        raise ScheduleError(f"{fd.name}: ? stands alone (it means *)")
    items = text.split(",")
    special = [i for i in items if _is_rule(i, fd)]
    if not special:
        return _parse_field(text, fd, hashed), frozenset()
    plain = [i for i in items if not _is_rule(i, fd)]
    if any(i.startswith("*") for i in plain):
        raise ScheduleError(f"{fd.name}: * inside a list '{_q(text)}'")
    rules = frozenset(_parse_rule(i, fd) for i in special)
    values = _parse_field(",".join(plain), fd, hashed) if plain else frozenset()
    return values, rules


def _is_rule(item: str, fd: _FieldDef) -> bool:
    up = item.upper()
    if fd is _DOM:
        return "L" in up or up.endswith("W")
    return "#" in item or up.endswith("L")  # no weekday name ends in L


def _parse_rule(item: str, fd: _FieldDef) -> _Rule:
    up = item.upper()
    if fd is _DOM:
        if up == "LW":
            return (_LAST_WEEKDAY,)
        if up == "L":
            return (_LAST, 0)
        if up.startswith("L-"):
            return (_LAST, _digits(up[2:], item, fd, "the days before L", 0, 30))
        if up.endswith("W") and "L" not in up:
            return (_NEAREST, _digits(up[:-1], item, fd, "the day before W", 1, 31))
        raise ScheduleError(
            f"{fd.name}: '{_q(item)}' is not L, L-n, nW or LW (e.g. L-3, 15W; no ranges or steps)"
        )
    if "#" in item:
        day, _, nth = item.partition("#")
        weekday = _parse_value(day, fd) % 7
        return (_NTH, weekday, _digits(nth, item, fd, "the week after #", 1, 5))
    if up == "L":
        raise ScheduleError(f"{fd.name}: L needs a weekday before it (5L: the last Friday)")
    return (_LAST_OF, _parse_value(item[:-1], fd) % 7)


def _rule_days(rules: frozenset[_Rule], dim: int, first: int) -> set[int]:
    """Days of a month of `dim` days whose 1st is weekday `first` (0 = Sunday) that the
    rules select."""
    out: set[int] = set()
    for rule in rules:
        kind = rule[0]
        if kind == _LAST:
            day = dim - rule[1]
        elif kind == _NEAREST:
            day = rule[1]
            if day > dim:
                continue
            weekday = (first + day - 1) % 7
            if weekday == 6:  # Saturday: the Friday before, or Monday when it is the 1st
                day = day - 1 if day > 1 else day + 2
            elif weekday == 0:  # Sunday: the Monday after, or Friday when it is the last
                day = day + 1 if day < dim else day - 2
        elif kind == _LAST_WEEKDAY:
            weekday = (first + dim - 1) % 7
            day = dim - 1 if weekday == 6 else dim - 2 if weekday == 0 else dim
        elif kind == _NTH:
            day = 1 + (rule[1] - first) % 7 + 7 * (rule[2] - 1)
        else:  # _LAST_OF
            day = dim - ((first + dim - 1) % 7 - rule[1]) % 7
        if 1 <= day <= dim:
            out.add(day)
    return out


# --- calendar -----------------------------------------------------------------------

_EPOCH_ORD = date(1970, 1, 1).toordinal()
_DIM = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_DIM_MAX = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# Local "naive epoch" seconds (wall time read as if it were UTC) that datetime can hold.
_MIN_LOCAL = (date(1, 1, 1).toordinal() - _EPOCH_ORD) * 86400
_MAX_LOCAL = (date(9999, 12, 31).toordinal() + 1 - _EPOCH_ORD) * 86400  # exclusive
_DAY = 86400
# Offsets are below 24 h in magnitude (a datetime rule); margin for local <-> UTC bounds.
_MARGIN = 26 * 3600
_MIN_U = _MIN_LOCAL + 2 * _MARGIN
_MAX_U = _MAX_LOCAL - 2 * _MARGIN
_HORIZON = 400 * 365 * _DAY + 97 * _DAY  # one Gregorian cycle


# The tables below depend on one or two fields' value sets only, and a fleet of distinct
# schedules (`17 4 1 6 *`, `18 5 2 7 *`, ...) has few distinct sets per field: each table
# is built once per distinct set and shared by every schedule that has it.


@lru_cache(maxsize=4096)
def _next_table(values: frozenset[int], size: int) -> tuple[int, ...]:
    """t[v] = smallest allowed value >= v, or -1; index size is the -1 sentinel."""
    table = [-1] * (size + 1)
    nxt = -1
    for v in range(size - 1, -1, -1):
        if v in values:
            nxt = v
        table[v] = nxt
    return tuple(table)


_DaySpec = tuple[frozenset[int], frozenset[int], bool, frozenset[_Rule], frozenset[_Rule]]


class _DayRows:
    """The matching days of the 28 month shapes (28 to 31 days, times the weekday of the
    1st), each as a table row[d] = first matching day >= d, or 32; built as months need."""

    __slots__ = ("spec", "rows")

    def __init__(self, spec: _DaySpec) -> None:
        self.spec = spec
        self.rows: list[tuple[int, ...] | None] = [None] * 28

    def build(self, dim: int, first: int) -> tuple[int, ...]:
        doms, dows, either_day, dom_rules, dow_rules = self.spec
        by_dom = _rule_days(dom_rules, dim, first) if dom_rules else ()
        by_dow = _rule_days(dow_rules, dim, first) if dow_rules else ()
        row = [32] * 33
        nxt = 32
        for d in range(dim, 0, -1):
            in_dom = d in doms or d in by_dom
            in_dow = (first + d - 1) % 7 in dows or d in by_dow
            if (in_dom or in_dow) if either_day else (in_dom and in_dow):
                nxt = d
            row[d] = nxt
        found = tuple(row)
        self.rows[(dim - 28) * 7 + first] = found  # a race builds the same row twice
        return found


# Shared by every schedule with the same day fields (see the tables above).
@lru_cache(maxsize=4096)
def _day_rows(spec: _DaySpec) -> _DayRows:
    return _DayRows(spec)


_Set = frozenset[int]
_Fields = tuple[_Set, _Set, _Set, _Set, _Set, _Set, bool, frozenset[_Rule], frozenset[_Rule]]


class _Cron:
    """Compiled fields with the local-time search.

    The tables are built at the first search, not at parse time (`validate` never
    searches), and come from the shared caches above.
    """

    __slots__ = (
        "sec_next",
        "min_next",
        "hour_next",
        "month_next",
        "first_month",
        "days",
        "_fields",
    )

    def __init__(self, fields: _Fields) -> None:
        """`fields`: seconds, minutes, hours, days of month, months, days of week (value
        sets), either-may-match, then the day-of-month and day-of-week rules (L, W, #)."""
        self._fields: _Fields | None = fields
        self.first_month = min(fields[4])

    def _compile(self) -> None:
        fields = self._fields
        assert fields is not None
        seconds, minutes, hours, doms, months, dows, either_day, dom_rules, dow_rules = fields
        self.sec_next = _next_table(seconds, 60)
        self.min_next = _next_table(minutes, 60)
        self.hour_next = _next_table(hours, 24)
        # Index 0 unused; 13 is the sentinel for "no later month this year".
        self.month_next = _next_table(months, 13)
        self.days = _day_rows((doms, dows, either_day, dom_rules, dow_rules))
        self._fields = None  # last: another thread sees the tables complete or compiles too

    def match(self, lo: int, hi: int) -> int | None:
        """Smallest matching local naive-epoch second in [lo, hi), or None."""
        if lo < _MIN_LOCAL:
            lo = _MIN_LOCAL
        if hi > _MAX_LOCAL:
            hi = _MAX_LOCAL
        if lo >= hi:
            return None
        if self._fields is not None:
            self._compile()
        sec_next, min_next, hour_next = self.sec_next, self.min_next, self.hour_next
        month_next, day_rows = self.month_next, self.days
        rows = day_rows.rows
        days, sod = divmod(lo, _DAY)
        h, rest = divmod(sod, 3600)
        mi, s = divmod(rest, 60)
        start = date.fromordinal(days + _EPOCH_ORD)
        y, mo, d = start.year, start.month, start.day
        month_ord = days + _EPOCH_ORD - d + 1  # ordinal of day 1 of (y, mo)
        while True:
            nm = month_next[mo]
            if nm != mo:
                if nm < 0:
                    y += 1
                    mo = self.first_month
                    if y > 9999:
                        return None
                else:
                    mo = nm
                month_ord = date(y, mo, 1).toordinal()
                d = 1
                h = mi = s = 0
                if (month_ord - _EPOCH_ORD) * _DAY >= hi:
                    return None
            dim = _DIM[mo]
            if mo == 2 and y % 4 == 0 and (y % 100 != 0 or y % 400 == 0):
                dim = 29
            # ordinal % 7 is 0 on Sundays (ordinal 1 is Monday, 1 January of year 1).
            row = rows[(dim - 28) * 7 + month_ord % 7] or day_rows.build(dim, month_ord % 7)
            nd = row[d]
            if nd != d:
                d = nd
                h = mi = s = 0
            if d > dim:
                mo += 1
                if mo > 12:
                    mo = 1
                    y += 1
                    if y > 9999:
                        return None
                month_ord = date(y, mo, 1).toordinal()
                d = 1
                h = mi = s = 0
                if (month_ord - _EPOCH_ORD) * _DAY >= hi:
                    return None
                continue
            day_start = (month_ord + d - 1 - _EPOCH_ORD) * _DAY
            if day_start >= hi:
                return None
            nh = hour_next[h]
            if nh < 0:
                d += 1
                h = mi = s = 0
                continue
            if nh != h:
                h = nh
                mi = s = 0
            nmi = min_next[mi]
            if nmi < 0:
                h += 1
                mi = s = 0
                continue
            if nmi != mi:
                mi = nmi
                s = 0
            ns = sec_next[s]
            if ns < 0:
                mi += 1
                s = 0
                continue
            found = day_start + h * 3600 + mi * 60 + ns
            return found if found < hi else None


# --- zone transitions ---------------------------------------------------------------

_CHUNK = 1 << 22  # seconds, about 48.5 days
_PROBE = 6 * 3600
# Backward jumps larger than this would not be seen across a chunk border (none exist).
_LOOKBACK = 2 * _DAY
_CACHE_MAX = 50_000


class _Chunk:
    """Offset transitions T with start <= T < end; offs[i] holds before trans[i]."""

    __slots__ = ("start", "end", "trans", "offs")

    def __init__(self, start: int, end: int, trans: list[int], offs: list[int]) -> None:
        self.start = start
        self.end = end
        self.trans = trans
        self.offs = offs


def _offset(tz: tzinfo, u: int) -> int:
    delta = datetime.fromtimestamp(u, tz).utcoffset()
    if delta is None:
        return 0
    return delta.days * _DAY + delta.seconds


def _build_chunk(tz: tzinfo, index: int) -> _Chunk:
    start = index * _CHUNK
    end = start + _CHUNK
    # Clamped so that datetime can hold every probed instant in local time.
    lo_probe = min(max(start - 1, _MIN_U - _MARGIN), _MAX_U + _MARGIN)
    hi_probe = max(min(end - 1, _MAX_U + _MARGIN), lo_probe)
    p = lo_probe
    cur = _offset(tz, p)
    trans: list[int] = []
    offs = [cur]
    while p < hi_probe:
        q = min(p + _PROBE, hi_probe)
        oq = _offset(tz, q)
        if oq != cur:
            a, b = p, q  # offset(a) == cur != offset(b)
            while b - a > 1:
                mid = (a + b) // 2
                if _offset(tz, mid) == cur:
                    a = mid
                else:
                    b = mid
            cur = _offset(tz, b)
            trans.append(b)
            offs.append(cur)
            if cur != oq:  # another transition before q: keep scanning from b
                p = b
                continue
        p = q
    return _Chunk(start, end, trans, offs)


_chunks: dict[tuple[tzinfo, int], _Chunk] = {}


def _chunk(tz: tzinfo, index: int) -> _Chunk:
    key = (tz, index)
    ch = _chunks.get(key)
    if ch is None:
        if len(_chunks) >= _CACHE_MAX:
            _chunks.clear()
        ch = _chunks[key] = _build_chunk(tz, index)
    return ch


# --- schedule -----------------------------------------------------------------------

_MACROS = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}

_GO_UNITS = {
    "h": Fraction(3600),
    "m": Fraction(60),
    "s": Fraction(1),
    "ms": Fraction(1, 1000),
    "us": Fraction(1, 10**6),
    "µs": Fraction(1, 10**6),
    "μs": Fraction(1, 10**6),
    "ns": Fraction(1, 10**9),
}
_GO_PART = re.compile(r"([0-9]+\.?[0-9]*|\.[0-9]+)(h|ms|m|s|us|µs|μs|ns)")
_GO_DURATION = re.compile(f"(?:{_GO_PART.pattern})+")
# Go's time.Duration ends at 2**63-1 ns; longer values do not parse there either.
_GO_MAX_SECONDS = (2**63 - 1) // 10**9


def _parse_every(arg: str) -> int:
    """A Go duration that must come to a positive whole number of seconds."""
    negative = arg[:1] == "-"
    text = arg[1:] if arg[:1] in ("+", "-") else arg
    if text == "0":  # Go's only unit-less duration
        raise ScheduleError(f"@every: duration must be positive, got {_q(arg)}")
    if not text or len(text) > 100 or not _GO_DURATION.fullmatch(text):
        raise ScheduleError(f"@every: invalid duration '{_q(arg)}' (use units h, m, s, e.g. 1m30s)")
    total = sum(
        (Fraction(m.group(1)) * _GO_UNITS[m.group(2)] for m in _GO_PART.finditer(text)),
        Fraction(0),
    )
    if negative or total == 0:
        raise ScheduleError(f"@every: duration must be positive, got '{_q(arg)}'")
    if total.denominator != 1:
        raise ScheduleError(f"@every: '{_q(arg)}' is not a whole number of seconds")
    if total > _GO_MAX_SECONDS:
        raise ScheduleError(f"@every: '{_q(arg)}' is too long")
    return int(total)


def _describe(values: list[int]) -> str:
    return ", ".join(str(v) for v in values)


@lru_cache(maxsize=1024)
def _fires(doms: frozenset[int], months: frozenset[int], rules: frozenset[_Rule]) -> bool:
    # L-n needs n days before the last; nW day n itself (LW always has a day).
    return any(d <= _DIM_MAX[m] for m in months for d in doms) or any(
        r[0] == _LAST_WEEKDAY or (r[1] < _DIM_MAX[m] if r[0] == _LAST else r[1] <= _DIM_MAX[m])
        for m in months
        for r in rules
    )


def _rule_text(rule: _Rule) -> str:
    if rule[0] == _LAST:
        return f"L-{rule[1]}" if rule[1] else "L"
    return f"{rule[1]}W" if rule[0] == _NEAREST else "LW"


def _check_fires(
    doms: frozenset[int], months: frozenset[int], rules: frozenset[_Rule] = frozenset()
) -> None:
    if _fires(doms, months, rules):
        return
    ds, ms = sorted(doms), sorted(months)
    if rules:
        texts = [*map(str, ds), *sorted(map(_rule_text, rules))]
        raise ScheduleError(
            f"never fires ({', '.join(texts)} of {'month' if len(ms) == 1 else 'months'} "
            f"{_describe(ms)} {'does' if len(texts) == 1 else 'do'} not exist)"
        )
    day_word = "day" if len(ds) == 1 else "days"
    month_word = "month" if len(ms) == 1 else "months"
    verb = "does" if len(ds) == 1 else "do"
    raise ScheduleError(
        f"never fires ({day_word} {_describe(ds)} of {month_word} {_describe(ms)} {verb} not exist)"
    )


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Schedule:
    """A parsed schedule; build it with ``parse_schedule``."""

    text: str
    kind: Literal["cron", "every", "reboot"]
    wildcard: bool
    every_seconds: int | None = None
    _cron: _Cron | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        return self.text

    def next_after(self, t: int, tz: tzinfo, anchor: int | None = None) -> int | None:
        """The smallest due epoch second strictly greater than ``t`` in zone ``tz``.

        ``None`` for ``@reboot`` and when nothing is due within 400 years. ``@every D``
        needs ``anchor`` and is due at ``anchor + k*D`` for ``k >= 1``.
        """
        t = math.floor(t)
        if self.kind == "every":
            if anchor is None:
                raise ValueError("@every schedules need an anchor")
            step = self.every_seconds
            assert step is not None
            anchor = math.floor(anchor)
            k = 1 if t < anchor + step else (t - anchor) // step + 1
            return anchor + k * step
        cron = self._cron
        if cron is None:
            return None
        return _next_cron(cron, self.wildcard, t + 1, tz)

    def iter_due(self, start: int, tz: tzinfo, anchor: int | None = None) -> Iterator[int]:
        """Due epoch seconds at or after ``start``, in order (ends after 400 years)."""
        if self.kind == "every" and anchor is None:
            raise ValueError("@every schedules need an anchor")
        return self._iter_due(math.floor(start) - 1, tz, anchor)

    def _iter_due(self, t: int, tz: tzinfo, anchor: int | None) -> Iterator[int]:
        while True:
            nxt = self.next_after(t, tz, anchor)
            if nxt is None:
                return
            yield nxt
            t = nxt


def _next_cron(cron: _Cron, wildcard: bool, u: int, tz: tzinfo) -> int | None:
    """Smallest due instant >= u."""
    if u < _MIN_U:
        u = _MIN_U
    limit = min(u + _HORIZON, _MAX_U)
    match = cron.match
    while u < limit:
        index = u // _CHUNK
        ch = _chunk(tz, index)
        trans, offs = ch.trans, ch.offs
        i = bisect_right(trans, u)
        off = offs[i]
        seg_end = trans[i] if i < len(trans) else ch.end
        if seg_end > limit:
            seg_end = limit
        lo = u + off
        if not wildcard:
            # The latest transition at or before u decides the fixed-time rules.
            last: int | None = None
            before = off
            if i > 0:
                last, before = trans[i - 1], offs[i - 1]
            elif u - ch.start < _LOOKBACK:
                prev = _chunk(tz, index - 1)
                if prev.trans:
                    last, before = prev.trans[-1], prev.offs[-2]
            if last is not None:
                if off > before:
                    # Gap: its skipped local times run once, at the transition itself.
                    if u == last and match(last + before, last + off) is not None:
                        return last
                elif off < before and last + before > lo:
                    # Repeated stretch: those local times already ran in the first pass.
                    lo = last + before
        found = match(lo, seg_end + off)
        if found is not None:
            return found - off
        # Nothing in this stretch: jump to near the next matching local time. Any due
        # instant v >= seg_end comes from a local time >= v - 26 h and <= v + 26 h.
        ahead = match(seg_end - _MARGIN, limit + _MARGIN)
        if ahead is None:
            return None
        u = max(seg_end, ahead - _MARGIN)
    return None


# Parsed schedules in use, by their exact text: tasks that share a schedule share one
# object, and a text seen again (a reload, `@hourly` on 1,000 tasks) is not parsed again.
# Weak: an entry lives only as long as some task holds its schedule.
# A text with `H` is keyed with the task's name too (its times depend on it).
_PARSED: weakref.WeakValueDictionary[str | tuple[str, str], Schedule] = (
    weakref.WeakValueDictionary()
)


def uses_hash(text: str) -> bool:
    """Whether a schedule text has an `H` item (its times depend on the task's name)."""
    return "H" in text and _USES_HASH.search(text) is not None


def parse_schedule(text: str, name: str | None = None) -> Schedule:
    """Parse a schedule; raises ``ScheduleError`` naming the field at fault.

    `name`: the task's name, which `H` fields hash (without it `H` is an error).
    """
    if not isinstance(text, str):
        raise ScheduleError(f"schedule must be a string, got {type(text).__name__}")
    key: str | tuple[str, str] = text
    if name is not None and uses_hash(text):
        key = (text, name)
    found = _PARSED.get(key)
    if found is None:
        found = _PARSED[key] = _parse(text, name if key is not text else None)
    return found


_NO_HASHES: tuple[int | None, ...] = (None,) * 6


def _parse(text: str, name: str | None = None) -> Schedule:
    parts = text.split()
    if not parts:
        raise ScheduleError("empty schedule")
    head = parts[0]
    if head.startswith("@"):
        if head == "@reboot":
            if len(parts) > 1:
                raise ScheduleError("@reboot takes no arguments")
            return Schedule(text=text, kind="reboot", wildcard=False)
        if head == "@every":
            if len(parts) == 1:
                raise ScheduleError("@every: missing duration")
            if len(parts) > 2:
                raise ScheduleError(f"@every: unexpected text after the duration '{_q(text)}'")
            every = _parse_every(parts[1])
            return Schedule(text=text, kind="every", wildcard=True, every_seconds=every)
        expansion = _MACROS.get(head)
        if expansion is None:
            lower = head.lower()
            known = lower in _MACROS or lower in ("@every", "@reboot")
            hint = " (macros are lower case)" if known else ""
            raise ScheduleError(f"unknown macro {_q(head)}{hint}")
        if len(parts) > 1:
            raise ScheduleError(f"{head} takes no arguments")
        parts = expansion.split()
    elif len(parts) == 5:
        parts = ["0", *parts]
    elif len(parts) != 6:
        raise ScheduleError(f"expected 5 or 6 fields, got {len(parts)}")
    if "?" in text:
        for p, fd in zip(parts, _FIELDS, strict=True):
            if "?" in p and fd is not _DOM and fd is not _DOW:
                raise ScheduleError(f"{fd.name}: ? is only for day-of-month and day-of-week")
    hashed = name is not None and "H" in text
    # Keyed by the field's name, so `H` is the same minute in five and six fields.
    h = _NO_HASHES
    if hashed:
        assert name is not None
        h = tuple(
            hash_value(name, fd.name) if "H" in p else None
            for p, fd in zip(parts, _FIELDS, strict=True)
        )
    seconds = _parse_field(parts[0], _SECOND, h[0])
    minutes = _parse_field(parts[1], _MINUTE, h[1])
    hours = _parse_field(parts[2], _HOUR, h[2])
    months = _parse_field(parts[4], _MONTH, h[4])
    doms, dom_rules = _parse_days(parts[3], _DOM, h[3])
    dows, dow_rules = _parse_days(parts[5], _DOW, h[5])
    # `?` is `*`: unrestricted, so either-may-match needs both fields restricted.
    dom_star, dow_star = parts[3][:1] in ("*", "?"), parts[5][:1] in ("*", "?")
    either_day = not dom_star and not dow_star
    if not either_day:
        _check_fires(doms, months, dom_rules)
    wildcard = any(p.startswith("*") for p in parts[:3])
    if hashed and not wildcard:  # H in second, minute or hour is fixed-time unless H/n
        wildcard = any(p.startswith("H") and "/" in p for p in parts[:3])
    cron = _Cron((seconds, minutes, hours, doms, months, dows, either_day, dom_rules, dow_rules))
    return Schedule(text=text, kind="cron", wildcard=wildcard, _cron=cron)
