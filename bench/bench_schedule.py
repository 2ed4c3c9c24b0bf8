"""Benchmark for reconciler.schedule: parsing, next_after, worst single calls.

Run: .venv/bin/python bench/bench_schedule.py
"""

from __future__ import annotations

import math
import random
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from reconciler import schedule as schedule_module
from reconciler.schedule import Schedule, parse_schedule

ZONES = [
    ZoneInfo(name)
    for name in (
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "Australia/Lord_Howe",
        "Asia/Kathmandu",
    )
]

RARE = [
    "0 0 0 29 2 *",
    "0 0 0 29 2 */7",  # Feb 29 on a Sunday: up to 40 years apart
    "0 0 0 29 2 1",
    "59 59 23 31 12 *",
    "0 30 2 29 2 0",
    "0 0 2 31 3,10 */7",
    "0 0 0 13 * */7",  # Sunday the 13th
    "0 0 0 29 2 FRI#5",  # Feb 29 or February's 5th Friday
    "0 0 0 ? 2 MON#5",  # February's 5th Monday: every 28 years or so
    "0 0 0 L-28 2 ?",  # Feb 1 of leap years
]


def random_field(rng: random.Random, lo: int, hi: int, names: list[str] | None) -> str:
    kind = rng.choice(["star", "star", "step", "value", "list", "range", "range_step"])

    def value(v: int) -> str:
        if names and rng.random() < 0.3:
            return names[v - lo] if v - lo < len(names) else str(v)
        return str(v)

    if kind == "star":
        return "*"
    if kind == "step":
        return f"*/{rng.randint(1, hi - lo + 1)}"
    a = rng.randint(lo, hi)
    if kind == "value":
        return value(a)
    if kind == "list":
        return ",".join(value(v) for v in sorted(rng.sample(range(lo, hi + 1), 3)))
    b = rng.randint(a, hi)
    if kind == "range":
        return f"{value(a)}-{value(b)}"
    return f"{value(a)}-{value(b)}/{rng.randint(1, 5)}"


MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


def random_schedule(rng: random.Random) -> str:
    if rng.random() < 0.05:
        return rng.choice(["@daily", "@hourly", "@weekly", "@monthly", "@yearly", "@every 90s"])
    return " ".join(
        [
            random_field(rng, 0, 59, None),
            random_field(rng, 0, 59, None),
            random_field(rng, 0, 23, None),
            random_field(rng, 1, 28, None),
            random_field(rng, 1, 12, MONTHS),
            random_field(rng, 0, 6, DAYS),
        ]
    )


def main() -> None:
    rng = random.Random(42)
    texts = [random_schedule(rng) for _ in range(10_000)]

    begin = time.perf_counter()
    schedules = [parse_schedule(text) for text in texts]
    parse_s = time.perf_counter() - begin
    print(f"parse: 10,000 schedules in {parse_s * 1000:.1f} ms ({parse_s * 1e2:.1f} us each)")

    t0 = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
    t1 = int(datetime(2028, 1, 1, tzinfo=UTC).timestamp())
    cron = [s for s in schedules if s.kind == "cron"]
    pairs: list[tuple[Schedule, int, ZoneInfo]] = [
        (rng.choice(cron), rng.randint(t0, t1), rng.choice(ZONES)) for _ in range(100_000)
    ]

    # Cold: zone transition tables are built as the calls reach new periods.
    begin = time.perf_counter()
    for sched, t, tz in pairs:
        sched.next_after(t, tz)
    cold_s = time.perf_counter() - begin
    begin = time.perf_counter()
    for sched, t, tz in pairs:
        sched.next_after(t, tz)
    warm_s = time.perf_counter() - begin
    print(
        f"next_after: 100,000 (schedule, instant, zone) calls in {cold_s * 1000:.0f} ms "
        f"first pass, {warm_s * 1000:.0f} ms again ({warm_s * 10:.1f} us each)"
    )

    # The new syntax (L, W, #, H) against plain fields of the same shape, same run.
    new_syntax = [
        "0 0 0 L * *", "0 30 2 L-3 * *", "0 0 12 15W * *", "0 0 18 LW * *",
        "0 0 9 ? * MON#1", "0 0 9 ? * fri#3", "0 0 22 ? * 5L", "0 0 0 29 2 FRI#5",
        "0 H H * * *", "0 H/15 H(9-17) * * 1-5", "H H H(1-4) ? * sunday", "0 0 0 1W,L january *",
    ]  # fmt: skip
    plain = [
        "0 0 0 31 * *", "0 30 2 28 * *", "0 0 12 15 * *", "0 0 18 30 * *",
        "0 0 9 1 * *", "0 0 9 15 * *", "0 0 22 * * 5", "0 0 0 29 2 5",
        "0 17 4 * * *", "0 2/15 9-17 * * 1-5", "31 17 2 * * 0", "0 0 0 1,31 1 *",
    ]  # fmt: skip
    groups = {
        "new syntax (L W # H ?)": [parse_schedule(t, "bench-task") for t in new_syntax],
        "plain fields": [parse_schedule(t) for t in plain],
    }
    calls = [(rng.randrange(len(plain)), rng.randint(t0, t1), rng.choice(ZONES))
             for _ in range(100_000)]
    for label, group in groups.items():
        for sched, t, tz in ((group[i], t, tz) for i, t, tz in calls[:2000]):
            sched.next_after(t, tz)  # warm the zone and day tables
        begin = time.perf_counter()
        for i, t, tz in calls:
            group[i].next_after(t, tz)
        took = time.perf_counter() - begin
        print(f"next_after, {label}: 100,000 calls in {took * 1000:.0f} ms "
              f"({took * 10:.1f} us each)")

    # Iterating: a frequent and a fixed-time schedule through a year of Berlin.
    berlin = ZoneInfo("Europe/Berlin")
    for text in ("0 */5 * * * *", "0 30 2 * * *"):
        sched = parse_schedule(text)
        begin = time.perf_counter()
        count = 0
        for u in sched.iter_due(t0, berlin):
            if u >= t0 + 365 * 86400:
                break
            count += 1
        took = time.perf_counter() - begin
        print(f"iter_due {text!r}: {count} due times in a year in {took * 1000:.0f} ms")

    # Worst single call: rare schedules from instants spread over 2024-2124, every zone.
    # Cold: the zone transition cache (module internal) is emptied before each call.
    far = t0 + 100 * 365 * 86400
    for label, cold in (("cold zone data", True), ("warm", False)):
        worst = 0.0
        worst_case = ""
        for text in RARE:
            sched = parse_schedule(text)
            for tz in ZONES:
                for start in range(t0, far, 86400 * 97):
                    # Best of three, so that a context switch does not pose as the worst case.
                    took = math.inf
                    for _ in range(3):
                        if cold:
                            schedule_module._chunks.clear()
                        begin = time.perf_counter()
                        sched.next_after(start, tz)
                        took = min(took, time.perf_counter() - begin)
                    if took > worst:
                        when = datetime.fromtimestamp(start, UTC).date()
                        worst, worst_case = took, f"{text!r} in {tz.key} from {when}"
        print(
            f"worst single next_after, rare schedules, {label}: {worst * 1000:.2f} ms ({worst_case})"
        )


if __name__ == "__main__":
    main()
