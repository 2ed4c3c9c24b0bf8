"""`reconciler import` as a user runs it, then `validate` and `plan` on what it wrote."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from test_import_oracle import BERLIN, NEW_YORK, Cron, at, oracle

DATA = Path(__file__).parent / "data" / "import"
HOST_ZONE = "Asia/Kolkata"  # the host's zone for tasks without one: not UTC, half-hour offset


def _has_command(module: str) -> bool:
    return importlib.util.find_spec(f"reconciler.commands.{module}") is not None


def reconciler(*args: str, cwd: Path = DATA, stdin: bytes | None = None,
               ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TZ": HOST_ZONE}
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args], cwd=cwd, env=env, input=stdin,
        capture_output=True, timeout=60, **({} if stdin is not None else {"text": True}),
    )


RUN_AS_WARNING = (
    "warning: a user crontab imported without --run-as: its tasks will run as the "
    "controller's user (root, for a controller started as root); --run-as USER runs them as "
    "the crontab's owner did"
)
USER_PROBLEMS = (
    f"user.crontab: {RUN_AS_WARNING}\n"
    "user.crontab:31: cannot convert: not an environment setting nor 5 time fields and a "
    "command\n"
    "user.crontab:32: cannot convert: no command after 5 time fields\n"
)


def test_stdout_stream_is_the_expected_documents() -> None:
    run = reconciler("import", "--from", "crontab", "user.crontab")
    assert run.returncode == 1  # two lines could not be converted
    assert run.stdout == (DATA / "user.crontab.expected.yaml").read_text()
    assert run.stderr == USER_PROBLEMS


def test_clean_conversion_exits_0() -> None:
    run = reconciler("import", "--from", "crontab", "--system", "cron.d-php-certbot")
    assert (run.returncode, run.stderr) == (0, "")
    assert run.stdout == (DATA / "cron.d-php-certbot.expected.yaml").read_text()


def test_gotorch_from_the_command_line() -> None:
    run = reconciler("import", "--from", "gotorch", "tasks.json")
    assert run.returncode == 1
    assert run.stdout == (DATA / "tasks.json.expected.yaml").read_text()
    assert len(run.stderr.splitlines()) == 9


def test_output_dir_then_validate(tmp_path: Path) -> None:
    out = tmp_path / "specs" / "imported"
    run = reconciler("import", "--from", "crontab", "user.crontab", "-o", str(out))
    assert run.returncode == 1 and run.stderr == USER_PROBLEMS
    names = ["logrotate", "report", "market-open", "sync", "warm-cache", "find", "date",
             "weekly-cleanup", "mail", "payday", "sync-2", "healthcheck"]
    assert run.stdout.splitlines() == [str(out / f"{n}.yaml") for n in names]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.yaml" for n in names)
    first = (out / "logrotate.yaml").read_text()
    assert first.startswith("# Rotate the app's logs before the morning traffic.\n")
    assert "\n---" not in first

    # A second import into the same directory would duplicate every task: refused, with
    # nothing written, unless --overwrite.
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    again = reconciler("import", "--from", "crontab", "user.crontab", "-o", str(out))
    assert (again.returncode, again.stdout) == (1, "")
    assert f"reconciler import: task 'logrotate' already exists in {out}/logrotate.yaml\n" \
        in again.stderr
    assert again.stderr.endswith(
        f"reconciler import: nothing written into {out}: re-importing would duplicate tasks; "
        "--overwrite replaces them, or name the entries apart\n"
    )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    (out / "logrotate.yaml").write_text(first.replace("15 4 * * *", "16 4 * * *"))
    over = reconciler("import", "--from", "crontab", "user.crontab", "-o", str(out),
                      "--overwrite")
    assert over.returncode == 1 and over.stderr == USER_PROBLEMS  # the two lines, as before
    assert over.stdout.splitlines() == [str(out / f"{n}.yaml") for n in names]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    if not _has_command("validate"):
        pytest.skip("`reconciler validate` is not registered yet")
    check = reconciler("validate", str(tmp_path / "specs"))
    assert check.returncode == 0, check.stdout + check.stderr


def test_stdin_is_read_with_dash() -> None:
    run = reconciler("import", "--from", "crontab", "-", stdin=b"0 1 * * * /bin/true\n")
    assert run.returncode == 0, run.stderr
    assert run.stdout.decode().startswith("---\n# from <stdin>:1: 0 1 * * * /bin/true\n")


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["import", "crontab"], 2, "the following arguments are required: --from"),
        (["import", "--from", "anacron", "x"], 2, "invalid choice: 'anacron'"),
        (["import", "--from", "gotorch", "--system", "tasks.json"], 2,
         "--system and --no-system apply to crontabs only"),
        (["import", "--from", "crontab", "--host", "10.0.1.5/24", "user.crontab"], 2,
         "10.0.1.5/24 has host bits set; did you mean 10.0.1.0/24?"),
        (["import", "--from", "crontab", "no-such-file"], 1,
         "reconciler import: cannot read no-such-file: No such file or directory"),
        (["import", "--from", "crontab", "user.crontab", "-o", "tasks.json"], 1,
         "reconciler import: tasks.json is not a directory"),
    ],
)
def test_usage_and_input_errors(args: list[str], code: int, message: str) -> None:
    run = reconciler(*args)
    assert run.returncode == code
    assert message in run.stderr
    assert run.stdout == ""


def test_plan_of_the_imported_tasks_matches_the_oracle(tmp_path: Path) -> None:
    if not _has_command("plan"):
        pytest.skip("`reconciler plan` is not registered yet")
    out = tmp_path / "specs"
    reconciler("import", "--from", "crontab", "user.crontab", "-o", str(out))
    reconciler("import", "--from", "crontab", "--system", "system.crontab", "-o", str(out))
    start, until = "2026-03-28T00:00:00Z", "2026-03-30T00:00:00Z"  # Berlin springs forward
    run = reconciler("plan", str(out), "--host", "web-1", "--from", start, "--until", until,
                     "-o", "json")
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)

    host = ZoneInfo(HOST_ZONE)
    zones = {"market-open": NEW_YORK, "sync": NEW_YORK, "find": NEW_YORK, "date": NEW_YORK,
             "weekly-cleanup": BERLIN, "mail": BERLIN, "payday": BERLIN, "sync-2": BERLIN,
             "healthcheck": BERLIN}
    # name -> the schedule fields of the original line, read off the fixtures by hand
    originals = {
        "logrotate": "15 4 * * *", "report": "30 6 * * mon-fri", "market-open": "30 9 * * 1-5",
        "sync": "0 */2 * * *", "find": "@daily", "date": "0 0 1 jan,jul *",
        "weekly-cleanup": "5 0 * * sun", "mail": "45 7 * * *", "payday": "0 12 1,15 * 5",
        "sync-2": "@hourly", "healthcheck": "*/10 8-18 * * *",
        "cron-hourly": "17 * * * *", "cron-daily": "25 6 * * *", "cron-weekly": "47 6 * * 7",
        "cron-monthly": "52 6 1 * *", "artisan": "*/15 * * * *",
    }
    expected = sorted(
        (due, name)
        for name, text in originals.items()
        for due in oracle(Cron(text), zones.get(name, host), at(start), at(until))
    )
    assert [(at(e["due"]), e["task"]) for e in got] == expected
    for entry in got:  # each due time is written with its own task's offset
        zone = zones.get(entry["task"], host)
        due = datetime.fromisoformat(entry["due"])
        assert due.utcoffset() == datetime.fromtimestamp(due.timestamp(), zone).utcoffset()
