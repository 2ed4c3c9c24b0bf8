"""Imported documents load cleanly and are due exactly when the original lines were.

The due times of the originals come from the brute-force walker in test_import_oracle,
written from cron(5) and the contract's DST rules, not from reconciler.schedule: the
comparison is between two independent readings of each line.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from test_import_oracle import BERLIN, NEW_YORK, Cron, at, oracle

from reconciler.importer import ImportResult, convert, decode, write_files
from reconciler.spec import Task, load_paths

DATA = Path(__file__).parent / "data" / "import"


def implementation(task: Task, start: int, end: int) -> list[int]:
    assert task.schedule is not None
    dues, t = [], start - 1
    while (nxt := task.schedule.next_after(t, task.timezone)) is not None and nxt < end:
        dues.append(nxt)
        t = nxt
    return dues


WINDOWS = [  # New Year (yearly, monthly, weekly), both DST changes in Berlin and New York
    ("2025-12-30T00:00:00Z", "2026-01-05T00:00:00Z"),
    ("2026-03-07T00:00:00Z", "2026-03-10T00:00:00Z"),
    ("2026-03-28T00:00:00Z", "2026-03-30T00:00:00Z"),
    ("2026-10-24T00:00:00Z", "2026-10-26T00:00:00Z"),
    ("2026-10-31T00:00:00Z", "2026-11-02T12:00:00Z"),
]

DST_CRONTAB = """\
CRON_TZ=Europe/Berlin
30 2 * * * in-the-gap-and-twice
*/20 2 * * * wildcard-minutes
0 1-3 * * * fixed-hours
CRON_TZ=America/New_York
30 1 * * * repeated-hour
15 2 * * 0 sunday-gap
0 * * * * every-hour
"""


def _load(result: ImportResult, tmp_path: Path) -> dict[str, Task]:
    out = tmp_path / "specs"
    write_files(result.tasks, out)
    loaded = load_paths([out])
    assert [str(e) for e in loaded.errors] == []
    assert set(loaded.tasks) == {t.name for t in result.tasks}
    return loaded.tasks


def _schedule_text(line: str, system: bool) -> str:
    """The schedule fields of an original crontab line, read independently."""
    words = line.split()
    count = 1 if words[0].startswith("@") else 5
    return " ".join(words[:count])


@pytest.mark.parametrize(
    "fixture, system, zones",
    [
        ("user.crontab", False, {"market-open": NEW_YORK, "sync": NEW_YORK, "find": NEW_YORK,
                                 "date": NEW_YORK, "warm-cache": NEW_YORK,
                                 "weekly-cleanup": BERLIN, "mail": BERLIN, "payday": BERLIN,
                                 "sync-2": BERLIN, "healthcheck": BERLIN}),
        ("system.crontab", True, {}),
        ("cron.d-php-certbot", True, {}),
        ("<dst>", False, {"in-the-gap-and-twice": BERLIN, "wildcard-minutes": BERLIN,
                          "fixed-hours": BERLIN, "repeated-hour": NEW_YORK,
                          "sunday-gap": NEW_YORK, "every-hour": NEW_YORK}),
    ],
)
def test_crontab_due_times_survive_the_import(
    fixture: str, system: bool, zones: dict[str, ZoneInfo], tmp_path: Path
) -> None:
    text = DST_CRONTAB if fixture == "<dst>" else decode((DATA / fixture).read_bytes(), "crontab")
    result = convert("crontab", text, fixture, system=system)
    tasks = _load(result, tmp_path)
    lines = text.split("\n")
    compared = 0
    for imported in result.tasks:
        task = tasks[imported.name]
        # Tasks without a zone run in the host's zone, as cron did.
        zone = zones.get(task.name, task.timezone)
        assert task.timezone.key == zone.key, task.name
        cron = Cron(_schedule_text(lines[imported.line - 1], system))
        for start, end in WINDOWS:
            a, b = at(start), at(end)
            assert implementation(task, a, b) == oracle(cron, zone, a, b), (task.name, start)
            compared += 1
    assert compared == len(WINDOWS) * len(result.tasks) > 0


# Times of the fixture's common entries, copied by hand.
GOTORCH_TIMES = {"report": "0 30 6 * * 1-5", "find": "*/30 * * * * *",
                 "sync-prices": "15 */5 8-18 * * *", "report-2": "0 0 7 * * MON"}


def test_gotorch_due_times_survive_the_import(tmp_path: Path) -> None:
    text = decode((DATA / "tasks.json").read_bytes(), "gotorch")
    result = convert("gotorch", text, "tasks.json")
    tasks = _load(result, tmp_path)
    start, end = at("2026-03-01T22:00:00Z"), at("2026-03-03T02:00:00Z")  # Mon, Tue
    crons = [t for t in result.tasks if tasks[t.name].type == "cron"]
    assert [t.name for t in crons] == ["report", "find", "sync-prices", "report-2"]
    for imported in crons:
        task = tasks[imported.name]
        cron = Cron(GOTORCH_TIMES[imported.name], seconds=True, both_days=True)
        assert implementation(task, start, end) == oracle(cron, task.timezone, start, end)


def test_problems_of_the_spec_loader_are_reported_at_the_source_line() -> None:
    text = "61 * * * * a\n0 0 30 2 * b\n@Daily c\n0 0 * * * d\n"
    result = convert("crontab", text, "c")
    assert [t.name for t in result.tasks] == ["d"]
    assert [p.render("c") for p in result.problems] == [
        "c:1: cannot convert: spec.schedule: minute: 61 is out of range 0-59",
        "c:2: cannot convert: spec.schedule: never fires (day 30 of month 2 does not exist)",
        "c:3: cannot convert: spec.schedule: unknown macro @Daily (macros are lower case)",
    ]

