"""The loop's ticks under an injected clock: steps back and forward, with real processes.

libfaketime breaks Python's sleeping on this platform, so the controller takes its clock
as a parameter; these tests drive `reconcile_once` by hand with a clock they move.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from controller_harness import write_task

from reconciler.controller import Controller, Options
from reconciler.hosts import HostIdentity
from reconciler.obs import setup_logging
from reconciler.state import StateDir
from reconciler.state.ledger import Ledger


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Controller, Clock, io.StringIO, Path]]:
    spec = tmp_path / "specs"
    spec.mkdir()
    os.chmod(spec, 0o755)
    out = io.StringIO()
    setup_logging("json", stream=out)
    clock = Clock(float(math.floor(time.time())))
    c = Controller(
        Options(spec_dir=spec, state=StateDir(tmp_path / "state"), identity=HostIdentity()),
        clock=clock,
    )
    c.state.ensure()
    yield c, clock, out, spec
    c.supervisor.stop_all("shutdown", lambda h: 1.0)
    deadline = time.monotonic() + 10
    while c.executor.runs and time.monotonic() < deadline:
        c.executor.collect_exits()
        time.sleep(0.05)
    c.refresh.close()
    c.supervisor.close()


def events(out: io.StringIO, name: str) -> list[dict]:
    return [e for e in map(json.loads, out.getvalue().splitlines()) if e["event"] == name]


def due_of(e: dict) -> int:
    return int(datetime.fromisoformat(e["due"]).timestamp())


def settle(c: Controller) -> None:
    deadline = time.monotonic() + 10
    while c.executor.runs and time.monotonic() < deadline:
        c.executor.collect_exits()
        time.sleep(0.02)
    assert not c.executor.runs


def test_clock_steps_back_then_forward(rig) -> None:
    c, clock, out, spec = rig
    write_task(spec, "tick", {"schedule": "* * * * * *", "command": ["true"],
                              "startingDeadlineSeconds": 10})
    t0 = int(clock.t)
    c.load()
    c.reconcile_once(t0)  # first seen at t0: t0 itself is not due
    assert events(out, "run.started") == []
    clock.t = t0 + 1
    c.reconcile_once(t0 + 1)
    settle(c)
    assert [due_of(e) for e in events(out, "run.started")] == [t0 + 1]

    # The clock steps back a minute: nothing handled is due again, nothing at all runs
    # until the clock is past the last handled second.
    for back in range(t0 - 60, t0 - 55):
        clock.t = back
        c.reconcile_once(back)
    clock.t = t0 + 1
    c.reconcile_once(t0 + 1)
    settle(c)
    assert [due_of(e) for e in events(out, "run.started")] == [t0 + 1]

    # Forward by 30 s with a 10 s deadline: one late run for the latest second; the
    # others logged, coalesced within the deadline, deadline past it.
    clock.t = t0 + 31.2
    c.reconcile_once(t0 + 31)
    settle(c)
    starts = [due_of(e) for e in events(out, "run.started")]
    assert starts == [t0 + 1, t0 + 31]
    skips = {due_of(e): e["reason"] for e in events(out, "run.skipped")}
    assert set(skips) == set(range(t0 + 2, t0 + 31))
    assert all(skips[s] == "deadline" for s in range(t0 + 2, t0 + 21))
    assert all(skips[s] == "coalesced" for s in range(t0 + 21, t0 + 31))

    # The ledger on disk (snapshot and delta) knows the last handled second, for the
    # next controller.
    # (The snapshot is written by the loop's flush after a tick, which this test does not
    # run; the delta written before each spawn is on disk in any case.)
    snapshot = c.state.path / "ledger.json"
    ledger = Ledger.from_json(json.loads(snapshot.read_text()) if snapshot.exists() else {})
    assert ledger.replay(json.loads((c.state.path / "ledger-delta.json").read_text()))
    assert ledger.cursors["tick"] == t0 + 31


def test_dst_forward_jump_in_task_zone_runs_once(rig) -> None:
    """A fixed-time task at 02:30 Europe/Berlin on the spring-forward day runs at 03:00 once."""
    c, clock, out, spec = rig
    write_task(spec, "night", {"schedule": "0 30 2 * * *", "timezone": "Europe/Berlin",
                               "command": ["true"]})
    gap_end = int(datetime.fromisoformat("2026-03-29T03:00:00+02:00").timestamp())
    clock.t = gap_end - 3600
    c.load()
    for t in range(gap_end - 5, gap_end + 5):
        clock.t = t
        c.reconcile_once(t)
    settle(c)
    starts = events(out, "run.started")
    assert [due_of(e) for e in starts] == [gap_end]
    assert starts[0]["due"] == "2026-03-29T03:00:00+02:00"


def test_dst_repeated_hour_fixed_time_runs_once(rig) -> None:
    c, clock, out, spec = rig
    write_task(spec, "night", {"schedule": "0 30 2 * * *", "timezone": "Europe/Berlin",
                               "command": ["true"]})
    first = int(datetime.fromisoformat("2026-10-25T02:30:00+02:00").timestamp())
    second = int(datetime.fromisoformat("2026-10-25T02:30:00+01:00").timestamp())
    clock.t = first - 10
    c.load()
    for t in (*range(first - 2, first + 3), *range(second - 2, second + 3)):
        clock.t = t
        c.reconcile_once(t)
    settle(c)
    assert [due_of(e) for e in events(out, "run.started")] == [first]


def test_clock_step_forward_does_not_time_out_a_healthy_run(rig) -> None:
    c, clock, out, spec = rig
    write_task(spec, "long", {"schedule": "@reboot", "command": ["sleep", "30"],
                              "timeoutSeconds": 3600, "terminationGracePeriodSeconds": 1})
    t0 = int(clock.t)
    c.load()
    c.reconcile_once(t0)
    assert len(events(out, "run.started")) == 1
    clock.t = t0 + 7200  # two hours "later" by the wall clock, a moment by the run's
    c.reconcile_once(t0 + 7200)
    assert events(out, "run.stopping") == []
    assert len(c.executor.runs) == 1


def test_clock_step_back_does_not_park_a_daemon_in_back_off(rig) -> None:
    c, clock, out, spec = rig
    write_task(spec, "crashy", {"type": "daemon", "command": ["false"]})
    t0 = int(clock.t)
    c.load()
    c.reconcile_once(t0)
    settle(c)  # exited: back-off of 1 s from its end
    clock.t = t0 - 3600  # the wall clock steps back an hour
    c.reconcile_once(t0 - 3600)
    assert len(events(out, "run.started")) == 2, "restarted within the longest back-off"
