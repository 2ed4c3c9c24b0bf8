"""`plan` with H schedules and jitterSeconds, without --host (this machine), with --task.

The expected times are computed here from the formulas in docs/BEHAVIOUR.md (SHA-256 of
the task's name and a key), not through reconciler's code.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from controller_harness import cli

DOCS = """\
apiVersion: reconciler/v1
kind: Task
metadata: {name: backup}
spec:
  schedule: "H H(1-4) * * *"
  timezone: UTC
  jitterSeconds: 600
  command: ["true"]
---
apiVersion: reconciler/v1
kind: Task
metadata: {name: report}
spec:
  schedule: "0 0 9 ? * MON#1"
  timezone: UTC
  command: ["true"]
  hosts: ["web-*"]
---
apiVersion: reconciler/v1
kind: Task
metadata: {name: month-end}
spec:
  schedule: "0 30 23 L * *"
  timezone: UTC
  command: ["true"]
"""


def h64(name: str, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{name}\n{key}".encode()).digest()[:8], "big")


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("jitter")
    (d / "tasks.yaml").write_text(DOCS)
    return d


def plan_json(spec: Path, *args: str) -> list[dict[str, str]]:
    r = cli("plan", spec, *args, "-o", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def test_hashed_schedule_and_jitter_as_documented(spec: Path) -> None:
    minute = h64("backup", "minute") % 60
    hour = 1 + h64("backup", "hour") % 4
    for host in ("web-1", "web-2.example.com"):
        delay = h64("backup", host.split(".")[0]) % 600
        got = plan_json(spec, "--host", host, "--task", "backup",
                        "--from", "2026-01-01T00:00:00Z", "--count", "3")
        day = datetime(2026, 1, 1, hour, minute, tzinfo=UTC)
        dues = [day + timedelta(days=i) for i in range(3)]
        assert got == [
            {"task": "backup", "due": d.isoformat(),
             "start": (d + timedelta(seconds=delay)).isoformat()}
            for d in dues
        ]


def test_text_output_shows_start_first(spec: Path) -> None:
    r = cli("plan", spec, "--host", "web-1", "--task", "backup", "--from",
            "2026-01-01T00:00:00Z", "--count", "1")
    assert r.returncode == 0, r.stderr
    header, line = r.stdout.splitlines()
    assert header.split() == ["START", "DUE", "TASK"]
    start, due, task = line.split()
    assert task == "backup" and start >= due


def test_window_counts_start_times(spec: Path) -> None:
    delay = h64("backup", "web-1") % 600
    minute = h64("backup", "minute") % 60
    hour = 1 + h64("backup", "hour") % 4
    due = datetime(2026, 1, 2, hour, minute, tzinfo=UTC)
    start = due + timedelta(seconds=delay)
    # A window that opens between the due time and the start holds the run.
    got = plan_json(spec, "--host", "web-1", "--task", "backup",
                    "--from", (due + timedelta(seconds=delay // 2 if delay else 0)).isoformat(),
                    "--until", (start + timedelta(seconds=1)).isoformat())
    assert [g["start"] for g in got] == [start.isoformat()]


def test_without_host_uses_this_machine(spec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILER_HOSTNAME", "web-7")
    monkeypatch.setenv("RECONCILER_HOST_IP", "10.9.9.9")
    got = plan_json(spec, "--task", "report", "--task", "backup",
                    "--from", "2026-01-01T00:00:00Z", "--until", "2026-02-03T00:00:00Z")
    reports = [g["due"] for g in got if g["task"] == "report"]
    assert reports == ["2026-01-05T09:00:00+00:00", "2026-02-02T09:00:00+00:00"]
    delay = h64("backup", "web-7") % 600
    first = next(g for g in got if g["task"] == "backup")
    gap = datetime.fromisoformat(first["start"]) - datetime.fromisoformat(first["due"])
    assert gap == timedelta(seconds=delay)
    assert {g["task"] for g in got} == {"report", "backup"}  # month-end left out by --task
    monkeypatch.setenv("RECONCILER_HOSTNAME", "db-1")
    got = plan_json(spec, "--task", "report", "--from", "2026-01-01T00:00:00Z", "--count", "3")
    assert got == []  # report runs on web-* only


def test_last_day_of_month(spec: Path) -> None:
    got = plan_json(spec, "--host", "x", "--task", "month-end",
                    "--from", "2028-01-01T00:00:00Z", "--count", "3")
    assert [g["due"] for g in got] == [
        "2028-01-31T23:30:00+00:00", "2028-02-29T23:30:00+00:00", "2028-03-31T23:30:00+00:00"
    ]
    assert all("start" not in g for g in got)  # no jitterSeconds: no start key


def test_unknown_task_is_an_error(spec: Path) -> None:
    r = cli("plan", spec, "--host", "x", "--task", "nope", "--count", "1")
    assert r.returncode == 2 and r.stdout == ""
    assert "no task named 'nope'" in r.stderr
