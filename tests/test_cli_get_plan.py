"""`reconciler get` and `reconciler plan`, end to end through `python -m reconciler`."""

from __future__ import annotations

import json
import textwrap
import time
from datetime import datetime
from pathlib import Path

import pytest
from controller_harness import cli

FLEET = """\
apiVersion: reconciler/v1
kind: Task
metadata: {name: nightly, labels: {team: infra}}
spec:
  schedule: "0 3 * * *"
  timezone: Europe/Berlin
  command: ["/usr/sbin/logrotate", "/etc/logrotate.conf"]
  hosts: ["10.0.1.0/24"]
  env: {TOKEN: hunter2}
---
apiVersion: reconciler/v1
kind: Task
metadata: {name: gap}
spec:
  schedule: "30 2 * * *"
  timezone: Europe/Berlin
  command: "echo gap"
---
apiVersion: reconciler/v1
kind: Task
metadata: {name: hourly-web}
spec:
  schedule: "0 * * * *"
  timezone: UTC
  command: ["true"]
  hosts: ["web-*"]
---
apiVersion: reconciler/v1
kind: Task
metadata: {name: quarter}
spec:
  schedule: "*/15 * * * *"
  timezone: UTC
  command: ["true"]
  hosts: ["10.0.0.5"]
---
apiVersion: reconciler/v1
kind: Task
metadata: {name: every}
spec:
  schedule: "@every 90s"
  command: ["true"]
  hosts: ["10.0.0.5"]
---
apiVersion: reconciler/v1
kind: Task
metadata: {name: boot}
spec:
  schedule: "@reboot"
  command: ["true"]
---
apiVersion: reconciler/v1
kind: Task
metadata: {name: web}
spec:
  type: daemon
  command: ["/srv/web"]
  hosts: ["web-*"]
---
apiVersion: reconciler/v1
kind: Task
metadata: {name: paused}
spec:
  schedule: "* * * * *"
  command: ["true"]
  suspend: true
---
apiVersion: reconciler/v1
kind: Task
metadata: {name: parked}
spec:
  schedule: "* * * * *"
  command: ["true"]
  hosts: []
"""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("fleet")
    (d / "fleet.yaml").write_text(FLEET)
    return d


def plan_json(spec: Path, *args: str) -> list[dict[str, str]]:
    r = cli("plan", spec, *args, "-o", "json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert isinstance(data, list)
    return data


# --- get -------------------------------------------------------------------------------


def test_get_table(fleet: Path) -> None:
    r = cli("get", fleet, "--host-ip", "10.0.1.7", "--hostname", "db-1")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "SCHEDULE", "HOSTS", "NEXT", "RUN", "HERE"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert sorted(rows) == sorted(
        ["nightly", "gap", "hourly-web", "quarter", "every", "boot", "web", "paused", "parked"]
    )
    assert "0 3 * * * (Europe/Berlin)" in rows["nightly"]
    assert "10.0.1.0/24" in rows["nightly"]
    assert rows["nightly"].rstrip().endswith("yes")
    assert rows["quarter"].rstrip().endswith("no")
    assert "@reboot" in rows["boot"]
    assert "suspended" in rows["paused"]
    assert " none " in rows["parked"] and rows["parked"].rstrip().endswith("no")
    assert " * " in rows["gap"]  # no hosts field: every host
    web = rows["web"].split()
    assert web[1:5] == ["daemon", "-", "web-*", "-"]
    # A next run shows the absolute time in the task's zone and the distance from now.
    assert "(in " in rows["nightly"]
    assert "hunter2" not in r.stdout


def test_get_wide(fleet: Path) -> None:
    r = cli("get", fleet, "-o", "wide", "--host-ip", "10.0.0.5", "--hostname", "web-3")
    assert r.returncode == 0, r.stderr
    header = r.stdout.splitlines()[0]
    for col in ("FILE:LINE", "LABELS", "COMMAND"):
        assert col in header
    nightly = next(line for line in r.stdout.splitlines() if line.startswith("nightly"))
    assert "fleet.yaml:1" in nightly
    assert "team=infra" in nightly
    assert "/usr/sbin/logrotate /etc/logrotate.conf" in nightly
    web = next(line for line in r.stdout.splitlines() if line.startswith("web "))
    assert " yes " in web  # web-* matches web-3


def test_get_json_masks_env_and_has_all_fields(fleet: Path) -> None:
    r = cli("get", fleet, "-o", "json", "--host-ip", "10.0.1.7", "--hostname", "db-1")
    assert r.returncode == 0, r.stderr
    assert "hunter2" not in r.stdout
    items = {i["metadata"]["name"]: i for i in json.loads(r.stdout)}
    n = items["nightly"]
    assert n["spec"]["env"] == {"TOKEN": "***"}
    assert n["spec"]["schedule"] == "0 3 * * *"
    assert n["spec"]["timezone"] == "Europe/Berlin"
    assert n["spec"]["maxConcurrency"] == 1  # defaults are filled
    assert n["onThisHost"] is True
    assert n["file"].endswith("fleet.yaml") and n["line"] == 1
    due = datetime.fromisoformat(n["nextRun"])
    assert due.timestamp() > time.time()
    assert (due.hour, due.minute) == (3, 0)
    assert items["web"]["nextRun"] is None and items["web"]["onThisHost"] is False
    assert items["paused"]["nextRun"] is None
    assert items["parked"]["onThisHost"] is False


def test_get_invalid_file_reports_and_lists_valid(fleet: Path, tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text((fleet / "fleet.yaml").read_text())
    (tmp_path / "bad.yaml").write_text(
        textwrap.dedent(
            """\
            apiVersion: reconciler/v1
            kind: Task
            metadata: {name: broken}
            spec:
              schedule: "0 25 * * *"
              command: ["true"]
            """
        )
    )
    r = cli("get", tmp_path, "--host-ip", "10.0.0.9")
    assert r.returncode == 0
    assert "bad.yaml:" in r.stderr and "broken" in r.stderr
    assert "nightly" in r.stdout and "broken" not in r.stdout


def test_get_missing_dir(tmp_path: Path) -> None:
    r = cli("get", tmp_path / "nope")
    assert r.returncode == 2
    assert "does not exist" in r.stderr


# --- plan ------------------------------------------------------------------------------


def test_plan_berlin_spring_forward(fleet: Path) -> None:
    data = plan_json(
        fleet,
        "--host", "10.0.1.7",
        "--from", "2026-03-28T00:00:00+01:00",
        "--until", "2026-03-31T00:00:00+02:00",
    )
    assert data == [
        {"task": "gap", "due": "2026-03-28T02:30:00+01:00"},
        {"task": "nightly", "due": "2026-03-28T03:00:00+01:00"},
        # 02:30 does not exist on the 29th: it runs at the first second after the gap,
        # the same instant as nightly's 03:00; ties are ordered by task name.
        {"task": "gap", "due": "2026-03-29T03:00:00+02:00"},
        {"task": "nightly", "due": "2026-03-29T03:00:00+02:00"},
        {"task": "gap", "due": "2026-03-30T02:30:00+02:00"},
        {"task": "nightly", "due": "2026-03-30T03:00:00+02:00"},
    ]


def test_plan_from_included_until_excluded(fleet: Path) -> None:
    data = plan_json(
        fleet,
        "--host", "10.0.1.7",
        "--from", "2026-03-29T03:00:00+02:00",
        "--until", "2026-03-30T03:00:00+02:00",
    )
    assert data == [
        {"task": "gap", "due": "2026-03-29T03:00:00+02:00"},
        {"task": "nightly", "due": "2026-03-29T03:00:00+02:00"},
        {"task": "gap", "due": "2026-03-30T02:30:00+02:00"},
    ]
    # The same instant written in UTC means the same window.
    assert data == plan_json(
        fleet,
        "--host", "10.0.1.7",
        "--from", "2026-03-29T01:00:00Z",
        "--until", "2026-03-30T01:00:00Z",
    )


def test_plan_count_merges_tasks(fleet: Path) -> None:
    data = plan_json(fleet, "--host", "10.0.0.5", "--from", "2026-06-01T00:00:00Z", "--count", "6")
    assert data == [
        {"task": "quarter", "due": "2026-06-01T00:00:00+00:00"},
        {"task": "every", "due": "2026-06-01T00:01:30+00:00"},
        {"task": "every", "due": "2026-06-01T00:03:00+00:00"},
        {"task": "every", "due": "2026-06-01T00:04:30+00:00"},
        {"task": "every", "due": "2026-06-01T00:06:00+00:00"},
        {"task": "every", "due": "2026-06-01T00:07:30+00:00"},
    ]


def test_plan_every_anchored_at_from(fleet: Path) -> None:
    data = plan_json(fleet, "--host", "10.0.0.5", "--from", "2026-06-01T00:00:07Z", "--count", "4")
    every = [d["due"] for d in data if d["task"] == "every"]
    assert every[:2] == ["2026-06-01T00:01:37+00:00", "2026-06-01T00:03:07+00:00"]


@pytest.mark.parametrize(
    "host, tasks",
    [
        ("10.0.1.7", {"gap", "nightly"}),  # CIDR
        ("10.0.0.5", {"gap", "quarter", "every"}),  # exact IP
        ("web-3", {"gap", "hourly-web"}),  # hostname glob
        ("web-3.example.com", {"gap", "hourly-web"}),  # FQDN: its short name matches
        ("db-1", {"gap"}),
        ("web-3,10.0.1.7", {"gap", "hourly-web", "nightly"}),  # one host, name and address
    ],
)
def test_plan_host_matching(fleet: Path, host: str, tasks: set[str]) -> None:
    data = plan_json(
        fleet, "--host", host, "--from", "2026-06-01T00:00:00Z", "--until", "2026-06-03T00:00:00Z"
    )
    # @reboot, daemons, suspended and parked tasks are never listed.
    assert {d["task"] for d in data} == tasks


def test_plan_sorted_by_time_then_task(fleet: Path) -> None:
    data = plan_json(
        fleet, "--host", "web-3,10.0.0.5", "--from", "2026-06-01T00:00:00Z", "--count", "200"
    )
    keys = [(datetime.fromisoformat(d["due"]).timestamp(), d["task"]) for d in data]
    assert keys == sorted(keys)
    assert len(data) == 200


def test_plan_text_output(fleet: Path) -> None:
    r = cli("plan", fleet, "--host", "10.0.1.7", "--from", "2026-03-29T00:00:00Z", "--count", "2")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["DUE", "TASK"]
    assert lines[1].split() == ["2026-03-29T03:00:00+02:00", "gap"]
    assert lines[2].split() == ["2026-03-29T03:00:00+02:00", "nightly"]


def test_plan_default_from_is_now(fleet: Path) -> None:
    before = time.time()
    data = plan_json(fleet, "--host", "10.0.0.5", "--count", "3")
    assert len(data) == 3
    assert all(datetime.fromisoformat(d["due"]).timestamp() >= int(before) for d in data)


def test_plan_empty_window_is_empty_list(fleet: Path) -> None:
    data = plan_json(
        fleet, "--host", "db-9", "--from", "2026-06-01T00:00:00Z", "--until", "2026-06-01T00:20:00Z"
    )
    assert data == []


@pytest.mark.parametrize(
    "args",
    [
        ["--host", "x", "--from", "2026-03-29T03:00:00", "--count", "1"],  # naive time
        ["--host", "x", "--until", "2026-03-29", "--from", "2026-03-28T00:00:00Z"],  # no time
        ["--host", "x", "--from", "yesterday", "--count", "1"],
        ["--host", "x", "--count", "1", "--until", "2026-03-29T03:00:00Z"],  # both
        ["--host", "x"],  # neither
        ["--host", "x", "--count", "0"],
        ["--host", "x", "--from", "2026-03-29T03:00:00Z", "--until", "2026-03-29T02:00:00Z"],
    ],
)
def test_plan_usage_errors(fleet: Path, args: list[str]) -> None:
    r = cli("plan", fleet, *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stdout == ""


def test_plan_refuses_huge_window(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Task\nmetadata: {name: persec}\n"
        "spec: {schedule: '* * * * * *', command: ['true']}\n"
    )
    r = cli("plan", tmp_path, "--host", "x", "--from", "2026-01-01T00:00:00Z",
            "--until", "2026-02-01T00:00:00Z")
    assert r.returncode == 2
    assert "--count" in r.stderr and r.stdout == ""
    # --count is explicit: the first N are given however dense the schedule.
    r = cli("plan", tmp_path, "--host", "x", "--from", "2026-01-01T00:00:00Z", "--count", "3",
            "-o", "json")
    assert [d["due"] for d in json.loads(r.stdout)] == [
        "2026-01-01T00:00:00+00:00",
        "2026-01-01T00:00:01+00:00",
        "2026-01-01T00:00:02+00:00",
    ]
