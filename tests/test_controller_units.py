"""The controller's units without a loop: desired state, the due journal, the spec reader.

Real directories and a real state directory; an injected clock; no processes.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from pathlib import Path

import pytest
from controller_harness import write_task

from reconciler.controller.desired import DesiredState
from reconciler.controller.journal import DueJournal
from reconciler.controller.reader import SpecReader
from reconciler.controller.statefiles import StateFiles
from reconciler.hosts import HostIdentity
from reconciler.obs import Metrics, setup_logging
from reconciler.reconcile import Inputs, StartRun, reconcile
from reconciler.state import StateDir

T0 = 1_800_000_000


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    d = tmp_path / "specs"
    d.mkdir()
    os.chmod(d, 0o755)
    return d


@pytest.fixture
def log() -> io.StringIO:
    out = io.StringIO()
    setup_logging("json", stream=out)
    return out


def events(out: io.StringIO, name: str) -> list[dict]:
    return [e for e in map(json.loads, out.getvalue().splitlines()) if e["event"] == name]


def journal_in(state_dir: Path) -> DueJournal:
    state = StateDir(state_dir)
    state.ensure()
    journal = DueJournal(StateFiles(state, Metrics()))
    journal.load()
    return journal


def desired(spec: Path, journal: DueJournal, clock: Clock) -> DesiredState:
    return DesiredState(
        spec, HostIdentity(names=frozenset({"web-1"})), journal, Metrics(), clock
    )


def test_desired_state_applies_a_read_for_this_host(spec: Path, tmp_path: Path, log) -> None:
    write_task(spec, "mine", {"schedule": "* * * * * *", "command": ["true"], "hosts": ["web-*"]})
    write_task(spec, "other", {"schedule": "* * * * * *", "command": ["true"], "hosts": ["db-*"]})
    write_task(spec, "boot", {"schedule": "@reboot", "command": ["true"]})
    write_task(spec, "helper", {"type": "daemon", "command": ["sleep", "1"]})
    clock = Clock(T0)
    d = desired(spec, journal_in(tmp_path / "state"), clock)
    applied = d.apply(d.specs.refresh())
    assert applied is not None and applied.first
    assert set(d.tasks) == {"mine", "boot", "helper"} and set(d.all_tasks) == {
        "mine", "other", "boot", "helper"
    }
    assert set(d.daemon_tasks) == {"helper"}
    assert applied.added == ("boot", "helper", "mine")
    assert events(log, "spec.applied")[0]["tasks"] == 3
    # First seen at T0: T0 is not due, T0+1 is; @reboot once.
    assert d.pop_due(T0) == []
    assert [x.run for x in d.pop_due(T0 + 1)] == [T0 + 1]
    assert d.take_reboot() == ["boot"] and d.take_reboot() == []


def test_desired_state_keeps_tasks_when_the_directory_vanishes(
    spec: Path, tmp_path: Path, log
) -> None:
    write_task(spec, "mine", {"schedule": "* * * * * *", "command": ["true"]})
    d = desired(spec, journal_in(tmp_path / "state"), Clock(T0))
    d.apply(d.specs.refresh())
    (spec / "mine.json").unlink()
    spec.rmdir()
    assert d.apply(d.specs.refresh()) is None
    assert d.apply(d.specs.refresh()) is None
    assert set(d.tasks) == {"mine"}
    dir_errors = [e for e in events(log, "spec.invalid") if e["file"] == str(spec)]
    assert len(dir_errors) == 1, "a standing directory error is logged once"


def test_journal_crash_between_delta_and_spawn(spec: Path, tmp_path: Path, log) -> None:
    """The window the 50 random kill -9s almost never hit: the delta is written, the
    process never started. The next controller must not start that due time again, and
    must say that it may have started."""
    write_task(spec, "job", {"schedule": "* * * * * *", "command": ["true"]})
    clock = Clock(T0)
    journal = journal_in(tmp_path / "state")
    d = desired(spec, journal, clock)
    d.apply(d.specs.refresh())
    journal.files.flush(journal.ledger, {}, force=True)  # the snapshot a controller leaves
    clock.t = T0 + 1
    due = d.pop_due(T0 + 1)
    actions = reconcile(Inputs(now=clock.t, tasks=d.tasks, due=due))
    assert actions == [StartRun("job", T0 + 1, "schedule")]
    journal.before_spawn(due, actions)
    # -- killed here: no spawn, no runs.json, no flush. --

    after = journal_in(tmp_path / "state")
    assert after.cursors["job"] == T0 + 1
    d2 = desired(spec, after, clock)
    d2.apply(d2.specs.refresh())
    assert d2.pop_due(T0 + 1) == [], "a due time at or before the cursor is never due again"
    assert [x.run for x in d2.pop_due(T0 + 2)] == [T0 + 2]
    assert after.interrupted(set()) == [("job", T0 + 1)]
    assert after.interrupted(set()) == [], "reported once"


def test_journal_a_recorded_start_is_not_interrupted(tmp_path: Path) -> None:
    journal = journal_in(tmp_path / "state")
    journal.ledger.starting = {"job": T0}
    assert journal.interrupted({("job", T0)}) == []


def test_spec_reader_reads_off_the_calling_thread(spec: Path, tmp_path: Path) -> None:
    write_task(spec, "a", {"schedule": "* * * * * *", "command": ["true"]})
    d = desired(spec, journal_in(tmp_path / "state"), Clock(T0))
    woken = threading.Event()
    reader = SpecReader(d.specs, woken.set)
    try:
        first = reader.read_now()
        assert set(first.tasks) == {"a"}
        write_task(spec, "b", {"schedule": "* * * * * *", "command": ["true"]})
        reader.ask()
        reader.ask()  # asked again while busy: read once more, never lost
        assert woken.wait(10)
        deadline = time.monotonic() + 10
        result = None
        while result is None or set(result.tasks) != {"a", "b"}:
            assert time.monotonic() < deadline
            result = reader.take() or result
            time.sleep(0.01)
        worker = [t for t in threading.enumerate() if t.name == "spec-reader"]
        assert worker and worker[0] is not threading.current_thread()
    finally:
        reader.close()
