"""`reconciler fleet hosts|runs` against a real etcd and real controllers, and the pure
reading of the records."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from controller_harness import ControllerProc, cli, wait_until, write_task
from etcd_harness import EtcdServer, etcd_server

from reconciler.coordination.fleetview import host_rows, run_rows
from reconciler.coordination.model import RunSummary

TTL = 3


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    yield from etcd_server(tmp_path)


def controller(spec: Path, tmp: Path, etcd: EtcdServer, i: int) -> ControllerProc:
    return ControllerProc(
        spec, tmp / f"state-{i}",
        ["--etcd", etcd.url, "--etcd-lease-ttl", str(TTL), "--hostname", f"host{i}",
         "--host-ip", f"10.99.0.{i + 1}"],
    )


def fleet_json(etcd: EtcdServer, *args: str) -> tuple[int, Any]:
    out = cli("fleet", *args, "--etcd", etcd.url, "-o", "json")
    assert out.returncode in (0, 1), out.stderr
    return out.returncode, json.loads(out.stdout)


def test_host_rows_alive_gone_and_drift() -> None:
    members = [
        {"host": "a", "specRevision": "git:1", "addresses": ["10.0.0.1"], "tasks": 3},
        {"host": "b", "specRevision": "git:1"},
        {"host": "c", "specRevision": "git:2", "specErrors": 2},
        {"host": "d", "specRevision": "git:0"},  # gone: neither counted nor marked
    ]
    rows = {r.host: r for r in host_rows(members, {"a", "b", "c"})}
    assert [rows[h].drift for h in "abcd"] == [False, False, True, False]
    assert rows["d"].to_json()["state"] == "gone" and rows["a"].to_json()["state"] == "alive"
    assert rows["c"].errors == 2 and rows["a"].addresses == ("10.0.0.1",)


def test_run_rows_missed_only_where_nobody_ran() -> None:
    rows = run_rows(
        [
            RunSummary("t", 100, "a", "succeeded", run_id="r1", token=7),
            RunSummary("t", 101, "a", "skipped", reason="no-coordination"),
            RunSummary("t", 101, "b", "skipped", reason="no-coordination"),
            RunSummary("t", 102, "b", "claimed"),
            RunSummary("t", 103, "c", "claimed"),
            RunSummary("t", 104, "a", "skipped", reason="max-concurrency"),
            RunSummary("t", 104, "b", "failed"),
            RunSummary("t", None, "a", "succeeded"),  # a daemon: no due time
        ],
        alive={"a", "b"},
    )
    got = [(r.due, r.host, r.outcome) for r in rows]
    assert got == [
        (100, "a", "succeeded"),
        (101, None, "missed"),
        (102, "b", "running"),
        (103, "c", "unknown"),
        (104, "b", "failed"),
    ]
    assert rows[1].reason == "no-coordination on a; no-coordination on b"


@pytest.mark.slow
def test_fleet_hosts_sees_a_host_go_and_spec_drift(
    tmp_path: Path, etcd: EtcdServer, controllers: list[ControllerProc]
) -> None:
    same, other = tmp_path / "specs", tmp_path / "other"
    for d in (same, other):
        d.mkdir()
        os.chmod(d, 0o755)
    write_task(same, "a", {"schedule": "@daily", "command": ["true"]})
    write_task(other, "a", {"schedule": "@hourly", "command": ["true"]})
    # The third host's directory is a git checkout: its revision is the commit.
    sha = "0123456789abcdef0123456789abcdef01234567"
    (other / ".git").mkdir()
    (other / ".git" / "HEAD").write_text(sha + "\n")
    for i, spec in enumerate((same, same, other)):
        c = controller(spec, tmp_path, etcd, i)
        controllers.append(c)
        c.wait_for("coordination.available", timeout=30)

    def hosts() -> dict[str, Any]:
        return {h["host"]: h for h in fleet_json(etcd, "hosts")[1]}

    wait_until(lambda: len(hosts()) == 3, timeout=15, what="three hosts")
    seen = hosts()
    assert {h["state"] for h in seen.values()} == {"alive"}
    assert seen["host2"]["specRevision"] == f"git:{sha[:12]}" and seen["host2"]["drift"]
    assert not seen["host0"]["drift"] and seen["host0"]["specRevision"].startswith("sha256:")
    assert seen["host0"]["addresses"] == ["10.99.0.1"] and seen["host0"]["tasks"] == 1
    text = cli("fleet", "hosts", "--etcd", etcd.url).stdout
    assert "(drift)" in text and "LAST SEEN" in text

    controllers[1].kill()  # SIGKILL: its record goes when its lease expires
    killed = time.monotonic()
    wait_until(lambda: hosts()["host1"]["state"] == "gone", timeout=2 * TTL + 2,
               what="host1 gone")
    assert time.monotonic() - killed <= 2 * TTL + 1
    assert hosts()["host0"]["state"] == "alive"


@pytest.mark.slow
def test_fleet_runs_finds_a_missed_run(
    dirs: tuple[Path, Path], tmp_path: Path, etcd: EtcdServer, controllers: list[ControllerProc]
) -> None:
    spec, _ = dirs
    write_task(spec, "report", {"schedule": "* * * * * *", "placement": "one",
                                "command": ["true"]})
    cs = []
    for i in range(2):
        c = controller(spec, tmp_path, etcd, i)
        controllers.append(c)
        cs.append(c)
    for c in cs:
        c.wait_for("coordination.available", timeout=30)
    time.sleep(3)
    code, rows = fleet_json(etcd, "runs", "report", "--since", "5m")
    assert code == 0, rows
    assert rows and all(r["outcome"] in ("succeeded", "running") for r in rows)
    assert set(rows[0]) >= {"task", "due", "host", "outcome", "runId", "fencingToken"}
    etcd.pause()
    time.sleep(4)
    etcd.resume()
    for c in cs:
        c.wait_for("coordination.available", count=2, timeout=15)
    time.sleep(2)  # the summaries queued while etcd was away go out

    def missed() -> list[dict[str, Any]]:
        return [r for r in fleet_json(etcd, "runs", "--since", "5m")[1]
                if r["outcome"] == "missed"]

    wait_until(lambda: len(missed()) >= 2, timeout=10, what="missed runs")
    code, _ = fleet_json(etcd, "runs", "report", "--since", "5m")
    assert code == 1
    row = missed()[0]
    assert row["host"] is None and "no-coordination" in row["reason"]
    text = cli("fleet", "runs", "--etcd", etcd.url, "--since", "5m")
    assert text.returncode == 1 and "missed" in text.stdout and "missed" in text.stderr
